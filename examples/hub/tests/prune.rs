//! Nothing grows forever: answered messages older than the retention are
//! pruned with their history, in pieces, at a time the test passes in;
//! unanswered ones stay whatever their age; the history says how far back
//! it reaches; gauges say how many wait per state; the background task
//! prunes on its own. On every backend, over TCP.

mod common;

use common::{admin, Local, Node};
use mobync_tests::dbs::{self, TestDb};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600_000;

/// State changes whose message is gone.
fn orphan_changes(db: &TestDb) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = "SELECT COUNT(*) AS n FROM hub_changes WHERE message_id NOT IN (SELECT id FROM hub_messages)";
    let rows: Vec<Count> = diesel::sql_query(sql).load(&mut dbs::connect(db)).expect("count");
    rows[0].n
}

fn history(base: &str, network: &str) -> serde_json::Value {
    let (status, history) = admin(base, "GET", &format!("/networks/{network}/messages?limit=1000"), None);
    assert_eq!(status, 200, "{history}");
    history
}

fn gauge(base: &str, state: &str) -> Option<String> {
    let (_, text) = common::call("GET", &format!("{base}/metrics"), &[], None);
    let key = format!("mobync_hub_messages_waiting{{state=\"{state}\"}} ");
    text.as_str()?.lines().find_map(|l| l.strip_prefix(&key).map(str::to_owned))
}

#[test]
fn answered_messages_older_than_the_retention_are_pruned_in_pieces_and_waiting_ones_stay() {
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let t0 = 1_800_000_000_000;
        let time = Arc::new(AtomicI64::new(t0));
        let settings =
            [("hub.retention", 3_600.0.into()), ("hub.prune_piece", 3.into()), ("hub.prune_every", 0.0.into()), ("hub.idempotency_window", 60.0.into())];
        let hub = Local::launch(Arc::new(db), None, Some(time.clone()), &settings);
        let base = hub.base.as_str();
        let network = common::network(base, None, "record", json!({"type": "object"}));
        let source = Node::new(base, &network, "source", [true, false, false, false]);
        let reader = Node::new(base, &network, "reader", [false, true, false, false]);
        for i in 0..10 {
            assert_eq!(source.send(json!({"method": "create", "payload": {"n": i}})).0, 201);
        }
        let keyed = source.call_with("POST", "", &[("Idempotency-Key", "k")], Some(json!({"method": "create", "payload": {"n": 10}})));
        assert_eq!(keyed.0, 201);
        // The reader answers six copies an hour later: four acknowledged,
        // two failed; one stays in flight, four wait.
        time.store(t0 + HOUR, Ordering::SeqCst);
        for i in 0..7 {
            let message = reader.next().expect("a copy");
            let answer = if i < 4 { json!({"success": true}) } else { json!({"success": false, "reason": "no"}) };
            if i < 6 {
                assert_eq!(reader.answer(message["id"].as_str().expect("id"), answer).0, 200);
            }
        }
        let pruned = hub.prune(t0 + HOUR);
        assert_eq!((pruned.messages, pruned.keys), (0, 1), "{backend:?}: no message is old enough yet; the key (a minute) is: {pruned:?}");
        assert_eq!(gauge(base, "pending").as_deref(), Some("4"), "{backend:?}");
        assert_eq!(gauge(base, "processing").as_deref(), Some("1"), "{backend:?}");

        // Past the retention of the sent messages (answered at t0), not of
        // the copies answered an hour later: 11 messages in pieces of 3.
        let now = t0 + HOUR + 1;
        time.store(now, Ordering::SeqCst);
        let pruned = hub.prune(now);
        assert_eq!((pruned.messages, pruned.pieces, pruned.keys), (11, 4, 0), "{backend:?}: {pruned:?}");
        assert_eq!(pruned.changes, 22, "{backend:?}: processing and acknowledged of each sent message");
        let listed = history(base, &network);
        assert_eq!(listed["messages"].as_array().expect("messages").len(), 11, "{backend:?}: the copies stay");
        assert_eq!(listed["kept_since"], json!(mobync_hub::model::iso8601(now - HOUR)), "{backend:?}");
        assert_eq!(orphan_changes(&hub.db), 0, "{backend:?}");

        // Much later: the answered copies go, the unanswered stay.
        let pruned = hub.prune(t0 + 1_000 * HOUR);
        assert_eq!(pruned.messages, 6, "{backend:?}: {pruned:?}");
        let left = history(base, &network);
        let states: Vec<&str> = left["messages"].as_array().expect("messages").iter().filter_map(|m| m["state"].as_str()).collect();
        assert_eq!(states.iter().filter(|s| **s == "pending").count(), 4, "{backend:?}: {states:?}");
        assert_eq!(states.iter().filter(|s| **s == "processing").count(), 1, "{backend:?}: {states:?}");
        assert_eq!(states.len(), 5, "{backend:?}");
        assert_eq!(orphan_changes(&hub.db), 0, "{backend:?}");
        assert_eq!(hub.prune(t0 + 1_000 * HOUR).messages, 0, "{backend:?}: a round with nothing to do");
    }
    // In this test, not one of its own: the gauges are the process's, and
    // the background task sets them.
    the_background_task_prunes_on_its_own();
}

fn the_background_task_prunes_on_its_own() {
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let time = Arc::new(AtomicI64::new(1_800_000_000_000));
        let settings = [("hub.retention", 3_600.0.into()), ("hub.prune_every", 0.05.into())];
        let hub = Local::launch(Arc::new(db), None, Some(time.clone()), &settings);
        let base = hub.base.as_str();
        let network = common::network(base, None, "record", json!({"type": "object"}));
        let source = Node::new(base, &network, "source", [true, false, false, false]);
        assert_eq!(source.send(json!({"method": "create", "payload": {"n": 1}})).0, 201);
        assert_eq!(history(base, &network)["messages"].as_array().expect("messages").len(), 1);
        time.fetch_add(HOUR + 1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !history(base, &network)["messages"].as_array().expect("messages").is_empty() {
            assert!(Instant::now() < deadline, "{backend:?}: the background task did not prune");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `HUB_PRUNE_MESSAGES` answered messages (default 5,000; each with two
/// state changes) older than the retention, pruned in one round of pieces
/// of 1,000 while a node sends (a create each time) until the round is
/// done: the round's time and the longest send are printed. The figure in
/// BENCHMARKS.md is 100,000 messages.
#[test]
fn pruning_many_messages_leaves_the_nodes_sends_answering() {
    let count: usize = std::env::var("HUB_PRUNE_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    for backend in dbs::backends() {
        let Some(db) = dbs::fresh(backend) else { continue };
        let t0 = 1_800_000_000_000;
        let settings = [("hub.retention", 3_600.0.into()), ("hub.prune_every", 0.0.into())];
        let hub = Arc::new(Local::launch(Arc::new(db), None, Some(Arc::new(AtomicI64::new(t0 + 2 * HOUR))), &settings));
        let base = hub.base.clone();
        let network = common::network(&base, None, "record", json!({"type": "object"}));
        let source = Node::new(&base, &network, "source", [true, false, false, false]);
        insert_answered(&hub.db, &network, count, t0);
        // The same sends with no pruning running, to compare.
        let mut alone = Duration::ZERO;
        for i in 0..20 {
            let at = Instant::now();
            assert_eq!(source.send(json!({"method": "create", "payload": {"n": -i}})).0, 201);
            alone = alone.max(at.elapsed());
        }
        let started = Instant::now();
        let pruning = {
            let hub = hub.clone();
            std::thread::spawn(move || hub.prune(t0 + 2 * HOUR))
        };
        let (mut longest, mut sends) = (Duration::ZERO, 0);
        while !pruning.is_finished() || sends == 0 {
            let at = Instant::now();
            let (status, body) = source.send(json!({"method": "create", "payload": {"n": sends}}));
            assert_eq!(status, 201, "{backend:?}: {body}");
            longest = longest.max(at.elapsed());
            sends += 1;
        }
        let took = started.elapsed();
        let pruned = pruning.join().expect("pruning");
        assert_eq!((pruned.messages, pruned.changes), (count, 2 * count), "{backend:?}");
        assert_eq!(orphan_changes(&hub.db), 0, "{backend:?}");
        eprintln!(
            "{backend:?}: pruning {count} messages took {took:?} in {} pieces; {sends} sends meanwhile, the longest {longest:?} \
             (the longest of 20 with no pruning: {alone:?})",
            pruned.pieces
        );
    }
}

/// `n` acknowledged messages of `network`, answered at `at`, with their
/// two state changes, written straight to the tables.
fn insert_answered(db: &TestDb, network: &str, n: usize, at: i64) {
    use diesel::RunQueryDsl;
    let mut conn = dbs::connect(db);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let messages: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('old-{i}', '{network}', NULL, 'some-node', NULL, 'create', '{{\"n\": {i}}}', 'rec-{i}', NULL, 'acknowledged', {at}, NULL, {at})"
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO hub_messages (id, network_id, origin_id, destination_id, parent_id, method, payload, record_id, remote_id, \
             state, created_at, lease_until, done_at) VALUES {}",
            messages.join(", ")
        );
        diesel::sql_query(sql).execute(&mut conn).expect("messages");
        let changes: Vec<String> = chunk
            .iter()
            .flat_map(|i| [format!("('old-{i}', 'pending', {at}, '')"), format!("('old-{i}', 'acknowledged', {at}, '')")])
            .collect();
        let sql = format!("INSERT INTO hub_changes (message_id, state, at, note) VALUES {}", changes.join(", "));
        diesel::sql_query(sql).execute(&mut conn).expect("changes");
    }
}
