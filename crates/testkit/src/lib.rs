//! Test harness for sessionkit (not published).
//!
//! - [`RedisServer`]: a private redis-server per test on a free loopback port.
//! - [`contract`]: the test-bed app of `shared/bench/CONTRACT.md`.
//! - [`client`]: a browser-like HTTP client that keeps one session cookie.
//! - [`conformance`]: session behaviour tests, written once, run against
//!   every store and framework.

pub mod client;
pub mod conformance;
pub mod contract;
mod server;

pub use server::{RedisServer, SERVER_BIN_ENV};
