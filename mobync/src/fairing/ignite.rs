//! Ignition: the configuration read and checked, the connections found,
//! the migrations run, the routes mounted; and the sentinel that makes a
//! sync route mounted without its fairing an error at launch.

use super::{audit, compaction, http, seconds, with_connection, Config, Connections, Live, PoolSource, Source, SyncFairing};
use crate::db::{migrations, LogConnection, Tables};
use crate::endpoint::Endpoint;
use crate::owner::Owner;
use rocket::data::Data;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::figment::providers::Serialized;
use rocket::http::{Method, Status};
use rocket::request::Request;
use rocket::route::{BoxFuture, Handler, Outcome, Route, StaticInfo};
use rocket::sentinel::Sentry;
use rocket::{Build, Ignite, Rocket, Sentinel};
use std::sync::Arc;
use std::time::Duration;

/// The name of the sync route, whoever mounts it.
pub const ROUTE_NAME: &str = "mobync_sync";

/// Aborts the launch (with a line that says what to do) if the rocket does
/// not run a `SyncFairing<C, O>`: a sync or readiness route mounted as a
/// value, or a route of the app's own that names the fairing's type, whose
/// fairing was never attached would otherwise answer 500 to every request.
/// The fairing manages itself when it ignites, so attaching it is what
/// this checks.
impl<C: LogConnection, O: Owner> Sentinel for SyncFairing<C, O> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        let ignited = rocket.state::<Self>().is_some_and(|sync| sync.running().is_some());
        if !ignited {
            tracing::error!(
                "mobync: a route of {} is mounted but its fairing is not attached: \
                 `rocket.attach(sync.clone()).mount(\"/sync\", sync)`",
                std::any::type_name::<Self>()
            );
        }
        !ignited
    }
}

/// A route whose handler is `handler` and whose sentinel is that of
/// `SyncFairing<C, O>`. Rocket 0.5 gives a route sentinels only through
/// the (hidden) `StaticInfo` its codegen fills; the handler is then
/// replaced by the value.
pub(super) fn sentried<C: LogConnection, O: Owner>(method: Method, name: &'static str, handler: impl Handler) -> Route {
    fn unset<'r>(_: &'r Request<'_>, data: Data<'r>) -> BoxFuture<'r> {
        Box::pin(async move { Outcome::Forward((data, Status::InternalServerError)) })
    }
    let sentry = Sentry {
        type_id: std::any::TypeId::of::<SyncFairing<C, O>>(),
        type_name: std::any::type_name::<SyncFairing<C, O>>(),
        parent: None,
        location: (file!(), line!(), column!()),
        specialized: true,
        abort: <SyncFairing<C, O> as Sentinel>::abort,
    };
    let info = StaticInfo { name, method, uri: "/", format: None, handler: unset, rank: None, sentinels: vec![sentry] };
    let mut route = Route::from(info);
    route.handler = Box::new(handler);
    route
}

/// The sync route, for an app that mounts it itself (behind its own path,
/// next to its own routes): `rocket.attach(sync.clone()).mount("/api/sync",
/// sync)`. Its sentinel makes a route mounted without its fairing attached
/// an error at launch, not a 500 at the first request.
impl<C: LogConnection, O: Owner> From<SyncFairing<C, O>> for Vec<Route> {
    fn from(fairing: SyncFairing<C, O>) -> Vec<Route> {
        vec![sentried::<C, O>(Method::Post, ROUTE_NAME, fairing)]
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
            Ok(own_route) => Ok(self.mount(rocket, own_route)),
            Err(err) => {
                tracing::error!("mobync: {err}");
                Err(rocket)
            }
        }
    }
}

impl<C: LogConnection, O: Owner> SyncFairing<C, O> {
    /// Reads the configuration, finds the connections, runs the migrations;
    /// whether the fairing mounts the route (see
    /// [`without_route`](SyncFairing::without_route)).
    async fn ignite(&self, rocket: &Rocket<Build>) -> Result<bool, String> {
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
        let mut spare = None;
        let source: Arc<dyn Connections<C>> = match parts.source {
            Source::Pool(pool) => {
                let pooled = Arc::new(PoolSource::new(pool, seconds(config.pool_wait, "pool_wait")?));
                if config.group_commit {
                    spare = pooled.spare().await.map(|conn| (conn, pooled.clone()));
                }
                pooled
            }
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
        let known = seconds(config.auth_cache, "auth_cache")?;
        seconds(config.compact_every, "compact_every")?;
        seconds(config.tombstone_age, "tombstone_age")?;
        if config.compact_keep < 0 {
            return Err("`compact_keep` must be >= 0".into());
        }
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let endpoint = Endpoint::boxed(parts.models, tables, parts.auth)
            .with_max_diffs(config.max_diffs)
            .with_engine(|e| e.with_max_clock_skew(millis(skew)).with_retry_window(millis(window)))
            .with_known_tokens(millis(known));
        if let Some((conn, pooled)) = spare {
            if !endpoint.engine().store().group_commit(conn) {
                pooled.unspare();
            }
        }
        let live = Arc::new(Live { endpoint, source, config });
        self.shared.live.set(live).map_err(|_| "the sync fairing was ignited twice".to_string())?;
        Ok(parts.mount)
    }

    /// Manages the fairing (for the app's own routes), mounts the route at
    /// the configured path unless the app mounted it or takes care of it,
    /// and the JSON catchers where it is.
    fn mount(&self, rocket: Rocket<Build>, own_route: bool) -> Rocket<Build> {
        let mut rocket = rocket.manage(self.clone());
        if let Some(live) = self.shared.live.get() {
            if let Some(token) = live.config.admin_token.clone() {
                let base = format!("{}/owners", live.config.admin_path.trim_end_matches('/'));
                rocket = rocket.mount(base.as_str(), audit::Audit { live: live.clone(), token });
            }
        }
        if !own_route {
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

#[cfg(all(test, feature = "sync-db-pools", feature = "sqlite"))]
mod tests {
    use crate::endpoint::AuthError;
    use crate::syncable::Models;
    use crate::SyncFairing;
    use diesel::SqliteConnection;
    use rocket::http::{ContentType, Status};
    use rocket::local::blocking::Client;

    #[allow(dead_code)]
    #[rocket_sync_db_pools::database("mobync_sentinel")]
    struct Db(SqliteConnection);

    fn sync() -> SyncFairing<SqliteConnection, String> {
        let auth = |_: &mut SqliteConnection, _: &str| Err::<String, _>(AuthError::refused("unknown auth_token"));
        SyncFairing::on_database::<Db>(Models::new(), auth)
    }

    #[test]
    fn a_database_pool_that_is_not_there_is_an_error_at_launch() {
        let figment = rocket::Config::figment().merge(("databases.mobync_sentinel.url", ":memory:"));
        let err = Client::untracked(rocket::custom(figment.clone()).attach(sync())).err().expect("the launch is refused");
        assert!(matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(..)), "{:?}", err.kind());
        // Attached after mobync's fairing, the pool is not there either.
        let late = rocket::custom(figment.clone()).attach(sync()).attach(Db::fairing());
        let err = Client::untracked(late).err().expect("the launch is refused");
        assert!(matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(..)), "{:?}", err.kind());
        let client = Client::untracked(rocket::custom(figment).attach(Db::fairing()).attach(sync())).expect("it ignites");
        let body = r#"{"auth_token": "x", "logical_clock": 0, "diffs": []}"#;
        let response = client.post("/sync").header(ContentType::JSON).body(body).dispatch();
        assert_eq!(response.status(), Status::Unauthorized);
    }
}
