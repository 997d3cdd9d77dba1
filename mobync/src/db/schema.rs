//! Diesel `table!`s of mobync's tables under their default names, for apps
//! that want to query the diff log with Diesel.

diesel::table! {
    /// The diff log (PROTOCOL.md, "Storage"); `seq` orders a sync's diffs.
    diffs (owner, id) {
        id -> Text,
        owner -> Text,
        logical_clock -> BigInt,
        utc_timestamp -> BigInt,
        #[sql_name = "type"]
        op -> Text,
        model -> Text,
        json_data -> Text,
        seq -> Integer,
    }
}

diesel::table! {
    /// One clock per owner; a sync locks its owner's row.
    diffs_clocks (owner) {
        owner -> Text,
        logical_clock -> BigInt,
    }
}

diesel::table! {
    /// Ids of diffs a merge dropped, remembered so that a retry is harmless.
    diffs_dropped (owner, id) {
        owner -> Text,
        id -> Text,
    }
}
