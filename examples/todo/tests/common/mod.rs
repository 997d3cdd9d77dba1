//! Starts the todo server as a user would (`todo` binary, env config) on
//! port 0 (it announces the port the OS chose) and a fresh database, and
//! stops it on drop.

use mobync::client::Rows;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http::HttpServer;
use mobync_tests::spawn::Spawned;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub struct TodoServer {
    pub base: String,
    /// The database; shared by every server started with [`TodoServer::another`].
    pub db: Arc<TestDb>,
    process: Spawned,
}

impl TodoServer {
    /// The server on a fresh database of `backend`, `None` if that backend
    /// is unreachable outside CI. `env` adds settings (e.g. `ROCKET_MOBYNC`).
    pub fn start(backend: Backend, env: &[(&str, &str)]) -> Option<TodoServer> {
        Some(Self::spawn(Arc::new(dbs::fresh(backend)?), env))
    }

    /// The server on `db`, a database made by the test.
    #[allow(dead_code)] // not every test file brings its own database
    pub fn on(db: Arc<TestDb>) -> TodoServer {
        Self::spawn(db, &[])
    }

    /// A second server process on the same database.
    #[allow(dead_code)] // not every test file runs two
    pub fn another(&self) -> TodoServer {
        Self::spawn(self.db.clone(), &[])
    }

    fn spawn(db: Arc<TestDb>, env: &[(&str, &str)]) -> TodoServer {
        let mut vars: Vec<(&str, String)> = vec![("DATABASE_URL", db.url.clone())];
        vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        let process = Spawned::start(env!("CARGO_BIN_EXE_todo"), &vars, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the todo server: {e}"));
        TodoServer { base: process.base.clone(), db, process }
    }

    /// Kills the process (SIGKILL) and starts another on the same database.
    #[allow(dead_code)] // not every test file crashes it
    pub fn restart(&mut self) {
        self.process.kill();
        *self = Self::spawn(self.db.clone(), &[]);
    }

    /// Kills the process (SIGKILL) and starts another on the same database
    /// with `env`.
    #[allow(dead_code)] // not every test file crashes it
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.process.kill();
        *self = Self::spawn(self.db.clone(), env);
    }

    /// The server's process.
    #[allow(dead_code)] // not every test file needs it
    pub fn process(&mut self) -> &mut Spawned {
        &mut self.process
    }

    pub fn sync_url(&self) -> String {
        format!("{}/sync", self.base)
    }

    /// A `Server` for the conformance scenarios; `owners` maps tokens to owners.
    #[allow(dead_code)] // not every test file syncs devices
    pub fn as_server(
        &self,
        owners: HashMap<String, String>,
    ) -> HttpServer<impl FnMut(&str) -> Rows + '_, impl FnMut() -> String + '_> {
        let db = self.db.clone();
        HttpServer {
            sync_url: self.sync_url(),
            rows: move |token: &str| {
                let owner = owners.get(token).expect("a known token");
                mobync_tests::models::rows(&mut dbs::connect(&db), owner)
            },
            state: move || mobync_tests::models::dump(&self.db).join("\n"),
        }
    }
}

/// The peak resident memory (`VmHWM`) of process `pid`, in bytes.
#[allow(dead_code)] // not every test file measures memory
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("a number") * 1024
}

/// `POST /admin/owners/<owner>/compact` with `body`, with `token` as the
/// admin bearer token if any: the status and the JSON answer.
#[allow(dead_code)] // not every test file compacts
pub fn compact(server: &TodoServer, owner: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let url = format!("{}/admin/owners/{owner}/compact", server.base);
    let mut request = ureq::post(&url).set("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.send_string(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(err) => panic!("POST {url}: {err}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}
