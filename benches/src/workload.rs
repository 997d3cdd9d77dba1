//! What one device of the benchmarks does: local creates and updates of
//! `task` rows through [`mobync::client::Device`] (the Dart client's
//! behaviour: pending diffs, cursor, answers applied only when the clock
//! moves), then a sync.

use crate::net::{post_sync, Outcome};
use crate::{now_ms, Rng};
use mobync::client::Device;
use mobync::{OperationType, SyncResponse};
use serde_json::json;
use std::time::Duration;

/// The `owner` a device puts in its diffs.
pub const OWNER_PLACEHOLDER: &str = "placeholder";

/// A device and the `task` rows it knows of.
pub struct Workload {
    /// The device.
    pub device: Device,
    token: String,
    rng: Rng,
    /// Ids of the `task` rows the device has (its own creates and those it
    /// received), for updates.
    known: Vec<String>,
    prefix: String,
    next_row: u64,
}

impl Workload {
    /// Device `name` (unique among its owner's devices; it prefixes the
    /// diff ids) of the owner of `token`. Row ids are `<row_prefix>-<n>`,
    /// so `row_prefix` must be unique across all devices of the database.
    pub fn new(name: &str, token: &str, seed: u64, row_prefix: &str) -> Self {
        Workload {
            device: Device::new(name),
            token: token.to_owned(),
            rng: Rng::new(seed),
            known: Vec::new(),
            prefix: row_prefix.to_owned(),
            next_row: 0,
        }
    }

    /// One local create of a new task row.
    pub fn create(&mut self) {
        self.next_row += 1;
        let id = format!("{}-{}", self.prefix, self.next_row);
        let title = format!("task {} of {}", self.next_row, self.prefix);
        self.device.create("task", &id, json!({"title": title, "done": false}), now_ms());
        self.known.push(id);
    }

    /// One local update of a random known row (a create if there is none):
    /// its title, or its `done` flag.
    pub fn update(&mut self) {
        if self.known.is_empty() {
            return self.create();
        }
        let id = self.known[self.rng.below(self.known.len())].clone();
        let fields = if self.rng.below(2) == 0 {
            json!({"title": format!("edited {}", self.rng.below(1_000_000))})
        } else {
            json!({"done": self.rng.below(2) == 0})
        };
        self.device.update("task", &id, fields, now_ms());
    }

    /// `n` local changes: each an update with probability `update_ratio`
    /// (when there is a row to update), else a create.
    pub fn changes(&mut self, n: usize, update_ratio: f64) {
        for _ in 0..n {
            if !self.known.is_empty() && self.rng.unit() < update_ratio {
                self.update();
            } else {
                self.create();
            }
        }
    }

    /// The next request, serialized; and how many diffs it carries. Like
    /// the Flutter client, every diff carries a placeholder `owner` (the
    /// server ignores it; mobync 0.2.0 requires a non-empty string there).
    pub fn request_body(&self) -> (Vec<u8>, usize) {
        let mut request = self.device.request(&self.token);
        for diff in &mut request.diffs {
            diff.owner = OWNER_PLACEHOLDER.to_owned();
        }
        let n = request.diffs.len();
        (serde_json::to_vec(&request).expect("a request serializes"), n)
    }

    /// Takes an answer: applies it as the Dart client does and learns the
    /// rows other devices created.
    pub fn receive(&mut self, answer: &SyncResponse) -> bool {
        let applied = self.device.receive(answer);
        if applied {
            for diff in &answer.diffs {
                if diff.op == OperationType::Create && diff.model == "task" {
                    self.known.push(diff.row_id().to_owned());
                }
            }
        }
        applied
    }

    /// Sends the pending diffs to `url`, applies the answer. Returns the
    /// outcome, the latency (send to last byte read), the diffs sent and the
    /// diffs received.
    pub fn sync(&mut self, agent: &ureq::Agent, url: &str) -> SyncResult {
        let (body, up) = self.request_body();
        let (outcome, latency) = post_sync(agent, url, &body);
        let down = match &outcome {
            Outcome::Ok(answer) => {
                self.receive(answer);
                answer.diffs.len()
            }
            _ => 0,
        };
        SyncResult { outcome, latency, up, down }
    }

    /// Moves the device's cursor to `clock` without diffs, as if it had
    /// synced there (for a device placed at the head of a long history).
    pub fn jump_to(&mut self, clock: i64) {
        self.device.receive(&SyncResponse::ok(clock, Vec::new()));
    }
}

/// One sync of a [`Workload`].
#[derive(Debug)]
pub struct SyncResult {
    /// What came back.
    pub outcome: Outcome,
    /// Send to last byte read.
    pub latency: Duration,
    /// Diffs sent.
    pub up: usize,
    /// Diffs received.
    pub down: usize,
}

impl SyncResult {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
}
