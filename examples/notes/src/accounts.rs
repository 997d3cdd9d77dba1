//! Sign-up and authentication: random tokens, stored only as SHA-256
//! hashes; the owner is the user's `SERIAL` id.

use crate::schema::users;
use crate::Db;
use diesel::prelude::*;
use mobync::AuthError;
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::post;
use sha2::{Digest, Sha256};

/// Longest user name.
const MAX_NAME: usize = 100;

#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct Signup {
    name: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct Account {
    auth_token: String,
    owner: i32,
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /signup {"name": ...}`: a new user, its token and its id.
#[post("/signup", data = "<signup>")]
pub async fn signup(db: Db, signup: Json<Signup>) -> Result<Json<Account>, Status> {
    let name = signup.into_inner().name;
    if name.trim().is_empty() || name.chars().count() > MAX_NAME {
        return Err(Status::UnprocessableEntity);
    }
    let token = random_hex(32).map_err(|_| Status::InternalServerError)?;
    let token_hash = hash(&token);
    let owner = db
        .run(move |conn| {
            diesel::insert_into(users::table)
                .values((users::name.eq(&name), users::token_hash.eq(&token_hash)))
                .returning(users::id)
                .get_result::<i32>(conn)
        })
        .await
        .map_err(|_| Status::ServiceUnavailable)?;
    Ok(Json(Account { auth_token: token, owner }))
}

/// The authenticator of the sync fairing, on the same pool: a token's user,
/// by its hash. A database that cannot answer is an outage (503), not a
/// refusal (401).
pub fn authenticate(conn: &mut PgConnection, token: &str) -> Result<i32, AuthError> {
    users::table
        .filter(users::token_hash.eq(hash(token)))
        .select(users::id)
        .first::<i32>(conn)
        .optional()?
        .ok_or_else(|| AuthError::refused("unknown auth_token"))
}
