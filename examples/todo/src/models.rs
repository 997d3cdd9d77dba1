//! The synced models: tasks and projects, each owned by a user.

use diesel::prelude::*;
use mobync::Syncable;

diesel::table! {
    tasks (id) {
        id -> Text,
        owner -> Text,
        title -> Text,
        done -> Bool,
    }
}

diesel::table! {
    projects (id) {
        id -> Text,
        owner -> Text,
        name -> Text,
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Syncable, Debug, Clone)]
#[diesel(table_name = tasks)]
#[mobync(model = "task", validate = crate::rules::task)]
pub struct Task {
    pub id: String,
    #[mobync(owner)]
    pub owner: String,
    pub title: String,
    pub done: bool,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Syncable, Debug, Clone)]
#[diesel(table_name = projects)]
#[mobync(model = "project", validate = crate::rules::project)]
pub struct Project {
    pub id: String,
    #[mobync(owner)]
    pub owner: String,
    pub name: String,
}
