//! End to end over real TCP: the todo binary, started as a user runs it,
//! synced by devices the way the Dart client syncs.

mod common;

use common::TodoServer;
use mobync::client::Device;
use mobync::testing;
use mobync_tests::dbs;
use mobync_tests::http::{self, error_of};
use mobync_tests::models::dump;
use serde_json::json;
use std::collections::HashMap;

#[test]
fn two_devices_replay_the_client_integration_sequence_on_every_backend() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (alice, alice_id) = http::signup(&server.base, "alice");
        let (bob, bob_id) = http::signup(&server.base, "bob");
        assert_ne!(alice, bob);
        let owners = HashMap::from([(alice.clone(), alice_id.clone()), (bob.clone(), bob_id)]);
        let mut sync = server.as_server(owners);
        testing::worked_example(&mut sync, &alice);

        // Bob sees nothing of Alice's, and cannot touch her rows.
        let mut phone = Device::new("bob-phone");
        let answer = testing::sync(&mut sync, &bob, &mut phone);
        assert!(answer.diffs.is_empty(), "{backend:?}: bob saw {:?}", answer.diffs);
        let alice_row = mobync_tests::models::rows(&mut dbs::connect(&server.db), &alice_id);
        let (_, row_id) = alice_row.keys().next().cloned().expect("alice has rows");
        for op in ["update", "delete"] {
            let before = dump(&server.db);
            let data = json!({"id": row_id, "title": "mine now"}).to_string();
            let body = json!({"auth_token": bob, "logical_clock": 0, "diffs": [{
                "id": format!("steal-{op}"), "owner": "", "logical_clock": 0, "utc_timestamp": 1,
                "type": op, "model": "task", "json_data": data}]});
            let answer = http::post(&server.sync_url(), "application/json", body.to_string().as_bytes());
            let err = error_of(&answer);
            assert_eq!((answer.status, err.kind.code()), (422, "invalid_diff"), "{backend:?} {op}: {}", answer.body);
            assert_eq!(err.diff_id.as_deref(), Some(format!("steal-{op}").as_str()));
            assert_eq!(dump(&server.db), before, "{backend:?}: a refused sync changed the database");
        }
    }
}

#[test]
fn the_fairing_takes_its_configuration_from_rocket() {
    let config = r#"{path="/api/v1/sync",max_diffs=2,body_limit=4096,diffs_table="sync_log"}"#;
    let Some(server) = TodoServer::start(dbs::Backend::Sqlite, &[("ROCKET_MOBYNC", config)]) else { return };
    let (token, _) = http::signup(&server.base, "ada");
    let url = format!("{}/api/v1/sync", server.base);
    let diff = |i: usize| {
        json!({"id": format!("d{i}"), "owner": "", "logical_clock": 0, "utc_timestamp": 1, "type": "create",
               "model": "project", "json_data": json!({"id": format!("p{i}"), "name": "n"}).to_string()})
    };
    let body = |n: usize| json!({"auth_token": token, "logical_clock": 0, "diffs": (0..n).map(diff).collect::<Vec<_>>()});
    let answer = http::post(&url, "application/json", body(2).to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["logical_clock"], 1);
    let answer = http::post(&url, "application/json", body(3).to_string().as_bytes());
    assert_eq!((answer.status, error_of(&answer).kind.code()), (413, "payload_too_large"));
    let mut big = body(1);
    big["padding"] = json!("x".repeat(5000));
    let answer = http::post(&url, "application/json", big.to_string().as_bytes());
    assert_eq!((answer.status, error_of(&answer).kind.code()), (413, "payload_too_large"));
    let answer = http::post(&server.sync_url(), "application/json", body(1).to_string().as_bytes());
    assert_eq!(answer.status, 404, "nothing is mounted at the default path");
    // The log lives in the configured tables.
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM sync_log").get_result(&mut dbs::connect(&server.db)).expect("sync_log");
    assert_eq!(count.n, 2);
}

#[test]
fn a_lost_answer_then_retries_apply_nothing_twice_and_echo_nothing() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let (token, owner) = http::signup(&server.base, "ada");
        let mut sync = server.as_server(HashMap::from([(token.clone(), owner.clone())]));
        let (mut a, mut b) = (Device::new("A"), Device::new("B"));
        a.create("task", "t1", json!({"title": "one", "done": false}), 10);
        testing::sync(&mut sync, &token, &mut a);
        testing::sync(&mut sync, &token, &mut b);
        b.update("task", "t1", json!({"title": "from B"}), 50);
        testing::sync(&mut sync, &token, &mut b);

        // A's newer edit reaches the server, but the connection drops before
        // the answer does.
        a.update("task", "t1", json!({"title": "from A"}), 60);
        a.create("project", "p1", json!({"name": "home"}), 61);
        let request = a.request(&token);
        let log_before = log_len(&server, &owner);
        assert!(http::lose_answer(&server.sync_url(), &serde_json::to_vec(&request).expect("json")));
        assert!(log_len(&server, &owner) > log_before, "{backend:?}: the sync was never committed");
        let after_first = dump(&server.db);

        // The same request, three times: the same answer, nothing applied again.
        let mut answers = Vec::new();
        for _ in 0..3 {
            let answer = mobync::testing::Server::sync(&mut sync, &token, &request).expect("retry");
            assert_eq!(dump(&server.db), after_first, "{backend:?}: a retry changed the database");
            answers.push(answer);
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{backend:?}: retries answered differently");
        assert!(answers[0].diffs.is_empty(), "{backend:?}: B's older title came back: {:?}", answers[0].diffs);
        assert_eq!(answers[0].logical_clock, 3, "create 0, B 1, the lost sync 2");
        assert!(a.receive(&answers[0]));
        testing::sync(&mut sync, &token, &mut b);
        assert_eq!(a.rows(), b.rows());
        assert_eq!(&mobync::testing::Server::rows(&mut sync, &token), a.rows());
        assert_eq!(a.rows()[&("task".to_string(), "t1".to_string())]["title"], "from A");
    }
}

fn log_len(server: &TodoServer, owner: &str) -> usize {
    use diesel::prelude::*;
    use mobync::db::schema::diffs;
    diffs::table.filter(diffs::owner.eq(owner)).count().get_result::<i64>(&mut dbs::connect(&server.db)).expect("log") as usize
}
