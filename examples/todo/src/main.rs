//! `cargo run -p todo`: the example server on 127.0.0.1:8000 (`ROCKET_PORT`,
//! `ROCKET_ADDRESS` override) and a SQLite file `todo.sqlite` (`DATABASE_URL`
//! overrides; `postgres://…` or `mysql://…` selects that backend). The
//! audit API is on with `MOBYNC_ADMIN_TOKEN`.

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // One log stream (RUST_LOG filters it, default `info`): mobync's spans
    // and Rocket's lines.
    mobync::observe::init_logging()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "todo.sqlite".into());
    let app = todo::App::new(&url)?;
    let sync = app.sync(app.models());
    let launched = app.rocket(sync.clone()).attach(todo::announce("todo")).launch().await;
    // Syncs still in flight when Rocket returns are answered first.
    sync.finish(launched).await?;
    Ok(())
}
