//! The tables, as `diesel print-schema` writes them.

diesel::table! {
    users (id) {
        id -> Int4,
        name -> Text,
        token_hash -> Text,
    }
}

diesel::table! {
    notes (id) {
        id -> Uuid,
        owner -> Int4,
        title -> Text,
        body -> Nullable<Text>,
        tags -> Jsonb,
        pinned_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(notes -> users (owner));
diesel::allow_tables_to_appear_in_same_query!(notes, users);
