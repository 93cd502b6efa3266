//! Redis Cluster (feature `cluster`): three primaries with a replica each,
//! started by the test.

use std::time::{Duration, Instant};

use sessionkit::{RedisStore, SessionConfig};
use testkit::client::Browser;
use testkit::cluster::ClusterSetup;

/// How many primaries hold a session key.
fn primaries_with_sessions(cluster: &ClusterSetup) -> usize {
    cluster
        .primaries()
        .iter()
        .filter(|n| !n.cmd::<Vec<String>>(&["KEYS", "session:*"]).is_empty())
        .count()
}

/// The contract app on a store `builder` makes for the cluster at `urls`
/// (checked to answer): its base URL.
async fn serve(builder: sessionkit::RedisStoreBuilder, urls: Vec<String>) -> String {
    let store = builder.cluster(urls).await.expect("store");
    store.check().await.expect("the cluster answers");
    let app = testkit::contract::axum_router(store, SessionConfig::default());
    testkit::serve_axum(app).await
}

/// Sessions spread over every primary work end to end — create, read,
/// write, login (a cycle: two keys in two slots, two single-slot steps),
/// logout — with no CROSSSLOT anywhere; a primary killed under way is
/// replaced by its replica and requests work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_live_on_every_primary_and_survive_a_failover() {
    let mut cluster = ClusterSetup::start();
    let base = serve(RedisStore::builder().without_client_cache(), cluster.urls()).await;
    let mut users = Vec::new();
    for i in 0..30 {
        let mut b = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        assert_eq!(b.get("/set?key=cart&value=apple").await.status, 200);
        assert_eq!(b.get(&format!("/login?user=u{i}")).await.status, 200);
        assert_eq!(b.get("/write").await.body, "1");
        assert_eq!(b.get("/get?key=cart").await.body, "apple");
        users.push(b);
    }
    let keys = cluster.keys("session:*");
    assert_eq!(
        keys.len(),
        30 + 30,
        "30 sessions and 30 forwarding markers: {keys:?}"
    );
    assert_eq!(
        primaries_with_sessions(&cluster),
        3,
        "sessions on every primary"
    );
    // Logout of half of them.
    for b in users.iter_mut().step_by(2) {
        b.get("/logout").await;
        assert_eq!(b.get("/whoami").await.status, 401);
    }
    // Let the replicas catch up, then kill a primary.
    cluster.wait_for_replicas();
    let took = cluster.fail_over("session:*");
    let started = Instant::now();
    let mut unavailable = 0;
    for (i, b) in users.iter_mut().enumerate().skip(1).step_by(2) {
        loop {
            let r = b.get("/whoami").await;
            if r.status == 200 {
                assert_eq!(r.body, format!("u{i}"));
                break;
            }
            assert_eq!(r.status, 503, "{r:?}");
            unavailable += 1;
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "not back after the failover"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(b.get("/write").await.body, "2");
    }
    eprintln!(
        "cluster failover {took:?}; every signed-in user back {:?} later ({unavailable} answers 503)",
        started.elapsed()
    );
}

/// With replica acknowledgements on Cluster, each write waits on the node
/// that holds its key (`WAIT` routed by the key's slot), and a write
/// confirmed just before its primary is killed is there after the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_primary_failover() {
    let mut cluster = ClusterSetup::start();
    let store = RedisStore::builder()
        // Bounds for a loaded machine: this test is about what is kept.
        .with_response_timeout(Duration::from_secs(3))
        .with_replica_acks(1, Duration::from_secs(2))
        .cluster(cluster.urls())
        .await
        .expect("store");
    let mut b = testkit::browse(store).await;
    assert_eq!(b.get("/login?user=ann").await.status, 200);
    for n in 1..=5 {
        assert_eq!(b.get("/write").await.body, n.to_string());
    }
    let holder = cluster
        .primaries()
        .into_iter()
        .find(|n| !n.cmd::<Vec<String>>(&["KEYS", "session:*"]).is_empty())
        .expect("a primary holds the session");
    assert_eq!(
        holder.command_counts().get("wait"),
        Some(&6),
        "WAIT on the key's node after every write"
    );
    cluster.fail_over("session:*");
    b.poll("/read", Duration::from_secs(15), |r| r.status == 200)
        .await;
    assert_eq!(b.get("/read").await.body, "5", "the failover lost a write");
    assert_eq!(b.get("/whoami").await.body, "ann");
}

/// A TLS cluster (`tls-cluster yes`): the store reaches every node over
/// TLS with the builder's CA, sessions spread over every primary; a CA
/// that did not sign the nodes' certificates is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_sessions_on_every_primary() {
    let cluster = ClusterSetup::start_tls();
    let ca = cluster.certs().expect("a TLS cluster").ca.clone();
    let base = serve(RedisStore::builder().with_tls_ca(ca), cluster.tls_urls()).await;
    for i in 0..20 {
        let mut b = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        assert_eq!(b.get(&format!("/login?user=u{i}")).await.status, 200);
        assert_eq!(b.get("/write").await.body, "1");
        assert_eq!(b.get("/whoami").await.body, format!("u{i}"));
    }
    assert_eq!(
        primaries_with_sessions(&cluster),
        3,
        "sessions on every primary"
    );
    let tls_clients: usize = cluster
        .primaries()
        .iter()
        .map(|n| {
            let list: String = n.cmd(&["CLIENT", "LIST"]);
            // The store's connections are ordinary clients (not a
            // replica's, `flags=S`) on the TLS port: their local address
            // (`laddr`) is not the plain port.
            let plain = format!("laddr=127.0.0.1:{} ", n.port());
            list.lines()
                .filter(|l| l.contains(" flags=N ") && !l.contains(&plain))
                .count()
        })
        .sum();
    assert!(tls_clients >= 3, "a TLS connection to every primary");

    let stranger = RedisStore::builder()
        .with_tls_ca(testkit::tls::TestCerts::generate().ca)
        .cluster(cluster.tls_urls())
        .await
        .expect("store");
    assert!(stranger.check().await.is_err_and(|e| e.is_unavailable()));
}
