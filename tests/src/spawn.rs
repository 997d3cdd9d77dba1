//! A server binary as a child process, started as a user starts it (its
//! configuration in the environment) on port 0: the OS picks a free port
//! and the server announces it on stdout (`mobync::fairing::Announce`, or the examples' own `announce`), so
//! no other process can take the port between a probe and the bind. The
//! wait for that line notices a server that exited, and says why.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a started server prints before its address.
pub const ANNOUNCEMENT: &str = "listening on http://";

/// A running server, killed on drop.
pub struct Spawned {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Spawned {
    /// Starts `program` with `env` (and `ROCKET_PORT=0`, `ROCKET_ADDRESS`,
    /// quiet logs unless `env` says otherwise) and waits up to `wait` for it
    /// to announce its address. Fails if it exits first, with its stderr.
    pub fn start(program: &str, env: &[(&str, String)], wait: Duration) -> Result<Spawned, String> {
        let mut command = Command::new(program);
        command
            .env("ROCKET_PORT", "0")
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_LOG_LEVEL", "critical")
            .env("ROCKET_CLI_COLORS", "false")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::start_command(command, wait)
    }

    /// Starts `command` and waits up to `wait` for its announcement.
    pub fn start_command(mut command: Command, wait: Duration) -> Result<Spawned, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {program}: {e}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_reader = None;
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            stderr_reader = Some(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }));
        }
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stdout.take() {
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some((_, address)) = line.split_once(ANNOUNCEMENT) {
                        let _ = tx.send(format!("http://{}", address.trim()));
                    }
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            });
        }
        let mut spawned = Spawned { base: String::new(), child, stderr, stdout, stderr_reader };
        let deadline = Instant::now() + wait;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(base) => {
                    spawned.base = base;
                    return Ok(spawned);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = spawned.child.try_wait() {
                // All it wrote: the pipe ends with the process.
                if let Some(reader) = spawned.stderr_reader.take() {
                    let _ = reader.join();
                }
                return Err(format!("{program} exited ({status}) before it listened: {}", spawned.stderr()));
            }
            if Instant::now() > deadline {
                return Err(format!("{program} did not listen within {wait:?}: {}", spawned.stderr()));
            }
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What the server wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// How the process exited, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `wait` for the process to exit; true
    /// if it did.
    pub fn terminate(&mut self, wait: Duration) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn the_announced_address_is_the_base() {
        let server = Spawned::start_command(sh("echo 'x: listening on http://127.0.0.1:4242'; sleep 30"), Duration::from_secs(10))
            .expect("announced");
        assert_eq!(server.base, "http://127.0.0.1:4242");
    }

    #[test]
    fn a_server_that_exits_before_it_listens_is_noticed_at_once_with_its_stderr() {
        let started = Instant::now();
        let err = Spawned::start_command(sh("echo 'no database here' >&2; exit 3"), Duration::from_secs(30))
            .err()
            .expect("it exited");
        assert!(started.elapsed() < Duration::from_secs(10), "the wait did not notice the exit");
        assert!(err.contains("exited") && err.contains("no database here"), "{err}");
    }
}
