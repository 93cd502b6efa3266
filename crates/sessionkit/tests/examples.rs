//! The README's quick start: the two example programs' own routes
//! (`examples/quickstart_*.rs`, compiled into this test), served against a
//! private redis-server and driven like a browser: counter, sign-in, a
//! second device, "log out everywhere", sign-out. (`cargo test` also
//! builds the programs themselves.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../examples/quickstart_axum.rs"]
mod quickstart_axum;

#[allow(dead_code)]
#[path = "../examples/quickstart_actix.rs"]
mod quickstart_actix;

use sessionkit::RedisStore;
use testkit::client::Browser;

async fn quick_start(name: &str, base: String) {
    let cookie = sessionkit::DEFAULT_COOKIE_NAME;
    let mut laptop = Browser::new(base.clone(), cookie);
    assert_eq!(
        laptop.get("/").await.body,
        "Hello stranger: visit 1",
        "{name}"
    );
    assert_eq!(laptop.get("/").await.body, "Hello stranger: visit 2");
    assert_eq!(laptop.get("/login?user=ann").await.body, "signed in as ann");
    assert_eq!(
        laptop.get("/").await.body,
        "Hello ann: visit 3",
        "the data moved along"
    );
    let mut phone = Browser::new(base, cookie);
    phone.get("/login?user=ann").await;
    assert_eq!(phone.get("/").await.body, "Hello ann: visit 1");
    assert_eq!(
        laptop.get("/logout-everywhere").await.body,
        "signed out here and on 1 other devices"
    );
    assert_eq!(
        phone.get("/").await.body,
        "Hello stranger: visit 1",
        "{name}"
    );
    assert!(
        laptop.get("/").await.body.starts_with("Hello stranger"),
        "signed out here too"
    );
    assert_eq!(phone.get("/logout").await.body, "signed out");
    assert!(phone.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_quick_start_runs() {
    let redis = testkit::RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    let base = testkit::serve_axum(quickstart_axum::app(store)).await;
    quick_start("axum", base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_quick_start_runs() {
    let redis = testkit::RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    let sessions = sessionkit::SessionMiddleware::new(store, sessionkit::SessionConfig::default());
    let (base, handle) = testkit::serve_actix(sessions, quickstart_actix::routes);
    quick_start("actix-web", base).await;
    handle.stop(false).await;
}
