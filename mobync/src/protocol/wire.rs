//! Reading what a client sent, in PROTOCOL.md's order of checks: the
//! envelope first ([`Envelope`], 400 without `diff_id`), with every diff
//! kept as raw JSON text so that a body costs memory in proportion to its
//! bytes until the token is accepted; then, after the token, the cursor and
//! the size, each diff in request order ([`decode_diff`]): its shape (400
//! naming it), then what needs no model to be consistent (422 naming it).

use super::{Diff, OperationType, Paging};
use crate::error::SyncError;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};

/// Longest diff id or row id, in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// The cursor a client sent: any JSON integer reads, so that a negative
/// one or one past `i64::MAX` is answered 409 after the token, not 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// A cursor that fits (it may still be negative).
    At(i64),
    /// An integer above `i64::MAX` (no clock gets there).
    TooLarge,
    /// An integer below `i64::MIN`.
    TooSmall,
}

impl Cursor {
    fn of(number: &Number) -> Option<Cursor> {
        if let Some(n) = number.as_i64() {
            return Some(Cursor::At(n));
        }
        // Beyond i64 either way: only an integer written as one counts.
        let text = number.to_string();
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(if text.starts_with('-') { Cursor::TooSmall } else { Cursor::TooLarge })
    }

    /// The cursor as a number, or the 409 a cursor no clock reaches gets.
    pub fn value(self) -> Result<i64, SyncError> {
        match self {
            Cursor::At(n) if n >= 0 => Ok(n),
            Cursor::At(n) => Err(SyncError::invalid_clock(format!("`logical_clock` must be >= 0, not {n}"))),
            Cursor::TooSmall => Err(SyncError::invalid_clock("`logical_clock` must be >= 0")),
            Cursor::TooLarge => Err(SyncError::invalid_clock(
                "`logical_clock` is ahead of the server's clock: the server's data is older than this device's",
            )),
        }
    }
}

/// A sync request's envelope: `{"auth_token", "logical_clock", "diffs"}`,
/// each diff still raw JSON text (checked to be well-formed JSON, nothing
/// decoded into values).
///
/// ```
/// use mobync::protocol::wire::{Cursor, Envelope};
/// let env = Envelope::parse(br#"{"auth_token":"t","logical_clock":3,"diffs":[{"id":"d1"}]}"#).unwrap();
/// assert_eq!((env.auth_token.as_deref(), env.cursor, env.diffs.len()), (Some("t"), Cursor::At(3), 1));
/// assert_eq!(Envelope::parse(b"{not json").unwrap_err().kind.code(), "malformed_request");
/// ```
#[derive(Debug)]
pub struct Envelope {
    /// `None` when absent or `null`: that is 401, not 400.
    pub auth_token: Option<String>,
    /// The client's cursor.
    pub cursor: Cursor,
    /// The diffs, as sent.
    pub diffs: Vec<Box<RawValue>>,
    /// Version 2's `page_size` and `base_clock`, if the client speaks it.
    pub paging: Option<Paging>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(default)]
    auth_token: Option<String>,
    logical_clock: Number,
    diffs: Vec<Box<RawValue>>,
    #[serde(default)]
    page_size: Option<Value>,
    #[serde(default)]
    base_clock: Option<Value>,
}

/// Version 2's fields: `page_size` an integer >= 1, `base_clock` an integer
/// from 0 to the cursor; else 400.
fn paging(page_size: Option<Value>, base_clock: Option<Value>, cursor: Cursor) -> Result<Option<Paging>, SyncError> {
    let Some(size) = page_size.filter(|v| !v.is_null()) else { return Ok(None) };
    let page_size = size
        .as_u64()
        .filter(|&k| k >= 1)
        .ok_or_else(|| SyncError::malformed(format!("`page_size` must be an integer >= 1, not {size}")))?;
    let cursor = match cursor {
        Cursor::At(n) => n,
        _ => i64::MAX,
    };
    let base_clock = match base_clock.filter(|v| !v.is_null()) {
        None => cursor,
        Some(base) => match base.as_i64() {
            Some(b) if (0..=cursor).contains(&b) => b,
            _ => {
                return Err(SyncError::malformed(format!(
                    "`base_clock` must be an integer from 0 to `logical_clock`, not {base}"
                )))
            }
        },
    };
    Ok(Some(Paging { page_size, base_clock }))
}

impl Envelope {
    /// Reads a request body; any failure is 400 `malformed_request`
    /// without `diff_id`.
    pub fn parse(body: &[u8]) -> Result<Envelope, SyncError> {
        // serde would read a JSON array as the struct's fields in order.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(SyncError::malformed("the request body must be a JSON object"));
        }
        let raw: RawEnvelope = serde_json::from_slice(body).map_err(|err| {
            SyncError::malformed(format!("the request body is not a valid sync request: {err}"))
        })?;
        let cursor = Cursor::of(&raw.logical_clock)
            .ok_or_else(|| SyncError::malformed("`logical_clock` must be an integer"))?;
        let paging = paging(raw.page_size, raw.base_clock, cursor)?;
        Ok(Envelope { auth_token: raw.auth_token, cursor, diffs: raw.diffs, paging })
    }
}

/// Decodes one raw diff of a request (see [`decode_value`]).
pub fn decode_diff(raw: &RawValue) -> Result<Diff, SyncError> {
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|err| SyncError::malformed(format!("a diff is not valid JSON: {err}")))?;
    decode_value(value)
}

/// Decodes one diff: its shape first, every fault 400 naming the diff
/// (when it has a usable `id`): `id` a non-empty string of at most 255
/// bytes without U+0000, `logical_clock` and `utc_timestamp` integers
/// `>= 0`, `type` one of the three, `model` a string, `json_data` a string
/// or an object; `owner` is ignored. Then `json_data` must hold a JSON
/// object: 422.
pub fn decode_value(value: Value) -> Result<Diff, SyncError> {
    let Value::Object(mut fields) = value else {
        return Err(SyncError::malformed("a diff must be a JSON object"));
    };
    let id = match fields.remove("id") {
        Some(Value::String(id)) => id,
        Some(_) => return Err(SyncError::malformed("a diff's `id` must be a string")),
        None => return Err(SyncError::malformed("a diff has no `id`")),
    };
    let fail = |message: String| Err(SyncError::malformed(message).with_diff(id.clone()));
    if let Err(problem) = check_id(&id) {
        return fail(format!("a diff's `id` {problem}"));
    }
    let logical_clock = match count(fields.get("logical_clock")) {
        Ok(n) => n,
        Err(problem) => return fail(format!("`logical_clock` of a diff {problem}")),
    };
    let utc_timestamp = match count(fields.get("utc_timestamp")) {
        Ok(n) => n,
        Err(problem) => return fail(format!("`utc_timestamp` {problem}")),
    };
    let op = match fields.get("type") {
        Some(Value::String(name)) => match OperationType::parse(name) {
            Some(op) => op,
            None => return fail(format!("`type` must be \"create\", \"update\" or \"delete\", not {name:?}")),
        },
        _ => return fail("`type` must be \"create\", \"update\" or \"delete\"".into()),
    };
    let model = match fields.remove("model") {
        Some(Value::String(model)) => model,
        _ => return fail("`model` must be a string".into()),
    };
    let data = match fields.remove("json_data") {
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(SyncError::invalid_diff("`json_data` must hold a JSON object").with_diff(id)),
            Err(err) => {
                return Err(SyncError::invalid_diff(format!("`json_data` is not valid JSON: {err}")).with_diff(id))
            }
        },
        _ => return fail("`json_data` must be a string holding a JSON object".into()),
    };
    Ok(Diff { id, owner: String::new(), logical_clock, utc_timestamp, op, model, data })
}

/// What is wrong with an id (a diff id or a row id), if anything.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("must be at most {MAX_ID_BYTES} bytes, not {}", id.len()));
    }
    if id.contains('\0') {
        return Err("must not contain U+0000".into());
    }
    Ok(())
}

/// A clock or timestamp: an integer from 0 to `i64::MAX`.
fn count(value: Option<&Value>) -> Result<i64, &'static str> {
    match value {
        None => Err("is missing"),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) if n >= 0 => Ok(n),
            Some(_) => Err("must be >= 0"),
            None => Err("must be an integer from 0 to 2^63-1"),
        },
        Some(_) => Err("must be an integer"),
    }
}
