use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, owner -> Text, title -> Text }
}

#[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(validate_update = rules::task)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

mod rules {
    // The rule takes the owner and the row, and returns Result<(), String>.
    pub fn task(task: &super::Task) -> bool {
        !task.title.is_empty()
    }
}

fn main() {}
