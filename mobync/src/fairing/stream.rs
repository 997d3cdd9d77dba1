//! A sync's answer written out while it is read (PROTOCOL.md, "Bounded
//! catch-up"): a small answer is sent whole, with its length; past
//! [`CHUNK`] bytes the answer streams, the database thread handing chunks
//! to the socket through a queue of [`DEPTH`] chunks. A slow client makes
//! the database thread wait: the server never holds more than a few chunks
//! of one answer, however many diffs it sends.

use crate::engine::Sink;
use crate::error::SyncError;
use crate::protocol::{AnswerJson, Diff};
use rocket::tokio::io::{AsyncRead, ReadBuf};
use rocket::tokio::sync::{mpsc, oneshot};
use std::io::{self, Cursor, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The size past which an answer streams, and of each chunk then.
pub const CHUNK: usize = 64 * 1024;

/// Chunks between the database thread and the socket.
const DEPTH: usize = 4;

/// What the database thread hands the socket.
type Chunk = io::Result<Vec<u8>>;

/// The answer's JSON as a [`Sink`]: kept whole while it is under
/// [`CHUNK`]; past it, sent on in chunks to the [`Streamed`] body it
/// opened.
pub struct JsonSink {
    out: Vec<u8>,
    json: Option<AnswerJson>,
    opened: Option<oneshot::Sender<Streamed>>,
    queue: Option<mpsc::Sender<Chunk>>,
    sent: usize,
}

/// The other end of a [`JsonSink`]: told when the answer starts to stream.
pub type Opened = oneshot::Receiver<Streamed>;

impl JsonSink {
    /// A sink, and where the streamed body appears if the answer grows past
    /// [`CHUNK`].
    pub fn new() -> (Self, Opened) {
        let (opened, on_open) = oneshot::channel();
        (JsonSink { out: Vec::new(), json: None, opened: Some(opened), queue: None, sent: 0 }, on_open)
    }

    /// Whether the answer is streaming (its first bytes may be out).
    #[cfg(test)]
    pub fn streaming(&self) -> bool {
        self.queue.is_some()
    }

    /// Hands the bytes written so far to the socket, opening the stream
    /// first.
    fn flush(&mut self) -> Result<(), SyncError> {
        let gone = || SyncError::timeout("the client is gone: the answer was not read");
        if self.queue.is_none() {
            let (queue, chunks) = mpsc::channel(DEPTH);
            let opened = self.opened.take().ok_or_else(gone)?;
            opened.send(Streamed { chunks, current: Cursor::new(Vec::new()) }).map_err(|_| gone())?;
            self.queue = Some(queue);
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK + CHUNK / 4));
        self.sent += chunk.len();
        let queue = self.queue.as_ref().ok_or_else(gone)?;
        queue.blocking_send(Ok(chunk)).map_err(|_| gone())
    }

    /// The end of a sync that succeeded: the whole answer if it never
    /// streamed (`None` once the rest is sent on); the bytes sent either
    /// way.
    pub fn finish(mut self) -> (Option<Vec<u8>>, usize) {
        if let Some(json) = self.json.take() {
            json.end(&mut self.out);
        }
        match self.queue.take() {
            None => {
                let size = self.out.len();
                (Some(self.out), size)
            }
            Some(queue) => {
                let size = self.sent + self.out.len();
                // A client gone by now has what it read: nothing to do.
                let _ = queue.blocking_send(Ok(self.out));
                (None, size)
            }
        }
    }

    /// The end of a sync that failed after its answer began to stream: the
    /// connection is cut (no status can be sent any more), which a client
    /// takes for a lost answer and retries.
    pub fn abort(mut self, err: &SyncError) {
        if let Some(queue) = self.queue.take() {
            let _ = queue.blocking_send(Err(io::Error::other(err.to_string())));
        }
    }
}

impl Sink for JsonSink {
    fn start(&mut self, logical_clock: i64, has_more: Option<bool>) -> Result<(), SyncError> {
        self.json = Some(AnswerJson::start(&mut self.out, true, "", logical_clock, has_more));
        Ok(())
    }

    fn diff(&mut self, diff: Diff) -> Result<(), SyncError> {
        if let Some(json) = self.json.as_mut() {
            json.diff(&mut self.out, &diff);
        }
        if self.out.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }
}

/// A streamed answer's body: the chunks as the database thread hands them
/// over; an error cuts the connection.
pub struct Streamed {
    chunks: mpsc::Receiver<Chunk>,
    current: Cursor<Vec<u8>>,
}

impl AsyncRead for Streamed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let this = &mut *self;
            if this.current.position() < this.current.get_ref().len() as u64 {
                let n = this.current.read(buf.initialize_unfilled())?;
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.current = Cursor::new(chunk),
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(err)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{OperationType::Create, SyncResponse};
    use rocket::tokio::io::AsyncReadExt;
    use serde_json::json;

    fn diffs(n: usize) -> Vec<Diff> {
        (0..n).map(|i| Diff::new(format!("d{i}"), Create, "task", json!({"id": format!("r{i}"), "title": "x".repeat(100)})).at(1, 1)).collect()
    }

    fn fill(sink: &mut JsonSink, diffs: &[Diff]) {
        sink.start(7, Some(false)).unwrap();
        for diff in diffs {
            sink.diff(diff.clone()).unwrap();
        }
    }

    #[test]
    fn a_small_answer_is_whole_and_the_same_bytes_as_into_json() {
        let (mut sink, _opened) = JsonSink::new();
        let small = diffs(3);
        fill(&mut sink, &small);
        assert!(!sink.streaming());
        let (whole, size) = sink.finish();
        let expected = SyncResponse::ok(7, small).paged(false).into_json();
        assert_eq!(whole.as_deref(), Some(&expected[..]));
        assert_eq!(size, expected.len());
    }

    #[rocket::async_test]
    async fn a_large_answer_streams_the_same_bytes_and_waits_for_its_reader() {
        let (sink, opened) = JsonSink::new();
        let large = diffs(5_000);
        let expected = SyncResponse::ok(7, large.clone()).paged(false).into_json();
        let writer = rocket::tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            fill(&mut sink, &large);
            assert!(sink.streaming());
            sink.finish()
        });
        let mut body = opened.await.expect("the answer streams");
        let mut read = Vec::new();
        body.read_to_end(&mut read).await.unwrap();
        let (whole, size) = writer.await.unwrap();
        assert!(whole.is_none());
        assert_eq!((read.len(), size), (expected.len(), expected.len()));
        assert_eq!(read, expected);
    }

    #[rocket::async_test]
    async fn a_failure_after_the_stream_began_cuts_it() {
        let (sink, opened) = JsonSink::new();
        let writer = rocket::tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            fill(&mut sink, &diffs(2_000));
            sink.abort(&SyncError::unavailable("the database went away"));
        });
        let mut body = opened.await.expect("the answer streams");
        let mut read = Vec::new();
        assert!(body.read_to_end(&mut read).await.is_err());
        writer.await.unwrap();
    }

    #[rocket::async_test]
    async fn a_client_gone_stops_the_reading() {
        let (sink, opened) = JsonSink::new();
        let writer = rocket::tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            sink.start(1, None).unwrap();
            (0..100_000).try_for_each(|i| sink.diff(diffs(1).remove(0).at(1, i)))
        });
        drop(opened.await.expect("the answer streams"));
        let stopped = writer.await.unwrap().unwrap_err();
        assert_eq!(stopped.kind.status(), 408);
    }
}
