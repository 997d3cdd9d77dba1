// An owner is a String, an i32, an i64 or a Uuid.
use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, owner -> Bool, title -> Text }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = tasks)]
struct Task {
    id: String,
    owner: bool,
    title: String,
}

fn main() {}
