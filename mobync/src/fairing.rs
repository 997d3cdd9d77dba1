//! The Rocket fairing: one `attach` and the app has a `/sync` endpoint, on
//! the app's own connection type and pool.
//!
//! ```no_run
//! # use mobync::{db::{self, DbConnection}, endpoint::AuthError, Models, SyncFairing};
//! # fn models() -> Models { Models::new() }
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     let pool = db::pool::<DbConnection>("todo.sqlite").expect("database");
//!     let auth = |_: &mut DbConnection, token: &str| match token {
//!         "secret" => Ok("alice".to_string()),
//!         _ => Err(AuthError::refused("unknown token")),
//!     };
//!     rocket::build().attach(SyncFairing::new(pool, models(), auth))
//! }
//! ```
//!
//! With a `rocket_sync_db_pools` database (feature `sync-db-pools`), the
//! sync runs on that same pool: `SyncFairing::on_database::<Db>(models,
//! auth)`, attached after `Db::fairing()`.
//!
//! The fairing mounts `POST <path>` itself, unless the app mounted it as a
//! handler value already: `rocket.attach(sync.clone()).mount("/api/sync",
//! sync)`.
//!
//! Configuration comes from Rocket's figment, table `mobync` (`Rocket.toml`
//! or `ROCKET_MOBYNC='{path="/api/sync"}'`), see [`Config`].

mod audit;
mod compaction;
mod drain;
mod http;
mod ready;
mod source;
mod stream;

pub use http::{read_body, ApiError, RETRY_AFTER_SECONDS};
pub use ready::Ready;
#[cfg(feature = "sync-db-pools")]
pub use source::DatabaseSource;
pub use source::{with_connection, Connections, Job, PoolSource};

use crate::db::{migrations, LogConnection, Pool, Tables};
use crate::endpoint::{Authenticator, Endpoint, Envelope};
use crate::engine::DEFAULT_MAX_DIFFS;
use crate::error::SyncError;
use crate::observe::{self, names, Report};
use crate::owner::Owner;
use crate::syncable::Models;
use rocket::data::{ByteUnit, Data, ToByteUnit};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::providers::Serialized;
use rocket::http::{Header, Method};
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self as response, Responder};
use rocket::route::{Handler, Outcome, Route};
use rocket::serde::{Deserialize, Serialize};
use rocket::{Build, Rocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A successful sync's answer, as JSON: whole with its length, or streamed
/// as it is read from the database when it is over 64 KiB.
#[derive(Debug)]
pub struct SyncAnswer(Answer);

enum Answer {
    Whole(Vec<u8>),
    Streamed(stream::Streamed),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Whole(bytes) => write!(f, "Whole({} bytes)", bytes.len()),
            Answer::Streamed(_) => f.write_str("Streamed"),
        }
    }
}

impl SyncAnswer {
    /// The whole answer, if it is not streamed.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Answer::Whole(bytes) => Some(bytes),
            Answer::Streamed(_) => None,
        }
    }
}

impl<'r> rocket::response::Responder<'r, 'static> for SyncAnswer {
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        match self.0 {
            Answer::Whole(bytes) => (rocket::http::ContentType::JSON, bytes).respond_to(req),
            Answer::Streamed(body) => {
                rocket::Response::build().header(rocket::http::ContentType::JSON).streamed_body(body).ok()
            }
        }
    }
}

/// A request's id: its `X-Request-Id` header if usable (1 to 128 visible
/// ASCII characters), else a new one. A request guard, for an app's own
/// sync route (see [`SyncFairing::without_route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new id.
    pub fn new() -> Self {
        RequestId(observe::new_request_id())
    }

    /// The id of `req`.
    pub fn of(req: &Request<'_>) -> Self {
        RequestId(observe::request_id_or_new(req.headers().get_one("X-Request-Id")))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestId {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(RequestId::of(req))
    }
}

/// An answer carrying its request's id in the `X-Request-Id` header.
pub struct WithRequestId<R>(pub R, pub RequestId);

impl<'r, R: Responder<'r, 'static>> Responder<'r, 'static> for WithRequestId<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.0.respond_to(req)?;
        response.set_header(Header::new("X-Request-Id", self.1 .0));
        Ok(response)
    }
}

/// The name of the sync route, whoever mounts it.
pub const ROUTE_NAME: &str = "mobync_sync";

/// Prints `<name>: listening on http://<address>:<port>` on stdout once the
/// server listens, with the port the OS chose when `port` is 0: one line
/// for the tools that start the server (Rocket's own banner goes through
/// its log level).
pub struct Announce(pub &'static str);

#[rocket::async_trait]
impl Fairing for Announce {
    fn info(&self) -> Info {
        Info { name: "announce the address", kind: Kind::Liftoff }
    }

    async fn on_liftoff(&self, rocket: &Rocket<rocket::Orbit>) {
        use std::io::Write;
        let config = rocket.config();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}: listening on http://{}:{}", self.0, config.address, config.port);
        let _ = out.flush();
    }
}

/// The fairing's settings, from the `mobync` table of Rocket's figment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(crate = "rocket::serde", default)]
pub struct Config {
    /// Where the sync endpoint is mounted. Default `/sync`.
    pub path: String,
    /// The diff log's table name (its companions are named after it).
    /// Default `diffs`.
    pub diffs_table: String,
    /// Most diffs in one request (413 above). Default 5,000.
    pub max_diffs: usize,
    /// Largest request body (413 above). Default 5 MiB.
    pub body_limit: ByteUnit,
    /// Seconds a request body may take to arrive (408 after). Default 30.
    pub read_timeout: f64,
    /// Seconds a sync waits for a free connection of mobync's own pool
    /// (503 after). Default 5. (A `#[database]` pool has its own `timeout`.)
    pub pool_wait: f64,
    /// Run mobync's migrations at ignition. Default `true`.
    pub migrate: bool,
    /// The audit API's bearer token (at least 16 characters); the API is
    /// off without one. Default none.
    pub admin_token: Option<String>,
    /// Where the audit API is mounted (`<admin_path>/owners/...`). Default
    /// `/admin`.
    pub admin_path: String,
    /// Seconds a diff's `utc_timestamp` may be ahead of the server's clock;
    /// a diff further ahead gets the server's time (PROTOCOL.md). Default
    /// 600; 0 turns the check off.
    pub max_clock_skew: f64,
    /// Seconds the ids of diffs squashed by a compaction stay known, so
    /// that a retried request is still recognised. Default 30 days.
    pub retry_window: f64,
    /// Seconds between two rounds of background compaction; 0 (the
    /// default) turns it off (compaction then runs only when called).
    pub compact_every: f64,
    /// Stamps of each owner's newest history the background compaction
    /// keeps as diffs (it compacts an owner once more than twice this many
    /// are above its horizon). Default 1,000.
    pub compact_keep: i64,
    /// Seconds after which the background compaction purges the
    /// tombstones of deleted rows (devices older than that then get 410
    /// `reset_required`); 0 (the default) keeps them forever.
    pub tombstone_age: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/sync".into(),
            diffs_table: "diffs".into(),
            max_diffs: DEFAULT_MAX_DIFFS,
            body_limit: 5.mebibytes(),
            read_timeout: 30.0,
            pool_wait: 5.0,
            migrate: true,
            admin_token: None,
            admin_path: "/admin".into(),
            max_clock_skew: 600.0,
            retry_window: 30.0 * 24.0 * 3600.0,
            compact_every: 0.0,
            compact_keep: 1_000,
            tombstone_age: 0.0,
        }
    }
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("`{name}` must be a number of seconds >= 0, not {value}"))
}

#[cfg(feature = "sync-db-pools")]
type FindSource<C> = Box<dyn FnOnce(&Rocket<Build>) -> Option<Arc<dyn Connections<C>>> + Send>;

/// Where the connections come from, before ignition.
enum Source<C: LogConnection> {
    Pool(Pool<C>),
    #[cfg(feature = "sync-db-pools")]
    Found(FindSource<C>),
}

struct Parts<C: LogConnection, O> {
    models: Models<C, O>,
    auth: Box<dyn Authenticator<C, O>>,
    source: Source<C>,
}

/// A running fairing's engine and connections, for other faces on the same
/// engine (the hub): see [`SyncFairing::running`].
pub struct Running<C: LogConnection, O>(Arc<Live<C, O>>);

impl<C: LogConnection, O> Clone for Running<C, O> {
    fn clone(&self) -> Self {
        Running(self.0.clone())
    }
}

impl<C: LogConnection, O: Owner> Running<C, O> {
    /// The engine.
    pub fn engine(&self) -> &crate::endpoint::Engine<C, O> {
        self.0.endpoint.engine()
    }

    /// Where connections come from (with the fairing's bounded wait).
    pub fn connections(&self) -> &dyn Connections<C> {
        &*self.0.source
    }
}

/// What a running fairing serves with.
struct Live<C: LogConnection, O> {
    endpoint: Endpoint<C, O>,
    source: Arc<dyn Connections<C>>,
    config: Config,
}

struct Shared<C: LogConnection, O> {
    parts: Mutex<Option<Parts<C, O>>>,
    live: OnceLock<Arc<Live<C, O>>>,
    /// Whether the fairing mounts the route (else the app does).
    mount: bool,
    /// Syncs in flight.
    in_flight: drain::InFlight,
}

/// The fairing, and the sync route's handler: syncs the app's [`Models`] on
/// connections of type `C` for owners of type `O`, authenticated by an
/// [`Authenticator`]. Clones share one engine.
pub struct SyncFairing<C: LogConnection, O> {
    shared: Arc<Shared<C, O>>,
}

impl<C: LogConnection, O> Clone for SyncFairing<C, O> {
    fn clone(&self) -> Self {
        SyncFairing { shared: self.shared.clone() }
    }
}

impl<C: LogConnection, O: Owner> SyncFairing<C, O> {
    fn with_source(models: Models<C, O>, auth: impl Authenticator<C, O>, source: Source<C>) -> Self {
        let parts = Parts { models, auth: Box::new(auth), source };
        SyncFairing { shared: Arc::new(Shared { parts: Mutex::new(Some(parts)), live: OnceLock::new(), mount: true, in_flight: Default::default() }) }
    }

    /// Leaves the route to the app: it calls [`SyncFairing::respond`] from a
    /// route of its own, behind its own guards (the fairing is managed
    /// state, `&State<SyncFairing<C, O>>`):
    ///
    /// ```no_run
    /// # use mobync::{db::DbConnection, fairing::{ApiError, RequestId, SyncAnswer, WithRequestId}, SyncFairing};
    /// # use rocket::{data::Data, State};
    /// # struct ApiKey;
    /// # #[rocket::async_trait]
    /// # impl<'r> rocket::request::FromRequest<'r> for ApiKey {
    /// #     type Error = ();
    /// #     async fn from_request(_: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> { rocket::request::Outcome::Success(ApiKey) }
    /// # }
    /// #[rocket::post("/sync", data = "<data>")]
    /// async fn sync(_key: ApiKey, id: RequestId, sync: &State<SyncFairing<DbConnection, String>>, data: Data<'_>)
    ///     -> WithRequestId<Result<SyncAnswer, ApiError>> {
    ///     WithRequestId(sync.respond_as(&id, data).await, id)
    /// }
    /// ```
    pub fn without_route(mut self) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.mount = false;
        }
        self
    }

    /// A fairing over mobync's own `pool`, syncing `models`, authenticating
    /// with `auth`.
    pub fn new(pool: Pool<C>, models: Models<C, O>, auth: impl Authenticator<C, O>) -> Self {
        Self::with_source(models, auth, Source::Pool(pool))
    }

    /// A fairing on the pool of the app's `#[database("name")] struct K(C);`
    /// (feature `sync-db-pools`): no second pool, the database's own
    /// configuration (`databases.name` in Rocket's figment) and `timeout`.
    /// Attach it after `K::fairing()`.
    #[cfg(feature = "sync-db-pools")]
    pub fn on_database<K>(models: Models<C, O>, auth: impl Authenticator<C, O>) -> Self
    where
        K: Send + Sync + 'static,
        C: rocket_sync_db_pools::Poolable,
    {
        let find: FindSource<C> = Box::new(|rocket: &Rocket<Build>| {
            let pool = rocket_sync_db_pools::ConnectionPool::<K, C>::pool(rocket)?.clone();
            Some(Arc::new(DatabaseSource { pool }) as Arc<dyn Connections<C>>)
        });
        Self::with_source(models, auth, Source::Found(find))
    }

    /// The running engine and connections, once the fairing is ignited.
    pub fn running(&self) -> Option<Running<C, O>> {
        self.shared.live.get().cloned().map(Running)
    }

    /// Syncs in flight now: from their arrival until their answer is
    /// written (for the route the fairing or the app mounted as a handler
    /// value; until [`respond_as`](SyncFairing::respond_as) returns for an
    /// app's own route).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.count()
    }

    /// Waits until no sync is in flight, at most `within`; whether none is.
    /// What `main` awaits once `launch()` returned, before it returns:
    /// Rocket 0.5 may return from `launch()` while requests still run (with
    /// a `Shutdown` error), and returning from `main` then would drop syncs
    /// that committed before they are answered.
    ///
    /// ```no_run
    /// # use mobync::{db::DbConnection, SyncFairing};
    /// # async fn serve(rocket: rocket::Rocket<rocket::Build>, sync: SyncFairing<DbConnection, String>) {
    /// let launched = rocket.launch().await;
    /// sync.drained(std::time::Duration::from_secs(10)).await;
    /// # drop(launched);
    /// # }
    /// ```
    pub async fn drained(&self, within: Duration) -> bool {
        self.shared.in_flight.drained(within).await
    }

    /// What `main` does with `launch()`'s result: waits (up to 30 s) until
    /// no sync is in flight, then passes the result on, except a
    /// `Shutdown` error once every sync was answered (Rocket 0.5 reports
    /// one when its accept loop ended before its request tasks did).
    ///
    /// ```no_run
    /// # use mobync::{db::DbConnection, SyncFairing};
    /// # async fn serve(rocket: rocket::Rocket<rocket::Build>, sync: SyncFairing<DbConnection, String>) -> Result<(), rocket::Error> {
    /// sync.finish(rocket.attach(sync.clone()).launch().await).await
    /// # }
    /// ```
    pub async fn finish<P: rocket::Phase>(&self, launched: Result<Rocket<P>, rocket::Error>) -> Result<(), rocket::Error> {
        let drained = self.drained(Duration::from_secs(30)).await;
        match launched {
            Ok(_) => Ok(()),
            Err(err) if drained && matches!(err.kind(), rocket::error::ErrorKind::Shutdown(..)) => {
                tracing::info!("mobync: every sync in flight at shutdown was answered");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// The readiness route: `rocket.mount("/ready", sync.ready())` (see
    /// [`Ready`]).
    pub fn ready(&self) -> Ready<C, O> {
        Ready(self.clone())
    }

    /// Answers one sync request whose body is `data`, under a new request id.
    pub async fn respond(&self, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
        self.respond_as(&RequestId::new(), data).await
    }

    /// Answers one sync request whose body is `data`: what the route does.
    /// One `sync` span (see [`crate::observe`]), the metrics of
    /// [`names`], one log event at its end.
    pub async fn respond_as(&self, id: &RequestId, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
        let ticket = self.shared.in_flight.enter();
        let span = crate::observe::sync_span(&id.0);
        let started = Instant::now();
        let (answer, ended) = self.serve(data, span.clone()).instrument(span.clone()).await;
        let id = id.clone();
        let record = move |(result, report, db_time, bytes): Served| {
            let _ticket = ticket;
            let status = result.as_ref().map_or_else(|err| err.kind.status(), |_| 200);
            let elapsed = started.elapsed();
            report.record_on(&span);
            span.record("status", status);
            span.record("duration_ms", elapsed.as_secs_f64() * 1e3);
            metrics::counter!(names::SYNCS, "status" => status.to_string()).increment(1);
            metrics::histogram!(names::SYNC_SECONDS).record(elapsed.as_secs_f64());
            if let Some(db) = db_time {
                span.record("db_ms", db.as_secs_f64() * 1e3);
                metrics::histogram!(names::SYNC_DB_SECONDS).record(db.as_secs_f64());
            }
            report.emit();
            let code = match &result {
                Ok(()) => {
                    metrics::histogram!(names::ANSWER_BYTES).record(bytes as f64);
                    None
                }
                Err(err) => {
                    span.in_scope(|| err.log());
                    span.record("code", err.kind.code());
                    Some(err.kind.code())
                }
            };
            span.in_scope(|| crate::observe::sync_ended(&id.0, &report, status, code, elapsed, db_time));
        };
        match ended {
            // A streamed answer is noted once the database thread is done
            // with it.
            Ending::Later(rest) => {
                rocket::tokio::spawn(async move { record(rest.await) });
            }
            Ending::Now(served) => record(served),
        }
        answer.map_err(ApiError)
    }

    /// The sync: its answer as soon as it starts (a streamed one), and what
    /// it noted once it ended, now or later: the result, the report, the
    /// time its database part took (`None` if it got no connection), the
    /// answer's size.
    async fn serve(&self, data: Data<'_>, span: tracing::Span) -> (Result<SyncAnswer, SyncError>, Ending) {
        let failed = |err: SyncError| (Err(err.clone()), Ending::Now((Err(err), Report::default(), None, 0)));
        let Some(live) = self.shared.live.get().cloned() else {
            return failed(SyncError::internal("the sync fairing is not ignited"));
        };
        let read = match seconds(live.config.read_timeout, "read_timeout") {
            Ok(deadline) => read_body(data, live.config.body_limit, deadline).await,
            Err(err) => Err(SyncError::internal(err)),
        };
        let envelope = match read.and_then(|body| Envelope::parse(&body)) {
            Ok(envelope) => envelope,
            Err(err) => return failed(err),
        };
        let source = live.source.clone();
        let (mut sink, opened) = stream::JsonSink::new();
        // The answer is written as JSON on the blocking thread, and read
        // from there while the client reads it if it is long.
        let job = async move {
            with_connection(&*source, move |conn| {
                let _entered = span.enter();
                let started = Instant::now();
                let mut report = Report::default();
                let result =
                    live.endpoint.sync_noting(conn, envelope, &mut sink, &mut report).map_err(|err| crate::db::settle(conn, err));
                let db_time = started.elapsed();
                match result {
                    Ok(()) => {
                        let (whole, bytes) = sink.finish();
                        (Ok(whole), report, db_time, bytes)
                    }
                    Err(err) => {
                        sink.abort(&err);
                        (Err(err), report, db_time, 0)
                    }
                }
            })
            .await
        };
        let settle = |ran: Result<(Result<Option<Vec<u8>>, SyncError>, Report, Duration, usize), SyncError>| match ran {
            Ok((result, report, db_time, bytes)) => (result, report, Some(db_time), bytes),
            Err(err) => (Err(err), Report::default(), None, 0),
        };
        let mut job = Box::pin(job);
        let mut opened = opened;
        rocket::tokio::select! {
            biased;
            ran = &mut job => {
                let (result, report, db_time, bytes) = settle(ran);
                let answer = match result {
                    Ok(Some(whole)) => Ok(SyncAnswer(Answer::Whole(whole))),
                    // Streamed, and read out into the queue already.
                    Ok(None) => opened
                        .try_recv()
                        .map(|body| SyncAnswer(Answer::Streamed(body)))
                        .map_err(|_| SyncError::internal("a streamed answer was not opened")),
                    Err(err) => Err(err),
                };
                let noted = answer.as_ref().map(|_| ()).map_err(Clone::clone);
                (answer, Ending::Now((noted, report, db_time, bytes)))
            }
            Ok(body) = &mut opened => {
                let rest = async move {
                    let (result, report, db_time, bytes) = settle(job.await);
                    (result.map(|_| ()), report, db_time, bytes)
                };
                (Ok(SyncAnswer(Answer::Streamed(body))), Ending::Later(Box::pin(rest)))
            }
        }
    }
}

/// What a sync noted: its result, report, database time and answer size.
type Served = (Result<(), SyncError>, Report, Option<Duration>, usize);

/// When a sync's notes are ready: at once, or once its streamed answer is
/// read out.
enum Ending {
    Now(Served),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Served> + Send>>),
}

#[rocket::async_trait]
impl<C: LogConnection, O: Owner> Handler for SyncFairing<C, O> {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        // In flight until the answer's body is dropped: written, or its
        // connection gone.
        let ticket = self.shared.in_flight.enter();
        let id = RequestId::of(req);
        let answer = self.respond_as(&id, data).await;
        match Outcome::from(req, WithRequestId(answer, id)) {
            Outcome::Success(mut response) if response.body().preset_size().is_some() => {
                let bytes = response.body_mut().to_bytes().await.unwrap_or_default();
                response.set_sized_body(bytes.len(), drain::Body::new(bytes, ticket));
                Outcome::Success(response)
            }
            Outcome::Success(mut response) => {
                let body = response.body_mut().take();
                response.set_streamed_body(drain::Streamed::new(body, ticket));
                Outcome::Success(response)
            }
            other => other,
        }
    }
}

/// The sync route, for an app that mounts it itself (behind its own path,
/// next to its own routes): `rocket.attach(sync.clone()).mount("/api/sync",
/// sync)`.
impl<C: LogConnection, O: Owner> From<SyncFairing<C, O>> for Vec<Route> {
    fn from(fairing: SyncFairing<C, O>) -> Vec<Route> {
        let mut route = Route::new(Method::Post, "/", fairing);
        route.name = Some(ROUTE_NAME.into());
        vec![route]
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O: Owner> Fairing for SyncFairing<C, O> {
    fn info(&self) -> Info {
        Info { name: "mobync sync", kind: Kind::Ignite | Kind::Liftoff }
    }

    async fn on_liftoff(&self, rocket: &Rocket<rocket::Orbit>) {
        if let Some(live) = self.shared.live.get() {
            compaction::start(live.clone(), rocket.shutdown());
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        match self.ignite(&rocket).await {
            Ok(()) => Ok(self.mount(rocket)),
            Err(err) => {
                tracing::error!("mobync: {err}");
                Err(rocket)
            }
        }
    }
}

impl<C: LogConnection, O: Owner> SyncFairing<C, O> {
    /// Reads the configuration, finds the connections, runs the migrations.
    async fn ignite(&self, rocket: &Rocket<Build>) -> Result<(), String> {
        let config: Config = rocket
            .figment()
            .clone()
            .join(Serialized::default("mobync", Config::default()))
            .extract_inner("mobync")
            .map_err(|err| format!("bad `mobync` configuration: {err}"))?;
        let parts = self.shared.parts.lock().ok().and_then(|mut parts| parts.take());
        let parts = parts.ok_or("the sync fairing was ignited twice")?;
        let tables = Tables::new(&config.diffs_table).map_err(|err| format!("`diffs_table`: {err}"))?;
        if rocket::http::uri::Origin::parse(&config.path).is_err() || !config.path.starts_with('/') {
            return Err(format!("`path` {:?} is not an absolute URI path", config.path));
        }
        seconds(config.read_timeout, "read_timeout")?;
        if config.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("`admin_token` must be at least 16 characters".into());
        }
        if rocket::http::uri::Origin::parse(&config.admin_path).is_err() || !config.admin_path.starts_with('/') {
            return Err(format!("`admin_path` {:?} is not an absolute URI path", config.admin_path));
        }
        let source: Arc<dyn Connections<C>> = match parts.source {
            Source::Pool(pool) => Arc::new(PoolSource { pool, wait: seconds(config.pool_wait, "pool_wait")? }),
            #[cfg(feature = "sync-db-pools")]
            Source::Found(find) => find(rocket).ok_or(
                "the app's #[database] pool is not there: attach its fairing (`Db::fairing()`) before mobync's",
            )?,
        };
        if config.migrate {
            let tables = tables.clone();
            let migrated = with_connection(&*source, move |conn| migrations::run(conn, &tables).map_err(|e| e.to_string()));
            migrated.await.map_err(|e| e.to_string())?.map_err(|err| format!("migrations failed: {err}"))?;
        }
        // A session whose messages are not in English: what it changes.
        let language = with_connection(&*source, |conn: &mut C| crate::db::warn_unless_english(conn));
        let _ = rocket::tokio::time::timeout(Duration::from_secs(2), language).await;
        let skew = seconds(config.max_clock_skew, "max_clock_skew")?;
        let window = seconds(config.retry_window, "retry_window")?;
        seconds(config.compact_every, "compact_every")?;
        seconds(config.tombstone_age, "tombstone_age")?;
        if config.compact_keep < 0 {
            return Err("`compact_keep` must be >= 0".into());
        }
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let endpoint = Endpoint::boxed(parts.models, tables, parts.auth)
            .with_max_diffs(config.max_diffs)
            .with_engine(|e| e.with_max_clock_skew(millis(skew)).with_retry_window(millis(window)));
        let live = Arc::new(Live { endpoint, source, config });
        self.shared.live.set(live).map_err(|_| "the sync fairing was ignited twice".to_string())
    }

    /// Manages the fairing (for the app's own routes), mounts the route at
    /// the configured path unless the app mounted it or takes care of it,
    /// and the JSON catchers where it is.
    fn mount(&self, rocket: Rocket<Build>) -> Rocket<Build> {
        let mut rocket = rocket.manage(self.clone());
        if let Some(live) = self.shared.live.get() {
            if let Some(token) = live.config.admin_token.clone() {
                let base = format!("{}/owners", live.config.admin_path.trim_end_matches('/'));
                rocket = rocket.mount(base.as_str(), audit::Audit { live: live.clone(), token });
            }
        }
        if !self.shared.mount {
            return rocket;
        }
        let mounted: Vec<String> = rocket
            .routes()
            .filter(|route| route.name.as_deref() == Some(ROUTE_NAME))
            .map(|route| route.uri.base().to_string())
            .collect();
        if !mounted.is_empty() {
            return mounted.iter().fold(rocket, |rocket, base| rocket.register(base.as_str(), http::catchers()));
        }
        let path = self.shared.live.get().map_or_else(|| Config::default().path, |live| live.config.path.clone());
        rocket.mount(path.as_str(), self.clone()).register(path.as_str(), http::catchers())
    }
}
