use super::*;
use crate::client::{apply, Rows};
use crate::testing::Lcg;
use serde_json::json;
use std::collections::BTreeMap;

fn d(id: &str, op: OperationType, data: Value, clock: i64, ts: i64) -> Diff {
    Diff::new(id, op, "task", data).at(clock, ts)
}

fn net_of(log: &[Diff]) -> BTreeMap<(String, String), NetRow> {
    let mut rows = BTreeMap::new();
    for diff in log {
        let key = (diff.model.clone(), diff.row_id().to_owned());
        fold(
            rows.entry(key.clone())
                .or_insert_with(|| NetRow::new(&key.0, &key.1)),
            diff,
        );
    }
    rows
}

fn rows_of<'a>(log: impl IntoIterator<Item = &'a Diff>) -> Rows {
    let mut rows = Rows::new();
    for diff in log {
        apply(&mut rows, diff);
    }
    rows
}

#[test]
fn a_device_at_cursor_zero_gets_one_create_per_live_row_and_nothing_of_deleted_ones() {
    use OperationType::*;
    let log = [
        d(
            "c1",
            Create,
            json!({"id": "r1", "title": "a", "done": false}),
            0,
            10,
        ),
        d(
            "c2",
            Create,
            json!({"id": "r2", "title": "b", "done": false}),
            0,
            11,
        ),
        d("u1", Update, json!({"id": "r1", "title": "a2"}), 1, 20),
        d("x2", Delete, json!({"id": "r2"}), 2, 30),
        d("u2", Update, json!({"id": "r1", "done": true}), 3, 40),
    ];
    let net = net_of(&log);
    let answer: Vec<Diff> = net.values().flat_map(|row| row.since(0, "o")).collect();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].op, Create);
    assert_eq!((answer[0].id.as_str(), answer[0].utc_timestamp), ("c1", 10));
    assert_eq!(
        Value::Object(answer[0].data.clone()),
        json!({"id": "r1", "title": "a2", "done": true})
    );
}

#[test]
fn a_cursor_inside_the_history_gets_deletes_and_changed_fields_grouped_by_their_winner() {
    use OperationType::*;
    let log = [
        d(
            "c1",
            Create,
            json!({"id": "r1", "title": "a", "done": false, "n": 1}),
            0,
            10,
        ),
        d("c2", Create, json!({"id": "r2", "title": "b"}), 0, 11),
        d(
            "u1",
            Update,
            json!({"id": "r1", "title": "a2", "done": true}),
            2,
            20,
        ),
        d("u3", Update, json!({"id": "r1", "n": 2}), 3, 15),
        d("x2", Delete, json!({"id": "r2"}), 3, 30),
    ];
    let net = net_of(&log);
    let r1 = &net[&("task".to_string(), "r1".to_string())];
    let r2 = &net[&("task".to_string(), "r2".to_string())];
    let ups = r1.since(1, "o");
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert_eq!((ups[0].id.as_str(), ups[0].logical_clock), ("u1", 2));
    assert_eq!(
        Value::Object(ups[0].data.clone()),
        json!({"id": "r1", "title": "a2", "done": true})
    );
    assert_eq!((ups[1].id.as_str(), ups[1].utc_timestamp), ("u3", 15));
    assert_eq!(r2.since(1, "o")[0].op, Delete);
    assert!(
        r2.since(4, "o").is_empty(),
        "a delete the device saw is not sent again"
    );
    assert!(r1.since(4, "o").is_empty());
}

#[test]
fn the_merge_meets_the_greatest_update_kept_for_a_field_the_request_changes() {
    use OperationType::*;
    let log = [
        d(
            "c1",
            Create,
            json!({"id": "r1", "title": "a", "done": false}),
            0,
            10,
        ),
        d("u1", Update, json!({"id": "r1", "title": "late"}), 1, 90),
        d("u2", Update, json!({"id": "r1", "title": "early"}), 2, 50),
    ];
    let r1 = net_of(&log)
        .remove(&("task".to_string(), "r1".to_string()))
        .unwrap();
    assert_eq!(
        r1.fields[0].1.value,
        json!("early"),
        "the value is the last one applied"
    );
    // A device past every change still meets the greatest (ts, id) for the
    // field it updates, and only for that one.
    let rivals = r1.rivals(3, &["title"], "o");
    assert_eq!(rivals.len(), 1);
    assert_eq!((rivals[0].id.as_str(), rivals[0].utc_timestamp), ("u1", 90));
    assert!(
        r1.rivals(3, &["done"], "o").is_empty(),
        "a field only the create set has no rival"
    );
}

#[test]
fn folding_in_two_parts_is_folding_at_once_and_answers_rebuild_the_rows_at_every_cursor() {
    for seed in 0..300u64 {
        let mut rng = Lcg(seed);
        let mut log = Vec::new();
        let mut alive: Vec<String> = Vec::new();
        let mut clock = 0;
        for n in 0..(5 + rng.next(40)) {
            if rng.next(3) == 0 {
                clock += 1;
            }
            let ts = 100 + rng.next(60) as i64;
            let id = format!("d{n:03}");
            let pick = (!alive.is_empty()).then(|| alive[rng.next(alive.len())].clone());
            let diff = match (rng.next(5), pick) {
                (0 | 1, _) | (_, None) => {
                    let row = format!("r{}", rng.next(8));
                    if alive.contains(&row) {
                        continue;
                    }
                    alive.push(row.clone());
                    d(
                        &id,
                        OperationType::Create,
                        json!({"id": row, "title": n, "done": false}),
                        clock,
                        ts,
                    )
                }
                (2, Some(row)) => {
                    alive.retain(|r| *r != row);
                    d(&id, OperationType::Delete, json!({"id": row}), clock, ts)
                }
                (_, Some(row)) => {
                    let field = ["title", "done", "extra"][rng.next(3)];
                    d(
                        &id,
                        OperationType::Update,
                        json!({"id": row, field: n}),
                        clock,
                        ts,
                    )
                }
            };
            log.push(diff);
        }
        let whole = net_of(&log);
        let cut = rng.next(clock as usize + 2) as i64;
        let mut parts = net_of(
            &log.iter()
                .filter(|d| d.logical_clock < cut)
                .cloned()
                .collect::<Vec<_>>(),
        );
        for diff in log.iter().filter(|d| d.logical_clock >= cut) {
            let key = (diff.model.clone(), diff.row_id().to_owned());
            fold(
                parts
                    .entry(key.clone())
                    .or_insert_with(|| NetRow::new(&key.0, &key.1)),
                diff,
            );
        }
        assert_eq!(parts, whole, "seed {seed}: folding in two parts");
        let end = rows_of(&log);
        for cursor in 0..=clock + 1 {
            let mut rows = rows_of(log.iter().filter(|d| d.logical_clock < cursor));
            for diff in whole.values().flat_map(|row| row.since(cursor, "o")) {
                apply(&mut rows, &diff);
            }
            assert_eq!(rows, end, "seed {seed}, cursor {cursor}");
        }
    }
}

#[test]
fn fields_round_trip_through_their_stored_json() {
    let mut row = NetRow::new("task", "r1");
    fold(
        &mut row,
        &d(
            "c1",
            OperationType::Create,
            json!({"id": "r1", "title": "a", "n": 1.50}),
            0,
            1,
        ),
    );
    fold(
        &mut row,
        &d(
            "u1",
            OperationType::Update,
            json!({"id": "r1", "n": serde_json::Value::Number("12345678901234567890123".parse().unwrap())}),
            1,
            2,
        ),
    );
    let text = row.fields_json();
    assert_eq!(NetRow::parse_fields(&text).unwrap(), row.fields);
    assert!(
        text.contains("12345678901234567890123"),
        "numbers keep their digits: {text}"
    );
}
