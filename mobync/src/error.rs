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
}

impl SyncError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SyncError { kind, message: message.into(), diff_id: None }
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

    /// 500 `internal`. The detail goes to the log, never to the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!("mobync internal error: {detail}");
        Self::new(ErrorKind::Internal, "internal server error")
    }

    /// 408 `timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// 503 `unavailable`: the cause is logged, the client told to retry.
    pub fn unavailable(detail: impl fmt::Display) -> Self {
        tracing::warn!("mobync: unavailable: {detail}");
        Self::new(ErrorKind::Unavailable, "the server cannot answer now; retry later")
    }

    /// A database error: 503 `unavailable` when the database cannot answer
    /// now (the connection is lost, the server is shutting down, a lock
    /// could not be had in time, a deadlock or serialization failure that a
    /// retry resolves); 500 `internal` otherwise. Its detail is logged.
    pub fn database(err: diesel::result::Error) -> Self {
        if is_outage(&err) {
            crate::db::discard_connection();
            Self::unavailable(err)
        } else {
            Self::internal(err)
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

/// Whether a database error means "cannot answer now" rather than a fault.
fn is_outage(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match err {
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand | Kind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            [
                "database is locked",
                "database is busy",
                "server has gone away",
                "lost connection",
                "terminating connection",
                "the database system is",
                "connection refused",
                "no connection to the server",
                "server closed the connection",
                "deadlock",
                "lock wait timeout",
                "lock timeout",
                "could not obtain lock",
                "canceling statement due to",
            ]
            .iter()
            .any(|needle| message.contains(needle))
        }
        Error::BrokenTransactionManager => true,
        // A commit that failed, and its rollback with it: the connection is
        // what failed (whether the commit took effect is unknown; a retry
        // is harmless).
        Error::RollbackErrorOnCommit { commit_error, .. } => is_outage(commit_error),
        _ => false,
    }
}

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
