//! The one error type of a sync, mapped one-to-one onto PROTOCOL.md's table.

use serde::Serialize;
use std::fmt;

/// Which row of PROTOCOL.md's error table a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the body is not JSON, a field is missing or of the wrong type.
    MalformedRequest,
    /// 401: `auth_token` missing or not accepted.
    Unauthenticated,
    /// 403: a validation rule of the app refused a diff.
    Forbidden,
    /// 409: `logical_clock` is negative or ahead of the owner's clock.
    InvalidClock,
    /// 413: body or diff count over the configured limit.
    PayloadTooLarge,
    /// 422: a diff is inconsistent (unknown model or field, missing row...).
    InvalidDiff,
    /// 410: the cursor is older than the purge horizon of tombstones: the
    /// device must clear its data and sync again from cursor 0.
    ResetRequired,
    /// 408: the body did not arrive within the read deadline.
    Timeout,
    /// 500: anything else; the message never carries internals.
    Internal,
    /// 503: the database or the authenticator's store cannot answer now;
    /// answered with `Retry-After`, never as 401.
    Unavailable,
}

impl ErrorKind {
    /// The `error` code of the JSON body, e.g. `"invalid_diff"`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::MalformedRequest => "malformed_request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::InvalidClock => "invalid_clock",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::InvalidDiff => "invalid_diff",
            ErrorKind::ResetRequired => "reset_required",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::MalformedRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::InvalidClock => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::InvalidDiff => 422,
            ErrorKind::ResetRequired => 410,
            ErrorKind::Timeout => 408,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// Every kind, in the order of PROTOCOL.md's table.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::MalformedRequest,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::InvalidClock,
        ErrorKind::PayloadTooLarge,
        ErrorKind::InvalidDiff,
        ErrorKind::ResetRequired,
        ErrorKind::Timeout,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
    ];

    /// The kind of an `error` code, e.g. `"invalid_diff"`.
    pub fn of_code(code: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// A failed sync: what went wrong, a message for humans and the offending
/// diff's id where there is one. A failed sync changes nothing.
///
/// ```
/// use mobync::{ErrorKind, SyncError};
/// let err = SyncError::invalid_diff("unknown model `tsk`").with_diff("d1");
/// assert_eq!(err.kind.status(), 422);
/// assert_eq!(err.body().error, "invalid_diff");
/// assert_eq!(err.diff_id.as_deref(), Some("d1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    /// The row of the error table.
    pub kind: ErrorKind,
    /// Human readable; never holds SQL or internals.
    pub message: String,
    /// The id of the diff at fault, if one is.
    pub diff_id: Option<String>,
    /// What a database error says of its connection, for whoever holds
    /// the connection to act on (see [`DbFault`]).
    pub(crate) fault: Option<DbFault>,
    /// The cause for the log (never answered), see [`SyncError::log`].
    pub(crate) detail: Option<String>,
}

/// What a failed database statement says of its connection. Building a
/// [`SyncError`] does nothing but build it: the holder of the connection
/// acts on this (the transaction owner, the pool's user through
/// [`crate::db::settle`]), and the pool drops a connection marked broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbFault {
    /// The connection is gone (the server closed it, the network failed,
    /// the rollback failed): 503, and the connection is not to be reused.
    Lost,
    /// The database cannot answer now, the connection itself is fine: a
    /// lock not had in time, a deadlock or serialization failure, a busy
    /// SQLite file. 503; a retry resolves it.
    Busy,
    /// Anything else: 500, or 422 when the value of a diff is at fault.
    /// Not every backend says when its connection was lost: the holder asks
    /// the connection (a ping) before reusing it.
    Other,
}

impl SyncError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SyncError { kind, message: message.into(), diff_id: None, fault: None, detail: None }
    }

    /// 400 `malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MalformedRequest, message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// 409 `invalid_clock`.
    pub fn invalid_clock(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidClock, message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PayloadTooLarge, message)
    }

    /// 422 `invalid_diff`.
    pub fn invalid_diff(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidDiff, message)
    }

    /// 410 `reset_required`.
    pub fn reset_required(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResetRequired, message)
    }

    /// 500 `internal`. The detail is for the log (see [`SyncError::log`]),
    /// never for the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, "internal server error").with_detail(detail)
    }

    /// 408 `timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// 503 `unavailable`: the client is told to retry; the cause is for
    /// the log (see [`SyncError::log`]).
    pub fn unavailable(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unavailable, "the server cannot answer now; retry later").with_detail(detail)
    }

    /// A database error: 503 `unavailable` when the database cannot answer
    /// now (the connection is lost, a deadlock or serialization failure
    /// that a retry resolves, a lock not had in time); 500 `internal`
    /// otherwise. Decided by what Diesel's error says without its text
    /// (see [`DbFault`] and [`crate::db::fault_of`]); nothing is logged
    /// and nothing done here.
    pub fn database(err: diesel::result::Error) -> Self {
        Self::of_fault(crate::db::fault_of(&err), err)
    }

    /// A database error of a statement that only waits for a lock (the
    /// owner's clock, a write transaction's `BEGIN`): anything but a lost
    /// connection is the wait's (a lock timeout, a deadlock, a canceled
    /// statement, a busy SQLite file): 503 and a connection to keep.
    pub fn database_waiting(err: diesel::result::Error) -> Self {
        let fault = match crate::db::fault_of(&err) {
            DbFault::Lost => DbFault::Lost,
            DbFault::Busy | DbFault::Other => DbFault::Busy,
        };
        Self::of_fault(fault, err)
    }

    /// A database error already known to be `fault`.
    pub fn of_fault(fault: DbFault, detail: impl fmt::Display) -> Self {
        let err = match fault {
            DbFault::Lost | DbFault::Busy => Self::unavailable(detail),
            DbFault::Other => Self::internal(detail),
        };
        SyncError { fault: Some(fault), ..err }
    }

    /// What the database error this is says of its connection; `None` for
    /// an error that did not come from the database.
    pub fn fault(&self) -> Option<DbFault> {
        self.fault
    }

    /// The cause, for the log: never answered to the client.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Keeps `detail` as the cause for the log.
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Logs the error as its answer goes out: a 500 as an error with its
    /// cause, a 503 as a warning with its cause; others are the client's
    /// and are not logged. Called by whoever answers (the fairing, the hub).
    pub fn log(&self) {
        let detail = self.detail.as_deref().unwrap_or(&self.message);
        match self.kind {
            ErrorKind::Internal => tracing::error!("mobync internal error: {detail}"),
            ErrorKind::Unavailable => tracing::warn!("mobync: unavailable: {detail}"),
            _ => {}
        }
    }

    /// Names the diff at fault (keeps an id set earlier).
    pub fn with_diff(mut self, diff_id: impl Into<String>) -> Self {
        if self.diff_id.is_none() {
            self.diff_id = Some(diff_id.into());
        }
        self
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            success: false,
            message: self.message.clone(),
            error: self.kind.code(),
            diff_id: self.diff_id.clone(),
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)?;
        if let Some(id) = &self.diff_id {
            write!(f, " (diff {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SyncError {}

/// The JSON body of every failed sync:
/// `{"success": false, "message": "...", "error": "<code>", "diff_id": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// Human readable.
    pub message: String,
    /// The code of PROTOCOL.md's table.
    pub error: &'static str,
    /// The offending diff, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_status_and_code_of_the_protocol_table() {
        let table = [
            (ErrorKind::MalformedRequest, 400, "malformed_request"),
            (ErrorKind::Unauthenticated, 401, "unauthenticated"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::InvalidClock, 409, "invalid_clock"),
            (ErrorKind::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorKind::InvalidDiff, 422, "invalid_diff"),
            (ErrorKind::ResetRequired, 410, "reset_required"),
            (ErrorKind::Timeout, 408, "timeout"),
            (ErrorKind::Internal, 500, "internal"),
            (ErrorKind::Unavailable, 503, "unavailable"),
        ];
        assert_eq!(table.len(), ErrorKind::ALL.len());
        for (kind, status, code) in table {
            assert_eq!(kind.status(), status);
            assert_eq!(kind.code(), code);
            assert_eq!(ErrorKind::of_code(code), Some(kind));
        }
    }

    #[test]
    fn internal_errors_never_leak_their_detail() {
        let err = SyncError::internal("SELECT * FROM secret failed");
        assert!(!err.message.contains("SELECT"));
        let body = serde_json::to_value(err.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"success": false, "message": "internal server error", "error": "internal"})
        );
    }
}
