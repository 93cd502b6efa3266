//! Same-key updates that lose nothing: 40 requests incrementing one key of
//! one session at once keep all 40, on every store.

use axum::routing::get;
use sessionkit::{MemoryStore, RedisStore, Session, SessionConfig, SessionLayer, SessionStore};
use testkit::client::Browser;

async fn app(store: impl SessionStore) -> Browser {
    let router = axum::Router::new()
        .route(
            "/inc",
            get(|s: Session| async move {
                // Load first, then wait: every request overlaps the others.
                s.contains("n").await?;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok::<_, sessionkit::Error>(s.increment("n", 1).await?.to_string())
            }),
        )
        .route(
            "/n",
            get(|s: Session| async move {
                Ok::<_, sessionkit::Error>(s.get::<i64>("n").await?.unwrap_or(0).to_string())
            }),
        )
        .route(
            "/text",
            get(|s: Session| async move {
                s.insert("n", "not a number").await?;
                Ok::<_, sessionkit::Error>("ok")
            }),
        )
        .layer(SessionLayer::new(store, SessionConfig::default()));
    Browser::new(
        testkit::serve_axum(router).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    )
}

async fn forty_at_once(name: &str, mut b: Browser) {
    assert_eq!(b.get("/inc").await.body, "1", "{name}");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let mut tab = b.fork();
            tokio::spawn(async move { tab.get("/inc").await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200, "{name}");
    }
    assert_eq!(
        b.get("/n").await.body,
        "41",
        "{name}: an increment was lost"
    );
    // A value of another type starts over.
    assert_eq!(b.get("/text").await.status, 200);
    assert_eq!(b.get("/inc").await.body, "1", "{name}");
    assert_eq!(b.get("/n").await.body, "1", "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_parallel_increments_keep_all_forty() {
    forty_at_once("memory", app(MemoryStore::new()).await).await;
    let redis = testkit::RedisServer::start();
    let uncached = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url())
        .await
        .expect("store");
    forty_at_once("redis", app(uncached).await).await;
    let cached = RedisStore::connect(redis.url()).await.expect("store");
    forty_at_once("cached redis", app(cached).await).await;
    let cluster = testkit::cluster::ClusterSetup::start();
    let on_cluster = RedisStore::builder()
        .cluster(cluster.urls())
        .await
        .expect("store");
    forty_at_once("cluster", app(on_cluster).await).await;
}
