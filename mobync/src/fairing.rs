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
//! sync)`, or asked it not to ([`SyncFairing::without_route`]). A sync or
//! readiness route mounted without its fairing attached is an error at
//! launch (the routes' [`Sentinel`](rocket::Sentinel)), as is an
//! `on_database::<Db>` fairing without `Db::fairing()` attached before it.
//!
//! The modules: `config` (the settings), `request_id`, `respond` (one
//! sync's answer, its span and metrics), `drain` (syncs in flight and
//! shutdown), `ignite` (ignition checks, mounting, the sentinel), `source`
//! (connections), `http` (bodies and JSON errors), `ready`, `audit`,
//! `compaction`, `announce`.
//!
//! Configuration comes from Rocket's figment, table `mobync` (`Rocket.toml`
//! or `ROCKET_MOBYNC='{path="/api/sync"}'`), see [`Config`].

#[cfg(any(test, feature = "testing"))]
mod announce;
mod audit;
mod compaction;
mod config;
mod drain;
pub(crate) mod http;
mod ignite;
mod ready;
mod request_id;
mod respond;
mod source;
mod stream;

#[cfg(any(test, feature = "testing"))]
pub use announce::Announce;
use config::seconds;
pub use config::Config;
pub(crate) use http::read_body;
pub use http::{ApiError, RETRY_AFTER_SECONDS};
pub use ignite::ROUTE_NAME;
pub use ready::Ready;
pub use request_id::{RequestId, WithRequestId};
pub use respond::SyncAnswer;
#[cfg(feature = "sync-db-pools")]
use source::DatabaseSource;
use source::PoolSource;
pub use source::{with_connection, Connections};

use crate::db::{LogConnection, Pool};
use crate::endpoint::{Authenticator, Endpoint};
use crate::owner::Owner;
use crate::syncable::Models;
#[cfg(feature = "sync-db-pools")]
use rocket::{Build, Rocket};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

#[cfg(feature = "sync-db-pools")]
type FindSource<C> = Box<dyn FnOnce(&Rocket<Build>) -> Option<Arc<dyn Connections<C>>> + Send>;

/// Where the connections come from, before ignition.
enum Source<C: LogConnection> {
    Pool(Pool<C>),
    #[cfg(feature = "sync-db-pools")]
    Found(FindSource<C>),
}

/// What the fairing is built with, until it ignites.
struct Parts<C: LogConnection, O> {
    models: Models<C, O>,
    auth: Box<dyn Authenticator<C, O>>,
    source: Source<C>,
    /// Whether the fairing mounts the route (else the app does).
    mount: bool,
}

/// A running fairing's engine and connections, for other faces on the same
/// engine (the hub): see [`SyncFairing::running`].
///
/// ```no_run
/// # use mobync::{db::DbConnection, SyncFairing, SyncError};
/// # async fn compact(sync: &SyncFairing<DbConnection, String>) -> Result<(), SyncError> {
/// let running = sync.running().expect("the fairing is ignited");
/// if let Some(done) = running.compact("ada", None).await? {
///     println!("ada's log: {} entries, {} before", done.entries_after, done.entries_before);
/// }
/// # Ok(())
/// # }
/// ```
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
    /// Syncs in flight.
    in_flight: drain::InFlight,
}

/// The fairing, and the sync route's handler: syncs the app's [`Models`] on
/// connections of type `C` for owners of type `O`, authenticated by an
/// [`Authenticator`]. Clones share one engine.
///
/// ```no_run
/// use mobync::db::{self, DbConnection};
/// use mobync::{AuthError, Models, SyncFairing};
///
/// let pool = db::pool::<DbConnection>("app.sqlite").expect("database");
/// let auth = |_: &mut DbConnection, token: &str| match token {
///     "secret" => Ok("ada".to_string()),
///     _ => Err(AuthError::refused("unknown auth_token")),
/// };
/// let sync = SyncFairing::new(pool, Models::new(), auth);
/// // `POST /sync` (mounted by the fairing) and `GET /ready`.
/// let rocket = rocket::build().attach(sync.clone()).mount("/ready", sync.ready());
/// # drop(rocket);
/// ```
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
        let parts = Parts { models, auth: Box::new(auth), source, mount: true };
        SyncFairing { shared: Arc::new(Shared { parts: Mutex::new(Some(parts)), live: OnceLock::new(), in_flight: Default::default() }) }
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
    ///
    /// It holds for every clone of the fairing (they are one fairing), made
    /// before or after.
    ///
    /// # Panics
    ///
    /// If the fairing has ignited already (the rocket it is attached to
    /// was launched): the route is mounted then, and the call could only
    /// be ignored.
    pub fn without_route(self) -> Self {
        let mut parts = self.shared.parts.lock().unwrap_or_else(PoisonError::into_inner);
        match parts.as_mut() {
            Some(parts) => parts.mount = false,
            None => panic!(
                "SyncFairing::without_route() on a fairing that has ignited already: \
                 call it before the rocket it is attached to launches"
            ),
        }
        drop(parts);
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

    /// The readiness route: `rocket.mount("/ready", sync.ready())` (see
    /// [`Ready`]).
    pub fn ready(&self) -> Ready<C, O> {
        Ready(self.clone())
    }
}
