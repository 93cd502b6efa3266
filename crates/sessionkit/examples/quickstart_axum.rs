//! sessionkit's quick start on axum: a visit counter, sign-in, sign-out
//! and "log out everywhere", on Redis.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p sessionkit --example quickstart_axum
//! curl -c jar -b jar http://127.0.0.1:3000/login?user=ann
//! ```
//!
//! (The cookie is `Secure`; browsers send it to http://localhost too, and
//! curl does when told to, as above.)

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use sessionkit::{RedisStore, Session, SessionConfig, SessionLayer};

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

async fn login(session: Session, Query(q): Query<Login>) -> Result<String, sessionkit::Error> {
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

/// The routes, with sessions in `store`.
pub(crate) fn app(store: RedisStore) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/logout-everywhere", get(logout_everywhere))
        .layer(SessionLayer::new(store, SessionConfig::default()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let store = RedisStore::connect(url.as_str()).await?;
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://127.0.0.1:{port}");
    axum::serve(listener, app(store)).await?;
    Ok(())
}
