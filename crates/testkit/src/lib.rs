//! Test harness for sessionkit (not published).
//!
//! - [`RedisServer`]: a private redis-server per test on a free loopback port.
//! - [`contract`]: the test-bed app of `shared/bench/CONTRACT.md`.
//! - [`client`]: a browser-like HTTP client that keeps one session cookie.
//! - [`conformance`]: session behaviour tests, written once, run against
//!   every store and framework.
//! - [`log`]: an in-memory `tracing` writer.
//! - [`tls`]: a redis-server with TLS and certificates made at test time.
//! - [`sentinel`]: a primary, two replicas and three sentinels.
//! - [`cluster`]: a Redis Cluster of three primaries with a replica each.

pub mod client;
pub mod cluster;
pub mod conformance;
pub mod contract;
pub mod flask;
pub mod log;
pub mod sentinel;
mod server;
pub mod tls;
pub mod topology;

pub use server::{RedisServer, SERVER_BIN_ENV};

/// Serves the contract app on `store` with the default config (axum, in
/// the background) and returns a browser for it.
pub async fn browse(store: impl sessionkit::SessionStore) -> client::Browser {
    let app = contract::axum_router(store, sessionkit::SessionConfig::default());
    client::Browser::new(serve_axum(app).await, sessionkit::DEFAULT_COOKIE_NAME)
}

/// Serves `routes` behind `sessions` with actix-web (one worker, its own
/// thread and actix system) on a free loopback port: the base URL, and the
/// handle that stops it.
///
/// # Panics
///
/// If no loopback port can be bound.
pub fn serve_actix(
    sessions: sessionkit::SessionMiddleware,
    routes: fn(&mut actix_web::web::ServiceConfig),
) -> (String, actix_web::dev::ServerHandle) {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(sessions.clone())
            .configure(routes)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap_or_else(|e| panic!("listen: {e}"))
    .run();
    let handle = server.handle();
    std::thread::spawn(move || actix_web::rt::System::new().block_on(server));
    (format!("http://{addr}"), handle)
}

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
