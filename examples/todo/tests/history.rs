//! History over TCP on every backend (PROTOCOL.md, "History"): the admin
//! route that compacts an owner's log, what devices below and above the
//! horizon get afterwards, a device offline since before the compaction
//! coming back with pending edits, a retried request whose diffs were
//! squashed meanwhile, and a compaction run by two processes at once.

mod common;

use common::{compact, TodoServer};
use mobync::client::Device;
use mobync::testing::{self, Server};
use mobync_tests::dbs;
use mobync_tests::http;
use serde_json::{json, Value};
use std::collections::HashMap;

const ADMIN: &str = "admin-token-of-the-history-tests";

fn summary(server: &TodoServer, owner: &str) -> Value {
    let url = format!("{}/admin/owners/{owner}", server.base);
    let answer = ureq::get(&url).set("Authorization", &format!("Bearer {ADMIN}")).call().expect("the summary");
    answer.into_json().expect("JSON")
}

#[test]
fn a_compacted_log_answers_every_device_with_the_rows_an_uncompacted_one_gives() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[("MOBYNC_ADMIN_TOKEN", ADMIN)]) else { continue };
        let (token, owner) = http::signup(&server.base, "ada");
        let mut http = server.as_server(HashMap::from([(token.clone(), owner.clone())]));
        let (mut phone, mut tablet) = (Device::new("phone"), Device::new("tablet"));
        let mut now = 1_000;
        let mut tick = || {
            now += 10;
            now
        };
        // 20 rows, each renamed 10 times, 5 deleted; the tablet syncs
        // once early and then stays offline with edits of its own.
        let rows: Vec<String> = (0..20).map(|i| format!("{owner}-t{i}")).collect();
        for row in &rows {
            phone.create("task", row, json!({"title": "new", "done": false}), tick());
        }
        testing::sync(&mut http, &token, &mut phone);
        testing::sync(&mut http, &token, &mut tablet);
        let early = tick();
        tablet.update("task", &rows[8], json!({"title": "tablet, early"}), early);
        for round in 0..10 {
            for row in &rows {
                phone.update("task", row, json!({"title": format!("round {round}")}), tick());
            }
            testing::sync(&mut http, &token, &mut phone);
        }
        for row in &rows[..5] {
            phone.delete("task", row, tick());
        }
        testing::sync(&mut http, &token, &mut phone);
        tablet.update("task", &rows[9], json!({"title": "tablet, late"}), tick());
        tablet.update("task", &rows[0], json!({"done": true}), tick());
        // A request whose answer is lost, retried after the compaction.
        phone.update("task", &rows[6], json!({"done": true}), tick());
        let lost = serde_json::to_vec(&phone.request(&token)).expect("JSON");
        assert!(http::lose_answer(&server.sync_url(), &lost), "{backend:?}: the lost sync reached the server");

        let before = summary(&server, &owner);
        let clock = before["clock"].as_i64().expect("a clock");
        assert_eq!(clock, 13, "{backend:?}: {before}");
        // Refusals change nothing.
        assert_eq!(compact(&server, &owner, None, "{}").0, 401);
        assert_eq!(compact(&server, &owner, Some("not-the-admin-token-at-all"), "{}").0, 401);
        assert_eq!(compact(&server, "nobody-at-all", Some(ADMIN), "{}").0, 404);
        assert_eq!(compact(&server, &owner, Some(ADMIN), &json!({"below": clock + 1}).to_string()).0, 400);
        assert_eq!(compact(&server, &owner, Some(ADMIN), r#"{"below": "soon"}"#).0, 400);
        assert_eq!(compact(&server, &owner, Some(ADMIN), "{not json").0, 400);
        assert_eq!(compact(&server, &owner, Some(ADMIN), r#"{"below": 1, "also": 2}"#).0, 400);
        assert_eq!(summary(&server, &owner), before, "{backend:?}: a refused compaction changed the owner");

        // Below 5, then everything.
        let (status, first) = compact(&server, &owner, Some(ADMIN), r#"{"below": 5}"#);
        assert_eq!((status, first["horizon"].clone()), (200, json!(5)), "{backend:?}: {first}");
        let (status, all) = compact(&server, &owner, Some(ADMIN), "{}");
        assert_eq!(status, 200, "{backend:?}: {all}");
        assert_eq!(all["horizon"], json!(clock));
        assert_eq!(all["entries_before"], first["entries_after"]);
        assert_eq!(all["entries_after"], json!(20), "{backend:?}: one net row per row, tombstones among them");
        let after = summary(&server, &owner);
        assert_eq!((after["horizon"].clone(), after["diffs"].clone(), after["net_rows"].clone()), (json!(clock), json!(0), json!(20)));
        assert_eq!(after["rows"], json!({"task": 15}), "{backend:?}");

        // A new device: one create per live row, nothing of the deleted.
        let mut laptop = Device::new("laptop");
        let answer = testing::sync(&mut http, &token, &mut laptop);
        assert_eq!(answer.logical_clock, clock);
        assert_eq!(answer.diffs.len(), 15, "{backend:?}");
        assert!(answer.diffs.iter().all(|d| d.op == mobync::OperationType::Create));
        // The retried request is recognised though its diff was squashed.
        let retried = http::post(&server.sync_url(), "application/json", &lost);
        assert_eq!(retried.status, 200, "{backend:?}: {}", retried.body);
        assert_eq!(summary(&server, &owner)["clock"], json!(clock), "{backend:?}: the retry applied nothing again");
        testing::sync(&mut http, &token, &mut phone);
        // The tablet comes back: its early rename loses to the later ones,
        // its late rename wins, its edit of a deleted row goes, the
        // deletes reach it.
        testing::sync(&mut http, &token, &mut tablet);
        for device in [&mut phone, &mut laptop, &mut tablet] {
            testing::sync(&mut http, &token, device);
        }
        let server_rows = http.rows(&token);
        let title = |row: &str| server_rows[&("task".to_string(), row.to_string())]["title"].clone();
        assert_eq!(title(&rows[8]), json!("round 9"), "{backend:?}");
        assert_eq!(title(&rows[9]), json!("tablet, late"), "{backend:?}");
        assert!(!server_rows.contains_key(&("task".to_string(), rows[0].clone())), "{backend:?}: deleted rows stay deleted");
        assert_eq!(server_rows.len(), 15);
        for device in [&phone, &laptop, &tablet] {
            assert_eq!(device.rows(), &server_rows, "{backend:?}: {} differs from the server", device.name());
        }
        let history = ureq::get(&format!("{}/admin/owners/{owner}/rows/task/{}", server.base, rows[7]))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .call()
            .expect("the row's history")
            .into_json::<Value>()
            .expect("JSON");
        assert_eq!(history["compacted"]["below"], json!(clock), "{backend:?}: {history}");
        assert_eq!(history["compacted"]["fields"]["title"]["v"], json!("round 9"));
    }
}

/// A server over HTTP that compacts through the admin route.
struct Compacting<S> {
    http: S,
    server: String,
    owners: HashMap<String, String>,
}

impl<S: Server> Server for Compacting<S> {
    fn sync(&mut self, token: &str, request: &mobync::SyncRequest) -> Result<mobync::SyncResponse, mobync::SyncError> {
        self.http.sync(token, request)
    }

    fn rows(&mut self, token: &str) -> mobync::client::Rows {
        self.http.rows(token)
    }

    fn state(&mut self) -> String {
        self.http.state()
    }

    fn compact(&mut self, token: &str, pick: u8) -> bool {
        let owner = &self.owners[token];
        let url = format!("{}/admin/owners/{owner}", self.server);
        let summary: Value = match ureq::get(&url).set("Authorization", &format!("Bearer {ADMIN}")).call() {
            Ok(answer) => answer.into_json().expect("JSON"),
            Err(ureq::Error::Status(404, _)) => return false,
            Err(err) => panic!("GET {url}: {err}"),
        };
        let below = testing::horizon_of(pick, summary["clock"].as_i64().expect("a clock"));
        let answer = ureq::post(&format!("{url}/compact"))
            .set("Authorization", &format!("Bearer {ADMIN}"))
            .send_string(&json!({"below": below}).to_string())
            .expect("a compaction");
        answer.status() == 200
    }
}

/// The convergence runs over HTTP: devices of version 1 and version 2
/// (random page sizes) mixed, lost answers, refusals, and compactions at
/// random horizons through the admin route, several owners.
#[test]
fn devices_of_both_versions_converge_over_http_with_compactions() {
    use proptest::strategy::{Strategy, ValueTree};
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[("MOBYNC_ADMIN_TOKEN", ADMIN)]) else { continue };
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut compactions = 0;
        for run in 0..6 {
            let plan = testing::plans(40).new_tree(&mut runner).expect("a plan").current();
            let signed: Vec<(String, String)> = (0..3).map(|o| http::signup(&server.base, &format!("run{run}-{o}"))).collect();
            let tokens: Vec<String> = signed.iter().map(|(t, _)| t.clone()).collect();
            let owners: HashMap<String, String> = signed.into_iter().collect();
            let mut compacting = Compacting { http: server.as_server(owners.clone()), server: server.base.clone(), owners };
            compactions += testing::converge(&mut compacting, &tokens, &plan);
        }
        assert!(compactions > 0, "{backend:?}: no compaction ran");
    }
}

#[test]
fn version_2_fields_are_checked_and_answered() {
    let Some(server) = TodoServer::start(mobync_tests::dbs::Backend::Sqlite, &[]) else { return };
    let (token, _) = http::signup(&server.base, "ada");
    let post = |body: Value| http::post(&server.sync_url(), "application/json", body.to_string().as_bytes());
    let create = |n: usize| json!({"id": format!("d{n}"), "owner": "", "logical_clock": n, "utc_timestamp": n,
        "type": "create", "model": "task", "json_data": json!({"id": format!("{token}-r{n}"), "title": "t", "done": false}).to_string()});
    for n in 0..3 {
        assert_eq!(post(json!({"auth_token": token, "logical_clock": n, "diffs": [create(n)]})).status, 200);
    }
    // A version-1 answer has no `has_more`.
    let v1 = post(json!({"auth_token": token, "logical_clock": 0, "diffs": []})).json();
    assert!(v1.get("has_more").is_none(), "{v1}");
    // Pages of one stamp, then the rest.
    let page = post(json!({"auth_token": token, "logical_clock": 0, "diffs": [], "page_size": 2})).json();
    assert_eq!((page["has_more"].clone(), page["logical_clock"].clone()), (json!(true), json!(2)), "{page}");
    assert_eq!(page["diffs"].as_array().map(Vec::len), Some(2));
    let rest = post(json!({"auth_token": token, "logical_clock": 2, "diffs": [], "page_size": 2, "base_clock": 1})).json();
    assert_eq!((rest["has_more"].clone(), rest["logical_clock"].clone()), (json!(false), json!(3)), "{rest}");
    // A page is a pure read: the diff sent with it is not stored.
    let pending = post(json!({"auth_token": token, "logical_clock": 0, "diffs": [create(7)], "page_size": 1})).json();
    assert_eq!(pending["has_more"], json!(true));
    assert_eq!(post(json!({"auth_token": token, "logical_clock": 3, "diffs": []})).json()["logical_clock"], json!(3));
    // Bad values are 400 and change nothing.
    for bad in [
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": 0}),
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": -1}),
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": "ten"}),
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": 1.5}),
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": 10, "base_clock": 4}),
        json!({"auth_token": token, "logical_clock": 3, "diffs": [create(8)], "page_size": 10, "base_clock": "x"}),
    ] {
        let answer = post(bad.clone());
        assert_eq!((answer.status, answer.json()["error"].clone()), (400, json!("malformed_request")), "{bad}");
    }
    assert_eq!(post(json!({"auth_token": token, "logical_clock": 3, "diffs": []})).json()["logical_clock"], json!(3));
}

/// A compaction killed (SIGKILL) while it runs, then run again: nothing is
/// lost and nothing applied twice. Whether the kill lands between two
/// steps, inside one, or after the last depends on the machine; every case
/// must leave the same rows, so the test waits on no timing.
#[test]
fn a_compaction_killed_midway_then_run_again_loses_nothing() {
    for backend in dbs::backends() {
        let env = [("MOBYNC_ADMIN_TOKEN", ADMIN)];
        let Some(mut server) = TodoServer::start(backend, &env) else { continue };
        let (token, owner) = http::signup(&server.base, "ada");
        let mut http = server.as_server(HashMap::from([(token.clone(), owner.clone())]));
        let mut phone = Device::new("phone");
        let mut now = 0;
        for round in 0..40 {
            for row in 0..400 {
                now += 1;
                let id = format!("{owner}-t{row}");
                if round == 0 {
                    phone.create("task", &id, json!({"title": "new", "done": false}), now);
                } else if row % 97 == round {
                    phone.delete("task", &id, now);
                } else if phone.rows().contains_key(&("task".to_string(), id.clone())) {
                    phone.update("task", &id, json!({"title": format!("r{round}")}), now);
                }
            }
            testing::sync(&mut http, &token, &mut phone);
        }
        let expected = http.rows(&token);
        drop(http);
        let clock = summary(&server, &owner)["clock"].as_i64().expect("a clock");
        let url = format!("{}/admin/owners/{owner}/compact", server.base);
        let compaction = std::thread::spawn(move || {
            // Its answer is lost when the server dies.
            let _ = ureq::post(&url).set("Authorization", &format!("Bearer {ADMIN}")).send_string("{}");
        });
        // Kill it once a step has committed (or once it is done).
        let mut seen = 0;
        for _ in 0..100_000 {
            seen = summary(&server, &owner)["horizon"].as_i64().expect("a horizon");
            if seen > 0 {
                break;
            }
            std::thread::yield_now();
        }
        server.restart_with(&env);
        compaction.join().expect("the compaction's client");
        eprintln!("{backend:?}: killed at horizon {seen} of {clock}");
        let (status, done) = compact(&server, &owner, Some(ADMIN), "{}");
        assert_eq!((status, done["horizon"].clone()), (200, json!(clock)), "{backend:?}: {done}");
        let after = summary(&server, &owner);
        assert_eq!((after["clock"].clone(), after["diffs"].clone()), (json!(clock), json!(0)), "{backend:?}: {after}");
        assert_eq!(after["net_rows"], json!(400), "{backend:?}: one net row per row");
        let mut http = server.as_server(HashMap::from([(token.clone(), owner.clone())]));
        let mut laptop = Device::new("laptop");
        testing::sync(&mut http, &token, &mut laptop);
        assert_eq!(laptop.rows(), &expected, "{backend:?}");
        assert_eq!(http.rows(&token), expected);
        // The phone, whose last answers all arrived, gets nothing again.
        assert!(testing::sync(&mut http, &token, &mut phone).diffs.is_empty());
    }
}
