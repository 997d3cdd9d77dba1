//! A statement of the generated code that Diesel keeps prepared although
//! it would not: the rules' read of rows by id, an `IN (…)` list whose text
//! depends on the list's length (Diesel keeps none on SQLite or MySQL).
//! Kept, a statement is looked up by its text, so a wrong one is never
//! reused; what must be bounded is how many texts a connection keeps:
//! [`KeptSets`] keeps the first few shapes of each model's statement, and
//! the rest are compiled at each execution as before. An `UPDATE` cannot
//! be kept by wrapping Diesel's: Diesel executes it through a reference,
//! whose check walks the statement, and an update's walk says "never
//! keep". [`KeptUpdate`] is the same `UPDATE`, written out here, whose walk
//! says "never keep" only when it is not to be kept; [`KeptInsert`] the
//! same for a multi-row INSERT, whose text depends on its number of rows.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::QueryResult;
use std::sync::{Mutex, PoisonError};

/// How many shapes of one model's statement are kept (each connection
/// then holds at most this many texts of it).
pub const KEPT_SHAPES: usize = 32;

/// `query`, kept prepared by its text when `keep`.
pub struct Kept<Q> {
    query: Q,
    keep: bool,
}

impl<Q> Kept<Q> {
    /// `query`, kept prepared if `keep`.
    pub fn new(query: Q, keep: bool) -> Self {
        Kept { query, keep }
    }
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Kept<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        // Keyed by its text (no static query id): safe whatever the text.
        Ok(self.keep || self.query.is_safe_to_cache_prepared(backend)?)
    }
}

impl<Q> QueryId for Kept<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Kept<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> diesel::RunQueryDsl<Conn> for Kept<Q> {}

/// `UPDATE <table> SET <set> WHERE <filter>`, kept prepared by its text
/// when `keep`: the text depends on which fields `set` holds (an update
/// sets only the fields its diff holds), so the caller keeps the first
/// shapes of it with [`KeptSets`]. `set` must not be empty (no field to
/// set is no `UPDATE`).
pub struct KeptUpdate<F, V, W> {
    from: F,
    set: V,
    filter: W,
    keep: bool,
}

impl<F, V, W> KeptUpdate<F, V, W> {
    /// The `UPDATE` of `table` setting `set` (a changeset: `AsChangeset`'s
    /// value) where `filter` holds.
    pub fn new<T>(table: T, set: V, filter: W, keep: bool) -> Self
    where
        T: diesel::QuerySource<FromClause = F>,
    {
        KeptUpdate { from: table.from_clause(), set, filter, keep }
    }
}

impl<F, V, W, DB> QueryFragment<DB> for KeptUpdate<F, V, W>
where
    DB: Backend,
    F: QueryFragment<DB>,
    V: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.keep {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<F, V, W> QueryId for KeptUpdate<F, V, W> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, V, W, Conn> diesel::RunQueryDsl<Conn> for KeptUpdate<F, V, W> {}

/// A row of a [`KeptInsert`]: its columns, and its values as binds in
/// the same order. `#[derive(Syncable)]` implements it for the row a
/// create inserts.
pub trait InsertRow<DB: Backend> {
    /// Pushes `"a", "b", …`: the quoted names of the row's columns.
    fn columns(out: AstPass<'_, '_, DB>) -> QueryResult<()>;
    /// Pushes one bind a column, in the order of [`columns`](InsertRow::columns).
    fn values<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

/// `INSERT INTO <table> (<columns>) VALUES (…), (…)` of `rows`, kept
/// prepared by its text when `keep`: Diesel's own multi-row INSERT (of a
/// slice) is compiled at every execution, and on PostgreSQL prepared in a
/// round trip of its own. The text depends on the number of rows, so the
/// caller keeps the first lengths with [`KeptSets`]. `rows` must not be
/// empty; each binds every column (no `DEFAULT`).
pub struct KeptInsert<'a, F, R> {
    into: F,
    rows: &'a [R],
    keep: bool,
}

impl<'a, F, R> KeptInsert<'a, F, R> {
    /// The INSERT of `rows` into `table`.
    pub fn new<T>(table: T, rows: &'a [R], keep: bool) -> Self
    where
        T: diesel::QuerySource<FromClause = F>,
    {
        KeptInsert { into: table.from_clause(), rows, keep }
    }
}

impl<F, R, DB> QueryFragment<DB> for KeptInsert<'_, F, R>
where
    DB: Backend,
    F: QueryFragment<DB>,
    R: InsertRow<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.keep {
            out.unsafe_to_cache_prepared();
        }
        if self.rows.is_empty() {
            return Err(diesel::result::Error::QueryBuilderError("an INSERT of no row".into()));
        }
        out.push_sql("INSERT INTO ");
        self.into.walk_ast(out.reborrow())?;
        out.push_sql(" (");
        R::columns(out.reborrow())?;
        out.push_sql(") VALUES ");
        for (at, row) in self.rows.iter().enumerate() {
            out.push_sql(if at == 0 { "(" } else { ", (" });
            row.values(out.reborrow())?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl<F, R> QueryId for KeptInsert<'_, F, R> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, R, Conn> diesel::RunQueryDsl<Conn> for KeptInsert<'_, F, R> {}

/// The shapes of one model's statement whose text is kept: the first
/// [`KEPT_SHAPES`] seen (a shape is a number: the length of an id list).
pub struct KeptSets(Mutex<Vec<u64>>);

impl KeptSets {
    /// None seen yet.
    pub const fn new() -> Self {
        KeptSets(Mutex::new(Vec::new()))
    }

    /// Whether the statement of `shape` is kept.
    pub fn keeps(&self, shape: u64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&shape) {
            return true;
        }
        if seen.len() < KEPT_SHAPES {
            seen.push(shape);
            return true;
        }
        false
    }
}

impl Default for KeptSets {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_shapes_are_kept_and_no_more() {
        let sets = KeptSets::new();
        for shape in 0..KEPT_SHAPES as u64 {
            assert!(sets.keeps(shape));
        }
        assert!(!sets.keeps(1_000));
        assert!(sets.keeps(3), "a shape kept stays kept");
    }
}
