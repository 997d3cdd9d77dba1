//! Memory before authentication: nothing inside a diff is decoded before
//! the token is accepted, so a large body costs memory in proportion to its
//! bytes, not to the number of JSON values in it. Eight concurrent 4.9 MiB
//! bodies of `"json_data": [0,0,0,…]` with a token nobody has raise the
//! server's peak resident memory by less than 8 × 3 × the body size (the
//! server decoding them into JSON values would take hundreds of MB).

mod common;

use common::{peak_rss, TodoServer};
use mobync_tests::dbs::Backend;
use mobync_tests::http;

#[test]
fn eight_large_unauthenticated_bodies_cost_memory_in_proportion_to_their_bytes() {
    let Some(mut server) = TodoServer::start(Backend::Sqlite, &[]) else { return };
    let pid = server.process().pid();
    let url = server.sync_url();
    // ~4.9 MiB: under the 5 MiB body limit, 2.5 million JSON numbers.
    let zeros = vec!["0"; 2_560_000].join(",");
    let body = format!(
        r#"{{"auth_token":"nobody","logical_clock":0,"diffs":[{{"id":"d1","owner":"","logical_clock":0,"utc_timestamp":1,"type":"create","model":"task","json_data":[{zeros}]}}]}}"#
    );
    let size = body.len() as u64;
    assert!(size < 5 * 1024 * 1024, "{size}");
    // Warm up: the worker threads and their buffers exist before measuring.
    assert_eq!(http::post(&url, "application/json", body.as_bytes()).status, 401);
    let before = peak_rss(pid);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || http::post(&url, "application/json", body.as_bytes()).status)
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("a client"), 401);
    }
    let rise = peak_rss(pid).saturating_sub(before);
    let budget = 8 * 3 * size;
    eprintln!("peak resident memory rose {} MiB for 8 × {:.1} MiB bodies (budget {} MiB)", rise >> 20, size as f64 / 1048576.0, budget >> 20);
    assert!(rise < budget, "the peak rose {rise} bytes, over 8 × 3 × {size}");
}
