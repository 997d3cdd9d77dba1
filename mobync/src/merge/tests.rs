use super::*;
use crate::protocol::OperationType::{Create, Delete, Update};
use proptest::prelude::*;
use serde_json::{json, Value};

fn d(id: &str, op: OperationType, data: Value, ts: i64) -> Diff {
    Diff::new(id, op, "task", data).at(0, ts)
}

fn ids(diffs: &[Diff]) -> Vec<&str> {
    diffs.iter().map(|d| d.id.as_str()).collect()
}

fn data(diff: &Diff) -> Value {
    Value::Object(diff.data.clone())
}

#[test]
fn step1_server_delete_removes_every_local_diff_on_the_row_and_is_sent() {
    let s = [d("s1", Delete, json!({"id": "r1"}), 5)];
    let l = [
        d("l1", Update, json!({"id": "r1", "title": "x"}), 9),
        d("l2", Delete, json!({"id": "r1"}), 10),
        d("l3", Update, json!({"id": "r2", "title": "y"}), 11),
    ];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l3"]);
    assert_eq!(ids(&out.send), ["s1"]);
}

#[test]
fn step1_local_create_then_delete_cancels_the_whole_row() {
    let l = [
        d("l1", Create, json!({"id": "r1", "title": "x"}), 1),
        d("l2", Update, json!({"id": "r1", "title": "y"}), 2),
        d("l3", Delete, json!({"id": "r1"}), 3),
    ];
    let out = merge(&[], &l);
    assert!(out.apply.is_empty());
    assert!(out.send.is_empty());
}

#[test]
fn step1_local_delete_goes_to_u_and_hides_server_diffs_of_the_row() {
    let s = [
        d("s1", Update, json!({"id": "r1", "title": "remote"}), 50),
        d("s2", Update, json!({"id": "r2", "title": "other row"}), 50),
    ];
    let l = [
        d("l1", Update, json!({"id": "r1", "done": true}), 1),
        d("l2", Delete, json!({"id": "r1"}), 2),
    ];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l2"]);
    assert_eq!(ids(&out.send), ["s2"]);
}

#[test]
fn step1_server_delete_beats_local_delete() {
    let s = [d("s1", Delete, json!({"id": "r1"}), 1)];
    let l = [d("l1", Delete, json!({"id": "r1"}), 9)];
    let out = merge(&s, &l);
    assert!(out.apply.is_empty());
    assert_eq!(ids(&out.send), ["s1"]);
}

#[test]
fn step2_local_updates_collapse_to_the_newest_value_per_field() {
    let l = [
        d("l1", Update, json!({"id": "r1", "title": "a", "done": true}), 1),
        d("l2", Update, json!({"id": "r1", "title": "b"}), 2),
    ];
    let out = merge(&[], &l);
    assert_eq!(ids(&out.apply), ["l1", "l2"]);
    assert_eq!(data(&out.apply[0]), json!({"id": "r1", "done": true}));
    assert_eq!(data(&out.apply[1]), json!({"id": "r1", "title": "b"}));
}

#[test]
fn step2_on_equal_timestamps_the_later_diff_in_the_request_wins() {
    let l = [
        d("z-first", Update, json!({"id": "r1", "title": "a"}), 7),
        d("a-second", Update, json!({"id": "r1", "title": "b"}), 7),
    ];
    let out = merge(&[], &l);
    assert_eq!(ids(&out.apply), ["a-second"]);
    assert_eq!(data(&out.apply[0])["title"], "b");
}

#[test]
fn step2_an_update_collapsed_to_no_field_vanishes() {
    let l = [
        d("l1", Update, json!({"id": "r1", "title": "a"}), 1),
        d("l2", Update, json!({"id": "r1", "title": "b"}), 2),
    ];
    let out = merge(&[], &l);
    assert_eq!(ids(&out.apply), ["l2"]);
}

#[test]
fn step3_local_updates_fold_into_the_local_create() {
    let l = [
        d("l1", Create, json!({"id": "r1", "title": "a", "done": false}), 1),
        d("l2", Update, json!({"id": "r1", "done": true}), 2),
        d("l3", Update, json!({"id": "r1", "title": "c"}), 3),
    ];
    let out = merge(&[], &l);
    assert_eq!(ids(&out.apply), ["l1"]);
    assert_eq!(data(&out.apply[0]), json!({"id": "r1", "title": "c", "done": true}));
}

#[test]
fn step4_server_creates_are_sent() {
    let s = [d("s1", Create, json!({"id": "r9", "title": "remote"}), 1)];
    let out = merge(&s, &[]);
    assert_eq!(ids(&out.send), ["s1"]);
}

#[test]
fn step5_local_creates_are_applied() {
    let l = [d("l1", Create, json!({"id": "r1", "title": "a"}), 1)];
    let out = merge(&[], &l);
    assert_eq!(ids(&out.apply), ["l1"]);
}

#[test]
fn step6_newer_local_update_wins_and_the_field_leaves_the_sent_server_update() {
    let s = [d("s1", Update, json!({"id": "r1", "title": "remote", "done": true}), 10)];
    let l = [d("l1", Update, json!({"id": "r1", "title": "local"}), 20)];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l1"]);
    assert_eq!(ids(&out.send), ["s1"]);
    assert_eq!(data(&out.send[0]), json!({"id": "r1", "done": true}));
}

#[test]
fn step6_older_local_update_is_dropped_and_the_server_update_sent_unchanged() {
    let s = [d("s1", Update, json!({"id": "r1", "title": "remote"}), 30)];
    let l = [d("l1", Update, json!({"id": "r1", "title": "local", "done": true}), 20)];
    let out = merge(&s, &l);
    assert_eq!(data(&out.apply[0]), json!({"id": "r1", "done": true}));
    assert_eq!(data(&out.send[0]), json!({"id": "r1", "title": "remote"}));
}

#[test]
fn step6_equal_timestamps_the_greater_diff_id_wins() {
    let s = [d("b", Update, json!({"id": "r1", "title": "remote"}), 10)];
    let l = [d("a", Update, json!({"id": "r1", "title": "local"}), 10)];
    let out = merge(&s, &l);
    assert!(out.apply.is_empty(), "local id `a` < server id `b`: local loses");
    assert_eq!(ids(&out.send), ["b"]);

    let l = [d("c", Update, json!({"id": "r1", "title": "local"}), 10)];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["c"]);
    assert!(out.send.is_empty(), "server update left with no field vanishes");
}

#[test]
fn step6_local_value_must_be_newer_than_every_server_update_of_the_field() {
    let s = [
        d("s1", Update, json!({"id": "r1", "title": "one"}), 30),
        d("s2", Update, json!({"id": "r1", "title": "two"}), 10),
    ];
    let l = [d("l1", Update, json!({"id": "r1", "title": "local"}), 20)];
    let out = merge(&s, &l);
    assert!(out.apply.is_empty());
    assert_eq!(ids(&out.send), ["s1", "s2"]);

    let l = [d("l1", Update, json!({"id": "r1", "title": "local"}), 40)];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l1"]);
    assert!(out.send.is_empty());
}

#[test]
fn step6_updates_of_different_fields_do_not_conflict() {
    let s = [d("s1", Update, json!({"id": "r1", "title": "remote"}), 30)];
    let l = [d("l1", Update, json!({"id": "r1", "done": true}), 20)];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l1"]);
    assert_eq!(ids(&out.send), ["s1"]);
}

#[test]
fn step7_remaining_updates_go_their_ways_and_rows_are_told_apart_by_model() {
    let s = [Diff::new("s1", Update, "project", json!({"id": "r1", "name": "p"})).at(0, 99)];
    let l = [Diff::new("l1", Update, "task", json!({"id": "r1", "name": "t"})).at(0, 1)];
    let out = merge(&s, &l);
    assert_eq!(ids(&out.apply), ["l1"]);
    assert_eq!(ids(&out.send), ["s1"]);
}

#[test]
fn server_diffs_keep_their_accepted_order() {
    let s = [
        d("s3", Create, json!({"id": "r3"}), 1),
        d("s1", Create, json!({"id": "r1"}), 2),
        d("s2", Update, json!({"id": "r3", "title": "x"}), 3),
    ];
    let out = merge(&s, &[]);
    assert_eq!(ids(&out.send), ["s3", "s1", "s2"]);
}

/// One generated diff: its row (model, id), its op, its fields
/// (title, done; `None` leaves the field out) and its timestamp, from a
/// small range so that equal timestamps happen.
type Spec = (usize, u8, Option<u8>, Option<bool>, i64);

fn spec() -> impl Strategy<Value = Spec> {
    (0..4usize, 0..3u8, proptest::option::of(0..3u8), proptest::option::of(any::<bool>()), 1..4i64)
}

const ROWS: [(&str, &str); 4] = [("task", "r1"), ("task", "r2"), ("note", "r1"), ("note", "r3")];

fn generated(prefix: &str, specs: &[Spec]) -> Vec<Diff> {
    specs
        .iter()
        .enumerate()
        .map(|(i, &(row, op, title, done, ts))| {
            let (model, id) = ROWS[row];
            let op = [Create, Update, Delete][op as usize];
            let mut data = json!({"id": id});
            if op != Delete {
                if let Some(title) = title {
                    data["title"] = json!(format!("t{title}"));
                }
                if let Some(done) = done {
                    data["done"] = json!(done);
                }
            }
            // Stored diffs are stamped in accepted order; a client's are not yet.
            let stamp = if prefix == "s" { i as i64 + 1 } else { 0 };
            Diff::new(format!("{prefix}{i}"), op, model, data).at(stamp, ts)
        })
        .collect()
}

fn key(diff: &Diff) -> (String, String) {
    (diff.model.clone(), diff.row_id().to_owned())
}

/// `diffs` with the rows interleaved another way: each row's diffs keep
/// their order, the rows' turns are drawn from `seed`.
fn interleaved(diffs: &[Diff], seed: u64) -> Vec<Diff> {
    let mut queues: Vec<std::collections::VecDeque<Diff>> = Vec::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for diff in diffs {
        match rows.iter().position(|r| *r == key(diff)) {
            Some(at) => queues[at].push_back(diff.clone()),
            None => {
                rows.push(key(diff));
                queues.push([diff.clone()].into());
            }
        }
    }
    let mut state = seed | 1;
    let mut out = Vec::new();
    while out.len() < diffs.len() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let open: Vec<usize> = (0..queues.len()).filter(|&q| !queues[q].is_empty()).collect();
        let q = open[(state >> 33) as usize % open.len()];
        out.extend(queues[q].pop_front());
    }
    out
}

fn of_row(diffs: &[Diff], row: &(String, String)) -> Vec<Diff> {
    diffs.iter().filter(|d| key(d) == *row).cloned().collect()
}

/// Whether `part` is `whole` (by diff id) with some diffs left out.
fn in_order(part: &[Diff], whole: &[Diff]) -> bool {
    let mut whole = whole.iter();
    part.iter().all(|p| whole.any(|w| w.id == p.id))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The merge is a function of each row's own diffs: what it decides
    /// for a row is what it decides when given that row's diffs alone, and
    /// so does not change when the other rows' diffs come in another
    /// order, before or after; its answers keep the order they came in.
    /// (Running one input 20 times showed nothing of the kind.)
    #[test]
    fn merge_decides_each_row_from_its_own_diffs_in_any_interleaving_of_rows(
        s in prop::collection::vec(spec(), 0..10),
        l in prop::collection::vec(spec(), 0..10),
        retried in prop::collection::vec((0..10usize, 0..12i64), 0..3),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let (s, l) = (generated("s", &s), generated("l", &l));
        // Some of the client's diffs applied already (a retry), at a stamp.
        let applied: HashMap<String, i64> = retried.iter().filter(|(i, _)| *i < l.len()).map(|&(i, at)| (l[i].id.clone(), at)).collect();
        let out = merge_retried(&s, &l, &applied);
        prop_assert!(in_order(&out.apply, &l), "U keeps the request's order: {:?}", ids(&out.apply));
        prop_assert!(in_order(&out.send, &s), "D keeps the accepted order: {:?}", ids(&out.send));
        let (s2, l2) = (interleaved(&s, seeds.0), interleaved(&l, seeds.1));
        let other = merge_retried(&s2, &l2, &applied);
        prop_assert!(in_order(&other.apply, &l2) && in_order(&other.send, &s2));
        for row in ROWS.iter().map(|(m, id)| (m.to_string(), id.to_string())) {
            let alone = merge_retried(&of_row(&s, &row), &of_row(&l, &row), &applied);
            prop_assert_eq!(&of_row(&out.apply, &row), &alone.apply, "U of {:?}", row);
            prop_assert_eq!(&of_row(&out.send, &row), &alone.send, "D of {:?}", row);
            prop_assert_eq!(&of_row(&other.apply, &row), &alone.apply, "U of {:?}, rows interleaved otherwise", row);
            prop_assert_eq!(&of_row(&other.send, &row), &alone.send, "D of {:?}, rows interleaved otherwise", row);
        }
    }
}

fn stamped(diff: Diff, stamp: i64) -> Diff {
    let mut diff = diff;
    diff.logical_clock = stamp;
    diff
}

#[test]
fn retry_an_applied_update_only_hides_what_it_met_the_first_time() {
    let s = [
        stamped(d("s-before", Update, json!({"id": "r1", "title": "old"}), 5), 3),
        stamped(d("s-after", Update, json!({"id": "r1", "title": "later"}), 8), 5),
    ];
    let l = [d("l1", Update, json!({"id": "r1", "title": "mine"}), 10)];
    let applied = HashMap::from([("l1".to_string(), 4)]);
    let out = merge_retried(&s, &l, &applied);
    assert_eq!(ids(&out.apply), ["l1"], "the engine leaves it out of U, being applied");
    assert_eq!(ids(&out.send), ["s-after"], "what another device did since still goes out");
}

#[test]
fn retry_updates_are_not_folded_into_a_create_the_server_has() {
    let l = [
        d("c1", Create, json!({"id": "r1", "title": "a"}), 1),
        d("u1", Update, json!({"id": "r1", "title": "b"}), 2),
    ];
    let applied = HashMap::from([("c1".to_string(), 0)]);
    let out = merge_retried(&[], &l, &applied);
    assert_eq!(ids(&out.apply), ["c1", "u1"]);
    assert_eq!(data(&out.apply[0])["title"], "a");
}

#[test]
fn retry_a_delete_of_a_create_the_server_has_is_not_cancelled() {
    let l = [d("c1", Create, json!({"id": "r1", "title": "a"}), 1), d("x1", Delete, json!({"id": "r1"}), 2)];
    let applied = HashMap::from([("c1".to_string(), 0)]);
    let out = merge_retried(&[], &l, &applied);
    assert_eq!(ids(&out.apply), ["x1"]);
}
