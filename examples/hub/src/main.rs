//! `cargo run -p hub`: the hub example on 127.0.0.1:8000 (`ROCKET_PORT`,
//! `ROCKET_ADDRESS` override) and a SQLite file `hub.sqlite` (`DATABASE_URL`
//! overrides; `postgres://…` or `mysql://…` selects that backend). The
//! admin API's bearer token is `HUB_ADMIN_TOKEN` (required).
//!
//! It is the todo server (`/signup`, `/sync`, `/health`, its tasks and
//! projects) with the hub attached: networks of back-office nodes whose
//! records are rows of the same owners, synced by the same engine.

use mobync_hub::Hub;

#[rocket::main]
async fn main() {
    let Some(admin_token) = std::env::var("HUB_ADMIN_TOKEN").ok().filter(|t| t.len() >= 16) else {
        eprintln!("hub: set HUB_ADMIN_TOKEN to the admin API's bearer token (at least 16 characters), e.g.\n  HUB_ADMIN_TOKEN=$(openssl rand -hex 16) cargo run -p hub");
        std::process::exit(1);
    };
    if let Err(err) = mobync::observe::init_logging() {
        eprintln!("hub: {err}");
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "hub.sqlite".into());
    let run = async {
        let app = todo::App::new(&url)?;
        // A network created without an owner gets a new user as owner.
        let hub = Hub::new(|conn| todo::accounts::new_user(conn, "hub network").map(|(id, _)| id).map_err(|e| e.to_string()));
        let sync = app.sync(hub.install(app.models()));
        let rocket = app.rocket(sync.clone()).attach(hub.fairing(sync.clone(), admin_token)).attach(todo::announce("hub"));
        sync.finish(rocket.launch().await).await.map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    };
    if let Err(err) = run.await {
        eprintln!("hub: {err}");
        std::process::exit(1);
    }
}
