//! Edge cases the database decides, through the engine on every backend: a
//! unique value of another column, two owners racing for one row id inside
//! runs of creates, and numbers that come back with the digits sent.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mobync::client::Device;
use mobync::db::{self, DbConnection, DieselStore, Dialect, Pool, Tables};
use mobync::{Diff, ErrorKind, Mobync, Models, OperationType::*, SyncError, SyncResponse};
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models::dump_tables;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

diesel::table! {
    labels (id) {
        id -> Text,
        owner -> Text,
        slug -> Text,
        weight -> Double,
    }
}

/// A label: its slug is unique across the table, its weight a float.
#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = labels)]
#[mobync(model = "label")]
pub struct Label {
    pub id: String,
    pub owner: String,
    pub slug: String,
    pub weight: f64,
}

struct Engine {
    engine: Mobync<DieselStore<DbConnection>, Models>,
    pool: Pool,
}

impl Engine {
    fn new(db: &TestDb) -> Engine {
        let pool = db::pool::<DbConnection>(&db.url).expect("pool");
        let mut conn = pool.get().expect("connection");
        let text = if conn.dialect() == Dialect::Mysql { "VARBINARY(255)" } else { "TEXT" };
        let slug = if conn.dialect() == Dialect::Mysql { "VARCHAR(64)" } else { "TEXT" };
        conn.batch_execute(&format!(
            "CREATE TABLE labels (id {text} NOT NULL PRIMARY KEY, owner {text} NOT NULL, slug {slug} NOT NULL UNIQUE, weight DOUBLE PRECISION NOT NULL)"
        ))
        .expect("labels");
        db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
        drop(conn);
        Engine { engine: Mobync::new(DieselStore::new(Tables::default()), Models::new().with::<Label>()), pool }
    }

    fn apply(&self, cursor: i64, diffs: Vec<Diff>, owner: &str) -> Result<SyncResponse, SyncError> {
        self.engine.apply(&mut self.pool.get().expect("a connection"), cursor, diffs, &owner.to_owned())
    }
}

fn label(id: &str, row: &str, slug: &str) -> Diff {
    Diff::new(id, Create, "label", json!({"id": row, "slug": slug, "weight": 1.0})).at(0, 10)
}

fn each_backend(test: impl Fn(&TestDb)) {
    for backend in dbs::backends() {
        if let Some(db) = dbs::fresh(backend) {
            test(&db);
        }
    }
}

const TABLES: [&str; 3] = ["diffs", "diffs_clocks", "diffs_dropped"];

#[test]
fn a_unique_value_of_another_column_is_422_naming_the_column_not_the_other_row() {
    each_backend(|db| {
        let engine = Engine::new(db);
        engine.apply(0, vec![label("a1", "l1", "urgent"), label("a2", "l2", "later")], "alice").expect("alice's labels");
        // The log and the labels themselves: a run's search for the diff at
        // fault inserts rows alone, which only the sync's rollback undoes.
        let state = || {
            let mut conn = engine.pool.get().expect("a connection");
            let rows: Vec<(String, String, String)> =
                labels::table.select((labels::id, labels::owner, labels::slug)).order(labels::id).load(&mut *conn).expect("labels");
            (dump_tables(db, &TABLES), rows)
        };
        let before = state();
        let cases: Vec<(&str, Vec<Diff>, &str)> = vec![
            ("a lone create", vec![label("b1", "l3", "urgent")], "b1"),
            ("a run of creates", vec![label("b1", "l3", "fresh"), label("b2", "l4", "urgent"), label("b3", "l5", "new")], "b2"),
        ];
        for (what, diffs, diff_id) in cases {
            let err = engine.apply(0, diffs, "bob").expect_err(what);
            assert_eq!((err.kind, err.diff_id.as_deref()), (ErrorKind::InvalidDiff, Some(diff_id)), "{:?} {what}: {err}", db.backend());
            assert!(err.message.contains("slug") && !err.message.contains("urgent"), "{:?} {what}: {}", db.backend(), err.message);
            assert_eq!(state(), before, "{:?} {what}", db.backend());
        }
        let update = Diff::new("a3", Update, "label", json!({"id": "l2", "slug": "urgent"})).at(1, 11);
        let err = engine.apply(1, vec![update], "alice").expect_err("a taken slug");
        assert_eq!((err.kind, err.diff_id.as_deref()), (ErrorKind::InvalidDiff, Some("a3")), "{:?}: {err}", db.backend());
        assert!(err.message.contains("slug"), "{}", err.message);
        assert_eq!(state(), before);
    });
}

#[test]
fn two_owners_racing_for_one_row_id_in_runs_of_creates_the_loser_gets_422() {
    each_backend(|db| {
        if db.backend() == Backend::Sqlite {
            return; // one writer at a time: the taken-id query sees the winner
        }
        let engine = Arc::new(Engine::new(db));
        engine.apply(0, vec![label("a0", "first", "a0")], "alice").expect("alice");
        // Bob's create of `race` is in, not yet committed, when alice's run
        // checks which ids are taken.
        let mut bob = dbs::connect(db);
        bob.batch_execute("BEGIN").expect("begin");
        bob.batch_execute("INSERT INTO labels (id, owner, slug, weight) VALUES ('race', 'bob', 'bobs', 1)").expect("bob's row");
        let alice = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                engine.apply(1, vec![label("a1", "calm", "a1"), label("a2", "race", "a2"), label("a3", "after", "a3")], "alice")
            })
        };
        assert!(dbs::wait_for_lock_waiter(db, Duration::from_secs(10)), "{:?}: alice's insert never waited", db.backend());
        bob.batch_execute("COMMIT").expect("bob commits");
        let err = alice.join().expect("alice's thread").expect_err("bob won the race");
        assert_eq!((err.kind, err.diff_id.as_deref()), (ErrorKind::InvalidDiff, Some("a2")), "{:?}: {err}", db.backend());
        let answer = engine.apply(1, vec![], "alice").expect("alice again");
        assert_eq!(answer.logical_clock, 1, "{:?}: nothing of the losing sync was kept", db.backend());
    });
}

#[test]
fn numbers_come_back_with_the_digits_the_client_sent() {
    each_backend(|db| {
        let engine = Engine::new(db);
        let digits = "0.1000000000000000055511151231257827021181583404541015625";
        let big = "123456789012345678901234567890";
        let data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!(r#"{{"id":"n1","slug":"n","weight":{digits}}}"#)).expect("json");
        let create = Diff::new("d1", Create, "label", serde_json::Value::Object(data)).at(0, 1);
        let data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!(r#"{{"id":"n1","weight":{big}}}"#)).expect("json");
        let update = Diff::new("d2", Update, "label", serde_json::Value::Object(data)).at(0, 2);
        engine.apply(0, vec![create], "alice").expect("create");
        engine.apply(1, vec![update], "alice").expect("update");
        let mut other = Device::new("other");
        let answer = engine.apply(0, vec![], "alice").expect("pull");
        let text = serde_json::to_string(&answer).expect("json");
        assert!(text.contains(digits) && text.contains(big), "{:?}: {text}", db.backend());
        // Another device that takes the answer holds the row as sent: the
        // create's fields with the update's number, digit for digit.
        assert!(other.receive(&answer), "{:?}: the answer was not taken", db.backend());
        assert_eq!(other.cursor(), 2, "{:?}", db.backend());
        let row = other.rows().get(&("label".to_string(), "n1".to_string())).expect("the row");
        assert_eq!(
            serde_json::to_string(row).expect("json"),
            format!(r#"{{"id":"n1","slug":"n","weight":{big}}}"#),
            "{:?}",
            db.backend()
        );
        // And a device that had the create pulls the update alone.
        let mut had_create = Device::new("had-create");
        assert!(had_create.receive(&engine.apply(0, vec![], "alice").expect("pull")));
        let update_only = engine.apply(1, vec![], "alice").expect("pull from 1");
        assert_eq!(update_only.diffs.len(), 1, "{:?}", db.backend());
        let text = serde_json::to_string(&update_only).expect("json");
        assert!(text.contains(big) && !text.contains(digits), "{:?}: {text}", db.backend());
    });
}

#[test]
fn a_number_beyond_a_float_columns_range_is_422_naming_the_field_and_stores_nothing() {
    each_backend(|db| {
        let engine = Engine::new(db);
        engine.apply(0, vec![label("a1", "l1", "kept")], "alice").expect("alice's label");
        let weights = || -> Vec<f64> {
            let mut conn = engine.pool.get().expect("a connection");
            labels::table.select(labels::weight).order(labels::id).load(&mut *conn).expect("weights")
        };
        let before = (dump_tables(db, &TABLES), weights());
        let out_of_range = |op, id: &str, row: &str, sign: &str| {
            let slug = if op == Create { r#","slug":"new""# } else { "" };
            let text = format!(r#"{{"id":"{row}"{slug},"weight":{sign}1e400}}"#);
            Diff::new(id, op, "label", serde_json::from_str::<serde_json::Value>(&text).expect("json")).at(0, 20)
        };
        for diff in [out_of_range(Create, "b1", "l2", ""), out_of_range(Update, "b2", "l1", "-")] {
            let what = format!("{:?} {:?}", db.backend(), diff.op);
            let err = engine.apply(1, vec![diff], "alice").expect_err(&what);
            assert_eq!((err.kind, err.kind.status()), (ErrorKind::InvalidDiff, 422), "{what}: {err}");
            assert_eq!(err.message, "label: field `weight`: a number is out of the range of its type", "{what}");
            assert_eq!((dump_tables(db, &TABLES), weights()), before, "{what}: nothing stored");
        }
    });
}
