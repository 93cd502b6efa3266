//! sessionkit's test-bed server: `shared/bench/CONTRACT.md` on actix-web
//! (2 workers sharing one store), with the library's defaults; environment as
//! in `testkit::contract::ServerEnv`. Stops on SIGTERM
//! or SIGINT (actix-web's own signal handling).

use std::process::ExitCode;

use actix_web::{App, HttpServer};
use sessionkit::SessionMiddleware;

fn main() -> ExitCode {
    testkit::contract::init_tracing();
    match actix_web::rt::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server-actix: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // One store for both workers: one connection and one client cache, so a
    // write on one worker is the next read on the other.
    let testkit::contract::ServerEnv {
        port,
        store,
        config,
    } = testkit::contract::ServerEnv::from_env().await?;
    let sessions = SessionMiddleware::new(store, config);
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
