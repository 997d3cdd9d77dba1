//! A PostgreSQL cluster of a test's own, to stop and restart under a
//! running server.

use crate::dbs;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL cluster of the test's own (initdb, pg_ctl, as the
/// `postgres` user), stopped and removed on drop.
pub struct Cluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    /// A new cluster, initialised and started on a free port.
    pub fn start() -> Result<Cluster, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .ok_or("no PostgreSQL binaries")?;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mobync-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        run("chown", &["postgres", &dir.display().to_string()])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let data = dir.join("data").display().to_string();
        run("runuser", &["-u", "postgres", "--", &bin.join("initdb").display().to_string(), "-A", "trust", "-U", "postgres", "-D", &data])?;
        let cluster = Cluster { dir, bin, port };
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    /// Runs `pg_ctl` on it with `args` (`start`, `stop -m immediate`, ...).
    pub fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let options = format!("-p {} -k /tmp -c listen_addresses=127.0.0.1", self.port);
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let mut all = vec!["-u", "postgres", "--", pg_ctl.as_str(), "-D", &data, "-o", &options, "-l", &log, "-w"];
        all.extend(args);
        run("runuser", &all)
    }

    /// The URL of its `postgres` database, as its superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}


impl Cluster {
    /// [`Cluster::start`], or `None` with a line on the terminal when it
    /// cannot start here (a failure under CI).
    pub fn start_or_skip(test: &str) -> Option<Cluster> {
        match Cluster::start() {
            Ok(cluster) => Some(cluster),
            Err(err) if dbs::in_ci() => panic!("{test}: a PostgreSQL cluster of the test's own is required under CI: {err}"),
            Err(err) => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {err}");
                None
            }
        }
    }
}
