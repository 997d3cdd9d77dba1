//! The convergence property (with its reference model) on models that sync
//! on the app's own connection type, with typed ids and owners:
//! `PgConnection` with `Uuid` ids and `Uuid` owners, `MysqlConnection` with
//! `i64` owners, `SqliteConnection` with `i32` owners. The same wire models
//! as everywhere (`task`: title, done; `project`: name).

use mobync::client::Rows;
use mobync::db::{self, DieselStore, LogConnection, Pool, PoolSettings, Tables};
use mobync::testing::{self, Server};
use mobync::{Mobync, Models, Owner, SyncError, SyncRequest, SyncResponse};
use mobync_tests::dbs::{self, Backend, TestDb};
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server of typed models on connections `C` for owners `O`.
struct Typed<'a, C: LogConnection, O: Owner> {
    engine: &'a Mobync<DieselStore<C>, Models<C, O>>,
    pool: &'a Pool<C>,
    db: &'a TestDb,
    owner: fn(&str) -> O,
    rows: fn(&mut C, &O) -> Rows,
}

impl<C: LogConnection, O: Owner> Server for Typed<'_, C, O> {
    fn sync(&mut self, token: &str, request: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let mut conn = self.pool.get().expect("a connection");
        self.engine.sync(&mut conn, request.logical_clock, request.diffs.clone(), request.paging(), &(self.owner)(token))
    }

    fn rows(&mut self, token: &str) -> Rows {
        (self.rows)(&mut self.pool.get().expect("a connection"), &(self.owner)(token))
    }

    fn state(&mut self) -> String {
        mobync_tests::models::dump(self.db).join("\n")
    }
}

fn pool<C: LogConnection>(db: &TestDb, tables: &str) -> Pool<C> {
    let pool = db::pool_with::<C>(&db.url, &PoolSettings { max_size: 2, ..PoolSettings::default() }).expect("pool");
    let mut conn = pool.get().expect("connection");
    conn.batch(tables).expect("model tables");
    db::migrations::run(&mut *conn, &Tables::default()).expect("migrations");
    drop(conn);
    pool
}

/// Runs the convergence property `cases` times with fresh owners from
/// `owners(run)`.
fn converge<C: LogConnection, O: Owner>(server: &mut Typed<'_, C, O>, cases: u32, owners: impl Fn(usize) -> [String; 3]) {
    let runs = AtomicUsize::new(0);
    let backend = server.db.backend();
    let server = std::cell::RefCell::new(server);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&testing::plans(40), |plan| {
            let tokens = owners(runs.fetch_add(1, Ordering::SeqCst));
            testing::converge(&mut **server.borrow_mut(), &tokens, &plan);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
}

fn object(pairs: Vec<(&str, serde_json::Value)>) -> mobync::JsonObject {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

mod rules {
    /// Blank titles are refused whatever the owner type.
    pub fn title<O: ?Sized>(_owner: &O, title: &str) -> Result<(), String> {
        if title.trim().is_empty() {
            return Err("a task's title must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use diesel::prelude::*;
    use uuid::Uuid;

    diesel::table! {
        tasks (id) { id -> Uuid, owner -> Uuid, title -> Text, done -> Bool }
    }
    diesel::table! {
        projects (id) { id -> Uuid, owner -> Uuid, name -> Text }
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = tasks)]
    #[mobync(model = "task", connection = diesel::PgConnection, validate = check)]
    pub struct Task {
        pub id: Uuid,
        pub owner: Uuid,
        pub title: String,
        pub done: bool,
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = projects)]
    #[mobync(model = "project", connection = diesel::PgConnection)]
    pub struct Project {
        pub id: Uuid,
        pub owner: Uuid,
        pub name: String,
    }

    fn check(owner: &Uuid, task: &Task) -> Result<(), String> {
        rules::title(owner, &task.title)
    }

    fn rows(conn: &mut PgConnection, owner: &Uuid) -> Rows {
        let mut rows = Rows::new();
        for t in tasks::table.filter(tasks::owner.eq(owner)).select(Task::as_select()).load(conn).expect("tasks") {
            assert_eq!(&t.owner, owner);
            let row = object(vec![("id", t.id.to_string().into()), ("title", t.title.into()), ("done", t.done.into())]);
            rows.insert(("task".into(), t.id.to_string()), row);
        }
        for p in projects::table.filter(projects::owner.eq(owner)).select(Project::as_select()).load(conn).expect("projects") {
            assert_eq!(&p.owner, owner);
            rows.insert(("project".into(), p.id.to_string()), object(vec![("id", p.id.to_string().into()), ("name", p.name.into())]));
        }
        rows
    }

    #[test]
    fn uuid_ids_and_uuid_owners_on_pg_connection_converge_to_the_reference() {
        let Some(db) = dbs::fresh(Backend::Postgres) else { return };
        let pool = pool::<PgConnection>(
            &db,
            "CREATE TABLE tasks (id UUID PRIMARY KEY, owner UUID NOT NULL, title TEXT NOT NULL, done BOOLEAN NOT NULL);
             CREATE TABLE projects (id UUID PRIMARY KEY, owner UUID NOT NULL, name TEXT NOT NULL);",
        );
        let engine = Mobync::new(DieselStore::new(Tables::default()), Models::new().with::<Task>().with::<Project>());
        let mut server = Typed { engine: &engine, pool: &pool, db: &db, owner: |t| t.parse().expect("a uuid token"), rows };
        converge(&mut server, 24, |run| [0, 1, 2].map(|o| format!("00000000-0000-4000-8000-{:08x}{o:04x}", run)));
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use diesel::prelude::*;

    diesel::table! {
        tasks (id) { id -> Varchar, owner -> BigInt, title -> Text, done -> Bool }
    }
    diesel::table! {
        projects (id) { id -> Varchar, owner -> BigInt, name -> Text }
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = tasks)]
    #[mobync(model = "task", connection = diesel::MysqlConnection, validate = check)]
    pub struct Task {
        pub id: String,
        pub owner: i64,
        pub title: String,
        pub done: bool,
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = projects)]
    #[mobync(model = "project", connection = diesel::MysqlConnection)]
    pub struct Project {
        pub id: String,
        pub owner: i64,
        pub name: String,
    }

    fn check(owner: &i64, task: &Task) -> Result<(), String> {
        rules::title(owner, &task.title)
    }

    fn rows(conn: &mut MysqlConnection, owner: &i64) -> Rows {
        let mut rows = Rows::new();
        for t in tasks::table.filter(tasks::owner.eq(owner)).select(Task::as_select()).load(conn).expect("tasks") {
            assert_eq!(&t.owner, owner);
            let row = object(vec![("id", t.id.clone().into()), ("title", t.title.into()), ("done", t.done.into())]);
            rows.insert(("task".into(), t.id), row);
        }
        for p in projects::table.filter(projects::owner.eq(owner)).select(Project::as_select()).load(conn).expect("projects") {
            assert_eq!(&p.owner, owner);
            rows.insert(("project".into(), p.id.clone()), object(vec![("id", p.id.into()), ("name", p.name.into())]));
        }
        rows
    }

    #[test]
    fn i64_owners_on_mysql_connection_converge_to_the_reference() {
        let Some(db) = dbs::fresh(Backend::Mysql) else { return };
        let pool = pool::<MysqlConnection>(
            &db,
            "CREATE TABLE tasks (id VARBINARY(255) PRIMARY KEY, owner BIGINT NOT NULL, title TEXT NOT NULL, done BOOLEAN NOT NULL);
             CREATE TABLE projects (id VARBINARY(255) PRIMARY KEY, owner BIGINT NOT NULL, name TEXT NOT NULL);",
        );
        let engine = Mobync::new(DieselStore::new(Tables::default()), Models::new().with::<Task>().with::<Project>());
        let mut server = Typed { engine: &engine, pool: &pool, db: &db, owner: |t| t.parse().expect("an integer token"), rows };
        // Owners past 2^53, where a JSON float would lose them.
        converge(&mut server, 16, |run| [0, 1, 2].map(|o| (9_007_199_254_740_993i64 + 3 * run as i64 + o).to_string()));
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use diesel::prelude::*;

    diesel::table! {
        tasks (id) { id -> Text, owner -> Integer, title -> Text, done -> Bool }
    }
    diesel::table! {
        projects (id) { id -> Text, owner -> Integer, name -> Text }
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = tasks)]
    #[mobync(model = "task", connection = diesel::SqliteConnection, validate = check)]
    pub struct Task {
        pub id: String,
        pub owner: i32,
        pub title: String,
        pub done: bool,
    }

    #[derive(Queryable, Selectable, mobync::Syncable)]
    #[diesel(table_name = projects)]
    #[mobync(model = "project", connection = diesel::SqliteConnection)]
    pub struct Project {
        pub id: String,
        pub owner: i32,
        pub name: String,
    }

    fn check(owner: &i32, task: &Task) -> Result<(), String> {
        rules::title(owner, &task.title)
    }

    fn rows(conn: &mut SqliteConnection, owner: &i32) -> Rows {
        let mut rows = Rows::new();
        for t in tasks::table.filter(tasks::owner.eq(owner)).select(Task::as_select()).load(conn).expect("tasks") {
            assert_eq!(&t.owner, owner);
            let row = object(vec![("id", t.id.clone().into()), ("title", t.title.into()), ("done", t.done.into())]);
            rows.insert(("task".into(), t.id), row);
        }
        for p in projects::table.filter(projects::owner.eq(owner)).select(Project::as_select()).load(conn).expect("projects") {
            assert_eq!(&p.owner, owner);
            rows.insert(("project".into(), p.id.clone()), object(vec![("id", p.id.into()), ("name", p.name.into())]));
        }
        rows
    }

    #[test]
    fn i32_owners_on_sqlite_connection_converge_to_the_reference() {
        let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
        let pool = pool::<SqliteConnection>(
            &db,
            "CREATE TABLE tasks (id TEXT PRIMARY KEY NOT NULL, owner INTEGER NOT NULL, title TEXT NOT NULL, done BOOLEAN NOT NULL);
             CREATE TABLE projects (id TEXT PRIMARY KEY NOT NULL, owner INTEGER NOT NULL, name TEXT NOT NULL);",
        );
        let engine = Mobync::new(DieselStore::new(Tables::default()), Models::new().with::<Task>().with::<Project>());
        let mut server = Typed { engine: &engine, pool: &pool, db: &db, owner: |t| t.parse().expect("an integer token"), rows };
        converge(&mut server, 32, |run| [0, 1, 2].map(|o| (3 * run + o + 1).to_string()));
    }
}
