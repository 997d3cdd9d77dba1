//! The synced models of the backend tests, wire names `task` (`title`,
//! `done`) and `project` (`name`), as an app would write them.

use crate::dbs::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mobync::client::Rows;
use mobync::db::{DbConnection, Dialect};
use mobync::JsonObject;
use serde_json::Value;

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

/// A task.
#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug, PartialEq, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(model = "task", validate = rules::task)]
pub struct Task {
    pub id: String,
    #[mobync(owner)]
    pub owner: String,
    pub title: String,
    pub done: bool,
}

/// A project.
#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug, PartialEq, mobync::Syncable)]
#[diesel(table_name = projects)]
#[mobync(model = "project")]
pub struct Project {
    pub id: String,
    pub owner: String,
    pub name: String,
}

/// The app's rules.
pub mod rules {
    /// A task's title must not be blank.
    pub fn task(_owner: &str, task: &super::Task) -> Result<(), String> {
        if task.title.trim().is_empty() {
            return Err("a task's title must not be empty".into());
        }
        Ok(())
    }
}

/// The models, as the engine takes them.
pub fn models() -> mobync::Models {
    mobync::Models::new().with::<Task>().with::<Project>()
}

/// Creates the model tables. A project named `boom` violates a CHECK: tests
/// use it to make the database itself fail in the middle of a batch.
pub fn create_tables(conn: &mut DbConnection) {
    // Ids and owners byte for byte on MariaDB too (PROTOCOL.md).
    let key = if conn.dialect() == Dialect::Mysql { "VARBINARY(255)" } else { "TEXT" };
    conn.batch_execute(&format!(
        "CREATE TABLE tasks (id {key} NOT NULL PRIMARY KEY, owner {key} NOT NULL, title TEXT NOT NULL, done BOOLEAN NOT NULL);
         CREATE TABLE projects (id {key} NOT NULL PRIMARY KEY, owner {key} NOT NULL, name TEXT NOT NULL CHECK (name <> 'boom'));"
    ))
    .expect("create model tables");
}

/// `owner`'s rows as a client holds them.
pub fn rows(conn: &mut DbConnection, owner: &str) -> Rows {
    let mut rows = Rows::new();
    let tasks: Vec<Task> =
        tasks::table.filter(tasks::owner.eq(owner)).select(Task::as_select()).load(conn).expect("read tasks");
    for t in tasks {
        rows.insert(("task".into(), t.id.clone()), object([("id", t.id.into()), ("title", t.title.into()), ("done", t.done.into())]));
    }
    let projects: Vec<Project> =
        projects::table.filter(projects::owner.eq(owner)).select(Project::as_select()).load(conn).expect("read projects");
    for p in projects {
        rows.insert(("project".into(), p.id.clone()), object([("id", p.id.into()), ("name", p.name.into())]));
    }
    rows
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> JsonObject {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Everything a test may compare before and after a failed sync: every
/// model row of every owner, the whole diff log, the clocks and the dropped
/// ids, one line of text per row, in a stable order.
pub fn dump(db: &TestDb) -> Vec<String> {
    dump_tables(db, &["tasks", "projects", "diffs", "diffs_clocks", "diffs_dropped", "diffs_net", "diffs_squashed"])
}

/// [`dump`] of some of those tables only.
pub fn dump_tables(db: &TestDb, only: &[&str]) -> Vec<String> {
    let mut conn = crate::dbs::connect(db);
    let d = db.dialect();
    let log = ["id", "owner", "logical_clock", "utc_timestamp", "type", "model", "json_data", "seq"];
    let tables: [(&str, &[&str]); 7] = [
        ("tasks", &["id", "owner", "title", "done"]),
        ("projects", &["id", "owner", "name"]),
        ("diffs", &log),
        ("diffs_clocks", &["owner", "logical_clock", "horizon", "purged"]),
        ("diffs_dropped", &["owner", "id"]),
        ("diffs_net", &["owner", "model", "row_id", "fields", "last_clock"]),
        ("diffs_squashed", &["owner", "id", "logical_clock"]),
    ];
    let mut out = Vec::new();
    for (table, columns) in tables.into_iter().filter(|(t, _)| only.contains(t)) {
        let quoted: Vec<String> = columns.iter().map(|c| d.quote(c)).collect();
        let text: Vec<String> = quoted
            .iter()
            .map(|c| if d == Dialect::Mysql { format!("CAST({c} AS CHAR)") } else { format!("CAST({c} AS TEXT)") })
            .collect();
        let line = if d == Dialect::Mysql { format!("CONCAT_WS('|', {})", text.join(", ")) } else { text.join(" || '|' || ") };
        let sql = format!("SELECT {line} AS line FROM {table} ORDER BY {}", quoted.join(", "));
        out.push(format!("-- {table}"));
        let lines: Vec<Line> = diesel::sql_query(&sql).load(&mut conn).unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.extend(lines.into_iter().map(|l| l.line));
    }
    out
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}
