//! Many processes: two todo servers sharing one database (PostgreSQL, then
//! MariaDB), 64 devices of 16 owners syncing through both at once, each
//! sync going to either process, some answers lost after the commit. Then:
//! everyone converges, each clock value of an owner went to one sync, and
//! every diff a device made is in the log exactly once or remembered as
//! dropped, under its own owner.

mod common;

use common::TodoServer;
use diesel::prelude::*;
use mobync::client::Device;
use mobync::db::schema::{diffs, diffs_dropped};
use mobync::testing;
use mobync_tests::dbs::{self, Backend};
use mobync_tests::http::{self, HttpServer};
use std::collections::{BTreeMap, HashMap, HashSet};

const OWNERS: usize = 16;
const DEVICES: usize = 64;
const ROUNDS: usize = 6;

fn unread_server(url: String) -> HttpServer<impl FnMut(&str) -> mobync::client::Rows, impl FnMut() -> String> {
    HttpServer { sync_url: url, rows: |_: &str| unreachable!(), state: || unreachable!() }
}

fn two_servers_one_database_sixty_four_devices(backend: Backend) {
    let Some(first) = TodoServer::start(backend, &[]) else { return };
    let second = first.another();
    let owners: Vec<(String, String)> =
        (0..OWNERS).map(|i| http::signup(&first.base, &format!("owner{i}"))).collect();
    let urls = [first.sync_url(), second.sync_url()];

    let threads: Vec<_> = (0..DEVICES)
        .map(|d| {
            let (token, _) = owners[d % OWNERS].clone();
            let urls = urls.clone();
            std::thread::spawn(move || {
                let mut device = Device::new(format!("dev{d}"));
                let mut rng = testing::Lcg(d as u64 + 1);
                let mut now = 1_000;
                let mut made = 0;
                let mut lost = 0;
                for _ in 0..ROUNDS {
                    for _ in 0..1 + rng.next(3) {
                        now += rng.next(3) as i64;
                        testing::random_edit(&mut device, &mut rng, d, now, &mut made);
                    }
                    // Either process, whichever this sync reaches.
                    let url = urls[rng.next(2)].clone();
                    if rng.next(8) == 0 {
                        let body = serde_json::to_vec(&device.request(&token)).expect("json");
                        lost += usize::from(http::lose_answer(&url, &body));
                    } else {
                        testing::sync(&mut unread_server(url), &token, &mut device);
                    }
                }
                (device, lost)
            })
        })
        .collect();
    let results: Vec<(Device, usize)> = threads.into_iter().map(|t| t.join().expect("a device thread")).collect();
    let lost: usize = results.iter().map(|(_, lost)| lost).sum();
    let mut devices: Vec<Device> = results.into_iter().map(|(device, _)| device).collect();
    assert!(lost > 0, "{backend:?}: no answer was lost");

    // Everyone syncs twice more with nothing new, through either process.
    for round in 0..2 {
        for (d, device) in devices.iter_mut().enumerate() {
            testing::sync(&mut unread_server(urls[(round + d / OWNERS) % 2].clone()), &owners[d % OWNERS].0, device);
        }
    }

    let mut conn = dbs::connect(&first.db);
    for (o, (_, owner)) in owners.iter().enumerate() {
        let rows = mobync_tests::models::rows(&mut conn, owner);
        for device in devices.iter().skip(o).step_by(OWNERS) {
            assert_eq!(device.rows(), &rows, "{backend:?}: {} differs from the server", device.name());
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
    assert!(syncs.values().all(|devices| devices.len() == 1), "{backend:?}: a clock value was shared by two syncs");
    let mut clocks: HashMap<String, Vec<i64>> = HashMap::new();
    for (owner, clock) in syncs.keys() {
        clocks.entry(owner.clone()).or_default().push(*clock);
    }
    for (owner, stamps) in clocks {
        assert_eq!(stamps, (0..stamps.len() as i64).collect::<Vec<_>>(), "{backend:?} {owner}: clock values skipped or reused");
    }

    // Per owner: the log holds exactly the diffs its devices sent that a
    // merge did not drop, each once; the dropped ones are remembered; no
    // diff is in both, none under another owner, none lost.
    let dropped: Vec<(String, String)> =
        diffs_dropped::table.select((diffs_dropped::owner, diffs_dropped::id)).load(&mut conn).expect("dropped");
    for (o, (_, owner)) in owners.iter().enumerate() {
        let sent: Vec<String> =
            devices.iter().skip(o).step_by(OWNERS).flat_map(|d| d.log().iter().map(|diff| diff.id.clone())).collect();
        let dropped: HashSet<&str> = dropped.iter().filter(|(who, _)| who == owner).map(|(_, id)| id.as_str()).collect();
        let mut logged: Vec<&str> = log.iter().filter(|(who, _, _)| who == owner).map(|(_, _, id)| id.as_str()).collect();
        logged.sort_unstable();
        let mut accepted: Vec<&str> = sent.iter().map(String::as_str).filter(|id| !dropped.contains(id)).collect();
        accepted.sort_unstable();
        assert_eq!(logged, accepted, "{backend:?} {owner}: the log is not exactly the diffs sent and not dropped");
        assert!(dropped.iter().all(|id| sent.iter().any(|s| s == id)), "{backend:?} {owner}: a dropped id nobody sent");
    }
    let made: usize = devices.iter().map(|d| d.log().len()).sum();
    assert!(log.len() > made / 2, "{backend:?}: most diffs should have been applied: {} of {made}", log.len());
}

#[test]
fn two_servers_on_one_postgresql_sixty_four_devices() {
    two_servers_one_database_sixty_four_devices(Backend::Postgres);
}

#[test]
fn two_servers_on_one_mariadb_sixty_four_devices() {
    two_servers_one_database_sixty_four_devices(Backend::Mysql);
}
