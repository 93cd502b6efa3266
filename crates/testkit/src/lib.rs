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

/// Serves an axum app on a free loopback port in the background; returns
/// its base URL (`http://127.0.0.1:<port>`). The server lives as long as the
/// test's runtime.
///
/// # Panics
///
/// If no loopback port can be bound.
pub async fn serve_axum(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind a loopback port: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local address: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}
