//! Announcing the address once the server listens, for the tools and test
//! harnesses that start it.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::Rocket;

/// Prints `<name>: listening on http://<address>:<port>` on stdout once the
/// server listens, with the port the OS chose when `port` is 0: one line
/// for the tools that start the server (Rocket's own banner goes through
/// its log level).
pub struct Announce(pub &'static str);

#[rocket::async_trait]
impl Fairing for Announce {
    fn info(&self) -> Info {
        Info { name: "announce the address", kind: Kind::Liftoff }
    }

    async fn on_liftoff(&self, rocket: &Rocket<rocket::Orbit>) {
        use std::io::Write;
        let config = rocket.config();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}: listening on http://{}:{}", self.0, config.address, config.port);
        let _ = out.flush();
    }
}
