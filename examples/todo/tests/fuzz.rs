//! Garbage at the HTTP boundary: arbitrary bytes, arbitrary JSON, valid
//! requests with one part broken, forged owners and replayed diff ids. Every
//! answer is a success or a 4xx JSON error of PROTOCOL.md's table, never a
//! 500, a panic or a hang; and a refused request changes nothing.

use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models::dump;
use proptest::prelude::*;
use rocket::http::{ContentType, Header};
use rocket::local::blocking::Client;
use serde_json::{json, Value};

struct App {
    client: Client,
    db: TestDb,
    token: String,
    owner: String,
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
        }
    }
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

/// Sends `body` and checks the answer is a success or a table error that
/// changed nothing. Returns the status.
fn send(body: Vec<u8>) -> u16 {
    with_app(|app| send_to(app, body))
}

fn send_to(app: &App, body: Vec<u8>) -> u16 {
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

/// A valid request with one part replaced by `value`.
fn broken(key: &str, value: Value) -> Value {
    let token = with_app(|app| app.token.clone());
    let mut diff = create("fresh", "t-new", json!("fine"));
    let mut body = request(&token, 1, vec![]);
    match key {
        "auth_token" | "logical_clock" | "diffs" => body[key] = value,
        "d.logical_clock" => diff["logical_clock"] = value,
        "field" => {
            diff["json_data"] = json!({"id": "t-new", "title": "x", "done": false, "colour": value})
                .to_string()
                .into()
        }
        _ => diff[key] = value,
    }
    if key != "diffs" {
        body["diffs"] = json!([diff]);
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        send(bytes);
    }

    #[test]
    fn arbitrary_json_is_refused_cleanly(value in json_value()) {
        prop_assert_ne!(send(value.to_string().into_bytes()), 200);
    }

    #[test]
    fn a_valid_request_with_one_broken_part_is_refused_cleanly(key in prop::sample::select(KEYS.to_vec()), value in json_value()) {
        send(broken(key, value).to_string().into_bytes());
    }
}

#[test]
fn deep_nesting_and_huge_numbers_are_malformed_requests() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(send(deep.into_bytes()), 400);
    with_app(|app| {
        let huge = format!(r#"{{"auth_token":"{}","logical_clock":1e400,"diffs":[]}}"#, app.token);
        assert_eq!(send_to(app, huge.into_bytes()), 400);
        // An integer past 2^63-1 is a cursor no clock reaches: 409.
        let huge = format!(
            r#"{{"auth_token":"{}","logical_clock":99999999999999999999999,"diffs":[]}}"#,
            app.token
        );
        assert_eq!(send_to(app, huge.into_bytes()), 409);
        let nested =
            json!({"id": "t-deep", "title": "x", "done": false, "more": (0..50).fold(json!(1), |v, _| json!([v]))});
        let mut diff = create("deep", "t-deep", json!("x"));
        diff["json_data"] = nested.to_string().into();
        assert_eq!(
            send_to(app, request(&app.token, 1, vec![diff]).to_string().into_bytes()),
            422
        );
    });
}

#[test]
fn a_forged_owner_is_ignored_and_a_replayed_diff_id_applies_nothing() {
    with_app(|app| {
        let mut forged = create("forged", "t-forged", json!("mine"));
        forged["owner"] = json!("somebody-else");
        assert_eq!(
            send_to(app, request(&app.token, 1, vec![forged]).to_string().into_bytes()),
            200
        );
        let rows = mobync_tests::models::rows(&mut dbs::connect(&app.db), &app.owner);
        assert!(
            rows.contains_key(&("task".to_string(), "t-forged".to_string())),
            "the row is the authenticated owner's"
        );

        // The seed's id again, with other content: known, so nothing happens.
        let before = dump(&app.db);
        let replay = create("seed", "t-replayed", json!("replayed"));
        assert_eq!(
            send_to(app, request(&app.token, 1, vec![replay]).to_string().into_bytes()),
            200
        );
        assert_eq!(dump(&app.db), before, "a replayed diff id was applied again");
    });
}
