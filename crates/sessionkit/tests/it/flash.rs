//! Flash messages: set on one request, shown once on the next that reads
//! them, typed with serde; through either store.

use axum::routing::get;
use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, RedisStore, Session, SessionConfig, SessionLayer, SessionStore};
use testkit::client::Browser;

#[derive(Serialize, Deserialize)]
struct Notice {
    level: String,
    text: String,
}

async fn app(store: impl SessionStore) -> Browser {
    let router = axum::Router::new()
        .route(
            "/signed-in",
            get(|s: Session| async move {
                s.insert("user", "ann").await?;
                s.flash(&Notice {
                    level: "info".into(),
                    text: "Welcome back".into(),
                })
                .await?;
                s.flash(&Notice {
                    level: "info".into(),
                    text: "2 new messages".into(),
                })
                .await?;
                Ok::<_, sessionkit::Error>("ok")
            }),
        )
        .route(
            "/page",
            get(|s: Session| async move {
                let shown: Vec<Notice> = s.take_flashes().await?;
                let texts: Vec<String> = shown
                    .into_iter()
                    .map(|n| format!("{}: {}", n.level, n.text))
                    .collect();
                Ok::<_, sessionkit::Error>(texts.join(" | "))
            }),
        )
        .layer(SessionLayer::new(store, SessionConfig::default()));
    Browser::new(
        testkit::serve_axum(router).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    )
}

async fn shown_once(mut b: Browser) {
    assert_eq!(b.get("/signed-in").await.status, 200);
    assert_eq!(
        b.get("/page").await.body,
        "info: Welcome back | info: 2 new messages"
    );
    assert_eq!(b.get("/page").await.body, "", "shown once");
    assert_eq!(b.get("/signed-in").await.status, 200);
    assert_eq!(
        b.get("/page").await.body,
        "info: Welcome back | info: 2 new messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_is_shown_once_on_the_next_page() {
    shown_once(app(MemoryStore::new()).await).await;
    let redis = testkit::RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    shown_once(app(store).await).await;
}
