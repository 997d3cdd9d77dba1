//! The todo example server as a child process, on a free port and a fresh
//! database, as a user starts it (`DATABASE_URL`, `ROCKET_PORT`); killed on
//! drop.

use crate::db::{Backend, BenchDb};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The release `todo` binary: `$TODO_BIN`, else the `todo` next to this
/// executable (both live in `target/release`).
pub fn todo_bin() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TODO_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("todo");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p todo --features postgres -p mobync-bench` \
             (or set TODO_BIN)",
            bin.display()
        ))
    }
}

/// A running todo server.
pub struct TodoServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its database.
    pub db: BenchDb,
    child: Child,
}

impl TodoServer {
    /// Starts the release todo binary on a fresh database of `backend`.
    pub fn start(backend: Backend) -> Result<TodoServer, String> {
        Self::start_with(backend, &[])
    }

    /// Same, with extra environment (e.g. `ROCKET_WORKERS`).
    pub fn start_with(backend: Backend, env: &[(&str, &str)]) -> Result<TodoServer, String> {
        let db = BenchDb::fresh(backend, "todo")?;
        let port = free_port();
        let child = Command::new(todo_bin()?)
            .env("DATABASE_URL", &db.url)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_LOG_LEVEL", "critical")
            .env("ROCKET_CLI_COLORS", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the todo binary: {e}"))?;
        let server = TodoServer { base: format!("http://127.0.0.1:{port}"), db, child };
        crate::net::wait_health(&server.base, Duration::from_secs(60))?;
        Ok(server)
    }

    /// The sync URL.
    pub fn sync_url(&self) -> String {
        format!("{}/sync", self.base)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TodoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python mobync 0.2.0 baseline (`benches/python/run.sh PORT DBFILE`)
/// on a fresh SQLite file; killed on drop.
pub struct PythonServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its database file.
    pub db: BenchDb,
    child: Child,
}

/// `benches/python/run.sh`, if the Python baseline is there.
pub fn python_run_sh() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python").join("run.sh");
    path.exists().then_some(path)
}

impl PythonServer {
    /// Starts it (its run.sh sets up its virtualenv first if needed).
    pub fn start() -> Result<PythonServer, String> {
        let run = python_run_sh().ok_or("benches/python/run.sh is missing")?;
        let db = BenchDb::fresh(Backend::Sqlite, "py")?;
        let port = free_port();
        let child = Command::new(run)
            .arg(port.to_string())
            .arg(&db.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the Python server: {e}"))?;
        let server = PythonServer { base: format!("http://127.0.0.1:{port}"), db, child };
        crate::net::wait_health(&server.base, Duration::from_secs(120))?;
        Ok(server)
    }

    /// The sync URL.
    pub fn sync_url(&self) -> String {
        format!("{}/sync", self.base)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
