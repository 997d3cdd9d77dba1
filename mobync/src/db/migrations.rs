//! The migrations that create mobync's tables.
//!
//! They ship as plain Diesel migration directories in the `mobync` crate
//! (`migrations/{sqlite,postgres,mysql}/0000000000000N_…`), for apps that
//! run `diesel migration run` themselves: copy the directories of your
//! backend into your migrations. Their version sorts below any
//! timestamp-versioned migration of yours. [`run`] runs them from code, on
//! the configured table names, and is what the fairing does at ignition.

use super::{Dialect, LogConnection, Tables};
use diesel::backend::Backend;
use diesel::migration::{self, Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion};
use std::fmt;

/// The versions of mobync's migrations, oldest first.
pub const VERSIONS: [&str; 3] = ["00000000000001", "00000000000002", "00000000000003"];

/// The names of mobync's migrations (their directories).
const NAMES: [&str; 3] =
    ["00000000000001_mobync_diffs", "00000000000002_mobync_exact_ids", "00000000000003_mobync_history"];

macro_rules! shipped {
    ($backend:literal) => {
        [
            (
                include_str!(concat!("../../migrations/", $backend, "/00000000000001_mobync_diffs/up.sql")),
                include_str!(concat!("../../migrations/", $backend, "/00000000000001_mobync_diffs/down.sql")),
            ),
            (
                include_str!(concat!("../../migrations/", $backend, "/00000000000002_mobync_exact_ids/up.sql")),
                include_str!(concat!("../../migrations/", $backend, "/00000000000002_mobync_exact_ids/down.sql")),
            ),
            (
                include_str!(concat!("../../migrations/", $backend, "/00000000000003_mobync_history/up.sql")),
                include_str!(concat!("../../migrations/", $backend, "/00000000000003_mobync_history/down.sql")),
            ),
        ]
    };
}

fn sql(dialect: Dialect) -> [(&'static str, &'static str); 3] {
    match dialect {
        Dialect::Sqlite => shipped!("sqlite"),
        Dialect::Postgres => shipped!("postgres"),
        Dialect::Mysql => shipped!("mysql"),
    }
}

/// One migration: its version, its name (its directory), its SQL.
#[derive(Debug, Clone)]
pub struct Step {
    /// The version Diesel records (`__diesel_schema_migrations`).
    pub version: &'static str,
    /// The directory name, `<version>_<what>`.
    pub name: &'static str,
    /// The SQL that applies it.
    pub up: String,
    /// The SQL that reverts it.
    pub down: String,
}

/// Migrations shipped as SQL, as a Diesel [`MigrationSource`]: mobync's
/// own ([`MobyncMigrations::new`]) or those of a crate built on it (the
/// hub's).
#[derive(Debug, Clone)]
pub struct MobyncMigrations {
    steps: Vec<Step>,
}

impl MobyncMigrations {
    /// The migrations of `dialect`, creating `tables`.
    pub fn new(dialect: Dialect, tables: &Tables) -> Self {
        // The shipped SQL names its tables and index `diffs…`; every other
        // name in it is a column or keyword that does not contain "diffs".
        let rename = |text: &str| text.replace("diffs", tables.diffs());
        let steps = sql(dialect)
            .iter()
            .enumerate()
            .map(|(at, (up, down))| Step { version: VERSIONS[at], name: NAMES[at], up: rename(up), down: rename(down) })
            .collect();
        MobyncMigrations { steps }
    }

    /// Migrations of these steps.
    pub fn from_steps(steps: Vec<Step>) -> Self {
        MobyncMigrations { steps }
    }

    /// The SQL that creates the tables, every migration in order.
    pub fn up_sql(&self) -> String {
        self.steps.iter().map(|step| step.up.as_str()).collect::<Vec<_>>().join("\n")
    }
}

struct Name(Step);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl MigrationName for Name {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(self.0.version)
    }
}

struct Metadata;

impl MigrationMetadata for Metadata {}

struct Shipped {
    name: Name,
}

impl<DB: Backend> Migration<DB> for Shipped {
    fn run(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> migration::Result<()> {
        Ok(conn.batch_execute(&self.name.0.up)?)
    }

    fn revert(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> migration::Result<()> {
        Ok(conn.batch_execute(&self.name.0.down)?)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        &Metadata
    }

    fn name(&self) -> &dyn MigrationName {
        &self.name
    }
}

impl<DB: Backend> MigrationSource<DB> for MobyncMigrations {
    fn migrations(&self) -> migration::Result<Vec<Box<dyn Migration<DB>>>> {
        Ok(self
            .steps
            .iter()
            .map(|step| Box::new(Shipped { name: Name(step.clone()) }) as Box<dyn Migration<DB>>)
            .collect())
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
            let up = m.up_sql();
            assert!(!up.contains("diffs"), "{dialect:?}: {up}");
            assert!(up.contains("CREATE TABLE sync_log_clocks"));
            assert!(m.steps[0].down.contains("DROP TABLE sync_log;"));
        }
    }
}
