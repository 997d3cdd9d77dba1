//! What a run of N creates of one model costs to write, by the way it is
//! written: the derive's `create_all` against the two INSERTs Diesel makes
//! of the same rows. No HTTP, no log, no fsync: the statement alone.

use diesel::prelude::*;
use mobync::db::DbConnection;
use mobync::{Diff, OperationType, Syncable};
use mobync_bench::args::Args;
use mobync_bench::db::{migrate_todo, Backend, BenchDb};
use mobync_bench::stats::median;
use std::time::{Duration, Instant};
use todo::models::{tasks, Task};

const USAGE: &str = "\
creates [options]

For each backend and each N: a fresh database with the todo example's tables
(SQLite: mobync's pool's pragmas, but synchronous=OFF, so that no fsync is
timed), then --runs runs (after --warmup untimed ones) of each way of
writing N new `task` rows in one transaction, interleaved:
  ours        Task::create_all from N create diffs: decodes each diff's
              json_data, then the derive's multi-row INSERT, kept prepared
  diesel      the same rows decoded, then Diesel's INSERT of a Vec<Task>
              (the model's own Insertable, a `None` as DEFAULT: on SQLite
              one INSERT a row in a savepoint; what the derive wrote before)
  diesel-mr   the same rows decoded, then Diesel's multi-row INSERT of
              tuples of `column.eq(value)` (one statement, compiled at each
              execution; on PostgreSQL prepared in a round trip of its own)
Prints the median µs per run and per row of each.

options:
  --backends LIST   sqlite,postgres
  --sizes LIST      10,100,1000
  --runs R          timed runs per size and way     101
  --warmup W        untimed runs per size and way   5
";

/// A way of writing the rows.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Ours,
    Diesel,
    DieselMultiRow,
}

const WAYS: [(Way, &str); 3] = [(Way::Ours, "ours"), (Way::Diesel, "diesel"), (Way::DieselMultiRow, "diesel-mr")];

/// N create diffs of new rows; `run` makes their ids new.
fn creates(way: &str, run: usize, n: usize) -> Vec<Diff> {
    (0..n)
        .map(|i| {
            let id = format!("{way}-{run}-{i}");
            let data = serde_json::json!({"id": id, "title": format!("task {i} of run {run}"), "done": i % 2 == 0});
            Diff::new(format!("d-{id}"), OperationType::Create, "task", data)
        })
        .collect()
}

/// The rows of `diffs`, decoded as the derive decodes them (from `json_data`).
fn decode(owner: &str, diffs: &[Diff]) -> Vec<Task> {
    diffs
        .iter()
        .map(|d| Task {
            id: d.data["id"].as_str().expect("id").to_owned(),
            owner: owner.to_owned(),
            title: serde_json::from_value(d.data["title"].clone()).expect("title"),
            done: serde_json::from_value(d.data["done"].clone()).expect("done"),
        })
        .collect()
}

fn write(conn: &mut DbConnection, way: Way, owner: &String, diffs: &[Diff]) -> Duration {
    let refs: Vec<&Diff> = diffs.iter().collect();
    // Diesel's INSERTs on the backend's own connection (as the derive's).
    macro_rules! diesel_way {
        ($c:ident) => {
            $c.transaction(|c| -> QueryResult<()> {
                let rows = decode(owner, diffs);
                if way == Way::Diesel {
                    diesel::insert_into(tasks::table).values(&rows).execute(c)?;
                } else {
                    let values: Vec<_> = rows
                        .iter()
                        .map(|r| (tasks::id.eq(&r.id), tasks::owner.eq(&r.owner), tasks::title.eq(&r.title), tasks::done.eq(r.done)))
                        .collect();
                    diesel::insert_into(tasks::table).values(&values).execute(c)?;
                }
                Ok(())
            })
        };
    }
    let start = Instant::now();
    let done: QueryResult<()> = match (way, &mut *conn) {
        (Way::Ours, conn) => conn.transaction(|c| {
            Task::create_all(c, owner, &refs).expect("create_all");
            Ok(())
        }),
        (_, DbConnection::Sqlite(c)) => diesel_way!(c),
        (_, DbConnection::Pg(c)) => diesel_way!(c),
        #[allow(unreachable_patterns)]
        _ => panic!("sqlite and postgres only"),
    };
    let elapsed = start.elapsed();
    done.expect("the INSERT");
    elapsed
}

fn run_backend(backend: Backend, sizes: &[usize], runs: usize, warmup: usize) -> Result<Vec<(usize, [f64; 3])>, String> {
    let db = BenchDb::fresh(backend, "creates")?;
    migrate_todo(&db.url)?;
    let mut conn = db.connect()?;
    if backend == Backend::Sqlite {
        diesel::sql_query("PRAGMA synchronous = OFF").execute(&mut conn).map_err(|e| e.to_string())?;
    }
    let owner = "owner-1".to_owned();
    let mut out = Vec::new();
    for &n in sizes {
        let mut times: [Vec<f64>; 3] = Default::default();
        for run in 0..warmup + runs {
            for (k, (way, name)) in WAYS.iter().enumerate() {
                let diffs = creates(name, n * 1_000_000 + run, n);
                let took = write(&mut conn, *way, &owner, &diffs);
                if run >= warmup {
                    times[k].push(took.as_secs_f64() * 1e6);
                }
            }
        }
        out.push((n, [median(&times[0]), median(&times[1]), median(&times[2])]));
    }
    Ok(out)
}

fn main() {
    let args = Args::parse(USAGE, &["backends", "sizes", "runs", "warmup"]);
    let backends: Vec<Backend> = args.list("backends", "sqlite,postgres");
    let sizes: Vec<usize> = args.list("sizes", "10,100,1000");
    let runs: usize = args.get("runs", 101);
    let warmup: usize = args.get("warmup", 5);
    println!("Medians of {runs} runs (after {warmup} warm-up runs); µs per run (µs per row).\n");
    println!("| backend | N | ours | diesel | diesel-mr | diesel ÷ ours | diesel-mr ÷ ours |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for backend in backends {
        let rows = run_backend(backend, &sizes, runs, warmup).unwrap_or_else(|err| {
            eprintln!("{}: {err}", backend.name());
            std::process::exit(1);
        });
        for (n, [ours, diesel, multi]) in rows {
            let per = |x: f64| format!("{x:.0} ({:.1})", x / n as f64);
            println!(
                "| {} | {n} | {} | {} | {} | {:.2}× | {:.2}× |",
                backend.name(),
                per(ours),
                per(diesel),
                per(multi),
                diesel / ours,
                multi / ours
            );
        }
    }
}
