//! The names of mobync's tables.

/// The names of the diff log and of its companions, derived from one
/// configurable name (default `diffs`): `<name>` the log, `<name>_clocks` the
/// per-owner clocks, `<name>_dropped` the diff ids a merge dropped,
/// `<name>_net` the compacted history, `<name>_squashed` the ids it squashed.
///
/// ```
/// let tables = mobync::db::Tables::new("sync_log").unwrap();
/// assert_eq!(tables.clocks(), "sync_log_clocks");
/// assert!(mobync::db::Tables::new("x; DROP TABLE users").is_err());
/// assert!(mobync::db::Tables::new("SyncLog").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    diffs: String,
    clocks: String,
    dropped: String,
    net: String,
    squashed: String,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::new("diffs").expect("`diffs` is a plain name")
    }
}

impl Tables {
    /// Tables named after `diffs`, which must be a plain SQL identifier:
    /// lowercase ASCII letters, digits and `_`, not starting with a digit,
    /// at most 48 characters. It goes into SQL text, quoted; lowercase keeps
    /// the quoted and unquoted names one table on PostgreSQL (which folds
    /// unquoted names to lowercase) and on case-sensitive MySQL file systems.
    pub fn new(diffs: &str) -> Result<Self, String> {
        let plain = !diffs.is_empty()
            && diffs.len() <= 48
            && diffs.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !diffs.starts_with(|c: char| c.is_ascii_digit());
        if !plain {
            return Err(format!("{diffs:?} is not a plain table name (lowercase letters, digits, `_`)"));
        }
        Ok(Tables {
            diffs: diffs.to_owned(),
            clocks: format!("{diffs}_clocks"),
            dropped: format!("{diffs}_dropped"),
            net: format!("{diffs}_net"),
            squashed: format!("{diffs}_squashed"),
        })
    }

    /// The diff log.
    pub fn diffs(&self) -> &str {
        &self.diffs
    }

    /// The per-owner clocks.
    pub fn clocks(&self) -> &str {
        &self.clocks
    }

    /// The ids of diffs a merge dropped.
    pub fn dropped(&self) -> &str {
        &self.dropped
    }

    /// The compacted history: one net row per (model, row id).
    pub fn net(&self) -> &str {
        &self.net
    }

    /// The ids of squashed diffs, kept for retries.
    pub fn squashed(&self) -> &str {
        &self.squashed
    }
}
