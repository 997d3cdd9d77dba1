//! Load generator: D devices of K owners, each making local changes of
//! `task` rows and syncing, against any server with the todo example's
//! `/signup` and `/sync` (ours or the Python baseline).

use mobync_bench::args::Args;
use mobync_bench::net::{agent, signup, truncate, wait_health, Outcome};
use mobync_bench::stats::{ms, Summary};
use mobync_bench::workload::Workload;
use mobync_bench::run_tag;
use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const USAGE: &str = "\
load --url http://127.0.0.1:8000 [options]

Signs up K owners, then runs D devices (device i belongs to owner i mod K),
one thread and one keep-alive connection each. Every round a device makes
--changes local changes of `task` rows (creates, and updates of rows it knows
with probability --update-ratio) through mobync::client::Device, then syncs.
Rounds repeat until --rounds rounds are done or --duration seconds have
passed, whichever is first (--warmup rounds before are not measured).

options:
  --url URL             the server (its /signup, /sync, /health)     required
  --owners K            owners                                       16
  --devices D           devices                                      64
  --changes N           local changes per round                      10
  --update-ratio R      share of changes that update a known row     0.5
  --rounds R            measured rounds per device (upper bound)     1000
  --duration S          measured seconds (upper bound)               20
  --warmup W            unmeasured rounds per device first           1
  --sync-path P         the sync path                                /sync
  --label NAME          name of this run in the output               the URL
  --server-pid PID      report that process's CPU time per sync
  --seed N              workload seed                                1
  --json                also print the result as one JSON line
  --slowest N           also print the N slowest ok syncs: when each
                        began (seconds into the run), on which device    0
";

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

struct Sample {
    latency: Duration,
    /// When the sync began, from the measured run's start.
    at: Duration,
    class: String,
    up: usize,
    down: usize,
}

struct DeviceRun {
    samples: Vec<Sample>,
    warmup_errors: usize,
    warmup_up: usize,
    rounds: usize,
    end: Instant,
    first_errors: Vec<String>,
    /// The device's state and connection, freed by the main thread once
    /// every device is done measuring: freeing a device's copy of a long
    /// history took CPU from this process's devices still in their last
    /// sync, and their answers were read up to a second late (§13 of
    /// BENCHMARKS.md).
    held: Option<(Workload, ureq::Agent)>,
}

fn main() {
    let args = Args::parse(
        USAGE,
        &[
            "url", "owners", "devices", "changes", "update-ratio", "rounds", "duration", "warmup", "sync-path", "label",
            "server-pid", "seed", "json", "slowest",
        ],
    );
    let Some(base) = args.opt::<String>("url") else {
        eprintln!("--url is required\n\n{USAGE}");
        std::process::exit(2);
    };
    let base = base.trim_end_matches('/').to_owned();
    let owners: usize = args.get("owners", 16).max(1);
    let devices: usize = args.get("devices", 64).max(1);
    let changes: usize = args.get("changes", 10);
    let update_ratio: f64 = args.get("update-ratio", 0.5);
    let rounds: usize = args.get("rounds", 1000);
    let duration = Duration::from_secs_f64(args.get("duration", 20.0));
    let warmup: usize = args.get("warmup", 1);
    let sync_url = format!("{base}{}", args.get("sync-path", "/sync".to_owned()));
    let label: String = args.get("label", base.clone());
    let server_pid: Option<u32> = args.opt("server-pid");
    let seed: u64 = args.get("seed", 1);

    if let Err(err) = wait_health(&base, Duration::from_secs(30)) {
        eprintln!("{err}");
        std::process::exit(1);
    }
    let tag = run_tag();
    let a = agent();
    let tokens: Vec<String> = (0..owners)
        .map(|i| match signup(&a, &base, &format!("bench-{tag}-{i}")) {
            Ok((token, _)) => token,
            Err(err) => {
                eprintln!("signup failed: {err}");
                std::process::exit(1);
            }
        })
        .collect();

    // `warmed`: every device has finished its warm-up; `go`: the start is set.
    let warmed = Arc::new(Barrier::new(devices + 1));
    let go = Arc::new(Barrier::new(devices + 1));
    let start_cell: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let handles: Vec<_> = (0..devices)
        .map(|i| {
            let token = tokens[i % owners].clone();
            let (warmed, go, start_cell) = (warmed.clone(), go.clone(), start_cell.clone());
            let (sync_url, tag) = (sync_url.clone(), tag.clone());
            std::thread::Builder::new()
                .name(format!("device-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let agent = agent();
                    let name = format!("{tag}-d{i}");
                    let mut wl = Workload::new(&name, &token, seed.wrapping_mul(1000).wrapping_add(i as u64), &name);
                    let mut run = DeviceRun {
                        samples: Vec::new(),
                        warmup_errors: 0,
                        warmup_up: 0,
                        rounds: 0,
                        end: Instant::now(),
                        first_errors: Vec::new(),
                        held: None,
                    };
                    for _ in 0..warmup {
                        wl.changes(changes, update_ratio);
                        let result = wl.sync(&agent, &sync_url);
                        if result.ok() {
                            run.warmup_up += result.up;
                        } else {
                            run.warmup_errors += 1;
                        }
                    }
                    warmed.wait();
                    go.wait();
                    let start = start_cell.lock().map(|s| s.unwrap_or_else(Instant::now)).unwrap_or_else(|_| Instant::now());
                    let deadline = start + duration;
                    for _ in 0..rounds {
                        if Instant::now() >= deadline {
                            break;
                        }
                        wl.changes(changes, update_ratio);
                        let at = start.elapsed();
                        let result = wl.sync(&agent, &sync_url);
                        let class = result.outcome.class();
                        if run.first_errors.len() < 3 {
                            match &result.outcome {
                                Outcome::Ok(_) => {}
                                Outcome::Status(s, body) => run.first_errors.push(format!("{s}: {}", truncate(body, 300))),
                                Outcome::BadAnswer(e) | Outcome::Transport(e) => {
                                    run.first_errors.push(format!("{class}: {}", truncate(e, 300)))
                                }
                            }
                        }
                        run.samples.push(Sample { latency: result.latency, at, class, up: result.up, down: result.down });
                        run.rounds += 1;
                    }
                    run.end = Instant::now();
                    run.held = Some((wl, agent));
                    run
                })
                .expect("spawn a device thread")
        })
        .collect();

    warmed.wait();
    let cpu_before = server_pid.and_then(cpu_seconds);
    let self_before = cpu_seconds(std::process::id());
    *start_cell.lock().expect("start") = Some(Instant::now());
    go.wait();
    let start = start_cell.lock().expect("start").unwrap_or_else(Instant::now);
    let runs: Vec<DeviceRun> = handles.into_iter().map(|h| h.join().expect("a device thread")).collect();
    let end = runs.iter().map(|r| r.end).max().unwrap_or(start);
    let elapsed = end.duration_since(start).as_secs_f64();
    let cpu_after = server_pid.and_then(cpu_seconds);
    let self_after = cpu_seconds(std::process::id());

    let mut latencies = Vec::new();
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut ok, mut up, mut down) = (0usize, 0usize, 0usize);
    for s in runs.iter().flat_map(|r| &r.samples) {
        *classes.entry(s.class.clone()).or_default() += 1;
        if s.class == "ok" {
            ok += 1;
            up += s.up;
            down += s.down;
            latencies.push(ms(s.latency));
        }
    }
    let total: usize = classes.values().sum();
    let errors = total - ok;
    let warmup_errors: usize = runs.iter().map(|r| r.warmup_errors).sum();
    // Diffs each owner's log holds at the end (a device resends failed diffs,
    // so this is an upper bound when there were errors).
    let history = (up + runs.iter().map(|r| r.warmup_up).sum::<usize>()) as f64 / owners as f64;
    let lat = Summary::of(&latencies);
    let rounds_min = runs.iter().map(|r| r.rounds).min().unwrap_or(0);
    let rounds_max = runs.iter().map(|r| r.rounds).max().unwrap_or(0);
    let server_cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let self_cpu = match (self_before, self_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    println!(
        "{label}: {devices} devices / {owners} owners, {changes} changes per sync, {elapsed:.1} s, \
         rounds per device {rounds_min}..{rounds_max}"
    );
    println!(
        "  {ok} syncs ok, {:.1} syncs/s, {:.0} diffs/s up, {:.0} diffs/s down",
        ok as f64 / elapsed,
        up as f64 / elapsed,
        down as f64 / elapsed
    );
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
        lat.p50, lat.p90, lat.p99, lat.max, lat.mean
    );
    println!("  errors: {errors} of {total} (warm-up errors: {warmup_errors}) {classes:?}");
    println!("  diffs in each owner's history at the end: {history:.0}");
    if let Some(cpu) = server_cpu {
        println!("  server process CPU: {cpu:.1} s ({:.2} ms per ok sync)", cpu * 1e3 / ok.max(1) as f64);
    }
    if let Some(cpu) = self_cpu {
        println!("  load generator CPU: {cpu:.1} s ({:.0}% of one core)", cpu / elapsed * 100.0);
    }
    for e in runs.iter().flat_map(|r| &r.first_errors).take(5) {
        eprintln!("  error: {e}");
    }
    let slowest: usize = args.get("slowest", 0);
    if slowest > 0 {
        let mut ok_syncs: Vec<(usize, &Sample)> =
            runs.iter().enumerate().flat_map(|(device, r)| r.samples.iter().map(move |s| (device, s))).filter(|(_, s)| s.class == "ok").collect();
        ok_syncs.sort_by(|a, b| b.1.latency.cmp(&a.1.latency));
        for (device, s) in ok_syncs.into_iter().take(slowest) {
            println!("  slow: {:.1} ms, began at {:.3} s, device {device}", ms(s.latency), s.at.as_secs_f64());
        }
    }
    if args.flag("json") {
        let line = serde_json::json!({
            "label": label,
            "url": base,
            "owners": owners,
            "devices": devices,
            "changes": changes,
            "update_ratio": update_ratio,
            "elapsed_s": elapsed,
            "rounds_min": rounds_min,
            "rounds_max": rounds_max,
            "syncs_ok": ok,
            "syncs_total": total,
            "syncs_per_s": ok as f64 / elapsed,
            "diffs_up_per_s": up as f64 / elapsed,
            "diffs_down_per_s": down as f64 / elapsed,
            "p50_ms": lat.p50,
            "p90_ms": lat.p90,
            "p99_ms": lat.p99,
            "max_ms": lat.max,
            "mean_ms": lat.mean,
            "errors": errors,
            "warmup_errors": warmup_errors,
            "outcomes": classes,
            "history_per_owner": history,
            "server_cpu_s": server_cpu,
            "server_cpu_ms_per_sync": server_cpu.map(|c| c * 1e3 / ok.max(1) as f64),
            "load_cpu_s": self_cpu,
        });
        println!("{line}");
    }
}
