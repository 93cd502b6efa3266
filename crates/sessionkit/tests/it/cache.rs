//! The Redis store's client cache, against a real redis-server: coherence
//! between app instances (each its own `RedisStore`, as two processes would
//! have), flushing on connection loss and restart, the round-trip savings,
//! and the memory and age bounds.
//!
//! The coherence bound asserted below (100 ms from a write's response to
//! the other instance seeing it) is a correctness bound, not a performance
//! target: on loopback the invalidation arrives in well under a millisecond.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionkit::store::redis::ClientCache;
use sessionkit::{RedisStore, SessionConfig};
use testkit::client::Browser;
use testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How soon another instance must see a write.
const BOUND: Duration = Duration::from_millis(100);

/// One app instance: the contract app on its own `RedisStore`.
struct Instance {
    base: String,
    store: RedisStore,
}

impl Instance {
    async fn start(url: &str, cache: Option<ClientCache>) -> Self {
        Self::start_with(url, cache, Duration::from_millis(500)).await
    }

    async fn start_with(url: &str, cache: Option<ClientCache>, timeout: Duration) -> Self {
        let builder = RedisStore::builder().with_response_timeout(timeout);
        let builder = match cache {
            Some(c) => builder.with_client_cache(c),
            None => builder.without_client_cache(),
        };
        let store = builder.connect(url).await.expect("connect");
        let app = testkit::contract::axum_router(store.clone(), SessionConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Instance { base, store }
    }

    fn browser(&self, cookie: Option<&str>) -> Browser {
        Browser::new(self.base.clone(), sessionkit::DEFAULT_COOKIE_NAME).with_cookie(cookie)
    }

    fn stats(&self) -> sessionkit::store::redis::CacheStats {
        self.store.client_cache_stats().expect("a cached store")
    }
}

async fn cached(redis: &RedisServer) -> Instance {
    Instance::start(&redis.url(), Some(ClientCache::default())).await
}

fn only_key(redis: &RedisServer) -> String {
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_on_one_instance_is_seen_by_the_other_within_the_bound() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    assert_eq!(on_a.get("/write").await.body, "1");
    let mut on_b = b.browser(on_a.cookie.as_deref());
    assert_eq!(on_b.get("/read").await.body, "1");
    redis.reset_stats();
    assert_eq!(on_b.get("/read").await.body, "1");
    assert_eq!(
        redis.total_commands(),
        0,
        "B's second read is served from its cache"
    );
    for n in 2..=5 {
        assert_eq!(on_a.get("/write").await.body, n.to_string());
        let took = on_b.poll("/read", BOUND, |r| r.body == n.to_string()).await;
        assert!(took < BOUND, "{took:?}");
    }
    assert!(b.stats().invalidations >= 4, "{:?}", b.stats());
    // And back: B writes (one round trip: it holds the session), A sees it.
    redis.reset_stats();
    assert_eq!(on_b.get("/write").await.body, "6");
    on_a.poll("/read", BOUND, |r| r.body == "6").await;
}

/// RESP3 connections Redis has open (the instances' store connections;
/// the test's own are RESP2).
fn resp3_clients(redis: &RedisServer) -> usize {
    let list: String = redis.cmd(&["CLIENT", "LIST"]);
    list.lines().filter(|l| l.contains(" resp=3")).count()
}

/// Many sessions, each coherent between two instances; an instance hears
/// each of its own writes once too (Redis's NOLOOP does not cover the save
/// script), and each opens one connection, as a request first needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_stays_coherent_between_two_instances() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    assert_eq!(resp3_clients(&redis), 0, "no connection before a request");
    let mut on_a = Vec::new();
    for _ in 0..48 {
        let mut user = a.browser(None);
        assert_eq!(user.get("/write").await.body, "1");
        on_a.push(user);
    }
    let mut on_b: Vec<Browser> = on_a
        .iter()
        .map(|u| b.browser(u.cookie.as_deref()))
        .collect();
    for user in &mut on_b {
        assert_eq!(user.get("/read").await.body, "1");
    }
    assert_eq!(resp3_clients(&redis), 2, "one connection per instance");
    redis.reset_stats();
    for user in &mut on_b {
        assert_eq!(user.get("/read").await.body, "1");
    }
    assert_eq!(redis.total_commands(), 0, "B serves all 48 from its cache");
    for (a_user, b_user) in on_a.iter_mut().zip(&mut on_b) {
        assert_eq!(a_user.get("/write").await.body, "2");
        b_user.poll("/read", BOUND, |r| r.body == "2").await;
    }
    assert!(b.stats().invalidations >= 48, "{:?}", b.stats());
    // B's own writes are reported back to B, once each.
    let heard = b.stats().invalidations;
    for user in &mut on_b {
        assert_eq!(user.get("/write").await.body, "3");
    }
    for user in &mut on_b {
        assert_eq!(user.get("/read").await.body, "3");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.stats().invalidations, heard + 48, "{:?}", b.stats());
    for user in &mut on_a {
        user.poll("/read", BOUND, |r| r.body == "3").await;
    }
}

/// A connection opens when a session first needs it: Redis down at that
/// moment is a clean 503, and the next request after Redis is back opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_cannot_open_yet_fails_cleanly_then_opens() {
    let mut redis = RedisServer::start();
    let a = cached(&redis).await;
    redis.kill();
    let mut user = a.browser(None);
    let started = Instant::now();
    assert_eq!(user.get("/write").await.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    redis.restart();
    user.poll("/write", Duration::from_secs(2), |r| r.status == 200)
        .await;
    assert_eq!(user.get("/read").await.body, "1");
    assert_eq!(user.get("/write").await.body, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncached_instance_invalidates_a_cached_one() {
    let redis = RedisServer::start();
    let a = Instance::start(&redis.url(), None).await;
    let b = cached(&redis).await;
    let mut on_a = a.browser(None);
    on_a.get("/write").await;
    let mut on_b = b.browser(on_a.cookie.as_deref());
    assert_eq!(on_b.get("/read").await.body, "1");
    assert_eq!(on_a.get("/write").await.body, "2");
    on_b.poll("/read", BOUND, |r| r.body == "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_rejected_by_the_other() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    on_a.get("/login?user=alice").await;
    let mut on_b = b.browser(on_a.cookie.as_deref());
    assert_eq!(on_b.get("/whoami").await.body, "alice");
    assert_eq!(on_b.get("/whoami").await.body, "alice");
    assert!(b.stats().hits >= 1, "{:?}", b.stats());
    let r = on_a.get("/logout").await;
    assert!(
        r.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
        "{r:?}"
    );
    on_b.poll("/whoami", BOUND, |r| r.status == 401).await;
    // And it stays rejected.
    assert_eq!(on_b.get("/whoami").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_leaves_no_stale_reads() {
    let mut redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    for _ in 0..3 {
        on_a.get("/write").await;
    }
    let mut on_b = b.browser(on_a.cookie.as_deref());
    assert_eq!(on_b.get("/read").await.body, "3");
    assert_eq!(on_b.get("/read").await.body, "3");
    let flushes = b.stats().flushes;
    // No persistence: the session is gone with the restart.
    redis.restart();
    let back = Instant::now();
    loop {
        let r = on_b.get("/read").await;
        assert!(
            !(r.status == 200 && r.body == "3"),
            "stale read {:?} after the restart",
            back.elapsed()
        );
        if r.status == 200 {
            assert_eq!(r.body, "0", "a fresh session");
            break;
        }
        assert_eq!(r.status, 503, "{r:?}");
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "not recovered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.stats().flushes > flushes, "{:?}", b.stats());
    // Both instances work normally again (A reconnects on its first
    // request, which may still fail), and stay coherent.
    let mut fresh = a.browser(None);
    fresh
        .poll("/write", Duration::from_secs(2), |r| r.status == 200)
        .await;
    assert!(fresh.cookie.is_some());
    let mut other = b.browser(fresh.cookie.as_deref());
    assert_eq!(other.get("/read").await.body, "1");
    assert_eq!(fresh.get("/write").await.body, "2");
    other.poll("/read", BOUND, |r| r.body == "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_flushes_the_cache() {
    let redis = RedisServer::start();
    let b = cached(&redis).await;
    let mut on_b = b.browser(None);
    on_b.get("/write").await;
    assert_eq!(on_b.get("/read").await.body, "1");
    let key = only_key(&redis);
    // Drop the store's connection, then change the session while it is
    // down: no invalidation can reach the store for that change.
    let _: i64 = redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    let _: i64 = redis.cmd(&["HSET", &key, "d:count", "41"]);
    on_b.poll("/read", BOUND, |r| r.body == "41").await;
    assert_eq!(on_b.get("/write").await.body, "42");
    assert!(b.stats().flushes >= 1, "{:?}", b.stats());
}

/// A TCP relay that can go silent: it keeps both sockets open but stops
/// passing bytes, like a network partition with no reset.
struct Relay {
    port: u16,
    silent: Arc<AtomicBool>,
}

impl Relay {
    async fn start(to: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&silent);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, Arc::clone(&flag)));
                tokio::spawn(pipe(sr, cw, Arc::clone(&flag)));
            }
        });
        Relay { port, silent }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            // Swallow everything from now on, holding both sockets open.
            while from.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_connection_stops_serving_the_cache() {
    let redis = RedisServer::start();
    let relay = Relay::start(redis.port()).await;
    let heartbeat = Duration::from_millis(100);
    let timeout = Duration::from_millis(200);
    let b = Instance::start_with(
        &format!("redis://127.0.0.1:{}/", relay.port),
        Some(ClientCache::default().with_heartbeat(heartbeat)),
        timeout,
    )
    .await;
    let mut on_b = b.browser(None);
    on_b.get("/write").await;
    assert_eq!(on_b.get("/read").await.body, "1");
    // The network goes silent; meanwhile the session changes in Redis, and
    // its invalidation never arrives.
    relay.silent.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let _: i64 = redis.cmd(&["HSET", &only_key(&redis), "d:count", "7"]);
    // The cache may serve for at most 2 × heartbeat + timeout after the last
    // answer; after that, every read goes to Redis (and fails: 503).
    let bound = heartbeat * 2 + timeout + Duration::from_millis(300);
    loop {
        let r = on_b.get("/read").await;
        if r.status == 503 {
            break;
        }
        assert_eq!(r.body, "1");
        assert!(
            cut.elapsed() < bound,
            "stale reads {:?} after the cut",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(heartbeat * 2).await;
    for _ in 0..3 {
        let r = on_b.get("/read").await;
        assert_eq!(r.status, 503, "no stale read once the cache knows: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_flushes_the_cache() {
    let redis = RedisServer::start();
    let b = cached(&redis).await;
    let mut on_b = b.browser(None);
    on_b.get("/write").await;
    assert_eq!(on_b.get("/read").await.body, "1");
    let _: String = redis.cmd(&["FLUSHALL"]);
    on_b.poll("/read", BOUND, |r| r.body == "0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_in_redis_reaches_the_cache() {
    let redis = RedisServer::start();
    let b = cached(&redis).await;
    let mut on_b = b.browser(None);
    on_b.get("/write").await;
    let key = only_key(&redis);
    // Shorten the TTL by hand (the record's own m:expires still says a day),
    // and read it again so that the cache holds it with the long deadline.
    let _: i64 = redis.cmd(&["PEXPIRE", &key, "300"]);
    assert_eq!(on_b.get("/read").await.body, "1");
    assert_eq!(on_b.get("/read").await.body, "1");
    // Redis expires the key (its active expiry samples keys ten times a
    // second) and tells the tracking client.
    on_b.poll("/read", Duration::from_secs(2), |r| r.body == "0")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_read_costs_no_redis_command_and_a_write_one_script_call() {
    let redis = RedisServer::start();
    let a = cached(&redis).await;
    let mut on_a = a.browser(None);
    assert_eq!(on_a.get("/new").await.body, "ok");
    // A new session is not cached as created: its first read loads it.
    assert_eq!(on_a.get("/read").await.body, "0");
    redis.reset_stats();
    for _ in 0..5 {
        assert_eq!(on_a.get("/read").await.body, "0");
    }
    assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
    for n in 1..=5 {
        assert_eq!(on_a.get("/write").await.body, n.to_string());
    }
    let c = redis.command_counts();
    let script = c.get("evalsha").copied().unwrap_or(0);
    assert_eq!(script, 5, "one script call per write: {c:?}");
    // A write drops the entry: each write after the first loads again.
    assert_eq!(c.get("hgetall"), Some(&4), "{c:?}");
    redis.reset_stats();
    for _ in 0..5 {
        assert_eq!(on_a.get("/read").await.body, "5");
    }
    assert_eq!(
        redis.command_counts(),
        std::collections::HashMap::from([("hgetall".to_owned(), 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_writes_of_one_user_lose_nothing() {
    // Tabs of one browser writing different keys at once.
    const TABS: usize = 4;
    const WRITES: usize = 25;
    let redis = RedisServer::start();
    let a = cached(&redis).await;
    let mut on_a = a.browser(None);
    on_a.get("/new").await;
    assert_eq!(on_a.get("/read").await.body, "0");
    let mut tasks = Vec::new();
    for t in 0..TABS {
        let mut tab = on_a.fork();
        tasks.push(tokio::spawn(async move {
            for i in 0..WRITES {
                let r = tab.get(&format!("/set?key=t{t}&value={i}")).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
            }
        }));
    }
    for t in tasks {
        t.await.expect("tab");
    }
    for t in 0..TABS {
        let last = (WRITES - 1).to_string();
        assert_eq!(on_a.get(&format!("/get?key=t{t}")).await.body, last);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_after_a_foreign_change_loads_again() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    on_a.get("/write").await;
    let mut on_b = b.browser(on_a.cookie.as_deref());
    assert_eq!(on_b.get("/write").await.body, "2");
    on_a.poll("/read", BOUND, |r| r.body == "2").await;
    // A's entry was refilled by that read; B's is invalidated by A's write.
    assert_eq!(on_a.get("/write").await.body, "3");
    on_b.poll("/read", BOUND, |r| r.body == "3").await;
    redis.reset_stats();
    assert_eq!(on_b.get("/write").await.body, "4");
    let c = redis.command_counts();
    assert_eq!(
        (c.get("hgetall"), c.get("evalsha")),
        (None, Some(&1)),
        "{c:?}"
    );
    on_a.poll("/read", BOUND, |r| r.body == "4").await;
    redis.reset_stats();
    let _: i64 = redis.cmd(&["HSET", &only_key(&redis), "d:count", "10"]);
    redis.reset_stats();
    on_a.poll("/read", BOUND, |r| r.body == "10").await;
    assert_eq!(on_a.get("/write").await.body, "11");
    let c = redis.command_counts();
    assert_eq!(
        (c.get("hgetall"), c.get("evalsha")),
        (Some(&1), Some(&1)),
        "{c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_two_instances_lose_nothing_and_converge() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    on_a.get("/new").await;
    let mut on_b = b.browser(on_a.cookie.as_deref());
    let mut tasks = Vec::new();
    for i in 0..20 {
        for (side, tab) in [("a", on_a.fork()), ("b", on_b.fork())] {
            let mut tab = tab;
            tasks.push(tokio::spawn(async move {
                tab.get(&format!("/set?key={side}{i}&value=v{i}&delay_ms={}", i % 5))
                    .await
                    .status
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    for tab in [&mut on_a, &mut on_b] {
        for side in ["a", "b"] {
            for i in 0..20 {
                let want = format!("v{i}");
                tab.poll(&format!("/get?key={side}{i}"), BOUND, |r| r.body == want)
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_a_bounded_lru() {
    let redis = RedisServer::start();
    let a = Instance::start(
        &redis.url(),
        Some(ClientCache::default().with_max_entries(4)),
    )
    .await;
    let mut browsers = Vec::new();
    for _ in 0..10 {
        let mut b = a.browser(None);
        b.get("/new").await;
        b.get("/read").await; // a new session is cached once read
        browsers.push(b);
    }
    assert!(a.stats().entries <= 4, "{:?}", a.stats());
    // The four most recently read are cached; the others load.
    redis.reset_stats();
    for b in &mut browsers[6..] {
        assert_eq!(b.get("/read").await.body, "0");
    }
    assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
    // Touch one (most recent now), then load two old ones: the two least
    // recently used of the cached four make room; the touched one stays.
    browsers[6].get("/read").await;
    browsers[0].get("/read").await;
    browsers[1].get("/read").await;
    assert_eq!(redis.command_counts().get("hgetall"), Some(&2));
    redis.reset_stats();
    browsers[6].get("/read").await;
    assert_eq!(redis.total_commands(), 0, "the recently used one stayed");
    browsers[7].get("/read").await;
    assert_eq!(
        redis.command_counts().get("hgetall"),
        Some(&1),
        "the least recently used went"
    );
    assert!(a.stats().entries <= 4, "{:?}", a.stats());
}

/// Many large sessions read through one instance (what anyone can make
/// without signing in: `/new`, a large `POST /set`, a read) keep the cache
/// within its byte budget, and a session above the per-entry ceiling is not
/// cached at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_in_bytes() {
    let redis = RedisServer::start();
    let budget = 1 << 20;
    let a = Instance::start(
        &redis.url(),
        Some(ClientCache::default().with_max_bytes(budget)),
    )
    .await;
    let value = "x".repeat(50_000);
    let mut browsers = Vec::new();
    for _ in 0..100 {
        let mut b = a.browser(None);
        assert_eq!(b.post("/set?key=big", value.clone()).await.status, 200);
        assert_eq!(b.get("/get?key=big").await.body.len(), value.len());
        assert!(a.stats().bytes <= budget as u64, "{:?}", a.stats());
        browsers.push(b);
    }
    let stats = a.stats();
    assert!(stats.entries > 0 && stats.entries < 20, "{stats:?}");
    // The most recently read are still served from the cache.
    redis.reset_stats();
    let last = browsers.last_mut().expect("a browser");
    assert_eq!(last.get("/get?key=big").await.body.len(), value.len());
    assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
    // Above the per-entry ceiling: read from Redis every time.
    let huge = "x".repeat(sessionkit::store::redis::DEFAULT_CACHE_ENTRY_BYTES);
    let mut b = a.browser(None);
    assert_eq!(b.post("/set?key=big", huge).await.status, 200);
    b.get("/get?key=big").await;
    redis.reset_stats();
    b.get("/get?key=big").await;
    assert_eq!(redis.command_counts().get("hgetall"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_live_at_most_the_ttl() {
    let redis = RedisServer::start();
    let ttl = Duration::from_millis(150);
    let a = Instance::start(&redis.url(), Some(ClientCache::default().with_ttl(ttl))).await;
    let mut b = a.browser(None);
    b.get("/write").await;
    b.get("/read").await; // a new session is cached once read
    redis.reset_stats();
    b.get("/read").await;
    assert_eq!(redis.total_commands(), 0);
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    b.get("/read").await;
    assert_eq!(
        redis.command_counts().get("hgetall"),
        Some(&1),
        "re-read after the ttl"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_after_reconnect_is_replaced() {
    // The first load after a flush re-enables tracking in the same pipeline;
    // a corrupt record there is handled like any other corrupt record.
    let redis = RedisServer::start();
    let b = cached(&redis).await;
    let mut on_b = b.browser(None);
    on_b.get("/write").await;
    let key = only_key(&redis);
    let _: i64 = redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    let _: i64 = redis.cmd(&["DEL", &key]);
    let _: String = redis.cmd(&["SET", &key, "not a hash"]);
    on_b.poll("/read", BOUND, |r| r.status == 200 && r.body == "0")
        .await;
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert!(keys.is_empty(), "the corrupt record is deleted: {keys:?}");
    assert_eq!(on_b.get("/write").await.body, "1");
}

fn app_user(redis: &RedisServer, rules: &[&str]) -> String {
    let mut args = vec!["ACL", "SETUSER", "app", "on", ">secret", "~*", "+@all"];
    args.extend_from_slice(rules);
    let _: String = redis.cmd(&args);
    format!("redis://app:secret@127.0.0.1:{}/", redis.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_for_client_tracking_the_store_runs_uncached() {
    let redis = RedisServer::start();
    let url = app_user(&redis, &["-client"]);
    let a = Instance::start(&url, Some(ClientCache::default())).await;
    let mut b = a.browser(None);
    assert_eq!(b.get("/write").await.body, "1");
    // Found out as the connection opened, with the first request.
    assert!(a.store.client_cache_stats().is_none(), "cache off");
    redis.reset_stats();
    assert_eq!(b.get("/read").await.body, "1");
    assert_eq!(redis.command_counts().get("hgetall"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_refused_after_a_reconnect_degrades_to_uncached_loads() {
    let redis = RedisServer::start();
    let url = app_user(&redis, &[]);
    let a = Instance::start(&url, Some(ClientCache::default())).await;
    let mut b = a.browser(None);
    assert_eq!(b.get("/write").await.body, "1");
    let _: String = redis.cmd(&["ACL", "SETUSER", "app", "-client"]);
    let _: i64 = redis.cmd(&["CLIENT", "KILL", "USER", "app"]);
    b.poll("/read", BOUND, |r| r.status == 200 && r.body == "1")
        .await;
    // Loads work, but nothing is cached: each one goes to Redis.
    let _: i64 = redis.cmd(&["HSET", &only_key(&redis), "d:count", "5"]);
    redis.reset_stats();
    for _ in 0..3 {
        assert_eq!(b.get("/read").await.body, "5");
    }
    assert_eq!(redis.command_counts().get("hgetall"), Some(&3));
    assert_eq!(b.get("/write").await.body, "6");
}

/// The classic client-side-caching race: a read is answered just before
/// another client's write, whose invalidation is then handled before the
/// read's reply is stored. (redis-rs 1.8's own cache stores that stale
/// reply, and keeps it: Redis stops tracking a key once it has sent its
/// invalidation.) Here the reply must not be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_racing_a_foreign_write_never_leaves_a_stale_entry() {
    let redis = RedisServer::start();
    let (a, b) = (cached(&redis).await, cached(&redis).await);
    let mut on_a = a.browser(None);
    on_a.get("/write").await;
    let mut on_b = b.browser(on_a.cookie.as_deref());
    let key = only_key(&redis);
    for n in 2..=150 {
        // Make B's next read a miss, then race it against A's write.
        let _: i64 = redis.cmd(&["HSET", &key, "m:touch", &n.to_string()]);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut reader = on_b.fork();
        let race = tokio::spawn(async move { reader.get("/read").await });
        let written = on_a.get("/write").await.body;
        race.await.expect("reader");
        on_b.poll("/read", BOUND, |r| r.body == written).await;
    }
    assert!(
        b.stats().misses >= 149,
        "the racing reads were misses: {:?}",
        b.stats()
    );
}
