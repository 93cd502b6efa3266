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
pub mod log;
pub mod sentinel;
mod server;
pub mod tls;

pub use server::{RedisServer, SERVER_BIN_ENV};

use std::future::Future;
use std::time::Duration;

/// Serves the contract app on `store` with the default config (axum, in
/// the background) and returns a browser for it.
pub async fn browse(store: impl sessionkit::SessionStore) -> client::Browser {
    let app = contract::axum_router(store, sessionkit::SessionConfig::default());
    client::Browser::new(serve_axum(app).await, sessionkit::DEFAULT_COOKIE_NAME)
}

/// How long a client may take to send a request's headers before the
/// test-beds close its connection (actix-web's default, which they share).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` as `axum::serve` does, but with a bound on
/// reading each request's headers ([`HEADER_READ_TIMEOUT`]: `axum::serve`
/// has none, so slow clients could hold connections and their memory
/// forever), until `shutdown` resolves; connections in flight then get up
/// to 5 s to finish.
///
/// # Errors
///
/// Never today; the `Result` matches `axum::serve`'s.
pub async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait, as axum::serve does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
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
