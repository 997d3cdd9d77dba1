//! Answering one sync over HTTP: the body read within its limits, the
//! engine run on a pooled connection, and the span, metrics and log event
//! of the request; the route's handler.

use super::{drain, read_body, seconds, with_connection, ApiError, RequestId, SyncFairing, WithRequestId};
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

/// A successful sync's answer, as JSON.
#[derive(Debug)]
pub struct SyncAnswer(pub Vec<u8>);

impl<'r> rocket::response::Responder<'r, 'static> for SyncAnswer {
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        (rocket::http::ContentType::JSON, self.0).respond_to(req)
    }
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
        let (result, report, db_time) = self.serve(data, span.clone()).instrument(span.clone()).await;
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
            Ok(answer) => {
                metrics::histogram!(names::ANSWER_BYTES).record(answer.0.len() as f64);
                None
            }
            Err(err) => {
                span.record("code", err.kind.code());
                Some(err.kind.code())
            }
        };
        span.in_scope(|| crate::observe::sync_ended(&id.0, &report, status, code, elapsed, db_time));
        result.map_err(ApiError)
    }

    /// The sync, and what it noted: the report, and the time its database
    /// part took (`None` if it got no connection).
    async fn serve(&self, data: Data<'_>, span: tracing::Span) -> (Result<SyncAnswer, SyncError>, Report, Option<Duration>) {
        let Some(live) = self.shared.live.get().cloned() else {
            return (Err(SyncError::internal("the sync fairing is not ignited")), Report::default(), None);
        };
        let read = match seconds(live.config.read_timeout, "read_timeout") {
            Ok(deadline) => read_body(data, live.config.body_limit, deadline).await,
            Err(err) => Err(SyncError::internal(err)),
        };
        let envelope = match read.and_then(|body| Envelope::parse(&body)) {
            Ok(envelope) => envelope,
            Err(err) => return (Err(err), Report::default(), None),
        };
        let source = live.source.clone();
        // The answer is written as JSON on the blocking thread too.
        let ran = with_connection(&*source, move |conn| {
            let _entered = span.enter();
            let started = Instant::now();
            let mut report = Report::default();
            let answer = live.endpoint.sync_noting(conn, envelope, &mut report);
            let db_time = started.elapsed();
            (answer.map(|answer| SyncAnswer(answer.into_json())), report, db_time)
        });
        match ran.await {
            Ok((answer, report, db_time)) => (answer, report, Some(db_time)),
            Err(err) => (Err(err), Report::default(), None),
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
            Outcome::Success(mut response) => {
                let bytes = response.body_mut().to_bytes().await.unwrap_or_default();
                response.set_sized_body(bytes.len(), drain::Body::new(bytes, ticket));
                Outcome::Success(response)
            }
            other => other,
        }
    }
}
