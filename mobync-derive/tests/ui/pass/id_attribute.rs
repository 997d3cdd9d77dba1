// The row id is `uuid` (a renamed column), the owner `user_id`; the wire
// key of the id is still "id". Per-op rules, a raw identifier and a table
// in another module.
mod schema {
    diesel::table! {
        notes (note_uuid) { note_uuid -> Text, user_id -> Text, body -> Text, #[sql_name = "type"] kind -> Text }
    }
}

#[derive(diesel::Queryable, diesel::Selectable, diesel::Insertable, mobync::Syncable)]
#[diesel(table_name = schema::notes, check_for_backend(diesel::sqlite::Sqlite))]
#[mobync(validate_create = check_note, validate_update = self::check_note)]
pub struct Note {
    #[diesel(column_name = note_uuid)]
    #[mobync(id)]
    pub uuid: String,
    #[mobync(owner)]
    pub user_id: String,
    pub body: String,
    #[diesel(column_name = kind)]
    pub r#type: String,
}

fn check_note(_owner: &str, note: &Note) -> Result<(), String> {
    if note.body.len() > 1000 { Err("too long".into()) } else { Ok(()) }
}

fn main() {
    use mobync::SyncModel as _;
    assert_eq!(Note::MODEL, "notes");
    assert_eq!(Note::FIELDS, ["id", "body", "type"]);
}
