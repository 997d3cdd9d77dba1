//! The records of the networks as synced models of mobync: rows of
//! `hub_records`, their fields the record's JSON, checked against the
//! network's schema (a device's refused write is 403). Every applied change
//! of such a row (a device's or a node's) becomes, as it is written, a
//! message for each other node that reads the network.

use crate::model::{MessageRow, NetworkRow, State};
use crate::{sql, Shared};
use mobync::db::LogConnection;
use mobync::observe::Report;
use mobync::{Diff, DynamicModels, JsonObject, OperationType, Owner, SyncError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A record's fields after `diff` changed `before` (`None`: it is gone):
/// a create's fields, an update's fields set (a `null` removes one, as in
/// a JSON merge patch), nothing after a delete. `id` is never a field.
pub fn apply(before: Option<&JsonObject>, diff: &Diff) -> Option<JsonObject> {
    let mut fields = match diff.op {
        OperationType::Delete => return None,
        OperationType::Create => JsonObject::new(),
        OperationType::Update => before.cloned().unwrap_or_default(),
    };
    for (key, value) in diff.data.iter().filter(|(key, _)| key.as_str() != "id") {
        if value.is_null() {
            fields.remove(key);
        } else {
            fields.insert(key.clone(), value.clone());
        }
    }
    Some(fields)
}

/// Whether a record's property is renamed in its row: `id` names the row,
/// so a record's own `id` is the row's field `_id`, its `_id` is `__id`,
/// and so on.
fn renamed(name: &str) -> bool {
    name.trim_start_matches('_') == "id"
}

/// A record's properties as its row's fields (see [`to_record`]).
///
/// ```
/// use serde_json::json;
/// let record = json!({"id": "A-1", "_id": 2, "name": "Ada"}).as_object().unwrap().clone();
/// let fields = mobync_hub::to_fields(&record);
/// assert_eq!(serde_json::Value::Object(fields.clone()), json!({"_id": "A-1", "__id": 2, "name": "Ada"}));
/// assert_eq!(mobync_hub::to_record(&fields), record);
/// ```
pub fn to_fields(record: &JsonObject) -> JsonObject {
    record.iter().map(|(k, v)| (if renamed(k) { format!("_{k}") } else { k.clone() }, v.clone())).collect()
}

/// A row's fields as the record's properties: what a node sends and gets.
/// A record may hold an `id` property (its data, as in jim8786453/sync);
/// the row keeps it as `_id` (any run of `_` before `id` gains one), since
/// the row's `id` is the record's id (`record_id`).
pub fn to_record(fields: &JsonObject) -> JsonObject {
    fields.iter().map(|(k, v)| (if renamed(k) && k.starts_with('_') { k[1..].to_owned() } else { k.clone() }, v.clone())).collect()
}

/// The network of `owner`'s `model`, looked up once per sync (`found`).
fn network_of<C: LogConnection>(
    conn: &mut C,
    owner: &str,
    model: &str,
    found: &mut HashMap<String, Option<NetworkRow>>,
) -> Result<Option<NetworkRow>, SyncError> {
    if let Some(known) = found.get(model) {
        return Ok(known.clone());
    }
    let network = sql::network_of(conn, owner, model).map_err(to_sync)?;
    found.insert(model.to_owned(), network.clone());
    Ok(network)
}

fn to_sync(err: crate::HubError) -> SyncError {
    match err.status {
        503 => SyncError::unavailable(err.message),
        _ => SyncError::internal(err.message),
    }
}

/// The records' model: every model name a network has for its owner.
pub struct Records<C, O> {
    pub(crate) shared: Arc<Shared<C, O>>,
}

impl<C: LogConnection, O: Owner> Records<C, O> {
    /// `owner`'s live record, if it has it.
    fn live(conn: &mut C, owner: &str, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError> {
        let row = sql::record(conn, model, id).map_err(to_sync)?;
        Ok(row.filter(|r| r.owner == owner).and_then(|r| r.fields()))
    }
}

fn no_record(diff: &Diff) -> SyncError {
    SyncError::invalid_diff(format!("there is no {} with id {:?}", diff.model, diff.row_id()))
}

impl<C: LogConnection, O: Owner> DynamicModels<C, O> for Records<C, O> {
    fn check(&self, _diff: &Diff) -> Result<(), SyncError> {
        // Any fields: the network's schema decides, with the database.
        Ok(())
    }

    fn read(&self, conn: &mut C, owner: &O, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError> {
        Ok(Self::live(conn, &owner.key(), model, id)?.map(|fields| {
            let mut row = JsonObject::new();
            row.insert("id".into(), Value::String(id.to_owned()));
            row.extend(fields);
            row
        }))
    }

    fn validate_all(&self, conn: &mut C, owner: &O, diffs: &[&Diff]) -> Result<(), SyncError> {
        let key = owner.key();
        let mut rows: HashMap<(String, String), Option<JsonObject>> = HashMap::new();
        let mut networks = HashMap::new();
        for diff in diffs {
            let fault = |err: SyncError| err.with_diff(diff.id.clone());
            let network = network_of(conn, &key, &diff.model, &mut networks)?;
            let network = network.ok_or_else(|| fault(SyncError::invalid_diff(format!("unknown model {:?}", diff.model))))?;
            let row = (diff.model.clone(), diff.row_id().to_owned());
            let before = match rows.get(&row) {
                Some(known) => known.clone(),
                None if diff.op == OperationType::Create => None,
                None => Self::live(conn, &key, &diff.model, diff.row_id())?,
            };
            if diff.op != OperationType::Create && before.is_none() {
                return Err(fault(no_record(diff)));
            }
            let after = apply(before.as_ref(), diff);
            if let Some(fields) = &after {
                let record = Value::Object(to_record(fields));
                self.shared.schemas.check(&network.id, &network.json_schema, &record).map_err(|why| fault(SyncError::forbidden(why)))?;
            }
            rows.insert(row, after);
        }
        Ok(())
    }

    /// Writes each change, and queues it as a message for the nodes: here,
    /// where the record before the change is known, so that an update's
    /// message is the merge patch from the record the nodes have to the new
    /// one (whole field values would leave keys removed inside an object).
    fn write_all(&self, conn: &mut C, owner: &O, diffs: &[&Diff]) -> Result<(), SyncError> {
        self.write_all_noting(conn, owner, diffs, &mut Report::default())
    }

    /// [`write_all`](DynamicModels::write_all), the messages queued tallied
    /// in `noted` (the engine's report of the sync, emitted once its
    /// transaction committed).
    fn write_all_noting(&self, conn: &mut C, owner: &O, diffs: &[&Diff], noted: &mut Report) -> Result<(), SyncError> {
        let key = owner.key();
        let mut networks = HashMap::new();
        for diff in diffs {
            let fault = |err: SyncError| err.with_diff(diff.id.clone());
            let (model, id) = (diff.model.as_str(), diff.row_id());
            let payload = match diff.op {
                OperationType::Create => {
                    let fields = apply(None, diff).unwrap_or_default();
                    let text = serde_json::to_string(&fields).map_err(SyncError::internal)?;
                    if !sql::insert_record(conn, model, id, &key, &text).map_err(to_sync)? {
                        return Err(fault(SyncError::invalid_diff(format!("a {model} with id {id:?} already exists"))));
                    }
                    to_record(&fields)
                }
                OperationType::Update => {
                    let before = Self::live(conn, &key, model, id)?.ok_or_else(|| fault(no_record(diff)))?;
                    let after = apply(Some(&before), diff).unwrap_or_default();
                    let text = serde_json::to_string(&after).map_err(SyncError::internal)?;
                    if !sql::write_record(conn, model, id, &key, Some(&text)).map_err(to_sync)? {
                        return Err(fault(no_record(diff)));
                    }
                    let patch = merge_patch(&before, &after);
                    if patch.is_empty() {
                        // The record is as it was: a phone's change is
                        // nothing to tell; a node's is told (as in
                        // jim8786453/sync, every update a node sends
                        // reaches the others), as the empty patch.
                        deliver(conn, &key, diff, &JsonObject::new(), &mut networks, self.shared.now(), true, noted)?;
                        continue;
                    }
                    to_record(&patch)
                }
                OperationType::Delete => {
                    if !sql::write_record(conn, model, id, &key, None).map_err(to_sync)? {
                        return Err(fault(no_record(diff)));
                    }
                    JsonObject::new()
                }
            };
            deliver(conn, &key, diff, &payload, &mut networks, self.shared.now(), false, noted)?;
        }
        Ok(())
    }
}

/// The JSON merge patch (RFC 7396) that turns `before` into `after`: a
/// removed field is `null`, an object field changed inside is the patch of
/// its inside, any other changed field its new value; `{}` if they are equal.
/// (As RFC 7396 has it, a `null` inside a new object value cannot be told
/// apart from a removal.)
///
/// ```
/// use serde_json::json;
/// let object = |v: serde_json::Value| v.as_object().unwrap().clone();
/// let before = object(json!({"name": "Ada", "tags": {"x": 1, "y": {"z": 1, "w": 2}}, "age": 36}));
/// let after = object(json!({"name": "Ada", "tags": {"x": 1, "y": {"w": 2}}}));
/// let patch = mobync_hub::merge_patch(&before, &after);
/// assert_eq!(serde_json::Value::Object(patch.clone()), json!({"tags": {"y": {"z": null}}, "age": null}));
/// let mut applied = serde_json::Value::Object(before);
/// json_patch::merge(&mut applied, &serde_json::Value::Object(patch));
/// assert_eq!(applied, serde_json::Value::Object(after));
/// ```
pub fn merge_patch(before: &JsonObject, after: &JsonObject) -> JsonObject {
    let mut patch = JsonObject::new();
    for key in before.keys().filter(|key| !after.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, new) in after {
        match (before.get(key), new) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                patch.insert(key.clone(), Value::Object(merge_patch(old, new)));
            }
            _ => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    patch
}

/// Queues what a node is sent for an applied change of a record (`payload`:
/// a create's record, an update's merge patch, `{}` for a delete) for each
/// node that reads its network, except the node the change came from;
/// nothing if `only_a_nodes` and the change is not a node's. Each message
/// is tallied in `noted`.
#[allow(clippy::too_many_arguments)]
fn deliver<C: LogConnection>(
    conn: &mut C,
    owner: &str,
    diff: &Diff,
    payload: &JsonObject,
    networks: &mut HashMap<String, Option<NetworkRow>>,
    now: i64,
    only_a_nodes: bool,
    noted: &mut Report,
) -> Result<(), SyncError> {
    let Some(network) = network_of(conn, owner, &diff.model, networks)? else { return Ok(()) };
    // A node's own change: its message is in already (the diff has its
    // id), and the node is not sent it back.
    let origin = sql::message(conn, &diff.id).map_err(to_sync)?.filter(|m| m.destination_id.is_none());
    if only_a_nodes && origin.is_none() {
        return Ok(());
    }
    let origin_node = origin.as_ref().and_then(|m| m.origin_id.clone());
    let payload = serde_json::to_string(payload).map_err(SyncError::internal)?;
    for node in sql::nodes(conn, &network.id).map_err(to_sync)? {
        if !node.can_read || Some(&node.id) == origin_node.as_ref() {
            continue;
        }
        let message = MessageRow {
            seq: 0,
            id: crate::new_id(),
            network_id: network.id.clone(),
            origin_id: origin_node.clone(),
            destination_id: Some(node.id.clone()),
            parent_id: origin.as_ref().map(|m| m.id.clone()),
            method: diff.op.as_str().to_owned(),
            payload: payload.clone(),
            record_id: diff.row_id().to_owned(),
            remote_id: None,
            state: State::Pending.as_str().to_owned(),
            created_at: now,
            lease_until: None,
        };
        sql::insert_message(conn, &message).map_err(to_sync)?;
        sql::record_change(conn, &message.id, State::Pending, now, "", noted).map_err(to_sync)?;
    }
    Ok(())
}
