//! The records of the networks as synced models of mobync: rows of
//! `hub_records`, their fields the record's JSON, checked against the
//! network's schema (a device's refused write is 403); and the listener that
//! turns every applied change of such a row (a device's or a node's) into a
//! message for each other node that reads the network.

use crate::model::{MessageRow, NetworkRow, State};
use crate::{now_ms, sql, Shared};
use mobync::db::LogConnection;
use mobync::{Diff, DynamicModels, JsonObject, OperationType, Owner, SyncError, WriteListener};
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
                let record = Value::Object(fields.clone());
                self.shared.schemas.check(&network.id, &network.json_schema, &record).map_err(|why| fault(SyncError::forbidden(why)))?;
            }
            rows.insert(row, after);
        }
        Ok(())
    }

    fn write_all(&self, conn: &mut C, owner: &O, diffs: &[&Diff]) -> Result<(), SyncError> {
        let key = owner.key();
        for diff in diffs {
            let fault = |err: SyncError| err.with_diff(diff.id.clone());
            let (model, id) = (diff.model.as_str(), diff.row_id());
            let written = match diff.op {
                OperationType::Create => {
                    let fields = apply(None, diff).unwrap_or_default();
                    let text = serde_json::to_string(&fields).map_err(SyncError::internal)?;
                    if !sql::insert_record(conn, model, id, &key, &text).map_err(to_sync)? {
                        return Err(fault(SyncError::invalid_diff(format!("a {model} with id {id:?} already exists"))));
                    }
                    true
                }
                OperationType::Update => match Self::live(conn, &key, model, id)? {
                    Some(before) => {
                        let after = apply(Some(&before), diff).unwrap_or_default();
                        let text = serde_json::to_string(&after).map_err(SyncError::internal)?;
                        sql::write_record(conn, model, id, &key, Some(&text)).map_err(to_sync)?
                    }
                    None => false,
                },
                OperationType::Delete => sql::write_record(conn, model, id, &key, None).map_err(to_sync)?,
            };
            if !written {
                return Err(fault(no_record(diff)));
            }
        }
        Ok(())
    }
}

/// Turns the applied changes of records into messages for the nodes.
pub struct Deliveries<C, O> {
    pub(crate) shared: Arc<Shared<C, O>>,
}

/// What a node is sent for a change: a create's record, an update's
/// changed fields as a JSON merge patch (`null`: removed), `{}` for a
/// delete.
pub fn payload(diff: &Diff) -> Value {
    match diff.op {
        OperationType::Create => Value::Object(apply(None, diff).unwrap_or_default()),
        OperationType::Update => Value::Object(diff.data.iter().filter(|(k, _)| k.as_str() != "id").map(|(k, v)| (k.clone(), v.clone())).collect()),
        OperationType::Delete => Value::Object(JsonObject::new()),
    }
}

impl<C: LogConnection, O: Owner> WriteListener<C, O> for Deliveries<C, O> {
    fn applied(&self, conn: &mut C, owner: &O, diffs: &[Diff]) -> Result<(), SyncError> {
        let key = owner.key();
        let now = now_ms();
        let mut networks = HashMap::new();
        for diff in diffs.iter().filter(|d| !self.shared.is_typed(&d.model)) {
            let Some(network) = network_of(conn, &key, &diff.model, &mut networks)? else { continue };
            // A node's own change: its message is in already (the diff has
            // its id), and the node is not sent it back.
            let origin = sql::message(conn, &diff.id).map_err(to_sync)?.filter(|m| m.destination_id.is_none());
            let origin_node = origin.as_ref().and_then(|m| m.origin_id.clone());
            let payload = serde_json::to_string(&payload(diff)).map_err(SyncError::internal)?;
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
                sql::record_change(conn, &message.id, State::Pending, now, "").map_err(to_sync)?;
            }
        }
        Ok(())
    }
}
