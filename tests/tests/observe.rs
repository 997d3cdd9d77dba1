//! What a sync tells its operator, captured by a test subscriber: one
//! `sync` span with its fields, the request id on the span and echoed in
//! the answer, a 500's error line inside the span, and no token and no
//! `json_data` in any line (Rocket's own lines included, through the `log`
//! bridge). Rocket's local client on SQLite files.

use mobync::db::{self, DbConnection, LogConnection, PoolSettings};
use mobync::{AuthError, SyncFairing};
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const TOKEN: &str = "token-of-ada-0123";
const SECRET: &str = "SECRET-TITLE-42";

/// Fields, as text.
type Fields = BTreeMap<String, String>;

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// A closed `sync` span, or an event with the fields of its spans.
#[derive(Debug, Clone)]
struct Line {
    level: tracing::Level,
    span: Option<String>,
    fields: Fields,
}

#[derive(Default)]
struct Captured {
    lines: Mutex<Vec<Line>>,
}

struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(&mut Collect(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        let mut span_name = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                span_name = Some(span.name().to_string());
                if let Some(own) = span.extensions().get::<Fields>() {
                    fields.extend(own.clone());
                }
            }
        }
        event.record(&mut Collect(&mut fields));
        fields.insert("target".into(), event.metadata().target().into());
        captured().lines.lock().expect("lines").push(Line { level: *event.metadata().level(), span: span_name, fields });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span.extensions().get::<Fields>().cloned().unwrap_or_default();
            let line = Line { level: *span.metadata().level(), span: Some(format!("closed {}", span.name())), fields };
            captured().lines.lock().expect("lines").push(line);
        }
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture)).expect("the only subscriber");
        // Rocket logs through `log`: into the same subscriber.
        tracing_log::LogTracer::init().expect("the only logger");
        Captured::default()
    })
}

/// The closed `sync` span of request `id`.
fn span_of(id: &str) -> Fields {
    let lines = captured().lines.lock().expect("lines");
    let found = lines.iter().find(|l| l.span.as_deref() == Some("closed sync") && l.fields.get("request_id").map(String::as_str) == Some(id));
    found.map(|l| l.fields.clone()).unwrap_or_else(|| panic!("no sync span {id}: {:#?}", &lines[lines.len().saturating_sub(5)..]))
}

fn app(db: &TestDb) -> Client {
    captured();
    let pool = db::pool_with::<DbConnection>(&db.url, &PoolSettings::default()).expect("pool");
    models::create_tables(&mut pool.get().expect("connection"));
    let auth = |_: &mut DbConnection, token: &str| match token {
        TOKEN => Ok("ada".to_string()),
        _ => Err(AuthError::refused("unknown auth_token")),
    };
    let rocket = rocket::build().attach(SyncFairing::new(pool, models::models(), auth));
    Client::untracked(rocket).expect("the app ignites")
}

fn diff(id: &str, op: &str, data: Value) -> Value {
    json!({"id": id, "owner": "", "logical_clock": 0, "utc_timestamp": 1, "type": op, "model": "task", "json_data": data.to_string()})
}

/// Posts a sync with `X-Request-Id: id` (if any): the status, the echoed
/// id, the answer.
fn sync(client: &Client, id: Option<&str>, cursor: i64, diffs: Vec<Value>) -> (Status, String, Value) {
    let body = json!({"auth_token": TOKEN, "logical_clock": cursor, "diffs": diffs}).to_string();
    let mut request = client.post("/sync").header(ContentType::JSON).body(body);
    if let Some(id) = id {
        request = request.header(Header::new("X-Request-Id", id.to_string()));
    }
    let response = request.dispatch();
    let echoed = response.headers().get_one("X-Request-Id").unwrap_or_default().to_string();
    (response.status(), echoed, response.into_json().unwrap_or(Value::Null))
}

fn expect(fields: &Fields, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(fields.get(*name).map(String::as_str), Some(*value), "{name} in {fields:?}");
    }
}

#[test]
fn a_sync_is_one_span_with_what_it_did_and_its_request_id() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let client = app(&db);
    let task = json!({"id": "t1", "title": SECRET, "done": false});
    let (status, echoed, _) = sync(&client, Some("obs-create"), 0, vec![diff("d1", "create", task)]);
    assert_eq!((status, echoed.as_str()), (Status::Ok, "obs-create"));
    let span = span_of("obs-create");
    let done = [("owner", "ada"), ("cursor", "0"), ("received", "1"), ("applied", "1"), ("dropped", "0"), ("sent", "0")];
    expect(&span, &done);
    expect(&span, &[("clock", "1"), ("status", "200")]);
    for timing in ["duration_ms", "db_ms"] {
        let ms: f64 = span[timing].parse().expect("a number");
        assert!(ms > 0.0, "{timing} {ms}");
    }
    assert!(!span.contains_key("code"), "no error code on success: {span:?}");

    // Another device deletes the row; a stale one updates it: its update is
    // dropped, and it is sent the delete.
    sync(&client, Some("obs-delete"), 1, vec![diff("d2", "delete", json!({"id": "t1"}))]);
    let (status, _, answer) = sync(&client, Some("obs-stale"), 1, vec![diff("d3", "update", json!({"id": "t1", "done": true}))]);
    assert_eq!((status, answer["diffs"].as_array().map(Vec::len)), (Status::Ok, Some(1)));
    expect(&span_of("obs-stale"), &[("received", "1"), ("applied", "0"), ("dropped", "1"), ("sent", "1"), ("clock", "2")]);

    // A refusal says its status and code.
    let (status, echoed, _) = sync(&client, Some("obs-ahead"), 99, vec![]);
    assert_eq!((status, echoed.as_str()), (Status::Conflict, "obs-ahead"));
    expect(&span_of("obs-ahead"), &[("owner", "ada"), ("cursor", "99"), ("status", "409"), ("code", "invalid_clock"), ("received", "0")]);

    // Without a usable id, a new one, echoed.
    for given in [None, Some("bad id with spaces")] {
        let (_, echoed, _) = sync(&client, given, 0, vec![]);
        assert_eq!(echoed.len(), 32, "{given:?} -> {echoed}");
        expect(&span_of(&echoed), &[("status", "200"), ("sent", "2")]);
    }
}

#[test]
fn a_500_is_logged_as_an_error_inside_the_span_of_its_request() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let client = app(&db);
    let mut conn = DbConnection::open(&db.url).expect("connection");
    conn.batch("CREATE TRIGGER no_tasks BEFORE INSERT ON tasks BEGIN SELECT RAISE(FAIL, 'the disk is on fire'); END;")
        .expect("trigger");
    let task = json!({"id": "t1", "title": SECRET, "done": false});
    let (status, echoed, answer) = sync(&client, Some("obs-500"), 0, vec![diff("d1", "create", task)]);
    assert_eq!((status, echoed.as_str(), answer["error"].clone()), (Status::InternalServerError, "obs-500", json!("internal")));
    let lines = captured().lines.lock().expect("lines").clone();
    let errors: Vec<&Line> =
        lines.iter().filter(|l| l.level == tracing::Level::ERROR && l.fields.get("request_id").map(String::as_str) == Some("obs-500")).collect();
    assert!(errors.iter().any(|l| l.fields["message"].contains("the disk is on fire")), "the cause, with the request id: {errors:#?}");
    assert!(errors.iter().any(|l| l.fields["message"] == "sync failed" && l.fields["status"] == "500"), "{errors:#?}");
    expect(&span_of("obs-500"), &[("status", "500"), ("code", "internal"), ("applied", "0")]);
}

#[test]
fn no_line_holds_a_token_or_json_data() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let client = app(&db);
    let task = json!({"id": "t9", "title": SECRET, "done": false});
    sync(&client, Some("obs-secret"), 0, vec![diff("d9", "create", task.clone())]);
    sync(&client, Some("obs-secret-again"), 0, vec![diff("d9", "create", task)]);
    // A refused token, a malformed body and a forbidden title too.
    let body = json!({"auth_token": format!("{TOKEN}-wrong"), "logical_clock": 0, "diffs": []}).to_string();
    client.post("/sync").header(ContentType::JSON).body(body).dispatch();
    client.post("/sync").header(ContentType::JSON).body(format!("{{\"auth_token\": \"{TOKEN}\", {SECRET}")).dispatch();
    let lines = captured().lines.lock().expect("lines").clone();
    // (A `log` record's target is in its field `log.target`.)
    assert!(lines.iter().any(|l| l.fields.get("log.target").is_some_and(|t| t.starts_with("rocket"))), "Rocket's lines are captured too");
    for line in &lines {
        let text = format!("{:?}", line.fields);
        assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{line:?}");
    }
}
