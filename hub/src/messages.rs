//! The messaging side: a node sends a change, fetches the next message for
//! it, acknowledges or fails it, counts what waits. Each call is one write
//! transaction; time is an argument (`now`, ms since the epoch), so leases
//! can be tested with a clock of the test's own.

use crate::model::{Method, MessageRow, NetworkRow, NodeRow, State};
use crate::{new_id, sql, Engine, HubError, Shared, Step};
use mobync::Store;
use mobync::db::LogConnection;
use mobync::observe::Report;
use mobync::{Diff, JsonObject, OperationType, Owner};
use serde_json::{Map, Value};

/// What a node sends: `{"method", "payload", "record_id"?, "remote_id"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What it does.
    pub method: Method,
    /// The record (create), a JSON merge patch (update), anything (delete).
    pub payload: Option<Map<String, Value>>,
    /// The hub's id of the record (not for creates).
    pub record_id: Option<String>,
    /// The node's own id of the record.
    pub remote_id: Option<String>,
}

impl Change {
    /// Reads a request body; a malformed one is 400.
    pub fn parse(body: &Value) -> Result<Change, HubError> {
        let object = body.as_object().ok_or_else(|| HubError::bad_request("the body must be a JSON object"))?;
        if let Some(key) = object.keys().find(|k| !["method", "payload", "record_id", "remote_id"].contains(&k.as_str())) {
            return Err(HubError::bad_request(format!("unknown field {key:?}")));
        }
        let method = match object.get("method") {
            Some(Value::String(name)) => Method::parse(name)
                .ok_or_else(|| HubError::bad_request(format!("`method` must be create, update or delete, not {name:?}")))?,
            _ => return Err(HubError::bad_request("`method` is required: create, update or delete")),
        };
        let payload = match object.get("payload") {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => return Err(HubError::bad_request("`payload` must be a JSON object")),
        };
        let text = |key: &str| -> Result<Option<String>, HubError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
                Some(_) => Err(HubError::bad_request(format!("`{key}` must be a non-empty string of at most 255 bytes"))),
            }
        };
        Ok(Change { method, payload, record_id: text("record_id")?, remote_id: text("remote_id")? })
    }
}

impl<C: LogConnection, O: Owner + std::str::FromStr> Shared<C, O> {
    /// The owner of a network, in the app's type.
    pub(crate) fn owner_of(&self, network: &NetworkRow) -> Result<O, HubError> {
        network.owner.parse::<O>().map_err(|_| HubError::internal(format!("network {} has owner {:?}", network.id, network.owner)))
    }

    /// A node's change: checked (the method, the record, the node's
    /// flags and pending messages), applied through the engine as a diff of
    /// the network's owner (its devices get it on their next sync; the
    /// schema is checked there), turned into a message for each other node
    /// that reads the network, and answered as the sent message,
    /// acknowledged. One transaction.
    pub fn send(&self, engine: &Engine<C, O>, conn: &mut C, network: &NetworkRow, node: &NodeRow, send: Change, now: i64) -> Result<Value, HubError> {
        self.send_once(engine, conn, network, node, send, None, now)
    }

    /// [`send`](Shared::send) with the node's `Idempotency-Key`, if it gave
    /// one: a send with a key the node used within `idempotency` (`(key,
    /// window in ms)`) before is answered with the first send's message
    /// again and changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn send_once(
        &self,
        engine: &Engine<C, O>,
        conn: &mut C,
        network: &NetworkRow,
        node: &NodeRow,
        send: Change,
        idempotency: Option<(&str, i64)>,
        now: i64,
    ) -> Result<Value, HubError> {
        if let Some((key, _)) = idempotency {
            if key.is_empty() || key.len() > 255 {
                return Err(HubError::bad_request("`Idempotency-Key` must be 1 to 255 bytes"));
            }
        }
        engine.store().transaction_noting(conn, |conn, noted| {
            // The owner's lock first: the record is read and the patch
            // merged under it, so no change of the owner (a phone's sync,
            // another node's send) commits between this read and this
            // write; two sends with one key take turns on it too.
            engine.store().lock_clock(conn, &network.owner)?;
            if let Some((key, window)) = idempotency {
                if let Some(id) = sql::idempotent(conn, &node.id, key, now - window)? {
                    match sql::message(conn, &id)? {
                        Some(first) => return Ok(first.json(None)),
                        // Pruned (a retention shorter than the window):
                        // the key is forgotten with it.
                        None => sql::forget_key(conn, &node.id, key)?,
                    }
                }
            }
            let answer = self.send_in(engine, conn, network, node, send, now, noted)?;
            if let (Some((key, _)), Some(id)) = (idempotency, answer["id"].as_str()) {
                sql::remember_idempotent(conn, &node.id, key, id, now)?;
            }
            Ok(answer)
        })
    }

    /// [`send`](Shared::send) in its transaction, tallying in `noted`.
    #[allow(clippy::too_many_arguments)]
    fn send_in(
        &self,
        engine: &Engine<C, O>,
        conn: &mut C,
        network: &NetworkRow,
        node: &NodeRow,
        send: Change,
        now: i64,
        noted: &mut Report,
    ) -> Result<Value, HubError> {
        if matches!(send.method, Method::Create | Method::Update) && send.payload.is_none() {
            return Err(HubError::bad_request(format!("a {} needs a `payload`", send.method.as_str())));
        }
        // The record: a new one, or the one named.
        let (record_id, before) = match send.method {
            Method::Create => {
                if send.record_id.is_some() {
                    return Err(HubError::bad_request("creates take no `record_id`: the hub names the new record"));
                }
                if let Some(remote) = &send.remote_id {
                    if sql::record_of(conn, &node.id, remote)?.is_some() {
                        return Err(HubError::bad_request(format!("create of an existing record: remote_id {remote:?} names one")));
                    }
                }
                (new_id(), None)
            }
            Method::Update | Method::Delete => {
                let id = match (&send.record_id, &send.remote_id) {
                    (Some(id), _) => Some(id.clone()),
                    (None, Some(remote)) => sql::record_of(conn, &node.id, remote)?,
                    (None, None) => return Err(HubError::bad_request("an update or delete names its record: `record_id` or `remote_id`")),
                };
                let row = match id {
                    Some(id) => sql::record(conn, &network.model, &id)?.filter(|r| r.owner == network.owner),
                    None => None,
                };
                let row = row.ok_or_else(|| HubError::bad_request("unknown record"))?;
                (row.id.clone(), Some(row))
            }
        };
        if network.fetch_before_send && sql::deliverable(conn, &node.id, now)? > 0 {
            return Err(HubError::bad_request("the node has pending messages that it must fetch first"));
        }
        if !node.may(send.method) {
            return Err(HubError::bad_request(format!("the node does not have permission to {}", send.method.as_str())));
        }
        let current = match &before {
            Some(row) => Some(row.fields().ok_or_else(|| HubError::bad_request("a change to a deleted record"))?),
            None => None,
        };
        // The payload is the record's properties; the row's fields hold its
        // own `id` renamed (see `to_record`).
        let patch = send.payload.as_ref().map(crate::to_fields);
        let diff = self.diff(network, &record_id, send.method, current, patch.as_ref(), now)?;
        self.step(Step::SendRead);
        let sent = MessageRow {
            seq: 0,
            id: diff.id.clone(),
            network_id: network.id.clone(),
            origin_id: Some(node.id.clone()),
            destination_id: None,
            parent_id: None,
            method: send.method.as_str().to_owned(),
            payload: serde_json::to_string(&send.payload.clone().unwrap_or_default()).map_err(HubError::internal)?,
            record_id: record_id.clone(),
            remote_id: send.remote_id.clone(),
            state: State::Processing.as_str().to_owned(),
            created_at: now,
            lease_until: None,
        };
        sql::insert_message(conn, &sent)?;
        sql::record_change(conn, &sent.id, State::Processing, now, "", noted)?;
        let owner = self.owner_of(network)?;
        let mut report = mobync::observe::Report::default();
        let mut answer = mobync::protocol::SyncResponse::ok(0, Vec::new());
        engine.run(conn, mobync::engine::Request::within_transaction(&owner, vec![diff]), &mut answer, &mut report)?;
        // Counted with this transaction's work, once it committed.
        noted.absorb(report);
        if let Some(remote) = &send.remote_id {
            sql::map_remote(conn, &node.id, remote, &record_id)?;
        }
        sql::set_state(conn, &sent.id, State::Acknowledged, None, now, "", noted)?;
        let sent = MessageRow { state: State::Acknowledged.as_str().to_owned(), ..sent };
        Ok(sent.json(None))
    }

    /// The diff of a node's change: a create's record (a merge patch on
    /// nothing: its `null`s dropped), an update's changed top-level fields
    /// after the merge patch (`null`: removed), a delete.
    fn diff(
        &self,
        network: &NetworkRow,
        record_id: &str,
        method: Method,
        current: Option<Map<String, Value>>,
        patch: Option<&Map<String, Value>>,
        now: i64,
    ) -> Result<Diff, HubError> {
        let mut data = JsonObject::new();
        data.insert("id".into(), Value::String(record_id.to_owned()));
        let op = match method {
            Method::Create => OperationType::Create,
            Method::Update => OperationType::Update,
            Method::Delete => OperationType::Delete,
        };
        if let (Some(patch), false) = (patch, method == Method::Delete) {
            let mut merged = Value::Object(current.unwrap_or_default());
            json_patch::merge(&mut merged, &Value::Object(patch.clone()));
            let Value::Object(merged) = merged else { return Err(HubError::internal("a merge patch of an object is an object")) };
            match method {
                Method::Create => data.extend(merged),
                _ => data.extend(patch.keys().map(|k| (k.clone(), merged.get(k).cloned().unwrap_or(Value::Null)))),
            }
        }
        Ok(Diff::new(new_id(), op, network.model.clone(), Value::Object(data)).at(0, now))
    }

    /// The node's next message, in the order the changes were accepted
    /// (pending, or fetched before and not answered within its lease),
    /// leased to this fetch until `now + lease_ms`; a message waits while
    /// an earlier one of its record is unanswered by the node, so a
    /// record's changes reach it in order, one at a time (other records'
    /// go on meanwhile). `None` when nothing may go now. One transaction,
    /// under the node's lock: another fetcher of the node, in this process
    /// or another, never gets the same message while the lease runs.
    pub fn next(&self, engine: &Engine<C, O>, conn: &mut C, node: &NodeRow, lease_ms: i64, now: i64) -> Result<Option<Value>, HubError> {
        engine.store().transaction_noting(conn, |conn, noted| {
            sql::lock_node(conn, &node.id)?;
            let Some(message) = sql::next_message(conn, &node.id, now)? else { return Ok(None) };
            let note = if message.state == State::Processing.as_str() { "delivered again: its lease ran out" } else { "" };
            sql::set_state(conn, &message.id, State::Processing, Some(now + lease_ms), now, note, noted)?;
            let remote = sql::remote_of(conn, &node.id, &message.record_id)?;
            let message = MessageRow { state: State::Processing.as_str().to_owned(), lease_until: Some(now + lease_ms), ..message };
            Ok(Some(message.json(remote.as_deref())))
        })
    }

    /// How many messages the node would be handed now.
    pub fn pending(&self, conn: &mut C, node: &NodeRow, now: i64) -> Result<i64, HubError> {
        sql::deliverable(conn, &node.id, now)
    }

    /// The node's answer to a message it fetched: acknowledged (mapping the
    /// record to its `remote_id` if given) or failed with a reason. Doing
    /// it twice is harmless; a message never fetched, or answered the other
    /// way, is 409. One transaction, under the message's row lock: of an
    /// acknowledgement and a failure racing, one wins and the other is 409.
    pub fn answer(
        &self,
        engine: &Engine<C, O>,
        conn: &mut C,
        node: &NodeRow,
        message_id: &str,
        answer: Answer,
        now: i64,
    ) -> Result<Value, HubError> {
        engine.store().transaction_noting(conn, |conn, noted| {
            let message = sql::message_locked(conn, message_id)?
                .filter(|m| m.destination_id.as_deref() == Some(node.id.as_str()))
                .ok_or_else(|| HubError::not_found(format!("no message {message_id:?} for this node")))?;
            self.step(Step::AnswerLocked);
            let state = State::parse(&message.state).ok_or_else(|| HubError::internal(format!("message state {:?}", message.state)))?;
            let (wanted, note) = match &answer {
                Answer::Acknowledged { .. } => (State::Acknowledged, ""),
                Answer::Failed { reason } => (State::Failed, reason.as_str()),
            };
            match (state, wanted) {
                (State::Pending, _) => return Err(HubError::conflict("the message was not fetched")),
                (State::Superseded, _) => {
                    return Err(HubError::conflict("the message was superseded by a re-sync: every record was sent again after it"))
                }
                (State::Acknowledged, State::Failed) => return Err(HubError::conflict("the message was acknowledged already")),
                (State::Failed, State::Acknowledged) => return Err(HubError::conflict("the message failed already")),
                _ => {}
            }
            if let Answer::Acknowledged { remote_id: Some(remote) } = &answer {
                sql::map_remote(conn, &node.id, remote, &message.record_id)?;
            }
            if state == State::Processing {
                sql::set_state(conn, &message.id, wanted, None, now, note, noted)?;
            }
            let remote = sql::remote_of(conn, &node.id, &message.record_id)?;
            let message = MessageRow { state: wanted.as_str().to_owned(), lease_until: None, ..message };
            Ok(message.json(remote.as_deref()))
        })
    }

    /// Sends the node every live record of its network again, as creates
    /// with its `remote_id`s; what the node holds unanswered is superseded
    /// (never delivered again; an answer to it is 409). Returns how many.
    ///
    /// In pieces of at most `piece` records, each a short transaction under
    /// the owner's lock (other syncs of the owner go on between them; on
    /// SQLite, other writers): each piece reads its records as they are
    /// then, and any later change of one is queued after its create, so an
    /// older copy never reaches the node after a newer one. The records it
    /// covers are those there when it starts (under the lock); one made
    /// meanwhile reaches the node as its own create. Progress is logged.
    #[allow(clippy::too_many_arguments)]
    pub fn resync(
        &self,
        engine: &Engine<C, O>,
        conn: &mut C,
        network: &NetworkRow,
        node: &NodeRow,
        piece: i64,
        now: i64,
    ) -> Result<usize, HubError> {
        let store = engine.store();
        let last = store.transaction_noting(conn, |conn, noted| {
            store.lock_clock(conn, &network.owner)?;
            let superseded = sql::supersede(conn, &node.id, now, noted)?;
            if superseded > 0 {
                tracing::info!("mobync hub: re-sync of node {}: {superseded} unanswered messages superseded", node.id);
            }
            sql::last_record(conn, &network.owner, &network.model)
        })?;
        let (mut after, mut queued) = (0, 0usize);
        loop {
            let (reached, count) = store.transaction_noting(conn, |conn, noted| {
                store.lock_clock(conn, &network.owner)?;
                let records = sql::live_records(conn, &network.owner, &network.model, after, last, piece.max(1))?;
                self.step(Step::ResyncRead);
                let mut messages = Vec::with_capacity(records.len());
                for (_, record) in &records {
                    let fields = Value::Object(crate::to_record(&record.fields().unwrap_or_default()));
                    messages.push(MessageRow {
                        seq: 0,
                        id: new_id(),
                        network_id: network.id.clone(),
                        origin_id: None,
                        destination_id: Some(node.id.clone()),
                        parent_id: None,
                        method: Method::Create.as_str().to_owned(),
                        payload: serde_json::to_string(&fields).map_err(HubError::internal)?,
                        record_id: record.id.clone(),
                        remote_id: None,
                        state: State::Pending.as_str().to_owned(),
                        created_at: now,
                        lease_until: None,
                    });
                }
                sql::insert_messages(conn, &messages, State::Pending, now, "re-sync", noted)?;
                Ok::<_, HubError>((records.last().map(|(seq, _)| *seq), records.len()))
            })?;
            let Some(reached) = reached else { break };
            after = reached;
            queued += count;
            tracing::info!("mobync hub: re-sync of node {} of network {}: {queued} records queued", node.id, network.id);
            self.step(Step::ResyncPiece);
            crate::let_writers_in(conn);
        }
        Ok(queued)
    }
}

/// A node's answer to a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Applied; `remote_id` is the node's own id of the record, if it gives one.
    Acknowledged {
        /// The node's id of the record.
        remote_id: Option<String>,
    },
    /// Not applied, for `reason`.
    Failed {
        /// Why.
        reason: String,
    },
}

impl Answer {
    /// Reads `{"success": true, "remote_id"?}` or `{"success": false, "reason"}`.
    pub fn parse(body: &Value) -> Result<Answer, HubError> {
        let object = body.as_object().ok_or_else(|| HubError::bad_request("the body must be a JSON object"))?;
        if let Some(key) = object.keys().find(|k| !["success", "remote_id", "reason"].contains(&k.as_str())) {
            return Err(HubError::bad_request(format!("unknown field {key:?}")));
        }
        match object.get("success") {
            Some(Value::Bool(true)) => match object.get("remote_id") {
                None | Some(Value::Null) => Ok(Answer::Acknowledged { remote_id: None }),
                Some(Value::String(id)) if !id.is_empty() && id.len() <= 255 => Ok(Answer::Acknowledged { remote_id: Some(id.clone()) }),
                Some(_) => Err(HubError::bad_request("`remote_id` must be a non-empty string of at most 255 bytes")),
            },
            Some(Value::Bool(false)) => match object.get("reason") {
                Some(Value::String(reason)) => Ok(Answer::Failed { reason: reason.clone() }),
                None | Some(Value::Null) => Ok(Answer::Failed { reason: String::new() }),
                Some(_) => Err(HubError::bad_request("`reason` must be a string")),
            },
            _ => Err(HubError::bad_request("`success` is required: true or false")),
        }
    }
}
