//! Syncs in flight, counted from the request's arrival until its answer's
//! body is dropped (written out, or its connection gone), so that a server
//! can wait for them before it exits.
//!
//! Rocket 0.5's `launch()` may return as soon as its accept loop ends, while
//! request tasks still run (it then returns a `Shutdown` error); an app that
//! returns from `main` at that moment drops those tasks, and a sync that
//! committed is never answered. [`super::SyncFairing::drained`] is what
//! `main` awaits first.

use super::SyncFairing;
use crate::db::LogConnection;
use crate::owner::Owner;
use rocket::tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use rocket::Rocket;
use std::io::{Cursor, SeekFrom};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The count of syncs in flight.
#[derive(Debug, Default, Clone)]
pub(super) struct InFlight(Arc<AtomicUsize>);

/// One sync in flight, until dropped.
#[derive(Debug)]
pub(super) struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// Counts one more sync until the ticket is dropped.
    pub(super) fn enter(&self) -> Ticket {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ticket(self.0.clone())
    }

    /// How many now.
    pub(super) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits until none is in flight, at most `within`; whether none is.
    pub(super) async fn drained(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            rocket::tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// An answer's body that holds its sync's ticket until it is dropped.
pub(super) struct Body {
    bytes: Cursor<Vec<u8>>,
    _ticket: Ticket,
}

impl Body {
    pub(super) fn new(bytes: Vec<u8>, ticket: Ticket) -> Self {
        Body { bytes: Cursor::new(bytes), _ticket: ticket }
    }
}

impl AsyncRead for Body {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.bytes).poll_read(cx, buf)
    }
}

impl AsyncSeek for Body {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.bytes).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Pin::new(&mut self.bytes).poll_complete(cx)
    }
}

/// A streamed answer's body that holds its sync's ticket until it is
/// dropped.
pub(super) struct Streamed<B> {
    body: B,
    _ticket: Ticket,
}

impl<B> Streamed<B> {
    pub(super) fn new(body: B, ticket: Ticket) -> Self {
        Streamed { body, _ticket: ticket }
    }
}

impl<B: AsyncRead + Unpin> AsyncRead for Streamed<B> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.body).poll_read(cx, buf)
    }
}

impl<C: LogConnection, O: Owner> SyncFairing<C, O> {
    /// Syncs in flight now: from their arrival until their answer is
    /// written (for the route the fairing or the app mounted as a handler
    /// value; until [`respond_as`](SyncFairing::respond_as) returns for an
    /// app's own route).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.count()
    }

    /// Waits until no sync is in flight, at most `within`; whether none is.
    /// What `main` awaits once `launch()` returned, before it returns:
    /// Rocket 0.5 may return from `launch()` while requests still run (with
    /// a `Shutdown` error), and returning from `main` then would drop syncs
    /// that committed before they are answered.
    ///
    /// ```no_run
    /// # use mobync::{db::DbConnection, SyncFairing};
    /// # async fn serve(rocket: rocket::Rocket<rocket::Build>, sync: SyncFairing<DbConnection, String>) {
    /// let launched = rocket.launch().await;
    /// sync.drained(std::time::Duration::from_secs(10)).await;
    /// # drop(launched);
    /// # }
    /// ```
    pub async fn drained(&self, within: Duration) -> bool {
        self.shared.in_flight.drained(within).await
    }

    /// What `main` does with `launch()`'s result: waits (up to 30 s) until
    /// no sync is in flight, then passes the result on, except a
    /// `Shutdown` error once every sync was answered (Rocket 0.5 reports
    /// one when its accept loop ended before its request tasks did).
    ///
    /// ```no_run
    /// # use mobync::{db::DbConnection, SyncFairing};
    /// # async fn serve(rocket: rocket::Rocket<rocket::Build>, sync: SyncFairing<DbConnection, String>) -> Result<(), rocket::Error> {
    /// sync.finish(rocket.attach(sync.clone()).launch().await).await
    /// # }
    /// ```
    pub async fn finish<P: rocket::Phase>(&self, launched: Result<Rocket<P>, rocket::Error>) -> Result<(), rocket::Error> {
        let drained = self.drained(Duration::from_secs(30)).await;
        match launched {
            Ok(_) => Ok(()),
            Err(err) if drained && matches!(err.kind(), rocket::error::ErrorKind::Shutdown(..)) => {
                tracing::info!("mobync: every sync in flight at shutdown was answered");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rocket::async_test]
    async fn a_ticket_counts_until_its_body_is_dropped() {
        let in_flight = InFlight::default();
        let body = Body::new(b"{}".to_vec(), in_flight.enter());
        assert_eq!(in_flight.count(), 1);
        assert!(!in_flight.drained(Duration::from_millis(30)).await);
        drop(body);
        assert!(in_flight.drained(Duration::from_millis(30)).await);
    }
}
