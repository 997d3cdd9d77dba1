//! Compacted history: an owner's log below a horizon H, squashed to one
//! [`NetRow`] per row (PROTOCOL.md, "History"). Pure: no database, no clock.
//!
//! What a net row keeps: when the row was created and deleted (clock,
//! `utc_timestamp`, diff id), and per field its current value, the clock of
//! its last change and the greatest (`utc_timestamp`, diff id) among the
//! updates that set it. The properties the rest of mobync relies on, each
//! tested below and by the convergence runs with compactions between syncs:
//!
//! 1. **Folding is the log.** Folding a row's entries in log order ([`fold`])
//!    gives the row as the server holds it at H (its fields, or its
//!    absence), and folding in two parts (compacting to H1, then to H2)
//!    gives the same net row as folding at once.
//! 2. **Answers per cursor** ([`NetRow::since`]): for a cursor c < H, the net
//!    change since c: a row created at or after c and alive is one create
//!    with its current fields; created at or after c and deleted, nothing;
//!    created before c and deleted at or after c, one delete; created before
//!    c, the fields changed at or after c as updates, one per winning
//!    (`utc_timestamp`, diff id). A device that held the rows of the
//!    uncompacted log at c and applies them holds the rows at H.
//! 3. **Merge, conservatively** ([`NetRow::rivals`]): for a row the request
//!    touches, the stored diffs the merge meets are the net change since c
//!    plus, for each field the request updates and the log changed below H,
//!    an update carrying the greatest (`utc_timestamp`, diff id) kept for it:
//!    the device's update wins only if it is newer than every update of the
//!    field the log ever held (deterministic, and never older-wins).

use crate::protocol::{Diff, JsonObject, OperationType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When and by which diff something happened to a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The clock the diff was stamped with.
    pub clock: i64,
    /// Its `utc_timestamp`.
    pub ts: i64,
    /// Its id.
    pub id: String,
}

impl Stamp {
    fn of(diff: &Diff) -> Self {
        Stamp {
            clock: diff.logical_clock,
            ts: diff.utc_timestamp,
            id: diff.id.clone(),
        }
    }
}

/// One field of a compacted row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The current value.
    #[serde(rename = "v")]
    pub value: Value,
    /// The clock of its last change.
    #[serde(rename = "c")]
    pub clock: i64,
    /// The greatest (`utc_timestamp`, diff id) among the updates that set
    /// it; `None` for a field only its create set.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub won: Option<(i64, String)>,
}

/// One row's history below the horizon, squashed.
#[derive(Debug, Clone, PartialEq)]
pub struct NetRow {
    /// The model.
    pub model: String,
    /// The row id.
    pub id: String,
    /// Its create (the latest, if the id was created again after a delete);
    /// `None` for a row the log has updates of but no create.
    pub created: Option<Stamp>,
    /// Its delete, if it is deleted (a tombstone: no fields).
    pub deleted: Option<Stamp>,
    /// The clock of its first create (a row id created again after its
    /// delete keeps it): a cursor at or below it never held the row.
    pub born: Option<i64>,
    /// Its fields, in the order they were first set.
    pub fields: Vec<(String, Field)>,
    /// The newest clock of anything folded into it.
    pub last_clock: i64,
}

impl NetRow {
    /// An empty net row of `model`'s row `id`, to [`fold`] entries into.
    pub fn new(model: impl Into<String>, id: impl Into<String>) -> Self {
        NetRow {
            model: model.into(),
            id: id.into(),
            created: None,
            deleted: None,
            born: None,
            fields: Vec::new(),
            last_clock: i64::MIN,
        }
    }

    /// The fields as JSON text, as stored: `{"<field>": {"v", "c", "w"?}}`.
    pub fn fields_json(&self) -> String {
        let map: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, field)| {
                (
                    name.clone(),
                    serde_json::to_value(field).unwrap_or(Value::Null),
                )
            })
            .collect();
        Value::Object(map).to_string()
    }

    /// Reads the fields as [`fields_json`](NetRow::fields_json) wrote them.
    pub fn parse_fields(text: &str) -> Result<Vec<(String, Field)>, serde_json::Error> {
        let map: serde_json::Map<String, Value> = serde_json::from_str(text)?;
        map.into_iter()
            .map(|(name, value)| Ok((name, serde_json::from_value(value)?)))
            .collect()
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut Field> {
        self.fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
    }

    fn created_since(&self, cursor: i64) -> bool {
        self.created.as_ref().is_some_and(|c| c.clock >= cursor)
    }

    /// The net change of this row since `cursor` (property 2), as diffs of
    /// `owner`, oldest first.
    pub fn since(&self, cursor: i64, owner: &str) -> Vec<Diff> {
        if let Some(deleted) = &self.deleted {
            if self.born.is_some_and(|born| born >= cursor) || deleted.clock < cursor {
                return Vec::new();
            }
            return vec![self.diff(OperationType::Delete, deleted, JsonObject::new(), owner)];
        }
        if let Some(created) = self.created.as_ref().filter(|c| c.clock >= cursor) {
            let data = self
                .fields
                .iter()
                .map(|(n, f)| (n.clone(), f.value.clone()))
                .collect();
            return vec![self.diff(OperationType::Create, created, data, owner)];
        }
        self.updates(owner, |_, field| field.clock >= cursor)
    }

    /// [`since`](NetRow::since) as one unit of an answer (of a page): every
    /// diff stamped with the first stamp the change holds.
    pub fn since_as_one(&self, cursor: i64, owner: &str) -> Vec<Diff> {
        let mut change = self.since(cursor, owner);
        let first = change.iter().map(|d| d.logical_clock).min().unwrap_or(cursor);
        change.iter_mut().for_each(|d| d.logical_clock = first);
        change
    }

    /// The stored diffs the merge meets on this row for a request at
    /// `cursor` that updates `updated` fields of it (property 3).
    pub fn rivals(&self, cursor: i64, updated: &[&str], owner: &str) -> Vec<Diff> {
        if let Some(deleted) = &self.deleted {
            if deleted.clock < cursor {
                return Vec::new();
            }
            return vec![self.diff(OperationType::Delete, deleted, JsonObject::new(), owner)];
        }
        let mut out = Vec::new();
        let fresh = self.created_since(cursor);
        if let Some(created) = self.created.as_ref().filter(|_| fresh) {
            let data = self
                .fields
                .iter()
                .map(|(n, f)| (n.clone(), f.value.clone()))
                .collect();
            out.push(self.diff(OperationType::Create, created, data, owner));
        }
        // A row created since the cursor: its create may be the device's
        // own (a retry), which the merge leaves out, so the updates folded
        // into it go too, each with its winner. Otherwise the fields
        // changed since the cursor, and the rivals of the request's.
        out.extend(self.updates(owner, |name, field| {
            let rival = field.won.is_some() && updated.contains(&name);
            fresh || rival || field.clock >= cursor
        }));
        out
    }

    /// Update diffs of the fields `pick` chooses that an update set, one
    /// per winning (`utc_timestamp`, diff id), oldest first.
    fn updates(&self, owner: &str, pick: impl Fn(&str, &Field) -> bool) -> Vec<Diff> {
        let mut groups: Vec<(&(i64, String), i64, JsonObject)> = Vec::new();
        for (name, field) in &self.fields {
            let Some(won) = field.won.as_ref().filter(|_| pick(name, field)) else {
                continue;
            };
            match groups.iter_mut().find(|(w, _, _)| *w == won) {
                Some((_, clock, data)) => {
                    *clock = (*clock).max(field.clock);
                    data.insert(name.clone(), field.value.clone());
                }
                None => {
                    let mut data = JsonObject::new();
                    data.insert(name.clone(), field.value.clone());
                    groups.push((won, field.clock, data));
                }
            }
        }
        groups.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        groups
            .into_iter()
            .map(|((ts, id), clock, data)| {
                self.diff(
                    OperationType::Update,
                    &Stamp {
                        clock,
                        ts: *ts,
                        id: id.clone(),
                    },
                    data,
                    owner,
                )
            })
            .collect()
    }

    fn diff(&self, op: OperationType, stamp: &Stamp, fields: JsonObject, owner: &str) -> Diff {
        let mut data = JsonObject::new();
        data.insert("id".into(), Value::String(self.id.clone()));
        data.extend(fields);
        Diff {
            id: stamp.id.clone(),
            owner: owner.to_owned(),
            logical_clock: stamp.clock,
            utc_timestamp: stamp.ts,
            op,
            model: self.model.clone(),
            data,
        }
    }
}

/// Folds one log entry of the row into its net row (entries in log order).
pub fn fold(row: &mut NetRow, diff: &Diff) {
    row.last_clock = row.last_clock.max(diff.logical_clock);
    match diff.op {
        OperationType::Create => {
            row.born.get_or_insert(diff.logical_clock);
            row.created = Some(Stamp::of(diff));
            row.deleted = None;
            row.fields = diff
                .data
                .iter()
                .filter(|(k, _)| k.as_str() != "id")
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Field {
                            value: v.clone(),
                            clock: diff.logical_clock,
                            won: None,
                        },
                    )
                })
                .collect();
        }
        OperationType::Update => {
            for (name, value) in diff.data.iter().filter(|(k, _)| k.as_str() != "id") {
                let by = (diff.utc_timestamp, diff.id.clone());
                match row.field_mut(name) {
                    Some(field) => {
                        field.value = value.clone();
                        field.clock = diff.logical_clock;
                        if field.won.as_ref().is_none_or(|won| by > *won) {
                            field.won = Some(by);
                        }
                    }
                    None => row.fields.push((
                        name.clone(),
                        Field {
                            value: value.clone(),
                            clock: diff.logical_clock,
                            won: Some(by),
                        },
                    )),
                }
            }
        }
        OperationType::Delete => {
            row.deleted = Some(Stamp::of(diff));
            row.fields.clear();
        }
    }
}

#[cfg(test)]
mod tests;
