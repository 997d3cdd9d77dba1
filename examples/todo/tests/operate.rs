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
use std::sync::atomic::{AtomicBool, Ordering};
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

#[test]
fn sigterm_under_load_lets_syncs_in_flight_finish_and_cuts_none_that_committed() {
    const DIFFS: usize = 50;
    let _alone = heavy();
    for backend in dbs::backends() {
        // Rocket's warnings on stderr say why, should a shutdown fail.
        let env = [("RUST_LOG", "warn")];
        let Some(mut server) = TodoServer::start(backend, &env) else { continue };
        let stop = Arc::new(AtomicBool::new(false));
        let devices: Vec<_> = (0..6)
            .map(|n| {
                let (token, _) = http::signup(&server.base, &format!("device{n}"));
                let (url, stop) = (server.sync_url(), stop.clone());
                std::thread::spawn(move || {
                    let mut sent = Vec::new();
                    for i in 0.. {
                        let diff_ids: Vec<String> = (0..DIFFS).map(|k| format!("d{n}-{i}-{k}")).collect();
                        let diffs: Vec<Value> = diff_ids
                            .iter()
                            .enumerate()
                            .map(|(k, id)| diff(id, "create", "task", json!({"id": format!("t{n}-{i}-{k}"), "title": "x", "done": false}), i))
                            .collect();
                        let body = json!({"auth_token": token, "logical_clock": 0, "diffs": diffs});
                        let started = Instant::now();
                        let answered = http::try_post(&url, "application/json", body.to_string().as_bytes()).ok().map(|a| a.status);
                        let failed = answered.is_none();
                        sent.push(Sent { diff_ids, answered, started, ended: Instant::now() });
                        if failed && stop.load(Ordering::SeqCst) {
                            return sent;
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1_500));
        stop.store(true, Ordering::SeqCst);
        let signalled = Instant::now();
        assert!(server.process().terminate(Duration::from_secs(15)), "{backend:?}: it exits within Rocket's grace period");
        let status = server.process().exit_status().expect("exited");
        let stopped = signalled.elapsed();
        let sent: Vec<Sent> = devices.into_iter().flat_map(|d| d.join().expect("a device")).collect();

        let stored: Vec<String> = diffs::table.select(diffs::id).load(&mut dbs::connect(&server.db)).expect("the log");
        let stored: HashSet<String> = stored.into_iter().collect();
        let answered = sent.iter().filter(|s| s.answered.is_some()).count();
        assert!(answered > 10, "{backend:?}: the load ran ({answered} answered)");
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
        // Syncs under way when the signal came were answered.
        let in_flight = sent.iter().filter(|s| s.started < signalled && s.ended > signalled && s.answered == Some(200)).count();
        assert!(in_flight > 0, "{backend:?}: no sync was in flight at the signal");
        let refused = sent.len() - answered;
        eprintln!("{backend:?}: {answered} syncs answered, {in_flight} of them in flight at SIGTERM, {refused} refused; exited {stopped:?} after it");
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
