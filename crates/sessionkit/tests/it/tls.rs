//! TLS to Redis (`rediss://`, feature `tls`), against a redis-server with
//! certificates made at test time. The whole conformance suite also runs
//! over TLS (`conformance::redis_tls_*`).

use sessionkit::store::SessionStore;
use sessionkit::{RedisStore, SessionId};
use testkit::tls::{TestCerts, TlsRedis};

/// One create and load through `store`: whether it worked.
async fn works(store: &RedisStore) -> Result<(), sessionkit::Error> {
    let id = SessionId::generate().storage_id();
    let mut record = sessionkit::store::Record::default();
    record.meta.expires_ms = 4_000_000_000_000;
    record.data.insert("a".to_owned(), b"1".to_vec());
    store.create(&id, &record).await?;
    let loaded = store.load(&id).await?;
    assert_eq!(loaded.map(|r| r.data), Some(record.data));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_speaks_tls_and_checks_the_server() {
    let redis = TlsRedis::start(false);
    let store = RedisStore::builder()
        .with_tls_ca(redis.certs.ca.clone())
        .connect(redis.url())
        .await
        .unwrap();
    works(&store).await.unwrap();
    store.check().await.unwrap();
    let tls_clients: String = redis.server.cmd(&["CLIENT", "LIST"]);
    assert!(
        tls_clients.lines().any(|l| l.contains(" resp=3")),
        "the cached store's RESP3 connection, over TLS: {tls_clients}"
    );
    // A CA that did not sign the server's certificate: refused.
    let stranger = RedisStore::builder()
        .with_tls_ca(TestCerts::generate().ca)
        .connect(redis.url())
        .await
        .unwrap();
    assert!(stranger.check().await.is_err_and(|e| e.is_unavailable()));
    assert!(works(&stranger).await.is_err_and(|e| e.is_unavailable()));
    // Plain RESP to the TLS port: no answer that counts.
    let plain = RedisStore::connect(format!("redis://127.0.0.1:{}/", redis.tls_port()))
        .await
        .unwrap();
    assert!(plain.check().await.is_err());
    // The system roots do not know the test CA either.
    let system = RedisStore::connect(redis.url()).await.unwrap();
    assert!(system.check().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_asks_for_a_client_certificate_gets_one() {
    let redis = TlsRedis::start(true);
    let without = RedisStore::builder()
        .with_tls_ca(redis.certs.ca.clone())
        .connect(redis.url())
        .await
        .unwrap();
    assert!(works(&without).await.is_err_and(|e| e.is_unavailable()));
    let with = RedisStore::builder()
        .with_tls_ca(redis.certs.ca.clone())
        .with_tls_client_cert(
            redis.certs.client_cert.clone(),
            redis.certs.client_key.clone(),
        )
        .connect(redis.url())
        .await
        .unwrap();
    works(&with).await.unwrap();
    // A client certificate from another CA: refused.
    let other = TestCerts::generate();
    let forged = RedisStore::builder()
        .with_tls_ca(redis.certs.ca.clone())
        .with_tls_client_cert(other.client_cert, other.client_key)
        .connect(redis.url())
        .await
        .unwrap();
    assert!(works(&forged).await.is_err_and(|e| e.is_unavailable()));
    // Nothing of the certificates in Debug.
    let debug = format!(
        "{:?}",
        RedisStore::builder().with_tls_client_cert(b"CERT".to_vec(), b"KEY".to_vec())
    );
    assert!(!debug.contains("CERT") && !debug.contains("KEY"), "{debug}");
}
