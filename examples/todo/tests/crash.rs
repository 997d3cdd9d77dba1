//! Crashes under load: 16 devices of 4 owners sync in a loop while the
//! server process is killed (SIGKILL) and started again, three times, on
//! SQLite and on PostgreSQL; while PostgreSQL itself crashes (`pg_ctl stop
//! -m immediate`) and starts again under a running server; and while
//! MariaDB kills the server's sessions. Every answer is 200, 503 or no
//! answer at all (never a 500 or a 401; with the server up, always an
//! answer); afterwards every diff that was answered 200 is in the log once
//! (or remembered as dropped by its merge), every device converges, and
//! none is stuck. Each step waits for what it needs (every device synced,
//! a 503 seen), never for a fixed time.
//!
//! A longer run, for BENCHMARKS.md: `MOBYNC_CRASH_KILLS=20
//! MOBYNC_CRASH_PHASE_MS=3000 cargo test --release -p todo --all-features
//! --test crash -- --ignored --nocapture`.

mod common;

use common::TodoServer;
use diesel::prelude::*;
use mobync::client::Device;
use mobync::db::schema::{diffs, diffs_dropped};
use mobync::SyncResponse;
use mobync_tests::cluster::Cluster;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http;
use mobync::testing;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const OWNERS: usize = 4;
const DEVICES: usize = 16;

/// What one device did.
struct Report {
    device: Device,
    token: String,
    owner: String,
    /// Ids of its diffs in requests answered 200.
    acknowledged: HashSet<String>,
}

/// Devices syncing in a loop against whatever server `base` names.
struct Fleet {
    stop: Arc<AtomicBool>,
    base: Arc<RwLock<String>>,
    /// Answers by status; 0 counts requests that got no answer.
    statuses: Arc<Mutex<BTreeMap<u16, usize>>>,
    /// Each device's syncs answered 200 so far.
    answered: Arc<Vec<AtomicUsize>>,
    threads: Vec<JoinHandle<Report>>,
}

/// How long a condition of the load may take to come true: far beyond
/// what it takes on a loaded machine, so only a fault reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

impl Fleet {
    fn start(base: &str, owners: &[(String, String)]) -> Fleet {
        let stop = Arc::new(AtomicBool::new(false));
        let base = Arc::new(RwLock::new(base.to_owned()));
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let answered: Arc<Vec<AtomicUsize>> = Arc::new((0..DEVICES).map(|_| AtomicUsize::new(0)).collect());
        let threads = (0..DEVICES)
            .map(|d| {
                let (token, owner) = owners[d % OWNERS].clone();
                let (stop, base, statuses, answered) = (stop.clone(), base.clone(), statuses.clone(), answered.clone());
                std::thread::spawn(move || {
                    let mut device = Device::new(format!("dev{d}"));
                    let mut acknowledged = HashSet::new();
                    let mut rng = testing::Lcg(d as u64 + 7);
                    let (mut now, mut made) = (1_000i64, 0);
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1 + rng.next(2) {
                            now += 1;
                            testing::random_edit(&mut device, &mut rng, d, now, &mut made);
                        }
                        let status = sync(&base, &token, &mut device, &mut acknowledged);
                        *statuses.lock().expect("statuses").entry(status).or_default() += 1;
                        if status == 200 {
                            answered[d].fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(5 + rng.next(10) as u64));
                    }
                    Report { device, token, owner, acknowledged }
                })
            })
            .collect();
        Fleet { stop, base, statuses, answered, threads }
    }

    fn point_at(&self, base: &str) {
        *self.base.write().expect("base") = base.to_owned();
    }

    /// How many answers had `status` so far.
    fn count(&self, status: u16) -> usize {
        self.statuses.lock().expect("statuses").get(&status).copied().unwrap_or(0)
    }

    /// Each device's syncs answered 200 so far.
    fn answered(&self) -> Vec<usize> {
        self.answered.iter().map(|n| n.load(Ordering::SeqCst)).collect()
    }

    /// Waits until `done` holds, checking every 10 ms; fails the test
    /// after [`PATIENCE`], naming `what`.
    fn wait(&self, what: &str, done: impl Fn(&Fleet) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            let statuses = self.statuses.lock().expect("statuses").clone();
            let bad = statuses.keys().any(|status| ![0, 200, 503].contains(status));
            assert!(!bad, "waiting for {what}: answers other than 200, 503 or none: {statuses:?}");
            assert!(Instant::now() < deadline, "never came: {what}; answers so far {statuses:?}, 200s by device {:?}", self.answered());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every device has had `n` more syncs answered 200 than
    /// at `since` (a snapshot of [`Fleet::answered`]).
    fn wait_for_each(&self, what: &str, since: &[usize], n: usize) {
        self.wait(what, |fleet| fleet.answered().iter().zip(since).all(|(now, then)| *now >= then + n));
    }

    fn stop(self) -> (Vec<Report>, BTreeMap<u16, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        let reports = self.threads.into_iter().map(|t| t.join().expect("a device")).collect();
        let statuses = self.statuses.lock().expect("statuses").clone();
        (reports, statuses)
    }
}

/// One sync: its status (0 for no answer); a 200 is applied.
fn sync(base: &RwLock<String>, token: &str, device: &mut Device, acknowledged: &mut HashSet<String>) -> u16 {
    let request = device.request(token);
    let url = format!("{}/sync", base.read().expect("base"));
    let body = serde_json::to_vec(&request).expect("json");
    match http::try_post(&url, "application/json", &body) {
        Ok(answer) if answer.status == 200 => {
            let answer: SyncResponse = serde_json::from_str(&answer.body).expect("an answer");
            device.receive(&answer);
            acknowledged.extend(request.diffs.iter().map(|d| d.id.clone()));
            200
        }
        Ok(answer) => answer.status,
        Err(_) => 0,
    }
}

/// After the load: quiet syncs until every device is answered (twice),
/// then the checks of the module's doc.
fn settle_and_check(what: &str, base: &str, db: &TestDb, reports: &mut [Report], statuses: &BTreeMap<u16, usize>) {
    let bad: Vec<_> = statuses.iter().filter(|(status, _)| ![0, 200, 503].contains(*status)).collect();
    assert!(bad.is_empty(), "{what}: answers other than 200, 503 or none: {statuses:?}");
    let base = RwLock::new(base.to_owned());
    for _ in 0..2 {
        for report in reports.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while sync(&base, &report.token, &mut report.device, &mut report.acknowledged) != 200 {
                assert!(Instant::now() < deadline, "{what}: {} is stuck", report.device.name());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let mut conn = dbs::connect(db);
    let logged: Vec<(String, String)> = diffs::table.select((diffs::owner, diffs::id)).load(&mut conn).expect("log");
    let dropped: Vec<(String, String)> = diffs_dropped::table.select((diffs_dropped::owner, diffs_dropped::id)).load(&mut conn).expect("dropped");
    let logged: HashSet<(String, String)> = logged.into_iter().collect();
    let dropped: HashSet<(String, String)> = dropped.into_iter().collect();
    for report in reports.iter() {
        for id in &report.acknowledged {
            let key = (report.owner.clone(), id.clone());
            assert!(logged.contains(&key) != dropped.contains(&key), "{what}: diff {id} answered 200 is not in the log once");
        }
        let rows = mobync_tests::models::rows(&mut conn, &report.owner);
        assert_eq!(report.device.rows(), &rows, "{what}: {} differs from the server", report.device.name());
    }
    let total: usize = statuses.values().sum();
    eprintln!(
        "{what}: {total} syncs: {} answered 200, {} 503, {} without an answer; {} diffs answered 200, log of {}",
        statuses.get(&200).unwrap_or(&0),
        statuses.get(&503).unwrap_or(&0),
        statuses.get(&0).unwrap_or(&0),
        reports.iter().map(|r| r.acknowledged.len()).sum::<usize>(),
        logged.len()
    );
}

fn signups(base: &str) -> Vec<(String, String)> {
    (0..OWNERS).map(|i| http::signup(base, &format!("owner{i}"))).collect()
}

/// Each kill falls once every device has synced with the server that is
/// killed (three syncs answered 200 each), and `phase` has passed (0 for
/// the test, longer for BENCHMARKS.md's run).
fn kill_and_restart(backend: Backend, kills: usize, phase: Duration) {
    let Some(mut server) = TodoServer::start(backend, &[]) else { return };
    let owners = signups(&server.base);
    let fleet = Fleet::start(&server.base, &owners);
    for k in 0..=kills {
        let (since, started) = (fleet.answered(), Instant::now());
        fleet.wait_for_each(&format!("{backend:?}: every device synced with server {k}"), &since, 3);
        std::thread::sleep(phase.saturating_sub(started.elapsed()));
        if k < kills {
            server.restart();
            fleet.point_at(&server.base);
        }
    }
    let (mut reports, statuses) = fleet.stop();
    settle_and_check(&format!("{backend:?}, {kills} kills"), &server.base, &server.db, &mut reports, &statuses);
}

#[test]
fn killed_and_restarted_three_times_under_sixteen_devices_nothing_answered_is_lost() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        kill_and_restart(backend, 3, Duration::ZERO);
    }
}

#[test]
#[ignore = "a longer run for BENCHMARKS.md; see the module's doc"]
fn killed_and_restarted_many_times() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (kills, phase) = (env("MOBYNC_CRASH_KILLS", 20) as usize, Duration::from_millis(env("MOBYNC_CRASH_PHASE_MS", 3_000)));
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let started = Instant::now();
        kill_and_restart(backend, kills, phase);
        eprintln!("{backend:?}: {kills} kills in {:.1} s", started.elapsed().as_secs_f64());
    }
}

/// PostgreSQL stops (`-m immediate`, a crash) under a running server and
/// starts again: while it is down the server answers 503 (it is waited
/// for, not hoped for), never 500 or 401, and never fails to answer; once
/// it is up, every device is answered 200 again without a restart of the
/// server.
#[test]
fn postgresql_restarted_under_a_running_server_is_503_meanwhile_never_500_or_401() {
    let Some(cluster) = Cluster::start_or_skip("postgresql_restarted_under_a_running_server") else { return };
    let db = TestDb::create(Backend::Postgres, &cluster.admin_url(), "crash".into()).expect("a database");
    let db = Arc::new(db);
    let server = TodoServer::on(db.clone());
    let owners = signups(&server.base);
    let fleet = Fleet::start(&server.base, &owners);
    fleet.wait_for_each("every device synced before the crash", &vec![0; DEVICES], 3);
    assert_eq!(fleet.count(503), 0, "503 before the crash");
    cluster.pg_ctl(&["stop", "-m", "immediate"]).expect("stop PostgreSQL");
    fleet.wait("503 while PostgreSQL is down", |fleet| fleet.count(503) >= DEVICES);
    cluster.pg_ctl(&["start"]).expect("start PostgreSQL");
    let since = fleet.answered();
    fleet.wait_for_each("every device answered 200 again once PostgreSQL is up", &since, 2);
    let (mut reports, statuses) = fleet.stop();
    assert_eq!(statuses.get(&0), None, "the server answered every request: {statuses:?}");
    settle_and_check("PostgreSQL restarted", &server.base, &db, &mut reports, &statuses);
    drop(server);
    drop(db);
}

/// MariaDB drops every connection of the server, as its restart would:
/// each dead connection fails the one sync that takes it next (503, at
/// least the first one after the kill: no connection is pinged before
/// use) and is replaced, so the 503s are at least one and at most the
/// connections killed, and every device is answered 200 again without a
/// restart of the server.
#[test]
fn mariadb_sessions_killed_under_a_running_server_recover_without_a_restart() {
    let Some(server) = TodoServer::start(Backend::Mysql, &[]) else { return };
    let owners = signups(&server.base);
    let fleet = Fleet::start(&server.base, &owners);
    fleet.wait_for_each("every device synced before the kill", &vec![0; DEVICES], 3);
    // The database drops every connection of the server, as a restart of
    // MariaDB would: they fail with "server has gone away" from then on.
    #[derive(QueryableByName)]
    struct Session {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut admin = dbs::connect(&server.db);
    let sessions: Vec<Session> = diesel::sql_query(format!(
        "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = '{}' AND ID <> CONNECTION_ID()",
        server.db.name()
    ))
    .load(&mut admin)
    .expect("sessions");
    assert!(!sessions.is_empty());
    let before = fleet.count(503);
    assert_eq!(before, 0, "503 before the kill");
    for session in &sessions {
        let _ = diesel::sql_query(format!("KILL {}", session.id)).execute(&mut admin);
    }
    let since = fleet.answered();
    fleet.wait("a sync on a killed connection answered 503", |fleet| fleet.count(503) > 0);
    fleet.wait_for_each("every device answered 200 again after the kill", &since, 3);
    let (mut reports, statuses) = fleet.stop();
    let unavailable = statuses.get(&503).copied().unwrap_or(0);
    assert!(
        (1..=sessions.len()).contains(&unavailable),
        "each of the {} killed connections fails one sync at most: {statuses:?}",
        sessions.len()
    );
    assert_eq!(statuses.get(&0), None, "the server answered every request: {statuses:?}");
    settle_and_check(&format!("MariaDB, {} sessions killed", sessions.len()), &server.base, &server.db, &mut reports, &statuses);
}
