//! Group commit on a real SQLite file: writes queued behind a running one
//! join its transaction and share its COMMIT; each is all or nothing on
//! its own, none returns before the COMMIT, a failed COMMIT or a panic
//! writes nothing of the group, and a process killed between joining a
//! group and its COMMIT loses nothing it answered and leaves nothing half
//! applied. Each step waits for the state it needs (a write queued, a line
//! of the child), never for a fixed time.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use mobync::client::Device;
use mobync::db::{self, DbConnection, DieselStore, Pool, PoolSettings, Tables};
use mobync::engine::Request;
use mobync::observe::Report;
use mobync::{Diff, ErrorKind, Mobync, OperationType::Create, Store, SyncError, SyncResponse};
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models;
use serde_json::json;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Far beyond what a condition takes on a loaded machine: only a fault
/// reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

struct Db {
    db: TestDb,
    pool: Pool,
    store: DieselStore<DbConnection>,
}

/// A fresh SQLite file with table `t`, mobync's tables and the test
/// models, and a store with group commit on.
fn sqlite() -> Db {
    sqlite_with(&PoolSettings { max_size: 6, ..PoolSettings::default() })
}

/// [`sqlite`], its pool with `settings`.
fn sqlite_with(settings: &PoolSettings) -> Db {
    let db = dbs::fresh(Backend::Sqlite).expect("SQLite needs no server");
    let pool: Pool = db::pool_with(&db.url, settings).expect("pool");
    let mut conn = pool.get().expect("connection");
    conn.batch_execute("CREATE TABLE t (id TEXT PRIMARY KEY)").expect("table t");
    models::create_tables(&mut conn);
    db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
    drop(conn);
    let store = DieselStore::new(Tables::default());
    assert!(store.group_commit(pool.get().expect("the spare")), "group commit on a plain SQLite schema");
    Db { db, pool, store }
}

fn insert(conn: &mut DbConnection, id: &str) -> Result<(), SyncError> {
    diesel::sql_query("INSERT INTO t (id) VALUES (?)").bind::<Text, _>(id).execute(conn).map(drop).map_err(SyncError::database)
}

/// The ids in `t`, as a connection of its own sees them (committed only).
fn committed(db: &TestDb) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let rows: Vec<Id> = diesel::sql_query("SELECT id FROM t ORDER BY id").load(&mut dbs::connect(db)).expect("ids");
    rows.into_iter().map(|r| r.id).collect()
}

/// Waits until `n` writes queue for their turn.
fn queued(store: &DieselStore<DbConnection>, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while store.group_stats().expect("group commit is on").queued < n {
        assert!(Instant::now() < deadline, "no write queued");
        std::thread::yield_now();
    }
}

/// One write of [`chained`].
type Write<'a> = Box<dyn FnOnce(&mut DbConnection) -> Result<Vec<String>, SyncError> + Send + 'a>;

/// A write of one row of `t`.
fn write<'a>(id: &'a str) -> Write<'a> {
    Box::new(move |c| insert(c, id).map(|()| Vec::new()))
}

/// Runs `writes` so that they make one group: each begins once the one
/// before it ran, and each but the last holds its turn (after its own
/// code) until the next one queues. `returned(i)` is called as write `i`
/// returns. Their results, in order.
fn chained<'a>(
    pool: &'a Pool,
    store: &'a DieselStore<DbConnection>,
    writes: Vec<Write<'a>>,
    returned: &'a (dyn Fn(usize) + Sync),
) -> Vec<std::thread::Result<Result<Vec<String>, SyncError>>> {
    let last = writes.len() - 1;
    std::thread::scope(|s| {
        let mut threads = Vec::new();
        for (i, write) in writes.into_iter().enumerate() {
            let (ran, has_run) = mpsc::channel();
            threads.push(s.spawn(move || {
                let mut conn = pool.get().expect("connection");
                let result = store.transaction(&mut *conn, |c| {
                    let result = write(c);
                    ran.send(()).expect("the test waits");
                    if i < last {
                        queued(store, 1);
                    }
                    result
                });
                returned(i);
                result
            }));
            // (A write that panics drops its sender.)
            let _ = has_run.recv();
        }
        threads.into_iter().map(|t| t.join()).collect()
    })
}

fn quiet(_: usize) {}

#[test]
fn a_write_queued_behind_another_joins_its_transaction_and_both_return_once_committed() {
    let db = sqlite();
    let seen_inside: Write = Box::new(|c| {
        insert(c, "b")?;
        // The first write ended, but nothing is committed before the group is.
        Ok(committed(&db.db))
    });
    let [first, second]: [_; 2] = chained(&db.pool, &db.store, vec![write("a"), seen_inside], &quiet).try_into().expect("two");
    first.expect("first").expect("the first write");
    let seen_inside = second.expect("second").expect("the second write");
    assert!(seen_inside.is_empty(), "the first write was committed before its group: {seen_inside:?}");
    assert_eq!(committed(&db.db), ["a", "b"]);
    let stats = db.store.group_stats().expect("on");
    assert_eq!((stats.groups, stats.writes), (1, 2), "one COMMIT for both writes");
}

/// Whether `conn` has the temporary table `name` (one lives as long as its
/// connection: a mark of the connection).
fn has(conn: &mut DbConnection, name: &str) -> bool {
    diesel::sql_query(format!("SELECT 1 FROM {name}")).execute(conn).is_ok()
}

/// Every group runs on the writer (the spare), whose page cache the other
/// connections' writes do not empty, and each write leaves with its own
/// connection.
#[test]
fn every_group_runs_on_the_writer_and_each_write_leaves_with_its_own_connection() {
    let db = sqlite();
    let mut own = db.pool.get().expect("connection");
    diesel::sql_query("CREATE TEMP TABLE mine (x INTEGER)").execute(&mut *own).expect("mark");
    db.store
        .transaction(&mut *own, |c| {
            assert!(!has(c, "mine"), "the write runs on the writer, not on the connection it brought");
            diesel::sql_query("CREATE TEMP TABLE writer (x INTEGER)").execute(c).map_err(SyncError::database)?;
            insert(c, "a")
        })
        .expect("a write");
    assert!(has(&mut own, "mine") && !has(&mut own, "writer"), "the write left with its own connection");
    let mut other = db.pool.get().expect("another connection");
    let on_writer = db.store.transaction(&mut *other, |c| Ok::<_, SyncError>(has(c, "writer"))).expect("a write");
    assert!(on_writer, "the next group runs on the writer too");
    assert!(!has(&mut other, "writer"));
    // Both writes of a group run on it.
    let on: Write = Box::new(|c| insert(c, "b").map(|()| vec![has(c, "writer").to_string()]));
    let also: Write = Box::new(|c| insert(c, "c").map(|()| vec![has(c, "writer").to_string()]));
    for result in chained(&db.pool, &db.store, vec![on, also], &quiet) {
        assert_eq!(result.expect("no panic").expect("a write"), ["true"]);
    }
    assert_eq!(committed(&db.db), ["a", "b", "c"]);
}

/// A group that cannot begin (another process holds SQLite's write lock
/// past the busy timeout) is 503 and writes nothing; the write leaves with
/// its own connection, and the writer stays the store's.
#[test]
fn a_group_that_cannot_begin_is_unavailable_and_leaves_the_writer_in_place() {
    let db = sqlite_with(&PoolSettings { max_size: 6, sqlite_busy_timeout: Duration::from_millis(50), ..PoolSettings::default() });
    let mut own = db.pool.get().expect("connection");
    diesel::sql_query("CREATE TEMP TABLE mine (x INTEGER)").execute(&mut *own).expect("mark");
    let mark_writer = |c: &mut DbConnection| diesel::sql_query("CREATE TEMP TABLE writer (x INTEGER)").execute(c).map(drop);
    db.store.transaction(&mut *own, |c| mark_writer(c).map_err(SyncError::database)).expect("a write");
    let mut other_process = dbs::connect(&db.db);
    other_process.batch_execute("BEGIN IMMEDIATE").expect("the write lock");
    let err = db.store.transaction(&mut *own, |c| insert(c, "a")).expect_err("the write lock is taken");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(has(&mut own, "mine") && !has(&mut own, "writer"), "the write left with its own connection");
    other_process.batch_execute("ROLLBACK").expect("the lock given back");
    assert!(committed(&db.db).is_empty(), "nothing written");
    let on_writer = db.store.transaction(&mut *own, |c| insert(c, "b").map(|()| has(c, "writer"))).expect("a write");
    assert!(on_writer, "the next group runs on the writer");
    assert_eq!(committed(&db.db), ["b"]);
}

#[test]
fn a_failing_write_in_a_group_is_rolled_back_alone() {
    let db = sqlite();
    let taken: Write = Box::new(|c| {
        insert(c, "b")?;
        // The first write's row: a unique violation, which SQLite fails
        // only the statement for.
        insert(c, "a").map(|()| Vec::new())
    });
    let [first, second]: [_; 2] = chained(&db.pool, &db.store, vec![write("a"), taken], &quiet).try_into().expect("two");
    first.expect("first").expect("the first write commits");
    let err = second.expect("second").expect_err("a taken key");
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert_eq!(committed(&db.db), ["a"]);
    // A failing write that ends the group with nothing written by anyone.
    let mut conn = db.pool.get().expect("connection");
    let refused = db.store.transaction(&mut *conn, |c| {
        insert(c, "c")?;
        Err::<(), _>(SyncError::invalid_diff("refused by a rule"))
    });
    assert_eq!(refused.expect_err("refused").kind, ErrorKind::InvalidDiff);
    assert_eq!(committed(&db.db), ["a"]);
    assert_eq!(db.store.group_stats().map(|s| (s.groups, s.writes)), Some((1, 1)));
}

#[test]
fn a_commit_that_fails_fails_every_write_of_its_group_and_writes_nothing() {
    let db = sqlite();
    // A constraint checked only at COMMIT (made after group commit was
    // turned on, which refuses such a schema).
    deferred_constraint(&db);
    assert!(!DieselStore::<DbConnection>::new(Tables::default()).group_commit(db.pool.get().expect("spare")), "deferred constraints turn it off");
    let [first, second]: [_; 2] = chained(&db.pool, &db.store, vec![write("a"), orphan()], &quiet).try_into().expect("two");
    let first = first.expect("first").expect_err("its group's COMMIT failed");
    assert_eq!(first.kind.status(), 503, "the first write may be retried: {first}");
    second.expect("second").expect_err("its COMMIT failed");
    assert!(committed(&db.db).is_empty(), "nothing of a failed group is written");
    later_write_commits(&db, "d");
}

/// A write of one row of `t` and a child row without its parent: it fails
/// only at COMMIT (on a database with the deferred constraint).
fn orphan() -> Write<'static> {
    Box::new(|c| {
        insert(c, "b")?;
        c.batch_execute("INSERT INTO child (id, parent) VALUES ('c', 'nobody')").map_err(SyncError::database)?;
        Ok(Vec::new())
    })
}

fn deferred_constraint(db: &Db) {
    let mut conn = db.pool.get().expect("connection");
    conn.batch_execute(
        "CREATE TABLE parent (id TEXT PRIMARY KEY); \
         CREATE TABLE child (id TEXT PRIMARY KEY, parent TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .expect("deferred constraint");
}

#[test]
fn a_write_that_failed_on_what_its_group_wrote_is_503_when_the_group_fails() {
    let db = sqlite();
    deferred_constraint(&db);
    // The second write fails on the first one's row, which the failed
    // COMMIT then never writes: its error does not hold, a retry may pass.
    let writes = vec![write("a"), write("a"), orphan()];
    let [first, second, third]: [_; 3] = chained(&db.pool, &db.store, writes, &quiet).try_into().expect("three");
    for (which, result) in [("first", first), ("second", second)] {
        let err = result.expect(which).expect_err("its group failed");
        assert_eq!(err.kind.status(), 503, "{which}: {err}");
    }
    third.expect("third").expect_err("its COMMIT failed");
    assert!(committed(&db.db).is_empty());
    later_write_commits(&db, "d");
}

#[test]
fn a_write_that_panics_rolls_back_its_group_and_the_next_write_commits() {
    let db = sqlite();
    let panics: Write = Box::new(|c| {
        insert(c, "b")?;
        panic!("a bug in a write");
    });
    let [first, second]: [_; 2] = chained(&db.pool, &db.store, vec![write("a"), panics], &quiet).try_into().expect("two");
    let first = first.expect("first").expect_err("its group was rolled back");
    assert_eq!(first.kind.status(), 503, "{first}");
    assert!(second.is_err(), "the panic reaches the write's caller");
    assert!(committed(&db.db).is_empty());
    later_write_commits(&db, "c");
}

/// After a failed group, on a database with nothing in `t`: the next write
/// begins a group of its own, on a clean connection, and commits.
fn later_write_commits(db: &Db, id: &str) {
    let mut conn = db.pool.get().expect("connection");
    db.store.transaction(&mut *conn, |c| insert(c, id)).expect("a later write");
    assert_eq!(committed(&db.db), [id]);
}

/// Eight devices of four owners sync at once through the engine: every
/// diff is logged once, each owner's syncs have stamps of their own, and
/// the devices of an owner converge, however the writes were grouped.
#[test]
fn concurrent_syncs_through_group_commit_lose_nothing_and_converge() {
    let db = sqlite();
    let Db { db: file, pool, store } = db;
    let engine = Arc::new(Mobync::new(store, models::models()));
    let pool = Arc::new(pool);
    let rounds = 30;
    let threads: Vec<_> = (0..8)
        .map(|d| {
            let (engine, pool) = (engine.clone(), pool.clone());
            std::thread::spawn(move || {
                let owner = format!("owner{}", d % 4);
                let mut device = Device::new(format!("dev{d}"));
                for i in 0..rounds {
                    device.create("task", &format!("t{d}-{i}"), json!({"title": format!("{d}/{i}"), "done": false}), i);
                    let request = device.request(&owner);
                    let mut conn = pool.get().expect("connection");
                    let answer = engine.apply(&mut conn, request.logical_clock, request.diffs, &owner).expect("sync");
                    device.receive(&answer);
                }
                (owner, device)
            })
        })
        .collect();
    let mut devices: Vec<(String, Device)> = threads.into_iter().map(|t| t.join().expect("device")).collect();
    for (owner, device) in devices.iter_mut() {
        let request = device.request(owner);
        let answer = engine.apply(&mut pool.get().expect("connection"), request.logical_clock, request.diffs, owner).expect("sync");
        device.receive(&answer);
    }
    let mut conn = pool.get().expect("connection");
    for o in 0..4 {
        let owner = format!("owner{o}");
        let log = engine.store().diffs_between(&mut conn, &owner, 0, i64::MAX).expect("log");
        assert_eq!(log.len(), 2 * rounds as usize, "{owner}: every diff is logged once");
        let mut stamps: Vec<i64> = log.iter().map(|d| d.logical_clock).collect();
        stamps.dedup();
        assert_eq!(stamps, (0..log.len() as i64).collect::<Vec<_>>(), "{owner}: one stamp per sync");
        let mine: Vec<&Device> = devices.iter().filter(|(who, _)| *who == owner).map(|(_, d)| d).collect();
        assert_eq!(mine[0].rows(), mine[1].rows(), "{owner}'s devices converge");
        assert_eq!(mine[0].rows(), &models::rows(&mut conn, &owner));
    }
    let stats = engine.store().group_stats().expect("on");
    eprintln!("{} writes in {} groups", stats.writes, stats.groups);
    assert_eq!(stats.writes, 8 * rounds as u64, "every sync wrote once");
    drop(file);
}

/// The child of [`killed_between_joining_a_group_and_its_commit_loses_nothing_answered`]:
/// does nothing unless the parent runs it.
#[test]
fn group_commit_crash_child() {
    let Ok(url) = std::env::var("MOBYNC_GROUP_CRASH_DB") else { return };
    let pool: Pool = db::pool_with(&url, &PoolSettings { max_size: 4, ..PoolSettings::default() }).expect("pool");
    let store = DieselStore::new(Tables::default());
    assert!(store.group_commit(pool.get().expect("spare")));
    let engine = Mobync::new(store, models::models());
    let owner = "alice".to_string();
    let create = |id: &str, at: i64| Diff::new(id, Create, "task", json!({"id": id, "title": id, "done": false})).at(0, at);
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).expect("stdout");
    };
    // Syncs answered before the crash, each committed on its own.
    for n in 0..3 {
        let id = format!("answered-{n}");
        engine.apply(&mut pool.get().expect("connection"), n, vec![create(&id, n)], &owner).expect("a sync");
        say(format!("answered {id}"));
    }
    // Two syncs in one group: the first holds its turn until the second
    // queues, which then stops before the group's COMMIT, where the
    // parent kills the process.
    let sync_in = |conn: &mut DbConnection, id: &str| -> Result<(), SyncError> {
        let mut answer = SyncResponse::ok(0, Vec::new());
        engine.run(conn, Request::within_transaction(&owner, vec![create(id, 10)]), &mut answer, &mut Report::default())
    };
    let first: Write = Box::new(|c| sync_in(c, "grouped-first").map(|()| Vec::new()));
    let second: Write = Box::new(|c| {
        sync_in(c, "grouped-second")?;
        say("in a group before its commit".into());
        loop {
            std::thread::park();
        }
    });
    chained(&pool, engine.store(), vec![first, second], &|i| say(format!("answered grouped-{i}")));
    unreachable!("the parent kills this process before the group's commit");
}

#[test]
fn killed_between_joining_a_group_and_its_commit_loses_nothing_answered() {
    let db = sqlite();
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["group_commit_crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("MOBYNC_GROUP_CRASH_DB", &db.db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child");
    let mut answered = Vec::new();
    let lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let mut in_group = false;
    // (libtest may start the child's first line with the test's name.)
    for line in lines.map_while(Result::ok) {
        if let Some((_, id)) = line.split_once("answered ") {
            answered.push(id.to_owned());
        }
        if line.ends_with("in a group before its commit") {
            in_group = true;
            break;
        }
    }
    assert!(in_group, "the child ended before its group's commit: {answered:?}");
    child.kill().expect("SIGKILL");
    child.wait().expect("the child ended");
    assert_eq!(answered, ["answered-0", "answered-1", "answered-2"], "nothing of the group was answered");
    // Restarted: the file is whole, what was answered is there, nothing of
    // the group is, in the log or in the rows.
    let mut conn = dbs::connect(&db.db);
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut conn).expect("integrity check");
    assert_eq!(check.iter().map(|c| c.integrity_check.as_str()).collect::<Vec<_>>(), ["ok"]);
    let log = db.store.diffs_between(&mut conn, "alice", 0, i64::MAX).expect("log");
    assert_eq!(log.iter().map(|d| (d.id.as_str(), d.logical_clock)).collect::<Vec<_>>(), [("answered-0", 0), ("answered-1", 1), ("answered-2", 2)]);
    let rows = models::rows(&mut conn, "alice");
    let mut ids: Vec<&str> = rows.keys().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["answered-0", "answered-1", "answered-2"]);
    // And the next sync (a device's retry of the lost one) is applied.
    let engine = Mobync::new(db.store, models::models());
    let retry = Diff::new("grouped-second", Create, "task", json!({"id": "grouped-second", "title": "again", "done": false})).at(3, 20);
    let answer = engine.apply(&mut db.pool.get().expect("connection"), 3, vec![retry], &"alice".to_string()).expect("the retry");
    assert_eq!(answer.logical_clock, 4);
}
