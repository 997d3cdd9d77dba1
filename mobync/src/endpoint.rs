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
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

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
    known: Option<KnownTokens<O>>,
}

/// Owners the authenticator gave for tokens, each kept for a time.
struct KnownTokens<O> {
    keep_ms: i64,
    tokens: Mutex<HashMap<String, (O, i64)>>,
}

/// The most tokens remembered at once (then the expired ones are dropped,
/// and if none is, all of them).
const KNOWN_TOKENS: usize = 100_000;

impl<O: Clone> KnownTokens<O> {
    fn get(&self, token: &str, now_ms: i64) -> Option<O> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let (owner, at) = tokens.get(token)?;
        (now_ms.saturating_sub(*at) < self.keep_ms && now_ms >= *at).then(|| owner.clone())
    }

    fn put(&self, token: &str, owner: &O, now_ms: i64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= KNOWN_TOKENS && !tokens.contains_key(token) {
            let keep_ms = self.keep_ms;
            tokens.retain(|_, (_, at)| now_ms.saturating_sub(*at) < keep_ms);
            if tokens.len() >= KNOWN_TOKENS {
                tokens.clear();
            }
        }
        tokens.insert(token.to_owned(), (owner.clone(), now_ms));
    }
}

impl<C: LogConnection, O: Owner> Endpoint<C, O> {
    /// The endpoint of `models`, with the diff log in `tables`.
    pub fn new(models: Models<C, O>, tables: Tables, auth: impl Authenticator<C, O>) -> Self {
        Self::boxed(models, tables, Box::new(auth))
    }

    /// [`Endpoint::new`] with a boxed authenticator.
    pub fn boxed(models: Models<C, O>, tables: Tables, auth: Box<dyn Authenticator<C, O>>) -> Self {
        Endpoint { engine: Mobync::new(DieselStore::new(tables), models), auth, known: None }
    }

    /// Remembers the owner the authenticator gave for a token for
    /// `keep_ms` milliseconds of the engine's wall clock, so that syncs of
    /// that token within that time cost no call of the authenticator (for
    /// the todo example, no query). A token revoked in the meantime keeps
    /// working for at most that long; a refused token is never remembered.
    /// 0 (the default) asks the authenticator at every sync.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// use mobync::db::{self, DbConnection, Tables};
    /// use mobync::endpoint::{AuthError, Endpoint, Envelope};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// # let dir = std::env::temp_dir().join(format!("mobync-known-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let url = dir.join("k.sqlite").display().to_string();
    /// let mut conn = <DbConnection as db::LogConnection>::open(&url).unwrap();
    /// db::migrations::run(&mut conn, &Tables::default()).unwrap();
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let counted = calls.clone();
    /// let auth = move |_: &mut DbConnection, token: &str| {
    ///     counted.fetch_add(1, Ordering::SeqCst);
    ///     if token == "secret" { Ok("ada".to_string()) } else { Err(AuthError::refused("unknown auth_token")) }
    /// };
    /// let endpoint = Endpoint::new(mobync::Models::new(), Tables::default(), auth).with_known_tokens(5_000);
    /// let body = br#"{"auth_token":"secret","logical_clock":0,"diffs":[]}"#;
    /// endpoint.sync(&mut conn, Envelope::parse(body).unwrap()).unwrap();
    /// endpoint.sync(&mut conn, Envelope::parse(body).unwrap()).unwrap();
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// # }
    /// ```
    pub fn with_known_tokens(mut self, keep_ms: i64) -> Self {
        self.known = (keep_ms > 0).then(|| KnownTokens { keep_ms, tokens: Mutex::new(HashMap::new()) });
        self
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
        let Some(known) = &self.known else {
            return Ok(self.auth.authenticate(conn, token)?);
        };
        let now = self.engine.now_ms();
        if let Some(owner) = known.get(token, now) {
            return Ok(owner);
        }
        let owner = self.auth.authenticate(conn, token)?;
        known.put(token, &owner, now);
        Ok(owner)
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::db::{self, DbConnection};
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An endpoint whose authenticator counts its calls and accepts the
    /// tokens in `valid` (shared, so a test can revoke one), on a wall
    /// clock the test drives, remembering owners for 5 s.
    fn endpoint(valid: Arc<Mutex<Vec<&'static str>>>, now: Arc<AtomicI64>, calls: Arc<AtomicUsize>) -> Endpoint<DbConnection, String> {
        let auth = move |_: &mut DbConnection, token: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            match valid.lock().unwrap().contains(&token) {
                true => Ok(format!("owner-of-{token}")),
                false => Err(AuthError::refused("unknown auth_token")),
            }
        };
        Endpoint::new(Models::new(), Tables::default(), auth)
            .with_engine(|e| e.with_wall_clock(Arc::new(move || now.load(Ordering::SeqCst))))
            .with_known_tokens(5_000)
    }

    fn conn() -> DbConnection {
        let dir = std::env::temp_dir().join(format!("mobync-endpoint-known-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.sqlite");
        let _ = std::fs::remove_file(&path);
        let mut conn = <DbConnection as LogConnection>::open(&path.display().to_string()).unwrap();
        db::migrations::run(&mut conn, &Tables::default()).unwrap();
        conn
    }

    #[test]
    fn a_known_token_skips_the_authenticator_until_its_time_is_up_and_a_refusal_is_never_kept() {
        let (valid, now, calls) = (Arc::new(Mutex::new(vec!["a"])), Arc::new(AtomicI64::new(1_000_000)), Arc::new(AtomicUsize::new(0)));
        let endpoint = endpoint(valid.clone(), now.clone(), calls.clone());
        let mut conn = conn();
        let who = |endpoint: &Endpoint<DbConnection, String>, conn: &mut DbConnection, token: &str| endpoint.authenticate(conn, Some(token));
        assert_eq!(who(&endpoint, &mut conn, "a").unwrap(), "owner-of-a");
        assert_eq!(who(&endpoint, &mut conn, "a").unwrap(), "owner-of-a");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second sync asked again");
        // Revoked: still its owner within the 5 s, refused after them.
        valid.lock().unwrap().clear();
        now.fetch_add(4_999, Ordering::SeqCst);
        assert_eq!(who(&endpoint, &mut conn, "a").unwrap(), "owner-of-a");
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(who(&endpoint, &mut conn, "a").unwrap_err().kind.status(), 401);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A refusal is asked again every time: a token made valid works at once.
        assert_eq!(who(&endpoint, &mut conn, "b").unwrap_err().kind.status(), 401);
        valid.lock().unwrap().push("b");
        assert_eq!(who(&endpoint, &mut conn, "b").unwrap(), "owner-of-b");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // A clock that went back does not stretch the time.
        now.fetch_sub(10_000, Ordering::SeqCst);
        valid.lock().unwrap().clear();
        assert_eq!(who(&endpoint, &mut conn, "b").unwrap_err().kind.status(), 401);
    }

    #[test]
    fn without_known_tokens_every_sync_asks_the_authenticator() {
        let (valid, now, calls) = (Arc::new(Mutex::new(vec!["a"])), Arc::new(AtomicI64::new(1)), Arc::new(AtomicUsize::new(0)));
        let endpoint = endpoint(valid, now, calls.clone()).with_known_tokens(0);
        let mut conn = conn();
        for _ in 0..3 {
            endpoint.authenticate(&mut conn, Some("a")).unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
