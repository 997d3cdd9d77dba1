//! Random runs: several owners, each with several devices, making changes,
//! syncing (sometimes losing the answer), sending changes the server must
//! refuse, and bursts of hundreds of diffs; then every device must hold the
//! rows of the reference model ([`super::expected_rows`]).

use super::{assert_refused, expected_rows, sync, Lcg, Server};
use crate::client::{Device, Rows};
use crate::error::ErrorKind;
use crate::protocol::{Diff, SyncResponse};
use proptest::prelude::*;
use serde_json::json;

/// A change the server must refuse (or, for [`Refusal::BlankUpdate`], may
/// merge away): the device sends it at once and discards it if refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A task created with a blank title: 403, the app's rule.
    BlankCreate,
    /// A task's title set blank: 403, unless the merge drops the change.
    BlankUpdate,
    /// An update of a row nobody has: 422.
    UnknownRow,
    /// A create of a row id another device (or owner) already has: 422.
    TakenId,
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
    /// The clock jumps ahead (by up to 2 ms per change otherwise, often 0,
    /// so that changes of different devices often share a timestamp).
    Tick { ms: u8 },
    /// Device sends a change the server refuses, and drops it if so.
    Refused { device: usize, what: Refusal, pick: usize },
    /// Device makes several hundred changes at once (runs of creates over
    /// the insert chunk, updates, deletes), played from `seed`.
    Burst { device: usize, seed: u64 },
    /// The server compacts an owner's log below a horizon `pick` chooses
    /// (see [`Server::compact`]).
    Compact { owner: usize, pick: u8 },
}

/// A random run: how many owners and devices, and what they do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// 1 to 3 owners; device `d` belongs to owner `d % owners`.
    pub owners: usize,
    /// At least 2 devices, and at least one per owner.
    pub devices: usize,
    /// What they do, in order.
    pub steps: Vec<Step>,
    /// Each device's page size: `None` speaks version 1, `Some(k)` version 2.
    pub pages: Vec<Option<u64>>,
}

/// Random plans of up to 3 owners, 2–6 devices and up to `max_steps` steps.
pub fn plans(max_steps: usize) -> impl Strategy<Value = Plan> {
    (1usize..=3)
        .prop_flat_map(|owners| (Just(owners), owners.max(2)..=owners + 3))
        .prop_flat_map(move |(owners, devices)| {
            let refusal = prop_oneof![
                Just(Refusal::BlankCreate),
                Just(Refusal::BlankUpdate),
                Just(Refusal::UnknownRow),
                Just(Refusal::TakenId),
            ];
            let step = prop_oneof![
                6 => (0..devices, 0usize..2).prop_map(|(device, model)| Step::Create { device, model }),
                8 => (0..devices, 0usize..8, 0usize..3, any::<u8>())
                    .prop_map(|(device, row, field, value)| Step::Update { device, row, field, value }),
                2 => (0..devices, 0usize..8).prop_map(|(device, row)| Step::Delete { device, row }),
                6 => (0..devices, prop::bool::weighted(0.2)).prop_map(|(device, lost)| Step::Sync { device, lost }),
                1 => (0u8..16).prop_map(|ms| Step::Tick { ms }),
                2 => (0..devices, refusal, any::<usize>())
                    .prop_map(|(device, what, pick)| Step::Refused { device, what, pick }),
                1 => (0..devices, any::<u64>()).prop_map(|(device, seed)| Step::Burst { device, seed }),
                2 => (0..owners, any::<u8>()).prop_map(|(owner, pick)| Step::Compact { owner, pick }),
            ];
            let page = prop_oneof![3 => Just(None), 1 => Just(Some(1)), 1 => Just(Some(3)), 1 => Just(Some(10)), 1 => (1u64..50).prop_map(Some)];
            (prop::collection::vec(step, 1..max_steps), prop::collection::vec(page, devices))
                .prop_map(move |(steps, pages)| Plan { owners, devices, steps, pages })
        })
}

/// Most pending diffs a device gathers by bursts: well below the server's
/// default limit of a request.
const MOST_PENDING: usize = 3_000;

/// One run's devices, their owners' tokens and their clocks.
struct Run<'a> {
    tokens: &'a [String],
    owners: usize,
    devices: Vec<Device>,
    /// The devices' wall clock: it never goes back, and it moves past every
    /// timestamp made so far when a device receives diffs, so that a change
    /// made after seeing another is newer than it, while changes made
    /// between two syncs often share a timestamp (the merge then compares
    /// diff ids).
    clock: i64,
    made: usize,
}

impl Run<'_> {
    fn token(&self, device: usize) -> &str {
        &self.tokens[device % self.owners]
    }

    /// A row id unique to this run and owner, shaped as a UUID (so that
    /// models with UUID ids take part): the owner's token hashed, the
    /// device, a counter.
    fn new_id(&mut self, device: usize) -> String {
        self.made += 1;
        let hash = self.token(device).bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        format!("{:08x}-{:04x}-4{:03x}-8000-{:012x}", hash >> 32, (hash >> 16) & 0xffff, device, self.made)
    }

    fn tick(&mut self, ms: i64) -> i64 {
        self.clock += ms;
        self.clock
    }

    /// A device that received diffs moves the clock past every timestamp
    /// made so far (they are all at most the clock), not only past those
    /// it received: a create it received may hold an update whose own,
    /// later timestamp the merge folded away (PROTOCOL.md step 3), and a
    /// change the device then makes must still be newer than that update.
    fn received(&mut self, answer: &SyncResponse) {
        if !answer.diffs.is_empty() {
            self.clock += 1;
        }
    }

    /// One sync: one request, whose answer may be a page (version 2).
    fn sync(&mut self, server: &mut dyn Server, device: usize) -> SyncResponse {
        let token = self.token(device).to_owned();
        let answer = sync(server, &token, &mut self.devices[device]);
        self.received(&answer);
        answer
    }

    /// Syncs until an answer is not a page: a whole sync of either version.
    fn settle(&mut self, server: &mut dyn Server, device: usize) {
        for _ in 0..100_000 {
            if self.sync(server, device).has_more != Some(true) {
                return;
            }
        }
        panic!("dev{device} got pages without end");
    }

    fn create(&mut self, device: usize, model: usize) {
        let id = self.new_id(device);
        let ts = self.tick((self.made % 2) as i64);
        let fields = if model == 0 {
            json!({"title": format!("t{}", self.made), "done": false})
        } else {
            json!({"name": format!("p{}", self.made)})
        };
        self.devices[device].create(["task", "project"][model], &id, fields, ts);
    }

    fn update(&mut self, device: usize, row: usize, field: usize, value: u8) {
        let Some((model, id)) = nth_row(self.devices[device].rows(), row) else { return };
        let ts = self.tick((value % 3) as i64);
        let fields = match (model.as_str(), field) {
            ("task", 0) | ("task", 2) => json!({"title": format!("v{value}")}),
            ("task", _) => json!({"done": value % 2 == 0}),
            _ => json!({"name": format!("n{value}")}),
        };
        self.devices[device].update(&model, &id, fields, ts);
    }

    fn delete(&mut self, device: usize, row: usize) {
        let Some((model, id)) = nth_row(self.devices[device].rows(), row) else { return };
        let ts = self.tick(1);
        self.devices[device].delete(&model, &id, ts);
    }

    /// Makes the refused change, syncs at once and checks the refusal: the
    /// right code, naming the change, and the server left as it was. A
    /// refused change is discarded and the run goes on.
    fn refused(&mut self, server: &mut dyn Server, device: usize, what: Refusal, pick: usize) {
        // A version-2 device pulls its pages first: a page is a pure read
        // that refuses nothing.
        if self.devices[device].request("").page_size.is_some() {
            self.settle(server, device);
        }
        let ts = self.tick(1);
        let (diff, kind) = match what {
            Refusal::BlankCreate => {
                let id = self.new_id(device);
                (self.devices[device].create("task", &id, json!({"title": "  ", "done": false}), ts), ErrorKind::Forbidden)
            }
            Refusal::BlankUpdate => {
                let tasks: Rows = self.devices[device].rows().clone().into_iter().filter(|((m, _), _)| m == "task").collect();
                let Some((_, id)) = nth_row(&tasks, pick) else { return };
                (self.devices[device].update("task", &id, json!({"title": ""}), ts), ErrorKind::Forbidden)
            }
            Refusal::UnknownRow => {
                let id = self.new_id(device);
                (self.devices[device].update("task", &id, json!({"done": true}), ts), ErrorKind::InvalidDiff)
            }
            Refusal::TakenId => {
                // A row the server has now, of any owner, that this device
                // does not know: its create must be refused.
                let mine = self.devices[device].rows().clone();
                let mut taken: Vec<(String, String)> = Vec::new();
                for owner in 0..self.owners {
                    let token = self.tokens[owner].clone();
                    taken.extend(server.rows(&token).into_keys().filter(|key| !mine.contains_key(key)));
                }
                let Some((model, id)) = taken.get(pick % taken.len().max(1)).cloned() else { return };
                let fields = if model == "task" { json!({"title": "mine", "done": true}) } else { json!({"name": "mine"}) };
                (self.devices[device].create(&model, &id, fields, ts), ErrorKind::InvalidDiff)
            }
        };
        let token = self.token(device).to_owned();
        let request = self.devices[device].request(&token);
        let before = server.state();
        match server.sync(&token, &request) {
            Ok(answer) => {
                assert_eq!(what, Refusal::BlankUpdate, "{what:?} ({diff}) was accepted");
                // The merge dropped the blank title (the row was deleted, or
                // another device's newer title won): an ordinary change.
                self.devices[device].receive(&answer);
                self.received(&answer);
            }
            Err(err) => {
                assert_refused(&err, kind, &diff, &format!("{what:?}"));
                assert_eq!(server.state(), before, "{what:?}: a refused sync changed the server");
                assert!(self.devices[device].discard(&diff));
            }
        }
    }

    /// Hundreds of changes in one go: a run of creates longer than the
    /// 500-row insert chunk, updates (of the new rows and of older ones),
    /// deletes, then a run of creates of the other model.
    fn burst(&mut self, device: usize, seed: u64) {
        if self.devices[device].pending().len() > MOST_PENDING {
            return;
        }
        let mut rng = Lcg(seed);
        for _ in 0..(501 + rng.next(60)) {
            self.create(device, 0);
        }
        for _ in 0..(60 + rng.next(120)) {
            let (row, field, value) = (rng.next(1 << 20), rng.next(3), rng.next(256) as u8);
            self.update(device, row, field, value);
        }
        for _ in 0..(10 + rng.next(30)) {
            self.delete(device, rng.next(1 << 20));
        }
        for _ in 0..(20 + rng.next(80)) {
            self.create(device, 1);
        }
    }
}

/// Plays `plan` with one fresh owner per token (`tokens` must hold at least
/// `plan.owners`), then lets every device sync twice with nothing new, and
/// checks that (returning how many compactions the server ran):
/// - no device ever got its own diff back;
/// - every refused change was refused for its reason, naming it, and changed
///   nothing on the server;
/// - every device of an owner, and the server, hold exactly the rows of the
///   reference model of that owner's history ([`expected_rows`]).
pub fn converge(server: &mut dyn Server, tokens: &[String], plan: &Plan) -> usize {
    assert!(tokens.len() >= plan.owners, "converge needs {} owner tokens", plan.owners);
    let mut run = Run {
        tokens,
        owners: plan.owners,
        devices: (0..plan.devices)
            .map(|i| match plan.pages.get(i).copied().flatten() {
                Some(size) => Device::new(format!("dev{i}")).with_pages(size),
                None => Device::new(format!("dev{i}")),
            })
            .collect(),
        clock: 1_000,
        made: 0,
    };
    let mut compacted = 0;
    for step in &plan.steps {
        match *step {
            Step::Create { device, model } => run.create(device, model),
            Step::Update { device, row, field, value } => run.update(device, row, field, value),
            Step::Delete { device, row } => run.delete(device, row),
            Step::Sync { device, lost: true } => {
                let token = run.token(device).to_owned();
                let request = run.devices[device].request(&token);
                server.sync(&token, &request).unwrap_or_else(|e| panic!("lost sync failed: {e}"));
            }
            Step::Sync { device, lost: false } => {
                run.sync(server, device);
            }
            Step::Tick { ms } => {
                run.tick(ms as i64);
            }
            Step::Refused { device, what, pick } => run.refused(server, device, what, pick),
            Step::Burst { device, seed } => run.burst(device, seed),
            Step::Compact { owner, pick } => compacted += usize::from(server.compact(&tokens[owner], pick)),
        }
    }
    for _ in 0..2 {
        for device in 0..plan.devices {
            run.settle(server, device);
        }
    }
    for owner in 0..plan.owners {
        let history: Vec<&Diff> =
            run.devices.iter().skip(owner).step_by(plan.owners).flat_map(|d| d.log().iter()).collect();
        let expected = expected_rows(history);
        let rows = server.rows(&tokens[owner]);
        assert!(rows == expected, "owner {owner}: the server differs from the reference model: {}", differences(&rows, &expected));
        for device in run.devices.iter().skip(owner).step_by(plan.owners) {
            assert!(
                device.rows() == &expected,
                "{} differs from the reference model: {}",
                device.name(),
                differences(device.rows(), &expected)
            );
        }
    }    compacted
}

/// The rows where `got` and `want` differ, as `key: got != want`.
fn differences(got: &Rows, want: &Rows) -> String {
    let keys: std::collections::BTreeSet<&(String, String)> = got.keys().chain(want.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (got.get(key), want.get(key));
        if a != b {
            out.push(format!("{key:?}: {a:?} != {b:?}"));
        }
    }
    out.join("; ")
}

fn nth_row(rows: &Rows, n: usize) -> Option<(String, String)> {
    if rows.is_empty() {
        return None;
    }
    rows.keys().nth(n % rows.len()).cloned()
}
