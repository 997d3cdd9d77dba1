//! Sign-up and authentication: random tokens, stored only as SHA-256 hashes.

use diesel::prelude::*;
use mobync::db::{DbConnection, Pool};
use mobync::AuthError;
use rocket::data::{Data, ToByteUnit};
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

/// `bytes` random bytes, in hex: a new owner id or token.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// What is stored of a token: its SHA-256, in hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest `/signup` body.
const MAX_BODY: u64 = 4096;

/// Longest user name, in characters.
const MAX_NAME: usize = 100;

/// `POST /signup {"name": ...}`: a new owner and its token. A body over
/// 4 KiB is 413, one that is not `{"name": "..."}` 400, a blank name or one
/// over 100 characters 422.
#[post("/signup", data = "<data>")]
pub async fn signup(pool: &State<Pool>, data: Data<'_>) -> Result<Json<Account>, Status> {
    let body = data.open(MAX_BODY.bytes()).into_bytes().await.map_err(|_| Status::BadRequest)?;
    if !body.is_complete() {
        return Err(Status::PayloadTooLarge);
    }
    let signup: Signup = rocket::serde::json::from_slice(&body).map_err(|_| Status::BadRequest)?;
    let name = signup.name;
    if name.trim().is_empty() || name.chars().count() > MAX_NAME {
        return Err(Status::UnprocessableEntity);
    }
    let pool = pool.inner().clone();
    let account = rocket::tokio::task::spawn_blocking(move || -> Result<Account, Box<dyn std::error::Error + Send + Sync>> {
        let (owner, auth_token) = new_user(&mut *pool.get()?, &name)?;
        Ok(Account { auth_token, owner })
    });
    match account.await {
        Ok(Ok(account)) => Ok(Json(account)),
        _ => Err(Status::ServiceUnavailable),
    }
}

/// A new user named `name`: its id (the owner of its rows) and its token.
pub fn new_user(conn: &mut DbConnection, name: &str) -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>> {
    let (owner, token) = (random_hex(16)?, random_hex(32)?);
    diesel::insert_into(users::table)
        .values((users::id.eq(&owner), users::name.eq(name), users::token_hash.eq(hash(&token))))
        .execute(conn)?;
    Ok((owner, token))
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
