//! Sign-up and authentication: random tokens, stored only as SHA-256 hashes.

use diesel::prelude::*;
use mobync::db::{DbConnection, Pool};
use mobync::AuthError;
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::{http::Status, post, State};
use sha2::{Digest, Sha256};

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        token_hash -> Text,
    }
}

#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct Signup {
    name: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct Account {
    auth_token: String,
    owner: String,
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /signup {"name": ...}`: a new owner and its token.
#[post("/signup", data = "<signup>")]
pub async fn signup(pool: &State<Pool>, signup: Json<Signup>) -> Result<Json<Account>, Status> {
    let pool = pool.inner().clone();
    let name = signup.into_inner().name;
    let account = rocket::tokio::task::spawn_blocking(move || -> Result<Account, Box<dyn std::error::Error + Send + Sync>> {
        let (owner, token) = (random_hex(16)?, random_hex(32)?);
        diesel::insert_into(users::table)
            .values((users::id.eq(&owner), users::name.eq(&name), users::token_hash.eq(hash(&token))))
            .execute(&mut pool.get()?)?;
        Ok(Account { auth_token: token, owner })
    });
    match account.await {
        Ok(Ok(account)) => Ok(Json(account)),
        _ => Err(Status::InternalServerError),
    }
}

/// The authenticator of the sync fairing: a token's owner, by its hash. A
/// database that cannot answer is an outage (503), not a refusal (401).
pub fn authenticate(conn: &mut DbConnection, token: &str) -> Result<String, AuthError> {
    users::table
        .filter(users::token_hash.eq(hash(token)))
        .select(users::id)
        .first::<String>(conn)
        .optional()?
        .ok_or_else(|| AuthError::refused("unknown auth_token"))
}
