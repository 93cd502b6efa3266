//! sessionkit's quick start on actix-web: a visit counter, sign-in,
//! sign-out and "log out everywhere", on Redis.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p sessionkit --features actix --example quickstart_actix
//! curl -c jar -b jar http://127.0.0.1:3000/login?user=ann
//! ```

use actix_web::{web, App, HttpServer};
use sessionkit::{RedisStore, Session, SessionConfig, SessionMiddleware};

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn home(session: Session) -> Result<String, sessionkit::Error> {
    let visits = session.increment("visits", 1).await?;
    let user: Option<String> = session.get("name").await?;
    Ok(match user {
        Some(user) => format!("Hello {user}: visit {visits}"),
        None => format!("Hello stranger: visit {visits}"),
    })
}

async fn login(session: Session, q: web::Query<Login>) -> Result<String, sessionkit::Error> {
    session.cycle_id().await?; // a new id on sign-in: no session fixation
    session.insert("name", &q.user).await?;
    session.set_user(&q.user).await?; // listed among the user's devices
    session.set_permanent(true).await?; // a persistent cookie
    Ok(format!("signed in as {}", q.user))
}

async fn logout(session: Session) -> &'static str {
    session.flush().await; // the record and the cookie go
    "signed out"
}

async fn logout_everywhere(session: Session) -> Result<String, sessionkit::Error> {
    // Every device of the user, this one included.
    let others = session.logout_everywhere().await?;
    Ok(format!("signed out here and on {others} other devices"))
}

/// The routes (the middleware wraps them).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login))
        .route("/logout", web::get().to(logout))
        .route("/logout-everywhere", web::get().to(logout_everywhere));
}

fn main() -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let port: u16 = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000);
        let store = RedisStore::connect(url.as_str())
            .await
            .map_err(std::io::Error::other)?;
        // One middleware (one store, one connection) for every worker.
        let sessions = SessionMiddleware::new(store, SessionConfig::default());
        println!("listening on http://127.0.0.1:{port}");
        HttpServer::new(move || App::new().wrap(sessions.clone()).configure(routes))
            .bind(("127.0.0.1", port))?
            .run()
            .await
    })
}
