//! `GET /ready`: 200 only when the database answers.

use super::{with_connection, SyncFairing, RETRY_AFTER_SECONDS};
use crate::db::LogConnection;
use crate::error::SyncError;
use crate::owner::Owner;
use rocket::data::Data;
use rocket::http::{Header, Method, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::route::{Handler, Outcome, Route};
use rocket::serde::json::{json, Json, Value};
use std::time::Duration;

/// How long the check waits for a connection and an answer.
const READY_WAIT: Duration = Duration::from_secs(2);

/// The readiness route of a [`SyncFairing`]: `GET` answers 200
/// `{"ready": true}` when a connection of the sync's pool runs `SELECT 1`
/// within 2 s, else 503 `{"ready": false, "error": …}` with `Retry-After`.
/// Mount it where the app wants it:
///
/// ```no_run
/// # fn app(sync: mobync::SyncFairing<mobync::db::DbConnection, String>) -> rocket::Rocket<rocket::Build> {
/// rocket::build().attach(sync.clone()).mount("/ready", sync.ready())
/// # }
/// ```
pub struct Ready<C: LogConnection, O>(pub(super) SyncFairing<C, O>);

impl<C: LogConnection, O> Clone for Ready<C, O> {
    fn clone(&self) -> Self {
        Ready(self.0.clone())
    }
}

struct Answer(Result<(), String>);

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self.0 {
            Ok(()) => Json(json!({"ready": true})).respond_to(req),
            Err(error) => {
                let body: Value = json!({"ready": false, "error": error});
                let mut response = response::status::Custom(Status::ServiceUnavailable, Json(body)).respond_to(req)?;
                response.set_header(Header::new("Retry-After", RETRY_AFTER_SECONDS.to_string()));
                Ok(response)
            }
        }
    }
}

impl<C: LogConnection, O: Owner> Ready<C, O> {
    /// Whether the database answers now.
    pub async fn check(&self) -> Result<(), String> {
        let running = self.0.running().ok_or("the sync fairing is not ignited")?;
        let source = running.0.source.clone();
        let ping = with_connection(&*source, |conn: &mut C| conn.batch("SELECT 1").map_err(SyncError::database));
        match rocket::tokio::time::timeout(READY_WAIT, ping).await {
            Err(_) => Err(format!("the database did not answer within {} s", READY_WAIT.as_secs())),
            Ok(Err(err)) | Ok(Ok(Err(err))) => Err(format!("the database cannot answer: {}", err.message)),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O: Owner> Handler for Ready<C, O> {
    async fn handle<'r>(&self, req: &'r Request<'_>, _data: Data<'r>) -> Outcome<'r> {
        Outcome::from(req, Answer(self.check().await))
    }
}

impl<C: LogConnection, O: Owner> From<Ready<C, O>> for Vec<Route> {
    fn from(ready: Ready<C, O>) -> Vec<Route> {
        vec![super::ignite::sentried::<C, O>(Method::Get, "mobync_ready", ready)]
    }
}
