//! What the hub keeps and answers with: networks, nodes, messages and their
//! state changes, as rows of its tables and as the JSON of its API.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;
use serde::Serialize;
use serde_json::{Map, Value};

/// A network: a set of records of one model of one mobync owner, described
/// by a JSON Schema, that its nodes keep in sync.
#[derive(Debug, Clone, QueryableByName)]
pub struct NetworkRow {
    /// Its id (a UUID).
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Its name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The JSON Schema every record satisfies, as JSON text.
    #[diesel(sql_type = Text)]
    pub json_schema: String,
    /// Whether a node must fetch what waits for it before it may send.
    #[diesel(sql_type = Bool)]
    pub fetch_before_send: bool,
    /// The mobync owner of its records (the owner's key).
    #[diesel(sql_type = Text)]
    pub owner: String,
    /// The synced model its records are rows of.
    #[diesel(sql_type = Text)]
    pub model: String,
}

impl NetworkRow {
    /// The network's JSON; `owner` is the owner as the app's type writes it.
    pub fn json(&self, owner: Value) -> Value {
        let schema: Value = serde_json::from_str(&self.json_schema).unwrap_or(Value::Null);
        serde_json::json!({
            "id": self.id, "name": self.name, "schema": schema,
            "fetch_before_send": self.fetch_before_send, "owner": owner, "model": self.model,
        })
    }
}

/// A node: a system that sends and receives the network's changes.
#[derive(Debug, Clone, QueryableByName)]
pub struct NodeRow {
    /// Its id (a UUID).
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Its network.
    #[diesel(sql_type = Text)]
    pub network_id: String,
    /// Its name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// May send creates.
    #[diesel(sql_type = Bool)]
    pub can_create: bool,
    /// Receives the other nodes' and the devices' changes.
    #[diesel(sql_type = Bool)]
    pub can_read: bool,
    /// May send updates.
    #[diesel(sql_type = Bool)]
    pub can_update: bool,
    /// May send deletes.
    #[diesel(sql_type = Bool)]
    pub can_delete: bool,
    /// The SHA-256 of its token (hex); `None` once revoked.
    #[diesel(sql_type = Nullable<Text>)]
    pub token_hash: Option<String>,
}

impl NodeRow {
    /// The node's JSON (never its token).
    pub fn json(&self) -> Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "create": self.can_create, "read": self.can_read,
            "update": self.can_update, "delete": self.can_delete,
        })
    }

    /// Whether it may send `method`.
    pub fn may(&self, method: Method) -> bool {
        match method {
            Method::Create => self.can_create,
            Method::Update => self.can_update,
            Method::Delete => self.can_delete,
        }
    }
}

/// What a message does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// A new record: the payload is the record.
    Create,
    /// A change: the payload is a JSON merge patch (RFC 7396).
    Update,
    /// The record is gone.
    Delete,
}

impl Method {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Create => "create",
            Method::Update => "update",
            Method::Delete => "delete",
        }
    }

    /// Reads a name.
    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "create" => Some(Method::Create),
            "update" => Some(Method::Update),
            "delete" => Some(Method::Delete),
            _ => None,
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its node to fetch it.
    Pending,
    /// Fetched, not yet acknowledged or failed (delivered again when its
    /// lease runs out).
    Processing,
    /// Done.
    Acknowledged,
    /// The node could not apply it (its reason is in the history).
    Failed,
    /// Still unanswered when the node was re-synced: every record was sent
    /// again after it, so it is never delivered again, and an answer to it
    /// is 409.
    Superseded,
}

impl State {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Processing => "processing",
            State::Acknowledged => "acknowledged",
            State::Failed => "failed",
            State::Superseded => "superseded",
        }
    }

    /// Reads a name.
    pub fn parse(name: &str) -> Option<State> {
        match name {
            "pending" => Some(State::Pending),
            "processing" => Some(State::Processing),
            "acknowledged" => Some(State::Acknowledged),
            "failed" => Some(State::Failed),
            "superseded" => Some(State::Superseded),
            _ => None,
        }
    }
}

/// A message: one change of one record, sent by a node (`destination_id`
/// null) or waiting for one (`destination_id` the node).
#[derive(Debug, Clone, QueryableByName)]
pub struct MessageRow {
    /// Its order of acceptance.
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    /// Its id (a UUID).
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Its network.
    #[diesel(sql_type = Text)]
    pub network_id: String,
    /// The node that sent the change; null for a device's change and a
    /// re-sync.
    #[diesel(sql_type = Nullable<Text>)]
    pub origin_id: Option<String>,
    /// The node it is for; null on the message a node sent.
    #[diesel(sql_type = Nullable<Text>)]
    pub destination_id: Option<String>,
    /// For a delivered copy, the message the node sent.
    #[diesel(sql_type = Nullable<Text>)]
    pub parent_id: Option<String>,
    /// `create`, `update` or `delete`.
    #[diesel(sql_type = Text)]
    pub method: String,
    /// The payload, as JSON text.
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// The record (its row id).
    #[diesel(sql_type = Text)]
    pub record_id: String,
    /// On a sent message, the sender's own id for the record.
    #[diesel(sql_type = Nullable<Text>)]
    pub remote_id: Option<String>,
    /// Its state.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// When the change was accepted (ms since the epoch).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    /// While processing: until when the fetcher has it.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub lease_until: Option<i64>,
}

impl MessageRow {
    /// The message's JSON; `remote_id` is the destination's id for the
    /// record (on a sent message, the sender's).
    pub fn json(&self, remote_id: Option<&str>) -> Value {
        let payload: Value = serde_json::from_str(&self.payload).unwrap_or(Value::Null);
        serde_json::json!({
            "id": self.id, "method": self.method, "payload": payload, "record_id": self.record_id,
            "remote_id": remote_id.or(self.remote_id.as_deref()), "origin_id": self.origin_id,
            "destination_id": self.destination_id, "parent_id": self.parent_id, "state": self.state,
            "timestamp": iso8601(self.created_at),
        })
    }
}

/// One state change of a message.
#[derive(Debug, Clone, QueryableByName)]
pub struct ChangeRow {
    /// The message.
    #[diesel(sql_type = Text)]
    pub message_id: String,
    /// The new state.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// When (ms since the epoch).
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    /// Why (a failure's reason), or empty.
    #[diesel(sql_type = Text)]
    pub note: String,
}

impl ChangeRow {
    /// The change's JSON.
    pub fn json(&self) -> Value {
        serde_json::json!({"state": self.state, "at": iso8601(self.at), "note": self.note})
    }
}

/// A record of a network: a row of its model.
#[derive(Debug, Clone, QueryableByName)]
pub struct RecordRow {
    /// Its row id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Its owner's key.
    #[diesel(sql_type = Text)]
    pub owner: String,
    /// Its fields (without `id`), as JSON text; null once deleted.
    #[diesel(sql_type = Nullable<Text>)]
    pub data: Option<String>,
    /// Whether it was deleted.
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

impl RecordRow {
    /// Its fields, when it is not deleted.
    pub fn fields(&self) -> Option<Map<String, Value>> {
        if self.deleted {
            return None;
        }
        match self.data.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => Some(map),
            _ => Some(Map::new()),
        }
    }
}

/// A number (a count).
#[derive(Debug, QueryableByName)]
pub struct Count {
    /// The number.
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// One text value.
#[derive(Debug, QueryableByName)]
pub struct One {
    /// The value.
    #[diesel(sql_type = Text)]
    pub value: String,
}

/// Milliseconds since the epoch as ISO 8601 UTC with milliseconds, e.g.
/// `2026-11-27T09:49:10.598Z`.
pub fn iso8601(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_772_950_598), "2026-11-27T09:49:10.598Z");
    }
}
