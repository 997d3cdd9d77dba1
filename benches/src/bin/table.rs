//! Reads the JSON lines of `load --json` (files given as arguments, or
//! stdin) and prints one Markdown row per label: the median over its runs
//! of each figure, and the spread of the throughput.

use mobync_bench::stats::median;
use serde_json::Value;
use std::io::Read;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let mut text = String::new();
    if files.is_empty() {
        std::io::stdin().read_to_string(&mut text).expect("stdin");
    } else {
        for f in &files {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}")));
            text.push('\n');
        }
    }
    let mut labels: Vec<String> = Vec::new();
    let mut runs: Vec<Vec<Value>> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let label = v["label"].as_str().unwrap_or("?").to_owned();
        match labels.iter().position(|l| *l == label) {
            Some(i) => runs[i].push(v),
            None => {
                labels.push(label);
                runs.push(vec![v]);
            }
        }
    }
    let f = |rs: &[Value], key: &str| -> Vec<f64> { rs.iter().filter_map(|r| r[key].as_f64()).collect() };
    let base = runs.first().map(|rs| median(&f(rs, "syncs_per_s"))).unwrap_or(f64::NAN);
    println!(
        "| server | runs | syncs/s (min–max) | diffs/s up | diffs/s down | p50 ms | p99 ms | max ms | errors | server CPU ms/sync | history/owner at end | vs first row |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, rs) in labels.iter().zip(&runs) {
        let sps = f(rs, "syncs_per_s");
        let (lo, hi) = sps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let errors: f64 = f(rs, "errors").iter().sum::<f64>() + f(rs, "warmup_errors").iter().sum::<f64>();
        let total: f64 = f(rs, "syncs_total").iter().sum();
        let cpu = median(&f(rs, "server_cpu_ms_per_sync"));
        let cpu = if cpu.is_nan() { "–".to_owned() } else { format!("{cpu:.2}") };
        let m = median(&sps);
        println!(
            "| {label} | {} | {m:.0} ({lo:.0}–{hi:.0}) | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {errors:.0} of {total:.0} | {cpu} | {:.0} | {:.2}× |",
            rs.len(),
            median(&f(rs, "diffs_up_per_s")),
            median(&f(rs, "diffs_down_per_s")),
            median(&f(rs, "p50_ms")),
            median(&f(rs, "p99_ms")),
            median(&f(rs, "max_ms")),
            median(&f(rs, "history_per_owner")),
            m / base,
        );
    }
}
