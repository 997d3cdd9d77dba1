// A bare `DbConnection` could be mobync's or the app's own: the derive asks
// which rather than generate the code of the wrong one.
use diesel::prelude::*;

pub type DbConnection = diesel::PgConnection;

diesel::table! {
    events (id) { id -> Text, owner -> Text, body -> Text }
}

#[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
#[diesel(table_name = events)]
#[mobync(model = "event", connection = DbConnection)]
pub struct Event {
    pub id: String,
    pub owner: String,
    pub body: String,
}

fn main() {}
