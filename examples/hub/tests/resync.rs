//! A node's re-sync in pieces, each a short transaction under the owner's
//! lock: the owner's other syncs answer between pieces, changes made
//! meanwhile reach the node after the copy they change, and the node ends
//! with the hub's records. On every backend, over TCP.

mod common;

use common::{Gate, Local, Node};
use mobync::client::Device;
use mobync::testing;
use mobync_hub::Step;
use mobync_tests::dbs::{self, TestDb};
use mobync_tests::http::{self as phone_http, HttpServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The live records of model `thing`: id → fields.
fn stored(db: &TestDb) -> BTreeMap<String, Value> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        data: Option<String>,
    }
    let sql = "SELECT id, data FROM hub_records WHERE model = 'thing' AND deleted = FALSE";
    let rows: Vec<Row> = diesel::sql_query(sql).load(&mut dbs::connect(db)).expect("records");
    rows.into_iter().map(|r| (r.id, serde_json::from_str(r.data.as_deref().unwrap_or("{}")).expect("JSON"))).collect()
}

/// A node's copy, kept by applying each message; creates seen per record.
#[derive(Default)]
struct Copy {
    records: BTreeMap<String, Value>,
    creates: BTreeMap<String, usize>,
}

impl Copy {
    /// Fetches, applies and acknowledges everything that waits.
    fn drain(&mut self, node: &Node) {
        while let Some(message) = node.next() {
            let record = message["record_id"].as_str().expect("record").to_string();
            match message["method"].as_str() {
                Some("create") => {
                    *self.creates.entry(record.clone()).or_default() += 1;
                    self.records.insert(record, message["payload"].clone());
                }
                Some("update") => json_patch::merge(self.records.entry(record).or_insert(json!({})), &message["payload"]),
                Some("delete") => {
                    self.records.remove(&record);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(node.answer(message["id"].as_str().expect("id"), json!({"success": true})).0, 200);
        }
    }
}

#[test]
fn a_resync_in_pieces_lets_the_owner_sync_between_them_and_the_node_ends_with_the_hubs_records() {
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let gate = Gate::default();
        let hook = gate.clone();
        let pieces = Arc::new(AtomicUsize::new(0));
        let counted = pieces.clone();
        let on_step: common::Hook = Box::new(move |step| {
            if step == Step::ResyncPiece {
                counted.fetch_add(1, Ordering::SeqCst);
                hook.pass();
            }
        });
        let hub = Local::launch(Arc::new(db), Some(on_step), None, &[("hub.resync_piece", 10.into())]);
        let base = hub.base.as_str();
        let (token, owner) = phone_http::signup(base, "ada");
        let network = common::network(base, Some(&owner), "thing", json!({"type": "object"}));
        let source = Node::new(base, &network, "source", [true, false, true, true]);
        let reader = Node::new(base, &network, "reader", [false, true, false, false]);
        let ids: Vec<String> = (0..35)
            .map(|i| {
                let (status, sent) = source.send(json!({"method": "create", "payload": {"n": i}}));
                assert_eq!(status, 201, "{sent}");
                sent["record_id"].as_str().expect("record").to_string()
            })
            .collect();
        let mut copy = Copy::default();
        copy.drain(&reader);
        // One message in flight and one waiting when the re-sync starts:
        // both are superseded.
        assert_eq!(source.send(json!({"method": "update", "record_id": ids[0], "payload": {"m": 1}})).0, 201);
        assert_eq!(source.send(json!({"method": "update", "record_id": ids[1], "payload": {"m": 1}})).0, 201);
        let in_flight = reader.next().expect("an update");
        let mut server = HttpServer { sync_url: format!("{base}/sync"), rows: |_: &str| unreachable!(), state: || unreachable!() };
        let mut phone = Device::new("phone");
        testing::sync(&mut server, &token, &mut phone);

        let (reached, open) = gate.arm();
        let resync = {
            let path = format!("/networks/{network}/nodes/{}/sync", reader.id);
            let base = base.to_string();
            std::thread::spawn(move || common::admin(&base, "POST", &path, None))
        };
        reached.recv_timeout(Duration::from_secs(60)).expect("the first piece");
        // Between pieces: the phone changes a record of the first piece and
        // one of a later piece and makes a new one; a node updates another.
        phone.update("thing", &ids[5], json!({"n": "phone"}), 10);
        phone.update("thing", &ids[25], json!({"n": "phone"}), 10);
        let new = mobync_hub::new_id();
        phone.create("thing", &new, json!({"n": "new"}), 10);
        testing::sync(&mut server, &token, &mut phone);
        assert_eq!(source.send(json!({"method": "update", "record_id": ids[30], "payload": {"n": "node"}})).0, 201);
        assert!(!resync.is_finished(), "{backend:?}: the owner synced in the middle of the re-sync");
        open.send(()).expect("open");
        let (status, answer) = resync.join().expect("the re-sync");
        assert_eq!((status, answer), (200, json!({"queued": 35})), "{backend:?}");
        assert_eq!(pieces.load(Ordering::SeqCst), 4, "{backend:?}: 35 records in pieces of 10");

        let (status, late) = reader.answer(in_flight["id"].as_str().expect("id"), json!({"success": true}));
        assert_eq!((status, late["error"].as_str()), (409, Some("conflict")), "{backend:?}: {late}");
        copy.drain(&reader);
        assert_eq!(copy.records, stored(&hub.db), "{backend:?}: the node's copy is the hub's");
        assert!(copy.creates.iter().filter(|(id, _)| **id != new).all(|(_, n)| *n == 2), "{backend:?}: every old record once again");
        assert_eq!(copy.creates.get(&new), Some(&1), "{backend:?}: the new record once");
    }
}

/// `HUB_RESYNC_RECORDS` records (default 5,000) of one owner re-synced to a
/// node, while the owner's phone syncs (a new task each time) until the
/// re-sync is done: the longest of those syncs is printed. The figure in
/// BENCHMARKS.md is 100,000 records, with `--release`.
#[test]
fn a_resync_of_many_records_leaves_the_owners_syncs_answering() {
    let records: usize = std::env::var("HUB_RESYNC_RECORDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let hub = Local::launch(Arc::new(db), None, None, &[]);
        let base = hub.base.as_str();
        let (token, owner) = phone_http::signup(base, "ada");
        let network = common::network(base, Some(&owner), "thing", json!({"type": "object"}));
        let reader = Node::new(base, &network, "reader", [false, true, false, false]);
        insert_records(&hub.db, &owner, records);
        let mut server = HttpServer { sync_url: format!("{base}/sync"), rows: |_: &str| unreachable!(), state: || unreachable!() };
        let mut phone = Device::new("phone");
        // The same syncs with no re-sync running, to compare.
        let mut alone = Duration::ZERO;
        for i in 0..20 {
            phone.create("task", &mobync_hub::new_id(), json!({"title": "t", "done": false}), i);
            let at = Instant::now();
            testing::sync(&mut server, &token, &mut phone);
            alone = alone.max(at.elapsed());
        }
        let started = Instant::now();
        let resync = {
            let path = format!("/networks/{network}/nodes/{}/sync", reader.id);
            let base = base.to_string();
            std::thread::spawn(move || common::admin(&base, "POST", &path, None))
        };
        let (mut longest, mut syncs) = (Duration::ZERO, 0);
        while !resync.is_finished() || syncs == 0 {
            phone.create("task", &mobync_hub::new_id(), json!({"title": "t", "done": false}), 20 + syncs);
            let at = Instant::now();
            testing::sync(&mut server, &token, &mut phone);
            longest = longest.max(at.elapsed());
            syncs += 1;
        }
        let took = started.elapsed();
        let (status, answer) = resync.join().expect("the re-sync");
        assert_eq!((status, answer), (200, json!({"queued": records})), "{backend:?}");
        assert_eq!(reader.pending(), records as i64, "{backend:?}");
        eprintln!(
            "{backend:?}: re-sync of {records} records took {took:?}; {syncs} syncs of the owner meanwhile, the longest {longest:?} \
             (the longest of 20 with no re-sync: {alone:?})"
        );
    }
}

/// `n` records of model `thing` of `owner`, written straight to the table.
fn insert_records(db: &TestDb, owner: &str, n: usize) {
    use diesel::RunQueryDsl;
    let mut conn = dbs::connect(db);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("('thing', 'r{i:07}', '{owner}', '{{\"n\": {i}, \"name\": \"record {i}\"}}', FALSE)"))
            .collect();
        let sql = format!("INSERT INTO hub_records (model, id, owner, data, deleted) VALUES {}", values.join(", "));
        diesel::sql_query(sql).execute(&mut conn).expect("records");
    }
}

/// A piece reads its records under the owner's lock: a phone's update that
/// comes while a piece holds a record it read waits, and is queued after
/// that record's create, so the node ends with the update (read outside
/// the lock, the update could commit in between and be queued before a
/// create carrying the record as it was).
#[test]
fn a_phones_update_during_a_resync_piece_reaches_the_node_after_the_records_create() {
    for backend in [mobync_tests::dbs::Backend::Postgres, mobync_tests::dbs::Backend::Mysql] {
        let Some(db) = dbs::fresh(backend) else { continue };
        let gate = Gate::default();
        let hook = gate.clone();
        let on_step: common::Hook = Box::new(move |step| {
            if step == Step::ResyncRead {
                hook.pass();
            }
        });
        let hub = Local::launch(Arc::new(db), Some(on_step), None, &[]);
        let base = hub.base.as_str();
        let (token, owner) = phone_http::signup(base, "ada");
        let network = common::network(base, Some(&owner), "thing", json!({"type": "object"}));
        let source = Node::new(base, &network, "source", [true, false, true, true]);
        let reader = Node::new(base, &network, "reader", [false, true, false, false]);
        let (_, sent) = source.send(json!({"method": "create", "payload": {"n": "old"}}));
        let record = sent["record_id"].as_str().expect("record").to_string();
        let mut copy = Copy::default();
        copy.drain(&reader);
        let url = format!("{base}/sync");
        let mut phone = Device::new("phone");
        testing::sync(&mut HttpServer { sync_url: url.clone(), rows: |_: &str| unreachable!(), state: || unreachable!() }, &token, &mut phone);

        let (reached, open) = gate.arm();
        let resync = {
            let path = format!("/networks/{network}/nodes/{}/sync", reader.id);
            let base = base.to_string();
            std::thread::spawn(move || common::admin(&base, "POST", &path, None))
        };
        reached.recv_timeout(Duration::from_secs(60)).expect("the piece reads the record");
        phone.update("thing", &record, json!({"n": "new"}), 10);
        let syncing = {
            let token = token.clone();
            std::thread::spawn(move || {
                let mut server = HttpServer { sync_url: url, rows: |_: &str| unreachable!(), state: || unreachable!() };
                testing::sync(&mut server, &token, &mut phone);
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !syncing.is_finished() && !dbs::wait_for_lock_waiter(&hub.db, Duration::from_millis(50)) {
            assert!(Instant::now() < deadline, "{backend:?}: the phone's sync neither ended nor waited");
        }
        open.send(()).expect("open");
        assert_eq!(resync.join().expect("the re-sync").0, 200);
        syncing.join().expect("the phone");
        copy.drain(&reader);
        assert_eq!(copy.records.get(&record), Some(&json!({"n": "new"})), "{backend:?}: the node ends with the phone's update");
        assert_eq!(copy.records, stored(&hub.db), "{backend:?}");
    }
}
