//! Every error of PROTOCOL.md's table, provoked over real HTTP: the status,
//! the JSON body, and a database left exactly as it was.

mod common;

use common::TodoServer;
use diesel::connection::SimpleConnection;
use mobync_tests::dbs;
use mobync_tests::http::{self, error_of};
use mobync_tests::models::{dump, dump_tables};
use serde_json::{json, Value};

fn diff(id: &str, op: &str, model: &str, data: Value) -> Value {
    json!({"id": id, "owner": "placeholder", "logical_clock": 0, "utc_timestamp": 1_700_000_000_000i64,
           "type": op, "model": model, "json_data": data.to_string()})
}

fn request(token: &str, clock: i64, diffs: Vec<Value>) -> Vec<u8> {
    json!({"auth_token": token, "logical_clock": clock, "diffs": diffs}).to_string().into_bytes()
}

#[test]
fn every_error_code_answers_json_and_changes_nothing() {
    for backend in dbs::backends() {
        let Some(server) = TodoServer::start(backend, &[]) else { continue };
        let url = server.sync_url();
        let (token, _) = http::signup(&server.base, "alice");
        let (other, _) = http::signup(&server.base, "bob");
        let seed = request(&token, 0, vec![diff("seed", "create", "task", json!({"id": "t1", "title": "one", "done": false}))]);
        assert_eq!(http::post(&url, "application/json", &seed).status, 200);
        let other_seed = request(&other, 0, vec![diff("bseed", "create", "task", json!({"id": "b1", "title": "b", "done": false}))]);
        assert_eq!(http::post(&url, "application/json", &other_seed).status, 200);

        let task = |id: &str, row: &str, title: &str| diff(id, "create", "task", json!({"id": row, "title": title, "done": false}));
        let ok = task("ok", "t2", "fine");
        let mut negative = task("neg", "t3", "x");
        negative["logical_clock"] = json!(-1);
        let mut bad_type = task("upsert", "t3", "x");
        bad_type["type"] = json!("upsert");
        let mut not_string = task("num", "t3", "x");
        not_string["json_data"] = json!(42);
        let mut bad_json = task("badjson", "t3", "x");
        bad_json["json_data"] = json!("{\"id\": ");
        let huge = request(&token, 1, vec![task("big", "t9", &"x".repeat(6 * 1024 * 1024))]);
        let many = request(&token, 1, (0..5_001).map(|i| task(&format!("d{i}"), &format!("r{i}"), "x")).collect());

        let cases: Vec<(&str, Vec<u8>, u16, &str, Option<&str>)> = vec![
            ("not JSON", b"{not json".to_vec(), 400, "malformed_request", None),
            ("an array, not an object", json!([token, 0, [ok]]).to_string().into_bytes(), 400, "malformed_request", None),
            ("missing clock", json!({"auth_token": token, "diffs": []}).to_string().into_bytes(), 400, "malformed_request", None),
            ("clock as text", json!({"auth_token": token, "logical_clock": "1", "diffs": []}).to_string().into_bytes(), 400, "malformed_request", None),
            ("diffs not a list", json!({"auth_token": token, "logical_clock": 1, "diffs": {}}).to_string().into_bytes(), 400, "malformed_request", None),
            ("negative diff clock", request(&token, 1, vec![ok.clone(), negative]), 400, "malformed_request", Some("neg")),
            ("unknown type", request(&token, 1, vec![bad_type]), 400, "malformed_request", Some("upsert")),
            ("json_data a number", request(&token, 1, vec![not_string]), 400, "malformed_request", Some("num")),
            ("no token", json!({"logical_clock": 1, "diffs": [ok]}).to_string().into_bytes(), 401, "unauthenticated", None),
            ("bad token", request("not-a-token", 1, vec![ok.clone()]), 401, "unauthenticated", None),
            ("blank title", request(&token, 1, vec![ok.clone(), task("blank", "t4", "   ")]), 403, "forbidden", Some("blank")),
            ("long name", request(&token, 1, vec![diff("long", "create", "project", json!({"id": "p1", "name": "n".repeat(201)}))]), 403, "forbidden", Some("long")),
            ("negative cursor", request(&token, -1, vec![ok.clone()]), 409, "invalid_clock", None),
            ("cursor ahead", request(&token, 7, vec![ok.clone()]), 409, "invalid_clock", None),
            ("body over 5 MiB", huge, 413, "payload_too_large", None),
            ("5,001 diffs", many, 413, "payload_too_large", None),
            ("unknown model", request(&token, 1, vec![ok.clone(), diff("m", "create", "tsk", json!({"id": "x"}))]), 422, "invalid_diff", Some("m")),
            ("unknown field", request(&token, 1, vec![diff("f", "update", "task", json!({"id": "t1", "colour": 1}))]), 422, "invalid_diff", Some("f")),
            ("wrong field type", request(&token, 1, vec![diff("w", "update", "task", json!({"id": "t1", "done": "yes"}))]), 422, "invalid_diff", Some("w")),
            ("null title", request(&token, 1, vec![diff("n", "update", "task", json!({"id": "t1", "title": null}))]), 422, "invalid_diff", Some("n")),
            ("missing field", request(&token, 1, vec![diff("c", "create", "task", json!({"id": "t5", "title": "x"}))]), 422, "invalid_diff", Some("c")),
            ("owner from client", request(&token, 1, vec![diff("o", "update", "task", json!({"id": "t1", "owner": "bob"}))]), 422, "invalid_diff", Some("o")),
            ("unknown row", request(&token, 1, vec![ok.clone(), diff("u", "update", "task", json!({"id": "zz", "done": true}))]), 422, "invalid_diff", Some("u")),
            ("another owner's row", request(&token, 1, vec![diff("x", "delete", "task", json!({"id": "b1"}))]), 422, "invalid_diff", Some("x")),
            ("taken id", request(&token, 1, vec![task("tk", "b1", "taken")]), 422, "invalid_diff", Some("tk")),
            ("same diff twice", request(&token, 1, vec![ok.clone(), ok.clone()]), 422, "invalid_diff", Some("ok")),
            ("row created twice", request(&token, 1, vec![ok.clone(), task("ok2", "t2", "again")]), 422, "invalid_diff", Some("ok2")),
            ("json_data not JSON", request(&token, 1, vec![bad_json]), 422, "invalid_diff", Some("badjson")),
        ];
        for (name, body, status, code, diff_id) in cases {
            let before = dump(&server.db);
            let answer = http::post(&url, "application/json", &body);
            assert_eq!(answer.status, status, "{backend:?} {name}: {}", &answer.body[..answer.body.len().min(300)]);
            let err = error_of(&answer);
            assert_eq!(err.kind.code(), code, "{backend:?} {name}");
            assert!(!err.message.is_empty(), "{backend:?} {name}: a message for humans");
            if let Some(id) = diff_id {
                assert_eq!(err.diff_id.as_deref(), Some(id), "{backend:?} {name}: the offending diff");
            }
            assert_eq!(dump(&server.db), before, "{backend:?} {name}: the database changed");
        }

        // Whatever the content type, a JSON body is a sync request.
        let answer = http::post(&url, "text/plain", &request(&token, 1, vec![]));
        assert_eq!(answer.status, 200, "{}", answer.body);
        // Anything else under the sync path answers JSON too.
        let answer = http::get(&url).expect("an answer");
        assert!(answer.status >= 400 && answer.json()["success"] == false, "{}", answer.body);

        // 500: the database fails under the engine; nothing is half-done and
        // the message tells nothing of SQL.
        dbs::connect(&server.db).batch_execute("DROP TABLE projects").expect("drop");
        let logs = ["tasks", "diffs", "diffs_clocks", "diffs_dropped"];
        let before = dump_tables(&server.db, &logs);
        let body = request(&token, 1, vec![ok.clone(), diff("p", "create", "project", json!({"id": "p9", "name": "x"}))]);
        let answer = http::post(&url, "application/json", &body);
        let err = error_of(&answer);
        assert_eq!((answer.status, err.kind.code()), (500, "internal"), "{backend:?}: {}", answer.body);
        assert!(!answer.body.to_lowercase().contains("projects") && !answer.body.contains("SQL"), "{}", answer.body);
        assert_eq!(dump_tables(&server.db, &logs), before, "{backend:?}: a 500 changed the database");
    }
}
