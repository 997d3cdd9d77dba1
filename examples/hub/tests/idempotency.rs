//! `Idempotency-Key` on `POST /messages`: a node whose answer was lost
//! sends again with the same key and gets the first answer, and nothing
//! changes; on every backend, over TCP, on a clock the test moves.

mod common;

use common::{Local, Node};
use mobync_tests::dbs;
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[test]
fn a_send_again_with_its_idempotency_key_answers_the_first_message_and_changes_nothing() {
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let time = Arc::new(AtomicI64::new(1_800_000_000_000));
        let hub = Local::launch(Arc::new(db), None, Some(time.clone()), &[("hub.idempotency_window", 3_600.0.into())]);
        let network = common::network(&hub.base, None, "record", json!({"type": "object"}));
        let crm = Node::new(&hub.base, &network, "crm", [true, true, true, true]);
        let erp = Node::new(&hub.base, &network, "erp", [true, true, true, true]);
        let reader = Node::new(&hub.base, &network, "reader", [false, true, false, false]);
        let create = json!({"method": "create", "payload": {"name": "Ada"}});
        let send = |node: &Node, key: &str| node.call_with("POST", "", &[("Idempotency-Key", key)], Some(create.clone()));

        let (status, first) = send(&crm, "k1");
        assert_eq!(status, 201, "{backend:?}: {first}");
        let before = common::admin(&hub.base, "GET", &format!("/networks/{network}/messages?limit=1000"), None).1;
        time.fetch_add(3_599_000, Ordering::SeqCst);
        let (status, again) = send(&crm, "k1");
        assert_eq!(status, 201, "{backend:?}: {again}");
        assert_eq!((&again["id"], &again["record_id"]), (&first["id"], &first["record_id"]), "{backend:?}");
        let after = common::admin(&hub.base, "GET", &format!("/networks/{network}/messages?limit=1000"), None).1;
        assert_eq!(before["messages"], after["messages"], "{backend:?}: the second send changed nothing");
        assert_eq!(reader.pending(), 1, "{backend:?}");

        // Another key, or the same key of another node, is another send.
        let (_, other) = send(&crm, "k2");
        assert_ne!(other["record_id"], first["record_id"], "{backend:?}");
        let (_, theirs) = send(&erp, "k1");
        assert_ne!(theirs["record_id"], first["record_id"], "{backend:?}");
        assert_eq!(reader.pending(), 3, "{backend:?}");

        // A refused key is 400 and changes nothing.
        let long = "k".repeat(256);
        let (status, refused) = send(&crm, &long);
        assert_eq!((status, refused["error"].as_str()), (400, Some("bad_request")), "{backend:?}: {refused}");
        assert_eq!(reader.pending(), 3, "{backend:?}");

        // A send refused under a key leaves the key free.
        let bad = json!({"method": "update", "record_id": "nope", "payload": {"x": 1}});
        assert_eq!(crm.call_with("POST", "", &[("Idempotency-Key", "k3")], Some(bad)).0, 400);
        let (status, fine) = send(&crm, "k3");
        assert_eq!(status, 201, "{backend:?}: {fine}");
        assert_eq!(reader.pending(), 4, "{backend:?}");

        // Past the window the key is forgotten: a new send.
        time.fetch_add(2_000, Ordering::SeqCst);
        let (status, later) = send(&crm, "k1");
        assert_eq!(status, 201, "{backend:?}");
        assert_ne!(later["id"], first["id"], "{backend:?}: past the window");
        assert_eq!(reader.pending(), 5, "{backend:?}");
    }
}
