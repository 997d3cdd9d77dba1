// A row id is text on the wire: its type must round-trip through text.
use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Double, owner -> Text, title -> Text }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = tasks)]
struct Task {
    id: f64,
    owner: String,
    title: String,
}

fn main() {}
