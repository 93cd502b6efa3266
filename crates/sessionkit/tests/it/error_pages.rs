//! The application's page for the responses the middleware makes itself
//! (`with_error_page`): the store down (503), a session too large (413), a
//! handler's `sessionkit::Error` — on axum and actix-web; and a sign-out
//! while the store is down still signs this browser out.

use std::time::Duration;

use axum::routing::get;
use sessionkit::{ErrorKind, ErrorPage, RedisStore, Session, SessionConfig, SessionLayer};
use testkit::client::{Browser, Reply};

fn config() -> SessionConfig {
    SessionConfig::builder()
        .with_max_size(256)
        .with_error_page(|kind| match kind {
            ErrorKind::Unavailable => Some(ErrorPage::html("<h1>Back in a moment</h1>")),
            ErrorKind::TooLarge => Some(ErrorPage::text("That is too much.")),
            _ => None,
        })
        .build()
        .expect("config")
}

async fn store(redis: &testkit::RedisServer) -> RedisStore {
    RedisStore::builder()
        .without_client_cache()
        .with_response_timeout(Duration::from_millis(200))
        .with_connect_timeout(Duration::from_millis(200))
        .connect(redis.url())
        .await
        .expect("store")
}

async fn axum_app(redis: &testkit::RedisServer) -> String {
    let router = axum::Router::new()
        .route(
            "/in",
            get(|s: Session| async move {
                s.insert("user", "ann").await?;
                Ok::<_, sessionkit::Error>("in")
            }),
        )
        .route(
            "/read",
            get(|s: Session| async move {
                // The error is not returned: the middleware answers (Closed policy).
                let user = s.get::<String>("user").await.ok().flatten();
                user.unwrap_or_default()
            }),
        )
        .route(
            "/big",
            get(|s: Session| async move {
                s.insert("big", &"x".repeat(1000)).await?;
                Ok::<_, sessionkit::Error>("stored")
            }),
        )
        .route(
            "/logout",
            get(|s: Session| async move {
                s.flush().await;
                "out"
            }),
        )
        .layer(SessionLayer::new(store(redis).await, config()));
    testkit::serve_axum(router).await
}

async fn actix_app(redis: &testkit::RedisServer) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::web;
    fn routes(cfg: &mut web::ServiceConfig) {
        cfg.route(
            "/in",
            web::get().to(|s: Session| async move {
                s.insert("user", "ann").await?;
                Ok::<_, sessionkit::Error>("in")
            }),
        )
        .route(
            "/read",
            web::get().to(|s: Session| async move {
                let user = s.get::<String>("user").await.ok().flatten();
                user.unwrap_or_default()
            }),
        )
        .route(
            "/big",
            web::get().to(|s: Session| async move {
                s.insert("big", &"x".repeat(1000)).await?;
                Ok::<_, sessionkit::Error>("stored")
            }),
        )
        .route(
            "/logout",
            web::get().to(|s: Session| async move {
                s.flush().await;
                "out"
            }),
        );
    }
    let sessions = sessionkit::SessionMiddleware::new(store(redis).await, config());
    testkit::serve_actix(sessions, routes)
}

fn page(r: &Reply) -> (u16, String, String) {
    (
        r.status,
        r.header("content-type").unwrap_or_default(),
        r.body.clone(),
    )
}

async fn check(name: &str, base: String, redis: &mut testkit::RedisServer) {
    let mut b = Browser::new(base, sessionkit::DEFAULT_COOKIE_NAME);
    assert_eq!(b.get("/in").await.body, "in", "{name}");
    // Too large, from a handler's error.
    let r = b.get("/big").await;
    assert_eq!(
        page(&r),
        (
            413,
            "text/plain; charset=utf-8".into(),
            "That is too much.".into()
        ),
        "{name}"
    );
    redis.kill();
    // The store down: the middleware's own 503 (the handler hid the error).
    let r = b.get("/read").await;
    assert_eq!(
        page(&r),
        (
            503,
            "text/html; charset=utf-8".into(),
            "<h1>Back in a moment</h1>".into()
        ),
        "{name}"
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"), "{name}");
    // A handler's sessionkit::Error.
    let r = b.get("/in").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "<h1>Back in a moment</h1>"),
        "{name}"
    );
    assert!(b.cookie.is_some());
    // Sign-out while the store is down: 503, and this browser is signed out.
    let r = b.get("/logout").await;
    assert_eq!(r.status, 503, "{name}");
    assert!(r.ends_session, "{name}: the cookie expired anyway: {r:?}");
    assert!(b.cookie.is_none());
    redis.restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_shapes_the_middlewares_responses() {
    let mut redis = testkit::RedisServer::start();
    let base = axum_app(&redis).await;
    check("axum", base, &mut redis).await;
    let (base, handle) = actix_app(&redis).await;
    check("actix-web", base, &mut redis).await;
    handle.stop(false).await;
}
