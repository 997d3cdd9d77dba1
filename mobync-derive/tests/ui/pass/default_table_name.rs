// No #[diesel(table_name)]: Diesel's default (`todo_items`) is the table
// and the model name.
diesel::table! {
    todo_items (id) { id -> Text, owner -> Text, text -> Text }
}

#[derive(diesel::Queryable, diesel::Selectable, diesel::Insertable, mobync::Syncable)]
pub struct TodoItem {
    id: String,
    owner: String,
    text: String,
}

fn main() {
    use mobync::SyncModel as _;
    assert_eq!(TodoItem::MODEL, "todo_items");
    assert_eq!(TodoItem::FIELDS, ["id", "text"]);
}
