//! The HTTP side of a sync: reading the body within a size limit and a
//! deadline, and every failure as PROTOCOL.md's JSON body.

use crate::error::{ErrorKind, SyncError};
use rocket::data::{ByteUnit, Data};
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, Catcher};
use std::time::Duration;

/// How long a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A failed request as an HTTP answer: its status, PROTOCOL.md's JSON body,
/// and `Retry-After` on a 503.
#[derive(Debug)]
pub struct ApiError(pub SyncError);

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        ApiError(err)
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let status = Status::from_code(self.0.kind.status()).unwrap_or(Status::InternalServerError);
        let mut response = response::status::Custom(status, Json(self.0.body())).respond_to(req)?;
        if self.0.kind == ErrorKind::Unavailable {
            response.set_header(Header::new("Retry-After", RETRY_AFTER_SECONDS.to_string()));
        }
        Ok(response)
    }
}

/// Reads the whole body: 413 over `limit`, 408 if it has not all arrived
/// within `deadline` (a client that sends slowly, or stops), 400 if the
/// connection fails. A body over the limit is read on and thrown away (up
/// to `DRAIN_FACTOR` (4) times the limit, within the deadline) before the 413
/// goes out: a client still sending it would otherwise get a broken pipe
/// instead of the answer.
pub async fn read_body(data: Data<'_>, limit: ByteUnit, deadline: Duration) -> Result<Vec<u8>, SyncError> {
    use rocket::tokio::io::{self, AsyncReadExt};
    let read = async {
        let mut stream = data.open(limit * (DRAIN_FACTOR + 1));
        let mut body = Vec::new();
        (&mut stream).take(limit.as_u64() + 1).read_to_end(&mut body).await?;
        if body.len() as u64 <= limit.as_u64() {
            return Ok::<_, io::Error>(Some(body));
        }
        drop(body);
        io::copy(&mut stream, &mut io::sink()).await?;
        Ok(None)
    };
    match rocket::tokio::time::timeout(deadline, read).await {
        Err(_) => Err(SyncError::timeout(format!(
            "the request body did not arrive within {} s",
            deadline.as_secs_f32()
        ))),
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(SyncError::too_large(format!("the request body is over the limit of {limit}"))),
        Ok(Err(err)) => Err(SyncError::malformed(format!("the request body could not be read: {err}"))),
    }
}

/// How many times the body limit an oversize body is read on for, so that
/// its client can read the 413; past that the connection is closed.
pub(crate) const DRAIN_FACTOR: u64 = 4;

/// Any other failure under the sync path (wrong method, a panic...) as a
/// JSON body too, never Rocket's HTML page.
#[catch(default)]
fn error(status: Status, _req: &Request<'_>) -> StatusApiError {
    let kind = match status.code {
        413 => ErrorKind::PayloadTooLarge,
        408 => ErrorKind::Timeout,
        401 => ErrorKind::Unauthenticated,
        503 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::MalformedRequest,
        _ => ErrorKind::Internal,
    };
    let message = match kind {
        ErrorKind::Internal => "internal server error".to_string(),
        ErrorKind::Unavailable => "the server cannot answer now; retry later".to_string(),
        _ => format!("{status}: POST a sync request here"),
    };
    StatusApiError(status, ApiError(SyncError::new(kind, message)))
}

/// An [`ApiError`] answered with the status Rocket chose (a 404 stays a
/// 404, with the nearest code of the table).
pub struct StatusApiError(Status, ApiError);

impl<'r> Responder<'r, 'static> for StatusApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.1.respond_to(req)?;
        response.set_status(self.0);
        Ok(response)
    }
}

/// The catchers mobync registers under the sync path.
pub fn catchers() -> Vec<Catcher> {
    rocket::catchers![error]
}
