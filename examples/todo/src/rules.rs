//! The app's validation rules: a refusal is answered `403 forbidden`.

use crate::models::{Project, Task};

/// Titles and names: non-empty after trimming, at most 200 characters.
pub fn text(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.chars().count() > 200 {
        return Err(format!("{what} must be at most 200 characters"));
    }
    Ok(())
}

pub fn task(_owner: &str, task: &Task) -> Result<(), String> {
    text("a task's title", &task.title)
}

pub fn project(_owner: &str, project: &Project) -> Result<(), String> {
    text("a project's name", &project.name)
}
