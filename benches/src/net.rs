//! The HTTP calls of a device: `/signup`, `/sync`, `/health`, blocking.

use mobync::SyncResponse;
use std::time::{Duration, Instant};

/// An agent with keep-alive (one per device, as a phone has) and a 60 s
/// timeout.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).max_idle_connections_per_host(4).build()
}

/// Waits until `GET base/health` answers 200, at most `timeout`.
pub fn wait_health(base: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    loop {
        if let Ok(resp) = agent.get(&format!("{base}/health")).call() {
            if resp.status() == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{base}/health did not answer 200 within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new owner from `/signup`: (auth_token, owner id).
pub fn signup(agent: &ureq::Agent, base: &str, name: &str) -> Result<(String, String), String> {
    let resp = agent
        .post(&format!("{base}/signup"))
        .set("Content-Type", "application/json")
        .send_string(&serde_json::json!({ "name": name }).to_string())
        .map_err(|e| format!("POST {base}/signup: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&resp.into_string().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let token = json["auth_token"].as_str().ok_or("signup: no auth_token")?.to_owned();
    let owner = json["owner"].as_str().unwrap_or_default().to_owned();
    Ok((token, owner))
}

/// What a `/sync` POST came back with.
#[derive(Debug)]
pub enum Outcome {
    /// 200 and a sync answer.
    Ok(SyncResponse),
    /// Another status, with its body.
    Status(u16, String),
    /// 200 but the body is not a sync answer.
    BadAnswer(String),
    /// No answer (connection refused, reset, timeout).
    Transport(String),
}

impl Outcome {
    /// A short name of the outcome for error counts: `ok`, the status,
    /// `bad_answer` or `transport`.
    pub fn class(&self) -> String {
        match self {
            Outcome::Ok(_) => "ok".into(),
            Outcome::Status(s, _) => s.to_string(),
            Outcome::BadAnswer(_) => "bad_answer".into(),
            Outcome::Transport(_) => "transport".into(),
        }
    }
}

/// POSTs an already serialized sync request; returns the outcome and the
/// time from sending the request to having read the whole answer (the
/// answer's JSON is parsed after the clock stops).
pub fn post_sync(agent: &ureq::Agent, url: &str, body: &[u8]) -> (Outcome, Duration) {
    let start = Instant::now();
    let result = agent.post(url).set("Content-Type", "application/json").send_bytes(body);
    let (status, text) = match result {
        Ok(resp) => {
            let status = resp.status();
            match resp.into_string() {
                Ok(text) => (status, text),
                Err(err) => return (Outcome::Transport(err.to_string()), start.elapsed()),
            }
        }
        Err(ureq::Error::Status(status, resp)) => (status, resp.into_string().unwrap_or_default()),
        Err(err) => return (Outcome::Transport(err.to_string()), start.elapsed()),
    };
    let elapsed = start.elapsed();
    if status != 200 {
        return (Outcome::Status(status, text), elapsed);
    }
    match serde_json::from_str::<SyncResponse>(&text) {
        Ok(answer) => (Outcome::Ok(answer), elapsed),
        Err(err) => (Outcome::BadAnswer(format!("{err}: {}", truncate(&text, 300))), elapsed),
    }
}

/// At most `n` characters of `s`.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Fills `token`'s log with `n` creates, in syncs of 5,000 (one device).
pub fn fill_log(base: &str, token: &str, n: usize) -> Result<(), String> {
    let a = agent();
    let mut device = crate::workload::Workload::new(&format!("{}-filler", crate::run_tag()), token, 1, &format!("{}-fill", crate::run_tag()));
    let url = format!("{base}/sync");
    let mut left = n;
    while left > 0 {
        let batch = left.min(5_000);
        device.changes(batch, 0.0);
        let (body, _) = device.request_body();
        match post_sync(&a, &url, &body).0 {
            Outcome::Ok(answer) => {
                device.receive(&answer);
            }
            other => return Err(format!("filling: {other:?}")),
        }
        left -= batch;
    }
    Ok(())
}
