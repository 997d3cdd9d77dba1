//! mobync's pool: what its connections are set to, and which connections it
//! does not take back.

use diesel::prelude::*;
use mobync::db::{self, DbConnection, PoolSettings};
use mobync_tests::dbs::{self, Backend};

#[derive(QueryableByName)]
struct Level {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    synchronous: i32,
}

fn synchronous(conn: &mut DbConnection) -> i32 {
    diesel::sql_query("PRAGMA synchronous").get_result::<Level>(conn).expect("pragma").synchronous
}

#[test]
fn sqlite_is_durable_by_default_and_normal_only_when_asked() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let full = db::pool::<DbConnection>(&db.url).expect("pool");
    assert_eq!(synchronous(&mut full.get().expect("connection")), 2, "synchronous=FULL");
    let settings = PoolSettings { sqlite_synchronous: "normal".into(), ..PoolSettings::default() };
    let normal = db::pool_with::<DbConnection>(&db.url, &settings).expect("pool");
    assert_eq!(synchronous(&mut normal.get().expect("connection")), 1, "synchronous=NORMAL");
    let settings = PoolSettings { sqlite_synchronous: "sometimes".into(), ..PoolSettings::default() };
    let typo = db::pool_with::<DbConnection>(&db.url, &settings).expect("pool");
    assert_eq!(synchronous(&mut typo.get().expect("connection")), 2, "an unknown level is the safe one");
}

#[derive(QueryableByName)]
struct TempStore {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    temp_store: i32,
}

/// A savepoint's journal (each write of a group commit has one) stays in
/// memory instead of spilling to a file of its own inside the write.
#[test]
fn sqlite_keeps_its_temporary_files_in_memory() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let pool = db::pool::<DbConnection>(&db.url).expect("pool");
    let mut conn = pool.get().expect("connection");
    let store: TempStore = diesel::sql_query("PRAGMA temp_store").get_result(&mut *conn).expect("pragma");
    assert_eq!(store.temp_store, 2, "temp_store=MEMORY");
}

/// Whether `conn` is the connection marked by [`mark`]: a temporary table
/// lives as long as its connection.
fn marked(conn: &mut DbConnection) -> bool {
    diesel::sql_query("SELECT 1 FROM marker").execute(conn).is_ok()
}

fn mark(conn: &mut DbConnection) {
    diesel::sql_query("CREATE TEMP TABLE marker (x INTEGER)").execute(conn).expect("mark");
}

#[test]
fn a_connection_given_back_by_a_panicking_thread_is_not_reused() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let pool = db::pool_with::<DbConnection>(&db.url, &PoolSettings { max_size: 1, ..PoolSettings::default() }).expect("pool");
    mark(&mut pool.get().expect("connection"));
    assert!(marked(&mut pool.get().expect("connection")), "a connection given back normally is reused");
    let panicking = pool.clone();
    let _ = std::thread::spawn(move || {
        let _conn = panicking.get().expect("connection");
        panic!("in the middle of something");
    })
    .join();
    assert!(!marked(&mut pool.get().expect("connection")), "the pool reused the connection of a panicking thread");
}
