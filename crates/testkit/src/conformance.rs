//! Session behaviour, written once and run against every subject: each store
//! ([`StoreKind`]) through each framework ([`Framework`]). The test binary in
//! `crates/sessionkit/tests/it` instantiates the matrix.
//!
//! Every check drives the test-bed app over real HTTP on loopback, like a
//! browser would, and inspects the store only from outside (Redis commands,
//! keys and TTLs; store call counts through [`CountingStore`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessionkit::store::{BoxFuture, Changes, Record, UpdateOutcome};
use sessionkit::{Error, MemoryStore, RedisStore, SessionConfig, SessionStore, StorageId};

use crate::client::Browser;
use crate::RedisServer;

/// Which store a subject uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// [`MemoryStore`].
    Memory,
    /// [`RedisStore`] on a private redis-server, without the client cache.
    Redis,
    /// [`RedisStore`] on a private redis-server, with the client cache
    /// (`sessionkit::store::redis::ClientCache`).
    RedisCached,
    /// [`RedisStore`] over TLS (`rediss://`, the test CA trusted), without
    /// the client cache.
    RedisTls,
    /// [`RedisStore`] over TLS, with the client cache.
    RedisTlsCached,
    /// [`RedisStore`] on the primary of a Sentinel setup (found through the
    /// sentinels), without the client cache.
    RedisSentinel,
    /// The same, with the client cache.
    RedisSentinelCached,
    /// [`RedisStore`] on a Redis Cluster of 3 primaries with a replica
    /// each, without the client cache.
    RedisCluster,
    /// The same, with the client cache.
    RedisClusterCached,
}

/// Which framework serves the test-bed app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// axum, through `SessionLayer`.
    Axum,
    /// actix-web (2 workers), through `SessionMiddleware`.
    Actix,
}

/// A store wrapper that counts calls (one call = one round trip) and keeps
/// a copy of everything the lifecycle hands the store (storage ids, data
/// keys and values), so that a test can check what any store was given.
#[derive(Clone)]
pub struct CountingStore<S> {
    inner: S,
    calls: Arc<AtomicU64>,
    handed: Handed,
}

/// What a [`CountingStore`] was handed: every storage id, data key and
/// encoded value, as bytes.
pub type Handed = Arc<Mutex<Vec<Vec<u8>>>>;

impl<S> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            calls: Arc::new(AtomicU64::new(0)),
            handed: Arc::default(),
        }
    }

    /// The shared counter.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.calls)
    }

    /// What the store was handed so far.
    pub fn handed(&self) -> Handed {
        Arc::clone(&self.handed)
    }

    fn count(&self, ids: &[&StorageId], data: impl Iterator<Item = (String, Vec<u8>)>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        handed.extend(ids.iter().map(|id| id.as_str().as_bytes().to_vec()));
        for (k, v) in data {
            handed.push(k.into_bytes());
            handed.push(v);
        }
    }
}

impl<S: SessionStore> SessionStore for CountingStore<S> {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        self.count(&[id], std::iter::empty());
        self.inner.load(id)
    }
    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        r: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let data = r.data.iter().map(|(k, v)| (k.clone(), v.clone()));
        self.count(&[id], data);
        self.inner.create(id, r)
    }
    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        c: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        let set = c.set.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec()));
        let removed = c.remove.iter().map(|k| ((*k).to_owned(), Vec::new()));
        self.count(&[id], set.chain(removed));
        self.inner.update(id, c)
    }
    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        self.count(&[id], std::iter::empty());
        self.inner.delete(id)
    }
    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        self.count(&[id, moved_to], std::iter::empty());
        self.inner.take(id, moved_to)
    }
    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        self.count(&[], std::iter::empty());
        self.inner.sessions_of(user)
    }
    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        self.count(&[id], std::iter::empty());
        self.inner.revoke(id)
    }
}

/// A running test-bed app on one store and framework.
pub struct Subject {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The store.
    pub kind: StoreKind,
    /// The framework serving the app.
    pub framework: Framework,
    /// The private Redis (its plain port, for the test's own commands), for
    /// every kind but [`StoreKind::Memory`].
    pub redis: Option<RedisServer>,
    /// The in-process store, for [`StoreKind::Memory`].
    pub memory: Option<MemoryStore>,
    /// The config the app runs with.
    pub config: SessionConfig,
    calls: Arc<AtomicU64>,
    handed: Handed,
    /// Stops the app when the subject is dropped.
    _server: Server,
    /// The Redis Cluster, for [`StoreKind::RedisCluster`].
    pub cluster: Option<crate::cluster::ClusterSetup>,
    /// The rest of a Sentinel setup (replicas, sentinels), kept running.
    _topology: Option<crate::sentinel::SentinelRest>,
}

/// The Redis a subject's store talks to, for the test's own look at it:
/// one server, or the primaries of a cluster (counts summed, a key's
/// commands sent to the primary that serves it).
pub enum Nodes<'a> {
    /// One redis-server (standalone, TLS's plain port, Sentinel's primary).
    One(&'a RedisServer),
    /// A Redis Cluster.
    Cluster(&'a crate::cluster::ClusterSetup),
}

impl Nodes<'_> {
    /// [`RedisServer::command_counts`], summed over the primaries (without
    /// `CLUSTER` itself: the client's slot map, not a request's cost).
    pub fn command_counts(&self) -> std::collections::HashMap<String, u64> {
        match self {
            Nodes::One(r) => r.command_counts(),
            Nodes::Cluster(c) => {
                let mut sum = std::collections::HashMap::new();
                for n in c.primaries() {
                    for (name, calls) in n.command_counts() {
                        if !name.starts_with("cluster") {
                            *sum.entry(name).or_insert(0) += calls;
                        }
                    }
                }
                sum
            }
        }
    }

    /// Total of [`command_counts`](Self::command_counts).
    pub fn total_commands(&self) -> u64 {
        self.command_counts().values().sum()
    }

    /// Zeroes the command statistics (of every node).
    pub fn reset_stats(&self) {
        match self {
            Nodes::One(r) => r.reset_stats(),
            Nodes::Cluster(c) => c
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .for_each(RedisServer::reset_stats),
        }
    }

    /// A command about one key, `args[1]`, on the node that holds it.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        match self {
            Nodes::One(r) => r.cmd(args),
            Nodes::Cluster(c) => c
                .node_for(args.get(1).copied().unwrap_or_default())
                .cmd(args),
        }
    }

    /// The keys matching `pattern`, on every primary.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            Nodes::One(r) => r.cmd(&["KEYS", pattern]),
            Nodes::Cluster(c) => c.keys(pattern),
        }
    }
}

/// A subject's running server, stopped when the subject is dropped.
pub enum Server {
    /// The task serving axum on the test's runtime.
    Axum(tokio::task::JoinHandle<()>),
    /// actix-web's own threads (a system thread, an accept thread, workers).
    Actix(actix_web::dev::ServerHandle),
}

impl Drop for Server {
    fn drop(&mut self) {
        match self {
            Server::Axum(task) => task.abort(),
            // The command is sent at once; the server's own thread carries
            // it out, whether or not the test's runtime is still running.
            Server::Actix(handle) => drop(handle.stop(false)),
        }
    }
}

impl Subject {
    /// Starts the app with the default config.
    pub async fn start(kind: StoreKind, fw: Framework) -> Self {
        Self::start_with(kind, fw, SessionConfig::default()).await
    }

    /// Starts the app with `config`.
    ///
    /// # Panics
    ///
    /// If the store or the server cannot be set up.
    pub async fn start_with(kind: StoreKind, fw: Framework, config: SessionConfig) -> Self {
        let mut topology = None;
        let mut cluster = None;
        let (redis, memory, (calls, handed), (addr, server)) = match kind {
            StoreKind::RedisCluster | StoreKind::RedisClusterCached => {
                let setup = crate::cluster::ClusterSetup::start();
                let builder = if kind == StoreKind::RedisClusterCached {
                    RedisStore::builder()
                        .with_client_cache(sessionkit::store::redis::ClientCache::default())
                } else {
                    RedisStore::builder().without_client_cache()
                };
                let store = builder
                    .cluster(setup.urls())
                    .await
                    .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
                cluster = Some(setup);
                let store = CountingStore::new(store);
                let (calls, handed) = (store.counter(), store.handed());
                (
                    None,
                    None,
                    (calls, handed),
                    serve(fw, store, config.clone()).await,
                )
            }
            StoreKind::Memory => {
                let mem = MemoryStore::new();
                let store = CountingStore::new(mem.clone());
                let (calls, handed) = (store.counter(), store.handed());
                (
                    None,
                    Some(mem),
                    (calls, handed),
                    serve(fw, store, config.clone()).await,
                )
            }
            StoreKind::Redis
            | StoreKind::RedisCached
            | StoreKind::RedisTls
            | StoreKind::RedisTlsCached
            | StoreKind::RedisSentinel
            | StoreKind::RedisSentinelCached => {
                let mut builder = match kind {
                    StoreKind::RedisCached
                    | StoreKind::RedisTlsCached
                    | StoreKind::RedisSentinelCached => RedisStore::builder()
                        .with_client_cache(sessionkit::store::redis::ClientCache::default()),
                    _ => RedisStore::builder().without_client_cache(),
                };
                let tls = matches!(kind, StoreKind::RedisTls | StoreKind::RedisTlsCached);
                let sentinel = matches!(
                    kind,
                    StoreKind::RedisSentinel | StoreKind::RedisSentinelCached
                );
                let (server, url) = if tls {
                    let tls = crate::tls::TlsRedis::start(false);
                    builder = builder.with_tls_ca(tls.certs.ca.clone());
                    let url = tls.url();
                    (tls.server, url)
                } else if sentinel {
                    let (primary, rest) = crate::sentinel::SentinelSetup::start().split();
                    topology = Some(rest);
                    (primary, String::new())
                } else {
                    let server = RedisServer::start();
                    let url = server.url();
                    (server, url)
                };
                let store = match &topology {
                    Some(rest) => {
                        builder
                            .sentinel(rest.urls.clone(), crate::sentinel::SERVICE)
                            .await
                    }
                    None => builder.connect(url).await,
                }
                .unwrap_or_else(|e| panic!("connect to test redis: {e}"));
                let store = CountingStore::new(store);
                let (calls, handed) = (store.counter(), store.handed());
                (
                    Some(server),
                    None,
                    (calls, handed),
                    serve(fw, store, config.clone()).await,
                )
            }
        };
        Subject {
            base: format!("http://{addr}"),
            kind,
            framework: fw,
            redis,
            memory,
            config,
            calls,
            handed,
            _server: server,
            cluster,
            _topology: topology,
        }
    }

    /// A new browser with no cookie (or, for a header transport, a client
    /// with no token).
    pub fn browser(&self) -> Browser {
        let b = Browser::new(self.base.clone(), self.config.cookie_name());
        match self.config.transport() {
            sessionkit::Transport::Bearer => {
                b.with_header_transport("authorization", "session-token", true)
            }
            sessionkit::Transport::Header(name) => b.with_header_transport(name, name, false),
            _ => b,
        }
    }

    /// What `Vary` names on a response that used the session: the
    /// transport's request header.
    pub fn vary(&self) -> String {
        match self.config.transport() {
            sessionkit::Transport::Bearer => "Authorization".to_owned(),
            sessionkit::Transport::Header(name) => name.clone(),
            _ => "Cookie".to_owned(),
        }
    }

    /// Store calls since the last [`reset_counts`](Self::reset_counts).
    pub fn store_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The Redis the store talks to (Redis subjects only).
    pub fn nodes(&self) -> Option<Nodes<'_>> {
        match (&self.redis, &self.cluster) {
            (Some(r), _) => Some(Nodes::One(r)),
            (None, Some(c)) => Some(Nodes::Cluster(c)),
            (None, None) => None,
        }
    }

    /// Zeroes the store call counter and, with Redis, the command statistics.
    pub fn reset_counts(&self) {
        self.calls.store(0, Ordering::SeqCst);
        if let Some(nodes) = self.nodes() {
            nodes.reset_stats();
        }
    }

    /// Number of stored sessions.
    pub fn stored_sessions(&self) -> usize {
        match (self.nodes(), &self.memory) {
            (Some(nodes), _) => live_keys(&nodes).len(),
            (None, Some(m)) => m.len(),
            (None, None) => 0,
        }
    }

    /// Every live session key (Redis subjects only; empty otherwise).
    pub fn keys(&self) -> Vec<String> {
        self.nodes().map(|n| live_keys(&n)).unwrap_or_default()
    }
}

/// Live session keys (not the forwarding markers moved sessions leave, nor
/// a key that expired between `KEYS` and the look at it).
fn live_keys(nodes: &Nodes<'_>) -> Vec<String> {
    nodes
        .keys("*")
        .into_iter()
        .filter(|k| {
            // Users' indexes are sorted sets.
            let kind: String = nodes.cmd(&["TYPE", k]);
            kind == "hash" && {
                let (version, moved): (Option<String>, Option<String>) =
                    nodes.cmd(&["HMGET", k, "m:v", "m:moved"]);
                version.is_some() && moved.is_none()
            }
        })
        .collect()
}

/// Serves the contract app with `store` and `config` through `fw` on a
/// free loopback port; the server stops when the returned [`Server`] is
/// dropped.
///
/// # Panics
///
/// If no loopback port can be bound.
pub async fn serve(
    fw: Framework,
    store: impl SessionStore,
    config: SessionConfig,
) -> (SocketAddr, Server) {
    match fw {
        Framework::Axum => {
            let app = crate::contract::axum_router(store, config);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let addr = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("addr: {e}"));
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (addr, Server::Axum(task))
        }
        Framework::Actix => {
            use actix_web::{App, HttpServer};

            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
            let addr = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("addr: {e}"));
            let sessions = sessionkit::SessionMiddleware::new(store, config);
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(sessions.clone())
                    .configure(crate::contract::actix_routes)
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .unwrap_or_else(|e| panic!("listen: {e}"))
            .run();
            let handle = server.handle();
            // Its own thread and actix system: the server stops cleanly on
            // `handle.stop` even after the test's runtime is gone.
            std::thread::spawn(move || actix_web::rt::System::new().block_on(server));
            (addr, Server::Actix(handle))
        }
    }
}

/// Asserts `cond` with a message naming the subject.
macro_rules! check {
    ($s:expr, $cond:expr, $($msg:tt)+) => {
        assert!($cond, "[{:?}/{:?}] {}", $s.kind, $s.framework, format!($($msg)+))
    };
}

/// The contract's basic flow: new → read 0 → write 1, 2 → read 2; no cookie → 0.
pub async fn basic_flow(s: &Subject) {
    let mut b = s.browser();
    let r = b.get("/new").await;
    check!(s, r.status == 200 && r.body == "ok", "new: {r:?}");
    check!(s, b.cookie.is_some(), "new sets the session cookie");
    assert_eq!(b.get("/read").await.body, "0");
    assert_eq!(b.get("/write").await.body, "1");
    assert_eq!(b.get("/write").await.body, "2");
    assert_eq!(b.get("/read").await.body, "2");
    assert_eq!(s.browser().get("/read").await.body, "0");
    assert_eq!(s.stored_sessions(), 1);
}

/// A handler that never uses the session costs no store call, with or without a cookie.
pub async fn untouched_request_costs_nothing(s: &Subject) {
    let mut b = s.browser();
    b.get("/new").await;
    s.reset_counts();
    let r = b.get("/baseline").await;
    check!(s, r.status == 200, "baseline {r:?}");
    check!(
        s,
        r.set_cookies.is_empty(),
        "no Set-Cookie on an untouched request"
    );
    check!(
        s,
        r.header("vary").is_none(),
        "no Vary on an untouched request"
    );
    assert_eq!(s.store_calls(), 0);
    if let Some(redis) = s.nodes() {
        assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
    }
}

/// Malformed cookies never reach the store, and read as an empty session.
pub async fn malformed_cookie_costs_nothing(s: &Subject) {
    let name = s.config.cookie_name().to_owned();
    let long = "A".repeat(4000);
    let cases = [
        format!("{name}=short"),
        format!("{name}={}", "a".repeat(33)),
        format!("{name}={}", "*".repeat(32)),
        format!("{name}={long}"),
        format!("{name}="),
        name.clone(),
        "garbage;;;==".to_owned(),
    ];
    for raw in cases {
        s.reset_counts();
        let r = s.browser().get_with_cookie_header("/read", &raw).await;
        check!(
            s,
            r.status == 200 && r.body == "0",
            "cookie {raw:.40}: {r:?}"
        );
        assert_eq!(s.store_calls(), 0, "cookie {raw:.40} reached the store");
        if let Some(redis) = s.nodes() {
            assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
        }
    }
}

/// Round trips per request kind: read 1, write 2, new 1 (Redis: one HGETALL
/// per load, one RESTORE per create, one save script call per update, with
/// the commands it runs). With the client cache, a session this process
/// has loaded is cached: read 0 round trips, write 1 (the script; it drops
/// the entry). Store calls count
/// `SessionStore` calls, which the cache does not change; Redis's command
/// statistics are the round-trip truth.
pub async fn round_trip_budget(s: &Subject) {
    let cached = matches!(
        s.kind,
        StoreKind::RedisCached
            | StoreKind::RedisTlsCached
            | StoreKind::RedisSentinelCached
            | StoreKind::RedisClusterCached
    );
    let counts = |pairs: &[(&str, u64)]| -> std::collections::HashMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    // Connections open when first needed (under actix-web, on a worker
    // thread, by the first request): the budget is the steady state's.
    s.browser().get("/new").await;
    let mut b = s.browser();
    s.reset_counts();
    b.get("/new").await;
    assert_eq!(s.store_calls(), 1, "new");
    if let Some(redis) = s.nodes() {
        let c = redis.command_counts();
        // One RESTORE: the record and its expiry in one command, no script.
        assert_eq!(c, counts(&[("restore", 1)]), "new");
    }
    // The first read loads (creating a session does not cache it) …
    s.reset_counts();
    b.get("/read").await;
    assert_eq!(s.store_calls(), 1, "first read");
    if let Some(redis) = s.nodes() {
        assert_eq!(
            redis.command_counts(),
            counts(&[("hgetall", 1)]),
            "first read"
        );
    }
    // … later ones are answered by the cache.
    s.reset_counts();
    b.get("/read").await;
    assert_eq!(s.store_calls(), 1, "read");
    if let Some(redis) = s.nodes() {
        let c = redis.command_counts();
        let expected = if cached {
            counts(&[])
        } else {
            counts(&[("hgetall", 1)])
        };
        assert_eq!(c, expected, "read");
    }
    s.reset_counts();
    b.get("/write").await;
    assert_eq!(s.store_calls(), 2, "write");
    if let Some(redis) = s.nodes() {
        let c = redis.command_counts();
        // One round trip: the save script (by hash; by source too when the
        // server did not know it yet), which reads the record's size and
        // the old lengths of the changed keys, then writes; and a load from
        // Redis when uncached.
        let script = c.get("evalsha").copied().unwrap_or(0) + c.get("eval").copied().unwrap_or(0);
        assert!((1..=2).contains(&script), "write: one script call: {c:?}");
        assert_eq!(c.get("hset"), Some(&1), "write: one HSET: {c:?}");
        assert_eq!(
            c.get("hgetall").copied(),
            (!cached).then_some(1),
            "write: a load only when uncached: {c:?}"
        );
        let known = [
            "evalsha", "eval", "hmget", "hstrlen", "hexists", "hset", "hgetall",
        ];
        assert!(
            c.keys().all(|k| known.contains(&k.as_str())),
            "write: {c:?}"
        );
    }
}

/// An id the server never issued is never adopted: a write gets a fresh id.
pub async fn forged_id_is_not_adopted(s: &Subject) {
    let forged = sessionkit::SessionId::generate();
    let mut b = s.browser().with_cookie(Some(&forged.expose()));
    let r = b.get("/set?key=a&value=b").await;
    check!(s, r.status == 200, "{r:?}");
    let issued = b.cookie.clone().unwrap_or_default();
    check!(
        s,
        !issued.is_empty() && issued != forged.expose(),
        "a fresh id was issued"
    );
    if let Some(redis) = s.nodes() {
        let forged_key = format!("session:{}", forged.storage_id());
        let exists: i64 = redis.cmd(&["EXISTS", &forged_key]);
        assert_eq!(exists, 0, "nothing stored under the forged id");
    }
    assert_eq!(b.get("/get?key=a").await.body, "b");
    let mut attacker = s.browser().with_cookie(Some(&forged.expose()));
    assert_eq!(attacker.get("/get?key=a").await.status, 404);
}

/// No store is handed a raw id (not as an id, a key or a value), Redis
/// holds none, and a storage id sent as a cookie resolves to nothing.
pub async fn raw_id_absent_from_store(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=cart&value=apple").await;
    let before = b.cookie.clone().unwrap_or_default();
    b.get("/login?user=alice").await;
    b.get("/set?key=k&value=v").await;
    let ids = [before, b.cookie.clone().unwrap_or_default()];
    check!(
        s,
        ids.iter().all(|id| id.len() == 32) && ids[0] != ids[1],
        "ids: {ids:?}"
    );
    let handed = s.handed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    check!(s, handed.len() > 8, "the store was handed ids and values");
    for id in &ids {
        check!(
            s,
            handed
                .iter()
                .all(|h| !h.windows(id.len()).any(|w| w == id.as_bytes())),
            "the store was handed a raw id"
        );
    }
    assert_eq!(s.stored_sessions(), 1);
    let Some(redis) = s.nodes() else { return };
    let all: Vec<String> = redis.keys("*");
    for key in &all {
        // Sessions are hashes, users' indexes sorted sets.
        let kind: String = redis.cmd(&["TYPE", key]);
        // Bytes: values need not be text (MessagePack).
        let dump: Vec<Vec<u8>> = if kind == "zset" {
            redis.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"])
        } else {
            redis.cmd(&["HGETALL", key])
        };
        for id in &ids {
            check!(s, !key.contains(id.as_str()), "key holds a raw id");
            check!(
                s,
                dump.iter()
                    .all(|f| !f.windows(id.len()).any(|w| w == id.as_bytes())),
                "hash holds a raw id"
            );
        }
    }
    let keys = s.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = keys[0].clone();
    check!(s, key.starts_with("session:"), "prefix: {key}");
    let storage = key.trim_start_matches("session:").to_owned();
    s.reset_counts();
    for candidate in [storage.clone(), storage[2..].to_owned()] {
        let mut thief = s.browser().with_cookie(Some(&candidate));
        let r = thief.get("/whoami").await;
        assert_eq!(
            r.status, 401,
            "storage id used as a cookie must resolve to nothing"
        );
    }
    assert_eq!(s.store_calls(), 0);
}

/// An emptied session deletes its record and expires its cookie.
pub async fn emptied_session_is_deleted(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=a&value=1").await;
    b.get("/set?key=b&value=2").await;
    assert_eq!(s.stored_sessions(), 1);
    b.get("/remove?key=a").await;
    assert_eq!(s.stored_sessions(), 1);
    let r = b.get("/remove?key=b").await;
    check!(s, r.ends_session, "cookie expired: {r:?}");
    assert_eq!(s.stored_sessions(), 0);
    assert!(b.cookie.is_none());
    b.get("/set?key=a&value=1").await;
    let r = b.get("/clear").await;
    check!(s, r.ends_session, "clear expires the cookie");
    assert_eq!(s.stored_sessions(), 0);
}

/// Login keeps the data, changes the id, deletes the old record; TTL becomes
/// the permanent lifetime and the cookie persistent.
pub async fn login_cycles_id(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=cart&value=apple").await;
    let before = b.cookie.clone().unwrap_or_default();
    if let Some(redis) = s.nodes() {
        let key = s.keys().pop().unwrap_or_default();
        let ttl: i64 = redis.cmd(&["PTTL", &key]);
        let day = 24 * 3600 * 1000;
        check!(
            s,
            ttl > day - 60_000 && ttl <= day,
            "idle TTL ~1 day, got {ttl}"
        );
    }
    let r = b.get("/login?user=alice").await;
    check!(s, r.status == 200, "{r:?}");
    let after = b.cookie.clone().unwrap_or_default();
    check!(s, !after.is_empty() && after != before, "id changed");
    if *s.config.transport() == sessionkit::Transport::Cookie {
        let sc = r.set_cookies.join(" | ");
        check!(s, sc.contains("Max-Age="), "persistent cookie: {sc}");
    }
    assert_eq!(b.get("/get?key=cart").await.body, "apple");
    assert_eq!(b.get("/whoami").await.body, "alice");
    let mut old = s.browser().with_cookie(Some(&before));
    assert_eq!(old.get("/whoami").await.status, 401, "old id is dead");
    assert_eq!(s.stored_sessions(), 1);
    if let Some(redis) = s.nodes() {
        let key = s.keys().pop().unwrap_or_default();
        let ttl: i64 = redis.cmd(&["PTTL", &key]);
        let month = 31 * 24 * 3600 * 1000_i64;
        check!(
            s,
            ttl > month - 60_000 && ttl <= month,
            "permanent TTL ~31 days, got {ttl}"
        );
    }
}

/// Several cookies of the session's name (one planted beside the user's on
/// a narrower path or by a sibling subdomain): an unknown one never shadows
/// the live one, two live ones are ambiguous and neither is used, and no
/// cookie the request did not prove it owns is expired.
pub async fn cookie_tossing_neither_shadows_nor_signs_out(s: &Subject) {
    let name = s.config.cookie_name().to_owned();
    let mut alice = s.browser();
    alice.get("/login?user=alice").await;
    let alice_id = alice.cookie.clone().unwrap_or_default();
    let mut mallory = s.browser();
    mallory.get("/login?user=mallory").await;
    let mallory_id = mallory.cookie.clone().unwrap_or_default();
    let unknown = sessionkit::SessionId::generate().expose();
    let expires = |r: &crate::client::Reply| r.ends_session;
    let mut b = s.browser();
    for header in [
        format!("{name}={unknown}; {name}={alice_id}"),
        format!("{name}={alice_id}; {name}={unknown}"),
    ] {
        let r = b.get_with_cookie_header("/whoami", &header).await;
        check!(
            s,
            (r.status, r.body.as_str()) == (200, "alice"),
            "{header}: {r:?}"
        );
        check!(s, !expires(&r), "no cookie expired: {r:?}");
    }
    for header in [
        format!("{name}={mallory_id}; {name}={alice_id}"),
        format!("{name}={alice_id}; {name}={mallory_id}"),
    ] {
        let r = b.get_with_cookie_header("/whoami", &header).await;
        check!(
            s,
            r.status == 401,
            "ambiguous, neither is used: {header}: {r:?}"
        );
        check!(s, !expires(&r), "no cookie expired: {r:?}");
    }
    // Both sessions are intact.
    assert_eq!(alice.get("/whoami").await.body, "alice");
    assert_eq!(mallory.get("/whoami").await.body, "mallory");
}

/// A cookie pair that is not UTF-8 (a sibling application's binary value)
/// is skipped; the session cookie beside it still counts.
pub async fn a_non_utf8_cookie_pair_is_skipped(s: &Subject) {
    let name = s.config.cookie_name().to_owned();
    let mut b = s.browser();
    b.get("/login?user=ann").await;
    let id = b.cookie.clone().unwrap_or_default();
    let raw = [
        b"a=\xff\xfe; ".as_slice(),
        format!("{name}={id}").as_bytes(),
        b"; b=\xc3",
    ]
    .concat();
    let r = b.get_with_cookie_bytes("/whoami", &raw).await;
    check!(s, (r.status, r.body.as_str()) == (200, "ann"), "{r:?}");
}

/// 40 parallel writes of different keys to one session, each within the
/// limit on its own, store at most the limit together; the others are
/// refused with 413.
pub async fn parallel_writes_store_at_most_the_limit(s: &Subject) {
    let limit = sessionkit::DEFAULT_MAX_SIZE;
    let mut b = s.browser();
    b.get("/new").await;
    let body = "x".repeat(100_000);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut tab = b.fork();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            tab.post(&format!("/set?key=k{i}"), body).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap_or(0));
    }
    check!(
        s,
        statuses.iter().all(|st| *st == 200 || *st == 413),
        "{statuses:?}"
    );
    let saved = statuses.iter().filter(|st| **st == 200).count();
    let mut stored = "user".len() + "\"bench\"".len();
    for i in 0..40 {
        let r = b.get(&format!("/get?key=k{i}")).await;
        if r.status == 200 {
            stored += format!("k{i}").len() + r.body.len() + 2;
        }
    }
    check!(
        s,
        stored <= limit,
        "{stored} bytes stored, {saved} saves answered 200"
    );
    check!(s, saved >= 5, "as many as fit were saved: {saved}");
}

/// The contract's `count` holding a string (stored through `/set`) reads as
/// 0 and `/write` starts it over: a clean answer, not a 500 on every request.
pub async fn a_count_of_another_type_starts_over(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=count&value=abc").await;
    let r = b.get("/read").await;
    check!(s, (r.status, r.body.as_str()) == (200, "0"), "{r:?}");
    let r = b.get("/write").await;
    check!(s, (r.status, r.body.as_str()) == (200, "1"), "{r:?}");
    let r = b.get("/get?key=count").await;
    check!(s, r.status == 404, "a number is no string: {r:?}");
}

/// Logout deletes the record and expires the cookie; the old cookie is dead.
pub async fn logout_destroys(s: &Subject) {
    let mut b = s.browser();
    b.get("/login?user=bob").await;
    let id = b.cookie.clone();
    let r = b.get("/logout").await;
    check!(s, r.ends_session, "{r:?}");
    assert_eq!(s.stored_sessions(), 0);
    let mut replay = s.browser().with_cookie(id.as_deref());
    assert_eq!(replay.get("/whoami").await.status, 401);
}

/// 40 concurrent requests setting different keys of one session lose nothing.
pub async fn concurrent_different_keys(s: &Subject) {
    let mut b = s.browser();
    b.get("/new").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut tab = b.fork();
        tasks.push(tokio::spawn(async move {
            tab.get(&format!("/set?key=k{i}&value=v{i}&delay_ms=50"))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap_or(0), 200);
    }
    for i in 0..40 {
        let r = b.get(&format!("/get?key=k{i}")).await;
        check!(s, r.body == format!("v{i}"), "k{i} lost: {r:?}");
    }
    assert_eq!(b.get("/whoami").await.body, "bench");
}

/// A request that loaded the session before a concurrent logout does not
/// bring it back.
pub async fn logout_during_slow_write_does_not_resurrect(s: &Subject) {
    let mut b = s.browser();
    b.get("/login?user=carol").await;
    let mut slow = b.fork();
    let writer = tokio::spawn(async move { slow.get("/set?key=late&value=x&delay_ms=300").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = b.cookie.clone();
    b.get("/logout").await;
    let r = writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
    check!(s, r.status == 200, "{r:?}");
    check!(s, r.ids.is_empty(), "the late write sends no id: {r:?}");
    assert_eq!(s.stored_sessions(), 0, "session resurrected");
    let mut replay = s.browser().with_cookie(id.as_deref());
    assert_eq!(replay.get("/whoami").await.status, 401);
    assert_eq!(replay.get("/get?key=late").await.status, 404);
}

/// A device list entry, as `/sessions` shows it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Device {
    /// The session's public handle.
    pub handle: String,
    /// Whether it is the asking session.
    pub current: bool,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub last_seen: u64,
}

/// The device list of `b`'s user.
async fn devices(b: &mut Browser) -> Vec<Device> {
    let r = b.get("/sessions").await;
    assert_eq!(r.status, 200, "/sessions: {r:?}");
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/sessions: {e}: {}", r.body))
}

/// `n` devices (browsers) signed in as `user`.
async fn signed_in(s: &Subject, user: &str, n: usize) -> Vec<Browser> {
    let mut list = Vec::new();
    for _ in 0..n {
        let mut b = s.browser();
        assert_eq!(b.get(&format!("/login?user={user}")).await.status, 200);
        list.push(b);
    }
    list
}

/// A user signed in on three devices sees exactly those three (theirs,
/// this one marked), never another user's; ending one signs that device
/// out and leaves the others; a handle is no cookie, and another user's
/// handle ends nothing.
pub async fn devices_are_listed_and_ended_one_by_one(s: &Subject) {
    let mut ann = signed_in(s, "ann", 3).await;
    let mut bob = signed_in(s, "bob", 1).await;
    let list = devices(&mut ann[0]).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list.iter().filter(|d| d.current).count(), 1, "{list:?}");
    let bobs = devices(&mut bob[0]).await;
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert!(
        list.iter().all(|d| d.handle != bobs[0].handle),
        "another user's session listed"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    assert!(list
        .iter()
        .all(|d| d.created <= now + 1 && d.created + 60 > now));
    assert!(list.iter().all(|d| d.last_seen >= d.created));
    // A handle sent as a cookie is no session.
    for d in &list {
        let mut forger = s.browser().with_cookie(Some(&d.handle));
        assert_eq!(forger.get("/whoami").await.status, 401);
    }
    // Bob's handle means nothing to Ann.
    let r = ann[0]
        .get(&format!("/revoke?handle={}", bobs[0].handle))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(bob[0].get("/whoami").await.body, "bob");
    // Ann ends her second device from her first.
    let second = devices(&mut ann[1]).await;
    let Some(that) = second.iter().find(|d| d.current) else {
        panic!("no current session: {second:?}")
    };
    let r = ann[0].get(&format!("/revoke?handle={}", that.handle)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ann[1].get("/whoami").await.status, 401, "ended device");
    assert_eq!(ann[0].get("/whoami").await.body, "ann");
    assert_eq!(ann[2].get("/whoami").await.body, "ann");
    assert_eq!(devices(&mut ann[0]).await.len(), 2);
    let r = ann[0].get(&format!("/revoke?handle={}", that.handle)).await;
    assert_eq!(r.status, 404, "an ended session is no longer hers: {r:?}");
}

/// "Log out everywhere" signs out every device of the user, the asking one
/// included, and no one else.
pub async fn logout_everywhere_ends_every_device(s: &Subject) {
    let mut ann = signed_in(s, "ann", 3).await;
    let mut bob = signed_in(s, "bob", 1).await;
    assert_eq!(ann[2].get("/logout-everywhere").await.status, 200);
    for (i, b) in ann.iter_mut().enumerate() {
        assert_eq!(b.get("/whoami").await.status, 401, "device {i}");
    }
    assert_eq!(bob[0].get("/whoami").await.body, "bob");
    let mut again = signed_in(s, "ann", 1).await;
    assert_eq!(
        devices(&mut again[0]).await.len(),
        1,
        "only the new sign-in"
    );
}

/// A save in flight when its session is revoked does not bring it back.
pub async fn a_save_in_flight_does_not_undo_a_revocation(s: &Subject) {
    let mut ann = signed_in(s, "ann", 2).await;
    let list = devices(&mut ann[1]).await;
    let Some(first) = list.iter().find(|d| !d.current) else {
        panic!("{list:?}")
    };
    let mut slow = ann[0].fork();
    let writer = tokio::spawn(async move { slow.get("/set?key=late&value=x&delay_ms=300").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = ann[1]
        .get(&format!("/revoke?handle={}", first.handle))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
    check!(s, r.status == 200, "{r:?}");
    assert_eq!(
        ann[0].get("/whoami").await.status,
        401,
        "revoked session back"
    );
    assert_eq!(ann[0].get("/get?key=late").await.status, 404);
    assert_eq!(devices(&mut ann[1]).await.len(), 1);
    assert_eq!(s.stored_sessions(), 1, "only the second device's session");
}

/// Cookie attributes, `Vary: Cookie` on reads, `Cache-Control: no-store` with Set-Cookie.
pub async fn cookie_and_cache_headers(s: &Subject) {
    let mut b = s.browser();
    let r = b.get("/new").await;
    let sc = r.set_cookies.join(" | ");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        check!(s, sc.contains(attr), "{attr} missing: {sc}");
    }
    check!(
        s,
        sc.starts_with(&format!("{}=", s.config.cookie_name())),
        "{sc}"
    );
    check!(
        s,
        !sc.contains("Max-Age") && !sc.contains("Expires"),
        "browser-session cookie: {sc}"
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let r = b.get("/read").await;
    check!(
        s,
        r.header("vary").is_some_and(|v| v.contains("Cookie")),
        "Vary on read: {r:?}"
    );
    check!(
        s,
        r.set_cookies.is_empty(),
        "no Set-Cookie on an unchanged read"
    );
}

/// Values round-trip, including a POSTed body; removed keys are gone.
pub async fn values_round_trip(s: &Subject) {
    let mut b = s.browser();
    let text = "héllo wörld ✓ \"quoted\" \\ back";
    assert_eq!(b.post("/set?key=t", text).await.status, 200);
    assert_eq!(b.get("/get?key=t").await.body, text);
    assert_eq!(b.get("/get?key=missing").await.status, 404);
    b.get("/set?key=x&value=1").await;
    b.get("/remove?key=x").await;
    assert_eq!(b.get("/get?key=x").await.status, 404);
    assert_eq!(b.get("/get?key=t").await.body, text);
}

/// A session past its lifetime is gone, even for a client that kept the cookie.
pub async fn expired_session_is_gone(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=a&value=1").await;
    tokio::time::sleep(s.config.idle_lifetime() + Duration::from_millis(200)).await;
    assert_eq!(b.get("/get?key=a").await.status, 404);
    assert_eq!(s.stored_sessions(), 0);
}

/// A read after the touch interval pushes the expiry back; reads inside it write nothing.
pub async fn touch_is_throttled(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=a&value=1").await;
    s.reset_counts();
    b.get("/read").await;
    assert_eq!(
        s.store_calls(),
        1,
        "read inside the touch interval: load only"
    );
    tokio::time::sleep(s.config.idle_lifetime() / 2).await;
    s.reset_counts();
    b.get("/read").await;
    assert_eq!(s.store_calls(), 2, "touch due: load + one update");
    tokio::time::sleep(s.config.idle_lifetime() * 3 / 4).await;
    assert_eq!(
        b.get("/get?key=a").await.body,
        "1",
        "the touch extended the session"
    );
}

/// An oversized value is refused with a clear status and the session stays intact.
pub async fn oversized_value_is_refused(s: &Subject) {
    let mut b = s.browser();
    b.get("/set?key=a&value=1").await;
    let big = "x".repeat(s.config.max_size() + 1);
    let r = b.post("/set?key=big", big).await;
    assert_eq!(r.status, 413, "{:?}", r.status);
    assert_eq!(b.get("/get?key=a").await.body, "1");
    assert_eq!(b.get("/get?key=big").await.status, 404);
}

/// With signing on: the cookie carries a tag; a missing, forged or
/// mismatched tag is no cookie at all, and costs no store call.
pub async fn signed_cookie_rejects_forgeries(s: &Subject) {
    let mut b = s.browser();
    b.get("/write").await;
    let good = b.cookie.clone().unwrap_or_default();
    check!(
        s,
        good.len() == 76 && good.as_bytes()[32] == b'.',
        "signed cookie: {good}"
    );
    assert_eq!(b.get("/read").await.body, "1");
    let (id, tag) = good.split_at(32);
    let mut flipped = tag.to_owned().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap_or_default();
    let other = sessionkit::SessionId::generate().expose();
    let forgeries = [
        id.to_owned(),
        format!("{id}{flipped}"),
        format!("{other}{tag}"),
        format!("{id}.{}", "A".repeat(43)),
        format!("{good}A"),
    ];
    for forged in forgeries {
        s.reset_counts();
        let mut attacker = s.browser().with_cookie(Some(&forged));
        let r = attacker.get("/read").await;
        check!(
            s,
            r.status == 200 && r.body == "0",
            "forged {forged}: {r:?}"
        );
        assert_eq!(
            s.store_calls(),
            0,
            "forged cookie {forged} reached the store"
        );
        if let Some(redis) = s.nodes() {
            assert_eq!(redis.total_commands(), 0, "{:?}", redis.command_counts());
        }
    }
}

/// The absolute lifetime ends a session however active it is.
pub async fn absolute_timeout_ends_active_session(s: &Subject) {
    let limit = s
        .config
        .absolute_lifetime()
        .unwrap_or(Duration::from_secs(1));
    let mut b = s.browser();
    b.get("/write").await;
    let started = std::time::Instant::now();
    let mut last = 1;
    while started.elapsed() < limit + Duration::from_millis(300) {
        tokio::time::sleep(limit / 6).await;
        let r = b.get("/write").await;
        let n: i64 = r.body.parse().unwrap_or(-1);
        if n <= last {
            // The session ended and a fresh one began.
            check!(
                s,
                started.elapsed() >= limit - Duration::from_millis(50),
                "ended early at {:?}",
                started.elapsed()
            );
            return;
        }
        last = n;
    }
    panic!(
        "[{:?}] an active session outlived its absolute lifetime",
        s.kind
    );
}

/// Every route that reads the session answers with `Vary: Cookie`.
pub async fn vary_cookie_on_every_read_path(s: &Subject) {
    let mut b = s.browser();
    b.get("/new").await;
    for path in [
        "/read",
        "/get?key=user",
        "/get?key=missing",
        "/whoami",
        "/set?key=a&value=1",
        "/remove?key=a",
        "/write",
    ] {
        let r = b.get(path).await;
        check!(
            s,
            r.header("vary").is_some_and(|v| v.contains(&s.vary())),
            "{path}: no Vary: {}: {r:?}",
            s.vary()
        );
    }
    let r = s.browser().get("/whoami").await;
    check!(
        s,
        r.header("vary").is_some_and(|v| v.contains(&s.vary())),
        "/whoami without a cookie: {r:?}"
    );
}

/// A header transport (`Authorization: Bearer`): a new session's token
/// comes in `Session-Token` with `Cache-Control: no-store` and never in a
/// cookie (the client fails the test on any `Set-Cookie`); it is sent
/// again only when it changes; the same token in a cookie, or under
/// another scheme, is no session; a logout sends an empty token.
pub async fn bearer_token_is_the_only_way_in(s: &Subject) {
    let mut b = s.browser();
    let r = b.get("/new").await;
    check!(s, r.ids.len() == 1 && b.cookie.is_some(), "a token: {r:?}");
    check!(
        s,
        r.header("cache-control").as_deref() == Some("no-store"),
        "no-store with a token: {r:?}"
    );
    assert_eq!(b.get("/whoami").await.body, "bench");
    let r = b.get("/read").await;
    check!(
        s,
        r.ids.is_empty(),
        "an unchanged token is not sent again: {r:?}"
    );
    let token = b.cookie.clone().unwrap_or_default();
    let name = s.config.cookie_name().to_owned();
    let as_cookie = s
        .browser()
        .get_with_header("/whoami", "cookie", &format!("{name}={token}"))
        .await;
    check!(
        s,
        as_cookie.status == 401,
        "a token in a cookie: {as_cookie:?}"
    );
    for value in [
        format!("Basic {token}"),
        token.clone(),
        format!("bearer {token}x"),
    ] {
        let r = s
            .browser()
            .get_with_header("/whoami", "authorization", &value)
            .await;
        check!(s, r.status == 401, "{value:?} is no session: {r:?}");
    }
    let lower = s
        .browser()
        .get_with_header("/whoami", "authorization", &format!("bearer {token}"))
        .await;
    check!(
        s,
        lower.body == "bench",
        "the scheme is case-insensitive: {lower:?}"
    );
    let before = b.cookie.clone();
    b.get("/login?user=dana").await;
    check!(
        s,
        b.cookie.is_some() && b.cookie != before,
        "login: a new token"
    );
    let r = b.get("/logout").await;
    check!(
        s,
        r.ends_session && b.cookie.is_none(),
        "logout: an empty token: {r:?}"
    );
    assert_eq!(s.stored_sessions(), 0);
}
