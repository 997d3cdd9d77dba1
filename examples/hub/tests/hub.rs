//! The hub over real TCP: the `hub` binary as a user starts it, on every
//! backend. Every call and status of the admin and messaging APIs, two
//! nodes exchanging changes, the bridge to the phones, leases across a
//! crash, and two server processes delivering each message once.

use mobync::client::Device;
use mobync::testing;
use mobync_tests::dbs::{self, Backend, TestDb};
use mobync_tests::http::{self as phone_http, HttpServer};
use mobync_tests::spawn::Spawned;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

mod common;

use common::{call, try_call};

const ADMIN: &str = "admin-token-of-the-tests";

struct Hub {
    db: Arc<TestDb>,
    process: Spawned,
}

impl Hub {
    fn start(backend: Backend, env: &[(&str, &str)]) -> Option<Hub> {
        let db = Arc::new(dbs::fresh(backend)?);
        Some(Self::on(db, env))
    }

    fn on(db: Arc<TestDb>, env: &[(&str, &str)]) -> Hub {
        let mut vars = vec![("DATABASE_URL", db.url.clone()), ("HUB_ADMIN_TOKEN", ADMIN.to_string())];
        vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        let process = Spawned::start(env!("CARGO_BIN_EXE_hub"), &vars, Duration::from_secs(60)).unwrap_or_else(|e| panic!("the hub: {e}"));
        Hub { db, process }
    }

    fn base(&self) -> &str {
        &self.process.base
    }
}

/// One HTTP call with a body of any bytes (JSON or not): the status.
fn call_raw(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut request = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build().request(method, url);
    for (k, v) in headers {
        request = request.set(k, v);
    }
    match request.set("Content-Type", "application/json").send_string(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r.status(),
        Err(err) => panic!("{method} {url}: {err}"),
    }
}

/// The admin API.
struct Admin<'a>(&'a Hub);

impl Admin<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(method, &format!("{}/admin{path}", self.0.base()), &[("Authorization", &format!("Bearer {ADMIN}"))], body)
    }

    fn network(&self, body: Value) -> Value {
        let (status, network) = self.call("POST", "/networks", Some(body));
        assert_eq!(status, 201, "{network}");
        network
    }

    fn node(&self, network: &str, name: &str, flags: [bool; 4]) -> Node {
        let body = json!({"name": name, "create": flags[0], "read": flags[1], "update": flags[2], "delete": flags[3]});
        let (status, node) = self.call("POST", &format!("/networks/{network}/nodes"), Some(body));
        assert_eq!(status, 201, "{node}");
        Node {
            base: self.0.base().to_string(),
            network: network.to_string(),
            id: node["id"].as_str().expect("id").to_string(),
            token: node["token"].as_str().expect("token").to_string(),
        }
    }
}

/// A node of a network, calling the messaging API.
#[derive(Clone)]
struct Node {
    base: String,
    network: String,
    id: String,
    token: String,
}

impl Node {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body).unwrap_or_else(|err| panic!("{err}"))
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {}", self.token);
        let headers = [("X-Sync-Network-Id", self.network.as_str()), ("X-Sync-Node-Id", self.id.as_str()), ("Authorization", auth.as_str())];
        try_call(method, &format!("{}/messages{path}", self.base), &headers, body, Duration::from_secs(30))
    }

    fn send(&self, body: Value) -> (u16, Value) {
        self.call("POST", "", Some(body))
    }

    fn pending(&self) -> i64 {
        let (status, count) = self.call("GET", "/pending", None);
        assert_eq!(status, 200, "{count}");
        count.as_i64().expect("an integer")
    }

    fn next(&self) -> Option<Value> {
        match self.call("POST", "/next", None) {
            (200, message) => Some(message),
            (204, _) => None,
            (status, body) => panic!("next: {status} {body}"),
        }
    }

    fn answer(&self, id: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", &format!("/{id}"), Some(body))
    }
}

fn customers() -> Value {
    json!({"type": "object", "properties": {"firstName": {"type": "string"}, "lastName": {"type": "string"},
           "age": {"type": "integer", "minimum": 0}}, "required": ["firstName", "lastName"]})
}

#[test]
fn the_admin_api_answers_every_call_with_its_status() {
    for backend in dbs::backends() {
        let Some(hub) = Hub::start(backend, &[]) else { continue };
        let admin = Admin(&hub);
        let what = |s: &str| format!("{backend:?}: {s}");
        // Authentication first.
        let (status, _) = call("POST", &format!("{}/admin/networks", hub.base()), &[], Some(json!({"name": "x", "schema": {}})));
        assert_eq!(status, 401, "{}", what("no admin token"));
        let (status, _) = call("GET", &format!("{}/admin/networks/x", hub.base()), &[("Authorization", "Bearer nope")], None);
        assert_eq!(status, 401, "{}", what("a wrong admin token"));
        let networks = format!("{}/admin/networks", hub.base());
        assert_eq!(call_raw("POST", &networks, &[("Authorization", "Bearer nope")], "{"), 401, "{}", what("a wrong token before a broken body"));
        assert_eq!(call_raw("POST", &networks, &[("Authorization", &format!("Bearer {ADMIN}"))], "{"), 400, "{}", what("a broken body"));
        let (status, _) = call("GET", &format!("{networks}/x"), &[("Authorization", &format!("bearer {ADMIN}"))], None);
        assert_eq!(status, 404, "{}", what("the scheme's name in lowercase"));
        let big = format!("{{\"name\": \"{}\", \"schema\": {{}}}}", "x".repeat(2 << 20));
        assert_eq!(call_raw("POST", &networks, &[("Authorization", &format!("Bearer {ADMIN}"))], &big), 413, "{}", what("a body over body_limit"));
        // Networks.
        for (body, case) in [
            (json!({"schema": {}}), "no name"),
            (json!({"name": "n"}), "no schema"),
            (json!({"name": "n", "schema": {"type": "nonsense"}}), "an invalid schema"),
            (json!({"name": "n", "schema": {"minimum": "zero"}}), "an invalid keyword"),
            (json!({"name": 5, "schema": {}}), "a name not a string"),
            (json!({"name": "n", "schema": {}, "colour": "red"}), "an unknown field"),
            (json!({"name": "n", "schema": {}, "model": "task"}), "a model of the app's own"),
        ] {
            let (status, body) = admin.call("POST", "/networks", Some(body));
            assert_eq!(status, 400, "{}: {body}", what(case));
        }
        let network = admin.network(json!({"name": "customers", "schema": customers(), "fetch_before_send": true}));
        assert_eq!(network["name"], "customers");
        assert_eq!(network["fetch_before_send"], true);
        assert_eq!(network["model"], "record");
        assert!(network["owner"].is_string(), "{network}");
        let id = network["id"].as_str().expect("id").to_string();
        assert_eq!(admin.call("GET", &format!("/networks/{id}"), None), (200, network.clone()));
        assert_eq!(admin.call("GET", "/networks/4b1c0e5e-0000-4000-8000-000000000000", None).0, 404);
        assert_eq!(admin.call("GET", "/networks/not-a-uuid", None).0, 404);
        let (status, patched) = admin.call("PATCH", &format!("/networks/{id}"), Some(json!({"name": "clients"})));
        assert_eq!((status, patched["name"].clone(), patched["schema"].clone()), (200, json!("clients"), customers()));
        assert_eq!(admin.call("PATCH", &format!("/networks/{id}"), Some(json!({"schema": {"type": 7}}))).0, 400);
        assert_eq!(admin.call("PATCH", &format!("/networks/{id}"), Some(json!({"owner": "x"}))).0, 400);
        assert_eq!(admin.call("PATCH", "/networks/nope", Some(json!({"name": "x"}))).0, 404);
        // Nodes.
        assert_eq!(admin.call("POST", &format!("/networks/{id}/nodes"), Some(json!({"create": true}))).0, 400);
        assert_eq!(admin.call("POST", "/networks/nope/nodes", Some(json!({"name": "crm"}))).0, 404);
        let crm = admin.node(&id, "crm", [true, true, true, true]);
        let (status, list) = admin.call("GET", &format!("/networks/{id}/nodes"), None);
        assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(1)));
        assert!(list[0].get("token").is_none(), "the token is shown once");
        assert_eq!(admin.call("GET", &format!("/networks/{id}/nodes/"), None), (status, list.clone()), "trailing slash");
        let (status, node) = admin.call("GET", &format!("/networks/{id}/nodes/{}", crm.id), None);
        assert_eq!((status, node["name"].clone(), node["delete"].clone()), (200, json!("crm"), json!(true)));
        let (status, node) = admin.call("PATCH", &format!("/networks/{id}/nodes/{}", crm.id), Some(json!({"name": "CRM", "delete": false})));
        assert_eq!((status, node["name"].clone(), node["delete"].clone(), node["create"].clone()), (200, json!("CRM"), json!(false), json!(true)));
        assert_eq!(admin.call("GET", &format!("/networks/{id}/nodes/nope"), None).0, 404);
        assert_eq!(admin.call("PATCH", &format!("/networks/{id}/nodes/nope"), Some(json!({"name": "x"}))).0, 404);
        assert_eq!(admin.call("POST", &format!("/networks/{id}/nodes/{}/sync", crm.id), None).0, 200);
        assert_eq!(admin.call("POST", &format!("/networks/{id}/nodes/nope/sync", ), None).0, 404);
        // Tokens: revoked, then renewed.
        assert_eq!(crm.pending(), 0);
        assert_eq!(admin.call("DELETE", &format!("/networks/{id}/nodes/{}/token", crm.id), None).0, 204);
        assert_eq!(crm.call("GET", "/pending", None).0, 401, "{}", what("a revoked token"));
        let (status, renewed) = admin.call("POST", &format!("/networks/{id}/nodes/{}/token", crm.id), None);
        assert_eq!(status, 201);
        let crm = Node { token: renewed["token"].as_str().expect("token").to_string(), ..crm };
        assert_eq!(crm.pending(), 0);
        let node_headers = [("X-Sync-Network-Id", id.as_str()), ("X-Sync-Node-Id", crm.id.as_str()), ("Authorization", "Bearer nope")];
        assert_eq!(call_raw("POST", &format!("{}/messages", hub.base()), &node_headers, "{"), 401, "{}", what("a node's wrong token before a broken body"));
        // Unknown routes and methods.
        assert_eq!(admin.call("GET", "/nowhere", None).0, 404);
        assert_eq!(admin.call("DELETE", &format!("/networks/{id}"), None).0, 405);
        let (status, history) = admin.call("GET", &format!("/networks/{id}/messages?state=failed"), None);
        assert_eq!((status, history["messages"].as_array().map(Vec::len)), (200, Some(0)));
        assert_eq!(admin.call("GET", &format!("/networks/{id}/messages?state=lost"), None).0, 400);
    }
}

#[test]
fn two_nodes_exchange_changes_with_remote_ids_failures_and_a_resync() {
    for backend in dbs::backends() {
        let Some(hub) = Hub::start(backend, &[]) else { continue };
        let admin = Admin(&hub);
        let network = admin.network(json!({"name": "customers", "schema": customers(), "fetch_before_send": true}));
        let id = network["id"].as_str().expect("id");
        let crm = admin.node(id, "crm", [true, true, true, true]);
        let billing = admin.node(id, "billing", [false, true, true, false]);
        let reader = admin.node(id, "reader", [false, false, false, false]);

        // Headers and tokens of the messaging API.
        let url = format!("{}/messages/pending", hub.base());
        assert_eq!(call("GET", &url, &[("X-Sync-Node-Id", &crm.id)], None).0, 400);
        assert_eq!(call("GET", &url, &[("X-Sync-Network-Id", id)], None).0, 400);
        // The token first: without one, an unknown network or node is 401;
        // with a node's token, 404.
        assert_eq!(call("GET", &url, &[("X-Sync-Network-Id", "nope"), ("X-Sync-Node-Id", &crm.id)], None).0, 401);
        let auth = format!("Bearer {}", crm.token);
        assert_eq!(call("GET", &url, &[("X-Sync-Network-Id", "nope"), ("X-Sync-Node-Id", &crm.id), ("Authorization", &auth)], None).0, 404);
        assert_eq!(call("GET", &url, &[("X-Sync-Network-Id", id), ("X-Sync-Node-Id", "nope"), ("Authorization", &auth)], None).0, 404);
        let wrong = Node { token: "wrong".into(), ..crm.clone() };
        assert_eq!(wrong.call("GET", "/pending", None).0, 401);

        // The CRM creates a customer, with its own id for it.
        let (status, sent) = crm.send(json!({"method": "create", "payload": {"firstName": "Ada", "lastName": "Lovelace"}, "remote_id": "crm-1"}));
        assert_eq!(status, 201, "{sent}");
        assert_eq!((sent["state"].clone(), sent["origin_id"].clone(), sent["remote_id"].clone()), (json!("acknowledged"), json!(crm.id), json!("crm-1")));
        let record = sent["record_id"].as_str().expect("record id").to_string();
        assert_eq!(crm.pending(), 0, "a node is not sent its own change");
        assert_eq!(reader.pending(), 0, "a node without read gets nothing");
        assert_eq!(billing.pending(), 1);
        let message = billing.next().expect("the create");
        assert_eq!(
            (message["method"].clone(), message["payload"].clone(), message["record_id"].clone(), message["state"].clone(), message["remote_id"].clone()),
            (json!("create"), json!({"firstName": "Ada", "lastName": "Lovelace"}), json!(record), json!("processing"), Value::Null)
        );
        assert!(billing.next().is_none(), "204 when nothing waits");
        // fetch_before_send: billing has nothing pending now (its message is
        // processing), so it may send.
        let (status, acked) = billing.answer(message["id"].as_str().expect("id"), json!({"success": true, "remote_id": "B-77"}));
        assert_eq!((status, acked["state"].clone(), acked["remote_id"].clone()), (200, json!("acknowledged"), json!("B-77")));
        assert_eq!(billing.answer(message["id"].as_str().expect("id"), json!({"success": true})).0, 200, "acknowledging twice is harmless");
        assert_eq!(billing.answer(message["id"].as_str().expect("id"), json!({"success": false, "reason": "x"})).0, 409);

        // Billing updates it by its own id: a merge patch.
        let (status, sent) = billing.send(json!({"method": "update", "payload": {"age": 36}, "remote_id": "B-77"}));
        assert_eq!((status, sent["record_id"].clone()), (201, json!(record)), "{sent}");
        let message = crm.next().expect("the update");
        assert_eq!((message["payload"].clone(), message["remote_id"].clone()), (json!({"age": 36}), json!("crm-1")));
        let (status, failed) = crm.answer(message["id"].as_str().expect("id"), json!({"success": false, "reason": "age is read-only here"}));
        assert_eq!((status, failed["state"].clone()), (200, json!("failed")));
        let (_, history) = admin.call("GET", &format!("/networks/{id}/messages?state=failed"), None);
        let failed = &history["messages"][0];
        assert_eq!(failed["id"], message["id"]);
        let states: Vec<&str> = failed["changes"].as_array().expect("changes").iter().map(|c| c["state"].as_str().expect("state")).collect();
        assert_eq!(states, ["pending", "processing", "failed"]);
        assert_eq!(failed["changes"][2]["note"], "age is read-only here");

        // Refusals, each 400 and nothing changed.
        let refusals = [
            (&billing, json!({"method": "create", "payload": {"firstName": "x", "lastName": "y"}}), "no create permission"),
            (&billing, json!({"method": "delete", "record_id": record}), "no delete permission"),
            (&crm, json!({"method": "update", "payload": {"age": -1}, "record_id": record}), "the schema"),
            (&crm, json!({"method": "create", "payload": {"firstName": "x"}}), "the schema: a required field"),
            (&crm, json!({"method": "update", "payload": {"age": 1}, "record_id": "no-such-record"}), "an unknown record"),
            (&crm, json!({"method": "update", "payload": {"age": 1}, "remote_id": "crm-404"}), "an unknown remote id"),
            (&crm, json!({"method": "create", "payload": {"firstName": "x", "lastName": "y"}, "remote_id": "crm-1"}), "a create of an existing record"),
            (&crm, json!({"method": "create", "payload": {"firstName": "x", "lastName": "y"}, "record_id": record}), "a create with a record_id"),
            (&crm, json!({"method": "upsert", "payload": {}}), "an unknown method"),
            (&crm, json!({"method": "update", "record_id": record}), "an update without a payload"),
        ];
        for (node, body, case) in refusals {
            let (status, answer) = node.send(body);
            assert_eq!(status, 400, "{backend:?} {case}: {answer}");
        }
        // fetch_before_send: the CRM has a message waiting.
        crm.send(json!({"method": "update", "payload": {"lastName": "King"}, "remote_id": "crm-1"}));
        let waiting = billing.next().expect("the CRM's update");
        billing.answer(waiting["id"].as_str().expect("id"), json!({"success": true}));
        billing.send(json!({"method": "update", "payload": {"firstName": "Augusta"}, "remote_id": "B-77"}));
        let (status, answer) = crm.send(json!({"method": "update", "payload": {"age": 37}, "remote_id": "crm-1"}));
        assert_eq!(status, 400, "fetch before send: {answer}");
        let update = crm.next().expect("billing's update");
        assert_eq!(update["payload"], json!({"firstName": "Augusta"}));
        crm.answer(update["id"].as_str().expect("id"), json!({"success": true}));
        // Delete; then any change of it is refused.
        let (status, _) = crm.send(json!({"method": "delete", "remote_id": "crm-1"}));
        assert_eq!(status, 201);
        let (status, answer) = crm.send(json!({"method": "update", "payload": {"age": 1}, "remote_id": "crm-1"}));
        assert_eq!(status, 400, "a change to a deleted record: {answer}");
        let deleted = billing.next().expect("the delete");
        assert_eq!((deleted["method"].clone(), deleted["remote_id"].clone()), (json!("delete"), json!("B-77")));
        billing.answer(deleted["id"].as_str().expect("id"), json!({"success": true}));

        // A re-sync sends the live records again, as creates with the
        // node's ids, after what waits.
        crm.send(json!({"method": "create", "payload": {"firstName": "Grace", "lastName": "Hopper"}, "remote_id": "crm-2"}));
        crm.send(json!({"method": "create", "payload": {"firstName": "Alan", "lastName": "Turing"}}));
        assert_eq!(billing.pending(), 2);
        let (status, queued) = admin.call("POST", &format!("/networks/{id}/nodes/{}/sync", crm.id), None);
        assert_eq!((status, queued["queued"].clone()), (200, json!(2)));
        let mut creates = Vec::new();
        while let Some(message) = crm.next() {
            crm.answer(message["id"].as_str().expect("id"), json!({"success": true}));
            creates.push((message["payload"]["firstName"].clone(), message["remote_id"].clone()));
        }
        assert_eq!(creates, [(json!("Grace"), json!("crm-2")), (json!("Alan"), Value::Null)]);
    }
}

#[test]
fn a_node_and_a_phone_of_the_owner_edit_the_same_records() {
    for backend in dbs::backends() {
        let Some(hub) = Hub::start(backend, &[]) else { continue };
        let admin = Admin(&hub);
        let (token, owner) = phone_http::signup(hub.base(), "ada");
        let network = admin.network(json!({"name": "customers", "schema": customers(), "owner": owner, "model": "customer"}));
        assert_eq!((network["owner"].clone(), network["model"].clone()), (json!(owner), json!("customer")));
        let id = network["id"].as_str().expect("id");
        let crm = admin.node(id, "crm", [true, true, true, true]);
        let mut sync = HttpServer { sync_url: format!("{}/sync", hub.base()), rows: |_: &str| unreachable!(), state: || unreachable!() };

        // A node's create reaches the phone through /sync.
        let (_, sent) = crm.send(json!({"method": "create", "payload": {"firstName": "Ada", "lastName": "Lovelace"}, "remote_id": "c1"}));
        let record = sent["record_id"].as_str().expect("record").to_string();
        let mut phone = Device::new("phone");
        testing::sync(&mut sync, &token, &mut phone);
        let row = &phone.rows()[&("customer".to_string(), record.clone())];
        assert_eq!(Value::Object(row.clone()), json!({"id": record, "firstName": "Ada", "lastName": "Lovelace"}));

        // The phone's update reaches the node as a message.
        phone.update("customer", &record, json!({"lastName": "King"}), 10);
        testing::sync(&mut sync, &token, &mut phone);
        let message = crm.next().expect("the phone's update");
        assert_eq!(
            (message["method"].clone(), message["payload"].clone(), message["remote_id"].clone(), message["origin_id"].clone()),
            (json!("update"), json!({"lastName": "King"}), json!("c1"), Value::Null)
        );
        // A phone's create and delete reach it too.
        phone.create("customer", "from-the-phone", json!({"firstName": "Grace", "lastName": "Hopper"}), 11);
        phone.delete("customer", &record, 12);
        testing::sync(&mut sync, &token, &mut phone);
        crm.answer(message["id"].as_str().expect("id"), json!({"success": true}));
        let create = crm.next().expect("the phone's create");
        assert_eq!((create["method"].clone(), create["record_id"].clone()), (json!("create"), json!("from-the-phone")));
        crm.answer(create["id"].as_str().expect("id"), json!({"success": true, "remote_id": "c2"}));
        let delete = crm.next().expect("the phone's delete");
        assert_eq!((delete["method"].clone(), delete["remote_id"].clone()), (json!("delete"), json!("c1")));

        // The schema holds for the phone too: its refused write is 403.
        phone.create("customer", "bad", json!({"firstName": 7, "lastName": "x"}), 13);
        let request = phone.request(&token);
        let err = mobync::testing::Server::sync(&mut sync, &token, &request).expect_err("refused");
        assert_eq!((err.kind.status(), err.diff_id.is_some()), (403, true), "{err}");
        // A model no network has is unknown to the phone: 422.
        let mut other = Device::new("other");
        other.create("invoice", "i1", json!({"total": 1}), 14);
        let err = mobync::testing::Server::sync(&mut sync, &token, &other.request(&token)).expect_err("unknown model");
        assert_eq!(err.kind.status(), 422, "{err}");
    }
}

#[test]
fn an_update_reaches_the_other_nodes_as_the_merge_patch_that_makes_their_copy_equal() {
    for backend in dbs::backends() {
        let Some(hub) = Hub::start(backend, &[]) else { continue };
        let admin = Admin(&hub);
        let (token, owner) = phone_http::signup(hub.base(), "ada");
        let network = admin.network(json!({"name": "things", "schema": {"type": "object"}, "owner": owner, "model": "thing"}));
        let id = network["id"].as_str().expect("id");
        let (a, b) = (admin.node(id, "a", [true, true, true, true]), admin.node(id, "b", [true, true, true, true]));
        let mut sync = HttpServer { sync_url: format!("{}/sync", hub.base()), rows: |_: &str| unreachable!(), state: || unreachable!() };
        // B keeps its copy by applying each message's payload as a merge patch.
        let mut copy = Value::Null;
        let take = |b: &Node, copy: &mut Value| -> Option<Value> {
            let message = b.next()?;
            match message["method"].as_str() {
                Some("create") => *copy = message["payload"].clone(),
                Some("update") => json_patch::merge(copy, &message["payload"]),
                other => panic!("{other:?}"),
            }
            assert_eq!(b.answer(message["id"].as_str().expect("id"), json!({"success": true})).0, 200);
            Some(message["payload"].clone())
        };
        let (_, sent) = a.send(json!({"method": "create", "payload": {"name": "n", "tags": {"x": 1, "y": {"z": 1, "w": 2}}}}));
        let record = sent["record_id"].as_str().expect("record").to_string();
        take(&b, &mut copy).expect("the create");

        // A node's nested patch reaches B as sent.
        let patch = json!({"tags": {"y": {"z": null}}});
        assert_eq!(a.send(json!({"method": "update", "record_id": record, "payload": patch})).0, 201);
        assert_eq!(take(&b, &mut copy), Some(patch), "{backend:?}");
        assert_eq!(copy, json!({"name": "n", "tags": {"x": 1, "y": {"w": 2}}}), "{backend:?}");

        // A phone replaces a whole object field: B is told what went.
        let mut phone = Device::new("phone");
        testing::sync(&mut sync, &token, &mut phone);
        phone.update("thing", &record, json!({"tags": {"x": 2}}), 10);
        testing::sync(&mut sync, &token, &mut phone);
        assert_eq!(take(&b, &mut copy), Some(json!({"tags": {"x": 2, "y": null}})), "{backend:?}");
        let mut row = phone.rows()[&("thing".to_string(), record.clone())].clone();
        row.remove("id");
        assert_eq!(copy, Value::Object(row), "{backend:?}: B's copy is the phone's row");

        // A node's change that changes nothing reaches B as the empty patch
        // (as in jim8786453/sync, every update a node sends is told).
        assert_eq!(a.send(json!({"method": "update", "record_id": record, "payload": {"name": "n"}})).0, 201);
        assert_eq!(take(&b, &mut copy), Some(json!({})), "{backend:?}");
        assert_eq!(b.pending(), 0, "{backend:?}");
    }
}

#[test]
fn a_message_fetched_by_a_server_that_dies_is_delivered_again_after_its_lease() {
    for backend in dbs::backends() {
        lease_outlives_its_server(backend);
    }
}

/// The first server is stopped while the node holds the message; the
/// second serves on the same database and the same clock, which the test
/// moves past the lease instead of sleeping.
fn lease_outlives_its_server(backend: Backend) {
    let Some(db) = dbs::fresh(backend) else { return };
    let db = Arc::new(db);
    let time = Arc::new(AtomicI64::new(1_800_000_000_000));
    let lease = [("hub.lease", 60.0.into())];
    let hub = common::Local::launch(db.clone(), None, Some(time.clone()), &lease);
    let id = common::network(&hub.base, None, "record", customers());
    let crm = common::Node::new(&hub.base, &id, "crm", [true, true, true, true]);
    let billing = common::Node::new(&hub.base, &id, "billing", [true, true, true, true]);
    crm.send(json!({"method": "create", "payload": {"firstName": "Ada", "lastName": "Lovelace"}}));
    let fetched = billing.next().expect("the create");
    // The server goes before the node answers; another takes its place.
    drop(hub);
    let hub = common::Local::launch(db, None, Some(time.clone()), &lease);
    let billing = common::Node { base: hub.base.clone(), ..billing };
    time.fetch_add(59_999, Ordering::SeqCst);
    assert!(billing.next().is_none(), "within its lease the message stays with its fetcher");
    assert_eq!(billing.pending(), 0);
    time.fetch_add(2, Ordering::SeqCst);
    assert_eq!(billing.pending(), 1);
    let again = billing.next().expect("delivered again");
    assert_eq!((again["id"].clone(), again["payload"].clone()), (fetched["id"].clone(), fetched["payload"].clone()));
    assert_eq!(billing.answer(again["id"].as_str().expect("id"), json!({"success": true})).0, 200);
    // The first fetcher's late answer is harmless.
    assert_eq!(billing.answer(fetched["id"].as_str().expect("id"), json!({"success": true})).0, 200);
    let (_, history) = common::admin(&hub.base, "GET", &format!("/networks/{id}/messages/{}", again["id"].as_str().expect("id")), None);
    let notes: Vec<&str> = history["changes"].as_array().expect("changes").iter().map(|c| c["note"].as_str().unwrap_or("")).collect();
    assert!(notes.iter().any(|n| n.contains("lease")), "{backend:?}: {history}");
}

#[test]
fn two_server_processes_and_two_fetchers_per_node_deliver_each_message_once_per_node() {
    let Some(first) = Hub::start(Backend::Postgres, &[]) else { return };
    let second = Hub::on(first.db.clone(), &[]);
    let admin = Admin(&first);
    let network = admin.network(json!({"name": "customers", "schema": customers()}));
    let id = network["id"].as_str().expect("id").to_string();
    let source = admin.node(&id, "source", [true, false, false, false]);
    let readers: Vec<Node> = (0..2).map(|i| admin.node(&id, &format!("reader{i}"), [false, true, false, false])).collect();
    const MESSAGES: usize = 60;
    for i in 0..MESSAGES {
        let (status, _) = source.send(json!({"method": "create", "payload": {"firstName": format!("f{i}"), "lastName": "x"}}));
        assert_eq!(status, 201);
    }
    // Two fetchers per node, one on each process, fetching and answering.
    let received: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let fetchers: Vec<_> = readers
        .iter()
        .flat_map(|reader| [first.base().to_string(), second.base().to_string()].map(|base| (reader.clone(), base)))
        .map(|(reader, base)| {
            let received = received.clone();
            std::thread::spawn(move || {
                let node = Node { base, ..reader };
                while let Some(message) = node.next() {
                    let id = message["id"].as_str().expect("id").to_string();
                    received.lock().expect("received").entry(node.id.clone()).or_default().push(id.clone());
                    assert_eq!(node.answer(&id, json!({"success": true})).0, 200);
                }
            })
        })
        .collect();
    for fetcher in fetchers {
        fetcher.join().expect("a fetcher");
    }
    let received = received.lock().expect("received");
    for reader in &readers {
        let ids = &received[&reader.id];
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!((ids.len(), distinct.len()), (MESSAGES, MESSAGES), "{}: every message exactly once", reader.id);
        assert_eq!(reader.pending(), 0);
    }
}

#[test]
fn killed_three_times_under_traffic_the_hub_delivers_each_accepted_change_once() {
    for backend in dbs::backends() {
        survives_kills(backend);
    }
}

/// A node sends creates (each with its own id, so a create whose answer
/// was lost is sent again and refused as existing), another fetches and
/// acknowledges, and the server is killed (SIGKILL) three times meanwhile.
/// Each change is accepted once and delivered as one message, whatever
/// answers were lost. The lease is 0: a message whose fetch was cut by a
/// kill is delivered again at once, so nothing waits out a lease.
///
/// Kill k falls once the sender is k quarters on, and the sender waits
/// an eighth further on until it has fallen, so that it is still sending
/// whatever the machine's load; the next server starts once the sender has
/// met the dead one (a send lost), so every kill costs the sender a send.
fn survives_kills(backend: Backend) {
    const CHANGES: usize = 120;
    let env = [("ROCKET_HUB", "{lease=0}")];
    let Some(mut hub) = Hub::start(backend, &env) else { return };
    let admin = Admin(&hub);
    let network = admin.network(json!({"name": "customers", "schema": customers()}));
    let id = network["id"].as_str().expect("id").to_string();
    let source = admin.node(&id, "source", [true, false, false, false]);
    let reader = admin.node(&id, "reader", [false, true, false, false]);
    let base = Arc::new(RwLock::new(hub.base().to_string()));
    let at = |node: &Node, base: &RwLock<String>| Node { base: base.read().expect("base").clone(), ..node.clone() };
    let sent = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicUsize::new(0));
    let patience = move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        move |what: &str| assert!(std::time::Instant::now() < deadline, "{backend:?}: never came: {what}")
    };

    let sender = {
        let (base, sent, lost, progress, killed) = (base.clone(), sent.clone(), lost.clone(), progress.clone(), killed.clone());
        std::thread::spawn(move || {
            for i in 0..CHANGES {
                // Not past an eighth into quarter k before kill k fell.
                if let Some(k) = (1..=3).find(|k| i == k * CHANGES / 4 + CHANGES / 8) {
                    let waited = patience();
                    while killed.load(Ordering::SeqCst) < k {
                        waited("the kill the sender waits for");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                progress.store(i, Ordering::SeqCst);
                let body = json!({"method": "create", "payload": {"firstName": format!("f{i}"), "lastName": "x"}, "remote_id": format!("r{i}")});
                loop {
                    match at(&source, &base).try_call("POST", "", Some(body.clone())) {
                        Ok((201, _)) => break,
                        Ok((400, answer)) if answer.to_string().contains("existing record") => break,
                        // "Retry later": a server just started while the
                        // killed one's sessions still hold their locks.
                        Ok((503, _)) => std::thread::sleep(Duration::from_millis(50)),
                        Ok((status, answer)) => panic!("{backend:?}: send {i}: {status} {answer}"),
                        Err(_) => {
                            lost.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            }
            sent.store(true, Ordering::SeqCst);
        })
    };
    let fetcher = {
        let (base, sent, reader) = (base.clone(), sent.clone(), reader.clone());
        std::thread::spawn(move || {
            let mut received: BTreeMap<String, String> = BTreeMap::new();
            loop {
                let node = at(&reader, &base);
                match node.try_call("POST", "/next", None) {
                    Ok((200, message)) => {
                        let id = message["id"].as_str().expect("id").to_string();
                        received.insert(id.clone(), message["payload"]["firstName"].as_str().expect("name").to_string());
                        // An acknowledgement whose answer was lost is sent
                        // again (to whichever server is up): twice is harmless.
                        loop {
                            match at(&reader, &base).try_call("PATCH", &format!("/{id}"), Some(json!({"success": true}))) {
                                Ok((200, _)) => break,
                                Ok((503, _)) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
                                Ok((status, answer)) => panic!("{backend:?}: acknowledge: {status} {answer}"),
                            }
                        }
                    }
                    Ok((204, _)) if sent.load(Ordering::SeqCst) => {
                        // A message fetched by a server killed before it
                        // answered counts as pending again (lease 0).
                        if let Ok((200, count)) = at(&reader, &base).try_call("GET", "/pending", None) {
                            if count == 0 {
                                return received;
                            }
                        }
                    }
                    Ok((204 | 503, _)) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    Ok((status, answer)) => panic!("{backend:?}: next: {status} {answer}"),
                }
            }
        })
    };
    // Each kill falls once the sender is a quarter further on.
    for k in 1..=3 {
        let waited = patience();
        while progress.load(Ordering::SeqCst) < k * CHANGES / 4 {
            assert!(!sender.is_finished(), "{backend:?}: the sender stopped early");
            waited("the sender a quarter further on");
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = lost.load(Ordering::SeqCst);
        hub.process.kill();
        killed.store(k, Ordering::SeqCst);
        let waited = patience();
        while lost.load(Ordering::SeqCst) == before {
            assert!(!sender.is_finished(), "{backend:?}: the sender finished before kill {k} cost it a send");
            waited("a send lost to the kill");
            std::thread::sleep(Duration::from_millis(1));
        }
        hub = Hub::on(hub.db.clone(), &env);
        *base.write().expect("base") = hub.base().to_string();
    }
    sender.join().expect("the sender");
    let received = fetcher.join().expect("the fetcher");
    assert!(lost.load(Ordering::SeqCst) >= 3, "{backend:?}: each kill fell while the node was sending");
    let names: HashSet<&String> = received.values().collect();
    assert_eq!((received.len(), names.len()), (CHANGES, CHANGES), "{backend:?}: one message per change: {received:?}");
    let (_, history) = Admin(&hub).call("GET", &format!("/networks/{id}/messages?state=acknowledged&limit=1000"), None);
    let states: Vec<(&Value, &Value)> = history["messages"].as_array().expect("messages").iter().map(|m| (&m["payload"]["firstName"], &m["destination_id"])).collect();
    let delivered = states.iter().filter(|(_, to)| **to == json!(reader.id)).count();
    assert_eq!(delivered, CHANGES, "{backend:?}: acknowledged (name, destination): {states:?}");
}

#[test]
fn metrics_count_the_hubs_messages_by_state_and_the_diffs_it_applied() {
    let Some(hub) = Hub::start(Backend::Sqlite, &[]) else { return };
    let admin = Admin(&hub);
    let network = admin.network(json!({"name": "customers", "schema": customers()}));
    let id = network["id"].as_str().expect("id");
    let crm = admin.node(id, "crm", [true, true, true, true]);
    let billing = admin.node(id, "billing", [false, true, false, false]);
    // A create (its message: processing, acknowledged; billing's copy:
    // pending), fetched (processing) and acknowledged.
    crm.send(json!({"method": "create", "payload": {"firstName": "Ada", "lastName": "Lovelace"}, "remote_id": "c1"}));
    let message = billing.next().expect("the create");
    billing.answer(message["id"].as_str().expect("id"), json!({"success": true}));
    // An update, fetched and failed; a refused send counts nothing.
    crm.send(json!({"method": "update", "payload": {"age": 36}, "remote_id": "c1"}));
    assert_eq!(crm.send(json!({"method": "update", "payload": {"age": -1}, "remote_id": "c1"})).0, 400);
    let message = billing.next().expect("the update");
    billing.answer(message["id"].as_str().expect("id"), json!({"success": false, "reason": "no"}));

    let (status, text) = call("GET", &format!("{}/metrics", hub.base()), &[], None);
    assert_eq!(status, 200);
    let text = text.as_str().expect("the text format").to_string();
    for (key, value) in [
        (r#"mobync_hub_messages_total{state="pending"}"#, "2"),
        (r#"mobync_hub_messages_total{state="processing"}"#, "4"),
        (r#"mobync_hub_messages_total{state="acknowledged"}"#, "3"),
        (r#"mobync_hub_messages_total{state="failed"}"#, "1"),
        (r#"mobync_diffs_applied_total{model="record",op="create"}"#, "1"),
        (r#"mobync_diffs_applied_total{model="record",op="update"}"#, "1"),
    ] {
        assert!(text.lines().any(|l| l == format!("{key} {value}")), "{key} {value}:\n{text}");
    }
}

#[test]
fn without_its_admin_token_the_hub_does_not_start_and_says_why() {
    let Some(db) = dbs::fresh(Backend::Sqlite) else { return };
    let env = [("DATABASE_URL", db.url.clone()), ("HUB_ADMIN_TOKEN", String::new())];
    let err = Spawned::start(env!("CARGO_BIN_EXE_hub"), &env, Duration::from_secs(60))
        .err()
        .expect("no HUB_ADMIN_TOKEN");
    assert!(err.contains("HUB_ADMIN_TOKEN"), "{err}");
}
