//! A device, as the Dart client keeps one: its rows, its diff log, its
//! cursor. Sans-IO: build a request with [`Device::request`], send it however
//! you like, hand the answer to [`Device::receive`]. Tests and tools use it to
//! drive a server the way a phone would.
//!
//! ```
//! use mobync::client::Device;
//! use mobync::memory::{MemoryModels, MemoryStore};
//! use mobync::Mobync;
//! use serde_json::json;
//!
//! let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
//! let mut phone = Device::new("phone");
//! phone.create("task", "r1", json!({"title": "milk"}), 1_000);
//! let req = phone.request("token");
//! let answer = engine.apply(&mut engine.store().conn(), req.logical_clock, req.diffs, &"alice".to_string()).unwrap();
//! assert!(phone.receive(&answer));
//! assert_eq!(phone.cursor(), 1);
//! assert!(phone.pending().is_empty());
//! ```

use crate::protocol::{Diff, JsonObject, OperationType, SyncRequest, SyncResponse};
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows by (model, row id).
pub type Rows = BTreeMap<(String, String), JsonObject>;

/// One device of one owner.
#[derive(Debug, Clone)]
pub struct Device {
    name: String,
    rows: Rows,
    log: Vec<Diff>,
    /// Every diff applied to `rows`, own and received, in order: what
    /// [`Device::discard`] replays.
    applied: Vec<Diff>,
    cursor: i64,
    /// The cursor of the last answer that was not a page: the device's
    /// diffs made since are pending.
    confirmed: i64,
    /// Version 2: the page size it asks for.
    page_size: Option<u64>,
    last_timestamp: i64,
    next_diff: u64,
}

impl Device {
    /// A new device (cursor 0). `name` prefixes its diff ids, so it must be
    /// unique among the owner's devices.
    pub fn new(name: impl Into<String>) -> Self {
        Device {
            name: name.into(),
            rows: Rows::new(),
            log: Vec::new(),
            applied: Vec::new(),
            cursor: 0,
            confirmed: 0,
            page_size: None,
            last_timestamp: 0,
            next_diff: 0,
        }
    }

    /// A device that speaks version 2, asking for pages of at most
    /// `page_size` diffs (PROTOCOL.md, "Version 2").
    ///
    /// ```
    /// use mobync::client::Device;
    /// let phone = Device::new("phone").with_pages(100);
    /// assert_eq!(phone.request("token").page_size, Some(100));
    /// ```
    pub fn with_pages(mut self, page_size: u64) -> Self {
        self.page_size = Some(page_size.max(1));
        self
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cursor: the clock of the last successful sync.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The device's rows.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// Every diff this device made (and did not [discard](Device::discard)).
    pub fn log(&self) -> &[Diff] {
        &self.log
    }

    /// The newest `utc_timestamp` the device has stamped a diff with.
    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// The diffs to send: those made at or after the cursor of the last
    /// answer that was not a page (for version 1, the cursor).
    pub fn pending(&self) -> Vec<Diff> {
        self.log.iter().filter(|d| d.logical_clock >= self.confirmed).cloned().collect()
    }

    /// The next sync request.
    pub fn request(&self, auth_token: &str) -> SyncRequest {
        let pending = self.pending();
        let base_clock = self.page_size.and(pending.iter().map(|d| d.logical_clock).min()).map(|b| b.min(self.cursor));
        SyncRequest {
            auth_token: auth_token.to_owned(),
            logical_clock: self.cursor,
            diffs: pending,
            page_size: self.page_size,
            base_clock,
        }
    }

    /// Takes a sync answer: applies its diffs and stores its clock only when
    /// the clock is past the cursor, as the Dart client does. Returns whether
    /// it did. A page (version 2, `has_more`) is applied, then the pending
    /// diffs again on top of it (an update or delete of a row the device no
    /// longer has is skipped), and they stay pending. A version-2 answer
    /// that is not a page is applied even at the same clock: it may send
    /// again what beat the device's diffs in a page it already applied.
    pub fn receive(&mut self, answer: &SyncResponse) -> bool {
        let version2 = answer.has_more.is_some();
        if answer.logical_clock < self.cursor || (answer.logical_clock == self.cursor && !version2) {
            return false;
        }
        for diff in &answer.diffs {
            apply(&mut self.rows, diff);
            self.applied.push(diff.clone());
        }
        self.cursor = answer.logical_clock;
        if answer.has_more == Some(true) {
            for diff in self.pending() {
                let known = self.rows.contains_key(&(diff.model.clone(), diff.row_id().to_owned()));
                if diff.op == OperationType::Create || known {
                    apply(&mut self.rows, &diff);
                    self.applied.push(diff);
                }
            }
        } else {
            self.confirmed = self.cursor;
        }
        true
    }

    /// Forgets one of this device's own diffs, as an app does with a change
    /// the server refused: it leaves the log (so it is never sent again) and
    /// the rows are rebuilt without it. Returns whether the diff was there.
    pub fn discard(&mut self, diff_id: &str) -> bool {
        let before = self.log.len();
        self.log.retain(|d| d.id != diff_id);
        if self.log.len() == before {
            return false;
        }
        self.applied.retain(|d| d.id != diff_id);
        self.rows = Rows::new();
        for diff in &self.applied {
            apply(&mut self.rows, diff);
        }
        true
    }

    /// Creates a row locally; returns the diff id.
    pub fn create(&mut self, model: &str, id: &str, fields: Value, utc_timestamp: i64) -> String {
        self.change(OperationType::Create, model, id, fields, utc_timestamp)
    }

    /// Changes fields of a local row; returns the diff id.
    pub fn update(&mut self, model: &str, id: &str, fields: Value, utc_timestamp: i64) -> String {
        self.change(OperationType::Update, model, id, fields, utc_timestamp)
    }

    /// Deletes a local row; returns the diff id.
    pub fn delete(&mut self, model: &str, id: &str, utc_timestamp: i64) -> String {
        self.change(OperationType::Delete, model, id, Value::Null, utc_timestamp)
    }

    /// Logs and applies one local change of the row `id` of `model`.
    fn change(&mut self, op: OperationType, model: &str, id: &str, fields: Value, ts: i64) -> String {
        let mut data = JsonObject::new();
        data.insert("id".into(), Value::String(id.to_owned()));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        self.record(op, model, data, ts)
    }

    fn record(&mut self, op: OperationType, model: &str, data: JsonObject, utc_timestamp: i64) -> String {
        // A device's clock never goes backwards.
        self.last_timestamp = self.last_timestamp.max(utc_timestamp);
        self.next_diff += 1;
        // Zero-padded, so that one device's diff ids sort in the order it
        // made them (the merge breaks timestamp ties by diff id).
        let id = format!("{}-{:06}", self.name, self.next_diff);
        let diff = Diff {
            id: id.clone(),
            owner: String::new(),
            logical_clock: self.cursor,
            utc_timestamp: self.last_timestamp,
            op,
            model: model.to_owned(),
            data,
        };
        apply(&mut self.rows, &diff);
        self.applied.push(diff.clone());
        self.log.push(diff);
        id
    }
}

/// Applies one diff to a set of rows, as a client does.
pub fn apply(rows: &mut Rows, diff: &Diff) {
    let key = (diff.model.clone(), diff.row_id().to_owned());
    match diff.op {
        OperationType::Create => {
            rows.insert(key, diff.data.clone());
        }
        OperationType::Update => {
            if let Some(row) = rows.get_mut(&key) {
                for (field, value) in diff.data.iter().filter(|(k, _)| k.as_str() != "id") {
                    row.insert(field.clone(), value.clone());
                }
            }
        }
        OperationType::Delete => {
            rows.remove(&key);
        }
    }
}
