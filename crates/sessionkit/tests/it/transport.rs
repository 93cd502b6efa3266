//! Header transports: the token a handler hands out in its body is the one
//! the middleware sends in `Session-Token` and the one that works.

use axum::routing::get;
use sessionkit::{MemoryStore, Session, SessionConfig, SessionLayer, Transport};
use testkit::client::Browser;

async fn app(transport: Transport) -> String {
    let config = SessionConfig::builder()
        .with_transport(transport)
        .build()
        .expect("config");
    let router = axum::Router::new()
        .route(
            "/start",
            get(|s: Session| async move {
                s.insert("n", &1).await?;
                s.token().await
            }),
        )
        .route(
            "/login",
            get(|s: Session| async move {
                s.cycle_id().await?;
                s.insert("user", "ann").await?;
                s.token().await
            }),
        )
        .route("/token", get(|s: Session| async move { s.token().await }))
        .route(
            "/whoami",
            get(|s: Session| async move {
                Ok::<_, sessionkit::Error>(s.get::<String>("user").await?.unwrap_or_default())
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), config));
    testkit::serve_axum(router).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_in_the_body_is_the_session() {
    let base = app(Transport::Bearer).await;
    let mut client = Browser::new(base.clone(), "unused").with_header_transport(
        "authorization",
        "session-token",
        true,
    );
    let r = client.get("/start").await;
    assert_eq!(
        r.ids,
        std::slice::from_ref(&r.body),
        "the body's token is the header's"
    );
    let r = client.get("/login").await;
    assert_eq!(
        r.ids,
        std::slice::from_ref(&r.body),
        "after cycle_id: the new one"
    );
    // A client that only reads bodies.
    let mut other = Browser::new(base, "unused")
        .with_header_transport("authorization", "session-token", true)
        .with_cookie(Some(&r.body));
    assert_eq!(other.get("/whoami").await.body, "ann");
    assert_eq!(other.get("/token").await.body, r.body);

    let named = app(Transport::Header("X-Session".to_owned())).await;
    let mut client =
        Browser::new(named, "unused").with_header_transport("x-session", "x-session", false);
    let r = client.get("/start").await;
    assert_eq!(r.ids, std::slice::from_ref(&r.body));
    assert_eq!(r.header("vary").as_deref(), Some("X-Session"));
    client.get("/login").await;
    assert_eq!(client.get("/whoami").await.body, "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cookies_the_token_is_the_cookie_value() {
    let mut b = Browser::new(
        app(Transport::Cookie).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    let r = b.get("/start").await;
    assert_eq!(b.cookie.as_deref(), Some(r.body.as_str()));
}

#[test]
fn a_cookie_header_cannot_carry_tokens() {
    for name in ["Cookie", "set-cookie", "bad header"] {
        let e = SessionConfig::builder()
            .with_transport(Transport::Header(name.to_owned()))
            .build()
            .expect_err(name);
        assert!(e.to_string().contains("cannot carry session ids"), "{e}");
    }
}
