//! mobync's example: the sync server of a todo app, with two synced models
//! (`task`, `project`), sign-up, and a health route.

pub mod accounts;
pub mod models;
pub mod rules;

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mobync::db::{self, DbConnection, Dialect, PoolSettings};
use mobync::{Models, SyncFairing};
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, get, routes, Build, Request, Rocket};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server on `database_url` (a SQLite path, `postgres://…` or
/// `mysql://…`), with its tables created. SQLite writes with
/// `synchronous=FULL` (an answered sync survives a power loss) unless
/// `SQLITE_SYNCHRONOUS` says otherwise (`NORMAL`: faster; a power loss, not
/// a crash of the process, may lose the last syncs answered).
pub fn rocket(database_url: &str) -> Result<Rocket<Build>, Error> {
    let mut settings = PoolSettings::default();
    if let Ok(level) = std::env::var("SQLITE_SYNCHRONOUS") {
        settings.sqlite_synchronous = level;
    }
    let pool = db::pool_with::<DbConnection>(database_url, &settings)?;
    let mut conn = pool.get()?;
    let migrations = match conn.dialect() {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
        Dialect::Mysql => MYSQL,
    };
    conn.run_pending_migrations(migrations)?;
    drop(conn);
    let models = Models::new().with::<models::Task>().with::<models::Project>();
    Ok(rocket::build()
        .manage(pool.clone())
        .mount("/", routes![accounts::signup, health])
        .register("/", catchers![error])
        .attach(SyncFairing::new(pool, models, accounts::authenticate)))
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[catch(default)]
fn error(status: Status, _: &Request<'_>) -> (Status, Json<Value>) {
    (status, Json(json!({"success": false, "message": status.to_string()})))
}
