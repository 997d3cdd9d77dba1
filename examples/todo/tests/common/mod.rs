//! Starts the todo server as a user would (`todo` binary, env config) on a
//! free port and a fresh database, and stops it on drop.

use mobync::client::Rows;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http::{self, HttpServer};
use std::collections::HashMap;
use std::sync::Arc;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TodoServer {
    pub base: String,
    /// The database; shared by every server started with [`TodoServer::another`].
    pub db: Arc<TestDb>,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl TodoServer {
    /// The server on a fresh database of `backend`, `None` if that backend
    /// is unreachable outside CI. `env` adds settings (e.g. `ROCKET_MOBYNC`).
    pub fn start(backend: Backend, env: &[(&str, &str)]) -> Option<TodoServer> {
        Some(Self::spawn(Arc::new(dbs::fresh(backend)?), env))
    }

    /// A second server process on the same database.
    #[allow(dead_code)] // not every test file runs two
    pub fn another(&self) -> TodoServer {
        Self::spawn(self.db.clone(), &[])
    }

    fn spawn(db: Arc<TestDb>, env: &[(&str, &str)]) -> TodoServer {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_todo"))
            .env("DATABASE_URL", &db.url)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_LOG_LEVEL", "critical")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the todo binary");
        let server = TodoServer { base: format!("http://127.0.0.1:{port}"), db, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http::get(&format!("{}/health", server.base)).map(|a| a.status) != Some(200) {
            assert!(Instant::now() < deadline, "the todo server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
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

impl Drop for TodoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
