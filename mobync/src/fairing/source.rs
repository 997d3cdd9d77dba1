//! Where the fairing gets its connections: an r2d2 [`Pool`] of mobync's, or
//! the pool of a `rocket_sync_db_pools` `#[database]` (feature
//! `sync-db-pools`), shared with the app's own routes. Either way a sync
//! that gets no connection within a bounded wait is 503, never a hang.

use crate::db::{Dialect, LogConnection, Manager, Pool};
use diesel::r2d2;
use crate::error::SyncError;
use crate::observe::names;
use rocket::tokio::sync::Semaphore;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A piece of work to run on a connection, on a blocking thread.
pub type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// Where a running fairing's connections come from (mobync's pool or a
/// `#[database]` pool), with the fairing's bounded wait: what
/// [`with_connection`] runs a closure on, e.g. for the fairing's
/// [`Running::connections`](super::Running::connections).
#[rocket::async_trait]
pub trait Connections<C>: Send + Sync + 'static {
    /// Runs `job` on a connection; `unavailable` (503) if none came free
    /// within the configured wait. Call [`with_connection`] instead.
    #[doc(hidden)]
    async fn run(&self, job: Job<C>) -> Result<(), SyncError>;
}

/// Runs `f` on a connection of `source`, on a blocking thread, and returns
/// what it returns; `unavailable` (503) if no connection came free within
/// the fairing's wait.
///
/// ```no_run
/// # use mobync::{db::DbConnection, fairing::with_connection, SyncFairing};
/// # async fn count(sync: &SyncFairing<DbConnection, String>) -> Result<(), mobync::SyncError> {
/// use mobync::db::LogConnection;
/// let running = sync.running().expect("the fairing is ignited");
/// with_connection(running.connections(), |conn: &mut DbConnection| conn.batch("SELECT 1")).await?
///     .map_err(mobync::SyncError::database)
/// # }
/// ```
pub async fn with_connection<C, R, F>(source: &dyn Connections<C>, f: F) -> Result<R, SyncError>
where
    C: 'static,
    R: Send + 'static,
    F: FnOnce(&mut C) -> R + Send + 'static,
{
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    source
        .run(Box::new(move |conn: &mut C| {
            let value = f(conn);
            *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        }))
        .await?;
    let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    value.ok_or_else(|| SyncError::internal("a job on a connection did not finish"))
}

/// An r2d2 pool, waited on for at most `wait`. A job first waits (without
/// a thread) for one of as many permits as the pool has connections, and
/// only then takes a blocking thread to check a connection out, as
/// `rocket_sync_db_pools` does: a burst of syncs beyond the pool's size
/// queues on the async side instead of holding blocking threads that
/// only wait.
pub struct PoolSource<C: LogConnection> {
    pool: Pool<C>,
    wait: Duration,
    permits: Arc<Semaphore>,
}

impl<C: LogConnection> PoolSource<C> {
    /// `pool`, waited on for at most `wait` in all (a permit, then a
    /// connection).
    pub(super) fn new(pool: Pool<C>, wait: Duration) -> Self {
        let permits = Arc::new(Semaphore::new(pool.max_size() as usize));
        PoolSource { pool, wait, permits }
    }

    /// A connection of a SQLite pool checked out for good, for group commit
    /// ([`DieselStore::group_commit`](crate::db::DieselStore::group_commit)):
    /// syncs then share one permit fewer. `None` on another backend, or
    /// for a pool of fewer than three connections (with one left for the
    /// syncs, no group could form).
    pub(super) async fn spare(&self) -> Option<r2d2::PooledConnection<Manager<C>>> {
        if self.pool.max_size() < 3 {
            return None;
        }
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let (pool, wait) = (self.pool.clone(), self.wait);
        let conn = rocket::tokio::task::spawn_blocking(move || pool.get_timeout(wait)).await.ok()?.ok()?;
        if conn.dialect() != Dialect::Sqlite {
            return None;
        }
        permit.forget();
        Some(conn)
    }

    /// Gives back the permit of a spare the store did not keep.
    pub(super) fn unspare(&self) {
        self.permits.add_permits(1);
    }
}

/// A wait that ran out: 503.
fn timed_out(err: impl std::fmt::Display) -> SyncError {
    metrics::counter!(names::POOL_TIMEOUTS).increment(1);
    SyncError::unavailable(format!("no database connection: {err}"))
}

#[rocket::async_trait]
impl<C: LogConnection> Connections<C> for PoolSource<C> {
    async fn run(&self, job: Job<C>) -> Result<(), SyncError> {
        let started = std::time::Instant::now();
        let permit = match rocket::tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(SyncError::internal(closed)),
            Err(_) => {
                metrics::histogram!(names::POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
                return Err(timed_out(format!("none came free within {} s", self.wait.as_secs_f64())));
            }
        };
        let (pool, wait) = (self.pool.clone(), self.wait.saturating_sub(started.elapsed()));
        rocket::tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let got = pool.get_timeout(wait);
            metrics::histogram!(names::POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
            let mut conn = got.map_err(timed_out)?;
            job(&mut conn);
            Ok(())
        })
        .await
        .map_err(SyncError::internal)?
    }
}

#[cfg(feature = "sync-db-pools")]
pub use db_pools::DatabaseSource;

#[cfg(feature = "sync-db-pools")]
mod db_pools {
    use super::{Connections, Job};
    use crate::error::SyncError;
    use crate::observe::names;
    use rocket_sync_db_pools::{ConnectionPool, Poolable};

    /// The pool of the app's `#[database("name")] struct K(C);`, as that
    /// attribute's fairing manages it (waiting at most its `timeout`).
    pub struct DatabaseSource<K, C: Poolable> {
        pub(crate) pool: ConnectionPool<K, C>,
    }

    #[rocket::async_trait]
    impl<K: Send + Sync + 'static, C: Poolable> Connections<C> for DatabaseSource<K, C> {
        async fn run(&self, job: Job<C>) -> Result<(), SyncError> {
            let started = std::time::Instant::now();
            let got = self.pool.get().await;
            metrics::histogram!(names::POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
            let conn = got.ok_or_else(|| {
                metrics::counter!(names::POOL_TIMEOUTS).increment(1);
                SyncError::unavailable("no database connection came free within the pool's timeout")
            })?;
            conn.run(move |c: &mut C| job(c)).await;
            Ok(())
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use diesel::SqliteConnection;
    use std::time::Instant;

    #[rocket::async_test]
    async fn a_job_waits_for_a_permit_of_the_pools_size_before_it_takes_a_thread() {
        let dir = std::env::temp_dir().join(format!("mobync-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = dir.join("s.sqlite").display().to_string();
        let settings = crate::db::PoolSettings { max_size: 1, ..Default::default() };
        let source = Arc::new(PoolSource::new(crate::db::pool_with::<SqliteConnection>(&url, &settings).unwrap(), Duration::from_millis(300)));
        assert_eq!(source.permits.available_permits(), 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let holder = source.clone();
        let held = rocket::tokio::spawn(async move { holder.run(Box::new(move |_| rx.recv().unwrap_or(()))).await });
        while source.permits.available_permits() > 0 {
            rocket::tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The pool's one connection is taken: the next job waits on the
        // permit (no thread), then is 503.
        let started = Instant::now();
        let err = source.run(Box::new(|_| ())).await.expect_err("no connection came free");
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(started.elapsed() >= Duration::from_millis(300));
        tx.send(()).unwrap();
        held.await.unwrap().expect("the first job ran");
        assert_eq!(source.permits.available_permits(), 1, "its permit is back");
        source.run(Box::new(|_| ())).await.expect("the next job runs");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
