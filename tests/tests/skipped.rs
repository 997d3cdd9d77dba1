//! A `#[mobync(skip)]` column on PostgreSQL: its `DEFAULT` fills it on a
//! create, an update leaves it as it is, and the README's trigger (its SQL
//! read from README.md) is what moves an `updated_at` on every update.

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mobync::db::{DieselStore, Tables};
use mobync::{Diff, Mobync, Models, OperationType::*};
use mobync_tests::dbs::{self, Backend};
use serde_json::json;

diesel::table! {
    notes (id) {
        id -> Text,
        owner -> Text,
        title -> Text,
        updated_at -> Timestamptz,
    }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = notes)]
#[mobync(model = "note", connection = diesel::PgConnection)]
pub struct Note {
    pub id: String,
    pub owner: String,
    pub title: String,
    #[mobync(skip)]
    pub updated_at: DateTime<Utc>,
}

/// The README's ```sql block.
fn readme_trigger() -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find("```sql\n").expect("README.md has a ```sql block") + "```sql\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    readme[start..end].to_string()
}

const LONG_AGO: &str = "2000-01-01T00:00:00Z";

/// Creates note n1, sets its `updated_at` long ago, updates its title:
/// the `updated_at` it then has.
fn after_an_update(trigger: bool) -> Option<DateTime<Utc>> {
    let db = dbs::fresh(Backend::Postgres)?;
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    conn.batch_execute("CREATE TABLE notes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .expect("table");
    if trigger {
        conn.batch_execute(&readme_trigger()).expect("the README's trigger");
    }
    mobync::db::migrations::run(&mut conn, &Tables::default()).expect("migrations");
    let engine = Mobync::new(DieselStore::new(Tables::default()), Models::<PgConnection, String>::new().with::<Note>());
    let owner = "ada".to_string();
    engine.apply(&mut conn, 0, vec![Diff::new("d1", Create, "note", json!({"id": "n1", "title": "a"})).at(0, 1)], &owner).expect("create");
    let long_ago: DateTime<Utc> = LONG_AGO.parse().expect("a time");
    let filled: DateTime<Utc> = notes::table.select(notes::updated_at).first(&mut conn).expect("row");
    assert!(filled > long_ago, "the DEFAULT filled it on create");
    diesel::update(notes::table).set(notes::updated_at.eq(long_ago)).execute(&mut conn).expect("long ago");
    let update = Diff::new("d2", Update, "note", json!({"id": "n1", "title": "b"})).at(1, 2);
    engine.apply(&mut conn, 1, vec![update], &owner).expect("update");
    let (title, updated_at): (String, DateTime<Utc>) = notes::table.select((notes::title, notes::updated_at)).first(&mut conn).expect("row");
    assert_eq!(title, "b");
    Some(updated_at)
}

#[test]
fn an_update_leaves_a_skipped_column_as_it_is() {
    if let Some(updated_at) = after_an_update(false) {
        assert_eq!(updated_at, LONG_AGO.parse::<DateTime<Utc>>().expect("a time"));
    }
}

#[test]
fn the_readmes_trigger_moves_updated_at_on_every_update() {
    if let Some(updated_at) = after_an_update(true) {
        assert!(updated_at > LONG_AGO.parse::<DateTime<Utc>>().expect("a time"), "{updated_at}");
    }
}
