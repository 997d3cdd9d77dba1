//! The engine over the Diesel store, on every backend: the worked example,
//! the convergence property, failed syncs that change nothing, and
//! concurrent syncs of one owner.

use mobync::client::{Device, Rows};
use mobync::db::{self, DbConnection, DieselStore, Pool, PoolSettings, Tables};
use mobync::testing::{self, Server};
use mobync::{Diff, ErrorKind, Mobync, Models, OperationType::*, Store, SyncError, SyncRequest, SyncResponse};
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use std::sync::Arc;

/// The engine with a pool of its database.
struct Engine {
    engine: Mobync<DieselStore<DbConnection>, Models>,
    pool: Pool,
}

impl Engine {
    /// One sync for `owner`, on a connection of the pool.
    fn apply(&self, cursor: i64, diffs: Vec<Diff>, owner: &str) -> Result<SyncResponse, SyncError> {
        let mut conn = self.pool.get().expect("a connection");
        self.engine.apply(&mut conn, cursor, diffs, &owner.to_owned())
    }
}

fn engine(db: &TestDb) -> Engine {
    let pool = db::pool_with(&db.url, &PoolSettings { max_size: 4, ..PoolSettings::default() }).expect("pool");
    let mut conn = pool.get().expect("connection");
    models::create_tables(&mut conn);
    db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
    drop(conn);
    Engine { engine: Mobync::new(DieselStore::new(Tables::default()), models::models()), pool }
}

struct DbServer<'a>(&'a Engine, Option<&'a TestDb>);

impl Server for DbServer<'_> {
    fn sync(&mut self, token: &str, request: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let mut conn = self.0.pool.get().expect("a connection");
        self.0.engine.sync(&mut conn, request.logical_clock, request.diffs.clone(), request.paging(), &token.to_owned())
    }

    fn rows(&mut self, token: &str) -> Rows {
        let mut conn = self.0.pool.get().expect("connection");
        models::rows(&mut conn, token)
    }

    fn state(&mut self) -> String {
        models::dump(self.1.expect("this DbServer was made without its database")).join("\n")
    }

    fn compact(&mut self, token: &str, pick: u8) -> bool {
        let mut conn = self.0.pool.get().expect("connection");
        let store = self.0.engine.store();
        let Some(marks) = store.marks(&mut *conn, token).expect("marks") else { return false };
        let below = testing::horizon_of(pick, marks.clock);
        self.0.engine.compact(&mut *conn, token, Some(below)).expect("compaction").is_some()
    }
}

fn each_backend(test: impl Fn(&TestDb)) {
    for backend in dbs::backends() {
        if let Some(db) = dbs::fresh(backend) {
            test(&db);
        }
    }
}

#[test]
fn worked_example_on_every_backend() {
    each_backend(|db| {
        let engine = engine(db);
        testing::worked_example(&mut DbServer(&engine, None), "alice");
        testing::worked_example(&mut DbServer(&engine, None), "bob");
    });
}

#[test]
fn devices_converge_on_every_backend() {
    each_backend(|db| {
        let engine = engine(db);
        let cases = if db.backend() == Backend::Sqlite { 48 } else { 24 };
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let owners = std::sync::atomic::AtomicUsize::new(0);
        let compactions = std::sync::atomic::AtomicUsize::new(0);
        runner
            .run(&testing::plans(40), |plan| {
                let run = owners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let tokens: Vec<String> = (0..3).map(|o| format!("owner{run}x{o}")).collect();
                let ran = testing::converge(&mut DbServer(&engine, Some(db)), &tokens, &plan);
                compactions.fetch_add(ran, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{:?}: {e}", db.backend()));
        // The runs compact owners' logs at random horizons between syncs.
        assert!(compactions.into_inner() > 0, "{:?}: no compaction ran", db.backend());
    });
}

fn task(id: &str, row: &str, title: &str) -> Diff {
    Diff::new(id, Create, "task", json!({"id": row, "title": title, "done": false})).at(1, 10)
}

#[test]
fn a_large_sync_is_logged_in_order_and_its_retry_applies_nothing_again_on_every_backend() {
    // 300 diffs: more than one statement of binds can carry (PostgreSQL
    // sends the log's rows and the known ids as one JSON array each, the
    // others chunks of 200).
    each_backend(|db| {
        let engine = engine(db);
        let diffs: Vec<Diff> = (0..300).map(|i| task(&format!("d{i:03}"), &format!("r{i:03}"), &format!("t \"{i}\" é"))).collect();
        let first = engine.apply(0, diffs.clone(), "ada").unwrap_or_else(|e| panic!("{:?}: {e}", db.backend()));
        assert_eq!((first.logical_clock, first.diffs.len()), (1, 0), "{:?}", db.backend());
        let mut conn = engine.pool.get().expect("connection");
        let logged = engine.engine.store().diffs_between(&mut *conn, "ada", 0, 1).expect("log");
        drop(conn);
        let ids: Vec<&str> = logged.iter().map(|d| d.id.as_str()).collect();
        let sent: Vec<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, sent, "{:?}: the log keeps the request's order", db.backend());
        assert_eq!(logged[7].data, diffs[7].data, "{:?}", db.backend());
        assert!(logged.iter().all(|d| d.owner == "ada" && d.logical_clock == 0), "{:?}", db.backend());
        // The retry: every id is known, nothing is applied or stamped again.
        let retry = engine.apply(0, diffs.clone(), "ada").unwrap_or_else(|e| panic!("{:?}: {e}", db.backend()));
        assert_eq!((retry.logical_clock, retry.diffs.len()), (1, 0), "{:?}", db.backend());
        // Another device gets all of them, in order.
        let other = engine.apply(0, Vec::new(), "ada").expect("pull");
        let got: Vec<&str> = other.diffs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(got, sent, "{:?}", db.backend());
    });
}

#[test]
fn a_failed_sync_leaves_tables_log_and_clock_byte_identical() {
    each_backend(|db| {
        let engine = engine(db);
        let mut a = Device::new("A");
        a.create("task", "t1", json!({"title": "one", "done": false}), 5);
        a.create("project", "p1", json!({"name": "home"}), 6);
        testing::sync(&mut DbServer(&engine, None), "alice", &mut a);
        let ok = task("ok", "t2", "fine");
        let update = |id: &str, data| Diff::new(id, Update, "task", data).at(1, 11);
        let cases: Vec<(&str, Vec<Diff>, ErrorKind)> = vec![
            ("alice", vec![ok.clone(), task("bad", "t3", "   ")], ErrorKind::Forbidden),
            ("alice", vec![ok.clone(), update("blank", json!({"id": "t1", "title": " "}))], ErrorKind::Forbidden),
            (
                "alice",
                vec![update("u1", json!({"id": "t1", "done": true})), update("u2", json!({"id": "t1", "title": ""}))],
                ErrorKind::Forbidden,
            ),
            ("alice", vec![ok.clone(), update("u", json!({"id": "t1", "colour": "red"}))], ErrorKind::InvalidDiff),
            ("alice", vec![ok.clone(), update("u", json!({"id": "t1", "done": "yes"}))], ErrorKind::InvalidDiff),
            ("alice", vec![ok.clone(), update("u", json!({"id": "t1", "owner": "bob"}))], ErrorKind::InvalidDiff),
            ("alice", vec![ok.clone(), Diff::new("c", Create, "task", json!({"id": "t4", "title": "x"}))], ErrorKind::InvalidDiff),
            ("alice", vec![ok.clone(), Diff::new("c", Create, "tsk", json!({"id": "t4"}))], ErrorKind::InvalidDiff),
            ("bob", vec![task("b1", "t9", "mine"), update("u", json!({"id": "t1", "done": true}))], ErrorKind::InvalidDiff),
            ("bob", vec![task("b1", "t9", "mine"), Diff::new("d", Delete, "task", json!({"id": "t1"}))], ErrorKind::InvalidDiff),
            ("bob", vec![task("b1", "t1", "taken")], ErrorKind::InvalidDiff),
            ("bob", vec![task("b1", "t8", "free"), task("b2", "t1", "taken"), task("b3", "t7", "free")], ErrorKind::InvalidDiff),
            (
                "alice",
                vec![ok.clone(), update("u", json!({"id": "t1", "done": true})), Diff::new("p", Create, "project", json!({"id": "p2", "name": "boom"}))],
                ErrorKind::Internal,
            ),
        ];
        for (owner, diffs, kind) in cases {
            let before = models::dump(db);
            let cursor = if owner == "alice" { 1 } else { 0 };
            let err = engine.apply(cursor, diffs.clone(), owner).expect_err("must fail");
            assert_eq!(err.kind, kind, "{:?} {diffs:?}: {err}", db.backend());
            assert_eq!(models::dump(db), before, "{:?}: a failed sync changed the database", db.backend());
        }
        // A run of creates is inserted at once, and a taken id still names its diff.
        let run = vec![task("r1", "t8", "free"), task("r2", "t1", "taken"), task("r3", "t7", "free")];
        let err = engine.apply(0, run, "bob").expect_err("t1 is alice's");
        assert_eq!((err.kind, err.diff_id.as_deref()), (ErrorKind::InvalidDiff, Some("r2")), "{:?}", db.backend());
        let run = (0..3).map(|i| task(&format!("n{i}"), &format!("bob-{i}"), "new")).collect();
        engine.apply(0, run, "bob").expect("a run of creates");
        assert_eq!(models::rows(&mut dbs::connect(db), "bob").len(), 3, "{:?}", db.backend());
        // The rule sees each row as the sync's updates leave it, in order.
        let answer = engine
            .apply(1, vec![update("v1", json!({"id": "t1", "title": "renamed"})), update("v2", json!({"id": "t1", "done": true}))], "alice")
            .expect("two updates of one row");
        assert_eq!(answer.logical_clock, 2);
        let rows = models::rows(&mut dbs::connect(db), "alice");
        assert_eq!(rows[&("task".to_string(), "t1".to_string())], *json!({"id": "t1", "title": "renamed", "done": true}).as_object().unwrap());
        // A foreign row and a missing row are told apart by nothing.
        let foreign = engine.apply(0, vec![update("u", json!({"id": "t1", "done": false}))], "bob").unwrap_err();
        let missing = engine.apply(0, vec![update("u", json!({"id": "nope", "done": false}))], "bob").unwrap_err();
        assert_eq!(foreign.message.replace("t1", "X"), missing.message.replace("nope", "X"));
    });
}

#[test]
fn concurrent_syncs_of_one_owner_never_share_a_clock_and_lose_nothing() {
    each_backend(|db| {
        let engine = Arc::new(engine(db));
        let rounds = 25;
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let engine = engine.clone();
                std::thread::spawn(move || {
                    let mut device = Device::new(format!("dev{t}"));
                    for i in 0..rounds {
                        device.create("task", &format!("t{t}-{i}"), json!({"title": format!("{t}/{i}"), "done": false}), i);
                        testing::sync(&mut DbServer(&engine, None), "alice", &mut device);
                    }
                    device
                })
            })
            .collect();
        let mut devices: Vec<Device> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
        for device in devices.iter_mut() {
            testing::sync(&mut DbServer(&engine, None), "alice", device);
        }
        let mut conn = engine.pool.get().expect("connection");
        let log = {
            use mobync::Store;
            engine.engine.store().diffs_between(&mut conn, "alice", 0, i64::MAX).expect("log")
        };
        assert_eq!(log.len(), 2 * rounds as usize, "{:?}: every diff is logged once", db.backend());
        let mut stamps: Vec<i64> = log.iter().map(|d| d.logical_clock).collect();
        stamps.dedup();
        assert_eq!(stamps.len(), log.len(), "{:?}: each sync had its own clock value", db.backend());
        assert_eq!(stamps, (0..log.len() as i64).collect::<Vec<_>>());
        assert_eq!(devices[0].rows(), devices[1].rows());
        assert_eq!(devices[0].rows().len(), 2 * rounds as usize);
    });
}

/// Every connection of the engine gives up on a lock after 3 s, so that a
/// lock the engine should not take fails the test instead of hanging it.
#[derive(Debug)]
struct LockTimeout;

impl diesel::r2d2::CustomizeConnection<DbConnection, diesel::r2d2::Error> for LockTimeout {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        let sql = match conn.dialect() {
            mobync::db::Dialect::Postgres => "SET lock_timeout = '3s'",
            mobync::db::Dialect::Mysql => "SET SESSION innodb_lock_wait_timeout = 3",
            mobync::db::Dialect::Sqlite => return Ok(()),
        };
        conn.batch_execute(sql).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[test]
fn a_locked_owner_waits_for_its_clock_and_does_not_block_another_owner() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    each_backend(|db| {
        if db.backend() == Backend::Sqlite {
            return; // SQLite has one writer at a time by design
        }
        let mut engine = engine(db);
        engine.pool = diesel::r2d2::Pool::builder()
            .max_size(4)
            .connection_customizer(Box::new(LockTimeout))
            .build(mobync::db::Manager::new(db.url.clone()))
            .expect("a pool with a lock timeout");
        let engine = Arc::new(engine);
        for owner in ["alice", "bob"] {
            engine.apply(0, vec![task(&format!("{owner}-0"), &format!("{owner}-r0"), "x")], owner).expect("first sync");
        }
        // Another process syncs alice: it holds her clock row, stamps a diff
        // with her clock (1) and moves it to 2, not yet committed.
        let mut holder = dbs::connect(db);
        let clock = db.dialect().quote("utc_timestamp");
        holder
            .batch_execute(&format!(
                "BEGIN; SELECT logical_clock FROM diffs_clocks WHERE owner = 'alice' FOR UPDATE; \
                 INSERT INTO diffs (id, owner, logical_clock, {clock}, {ty}, model, json_data, seq) \
                 VALUES ('other', 'alice', 1, 5, 'create', 'task', '{{\"id\":\"alice-other\",\"title\":\"o\",\"done\":false}}', 0); \
                 INSERT INTO tasks (id, owner, title, done) VALUES ('alice-other', 'alice', 'o', false); \
                 UPDATE diffs_clocks SET logical_clock = 2 WHERE owner = 'alice';",
                ty = db.dialect().quote("type"),
            ))
            .expect("hold alice's clock");

        // Bob is not held up (a lock of bob's clock, or of a whole table,
        // would fail here after the lock timeout rather than hang).
        let started = Instant::now();
        engine.apply(1, vec![task("bob-1", "bob-r1", "y")], "bob").expect("bob syncs");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}: bob waited for alice's lock", db.backend());

        // Alice's own sync waits for the holder (seen on the server, not
        // guessed with a sleep), then stamps after it.
        let waiting = {
            let engine = engine.clone();
            std::thread::spawn(move || engine.apply(1, vec![task("alice-1", "alice-r1", "z")], "alice"))
        };
        if !dbs::wait_for_lock_waiter(db, Duration::from_secs(10)) {
            panic!("{:?}: alice's sync never waited for her clock: {:?}", db.backend(), waiting.join());
        }
        holder.batch_execute("COMMIT").expect("release");
        let answer = waiting.join().expect("alice's thread").expect("alice syncs");
        assert_eq!(answer.logical_clock, 3, "{:?}: alice's sync was stamped 2, after the holder's 1", db.backend());
        assert_eq!(answer.diffs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["other"]);
        let mut conn = engine.pool.get().expect("connection");
        let log = {
            use mobync::Store;
            engine.engine.store().diffs_between(&mut conn, "alice", 0, i64::MAX).expect("log")
        };
        let stamps: Vec<(&str, i64)> = log.iter().map(|d| (d.id.as_str(), d.logical_clock)).collect();
        assert_eq!(stamps, [("alice-0", 0), ("other", 1), ("alice-1", 2)], "{:?}", db.backend());
    });
}

/// An engine of its own on `db` (its own store, like another process).
fn engine_with(db: &TestDb, f: impl FnOnce(Mobync<DieselStore<DbConnection>, Models>) -> Mobync<DieselStore<DbConnection>, Models>) -> Engine {
    let Engine { engine, pool } = engine(db);
    Engine { engine: f(engine), pool }
}

#[test]
fn a_cursor_older_than_the_purge_horizon_is_410_and_changes_nothing_on_every_backend() {
    each_backend(|db| {
        let engine = engine(db);
        let update = |id: &str, data| Diff::new(id, Update, "task", data).at(1, 20);
        engine.apply(0, vec![task("c1", "t1", "one"), task("c2", "t2", "two")], "alice").expect("creates");
        engine.apply(1, vec![Diff::new("x1", Delete, "task", json!({"id": "t1"})).at(1, 30)], "alice").expect("delete");
        engine.apply(2, vec![update("u2", json!({"id": "t2", "title": "two!"}))], "alice").expect("update");
        let mut conn = engine.pool.get().expect("connection");
        let done = engine.engine.compact(&mut conn, "alice", None).expect("compaction").expect("alice is known");
        assert_eq!((done.horizon, done.entries_before, done.entries_after), (3, 4, 2), "{:?}", db.backend());
        let purged = engine.engine.purge_tombstones(&mut conn, "alice", 4);
        assert_eq!(purged.expect_err("above the horizon").kind, ErrorKind::MalformedRequest);
        assert_eq!(engine.engine.purge_tombstones(&mut conn, "alice", 3).expect("purge"), Some((3, 1)));
        drop(conn);
        for cursor in [1, 2] {
            let before = models::dump(db);
            let err = engine.apply(cursor, vec![task("late", "t9", "late")], "alice").expect_err("too old");
            assert_eq!((err.kind, err.kind.status()), (ErrorKind::ResetRequired, 410), "{:?}: {err}", db.backend());
            assert_eq!(models::dump(db), before, "{:?}: a 410 changed something", db.backend());
        }
        // A device starting afresh, and one past the purge, are answered.
        let fresh = engine.apply(0, vec![], "alice").expect("cursor 0");
        assert_eq!(fresh.diffs.len(), 1);
        assert_eq!((fresh.diffs[0].op, fresh.diffs[0].data["title"].clone()), (Create, json!("two!")));
        assert!(engine.apply(3, vec![], "alice").expect("cursor 3").diffs.is_empty());
    });
}

#[test]
fn a_device_clock_a_year_ahead_cannot_override_a_later_edit_on_every_backend() {
    const NOW: i64 = 1_800_000_000_000;
    const YEAR: i64 = 365 * 24 * 3600 * 1000;
    each_backend(|db| {
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(NOW));
        let wall = clock.clone();
        let engine = engine_with(db, |e| e.with_wall_clock(Arc::new(move || wall.load(std::sync::atomic::Ordering::SeqCst))));
        let (mut ahead, mut right) = (Device::new("ahead"), Device::new("right"));
        ahead.create("task", "t1", json!({"title": "first", "done": false}), NOW + YEAR);
        testing::sync(&mut DbServer(&engine, None), "alice", &mut ahead);
        testing::sync(&mut DbServer(&engine, None), "alice", &mut right);
        ahead.update("task", "t1", json!({"title": "from the future"}), NOW + YEAR + 1);
        testing::sync(&mut DbServer(&engine, None), "alice", &mut ahead);
        clock.store(NOW + 60_000, std::sync::atomic::Ordering::SeqCst);
        right.update("task", "t1", json!({"title": "a minute later"}), NOW + 60_000);
        testing::sync(&mut DbServer(&engine, None), "alice", &mut right);
        for device in [&mut ahead, &mut right] {
            testing::sync(&mut DbServer(&engine, None), "alice", device);
        }
        let rows = DbServer(&engine, None).rows("alice");
        assert_eq!(rows[&("task".to_string(), "t1".to_string())]["title"], json!("a minute later"), "{:?}", db.backend());
        assert_eq!(ahead.rows(), &rows);
        // Stored and sent on with the server's time.
        let mut conn = engine.pool.get().expect("connection");
        let log = engine.engine.store().diffs_between(&mut conn, "alice", 0, i64::MAX).expect("log");
        assert_eq!(log.iter().map(|d| d.utc_timestamp).collect::<Vec<_>>(), vec![NOW, NOW, NOW + 60_000]);
    });
}

#[test]
fn two_compactions_of_one_owner_at_once_beside_syncs_lose_nothing_on_every_backend() {
    each_backend(|db| {
        let engine = engine(db);
        let mut phone = Device::new("phone");
        let mut now = 0;
        for round in 0..40 {
            for row in 0..10 {
                now += 1;
                if round == 0 {
                    phone.create("task", &format!("t{row}"), json!({"title": "new", "done": false}), now);
                } else {
                    phone.update("task", &format!("t{row}"), json!({"title": format!("r{round}")}), now);
                }
            }
            testing::sync(&mut DbServer(&engine, None), "alice", &mut phone);
        }
        let expected = DbServer(&engine, None).rows("alice");
        // Two more engines with pools of their own, as two processes.
        let others: Vec<Engine> = (0..2)
            .map(|_| Engine {
                engine: Mobync::new(DieselStore::new(Tables::default()), models::models()),
                pool: db::pool_with(&db.url, &PoolSettings { max_size: 1, ..PoolSettings::default() }).expect("pool"),
            })
            .collect();
        std::thread::scope(|s| {
            for other in &others {
                s.spawn(move || {
                    let mut conn = other.pool.get().expect("connection");
                    other.engine.compact(&mut conn, "alice", None).expect("compaction").expect("alice is known")
                });
            }
            // Syncs of the owner go on meanwhile.
            let mut tablet = Device::new("tablet");
            for _ in 0..5 {
                testing::sync(&mut DbServer(&engine, None), "alice", &mut tablet);
            }
            assert_eq!(tablet.rows(), &expected);
        });
        let mut conn = engine.pool.get().expect("connection");
        let marks = engine.engine.store().marks(&mut conn, "alice").expect("marks").expect("alice");
        assert_eq!((marks.horizon, marks.clock), (40, 40), "{:?}", db.backend());
        assert_eq!(engine.engine.store().entries(&mut conn, "alice").expect("entries"), (0, 10));
        let mut laptop = Device::new("laptop");
        let answer = testing::sync(&mut DbServer(&engine, None), "alice", &mut laptop);
        assert_eq!(answer.diffs.len(), 10);
        assert_eq!(laptop.rows(), &expected, "{:?}", db.backend());
    });
}
