//! The audit API (off unless `admin_token` is configured), under
//! `<admin_path>/owners` (default `/admin/owners`), with
//! `Authorization: Bearer <admin_token>`:
//!
//! - `GET /admin/owners/<owner>` → [`OwnerSummary`](crate::db::audit::OwnerSummary);
//! - `GET /admin/owners/<owner>/rows/<model>/<id>?offset=&limit=` → a
//!   [`Page`](crate::db::audit::Page) of the row's history, oldest first;
//! - `GET /admin/owners/<owner>/stamps/<stamp>` → `{"diffs": [...]}`, what
//!   the sync stamped `<stamp>` applied;
//! - `POST /admin/owners/<owner>/compact` with `{"below": H}` (or `{}`: the
//!   owner's clock) → `{"horizon", "entries_before", "entries_after"}`
//!   (400 for a horizon above the owner's clock).
//!
//! 401 without the token, 404 for an owner the log has never seen (and any
//! other path), 400 for a bad number.

use super::{with_connection, Live};
use crate::db::{audit, LogConnection};
use crate::endpoint::{bearer, same_secret};
use crate::error::{ErrorKind, SyncError};
use crate::owner::Owner;
use rocket::data::{Data, ToByteUnit};
use rocket::http::{Method, Status};
use rocket::request::Request;
use rocket::route::{Handler, Outcome, Route};
use rocket::serde::json::{json, Json, Value};
use std::sync::Arc;

/// The audit API's handler.
pub(super) struct Audit<C: LogConnection, O> {
    pub(super) live: Arc<Live<C, O>>,
    pub(super) token: String,
}

impl<C: LogConnection, O> Clone for Audit<C, O> {
    fn clone(&self) -> Self {
        Audit { live: self.live.clone(), token: self.token.clone() }
    }
}

/// What a call asks.
enum Ask {
    Owner(String),
    Row { owner: String, model: String, id: String, offset: usize, limit: usize },
    Stamp(String, i64),
    Compact(String, Option<i64>),
}

/// The body of a compaction: `{"below": H}` or `{}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody {
    #[serde(default)]
    below: Option<i64>,
}

fn error(status: Status, message: &str) -> (Status, Json<Value>) {
    (status, Json(json!({"success": false, "error": status.reason_lossy().to_lowercase().replace(' ', "_"), "message": message})))
}

fn number<T: std::str::FromStr>(req: &Request<'_>, name: &str, default: T) -> Result<T, String> {
    match req.query_value::<&str>(name) {
        None => Ok(default),
        Some(Ok(text)) => text.parse().map_err(|_| format!("`{name}` must be a number >= 0, not {text:?}")),
        Some(Err(_)) => Err(format!("`{name}` must be a number")),
    }
}

fn ask(req: &Request<'_>, body: &[u8]) -> Result<Option<Ask>, String> {
    let segments: Vec<&str> = req.routed_segments(0..).collect();
    if req.method() == Method::Post {
        return match segments.as_slice() {
            [owner, "compact"] => {
                let body: CompactBody = serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
                    .map_err(|err| format!("the body must be `{{\"below\": <stamp>}}` or `{{}}`: {err}"))?;
                if body.below.is_some_and(|b| b < 0) {
                    return Err("`below` must be >= 0".into());
                }
                Ok(Some(Ask::Compact(owner.to_string(), body.below)))
            }
            _ => Ok(None),
        };
    }
    Ok(Some(match segments.as_slice() {
        [owner] => Ask::Owner(owner.to_string()),
        [owner, "rows", model, id] => Ask::Row {
            owner: owner.to_string(),
            model: model.to_string(),
            id: id.to_string(),
            offset: number(req, "offset", 0)?,
            limit: number(req, "limit", 100)?,
        },
        [owner, "stamps", stamp] => {
            let stamp = stamp.parse().map_err(|_| format!("a stamp is a number >= 0, not {stamp:?}"))?;
            Ask::Stamp(owner.to_string(), stamp)
        }
        _ => return Ok(None),
    }))
}

impl<C: LogConnection, O: Owner> Audit<C, O> {
    async fn answer(&self, req: &Request<'_>, data: Data<'_>) -> (Status, Json<Value>) {
        let bearer = req.headers().get_one("Authorization").and_then(bearer);
        if !bearer.is_some_and(|b| same_secret(b, &self.token)) {
            return error(Status::Unauthorized, "the audit API takes `Authorization: Bearer <admin_token>`");
        }
        let body = match data.open(64.kibibytes()).into_bytes().await {
            Ok(body) if body.is_complete() => body.into_inner(),
            Ok(_) => return error(Status::PayloadTooLarge, "the body is over 64 KiB"),
            Err(_) => return error(Status::BadRequest, "the body could not be read"),
        };
        let ask = match ask(req, &body) {
            Ok(Some(ask)) => ask,
            Ok(None) => return error(Status::NotFound, "no such audit call"),
            Err(message) => return error(Status::BadRequest, &message),
        };
        let live = self.live.clone();
        let ran = with_connection(&*self.live.source, move |conn: &mut C| {
            let tables = live.endpoint.engine().store().tables();
            match ask {
                Ask::Owner(owner) => audit::owner(conn, tables, &owner).map(|found| found.map(|s| json!(s))),
                Ask::Row { owner, model, id, offset, limit } => {
                    audit::row_history(conn, tables, &owner, &model, &id, offset, limit).map(|page| Some(json!(page)))
                }
                Ask::Stamp(owner, stamp) => audit::stamp(conn, tables, &owner, stamp).map(|diffs| Some(json!({"diffs": diffs}))),
                Ask::Compact(owner, below) => {
                    live.endpoint.engine().compact(conn, &owner, below).map(|done| done.map(|c| json!(c)))
                }
            }
        });
        match ran.await.and_then(|r| r) {
            Ok(Some(body)) => (Status::Ok, Json(body)),
            Ok(None) => error(Status::NotFound, "the log has never seen this owner"),
            Err(err) if err.kind == ErrorKind::MalformedRequest => error(Status::BadRequest, &err.message),
            Err(err) => {
                let status = if err.kind == ErrorKind::Unavailable { Status::ServiceUnavailable } else { Status::InternalServerError };
                error(status, &SyncError::body(&err).message)
            }
        }
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O: Owner> Handler for Audit<C, O> {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let answer = self.answer(req, data).await;
        Outcome::from(req, answer)
    }
}

impl<C: LogConnection, O: Owner> From<Audit<C, O>> for Vec<Route> {
    fn from(audit: Audit<C, O>) -> Vec<Route> {
        // Ranked before a catch-all of the app's under the same base (the
        // hub's `/admin/<path..>`).
        let mut get = Route::ranked(40, Method::Get, "/<path..>", audit.clone());
        get.name = Some("mobync_audit".into());
        let mut post = Route::ranked(40, Method::Post, "/<path..>", audit);
        post.name = Some("mobync_admin".into());
        vec![get, post]
    }
}
