// Without an owner column, the app that uses the model (its authenticator
// returns an `i32`) gets that one error, none about the owner's type.
use diesel::prelude::*;

diesel::table! {
    tasks (id) { id -> Text, user_id -> Integer, title -> Text }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = tasks)]
#[mobync(connection = diesel::SqliteConnection)]
pub struct Task {
    pub id: String,
    pub user_id: i32,
    pub title: String,
}

fn authenticate(_conn: &mut SqliteConnection, token: &str) -> Result<i32, mobync::AuthError> {
    token.parse().map_err(|_| mobync::AuthError::refused("unknown auth_token"))
}

fn main() {
    let models = mobync::Models::new().with::<Task>();
    let _ = mobync::endpoint::Endpoint::new(models, mobync::db::Tables::default(), authenticate);
}
