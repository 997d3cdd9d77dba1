//! The hub's two APIs over HTTP, on the sync fairing's engine and
//! connections: `/admin/...` (the admin bearer token) and `/messages...`
//! (headers `X-Sync-Network-Id`, `X-Sync-Node-Id`, and the node's bearer
//! token). Every answer is JSON.

use crate::model::{NetworkRow, NodeRow};
use crate::{migrations, token_hash, Answer, Change, HubError, Shared};
use mobync::db::LogConnection;
use mobync::endpoint::{bearer, same_secret};
use mobync::__private_0_1::read_body;
use mobync::fairing::{with_connection, Running, RETRY_AFTER_SECONDS};
use mobync::{Owner, SyncFairing};
use rocket::data::{Data, ToByteUnit};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Header, Method, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::route::{Handler, Outcome, Route};
use rocket::serde::{Deserialize, Serialize as RocketSerialize};
use rocket::{Build, Rocket};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::io::Cursor;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The hub's settings, from the `hub` table of Rocket's figment.
#[derive(Debug, Clone, PartialEq, Deserialize, RocketSerialize)]
#[serde(crate = "rocket::serde", default)]
pub struct HubConfig {
    /// Seconds a fetched message stays with its fetcher before it is
    /// delivered again. Default 300.
    pub lease: f64,
    /// Largest request body, in bytes. Default 1 MiB.
    pub body_limit: u64,
    /// Run the hub's migrations at ignition. Default `true`.
    pub migrate: bool,
    /// Seconds a node's `Idempotency-Key` is remembered: a send with the
    /// same key within them is answered as the first one. Default 86,400
    /// (a day).
    pub idempotency_window: f64,
    /// Records per transaction of a node's re-sync. Default 500.
    pub resync_piece: i64,
    /// Seconds an answered message (acknowledged, failed, superseded) and
    /// its history are kept before they are pruned. Default 2,592,000
    /// (30 days).
    pub retention: f64,
    /// Seconds between pruning rounds (which also set the gauges of
    /// messages waiting). Default 600.
    pub prune_every: f64,
    /// Messages per transaction of a pruning round. Default 1,000.
    pub prune_piece: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            lease: 300.0,
            body_limit: 1 << 20,
            migrate: true,
            idempotency_window: 86_400.0,
            resync_piece: 500,
            retention: 2_592_000.0,
            prune_every: 600.0,
            prune_piece: 1_000,
        }
    }
}

/// The hub's time spans (ms) and sizes, per call.
#[derive(Debug, Clone, Copy)]
struct Limits {
    lease: i64,
    idempotency: i64,
    piece: i64,
    retention: i64,
}

/// An answer: a status and a JSON body (none for 204).
struct Reply(Status, Option<Value>);

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.status(self.0);
        if let Some(body) = self.1 {
            let text = body.to_string();
            response.header(ContentType::JSON).sized_body(text.len(), Cursor::new(text));
        }
        if self.0 == Status::ServiceUnavailable {
            response.header(Header::new("Retry-After", RETRY_AFTER_SECONDS.to_string()));
        }
        Ok(response.finalize())
    }
}

impl From<HubError> for Reply {
    fn from(err: HubError) -> Self {
        Reply(Status::from_code(err.status).unwrap_or(Status::InternalServerError), Some(err.body()))
    }
}

/// The hub's fairing and the handler of its routes.
pub struct HubFairing<C: LogConnection, O> {
    inner: Arc<Inner<C, O>>,
}

struct Inner<C: LogConnection, O> {
    shared: Arc<Shared<C, O>>,
    sync: SyncFairing<C, O>,
    admin_token: String,
    config: OnceLock<HubConfig>,
}

impl<C: LogConnection, O> Clone for HubFairing<C, O> {
    fn clone(&self) -> Self {
        HubFairing { inner: self.inner.clone() }
    }
}

impl<C: LogConnection, O> HubFairing<C, O> {
    pub(crate) fn new(shared: Arc<Shared<C, O>>, sync: SyncFairing<C, O>, admin_token: String) -> Self {
        HubFairing { inner: Arc::new(Inner { shared, sync, admin_token, config: OnceLock::new() }) }
    }
}

/// A request, as the handler needs it on a blocking thread.
struct Call {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    /// The body as it came: decoded by [`Call::decode`] once the caller is
    /// known, so that a wrong token is 401 whatever the body holds.
    raw: Vec<u8>,
    body: Value,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn bearer(&self) -> Option<&str> {
        self.header("Authorization").and_then(bearer)
    }

    /// Decodes the body (none, or only white space, is `null`).
    fn decode(&mut self) -> Result<(), HubError> {
        if !self.raw.iter().all(u8::is_ascii_whitespace) {
            self.body = serde_json::from_slice(&self.raw).map_err(|e| HubError::bad_request(format!("the body is not JSON: {e}")))?;
        }
        Ok(())
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl<C: LogConnection, O> HubFairing<C, O>
where
    O: Owner + FromStr + Serialize + DeserializeOwned,
{
    async fn reply(&self, req: &Request<'_>, data: Data<'_>) -> Reply {
        match self.serve(req, data).await {
            Ok(reply) => reply,
            Err(err) => err.into(),
        }
    }

    async fn serve(&self, req: &Request<'_>, data: Data<'_>) -> Result<Reply, HubError> {
        let running = self.inner.sync.running().ok_or_else(|| HubError::internal("the sync fairing is not ignited"))?;
        let config = self.inner.config.get().cloned().unwrap_or_default();
        let raw = if matches!(req.method(), Method::Post | Method::Patch) {
            read_body(data, config.body_limit.bytes(), Duration::from_secs(30)).await?
        } else {
            Vec::new()
        };
        let call = Call {
            method: req.method(),
            segments: req.uri().path().segments().map(str::to_owned).filter(|s| !s.is_empty()).collect(),
            query: req
                .uri()
                .query()
                .map(|q| q.segments().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
                .unwrap_or_default(),
            headers: req.headers().iter().map(|h| (h.name().to_string(), h.value().to_owned())).collect(),
            raw,
            body: Value::Null,
        };
        let (hub, lease, window) = (self.clone(), (config.lease * 1000.0) as i64, (config.idempotency_window * 1000.0) as i64);
        let (piece, retention) = (config.resync_piece, (config.retention * 1000.0) as i64);
        let running2 = running.clone();
        with_connection(running.connections(), move |conn| {
            let now = hub.inner.shared.now();
            hub.route(&running2, conn, call, Limits { lease, idempotency: window, piece, retention }, now)
        })
        .await?
    }

    /// Dispatches a call, on a connection.
    fn route(&self, running: &Running<C, O>, conn: &mut C, mut call: Call, windows: Limits, now: i64) -> Result<Reply, HubError> {
        let owned = std::mem::take(&mut call.segments);
        let segments: Vec<&str> = owned.iter().map(String::as_str).collect();
        match segments.first() {
            Some(&"admin") => {
                match call.bearer() {
                    Some(token) if same_secret(token, &self.inner.admin_token) => {}
                    _ => return Err(HubError::unauthenticated("the admin API takes `Authorization: Bearer <admin token>`")),
                }
                call.decode()?;
                self.admin(running, conn, &call, &segments[1..], windows, now)
            }
            Some(&"messages") => self.messaging(running, conn, &mut call, &segments[1..], windows, now),
            _ => Err(HubError::not_found("no such route")),
        }
    }

    fn admin(&self, running: &Running<C, O>, conn: &mut C, call: &Call, path: &[&str], limits: Limits, now: i64) -> Result<Reply, HubError> {
        let hub = &*self.inner.shared;
        let engine = running.engine();
        let ok = |value: Value| Ok(Reply(Status::Ok, Some(value)));
        let created = |value: Value| Ok(Reply(Status::Created, Some(value)));
        match (call.method, path) {
            (Method::Post, ["networks"]) => created(hub.create_network(engine, conn, &call.body, now)?),
            (Method::Get, ["networks", id]) => ok(hub.network_json(&hub.network(conn, id)?)?),
            (Method::Patch, ["networks", id]) => ok(hub.patch_network(engine, conn, id, &call.body)?),
            (Method::Get, ["networks", id, "nodes"]) => {
                let network = hub.network(conn, id)?;
                ok(Value::Array(crate::sql::nodes(conn, &network.id)?.iter().map(NodeRow::json).collect()))
            }
            (Method::Post, ["networks", id, "nodes"]) => created(hub.create_node(engine, conn, id, &call.body, now)?),
            (Method::Get, ["networks", id, "nodes", node]) => {
                let network = hub.network(conn, id)?;
                ok(hub.node(conn, &network, node)?.json())
            }
            (Method::Patch, ["networks", id, "nodes", node]) => ok(hub.patch_node(engine, conn, id, node, &call.body)?),
            (Method::Post, ["networks", id, "nodes", node, "sync"]) => {
                let network = hub.network(conn, id)?;
                let node = hub.node(conn, &network, node)?;
                let queued = hub.resync(engine, conn, &network, &node, limits.piece, now)?;
                ok(serde_json::json!({"queued": queued}))
            }
            (Method::Post, ["networks", id, "nodes", node, "token"]) => {
                let token = hub.set_token(engine, conn, id, node, true)?;
                created(serde_json::json!({"token": token}))
            }
            (Method::Delete, ["networks", id, "nodes", node, "token"]) => {
                hub.set_token(engine, conn, id, node, false)?;
                Ok(Reply(Status::NoContent, None))
            }
            (Method::Get, ["networks", id, "messages"]) => {
                let number = |key: &str, default: i64| -> Result<i64, HubError> {
                    call.query(key).map_or(Ok(default), |v| v.parse().map_err(|_| HubError::bad_request(format!("`{key}` is a number"))))
                };
                let kept_since = now - limits.retention;
                ok(hub.history(conn, id, call.query("state"), number("after", 0)?, number("limit", 100)?, kept_since)?)
            }
            (Method::Get, ["networks", id, "messages", message]) => ok(hub.message(conn, id, message)?),
            (_, ["networks"] | ["networks", _] | ["networks", _, "nodes"] | ["networks", _, "nodes", _])
            | (_, ["networks", _, "nodes", _, "sync" | "token"] | ["networks", _, "messages"] | ["networks", _, "messages", _]) => {
                Err(HubError { status: 405, code: "method_not_allowed", message: format!("{} is not allowed here", call.method) })
            }
            _ => Err(HubError::not_found("no such route")),
        }
    }

    /// The caller of the messaging API: its network and node from the
    /// headers (400 without them). The token is checked first: a token of
    /// no node is 401 whatever the headers name; a node's token with
    /// headers naming no network or node is 404; naming another node, 401.
    fn caller(&self, conn: &mut C, call: &Call) -> Result<(NetworkRow, NodeRow), HubError> {
        let network_id = call.header("X-Sync-Network-Id").ok_or_else(|| HubError::bad_request("the X-Sync-Network-Id header is required"))?;
        let node_id = call.header("X-Sync-Node-Id").ok_or_else(|| HubError::bad_request("the X-Sync-Node-Id header is required"))?;
        let refused = || HubError::unauthenticated("the messaging API takes `Authorization: Bearer <the node's token>`");
        let token = call.bearer().ok_or_else(refused)?;
        let holder = crate::sql::node_by_token(conn, &token_hash(token))?.ok_or_else(refused)?;
        let hub = &*self.inner.shared;
        let network = hub.network(conn, network_id)?;
        let node = hub.node(conn, &network, node_id)?;
        let accepted = node.token_hash.as_deref().is_some_and(|hash| same_secret(&token_hash(token), hash)) && holder.id == node.id;
        if !accepted {
            return Err(refused());
        }
        Ok((network, node))
    }

    fn messaging(&self, running: &Running<C, O>, conn: &mut C, call: &mut Call, path: &[&str], windows: Limits, now: i64) -> Result<Reply, HubError> {
        let allowed = matches!(
            (call.method, path),
            (Method::Post, []) | (Method::Get, ["pending"]) | (Method::Post, ["next"]) | (Method::Patch, [_])
        );
        if !allowed {
            return match path {
                [] | ["pending"] | ["next"] | [_] => {
                    Err(HubError { status: 405, code: "method_not_allowed", message: format!("{} is not allowed here", call.method) })
                }
                _ => Err(HubError::not_found("no such route")),
            };
        }
        let (network, node) = self.caller(conn, call)?;
        call.decode()?;
        let hub = &*self.inner.shared;
        let engine = running.engine();
        match (call.method, path) {
            (Method::Post, []) => {
                let send = Change::parse(&call.body)?;
                let key = call.header("Idempotency-Key").map(|key| (key, windows.idempotency));
                Ok(Reply(Status::Created, Some(hub.send_once(engine, conn, &network, &node, send, key, now)?)))
            }
            (Method::Get, ["pending"]) => Ok(Reply(Status::Ok, Some(Value::from(hub.pending(conn, &node, now)?)))),
            (Method::Post, ["next"]) => match hub.next(engine, conn, &node, windows.lease, now)? {
                Some(message) => Ok(Reply(Status::Ok, Some(message))),
                None => Ok(Reply(Status::NoContent, None)),
            },
            (Method::Patch, [id]) => {
                let answer = Answer::parse(&call.body)?;
                Ok(Reply(Status::Ok, Some(hub.answer(engine, conn, &node, id, answer, now)?)))
            }
            _ => Err(HubError::not_found("no such route")),
        }
    }
}

impl<C: LogConnection, O> HubFairing<C, O>
where
    O: Owner + FromStr + Serialize + DeserializeOwned,
{
    /// One pruning round at time `now` (ms since the epoch), with the
    /// configured retention, `Idempotency-Key` window and piece size: what
    /// the background task runs every `prune_every` seconds, for a test to
    /// run at a time of its own. It also sets the gauges of messages
    /// waiting per state.
    pub async fn prune(&self, now: i64) -> Result<crate::Pruned, HubError> {
        let running = self.inner.sync.running().ok_or_else(|| HubError::internal("the sync fairing is not ignited"))?;
        let config = self.inner.config.get().cloned().unwrap_or_default();
        let (retention, window) = ((config.retention * 1000.0) as i64, (config.idempotency_window * 1000.0) as i64);
        let (hub, engine_of) = (self.inner.shared.clone(), running.clone());
        with_connection(running.connections(), move |conn| hub.prune(engine_of.engine(), conn, now, retention, window, config.prune_piece))
            .await?
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O> Handler for HubFairing<C, O>
where
    O: Owner + FromStr + Serialize + DeserializeOwned,
{
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        Outcome::from(req, self.reply(req, data).await)
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O> Fairing for HubFairing<C, O>
where
    O: Owner + FromStr + Serialize + DeserializeOwned,
{
    fn info(&self) -> Info {
        Info { name: "mobync hub", kind: Kind::Ignite | Kind::Liftoff }
    }

    /// Starts the background pruning, every `prune_every` seconds until
    /// shutdown.
    async fn on_liftoff(&self, rocket: &Rocket<rocket::Orbit>) {
        let every = self.inner.config.get().map_or(600.0, |c| c.prune_every);
        if every <= 0.0 {
            return;
        }
        let (hub, shutdown) = (self.clone(), rocket.shutdown());
        rocket::tokio::spawn(async move {
            let mut shutdown = std::pin::pin!(shutdown);
            loop {
                rocket::tokio::select! {
                    _ = &mut shutdown => break,
                    _ = rocket::tokio::time::sleep(Duration::from_secs_f64(every)) => {}
                }
                if let Err(err) = hub.prune(hub.inner.shared.now()).await {
                    tracing::warn!("mobync hub: pruning failed: {err}");
                }
            }
        });
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        let config: HubConfig =
            match rocket.figment().clone().join(Serialized::default("hub", HubConfig::default())).extract_inner("hub") {
                Ok(config) => config,
                Err(err) => {
                    tracing::error!("mobync hub: bad `hub` configuration: {err}");
                    return Err(rocket);
                }
            };
        if self.inner.admin_token.len() < 16 {
            tracing::error!("mobync hub: the admin token must be at least 16 characters");
            return Err(rocket);
        }
        let Some(running) = self.inner.sync.running() else {
            tracing::error!("mobync hub: attach the sync fairing before the hub's");
            return Err(rocket);
        };
        if config.migrate {
            let migrated = with_connection(running.connections(), |conn: &mut C| {
                let source = migrations(conn.dialect());
                conn.run_migrations(source).map_err(|e| e.to_string())
            });
            match migrated.await {
                Ok(Ok(())) => tracing::info!("mobync hub: migrations done"),
                Ok(Err(err)) | Err(mobync::SyncError { message: err, .. }) => {
                    tracing::error!("mobync hub: migrations failed: {err}");
                    return Err(rocket);
                }
            }
        }
        let _ = self.inner.config.set(config);
        let methods = [Method::Get, Method::Post, Method::Patch, Method::Delete, Method::Put];
        let mut routes = Vec::new();
        for path in ["/admin/<path..>", "/messages/<path..>"] {
            for method in methods {
                let mut route = Route::ranked(50, method, path, self.clone());
                route.name = Some("mobync_hub".into());
                routes.push(route);
            }
        }
        Ok(rocket.mount("/", routes))
    }
}
