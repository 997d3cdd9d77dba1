//! The todo example's server with its models on a concrete
//! `diesel::PgConnection` (the example itself syncs on mobync's
//! `DbConnection`, the enum of the three backends): the same tables, the
//! same wire models and rules, the same interface (`DATABASE_URL`,
//! `ROCKET_PORT`, `/signup`, `/sync`, `/health`), so that the load tools
//! compare the two connection types over the same HTTP path
//! (`TODO_BIN=target/release/todo_pg`).

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mobync::db::{self, Pool};
use mobync::{AuthError, Models, SyncFairing, Syncable};
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::{get, http::Status, post, routes, State};
use todo::accounts::{hash, random_hex};
use todo::rules::text;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../examples/todo/migrations/postgres");

diesel::table! {
    users (id) { id -> Text, name -> Text, token_hash -> Text }
}
diesel::table! {
    tasks (id) { id -> Text, owner -> Text, title -> Text, done -> Bool }
}
diesel::table! {
    projects (id) { id -> Text, owner -> Text, name -> Text }
}

#[derive(Queryable, Selectable, Syncable)]
#[diesel(table_name = tasks)]
#[mobync(model = "task", connection = diesel::PgConnection, validate = task)]
pub struct Task {
    pub id: String,
    pub owner: String,
    pub title: String,
    pub done: bool,
}

#[derive(Queryable, Selectable, Syncable)]
#[diesel(table_name = projects)]
#[mobync(model = "project", connection = diesel::PgConnection, validate = project)]
pub struct Project {
    pub id: String,
    pub owner: String,
    pub name: String,
}

fn task(_owner: &str, task: &Task) -> Result<(), String> {
    text("a task's title", &task.title)
}

fn project(_owner: &str, project: &Project) -> Result<(), String> {
    text("a project's name", &project.name)
}

fn authenticate(conn: &mut PgConnection, token: &str) -> Result<String, AuthError> {
    users::table
        .filter(users::token_hash.eq(hash(token)))
        .select(users::id)
        .first::<String>(conn)
        .optional()?
        .ok_or_else(|| AuthError::refused("unknown auth_token"))
}

#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
struct Signup {
    name: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
struct Account {
    auth_token: String,
    owner: String,
}

#[post("/signup", data = "<signup>")]
async fn signup(pool: &State<Pool<PgConnection>>, signup: Json<Signup>) -> Result<Json<Account>, Status> {
    let pool = pool.inner().clone();
    let name = signup.into_inner().name;
    rocket::tokio::task::spawn_blocking(move || {
        let (owner, token) = (random_hex(16).expect("random bytes"), random_hex(32).expect("random bytes"));
        let mut conn = pool.get().map_err(|_| Status::ServiceUnavailable)?;
        diesel::insert_into(users::table)
            .values((users::id.eq(&owner), users::name.eq(&name), users::token_hash.eq(hash(&token))))
            .execute(&mut conn)
            .map_err(|_| Status::InternalServerError)?;
        Ok(Json(Account { auth_token: token, owner }))
    })
    .await
    .map_err(|_| Status::InternalServerError)?
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL must name a PostgreSQL database")?;
    let pool = db::pool::<PgConnection>(&url)?;
    pool.get()?.run_pending_migrations(MIGRATIONS)?;
    let models = Models::new().with::<Task>().with::<Project>();
    rocket::build()
        .manage(pool.clone())
        .mount("/", routes![signup, health])
        .attach(SyncFairing::new(pool, models, authenticate))
        .attach(todo::announce("todo_pg"))
        .launch()
        .await?;
    Ok(())
}
