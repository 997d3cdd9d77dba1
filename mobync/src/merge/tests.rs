use super::*;
use crate::protocol::OperationType::{Create, Delete, Update};
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

#[test]
fn merge_is_deterministic() {
    let s = [
        d("s1", Update, json!({"id": "r1", "title": "a", "done": true}), 10),
        d("s2", Create, json!({"id": "r2", "title": "b"}), 11),
        d("s3", Update, json!({"id": "r2", "title": "c"}), 12),
    ];
    let l = [
        d("l1", Update, json!({"id": "r1", "title": "x", "done": false}), 11),
        d("l2", Update, json!({"id": "r2", "title": "y"}), 5),
        d("l3", Create, json!({"id": "r4", "title": "z"}), 6),
    ];
    let first = merge(&s, &l);
    for _ in 0..20 {
        assert_eq!(merge(&s, &l), first);
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
