//! Redis Sentinel (feature `sentinel`): a primary with two replicas watched
//! by three sentinels, started by the test.

use std::time::{Duration, Instant};

use sessionkit::RedisStore;
use testkit::sentinel::{SentinelSetup, SERVICE};

/// A browser on the contract app over `store`, signed in as `ann` with
/// one write made.
async fn signed_in(store: RedisStore) -> testkit::client::Browser {
    let mut b = testkit::browse(store).await;
    assert_eq!(b.get("/login?user=ann").await.status, 200);
    assert_eq!(b.get("/write").await.body, "1");
    assert_eq!(b.get("/whoami").await.body, "ann");
    b
}

/// A store builder with the client cache on or off.
fn builder(cache: bool) -> sessionkit::RedisStoreBuilder {
    if cache {
        RedisStore::builder()
    } else {
        RedisStore::builder().without_client_cache()
    }
}

/// Sessions written before a failover (and replicated, `WAIT`) are there
/// after it; requests meanwhile answer 503 and the store finds the new
/// primary by itself, with the client cache on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_moves_the_store_to_the_new_primary() {
    for cache in [true, false] {
        let mut setup = SentinelSetup::start();
        let store = builder(cache)
            .sentinel(setup.sentinel_urls(), SERVICE)
            .await
            .expect("store");
        let mut b = signed_in(store).await;
        let keys: Vec<String> = setup.primary().cmd(&["KEYS", "session:1.*"]);
        assert_eq!(keys.len(), 1, "the session is on the primary: {keys:?}");
        setup.wait_for_replicas();
        let took = setup.fail_over();
        let started = Instant::now();
        let mut unavailable = 0;
        loop {
            let r = b.get("/whoami").await;
            match r.status {
                200 => {
                    assert_eq!(r.body, "ann", "cache {cache}");
                    break;
                }
                503 => unavailable += 1,
                other => panic!("cache {cache}: {other} during the failover: {r:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "cache {cache}: not back 10 s after the failover"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "cache {cache}: failover {took:?}, then back after {:?} ({unavailable} answers 503)",
            started.elapsed()
        );
        assert_eq!(
            b.get("/write").await.body,
            "2",
            "cache {cache}: writes go to the new primary"
        );
        let keys: Vec<String> = setup.primary().cmd(&["KEYS", "session:1.*"]);
        assert_eq!(keys.len(), 1, "{keys:?}");
    }
}

/// With replica acknowledgements (`with_replica_acks`), no write a response
/// confirmed is lost when the primary is killed right after it: three
/// failovers (a fresh setup each), each straight after a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_failovers() {
    for round in 1..=3 {
        let mut setup = SentinelSetup::start();
        let store = RedisStore::builder()
            // Bounds for a loaded machine: this test is about what is kept.
            .with_response_timeout(Duration::from_secs(3))
            .with_replica_acks(1, Duration::from_secs(2))
            .sentinel(setup.sentinel_urls(), SERVICE)
            .await
            .expect("store");
        let mut b = testkit::browse(store).await;
        assert_eq!(b.get("/login?user=ann").await.status, 200);
        for n in 1..=5 {
            assert_eq!(b.get("/write").await.body, n.to_string());
        }
        // Each save waited for its replica (the login's create and its
        // user's index entry, then five updates).
        let waits = setup.primary().command_counts().get("wait").copied();
        assert_eq!(waits, Some(7), "WAIT after every write");
        // No waiting for the replicas here: the acknowledgement did.
        let took = setup.fail_over();
        b.poll("/read", Duration::from_secs(10), |r| r.status == 200)
            .await;
        assert_eq!(
            b.get("/read").await.body,
            "5",
            "failover {round} ({took:?}) lost a write"
        );
        assert_eq!(b.get("/whoami").await.body, "ann");
    }
}

/// Servers that let only an ACL user at the sessions (`default`, which the
/// sentinels and replicas use, may touch no `session:` key): the store logs
/// in as that user with `with_sentinel_auth`, with the client cache on and
/// off; without the credentials every write is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_sentinel_names_get_the_acl_credentials() {
    let setup = SentinelSetup::start_with(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~harness:*",
        "&*",
        "+@all",
        "--user",
        "sessions",
        "on",
        ">s3cret-pass",
        "~*",
        "&*",
        "+@all",
    ]);
    for cache in [true, false] {
        let store = builder(cache)
            .with_sentinel_auth(Some("sessions"), "s3cret-pass")
            .sentinel(setup.sentinel_urls(), SERVICE)
            .await
            .expect("store");
        signed_in(store).await;
        let clients: String = setup.primary().cmd(&["CLIENT", "LIST"]);
        assert!(
            clients.lines().any(|l| l.contains(" user=sessions ")),
            "the store is logged in as `sessions`: {clients}"
        );
    }
    let anonymous = RedisStore::builder()
        .without_client_cache()
        .sentinel(setup.sentinel_urls(), SERVICE)
        .await
        .expect("store");
    let mut b = testkit::browse(anonymous).await;
    assert_eq!(
        b.get("/login?user=ann").await.status,
        503,
        "`default` may not write a session"
    );
    let debug = format!(
        "{:?}",
        RedisStore::builder().with_sentinel_auth(Some("sessions"), "s3cret-pass")
    );
    assert!(!debug.contains("s3cret-pass"), "{debug}");
}

/// Sentinels and servers over TLS (`rediss://` sentinel URLs with the
/// builder's CA): the store asks the sentinels over TLS and talks TLS to
/// the primary they name, with the client cache on and off, through a
/// failover; a CA that did not sign their certificates is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_servers_over_tls() {
    for cache in [true, false] {
        let mut setup = SentinelSetup::start_tls();
        let ca = setup.certs().expect("a TLS setup").ca.clone();
        let store = builder(cache)
            .with_tls_ca(ca)
            .sentinel(setup.tls_sentinel_urls(), SERVICE)
            .await
            .expect("store");
        let mut b = signed_in(store).await;
        let primary = setup.primary();
        let clients: String = primary.cmd(&["CLIENT", "LIST"]);
        let plain = format!("laddr=127.0.0.1:{} ", primary.port());
        assert!(
            clients.lines().any(|l| l.contains(" flags=N ")
                && !l.contains(&plain)
                && !l.contains("cmd=client")),
            "the store's connection is on the TLS port: {clients}"
        );
        setup.fail_over();
        b.poll("/whoami", Duration::from_secs(10), |r| r.status == 200)
            .await;
        assert_eq!(b.get("/whoami").await.body, "ann", "cache {cache}");
        assert_eq!(b.get("/write").await.body, "2", "cache {cache}");

        let stranger = RedisStore::builder()
            .with_tls_ca(testkit::tls::TestCerts::generate().ca)
            .sentinel(setup.tls_sentinel_urls(), SERVICE)
            .await
            .expect("store");
        assert!(stranger.check().await.is_err_and(|e| e.is_unavailable()));
    }
}
