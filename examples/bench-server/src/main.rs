//! sessionkit's test-bed server: `shared/bench/CONTRACT.md` on axum, with
//! the library's defaults. `PORT` (3000), `REDIS_URL`
//! (redis://127.0.0.1:6379/), `SESSION_PREFIX` (session:), `CLIENT_CACHE`
//! (`off` runs the store without its client cache, for comparison), the
//! contract's modes `SESSION_FORMAT=flask` and `SESSION_TRANSPORT=header`
//! (see `testkit::contract::ServerEnv`).

use std::process::ExitCode;

fn main() -> ExitCode {
    testkit::contract::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let testkit::contract::ServerEnv {
        port,
        store,
        config,
    } = testkit::contract::ServerEnv::from_env().await?;
    let app = testkit::contract::axum_router(store, config);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "bench-server listening");
    // `axum::serve`, as the peers' test-beds: no header-read timeout (the
    // demo has one), which would cost every request a timer and tilt a
    // benchmark of session libraries (docs/bench/2026-12-03-hardening.md).
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
