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
//! - MySQL/MariaDB's error number: asked with `GET DIAGNOSTICS` right after
//!   the failed statement ([`said`]).
//!
//! What remains on PostgreSQL (a value a column cannot hold, a deadlock or
//! lock timeout on an app's row) is recognised only in the messages of
//! sessions whose language mobync pinned ([`pin_messages`]: `lc_messages`
//! `C` where the role may set it); in a session left in another language
//! it is a 500, never a wrong 422 or 503, and [`messages_language`] says so
//! at ignition. MySQL/MariaDB sessions are pinned to `en_US` too, for the
//! column a unique violation names in its message (the status does not
//! depend on it).
//!
//! [`DatabaseErrorKind`]: diesel::result::DatabaseErrorKind

use super::{Dialect, LogConnection};
use crate::error::{DbFault, ErrorKind, SyncError};
use diesel::result::{DatabaseErrorKind as Kind, Error};

/// What the server said of the statement that just failed on a
/// connection, asked without its words (see [`said`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// Nothing more than Diesel's error (PostgreSQL, SQLite; an error that
    /// is no database error).
    Nothing,
    /// MySQL/MariaDB's error number.
    Number(u32),
    /// The connection does not answer any more: it is lost.
    NoAnswer,
}

/// Asks the server, right after a statement on `conn` failed with `err`
/// and before any other statement, what it failed with: MySQL/MariaDB's
/// error number (`GET DIAGNOSTICS`, which reads and keeps the diagnostics
/// area), or that the connection no longer answers. Elsewhere nothing is
/// asked (PostgreSQL keeps no such area; SQLite's connection cannot be
/// lost). Two round trips, on failures only.
pub fn said<C: LogConnection>(conn: &mut C, err: &Error) -> Said {
    #[derive(diesel::QueryableByName)]
    struct Number {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        n: Option<i64>,
    }
    if conn.dialect() != Dialect::Mysql || !matches!(err, Error::DatabaseError(..)) {
        return Said::Nothing;
    }
    if conn.batch("GET DIAGNOSTICS CONDITION 1 @mobync_errno = MYSQL_ERRNO").is_err() {
        // No condition to read (an error of the client library), or no
        // connection: a ping tells which.
        return if conn.batch("SELECT 1").is_err() { Said::NoAnswer } else { Said::Nothing };
    }
    match conn.load::<Number>("SELECT CAST(@mobync_errno AS SIGNED) AS n", &[]) {
        Ok(rows) => rows.first().and_then(|row| row.n).and_then(|n| u32::try_from(n).ok()).map_or(Said::Nothing, Said::Number),
        Err(_) => Said::NoAnswer,
    }
}

/// What `err` says of its connection, without its text.
pub fn fault_of(err: &Error) -> DbFault {
    fault_with(err, Said::Nothing)
}

/// What `err`, of which the server `said` what, says of its connection.
pub fn fault_with(err: &Error, said: Said) -> DbFault {
    match (said, err) {
        (Said::NoAnswer, _) => DbFault::Lost,
        (Said::Number(n), _) if mysql_fault(n).is_some() => mysql_fault(n).unwrap_or(DbFault::Other),
        (_, Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _)) => DbFault::Lost,
        (_, Error::DatabaseError(Kind::SerializationFailure, _)) => DbFault::Busy,
        (Said::Nothing, Error::DatabaseError(Kind::Unknown, info)) if pinned_busy(info.message()) => DbFault::Busy,
        // Diesel's transaction manager gave up on the connection; a commit
        // that failed and whose rollback failed too: the connection is what
        // failed (whether the commit took effect is unknown; a retry is
        // harmless).
        (_, Error::BrokenTransactionManager | Error::RollbackErrorOnCommit { .. }) => DbFault::Lost,
        _ => DbFault::Other,
    }
}

/// The fault of a MySQL/MariaDB error number, where it is one.
fn mysql_fault(number: u32) -> Option<DbFault> {
    match number {
        // Server shutdown, connection killed, gone away, lost, idle timeout.
        1053 | 1927 | 2006 | 2013 | 4031 => Some(DbFault::Lost),
        // Lock wait timeout, deadlock, query interrupted (KILL QUERY),
        // MySQL's max_execution_time, MariaDB's max_statement_time.
        1205 | 1213 | 1317 | 3024 | 1969 => Some(DbFault::Busy),
        _ => None,
    }
}

/// What is wrong with a value a column refused, by MySQL/MariaDB's error
/// number: out of range (1264, 1690), too long (1406), not valid for the
/// column (1366: an integer, a decimal, or a character the column's
/// character set lacks; 1292, 1265, 1367).
pub(crate) fn mysql_value_fault(number: u32) -> Option<&'static str> {
    match number {
        1264 | 1690 => Some("a value is out of its column's range"),
        1406 => Some("a value is too long for its column"),
        1366 | 1292 | 1265 | 1367 => Some("a value is not valid for its column"),
        _ => None,
    }
}

/// PostgreSQL's messages, in the `C` locale mobync pins its sessions to
/// where the role may (no SQLSTATE reaches mobync through Diesel 2.3), of a
/// lock wait given up, a deadlock or a canceled statement; and SQLite's
/// strings of its result codes SQLITE_BUSY and SQLITE_LOCKED, which SQLite
/// never translates. Matched only where no kind or number says it: in a
/// session left in another language these are 500.
fn pinned_busy(message: &str) -> bool {
    const POSTGRES: [&str; 3] = [
        "deadlock detected",           // 40P01
        "canceling statement due to",  // 55P03 lock timeout, 57014 statement timeout or cancel
        "could not obtain lock",       // 55P03 (NOWAIT)
    ];
    message == "database is locked"
        || message == "database table is locked"
        || POSTGRES.iter().any(|pinned| message.starts_with(pinned))
}

/// The [`SyncError`] of `err`, which the last statement on `conn` failed
/// with: [`said`] asked first, then [`fault_with`].
pub fn failed<C: LogConnection>(conn: &mut C, err: Error) -> SyncError {
    let said = said(conn, &err);
    SyncError::of_fault(fault_with(&err, said), err)
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
    let (sql, what) = match conn.dialect() {
        Dialect::Postgres => (
            "SELECT current_setting('lc_messages') AS lang",
            "lost connections, lock timeouts on the owner's clock and unique values are still answered right, \
             but a value a column cannot hold is answered 500 instead of 422, and a deadlock or lock timeout on an \
             app's row 500 instead of 503. mobync's role may not set `lc_messages`: run \
             `ALTER ROLE <role> SET lc_messages = 'C'` as a superuser, or (PostgreSQL 15+) \
             `GRANT SET ON PARAMETER lc_messages TO <role>`",
        ),
        Dialect::Mysql => (
            "SELECT CAST(@@lc_messages AS CHAR) AS lang",
            "every status is still right (mobync reads error numbers), but a unique violation's message no longer \
             names the column; set `lc_messages = en_US` for the server",
        ),
        Dialect::Sqlite => return Ok(None),
    };
    let rows: Vec<Language> = conn.load(sql, &[])?;
    let lang = rows.into_iter().next().map(|row| row.lang).unwrap_or_default();
    let english = lang == "C" || lang == "POSIX" || lang.starts_with("C.") || lang.starts_with("en");
    Ok((!english).then(|| format!("the database answers mobync's sessions in `{lang}`, not in English: {what}")))
}

/// Logs [`messages_language`]'s warning for `conn`'s session, if it has
/// one: what the sync fairing does at ignition.
pub fn warn_unless_english<C: LogConnection>(conn: &mut C) {
    match messages_language(conn) {
        Ok(Some(warning)) => tracing::warn!("mobync: {warning}"),
        Ok(None) => {}
        Err(err) => tracing::warn!("mobync: could not read the language of the database's messages: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::DatabaseErrorKind as Kind;

    fn unknown(message: &str) -> Error {
        Error::DatabaseError(Kind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn the_kind_or_the_number_decides_not_the_words() {
        assert_eq!(fault_of(&Error::DatabaseError(Kind::ClosedConnection, Box::new("Verbindung beendet".to_owned()))), DbFault::Lost);
        assert_eq!(fault_of(&Error::DatabaseError(Kind::SerializationFailure, Box::new("x".to_owned()))), DbFault::Busy);
        // MySQL/MariaDB by number, whatever the language.
        assert_eq!(fault_with(&unknown("Beim Warten auf eine Sperre wurde die Wartezeit überschritten"), Said::Number(1205)), DbFault::Busy);
        assert_eq!(fault_with(&unknown("Verbindung wurde abgebrochen"), Said::Number(1927)), DbFault::Lost);
        assert_eq!(fault_with(&unknown("anything"), Said::NoAnswer), DbFault::Lost);
        assert_eq!(fault_with(&unknown("Daten zu lang für Feld 'title'"), Said::Number(1406)), DbFault::Other);
        assert_eq!(mysql_value_fault(1406), Some("a value is too long for its column"));
        // A number says it even when the message reads like an English one.
        assert_eq!(fault_with(&unknown("deadlock detected"), Said::Number(1146)), DbFault::Other);
        // A German message of an unknown kind is a 500, never a guess.
        assert_eq!(fault_of(&unknown("storniere Anfrage wegen Zeitüberschreitung einer Sperre")), DbFault::Other);
        // PostgreSQL's pinned C messages and SQLite's result-code strings.
        assert_eq!(fault_of(&unknown("canceling statement due to lock timeout")), DbFault::Busy);
        assert_eq!(fault_of(&unknown("database is locked")), DbFault::Busy);
    }

    #[test]
    fn building_an_error_from_a_database_error_only_builds_it() {
        let err = SyncError::database(unknown("relation \"x\" does not exist"));
        assert_eq!((err.kind, err.fault()), (ErrorKind::Internal, Some(DbFault::Other)));
        assert_eq!(err.message, "internal server error");
        assert_eq!(err.detail(), Some("relation \"x\" does not exist"));
        let waiting = SyncError::database_waiting(unknown("Sperrzeitüberschreitung"));
        assert_eq!((waiting.kind, waiting.fault()), (ErrorKind::Unavailable, Some(DbFault::Busy)));
    }
}
