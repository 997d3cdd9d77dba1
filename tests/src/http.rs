//! Syncing over real HTTP, the way a phone does: a [`Server`] that POSTs to
//! a running mobync server, and the todo example's `/signup`.

use mobync::client::Rows;
use mobync::testing::Server;
use mobync::{ErrorKind, SyncError, SyncRequest, SyncResponse};
use serde_json::Value;
use std::time::Duration;

/// A raw HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Answer {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

impl From<ureq::Response> for Answer {
    fn from(resp: ureq::Response) -> Self {
        let retry_after = resp.header("Retry-After").map(str::to_owned);
        Answer { status: resp.status(), retry_after, body: resp.into_string().unwrap_or_default() }
    }
}

/// POSTs `body` to `url` and returns whatever came back.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Answer {
    try_post(url, content_type, body).unwrap_or_else(|err| panic!("POST {url}: {err}"))
}

/// POSTs `body` to `url`: the answer, or why none came (a refused or
/// broken connection, a timeout).
pub fn try_post(url: &str, content_type: &str, body: &[u8]) -> Result<Answer, String> {
    match agent().post(url).set("Content-Type", content_type).send_bytes(body) {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => Ok(resp.into()),
        Err(err) => Err(err.to_string()),
    }
}

/// GETs `url`; `None` if nothing answers.
pub fn get(url: &str) -> Option<Answer> {
    match agent().get(url).call() {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => Some(resp.into()),
        Err(_) => None,
    }
}

/// A new owner from the todo example's `/signup`: (auth_token, owner id).
pub fn signup(base: &str, name: &str) -> (String, String) {
    let answer = post(&format!("{base}/signup"), "application/json", serde_json::json!({"name": name}).to_string().as_bytes());
    assert_eq!(answer.status, 200, "signup: {}", answer.body);
    let json = answer.json();
    (json["auth_token"].as_str().unwrap_or_default().to_owned(), json["owner"].as_str().unwrap_or_default().to_owned())
}

/// Turns an error answer back into the [`SyncError`] it carries.
pub fn error_of(answer: &Answer) -> SyncError {
    let json = answer.json();
    let code = json["error"].as_str().unwrap_or_default();
    let kind = ErrorKind::of_code(code).unwrap_or_else(|| panic!("unknown error code: {}", answer.body));
    assert_eq!(kind.status(), answer.status, "status and code disagree: {}", answer.body);
    assert_eq!(json["success"], false);
    let mut err = SyncError::new(kind, json["message"].as_str().unwrap_or_default());
    err.diff_id = json["diff_id"].as_str().map(str::to_owned);
    err
}

/// A mobync server at `base` (e.g. `http://127.0.0.1:8000`), synced at
/// `base + path`; `rows` reads the server's rows of an owner token, `state`
/// everything its database holds.
pub struct HttpServer<F, G> {
    /// The sync URL.
    pub sync_url: String,
    /// Reads the server's rows of the owner of a token.
    pub rows: F,
    /// Reads the whole database (see [`Server::state`]).
    pub state: G,
}

impl<F: FnMut(&str) -> Rows, G: FnMut() -> String> Server for HttpServer<F, G> {
    fn sync(&mut self, token: &str, request: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let mut request = request.clone();
        request.auth_token = token.to_owned();
        let body = serde_json::to_vec(&request).map_err(SyncError::internal)?;
        let answer = post(&self.sync_url, "application/json", &body);
        if answer.status == 200 {
            serde_json::from_str(&answer.body).map_err(|e| SyncError::internal(format!("{e}: {}", answer.body)))
        } else {
            Err(error_of(&answer))
        }
    }

    fn rows(&mut self, token: &str) -> Rows {
        (self.rows)(token)
    }

    fn state(&mut self) -> String {
        (self.state)()
    }
}

/// Sends a whole sync request to `url` on a raw connection, waits for the
/// first byte of the answer (the server has committed by then) and closes
/// the connection without reading the rest: a phone that lost its network
/// at the worst moment. Returns whether an answer had begun.
pub fn lose_answer(url: &str, body: &[u8]) -> bool {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).is_err() {
        return false;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut first = [0u8; 1];
    matches!(stream.read(&mut first), Ok(1))
}
