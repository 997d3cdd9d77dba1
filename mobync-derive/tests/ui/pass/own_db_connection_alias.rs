// An app whose own connection type is called `DbConnection` (an alias of
// Diesel's PostgreSQL connection) is not taken for mobync's enum: the
// PostgreSQL-only column types are allowed, and the code is that of a
// connection type.
use diesel::prelude::*;

pub type DbConnection = diesel::PgConnection;

diesel::table! {
    events (id) { id -> Text, owner -> Text, ref_id -> Uuid, at -> Timestamptz }
}

#[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
#[diesel(table_name = events)]
#[mobync(model = "event", connection = crate::DbConnection)]
pub struct Event {
    pub id: String,
    pub owner: String,
    pub ref_id: uuid::Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
}

mod inner {
    // The same alias named from a module below, by `super`.
    use diesel::prelude::*;

    diesel::table! {
        marks (id) { id -> Text, owner -> Text, ref_id -> Uuid }
    }

    #[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
    #[diesel(table_name = marks)]
    #[mobync(model = "mark", connection = super::DbConnection)]
    pub struct Mark {
        pub id: String,
        pub owner: String,
        pub ref_id: uuid::Uuid,
    }
}

fn main() {
    let _ = mobync::Models::<DbConnection, String>::new().with::<Event>().with::<inner::Mark>();
}
