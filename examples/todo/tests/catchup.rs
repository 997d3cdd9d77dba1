//! Bounded catch-up over TCP (PROTOCOL.md, "Bounded catch-up"): a long
//! answer is streamed as it is read from the database, the same answer a
//! short one would be, below and above the horizon, with the request's own
//! diffs merged on the rows they touch; and a pull of 100,000 diffs raises
//! the server's peak memory by a bounded amount, not by the answer's size.

mod common;

use common::{compact, peak_rss, TodoServer};
use mobync::client::Device;
use mobync::testing::{self, Server};
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;

const ADMIN: &str = "admin-token-of-the-catch-up-tests";

/// A pull from `cursor` with no diffs, read raw: whether it came chunked
/// (streamed, no length), and its JSON.
fn pull(server: &TodoServer, token: &str, cursor: i64) -> (bool, Value) {
    let body = json!({"auth_token": token, "logical_clock": cursor, "diffs": []}).to_string();
    let response = ureq::post(&server.sync_url()).set("Content-Type", "application/json").send_string(&body).expect("a pull");
    let chunked = response.header("Content-Length").is_none()
        && response.header("Transfer-Encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text).expect("the whole answer");
    (chunked, serde_json::from_str(&text).expect("a JSON answer"))
}

#[test]
fn a_long_answer_streams_and_rebuilds_the_rows_below_and_above_the_horizon() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[("MOBYNC_ADMIN_TOKEN", ADMIN)]) else { continue };
        let (token, owner) = http::signup(&server.base, "ada");
        let mut http = server.as_server(HashMap::from([(token.clone(), owner.clone())]));
        let mut now = 1_000;
        let mut tick = || {
            now += 1;
            now
        };
        // 2,000 rows with long titles (an answer of about half a MiB), 400
        // renamed, 100 deleted.
        let rows: Vec<String> = (0..2_000).map(|i| format!("{owner}-t{i}")).collect();
        let mut phone = Device::new("phone");
        for (i, row) in rows.iter().enumerate() {
            phone.create("task", row, json!({"title": format!("{i} {}", "x".repeat(160)), "done": false}), tick());
        }
        testing::sync(&mut http, &token, &mut phone);
        for row in &rows[..400] {
            phone.update("task", row, json!({"title": "renamed"}), tick());
        }
        testing::sync(&mut http, &token, &mut phone);
        for row in &rows[1_900..] {
            phone.delete("task", row, tick());
        }
        testing::sync(&mut http, &token, &mut phone);

        let (chunked, whole) = pull(&server, &token, 0);
        assert!(chunked, "{backend:?}: a long answer is streamed");
        assert_eq!(whole["logical_clock"], json!(3), "{backend:?}");
        assert_eq!(whole["diffs"].as_array().map(Vec::len), Some(2_500), "{backend:?}");
        let (chunked, short) = pull(&server, &token, 2);
        assert!(!chunked, "{backend:?}: a short answer goes whole");
        assert_eq!(short["diffs"].as_array().map(Vec::len), Some(100), "{backend:?}");

        // A tablet at cursor 0 with edits of its own on rows it has not
        // got yet: the rows they touch are merged, the others streamed.
        let mut tablet = Device::new("tablet");
        for row in &rows[..20] {
            tablet.update("task", row, json!({"done": true}), tick());
        }
        tablet.update("task", &rows[1_950], json!({"title": "edited after its delete"}), tick());
        testing::sync(&mut http, &token, &mut tablet);

        // Everything compacted: a laptop at cursor 0 gets one create per
        // live row, its own edits merged on the rows they touch.
        assert_eq!(compact(&server, &owner, Some(ADMIN), "{}").0, 200, "{backend:?}");
        let mut laptop = Device::new("laptop");
        for row in &rows[10..30] {
            laptop.update("task", row, json!({"title": "laptop"}), tick());
        }
        laptop.create("task", &format!("{owner}-new"), json!({"title": "new", "done": false}), tick());
        let first = testing::sync(&mut http, &token, &mut laptop);
        assert!(first.diffs.iter().all(|d| d.op != mobync::OperationType::Delete), "{backend:?}: nothing of deleted rows");
        let (chunked, compacted) = pull(&server, &token, 0);
        assert!(chunked, "{backend:?}");
        // One create per row live at the horizon, then the laptop's sync
        // above it as it is: 20 updates and a create.
        let diffs = compacted["diffs"].as_array().expect("diffs");
        assert_eq!(diffs.len(), 1_900 + 21, "{backend:?}");
        assert!(diffs[..1_900].iter().all(|d| d["type"] == json!("create")), "{backend:?}");

        for _ in 0..2 {
            for device in [&mut phone, &mut tablet, &mut laptop] {
                testing::sync(&mut http, &token, device);
            }
        }
        let server_rows = http.rows(&token);
        assert_eq!(server_rows.len(), 1_901, "{backend:?}");
        let title = |i: usize| server_rows[&("task".to_string(), rows[i].clone())]["title"].clone();
        assert_eq!((title(5), title(15), title(500)), (json!("renamed"), json!("laptop"), json!(format!("500 {}", "x".repeat(160)))));
        assert_eq!(server_rows[&("task".to_string(), rows[3].clone())]["done"], json!(true), "{backend:?}");
        for device in [&phone, &tablet, &laptop] {
            assert_eq!(device.rows(), &server_rows, "{backend:?}: {} differs from the server", device.name());
        }
    }
}

/// Fills `token`'s log with `n` creates, 5,000 to a sync.
fn fill(server: &TodoServer, token: &str, owner: &str, n: usize) -> i64 {
    let mut clock = 0;
    for batch in 0..n.div_ceil(5_000) {
        let diffs: Vec<Value> = (batch * 5_000..((batch + 1) * 5_000).min(n))
            .map(|i| {
                json!({"id": format!("fill-{i}"), "owner": "", "logical_clock": clock, "utc_timestamp": 1_000 + i,
                       "type": "create", "model": "task",
                       "json_data": {"id": format!("{owner}-f{i}"), "title": format!("row {i} of the catch-up test"), "done": false}})
            })
            .collect();
        let body = json!({"auth_token": token, "logical_clock": clock, "diffs": diffs}).to_string();
        let answer = http::post(&server.sync_url(), "application/json", body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
        clock = answer.json()["logical_clock"].as_i64().expect("a clock");
    }
    clock
}

#[test]
fn pulling_100_000_diffs_raises_the_servers_peak_memory_by_less_than_48_mib() {
    for backend in dbs::backends().into_iter().filter(|b| *b != Backend::Mysql) {
        let Some(mut server) = TodoServer::start(backend, &[]) else { continue };
        let (token, owner) = http::signup(&server.base, "bulk");
        let clock = fill(&server, &token, &owner, 100_000);
        // Warm up: worker threads and their buffers exist before measuring.
        let (_, warm) = pull(&server, &token, clock - 1);
        assert_eq!(warm["diffs"].as_array().map(Vec::len), Some(5_000));
        let pid = server.process().pid();
        let before = peak_rss(pid);
        let body = json!({"auth_token": token, "logical_clock": 0, "diffs": []}).to_string();
        let response = ureq::post(&server.sync_url()).set("Content-Type", "application/json").send_string(&body).expect("a pull");
        let answer: mobync::SyncResponse = serde_json::from_reader(response.into_reader()).expect("the whole answer");
        assert_eq!((answer.diffs.len(), answer.logical_clock), (100_000, clock), "{backend:?}");
        let rise = peak_rss(pid).saturating_sub(before);
        eprintln!("{backend:?}: a pull of 100,000 diffs raised the server's peak memory by {} MiB", rise >> 20);
        assert!(rise < 48 << 20, "{backend:?}: the peak rose {} MiB", rise >> 20);
    }
}
