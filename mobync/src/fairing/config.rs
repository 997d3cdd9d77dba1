//! The fairing's configuration: the `mobync` table of Rocket's figment.

use crate::engine::DEFAULT_MAX_DIFFS;
use rocket::data::{ByteUnit, ToByteUnit};
use rocket::serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fairing's settings, from the `mobync` table of Rocket's figment.
///
/// ```
/// let figment = rocket::Config::figment().merge(("mobync.path", "/api/sync")).merge(("mobync.max_diffs", 1000));
/// let config: mobync::fairing::Config = figment.extract_inner("mobync").unwrap();
/// assert_eq!((config.path.as_str(), config.max_diffs, config.migrate), ("/api/sync", 1000, true));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(crate = "rocket::serde", default)]
pub struct Config {
    /// Where the sync endpoint is mounted. Default `/sync`.
    pub path: String,
    /// The diff log's table name (its companions are named after it).
    /// Default `diffs`.
    pub diffs_table: String,
    /// Most diffs in one request (413 above). Default 5,000.
    pub max_diffs: usize,
    /// Largest request body (413 above). Default 5 MiB.
    pub body_limit: ByteUnit,
    /// Seconds a request body may take to arrive (408 after). Default 30.
    pub read_timeout: f64,
    /// Seconds a sync waits for a free connection of mobync's own pool
    /// (503 after). Default 5. (A `#[database]` pool has its own `timeout`.)
    pub pool_wait: f64,
    /// Run mobync's migrations at ignition. Default `true`.
    pub migrate: bool,
    /// The audit API's bearer token (at least 16 characters); the API is
    /// off without one. Default none.
    pub admin_token: Option<String>,
    /// Where the audit API is mounted (`<admin_path>/owners/...`). Default
    /// `/admin`.
    pub admin_path: String,
    /// Seconds the owner the authenticator gave for a token is remembered:
    /// a sync within that time costs no authenticator call, and a revoked
    /// token keeps working for at most that long. Default 0: the
    /// authenticator is asked at every sync.
    pub auth_cache: f64,
    /// Seconds a diff's `utc_timestamp` may be ahead of the server's clock;
    /// a diff further ahead gets the server's time (PROTOCOL.md). Default
    /// 600; 0 turns the check off.
    pub max_clock_skew: f64,
    /// Seconds the ids of diffs squashed by a compaction stay known, so
    /// that a retried request is still recognised. Default 30 days.
    pub retry_window: f64,
    /// Seconds between two rounds of background compaction; 0 (the
    /// default) turns it off (compaction then runs only when called).
    pub compact_every: f64,
    /// Stamps of each owner's newest history the background compaction
    /// keeps as diffs (it compacts an owner once more than twice this many
    /// are above its horizon). Default 1,000.
    pub compact_keep: i64,
    /// Seconds after which the background compaction purges the
    /// tombstones of deleted rows (devices older than that then get 410
    /// `reset_required`); 0 (the default) keeps them forever.
    pub tombstone_age: f64,
    /// Group commit on SQLite with mobync's own pool: the writes of
    /// concurrent syncs share one transaction and one `COMMIT` (one fsync),
    /// each all or nothing in a savepoint of its own and answered only
    /// once committed; one of the pool's connections is kept for it
    /// ([`DieselStore::group_commit`](crate::db::DieselStore::group_commit)).
    /// Default `true`. (Other backends, `#[database]` pools and pools of
    /// fewer than three connections commit each sync on its own.)
    pub group_commit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/sync".into(),
            diffs_table: "diffs".into(),
            max_diffs: DEFAULT_MAX_DIFFS,
            body_limit: 5.mebibytes(),
            read_timeout: 30.0,
            pool_wait: 5.0,
            migrate: true,
            admin_token: None,
            admin_path: "/admin".into(),
            auth_cache: 0.0,
            max_clock_skew: 600.0,
            retry_window: 30.0 * 24.0 * 3600.0,
            compact_every: 0.0,
            group_commit: true,
            compact_keep: 1_000,
            tombstone_age: 0.0,
        }
    }
}

pub(super) fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("`{name}` must be a number of seconds >= 0, not {value}"))
}
