// A model whose columns only PostgreSQL has (UUIDs, timestamptz), on the
// default connection (`mobync::db::DbConnection`, which picks SQLite,
// PostgreSQL or MySQL by URL and holds only what all three share): one
// error, which names `connection =`.
use diesel::prelude::*;

diesel::table! {
    expenses (id) {
        id -> Uuid,
        account_id -> Uuid,
        cents -> BigInt,
        currency -> Varchar,
        note -> Nullable<Text>,
        paid -> Bool,
        rate -> Nullable<Double>,
        updated_at -> Timestamptz,
    }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = expenses)]
#[mobync(model = "expense")]
pub struct Expense {
    pub id: uuid::Uuid,
    #[mobync(owner)]
    pub account_id: uuid::Uuid,
    pub cents: i64,
    pub currency: String,
    pub note: Option<String>,
    pub paid: bool,
    pub rate: Option<f64>,
    #[mobync(skip)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn authenticate(_conn: &mut PgConnection, token: &str) -> Result<uuid::Uuid, mobync::AuthError> {
    token.parse().map_err(|_| mobync::AuthError::refused("unknown auth_token"))
}

fn main() {
    let models = mobync::Models::new().with::<Expense>();
    let _ = mobync::endpoint::Endpoint::new(models, mobync::db::Tables::default(), authenticate);
}
