//! Conformance scenarios any mobync server must pass, whatever its storage or
//! transport: the worked example of PROTOCOL.md, the Dart client's own
//! integration sequence, and random multi-device runs that must converge.
//!
//! A [`Server`] is anything that syncs a [`SyncRequest`] for a token and can
//! list an owner's rows; the engine over the memory store, the Diesel store on
//! each backend, and the HTTP server all implement it in their tests.
//!
//! The random runs ([`plans`], [`converge`]) check more than agreement: every
//! device's rows must equal a reference model computed from the history of
//! changes alone ([`expected_rows`]), so a rule the server applies wrongly
//! but consistently still fails.

use crate::client::{Device, Rows};
use crate::error::{ErrorKind, SyncError};
use crate::protocol::{Diff, JsonObject, OperationType, SyncRequest, SyncResponse};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

mod plan;
pub use plan::{converge, plans, Plan, Refusal, Step};

/// A server under test.
pub trait Server {
    /// One sync for the owner behind `token`.
    fn sync(&mut self, token: &str, request: &SyncRequest) -> Result<SyncResponse, SyncError>;
    /// The rows the server holds for the owner behind `token`.
    fn rows(&mut self, token: &str) -> Rows;
    /// Everything the server stores (rows of every owner, the diff log, the
    /// clocks, the dropped ids), in a form that compares equal exactly when
    /// nothing changed: a refused sync must leave it as it was.
    fn state(&mut self) -> String;
    /// Compacts the log of the owner behind `token` below a horizon that
    /// `pick` chooses (0 to 255 spread over 0 to the owner's clock), as the
    /// server's operator would; whether this server can (the runs skip the
    /// step where it cannot).
    fn compact(&mut self, token: &str, pick: u8) -> bool {
        let _ = (token, pick);
        false
    }
}

/// The horizon `pick` (0 to 255) chooses below `clock` (see
/// [`Server::compact`]).
pub fn horizon_of(pick: u8, clock: i64) -> i64 {
    clock * i64::from(pick) / 255
}

/// Syncs `device` once and checks that none of its own diffs came back.
pub fn sync(server: &mut dyn Server, token: &str, device: &mut Device) -> SyncResponse {
    let request = device.request(token);
    let answer = server.sync(token, &request).unwrap_or_else(|e| panic!("sync of {} failed: {e}", device.name()));
    let own: HashSet<&str> = device.log().iter().map(|d| d.id.as_str()).collect();
    for diff in &answer.diffs {
        assert!(!own.contains(diff.id.as_str()), "{} got its own diff {} back: {diff:?}", device.name(), diff.id);
    }
    device.receive(&answer);
    answer
}

/// `op:row` of each diff of an answer, the row id without its owner prefix.
fn row_ids(answer: &SyncResponse) -> Vec<String> {
    let short = |id: &str| id.rsplit(':').next().unwrap_or(id).to_owned();
    answer.diffs.iter().map(|d| format!("{}:{}", d.op.as_str(), short(d.row_id()))).collect()
}

/// PROTOCOL.md's worked example, then an update by one device and a delete
/// by the other, as the mobync client's integration test does. `token` must
/// belong to a fresh owner. Panics on any difference.
pub fn worked_example(server: &mut dyn Server, token: &str) {
    // Row ids are unique per model across owners: prefix them per run.
    let prefix = token.chars().filter(char::is_ascii_alphanumeric).take(12).collect::<String>();
    let r = |n: u8| format!("{prefix}:r{n}");
    let mut a = Device::new("A");
    let mut b = Device::new("B");
    a.create("task", &r(1), json!({"title": "one", "done": false}), 1_000);
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (1, vec![]), "A's first sync");

    a.create("task", &r(2), json!({"title": "two", "done": false}), 2_000);
    b.create("task", &r(3), json!({"title": "three", "done": true}), 2_500);
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (2, vec!["create:r1".to_string()]), "B syncs");
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (3, vec!["create:r3".to_string()]), "A syncs");
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (3, vec!["create:r2".to_string()]), "B syncs again");
    assert_eq!(answer.diffs[0].logical_clock, 2, "r2 was stamped 2");
    assert_eq!(a.rows(), b.rows());
    assert_eq!(a.rows().len(), 3);
    assert_eq!(&server.rows(token), a.rows());

    // An update by one device, a delete by the other.
    a.update("task", &r(3), json!({"done": false, "title": "three!"}), 3_000);
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (4, vec![]), "A sends its update");
    b.delete("task", &r(1), 3_100);
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (5, vec!["update:r3".to_string()]), "B deletes r1");
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (5, vec!["delete:r1".to_string()]), "A learns of it");
    assert_eq!(a.rows(), b.rows());
    assert_eq!(&server.rows(token), a.rows());
    assert_eq!(a.rows().len(), 2);
    assert_eq!(a.rows()[&("task".into(), r(3))]["title"], "three!");
}

/// The rows a set of devices of one owner must end up with, computed from
/// the changes they made alone (their logs, without the diffs the server
/// refused and the devices discarded), by PROTOCOL.md's rules:
///
/// - a row exists if it was created and never deleted (deletes win, also
///   against updates made at the same time, and a row created and deleted
///   before it reached the server never existed);
/// - each field holds the value of the update of that field with the
///   greatest (`utc_timestamp`, diff `id`), else the create's value.
///
/// That is the merge's outcome when every change made after a device saw
/// another has a greater timestamp (clocks that never go back, moved past
/// every change a device has received the effect of, also an update folded
/// into its create, whose own timestamp the merge drops) and one device's
/// diff ids sort in the order it made them: both hold for [`converge`]'s runs.
pub fn expected_rows<'a>(history: impl IntoIterator<Item = &'a Diff>) -> Rows {
    type Key = (String, String);
    let mut created: BTreeMap<Key, JsonObject> = BTreeMap::new();
    let mut deleted: HashSet<Key> = HashSet::new();
    let mut newest: HashMap<(Key, String), (i64, &'a str, &'a Value)> = HashMap::new();
    for diff in history {
        let key = (diff.model.clone(), diff.row_id().to_owned());
        match diff.op {
            OperationType::Create => {
                created.insert(key, diff.data.clone());
            }
            OperationType::Delete => {
                deleted.insert(key);
            }
            OperationType::Update => {
                for (field, value) in diff.data.iter().filter(|(field, _)| field.as_str() != "id") {
                    let candidate = (diff.utc_timestamp, diff.id.as_str(), value);
                    let slot = newest.entry((key.clone(), field.clone())).or_insert(candidate);
                    if (candidate.0, candidate.1) > (slot.0, slot.1) {
                        *slot = candidate;
                    }
                }
            }
        }
    }
    for ((key, field), (_, _, value)) in newest {
        if let Some(row) = created.get_mut(&key) {
            row.insert(field, value.clone());
        }
    }
    created.retain(|key, _| !deleted.contains(key));
    created
}

/// A tiny deterministic generator: each device of a test plays its own
/// sequence.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// One random change that device number `d` makes at `now`: a new task
/// `d{d}-row{made}` (counted in `made`), else a new title for one of its
/// rows or a delete of one.
pub fn random_edit(device: &mut Device, rng: &mut Lcg, d: usize, now: i64, made: &mut usize) {
    let rows: Vec<(String, String)> = device.rows().keys().cloned().collect();
    match (rng.next(4), rows.is_empty()) {
        (0, _) | (_, true) => {
            *made += 1;
            device.create("task", &format!("d{d}-row{made}"), json!({"title": format!("t{now}"), "done": false}), now);
        }
        (3, false) => {
            let (model, id) = &rows[rng.next(rows.len())];
            device.delete(model, id, now);
        }
        _ => {
            let (model, id) = &rows[rng.next(rows.len())];
            device.update(model, id, json!({"title": format!("v{d}-{now}")}), now);
        }
    }
}

/// Checks that a refused sync was refused for the reason expected: `kind`,
/// naming the diff `diff_id`.
pub fn assert_refused(err: &SyncError, kind: ErrorKind, diff_id: &str, what: &str) {
    assert_eq!(err.kind, kind, "{what}: refused for the wrong reason: {err}");
    assert_eq!(err.diff_id.as_deref(), Some(diff_id), "{what}: the refusal names the wrong diff: {err}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OperationType::*;

    fn diff(id: &str, op: OperationType, row: &str, fields: Value, ts: i64) -> Diff {
        let mut data = json!({"id": row});
        if let (Some(data), Value::Object(fields)) = (data.as_object_mut(), fields) {
            data.extend(fields);
        }
        Diff::new(id, op, "task", data).at(0, ts)
    }

    #[test]
    fn the_reference_takes_per_field_the_newest_update_then_the_greater_diff_id() {
        let history = [
            diff("a-1", Create, "r1", json!({"title": "first", "done": false}), 1),
            diff("b-2", Update, "r1", json!({"title": "b wins the tie"}), 5),
            diff("a-2", Update, "r1", json!({"title": "a loses the tie", "done": true}), 5),
            diff("c-1", Update, "r1", json!({"title": "older"}), 4),
        ];
        let rows = expected_rows(&history);
        let row = &rows[&("task".to_string(), "r1".to_string())];
        assert_eq!(row["title"], "b wins the tie");
        assert_eq!(row["done"], true);
    }

    #[test]
    fn in_the_reference_deletes_win_and_updates_of_unknown_rows_make_nothing() {
        let history = [
            diff("a-1", Create, "r1", json!({"title": "x", "done": false}), 1),
            diff("b-1", Delete, "r1", json!({}), 2),
            diff("a-2", Update, "r1", json!({"title": "later, still gone"}), 9),
            diff("a-3", Update, "r2", json!({"title": "never created"}), 9),
        ];
        assert!(expected_rows(&history).is_empty());
    }

    #[test]
    fn a_discarded_diff_leaves_the_log_and_the_rows_are_rebuilt_without_it() {
        let mut device = Device::new("d");
        device.create("task", "r1", json!({"title": "one"}), 1);
        let blank = device.update("task", "r1", json!({"title": ""}), 2);
        device.update("task", "r1", json!({"done": true}), 3);
        assert!(device.discard(&blank));
        assert!(!device.discard(&blank));
        assert_eq!(device.log().len(), 2);
        let row = &device.rows()[&("task".to_string(), "r1".to_string())];
        assert_eq!((row["title"].clone(), row["done"].clone()), (json!("one"), json!(true)));
    }

    #[test]
    fn one_devices_diff_ids_sort_in_the_order_it_made_them() {
        let mut device = Device::new("d");
        let ids: Vec<String> = (0..12).map(|i| device.create("task", &format!("r{i}"), json!({}), 1)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
