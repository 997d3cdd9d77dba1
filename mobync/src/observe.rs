//! What a running server tells its operator: one `tracing` span per sync,
//! and metrics through the [`metrics`] facade.
//!
//! **Tracing.** The fairing opens a span `sync` per request, with the fields
//! `request_id` (the request's `X-Request-Id`, or a new one; echoed in the
//! answer), `owner`, `cursor`, `received`, `applied`, `dropped`, `sent`,
//! `clock`, `status`, `code` (the error code of a failure), `db_ms` and
//! `duration_ms`, and ends it with one event: `sync` at INFO, a 5xx at
//! ERROR. Everything mobync logs during the sync is inside the span, so a
//! 500's line carries the request id a client reports. No token and no
//! `json_data` is ever in a field or a message. The `tracing` macros fall
//! back to the `log` crate when no subscriber is installed: then the span
//! is at DEBUG (the `log` crate would print each field recorded on it as a
//! line of its own) and the closing event carries its fields, so a sync is
//! one line at Rocket's default level (the `sync` span and its closing event).
//! [`init_logging`] (feature `subscriber`) installs a subscriber that also
//! carries Rocket's `log` lines, one stream.
//!
//! **Metrics.** mobync records into whatever recorder the app installed
//! (the `metrics` facade: one registry, the app's), with the names in
//! [`names`]. Without a recorder they cost nothing. [`Prometheus`] (feature
//! `prometheus`) installs metrics-exporter-prometheus's recorder and serves
//! its text format on a route the app mounts where it wants.
//!
//! ```
//! use mobync::observe::{names, Report};
//! use mobync::protocol::{Diff, OperationType::Create};
//!
//! let mut report = Report::default();
//! report.received = 1;
//! report.note_applied(&[Diff::new("d1", Create, "task", serde_json::json!({"id": "r1"}))]);
//! assert_eq!(report.applied_total(), 1);
//! report.emit(); // counters `mobync_diffs_applied_total{model="task",op="create"}` += 1, ...
//! assert_eq!(names::DIFFS_APPLIED, "mobync_diffs_applied_total");
//! ```

use crate::protocol::Diff;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(feature = "prometheus")]
pub use prometheus::Prometheus;

/// The metrics mobync records, and their labels.
pub mod names {
    /// Counter, label `status` (the HTTP status): syncs answered.
    pub const SYNCS: &str = "mobync_syncs_total";
    /// Histogram, seconds: a whole sync, from its first byte read to its answer built.
    pub const SYNC_SECONDS: &str = "mobync_sync_duration_seconds";
    /// Histogram, seconds: a sync's database part (authentication, read,
    /// merge, write, commit), on its connection.
    pub const SYNC_DB_SECONDS: &str = "mobync_sync_db_duration_seconds";
    /// Histogram, bytes: a successful sync's answer.
    pub const ANSWER_BYTES: &str = "mobync_answer_bytes";
    /// Counter, labels `model`, `op`: diffs applied (committed).
    pub const DIFFS_APPLIED: &str = "mobync_diffs_applied_total";
    /// Counter, labels `model`, `op`: diffs the merge dropped (committed).
    pub const DIFFS_DROPPED: &str = "mobync_diffs_dropped_total";
    /// Counter: diffs sent back to devices.
    pub const DIFFS_SENT: &str = "mobync_diffs_sent_total";
    /// Histogram, seconds: waiting for a pool connection.
    pub const POOL_WAIT_SECONDS: &str = "mobync_pool_wait_seconds";
    /// Counter: waits for a pool connection that ran out (answered 503).
    pub const POOL_TIMEOUTS: &str = "mobync_pool_timeouts_total";
    /// Counter: diffs whose `utc_timestamp` was further ahead of the
    /// server's clock than `max_clock_skew` and got the server's time.
    pub const CLOCK_SKEW_CLAMPED: &str = "mobync_clock_skew_clamped_total";
    /// Counter: log entries compactions squashed into net rows.
    pub const COMPACTED_ENTRIES: &str = "mobync_compacted_entries_total";
    /// Counter, label `state`: hub messages that entered a state
    /// (`pending`, `processing`, `acknowledged`, `failed`, `superseded`).
    pub const HUB_MESSAGES: &str = "mobync_hub_messages_total";
}

/// Diffs by (model, operation).
pub type Counts = BTreeMap<(String, &'static str), u64>;

/// What one sync did, filled in as it goes: the span's fields and the
/// diff counters. Applied and dropped diffs are noted only once their
/// transaction committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The owner's key, once authenticated.
    pub owner: Option<String>,
    /// The device's cursor, once read.
    pub cursor: Option<i64>,
    /// Diffs in the request.
    pub received: usize,
    /// Diffs applied, by model and operation.
    pub applied: Counts,
    /// Diffs of the request the merge dropped, by model and operation.
    pub dropped: Counts,
    /// Diffs in the answer.
    pub sent: usize,
    /// The clock answered.
    pub clock: Option<i64>,
    /// Other counters of the work done, to add once it committed (never if
    /// it rolled back): (metric name, label, label value) and how many. The
    /// hub counts its messages here.
    pub tallies: Tallies,
}

/// Counters by (metric name, label, label value), see [`Report::tallies`].
pub type Tallies = BTreeMap<(&'static str, &'static str, &'static str), u64>;

fn count<'a>(counts: &mut Counts, diffs: impl IntoIterator<Item = &'a Diff>) {
    for diff in diffs {
        *counts.entry((diff.model.clone(), diff.op.as_str())).or_default() += 1;
    }
}

impl Report {
    /// Notes `diffs` as applied.
    pub fn note_applied(&mut self, diffs: &[Diff]) {
        count(&mut self.applied, diffs);
    }

    /// Notes `diffs` as dropped by the merge.
    pub fn note_dropped<'a>(&mut self, diffs: impl IntoIterator<Item = &'a Diff>) {
        count(&mut self.dropped, diffs);
    }

    /// Adds what `other` noted of diffs and its tallies (a part of the
    /// sync, committed).
    pub fn absorb(&mut self, other: Report) {
        for (key, n) in other.applied {
            *self.applied.entry(key).or_default() += n;
        }
        for (key, n) in other.dropped {
            *self.dropped.entry(key).or_default() += n;
        }
        for (key, n) in other.tallies {
            *self.tallies.entry(key).or_default() += n;
        }
    }

    /// Counts `n` more of the counter `name` with `label` = `value`, once
    /// the work is committed and the report emitted.
    pub fn tally(&mut self, name: &'static str, label: &'static str, value: &'static str, n: u64) {
        *self.tallies.entry((name, label, value)).or_default() += n;
    }

    /// Diffs applied.
    pub fn applied_total(&self) -> u64 {
        self.applied.values().sum()
    }

    /// Diffs dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Records the diff counters (applied, dropped, sent) and the tallies
    /// in the app's `metrics` recorder.
    pub fn emit(&self) {
        for ((model, op), n) in &self.applied {
            metrics::counter!(names::DIFFS_APPLIED, "model" => model.clone(), "op" => *op).increment(*n);
        }
        for ((model, op), n) in &self.dropped {
            metrics::counter!(names::DIFFS_DROPPED, "model" => model.clone(), "op" => *op).increment(*n);
        }
        if self.sent > 0 {
            metrics::counter!(names::DIFFS_SENT).increment(self.sent as u64);
        }
        for ((name, label, value), n) in &self.tallies {
            metrics::counter!(*name, *label => *value).increment(*n);
        }
    }

    /// Writes the report into `span`'s fields.
    pub fn record_on(&self, span: &tracing::Span) {
        if let Some(owner) = &self.owner {
            span.record("owner", owner.as_str());
        }
        if let Some(cursor) = self.cursor {
            span.record("cursor", cursor);
        }
        span.record("received", self.received as u64);
        span.record("applied", self.applied_total());
        span.record("dropped", self.dropped_total());
        span.record("sent", self.sent as u64);
        if let Some(clock) = self.clock {
            span.record("clock", clock);
        }
    }
}

/// Whether a `tracing` subscriber was ever installed in this process
/// (globally or for a scope). Without one, `tracing` writes to the `log`
/// crate (Rocket's logger), where every `record` on a span is a line of
/// its own.
pub fn has_subscriber() -> bool {
    tracing::dispatcher::has_been_set()
}

/// The `sync` span of one request, its fields still empty. With a
/// subscriber it is at INFO, and every line of the sync carries its fields.
/// Without one it is at DEBUG: the `log` crate would print one line per
/// field recorded, so at the default level a sync is the one line of
/// [`sync_ended`], and the fields one by one only at `debug`.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) fn sync_span(request_id: &str) -> tracing::Span {
    use tracing::field::Empty;
    macro_rules! sync_span {
        ($level:expr) => {
            tracing::span!(
                target: "mobync::fairing",
                $level,
                "sync",
                request_id = %request_id,
                owner = Empty,
                cursor = Empty,
                received = Empty,
                applied = Empty,
                dropped = Empty,
                sent = Empty,
                clock = Empty,
                status = Empty,
                code = Empty,
                db_ms = Empty,
                duration_ms = Empty,
            )
        };
    }
    if has_subscriber() {
        sync_span!(tracing::Level::INFO)
    } else {
        sync_span!(tracing::Level::DEBUG)
    }
}

/// The one event that ends a sync, inside its span: `sync` (INFO), `sync
/// refused` (INFO, a 4xx, with its `code`) or `sync failed` (ERROR, a 5xx).
/// Without a subscriber (see [`sync_span`]) it also holds what the span
/// holds: request id, owner, status, counts and durations, one line.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) fn sync_ended(request_id: &str, report: &Report, status: u16, code: Option<&str>, duration: std::time::Duration, db: Option<std::time::Duration>) {
    if has_subscriber() {
        match code {
            None => tracing::info!(target: "mobync::fairing", status, "sync"),
            Some(code) if status >= 500 => tracing::error!(target: "mobync::fairing", status, code, "sync failed"),
            Some(code) => tracing::info!(target: "mobync::fairing", status, code, "sync refused"),
        }
        return;
    }
    let duration_ms = duration.as_secs_f64() * 1e3;
    let db_ms = db.map(|db| db.as_secs_f64() * 1e3);
    let owner = report.owner.as_deref();
    let (received, applied, dropped, sent) = (report.received as u64, report.applied_total(), report.dropped_total(), report.sent as u64);
    macro_rules! line {
        ($macro:ident, $message:literal) => {
            tracing::$macro!(
                target: "mobync::fairing",
                status,
                code,
                request_id,
                owner,
                cursor = report.cursor,
                received,
                applied,
                dropped,
                sent,
                clock = report.clock,
                db_ms,
                duration_ms,
                $message
            )
        };
    }
    match code {
        None => line!(info, "sync"),
        Some(_) if status >= 500 => line!(error, "sync failed"),
        Some(_) => line!(info, "sync refused"),
    }
}

/// A new request id: 32 hex digits, random enough to tell requests apart
/// in logs (not a secret).
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        // RandomState is seeded from the OS once per thread, then varies.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(n);
        hasher.write_u64(nanos);
        hasher.write_usize(i);
        hasher.write_u32(std::process::id());
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// A client's request id if it is usable as one (1 to 128 visible ASCII
/// characters), else a new one.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) fn request_id_or_new(given: Option<&str>) -> String {
    match given {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_owned(),
        _ => new_request_id(),
    }
}

/// The filter that Rocket's `log_level` (`ROCKET_LOG_LEVEL`) stands for:
/// `critical` shows errors, `normal` info, `debug` everything, `off`
/// nothing; `info` when unset.
#[cfg_attr(not(feature = "subscriber"), allow(dead_code))]
pub(crate) fn level_of_rocket(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("off") => "off",
        Some("critical") => "error",
        Some("debug") => "debug",
        _ => "info",
    }
}

/// Installs a `tracing` subscriber printing to stderr, filtered by
/// `RUST_LOG` (else by `ROCKET_LOG_LEVEL`: `critical` shows errors,
/// `normal` info, `debug` everything, `off` nothing; else `info`), that also carries the `log` crate's records
/// (Rocket's request lines): the app's whole log is one stream, and every
/// line of a sync says its request id. Call it before building Rocket
/// (Rocket then keeps from installing its own logger). Feature
/// `subscriber`.
///
/// ```no_run
/// mobync::observe::init_logging().expect("no other logger yet");
/// ```
#[cfg(feature = "subscriber")]
pub fn init_logging() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level_of_rocket(std::env::var("ROCKET_LOG_LEVEL").ok().as_deref())));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_usable_and_new_otherwise() {
        assert_eq!(request_id_or_new(Some("abc-123")), "abc-123");
        for bad in [None, Some(""), Some("has space"), Some("é"), Some(&*"x".repeat(129))] {
            let id = request_id_or_new(bad);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn rockets_log_levels_become_filters() {
        assert_eq!(level_of_rocket(Some("critical")), "error");
        assert_eq!(level_of_rocket(Some("Normal")), "info");
        assert_eq!(level_of_rocket(Some("off")), "off");
        assert_eq!(level_of_rocket(None), "info");
    }
}
