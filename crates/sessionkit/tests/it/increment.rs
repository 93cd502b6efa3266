//! Same-key updates that lose nothing: 40 requests incrementing one key of
//! one session at once keep all 40, and 40 requests adding to one list with
//! `Session::update` keep all 40 items, on every store.

use axum::routing::get;
use sessionkit::{MemoryStore, RedisStore, Session, SessionConfig, SessionLayer, SessionStore};
use testkit::client::Browser;

async fn app(store: impl SessionStore) -> Browser {
    app_with(store, SessionConfig::default()).await
}

async fn app_with(store: impl SessionStore, config: SessionConfig) -> Browser {
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
            "/add",
            get(
                |s: Session, q: axum::extract::Query<Vec<(String, String)>>| async move {
                    let item = q.0.first().map(|(_, v)| v.clone()).unwrap_or_default();
                    s.contains("cart").await?;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let cart = s
                        .update("cart", move |cart: Option<Vec<String>>| {
                            let mut cart = cart.unwrap_or_default();
                            cart.push(item.clone());
                            Some(cart)
                        })
                        .await?;
                    Ok::<_, sessionkit::Error>(cart.map_or(0, |c| c.len()).to_string())
                },
            ),
        )
        .route(
            "/cart",
            get(|s: Session| async move {
                let mut cart: Vec<String> = s.get("cart").await?.unwrap_or_default();
                cart.sort();
                Ok::<_, sessionkit::Error>(cart.join(","))
            }),
        )
        .route(
            "/empty-cart",
            get(|s: Session| async move {
                s.update("cart", |_: Option<Vec<String>>| None).await?;
                Ok::<_, sessionkit::Error>("ok")
            }),
        )
        .route(
            "/text",
            get(|s: Session| async move {
                s.insert("n", "not a number").await?;
                Ok::<_, sessionkit::Error>("ok")
            }),
        )
        .layer(SessionLayer::new(store, config));
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
    // Forty tabs adding to one cart at once.
    assert_eq!(b.get("/add?item=first").await.body, "1", "{name}");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let mut tab = b.fork();
            tokio::spawn(async move { tab.get(&format!("/add?item=i{i:02}")).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200, "{name}");
    }
    let mut want: Vec<String> = (0..40).map(|i| format!("i{i:02}")).collect();
    want.push("first".to_owned());
    want.sort();
    assert_eq!(
        b.get("/cart").await.body,
        want.join(","),
        "{name}: an item was lost"
    );
    assert_eq!(b.get("/empty-cart").await.status, 200);
    assert_eq!(b.get("/cart").await.body, "", "{name}");
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
    // MessagePack values are added to as such (the save script unpacks them).
    let msgpack = || {
        SessionConfig::builder()
            .with_codec(sessionkit::Codec::MessagePack)
            .build()
            .expect("config")
    };
    forty_at_once(
        "memory, msgpack",
        app_with(MemoryStore::new(), msgpack()).await,
    )
    .await;
    let uncached = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url())
        .await
        .expect("store");
    forty_at_once("redis, msgpack", app_with(uncached, msgpack()).await).await;
    let cluster = testkit::cluster::ClusterSetup::start();
    let on_cluster = RedisStore::builder()
        .cluster(cluster.urls())
        .await
        .expect("store");
    forty_at_once("cluster", app(on_cluster).await).await;
}
