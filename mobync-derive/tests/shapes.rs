//! Model shapes beyond the default: the app's own connection type (one or
//! several), integer owners, wire names of the app's choosing, and skipped
//! columns the database fills. Run on in-memory SQLite through the engine.

use diesel::prelude::*;
use mobync::db::{self, DbConnection, DieselStore, LogConnection, Tables};
use mobync::{Diff, ErrorKind, Mobync, Models, OperationType::*, SyncModel, Syncable};
use serde_json::{json, Value};

diesel::table! {
    items (item_id) {
        item_id -> Text,
        user_id -> Integer,
        #[sql_name = "label"]
        label_text -> Text,
        qty -> BigInt,
        created -> Text,
    }
}

diesel::table! {
    ledgers (id) {
        id -> Text,
        owner -> BigInt,
        amount -> Double,
    }
}

/// On the app's own `SqliteConnection` and on mobync's enum; an `i32`
/// owner; a field renamed on the wire; a column the database fills.
#[derive(Queryable, Selectable, Debug, Clone, PartialEq, mobync::Syncable)]
#[diesel(table_name = items)]
#[mobync(model = "item", connection = diesel::SqliteConnection, connection = mobync::db::DbConnection, validate = rules::item)]
pub struct Item {
    #[mobync(id)]
    pub item_id: String,
    #[mobync(owner)]
    pub user_id: i32,
    #[mobync(rename = "label")]
    #[diesel(column_name = label_text)]
    pub label_text: String,
    #[mobync(rename = "quantity")]
    pub qty: i64,
    #[mobync(skip)]
    pub created: String,
}

/// An `i64` owner, on `SqliteConnection` only.
#[derive(Queryable, Selectable, Debug, mobync::Syncable)]
#[diesel(table_name = ledgers)]
#[mobync(connection = diesel::SqliteConnection)]
pub struct Ledger {
    pub id: String,
    pub owner: i64,
    pub amount: f64,
}

mod rules {
    pub fn item(owner: &i32, item: &super::Item) -> Result<(), String> {
        if item.qty < 0 {
            return Err(format!("user {owner}: a quantity is never negative"));
        }
        // The rule of a create sees a skipped column at its type's default
        // (the database fills it on insert), that of an update the stored value.
        if !["", "by the database"].contains(&item.created.as_str()) {
            return Err(format!("unexpected skipped column {:?}", item.created));
        }
        Ok(())
    }
}

fn sqlite() -> diesel::SqliteConnection {
    let mut conn = diesel::SqliteConnection::establish(":memory:").expect("sqlite");
    conn.batch(
        "CREATE TABLE items (item_id TEXT PRIMARY KEY NOT NULL, user_id INTEGER NOT NULL, label TEXT NOT NULL, \
         qty BIGINT NOT NULL, created TEXT NOT NULL DEFAULT 'by the database');
         CREATE TABLE ledgers (id TEXT PRIMARY KEY NOT NULL, owner BIGINT NOT NULL, amount DOUBLE NOT NULL);",
    )
    .expect("tables");
    db::migrations::run(&mut conn, &Tables::default()).expect("migrations");
    conn
}

fn create(id: &str, data: Value) -> Diff {
    Diff::new(id, Create, "item", data).at(0, 10)
}

#[test]
fn wire_names_are_the_renamed_ones() {
    assert_eq!(Item::FIELDS, ["id", "label", "quantity"]);
    assert_eq!(Ledger::MODEL, "ledgers");
    let unknown = Item::check(&create("d", json!({"id": "i1", "label_text": "x", "quantity": 1}))).unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::InvalidDiff);
    assert!(unknown.message.contains("label_text"), "{}", unknown.message);
}

#[test]
fn the_engine_syncs_a_model_on_the_apps_own_connection_with_an_integer_owner() {
    let mut conn = sqlite();
    let engine = Mobync::new(DieselStore::new(Tables::default()), Models::<diesel::SqliteConnection, i32>::new().with::<Item>());
    let answer = engine
        .apply(&mut conn, 0, vec![create("d1", json!({"id": "i1", "label": "bolts", "quantity": 40}))], &7)
        .expect("sync");
    assert_eq!(answer.logical_clock, 1);
    let stored: Item = items::table.select(Item::as_select()).first(&mut conn).expect("row");
    assert_eq!(
        stored,
        Item { item_id: "i1".into(), user_id: 7, label_text: "bolts".into(), qty: 40, created: "by the database".into() }
    );
    // Another owner (another integer) sees nothing and cannot touch it.
    let other = engine.apply(&mut conn, 0, vec![], &8).expect("sync");
    assert!(other.diffs.is_empty());
    let steal = Diff::new("d2", Update, "item", json!({"id": "i1", "quantity": 0})).at(0, 11);
    assert_eq!(engine.apply(&mut conn, 0, vec![steal], &8).unwrap_err().kind, ErrorKind::InvalidDiff);
    // The owner's second device gets the row under its wire names.
    let answer = engine.apply(&mut conn, 0, vec![], &7).expect("sync");
    assert_eq!(answer.diffs[0].data, *json!({"id": "i1", "label": "bolts", "quantity": 40}).as_object().unwrap());
    assert_eq!(
        Item::read(&mut conn, &7, "i1").expect("read").map(Value::Object),
        Some(json!({"id": "i1", "label": "bolts", "quantity": 40}))
    );
    // The rule gets the owner in its own type.
    let negative = Diff::new("d3", Update, "item", json!({"id": "i1", "quantity": -1})).at(1, 12);
    let err = engine.apply(&mut conn, 1, vec![negative], &7).unwrap_err();
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Forbidden, "user 7: a quantity is never negative"));
}

#[test]
fn an_update_never_touches_a_skipped_column() {
    let mut conn = sqlite();
    let owner = 1;
    for d in [create("d1", json!({"id": "i1", "label": "a", "quantity": 1})), Diff::new("d2", Update, "item", json!({"id": "i1", "label": "b"}))] {
        Item::check(&d).expect("check");
        Item::validate_all(&mut conn, &owner, &[&d]).expect("rules");
        match d.op {
            Create => <Item as Syncable<diesel::SqliteConnection>>::create(&mut conn, &owner, &d),
            _ => <Item as Syncable<diesel::SqliteConnection>>::update(&mut conn, &owner, &d),
        }
        .expect("write");
    }
    let stored: Item = items::table.select(Item::as_select()).first(&mut conn).expect("row");
    assert_eq!((stored.label_text.as_str(), stored.created.as_str()), ("b", "by the database"));
}

#[test]
fn the_same_model_syncs_on_mobyncs_enum_too() {
    let mut conn = DbConnection::Sqlite(sqlite());
    let engine = Mobync::new(DieselStore::new(Tables::default()), Models::<DbConnection, i32>::new().with::<Item>());
    let creates: Vec<Diff> =
        (0..3).map(|i| create(&format!("d{i}"), json!({"id": format!("i{i}"), "label": "x", "quantity": i}))).collect();
    assert_eq!(engine.apply(&mut conn, 0, creates, &3).expect("a run of creates").logical_clock, 1);
    assert_eq!(items::table.count().get_result::<i64>(&mut conn).expect("count"), 3);
}

#[test]
fn an_i64_owner_is_its_decimal_text_in_the_log() {
    let mut conn = sqlite();
    let engine = Mobync::new(DieselStore::new(Tables::default()), Models::<diesel::SqliteConnection, i64>::new().with::<Ledger>());
    let big = 9_007_199_254_740_993i64;
    let diff = Diff::new("d1", Create, "ledgers", json!({"id": "l1", "amount": 2.5})).at(0, 1);
    engine.apply(&mut conn, 0, vec![diff], &big).expect("sync");
    let owners: Vec<String> = mobync::db::schema::diffs::table
        .select(mobync::db::schema::diffs::owner)
        .load(&mut conn)
        .expect("log");
    assert_eq!(owners, [big.to_string()]);
}
