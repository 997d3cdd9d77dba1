//! Sync latency against the size of the owner's history: 10-diff syncs with
//! the device's cursor at the head, after M diffs were put in the owner's log.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::RunQueryDsl;
use mobync::db::DbConnection;
use mobync_bench::args::Args;
use mobync_bench::db::Backend;
use mobync_bench::net::{agent, signup};
use mobync_bench::server::{PythonServer, TodoServer};
use mobync_bench::stats::{ms, Summary};
use mobync_bench::workload::Workload;
use mobync_bench::run_tag;
use std::time::Instant;

const USAGE: &str = "\
history [options]

For each backend and each size M: starts the release todo binary on a fresh
database, signs up one owner, fills its diff log directly with M diffs (one
INSERT ... SELECT; 10 diffs per clock value; creates of `task` rows that are
not in the tasks table, which a sync never reads) and sets its clock to the
head, runs ANALYZE, then two devices of that owner, both with their cursor at
the head, alternately make --changes local changes and sync: --syncs timed
syncs after --warmup untimed ones. Each answer carries the other device's
last diffs. Prints the latency per size; it should not grow with M.

options:
  --backends LIST   sqlite,postgres
  --sizes LIST      1000,100000,1000000
  --syncs S         timed syncs per size           60
  --warmup W        untimed syncs per size         10
  --changes N       local changes per sync         10
  --update-ratio R  share of updates               0.5
  --no-analyze      skip ANALYZE after the fill
  --python          also the Python mobync 0.2.0 baseline (benches/python),
                    whose diff log has no seq column and no clock table (its
                    clock is the max stamp of the log)
  --python-sizes L  1000,10000,100000 (it reads the whole history per sync)
  --python-syncs S  timed syncs per size for Python      20
";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Todo(Backend),
    Python,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Todo(Backend::Sqlite) => "todo, sqlite",
            Target::Todo(Backend::Postgres) => "todo, postgres",
            Target::Python => "python 0.2.0, sqlite",
        }
    }
}

/// Fills the Python baseline's log (`benches/python/server.py`'s schema):
/// no `seq`, no clock table. Returns the head clock (max stamp + 1).
fn fill_python(conn: &mut DbConnection, owner: &str, m: i64) -> Result<i64, String> {
    let json = r#"'{"id":"h' || i || '","title":"filler","done":false}'"#;
    let sql = format!(
        "INSERT INTO diffs (id, owner, logical_clock, utc_timestamp, type, model, json_data) \
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) \
         SELECT 'h' || i, ?, i / 10, 1700000000000 + i, 'create', 'task', {json} FROM s"
    );
    let inserted = diesel::sql_query(sql)
        .bind::<BigInt, _>(m)
        .bind::<Text, _>(owner)
        .execute(conn)
        .map_err(|e| format!("fill: {e}"))?;
    if inserted as i64 != m {
        return Err(format!("fill inserted {inserted} rows, not {m}"));
    }
    Ok((m - 1) / 10 + 1)
}

/// Fills `owner`'s log with `m` diffs stamped 0 .. m/10; returns the head
/// clock (one past the last stamp).
fn fill(conn: &mut DbConnection, owner: &str, m: i64) -> Result<i64, String> {
    let head = (m + 9) / 10;
    let json = r#"'{"id":"h' || i || '","title":"filler","done":false}'"#;
    let res = match conn {
        DbConnection::Sqlite(c) => {
            let sql = format!(
                "INSERT INTO diffs (id, owner, logical_clock, \"utc_timestamp\", \"type\", model, json_data, seq) \
                 WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) \
                 SELECT 'h' || i, ?, i / 10, 1700000000000 + i, 'create', 'task', {json}, i % 10 FROM s"
            );
            diesel::sql_query(sql).bind::<BigInt, _>(m).bind::<Text, _>(owner).execute(c)
        }
        DbConnection::Pg(c) => {
            let sql = format!(
                "INSERT INTO diffs (id, owner, logical_clock, \"utc_timestamp\", \"type\", model, json_data, seq) \
                 SELECT 'h' || i, $1, i / 10, 1700000000000 + i, 'create', 'task', {json}, (i % 10)::int \
                 FROM generate_series(0::bigint, $2 - 1) AS i"
            );
            diesel::sql_query(sql).bind::<Text, _>(owner).bind::<BigInt, _>(m).execute(c)
        }
        #[allow(unreachable_patterns)]
        _ => panic!("sqlite and postgres only"),
    };
    let inserted = res.map_err(|e| format!("fill: {e}"))?;
    if inserted as i64 != m {
        return Err(format!("fill inserted {inserted} rows, not {m}"));
    }
    let sql = match conn {
        DbConnection::Sqlite(_) => "INSERT OR REPLACE INTO diffs_clocks (owner, logical_clock) VALUES (?, ?)",
        _ => {
            "INSERT INTO diffs_clocks (owner, logical_clock) VALUES ($1, $2) \
             ON CONFLICT (owner) DO UPDATE SET logical_clock = EXCLUDED.logical_clock"
        }
    };
    diesel::sql_query(sql)
        .bind::<Text, _>(owner)
        .bind::<BigInt, _>(head)
        .execute(conn)
        .map_err(|e| format!("set the clock: {e}"))?;
    Ok(head)
}

struct Result1 {
    target: Target,
    m: i64,
    fill_s: f64,
    lat: Summary,
    down: f64,
    errors: usize,
}

fn measure(target: Target, m: i64, args: &Args) -> Result<Result1, String> {
    let syncs: usize =
        if target == Target::Python { args.get("python-syncs", 20) } else { args.get("syncs", 60) };
    let warmup: usize = args.get("warmup", 10);
    let changes: usize = args.get("changes", 10);
    let update_ratio: f64 = args.get("update-ratio", 0.5);

    // Keeps the server alive until the end of the function.
    let (_todo, _python, base, url, db) = match target {
        Target::Todo(backend) => {
            let s = TodoServer::start(backend)?;
            let (base, url, conn) = (s.base.clone(), s.sync_url(), s.db.connect()?);
            (Some(s), None, base, url, conn)
        }
        Target::Python => {
            let s = PythonServer::start()?;
            let (base, url, conn) = (s.base.clone(), s.sync_url(), s.db.connect()?);
            (None, Some(s), base, url, conn)
        }
    };
    let mut conn = db;
    let a = agent();
    let (token, owner) = signup(&a, &base, "history")?;
    let t = Instant::now();
    let head = match target {
        Target::Todo(_) => fill(&mut conn, &owner, m)?,
        Target::Python => fill_python(&mut conn, &owner, m)?,
    };
    if matches!(conn, DbConnection::Sqlite(_)) {
        conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| e.to_string())?;
    }
    if !args.flag("no-analyze") {
        conn.batch_execute("ANALYZE").map_err(|e| e.to_string())?;
    }
    let fill_s = t.elapsed().as_secs_f64();
    drop(conn);
    eprintln!("{} M={m}: filled in {fill_s:.1} s, head clock {head}", target.name());

    let tag = run_tag();
    let mut devices: Vec<Workload> = (0..2)
        .map(|i| {
            let name = format!("{tag}-h{m}-{i}");
            let mut wl = Workload::new(&name, &token, i as u64 + 7, &name);
            wl.jump_to(head);
            wl
        })
        .collect();
    let (mut lat, mut down, mut errors) = (Vec::new(), 0usize, 0usize);
    for i in 0..warmup + syncs {
        let wl = &mut devices[i % 2];
        wl.changes(changes, update_ratio);
        let r = wl.sync(&a, &url);
        if !r.ok() {
            errors += 1;
            eprintln!("  sync failed: {:?}", r.outcome);
            continue;
        }
        if i >= warmup {
            lat.push(ms(r.latency));
            down += r.down;
        }
    }
    Ok(Result1 { target, m, fill_s, lat: Summary::of(&lat), down: down as f64 / syncs as f64, errors })
}

fn main() {
    let args = Args::parse(
        USAGE,
        &[
            "backends", "sizes", "syncs", "warmup", "changes", "update-ratio", "no-analyze", "python", "python-sizes",
            "python-syncs",
        ],
    );
    let backends: Vec<Backend> = args.list("backends", "sqlite,postgres");
    let sizes: Vec<i64> = args.list("sizes", "1000,100000,1000000");
    let mut plan: Vec<(Target, i64)> =
        backends.iter().flat_map(|&b| sizes.iter().map(move |&m| (Target::Todo(b), m))).collect();
    if args.flag("python") {
        plan.extend(args.list::<i64>("python-sizes", "1000,10000,100000").into_iter().map(|m| (Target::Python, m)));
    }
    let mut results = Vec::new();
    for (target, m) in plan {
        match measure(target, m, &args) {
            Ok(r) => {
                eprintln!(
                    "  p50 {:.2} ms  p90 {:.2}  max {:.2}  ({} errors)",
                    r.lat.p50, r.lat.p90, r.lat.max, r.errors
                );
                results.push(r)
            }
            Err(err) => {
                eprintln!("{} M={m}: {err}", target.name());
                std::process::exit(1);
            }
        }
    }
    println!(
        "\n{} changes per sync, cursor at the head; latency in ms over the timed syncs.\n",
        args.get("changes", 10)
    );
    println!("| server | diffs in history | fill + ANALYZE s | syncs | p50 | p90 | max | diffs down/sync | errors | p50 ÷ smallest |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let first = results.iter().find(|x| x.target == r.target).map_or(f64::NAN, |x| x.lat.p50);
        println!(
            "| {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.2}× |",
            r.target.name(),
            r.m,
            r.fill_s,
            r.lat.n,
            r.lat.p50,
            r.lat.p90,
            r.lat.max,
            r.down,
            r.errors,
            r.lat.p50 / first
        );
    }
}
