//! Garbage at the HTTP boundary: arbitrary bytes, arbitrary JSON, valid
//! requests with one part broken, forged owners and replayed diff ids. Every
//! answer is a success or a 4xx JSON error of PROTOCOL.md's table, never a
//! 500, a panic or a hang; each case's status is the one PROTOCOL.md's
//! order of checks gives it ([`expected`]); a refused request changes
//! nothing, and an accepted one stores its row. Each case has its own diff
//! id and row id, so an accepted case is never a replay of an earlier one
//! (a replay is a case of its own: 200, nothing applied).

use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models::dump;
use proptest::prelude::*;
use rocket::http::{ContentType, Header};
use rocket::local::blocking::Client;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

struct App {
    client: Client,
    db: TestDb,
    token: String,
    owner: String,
    /// The owner's clock: the last answer's.
    clock: Cell<i64>,
    /// The diff ids the server has accepted.
    known: RefCell<HashSet<String>>,
}

thread_local! {
    /// One server per test thread (Rocket's blocking client is not `Sync`).
    static APP: App = App::new();
}

/// Runs `f` with this thread's server.
fn with_app<T>(f: impl FnOnce(&App) -> T) -> T {
    APP.with(f)
}

impl App {
    fn new() -> App {
        let db = dbs::fresh(Backend::Sqlite).expect("a SQLite file");
        let client = Client::untracked(todo::rocket(&db.url).expect("the server")).expect("a client");
        let answer: Value = client
            .post("/signup")
            .json(&json!({"name": "ada"}))
            .dispatch()
            .into_json()
            .expect("signup");
        let token = answer["auth_token"].as_str().expect("token").to_owned();
        let owner = answer["owner"].as_str().expect("owner").to_owned();
        let seed = request(&token, 0, vec![create("seed", "t1", json!("first"))]);
        let status = client.post("/sync").body(seed.to_string()).dispatch().status().code;
        assert_eq!(status, 200);
        App {
            client,
            db,
            token,
            owner,
            clock: Cell::new(1),
            known: RefCell::new(HashSet::from(["seed".to_string()])),
        }
    }
}

/// A number no other case of this run has: each case's own diff id and row.
fn fresh() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

fn create(id: &str, row: &str, title: Value) -> Value {
    json!({"id": id, "owner": "", "logical_clock": 1, "utc_timestamp": 5, "type": "create", "model": "task",
           "json_data": json!({"id": row, "title": title, "done": false}).to_string()})
}

fn request(token: &str, clock: i64, diffs: Vec<Value>) -> Value {
    json!({"auth_token": token, "logical_clock": clock, "diffs": diffs})
}

const CODES: [(u16, &str); 6] = [
    (400, "malformed_request"),
    (401, "unauthenticated"),
    (403, "forbidden"),
    (409, "invalid_clock"),
    (413, "payload_too_large"),
    (422, "invalid_diff"),
];

/// What a case must do.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refused with this status; nothing changes.
    Refused(u16),
    /// 200, and the diff `id` creates the task `row`.
    Creates { id: String, row: String },
    /// 200, and nothing changes (no diffs, or a replayed diff id).
    Nothing,
}

/// Sends `body`, checks the answer is a success or a table error, and that
/// it is `expect`: its status, and what the database holds afterwards.
fn send(body: Vec<u8>, expect: Expect) {
    with_app(|app| {
        send_to(app, body.clone(), expect.clone());
    })
}

fn send_to(app: &App, body: Vec<u8>, expect: Expect) -> u16 {
    let text = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
    let before = dump(&app.db);
    let status = answer(app, body);
    let after = dump(&app.db);
    match &expect {
        Expect::Refused(wanted) => assert_eq!(status, *wanted, "{text}"),
        Expect::Nothing => {
            assert_eq!(status, 200, "{text}");
            assert_eq!(after, before, "nothing was to be applied: {text}");
        }
        Expect::Creates { id, row } => {
            assert_eq!(status, 200, "{text}");
            let rows = mobync_tests::models::rows(&mut dbs::connect(&app.db), &app.owner);
            assert_eq!(
                rows.get(&("task".to_string(), row.clone())).map(|r| Value::Object(r.clone())),
                Some(json!({"id": row, "title": "fine", "done": false})),
                "the row of an accepted create: {text}"
            );
            let log = after.iter().skip_while(|line| *line != "-- diffs").skip(1).take_while(|line| !line.starts_with("-- "));
            let logged = log.filter(|line| line.starts_with(&format!("{id}|"))).count();
            assert_eq!(logged, 1, "the diff {id} is in the log once: {after:?}");
            assert_eq!(after.len(), before.len() + 2, "one row and one diff more: {text}");
            app.known.borrow_mut().insert(id.clone());
        }
    }
    status
}

/// Sends `body` and checks the answer is a success or a 4xx of the table,
/// and that a refused request changed nothing. Returns the status.
fn answer(app: &App, body: Vec<u8>) -> u16 {
    let before = dump(&app.db);
    let response = app
        .client
        .post("/sync")
        .header(ContentType::JSON)
        .header(Header::new("X-Test", "fuzz"))
        .body(body)
        .dispatch();
    let status = response.status().code;
    let text = response.into_string().unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    if status == 200 {
        assert_eq!(answer["success"], true, "{text}");
        app.clock.set(answer["logical_clock"].as_i64().expect("a clock"));
        return status;
    }
    let code = answer["error"].as_str().unwrap_or_default();
    assert!(
        CODES.contains(&(status, code)),
        "{status} {code} is not a 4xx of the table: {text}"
    );
    assert_eq!(answer["success"], false);
    assert_eq!(dump(&app.db), before, "a refused request changed the database: {text}");
    status
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(u64::MAX)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEYS: [&str; 11] = [
    "auth_token",
    "logical_clock",
    "diffs",
    "id",
    "owner",
    "d.logical_clock",
    "utc_timestamp",
    "type",
    "model",
    "json_data",
    "field",
];

/// A valid request (a create of a new row, with its own diff id and row
/// id) with one part replaced by `value`, and what it must do.
fn broken(key: &str, value: Value) -> (Value, Expect) {
    let n = fresh();
    let (id, row) = (format!("fresh-{n}"), format!("t-new-{n}"));
    let token = with_app(|app| app.token.clone());
    let mut diff = create(&id, &row, json!("fine"));
    let mut body = request(&token, 1, vec![]);
    match key {
        "auth_token" | "logical_clock" | "diffs" => body[key] = value.clone(),
        "d.logical_clock" => diff["logical_clock"] = value.clone(),
        "field" => {
            diff["json_data"] = json!({"id": row, "title": "x", "done": false, "colour": value})
                .to_string()
                .into()
        }
        _ => diff[key] = value.clone(),
    }
    if key != "diffs" {
        body["diffs"] = json!([diff]);
    }
    let expect = with_app(|app| expected(app, key, &value, id, row));
    (body, expect)
}

/// A non-negative integer that fits an i64: what a diff's clock and
/// timestamp must be.
fn count(value: &Value) -> bool {
    value.as_i64().is_some_and(|n| n >= 0)
}

/// What PROTOCOL.md's order of checks makes of the request [`broken`]
/// builds with `key` set to `value`: the envelope (400), the token (401),
/// the cursor (409), each diff's shape (400), its consistency (422).
fn expected(app: &App, key: &str, value: &Value, id: String, row: String) -> Expect {
    use Expect::*;
    let creates = Creates { id, row: row.clone() };
    match key {
        "auth_token" => match value {
            Value::String(_) | Value::Null => Refused(401),
            _ => Refused(400),
        },
        "logical_clock" => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(cursor) if (0..=app.clock.get()).contains(&cursor) => creates,
                _ => Refused(409),
            },
            _ => Refused(400),
        },
        "diffs" => match value {
            Value::Array(items) if items.is_empty() => Nothing,
            // A diff needs six fields: none of the generated ones has them.
            _ => Refused(400),
        },
        "d.logical_clock" | "utc_timestamp" => match count(value) {
            true => creates,
            false => Refused(400),
        },
        "id" => match value.as_str() {
            Some(text) if !text.is_empty() && !text.contains('\0') && text.len() <= 255 => {
                match app.known.borrow().contains(text) {
                    true => Nothing,
                    false => Creates { id: text.to_owned(), row },
                }
            }
            _ => Refused(400),
        },
        "owner" => creates,
        "type" => match value.as_str() {
            Some("create") => creates,
            // An update of a row the owner does not have; a delete with more
            // than `id` in its json_data.
            Some("update" | "delete") => Refused(422),
            _ => Refused(400),
        },
        "model" => match value.as_str() {
            Some("task") => creates,
            Some(_) => Refused(422),
            None => Refused(400),
        },
        // A string or an object, but never a task's fields (a string is
        // not even JSON text of an object with them).
        "json_data" => match value {
            Value::String(_) | Value::Object(_) => Refused(422),
            _ => Refused(400),
        },
        "field" => Refused(422),
        other => unreachable!("{other}"),
    }
}

/// What the envelope checks make of an arbitrary JSON body: 400 unless it
/// is an object with an integer `logical_clock`, an array `diffs` and a
/// string (or no) `auth_token`, then 401 (the token is not one).
fn envelope_status(value: &Value) -> u16 {
    let Value::Object(fields) = value else { return 400 };
    let integer = |v: Option<&Value>| v.is_some_and(|v| v.is_i64() || v.is_u64());
    let token_ok = matches!(fields.get("auth_token"), None | Some(Value::Null | Value::String(_)));
    match integer(fields.get("logical_clock")) && fields.get("diffs").is_some_and(Value::is_array) && token_ok {
        true => 401,
        false => 400,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let status = serde_json::from_slice::<Value>(&bytes).map_or(400, |value| envelope_status(&value));
        send(bytes, Expect::Refused(status));
    }

    #[test]
    fn arbitrary_json_is_refused_cleanly(value in json_value()) {
        send(value.to_string().into_bytes(), Expect::Refused(envelope_status(&value)));
    }

    #[test]
    fn a_valid_request_with_one_broken_part_is_refused_cleanly(key in prop::sample::select(KEYS.to_vec()), value in json_value()) {
        let (body, expect) = broken(key, value);
        send(body.to_string().into_bytes(), expect);
    }
}

/// Each key of [`broken`] with values of each JSON type and the edges of
/// its checks, so that every branch of [`expected`] is taken in every run
/// (the generated values alone rarely hit "create" or an empty `diffs`).
#[test]
fn a_valid_request_with_one_part_set_to_each_edge_gets_its_status() {
    let values = [
        json!(null), json!(true), json!(0), json!(1), json!(-1), json!(2.0), json!(i64::MAX), json!(u64::MAX),
        json!(""), json!("\u{0}"), json!("x"), json!("create"), json!("update"), json!("delete"), json!("task"),
        json!("seed"), json!([]), json!([1]), json!({}), json!({"id": "t"}), json!("x".repeat(256)),
    ];
    let mut seen = HashSet::new();
    for key in KEYS {
        for value in values.clone() {
            let (body, expect) = broken(key, value);
            seen.insert(std::mem::discriminant(&expect));
            with_app(|app| send_to(app, body.to_string().into_bytes(), expect));
        }
    }
    assert_eq!(seen.len(), 3, "every kind of outcome was checked");
}

#[test]
fn deep_nesting_and_huge_numbers_are_malformed_requests() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    send(deep.into_bytes(), Expect::Refused(400));
    with_app(|app| {
        let huge = format!(r#"{{"auth_token":"{}","logical_clock":1e400,"diffs":[]}}"#, app.token);
        send_to(app, huge.into_bytes(), Expect::Refused(400));
        // An integer past 2^63-1 is a cursor no clock reaches: 409.
        let huge = format!(
            r#"{{"auth_token":"{}","logical_clock":99999999999999999999999,"diffs":[]}}"#,
            app.token
        );
        send_to(app, huge.into_bytes(), Expect::Refused(409));
        let nested =
            json!({"id": "t-deep", "title": "x", "done": false, "more": (0..50).fold(json!(1), |v, _| json!([v]))});
        let mut diff = create("deep", "t-deep", json!("x"));
        diff["json_data"] = nested.to_string().into();
        send_to(app, request(&app.token, 1, vec![diff]).to_string().into_bytes(), Expect::Refused(422));
    });
}

#[test]
fn a_forged_owner_is_ignored_and_a_replayed_diff_id_applies_nothing() {
    with_app(|app| {
        let mut forged = create("forged", "t-forged", json!("fine"));
        forged["owner"] = json!("somebody-else");
        let body = request(&app.token, 1, vec![forged]).to_string().into_bytes();
        send_to(app, body, Expect::Creates { id: "forged".into(), row: "t-forged".into() });
        let theirs = mobync_tests::models::rows(&mut dbs::connect(&app.db), "somebody-else");
        assert!(theirs.is_empty(), "the row is the authenticated owner's, not the forged one's: {theirs:?}");

        // The seed's id again, with other content: known, so nothing happens.
        let replay = create("seed", "t-replayed", json!("replayed"));
        send_to(app, request(&app.token, 1, vec![replay]).to_string().into_bytes(), Expect::Nothing);
    });
}
