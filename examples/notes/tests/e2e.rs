//! The notes server end to end, over real TCP: the binary as a user starts
//! it (`ROCKET_DATABASES` naming a fresh PostgreSQL database), devices that
//! sync the way the Dart client does.

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mobync::client::{Device, Rows};
use mobync::testing;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http::{self, error_of, HttpServer};
use mobync_tests::spawn::Spawned;
use notes::models::Note;
use notes::schema::notes as notes_table;
use serde_json::{json, Value};
use std::time::Duration;

struct NotesServer {
    db: TestDb,
    process: Spawned,
}

impl NotesServer {
    /// The server on a fresh database, with `pool` settings for its
    /// `#[database]` pool (e.g. `pool_size=1, timeout=1`).
    fn start(pool: &str) -> Option<NotesServer> {
        let db = dbs::fresh(Backend::Postgres)?;
        let databases = format!(r#"{{notes={{url="{}"{}{pool}}}}}"#, db.url, if pool.is_empty() { "" } else { ", " });
        let process = Spawned::start(env!("CARGO_BIN_EXE_notes"), &[("ROCKET_DATABASES", databases)], Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the notes server: {e}"));
        Some(NotesServer { db, process })
    }

    fn base(&self) -> &str {
        &self.process.base
    }

    fn sync_url(&self) -> String {
        format!("{}/sync", self.base())
    }

    fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).expect("the notes database")
    }

    fn signup(&self, name: &str) -> (String, i64) {
        let answer = http::post(&format!("{}/signup", self.base()), "application/json", json!({"name": name}).to_string().as_bytes());
        assert_eq!(answer.status, 200, "signup: {}", answer.body);
        let json = answer.json();
        (json["auth_token"].as_str().expect("a token").to_owned(), json["owner"].as_i64().expect("an integer owner"))
    }

    /// `owner`'s notes as wire rows.
    fn rows(&self, owner: i64) -> Rows {
        let notes: Vec<Note> = notes_table::table
            .filter(notes_table::owner.eq(owner as i32))
            .select(Note::as_select())
            .load(&mut self.conn())
            .expect("notes");
        notes
            .into_iter()
            .map(|n| {
                let row = json!({"id": n.id.to_string(), "title": n.title, "body": n.body, "tags": n.tags.0,
                                 "pinned_at": n.pinned_at.map(|t| t.to_rfc3339())});
                (("note".to_string(), n.id.to_string()), row.as_object().expect("an object").clone())
            })
            .collect()
    }

    /// Every row of the app's and mobync's tables, as text.
    fn dump(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let mut out = Vec::new();
        for table in ["users", "notes", "diffs", "diffs_clocks", "diffs_dropped"] {
            let sql = format!("SELECT CAST(t.* AS TEXT) AS line FROM {table} t ORDER BY 1");
            let lines: Vec<Line> = diesel::sql_query(&sql).load(&mut self.conn()).expect(table);
            out.push(format!("-- {table}"));
            out.extend(lines.into_iter().map(|l| l.line));
        }
        out
    }
}

/// Rows with their timestamps as instants: two spellings of one instant
/// (`+02:00` and `Z`) are the same value.
fn as_values(rows: &Rows) -> Vec<(String, Value, Option<DateTime<Utc>>)> {
    rows.iter()
        .map(|((_, id), row)| {
            let mut row = row.clone();
            let pinned = row.remove("pinned_at").and_then(|v| v.as_str().map(str::to_owned));
            let pinned = pinned.map(|t| DateTime::parse_from_rfc3339(&t).expect("RFC 3339").with_timezone(&Utc));
            (id.clone(), Value::Object(row), pinned)
        })
        .collect()
}

fn note(title: &str, body: Value, tags: Value, pinned_at: Value) -> Value {
    json!({"title": title, "body": body, "tags": tags, "pinned_at": pinned_at})
}

fn uuid(n: u32) -> String {
    format!("5f1c2a3e-8b4d-4c1a-9f3e-{n:012x}")
}

#[test]
fn two_devices_of_one_user_converge_on_notes_a_second_user_sees_none() {
    let Some(server) = NotesServer::start("") else { return };
    let (ada, ada_id) = server.signup("ada");
    let (bob, bob_id) = server.signup("bob");
    assert_ne!(ada_id, bob_id);
    let mut sync = HttpServer { sync_url: server.sync_url(), rows: |_: &str| Rows::new(), state: || server.dump().join("\n") };
    let (mut phone, mut laptop) = (Device::new("phone"), Device::new("laptop"));

    phone.create("note", &uuid(1), note("groceries", Value::Null, json!(["home", "food"]), json!("2024-05-01T10:00:00+02:00")), 1_000);
    phone.create("note", &uuid(2), note("ideas", json!("a sync server"), json!([]), Value::Null), 1_001);
    laptop.create("note", &uuid(3), note("work", json!("draft"), json!(["job"]), json!("2024-06-01T08:30:00Z")), 1_002);
    testing::sync(&mut sync, &ada, &mut phone);
    testing::sync(&mut sync, &ada, &mut laptop);
    testing::sync(&mut sync, &ada, &mut phone);
    phone.update("note", &uuid(3), json!({"body": null, "tags": ["job", "urgent"]}), 2_000);
    laptop.update("note", &uuid(1), json!({"pinned_at": null, "title": "groceries!"}), 2_001);
    laptop.delete("note", &uuid(2), 2_002);
    for _ in 0..2 {
        testing::sync(&mut sync, &ada, &mut phone);
        testing::sync(&mut sync, &ada, &mut laptop);
    }
    assert_eq!(phone.rows(), laptop.rows(), "the devices differ");
    assert_eq!(as_values(phone.rows()), as_values(&server.rows(ada_id)), "a device differs from the server");
    let rows = server.rows(ada_id);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[&("note".to_string(), uuid(3))]["body"], Value::Null);
    assert_eq!(rows[&("note".to_string(), uuid(3))]["tags"], json!(["job", "urgent"]));
    assert_eq!(rows[&("note".to_string(), uuid(1))]["pinned_at"], Value::Null);
    // The timestamp the laptop sent as `Z` is the instant stored.
    let stored: Option<DateTime<Utc>> = notes_table::table
        .filter(notes_table::id.eq(uuid::Uuid::parse_str(&uuid(3)).expect("uuid")))
        .select(notes_table::pinned_at)
        .first(&mut server.conn())
        .expect("note 3");
    assert_eq!(stored, Some("2024-06-01T08:30:00Z".parse().expect("instant")));

    // The database set created_at, just now.
    let created: Vec<DateTime<Utc>> = notes_table::table.select(notes_table::created_at).load(&mut server.conn()).expect("notes");
    for at in created {
        assert!((Utc::now() - at).num_seconds().abs() < 300, "created_at {at} was not set by the database now");
    }

    // Bob sees none of it and cannot touch it.
    let mut bobs = Device::new("bobs");
    let answer = testing::sync(&mut sync, &bob, &mut bobs);
    assert!(answer.diffs.is_empty() && bobs.rows().is_empty(), "bob saw {:?}", answer.diffs);
    assert!(server.rows(bob_id).is_empty());
    bobs.update("note", &uuid(1), json!({"title": "mine"}), 3_000);
    let before = server.dump();
    let err = mobync::testing::Server::sync(&mut sync, &bob, &bobs.request(&bob)).expect_err("not bob's note");
    assert_eq!(err.kind.code(), "invalid_diff");
    assert_eq!(server.dump(), before);
}

#[test]
fn what_the_model_does_not_allow_is_refused_and_changes_nothing() {
    let Some(server) = NotesServer::start("") else { return };
    let (token, _) = server.signup("ada");
    let diff = |id: &str, op: &str, data: Value| {
        json!({"id": id, "owner": "", "logical_clock": 0, "utc_timestamp": 1, "type": op, "model": "note",
               "json_data": data.to_string()})
    };
    let create = |id: &str, row: &str, fields: Value| {
        let mut data = json!({"id": row});
        data.as_object_mut().expect("object").extend(fields.as_object().expect("object").clone());
        diff(id, "create", data)
    };
    let seed = create("seed", &uuid(1), note("ok", Value::Null, json!([]), Value::Null));
    let body = |diffs: Vec<Value>, clock: i64| json!({"auth_token": token, "logical_clock": clock, "diffs": diffs}).to_string();
    assert_eq!(http::post(&server.sync_url(), "application/json", body(vec![seed], 0).as_bytes()).status, 200);

    let ok = |t: &str| note(t, Value::Null, json!(["a"]), Value::Null);
    let cases: Vec<(&str, Value, u16)> = vec![
        ("blank title", create("c1", &uuid(2), ok("   ")), 403),
        ("long title", create("c2", &uuid(2), ok(&"t".repeat(201))), 403),
        ("blank title update", diff("u1", "update", json!({"id": uuid(1), "title": ""})), 403),
        ("tags an object", create("c3", &uuid(2), note("x", Value::Null, json!({"a": 1}), Value::Null)), 422),
        ("tags with a number", create("c4", &uuid(2), note("x", Value::Null, json!(["a", 1]), Value::Null)), 422),
        ("tags null", create("c5", &uuid(2), note("x", Value::Null, Value::Null, Value::Null)), 422),
        ("body a number", create("c6", &uuid(2), note("x", json!(5), json!([]), Value::Null)), 422),
        ("pinned_at not a time", create("c7", &uuid(2), note("x", Value::Null, json!([]), json!("yesterday"))), 422),
        ("id not a UUID", create("c8", "note-1", ok("x")), 422),
        ("id a UUID in capitals", create("c9", &uuid(2).to_uppercase(), ok("x")), 422),
        ("created_at on the wire", create("c10", &uuid(2), json!({"title": "x", "body": null, "tags": [], "pinned_at": null, "created_at": "2020-01-01T00:00:00Z"})), 422),
        ("owner on the wire", diff("u2", "update", json!({"id": uuid(1), "owner": 2})), 422),
        ("update of a missing note", diff("u3", "update", json!({"id": uuid(9), "title": "x"})), 422),
        // Values the type takes but PostgreSQL's columns cannot hold.
        ("U+0000 in the title", create("c11", &uuid(2), ok("a\u{0}b")), 422),
        ("U+0000 in a tag", create("c12", &uuid(2), note("x", Value::Null, json!(["a\u{0}"]), Value::Null)), 422),
        ("U+0000 in an update", diff("u4", "update", json!({"id": uuid(1), "body": "\u{0}"})), 422),
        ("pinned_at before 4713 BC", create("c13", &uuid(2), note("x", Value::Null, json!([]), json!("-4714-11-23T00:00:00Z"))), 422),
        ("pinned_at after 294276", create("c14", &uuid(2), note("x", Value::Null, json!([]), json!("+294277-01-01T00:00:00Z"))), 422),
    ];
    // The same in a run of creates (one multi-row INSERT): the bad one is named.
    let run = vec![create("r1", &uuid(3), ok("fine")), create("r2", &uuid(4), ok("a\u{0}b")), create("r3", &uuid(5), ok("fine"))];
    let before = server.dump();
    let answer = http::post(&server.sync_url(), "application/json", body(run, 1).as_bytes());
    assert_eq!((answer.status, error_of(&answer).diff_id.as_deref()), (422, Some("r2")), "{}", answer.body);
    assert_eq!(server.dump(), before, "a refused run of creates changed the database");
    for (what, bad, status) in cases {
        let before = server.dump();
        let answer = http::post(&server.sync_url(), "application/json", body(vec![bad.clone()], 1).as_bytes());
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        let err = error_of(&answer);
        assert_eq!(err.diff_id.as_deref(), bad["id"].as_str(), "{what}");
        assert_eq!(server.dump(), before, "{what}: a refused sync changed the database");
    }
}

#[test]
fn a_pool_with_no_free_connection_answers_503_with_retry_after_not_a_hang() {
    let Some(server) = NotesServer::start("pool_size=1, timeout=1") else { return };
    let (token, _) = server.signup("ada");
    let body = json!({"auth_token": token, "logical_clock": 0, "diffs": []}).to_string();
    // Another session holds mobync's clocks: the first sync takes the pool's
    // only connection and waits on that lock.
    let mut holder = server.conn();
    holder.batch_execute("BEGIN; LOCK TABLE diffs_clocks IN ACCESS EXCLUSIVE MODE;").expect("lock");
    let url = server.sync_url();
    let first = {
        let (url, body) = (url.clone(), body.clone());
        std::thread::spawn(move || http::post(&url, "application/json", body.as_bytes()))
    };
    assert!(dbs::wait_for_lock_waiter(&server.db, Duration::from_secs(20)), "the first sync never reached the lock");
    let started = std::time::Instant::now();
    let answer = http::post(&url, "application/json", body.as_bytes());
    assert_eq!((answer.status, error_of(&answer).kind.code()), (503, "unavailable"), "{}", answer.body);
    assert!(answer.retry_after.is_some(), "a 503 says when to retry");
    assert!(started.elapsed() < Duration::from_secs(10), "the wait for a connection is bounded by the pool's timeout");
    holder.batch_execute("COMMIT").expect("release");
    let first = first.join().expect("the first sync");
    assert_eq!(first.status, 200, "{}", first.body);
}

#[test]
fn an_authenticator_that_cannot_answer_is_503_never_401() {
    let Some(server) = NotesServer::start("") else { return };
    let (token, _) = server.signup("ada");
    // The users table is gone: the lookup fails, which is not a refusal.
    server.conn().batch_execute("ALTER TABLE users RENAME TO users_away").expect("rename");
    let body = json!({"auth_token": token, "logical_clock": 0, "diffs": []}).to_string();
    let answer = http::post(&server.sync_url(), "application/json", body.as_bytes());
    assert_eq!((answer.status, error_of(&answer).kind.code()), (503, "unavailable"), "{}", answer.body);
    assert!(answer.retry_after.is_some());
    server.conn().batch_execute("ALTER TABLE users_away RENAME TO users").expect("rename back");
    assert_eq!(http::post(&server.sync_url(), "application/json", body.as_bytes()).status, 200);
    let wrong = json!({"auth_token": "guess", "logical_clock": 0, "diffs": []}).to_string();
    assert_eq!(http::post(&server.sync_url(), "application/json", wrong.as_bytes()).status, 401);
}

#[test]
fn without_a_postgresql_the_server_says_how_to_point_it_at_one() {
    let databases = r#"{notes={url="postgres://postgres@127.0.0.1:1/notes"}}"#.to_string();
    let err = Spawned::start(env!("CARGO_BIN_EXE_notes"), &[("ROCKET_DATABASES", databases)], Duration::from_secs(60))
        .err()
        .expect("no server on port 1");
    assert!(err.contains("ROCKET_DATABASES"), "{err}");
}
