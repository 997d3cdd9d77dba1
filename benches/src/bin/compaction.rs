//! What compaction buys a new device, what it costs, and version-2 pulls:
//! in process, the todo example's models on a fresh database per backend.

use mobync::db::{DbConnection, DieselStore, Pool, Tables};
use mobync::protocol::{Diff, OperationType, Paging};
use mobync::{Mobync, Models};
use mobync_bench::args::Args;
use mobync_bench::db::{migrate_todo, Backend, BenchDb};
use serde_json::json;
use std::time::Instant;

const USAGE: &str = "\
compaction [options]

For each backend: one owner, --rows tasks each renamed --edits times (syncs
of --per-sync diffs), then:
 1. a new device's first sync (version 1, cursor 0): diffs, answer bytes, time;
 2. version-2 pulls of that whole history at each --pages size: answers,
    diffs, the largest answer's bytes, time;
 3. the compaction of everything below the clock: time, entries before and
    after, log entries squashed per second, the longest step (the longest
    the owner's syncs wait for it);
 4. 1 and 2 again on the compacted log.

options:
  --backends LIST   sqlite,postgres
  --rows R          1000
  --edits E         200
  --per-sync N      1000
  --pages LIST      100,1000,10000
";

type Engine = Mobync<DieselStore<DbConnection>, Models>;

const OWNER: &str = "bench-owner";

fn engine() -> Engine {
    let models = Models::new().with::<todo::models::Task>().with::<todo::models::Project>();
    Mobync::new(DieselStore::new(Tables::default()), models)
}

fn fill(engine: &Engine, pool: &Pool, rows: usize, edits: usize, per_sync: usize) -> Result<(), String> {
    let owner = OWNER.to_string();
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let mut diffs: Vec<Diff> = (0..rows)
        .map(|r| {
            Diff::new(format!("c{r}"), OperationType::Create, "task", json!({"id": format!("t{r}"), "title": "new", "done": false}))
                .at(0, 1_000)
        })
        .collect();
    let mut cursor = 0;
    let mut ts = 1_000;
    for edit in 0..=edits {
        if edit > 0 {
            for r in 0..rows {
                ts += 1;
                let title = format!("title {edit} of {r}");
                diffs.push(Diff::new(format!("u{edit}-{r}"), OperationType::Update, "task", json!({"id": format!("t{r}"), "title": title})).at(cursor, ts));
            }
        }
        while diffs.len() >= per_sync || (edit == edits && !diffs.is_empty()) {
            let batch: Vec<Diff> = diffs.drain(..per_sync.min(diffs.len())).collect();
            cursor = engine.apply(&mut conn, cursor, batch, &owner).map_err(|e| e.to_string())?.logical_clock;
        }
    }
    Ok(())
}

fn first_sync(engine: &Engine, pool: &Pool) -> Result<String, String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let answer = engine.apply(&mut conn, 0, vec![], &OWNER.to_string()).map_err(|e| e.to_string())?;
    let count = answer.diffs.len();
    let bytes = answer.into_json().len();
    Ok(format!("{count} diffs, {:.1} MiB, {:.0} ms", bytes as f64 / 1048576.0, started.elapsed().as_secs_f64() * 1e3))
}

fn pulls(engine: &Engine, pool: &Pool, size: u64) -> Result<String, String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut cursor, mut answers, mut diffs, mut largest) = (0, 0, 0, 0);
    loop {
        let paging = Some(Paging { page_size: size, base_clock: cursor });
        let answer = engine.sync(&mut conn, cursor, vec![], paging, &OWNER.to_string()).map_err(|e| e.to_string())?;
        answers += 1;
        diffs += answer.diffs.len();
        cursor = answer.logical_clock;
        let more = answer.has_more == Some(true);
        largest = largest.max(answer.into_json().len());
        if !more {
            break;
        }
    }
    Ok(format!(
        "page {size}: {answers} answers, {diffs} diffs, largest {:.2} MiB, {:.0} ms",
        largest as f64 / 1048576.0,
        started.elapsed().as_secs_f64() * 1e3
    ))
}

fn run(backend: Backend, args: &Args) -> Result<(), String> {
    let (rows, edits, per_sync): (usize, usize, usize) = (args.get("rows", 1000), args.get("edits", 200), args.get("per-sync", 1000));
    let pages: Vec<u64> = args.list("pages", "100,1000,10000");
    let db = BenchDb::fresh(backend, "compaction")?;
    migrate_todo(&db.url)?;
    let pool = mobync::db::pool::<DbConnection>(&db.url).map_err(|e| e.to_string())?;
    let engine = engine();
    let started = Instant::now();
    fill(&engine, &pool, rows, edits, per_sync)?;
    println!("{}: {rows} rows x {edits} edits filled in {:.1} s", backend.name(), started.elapsed().as_secs_f64());
    println!("  before compaction, first sync (v1): {}", first_sync(&engine, &pool)?);
    for &size in &pages {
        println!("  before compaction, v2 {}", pulls(&engine, &pool, size)?);
    }
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let done = engine.compact(&mut conn, OWNER, None).map_err(|e| e.to_string())?.ok_or("no owner")?;
    let took = started.elapsed().as_secs_f64();
    drop(conn);
    println!(
        "  compaction: {:.2} s, {} steps, entries {} -> {}, {:.0} log entries squashed/s, longest step {:.0} ms",
        took,
        done.steps,
        done.entries_before,
        done.entries_after,
        (done.entries_before - done.entries_after.min(done.entries_before)) as f64 / took,
        done.longest_step_ms
    );
    println!("  after compaction, first sync (v1): {}", first_sync(&engine, &pool)?);
    for &size in &pages {
        println!("  after compaction, v2 {}", pulls(&engine, &pool, size)?);
    }
    Ok(())
}

fn main() {
    let args = Args::parse(USAGE, &["backends", "rows", "edits", "per-sync", "pages"]);
    for backend in args.list::<Backend>("backends", "sqlite,postgres") {
        if let Err(err) = run(backend, &args) {
            eprintln!("{}: {err}", backend.name());
            std::process::exit(1);
        }
    }
}
