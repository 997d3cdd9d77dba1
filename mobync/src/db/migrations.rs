//! The migrations that create mobync's tables.
//!
//! They ship as plain Diesel migration directories in the `mobync` crate
//! (`migrations/{sqlite,postgres,mysql}/00000000000001_mobync_diffs`), for
//! apps that run `diesel migration run` themselves: copy the directory of
//! your backend into your migrations. Their version sorts below any
//! timestamp-versioned migration of yours. [`run`] runs them from code, on
//! the configured table names, and is what the fairing does at ignition.

use super::{Dialect, LogConnection, Tables};
use diesel::backend::Backend;
use diesel::migration::{self, Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion};
use std::fmt;

/// The version of mobync's one migration.
pub const VERSION: &str = "00000000000001";

const NAME: &str = "00000000000001_mobync_diffs";

fn sql(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::Sqlite => (
            include_str!("../../migrations/sqlite/00000000000001_mobync_diffs/up.sql"),
            include_str!("../../migrations/sqlite/00000000000001_mobync_diffs/down.sql"),
        ),
        Dialect::Postgres => (
            include_str!("../../migrations/postgres/00000000000001_mobync_diffs/up.sql"),
            include_str!("../../migrations/postgres/00000000000001_mobync_diffs/down.sql"),
        ),
        Dialect::Mysql => (
            include_str!("../../migrations/mysql/00000000000001_mobync_diffs/up.sql"),
            include_str!("../../migrations/mysql/00000000000001_mobync_diffs/down.sql"),
        ),
    }
}

/// mobync's migrations for one dialect and set of table names, as a Diesel
/// [`MigrationSource`].
#[derive(Debug, Clone)]
pub struct MobyncMigrations {
    up: String,
    down: String,
}

impl MobyncMigrations {
    /// The migrations of `dialect`, creating `tables`.
    pub fn new(dialect: Dialect, tables: &Tables) -> Self {
        let (up, down) = sql(dialect);
        // The shipped SQL names its tables and index `diffs…`; every other
        // name in it is a column or keyword that does not contain "diffs".
        let rename = |text: &str| text.replace("diffs", tables.diffs());
        MobyncMigrations { up: rename(up), down: rename(down) }
    }

    /// The SQL that creates the tables.
    pub fn up_sql(&self) -> &str {
        &self.up
    }
}

struct Name;

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAME)
    }
}

impl MigrationName for Name {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(VERSION)
    }
}

struct Metadata;

impl MigrationMetadata for Metadata {}

impl<DB: Backend> Migration<DB> for MobyncMigrations {
    fn run(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> migration::Result<()> {
        Ok(conn.batch_execute(&self.up)?)
    }

    fn revert(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> migration::Result<()> {
        Ok(conn.batch_execute(&self.down)?)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        &Metadata
    }

    fn name(&self) -> &dyn MigrationName {
        &Name
    }
}

impl<DB: Backend> MigrationSource<DB> for MobyncMigrations {
    fn migrations(&self) -> migration::Result<Vec<Box<dyn Migration<DB>>>> {
        Ok(vec![Box::new(self.clone())])
    }
}

/// Runs mobync's pending migrations on `conn` (any connection type mobync
/// keeps its log on), creating `tables`. Safe to call at every start: an
/// applied migration is not run again.
pub fn run<C: LogConnection>(conn: &mut C, tables: &Tables) -> migration::Result<()> {
    let source = MobyncMigrations::new(conn.dialect(), tables);
    conn.run_migrations(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_replace_every_default_name() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
            let m = MobyncMigrations::new(dialect, &Tables::new("sync_log").unwrap());
            assert!(!m.up.contains("diffs"), "{dialect:?}: {}", m.up);
            assert!(m.up.contains("CREATE TABLE sync_log_clocks"));
            assert!(m.down.contains("DROP TABLE sync_log;"));
        }
    }
}
