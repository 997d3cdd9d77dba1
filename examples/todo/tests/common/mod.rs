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

