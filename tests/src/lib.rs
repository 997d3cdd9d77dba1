//! Helpers of the workspace-level tests: fresh databases on each backend
//! ([`dbs`]), synced models to test with ([`models`]) and a device that
//! syncs over real HTTP ([`http`]).

pub mod cluster;
pub mod dbs;
pub mod http;
pub mod models;
pub mod spawn;
