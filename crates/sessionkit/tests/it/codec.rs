//! Codecs: a record names its codec, so a session written with one is read
//! with it by an app configured with another, never misread.

use axum::routing::get;
use sessionkit::{Codec, RedisStore, Session, SessionConfig, SessionLayer};
use testkit::client::Browser;

#[derive(serde::Serialize, serde::Deserialize)]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

async fn app(redis: &testkit::RedisServer, codec: Codec) -> String {
    let store = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url())
        .await
        .expect("store");
    let config = SessionConfig::builder()
        .with_codec(codec)
        .build()
        .expect("config");
    let router = axum::Router::new()
        .route(
            "/add",
            get(|s: Session| async move {
                let cart = s
                    .update("cart", |c: Option<Cart>| {
                        let mut c = c.unwrap_or(Cart {
                            items: Vec::new(),
                            total_cents: 0,
                        });
                        c.items.push(format!("item{}", c.items.len()));
                        c.total_cents += 250;
                        Some(c)
                    })
                    .await?;
                s.insert("user", "ann").await?;
                Ok::<_, sessionkit::Error>(cart.map_or(0, |c| c.items.len()).to_string())
            }),
        )
        .route(
            "/cart",
            get(|s: Session| async move {
                let cart: Option<Cart> = s.get("cart").await?;
                Ok::<_, sessionkit::Error>(cart.map_or_else(String::new, |c| {
                    format!("{} {}", c.items.join(","), c.total_cents)
                }))
            }),
        )
        .layer(SessionLayer::new(store, config));
    testkit::serve_axum(router).await
}

/// The one session key's fields: (codec field, the cart's bytes).
fn stored(redis: &testkit::RedisServer) -> (Option<String>, Vec<u8>) {
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let codec: Option<String> = redis.cmd(&["HGET", &keys[0], "m:codec"]);
    let cart: Vec<u8> = redis.cmd(&["HGET", &keys[0], "d:cart"]);
    (codec, cart)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_the_codec_it_was_created_with() {
    let redis = testkit::RedisServer::start();
    let json = app(&redis, Codec::Json).await;
    let msgpack = app(&redis, Codec::MessagePack).await;
    let name = sessionkit::DEFAULT_COOKIE_NAME;

    // Created by the JSON app, changed by the MessagePack one: stays JSON.
    let mut b = Browser::new(json.clone(), name);
    assert_eq!(b.get("/add").await.body, "1");
    let mut on_msgpack = Browser::new(msgpack.clone(), name).with_cookie(b.cookie.as_deref());
    assert_eq!(on_msgpack.get("/add").await.body, "2");
    let (codec, cart) = stored(&redis);
    assert_eq!(codec, None, "a JSON record names no codec");
    assert!(cart.starts_with(b"{\"items\""), "{cart:?}");
    assert_eq!(b.get("/cart").await.body, "item0,item1 500");
    redis.cmd::<()>(&["FLUSHALL"]);

    // Created by the MessagePack app: MessagePack, read by the JSON app too.
    let mut b = Browser::new(msgpack, name);
    assert_eq!(b.get("/add").await.body, "1");
    let (codec, cart) = stored(&redis);
    assert_eq!(codec.as_deref(), Some("msgpack"));
    assert_eq!(cart.first(), Some(&0x82), "a map of two fields: {cart:?}");
    let mut on_json = Browser::new(json, name).with_cookie(b.cookie.as_deref());
    assert_eq!(on_json.get("/add").await.body, "2");
    assert_eq!(on_json.get("/cart").await.body, "item0,item1 500");
    assert_eq!(stored(&redis).0.as_deref(), Some("msgpack"));
}
