//! The admin side: networks (a JSON Schema over one model of one mobync
//! owner), their nodes (permission flags and a token shown once), tokens
//! revoked or renewed, and the history of messages.

use crate::model::{NetworkRow, NodeRow, State};
use crate::schema::compile;
use crate::{new_id, sql, token_hash, Engine, HubError, Shared};
use mobync::db::LogConnection;
use mobync::Owner;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::str::FromStr;

/// Most model names, in bytes.
const MAX_MODEL: usize = 255;

fn object(body: &Value) -> Result<&Map<String, Value>, HubError> {
    body.as_object().ok_or_else(|| HubError::bad_request("the body must be a JSON object"))
}

fn only(body: &Map<String, Value>, keys: &[&str]) -> Result<(), HubError> {
    match body.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(key) => Err(HubError::bad_request(format!("unknown field {key:?}; the fields are {}", keys.join(", ")))),
        None => Ok(()),
    }
}

fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, HubError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(HubError::bad_request(format!("`{key}` must be a string"))),
    }
}

fn flag(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, HubError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(HubError::bad_request(format!("`{key}` must be true or false"))),
    }
}

/// A schema from a request: a valid JSON Schema, as text.
fn schema_text(schema: &Value) -> Result<String, HubError> {
    compile(schema).map_err(HubError::bad_request)?;
    serde_json::to_string(schema).map_err(HubError::internal)
}

impl<C: LogConnection, O: Owner + FromStr + Serialize + DeserializeOwned> Shared<C, O> {
    /// The network's JSON, with its owner in the app's type.
    pub(crate) fn network_json(&self, network: &NetworkRow) -> Result<Value, HubError> {
        let owner = serde_json::to_value(self.owner_of(network)?).map_err(HubError::internal)?;
        Ok(network.json(owner))
    }

    /// The network `id`, 404 if there is none (a malformed id included).
    pub fn network(&self, conn: &mut C, id: &str) -> Result<NetworkRow, HubError> {
        sql::network(conn, id)?.ok_or_else(|| HubError::not_found(format!("no network {id:?}")))
    }

    /// The node `id` of a network, 404 if there is none.
    pub fn node(&self, conn: &mut C, network: &NetworkRow, id: &str) -> Result<NodeRow, HubError> {
        sql::node(conn, &network.id, id)?.ok_or_else(|| HubError::not_found(format!("no node {id:?} in this network")))
    }

    /// `POST /admin/networks {"name", "schema", "fetch_before_send"?,
    /// "owner"?, "model"?}`: a network of `owner` (else a new owner) over
    /// its `model` (default `record`).
    pub fn create_network(&self, engine: &Engine<C, O>, conn: &mut C, body: &Value, now: i64) -> Result<Value, HubError> {
        let body = object(body)?;
        only(body, &["name", "schema", "fetch_before_send", "owner", "model"])?;
        let name = text(body, "name")?.ok_or_else(|| HubError::bad_request("`name` is required"))?;
        let schema = body.get("schema").ok_or_else(|| HubError::bad_request("`schema` is required"))?;
        let json_schema = schema_text(schema)?;
        let fetch_before_send = flag(body, "fetch_before_send")?.unwrap_or(false);
        let model = text(body, "model")?.unwrap_or_else(|| "record".into());
        if model.is_empty() || model.len() > MAX_MODEL || model.contains('\0') {
            return Err(HubError::bad_request("`model` must be a non-empty name of at most 255 bytes"));
        }
        if self.is_typed(&model) {
            return Err(HubError::bad_request(format!("`model` {model:?} is a model of the app's own")));
        }
        let given: Option<O> = match body.get("owner") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                serde_json::from_value(value.clone()).map_err(|e| HubError::bad_request(format!("`owner` is not an owner: {e}")))?,
            ),
        };
        engine.store().transaction(conn, |conn| {
            let owner = match given {
                Some(owner) => owner,
                None => (self.new_owner)(conn).map_err(HubError::internal)?,
            };
            let owner_key = owner.key().into_owned();
            if sql::network_of(conn, &owner_key, &model)?.is_some() {
                return Err(HubError::bad_request(format!("this owner has a network over `{model}` already")));
            }
            let network = NetworkRow { id: new_id(), name, json_schema, fetch_before_send, owner: owner_key, model };
            sql::insert_network(conn, &network, now)?;
            self.network_json(&network)
        })
    }

    /// `PATCH /admin/networks/{id}`: only the fields given, of `name`,
    /// `schema` and `fetch_before_send` (its owner and model stay).
    pub fn patch_network(&self, engine: &Engine<C, O>, conn: &mut C, id: &str, body: &Value) -> Result<Value, HubError> {
        let body = object(body)?;
        if body.contains_key("owner") || body.contains_key("model") || body.contains_key("id") {
            return Err(HubError::bad_request("a network's id, owner and model do not change"));
        }
        only(body, &["name", "schema", "fetch_before_send"])?;
        engine.store().transaction(conn, |conn| {
            let mut network = self.network(conn, id)?;
            if let Some(name) = text(body, "name")? {
                network.name = name;
            }
            if let Some(schema) = body.get("schema") {
                network.json_schema = schema_text(schema)?;
            }
            if let Some(fetch) = flag(body, "fetch_before_send")? {
                network.fetch_before_send = fetch;
            }
            sql::update_network(conn, &network)?;
            self.network_json(&network)
        })
    }

    /// `POST /admin/networks/{id}/nodes {"name", "create"?, "read"?,
    /// "update"?, "delete"?}`: a node, with its token (shown this once).
    pub fn create_node(&self, engine: &Engine<C, O>, conn: &mut C, network_id: &str, body: &Value, now: i64) -> Result<Value, HubError> {
        let body = object(body)?;
        only(body, &["name", "create", "read", "update", "delete"])?;
        let name = text(body, "name")?.ok_or_else(|| HubError::bad_request("`name` is required"))?;
        let token = crate::new_token()?;
        let node = NodeRow {
            id: new_id(),
            network_id: network_id.to_owned(),
            name,
            can_create: flag(body, "create")?.unwrap_or(false),
            can_read: flag(body, "read")?.unwrap_or(false),
            can_update: flag(body, "update")?.unwrap_or(false),
            can_delete: flag(body, "delete")?.unwrap_or(false),
            token_hash: Some(token_hash(&token)),
        };
        engine.store().transaction(conn, |conn| {
            self.network(conn, network_id)?;
            sql::insert_node(conn, &node, now)
        })?;
        let mut answer = node.json();
        answer["token"] = Value::String(token);
        Ok(answer)
    }

    /// `PATCH /admin/networks/{id}/nodes/{node}`: only the fields given.
    pub fn patch_node(&self, engine: &Engine<C, O>, conn: &mut C, network_id: &str, id: &str, body: &Value) -> Result<Value, HubError> {
        let body = object(body)?;
        if body.contains_key("id") || body.contains_key("token") {
            return Err(HubError::bad_request("a node's id does not change; its token is renewed at .../token"));
        }
        only(body, &["name", "create", "read", "update", "delete"])?;
        engine.store().transaction(conn, |conn| {
            let network = self.network(conn, network_id)?;
            let mut node = self.node(conn, &network, id)?;
            if let Some(name) = text(body, "name")? {
                node.name = name;
            }
            for (key, slot) in [
                ("create", &mut node.can_create),
                ("read", &mut node.can_read),
                ("update", &mut node.can_update),
                ("delete", &mut node.can_delete),
            ] {
                if let Some(value) = flag(body, key)? {
                    *slot = value;
                }
            }
            sql::update_node(conn, &node)?;
            Ok(node.json())
        })
    }

    /// A new token for a node (`renew`), or none at all: every messaging
    /// call of the node is 401 until it gets a new one. The new token, if any.
    pub fn set_token(&self, engine: &Engine<C, O>, conn: &mut C, network_id: &str, id: &str, renew: bool) -> Result<Option<String>, HubError> {
        let token = if renew { Some(crate::new_token()?) } else { None };
        engine.store().transaction(conn, |conn| {
            let network = self.network(conn, network_id)?;
            let mut node = self.node(conn, &network, id)?;
            node.token_hash = token.as_deref().map(token_hash);
            sql::update_node(conn, &node)
        })?;
        Ok(token)
    }

    /// `GET /admin/networks/{id}/messages?state=&after=&limit=`: the
    /// network's messages in order (after position `after`, at most
    /// `limit`), each with its state changes (time and note), and the
    /// position to ask for the next page from; `kept_since` says how far
    /// back it reaches: a message answered before it may have been pruned.
    pub fn history(
        &self,
        conn: &mut C,
        network_id: &str,
        state: Option<&str>,
        after: i64,
        limit: i64,
        kept_since: i64,
    ) -> Result<Value, HubError> {
        self.network(conn, network_id)?;
        let state = match state {
            None => None,
            Some(name) => Some(State::parse(name).ok_or_else(|| {
                HubError::bad_request("`state` is pending, processing, acknowledged, failed or superseded")
            })?),
        };
        let messages = sql::messages(conn, network_id, state, after, limit.clamp(1, 1000))?;
        let next = messages.last().map(|m| m.seq);
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        let changes = sql::changes(conn, &ids)?;
        let list: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut json = m.json(None);
                json["changes"] = Value::Array(changes.iter().filter(|c| c.message_id == m.id).map(|c| c.json()).collect());
                json
            })
            .collect();
        Ok(json!({"messages": list, "next": next, "kept_since": crate::model::iso8601(kept_since)}))
    }

    /// One message of a network, with its state changes.
    pub fn message(&self, conn: &mut C, network_id: &str, id: &str) -> Result<Value, HubError> {
        let message = sql::message(conn, id)?
            .filter(|m| m.network_id == network_id)
            .ok_or_else(|| HubError::not_found(format!("no message {id:?} in this network")))?;
        let changes = sql::changes(conn, &[id])?;
        let mut json = message.json(None);
        json["changes"] = Value::Array(changes.iter().map(|c| c.json()).collect());
        Ok(json)
    }
}
