// A model as the docs show it: every attribute, a nullable field, a skipped
// column and rules; no imports beyond diesel's prelude, and names that the
// generated code must not trip over.
use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, owner -> Text, title -> Text, done -> Bool, note -> Nullable<Text>, views -> Integer }
}

// Names that clash with what generated code could use unqualified.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
struct Diff;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(model = "task", validate = rules::task, validate_delete = rules::delete)]
pub struct Task {
    pub id: std::string::String,
    #[mobync(owner)]
    pub owner: std::string::String,
    pub title: std::string::String,
    pub done: bool,
    pub note: core::option::Option<std::string::String>,
    #[mobync(skip)]
    pub views: i32,
}

mod rules {
    pub fn task(_owner: &str, task: &super::Task) -> Result<(), String> {
        if task.title.is_empty() { Err("a task needs a title".into()) } else { Ok(()) }
    }

    pub fn delete(_owner: &str, task: &super::Task) -> Result<(), String> {
        if task.done { Ok(()) } else { Err("only done tasks can be deleted".into()) }
    }
}

fn main() {
    use mobync::SyncModel as _;
    assert_eq!(Task::MODEL, "task");
    assert_eq!(Task::FIELDS, ["id", "title", "done", "note"]);
    let _ = mobync::Models::new().with::<Task>();
}
