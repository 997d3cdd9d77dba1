//! Operating the todo server, over TCP: its Prometheus metrics after a
//! known sequence of syncs (exact values), `/ready` with its database
//! stopped and started again, SIGTERM under load (nothing committed is cut
//! off from its answer), and the audit API on a row created, updated by
//! two devices and deleted.

mod common;

use common::TodoServer;
use diesel::prelude::*;
use mobync::db::schema::diffs;
use mobync_tests::cluster::Cluster;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http::{self, Answer};
use mobync_tests::spawn::Spawned;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "audit-token-of-the-tests";

/// Held by the tests that stop a database or signal a server under load,
/// one at a time: a new cluster's fsyncs can stall another test's commits
/// for seconds on this kind of disk.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn diff(id: &str, op: &str, model: &str, data: Value, at: i64) -> Value {
    json!({"id": id, "owner": "", "logical_clock": 0, "utc_timestamp": at, "type": op, "model": model, "json_data": data.to_string()})
}

fn sync(server: &TodoServer, token: &str, cursor: i64, diffs: Vec<Value>) -> Answer {
    let body = json!({"auth_token": token, "logical_clock": cursor, "diffs": diffs}).to_string();
    http::post(&server.sync_url(), "application/json", body.as_bytes())
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = ureq::get(url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(err) => panic!("GET {url}: {err}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The samples of a Prometheus text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(key, value)| (key.to_string(), value.parse().expect("a number")))
        .collect()
}

#[test]
fn metrics_count_exactly_what_the_syncs_did() {
    let Some(server) = TodoServer::start(Backend::Sqlite, &[]) else { return };
    let (token, _) = http::signup(&server.base, "ada");
    let task = |title: &str| json!({"id": "t1", "title": title, "done": false});
    let mut answers = Vec::new();
    // 200: two creates; an update; a delete; a stale device's update,
    // dropped by the merge.
    answers.push(sync(&server, &token, 0, vec![diff("d1", "create", "task", task("milk"), 1), diff("d2", "create", "project", json!({"id": "p1", "name": "home"}), 2)]));
    answers.push(sync(&server, &token, 1, vec![diff("d3", "update", "task", json!({"id": "t1", "done": true}), 3)]));
    answers.push(sync(&server, &token, 2, vec![diff("d4", "delete", "task", json!({"id": "t1"}), 4)]));
    answers.push(sync(&server, &token, 1, vec![diff("d5", "update", "task", json!({"id": "t1", "title": "oat milk"}), 5)]));
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200; 4], "{answers:?}");
    // 403: a rule; 409: a cursor ahead; 401: a token; 400: not JSON.
    assert_eq!(sync(&server, &token, 3, vec![diff("d6", "create", "task", json!({"id": "t2", "title": "", "done": false}), 6)]).status, 403);
    assert_eq!(sync(&server, &token, 99, vec![]).status, 409);
    assert_eq!(sync(&server, "no-such-token", 0, vec![]).status, 401);
    assert_eq!(http::post(&server.sync_url(), "application/json", b"{nope").status, 400);

    let (status, text) = get(&format!("{}/metrics", server.base), None);
    assert_eq!(status, 200);
    let samples = samples(text.as_str().expect("text"));
    let sent: usize = answers.iter().map(|a| a.json()["diffs"].as_array().map_or(0, Vec::len)).sum();
    let bytes: usize = answers.iter().map(|a| a.body.len()).sum();
    let expected = [
        (r#"mobync_syncs_total{status="200"}"#, 4.0),
        (r#"mobync_syncs_total{status="403"}"#, 1.0),
        (r#"mobync_syncs_total{status="409"}"#, 1.0),
        (r#"mobync_syncs_total{status="401"}"#, 1.0),
        (r#"mobync_syncs_total{status="400"}"#, 1.0),
        (r#"mobync_diffs_applied_total{model="task",op="create"}"#, 1.0),
        (r#"mobync_diffs_applied_total{model="project",op="create"}"#, 1.0),
        (r#"mobync_diffs_applied_total{model="task",op="update"}"#, 1.0),
        (r#"mobync_diffs_applied_total{model="task",op="delete"}"#, 1.0),
        (r#"mobync_diffs_dropped_total{model="task",op="update"}"#, 1.0),
        ("mobync_diffs_sent_total", sent as f64),
        ("mobync_sync_duration_seconds_count", 8.0),
        // Every sync but the one that was not JSON got a connection.
        ("mobync_sync_db_duration_seconds_count", 7.0),
        ("mobync_answer_bytes_count", 4.0),
        ("mobync_answer_bytes_sum", bytes as f64),
    ];
    for (key, value) in expected {
        assert_eq!(samples.get(key), Some(&value), "{key}\n{}", text.as_str().unwrap_or_default());
    }
    assert!(sent > 0);
    assert!(samples["mobync_pool_wait_seconds_count"] >= 7.0);
    assert_eq!(samples.get("mobync_pool_timeouts_total"), None, "no wait ran out");
    // Nothing else was counted as a sync.
    let syncs: f64 = samples.iter().filter(|(k, _)| k.starts_with("mobync_syncs_total")).map(|(_, v)| v).sum();
    assert_eq!(syncs, 8.0);
}

#[test]
fn ready_is_503_while_the_database_is_stopped_and_200_again_once_it_is_back() {
    let _alone = heavy();
    let Some(cluster) = Cluster::start_or_skip("ready_is_503_while_the_database_is_stopped") else { return };
    let db = Arc::new(TestDb::create(Backend::Postgres, &cluster.admin_url(), "ready".into()).expect("a database"));
    let server = TodoServer::on(db.clone());
    let ready = format!("{}/ready", server.base);
    assert_eq!(get(&ready, None), (200, json!({"ready": true})));

    cluster.pg_ctl(&["stop", "-m", "fast"]).expect("stop PostgreSQL");
    let started = Instant::now();
    let answer = http::get(&ready).expect("an answer");
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(5), "it answers within its wait: {:?}", started.elapsed());
    assert_eq!(answer.json()["ready"], false);
    assert!(answer.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert_eq!(http::get(&format!("{}/health", server.base)).expect("health").status, 200, "alive, not ready");

    cluster.pg_ctl(&["start"]).expect("start PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(&ready, None) {
            (200, body) => {
                assert_eq!(body, json!({"ready": true}));
                break;
            }
            (status, body) => assert!(Instant::now() < deadline, "still {status} {body}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
    drop(db);
}

/// What one request of the SIGTERM test came to.
struct Sent {
    diff_ids: Vec<String>,
    answered: Option<u16>,
    started: Instant,
    ended: Instant,
}

/// Waits until the server's stderr holds `needle`; fails the test after
/// two minutes (far beyond what it takes on a loaded machine).
fn wait_for_log(server: &mut TodoServer, needle: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.process().stderr().contains(needle) {
        if Instant::now() > deadline {
            let stderr = server.process().stderr();
            let tail: String = stderr.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("never came: {what} ({needle:?} on stderr): {tail}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A sync sent over a plain socket in two parts: the head and half the
/// body, then the rest when the test says so. Between the two, the server
/// is inside the request, reading its body: a sync in flight for certain.
struct Held {
    socket: std::net::TcpStream,
    rest: Vec<u8>,
}

impl Held {
    fn start(base: &str, path: &str, body: &[u8]) -> Held {
        use std::io::Write;
        let address = base.trim_start_matches("http://");
        let mut socket = std::net::TcpStream::connect(address).expect("a connection");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let half = body.len() / 2;
        socket.write_all(head.as_bytes()).expect("the head");
        socket.write_all(&body[..half]).expect("half the body");
        socket.flush().expect("flush");
        Held { socket, rest: body[half..].to_vec() }
    }

    /// Sends the rest of the body; the answer's status line and body.
    fn finish(mut self) -> (u16, String) {
        use std::io::{Read, Write};
        self.socket.write_all(&self.rest).expect("the rest of the body");
        let mut answer = String::new();
        self.socket.read_to_string(&mut answer).expect("an answer");
        let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer)
    }
}

/// SIGTERM while six devices sync in a loop and one sync is certainly in
/// flight (its body half sent, the server inside it): that sync is
/// answered 200 and stored once its body arrives after the signal; every
/// sync answered 200 is stored, every one cut off is not; the server exits
/// cleanly. Each step waits for what it needs, not for a fixed time; the
/// grace period and the body's timeout are set far beyond what the held
/// sync needs once its body is sent.
#[test]
fn sigterm_under_load_lets_syncs_in_flight_finish_and_cuts_none_that_committed() {
    const DIFFS: usize = 50;
    let _alone = heavy();
    for backend in dbs::backends() {
        // Rocket's warnings on stderr say why, should a shutdown fail; its
        // request lines say when the held sync is in.
        let env = [
            ("RUST_LOG", "warn,rocket::server=info"),
            // Rocket waits out the whole grace period when a connection
            // is open at the signal (the held one is): 15 s, where the
            // held sync needs milliseconds once its body is sent.
            ("ROCKET_SHUTDOWN", "{grace=15,mercy=5}"),
            ("ROCKET_MOBYNC", "{read_timeout=600}"),
        ];
        let Some(mut server) = TodoServer::start(backend, &env) else { continue };
        let stop = Arc::new(AtomicBool::new(false));
        let answered: Arc<Vec<AtomicUsize>> = Arc::new((0..6).map(|_| AtomicUsize::new(0)).collect());
        let creates = |n: &str, i: i64| -> (Vec<String>, Vec<Value>) {
            let diff_ids: Vec<String> = (0..DIFFS).map(|k| format!("d{n}-{i}-{k}")).collect();
            let diffs = diff_ids
                .iter()
                .enumerate()
                .map(|(k, id)| diff(id, "create", "task", json!({"id": format!("t{n}-{i}-{k}"), "title": "x", "done": false}), i))
                .collect();
            (diff_ids, diffs)
        };
        let devices: Vec<_> = (0..6)
            .map(|n| {
                let (token, _) = http::signup(&server.base, &format!("device{n}"));
                let (url, stop, answered) = (server.sync_url(), stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    let mut sent = Vec::new();
                    for i in 0.. {
                        let (diff_ids, diffs) = creates(&n.to_string(), i);
                        let body = json!({"auth_token": token, "logical_clock": 0, "diffs": diffs});
                        let started = Instant::now();
                        let status = http::try_post(&url, "application/json", body.to_string().as_bytes()).ok().map(|a| a.status);
                        if status == Some(200) {
                            answered[n].fetch_add(1, Ordering::SeqCst);
                        }
                        let failed = status.is_none();
                        sent.push(Sent { diff_ids, answered: status, started, ended: Instant::now() });
                        if failed && stop.load(Ordering::SeqCst) {
                            return sent;
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        // The load runs: every device was answered twice.
        let deadline = Instant::now() + Duration::from_secs(120);
        while answered.iter().any(|n| n.load(Ordering::SeqCst) < 2) {
            assert!(Instant::now() < deadline, "{backend:?}: the load never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (token, _) = http::signup(&server.base, "held");
        let (held_ids, held_diffs) = creates("held", 0);
        let body = json!({"auth_token": token, "logical_clock": 0, "diffs": held_diffs}).to_string();
        let held = Held::start(&server.base, "/sync?held", body.as_bytes());
        wait_for_log(&mut server, "POST /sync?held", "the held sync reached the server");

        let signalled = Instant::now();
        let pid = server.process().pid().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        wait_for_log(&mut server, "Received SIGTERM", "the server took the signal");
        stop.store(true, Ordering::SeqCst);
        let (held_status, held_answer) = held.finish();
        assert_eq!(held_status, 200, "{backend:?}: the sync in flight at the signal: {held_answer}");
        assert!(server.process().terminate(Duration::from_secs(60)), "{backend:?}: it exits once its syncs are answered");
        let status = server.process().exit_status().expect("exited");
        let stopped = signalled.elapsed();
        let sent: Vec<Sent> = devices.into_iter().flat_map(|d| d.join().expect("a device")).collect();

        let stored: Vec<String> = diffs::table.select(diffs::id).load(&mut dbs::connect(&server.db)).expect("the log");
        let stored: HashSet<String> = stored.into_iter().collect();
        assert!(held_ids.iter().all(|id| stored.contains(id)), "{backend:?}: the held sync was answered but not stored");
        let answered = sent.iter().filter(|s| s.answered.is_some()).count();
        for s in &sent {
            let first = &s.diff_ids[0];
            let kept = s.diff_ids.iter().filter(|id| stored.contains(*id)).count();
            match s.answered {
                Some(200) => assert_eq!(kept, DIFFS, "{backend:?}: {first}.. was answered but not stored"),
                Some(status) => panic!("{backend:?}: {first}.. answered {status}"),
                None => assert_eq!(kept, 0, "{backend:?}: {first}.. committed but its client saw a broken connection"),
            }
        }
        let stderr = server.process().stderr();
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("Matched:") && !l.contains("Response succeeded") && !l.contains("Outcome:") && !l.contains("POST /sync")).collect();
        assert!(status.success(), "{backend:?}: a clean exit, not {status} after {stopped:?}: {}", tail[tail.len().saturating_sub(40)..].join("\n").chars().take(8000).collect::<String>());
        let in_flight = sent.iter().filter(|s| s.started < signalled && s.ended > signalled && s.answered == Some(200)).count();
        let refused = sent.len() - answered;
        eprintln!("{backend:?}: {answered} syncs answered, the held one and {in_flight} others in flight at SIGTERM, {refused} refused; exited {stopped:?} after it");
    }
}

#[test]
fn the_audit_api_tells_the_history_of_a_row_created_updated_by_two_devices_and_deleted() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[("MOBYNC_ADMIN_TOKEN", ADMIN)]) else { continue };
        let (token, owner) = http::signup(&server.base, "ada");
        // Phone creates t1 (stamp 0); the tablet pulls it; the phone
        // renames it (1); the tablet ticks it (2); a third row (3); the
        // phone deletes t1 (4).
        let t1 = json!({"id": "t1", "title": "milk", "done": false});
        assert_eq!(sync(&server, &token, 0, vec![diff("p-1", "create", "task", t1, 100)]).status, 200);
        assert_eq!(sync(&server, &token, 0, vec![]).status, 200);
        assert_eq!(sync(&server, &token, 1, vec![diff("p-2", "update", "task", json!({"id": "t1", "title": "oat milk"}), 200)]).status, 200);
        assert_eq!(sync(&server, &token, 1, vec![diff("t-1", "update", "task", json!({"id": "t1", "done": true}), 300)]).status, 200);
        assert_eq!(sync(&server, &token, 3, vec![diff("t-2", "create", "task", json!({"id": "t2", "title": "tea", "done": false}), 400)]).status, 200);
        assert_eq!(sync(&server, &token, 4, vec![diff("p-3", "delete", "task", json!({"id": "t1"}), 500)]).status, 200);

        let admin = |path: &str| get(&format!("{}/admin/owners/{owner}{path}", server.base), Some(ADMIN));
        let (status, summary) = admin("");
        assert_eq!(status, 200, "{backend:?}: {summary}");
        assert_eq!(summary, json!({"owner": owner, "clock": 5, "horizon": 0, "purged": 0, "diffs": 5, "net_rows": 0, "dropped": 0, "rows": {"task": 1}}), "{backend:?}");

        let (status, history) = admin("/rows/task/t1");
        assert_eq!(status, 200);
        let expected = json!([
            {"id": "p-1", "logical_clock": 0, "utc_timestamp": 100, "type": "create", "model": "task", "fields": {"id": "t1", "title": "milk", "done": false}},
            {"id": "p-2", "logical_clock": 1, "utc_timestamp": 200, "type": "update", "model": "task", "fields": {"id": "t1", "title": "oat milk"}},
            {"id": "t-1", "logical_clock": 2, "utc_timestamp": 300, "type": "update", "model": "task", "fields": {"id": "t1", "done": true}},
            {"id": "p-3", "logical_clock": 4, "utc_timestamp": 500, "type": "delete", "model": "task", "fields": {"id": "t1"}},
        ]);
        assert_eq!((history["diffs"].clone(), history["next"].clone()), (expected.clone(), Value::Null), "{backend:?}");
        // Pages.
        let (_, first) = admin("/rows/task/t1?limit=3");
        assert_eq!((first["diffs"].as_array().map(Vec::len), first["next"].clone()), (Some(3), json!(3)));
        let (_, rest) = admin("/rows/task/t1?offset=3&limit=3");
        assert_eq!((rest["diffs"].clone(), rest["next"].clone()), (json!([expected[3]]), Value::Null));
        // One sync's diffs.
        let (status, stamp) = admin("/stamps/2");
        assert_eq!((status, stamp["diffs"].clone()), (200, json!([expected[2]])));
        assert_eq!(admin("/stamps/9").1, json!({"diffs": []}));
        // Refusals.
        let url = format!("{}/admin/owners/{owner}", server.base);
        assert_eq!(get(&url, None).0, 401);
        assert_eq!(get(&url, Some("wrong-token-0123456789")).0, 401);
        assert_eq!(get(&format!("{}/admin/owners/nobody", server.base), Some(ADMIN)).0, 404);
        assert_eq!(admin("/elsewhere").0, 404);
        assert_eq!(admin("/rows/task/t1?limit=lots").0, 400);
        assert_eq!(admin("/stamps/x").0, 400);
    }
}

#[test]
fn the_audit_api_is_off_without_a_token_and_a_short_token_is_refused_at_start() {
    let Some(server) = TodoServer::start(Backend::Sqlite, &[]) else { return };
    let (_, owner) = http::signup(&server.base, "ada");
    let (status, _) = get(&format!("{}/admin/owners/{owner}", server.base), Some(ADMIN));
    assert_eq!(status, 404);
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let env = [("DATABASE_URL", db.url.clone()), ("MOBYNC_ADMIN_TOKEN", "short".to_string())];
    let err = Spawned::start(env!("CARGO_BIN_EXE_todo"), &env, Duration::from_secs(60)).err().expect("refused");
    assert!(err.contains("admin_token"), "{err}");
}
