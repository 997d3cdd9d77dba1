//! jim8786453/sync's own HTTP tests (`sync/http/tests/unit/test_http.py`),
//! step by step against this hub with only the bearer tokens added (the
//! admin token on `/admin`, each node's on `/messages`), on every backend
//! over TCP; then what its clients and schemas bring: Draft 4 schemas, an
//! `id` property in records, no-op updates, 401 before 404.

mod common;

use common::{admin, call, Local, Node};
use mobync::client::Device;
use mobync::testing;
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http::{self as phone_http, HttpServer};
use serde_json::{json, Value};

fn start(backend: Backend) -> Option<Local> {
    Local::start(backend, |_| {})
}

/// jim's `setup_network`: its schema, `fetch_before_send` on.
fn setup_network(base: &str) -> String {
    let body = json!({
        "name": "test",
        "fetch_before_send": true,
        "schema": {
            "title": "Example Schema",
            "type": "object",
            "properties": {
                "firstName": {"type": "string"},
                "lastName": {"type": "string"},
                "age": {"description": "Age in years", "type": "integer", "minimum": 0}
            },
            "required": ["firstName", "lastName"]
        }
    });
    let (status, network) = admin(base, "POST", "/networks", Some(body));
    assert_eq!(status, 201, "{network}");
    network["id"].as_str().expect("id").to_string()
}

/// jim's `setup_nodes`: two nodes with every permission.
fn setup_nodes(base: &str, network: &str) -> (Node, Node) {
    (Node::new(base, network, "node 1", [true; 4]), Node::new(base, network, "node 2", [true; 4]))
}

#[test]
fn test_http_networks() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let base = hub.base.as_str();
        assert_eq!(admin(base, "POST", "/networks", Some(json!({}))).0, 400);
        let (status, network) = admin(base, "POST", "/networks", Some(json!({"name": "test", "fetch_before_send": true, "schema": {}})));
        assert_eq!(status, 201, "{network}");
        let id = network["id"].as_str().expect("id");
        assert_eq!(admin(base, "GET", "/networks/foo", None).0, 404);
        assert_eq!(admin(base, "GET", &format!("/networks/{id}"), None).0, 200);
        assert_eq!(admin(base, "PATCH", &format!("/networks/{id}"), Some(json!({"name": "new_value"}))).0, 200);
    }
}

#[test]
fn test_http_nodes() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let base = hub.base.as_str();
        let network = setup_network(base);
        let url = format!("/networks/{network}/nodes");
        let flags = json!({"create": true, "read": true, "update": true, "delete": true});
        assert_eq!(admin(base, "POST", &url, Some(flags.clone())).0, 400, "missing name");
        let mut body = flags.clone();
        body["name"] = json!("node 1");
        let (status, node_1) = admin(base, "POST", &url, Some(body.clone()));
        assert_eq!(status, 201);
        let node_1_id = node_1["id"].as_str().expect("id").to_string();
        body["name"] = json!("node 2");
        let (status, node_2) = admin(base, "POST", &url, Some(body));
        assert_eq!(status, 201);
        assert!(node_2["id"].is_string());
        assert_eq!(admin(base, "GET", &format!("{url}/"), None).0, 200);
        assert_eq!(admin(base, "GET", &format!("{url}/{node_1_id}"), None).0, 200);
        assert_eq!(admin(base, "GET", &format!("{url}/foo"), None).0, 404);
        let (status, patched) = admin(base, "PATCH", &format!("{url}/{node_1_id}"), Some(json!({"name": "patched", "delete": false})));
        assert_eq!(status, 200);
        assert_eq!((&patched["name"], &patched["delete"], &patched["create"]), (&json!("patched"), &json!(false), &json!(true)));
    }
}

fn create(remote_id: &str) -> Value {
    json!({"method": "create", "payload": {"firstName": "test", "lastName": "test"}, "remote_id": remote_id})
}

#[test]
fn test_http_message_list() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, _) = setup_nodes(&hub.base, &network);
        assert_eq!(node_1.send(create("1")).0, 201);
        assert_eq!(node_1.send(create("2")).0, 201);
    }
}

#[test]
fn test_http_message_headers() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, _) = setup_nodes(&hub.base, &network);
        let url = format!("{}/messages/pending", hub.base);
        let auth = format!("Bearer {}", node_1.token);
        let get = |headers: &[(&str, &str)]| {
            let mut all = headers.to_vec();
            all.push(("Authorization", auth.as_str()));
            call("GET", &url, &all, None).0
        };
        assert_eq!(get(&[("X-Sync-Network-Id", &network)]), 400);
        assert_eq!(get(&[("X-Sync-Node-Id", &node_1.id)]), 400);
        assert_eq!(get(&[("X-Sync-Network-Id", "foo"), ("X-Sync-Node-Id", &node_1.id)]), 404);
        assert_eq!(get(&[("X-Sync-Network-Id", &network), ("X-Sync-Node-Id", "foo")]), 404);
    }
}

#[test]
fn test_http_message_pending() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, node_2) = setup_nodes(&hub.base, &network);
        assert_eq!(node_2.pending(), 0);
        assert_eq!(node_1.send(create("0001")).0, 201);
        assert_eq!(node_2.pending(), 1);
        assert_eq!(node_1.send(create("0002")).0, 201);
        assert_eq!(node_2.pending(), 2);
    }
}

#[test]
fn test_http_message_send_and_ack() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, node_2) = setup_nodes(&hub.base, &network);
        assert_eq!(node_1.send(create("1")).0, 201);
        assert_eq!(node_1.send(create("2")).0, 201);
        let message_1 = node_2.next().expect("200");
        let message_2 = node_2.next().expect("200");
        assert!(node_2.next().is_none(), "204");
        assert_eq!(node_2.answer(message_1["id"].as_str().expect("id"), json!({"success": true, "remote_id": "1"})).0, 200);
        let failed = json!({"success": false, "reason": "This is a reason."});
        assert_eq!(node_2.answer(message_2["id"].as_str().expect("id"), failed).0, 200);
    }
}

#[test]
fn test_http_send_with_remote_ids() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, node_2) = setup_nodes(&hub.base, &network);
        // Node 1: create a record with a remote id, update it by that id
        // (with the same payload: it changes nothing).
        let mut body = create("0001");
        assert_eq!(node_1.send(body.clone()).0, 201);
        body["method"] = json!("update");
        assert_eq!(node_1.send(body).0, 201, "{backend:?}");
        assert!(node_1.next().is_none(), "{backend:?}: node 1 is not sent its own changes");
        // Node 2: the create, acknowledged with its own id.
        let message = node_2.next().expect("the create");
        assert_eq!(node_2.answer(message["id"].as_str().expect("id"), json!({"success": true, "remote_id": "abcd"})).0, 200);
        // Node 2: the update, with node 2's id.
        let update = node_2.next().expect("the update");
        assert_eq!(update["remote_id"], "abcd", "{backend:?}: {update}");
        // Node 2 updates by its own id; then a re-sync sends the record again.
        let change = json!({"method": "update", "payload": {"firstName": "changed", "lastName": "changed"}, "remote_id": "abcd"});
        assert_eq!(node_2.send(change).0, 201, "{backend:?}");
        let sync = format!("/networks/{network}/nodes/{}/sync", node_2.id);
        assert_eq!(admin(&hub.base, "POST", &sync, None).0, 200);
        let again = node_2.next().expect("the record again");
        assert_eq!(again["remote_id"], "abcd", "{backend:?}: {again}");
    }
}

#[test]
fn a_schema_without_dollar_schema_is_draft_4_and_a_named_draft_is_honoured() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let base = hub.base.as_str();
        // Draft 4's boolean exclusiveMinimum.
        let draft4 = json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}}});
        let (status, network) = admin(base, "POST", "/networks", Some(json!({"name": "d4", "schema": draft4})));
        assert_eq!(status, 201, "{backend:?}: {network}");
        let id = network["id"].as_str().expect("id");
        let node = Node::new(base, id, "n", [true; 4]);
        assert_eq!(node.send(json!({"method": "create", "payload": {"age": 1}})).0, 201);
        let (status, refused) = node.send(json!({"method": "create", "payload": {"age": 0}}));
        assert_eq!(status, 400, "{backend:?}: 0 is not above the exclusive minimum 0: {refused}");
        // Named 2020-12, a boolean exclusiveMinimum is not a schema: 400,
        // and no network is made.
        let named = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "properties": {"age": {"exclusiveMinimum": true}}});
        let (status, refused) = admin(base, "POST", "/networks", Some(json!({"name": "x", "schema": named, "model": "x"})));
        assert_eq!((status, refused["error"].as_str()), (400, Some("bad_request")), "{backend:?}: {refused}");
        assert_eq!(admin(base, "POST", "/networks", Some(json!({"name": "x", "schema": {}, "model": "x"}))).0, 201, "{backend:?}: model x is free");
        // Named 2020-12, a numeric exclusiveMinimum works as that draft says.
        let named = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "properties": {"age": {"exclusiveMinimum": 5}}});
        let (status, network) = admin(base, "POST", "/networks", Some(json!({"name": "y", "schema": named, "model": "y"})));
        assert_eq!(status, 201, "{backend:?}: {network}");
        let node = Node::new(base, network["id"].as_str().expect("id"), "n", [true; 4]);
        assert_eq!(node.send(json!({"method": "create", "payload": {"age": 6}})).0, 201);
        assert_eq!(node.send(json!({"method": "create", "payload": {"age": 5}})).0, 400);
    }
}

#[test]
fn a_record_may_hold_an_id_property_and_nodes_get_it_back_as_sent() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let base = hub.base.as_str();
        let (token, owner) = phone_http::signup(base, "ada");
        let schema = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
        let network = common::network(base, Some(&owner), "thing", schema);
        let (a, b) = (Node::new(base, &network, "a", [true; 4]), Node::new(base, &network, "b", [true; 4]));
        let (status, sent) = a.send(json!({"method": "create", "payload": {"id": "A-1", "_id": 2, "name": "Ada"}}));
        assert_eq!(status, 201, "{backend:?}: {sent}");
        let record = sent["record_id"].as_str().expect("record").to_string();
        assert_ne!(record, "A-1", "the record's own id stays record_id");
        let message = b.next().expect("the create");
        assert_eq!(message["payload"], json!({"id": "A-1", "_id": 2, "name": "Ada"}), "{backend:?}");
        b.answer(message["id"].as_str().expect("id"), json!({"success": true}));
        assert_eq!(a.send(json!({"method": "update", "record_id": record, "payload": {"id": "A-2"}})).0, 201);
        let update = b.next().expect("the update");
        assert_eq!(update["payload"], json!({"id": "A-2"}), "{backend:?}");
        // A record without its `id` breaks the schema: 400.
        let (status, refused) = a.send(json!({"method": "create", "payload": {"name": "x"}}));
        assert_eq!(status, 400, "{backend:?}: {refused}");
        // The owner's phones see the record's `id` as the field `_id`.
        let mut server = HttpServer { sync_url: format!("{base}/sync"), rows: |_: &str| unreachable!(), state: || unreachable!() };
        let mut phone = Device::new("phone");
        testing::sync(&mut server, &token, &mut phone);
        let row = &phone.rows()[&("thing".to_string(), record.clone())];
        assert_eq!((&row["id"], &row["_id"], &row["__id"]), (&json!(record), &json!("A-2"), &json!(2)), "{backend:?}");
    }
}

#[test]
fn a_nodes_update_that_changes_nothing_reaches_the_others_and_a_phones_does_not() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let base = hub.base.as_str();
        let (token, owner) = phone_http::signup(base, "ada");
        let network = common::network(base, Some(&owner), "thing", json!({"type": "object"}));
        let (a, b) = (Node::new(base, &network, "a", [true; 4]), Node::new(base, &network, "b", [true; 4]));
        let (_, sent) = a.send(json!({"method": "create", "payload": {"name": "n"}, "remote_id": "r"}));
        let record = sent["record_id"].as_str().expect("record").to_string();
        let create = b.next().expect("the create");
        b.answer(create["id"].as_str().expect("id"), json!({"success": true, "remote_id": "b1"}));
        assert_eq!(a.send(json!({"method": "update", "remote_id": "r", "payload": {"name": "n"}})).0, 201);
        let update = b.next().expect("the node's no-op update");
        assert_eq!((&update["method"], &update["payload"], &update["remote_id"]), (&json!("update"), &json!({}), &json!("b1")), "{backend:?}");
        b.answer(update["id"].as_str().expect("id"), json!({"success": true}));
        assert_eq!(a.pending(), 0, "{backend:?}: the sender is not told its own change");
        // A phone's change that changes nothing is no message.
        let mut server = HttpServer { sync_url: format!("{base}/sync"), rows: |_: &str| unreachable!(), state: || unreachable!() };
        let mut phone = Device::new("phone");
        testing::sync(&mut server, &token, &mut phone);
        phone.update("thing", &record, json!({"name": "n"}), 10);
        testing::sync(&mut server, &token, &mut phone);
        assert_eq!((a.pending(), b.pending()), (0, 0), "{backend:?}");
    }
}

#[test]
fn the_messaging_api_checks_the_token_before_it_says_whether_a_network_or_node_exists() {
    for backend in dbs::backends() {
        let Some(hub) = start(backend) else { continue };
        let network = setup_network(&hub.base);
        let (node_1, node_2) = setup_nodes(&hub.base, &network);
        let url = format!("{}/messages/pending", hub.base);
        let get = |network: &str, node: &str, token: Option<&str>| {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("X-Sync-Network-Id", network), ("X-Sync-Node-Id", node)];
            if let Some(auth) = &auth {
                headers.push(("Authorization", auth.as_str()));
            }
            call("GET", &url, &headers, None)
        };
        let wrong = "0".repeat(64);
        for (net, node) in [("foo", node_1.id.as_str()), (network.as_str(), "foo"), ("foo", "bar"), (network.as_str(), node_1.id.as_str())] {
            for token in [None, Some(wrong.as_str())] {
                let (status, body) = get(net, node, token);
                assert_eq!((status, body["error"].as_str()), (401, Some("unauthenticated")), "{backend:?}: {net} {node} {token:?}");
            }
        }
        // Another node's token is not this node's.
        assert_eq!(get(&network, &node_1.id, Some(&node_2.token)).0, 401, "{backend:?}");
        assert_eq!(get(&network, &node_1.id, Some(&node_1.token)).0, 200, "{backend:?}");
    }
}
