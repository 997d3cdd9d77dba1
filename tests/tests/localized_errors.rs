//! Database errors answer the same statuses whatever the language of the
//! server's messages: PostgreSQL and MariaDB sessions whose `lc_messages`
//! is German, which mobync cannot pin back to English (on PostgreSQL a role
//! that may not set it; on MariaDB a session set to German after mobync's
//! pool opened it). Connections killed under traffic (`pg_terminate_backend`,
//! `KILL`) are 503 and are not reused, a lock timeout on the owner's clock
//! is 503, a unique violation 422, a value too long for its column 422 on
//! MariaDB (its error number). On PostgreSQL, whose SQLSTATE Diesel does not
//! expose, that last one is 500 in a German session (never a wrong 422 or
//! 503) and 422 where mobync pins the session to `C`.
//!
//! PostgreSQL runs as a cluster of the test's own, started after `.ci/run`
//! generated the `de_DE.UTF-8` locale (a server started before the locale
//! existed cannot translate into it). Each test checks that the server
//! does answer in German, and fails (under CI) if it does not.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, CustomizeConnection};
use mobync::db::{self, DbConnection, DieselStore, LogConnection, Pool, Tables};
use mobync::{Diff, Mobync, Models, OperationType::*, SyncError, SyncResponse};
use mobync_tests::cluster::Cluster;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A database whose sessions answer in German. Drops the database before
/// the cluster it is on.
struct German {
    db: TestDb,
    /// The URL mobync connects with (PostgreSQL: a role that may not set
    /// `lc_messages`).
    url: String,
    _cluster: Option<Cluster>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Fails the test (or skips it outside CI) when the server cannot speak
/// German: the point of these tests would be missed silently.
fn german_or_skip(what: &str, result: Result<(), String>) -> bool {
    match result {
        Ok(()) => true,
        Err(err) if dbs::in_ci() => panic!("{what}: the server does not answer in German ({err}); .ci/run generates the de_DE.UTF-8 locale"),
        Err(err) => {
            eprintln!("SKIPPED {what}: the server does not answer in German: {err}");
            false
        }
    }
}

/// That `conn`'s session answers in German: a missing table's message.
fn answers_in_german(conn: &mut DbConnection) -> Result<(), String> {
    match conn.batch_execute("SELECT * FROM mobync_keine_tabelle") {
        Ok(()) => Err("a missing table was found".into()),
        Err(err) if err.to_string().contains("existiert nicht") => Ok(()),
        Err(err) => Err(format!("the message is not German: {err}")),
    }
}

/// A fresh database on a PostgreSQL cluster of the test's own, owned by a
/// role of its own that is no superuser, with `lc_messages` German for it.
fn postgres(test: &str) -> Option<German> {
    let cluster = Cluster::start_or_skip(test)?;
    let name = unique("mobync_de");
    let db = TestDb::create(Backend::Postgres, &cluster.admin_url(), name.clone()).expect("a database on the cluster");
    let mut admin = DbConnection::open(&cluster.admin_url()).expect("the cluster");
    let set = admin.batch_execute(&format!(
        "CREATE ROLE {name} LOGIN; ALTER DATABASE {name} OWNER TO {name}; ALTER DATABASE {name} SET lc_messages = 'de_DE.UTF-8';"
    ));
    if !german_or_skip(test, set.map_err(|e| e.to_string())) {
        return None;
    }
    let url = db.url.replacen("postgres://postgres@", &format!("postgres://{name}@"), 1);
    let mut conn = DbConnection::open(&url).expect("the role's connection");
    if !german_or_skip(test, answers_in_german(&mut conn)) {
        return None;
    }
    Some(German { url, db, _cluster: Some(cluster) })
}

/// A fresh MariaDB database; its sessions are set to German by [`Session`].
fn mariadb() -> Option<German> {
    let db = dbs::fresh(Backend::Mysql)?;
    Some(German { url: db.url.clone(), db, _cluster: None })
}

/// What every pooled session runs after mobync's pool opened it (and
/// pinned its language where it could): German messages on MariaDB, and a
/// lock timeout of 1 s.
#[derive(Debug)]
struct Session;

impl CustomizeConnection<DbConnection, r2d2::Error> for Session {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        let sql = match LogConnection::dialect(conn) {
            db::Dialect::Postgres => "SET lock_timeout = '1s'",
            db::Dialect::Mysql => "SET lc_messages = 'de_DE'; SET SESSION innodb_lock_wait_timeout = 1",
            db::Dialect::Sqlite => return Ok(()),
        };
        conn.batch_execute(sql).map_err(r2d2::Error::QueryError)
    }
}

/// The engine with a pool of at most 3 German sessions, as the fairing
/// runs it: a failed sync settles its connection before the pool gets it
/// back.
struct Engine {
    engine: Mobync<DieselStore<DbConnection>, Models>,
    pool: Pool,
}

impl Engine {
    fn new(german: &German, test: &str) -> Engine {
        let pool = diesel::r2d2::Pool::builder()
            .max_size(3)
            .connection_timeout(Duration::from_secs(20))
            .connection_customizer(Box::new(Session))
            .build(db::Manager::new(german.url.clone()))
            .expect("a pool");
        let mut conn = pool.get().expect("a connection");
        assert!(answers_in_german(&mut conn).is_ok(), "{test}: mobync's pooled sessions must answer in German here");
        assert!(db::messages_language(&mut *conn).expect("the language").is_some(), "{test}: the ignition check warns");
        models::create_tables(&mut conn);
        db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
        drop(conn);
        Engine { engine: Mobync::new(DieselStore::new(Tables::default()), models::models()), pool }
    }

    fn sync(&self, cursor: i64, diffs: Vec<Diff>, owner: &str) -> Result<SyncResponse, SyncError> {
        let mut conn = self.pool.get().expect("a connection");
        self.engine.apply(&mut conn, cursor, diffs, &owner.to_owned()).map_err(|err| db::settle(&mut *conn, err))
    }

    fn batch(&self, sql: &str) {
        self.pool.get().expect("a connection").batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn task(id: &str, row: &str, title: &str) -> Diff {
    Diff::new(id, Create, "task", json!({"id": row, "title": title, "done": false})).at(0, 10)
}

fn status(result: &Result<SyncResponse, SyncError>) -> u16 {
    result.as_ref().map_or_else(|err| err.kind.status(), |_| 200)
}

/// A unique violation (of another column than the id) is 422 naming the diff.
fn unique_violation_is_422(german: &German, test: &str) {
    let engine = Engine::new(german, test);
    let prefix = if german.db.backend() == Backend::Mysql { "(100)" } else { "" };
    engine.batch(&format!("CREATE UNIQUE INDEX tasks_title ON tasks (title{prefix})"));
    engine.sync(0, vec![task("d1", "t1", "gleich")], "alice").expect("the first title");
    let err = engine.sync(0, vec![task("d2", "t2", "gleich")], "bob").expect_err("a taken title");
    assert_eq!((err.kind.status(), err.diff_id.as_deref()), (422, Some("d2")), "{test}: {err}");
    engine.sync(0, vec![task("d3", "t3", "anders")], "bob").expect("the connection was kept");
}

/// A lock on the owner's clock not had within the lock timeout is 503, and
/// the connection stays in use.
fn a_lock_timeout_is_503(german: &German, test: &str) {
    let engine = Engine::new(german, test);
    engine.sync(0, vec![task("d1", "t1", "eins")], "alice").expect("alice's clock row");
    let mut holder = DbConnection::open(&german.url).expect("another session");
    holder.batch_execute("BEGIN; SELECT logical_clock FROM diffs_clocks WHERE owner = 'alice' FOR UPDATE;").expect("hold alice's clock");
    let started = Instant::now();
    let err = engine.sync(1, vec![task("d2", "t2", "zwei")], "alice").expect_err("alice's clock is held");
    assert_eq!(err.kind.status(), 503, "{test}: {err} ({:?})", err.detail());
    assert!(started.elapsed() < Duration::from_secs(10), "{test}: the lock timeout ended the wait");
    holder.batch_execute("ROLLBACK").expect("release");
    engine.sync(1, vec![task("d2", "t2", "zwei")], "alice").expect("alice syncs once her clock is free");
}

/// A value longer than its column: 422 on MariaDB (error 1406); 500 on
/// PostgreSQL in a session mobync could not pin (no SQLSTATE reaches it):
/// never a 503 nor a 200.
fn a_value_too_long(german: &German, test: &str) {
    let engine = Engine::new(german, test);
    let alter = match german.db.backend() {
        Backend::Mysql => "ALTER TABLE tasks MODIFY title VARCHAR(5) NOT NULL",
        _ => "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(5)",
    };
    engine.batch(alter);
    let err = engine.sync(0, vec![task("d1", "t1", "viel zu lang")], "alice").expect_err("too long");
    let expected = if german.db.backend() == Backend::Mysql { 422 } else { 500 };
    assert_eq!(err.kind.status(), expected, "{test}: {err} ({:?})", err.detail());
    engine.sync(0, vec![task("d2", "t2", "kurz")], "alice").expect("the connection was kept");
}

/// Kills every session of `german`'s database but its own (through the
/// cluster's superuser on PostgreSQL, root on MariaDB); how many it killed.
fn kill_all(german: &German, admin: &mut DbConnection) -> usize {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let name = german.db.name();
    match german.db.backend() {
        Backend::Postgres => {
            // Materialized first: a plain WHERE may call the function on any
            // row before filtering, this session's too.
            let sql = format!(
                "WITH them AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()) \
                 SELECT CAST(pid AS BIGINT) AS n FROM them WHERE pg_terminate_backend(pid)"
            );
            diesel::sql_query(sql).load::<Id>(admin).map(|killed| killed.len()).unwrap_or_else(|e| panic!("{e}"))
        }
        _ => {
            let sql = format!(
                "SELECT CAST(ID AS SIGNED) AS n FROM information_schema.PROCESSLIST WHERE DB = '{name}' AND ID <> CONNECTION_ID()"
            );
            let ids = diesel::sql_query(sql).load::<Id>(admin).unwrap_or_default();
            ids.iter().filter(|id| admin.batch_execute(&format!("KILL CONNECTION {}", id.n)).is_ok()).count()
        }
    }
}

/// Three owners sync without pause while every session of the database is
/// killed again and again: each failed sync is 503 (none 500), some were
/// (the kills hit), and once the killing stops every owner syncs again
/// (the pool dropped the dead connections instead of handing them out).
fn killed_connections_are_503_and_not_reused(german: &German, test: &str) {
    let engine = Arc::new(Engine::new(german, test));
    let admin_url = match &german._cluster {
        Some(cluster) => cluster.admin_url(),
        None => german.url.clone(),
    };
    let mut admin = DbConnection::open(&admin_url).expect("the admin's connection");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (engine, stop, seen) = (engine.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let owner = format!("owner{w}");
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let result = engine.sync(0, vec![task(&format!("{owner}-d{n}"), &format!("{owner}-t{n}"), "x")], &owner);
                    let detail = result.as_ref().err().map(|e| format!("{e} ({:?})", e.detail())).unwrap_or_default();
                    seen.lock().expect("seen").push((status(&result), detail));
                }
                owner
            })
        })
        .collect();
    // Kill until at least 3 syncs were refused and some went through, for
    // at most 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut killed = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
        killed += kill_all(german, &mut admin);
        let seen = seen.lock().expect("seen");
        let refused = seen.iter().filter(|(s, _)| *s != 200).count();
        if refused >= 3 && seen.iter().any(|(s, _)| *s == 200) && killed >= 6 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let owners: Vec<String> = workers.into_iter().map(|w| w.join().expect("worker")).collect();
    let seen = seen.lock().expect("seen").clone();
    let wrong: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200 && *s != 503).collect();
    assert!(wrong.is_empty(), "{test}: a killed connection answered other than 503: {wrong:?}");
    let refused = seen.iter().filter(|(s, _)| *s == 503).count();
    assert!(refused >= 1, "{test}: no sync met a killed connection ({killed} kills, {} syncs)", seen.len());
    assert!(seen.iter().any(|(s, _)| *s == 200), "{test}: no sync went through meanwhile");
    // The last kills may have left dead connections idle in the pool: each
    // is dropped at its first failure (503), never handed out twice, so at
    // most 3 failures before each owner syncs.
    for owner in owners {
        let mut failures = 0;
        loop {
            match engine.sync(0, vec![task(&format!("{owner}-end{failures}"), &format!("{owner}-end{failures}"), "y")], &owner) {
                Ok(_) => break,
                Err(err) => {
                    assert_eq!(err.kind.status(), 503, "{test}: {err} ({:?})", err.detail());
                    failures += 1;
                    assert!(failures <= 3, "{test}: {owner} still fails after the pool's every connection failed once");
                }
            }
        }
    }
}

#[test]
fn postgres_in_german_answers_a_unique_violation_422() {
    let test = "postgres_in_german_answers_a_unique_violation_422";
    let Some(german) = postgres(test) else { return };
    unique_violation_is_422(&german, test);
}

#[test]
fn postgres_in_german_answers_a_lock_timeout_503() {
    let test = "postgres_in_german_answers_a_lock_timeout_503";
    let Some(german) = postgres(test) else { return };
    a_lock_timeout_is_503(&german, test);
}

#[test]
fn postgres_in_german_answers_a_value_too_long_500_never_503() {
    let test = "postgres_in_german_answers_a_value_too_long_500_never_503";
    let Some(german) = postgres(test) else { return };
    a_value_too_long(&german, test);
}

#[test]
fn postgres_in_german_answers_killed_connections_503_and_drops_them() {
    let test = "postgres_in_german_answers_killed_connections_503_and_drops_them";
    let Some(german) = postgres(test) else { return };
    killed_connections_are_503_and_not_reused(&german, test);
}

#[test]
fn mariadb_in_german_answers_a_unique_violation_422() {
    let Some(german) = mariadb() else { return };
    unique_violation_is_422(&german, "mariadb_in_german_answers_a_unique_violation_422");
}

#[test]
fn mariadb_in_german_answers_a_lock_timeout_503() {
    let Some(german) = mariadb() else { return };
    a_lock_timeout_is_503(&german, "mariadb_in_german_answers_a_lock_timeout_503");
}

#[test]
fn mariadb_in_german_answers_a_value_too_long_422_by_its_error_number() {
    let Some(german) = mariadb() else { return };
    a_value_too_long(&german, "mariadb_in_german_answers_a_value_too_long_422_by_its_error_number");
}

#[test]
fn mariadb_in_german_answers_killed_connections_503_and_drops_them() {
    let Some(german) = mariadb() else { return };
    killed_connections_are_503_and_not_reused(&german, "mariadb_in_german_answers_killed_connections_503_and_drops_them");
}

/// Where the role may set `lc_messages` (a superuser here), mobync's pool
/// pins its sessions to `C` although the database's default is German: the
/// ignition check is quiet, and a value too long is 422 as in English; a
/// session opened without mobync's pool still answers in German, and the
/// check says what that changes.
#[test]
fn postgres_sessions_of_mobyncs_pool_are_pinned_to_c_where_the_role_may() {
    let test = "postgres_sessions_of_mobyncs_pool_are_pinned_to_c_where_the_role_may";
    let Some(german) = postgres(test) else { return };
    let superuser = german.db.url.clone();
    let mut plain = DbConnection::open(&superuser).expect("a plain session");
    assert!(answers_in_german(&mut plain).is_ok(), "{test}: the database's default is German");
    let warning = db::messages_language(&mut plain).expect("the language").expect("a warning");
    assert!(warning.contains("de_DE") && warning.contains("ALTER ROLE"), "{test}: {warning}");
    let pool = db::pool::<DbConnection>(&superuser).expect("mobync's pool");
    let mut conn = pool.get().expect("a connection");
    assert_eq!(db::messages_language(&mut *conn).expect("the language"), None, "{test}: pinned to C");
    models::create_tables(&mut conn);
    db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
    conn.batch_execute("ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(5)").expect("a narrow column");
    let engine = Mobync::new(DieselStore::new(Tables::default()), models::models());
    let err = engine.apply(&mut conn, 0, vec![task("d1", "t1", "viel zu lang")], &"alice".to_owned()).expect_err("too long");
    assert_eq!(err.kind.status(), 422, "{test}: {err} ({:?})", err.detail());
}
