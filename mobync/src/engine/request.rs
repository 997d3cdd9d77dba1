//! One sync request as every road into the engine hands it over (HTTP, the
//! hub, tests), and where its answer goes: [`Mobync::run`](super::Mobync::run).

use crate::error::SyncError;
use crate::protocol::{Diff, Paging, SyncResponse};

/// One sync request, for [`Mobync::run`](super::Mobync::run).
///
/// ```
/// use mobync::engine::Request;
/// let owner = "alice".to_string();
/// let request = Request::new(&owner, 0, vec![]);
/// assert_eq!(request.cursor, Some(0));
/// assert!(!request.within);
/// ```
#[derive(Debug)]
pub struct Request<'a, O> {
    /// The authenticated owner.
    pub owner: &'a O,
    /// The device's cursor; `None`: the owner's clock (the caller has seen
    /// everything, as the hub has).
    pub cursor: Option<i64>,
    /// The request's diffs, up to the first one that could not be decoded.
    pub diffs: Vec<Diff>,
    /// The fault of that first undecodable diff, if any: a fault of a diff
    /// ahead of it wins, else it is answered.
    pub undecoded: Option<SyncError>,
    /// Version 2's paging, if the client speaks it.
    pub paging: Option<Paging>,
    /// Whether the caller already opened the write transaction the sync
    /// runs in (the hub writes its messages in the same one): the clock is
    /// locked first, and the first fault is answered as found.
    pub within: bool,
}

impl<'a, O> Request<'a, O> {
    /// A version-1 request of `owner` at `cursor`.
    pub fn new(owner: &'a O, cursor: i64, diffs: Vec<Diff>) -> Self {
        Request { owner, cursor: Some(cursor), diffs, undecoded: None, paging: None, within: false }
    }

    /// A request run inside the write transaction the caller opened with
    /// [`Store::write`](super::Store::write), at the owner's clock.
    pub fn within_transaction(owner: &'a O, diffs: Vec<Diff>) -> Self {
        Request { owner, cursor: None, diffs, undecoded: None, paging: None, within: true }
    }

    /// With version 2's `paging` (none: version 1).
    pub fn paged(mut self, paging: Option<Paging>) -> Self {
        self.paging = paging;
        self
    }

    /// With the fault of the first diff that could not be decoded.
    pub fn undecoded(mut self, fault: Option<SyncError>) -> Self {
        self.undecoded = fault;
        self
    }
}

/// Where an answer goes as it is read: its clock first, then its diffs one
/// at a time (an answer of a million diffs is never in memory at once). An
/// error stops the sync; once [`start`](Sink::start) was called, the
/// answer is incomplete and must be thrown away (over HTTP: the connection
/// is cut, which a client takes for a lost answer and retries).
pub trait Sink {
    /// The answer's `logical_clock` and (version 2) `has_more`, before any
    /// diff.
    fn start(&mut self, logical_clock: i64, has_more: Option<bool>) -> Result<(), SyncError>;
    /// The next diff of the answer.
    fn diff(&mut self, diff: Diff) -> Result<(), SyncError>;
}

/// A whole answer in memory.
impl Sink for SyncResponse {
    fn start(&mut self, logical_clock: i64, has_more: Option<bool>) -> Result<(), SyncError> {
        self.logical_clock = logical_clock;
        self.has_more = has_more;
        Ok(())
    }

    fn diff(&mut self, diff: Diff) -> Result<(), SyncError> {
        self.diffs.push(diff);
        Ok(())
    }
}

/// A sink that counts what it passes on, for the report.
pub(super) struct Counted<'s> {
    pub(super) inner: &'s mut dyn Sink,
    pub(super) sent: usize,
    pub(super) clock: Option<i64>,
}

impl Sink for Counted<'_> {
    fn start(&mut self, logical_clock: i64, has_more: Option<bool>) -> Result<(), SyncError> {
        self.clock = Some(logical_clock);
        self.inner.start(logical_clock, has_more)
    }

    fn diff(&mut self, diff: Diff) -> Result<(), SyncError> {
        self.sent += 1;
        self.inner.diff(diff)
    }
}
