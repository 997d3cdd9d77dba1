//! `#[derive(Syncable)]` for mobync (placeholder until the derive lands).
