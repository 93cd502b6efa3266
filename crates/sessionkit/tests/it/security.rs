//! Signing-key rotation and per-session hard limits, across app instances
//! sharing one store.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use sessionkit::{MemoryStore, Session, SessionConfig, SessionLayer};
use testkit::client::Browser;

fn keys(keys: &[&[u8; 32]]) -> SessionConfig {
    SessionConfig::builder()
        .with_signing_keys(keys.iter().copied())
        .build()
        .expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_accepted_and_cookie_resigned() {
    let (old, new) = (
        b"old-key-old-key-old-key-old-key!",
        b"new-key-new-key-new-key-new-key!",
    );
    let store = MemoryStore::new();
    let before =
        testkit::serve_axum(testkit::contract::axum_router(store.clone(), keys(&[old]))).await;
    let rotating = testkit::serve_axum(testkit::contract::axum_router(
        store.clone(),
        keys(&[new, old]),
    ))
    .await;
    let after =
        testkit::serve_axum(testkit::contract::axum_router(store.clone(), keys(&[new]))).await;

    let mut b = Browser::new(before, sessionkit::DEFAULT_COOKIE_NAME);
    b.get("/set?key=who&value=ann").await;
    let old_cookie = b.cookie.clone().expect("cookie");

    // The rotating deployment accepts the old signature and re-signs on a plain read.
    let mut b =
        Browser::new(rotating, sessionkit::DEFAULT_COOKIE_NAME).with_cookie(Some(&old_cookie));
    let r = b.get("/get?key=who").await;
    assert_eq!(r.body, "ann");
    assert_eq!(r.set_cookies.len(), 1, "re-signed: {r:?}");
    let new_cookie = b.cookie.clone().expect("cookie");
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(
        new_cookie[..32],
        old_cookie[..32],
        "same session id, new signature"
    );
    let r = b.get("/get?key=who").await;
    assert!(
        r.set_cookies.is_empty(),
        "signed with the current key: nothing to do"
    );

    // Once the old key is retired, the re-signed cookie still works; the old one does not.
    let mut b =
        Browser::new(after.clone(), sessionkit::DEFAULT_COOKIE_NAME).with_cookie(Some(&new_cookie));
    assert_eq!(b.get("/get?key=who").await.body, "ann");
    let mut stale =
        Browser::new(after, sessionkit::DEFAULT_COOKIE_NAME).with_cookie(Some(&old_cookie));
    assert_eq!(stale.get("/get?key=who").await.status, 404);
}

async fn elevate(session: Session) -> Result<&'static str, sessionkit::Error> {
    session.insert("role", "admin").await?;
    session
        .set_absolute_lifetime(Some(Duration::from_millis(600)))
        .await?;
    Ok("ok")
}

async fn role(session: Session) -> Result<String, sessionkit::Error> {
    Ok(session.get::<String>("role").await?.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_absolute_lifetime_ends_an_active_session() {
    let app = Router::new()
        .route("/elevate", get(elevate))
        .route("/role", get(role))
        .layer(SessionLayer::new(
            MemoryStore::new(),
            SessionConfig::default(),
        ));
    let mut b = Browser::new(
        testkit::serve_axum(app).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    b.get("/elevate").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b.get("/role").await.body, "admin", "still inside the limit");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.get("/role").await.body, "", "past its own hard limit");
}
