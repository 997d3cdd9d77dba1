//! Answering one sync over HTTP: the body read within its limits, the
//! engine run on a pooled connection, and the span, metrics and log event
//! of the request; the route's handler.

use super::{drain, read_body, seconds, stream, with_connection, ApiError, RequestId, SyncFairing, WithRequestId};
use crate::db::LogConnection;
use crate::endpoint::Envelope;
use crate::error::SyncError;
use crate::observe::{names, Report};
use crate::owner::Owner;
use rocket::data::Data;
use rocket::request::Request;
use rocket::route::{Handler, Outcome};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A successful sync's answer, as JSON: whole with its length, or streamed
/// as it is read from the database when it is over 64 KiB.
#[derive(Debug)]
pub struct SyncAnswer(Answer);

enum Answer {
    Whole(Vec<u8>),
    Streamed(stream::Streamed),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Whole(bytes) => write!(f, "Whole({} bytes)", bytes.len()),
            Answer::Streamed(_) => f.write_str("Streamed"),
        }
    }
}

impl SyncAnswer {
    /// The whole answer, if it is not streamed.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Answer::Whole(bytes) => Some(bytes),
            Answer::Streamed(_) => None,
        }
    }
}

impl<'r> rocket::response::Responder<'r, 'static> for SyncAnswer {
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        match self.0 {
            Answer::Whole(bytes) => (rocket::http::ContentType::JSON, bytes).respond_to(req),
            Answer::Streamed(body) => {
                rocket::Response::build().header(rocket::http::ContentType::JSON).streamed_body(body).ok()
            }
        }
    }
}

/// What a sync noted: its result, report, database time and answer size.
type Served = (Result<(), SyncError>, Report, Option<Duration>, usize);

/// When a sync's notes are ready: at once, or once its streamed answer is
/// read out.
enum Ending {
    Now(Served),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Served> + Send>>),
}

impl<C: LogConnection, O: Owner> SyncFairing<C, O> {
    /// Answers one sync request whose body is `data`, under a new request id.
    pub async fn respond(&self, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
        self.respond_as(&RequestId::new(), data).await
    }

    /// Answers one sync request whose body is `data`: what the route does.
    /// One `sync` span (see [`crate::observe`]), the metrics of
    /// [`names`], one log event at its end. In flight (see
    /// [`in_flight`](SyncFairing::in_flight)) until it returns.
    pub async fn respond_as(&self, id: &RequestId, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
        let _ticket = self.shared.in_flight.enter();
        self.answer(id, data).await
    }

    /// [`respond_as`](SyncFairing::respond_as) without a ticket of its own:
    /// the handler holds one until the answer's body is written.
    async fn answer(&self, id: &RequestId, data: Data<'_>) -> Result<SyncAnswer, ApiError> {
        let span = crate::observe::sync_span(&id.0);
        let started = Instant::now();
        let (answer, ended) = self.serve(data, span.clone()).instrument(span.clone()).await;
        let id = id.clone();
        let record = move |(result, report, db_time, bytes): Served| {
            let status = result.as_ref().map_or_else(|err| err.kind.status(), |_| 200);
            let elapsed = started.elapsed();
            report.record_on(&span);
            span.record("status", status);
            span.record("duration_ms", elapsed.as_secs_f64() * 1e3);
            metrics::counter!(names::SYNCS, "status" => status.to_string()).increment(1);
            metrics::histogram!(names::SYNC_SECONDS).record(elapsed.as_secs_f64());
            if let Some(db) = db_time {
                span.record("db_ms", db.as_secs_f64() * 1e3);
                metrics::histogram!(names::SYNC_DB_SECONDS).record(db.as_secs_f64());
            }
            report.emit();
            let code = match &result {
                Ok(()) => {
                    metrics::histogram!(names::ANSWER_BYTES).record(bytes as f64);
                    None
                }
                Err(err) => {
                    span.in_scope(|| err.log());
                    span.record("code", err.kind.code());
                    Some(err.kind.code())
                }
            };
            span.in_scope(|| crate::observe::sync_ended(&id.0, &report, status, code, elapsed, db_time));
        };
        match ended {
            // A streamed answer is noted once the database thread is done
            // with it.
            Ending::Later(rest) => {
                rocket::tokio::spawn(async move { record(rest.await) });
            }
            Ending::Now(served) => record(served),
        }
        answer.map_err(ApiError)
    }

    /// The sync: its answer as soon as it starts (a streamed one), and what
    /// it noted once it ended, now or later: the result, the report, the
    /// time its database part took (`None` if it got no connection), the
    /// answer's size.
    async fn serve(&self, data: Data<'_>, span: tracing::Span) -> (Result<SyncAnswer, SyncError>, Ending) {
        let failed = |err: SyncError| (Err(err.clone()), Ending::Now((Err(err), Report::default(), None, 0)));
        let Some(live) = self.shared.live.get().cloned() else {
            return failed(SyncError::internal("the sync fairing is not ignited"));
        };
        let read = match seconds(live.config.read_timeout, "read_timeout") {
            Ok(deadline) => read_body(data, live.config.body_limit, deadline).await,
            Err(err) => Err(SyncError::internal(err)),
        };
        let envelope = match read.and_then(|body| Envelope::parse(&body)) {
            Ok(envelope) => envelope,
            Err(err) => return failed(err),
        };
        let source = live.source.clone();
        let (mut sink, opened) = stream::JsonSink::new();
        // The answer is written as JSON on the blocking thread, and read
        // from there while the client reads it if it is long.
        let job = async move {
            with_connection(&*source, move |conn| {
                let _entered = span.enter();
                let started = Instant::now();
                let mut report = Report::default();
                let result =
                    live.endpoint.sync_noting(conn, envelope, &mut sink, &mut report).map_err(|err| crate::db::settle(conn, err));
                let db_time = started.elapsed();
                match result {
                    Ok(()) => {
                        let (whole, bytes) = sink.finish();
                        (Ok(whole), report, db_time, bytes)
                    }
                    Err(err) => {
                        sink.abort(&err);
                        (Err(err), report, db_time, 0)
                    }
                }
            })
            .await
        };
        let settle = |ran: Result<(Result<Option<Vec<u8>>, SyncError>, Report, Duration, usize), SyncError>| match ran {
            Ok((result, report, db_time, bytes)) => (result, report, Some(db_time), bytes),
            Err(err) => (Err(err), Report::default(), None, 0),
        };
        let mut job = Box::pin(job);
        let mut opened = opened;
        rocket::tokio::select! {
            biased;
            ran = &mut job => {
                let (result, report, db_time, bytes) = settle(ran);
                let answer = match result {
                    Ok(Some(whole)) => Ok(SyncAnswer(Answer::Whole(whole))),
                    // Streamed, and read out into the queue already.
                    Ok(None) => opened
                        .try_recv()
                        .map(|body| SyncAnswer(Answer::Streamed(body)))
                        .map_err(|_| SyncError::internal("a streamed answer was not opened")),
                    Err(err) => Err(err),
                };
                let noted = answer.as_ref().map(|_| ()).map_err(Clone::clone);
                (answer, Ending::Now((noted, report, db_time, bytes)))
            }
            Ok(body) = &mut opened => {
                let rest = async move {
                    let (result, report, db_time, bytes) = settle(job.await);
                    (result.map(|_| ()), report, db_time, bytes)
                };
                (Ok(SyncAnswer(Answer::Streamed(body))), Ending::Later(Box::pin(rest)))
            }
        }
    }
}

#[rocket::async_trait]
impl<C: LogConnection, O: Owner> Handler for SyncFairing<C, O> {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        // In flight until the answer's body is dropped: written, or its
        // connection gone.
        let ticket = self.shared.in_flight.enter();
        let id = RequestId::of(req);
        let answer = self.answer(&id, data).await;
        match Outcome::from(req, WithRequestId(answer, id)) {
            Outcome::Success(mut response) if response.body().preset_size().is_some() => {
                let bytes = response.body_mut().to_bytes().await.unwrap_or_default();
                response.set_sized_body(bytes.len(), drain::Body::new(bytes, ticket));
                Outcome::Success(response)
            }
            Outcome::Success(mut response) => {
                let body = response.body_mut().take();
                response.set_streamed_body(drain::Streamed::new(body, ticket));
                Outcome::Success(response)
            }
            other => other,
        }
    }
}
