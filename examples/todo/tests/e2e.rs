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
