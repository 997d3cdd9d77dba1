//! The sync endpoint without HTTP: a request body in, an answer or a
//! [`SyncError`] out, in PROTOCOL.md's order of checks (envelope, token,
//! cursor, size, then each diff in request order). The Rocket fairing and
//! any other transport call [`Envelope::parse`] and [`Endpoint::sync`].
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use mobync::db::{self, DbConnection, Tables};
//! use mobync::endpoint::{AuthError, Endpoint, Envelope};
//! # fn models() -> mobync::Models { mobync::Models::new() }
//! # let dir = std::env::temp_dir().join(format!("mobync-endpoint-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let url = dir.join("e.sqlite").display().to_string();
//! let mut conn = <DbConnection as db::LogConnection>::open(&url).unwrap();
//! db::migrations::run(&mut conn, &Tables::default()).unwrap();
//! let auth = |_: &mut DbConnection, token: &str| match token {
//!     "secret" => Ok("ada".to_string()),
//!     _ => Err(AuthError::refused("unknown auth_token")),
//! };
//! let endpoint = Endpoint::new(models(), Tables::default(), auth);
//! let body = br#"{"auth_token":"secret","logical_clock":0,"diffs":[]}"#;
//! let answer = endpoint.sync(&mut conn, Envelope::parse(body).unwrap()).unwrap();
//! assert_eq!(answer.logical_clock, 0);
//! let wrong = br#"{"auth_token":"guess","logical_clock":0,"diffs":[]}"#;
//! assert_eq!(endpoint.sync(&mut conn, Envelope::parse(wrong).unwrap()).unwrap_err().kind.status(), 401);
//! # }
//! ```

use crate::db::{DieselStore, LogConnection, Tables};
use crate::engine::{Mobync, Request, Sink};
use crate::observe::Report;
use crate::error::SyncError;
use crate::owner::Owner;
use crate::protocol::wire::decode_diff;
pub use crate::protocol::wire::Envelope;
use crate::protocol::SyncResponse;
use crate::syncable::Models;
use std::fmt;

/// Why an authenticator did not hand back an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The token is not accepted: 401 `unauthenticated`.
    Refused(String),
    /// The authenticator cannot answer now (its database is down, its pool
    /// exhausted): 503 `unavailable`, never 401, so that a client does not
    /// take an outage for a revoked token.
    Unavailable(String),
}

impl AuthError {
    /// The token is not accepted, for `reason`.
    pub fn refused(reason: impl Into<String>) -> Self {
        AuthError::Refused(reason.into())
    }

    /// The authenticator cannot answer now, for `reason` (logged only).
    pub fn unavailable(reason: impl fmt::Display) -> Self {
        AuthError::Unavailable(reason.to_string())
    }
}

/// A database error while authenticating is an outage, not a refusal.
impl From<diesel::result::Error> for AuthError {
    fn from(err: diesel::result::Error) -> Self {
        // The cause is logged where the answer goes out; whoever holds the
        // connection asks it whether it still answers (`db::settle`).
        AuthError::unavailable(format!("its database cannot answer: {err}"))
    }
}

impl From<AuthError> for SyncError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Refused(reason) => SyncError::unauthenticated(reason),
            AuthError::Unavailable(reason) => SyncError::unavailable(format!("the authenticator: {reason}")),
        }
    }
}

/// Turns an `auth_token` into its owner, on a connection of the app's
/// pool (it runs on a blocking thread, so it may query the database). Any
/// `Fn(&mut C, &str) -> Result<O, AuthError>` is one.
///
/// ```
/// use mobync::{db::DbConnection, AuthError, Authenticator};
///
/// fn authenticate(_conn: &mut DbConnection, token: &str) -> Result<String, AuthError> {
///     match token.strip_prefix("token-") {
///         Some(owner) if !owner.is_empty() => Ok(owner.to_string()),
///         _ => Err(AuthError::refused("unknown auth_token")), // 401
///     }
/// }
///
/// fn check(_: impl Authenticator<DbConnection, String>) {}
/// check(authenticate);
/// ```
pub trait Authenticator<C, O>: Send + Sync + 'static {
    /// The owner of `token`.
    fn authenticate(&self, conn: &mut C, token: &str) -> Result<O, AuthError>;
}

impl<C, O, F> Authenticator<C, O> for F
where
    F: Fn(&mut C, &str) -> Result<O, AuthError> + Send + Sync + 'static,
{
    fn authenticate(&self, conn: &mut C, token: &str) -> Result<O, AuthError> {
        self(conn, token)
    }
}

/// Whether two secrets are equal, in a time that does not depend on where
/// they first differ (only on their lengths), for an authenticator or an
/// admin API that compares a presented token with a stored one.
///
/// ```
/// use mobync::endpoint::same_secret;
/// assert!(same_secret("s3cret-token", "s3cret-token"));
/// assert!(!same_secret("s3cret-token", "s3cret-tokeN"));
/// assert!(!same_secret("s3cret", "s3cret-token"));
/// ```
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization` header value of the `Bearer` scheme
/// (the scheme's name in any case, as RFC 7235 has it), trimmed.
///
/// ```
/// use mobync::endpoint::bearer;
/// assert_eq!(bearer("Bearer abc123"), Some("abc123"));
/// assert_eq!(bearer("bearer  abc123 "), Some("abc123"));
/// assert_eq!(bearer("Basic YWxhZGRpbjpvcGVu"), None);
/// assert_eq!(bearer("Bearer "), None);
/// ```
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The engine over Diesel on connections of type `C`, the app's models with
/// owners of type `O`, and its authenticator.
pub type Engine<C, O> = Mobync<DieselStore<C>, Models<C, O>>;

/// The sync endpoint: an engine and an authenticator.
pub struct Endpoint<C, O> {
    engine: Engine<C, O>,
    auth: Box<dyn Authenticator<C, O>>,
}

impl<C: LogConnection, O: Owner> Endpoint<C, O> {
    /// The endpoint of `models`, with the diff log in `tables`.
    pub fn new(models: Models<C, O>, tables: Tables, auth: impl Authenticator<C, O>) -> Self {
        Self::boxed(models, tables, Box::new(auth))
    }

    /// [`Endpoint::new`] with a boxed authenticator.
    pub fn boxed(models: Models<C, O>, tables: Tables, auth: Box<dyn Authenticator<C, O>>) -> Self {
        Endpoint { engine: Mobync::new(DieselStore::new(tables), models), auth }
    }

    /// Sets the most diffs one request may carry (413 above).
    pub fn with_max_diffs(mut self, max_diffs: usize) -> Self {
        self.engine = self.engine.with_max_diffs(max_diffs);
        self
    }

    /// Sets the engine's other settings (clock skew, retry window, wall
    /// clock): `endpoint.with_engine(|e| e.with_max_clock_skew(60_000))`.
    pub fn with_engine(mut self, f: impl FnOnce(Engine<C, O>) -> Engine<C, O>) -> Self {
        self.engine = f(self.engine);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<C, O> {
        &self.engine
    }

    /// Who `token` is (401, or 503 when the authenticator cannot answer).
    pub fn authenticate(&self, conn: &mut C, token: Option<&str>) -> Result<O, SyncError> {
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| SyncError::unauthenticated("`auth_token` is missing"))?;
        Ok(self.auth.authenticate(conn, token)?)
    }

    /// One sync: the token (401/503), then [`Mobync::run`]'s checks in
    /// PROTOCOL.md's order (the cursor 409/410, the size 413, each diff in
    /// request order, the first fault winning: its shape 400, its
    /// consistency 422, the app's rules 403), the merge and the writes. All
    /// or nothing.
    pub fn sync(&self, conn: &mut C, envelope: Envelope) -> Result<SyncResponse, SyncError> {
        let mut answer = SyncResponse::ok(0, Vec::new());
        self.sync_noting(conn, envelope, &mut answer, &mut Report::default())?;
        Ok(answer)
    }

    /// [`sync`](Endpoint::sync), writing the answer to `sink` as it is read
    /// and noting in `report` what it finds and does as it goes (the owner,
    /// the cursor, the diffs received, applied, dropped and sent, the
    /// clock): on a failure, what it got to.
    pub fn sync_noting(&self, conn: &mut C, envelope: Envelope, sink: &mut dyn Sink, report: &mut Report) -> Result<(), SyncError> {
        report.received = envelope.diffs.len();
        let owner = self.authenticate(conn, envelope.auth_token.as_deref())?;
        report.owner = Some(owner.key().into_owned());
        let cursor = envelope.cursor.value()?;
        report.cursor = Some(cursor);
        let mut diffs = Vec::with_capacity(envelope.diffs.len());
        let mut undecoded = None;
        for raw in envelope.diffs {
            match decode_diff(&raw) {
                Ok(diff) => diffs.push(diff),
                Err(err) => {
                    undecoded = Some(err);
                    break;
                }
            }
        }
        let request = Request::new(&owner, cursor, diffs).paged(envelope.paging).undecoded(undecoded);
        self.engine.run(conn, request, sink, report)
    }
}
