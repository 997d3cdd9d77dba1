//! Shared pieces of mobync's benchmarks (see `BENCHMARKS.md` at the root of
//! the workspace): argument parsing, statistics, fresh databases, the todo
//! server as a child process, the HTTP calls of a device, and the workload a
//! device generates.
//!
//! The binaries:
//! - `load`: many devices syncing against any server with the todo
//!   example's `/signup` and `/sync` (ours or the Python baseline);
//! - `sync_cost`: one sync of N creates over HTTP versus a raw batch insert;
//! - `history`: sync latency with 1k to 1M diffs already in the owner's log;
//! - `profile`: where the time of one sync goes, in process;
//! - `table`: medians of `load --json` lines as a Markdown table.

pub mod args;
pub mod db;
pub mod net;
pub mod server;
pub mod stats;
pub mod workload;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A short tag unique to this process run, for names that must not collide
/// with an earlier run against the same database (row ids are unique across
/// owners in the todo example).
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}", (nanos as u64 ^ ((std::process::id() as u64) << 40)) & 0xff_ffff_ffff)
}

/// A small deterministic PRNG (xorshift64*): no dependency, same workload
/// for the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
