//! Every value a column cannot hold is refused before anything is written,
//! and the message names the field: a number beyond its float type's range
//! (which would be stored as `Infinity`), a string for an integer, a date
//! that does not exist or has text after it. The values a column can hold
//! come back exactly. On an in-memory SQLite database through the engine.

use diesel::prelude::*;
use mobync::db::{DieselStore, Tables};
use mobync::{Diff, ErrorKind, Mobync, Models, OperationType::*, SyncModel, SyncResponse, SyncError};
use serde_json::Value;

diesel::table! {
    expenses (id) {
        id -> Text,
        owner -> Text,
        cents -> BigInt,
        spent_on -> Date,
        rate -> Nullable<Double>,
        ratio -> Float,
    }
}

/// The issue's kind of model: an `i64`, a date, a nullable `f64`, an `f32`.
#[derive(Queryable, Selectable, Debug, PartialEq, mobync::Syncable)]
#[diesel(table_name = expenses)]
#[mobync(model = "expense", connection = diesel::SqliteConnection)]
pub struct Expense {
    pub id: String,
    pub owner: String,
    pub cents: i64,
    pub spent_on: chrono::NaiveDate,
    pub rate: Option<f64>,
    pub ratio: f32,
}

struct Db {
    conn: SqliteConnection,
    engine: Mobync<DieselStore<SqliteConnection>, Models<SqliteConnection, String>>,
}

impl Db {
    fn new() -> Db {
        let mut conn = SqliteConnection::establish(":memory:").expect("sqlite");
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "CREATE TABLE expenses (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, cents BIGINT NOT NULL, \
             spent_on DATE NOT NULL, rate DOUBLE, ratio FLOAT NOT NULL)",
        )
        .expect("table");
        mobync::db::migrations::run(&mut conn, &Tables::default()).expect("migrations");
        Db { conn, engine: Mobync::new(DieselStore::new(Tables::default()), Models::new().with::<Expense>()) }
    }

    fn apply(&mut self, cursor: i64, diffs: Vec<Diff>) -> Result<SyncResponse, SyncError> {
        self.engine.apply(&mut self.conn, cursor, diffs, &"ada".to_owned())
    }

    /// The rows and the diff log, to show that nothing changed.
    fn state(&mut self) -> (Vec<Expense>, i64) {
        let rows = expenses::table.select(Expense::as_select()).order(expenses::id).load(&mut self.conn).expect("rows");
        let logged = mobync::db::schema::diffs::table.count().get_result(&mut self.conn).expect("log");
        (rows, logged)
    }
}

/// A diff whose `json_data` is `text` as sent (numbers keep their digits).
fn diff(id: &str, op: mobync::OperationType, text: &str) -> Diff {
    let data: Value = serde_json::from_str(text).expect("json");
    Diff::new(id, op, "expense", data).at(0, 10)
}

const GOOD: &str = r#"{"id": "e1", "cents": 1250, "spent_on": "2026-12-07", "rate": 0.5, "ratio": 1.5}"#;

/// Creates and updates each holding one value its column cannot hold, and
/// the field the message must name.
fn refused() -> Vec<(Diff, &'static str)> {
    vec![
        (diff("c1", Create, r#"{"id": "e2", "cents": 1, "spent_on": "2026-12-07", "rate": 1e400, "ratio": 1}"#), "rate"),
        (diff("c2", Create, r#"{"id": "e2", "cents": 1, "spent_on": "2026-12-07", "rate": null, "ratio": 1e39}"#), "ratio"),
        (diff("c3", Create, r#"{"id": "e2", "cents": "100", "spent_on": "2026-12-07", "rate": null, "ratio": 1}"#), "cents"),
        (diff("c4", Create, r#"{"id": "e2", "cents": 1.5, "spent_on": "2026-12-07", "rate": null, "ratio": 1}"#), "cents"),
        (diff("c5", Create, r#"{"id": "e2", "cents": 1e400, "spent_on": "2026-12-07", "rate": null, "ratio": 1}"#), "cents"),
        (diff("c6", Create, r#"{"id": "e2", "cents": 1, "spent_on": "2026-13-07", "rate": null, "ratio": 1}"#), "spent_on"),
        (diff("c7", Create, r#"{"id": "e2", "cents": 1, "spent_on": "2026-12-07x", "rate": null, "ratio": 1}"#), "spent_on"),
        (diff("u1", Update, r#"{"id": "e1", "rate": -1e400}"#), "rate"),
        (diff("u2", Update, r#"{"id": "e1", "ratio": -3.5e38}"#), "ratio"),
        (diff("u3", Update, r#"{"id": "e1", "cents": 9223372036854775808}"#), "cents"),
        (diff("u4", Update, r#"{"id": "e1", "spent_on": "2026-02-30"}"#), "spent_on"),
        (diff("u5", Update, r#"{"id": "e1", "cents": null}"#), "cents"),
    ]
}

#[test]
fn every_value_a_column_cannot_hold_is_refused_naming_the_field_and_nothing_changes() {
    let mut db = Db::new();
    db.apply(0, vec![diff("d1", Create, GOOD)]).expect("the first expense");
    let before = db.state();
    for (diff, field) in refused() {
        let what = format!("{} {}", diff.id, Value::Object(diff.data.clone()));
        let checked = Expense::check(&diff).expect_err(&what);
        let err = db.apply(1, vec![diff]).expect_err(&what);
        assert_eq!(err.kind, ErrorKind::InvalidDiff, "{what}: {err}");
        assert_eq!(err.message, checked.message, "{what}");
        assert!(err.message.starts_with(&format!("expense: field `{field}`: ")), "{what}: {}", err.message);
        assert_eq!(db.state(), before, "{what}: nothing stored");
    }
}

#[test]
fn the_messages_say_what_is_wrong_with_the_value() {
    let messages: Vec<String> = refused().into_iter().map(|(diff, _)| Expense::check(&diff).unwrap_err().message).collect();
    assert_eq!(messages[0], "expense: field `rate`: a number is out of the range of its type");
    assert_eq!(messages[2], r#"expense: field `cents`: invalid type: string "100", expected i64"#);
    assert_eq!(messages[3], "expense: field `cents`: invalid number");
    assert_eq!(messages[5], "expense: field `spent_on`: input is out of range");
    assert_eq!(messages[6], "expense: field `spent_on`: trailing input");
    assert_eq!(messages[11], "expense: field `cents`: invalid type: null, expected i64");
}

#[test]
fn values_at_the_edge_of_a_column_come_back_exactly() {
    let mut db = Db::new();
    let text = r#"{"id": "e9", "cents": 9223372036854775807, "spent_on": "0001-01-01", "rate": 5e-324, "ratio": 3.4028235e38}"#;
    db.apply(0, vec![diff("d1", Create, text)]).expect("the edges fit");
    let update = diff("d2", Update, r#"{"id": "e9", "rate": 1.7976931348623157e308}"#);
    db.apply(1, vec![update]).expect("f64::MAX fits");
    let (rows, _) = db.state();
    assert_eq!(rows[0].cents, i64::MAX);
    assert_eq!(rows[0].rate, Some(f64::MAX));
    assert_eq!(rows[0].ratio, f32::MAX);
}

#[test]
fn a_taken_id_reads_with_the_right_article() {
    let mut db = Db::new();
    db.apply(0, vec![diff("d1", Create, GOOD)]).expect("the first expense");
    let err = db.apply(1, vec![diff("d2", Create, GOOD)]).expect_err("taken");
    assert_eq!(err.message, r#"an expense with id "e1" already exists"#);
}
