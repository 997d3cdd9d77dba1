//! Request ids: the `X-Request-Id` a request came with (or a new one), as
//! a request guard, and echoed on its answer.

use crate::observe;
use rocket::http::Header;
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self as response, Responder};

/// A request's id: its `X-Request-Id` header if usable (1 to 128 visible
/// ASCII characters), else a new one. A request guard, for an app's own
/// sync route (see [`SyncFairing::without_route`](super::SyncFairing::without_route)).
///
/// ```
/// use mobync::fairing::{RequestId, WithRequestId};
///
/// #[rocket::get("/hello")]
/// fn hello(id: RequestId) -> WithRequestId<&'static str> {
///     WithRequestId("hello", id) // answered with the same `X-Request-Id`
/// }
/// # let _ = rocket::routes![hello];
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new id.
    pub fn new() -> Self {
        RequestId(observe::new_request_id())
    }

    /// The id of `req`.
    pub fn of(req: &Request<'_>) -> Self {
        RequestId(observe::request_id_or_new(req.headers().get_one("X-Request-Id")))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestId {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(RequestId::of(req))
    }
}

/// An answer carrying its request's id in the `X-Request-Id` header.
pub struct WithRequestId<R>(pub R, pub RequestId);

impl<'r, R: Responder<'r, 'static>> Responder<'r, 'static> for WithRequestId<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.0.respond_to(req)?;
        response.set_header(Header::new("X-Request-Id", self.1 .0));
        Ok(response)
    }
}
