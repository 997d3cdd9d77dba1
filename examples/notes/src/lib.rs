//! mobync's second example: the sync server of a notes app on PostgreSQL,
//! with Rocket's `#[database]` pool, one synced model (`note`), sign-up and
//! a health route.

pub mod accounts;
pub mod models;
pub mod rules;
pub mod schema;

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mobync::{Models, SyncFairing};
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, get, routes, Build, Request, Rocket};
use rocket_sync_db_pools::database;

/// The app's own tables (mobync's fairing creates its own).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Where the database is when Rocket's configuration does not say.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/notes";

/// The app's pool: `databases.notes` in Rocket's configuration.
#[database("notes")]
pub struct Db(diesel::PgConnection);

/// Rocket's configuration, with the database URL defaulted.
pub fn figment() -> Figment {
    rocket::Config::figment().join(("databases.notes.url", DEFAULT_URL))
}

/// The server on `figment`'s configuration.
pub fn rocket(figment: Figment) -> Rocket<Build> {
    server(figment).0
}

/// [`rocket`], and its sync fairing (for `main` to let the syncs in flight
/// at shutdown finish: [`SyncFairing::finish`]).
pub fn server(figment: Figment) -> (Rocket<Build>, SyncFairing<diesel::PgConnection, i32>) {
    let models = Models::new().with::<models::Note>();
    let sync = SyncFairing::on_database::<Db>(models, accounts::authenticate);
    let rocket = rocket::custom(figment)
        .attach(Db::fairing())
        .attach(AdHoc::try_on_ignite("notes migrations", |rocket| async move {
            let Some(db) = Db::get_one(&rocket).await else { return Err(rocket) };
            match db.run(|conn| conn.run_pending_migrations(MIGRATIONS).map(|_| ()).map_err(|e| e.to_string())).await {
                Ok(()) => Ok(rocket),
                Err(err) => {
                    rocket::error!("notes: migrations failed: {err}");
                    Err(rocket)
                }
            }
        }))
        .attach(sync.clone())
        .mount("/", routes![accounts::signup, health])
        .register("/", catchers![error]);
    (rocket, sync)
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[catch(default)]
fn error(status: Status, _: &Request<'_>) -> (Status, Json<Value>) {
    (status, Json(json!({"success": false, "message": status.to_string()})))
}
