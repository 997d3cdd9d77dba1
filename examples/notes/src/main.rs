//! `cargo run -p notes`: the notes server on 127.0.0.1:8000 (`ROCKET_PORT`,
//! `ROCKET_ADDRESS` override) and PostgreSQL at
//! `postgres://postgres@127.0.0.1:5432/notes`, created if missing
//! (`ROCKET_DATABASES='{notes={url="postgres://…"}}'` points elsewhere).

use diesel::{Connection, PgConnection, RunQueryDsl};

/// Makes sure the database at `url` exists: creates it through the
/// server's `postgres` database if it does not. Says how to point the
/// server elsewhere when no PostgreSQL answers.
fn ensure_database(url: &str) -> Result<(), String> {
    let missing = match PgConnection::establish(url) {
        Ok(_) => return Ok(()),
        Err(err) if err.to_string().contains("does not exist") => err,
        Err(err) => return Err(format!("{err}")),
    };
    let (server, name) = url.rsplit_once('/').ok_or_else(|| format!("{url} names no database"))?;
    let name = name.split('?').next().unwrap_or(name);
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{missing}; create the database {name:?} yourself"));
    }
    let mut admin = PgConnection::establish(&format!("{server}/postgres")).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).map_err(|e| e.to_string())?;
    Ok(())
}

/// Prints `notes: listening on http://<address>:<port>` once the server
/// listens: the line the tools and tests that start it wait for.
fn announce() -> rocket::fairing::AdHoc {
    rocket::fairing::AdHoc::on_liftoff("announce the address", |rocket| {
        Box::pin(async move {
            use std::io::Write;
            let config = rocket.config();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "notes: listening on http://{}:{}", config.address, config.port);
            let _ = out.flush();
        })
    })
}

#[rocket::main]
async fn main() {
    let figment = notes::figment();
    let url: String = figment.extract_inner("databases.notes.url").unwrap_or_else(|_| notes::DEFAULT_URL.into());
    if let Err(err) = ensure_database(&url) {
        eprintln!(
            "notes: no PostgreSQL answers at {url}: {err}\n\
             Point the server at one with ROCKET_DATABASES='{{notes={{url=\"postgres://user@host:5432/notes\"}}}}' \
             (or [default.databases.notes] url = \"…\" in Rocket.toml)."
        );
        std::process::exit(1);
    }
    let (rocket, sync) = notes::server(figment);
    if let Err(err) = sync.finish(rocket.attach(announce()).launch().await).await {
        eprintln!("notes: {err}");
        std::process::exit(1);
    }
}
