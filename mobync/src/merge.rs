//! The merge of PROTOCOL.md: a pure, deterministic function of the owner's
//! stored diffs since the client's cursor (S) and the client's diffs (L).
//!
//! No database, clock or randomness in here: the same S and L always give the
//! same [`Merge`]. Rows are identified by (`model`, row `id`); updates merge
//! per field, last writer wins by (`utc_timestamp`, diff `id`).
//!
//! ```
//! use mobync::merge::merge;
//! use mobync::protocol::{Diff, OperationType::*};
//! use serde_json::json;
//!
//! let server = [Diff::new("s1", Update, "task", json!({"id": "r1", "title": "old"})).at(0, 10)];
//! let local = [Diff::new("l1", Update, "task", json!({"id": "r1", "title": "new"})).at(0, 20)];
//! let out = merge(&server, &local);
//! assert_eq!(out.apply[0].id, "l1"); // newer: applied on the server
//! assert!(out.send.is_empty());     // and the older value is not sent back
//! ```

use crate::protocol::{Diff, JsonObject, OperationType};
use std::collections::{HashMap, HashSet};

/// What a merge decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merge {
    /// U: the diffs to apply and store on the server, in request order.
    pub apply: Vec<Diff>,
    /// D: the stored diffs to send to the client, in the order they were accepted.
    pub send: Vec<Diff>,
}

type RowKey = (String, String);

fn row_key(diff: &Diff) -> RowKey {
    (diff.model.clone(), diff.row_id().to_owned())
}

/// The fields an update changes: every key of `json_data` but `id`.
fn fields(data: &JsonObject) -> impl Iterator<Item = &String> {
    data.keys().filter(|key| key.as_str() != "id")
}

fn has_fields(data: &JsonObject) -> bool {
    fields(data).next().is_some()
}

/// Last-writer-wins order of two updates: newer `utc_timestamp`, then the
/// greater diff `id`.
fn newer(a: &Diff, b: &Diff) -> bool {
    (a.utc_timestamp, a.id.as_str()) > (b.utc_timestamp, b.id.as_str())
}

/// Merges the stored diffs `server` (S, in accepted order, the client's own
/// diffs already left out) with the client's diffs `local` (L, in request
/// order), following the eight steps of PROTOCOL.md.
pub fn merge(server: &[Diff], local: &[Diff]) -> Merge {
    merge_retried(server, local, &HashMap::new())
}

/// [`merge`] for a retried request: `applied` maps the ids of its diffs that
/// an earlier request already got applied to the stamp they were stored
/// with. Such a diff takes part only against the stored diffs stamped before
/// it (those it met the first time), so that what it beat is not sent back
/// while what other devices did since is; and a create in `applied` is a row
/// the server has: later updates are not folded into it, nor a later delete
/// cancelled against it.
pub(crate) fn merge_retried(server: &[Diff], local: &[Diff], applied: &HashMap<String, i64>) -> Merge {
    merge_owned(server.to_vec(), local.to_vec(), applied)
}

/// [`merge_retried`] taking its diffs by value: the stored diffs that reach
/// D are moved there, never copied (an owner's whole log may be in S).
pub(crate) fn merge_owned(server: Vec<Diff>, local: Vec<Diff>, applied: &HashMap<String, i64>) -> Merge {
    let l_rows: Vec<RowKey> = local.iter().map(row_key).collect();
    // A stored diff on a row the request does not touch goes to D as it is:
    // only the others take part in the steps below.
    let touched: HashSet<(&str, &str)> = l_rows.iter().map(|(m, id)| (m.as_str(), id.as_str())).collect();
    let mut order: Vec<Option<Diff>> = Vec::with_capacity(server.len());
    let mut s_rows: Vec<RowKey> = Vec::new();
    let mut s: Vec<Option<Diff>> = Vec::new();
    for diff in server {
        if touched.contains(&(diff.model.as_str(), diff.row_id())) {
            s_rows.push(row_key(&diff));
            s.push(Some(diff));
            order.push(None);
        } else {
            order.push(Some(diff));
        }
    }
    let mut l: Vec<Option<Diff>> = local.into_iter().map(Some).collect();

    deletes_win(&s_rows, &mut s, &l_rows, &mut l, applied);
    collapse_local_updates(&l_rows, &mut l);
    fold_updates_into_creates(&l_rows, &mut l, applied);
    // Steps 4 and 5: creates stay where they are (S creates go to D, L
    // creates to U).
    concurrent_field_updates(&s_rows, &mut s, &l_rows, &mut l, applied);
    // Step 7: what is left goes out, in accepted order; an update left with
    // no field vanishes.
    let keep = |d: &Diff| d.op != OperationType::Update || has_fields(&d.data);
    let mut merged = s.into_iter();
    let send = order.into_iter().filter_map(|slot| slot.or_else(|| merged.next().flatten())).filter(keep).collect();
    Merge { apply: l.into_iter().flatten().filter(keep).collect(), send }
}

fn op_at(slots: &[Option<Diff>], i: usize) -> Option<OperationType> {
    slots[i].as_ref().map(|d| d.op)
}

/// Whether `l[i]` is a create the server has not applied yet.
fn new_create(l: &[Option<Diff>], i: usize, applied: &HashMap<String, i64>) -> bool {
    l[i].as_ref().is_some_and(|d| d.op == OperationType::Create && !applied.contains_key(&d.id))
}

/// The stored diffs a local diff takes part against: those stamped before
/// it was applied, or all of them for a diff the server has not seen.
fn stamp_limit(local: &Diff, applied: &HashMap<String, i64>) -> i64 {
    applied.get(&local.id).copied().unwrap_or(i64::MAX)
}

/// Step 1: deletes win.
fn deletes_win(
    s_rows: &[RowKey],
    s: &mut [Option<Diff>],
    l_rows: &[RowKey],
    l: &mut [Option<Diff>],
    applied: &HashMap<String, i64>,
) {
    let server_deleted: HashSet<&RowKey> = (0..s.len())
        .filter(|&i| op_at(s, i) == Some(OperationType::Delete))
        .map(|i| &s_rows[i])
        .collect();
    for (i, row) in l_rows.iter().enumerate() {
        if server_deleted.contains(row) {
            l[i] = None;
        }
    }

    let locally_created: HashSet<&RowKey> =
        (0..l.len()).filter(|&i| new_create(l, i, applied)).map(|i| &l_rows[i]).collect();
    let mut first_delete: HashMap<&RowKey, (usize, i64)> = HashMap::new();
    for (i, slot) in l.iter().enumerate() {
        if let Some(d) = slot.as_ref().filter(|d| d.op == OperationType::Delete) {
            first_delete.entry(&l_rows[i]).or_insert((i, stamp_limit(d, applied)));
        }
    }
    for (i, row) in l_rows.iter().enumerate() {
        if let Some(&(delete, _)) = first_delete.get(row) {
            // A row created and deleted in the same request never reached
            // the server: the whole row cancels. Otherwise the delete stays.
            if locally_created.contains(row) || i != delete {
                l[i] = None;
            }
        }
    }
    for (j, row) in s_rows.iter().enumerate() {
        let Some(&(_, limit)) = first_delete.get(row) else { continue };
        if !locally_created.contains(row) && s[j].as_ref().is_some_and(|d| d.logical_clock < limit) {
            s[j] = None;
        }
    }
}

/// Step 2: per row and field, only the newest local value survives (equal
/// timestamps: the later diff in the request).
fn collapse_local_updates(l_rows: &[RowKey], l: &mut [Option<Diff>]) {
    let mut newest: HashMap<(&RowKey, &str), (i64, usize)> = HashMap::new();
    for (i, slot) in l.iter().enumerate() {
        let Some(d) = slot.as_ref().filter(|d| d.op == OperationType::Update) else { continue };
        for field in fields(&d.data) {
            let entry = newest.entry((&l_rows[i], field.as_str())).or_insert((d.utc_timestamp, i));
            if d.utc_timestamp >= entry.0 {
                *entry = (d.utc_timestamp, i);
            }
        }
    }
    let winners: HashSet<(usize, String)> =
        newest.into_iter().map(|((_, field), (_, i))| (i, field.to_owned())).collect();
    for (i, slot) in l.iter_mut().enumerate() {
        if let Some(d) = slot.as_mut().filter(|d| d.op == OperationType::Update) {
            d.data.retain(|key, _| key == "id" || winners.contains(&(i, key.clone())));
        }
    }
}

/// Step 3: updates of a row the request creates merge into that create.
fn fold_updates_into_creates(l_rows: &[RowKey], l: &mut [Option<Diff>], applied: &HashMap<String, i64>) {
    let mut creates: HashMap<&RowKey, usize> = HashMap::new();
    for i in 0..l.len() {
        if new_create(l, i, applied) {
            creates.entry(&l_rows[i]).or_insert(i);
        }
    }
    for i in 0..l.len() {
        if op_at(l, i) != Some(OperationType::Update) {
            continue;
        }
        let Some(&create) = creates.get(&l_rows[i]) else { continue };
        let Some(update) = l[i].take() else { continue };
        if let Some(created) = l[create].as_mut() {
            for (key, value) in update.data.into_iter().filter(|(key, _)| key != "id") {
                created.data.insert(key, value);
            }
        }
    }
}

/// Step 6: a local field update wins only if it is newer than every stored
/// update of that field; then the field leaves those stored updates.
fn concurrent_field_updates(
    s_rows: &[RowKey],
    s: &mut [Option<Diff>],
    l_rows: &[RowKey],
    l: &mut [Option<Diff>],
    applied: &HashMap<String, i64>,
) {
    let mut stored: HashMap<(&RowKey, String), Vec<usize>> = HashMap::new();
    for (j, slot) in s.iter().enumerate() {
        let Some(d) = slot.as_ref().filter(|d| d.op == OperationType::Update) else { continue };
        for field in fields(&d.data) {
            stored.entry((&s_rows[j], field.clone())).or_default().push(j);
        }
    }
    for (i, slot) in l.iter_mut().enumerate() {
        let Some(local) = slot.as_mut().filter(|d| d.op == OperationType::Update) else { continue };
        let limit = stamp_limit(local, applied);
        let changed: Vec<String> = fields(&local.data).cloned().collect();
        for field in changed {
            let Some(all) = stored.get(&(&l_rows[i], field.clone())) else { continue };
            let rivals: Vec<usize> =
                all.iter().copied().filter(|&j| s[j].as_ref().is_some_and(|d| d.logical_clock < limit)).collect();
            let wins = rivals.iter().all(|&j| s[j].as_ref().map_or(true, |remote| newer(local, remote)));
            if wins {
                for &j in &rivals {
                    if let Some(remote) = s[j].as_mut() {
                        remote.data.shift_remove(&field);
                    }
                }
            } else {
                local.data.shift_remove(&field);
            }
        }
    }
}

#[cfg(test)]
mod tests;
