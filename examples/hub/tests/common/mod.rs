//! The hub in this test's process, on a real TCP port: what a test needs
//! that must reach inside (a hook at a step of the hub's work, the time),
//! and small HTTP helpers for its two APIs.
#![allow(dead_code)]

use mobync_hub::{Hub, Step};
use mobync_tests::dbs::{self, Backend, TestDb};
use rocket::fairing::AdHoc;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const ADMIN: &str = "admin-token-of-the-tests";

/// A hub served by this process.
pub struct Local {
    pub db: Arc<TestDb>,
    pub base: String,
    pub fairing: mobync_hub::HubFairing<mobync::db::DbConnection, String>,
    shutdown: rocket::Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A step hook.
pub type Hook = Box<dyn Fn(Step) + Send + Sync>;

impl Local {
    /// The hub example's server (todo + hub) on a fresh database of
    /// `backend`, with `hook` called at each step; `None` when the backend
    /// is not available (outside CI).
    pub fn start(backend: Backend, hook: impl Fn(Step) + Send + Sync + 'static) -> Option<Local> {
        let db = Arc::new(dbs::fresh(backend)?);
        Some(Self::launch(db, Some(Box::new(hook)), None, &[]))
    }

    /// The server on `db`, with `hook`, the time of `clock` (ms), and the
    /// numeric Rocket settings `settings` (e.g. `("hub.lease", 60.0.into())`).
    pub fn launch(db: Arc<TestDb>, hook: Option<Hook>, clock: Option<Arc<AtomicI64>>, settings: &[(&str, rocket::figment::value::Value)]) -> Local {
        let app = todo::App::new(&db.url).expect("the app");
        let hub = Hub::new(|conn| todo::accounts::new_user(conn, "hub network").map(|(id, _)| id).map_err(|e| e.to_string()));
        if let Some(hook) = hook {
            hub.on_step(hook);
        }
        if let Some(clock) = clock {
            hub.with_clock(move || clock.load(Ordering::SeqCst));
        }
        let sync = app.sync(hub.install(app.models()));
        let fairing = hub.fairing(sync.clone(), ADMIN);
        let rocket = app.rocket(sync.clone()).attach(fairing.clone());
        let mut figment = rocket.figment().clone().merge(("port", 0)).merge(("address", "127.0.0.1")).merge(("log_level", std::env::var("HUB_TEST_LOG").unwrap_or_else(|_| "off".into())));
        for (key, value) in settings {
            figment = figment.merge((*key, value.clone()));
        }
        let (tx, rx) = mpsc::channel();
        let rocket = rocket.configure(figment).attach(AdHoc::on_liftoff("tell the port", move |rocket| {
            let _ = tx.send((rocket.config().port, rocket.shutdown()));
            Box::pin(async {})
        }));
        let thread = std::thread::spawn(move || {
            let launched = rocket::execute(async move {
                let result = rocket.launch().await;
                sync.finish(result).await
            });
            if let Err(err) = launched {
                panic!("the hub: {err}");
            }
        });
        let (port, shutdown) = rx.recv_timeout(Duration::from_secs(60)).expect("the hub lifts off");
        Local { db, base: format!("http://127.0.0.1:{port}"), fairing, shutdown, thread: Some(thread) }
    }

    /// One pruning round at `now`.
    pub fn prune(&self, now: i64) -> mobync_hub::Pruned {
        let fairing = self.fairing.clone();
        rocket::execute(async move { fairing.prune(now).await }).expect("pruning")
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP call: the status and the JSON body (`Null` when empty).
pub fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
    try_call(method, url, headers, body, Duration::from_secs(600)).unwrap_or_else(|err| panic!("{err}"))
}

/// One HTTP call, or what kept it from being answered within `within` (a
/// refused or broken connection: a server that was killed).
pub fn try_call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
    within: Duration,
) -> Result<(u16, Value), String> {
    let agent = ureq::AgentBuilder::new().timeout(within).build();
    let mut request = agent.request(method, url);
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let result = match body {
        Some(body) => request.set("Content-Type", "application/json").send_string(&body.to_string()),
        None => request.call(),
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(err) => return Err(format!("{method} {url}: {err}")),
    };
    let status = response.status();
    let text = response.into_string().map_err(|e| format!("{method} {url}: {e}"))?;
    let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Ok((status, json))
}

/// The admin API of the hub at `base`.
pub fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call(method, &format!("{base}/admin{path}"), &[("Authorization", &format!("Bearer {ADMIN}"))], body)
}

/// A node of a network, calling the messaging API.
#[derive(Clone, Debug)]
pub struct Node {
    pub base: String,
    pub network: String,
    pub id: String,
    pub token: String,
}

impl Node {
    /// A new node of `network`, with flags create, read, update, delete.
    pub fn new(base: &str, network: &str, name: &str, flags: [bool; 4]) -> Node {
        let body = json!({"name": name, "create": flags[0], "read": flags[1], "update": flags[2], "delete": flags[3]});
        let (status, node) = admin(base, "POST", &format!("/networks/{network}/nodes"), Some(body));
        assert_eq!(status, 201, "{node}");
        Node {
            base: base.to_string(),
            network: network.to_string(),
            id: node["id"].as_str().expect("id").to_string(),
            token: node["token"].as_str().expect("token").to_string(),
        }
    }

    pub fn call_with(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("X-Sync-Network-Id", self.network.as_str()), ("X-Sync-Node-Id", self.id.as_str()), ("Authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        call(method, &format!("{}/messages{path}", self.base), &headers, body)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, &[], body)
    }

    pub fn send(&self, body: Value) -> (u16, Value) {
        self.call("POST", "", Some(body))
    }

    pub fn pending(&self) -> i64 {
        let (status, count) = self.call("GET", "/pending", None);
        assert_eq!(status, 200, "{count}");
        count.as_i64().expect("an integer")
    }

    pub fn next(&self) -> Option<Value> {
        match self.call("POST", "/next", None) {
            (200, message) => Some(message),
            (204, _) => None,
            (status, body) => panic!("next: {status} {body}"),
        }
    }

    pub fn answer(&self, id: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", &format!("/{id}"), Some(body))
    }
}

/// A network over `model` of `owner` with `schema`: its id.
pub fn network(base: &str, owner: Option<&str>, model: &str, schema: Value) -> String {
    let mut body = json!({"name": model, "schema": schema, "model": model});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    let (status, network) = admin(base, "POST", "/networks", Some(body));
    assert_eq!(status, 201, "{network}");
    network["id"].as_str().expect("id").to_string()
}

/// A gate for one step: the first time it is reached once armed, it says
/// so and waits to be opened.
#[derive(Clone, Default)]
pub struct Gate {
    armed: Arc<AtomicBool>,
    reached: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    open: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Gate {
    /// Arms the gate: the receiver hears when it is reached, the sender
    /// opens it.
    pub fn arm(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (reached_tx, reached_rx) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        *self.reached.lock().expect("gate") = Some(reached_tx);
        *self.open.lock().expect("gate") = Some(open_rx);
        self.armed.store(true, Ordering::SeqCst);
        (reached_rx, open_tx)
    }

    pub fn pass(&self) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Some(reached) = self.reached.lock().expect("gate").take() {
            let _ = reached.send(());
        }
        let open = self.open.lock().expect("gate").take();
        if let Some(open) = open {
            let _ = open.recv_timeout(Duration::from_secs(120));
        }
    }
}

