//! Memory before authentication: the rise of the todo server's peak
//! resident memory (VmHWM) under C concurrent bodies of S MiB of
//! `"json_data": [0,0,0,…]` with a token nobody has, against
//! $TODO_BIN (else target/release/todo): run it against two builds to
//! compare them.

use mobync_bench::args::Args;
use mobync_bench::db::Backend;
use mobync_bench::net::agent;
use mobync_bench::server::TodoServer;

const USAGE: &str = "\
preauth_memory [options]

options:
  --concurrent C   requests at once          8
  --mib S          body size, MiB (< 5)      4.9
  --label L        the row's first column    ($TODO_BIN)
";

fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args = Args::parse(USAGE, &["concurrent", "mib", "label"]);
    let concurrent: usize = args.get("concurrent", 8);
    let mib: f64 = args.get("mib", 4.9);
    let label: String = args.get("label", std::env::var("TODO_BIN").unwrap_or_else(|_| "todo".into()));
    let server = TodoServer::start(Backend::Sqlite).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let zeros = vec!["0"; (mib * 1024.0 * 1024.0 / 2.0) as usize].join(",");
    let body = format!(
        r#"{{"auth_token":"nobody","logical_clock":0,"diffs":[{{"id":"d1","owner":"","logical_clock":0,"utc_timestamp":1,"type":"create","model":"task","json_data":[{zeros}]}}]}}"#
    );
    let url = server.sync_url();
    let send = |body: &str| {
        let answer = agent().post(&url).set("Content-Type", "application/json").send_string(body);
        match answer {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    };
    let warm = send(&body);
    let before = peak_kib(server.pid());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrent).map(|_| scope.spawn(|| send(&body))).collect();
        handles.into_iter().map(|h| h.join().expect("a client")).collect()
    });
    let rise = peak_kib(server.pid()).saturating_sub(before) / 1024;
    let size = body.len() as f64 / 1048576.0;
    println!(
        "| {label} | {concurrent} × {size:.1} MiB | {warm} / {:?} | {} MiB | {rise} MiB | {:.0} MiB |",
        statuses.iter().collect::<std::collections::BTreeSet<_>>(),
        before / 1024,
        concurrent as f64 * 3.0 * size
    );
}
