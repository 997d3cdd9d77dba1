//! Without a `tracing` subscriber, at Rocket's default log level (`info`),
//! one sync is at most one line of mobync's: status, counts and durations
//! together; the span's fields one by one only at `debug`. Captured with a
//! `log` logger installed before Rocket (which then keeps it): no test in
//! this file may install a `tracing` subscriber, which would turn `tracing`'s
//! `log` output off for the whole process. Rocket's local client on SQLite.

use mobync::db::{self, DbConnection, PoolSettings};
use mobync::{AuthError, SyncFairing};
use mobync_tests::dbs::{self, Backend};
use mobync_tests::models;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use serde_json::json;
use std::sync::Mutex;

const TOKEN: &str = "token-of-ada-0123";

/// One `log` record: level, target, text.
#[derive(Debug, Clone)]
struct Record {
    level: log::Level,
    target: String,
    text: String,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = Record { level: record.level(), target: record.target().to_string(), text: record.args().to_string() };
        RECORDS.lock().expect("records").push(line);
    }

    fn flush(&self) {}
}

/// mobync's records of the request `id` (its request id is in the span's
/// creation and in the closing line).
fn of_request(records: &[Record], id: &str) -> Vec<Record> {
    records.iter().filter(|r| r.target.starts_with("mobync") && r.text.contains(id)).cloned().collect()
}

#[test]
fn one_sync_logs_at_most_one_line_at_the_default_level_without_a_subscriber() {
    log::set_logger(&Logger).expect("the only logger");
    log::set_max_level(log::LevelFilter::Trace);
    assert!(!mobync::observe::has_subscriber());
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let pool = db::pool_with::<DbConnection>(&db.url, &PoolSettings::default()).expect("pool");
    models::create_tables(&mut pool.get().expect("connection"));
    let auth = |_: &mut DbConnection, token: &str| match token {
        TOKEN => Ok("ada".to_string()),
        _ => Err(AuthError::refused("unknown auth_token")),
    };
    let client = Client::untracked(rocket::build().attach(SyncFairing::new(pool, models::models(), auth))).expect("ignites");

    let task = json!({"id": "t1", "title": "milk", "done": false}).to_string();
    let diff = json!({"id": "d1", "owner": "", "logical_clock": 0, "utc_timestamp": 1, "type": "create", "model": "task", "json_data": task});
    let syncs = [
        ("quiet-create", TOKEN, vec![diff], Status::Ok, "sync status=200"),
        ("quiet-pull", TOKEN, vec![], Status::Ok, "sync status=200"),
        ("quiet-refused", "wrong-token", vec![], Status::Unauthorized, "sync refused status=401"),
    ];
    let before = RECORDS.lock().expect("records").len();
    for (id, token, diffs, status, _) in &syncs {
        let body = json!({"auth_token": token, "logical_clock": 0, "diffs": diffs}).to_string();
        let response = client.post("/sync").header(ContentType::JSON).header(Header::new("X-Request-Id", *id)).body(body).dispatch();
        assert_eq!(response.status(), *status, "{id}");
    }
    let records = RECORDS.lock().expect("records")[before..].to_vec();
    for (id, _, _, _, starts) in syncs {
        let mine = of_request(&records, id);
        let shown: Vec<&Record> = mine.iter().filter(|r| r.level <= log::Level::Info).collect();
        assert_eq!(shown.len(), 1, "{id}: one line at the default level: {shown:#?}");
        let line = &shown[0].text;
        assert!(line.starts_with(starts), "{id}: {line}");
        for field in ["request_id=", "received=", "applied=", "dropped=", "sent=", "duration_ms="] {
            assert!(line.contains(field), "{id}: {field} in {line}");
        }
        // The span's fields, one by one, at debug only.
        let debug: Vec<&Record> = mine.iter().filter(|r| r.level == log::Level::Debug).collect();
        assert!(debug.iter().any(|r| r.text.starts_with("sync;") || r.text.starts_with("++ sync;")), "{id}: {debug:#?}");
    }
    let create = &of_request(&records, "quiet-create").into_iter().find(|r| r.level == log::Level::Info).expect("line").text;
    for field in ["owner=\"ada\"", "received=1", "applied=1", "dropped=0", "sent=0", "clock=1"] {
        assert!(create.contains(field), "{field} in {create}");
    }
    // Every other line mobync printed at info or above during the syncs is
    // one of these: none without a request id.
    let stray: Vec<&Record> = records.iter().filter(|r| r.target.starts_with("mobync") && r.level <= log::Level::Info).collect();
    assert_eq!(stray.len(), 3, "{stray:#?}");
}
