use super::*;
use crate::error::ErrorKind;
use serde_json::json;
use wire::{Cursor, Envelope};

/// A request written the way the Dart client writes it: string `json_data`,
/// placeholder owner.
const DART_REQUEST: &str = r#"{"auth_token":"token-1","logical_clock":3,"diffs":[
 {"id":"8f0c6b2e-1d7a-11ef-9262-0242ac120002","owner":"owner","logical_clock":3,"utc_timestamp":1716800000000,
  "type":"create","model":"task","json_data":"{\"id\":\"r1\",\"title\":\"buy milk\",\"done\":false}"},
 {"id":"8f0c6b2e-1d7a-11ef-9262-0242ac120003","owner":"owner","logical_clock":3,"utc_timestamp":1716800000500,
  "type":"update","model":"task","json_data":"{\"id\":\"r1\",\"done\":true}"},
 {"id":"8f0c6b2e-1d7a-11ef-9262-0242ac120004","owner":"owner","logical_clock":3,"utc_timestamp":1716800000900,
  "type":"delete","model":"task","json_data":"{\"id\":\"r0\"}"}]}"#;

fn wire_diff(overrides: serde_json::Value) -> serde_json::Value {
    let mut base = json!({"id": "d1", "owner": "x", "logical_clock": 0, "utc_timestamp": 5,
        "type": "create", "model": "task", "json_data": "{\"id\":\"r1\"}"});
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn parse_diff(value: serde_json::Value) -> Result<Diff, SyncError> {
    let diff = wire::decode_value(value)?;
    diff.check()?;
    Ok(diff)
}

#[test]
fn dart_request_reads_with_string_json_data_and_ignored_owner() {
    let req = Envelope::parse(DART_REQUEST.as_bytes()).unwrap();
    assert_eq!(req.auth_token.as_deref(), Some("token-1"));
    assert_eq!(req.cursor, Cursor::At(3));
    let diffs: Vec<Diff> = req.diffs.iter().map(|raw| wire::decode_diff(raw).unwrap()).collect();
    assert_eq!(diffs.len(), 3);
    assert_eq!(diffs[0].op, OperationType::Create);
    assert_eq!(diffs[0].owner, "", "the client's owner is never taken");
    assert_eq!(diffs[0].data, json!({"id": "r1", "title": "buy milk", "done": false}).as_object().unwrap().clone());
    assert_eq!(diffs[1].op, OperationType::Update);
    assert_eq!(diffs[1].row_id(), "r1");
    assert_eq!(diffs[2].op, OperationType::Delete);
    assert_eq!(diffs[2].row_id(), "r0");
}

#[test]
fn typed_request_round_trips_through_dart_json() {
    let req: SyncRequest = serde_json::from_str(DART_REQUEST).unwrap();
    let text = serde_json::to_string(&req).unwrap();
    let again: SyncRequest = serde_json::from_str(&text).unwrap();
    assert_eq!(req.diffs.len(), 3);
    // The owners were placeholders and are dropped; every other field is
    // the Dart client's, read from its own text (not from the round trip,
    // which would agree with itself whatever was read).
    let sent: serde_json::Value = serde_json::from_str(DART_REQUEST).unwrap();
    assert_eq!((req.auth_token.as_str(), req.logical_clock), ("token-1", 3));
    for (diff, wire) in req.diffs.iter().zip(sent["diffs"].as_array().unwrap()) {
        assert_eq!(wire["owner"], "owner");
        assert_eq!(diff.owner, "", "the client's owner is dropped, not kept: {diff:?}");
        let data: serde_json::Value = serde_json::from_str(wire["json_data"].as_str().unwrap()).unwrap();
        let op = serde_json::to_value(diff.op).unwrap();
        assert_eq!(
            (json!(diff.id), json!(diff.logical_clock), json!(diff.utc_timestamp), op, json!(diff.model), json!(diff.data)),
            (wire["id"].clone(), wire["logical_clock"].clone(), wire["utc_timestamp"].clone(), wire["type"].clone(), wire["model"].clone(), data)
        );
    }
    assert_eq!(again, req, "a second round trip changes nothing");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(value["diffs"][0]["json_data"].is_string(), "json_data goes out as a string");
    assert_eq!(value["diffs"][0]["owner"], "", "the dropped owner goes out empty, never as the client's");
}

#[test]
fn diff_serializes_byte_for_byte_like_the_dart_client() {
    let diff = Diff::new("d1", OperationType::Update, "task", json!({"id": "r1", "done": true})).at(2, 1716800000000);
    let mut diff = diff;
    diff.owner = "o1".into();
    assert_eq!(
        serde_json::to_string(&diff).unwrap(),
        r#"{"id":"d1","owner":"o1","logical_clock":2,"utc_timestamp":1716800000000,"type":"update","model":"task","json_data":"{\"id\":\"r1\",\"done\":true}"}"#
    );
}

#[test]
fn response_serializes_like_the_python_server() {
    let resp = SyncResponse::ok(5, vec![]);
    assert_eq!(
        serde_json::to_string(&resp).unwrap(),
        r#"{"success":true,"message":"","logical_clock":5,"diffs":[]}"#
    );
    let back: SyncResponse = serde_json::from_str(r#"{"success":true,"message":"","logical_clock":5,"diffs":[]}"#).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn json_data_as_an_object_is_accepted_on_input_and_answered_as_a_string() {
    let diff = parse_diff(wire_diff(json!({"json_data": {"id": "r1", "title": "a"}}))).unwrap();
    assert_eq!(diff.data["title"], "a");
    let out = serde_json::to_value(&diff).unwrap();
    assert_eq!(out["json_data"], json!("{\"id\":\"r1\",\"title\":\"a\"}"));
}

#[test]
fn missing_owner_on_input_is_fine() {
    let diff = parse_diff(wire_diff(json!({"owner": null}))).unwrap();
    assert_eq!(diff.owner, "");
}

#[test]
fn rejects_each_malformed_diff_shape_with_malformed_request_naming_it() {
    let cases = [
        json!({"logical_clock": -1}),
        json!({"utc_timestamp": -5}),
        json!({"type": "upsert"}),
        json!({"type": "Create"}),
        json!({"json_data": 42}),
        json!({"json_data": null}),
        json!({"logical_clock": "3"}),
        json!({"logical_clock": 1.5}),
        json!({"utc_timestamp": "5"}),
        json!({"utc_timestamp": 18446744073709551616u128}),
        json!({"model": 7}),
        json!({"model": null}),
        json!({"type": null}),
    ];
    for case in cases {
        let err = parse_diff(wire_diff(case.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::MalformedRequest, "{case}: {err}");
        assert_eq!(err.diff_id.as_deref(), Some("d1"), "{case}");
    }
}

#[test]
fn a_diff_id_that_is_not_one_is_malformed() {
    let long = "x".repeat(256);
    for (case, named) in [
        (json!({"id": null}), None),
        (json!({"id": 5}), None),
        (json!({"id": ""}), Some("")),
        (json!({"id": long}), Some(long.as_str())),
        (json!({"id": "a\u{0}b"}), Some("a\u{0}b")),
    ] {
        let err = parse_diff(wire_diff(case.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::MalformedRequest, "{case}: {err}");
        assert_eq!(err.diff_id.as_deref(), named, "{case}");
    }
    let longest = "x".repeat(255);
    assert!(parse_diff(wire_diff(json!({"id": longest}))).is_ok());
}

#[test]
fn rejects_inconsistent_json_data_with_invalid_diff_naming_the_diff() {
    let long = json!({"id": "r".repeat(256)}).to_string();
    let cases = [
        json!({"json_data": "{not json"}),
        json!({"json_data": "[1,2]"}),
        json!({"json_data": "\"text\""}),
        json!({"json_data": "{\"title\":\"no id\"}"}),
        json!({"json_data": "{\"id\":5}"}),
        json!({"json_data": "{\"id\":\"\"}"}),
        json!({"json_data": "{\"id\":\"a\\u0000b\"}"}),
        json!({"json_data": long}),
        json!({"type": "delete", "json_data": "{}"}),
        json!({"type": "delete", "json_data": "{\"id\":\"r1\",\"title\":\"x\"}"}),
        json!({"type": "update", "json_data": "{\"done\":true}"}),
        json!({"model": ""}),
    ];
    for case in cases {
        let err = parse_diff(wire_diff(case.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidDiff, "{case}: {err}");
        assert_eq!(err.diff_id.as_deref(), Some("d1"), "{case}");
    }
}

#[test]
fn rejects_malformed_envelopes_with_malformed_request_without_diff_id() {
    let bodies: [&[u8]; 13] = [
        b"",
        b"not json",
        b"[]",
        br#"["t",0,[]]"#,
        br#"  ["t",0,[]]"#,
        br#"{"auth_token":"t","diffs":[]}"#,
        br#"{"auth_token":"t","logical_clock":0}"#,
        br#"{"auth_token":"t","logical_clock":"0","diffs":[]}"#,
        br#"{"auth_token":"t","logical_clock":1.5,"diffs":[]}"#,
        br#"{"auth_token":"t","logical_clock":1e400,"diffs":[]}"#,
        br#"{"auth_token":7,"logical_clock":0,"diffs":[]}"#,
        br#"{"auth_token":"t","logical_clock":0,"diffs":{}}"#,
        br#"{"auth_token":"t","logical_clock":0,"diffs":[{"id":]}"#,
    ];
    for body in bodies {
        let err = Envelope::parse(body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::MalformedRequest, "{}", String::from_utf8_lossy(body));
        assert_eq!(err.diff_id, None);
    }
}

#[test]
fn a_missing_token_is_not_a_shape_error() {
    let req = Envelope::parse(br#"{"logical_clock":0,"diffs":[]}"#).unwrap();
    assert_eq!(req.auth_token, None);
}

#[test]
fn any_integer_cursor_reads_so_that_it_can_be_answered_invalid_clock() {
    let cursor = |text: &str| Envelope::parse(format!(r#"{{"auth_token":"t","logical_clock":{text},"diffs":[]}}"#).as_bytes()).unwrap().cursor;
    assert_eq!(cursor("-1"), Cursor::At(-1));
    assert_eq!(cursor("9223372036854775807"), Cursor::At(i64::MAX));
    assert_eq!(cursor("9223372036854775808"), Cursor::TooLarge);
    assert_eq!(cursor("99999999999999999999999"), Cursor::TooLarge);
    assert_eq!(cursor("-99999999999999999999999"), Cursor::TooSmall);
    for bad in [Cursor::At(-1), Cursor::TooLarge, Cursor::TooSmall] {
        assert_eq!(bad.value().unwrap_err().kind, ErrorKind::InvalidClock);
    }
}

#[test]
fn diffs_stay_raw_text_in_the_envelope() {
    let body = br#"{"auth_token":"t","logical_clock":0,"diffs":[{"id":"d1","json_data":[0,0,0]}, 7]}"#;
    let env = Envelope::parse(body).unwrap();
    assert_eq!(env.diffs[0].get(), r#"{"id":"d1","json_data":[0,0,0]}"#);
    assert_eq!(env.diffs[1].get(), "7");
}

#[test]
fn numbers_in_json_data_keep_the_digits_sent() {
    let data = r#"{"id":"r1","big":123456789012345678901234567890,"small":0.1,"exp":1e400,"neg":-0.0000000000000000001}"#;
    let diff = parse_diff(wire_diff(json!({"json_data": data}))).unwrap();
    let answer = serde_json::to_string(&diff).unwrap();
    let back: serde_json::Value = serde_json::from_str(&answer).unwrap();
    // The digits are the client's; only an exponent gets its sign written.
    assert_eq!(back["json_data"], data.replace("1e400", "1e+400"));
}
