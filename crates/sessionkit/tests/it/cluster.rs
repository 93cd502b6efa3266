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
        .filter(|n| !n.cmd::<Vec<String>>(&["KEYS", "session:1.*"]).is_empty())
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
    let keys = cluster.keys("session:1.*");
    assert_eq!(
        keys.len(),
        30 + 30,
        "30 sessions and 30 forwarding markers: {keys:?}"
    );
    assert_eq!(
        cluster.keys("session:user:*").len(),
        30,
        "30 users' indexes"
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
    let took = cluster.fail_over("session:1.*");
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
        .find(|n| !n.cmd::<Vec<String>>(&["KEYS", "session:1.*"]).is_empty())
        .expect("a primary holds the session");
    let index = cluster.node_for(&cluster.keys("session:user:*").concat());
    let waits = |n: &testkit::RedisServer| n.command_counts().get("wait").copied().unwrap_or(0);
    let on_index = if index.port() == holder.port() {
        0
    } else {
        waits(index)
    };
    assert_eq!(
        (waits(holder), on_index),
        if index.port() == holder.port() { (7, 0) } else { (6, 1) },
        "WAIT on each key's node after every write (the login's create, five updates; the user's index entry)"
    );
    cluster.fail_over("session:1.*");
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

/// How soon another instance must see a write (as on one server: a
/// correctness bound; on loopback an invalidation takes well under 1 ms).
const BOUND: Duration = Duration::from_millis(100);

/// One app instance with the client cache on the cluster at `urls`.
struct Cached {
    base: String,
    store: RedisStore,
}

impl Cached {
    async fn start(urls: Vec<String>) -> Self {
        let store = RedisStore::builder()
            .with_client_cache(sessionkit::store::redis::ClientCache::default())
            .cluster(urls)
            .await
            .expect("store");
        let app = testkit::contract::axum_router(store.clone(), SessionConfig::default());
        let base = testkit::serve_axum(app).await;
        Cached { base, store }
    }

    fn browser(&self, cookie: Option<&str>) -> Browser {
        Browser::new(self.base.clone(), sessionkit::DEFAULT_COOKIE_NAME).with_cookie(cookie)
    }

    fn hits(&self) -> u64 {
        self.store
            .client_cache_stats()
            .expect("a cached store")
            .hits
    }
}

/// `n` users who wrote once on `a`, each also browsing on `b` (loaded
/// there once, so cached).
async fn users_on_both(a: &Cached, b: &Cached, n: usize) -> Vec<(Browser, Browser)> {
    let mut users = Vec::new();
    for _ in 0..n {
        let mut on_a = a.browser(None);
        assert_eq!(on_a.get("/write").await.body, "1");
        let mut on_b = b.browser(on_a.cookie.as_deref());
        assert_eq!(on_b.get("/read").await.body, "1");
        users.push((on_a, on_b));
    }
    users
}

/// Once loaded, B's reads are served by its cache (no `HGETALL` reaches any
/// primary), and each of A's writes (`count` after it) reaches B within the
/// bound.
async fn coherent(
    cluster: &ClusterSetup,
    b: &Cached,
    users: &mut [(Browser, Browser)],
    count: u32,
) {
    for (_, on_b) in users.iter_mut() {
        assert_eq!(on_b.get("/read").await.body, (count - 1).to_string());
    }
    let hits = b.hits();
    for n in &cluster.primaries() {
        n.reset_stats();
    }
    for (_, on_b) in users.iter_mut() {
        assert_eq!(on_b.get("/read").await.body, (count - 1).to_string());
    }
    let loads: u64 = cluster
        .primaries()
        .iter()
        .map(|n| n.command_counts().get("hgetall").copied().unwrap_or(0))
        .sum();
    assert_eq!(loads, 0, "B's reads are answered by its cache");
    assert_eq!(b.hits(), hits + users.len() as u64);
    for (on_a, on_b) in users.iter_mut() {
        assert_eq!(on_a.get("/write").await.body, count.to_string());
        let took = on_b
            .poll("/read", BOUND, |r| r.body == count.to_string())
            .await;
        assert!(took < BOUND, "{took:?}");
    }
}

/// Two instances with the cache on `cluster`, and `n` users on both whose
/// sessions were written once on A and are coherent on B.
async fn two_instances(
    cluster: &ClusterSetup,
    n: usize,
) -> (Cached, Cached, Vec<(Browser, Browser)>) {
    let (a, b) = (
        Cached::start(cluster.urls()).await,
        Cached::start(cluster.urls()).await,
    );
    let mut users = users_on_both(&a, &b, n).await;
    coherent(cluster, &b, &mut users, 2).await;
    (a, b, users)
}

/// Waits (up to 5 s) until B serves `on_b` from its cache again: its
/// tracker has every primary tracked.
async fn caches_again(b: &Cached, on_b: &mut Browser) {
    let hits = b.hits();
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.hits() == hits {
        assert!(Instant::now() < deadline, "B does not cache again");
        assert_eq!(on_b.get("/read").await.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The client cache on Cluster: each instance tracks every primary, so a
/// write on one instance reaches the other's cache within the bound for
/// sessions on every primary; through a reshard (keys moving between
/// tracked primaries) and a failover (the cache stops serving when its
/// tracking connection to the killed primary drops, and serves again once
/// the promoted replica is tracked) it never serves a stale record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_stays_coherent_through_a_reshard_and_a_failover() {
    let mut cluster = ClusterSetup::start();
    let (_a, b, mut users) = two_instances(&cluster, 30).await;
    assert_eq!(primaries_with_sessions(&cluster), 3);

    let moved = cluster.reshard(0, 2000);
    eprintln!("resharded 2000 slots in {moved:?}");
    coherent(&cluster, &b, &mut users, 3).await;

    cluster.wait_for_replicas();
    let took = cluster.fail_over("session:1.*");
    // Every user is served again; a write on A is what B shows next.
    for (on_a, on_b) in &mut users {
        on_a.poll("/write", Duration::from_secs(15), |r| r.status == 200)
            .await;
        on_b.poll("/read", Duration::from_secs(15), |r| r.body == "4")
            .await;
    }
    eprintln!("failover in {took:?}");
    // B caches again once it tracks the promoted primary (its tracker
    // retries within a heartbeat).
    caches_again(&b, &mut users[0].1).await;
    coherent(&cluster, &b, &mut users, 5).await;
}

/// A tracking connection that is closed (here by `CLIENT KILL`) flushes the
/// cache: a write made while it was down is never hidden by the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_flushes_the_cache() {
    let cluster = ClusterSetup::start();
    let (_a, b, mut users) = two_instances(&cluster, 12).await;
    let flushes = b.store.client_cache_stats().expect("cached").flushes;
    for n in &cluster.primaries() {
        // Every RESP3 connection: both instances' tracking connections.
        let list: String = n.cmd(&["CLIENT", "LIST"]);
        for id in list
            .lines()
            .filter(|l| l.contains(" resp=3"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        {
            let _: i64 = n.cmd(&["CLIENT", "KILL", "ID", id]);
        }
    }
    for (on_a, on_b) in &mut users {
        assert_eq!(on_a.get("/write").await.body, "3");
        on_b.poll("/read", BOUND, |r| r.body == "3").await;
    }
    assert!(
        b.store.client_cache_stats().expect("cached").flushes > flushes,
        "the lost connections flushed B's cache"
    );
    caches_again(&b, &mut users[0].1).await;
    coherent(&cluster, &b, &mut users, 4).await;
}

/// How many clients with tracking on (`flags` with `t`) `node` has.
fn tracking_clients(node: &testkit::RedisServer) -> usize {
    let list: String = node.cmd(&["CLIENT", "LIST"]);
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("flags=")))
        .filter(|flags| flags.contains('t'))
        .count()
}

/// Waits (up to 5 s: a heartbeat and a retry) until every primary of the
/// moment is tracked by both instances, and no replica by either.
async fn tracked_as_primaries(cluster: &ClusterSetup) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tracked: Vec<(u16, bool, usize)> = cluster
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| {
                let primary = cluster.primaries().iter().any(|p| p.port() == n.port());
                (n.port(), primary, tracking_clients(n))
            })
            .collect();
        if tracked
            .iter()
            .all(|(_, primary, n)| *n == if *primary { 2 } else { 0 })
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not tracked as the primaries are (port, primary, tracking clients): {tracked:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A planned failover (`CLUSTER FAILOVER`: no connection drops, no call
/// fails, redis-rs just follows `MOVED`) changes the set of primaries: each
/// instance's heartbeat notices, flushes, and tracks the new primary, and
/// writes there reach the other instance within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_moves_tracking_to_the_new_primary() {
    let cluster = ClusterSetup::start();
    let (_a, b, mut users) = two_instances(&cluster, 12).await;
    tracked_as_primaries(&cluster).await;
    let flushes = b.store.client_cache_stats().expect("cached").flushes;
    let took = cluster.switch_over("session:1.*");
    eprintln!("planned failover in {took:?}");
    tracked_as_primaries(&cluster).await;
    assert!(
        b.store.client_cache_stats().expect("cached").flushes > flushes,
        "the change of primaries flushed B's cache"
    );
    caches_again(&b, &mut users[0].1).await;
    coherent(&cluster, &b, &mut users, 3).await;
}
