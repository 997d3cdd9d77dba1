//! Syncs in flight, counted from the request's arrival until its answer's
//! body is dropped (written out, or its connection gone), so that a server
//! can wait for them before it exits.
//!
//! Rocket 0.5's `launch()` may return as soon as its accept loop ends, while
//! request tasks still run (it then returns a `Shutdown` error); an app that
//! returns from `main` at that moment drops those tasks, and a sync that
//! committed is never answered. [`super::SyncFairing::drained`] is what
//! `main` awaits first.

use rocket::tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
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
