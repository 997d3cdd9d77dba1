//! Many processes: two todo servers sharing one PostgreSQL database, 64
//! devices of 16 owners syncing through both at once, for a fixed number of
//! rounds. Nothing is lost, nothing applied twice, no clock value given to
//! two syncs of one owner, and everyone ends up with the same rows.

mod common;

use common::TodoServer;
use diesel::prelude::*;
use mobync::client::Device;
use mobync::db::schema::{diffs, diffs_dropped};
use mobync::testing;
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http::HttpServer;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

const OWNERS: usize = 16;
const DEVICES: usize = 64;
const ROUNDS: usize = 6;

/// A tiny deterministic generator: each device plays its own sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn two_servers_one_database_sixty_four_devices() {
    let Some(first) = TodoServer::start(Backend::Postgres, &[]) else { return };
    let second = first.another();
    let owners: Vec<(String, String)> =
        (0..OWNERS).map(|i| mobync_tests::http::signup(&first.base, &format!("owner{i}"))).collect();
    let urls = [first.sync_url(), second.sync_url()];

    let threads: Vec<_> = (0..DEVICES)
        .map(|d| {
            let (token, _) = owners[d % OWNERS].clone();
            let urls = urls.clone();
            std::thread::spawn(move || {
                let mut device = Device::new(format!("dev{d}"));
                let mut rng = Lcg(d as u64 + 1);
                let mut now = 1_000;
                let mut made = 0;
                for round in 0..ROUNDS {
                    for _ in 0..1 + rng.next(3) {
                        now += rng.next(3) as i64;
                        let rows: Vec<(String, String)> = device.rows().keys().cloned().collect();
                        match (rng.next(4), rows.is_empty()) {
                            (0, _) | (_, true) => {
                                made += 1;
                                let id = format!("d{d}-row{made}");
                                device.create("task", &id, json!({"title": format!("t{now}"), "done": false}), now);
                            }
                            (3, false) => {
                                let (model, id) = &rows[rng.next(rows.len())];
                                device.delete(model, id, now);
                            }
                            _ => {
                                let (model, id) = &rows[rng.next(rows.len())];
                                device.update(model, id, json!({"title": format!("v{d}-{now}")}), now);
                            }
                        }
                    }
                    let mut server = HttpServer { sync_url: urls[(round + d) % 2].clone(), rows: |_: &str| unreachable!(), state: || unreachable!() };
                    testing::sync(&mut server, &token, &mut device);
                }
                device
            })
        })
        .collect();
    let mut devices: Vec<Device> = threads.into_iter().map(|t| t.join().expect("a device thread")).collect();

    // Everyone syncs twice more with nothing new.
    for round in 0..2 {
        for (d, device) in devices.iter_mut().enumerate() {
            let mut server = HttpServer { sync_url: urls[(round + d) % 2].clone(), rows: |_: &str| unreachable!(), state: || unreachable!() };
            testing::sync(&mut server, &owners[d % OWNERS].0, device);
        }
    }

    let mut conn = dbs::connect(&first.db);
    for (o, (_, owner)) in owners.iter().enumerate() {
        let rows = mobync_tests::models::rows(&mut conn, owner);
        for device in devices.iter().skip(o).step_by(OWNERS) {
            assert_eq!(device.rows(), &rows, "{} differs from the server", device.name());
        }
    }

    // Each clock value of an owner went to exactly one sync, of one device.
    let log: Vec<(String, i64, String)> =
        diffs::table.select((diffs::owner, diffs::logical_clock, diffs::id)).load(&mut conn).expect("log");
    let mut syncs: BTreeMap<(String, i64), HashSet<String>> = BTreeMap::new();
    for (owner, clock, id) in &log {
        let device = id.rsplit_once('-').map_or(id.as_str(), |(device, _)| device).to_owned();
        syncs.entry((owner.clone(), *clock)).or_default().insert(device);
    }
    assert!(syncs.values().all(|devices| devices.len() == 1), "a clock value was shared by two syncs");
    let mut clocks: HashMap<String, Vec<i64>> = HashMap::new();
    for (owner, clock) in syncs.keys() {
        clocks.entry(owner.clone()).or_default().push(*clock);
    }
    for (owner, stamps) in clocks {
        assert_eq!(stamps, (0..stamps.len() as i64).collect::<Vec<_>>(), "{owner}: clock values skipped or reused");
    }

    // Every diff a device made was applied once or dropped by a merge.
    let dropped: Vec<String> = diffs_dropped::table.select(diffs_dropped::id).load(&mut conn).expect("dropped");
    let logged: HashSet<&str> = log.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(logged.len(), log.len(), "a diff was stored twice");
    assert!(dropped.iter().all(|id| !logged.contains(id.as_str())), "a diff both stored and dropped");
    let made: usize = devices.iter().map(|d| d.log().len()).sum();
    assert_eq!(log.len() + dropped.len(), made, "sent = applied + dropped");
    assert!(log.len() > made / 2, "most diffs should have been applied: {} of {made}", log.len());
}
