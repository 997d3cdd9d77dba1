//! The app's rule: a refusal is answered `403 forbidden`.

use crate::models::Note;

/// A title: non-empty after trimming, at most 200 characters.
pub fn note(_owner: &i32, note: &Note) -> Result<(), String> {
    if note.title.trim().is_empty() {
        return Err("a note's title must not be empty".into());
    }
    if note.title.chars().count() > 200 {
        return Err("a note's title must be at most 200 characters".into());
    }
    Ok(())
}
