//! `testing::check_store`, the published store contract, on every store
//! here: memory, Redis with and without the client cache, Cluster, and
//! the Flask recipe's format (no index, no forwarding).

use sessionkit::testing::{check_store, StoreFeatures};
use sessionkit::{MemoryStore, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    check_store(&MemoryStore::new(), StoreFeatures::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_and_without_the_cache() {
    let redis = testkit::RedisServer::start();
    let plain = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url())
        .await
        .expect("store");
    check_store(&plain, StoreFeatures::default()).await;
    let cached = RedisStore::connect(redis.url()).await.expect("store");
    check_store(&cached, StoreFeatures::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster() {
    let cluster = testkit::cluster::ClusterSetup::start();
    let store = RedisStore::builder()
        .cluster(cluster.urls())
        .await
        .expect("store");
    check_store(&store, StoreFeatures::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_recipe_format() {
    let redis = testkit::RedisServer::start();
    let store = sessionkit::store::flask::FlaskStore::connect(redis.url())
        .await
        .expect("store");
    let mut features = StoreFeatures::default();
    features.user_index = false;
    features.forwarding = false;
    check_store(&store, features).await;
}

/// Each store refuses the other's ids, saying which store they need.
#[tokio::test]
async fn stores_refuse_ids_of_the_other_format() {
    use sessionkit::store::SessionStore;
    let redis = testkit::RedisServer::start();
    let flask_id = {
        let config = sessionkit::SessionConfig::builder()
            .with_id_format(sessionkit::IdFormat::Uuid4)
            .build()
            .expect("config");
        let client = sessionkit::testing::Client::with_config(config);
        let session = client.request();
        session.insert("k", "v").await.expect("insert");
        client.respond(&session).await.expect("respond");
        let cookie = client.cookie().expect("a cookie");
        assert_eq!(client.store().len(), 1);
        let sid = sessionkit::StorageId::parse(format!("f.{cookie}")).expect("a uuid4 cookie");
        assert_eq!(sid.flask_uuid(), Some(cookie.as_str()));
        sid
    };
    let plain = RedisStore::builder()
        .without_client_cache()
        .connect(redis.url())
        .await
        .expect("store");
    let e = plain.load(&flask_id).await.expect_err("a uuid id");
    assert!(
        e.chain().to_string().contains("need FlaskStore"),
        "{}",
        e.chain()
    );
    let flask = sessionkit::store::flask::FlaskStore::connect(redis.url())
        .await
        .expect("store");
    let hashed = sessionkit::SessionId::generate().storage_id();
    let e = flask.load(&hashed).await.expect_err("a hashed id");
    assert!(
        e.chain().to_string().contains("IdFormat::Uuid4"),
        "{}",
        e.chain()
    );
}
