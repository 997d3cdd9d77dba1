//! # mobync
//!
//! The server side of mobync, an offline-first, multi-device sync framework.
//! Apps keep their data in a local database, log every change as a *diff*,
//! and POST their pending diffs to `/sync`; the server authenticates the
//! owner, validates and merges the diffs with what the owner's other devices
//! sent, applies the result in one transaction and answers with the diffs the
//! device still has to apply. The wire protocol is the one of the Dart/Flutter
//! mobync client.
//!
//! The pieces:
//! - [`protocol`]: the wire types ([`Diff`], [`SyncRequest`], [`SyncResponse`]).
//! - [`merge`]: the pure, deterministic merge of PROTOCOL.md.
//! - [`Mobync`]: the engine, over a [`Store`] (diff log, clocks, transactions)
//!   and a [`Synchronizer`] (the app's rows and rules).
//! - [`memory`]: an in-memory store and synchronizer.
//! - [`client`]: a device as the Dart client keeps one, for tests and tools.

pub mod client;
pub mod db;
#[doc(hidden)]
#[path = "derive_support.rs"]
pub mod __private;
pub mod engine;
pub mod error;
#[cfg(feature = "rocket")]
pub mod fairing;
pub mod memory;
pub mod merge;
pub mod protocol;
pub mod syncable;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use engine::{KnownIds, Mobync, Store, Synchronizer, DEFAULT_MAX_DIFFS};
pub use error::{ErrorBody, ErrorKind, SyncError};
#[cfg(feature = "rocket")]
pub use fairing::{Authenticator, SyncFairing};
pub use mobync_derive::Syncable;
pub use syncable::{Models, Syncable};
pub use protocol::{Diff, JsonObject, OperationType, SyncRequest, SyncResponse};

/// The README's code, compiled as a doc test.
#[cfg(all(doctest, feature = "rocket", feature = "sqlite"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
