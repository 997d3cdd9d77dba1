//! Catch-up beside other owners: one owner's device pulls the owner's whole
//! log (N diffs) from cursor 0, again and again, while devices of other
//! owners make 10-change syncs. Measures the other owners' latency (p50,
//! p99, max) with and without the puller, and the puller's time per pull,
//! against the todo server ($TODO_BIN, else target/release/todo), whatever
//! its version: run it against two builds to compare them.

use mobync_bench::args::Args;
use mobync_bench::db::Backend;
use mobync_bench::net::{agent, fill_log, signup};
use mobync_bench::server::TodoServer;
use mobync_bench::stats::{ms, percentile};
use mobync_bench::workload::Workload;
use mobync_bench::run_tag;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
catchup [options]

Starts the todo server ($TODO_BIN, else target/release/todo) on a fresh
database, fills one owner's log with --log diffs (syncs of 5,000 creates),
then for --seconds measures the 10-change syncs of --devices devices of
other owners: first alone, then while one device of the first owner pulls
the whole log from cursor 0 in a loop. Prints one Markdown row per phase.

options:
  --backend B      sqlite or postgres       sqlite
  --log N          diffs in the pulled log  200000
  --devices D      devices of other owners  4
  --seconds S      per phase                20
  --label L        the row's first column   (the binary's name)
";

/// The other owners' sync latencies (ms) over `seconds`, and how many pulls
/// of the whole log (with their mean ms) happened meanwhile.
fn phase(base: &str, others: &[String], puller: Option<&str>, seconds: u64, log: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{base}/sync");
    let pull = puller.map(|token| {
        let (stop, url, token) = (stop.clone(), url.clone(), token.to_owned());
        std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let a = agent();
            let body = serde_json::json!({"auth_token": token, "logical_clock": 0, "diffs": []}).to_string();
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // The whole answer is read (tens of MB: past ureq's
                // into_string limit), then parsed.
                let started = Instant::now();
                let response = a.post(&url).set("Content-Type", "application/json").send_string(&body);
                let response = response.map_err(|e| format!("a pull: {e}"))?;
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).map_err(|e| format!("a pull: {e}"))?;
                times.push(ms(started.elapsed()));
                let answer: mobync::SyncResponse = serde_json::from_slice(&bytes).map_err(|e| format!("a pull: {e}"))?;
                if answer.diffs.len() < log {
                    return Err(format!("a pull brought {} diffs, not {log}", answer.diffs.len()));
                }
            }
            Ok(times)
        })
    });
    let tag = run_tag();
    let devices: Vec<_> = others
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let (stop, url, token, tag) = (stop.clone(), url.clone(), token.clone(), tag.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let a = agent();
                let name = format!("{tag}-o{i}");
                let mut device = Workload::new(&name, &token, i as u64 + 3, &name);
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    device.changes(10, 0.5);
                    let result = device.sync(&a, &url);
                    if !result.ok() {
                        return Err(format!("a 10-change sync: {}", result.outcome.class()));
                    }
                    times.push(ms(result.latency));
                }
                Ok(times)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for device in devices {
        latencies.extend(device.join().map_err(|_| "a device panicked")??);
    }
    let pulls = match pull {
        Some(pull) => pull.join().map_err(|_| "the puller panicked")??,
        None => Vec::new(),
    };
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, pulls))
}

fn main() {
    let args = Args::parse(USAGE, &["backend", "log", "devices", "seconds", "label"]);
    let backend: Backend = args.get("backend", Backend::Sqlite);
    let log: usize = args.get("log", 200_000);
    let devices: usize = args.get("devices", 4);
    let seconds: u64 = args.get("seconds", 20);
    let label: String = args.get("label", std::env::var("TODO_BIN").unwrap_or_else(|_| "todo".into()));
    let run = || -> Result<(), String> {
        let server = TodoServer::start(backend)?;
        let a = agent();
        let (puller, _) = signup(&a, &server.base, "puller")?;
        let others: Vec<String> = (0..devices).map(|i| signup(&a, &server.base, &format!("o{i}")).map(|s| s.0)).collect::<Result<_, _>>()?;
        let started = Instant::now();
        fill_log(&server.base, &puller, log)?;
        eprintln!("filled {log} diffs in {:.1} s", started.elapsed().as_secs_f64());
        let rss = |pid: u32| -> u64 {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
                .unwrap_or(0)
                / 1024
        };
        for (phase_name, with_puller) in [("alone", false), ("beside a puller", true)] {
            let (lat, pulls) = phase(&server.base, &others, with_puller.then_some(puller.as_str()), seconds, log)?;
            let pull = if pulls.is_empty() {
                "–".to_string()
            } else {
                format!("{} pulls, {:.0} ms each", pulls.len(), pulls.iter().sum::<f64>() / pulls.len() as f64)
            };
            println!(
                "| {label} | {} | {phase_name} | {} | {:.1} | {:.1} | {:.1} | {pull} | {} |",
                backend.name(),
                lat.len(),
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
                lat.last().copied().unwrap_or(f64::NAN),
                rss(server.pid())
            );
        }
        Ok(())
    };
    if let Err(err) = run() {
        eprintln!("catchup: {err}");
        std::process::exit(1);
    }
}
