//! Which fault a refused sync reports: PROTOCOL.md's "each diff, in request
//! order, the first fault wins", and a refused value folded into a create
//! is blamed on the update that brought it. These run only on the failure
//! path: a sync that succeeds never pays for them.

use super::{KnownIds, Mobync, Store, Synchronizer};
use crate::error::{ErrorKind, SyncError};
use crate::owner::Owner;
use crate::protocol::{Diff, OperationType};
use std::collections::HashSet;

/// Whether `err` is a fault of one diff (shape, consistency or rules), as
/// opposed to a failure of the server.
fn is_fault(err: &SyncError) -> bool {
    err.diff_id.is_some()
        && matches!(err.kind, ErrorKind::MalformedRequest | ErrorKind::InvalidDiff | ErrorKind::Forbidden)
}

/// Where `err`'s diff is in the request (after every diff if it names none).
fn position(diffs: &[Diff], err: &SyncError) -> usize {
    err.diff_id.as_deref().and_then(|id| diffs.iter().position(|d| d.id == id)).unwrap_or(usize::MAX)
}

impl<St, Sy> Mobync<St, Sy>
where
    St: Store,
    Sy: Synchronizer<St::Conn>,
{
    /// The first update of the request that names no field besides `id`
    /// and whose row this owner lacks: 422, though the merge would drop it
    /// (PROTOCOL.md). Exempt, as for any update: a row the request creates
    /// or deletes, a row another device deleted since the cursor (deletes
    /// win), and an update an earlier request already brought.
    pub(super) fn rowless_empty_update(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        diffs: &[Diff],
        known: &KnownIds,
        server: &[Diff],
    ) -> Result<Option<(usize, SyncError)>, SyncError> {
        let empty = |d: &Diff| d.op == OperationType::Update && d.data.keys().all(|k| k == "id");
        if !diffs.iter().any(empty) {
            return Ok(None);
        }
        let row = |d: &Diff| (d.model.clone(), d.row_id().to_owned());
        let exempt: HashSet<(String, String)> = diffs
            .iter()
            .filter(|d| d.op != OperationType::Update)
            .chain(server.iter().filter(|d| d.op == OperationType::Delete))
            .map(row)
            .collect();
        for (at, diff) in diffs.iter().enumerate() {
            if !empty(diff) || known.contains(&diff.id) || exempt.contains(&row(diff)) {
                continue;
            }
            if self.sync.read(conn, owner, &diff.model, diff.row_id())?.is_none() {
                let err = SyncError::invalid_diff(format!("there is no {} with id {:?}", diff.model, diff.row_id()));
                return Ok(Some((at, err.with_diff(diff.id.clone()))));
            }
        }
        Ok(None)
    }

    /// A diff failed the checks that need no database with `err`; `before`
    /// are the diffs ahead of it. One of those may have a fault that only
    /// the merge, the rules or the database find: run them as a sync that
    /// is always rolled back, and report its fault if it has one.
    pub(super) fn earliest_fault(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        before: &[Diff],
        owner: &Sy::Owner,
        err: SyncError,
    ) -> SyncError {
        if before.is_empty() {
            return err;
        }
        let key = owner.key();
        let trial: Result<(), SyncError> = self.store.write(conn, |conn| {
            let marks = self.store.lock_marks(conn, &key)?;
            let reading = self.read(conn, owner, cursor, None, marks, before)?;
            self.write(conn, cursor, before, owner, reading)?;
            Err(err.clone())
        });
        match trial {
            Err(earlier) if is_fault(&earlier) => earlier,
            _ => err,
        }
    }

    /// The rules refused `apply` with `err`, in the write transaction. Names
    /// the update that brought a refused value into a create, then looks for
    /// a fault the database finds in a diff ahead of the refused one (a row
    /// this owner lacks, an id already taken): writing those diffs finds it,
    /// and the transaction is rolled back either way.
    pub(super) fn blame(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        request: &[Diff],
        apply: &[Diff],
        err: SyncError,
    ) -> SyncError {
        if err.kind != ErrorKind::Forbidden {
            return err;
        }
        let err = self.blame_folded(conn, owner, request, apply, err);
        let refused = position(request, &err);
        let ahead: Vec<Diff> = apply.iter().filter(|d| request.iter().position(|r| r.id == d.id) < Some(refused)).cloned().collect();
        match self.sync.write_all(conn, owner, &ahead) {
            Err(earlier) if is_fault(&earlier) => earlier,
            _ => err,
        }
    }

    /// A rule refused a create into which the merge folded updates of the
    /// same request: replays the create as sent, then each folded update in
    /// request order, and names the first one the rule refuses (the create
    /// itself if it is refused as sent).
    fn blame_folded(&self, conn: &mut St::Conn, owner: &Sy::Owner, request: &[Diff], apply: &[Diff], err: SyncError) -> SyncError {
        let Some(create) = apply.iter().find(|d| Some(d.id.as_str()) == err.diff_id.as_deref()) else { return err };
        if create.op != OperationType::Create {
            return err;
        }
        let row = (create.model.as_str(), create.row_id());
        let mut candidate: Option<Diff> = None;
        for diff in request.iter().filter(|d| (d.model.as_str(), d.row_id()) == row) {
            let next = match (&candidate, diff.op) {
                (None, OperationType::Create) => Diff { owner: create.owner.clone(), logical_clock: create.logical_clock, ..diff.clone() },
                (Some(so_far), OperationType::Update) => {
                    let mut next = so_far.clone();
                    let fields = diff.data.iter().filter(|(k, _)| k.as_str() != "id");
                    next.data.extend(fields.map(|(k, v)| (k.clone(), v.clone())));
                    next
                }
                _ => continue,
            };
            if let Err(refused) = self.sync.validate_all(conn, owner, std::slice::from_ref(&next)) {
                if refused.kind == ErrorKind::Forbidden {
                    return SyncError { diff_id: Some(diff.id.clone()), ..refused };
                }
            }
            candidate = Some(next);
        }
        err
    }
}
