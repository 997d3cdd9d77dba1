//! The generated glue, run on an in-memory SQLite database.

use diesel::prelude::*;
use mobync::db::DbConnection;
use mobync::{Diff, ErrorKind, OperationType, SyncError, SyncModel, Syncable};
use serde_json::{json, Value};

diesel::table! {
    tasks (id) {
        id -> Text,
        owner -> Text,
        title -> Text,
        done -> Bool,
        note -> Nullable<Text>,
        views -> Integer,
    }
}

diesel::table! {
    notes (note_uuid) {
        note_uuid -> Text,
        user_id -> Text,
        body -> Text,
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug, PartialEq, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(
    model = "task",
    validate_create = rules::create,
    validate_update = rules::update,
    validate_delete = rules::delete
)]
pub struct Task {
    pub id: String,
    pub owner: String,
    pub title: String,
    pub done: bool,
    pub note: Option<String>,
    #[mobync(skip)]
    pub views: i32,
}

/// Another id and owner field, a column name, and `validate` only.
#[derive(Queryable, Selectable, Insertable, Debug, mobync::Syncable)]
#[diesel(table_name = notes)]
#[mobync(validate = rules::note)]
pub struct Note {
    #[mobync(id)]
    #[diesel(column_name = note_uuid)]
    pub uuid: String,
    #[mobync(owner)]
    pub user_id: String,
    pub body: String,
}

mod rules {
    pub fn create(_owner: &str, task: &super::Task) -> Result<(), String> {
        match task.title.starts_with('!') {
            true => Err("a title must not start with `!`".into()),
            false => Ok(()),
        }
    }

    pub fn update(_owner: &str, task: &super::Task) -> Result<(), String> {
        match task.done && task.note.is_none() {
            true => Err(format!("task {:?} is done but has no note", task.title)),
            false => Ok(()),
        }
    }

    pub fn delete(owner: &str, task: &super::Task) -> Result<(), String> {
        match task.done {
            true => Ok(()),
            false => Err(format!("{owner} may only delete done tasks, not {:?}", task.title)),
        }
    }

    pub fn note(_owner: &str, note: &super::Note) -> Result<(), String> {
        match note.body.is_empty() {
            true => Err("a note needs a body".into()),
            false => Ok(()),
        }
    }
}


fn db() -> DbConnection {
    let mut conn = DbConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("sqlite"));
    for sql in [
        "CREATE TABLE tasks (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, title TEXT NOT NULL, \
         done BOOLEAN NOT NULL, note TEXT, views INTEGER NOT NULL DEFAULT 7)",
        "CREATE TABLE notes (note_uuid TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL, body TEXT NOT NULL)",
        // A constraint the model does not know of: a diff that fits the
        // model can still be refused by the table, at its INSERT or UPDATE.
        "CREATE UNIQUE INDEX tasks_note ON tasks (note)",
    ] {
        diesel::sql_query(sql).execute(&mut conn).expect("create table");
    }
    conn
}

fn diff(op: OperationType, data: Value) -> Diff {
    Diff::new("d1", op, "task", data)
}

/// Checks then applies a diff the way the engine does.
fn apply(conn: &mut DbConnection, owner: &str, diff: &Diff) -> Result<(), SyncError> {
    let owner = owner.to_owned();
    Task::check(diff)?;
    Task::validate_all(conn, &owner, &[diff])?;
    match diff.op {
        OperationType::Create => Task::create(conn, &owner, diff),
        OperationType::Update => Task::update(conn, &owner, diff),
        OperationType::Delete => Task::delete(conn, &owner, diff),
    }
}

/// The rules of one diff.
fn validate<T: Syncable<DbConnection, Owner = String>>(conn: &mut DbConnection, owner: &str, diff: &Diff) -> Result<(), SyncError> {
    T::validate_all(conn, &owner.to_owned(), &[diff])
}

fn all_tasks(conn: &mut DbConnection) -> Vec<Task> {
    tasks::table.select(Task::as_select()).order(tasks::id).load(conn).expect("load")
}

fn sample() -> Value {
    json!({"id": "t1", "title": "buy milk", "done": false, "note": "2 l"})
}

fn with_task(owner: &str) -> DbConnection {
    let mut conn = db();
    apply(&mut conn, owner, &diff(OperationType::Create, sample())).expect("create");
    conn
}

fn read(conn: &mut DbConnection, owner: &str, id: &str) -> Option<Value> {
    Task::read(conn, &owner.to_owned(), id).expect("read").map(Value::Object)
}

fn assert_invalid(result: Result<(), SyncError>, needle: &str) -> String {
    let err = result.expect_err("the diff must be refused");
    assert_eq!(err.kind, ErrorKind::InvalidDiff, "{err}");
    assert!(err.message.contains(needle), "{:?} does not mention {needle:?}", err.message);
    err.message
}

#[test]
fn model_and_fields_come_from_the_attributes() {
    assert_eq!(Task::MODEL, "task");
    assert_eq!(Task::FIELDS, ["id", "title", "done", "note"]);
    assert_eq!(Note::MODEL, "notes");
    assert_eq!(Note::FIELDS, ["id", "body"]);
}

#[test]
fn a_created_row_reads_back_as_sent_without_the_owner() {
    let mut conn = with_task("alice");
    assert_eq!(read(&mut conn, "alice", "t1"), Some(sample()));
    let stored = all_tasks(&mut conn);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].owner, "alice");
    assert_eq!(stored[0].views, 7, "a skipped column is left out of the INSERT: its default applies");
}

#[test]
fn another_owners_row_reads_as_absent() {
    let mut conn = with_task("alice");
    assert_eq!(read(&mut conn, "bob", "t1"), None);
    assert_eq!(read(&mut conn, "alice", "nope"), None);
}

#[test]
fn a_create_that_does_not_match_the_model_is_an_invalid_diff_and_changes_nothing() {
    let cases = [
        (json!({"id": "t2", "title": "x", "done": false}), "missing field `note`"),
        (
            json!({"id": "t2", "title": "x", "done": false, "note": null, "colour": 1}),
            "unknown field `colour`",
        ),
        (json!({"id": "t2", "title": "x", "done": "yes", "note": null}), "invalid type"),
        (json!({"id": "t2", "title": null, "done": false, "note": null}), "invalid type: null"),
        (json!({"id": "t2", "title": "x", "done": false, "note": null, "views": 3}), "unknown field `views`"),
        (
            json!({"id": "t2", "title": "x", "done": false, "note": null, "owner": "eve"}),
            "`owner` is set by the server",
        ),
    ];
    let mut conn = with_task("alice");
    let before = all_tasks(&mut conn);
    for (data, needle) in cases {
        let d = diff(OperationType::Create, data);
        assert_invalid(Task::check(&d), needle);
        assert_invalid(Task::create(&mut conn, &"alice".to_owned(), &d), needle);
    }
    assert_eq!(all_tasks(&mut conn), before);
}

/// Creates that fit the model (`check` and the rules take them) and that
/// the table refuses at the INSERT itself: nothing of them is stored and
/// nothing else moves, alone or in one run of creates with a good row.
#[test]
fn a_create_the_table_refuses_at_its_insert_is_an_invalid_diff_and_changes_nothing() {
    let mut conn = with_task("alice");
    let before = all_tasks(&mut conn);
    let taken_id = diff(OperationType::Create, json!({"id": "t1", "title": "again", "done": true, "note": "new"}));
    let taken_note = diff(OperationType::Create, json!({"id": "t2", "title": "x", "done": false, "note": "2 l"}));
    for (d, needle) in [(&taken_id, "already exists"), (&taken_note, "another row already has this `note`")] {
        Task::check(d).expect("the model takes it");
        validate::<Task>(&mut conn, "alice", d).expect("the rules take it");
        assert_invalid(Task::create(&mut conn, &"alice".to_owned(), d), needle);
        assert_eq!(all_tasks(&mut conn), before, "{needle}");
    }
    // A good row and a refused one in one run of creates, in a transaction
    // that the error rolls back, as the engine runs it: the search for the
    // row at fault inserts rows alone, so the run by itself may leave the
    // good row; the caller's rollback must not.
    let good = Diff::new("d-good", OperationType::Create, "task", json!({"id": "t3", "title": "fine", "done": false, "note": "3 l"}));
    let bad = Diff::new("d-bad", OperationType::Create, "task", json!({"id": "t4", "title": "y", "done": false, "note": "2 l"}));
    let mut refused = None;
    let outcome = conn.transaction(|c| {
        refused = Task::create_all(c, &"alice".to_owned(), &[&good, &bad]).err();
        match refused {
            Some(_) => Err(diesel::result::Error::RollbackTransaction),
            None => Ok(()),
        }
    });
    assert!(outcome.is_err());
    let err = refused.expect("the run must be refused");
    assert_eq!((err.kind, err.diff_id.as_deref()), (ErrorKind::InvalidDiff, Some("d-bad")), "{err}");
    assert!(err.message.contains("another row already has this `note`"), "{err}");
    assert_eq!(all_tasks(&mut conn), before, "a refused run of creates stores none of its rows");
}

#[test]
fn a_create_may_leave_out_nothing_but_a_nullable_field_may_be_null() {
    let mut conn = db();
    let data = json!({"id": "t2", "title": "x", "done": true, "note": null});
    apply(&mut conn, "alice", &diff(OperationType::Create, data.clone())).expect("create");
    assert_eq!(read(&mut conn, "alice", "t2"), Some(data));
}

#[test]
fn a_null_in_a_create_is_stored_as_null_not_as_the_column_default() {
    let mut conn = DbConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("sqlite"));
    diesel::sql_query(
        "CREATE TABLE tasks (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, title TEXT NOT NULL, \
         done BOOLEAN NOT NULL, note TEXT DEFAULT 'none', views INTEGER NOT NULL DEFAULT 7)",
    )
    .execute(&mut conn)
    .expect("create table");
    let one = Diff::new("d1", OperationType::Create, "task", json!({"id": "t1", "title": "a", "done": false, "note": null}));
    let two = Diff::new("d2", OperationType::Create, "task", json!({"id": "t2", "title": "b", "done": false, "note": null}));
    Task::create(&mut conn, &"alice".to_owned(), &one).expect("create");
    Task::create_all(&mut conn, &"alice".to_owned(), &[&two]).expect("create_all");
    // What the device holds: `null`, not a value it never saw. The skipped
    // column still takes its default.
    let stored: Vec<(Option<String>, i32)> = all_tasks(&mut conn).into_iter().map(|t| (t.note, t.views)).collect();
    assert_eq!(stored, [(None, 7), (None, 7)]);
}

#[test]
fn a_run_of_creates_is_one_multi_row_insert_kept_prepared_for_each_length() {
    use diesel::connection::InstrumentationEvent;
    let mut conn = db();
    let (ran, kept) = (std::sync::Arc::new(std::sync::Mutex::new(Vec::new())), std::sync::Arc::new(std::sync::Mutex::new(Vec::new())));
    let (seen_ran, seen_kept) = (ran.clone(), kept.clone());
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
        InstrumentationEvent::StartQuery { query, .. } => seen_ran.lock().unwrap().push(query.to_string()),
        InstrumentationEvent::CacheQuery { sql, .. } => seen_kept.lock().unwrap().push(sql.to_string()),
        _ => {}
    });
    let creates: Vec<Diff> = (0..13)
        .map(|n| {
            let note = if n % 2 == 0 { json!(null) } else { json!(format!("n{n}")) };
            Diff::new(format!("d{n}"), OperationType::Create, "task", json!({"id": format!("t{n:02}"), "title": "x", "done": false, "note": note}))
        })
        .collect();
    let refs: Vec<&Diff> = creates.iter().collect();
    // Runs of 5, 5 and 3 creates.
    for run in refs.chunks(5) {
        Task::create_all(&mut conn, &"alice".to_owned(), run).expect("create_all");
    }
    let ran = ran.lock().unwrap().clone();
    // One statement for each run, not one INSERT a row in a savepoint.
    assert_eq!(ran.iter().filter(|sql| sql.starts_with("INSERT")).count(), 3, "{ran:?}");
    assert!(!ran.iter().any(|sql| sql.contains("SAVEPOINT") || sql.starts_with("BEGIN")), "{ran:?}");
    // Prepared once for 5 rows and once for 3.
    let inserts: Vec<String> = kept.lock().unwrap().iter().filter(|sql| sql.starts_with("INSERT")).cloned().collect();
    assert_eq!(inserts.len(), 2, "{inserts:?}");
    assert_eq!(inserts.iter().map(|sql| sql.matches("), (").count() + 1).collect::<Vec<_>>(), [5, 3], "{inserts:?}");
    let stored: Vec<(String, Option<String>)> = all_tasks(&mut conn).into_iter().map(|t| (t.id, t.note)).collect();
    let sent: Vec<(String, Option<String>)> = (0..13).map(|n| (format!("t{n:02}"), (n % 2 == 1).then(|| format!("n{n}")))).collect();
    assert_eq!(stored, sent);
}

#[test]
fn a_create_of_a_taken_id_is_an_invalid_diff_whoever_owns_it() {
    let mut conn = with_task("alice");
    let again =
        diff(OperationType::Create, json!({"id": "t1", "title": "other", "done": true, "note": null}));
    for owner in ["alice", "bob"] {
        assert_invalid(apply(&mut conn, owner, &again), "already exists");
    }
    let stored = all_tasks(&mut conn);
    assert_eq!((stored.len(), stored[0].owner.as_str(), stored[0].title.as_str()), (1, "alice", "buy milk"));
}

#[test]
fn an_update_sets_only_the_fields_it_holds() {
    let mut conn = with_task("alice");
    apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1", "title": "buy oat milk"})))
        .expect("update");
    assert_eq!(
        read(&mut conn, "alice", "t1"),
        Some(json!({"id": "t1", "title": "buy oat milk", "done": false, "note": "2 l"}))
    );
}

#[test]
fn an_update_sets_a_nullable_field_to_null() {
    let mut conn = with_task("alice");
    apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1", "note": null})))
        .expect("update");
    assert_eq!(read(&mut conn, "alice", "t1").expect("row")["note"], Value::Null);
}

#[test]
fn an_update_with_no_field_changes_nothing_but_needs_the_row() {
    let mut conn = with_task("alice");
    apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1"}))).expect("update");
    assert_eq!(read(&mut conn, "alice", "t1"), Some(sample()));
    assert_invalid(
        Task::update(&mut conn, &"bob".to_owned(), &diff(OperationType::Update, json!({"id": "t1"}))),
        "there is no task",
    );
}

#[test]
fn an_update_that_does_not_match_the_model_is_an_invalid_diff_and_changes_nothing() {
    let cases = [
        (json!({"id": "t1", "owner": "bob"}), "`owner` is set by the server"),
        (json!({"id": "t1", "title": null}), "invalid type: null"),
        (json!({"id": "t1", "done": 1}), "invalid type"),
        (json!({"id": "t1", "colour": "red"}), "unknown field `colour`"),
        (json!({"id": "t1", "views": 9}), "unknown field `views`"),
    ];
    let mut conn = with_task("alice");
    for (data, needle) in cases {
        let d = diff(OperationType::Update, data);
        assert_invalid(Task::check(&d), needle);
        assert_invalid(Task::update(&mut conn, &"alice".to_owned(), &d), needle);
    }
    assert_eq!(read(&mut conn, "alice", "t1"), Some(sample()));
}

/// An update that fits the model and the rules, refused by the table at
/// its UPDATE: none of its fields is set.
#[test]
fn an_update_the_table_refuses_at_its_update_is_an_invalid_diff_and_changes_nothing() {
    let mut conn = with_task("alice");
    apply(&mut conn, "alice", &diff(OperationType::Create, json!({"id": "t2", "title": "other", "done": false, "note": "1 l"})))
        .expect("a second task");
    let before = all_tasks(&mut conn);
    let d = diff(OperationType::Update, json!({"id": "t1", "title": "changed", "done": true, "note": "1 l"}));
    Task::check(&d).expect("the model takes it");
    validate::<Task>(&mut conn, "alice", &d).expect("the rules take it");
    assert_invalid(Task::update(&mut conn, &"alice".to_owned(), &d), "another row already has this `note`");
    assert_eq!(all_tasks(&mut conn), before);
}

#[test]
fn another_owners_row_looks_like_a_missing_row_to_update_and_delete() {
    let mut conn = with_task("alice");
    let cases = [
        (
            OperationType::Update,
            json!({"id": "t1", "title": "mine now"}),
            json!({"id": "t9", "title": "mine now"}),
        ),
        (OperationType::Delete, json!({"id": "t1"}), json!({"id": "t9"})),
    ];
    for (op, theirs, missing) in cases {
        let on_theirs = assert_invalid(apply(&mut conn, "bob", &diff(op, theirs)), "there is no task");
        let on_missing = assert_invalid(apply(&mut conn, "bob", &diff(op, missing)), "there is no task");
        assert_eq!(on_theirs.replace("t1", "t9"), on_missing);
    }
    assert_eq!(read(&mut conn, "alice", "t1"), Some(sample()));
}

#[test]
fn a_delete_removes_the_owners_row() {
    let mut conn = with_task("alice");
    let alice = "alice".to_owned();
    Task::delete(&mut conn, &alice, &diff(OperationType::Delete, json!({"id": "t1"}))).expect("delete");
    assert_eq!(read(&mut conn, "alice", "t1"), None);
    assert_invalid(
        Task::delete(&mut conn, &alice, &diff(OperationType::Delete, json!({"id": "t1"}))),
        "there is no task",
    );
}

#[test]
fn a_create_refused_by_the_rule_is_forbidden_with_its_reason() {
    let mut conn = db();
    let d = diff(OperationType::Create, json!({"id": "t1", "title": "!urgent", "done": false, "note": null}));
    let err = apply(&mut conn, "alice", &d).expect_err("refused");
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Forbidden, "a title must not start with `!`"));
    assert!(all_tasks(&mut conn).is_empty());
}

#[test]
fn the_update_rule_sees_the_row_as_it_will_be() {
    let mut conn = with_task("alice");
    // `done` alone keeps the stored note: allowed.
    apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1", "done": true})))
        .expect("update");
    // Clearing the note of a done task: refused, seen on the patched row.
    let d = diff(OperationType::Update, json!({"id": "t1", "title": "milk", "note": null}));
    let err = apply(&mut conn, "alice", &d).expect_err("refused");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Forbidden, r#"task "milk" is done but has no note"#)
    );
    assert_eq!(read(&mut conn, "alice", "t1").expect("row")["title"], "buy milk");
}

#[test]
fn the_delete_rule_runs_on_the_row_to_delete() {
    let mut conn = with_task("alice");
    let d = diff(OperationType::Delete, json!({"id": "t1"}));
    let err = apply(&mut conn, "alice", &d).expect_err("refused");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Forbidden, r#"alice may only delete done tasks, not "buy milk""#)
    );
    apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1", "done": true})))
        .expect("update");
    apply(&mut conn, "alice", &d).expect("delete");
    assert!(all_tasks(&mut conn).is_empty());
}

#[test]
fn the_rules_refuse_nothing_of_another_owners_row_but_report_it_missing() {
    let mut conn = with_task("alice");
    let update = diff(OperationType::Update, json!({"id": "t1", "note": null, "done": true}));
    assert_invalid(validate::<Task>(&mut conn, "bob", &update), "there is no task");
    assert_invalid(
        validate::<Task>(&mut conn, "bob", &diff(OperationType::Delete, json!({"id": "t1"}))),
        "there is no task",
    );
}

#[test]
fn a_model_with_its_own_id_and_owner_columns_round_trips() {
    let mut conn = db();
    let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
    let note = |op, data| Diff::new("d1", op, "notes", data);
    let create = note(OperationType::Create, json!({"id": "n1", "body": "hello"}));
    Note::check(&create).expect("check");
    validate::<Note>(&mut conn, "alice", &create).expect("rule");
    Note::create(&mut conn, &alice, &create).expect("create");
    assert_eq!(
        Note::read(&mut conn, &alice, "n1").expect("read").map(Value::Object),
        Some(json!({"id": "n1", "body": "hello"}))
    );
    assert_invalid(
        Note::check(&note(OperationType::Update, json!({"id": "n1", "user_id": "bob"}))),
        "`user_id` is set by the server",
    );
    assert_invalid(
        Note::check(&note(OperationType::Create, json!({"id": "n2", "uuid": "x", "body": "b"}))),
        "unknown field `uuid`",
    );

    let empty = note(OperationType::Update, json!({"id": "n1", "body": ""}));
    let err = validate::<Note>(&mut conn, "alice", &empty).expect_err("refused");
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Forbidden, "a note needs a body"));
    let update = note(OperationType::Update, json!({"id": "n1", "body": "bye"}));
    validate::<Note>(&mut conn, "alice", &update).expect("rule");
    Note::update(&mut conn, &alice, &update).expect("update");
    assert_eq!(Note::read(&mut conn, &alice, "n1").expect("read").expect("row")["body"], "bye");

    // `validate` does not apply to deletes.
    let delete = note(OperationType::Delete, json!({"id": "n1"}));
    validate::<Note>(&mut conn, "bob", &delete).expect("no rule");
    assert_invalid(Note::delete(&mut conn, &bob, &delete), "there is no notes");
    Note::delete(&mut conn, &alice, &delete).expect("delete");
    assert_eq!(Note::read(&mut conn, &alice, "n1").expect("read"), None);
}

/// The SQL texts Diesel prepares and keeps on `conn` from now on.
fn watch_kept(conn: &mut DbConnection) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use diesel::connection::InstrumentationEvent;
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = kept.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event {
            seen.lock().unwrap().push(sql.to_string());
        }
    });
    kept
}

#[test]
fn the_rules_read_of_rows_is_prepared_once_for_each_length_of_list() {
    let mut conn = db();
    let kept = watch_kept(&mut conn);
    apply(&mut conn, "alice", &diff(OperationType::Create, sample())).expect("create");
    for title in ["a", "b", "c"] {
        apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": "t1", "title": title}))).expect("update");
    }
    assert_eq!(read(&mut conn, "alice", "t1").unwrap()["title"], "c");
    let kept = kept.lock().unwrap();
    // The rules' read of the row, one text for one id, compiled once for
    // the create and the three updates (Diesel keeps no `IN (…)` on SQLite).
    assert_eq!(kept.iter().filter(|sql| sql.starts_with("SELECT") && sql.contains(" IN (")).count(), 1, "{kept:?}");
}

#[test]
fn an_update_is_prepared_once_for_each_set_of_fields() {
    let mut conn = db();
    let kept = watch_kept(&mut conn);
    for id in ["t1", "t2"] {
        let create = json!({"id": id, "title": "buy milk", "done": false, "note": id});
        apply(&mut conn, "alice", &diff(OperationType::Create, create)).expect("create");
    }
    apply(&mut conn, "bob", &diff(OperationType::Create, json!({"id": "b1", "title": "b", "done": false, "note": null}))).expect("create");
    for (id, title) in [("t1", "a"), ("t2", "b"), ("t1", "c")] {
        apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": id, "title": title}))).expect("update");
    }
    for (id, done) in [("t1", true), ("t2", true)] {
        apply(&mut conn, "alice", &diff(OperationType::Update, json!({"id": id, "title": "z", "done": done}))).expect("update");
    }
    // Another owner's row is still no row to update, with a kept text.
    let theirs = Task::update(&mut conn, &"alice".to_owned(), &diff(OperationType::Update, json!({"id": "b1", "title": "x"})));
    assert_invalid(theirs, "there is no task with id \"b1\"");
    let updates: Vec<String> = kept.lock().unwrap().iter().filter(|sql| sql.starts_with("UPDATE")).cloned().collect();
    assert_eq!(updates.len(), 2, "one text for `title`, one for `title` and `done`: {updates:?}");
    let rows = all_tasks(&mut conn);
    let fields: Vec<(&str, &str, &str, bool, Option<&str>)> =
        rows.iter().map(|t| (t.id.as_str(), t.owner.as_str(), t.title.as_str(), t.done, t.note.as_deref())).collect();
    assert_eq!(
        fields,
        [("b1", "bob", "b", false, None), ("t1", "alice", "z", true, Some("t1")), ("t2", "alice", "z", true, Some("t2"))]
    );
}
