//! What a Diesel error says of its connection, decided by the error's
//! kind and by which statement failed, not by the server's words: a server
//! whose messages are German or French gives the same answers.
//!
//! Diesel 2.3 exposes no SQLSTATE (PostgreSQL) and no error number
//! (MySQL/MariaDB) beyond its [`DatabaseErrorKind`]s. What holds without
//! the text:
//!
//! - the kind: a closed connection, a command that could not be sent
//!   (PostgreSQL's connection status, not its message), a serialization
//!   failure or a MySQL deadlock (1213), a unique violation;
//! - which statement failed: a statement that only waits for a lock (the
//!   owner's clock, `BEGIN IMMEDIATE`) that fails on a live connection
//!   failed waiting ([`SyncError::database_waiting`]);
//! - whether the connection still answers: a rollback that fails, or a
//!   ping that fails after an error ([`settle`]), is a lost connection.
//!
//! What remains (a value a column cannot hold, a deadlock or lock timeout
//! on an app's row) is recognised only in the messages of sessions whose
//! language mobync pinned ([`pin_messages`]: `lc_messages` `C` on
//! PostgreSQL where the role may set it, `en_US` on MySQL/MariaDB, SQLite's
//! messages are never translated); in a session left in another language
//! it is a 500, never a wrong 422 or 503, and [`messages_language`] says so
//! at ignition.
//!
//! [`DatabaseErrorKind`]: diesel::result::DatabaseErrorKind

use super::{Dialect, LogConnection};
use crate::error::{DbFault, ErrorKind, SyncError};
use diesel::result::{DatabaseErrorKind as Kind, Error};

/// What `err` says of its connection, without its text.
pub fn fault_of(err: &Error) -> DbFault {
    match err {
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _) => DbFault::Lost,
        Error::DatabaseError(Kind::SerializationFailure, _) => DbFault::Busy,
        Error::DatabaseError(Kind::Unknown, info) if pinned_busy(info.message()) => DbFault::Busy,
        // Diesel's transaction manager gave up on the connection; a commit
        // that failed and whose rollback failed too: the connection is what
        // failed (whether the commit took effect is unknown; a retry is
        // harmless).
        Error::BrokenTransactionManager | Error::RollbackErrorOnCommit { .. } => DbFault::Lost,
        _ => DbFault::Other,
    }
}

/// The messages of a lock wait given up, a deadlock or a canceled
/// statement in the pinned languages (PostgreSQL `C`, MariaDB `en_US`) and
/// SQLite's busy codes, whose text SQLite never translates. Matched only
/// where no kind says it: a session in another language gets 500 here.
fn pinned_busy(message: &str) -> bool {
    const PINNED: [&str; 8] = [
        "database is locked",                   // SQLITE_BUSY
        "database table is locked",             // SQLITE_LOCKED
        "deadlock detected",                    // PostgreSQL 40P01
        "canceling statement due to",           // PostgreSQL 55P03, 57014
        "could not obtain lock",                // PostgreSQL 55P03 (NOWAIT)
        "Lock wait timeout exceeded",           // MySQL 1205
        "Query execution was interrupted",      // MySQL 1317, 3024; MariaDB 1969
        "Deadlock found when trying to get lock", // MySQL 1213 where Diesel misses it
    ];
    PINNED.iter().any(|pinned| message.contains(pinned))
}

/// What the holder of a connection does once a piece of work on it failed
/// with `err` (outside a transaction, or after it ended): a connection the
/// error says is lost, or that then answers no ping, is marked broken in
/// Diesel's own state, so that the pool (mobync's, or a `#[database]` one)
/// drops it when it gets it back; the error is then a 503. Other errors
/// come back as they are. The one round trip is on failures only.
pub fn settle<C: LogConnection>(conn: &mut C, err: SyncError) -> SyncError {
    let suspect = match err.fault() {
        Some(DbFault::Lost) => {
            conn.discard();
            return err;
        }
        Some(_) => true,
        None => err.kind == ErrorKind::Unavailable,
    };
    if suspect && !conn.broken() && conn.batch("SELECT 1").is_err() {
        conn.discard();
        let lost = SyncError::of_fault(DbFault::Lost, format!("the connection answers no ping after: {}", err.detail().unwrap_or(&err.message)));
        return match err.diff_id {
            Some(id) => lost.with_diff(id),
            None => lost,
        };
    }
    err
}

/// Pins the language of the server's messages for this session where the
/// session may (MySQL/MariaDB: any user; PostgreSQL: a superuser, or a role
/// granted `SET` on `lc_messages`), so that the remaining messages mobync
/// reads are in one language. A refusal is no error: see
/// [`messages_language`].
pub fn pin_messages<C: LogConnection>(conn: &mut C) {
    let sql = match conn.dialect() {
        Dialect::Postgres => "SET lc_messages = 'C'",
        Dialect::Mysql => "SET lc_messages = 'en_US'",
        Dialect::Sqlite => return,
    };
    if let Err(err) = conn.batch(sql) {
        tracing::debug!("mobync: could not pin the messages' language ({sql}): {err}");
    }
}

/// `None` when the messages of `conn`'s session are in the language mobync
/// reads (or SQLite's), else a warning saying what the operator can do.
pub fn messages_language<C: LogConnection>(conn: &mut C) -> Result<Option<String>, diesel::result::Error> {
    #[derive(diesel::QueryableByName)]
    struct Language {
        #[diesel(sql_type = diesel::sql_types::Text)]
        lang: String,
    }
    let (sql, fix) = match conn.dialect() {
        Dialect::Postgres => (
            "SELECT current_setting('lc_messages') AS lang",
            "mobync's role cannot set it: run `ALTER ROLE <role> SET lc_messages = 'C'` as a superuser, \
             or `GRANT SET ON PARAMETER lc_messages TO <role>` (PostgreSQL 15+)",
        ),
        Dialect::Mysql => ("SELECT CAST(@@lc_messages AS CHAR) AS lang", "set `lc_messages = en_US` for the server"),
        Dialect::Sqlite => return Ok(None),
    };
    let rows: Vec<Language> = conn.load(sql, &[])?;
    let lang = rows.into_iter().next().map(|row| row.lang).unwrap_or_default();
    let english = lang == "C" || lang == "POSIX" || lang.starts_with("C.") || lang.starts_with("en");
    Ok((!english).then(|| {
        format!(
            "the database answers its sessions in `{lang}`: lost connections, lock timeouts on the owner's clock and \
             unique values are still answered right, but a value a column cannot hold, or a deadlock or lock timeout \
             on an app's row, is then answered 500 instead of 422 or 503; {fix}"
        )
    }))
}
