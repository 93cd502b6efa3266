//! sessionkit's integration tests: one binary (link once), modules inside.
//!
//! `conformance` runs every behaviour in `testkit::conformance` against each
//! store through each framework; the other modules test one store or one
//! failure mode directly.

// A test panics to fail: `expect` is its assertion, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapters;
mod cache;
mod cluster;
mod codec;
mod conformance;
mod connections;
mod error_pages;
mod flash;
mod increment;
mod reliability;
mod security;
mod sentinel;
mod store;
#[cfg(all(feature = "testing", feature = "flask", feature = "cluster"))]
mod store_contract;
mod tls;
mod transport;
mod users;
