//! The cost of one sync of N creates through the whole HTTP path of the todo
//! server, against the floor: the same rows batch-inserted with Diesel in one
//! transaction into the same kind of database.

use diesel::prelude::*;
use mobync::db::schema::{diffs, diffs_clocks};
use mobync::db::DbConnection;
use mobync_bench::args::Args;
use mobync_bench::db::{migrate_todo, Backend, BenchDb};
use mobync_bench::net::{agent, post_sync, signup, Outcome};
use mobync_bench::server::TodoServer;
use mobync_bench::stats::{median, ms};
use mobync_bench::workload::Workload;
use mobync_bench::{now_ms, run_tag};
use std::time::{Duration, Instant};
use todo::models::{tasks, Task};

const USAGE: &str = "\
sync_cost [options]

For each backend: starts the release todo binary on a fresh database, and for
each N syncs a device's N new `task` creates in one request, --runs times
(after --warmup untimed ones), timing the HTTP exchange (request sent to
answer read; the JSON is built before and parsed after). Interleaved with
each run, the floors on a second fresh database of the same backend:
  rows      the N task rows, one Diesel multi-row INSERT, one transaction
  rows+log  the same, plus N rows in mobync's diff log and the clock UPDATE
            (what a sync must write at least)
Prints the medians and the ratios.

options:
  --backends LIST   sqlite,postgres
  --sizes LIST      0,1,10,100,1000
  --runs R          timed runs per size       11
  --warmup W        untimed runs per size     2
";

/// What the floor writes.
#[derive(Clone, Copy, PartialEq)]
enum Floor {
    Rows,
    RowsAndLog,
}

fn floor(conn: &mut DbConnection, what: Floor, owner: &str, clock: i64, rows: &[Task]) -> Duration {
    // Built before the clock starts: the server has them from the request.
    let texts: Vec<String> = rows
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "title": r.title, "done": r.done}).to_string())
        .collect();
    // Tuples of `column.eq(value)`: one multi-row INSERT on every backend
    // (the model's own Insertable, whose values may be `DEFAULT`, is one
    // INSERT a row on SQLite: no floor).
    let row_values: Vec<_> = rows
        .iter()
        .map(|r| (tasks::id.eq(&r.id), tasks::owner.eq(&r.owner), tasks::title.eq(&r.title), tasks::done.eq(r.done)))
        .collect();
    let ts = now_ms();
    let log: Vec<_> = rows
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (r, text))| {
            (
                diffs::id.eq(format!("d-{}", r.id)),
                diffs::owner.eq(owner),
                diffs::logical_clock.eq(clock),
                diffs::utc_timestamp.eq(ts),
                diffs::op.eq("create"),
                diffs::model.eq("task"),
                diffs::json_data.eq(text.as_str()),
                diffs::seq.eq(i as i32),
            )
        })
        .collect();
    macro_rules! body {
        ($c:ident) => {
            |$c| -> QueryResult<()> {
                diesel::insert_into(tasks::table).values(&row_values).execute($c)?;
                if what == Floor::RowsAndLog {
                    diesel::insert_into(diffs::table).values(&log).execute($c)?;
                    diesel::update(diffs_clocks::table.filter(diffs_clocks::owner.eq(owner)))
                        .set(diffs_clocks::logical_clock.eq(clock + 1))
                        .execute($c)?;
                }
                Ok(())
            }
        };
    }
    let start = Instant::now();
    let done = match conn {
        // BEGIN IMMEDIATE, as the server's write transactions.
        DbConnection::Sqlite(c) => c.immediate_transaction(body!(c)),
        DbConnection::Pg(c) => c.transaction(body!(c)),
        #[allow(unreachable_patterns)]
        _ => panic!("sqlite and postgres only"),
    };
    let elapsed = start.elapsed();
    done.expect("the floor insert");
    elapsed
}

struct Row {
    n: usize,
    ours: Vec<f64>,
    rows: Vec<f64>,
    rows_log: Vec<f64>,
}

fn run_backend(backend: Backend, sizes: &[usize], runs: usize, warmup: usize) -> Result<Vec<Row>, String> {
    let server = TodoServer::start(backend)?;
    let floor_db = BenchDb::fresh(backend, "floor")?;
    migrate_todo(&floor_db.url)?;
    let mut fconn = floor_db.connect()?;
    let floor_owner = "floor-owner";
    diesel::insert_into(diffs_clocks::table)
        .values((diffs_clocks::owner.eq(floor_owner), diffs_clocks::logical_clock.eq(0i64)))
        .execute(&mut fconn)
        .map_err(|e| e.to_string())?;

    let a = agent();
    let url = server.sync_url();
    let tag = run_tag();
    let mut out = Vec::new();
    let mut floor_clock = 0i64;
    let mut floor_row = 0usize;
    for &n in sizes {
        let (token, _) = signup(&a, &server.base, "cost")?;
        let name = format!("{tag}-n{n}");
        let mut wl = Workload::new(&name, &token, n as u64, &name);
        // The owner's first sync creates its clock row: not what is measured.
        wl.create();
        let first = wl.sync(&a, &url);
        if !first.ok() {
            return Err(format!("first sync failed: {:?}", first.outcome));
        }
        let mut row = Row { n, ours: Vec::new(), rows: Vec::new(), rows_log: Vec::new() };
        for run in 0..warmup + runs {
            for _ in 0..n {
                wl.create();
            }
            let (body, up) = wl.request_body();
            assert_eq!(up, n);
            let (outcome, latency) = post_sync(&a, &url, &body);
            match &outcome {
                Outcome::Ok(answer) => {
                    wl.receive(answer);
                }
                other => return Err(format!("{} N={n}: sync failed: {other:?}", backend.name())),
            }
            let (mut t_rows, mut t_log) = (f64::NAN, f64::NAN);
            if n > 0 {
                for what in [Floor::Rows, Floor::RowsAndLog] {
                    let rows: Vec<Task> = (0..n)
                        .map(|i| Task {
                            id: format!("{tag}-f{}", floor_row + i),
                            owner: floor_owner.into(),
                            title: format!("task {i} of floor"),
                            done: false,
                        })
                        .collect();
                    floor_row += n;
                    let t = ms(floor(&mut fconn, what, floor_owner, floor_clock, &rows));
                    floor_clock += 1;
                    match what {
                        Floor::Rows => t_rows = t,
                        Floor::RowsAndLog => t_log = t,
                    }
                }
            }
            if run >= warmup {
                row.ours.push(ms(latency));
                row.rows.push(t_rows);
                row.rows_log.push(t_log);
            }
        }
        eprintln!(
            "{} N={n}: ours {:.2} ms, rows floor {:.3} ms, rows+log floor {:.3} ms",
            backend.name(),
            median(&row.ours),
            median(&row.rows),
            median(&row.rows_log)
        );
        out.push(row);
    }
    Ok(out)
}

fn main() {
    let args = Args::parse(USAGE, &["backends", "sizes", "runs", "warmup"]);
    let backends: Vec<Backend> = args.list("backends", "sqlite,postgres");
    let sizes: Vec<usize> = args.list("sizes", "0,1,10,100,1000");
    let runs: usize = args.get("runs", 11);
    let warmup: usize = args.get("warmup", 2);

    let mut tables = Vec::new();
    for backend in backends {
        match run_backend(backend, &sizes, runs, warmup) {
            Ok(rows) => tables.push((backend, rows)),
            Err(err) => {
                eprintln!("{}: {err}", backend.name());
                std::process::exit(1);
            }
        }
    }
    println!("\nMedians of {runs} runs (after {warmup} warm-up runs); ms; µs/diff = ours / N.\n");
    println!("| backend | N | ours: HTTP sync (min–max) | µs/diff | floor: rows | ours ÷ rows | floor: rows+log | ours ÷ rows+log |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, rows) in &tables {
        for r in rows {
            let ours = median(&r.ours);
            let lo = r.ours.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.ours.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (fr, fl) = (median(&r.rows), median(&r.rows_log));
            let per = if r.n > 0 { format!("{:.0}", ours * 1e3 / r.n as f64) } else { "–".into() };
            let cell = |x: f64, d: usize| if x.is_nan() { "–".to_owned() } else { format!("{x:.d$}") };
            println!(
                "| {} | {} | {ours:.2} ({lo:.2}–{hi:.2}) | {per} | {} | {} | {} | {} |",
                backend.name(),
                r.n,
                cell(fr, 3),
                if fr.is_nan() { "–".into() } else { format!("{:.1}×", ours / fr) },
                cell(fl, 3),
                if fl.is_nan() { "–".into() } else { format!("{:.1}×", ours / fl) },
            );
        }
    }
}
