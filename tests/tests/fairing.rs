//! The fairing's ways into an app, through Rocket's local client on a
//! SQLite file: the route mounted by the fairing, by the app as a handler
//! value, or called from the app's own route behind its own guard; a
//! pool with no free connection answered 503, not a hang; a sync counted
//! in flight once; `without_route` on a clone; a route mounted without
//! its fairing refused at launch (its sentinel); and group commit on
//! mobync's SQLite pool unless the setting turns it off.

use mobync::db::{self, DbConnection, Pool, PoolSettings};
use mobync::fairing::{ApiError, SyncAnswer};
use mobync::{AuthError, SyncFairing};
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::models;
use rocket::data::Data;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{Build, Rocket, State};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock};

fn app(db: &TestDb, settings: PoolSettings) -> (Pool, SyncFairing<DbConnection, String>) {
    let pool = db::pool_with::<DbConnection>(&db.url, &settings).expect("pool");
    models::create_tables(&mut pool.get().expect("connection"));
    let auth = |_: &mut DbConnection, token: &str| match token {
        "ada-token" => Ok("ada".to_string()),
        _ => Err(AuthError::refused("unknown auth_token")),
    };
    let fairing = SyncFairing::new(pool.clone(), models::models(), auth);
    (pool, fairing)
}

fn body() -> String {
    let diff = json!({"id": "d1", "owner": "", "logical_clock": 0, "utc_timestamp": 1, "type": "create",
                      "model": "task", "json_data": json!({"id": "t1", "title": "x", "done": false}).to_string()});
    json!({"auth_token": "ada-token", "logical_clock": 0, "diffs": [diff]}).to_string()
}

fn post(client: &Client, path: &str, headers: &[(&'static str, &'static str)]) -> (Status, Value) {
    let mut request = client.post(path).header(ContentType::JSON).body(body());
    for (name, value) in headers {
        request = request.header(Header::new(*name, *value));
    }
    let response = request.dispatch();
    let status = response.status();
    (status, response.into_json().unwrap_or(Value::Null))
}

fn client(rocket: Rocket<Build>) -> Client {
    Client::untracked(rocket).expect("the app ignites")
}

#[test]
fn the_app_can_mount_the_route_itself_as_a_handler_value() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let (_, sync) = app(&db, PoolSettings::default());
    let client = client(rocket::build().attach(sync.clone()).mount("/api/v2/sync", sync));
    let (status, answer) = post(&client, "/api/v2/sync", &[]);
    assert_eq!((status, answer["logical_clock"].clone()), (Status::Ok, json!(1)));
    assert_eq!(post(&client, "/sync", &[]).0, Status::NotFound, "the fairing did not mount it a second time");
    // Its JSON catchers are where the app put it.
    let response = client.get("/api/v2/sync").dispatch();
    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(response.into_json::<Value>().expect("a JSON body")["success"], false);
}

struct ApiKey;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiKey {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        match req.headers().get_one("X-Api-Key") {
            Some("letmein") => Outcome::Success(ApiKey),
            _ => Outcome::Error((Status::Forbidden, ())),
        }
    }
}

#[rocket::post("/guarded/sync", data = "<data>")]
async fn guarded(_key: ApiKey, sync: &State<SyncFairing<DbConnection, String>>, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
    sync.respond(data).await
}

#[test]
fn the_app_can_call_the_sync_from_its_own_route_behind_its_own_guard() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let (_, sync) = app(&db, PoolSettings::default());
    let client = client(rocket::build().attach(sync.without_route()).mount("/", rocket::routes![guarded]));
    let before = models::dump(&db);
    assert_eq!(post(&client, "/guarded/sync", &[]).0, Status::Forbidden, "the app's guard runs first");
    assert_eq!(models::dump(&db), before);
    let (status, answer) = post(&client, "/guarded/sync", &[("X-Api-Key", "letmein")]);
    assert_eq!((status, answer["logical_clock"].clone()), (Status::Ok, json!(1)));
    assert_eq!(post(&client, "/sync", &[]).0, Status::NotFound, "without_route mounts nothing");
}

#[test]
fn a_pool_with_no_free_connection_is_503_with_retry_after_within_pool_wait() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let (pool, sync) = app(&db, PoolSettings { max_size: 1, ..PoolSettings::default() });
    let figment = rocket::Config::figment().merge(("mobync.pool_wait", 0.3));
    let client = client(rocket::custom(figment).attach(sync));
    let held = pool.get().expect("the pool's only connection");
    let started = std::time::Instant::now();
    let response = client.post("/sync").header(ContentType::JSON).body(body()).dispatch();
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(response.headers().get_one("Retry-After"), Some("5"));
    let answer: Value = response.into_json().expect("JSON");
    assert_eq!(answer["error"], "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "bounded by pool_wait");
    drop(held);
    assert_eq!(post(&client, "/sync", &[]).0, Status::Ok);
}

#[test]
fn group_commit_is_on_with_mobyncs_sqlite_pool_unless_the_setting_turns_it_off() {
    for (setting, on) in [(None, true), (Some(false), false)] {
        let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
        let (pool, sync) = app(&db, PoolSettings { max_size: 3, ..PoolSettings::default() });
        let mut figment = rocket::Config::figment().merge(("mobync.pool_wait", 0.3));
        if let Some(value) = setting {
            figment = figment.merge(("mobync.group_commit", value));
        }
        let client = client(rocket::custom(figment).attach(sync.clone()));
        assert_eq!(post(&client, "/sync", &[]).0, Status::Ok);
        let running = sync.running().expect("ignited");
        assert_eq!(running.engine().store().group_stats().map(|s| (s.groups, s.writes)), on.then_some((1, 1)), "group_commit = {setting:?}");
        // On, it keeps one of the pool's connections: syncs get the others.
        assert_eq!(pool.state().connections - pool.state().idle_connections, u32::from(on));
    }
}

#[test]
fn a_sync_is_in_flight_once_on_the_fairings_route_and_on_the_apps_own() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let pool = db::pool_with::<DbConnection>(&db.url, &PoolSettings::default()).expect("pool");
    models::create_tables(&mut pool.get().expect("connection"));
    // The authenticator runs inside the sync: it notes the count then.
    let fairing: Arc<OnceLock<SyncFairing<DbConnection, String>>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (inside, saw) = (fairing.clone(), seen.clone());
    let auth = move |_: &mut DbConnection, token: &str| {
        saw.lock().unwrap().push(inside.get().map(SyncFairing::in_flight));
        match token {
            "ada-token" => Ok("ada".to_string()),
            _ => Err(AuthError::refused("unknown auth_token")),
        }
    };
    let sync = SyncFairing::new(pool, models::models(), auth);
    fairing.set(sync.clone()).ok().expect("set once");
    let rocket = rocket::build().attach(sync.clone()).mount("/api/sync", sync.clone()).mount("/", rocket::routes![guarded]);
    let client = client(rocket);
    assert_eq!(post(&client, "/api/sync", &[]).0, Status::Ok);
    assert_eq!(sync.in_flight(), 0, "its answer was written");
    assert_eq!(post(&client, "/guarded/sync", &[("X-Api-Key", "letmein")]).0, Status::Ok);
    assert_eq!(sync.in_flight(), 0);
    assert_eq!(*seen.lock().unwrap(), [Some(1), Some(1)], "the route's handler and respond_as count one sync once");
}

#[test]
fn without_route_holds_for_every_clone_and_panics_once_ignited() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let (_, sync) = app(&db, PoolSettings::default());
    let kept = sync.clone();
    // A clone of a fairing that has clones (it used to be ignored then).
    let client = client(rocket::build().attach(sync.clone().without_route()).mount("/", rocket::routes![guarded]));
    assert_eq!(post(&client, "/sync", &[]).0, Status::NotFound, "no route mounted");
    assert_eq!(post(&client, "/guarded/sync", &[("X-Api-Key", "letmein")]).0, Status::Ok);
    let late = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kept.without_route()));
    let payload = late.err().expect("a panic");
    let message = payload.downcast_ref::<&str>().map(|m| m.to_string()).or_else(|| payload.downcast_ref::<String>().cloned());
    let message = message.expect("a panic with a message");
    assert!(message.contains("ignited already"), "{message}");
}

#[test]
fn a_sync_or_ready_route_mounted_without_its_fairing_is_an_error_at_launch() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let (_, sync) = app(&db, PoolSettings::default());
    for rocket in [rocket::build().mount("/sync", sync.clone()), rocket::build().mount("/ready", sync.ready())] {
        let err = Client::untracked(rocket).err().expect("the launch is refused");
        assert!(matches!(err.kind(), rocket::error::ErrorKind::SentinelAborts(..)), "{:?}", err.kind());
    }
    // Attached, the same routes launch.
    let rocket = rocket::build().attach(sync.clone()).mount("/api/sync", sync.clone()).mount("/ready", sync.ready());
    let client = client(rocket);
    assert_eq!(client.get("/ready").dispatch().status(), Status::Ok);
    assert_eq!(post(&client, "/api/sync", &[]).0, Status::Ok);
}
