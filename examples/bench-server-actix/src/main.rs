//! sessionkit's test-bed server: `shared/bench/CONTRACT.md` on actix-web
//! (2 workers sharing one store), with the library's defaults. `PORT` (3000), `REDIS_URL`
//! (redis://127.0.0.1:6379/), `SESSION_PREFIX` (session:). Stops on SIGTERM
//! or SIGINT (actix-web's own signal handling).

use std::process::ExitCode;

use actix_web::{App, HttpServer};
use sessionkit::{RedisStore, SessionConfig, SessionMiddleware};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match actix_web::rt::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server-actix: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let mut store = RedisStore::builder();
    if let Ok(prefix) = std::env::var("SESSION_PREFIX") {
        store = store.with_prefix(prefix);
    }
    // One store for both workers: one connection and one client cache, so a
    // write on one worker is the next read on the other.
    let store = store.connect(url.as_str()).await?;
    let sessions = SessionMiddleware::new(store, SessionConfig::default());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .configure(testkit::contract::actix_routes)
    })
    .workers(2)
    .shutdown_timeout(5)
    .bind(("127.0.0.1", port))?
    .run();
    tracing::info!(port, "bench-server-actix listening");
    server.await?;
    Ok(())
}
