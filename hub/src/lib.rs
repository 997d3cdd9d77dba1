//! # mobync-hub
//!
//! Keeps back-office systems (a CRM, billing, a warehouse) in sync through
//! mobync: the semantics of jim8786453/sync (an admin API of *networks*,
//! each a shared record set with a JSON Schema, and *nodes*, the systems,
//! with create/read/update/delete permissions; a messaging API to send a
//! change, count and fetch what waits, acknowledge it with the node's own
//! `remote_id` or fail it), on the same records and diff log as the mobync
//! devices: each network belongs to a mobync owner, its records are rows of
//! a synced model of that owner, a node's change goes through the same
//! engine as a `/sync` (the owner's devices get it on their next sync), and
//! a device's change reaches every node that reads the network as a
//! message.
//!
//! Better than the anchor: bearer tokens (one for the admin API, one per
//! node), a lease on fetched messages (delivered again when a node does not
//! answer within it), every step one transaction, and several server
//! processes on one database delivering each message to one fetcher.
//!
//! ```no_run
//! # use mobync::{db::{self, DbConnection}, AuthError, Models, SyncFairing};
//! # fn auth(_: &mut DbConnection, _: &str) -> Result<String, AuthError> { Err(AuthError::refused("x")) }
//! # fn new_user(_: &mut DbConnection) -> Result<String, String> { Ok("u".into()) }
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     let pool = db::pool::<DbConnection>("hub.sqlite").expect("database");
//!     let hub = mobync_hub::Hub::new(new_user);
//!     let models = hub.install(Models::new());
//!     let sync = SyncFairing::new(pool, models, auth);
//!     rocket::build().attach(sync.clone()).attach(hub.fairing(sync, "the admin token"))
//! }
//! ```

mod admin;
mod error;
mod http;
mod messages;
mod prune;
pub mod model;
mod records;
mod schema;
mod sql;

pub use error::HubError;
pub use http::{HubConfig, HubFairing};
pub use prune::Pruned;
pub use messages::{Answer, Change};
pub use records::{apply, merge_patch, to_fields, to_record};

use mobync::db::migrations::{self as mig, MobyncMigrations};
use mobync::db::LogConnection;
use mobync::{Models, Owner, SyncFairing};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The engine the hub applies nodes' changes through: the sync fairing's.
pub type Engine<C, O> = mobync::endpoint::Engine<C, O>;

/// Makes a new mobync owner, for a network created without one.
type NewOwner<C, O> = Box<dyn Fn(&mut C) -> Result<O, String> + Send + Sync>;

/// What the hub's parts share.
pub struct Shared<C, O> {
    new_owner: NewOwner<C, O>,
    /// The app's own models' names: never a network's model.
    typed: std::sync::OnceLock<Vec<String>>,
    schemas: schema::Schemas,
    /// A test's hook, called at named steps (see [`Hub::on_step`]).
    hook: std::sync::OnceLock<Hook>,
    /// The clock, if not the system's (see [`Hub::with_clock`]).
    clock: std::sync::OnceLock<Clock>,
}

/// What [`Hub::with_clock`] reads the time from.
type Clock = Box<dyn Fn() -> i64 + Send + Sync>;

/// What [`Hub::on_step`] calls.
type Hook = Box<dyn Fn(Step) + Send + Sync>;

/// A step of the hub's work at which a test's hook is called (see
/// [`Hub::on_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A node's send has read its record and merged its patch, and has
    /// not written yet (it holds the owner's lock).
    SendRead,
    /// A node's answer to a message has locked the message and read its
    /// state, and has not written yet.
    AnswerLocked,
    /// A re-sync piece has read its records (it holds the owner's lock)
    /// and has not written their messages yet.
    ResyncRead,
    /// A re-sync has committed a piece of records, and holds no lock.
    ResyncPiece,
}

/// The hub: install its models into the app's [`Models`], then attach its
/// fairing after the sync fairing.
pub struct Hub<C, O> {
    shared: Arc<Shared<C, O>>,
}

impl<C, O> Clone for Hub<C, O> {
    fn clone(&self) -> Self {
        Hub { shared: self.shared.clone() }
    }
}

impl<C: LogConnection, O: Owner + std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned> Hub<C, O> {
    /// A hub whose networks created without an `owner` get a new one from
    /// `new_owner` (run in the transaction that creates the network).
    pub fn new(new_owner: impl Fn(&mut C) -> Result<O, String> + Send + Sync + 'static) -> Self {
        let shared = Shared {
            new_owner: Box::new(new_owner),
            typed: Default::default(),
            schemas: schema::Schemas::default(),
            hook: Default::default(),
            clock: Default::default(),
        };
        Hub { shared: Arc::new(shared) }
    }

    /// `models` with the networks' records (every model name the app's own
    /// models do not take), whose changes become messages as they are
    /// written.
    ///
    /// # Panics
    ///
    /// If the hub was installed already.
    pub fn install(&self, models: Models<C, O>) -> Models<C, O> {
        let typed = models.names().map(str::to_owned).collect();
        assert!(self.shared.typed.set(typed).is_ok(), "the hub is installed once");
        models.with_dynamic(records::Records { shared: self.shared.clone() })
    }

    /// Calls `hook` at each [`Step`] of the hub's work, on the thread doing
    /// it, inside its transaction: how a test holds a request at a chosen
    /// point (e.g. a node's send between its read and its write) while
    /// another one runs. Set once, before serving.
    ///
    /// ```
    /// # use mobync::db::DbConnection;
    /// let hub = mobync_hub::Hub::<DbConnection, String>::new(|_| Ok("owner".into()));
    /// hub.on_step(|step| tracing::debug!("hub step {step:?}"));
    /// ```
    ///
    /// # Panics
    ///
    /// If a hook was set already.
    pub fn on_step(&self, hook: impl Fn(Step) + Send + Sync + 'static) {
        assert!(self.shared.hook.set(Box::new(hook)).is_ok(), "one hook per hub");
    }

    /// Reads the time (ms since the epoch) from `clock` instead of the
    /// system's: leases, message times and retention are measured on it,
    /// so a test moves time on instead of sleeping. Set once, before
    /// serving.
    ///
    /// ```
    /// # use mobync::db::DbConnection;
    /// use std::sync::{atomic::{AtomicI64, Ordering}, Arc};
    /// let time = Arc::new(AtomicI64::new(1_000));
    /// let hub = mobync_hub::Hub::<DbConnection, String>::new(|_| Ok("owner".into()));
    /// let clock = time.clone();
    /// hub.with_clock(move || clock.load(Ordering::SeqCst));
    /// time.fetch_add(300_000, Ordering::SeqCst); // five minutes later
    /// ```
    ///
    /// # Panics
    ///
    /// If a clock was set already.
    pub fn with_clock(&self, clock: impl Fn() -> i64 + Send + Sync + 'static) {
        assert!(self.shared.clock.set(Box::new(clock)).is_ok(), "one clock per hub");
    }

    /// The fairing that serves the admin and messaging APIs on the engine
    /// and connections of `sync`; `admin_token` opens `/admin`.
    pub fn fairing(&self, sync: SyncFairing<C, O>, admin_token: impl Into<String>) -> HubFairing<C, O> {
        HubFairing::new(self.shared.clone(), sync, admin_token.into())
    }
}

/// The hub's migrations for `conn`'s dialect.
pub fn migrations(dialect: mobync::db::Dialect) -> MobyncMigrations {
    use mobync::db::Dialect;
    macro_rules! step {
        ($version:literal, $name:literal) => {{
            let (up, down) = match dialect {
                Dialect::Sqlite => (
                    include_str!(concat!("../migrations/sqlite/", $name, "/up.sql")),
                    include_str!(concat!("../migrations/sqlite/", $name, "/down.sql")),
                ),
                Dialect::Postgres => (
                    include_str!(concat!("../migrations/postgres/", $name, "/up.sql")),
                    include_str!(concat!("../migrations/postgres/", $name, "/down.sql")),
                ),
                Dialect::Mysql => (
                    include_str!(concat!("../migrations/mysql/", $name, "/up.sql")),
                    include_str!(concat!("../migrations/mysql/", $name, "/down.sql")),
                ),
            };
            mig::Step { version: $version, name: $name, up: up.to_owned(), down: down.to_owned() }
        }};
    }
    MobyncMigrations::from_steps(vec![
        step!("00000000000101", "00000000000101_mobync_hub"),
        step!("00000000000102", "00000000000102_hub_record_order"),
        step!("00000000000103", "00000000000103_hub_idempotency"),
        step!("00000000000104", "00000000000104_hub_node_tokens"),
        step!("00000000000105", "00000000000105_hub_prune"),
    ])
}

impl<C, O> Shared<C, O> {
    /// Calls the test's hook, if any, at `step`.
    fn step(&self, step: Step) {
        if let Some(hook) = self.hook.get() {
            hook(step);
        }
    }

    /// The time, ms since the epoch: the hub's clock.
    fn now(&self) -> i64 {
        self.clock.get().map_or_else(now_ms, |clock| clock())
    }

    /// Whether `model` is one of the app's own models.
    fn is_typed(&self, model: &str) -> bool {
        self.typed.get().is_some_and(|names| names.iter().any(|n| n == model))
    }
}

/// Between two pieces of a long job (a re-sync, a pruning round): on
/// SQLite, whose writers of this process take turns on a mutex that is not
/// fair (the job would take it again at once), a millisecond for a waiting
/// writer (a sync, a send) to go first. Elsewhere, row locks queue fairly.
fn let_writers_in<C: LogConnection>(conn: &C) {
    if conn.dialect() == mobync::db::Dialect::Sqlite {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A new id (a UUID v4, lowercase).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new secret token: 32 random bytes, hex.
fn new_token() -> Result<String, HubError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(HubError::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the hub stores of a token: its SHA-256, hex.
fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
