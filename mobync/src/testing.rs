//! Conformance scenarios any mobync server must pass, whatever its storage or
//! transport: the worked example of PROTOCOL.md, the Dart client's own
//! integration sequence, and random multi-device runs that must converge.
//!
//! A [`Server`] is anything that syncs a [`SyncRequest`] for a token and can
//! list an owner's rows; the engine over the memory store, the Diesel store on
//! each backend, and the HTTP server all implement it in their tests.

use crate::client::{Device, Rows};
use crate::error::SyncError;
use crate::protocol::{SyncRequest, SyncResponse};
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashSet;

/// A server under test.
pub trait Server {
    /// One sync for the owner behind `token`.
    fn sync(&mut self, token: &str, request: &SyncRequest) -> Result<SyncResponse, SyncError>;
    /// The rows the server holds for the owner behind `token`.
    fn rows(&mut self, token: &str) -> Rows;
}

/// Syncs `device` once and checks that none of its own diffs came back.
pub fn sync(server: &mut dyn Server, token: &str, device: &mut Device) -> SyncResponse {
    let request = device.request(token);
    let answer = server.sync(token, &request).unwrap_or_else(|e| panic!("sync of {} failed: {e}", device.name()));
    let own: HashSet<&str> = device.log().iter().map(|d| d.id.as_str()).collect();
    for diff in &answer.diffs {
        assert!(!own.contains(diff.id.as_str()), "{} got its own diff {} back", device.name(), diff.id);
    }
    device.receive(&answer);
    answer
}

/// `op:row` of each diff of an answer, the row id without its owner prefix.
fn row_ids(answer: &SyncResponse) -> Vec<String> {
    let short = |id: &str| id.rsplit(':').next().unwrap_or(id).to_owned();
    answer.diffs.iter().map(|d| format!("{}:{}", d.op.as_str(), short(d.row_id()))).collect()
}

/// PROTOCOL.md's worked example, then an update by one device and a delete
/// by the other, as the mobync client's integration test does. `token` must
/// belong to a fresh owner. Panics on any difference.
pub fn worked_example(server: &mut dyn Server, token: &str) {
    // Row ids are unique per model across owners: prefix them per run.
    let prefix = token.chars().filter(char::is_ascii_alphanumeric).take(12).collect::<String>();
    let r = |n: u8| format!("{prefix}:r{n}");
    let mut a = Device::new("A");
    let mut b = Device::new("B");
    a.create("task", &r(1), json!({"title": "one", "done": false}), 1_000);
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (1, vec![]), "A's first sync");

    a.create("task", &r(2), json!({"title": "two", "done": false}), 2_000);
    b.create("task", &r(3), json!({"title": "three", "done": true}), 2_500);
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (2, vec!["create:r1".to_string()]), "B syncs");
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (3, vec!["create:r3".to_string()]), "A syncs");
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (3, vec!["create:r2".to_string()]), "B syncs again");
    assert_eq!(answer.diffs[0].logical_clock, 2, "r2 was stamped 2");
    assert_eq!(a.rows(), b.rows());
    assert_eq!(a.rows().len(), 3);
    assert_eq!(&server.rows(token), a.rows());

    // An update by one device, a delete by the other.
    a.update("task", &r(3), json!({"done": false, "title": "three!"}), 3_000);
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (4, vec![]), "A sends its update");
    b.delete("task", &r(1), 3_100);
    let answer = sync(server, token, &mut b);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (5, vec!["update:r3".to_string()]), "B deletes r1");
    let answer = sync(server, token, &mut a);
    assert_eq!((answer.logical_clock, row_ids(&answer)), (5, vec!["delete:r1".to_string()]), "A learns of it");
    assert_eq!(a.rows(), b.rows());
    assert_eq!(&server.rows(token), a.rows());
    assert_eq!(a.rows().len(), 2);
    assert_eq!(a.rows()[&("task".into(), r(3))]["title"], "three!");
}

/// One step of a random run.
#[derive(Debug, Clone)]
pub enum Step {
    /// Device creates a row of a model (0: task, 1: project).
    Create { device: usize, model: usize },
    /// Device changes one field of its `row`-th row (modulo its row count).
    Update { device: usize, row: usize, field: usize, value: u8 },
    /// Device deletes its `row`-th row.
    Delete { device: usize, row: usize },
    /// Device syncs; when `lost`, the answer never arrives.
    Sync { device: usize, lost: bool },
    /// Device's clock jumps ahead (by up to 3 ms per step otherwise).
    Tick { device: usize, ms: u8 },
}

/// A random run: how many devices of one owner, and what they do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// 2 to 4 devices.
    pub devices: usize,
    /// What they do, in order.
    pub steps: Vec<Step>,
}

/// Random plans of 2–4 devices and up to `max_steps` steps.
pub fn plans(max_steps: usize) -> impl Strategy<Value = Plan> {
    (2usize..=4).prop_flat_map(move |devices| {
        let step = prop_oneof![
            3 => (0..devices, 0usize..2).prop_map(|(device, model)| Step::Create { device, model }),
            4 => (0..devices, 0usize..8, 0usize..3, any::<u8>())
                .prop_map(|(device, row, field, value)| Step::Update { device, row, field, value }),
            1 => (0..devices, 0usize..8).prop_map(|(device, row)| Step::Delete { device, row }),
            3 => (0..devices, prop::bool::weighted(0.2)).prop_map(|(device, lost)| Step::Sync { device, lost }),
            1 => (0..devices, any::<u8>()).prop_map(|(device, ms)| Step::Tick { device, ms }),
        ];
        prop::collection::vec(step, 1..max_steps).prop_map(move |steps| Plan { devices, steps })
    })
}

/// Plays `plan` for the fresh owner behind `token`, then lets every device
/// sync twice with nothing new, and checks that every device and the server
/// hold the same rows and that no device ever got its own diff back.
pub fn converge(server: &mut dyn Server, token: &str, plan: &Plan) {
    let mut devices: Vec<Device> = (0..plan.devices).map(|i| Device::new(format!("dev{i}"))).collect();
    let mut clocks = vec![1_000i64; plan.devices];
    let mut made = 0usize;
    for step in &plan.steps {
        match *step {
            Step::Create { device, model } => {
                made += 1;
                let id = format!("{token}:row{made}-{device}");
                clocks[device] += 1;
                let fields = if model == 0 {
                    json!({"title": format!("t{made}"), "done": false})
                } else {
                    json!({"name": format!("p{made}")})
                };
                devices[device].create(["task", "project"][model], &id, fields, clocks[device]);
            }
            Step::Update { device, row, field, value } => {
                let Some((model, id)) = nth_row(&devices[device], row) else { continue };
                clocks[device] += (value % 3) as i64;
                let fields = match (model.as_str(), field) {
                    ("task", 0) | ("task", 2) => json!({"title": format!("v{value}")}),
                    ("task", _) => json!({"done": value % 2 == 0}),
                    _ => json!({"name": format!("n{value}")}),
                };
                devices[device].update(&model, &id, fields, clocks[device]);
            }
            Step::Delete { device, row } => {
                let Some((model, id)) = nth_row(&devices[device], row) else { continue };
                clocks[device] += 1;
                devices[device].delete(&model, &id, clocks[device]);
            }
            Step::Sync { device, lost } => {
                if lost {
                    let request = devices[device].request(token);
                    server.sync(token, &request).unwrap_or_else(|e| panic!("lost sync failed: {e}"));
                } else {
                    sync(server, token, &mut devices[device]);
                }
            }
            Step::Tick { device, ms } => clocks[device] += ms as i64,
        }
    }
    for _ in 0..2 {
        for device in devices.iter_mut() {
            sync(server, token, device);
        }
    }
    let rows = server.rows(token);
    for device in &devices {
        assert_eq!(device.rows(), &rows, "{} differs from the server", device.name());
    }
}

fn nth_row(device: &Device, n: usize) -> Option<(String, String)> {
    let rows = device.rows();
    if rows.is_empty() {
        return None;
    }
    rows.keys().nth(n % rows.len()).cloned()
}
