//! Where the fairing gets its connections: an r2d2 [`Pool`] of mobync's, or
//! the pool of a `rocket_sync_db_pools` `#[database]` (feature
//! `sync-db-pools`), shared with the app's own routes. Either way a sync
//! that gets no connection within a bounded wait is 503, never a hang.

use crate::db::{LogConnection, Pool};
use crate::error::SyncError;
use crate::observe::names;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A piece of work to run on a connection, on a blocking thread.
pub type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// Something that runs [`Job`]s on connections of type `C`.
#[rocket::async_trait]
pub trait Connections<C>: Send + Sync + 'static {
    /// Runs `job` on a connection; `unavailable` (503) if none came free
    /// within the configured wait.
    async fn run(&self, job: Job<C>) -> Result<(), SyncError>;
}

/// Runs `f` on a connection of `source` and returns what it returns.
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

/// An r2d2 pool, waited on for at most `wait`.
pub struct PoolSource<C: LogConnection> {
    pub(super) pool: Pool<C>,
    pub(super) wait: Duration,
}

#[rocket::async_trait]
impl<C: LogConnection> Connections<C> for PoolSource<C> {
    async fn run(&self, job: Job<C>) -> Result<(), SyncError> {
        let (pool, wait) = (self.pool.clone(), self.wait);
        rocket::tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let got = pool.get_timeout(wait);
            metrics::histogram!(names::POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
            let mut conn = got.map_err(|err| {
                metrics::counter!(names::POOL_TIMEOUTS).increment(1);
                SyncError::unavailable(format!("no database connection: {err}"))
            })?;
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
