//! Compaction from the running fairing: [`Running::compact`] and
//! [`Running::purge_tombstones`] for the app and the admin route, and the
//! background policy of the configuration (`compact_every`,
//! `compact_keep`, `tombstone_age`): every round visits the owners with
//! more than twice `compact_keep` stamps above their horizon, in pieces of
//! owners, each compaction in steps that hold the owner's lock briefly.

use super::{seconds, with_connection, Live, Running};
use crate::db::LogConnection;
use crate::engine::{Compacted, Store};
use crate::error::SyncError;
use crate::owner::Owner;
use rocket::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// Owners one round reads at a time.
const OWNERS: usize = 100;

impl<C: LogConnection, O: Owner> Running<C, O> {
    /// Compacts the log of the owner whose key is `owner` below `below`
    /// (its clock when `None`), on a connection of the fairing: `None` for
    /// an owner the log has never seen, 400 for a horizon above its clock.
    /// See [`Mobync::compact`](crate::Mobync::compact).
    pub async fn compact(&self, owner: &str, below: Option<i64>) -> Result<Option<Compacted>, SyncError> {
        let (live, owner) = (self.0.clone(), owner.to_owned());
        with_connection(&*self.0.source, move |conn: &mut C| live.endpoint.engine().compact(conn, &owner, below)).await?
    }

    /// Purges the tombstones of `owner`'s rows deleted below `below` (at
    /// most its horizon); devices older than that get 410. See
    /// [`Mobync::purge_tombstones`](crate::Mobync::purge_tombstones).
    pub async fn purge_tombstones(&self, owner: &str, below: i64) -> Result<Option<(i64, usize)>, SyncError> {
        let (live, owner) = (self.0.clone(), owner.to_owned());
        with_connection(&*self.0.source, move |conn: &mut C| live.endpoint.engine().purge_tombstones(conn, &owner, below))
            .await?
    }
}

/// Starts the background policy if the configuration asks for it; it ends
/// with the server.
pub(super) fn start<C: LogConnection, O: Owner>(live: Arc<Live<C, O>>, shutdown: Shutdown) {
    let every = match seconds(live.config.compact_every, "compact_every") {
        Ok(every) if !every.is_zero() => every,
        _ => return,
    };
    tracing::info!(every_s = every.as_secs_f64(), keep = live.config.compact_keep, "mobync: background compaction on");
    rocket::tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = rocket::tokio::time::sleep(every) => {}
            }
            if let Err(err) = round(&live).await {
                tracing::warn!("mobync: background compaction: {err}");
            }
        }
    });
}

/// One round over every owner that is behind.
async fn round<C: LogConnection, O: Owner>(live: &Arc<Live<C, O>>) -> Result<(), SyncError> {
    let keep = live.config.compact_keep;
    let age = seconds(live.config.tombstone_age, "tombstone_age").map_err(SyncError::internal)?;
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let mut after = String::new();
    loop {
        let (from, at) = (live.clone(), after.clone());
        let owners = with_connection(&*live.source, move |conn: &mut C| {
            from.endpoint.engine().store().owners_behind(conn, keep.saturating_mul(2), &at, OWNERS)
        })
        .await??;
        let Some(last) = owners.last().cloned() else { return Ok(()) };
        for owner in owners {
            let job = live.clone();
            let done = with_connection(&*live.source, move |conn: &mut C| {
                let engine = job.endpoint.engine();
                let clock = engine.store().marks(conn, &owner)?.map_or(0, |m| m.clock);
                let compacted = engine.compact(conn, &owner, Some(clock.saturating_sub(keep).max(0)))?;
                if age_ms > 0 {
                    engine.purge_older_than(conn, &owner, age_ms)?;
                }
                Ok::<_, SyncError>((owner, compacted))
            })
            .await??;
            if let (owner, Some(c)) = done {
                tracing::info!(owner, horizon = c.horizon, before = c.entries_before, after = c.entries_after, "mobync: compacted");
            }
        }
        after = last;
        // Let syncs have the connections between pieces.
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
