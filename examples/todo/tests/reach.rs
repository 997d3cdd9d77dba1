//! Requests that reach the engine, over HTTP (Rocket's local client on a
//! SQLite file): creates, updates and deletes of tasks and projects, of
//! rows that exist and rows that do not, with values of every JSON type.
//! Each request's answer is predicted from a model of the rows the owner
//! has: a refusal where one is due (422 for a wrong type, an unknown field
//! or row, a taken id; 403 for a blank or over-long text), naming the diff,
//! changing nothing; a 200 otherwise, after which the database holds
//! exactly the model's rows.

use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models::{dump, rows};
use proptest::prelude::*;
use rocket::http::ContentType;
use rocket::local::blocking::Client;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The owner's rows as the server must have them: (model, id) → fields.
type Model = BTreeMap<(String, String), Map<String, Value>>;

struct App {
    client: Client,
    db: TestDb,
    token: String,
    owner: String,
    /// The owner's rows.
    model: RefCell<Model>,
    /// The cursor: the clock of the last answer.
    cursor: RefCell<i64>,
    /// Diff and row ids made so far.
    made: RefCell<usize>,
}

thread_local! {
    static APP: App = App::new();
}

impl App {
    fn new() -> App {
        let db = dbs::fresh(Backend::Sqlite).expect("a SQLite file");
        let client = Client::untracked(todo::rocket(&db.url).expect("the server")).expect("a client");
        let signup = |name: &str| -> (String, String) {
            let answer: Value = client.post("/signup").json(&json!({"name": name})).dispatch().into_json().expect("signup");
            (answer["auth_token"].as_str().expect("token").to_owned(), answer["owner"].as_str().expect("owner").to_owned())
        };
        let (token, owner) = signup("ada");
        // Another owner's rows: taken ids, and rows that must look missing.
        let (other, _) = signup("bob");
        let body = json!({"auth_token": other, "logical_clock": 0, "diffs": [
            diff("b1", "create", "task", json!({"id": "bob-task", "title": "b", "done": false})),
            diff("b2", "create", "project", json!({"id": "bob-project", "name": "b"})),
        ]});
        assert_eq!(client.post("/sync").body(body.to_string()).dispatch().status().code, 200);
        App { client, db, token, owner, model: RefCell::default(), cursor: RefCell::new(0), made: RefCell::new(0) }
    }

    fn next_id(&self, what: &str) -> String {
        *self.made.borrow_mut() += 1;
        format!("{what}{}", self.made.borrow())
    }
}

fn diff(id: &str, op: &str, model: &str, data: Value) -> Value {
    json!({"id": id, "owner": "", "logical_clock": 0, "utc_timestamp": 5, "type": op, "model": model,
           "json_data": data.to_string()})
}

/// A value of any JSON type, often one a field accepts.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        Just(json!(1.5)),
        "[a-z ]{0,12}".prop_map(Value::from),
        Just(json!("   ")),
        Just(json!("")),
        Just(json!("x".repeat(201))),
        Just(json!("ü".repeat(200))),
        Just(json!([])),
        Just(json!({"a": 1})),
    ]
}

/// What a request does.
#[derive(Debug, Clone)]
enum Change {
    /// A create of `model` (0: task, 1: project) with these fields, of a
    /// fresh id, or of a taken one (`taken`, picked among existing rows,
    /// the other owner's included).
    Create { model: usize, fields: Vec<(String, Value)>, taken: Option<usize> },
    /// An update of one field of an existing row (`row`) or of a missing one.
    Update { row: Option<usize>, field: String, value: Value },
    /// A delete of an existing row or of a missing one.
    Delete { row: Option<usize> },
}

fn change() -> impl Strategy<Value = Change> {
    let field = prop::sample::select(vec!["title", "done", "name", "colour"]).prop_map(String::from);
    let fields = prop::collection::vec((field.clone(), value()), 0..4);
    let task = (value(), value()).prop_map(|(title, done)| vec![("title".to_string(), title), ("done".to_string(), done)]);
    let project = value().prop_map(|name| vec![("name".to_string(), name)]);
    prop_oneof![
        3 => (0usize..2, prop_oneof![task, project, fields], prop::option::weighted(0.15, any::<usize>()))
            .prop_map(|(model, fields, taken)| Change::Create { model, fields, taken }),
        4 => (prop::option::weighted(0.9, any::<usize>()), field, value())
            .prop_map(|(row, field, value)| Change::Update { row, field, value }),
        1 => prop::option::weighted(0.8, any::<usize>()).prop_map(|row| Change::Delete { row }),
    ]
}

/// What a model's field accepts: `Err(422)` for a wrong type, `Err(403)` for
/// a text the rules refuse.
fn accepts(model: &str, field: &str, value: &Value) -> Result<(), u16> {
    match (model, field) {
        ("task", "title") | ("project", "name") => match value.as_str() {
            Some(text) if text.trim().is_empty() || text.chars().count() > 200 => Err(403),
            Some(_) => Ok(()),
            None => Err(422),
        },
        ("task", "done") => value.as_bool().map(|_| ()).ok_or(422),
        _ => Err(422), // an unknown field
    }
}

fn fields_of(model: &str) -> &'static [&'static str] {
    if model == "task" {
        &["title", "done"]
    } else {
        &["name"]
    }
}

/// The diff a change makes, and the answer it is due: `Ok(row after)` or
/// `Err(status)`.
fn plan(app: &App, change: &Change) -> (Value, String, Result<Option<((String, String), Option<Map<String, Value>>)>, u16>) {
    let model = app.model.borrow();
    let rows: Vec<(String, String)> = model.keys().cloned().collect();
    let id = app.next_id("d");
    match change {
        Change::Create { model: m, fields, taken } => {
            let name = ["task", "project"][*m];
            let row_id = match taken {
                // Ids are taken per model (table).
                Some(i) => {
                    let mut ids: Vec<String> = rows.iter().filter(|(m, _)| m == name).map(|(_, id)| id.clone()).collect();
                    ids.push(format!("bob-{name}"));
                    ids[i % ids.len()].clone()
                }
                None => app.next_id("r"),
            };
            let mut data = Map::new();
            data.insert("id".into(), json!(row_id));
            for (field, value) in fields {
                data.insert(field.clone(), value.clone());
            }
            // Unknown fields and types first (422), a missing field (422),
            // then the rules (403), then the database (a taken id, 422).
            let mut due: Result<(), u16> = Ok(());
            for (field, value) in data.iter().filter(|(k, _)| k.as_str() != "id") {
                match accepts(name, field, value) {
                    Err(422) => due = Err(422),
                    Err(status) if due.is_ok() => due = Err(status),
                    _ => {}
                }
            }
            if fields_of(name).iter().any(|f| !data.contains_key(*f)) {
                due = Err(422);
            }
            if due.is_ok() && taken.is_some() {
                due = Err(422);
            }
            let key = (name.to_string(), row_id);
            (diff(&id, "create", name, Value::Object(data.clone())), id, due.map(|()| Some((key, Some(data)))))
        }
        Change::Update { row, field, value } => {
            let key = match row.filter(|_| !rows.is_empty()) {
                Some(i) => rows[i % rows.len()].clone(),
                None => ("task".to_string(), "bob-task".to_string()),
            };
            let mut data = Map::new();
            data.insert("id".into(), json!(key.1));
            data.insert(field.clone(), value.clone());
            let data = Value::Object(data);
            let due = match accepts(&key.0, field, value) {
                Err(422) => Err(422),
                _ if !model.contains_key(&key) => Err(422),
                Err(status) => Err(status),
                Ok(()) => {
                    let mut after = model[&key].clone();
                    after.insert(field.clone(), value.clone());
                    Ok(Some((key.clone(), Some(after))))
                }
            };
            (diff(&id, "update", &key.0, data), id, due)
        }
        Change::Delete { row } => {
            let key = match row.filter(|_| !rows.is_empty()) {
                Some(i) => rows[i % rows.len()].clone(),
                None => ("project".to_string(), "bob-project".to_string()),
            };
            let due = if model.contains_key(&key) { Ok(Some((key.clone(), None))) } else { Err(422) };
            (diff(&id, "delete", &key.0, json!({"id": key.1})), id, due)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn requests_that_reach_the_engine_get_the_answer_due(changes in prop::collection::vec(change(), 1..6)) {
        APP.with(|app| {
            for change in &changes {
                let (diff, diff_id, due) = plan(app, change);
                let cursor = *app.cursor.borrow();
                let body = json!({"auth_token": app.token, "logical_clock": cursor, "diffs": [diff]});
                let before = dump(&app.db);
                let response = app.client.post("/sync").header(ContentType::JSON).body(body.to_string()).dispatch();
                let status = response.status().code;
                let answer: Value = response.into_json().expect("a JSON answer");
                match due {
                    Err(expected) => {
                        assert_eq!(status, expected, "{change:?}: {answer}");
                        assert_eq!(answer["diff_id"], json!(diff_id), "{change:?}: {answer}");
                        assert_eq!(dump(&app.db), before, "{change:?}: a refused sync changed the database");
                    }
                    Ok(effect) => {
                        assert_eq!(status, 200, "{change:?}: {answer}");
                        *app.cursor.borrow_mut() = answer["logical_clock"].as_i64().expect("a clock");
                        if let Some((key, after)) = effect {
                            let mut model = app.model.borrow_mut();
                            match after {
                                Some(row) => model.insert(key, row),
                                None => model.remove(&key),
                            };
                        }
                        let stored = rows(&mut dbs::connect(&app.db), &app.owner);
                        assert_eq!(stored, *app.model.borrow(), "{change:?}: the database is not what the model says");
                    }
                }
            }
        });
    }
}
