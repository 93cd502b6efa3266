//! The test-bed app of `shared/bench/CONTRACT.md` on axum: the routes the
//! benchmark and the conformance suite drive. One implementation, used by
//! `bench-server` and by the tests.

use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sessionkit::{Session, SessionConfig, SessionLayer, SessionStore};

/// The contract's router with `store` and `config`.
pub fn axum_router(store: impl SessionStore, config: SessionConfig) -> Router {
    Router::new()
        .route("/baseline", get(|| async { "ok" }))
        .route("/new", get(new))
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/set", get(set).post(set_body))
        .route("/get", get(get_key))
        .route("/remove", get(remove))
        .route("/clear", get(clear))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/whoami", get(whoami))
        .layer(SessionLayer::new(store, config))
}

type Result<T> = std::result::Result<T, sessionkit::Error>;

async fn new(session: Session) -> Result<&'static str> {
    session.insert("user", "bench").await?;
    Ok("ok")
}

async fn read(session: Session) -> Result<String> {
    let n: i64 = session.get("count").await?.unwrap_or(0);
    Ok(n.to_string())
}

async fn write(session: Session) -> Result<String> {
    let n: i64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", &n).await?;
    Ok(n.to_string())
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: Option<String>,
    delay_ms: Option<u64>,
}

async fn set(session: Session, Query(q): Query<SetQuery>) -> Result<Response> {
    // Load first, then wait: the contract's window for concurrent requests.
    session.contains(&q.key).await?;
    if let Some(ms) = q.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let Some(value) = q.value else {
        return Ok((StatusCode::BAD_REQUEST, "value missing").into_response());
    };
    session.insert(&q.key, &value).await?;
    Ok("ok".into_response())
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn set_body(session: Session, Query(q): Query<KeyQuery>, body: String) -> Result<&'static str> {
    session.insert(&q.key, &body).await?;
    Ok("ok")
}

async fn get_key(session: Session, Query(q): Query<KeyQuery>) -> Result<Response> {
    Ok(match session.get::<String>(&q.key).await? {
        Some(v) => v.into_response(),
        None => (StatusCode::NOT_FOUND, "").into_response(),
    })
}

async fn remove(session: Session, Query(q): Query<KeyQuery>) -> Result<&'static str> {
    session.remove(&q.key).await?;
    Ok("ok")
}

async fn clear(session: Session) -> Result<&'static str> {
    session.clear().await?;
    Ok("ok")
}

#[derive(Deserialize)]
struct UserQuery {
    user: String,
}

async fn login(session: Session, Query(q): Query<UserQuery>) -> Result<&'static str> {
    session.cycle_id().await?;
    session.insert("user", &q.user).await?;
    session.set_permanent(true).await?;
    Ok("ok")
}

async fn logout(session: Session) -> &'static str {
    session.flush().await;
    "ok"
}

async fn whoami(session: Session) -> Result<Response> {
    Ok(match session.get::<String>("user").await? {
        Some(u) => u.into_response(),
        None => (StatusCode::UNAUTHORIZED, "").into_response(),
    })
}
