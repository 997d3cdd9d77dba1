//! Where the time of one sync goes: the todo example's models and
//! authenticator under mobync's engine, in process, with timing wrappers
//! around the `Store` and the `Synchronizer` and, in a second pass, Diesel's
//! instrumentation counting and timing every SQL statement. A third pass
//! sends the same workload to the release todo binary over HTTP, one request
//! at a time, for the share of HTTP and Rocket.
//!
//! Nothing here changes mobync: the wrappers only delegate.

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use mobync::db::{DbConnection, DieselStore, Tables};
use mobync::engine::{KnownIds, Store, Synchronizer};
use mobync::protocol::wire::{decode_diff, Envelope};
use mobync::protocol::{Diff, JsonObject};
use mobync::{Mobync, Models, SyncError};
use mobync_bench::args::Args;
use mobync_bench::db::Backend;
use mobync_bench::net::{agent, post_sync, signup, Outcome};
use mobync_bench::server::TodoServer;
use mobync_bench::workload::Workload;
use mobync_bench::run_tag;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const USAGE: &str = "\
profile [options]

For each backend and each size N: a fresh database (the release todo binary
creates it), two devices of one owner alternately make N local changes
(creates and updates, --update-ratio) and sync, so that each answer carries
the other device's N diffs. Three passes of --syncs syncs each (after
--warmup): (1) in process, timing each step of the engine; (2) in process,
counting and timing each SQL statement (Diesel instrumentation); (3) over
HTTP to the todo binary, one request at a time. Prints per-sync averages.

options:
  --backends LIST    sqlite,postgres
  --sizes LIST       10,100
  --syncs S          syncs per pass                 200
  --warmup W         untimed syncs before each pass 20
  --update-ratio R   share of updates               0.5
";

// ---------------------------------------------------------------------------
// Timings, by step name.

static STEPS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());
static STATEMENTS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(step: &'static str, d: Duration) {
    let mut steps = STEPS.lock().expect("steps");
    let e = steps.entry(step).or_default();
    e.0 += 1;
    e.1 += d;
}

fn timed<T>(step: &'static str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    record(step, t.elapsed());
    out
}

// ---------------------------------------------------------------------------
// Wrappers that only delegate and time.

struct TimedStore(DieselStore<DbConnection>);

impl Store for TimedStore {
    type Conn = DbConnection;

    fn write<T>(&self, conn: &mut DbConnection, f: impl FnOnce(&mut DbConnection) -> Result<T, SyncError>) -> Result<T, SyncError> {
        let t0 = Instant::now();
        let mut body_end = None;
        let out = self.0.write(conn, |conn| {
            let t1 = Instant::now();
            record("tx: writer's turn + BEGIN", t1 - t0);
            let out = f(conn);
            let t2 = Instant::now();
            record("tx: body (sum)", t2 - t1);
            body_end = Some(t2);
            out
        });
        if let Some(t2) = body_end {
            record("tx: COMMIT", t2.elapsed());
        }
        out
    }

    fn clock(&self, conn: &mut DbConnection, owner: &str) -> Result<i64, SyncError> {
        timed("store: clock (no lock)", || self.0.clock(conn, owner))
    }

    fn lock_clock(&self, conn: &mut DbConnection, owner: &str) -> Result<i64, SyncError> {
        timed("store: lock_clock", || self.0.lock_clock(conn, owner))
    }

    fn diffs_between(&self, conn: &mut DbConnection, owner: &str, from: i64, to: i64) -> Result<Vec<Diff>, SyncError> {
        timed("store: diffs_between (read S, decode json_data)", || self.0.diffs_between(conn, owner, from, to))
    }

    fn known_ids(&self, conn: &mut DbConnection, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        timed("store: known_ids (SELECT ... IN, log and dropped)", || self.0.known_ids(conn, owner, ids))
    }

    fn record(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        stamp: i64,
        applied: &[Diff],
        dropped: &[&str],
    ) -> Result<(), SyncError> {
        timed("store: record (log INSERT, clock UPDATE)", || self.0.record(conn, owner, stamp, applied, dropped))
    }
}

struct TimedModels(Models);

impl Synchronizer<DbConnection> for TimedModels {
    type Owner = String;

    fn check(&self, diff: &Diff) -> Result<(), SyncError> {
        timed("models: check (decode json_data per diff)", || self.0.check(diff))
    }

    fn read(&self, conn: &mut DbConnection, owner: &String, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError> {
        timed("models: read", || self.0.read(conn, owner, model, id))
    }

    fn write_all(&self, conn: &mut DbConnection, owner: &String, diffs: &[Diff]) -> Result<(), SyncError> {
        // Models' own: runs of creates of one model in one INSERT; the single
        // updates and deletes are not timed one by one here.
        timed("models: write_all (INSERT per run of creates, UPDATE/DELETE per diff)", || {
            self.0.write_all(conn, owner, diffs)
        })
    }

    fn validate_all(&self, conn: &mut DbConnection, owner: &String, diffs: &[Diff]) -> Result<(), SyncError> {
        timed("models: validate_all (rules; one SELECT of rows per model)", || self.0.validate_all(conn, owner, diffs))
    }
}

// ---------------------------------------------------------------------------
// Statement counting (pass 2).

/// The statement's SQL without its binds, placeholders folded.
fn normalize(query: &str) -> String {
    let sql = query.split(" -- binds").next().unwrap_or(query);
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    let mut out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // Fold lists of placeholders: (?, ?, ?) and ((?, ...), (?, ...)).
    while let Some(i) = out.find("?, ?, ?") {
        out.replace_range(i..i + 7, "?, ?");
    }
    while let Some(i) = out.find("), (?") {
        let end = out[i + 3..].find(')').map_or(out.len(), |e| i + 3 + e + 1);
        out.replace_range(i..end, ")");
        if !out[..i].ends_with(" …") {
            out.insert_str(i + 1, ", …");
        }
    }
    let out = out.replace(", …, …", ", …");
    if out.chars().count() > 110 {
        format!("{}…", out.chars().take(110).collect::<String>())
    } else {
        out
    }
}

struct Counter {
    start: Option<Instant>,
}

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.start = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, .. } => {
                let d = self.start.take().map_or(Duration::ZERO, |s| s.elapsed());
                let key = normalize(&query.to_string());
                let mut st = STATEMENTS.lock().expect("statements");
                let e = st.entry(key).or_default();
                e.0 += 1;
                e.1 += d;
            }
            _ => {}
        }
    }
}

fn counter() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(Counter { start: None }))
}

// ---------------------------------------------------------------------------

type Engine = Mobync<TimedStore, TimedModels>;

fn make_engine(url: &str) -> Result<(Engine, mobync::db::Pool), String> {
    let pool = mobync::db::pool::<DbConnection>(url).map_err(|e| e.to_string())?;
    let models = Models::new().with::<todo::models::Task>().with::<todo::models::Project>();
    let engine = Mobync::new(TimedStore(DieselStore::new(Tables::default())), TimedModels(models));
    Ok((engine, pool))
}

/// One sync in process: the steps of the fairing's route, timed.
fn sync_in_process(engine: &Engine, pool: &mobync::db::Pool, wl: &mut Workload) -> Result<Duration, String> {
    let (body, _) = wl.request_body();
    let start = Instant::now();
    let mut conn = timed("pool.get", || pool.get()).map_err(|e| e.to_string())?;
    let request = timed("http body → envelope (serde, diffs raw)", || Envelope::parse(&body)).map_err(|e| e.message)?;
    let token = request.auth_token.clone().unwrap_or_default();
    let owner = timed("authenticate (SHA-256, SELECT users)", || todo::accounts::authenticate(&mut conn, &token))
        .map_err(|e| format!("{e:?}"))?;
    let cursor = request.cursor.value().map_err(|e| e.message)?;
    let diffs = timed("diffs → checked objects", || request.diffs.iter().map(|raw| decode_diff(raw)).collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.message)?;
    let answer =
        timed("engine.apply (sum)", || engine.apply(&mut conn, cursor, diffs, &owner)).map_err(|e| e.message)?;
    let bytes = timed("answer → JSON (serde)", || serde_json::to_vec(&answer)).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    std::hint::black_box(bytes);
    wl.receive(&answer);
    Ok(elapsed)
}

fn changes_and_sync(
    devices: &mut [Workload],
    i: usize,
    n: usize,
    ratio: f64,
    mut sync: impl FnMut(&mut Workload) -> Result<Duration, String>,
) -> Result<Duration, String> {
    let wl = &mut devices[i % devices.len()];
    wl.changes(n, ratio);
    sync(wl)
}

fn print_steps(syncs: usize, total: Duration) {
    let steps = STEPS.lock().expect("steps").clone();
    let get = |k: &str| steps.get(k).map_or(Duration::ZERO, |v| v.1);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / syncs as f64;
    let total_us = per(total);
    // The parts of the transaction body the wrappers do not see: the merge,
    // stamping, and the engine's own bookkeeping.
    let inside: Duration = steps
        .iter()
        .filter(|(k, _)| k.starts_with("store:") || (k.starts_with("models:") && !k.starts_with("models: check")))
        .map(|(_, v)| v.1)
        .sum();
    let merge = get("tx: body (sum)").saturating_sub(inside);
    let tx = get("tx: writer's turn + BEGIN") + get("tx: body (sum)") + get("tx: COMMIT");
    let checks = get("engine.apply (sum)").saturating_sub(tx);
    println!("| step | calls/sync | µs/sync | share |");
    println!("|---|---:|---:|---:|");
    let mut rows: Vec<(String, f64, f64)> = steps
        .iter()
        .filter(|(k, _)| !k.ends_with("(sum)"))
        .filter(|(k, _)| !k.starts_with("models: check"))
        .map(|(k, v)| (k.to_string(), v.0 as f64 / syncs as f64, per(v.1)))
        .collect();
    rows.push(("engine: merge, stamping, bookkeeping (rest of tx body)".into(), 1.0, per(merge)));
    rows.push(("engine: check_batch (incl. models: check per diff)".into(), 1.0, per(checks)));
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (k, calls, us) in rows {
        println!("| {k} | {calls:.1} | {us:.0} | {:.0}% |", us / total_us * 100.0);
    }
    if let Some(v) = steps.get("models: check (decode json_data per diff)") {
        println!("| (of check_batch: models: check) | {:.1} | {:.0} | |", v.0 as f64 / syncs as f64, per(v.1));
    }
    println!("| **total in process** | | **{total_us:.0}** | 100% |");
}

fn print_statements(syncs: usize) {
    let st = STATEMENTS.lock().expect("statements").clone();
    let mut rows: Vec<(String, u64, Duration)> = st.into_iter().map(|(k, v)| (k, v.0, v.1)).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let calls: u64 = rows.iter().map(|r| r.1).sum();
    let time: Duration = rows.iter().map(|r| r.2).sum();
    println!("| statement | calls/sync | µs/sync |");
    println!("|---|---:|---:|");
    for (k, n, d) in rows {
        println!(
            "| `{}` | {:.1} | {:.0} |",
            k.replace('|', "\\|"),
            n as f64 / syncs as f64,
            d.as_secs_f64() * 1e6 / syncs as f64
        );
    }
    println!(
        "| **all statements** | **{:.1}** | **{:.0}** |",
        calls as f64 / syncs as f64,
        time.as_secs_f64() * 1e6 / syncs as f64
    );
}

fn median_us(v: &mut [Duration]) -> f64 {
    let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    mobync_bench::stats::median(&ms)
}

fn run(backend: Backend, n: usize, args: &Args) -> Result<(), String> {
    let syncs: usize = args.get("syncs", 200);
    let warmup: usize = args.get("warmup", 20);
    let ratio: f64 = args.get("update-ratio", 0.5);
    let server = TodoServer::start(backend)?;
    let a = agent();
    let tag = run_tag();
    let make = |token: &str, who: &str| -> Vec<Workload> {
        (0..2)
            .map(|i| {
                let name = format!("{tag}-{who}{i}");
                Workload::new(&name, token, i as u64 + 11, &name)
            })
            .collect()
    };
    let (token, _) = signup(&a, &server.base, "in-process")?;
    let mut devices = make(&token, "p");

    println!("\n### {} — {n} changes per sync ({} syncs, {warmup} warm-up)\n", backend.name(), syncs);

    // Pass 1: steps.
    let (engine, pool) = make_engine(&server.db.url)?;
    for i in 0..warmup {
        changes_and_sync(&mut devices, i, n, ratio, |wl| sync_in_process(&engine, &pool, wl))?;
    }
    STEPS.lock().expect("steps").clear();
    let mut lat = Vec::new();
    for i in 0..syncs {
        lat.push(changes_and_sync(&mut devices, i, n, ratio, |wl| sync_in_process(&engine, &pool, wl))?);
    }
    let total: Duration = lat.iter().sum();
    let p50_in = median_us(&mut lat);
    println!("Pass 1, in process, per sync (mean over {syncs} syncs; median total {p50_in:.0} µs):\n");
    print_steps(syncs, total);
    drop((engine, pool));

    // Pass 2: statements (new connections pick up the instrumentation).
    set_default_instrumentation(counter).map_err(|e| e.to_string())?;
    let (engine, pool) = make_engine(&server.db.url)?;
    for i in 0..warmup {
        changes_and_sync(&mut devices, i, n, ratio, |wl| sync_in_process(&engine, &pool, wl))?;
    }
    STATEMENTS.lock().expect("statements").clear();
    for i in 0..syncs {
        changes_and_sync(&mut devices, i, n, ratio, |wl| sync_in_process(&engine, &pool, wl))?;
    }
    set_default_instrumentation(|| None).map_err(|e| e.to_string())?;
    println!("\nPass 2, SQL statements per sync (Diesel instrumentation; times include its own overhead):\n");
    print_statements(syncs);
    drop((engine, pool));

    // Pass 3: the same over HTTP, one request at a time.
    let (token, _) = signup(&a, &server.base, "http")?;
    let mut devices = make(&token, "h");
    let url = server.sync_url();
    let mut http = |wl: &mut Workload| -> Result<Duration, String> {
        let (body, _) = wl.request_body();
        let (outcome, latency) = post_sync(&a, &url, &body);
        match outcome {
            Outcome::Ok(answer) => {
                wl.receive(&answer);
                Ok(latency)
            }
            other => Err(format!("{other:?}")),
        }
    };
    for i in 0..warmup {
        changes_and_sync(&mut devices, i, n, ratio, &mut http)?;
    }
    let mut lat = Vec::new();
    for i in 0..syncs {
        lat.push(changes_and_sync(&mut devices, i, n, ratio, &mut http)?);
    }
    let mean_http = lat.iter().sum::<Duration>().as_secs_f64() * 1e6 / syncs as f64;
    let p50_http = median_us(&mut lat);
    let mean_in = total.as_secs_f64() * 1e6 / syncs as f64;
    println!(
        "\nPass 3, over HTTP (todo release binary, one client): median {p50_http:.0} µs, mean {mean_http:.0} µs; \
         in process: median {p50_in:.0} µs, mean {mean_in:.0} µs → HTTP + Rocket + spawn_blocking ≈ {:.0} µs/sync ({:.0}%)",
        mean_http - mean_in,
        (mean_http - mean_in) / mean_http * 100.0
    );
    Ok(())
}

fn main() {
    let args = Args::parse(USAGE, &["backends", "sizes", "syncs", "warmup", "update-ratio"]);
    let backends: Vec<Backend> = args.list("backends", "sqlite,postgres");
    let sizes: Vec<usize> = args.list("sizes", "10,100");
    for &backend in &backends {
        for &n in &sizes {
            if let Err(err) = run(backend, n, &args) {
                eprintln!("{} N={n}: {err}", backend.name());
                std::process::exit(1);
            }
        }
    }
}
