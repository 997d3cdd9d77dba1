//! Races of the hub, made to happen: a test hook holds one request at a
//! chosen step while another runs, and the test waits on conditions (a
//! request done, a session waiting for a lock), never on time.

mod common;

use common::{Gate, Local, Node};
use mobync::client::Device;
use mobync::testing;
use mobync_hub::Step;
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http::{self as phone_http, HttpServer};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits until `done` or a session of the database waits for a lock.
fn until_done_or_waiting(db: &mobync_tests::dbs::TestDb, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() && !dbs::wait_for_lock_waiter(db, Duration::from_millis(50)) {
        assert!(Instant::now() < deadline, "neither done nor waiting for a lock");
    }
}

#[test]
fn a_phones_change_to_another_key_is_not_undone_by_a_node_send_that_read_the_record_before_it() {
    for backend in [Backend::Postgres, Backend::Mysql] {
        let gate = Gate::default();
        let hook = gate.clone();
        let Some(hub) = Local::start(backend, move |step| {
            if step == Step::SendRead {
                hook.pass()
            }
        }) else {
            continue;
        };
        let (token, owner) = phone_http::signup(&hub.base, "ada");
        let network = common::network(&hub.base, Some(&owner), "thing", json!({"type": "object"}));
        let node = Node::new(&hub.base, &network, "crm", [true, true, true, true]);
        let (status, sent) = node.send(json!({"method": "create", "payload": {"name": "n", "age": 1}}));
        assert_eq!(status, 201, "{sent}");
        let record = sent["record_id"].as_str().expect("record").to_string();
        let url = format!("{}/sync", hub.base);
        let server = || HttpServer { sync_url: url.clone(), rows: |_: &str| unreachable!(), state: || unreachable!() };
        let mut phone = Device::new("phone");
        testing::sync(&mut server(), &token, &mut phone);

        // The node's update of `age` reads the record, and is held there.
        let (reached, open) = gate.arm();
        let sender = {
            let (node, record) = (node.clone(), record.clone());
            std::thread::spawn(move || node.send(json!({"method": "update", "record_id": record, "payload": {"age": 2}})))
        };
        reached.recv_timeout(Duration::from_secs(60)).expect("the send reaches its read");
        // Meanwhile the phone changes `name`: it commits, or it waits for
        // the owner's lock the send holds.
        phone.update("thing", &record, json!({"name": "m"}), 10);
        let syncing = {
            let (token, url) = (token.clone(), url.clone());
            std::thread::spawn(move || {
                let mut server = HttpServer { sync_url: url, rows: |_: &str| unreachable!(), state: || unreachable!() };
                testing::sync(&mut server, &token, &mut phone);
                phone
            })
        };
        until_done_or_waiting(&hub.db, || syncing.is_finished());
        open.send(()).expect("open the gate");
        let (status, answer) = sender.join().expect("the sender");
        assert_eq!(status, 201, "{backend:?}: {answer}");
        let mut phone = syncing.join().expect("the phone");
        testing::sync(&mut server(), &token, &mut phone);
        let row = phone.rows()[&("thing".to_string(), record.clone())].clone();
        assert_eq!((row["name"].clone(), row["age"].clone()), (json!("m"), json!(2)), "{backend:?}: both changes hold");
        // The hub's own copy says the same.
        let mut conn = dbs::connect(&hub.db);
        let data = stored_record(&mut conn, &record);
        assert_eq!(data, json!({"name": "m", "age": 2}), "{backend:?}");
    }
}

/// The stored fields of a record.
fn stored_record(conn: &mut mobync::db::DbConnection, id: &str) -> serde_json::Value {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Data {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        data: Option<String>,
    }
    let rows: Vec<Data> = diesel::sql_query(format!("SELECT data FROM hub_records WHERE id = '{id}'")).load(conn).expect("the record");
    serde_json::from_str(rows[0].data.as_deref().expect("live")).expect("JSON")
}

#[test]
fn a_records_changes_reach_a_node_in_order_one_at_a_time_and_again_in_order_after_a_lease() {
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let time = Arc::new(AtomicI64::new(1_800_000_000_000));
        let hub = Local::launch(Arc::new(db), None, Some(time.clone()), &[("hub.lease", 60.0.into())]);
        let network = common::network(&hub.base, None, "record", json!({"type": "object"}));
        let source = Node::new(&hub.base, &network, "source", [true, false, true, true]);
        let reader = Node::new(&hub.base, &network, "reader", [false, true, false, false]);
        let (_, r) = source.send(json!({"method": "create", "payload": {"v": 1}}));
        let r = r["record_id"].as_str().expect("record").to_string();
        for v in [2, 3] {
            assert_eq!(source.send(json!({"method": "update", "record_id": r, "payload": {"v": v}})).0, 201);
        }
        let (_, s) = source.send(json!({"method": "create", "payload": {"w": 1}}));
        let s = s["record_id"].as_str().expect("record").to_string();
        let what = |m: &serde_json::Value| (m["record_id"].as_str().expect("record").to_string(), m["payload"].clone());

        // R's create is in flight: R's updates wait, S's create goes.
        let first = reader.next().expect("R's create");
        assert_eq!(what(&first), (r.clone(), json!({"v": 1})), "{backend:?}");
        let other = reader.next().expect("S's create, beside it");
        assert_eq!(what(&other), (s.clone(), json!({"w": 1})), "{backend:?}");
        assert!(reader.next().is_none(), "{backend:?}: nothing of R while its create is in flight");
        assert_eq!(reader.answer(other["id"].as_str().expect("id"), json!({"success": true})).0, 200);
        assert!(reader.next().is_none(), "{backend:?}: still nothing of R");

        // The lease runs out: R's create again, before its updates.
        time.fetch_add(60_001, Ordering::SeqCst);
        let again = reader.next().expect("R's create again");
        assert_eq!(again["id"], first["id"], "{backend:?}");
        assert!(reader.next().is_none(), "{backend:?}: R's updates wait for its create again");
        assert_eq!(reader.answer(again["id"].as_str().expect("id"), json!({"success": true})).0, 200);
        for v in [2, 3] {
            let update = reader.next().expect("R's update");
            assert_eq!(what(&update), (r.clone(), json!({"v": v})), "{backend:?}");
            assert!(reader.next().is_none(), "{backend:?}: one change of R at a time");
            assert_eq!(reader.answer(update["id"].as_str().expect("id"), json!({"success": false, "reason": "x"})).0, 200);
        }
        assert_eq!(reader.pending(), 0, "{backend:?}");
    }
}

#[test]
fn an_acknowledgement_and_a_failure_of_one_message_race_and_exactly_one_wins() {
    for backend in [Backend::Postgres, Backend::Mysql] {
        let gate = Gate::default();
        let hook = gate.clone();
        let Some(hub) = Local::start(backend, move |step| {
            if step == Step::AnswerLocked {
                hook.pass()
            }
        }) else {
            continue;
        };
        let network = common::network(&hub.base, None, "record", json!({"type": "object"}));
        let source = Node::new(&hub.base, &network, "source", [true, false, false, false]);
        let reader = Node::new(&hub.base, &network, "reader", [false, true, false, false]);
        assert_eq!(source.send(json!({"method": "create", "payload": {"v": 1}})).0, 201);
        let message = reader.next().expect("the create");
        let id = message["id"].as_str().expect("id").to_string();

        // The acknowledgement has locked the message and read it; the
        // failure comes meanwhile.
        let (reached, open) = gate.arm();
        let ack = {
            let (reader, id) = (reader.clone(), id.clone());
            std::thread::spawn(move || reader.answer(&id, json!({"success": true})))
        };
        reached.recv_timeout(Duration::from_secs(60)).expect("the acknowledgement locks the message");
        let fail = {
            let (reader, id) = (reader.clone(), id.clone());
            std::thread::spawn(move || reader.answer(&id, json!({"success": false, "reason": "no"})))
        };
        until_done_or_waiting(&hub.db, || fail.is_finished());
        open.send(()).expect("open the gate");
        let (ack, fail) = (ack.join().expect("ack"), fail.join().expect("fail"));
        assert_eq!((ack.0, fail.0), (200, 409), "{backend:?}: {ack:?} {fail:?}");
        let (_, history) = common::admin(&hub.base, "GET", &format!("/networks/{network}/messages/{id}"), None);
        assert_eq!(history["state"], "acknowledged", "{backend:?}");
        let states: Vec<&str> = history["changes"].as_array().expect("changes").iter().filter_map(|c| c["state"].as_str()).collect();
        assert_eq!(states, ["pending", "processing", "acknowledged"], "{backend:?}");
    }
}

#[test]
fn four_fetchers_of_one_node_never_hold_two_changes_of_one_record_and_get_each_records_changes_in_order() {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;
    for backend in dbs::backends() {
        let Some(hub) = Local::start(backend, |_| {}) else { continue };
        let network = common::network(&hub.base, None, "record", json!({"type": "object"}));
        let source = Node::new(&hub.base, &network, "source", [true, false, true, false]);
        let reader = Node::new(&hub.base, &network, "reader", [false, true, false, false]);
        const RECORDS: usize = 4;
        const VERSIONS: i64 = 8;
        let records: Vec<String> = (0..RECORDS)
            .map(|_| source.send(json!({"method": "create", "payload": {"v": 0}})).1["record_id"].as_str().expect("record").to_string())
            .collect();
        for v in 1..VERSIONS {
            for record in &records {
                assert_eq!(source.send(json!({"method": "update", "record_id": record, "payload": {"v": v}})).0, 201);
            }
        }
        // Each fetcher marks a record in flight from its fetch until just
        // before its answer: no other fetcher may get that record meanwhile.
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let seen: Arc<Mutex<BTreeMap<String, Vec<i64>>>> = Arc::default();
        let fetchers: Vec<_> = (0..4)
            .map(|_| {
                let (reader, in_flight, seen) = (reader.clone(), in_flight.clone(), seen.clone());
                std::thread::spawn(move || {
                    while let Some(message) = reader.next() {
                        let record = message["record_id"].as_str().expect("record").to_string();
                        assert!(in_flight.lock().expect("set").insert(record.clone()), "{backend:?}: two changes of {record} in flight");
                        seen.lock().expect("seen").entry(record.clone()).or_default().push(message["payload"]["v"].as_i64().expect("v"));
                        in_flight.lock().expect("set").remove(&record);
                        assert_eq!(reader.answer(message["id"].as_str().expect("id"), json!({"success": true})).0, 200);
                    }
                })
            })
            .collect();
        for fetcher in fetchers {
            fetcher.join().expect("a fetcher");
        }
        // A fetcher may see 204 while another holds the last change of a
        // record; drain what is left.
        while let Some(message) = reader.next() {
            let record = message["record_id"].as_str().expect("record").to_string();
            seen.lock().expect("seen").entry(record).or_default().push(message["payload"]["v"].as_i64().expect("v"));
            assert_eq!(reader.answer(message["id"].as_str().expect("id"), json!({"success": true})).0, 200);
        }
        let seen = seen.lock().expect("seen");
        for record in &records {
            assert_eq!(seen[record], (0..VERSIONS).collect::<Vec<_>>(), "{backend:?}: {record}'s changes in order, each once");
        }
    }
}
