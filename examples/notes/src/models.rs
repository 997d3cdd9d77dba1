//! The synced model: a note, as an app on PostgreSQL writes it (a UUID id,
//! the user's `SERIAL` id as owner, a timestamp, a jsonb column, a column
//! the database fills) with one more derive.

use crate::schema::notes;
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use diesel::deserialize::{self, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize;
use mobync::Syncable;
use serde::{Deserialize, Serialize};
use std::io::Write;
use uuid::Uuid;

#[derive(Queryable, Selectable, Syncable, Debug, Clone, PartialEq)]
#[diesel(table_name = notes, check_for_backend(Pg))]
#[mobync(model = "note", connection = diesel::PgConnection, validate = crate::rules::note)]
pub struct Note {
    pub id: Uuid,
    pub owner: i32,
    pub title: String,
    pub body: Option<String>,
    pub tags: Tags,
    pub pinned_at: Option<DateTime<Utc>>,
    /// Set by the database; never on the wire.
    #[mobync(skip)]
    pub created_at: DateTime<Utc>,
}

/// A note's tags: a JSON array of strings in a `jsonb` column. Anything
/// else on the wire does not decode (422).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[serde(transparent)]
#[diesel(sql_type = Jsonb)]
pub struct Tags(pub Vec<String>);

impl ToSql<Jsonb, Pg> for Tags {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[1])?; // jsonb's binary format version
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

impl deserialize::FromSql<Jsonb, Pg> for Tags {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let value = <serde_json::Value as deserialize::FromSql<Jsonb, Pg>>::from_sql(bytes)?;
        Ok(serde_json::from_value(value)?)
    }
}
