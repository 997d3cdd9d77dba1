//! The wire types of PROTOCOL.md, byte-compatible with the Dart/Flutter client.
//!
//! On the wire `json_data` is a JSON *string* holding an object; an object is
//! accepted on input too, and answers always carry a string. A diff's `owner`
//! is ignored on input: the server uses the owner it authenticated.
//!
//! ```
//! use mobync::protocol::{Diff, OperationType, SyncResponse};
//! let diff: Diff = serde_json::from_str(r#"{"id":"d1","owner":"<owner>","logical_clock":0,
//!     "utc_timestamp":1700000000000,"type":"update","model":"task",
//!     "json_data":"{\"id\":\"r1\",\"done\":true}"}"#).unwrap();
//! assert_eq!(diff.op, OperationType::Update);
//! assert_eq!(diff.row_id(), "r1");
//! assert_eq!(diff.data["done"], true);
//! let answer = SyncResponse::ok(1, vec![diff]);
//! let text = serde_json::to_string(&answer).unwrap();
//! assert!(text.contains(r#""json_data":"{\"id\":\"r1\",\"done\":true}""#));
//! ```

pub mod wire;

use crate::error::SyncError;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A JSON object: a row, or the changed fields of one.
pub type JsonObject = serde_json::Map<String, Value>;

/// What a diff does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationType {
    /// `"create"`: `json_data` is the whole row.
    Create,
    /// `"update"`: `json_data` is `id` plus the changed fields.
    Update,
    /// `"delete"`: `json_data` is `{"id": ...}`.
    Delete,
}

impl OperationType {
    /// The wire name: `"create"`, `"update"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Create => "create",
            OperationType::Update => "update",
            OperationType::Delete => "delete",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "create" => Some(OperationType::Create),
            "update" => Some(OperationType::Update),
            "delete" => Some(OperationType::Delete),
            _ => None,
        }
    }
}

/// One logged change of one row. See PROTOCOL.md, "The diff".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Diff {
    /// Unique id of the diff (clients use UUID v1).
    pub id: String,
    /// The owner; on input ignored and replaced by the authenticated one.
    pub owner: String,
    /// Client: its cursor when it made the change; server: the stamp.
    pub logical_clock: i64,
    /// Wall-clock milliseconds since the epoch of the change.
    pub utc_timestamp: i64,
    /// The operation.
    #[serde(rename = "type")]
    pub op: OperationType,
    /// Which model (table) the row belongs to.
    pub model: String,
    /// The row (create), `id` plus changed fields (update) or `{"id"}` (delete).
    #[serde(rename = "json_data", serialize_with = "object_as_string")]
    pub data: JsonObject,
}

fn object_as_string<S: Serializer>(data: &JsonObject, serializer: S) -> Result<S::Ok, S::Error> {
    let text = serde_json::to_string(data).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

impl Diff {
    /// A diff of `op` on the row `data` (which must hold its `id`).
    ///
    /// ```
    /// use mobync::protocol::{Diff, OperationType};
    /// let d = Diff::new("d1", OperationType::Create, "task", serde_json::json!({"id": "r1", "title": "a"}))
    ///     .at(0, 1_700_000_000_000);
    /// assert_eq!(d.row_id(), "r1");
    /// ```
    pub fn new(id: impl Into<String>, op: OperationType, model: impl Into<String>, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            other => {
                let mut map = JsonObject::new();
                map.insert("id".into(), other);
                map
            }
        };
        Diff {
            id: id.into(),
            owner: String::new(),
            logical_clock: 0,
            utc_timestamp: 0,
            op,
            model: model.into(),
            data,
        }
    }

    /// Sets the logical clock and the wall-clock timestamp.
    pub fn at(mut self, logical_clock: i64, utc_timestamp: i64) -> Self {
        self.logical_clock = logical_clock;
        self.utc_timestamp = utc_timestamp;
        self
    }

    /// The id of the row this diff is about (`""` if `json_data` has none).
    pub fn row_id(&self) -> &str {
        self.data.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// Checks what a decoded diff must satisfy on its own to be consistent
    /// (422 `invalid_diff`, naming it): a model name, a row `id` that is a
    /// non-empty string of at most 255 bytes without U+0000, and a delete
    /// that carries nothing but `id`.
    pub fn check(&self) -> Result<(), SyncError> {
        let fail = |message: String| Err(SyncError::invalid_diff(message).with_diff(self.id.clone()));
        if self.model.is_empty() {
            return fail("unknown model \"\": `model` must name a synced model".into());
        }
        match self.data.get("id") {
            Some(Value::String(id)) => {
                if let Err(problem) = wire::check_id(id) {
                    return fail(format!("the row `id` in `json_data` {problem}"));
                }
            }
            Some(_) => return fail("the row `id` in `json_data` must be a string".into()),
            None => return fail(format!("`json_data` of a {} has no `id` of the row", self.op.as_str())),
        }
        if self.op == OperationType::Delete {
            if let Some(key) = self.data.keys().find(|key| key.as_str() != "id") {
                return fail(format!("the `json_data` of a delete is `{{\"id\": ...}}` only, not {key:?}"));
            }
        }
        Ok(())
    }
}

impl TryFrom<Value> for Diff {
    type Error = SyncError;

    /// Reads a diff as a client or a server writes it (see
    /// [`wire::decode_value`]) and checks it ([`Diff::check`]).
    fn try_from(value: Value) -> Result<Self, SyncError> {
        let diff = wire::decode_value(value)?;
        diff.check()?;
        Ok(diff)
    }
}

/// A sync request, as a client builds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The token the authenticator turns into an owner.
    pub auth_token: String,
    /// The cursor: the clock of the last successful sync, 0 for a new device.
    pub logical_clock: i64,
    /// The pending diffs, ordered by (`logical_clock`, `utc_timestamp`).
    pub diffs: Vec<Diff>,
    /// Version 2: the most diffs one answer may carry (PROTOCOL.md,
    /// "Version 2"); absent for version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
    /// Version 2: the cursor the device held when it made its oldest
    /// pending diff (default: `logical_clock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_clock: Option<i64>,
}

impl SyncRequest {
    /// Its version-2 paging, if it speaks version 2 (`base_clock` defaults
    /// to the cursor).
    pub fn paging(&self) -> Option<Paging> {
        let page_size = self.page_size?;
        Some(Paging { page_size, base_clock: self.base_clock.unwrap_or(self.logical_clock) })
    }
}

/// A version-2 request's paging: see PROTOCOL.md, "Version 2".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// The most diffs one answer may carry (at least 1).
    pub page_size: u64,
    /// The cursor the device held when it made its oldest pending diff (at
    /// most the request's cursor).
    pub base_clock: i64,
}

/// A successful sync's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Always `true` here; failures are [`crate::ErrorBody`].
    pub success: bool,
    /// Empty on success.
    pub message: String,
    /// The cursor the client sends next time.
    pub logical_clock: i64,
    /// The diffs the client has to apply, in the order they were accepted.
    pub diffs: Vec<Diff>,
    /// Version 2 only: whether this answer is a page and more follow (the
    /// request's diffs were then not accepted; send them again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

impl SyncResponse {
    /// A successful answer.
    pub fn ok(logical_clock: i64, diffs: Vec<Diff>) -> Self {
        SyncResponse { success: true, message: String::new(), logical_clock, diffs, has_more: None }
    }

    /// The answer to a version-2 request: `has_more` says whether it is a
    /// page.
    pub fn paged(mut self, has_more: bool) -> Self {
        self.has_more = Some(has_more);
        self
    }

    /// The answer as JSON, the same bytes as `serde_json::to_vec`, written
    /// diff by diff and dropping each diff once written: a long answer is
    /// never in memory both as diffs and as text.
    ///
    /// ```
    /// use mobync::protocol::{Diff, OperationType, SyncResponse};
    /// let answer = SyncResponse::ok(3, vec![Diff::new("d1", OperationType::Delete, "task", serde_json::json!({"id": "r1"}))]);
    /// let expected = serde_json::to_vec(&answer).unwrap();
    /// assert_eq!(answer.into_json(), expected);
    /// ```
    pub fn into_json(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.diffs.len() * 160);
        let mut json = AnswerJson::start(&mut out, self.success, &self.message, self.logical_clock, self.has_more);
        for diff in self.diffs {
            json.diff(&mut out, &diff);
        }
        json.end(&mut out);
        out
    }
}

/// An answer's JSON written as it goes, diff by diff, into buffers of the
/// caller's: the bytes of [`SyncResponse::into_json`], never the whole
/// answer at once.
///
/// ```
/// use mobync::protocol::{AnswerJson, Diff, OperationType::Create, SyncResponse};
/// use serde_json::json;
///
/// let diff = Diff::new("d1", Create, "task", json!({"id": "r1"})).at(3, 10);
/// let mut out = Vec::new();
/// let mut json = AnswerJson::start(&mut out, true, "", 4, None);
/// json.diff(&mut out, &diff);
/// json.end(&mut out);
/// assert_eq!(out, SyncResponse::ok(4, vec![diff]).into_json());
/// ```
#[derive(Debug)]
pub struct AnswerJson {
    first: bool,
    has_more: Option<bool>,
}

impl AnswerJson {
    /// Writes `{"success":…,"message":…,"logical_clock":…,"diffs":[` to
    /// `out`; `has_more` goes at the end.
    pub fn start(out: &mut Vec<u8>, success: bool, message: &str, logical_clock: i64, has_more: Option<bool>) -> Self {
        let head = serde_json::json!({"success": success, "message": message, "logical_clock": logical_clock});
        let head = serde_json::to_vec(&head).unwrap_or_default();
        out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
        out.extend_from_slice(b",\"diffs\":[");
        AnswerJson { first: true, has_more }
    }

    /// Writes the next diff to `out`.
    pub fn diff(&mut self, out: &mut Vec<u8>, diff: &Diff) {
        if !std::mem::take(&mut self.first) {
            out.push(b',');
        }
        // A Diff always serializes (its json_data is an object of JSON
        // values); writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, diff);
    }

    /// Writes the end of the answer to `out`.
    pub fn end(self, out: &mut Vec<u8>) {
        out.push(b']');
        if let Some(more) = self.has_more {
            out.extend_from_slice(if more { b",\"has_more\":true" } else { b",\"has_more\":false" });
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests;
