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
