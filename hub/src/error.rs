//! The hub's failures, each an HTTP status and a JSON body
//! `{"success": false, "message": "...", "error": "<code>"}`.

use mobync::{ErrorKind, SyncError};
use serde_json::{json, Value};
use std::fmt;

/// A refused or failed hub call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// The HTTP status.
    pub status: u16,
    /// A short code: `bad_request`, `unauthenticated`, `not_found`,
    /// `conflict`, `timeout`, `payload_too_large`, `internal`, `unavailable`.
    pub code: &'static str,
    /// For humans; never SQL or internals.
    pub message: String,
}

impl HubError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HubError { status, code, message: message.into() }
    }

    /// 400: the request is malformed or the change is refused.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 401: no credentials, or not these.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "unauthenticated", message)
    }

    /// 408: the request body did not arrive in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(408, "timeout", message)
    }

    /// 413: the request body is larger than the hub takes.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    /// 404: no such network, node or message (or not yours).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 409: the message is not in a state that allows this.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 500: the detail is logged, never answered.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!("mobync hub internal error: {detail}");
        Self::new(500, "internal", "internal server error")
    }

    /// A database error: 503 when the database cannot answer now, else 500.
    pub fn database(err: diesel::result::Error) -> Self {
        SyncError::database(err).into()
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"success": false, "message": self.message, "error": self.code})
    }
}

/// An engine's refusal of a node's change is a 400 (the record breaks the
/// network's schema, the row is not there...); an outage stays a 503, and a
/// body read by mobync's `read_body` that is too slow or too large stays a
/// 408 or a 413.
impl From<SyncError> for HubError {
    fn from(err: SyncError) -> Self {
        // mobync's errors carry their cause for the log; the hub answers
        // every one it turns into its own.
        err.log();
        match err.kind {
            ErrorKind::Unavailable => Self::new(503, "unavailable", err.message),
            ErrorKind::Internal => Self::new(500, "internal", err.message),
            ErrorKind::Timeout => Self::timeout(err.message),
            ErrorKind::PayloadTooLarge => Self::too_large(err.message),
            _ => Self::bad_request(err.message),
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for HubError {}
