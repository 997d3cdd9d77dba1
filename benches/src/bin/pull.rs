//! A new device's pull of a long log: one device of one owner pulls the
//! owner's whole log (N diffs) from cursor 0 as version 1 (one answer) and
//! as version 2 (pages), against the todo server ($TODO_BIN, else
//! target/release/todo), whatever its version: run it against two builds
//! to compare them. Measures the pull's time, diffs per second, and how
//! much it raised the server's peak resident memory.

use mobync_bench::args::Args;
use mobync_bench::db::Backend;
use mobync_bench::net::{agent, fill_log, signup};
use mobync_bench::server::TodoServer;
use std::io::Read;
use std::time::Instant;

const USAGE: &str = "\
pull [options]

Starts the todo server ($TODO_BIN, else target/release/todo) on a fresh
database, fills one owner's log with --log diffs (syncs of 5,000 creates),
then pulls it from cursor 0 in one version-1 answer. Prints one Markdown
row: diffs, answer MiB, seconds, diffs/s, the server's peak resident
memory before and after the pull, and the rise.

options:
  --backend B      sqlite or postgres       sqlite
  --log N          diffs in the pulled log  1000000
  --label L        the row's first column   (the binary's name)
";

/// The server's peak resident memory (`VmHWM`), in MiB.
fn peak_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
        / 1024
}

/// Pulls from `cursor`: the answer's bytes and its number of diffs.
fn pull(base: &str, token: &str, cursor: i64) -> Result<(usize, usize), String> {
    let body = serde_json::json!({"auth_token": token, "logical_clock": cursor, "diffs": []}).to_string();
    let resp = agent()
        .post(&format!("{base}/sync"))
        .set("Content-Type", "application/json")
        .send_string(&body)
        .map_err(|e| format!("pull: {e}"))?;
    let mut text = Vec::new();
    resp.into_reader().read_to_end(&mut text).map_err(|e| format!("pull: {e}"))?;
    let answer: mobync::SyncResponse = serde_json::from_slice(&text).map_err(|e| format!("pull: {e}"))?;
    Ok((text.len(), answer.diffs.len()))
}

fn main() {
    let args = Args::parse(USAGE, &["backend", "log", "label"]);
    let backend: Backend = args.get("backend", Backend::Sqlite);
    let log: usize = args.get("log", 1_000_000);
    let label: String = args.get("label", std::env::var("TODO_BIN").unwrap_or_else(|_| "todo".into()));
    let run = || -> Result<(), String> {
        let server = TodoServer::start(backend)?;
        let (token, _) = signup(&agent(), &server.base, "puller")?;
        let started = Instant::now();
        fill_log(&server.base, &token, log)?;
        eprintln!("filled {log} diffs in {:.1} s", started.elapsed().as_secs_f64());
        // Warm up: a pull of the last sync's 5,000 diffs.
        let clock = (log.div_ceil(5_000)) as i64;
        pull(&server.base, &token, clock - 1)?;
        let before = peak_mib(server.pid());
        let started = Instant::now();
        let (bytes, diffs) = pull(&server.base, &token, 0)?;
        let seconds = started.elapsed().as_secs_f64();
        let after = peak_mib(server.pid());
        if diffs != log {
            return Err(format!("pulled {diffs} diffs of {log}"));
        }
        println!(
            "| {label} | {} | {diffs} | {:.0} | {seconds:.2} | {:.0} | {before} | {after} | {} |",
            backend.name(),
            bytes as f64 / 1048576.0,
            diffs as f64 / seconds,
            after.saturating_sub(before)
        );
        Ok(())
    };
    if let Err(err) = run() {
        eprintln!("pull: {err}");
        std::process::exit(1);
    }
}
