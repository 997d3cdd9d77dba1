//! PROTOCOL.md's order of checks and edge cases, over real TCP, on every
//! backend where the backend matters: each refusal's status, code and
//! `diff_id`, and a database left exactly as it was.

mod common;

use common::TodoServer;
use diesel::connection::SimpleConnection;
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http::{self, error_of};
use mobync_tests::models::dump;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn diff(id: &str, op: &str, model: &str, data: Value) -> Value {
    json!({"id": id, "owner": "placeholder", "logical_clock": 0, "utc_timestamp": 1_700_000_000_000i64,
           "type": op, "model": model, "json_data": data.to_string()})
}

fn task(id: &str, row: &str, title: &str) -> Value {
    diff(id, "create", "task", json!({"id": row, "title": title, "done": false}))
}

fn request(token: &str, clock: i64, diffs: Vec<Value>) -> Vec<u8> {
    json!({"auth_token": token, "logical_clock": clock, "diffs": diffs}).to_string().into_bytes()
}

/// `(name, body, status, diff_id)`: each must be answered so, changing nothing.
fn expect_refusals(server: &TodoServer, backend: Backend, cases: Vec<(&str, Vec<u8>, u16, Option<&str>)>) {
    for (name, body, status, diff_id) in cases {
        let before = dump(&server.db);
        let answer = http::post(&server.sync_url(), "application/json", &body);
        assert_eq!(answer.status, status, "{backend:?} {name}: {}", &answer.body[..answer.body.len().min(300)]);
        let err = error_of(&answer);
        assert_eq!(err.diff_id.as_deref(), diff_id, "{backend:?} {name}: {}", answer.body);
        assert_eq!(dump(&server.db), before, "{backend:?} {name}: the database changed");
    }
}

#[test]
fn the_checks_come_in_protocol_order_and_the_first_fault_in_the_request_wins() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (token, _) = http::signup(&server.base, "alice");
        let seed = request(&token, 0, vec![task("seed", "t1", "one")]);
        assert_eq!(http::post(&server.sync_url(), "application/json", &seed).status, 200);

        let mut stringly = task("str-ts", "t2", "two");
        stringly["utc_timestamp"] = json!("1700000000000");
        let unknown_model = diff("um", "create", "tsk", json!({"id": "x"}));
        let blank = task("blank", "t3", "  ");
        let unknown_field = diff("uf", "update", "task", json!({"id": "t1", "colour": "red"}));
        let missing_row = diff("mr", "update", "task", json!({"id": "nope", "done": true}));
        let many: Vec<Value> = (0..5_001).map(|i| task(&format!("d{i}"), &format!("r{i}"), "x")).collect();
        let cases = vec![
            // The token before anything inside a diff.
            ("bad token, a diff of a wrong shape", request("guess", 1, vec![stringly.clone()]), 401, None),
            // The cursor before the size and the diffs.
            ("cursor ahead, a bad diff", request(&token, 7, vec![unknown_model.clone()]), 409, None),
            ("cursor ahead, too many diffs", request(&token, 7, many.clone()), 409, None),
            ("cursor past 2^63-1", format!(r#"{{"auth_token":"{token}","logical_clock":9223372036854775808,"diffs":[]}}"#).into_bytes(), 409, None),
            // The size before the diffs.
            ("too many diffs, a bad one first", request(&token, 1, [vec![unknown_model.clone()], many].concat()), 413, None),
            // A diff's shape is 400 naming it.
            ("a timestamp as a string", request(&token, 1, vec![stringly.clone()]), 400, Some("str-ts")),
            // The first fault in request order wins, whatever its kind.
            ("403 then 422", request(&token, 1, vec![blank.clone(), unknown_field.clone()]), 403, Some("blank")),
            ("422 then 400", request(&token, 1, vec![unknown_model.clone(), stringly.clone()]), 422, Some("um")),
            ("403 then 400", request(&token, 1, vec![blank.clone(), stringly.clone()]), 403, Some("blank")),
            ("a missing row then 403", request(&token, 1, vec![missing_row.clone(), blank.clone()]), 422, Some("mr")),
            ("400 then 403", request(&token, 1, vec![stringly, blank]), 400, Some("str-ts")),
        ];
        expect_refusals(&server, backend, cases);
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 7, vec![]));
        assert!(error_of(&answer).message.contains("older than this device"), "{backend:?}: {}", answer.body);
    }
}

#[test]
fn the_edge_cases_of_ids_models_deletes_and_empty_updates() {
    let long = "x".repeat(256);
    let longest = "y".repeat(255);
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (token, _) = http::signup(&server.base, "alice");
        let seed = request(&token, 0, vec![task("seed", "t1", "one")]);
        assert_eq!(http::post(&server.sync_url(), "application/json", &seed).status, 200);
        let cases = vec![
            ("a diff id of 256 bytes", request(&token, 1, vec![task(&long, "t2", "x")]), 400, Some(long.as_str())),
            ("a diff id with U+0000", request(&token, 1, vec![task("a\u{0}b", "t2", "x")]), 400, Some("a\u{0}b")),
            ("an empty diff id", request(&token, 1, vec![task("", "t2", "x")]), 400, Some("")),
            ("a row id of 256 bytes", request(&token, 1, vec![task("d1", &long, "x")]), 422, Some("d1")),
            ("a row id with U+0000", request(&token, 1, vec![task("d1", "t\u{0}2", "x")]), 422, Some("d1")),
            ("an empty model", request(&token, 1, vec![diff("d1", "create", "", json!({"id": "t2"}))]), 422, Some("d1")),
            ("a delete with more than id", request(&token, 1, vec![diff("d1", "delete", "task", json!({"id": "t1", "done": true}))]), 422, Some("d1")),
            ("an empty update of a missing row", request(&token, 1, vec![diff("d1", "update", "task", json!({"id": "t9"}))]), 422, Some("d1")),
        ];
        expect_refusals(&server, backend, cases);

        // An empty update of a row the owner has: accepted, changes nothing.
        let before = dump(&server.db);
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 1, vec![diff("e1", "update", "task", json!({"id": "t1"}))]));
        assert_eq!((answer.status, answer.json()["logical_clock"].clone()), (200, json!(1)), "{backend:?}: {}", answer.body);
        let after = dump(&server.db);
        let rows = |d: &[String]| d.iter().take_while(|l| !l.starts_with("-- diffs_dropped")).cloned().collect::<Vec<_>>();
        assert_eq!(rows(&after), rows(&before), "{backend:?}: an empty update changed a row or the log");

        // Ids are compared byte for byte: case, trailing spaces, 255 bytes.
        let ids = ["abc", "ABC", "abc ", longest.as_str()];
        let creates: Vec<Value> = ids.iter().enumerate().map(|(i, id)| task(&format!("c{i}"), id, "x")).collect();
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 1, creates));
        assert_eq!(answer.status, 200, "{backend:?}: {}", answer.body);
        let mut device = mobync::client::Device::new("other");
        let mut sync = server.as_server(Default::default());
        let pulled = mobync::testing::Server::sync(&mut sync, &token, &device.request(&token)).expect("pull");
        device.receive(&pulled);
        for id in ids {
            assert!(device.rows().contains_key(&("task".to_string(), id.to_string())), "{backend:?}: row {id:?} is not its own row");
        }
        // Diff ids too: "C0" is not a replay of "c0".
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 2, vec![task("C0", "fresh", "x")]));
        assert_eq!((answer.status, answer.json()["logical_clock"].clone()), (200, json!(3)), "{backend:?}: {}", answer.body);
    }
}

#[test]
fn a_pull_takes_no_write_lock() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (token, owner) = http::signup(&server.base, "alice");
        let seed = request(&token, 0, vec![task("seed", "t1", "one")]);
        assert_eq!(http::post(&server.sync_url(), "application/json", &seed).status, 200);
        // Another session holds the write lock: SQLite's whole database,
        // the owner's clock row elsewhere.
        let mut holder = dbs::connect(&server.db);
        match backend {
            Backend::Sqlite => holder.batch_execute("BEGIN IMMEDIATE"),
            _ => holder.batch_execute(&format!("BEGIN; SELECT * FROM diffs_clocks WHERE owner = '{owner}' FOR UPDATE;")),
        }
        .expect("hold the write lock");
        let started = Instant::now();
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 0, vec![]));
        assert_eq!(answer.status, 200, "{backend:?}: {}", answer.body);
        assert_eq!(answer.json()["diffs"].as_array().map(Vec::len), Some(1));
        // A retry of what was applied has nothing to write either.
        let answer = http::post(&server.sync_url(), "application/json", &seed);
        assert_eq!((answer.status, answer.json()["logical_clock"].clone()), (200, json!(1)), "{backend:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{backend:?}: a pull waited for the write lock");
        holder.batch_execute("COMMIT").expect("release");
    }
}

#[test]
fn an_authenticator_that_cannot_answer_is_503_with_retry_after_never_401() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (token, _) = http::signup(&server.base, "alice");
        dbs::connect(&server.db).batch_execute("ALTER TABLE users RENAME TO users_away").expect("rename");
        let before = dump(&server.db);
        let answer = http::post(&server.sync_url(), "application/json", &request(&token, 0, vec![task("d", "t", "x")]));
        assert_eq!((answer.status, error_of(&answer).kind.code()), (503, "unavailable"), "{backend:?}: {}", answer.body);
        assert!(answer.retry_after.is_some(), "{backend:?}");
        assert_eq!(dump(&server.db), before);
        dbs::connect(&server.db).batch_execute("ALTER TABLE users_away RENAME TO users").expect("rename back");
        assert_eq!(http::post(&server.sync_url(), "application/json", &request(&token, 0, vec![])).status, 200);
    }
}

#[test]
fn a_token_syncs_without_its_query_for_auth_cache_seconds_and_not_at_all_when_it_is_0() {
    for backend in dbs::backends() {
        for (config, remembered) in [(None, true), (Some("{auth_cache=0}"), false)] {
            let env: Vec<(&str, &str)> = config.map(|c| ("ROCKET_MOBYNC", c)).into_iter().collect();
            let Some(server) = TodoServer::start(backend, &env) else { continue };
            let (token, _) = http::signup(&server.base, "alice");
            assert_eq!(http::post(&server.sync_url(), "application/json", &request(&token, 0, vec![])).status, 200);
            // The users table gone: only a remembered owner still syncs.
            dbs::connect(&server.db).batch_execute("ALTER TABLE users RENAME TO users_away").expect("rename");
            let answer = http::post(&server.sync_url(), "application/json", &request(&token, 0, vec![task("d", "t", "x")]));
            let expected = if remembered { 200 } else { 503 };
            assert_eq!(answer.status, expected, "{backend:?} {config:?}: {}", answer.body);
            // Another token is never taken from memory.
            let other = http::post(&server.sync_url(), "application/json", &request("not-a-token", 0, vec![]));
            assert_eq!(other.status, 503, "{backend:?} {config:?}: {}", other.body);
            dbs::connect(&server.db).batch_execute("ALTER TABLE users_away RENAME TO users").expect("rename back");
        }
    }
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_408_json() {
    use std::io::{Read, Write};
    let Some(server) = TodoServer::start(Backend::Sqlite, &[("ROCKET_MOBYNC", "{read_timeout=1}")]) else { return };
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    let head = format!("POST /sync HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(br#"{"auth_token":"#)).expect("send");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let started = Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline did not end the wait");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!((json["success"].clone(), json["error"].clone()), (json!(false), json!("timeout")));
}

#[test]
fn signup_refuses_long_names_and_large_bodies() {
    let Some(server) = TodoServer::start(Backend::Sqlite, &[]) else { return };
    let url = format!("{}/signup", server.base);
    let post = |body: Value| http::post(&url, "application/json", body.to_string().as_bytes()).status;
    assert_eq!(post(json!({"name": "n".repeat(100)})), 200);
    assert_eq!(post(json!({"name": "n".repeat(101)})), 422);
    assert_eq!(post(json!({"name": "  "})), 422);
    assert_eq!(post(json!({"name": "ada", "padding": "p".repeat(5000)})), 413);
    assert_eq!(post(json!({"nom": "ada"})), 400);
}
