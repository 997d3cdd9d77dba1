//! `cargo run -p todo`: the example server on 127.0.0.1:8000 (`ROCKET_PORT`,
//! `ROCKET_ADDRESS` override) and a SQLite file `todo.sqlite` (`DATABASE_URL`
//! overrides; `postgres://…` or `mysql://…` selects that backend).

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "todo.sqlite".into());
    todo::rocket(&url)?.attach(mobync::fairing::Announce("todo")).launch().await?;
    Ok(())
}
