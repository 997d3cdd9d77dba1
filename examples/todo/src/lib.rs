//! mobync's example: the sync server of a todo app, with two synced models
//! (`task`, `project`), sign-up, health and readiness routes, Prometheus
//! metrics, and the audit API when `MOBYNC_ADMIN_TOKEN` is set.

pub mod accounts;
pub mod models;
pub mod rules;

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mobync::db::{self, DbConnection, Dialect, Pool, PoolSettings};
use mobync::observe::Prometheus;
use std::sync::OnceLock;
use mobync::{Models, SyncFairing};
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, get, routes, Build, Request, Rocket};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Prints `<name>: listening on http://<address>:<port>` once the server
/// listens (the port the OS chose when `ROCKET_PORT=0`): the line the tools
/// and tests that start the server wait for.
pub fn announce(name: &'static str) -> rocket::fairing::AdHoc {
    rocket::fairing::AdHoc::on_liftoff("announce the address", move |rocket| {
        Box::pin(async move {
            use std::io::Write;
            let config = rocket.config();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{name}: listening on http://{}:{}", config.address, config.port);
            let _ = out.flush();
        })
    })
}

/// The server on `database_url` (a SQLite path, `postgres://…` or
/// `mysql://…`), with its tables created: [`App`] as it is.
pub fn rocket(database_url: &str) -> Result<Rocket<Build>, Error> {
    let app = App::new(database_url)?;
    let sync = app.sync(app.models());
    Ok(app.rocket(sync))
}

/// The todo server's parts, for a server that adds to it (the hub example
/// attaches the hub to this server).
pub struct App {
    pool: Pool,
}

impl App {
    /// The pool of `database_url`, with the app's tables created. SQLite
    /// writes with `synchronous=FULL` (an answered sync survives a power
    /// loss) unless `SQLITE_SYNCHRONOUS` says otherwise (`NORMAL`: faster;
    /// a power loss, not a crash of the process, may lose the last syncs
    /// answered).
    pub fn new(database_url: &str) -> Result<App, Error> {
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
        Ok(App { pool })
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The synced models: tasks and projects.
    pub fn models(&self) -> Models {
        Models::new().with::<models::Task>().with::<models::Project>()
    }

    /// The sync fairing of `models`, on the pool, with the users' tokens.
    pub fn sync(&self, models: Models) -> SyncFairing<DbConnection, String> {
        SyncFairing::new(self.pool.clone(), models, accounts::authenticate)
    }

    /// The server: `/signup`, `/health`, `/ready`, `/metrics` (Prometheus
    /// text), JSON errors, and `sync` attached; the audit API under
    /// `/admin/owners` when `MOBYNC_ADMIN_TOKEN` is set (at least 16
    /// characters, else the server does not start).
    pub fn rocket(&self, sync: SyncFairing<DbConnection, String>) -> Rocket<Build> {
        // A token's owner is remembered for 10 s (a sync then costs no
        // users query; a revoked token keeps working up to 10 s), unless
        // the configuration says otherwise (`ROCKET_MOBYNC={auth_cache=0}`).
        let mut figment = rocket::Config::figment().join(("mobync.auth_cache", 10.0));
        if let Some(token) = std::env::var("MOBYNC_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()) {
            figment = figment.merge(("mobync.admin_token", token));
        }
        let rocket = rocket::custom(figment)
            .manage(self.pool.clone())
            .mount("/", routes![accounts::signup, health])
            .mount("/ready", sync.ready())
            .register("/", catchers![error]);
        match metrics() {
            Some(metrics) => rocket.mount("/metrics", metrics),
            None => rocket,
        }
        .attach(sync)
    }
}

/// The process's Prometheus recorder, installed by the first call (`None`
/// if another recorder was installed first).
fn metrics() -> Option<Prometheus> {
    static METRICS: OnceLock<Option<Prometheus>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            Prometheus::install().map_err(|err| rocket::warn!("todo: no /metrics: {err}")).ok()
        })
        .clone()
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[catch(default)]
fn error(status: Status, _: &Request<'_>) -> (Status, Json<Value>) {
    (status, Json(json!({"success": false, "message": status.to_string()})))
}
