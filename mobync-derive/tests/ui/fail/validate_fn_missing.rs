use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, owner -> Text, title -> Text }
}

#[derive(Queryable, Selectable, Insertable, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(validate_create = rules::create)]
struct Task {
    id: String,
    owner: String,
    title: String,
}

mod rules {
    pub fn task(_owner: &str, _task: &super::Task) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
