//! The Rocket fairing: one `attach` and the app has a `/sync` endpoint.
//!
//! ```no_run
//! # use mobync::{db, Models, SyncFairing};
//! # fn models() -> Models { Models::new() }
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     let pool = db::pool("todo.sqlite").expect("database");
//!     let auth = |token: &str| if token == "secret" { Ok("alice".to_string()) } else { Err("unknown token".to_string()) };
//!     rocket::build().attach(SyncFairing::new(pool, models(), auth))
//! }
//! ```
//!
//! Configuration comes from Rocket's figment, table `mobync` (`Rocket.toml`
//! or `ROCKET_MOBYNC='{path="/api/sync"}'`), see [`Config`].

use crate::db::{migrations, DieselStore, Pool, Tables};
use crate::engine::{Mobync, DEFAULT_MAX_DIFFS};
use crate::error::{ErrorBody, ErrorKind, SyncError};
use crate::protocol::{SyncResponse, WireRequest};
use crate::syncable::Models;
use rocket::data::{ByteUnit, Data, FromData, ToByteUnit};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::providers::Serialized;
use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::{catch, catchers, post, routes, Build, Rocket, State};
use std::sync::{Arc, Mutex};

/// Turns an `auth_token` into the id of its owner, or refuses it with a
/// reason. Runs on a blocking thread, so it may query the database. Any
/// `Fn(&str) -> Result<String, String>` is one.
pub trait Authenticator: Send + Sync + 'static {
    /// The owner of `token`, or why it is refused.
    fn authenticate(&self, token: &str) -> Result<String, String>;
}

impl<F> Authenticator for F
where
    F: Fn(&str) -> Result<String, String> + Send + Sync + 'static,
{
    fn authenticate(&self, token: &str) -> Result<String, String> {
        self(token)
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
    /// Run mobync's migrations at ignition. Default `true`.
    pub migrate: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/sync".into(),
            diffs_table: "diffs".into(),
            max_diffs: DEFAULT_MAX_DIFFS,
            body_limit: 5.mebibytes(),
            migrate: true,
        }
    }
}

type Engine = Mobync<DieselStore, Models>;

/// What the route needs, managed by Rocket.
struct SyncState {
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    body_limit: ByteUnit,
}

/// The fairing: mounts `POST <path>` running the merge engine over a pool,
/// the app's [`Models`] and an [`Authenticator`].
pub struct SyncFairing {
    parts: Mutex<Option<(Pool, Models, Arc<dyn Authenticator>)>>,
}

impl SyncFairing {
    /// A fairing over `pool`, syncing `models`, authenticating with `auth`.
    pub fn new(pool: Pool, models: Models, auth: impl Authenticator) -> Self {
        SyncFairing { parts: Mutex::new(Some((pool, models, Arc::new(auth)))) }
    }
}

#[rocket::async_trait]
impl Fairing for SyncFairing {
    fn info(&self) -> Info {
        Info { name: "mobync sync", kind: Kind::Ignite }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        let config: Config = match rocket
            .figment()
            .clone()
            .join(Serialized::default("mobync", Config::default()))
            .extract_inner("mobync")
        {
            Ok(config) => config,
            Err(err) => {
                log::error!("mobync: bad `mobync` configuration: {err}");
                return Err(rocket);
            }
        };
        let Some((pool, models, auth)) = self.parts.lock().ok().and_then(|mut parts| parts.take()) else {
            log::error!("mobync: the sync fairing was ignited twice");
            return Err(rocket);
        };
        let tables = match Tables::new(&config.diffs_table) {
            Ok(tables) => tables,
            Err(err) => {
                log::error!("mobync: `diffs_table`: {err}");
                return Err(rocket);
            }
        };
        if rocket::http::uri::Origin::parse(&config.path).is_err() || !config.path.starts_with('/') {
            log::error!("mobync: `path` {:?} is not an absolute URI path", config.path);
            return Err(rocket);
        }
        if config.migrate {
            let (pool, tables) = (pool.clone(), tables.clone());
            let migrated = rocket::tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                migrations::run(&mut conn, &tables).map_err(|e| e.to_string())
            })
            .await;
            if let Err(err) = migrated.map_err(|e| e.to_string()).and_then(|r| r) {
                log::error!("mobync: migrations failed: {err}");
                return Err(rocket);
            }
        }
        let engine = Mobync::new(DieselStore::new(pool, tables), models).with_max_diffs(config.max_diffs);
        let state = SyncState { engine: Arc::new(engine), auth, body_limit: config.body_limit };
        Ok(rocket.manage(state).mount(config.path.as_str(), routes![sync]).register(config.path.as_str(), catchers![error]))
    }
}

/// A failed sync as an HTTP answer: its status and PROTOCOL.md's JSON body.
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
        response::status::Custom(status, Json(self.0.body())).respond_to(req)
    }
}

/// The raw body, read up to the configured limit. Never fails as a guard:
/// its errors are answered by the route as JSON.
struct Body(Result<Vec<u8>, SyncError>);

#[rocket::async_trait]
impl<'r> FromData<'r> for Body {
    type Error = std::convert::Infallible;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> rocket::data::Outcome<'r, Self> {
        let limit = req.rocket().state::<SyncState>().map_or(Config::default().body_limit, |s| s.body_limit);
        let body = match data.open(limit).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => Ok(bytes.into_inner()),
            Ok(_) => Err(SyncError::too_large(format!("the request body is over the limit of {limit}"))),
            Err(err) => Err(SyncError::malformed(format!("the request body could not be read: {err}"))),
        };
        rocket::data::Outcome::Success(Body(body))
    }
}

#[post("/", data = "<body>")]
async fn sync(state: &State<SyncState>, body: Body) -> Result<Json<SyncResponse>, ApiError> {
    let request = WireRequest::from_slice(&body.0?)?;
    let (engine, auth) = (state.engine.clone(), state.auth.clone());
    let answer = rocket::tokio::task::spawn_blocking(move || run(&engine, auth.as_ref(), request))
        .await
        .map_err(SyncError::internal)??;
    Ok(Json(answer))
}

/// The whole request, in PROTOCOL.md's order: shape (done), token, cursor,
/// size, then each diff and the merge.
fn run(engine: &Engine, auth: &dyn Authenticator, request: WireRequest) -> Result<SyncResponse, SyncError> {
    let token = request.auth_token.as_deref().filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| SyncError::unauthenticated("`auth_token` is missing"))?;
    let owner = auth.authenticate(token).map_err(SyncError::unauthenticated)?;
    let cursor = request.logical_clock;
    if cursor < 0 {
        return Err(SyncError::invalid_clock(format!("`logical_clock` must be >= 0, not {cursor}")));
    }
    if request.diffs.len() > engine.max_diffs() {
        return Err(SyncError::too_large(format!(
            "{} diffs in one request; the limit is {}",
            request.diffs.len(),
            engine.max_diffs()
        )));
    }
    engine.apply(cursor, request.checked_diffs()?, &owner)
}

/// Any other failure under the sync path (wrong method, a panic...) as a
/// JSON body too, never Rocket's HTML page.
#[catch(default)]
fn error(status: Status, _req: &Request<'_>) -> (Status, Json<ErrorBody>) {
    let kind = match status.code {
        413 => ErrorKind::PayloadTooLarge,
        401 => ErrorKind::Unauthenticated,
        400..=499 => ErrorKind::MalformedRequest,
        _ => ErrorKind::Internal,
    };
    let message = match kind {
        ErrorKind::Internal => "internal server error".to_string(),
        _ => format!("{status}: POST a sync request here"),
    };
    (status, Json(SyncError::new(kind, message).body()))
}
