use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, owner -> Text, title -> Text }
}

#[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(validate = path::that::does_not_exist)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

fn main() {}
