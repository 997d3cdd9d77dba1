// A model on the app's own connection types, with an integer owner and a
// renamed field.
use diesel::prelude::*;

diesel::table! {
    notes (id) { id -> Text, user_id -> Integer, body -> Text, created_at -> Text }
}

#[derive(Queryable, Selectable, mobync::Syncable)]
#[diesel(table_name = notes)]
#[mobync(model = "note", connection = diesel::SqliteConnection, connection = diesel::PgConnection, validate = rules::note)]
pub struct Note {
    pub id: String,
    #[mobync(owner)]
    pub user_id: i32,
    #[mobync(rename = "text")]
    pub body: String,
    #[mobync(skip)]
    pub created_at: String,
}

mod rules {
    pub fn note(owner: &i32, note: &super::Note) -> Result<(), String> {
        if note.body.is_empty() { Err(format!("{owner}: a note needs text")) } else { Ok(()) }
    }
}

fn main() {
    use mobync::SyncModel as _;
    assert_eq!(Note::FIELDS, ["id", "text"]);
    let _ = mobync::Models::<diesel::SqliteConnection, i32>::new().with::<Note>();
    let _ = mobync::Models::<diesel::PgConnection, i32>::new().with::<Note>();
}
