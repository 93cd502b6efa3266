//! The connection seam: the one place that knows how the store reaches
//! Redis (one server through a redis-rs [`ConnectionManager`], the primary
//! Sentinel names, or a Redis Cluster). Above it, the operations (`commands`) and the
//! client cache see only this: run a command, a pipeline or a script
//! for one key, within the store's response timeout; and, for the cache,
//! which keys others changed and when the stream of those reports may have
//! a gap (a lost connection, a failed call, a silent connection).
//!
//! The connection opens on first use, on the runtime of the call that
//! needs it: a store can be built while Redis is down (requests then fail
//! with [`Error::Unavailable`] until it is up), and under actix-web, whose
//! workers are single-threaded runtimes, the connection's I/O runs on the
//! first worker that uses it rather than on the thread that built the
//! store (no third thread competing for the CPUs, and that worker's calls
//! never leave its thread). After that, redis-rs reconnects by itself.
//!
//! With the client cache, the connection speaks RESP3 and tracks the key
//! prefix (`CLIENT TRACKING ON BCAST PREFIX <prefix> NOLOOP`): Redis pushes
//! `invalidate` for every change by another client to a key under it. A
//! heartbeat pings the connection when nothing else has for a while, so
//! that a silently dead connection stops the cache from serving.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, ProtocolVersion, PushInfo, ServerErrorKind,
    Value,
};
use tokio::sync::OnceCell;

use super::cache::{Cache, ClientCache};
use super::layout::{self, Lua};
use crate::Error;

mod tracking;

use tracking::{heartbeat, on_push, refused, track_keys};

/// An ACL user (none: `default`) and password, redacted in `Debug`.
#[derive(Clone)]
#[cfg_attr(not(feature = "sentinel"), allow(dead_code))]
pub(super) struct Credentials {
    pub(super) username: Option<String>,
    pub(super) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Certificates for TLS connections (a CA to trust, a client pair).
#[cfg(feature = "tls")]
pub(super) type Certificates = redis::TlsCertificates;
/// Without the `tls` feature there are none to give.
#[cfg(all(not(feature = "tls"), any(feature = "cluster", feature = "sentinel")))]
pub(super) type Certificates = NoCertificates;

/// The certificates of a build without TLS: none.
#[cfg(all(not(feature = "tls"), any(feature = "cluster", feature = "sentinel")))]
#[derive(Clone, Copy, Debug)]
pub(super) enum NoCertificates {}

/// What the store's connection is made of.
#[derive(Clone, Debug)]
pub(super) struct Options {
    pub(super) prefix: String,
    pub(super) response_timeout: Duration,
    pub(super) connect_timeout: Duration,
    /// Track keys for this client cache (if the server allows it).
    pub(super) cache: Option<ClientCache>,
    /// Acknowledge a write only once this many replicas have it, waiting
    /// at most this long (`WAIT`).
    pub(super) replica_acks: Option<(u32, Duration)>,
    /// Sessions one user may have (the index's cap).
    pub(super) max_per_user: usize,
}

/// The connection a link runs its calls on.
#[derive(Clone)]
enum Conn {
    /// One server (or the primary Sentinel named).
    Manager(ConnectionManager),
    /// A Redis Cluster: redis-rs routes each call by its key's slot,
    /// follows `MOVED` / `ASK`, and refreshes the slot map.
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the store's connection comes from.
pub(super) enum Source {
    /// One server: redis-rs reconnects to it by itself.
    Server(Client),
    /// The primary that Sentinel names: asked again when the connection
    /// to it fails or it answers as a replica (a failover).
    #[cfg(feature = "sentinel")]
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    /// A Redis Cluster, from its seed nodes.
    #[cfg(feature = "cluster")]
    Cluster(Box<Cluster>),
    /// A connection given ready-made.
    Given,
}

impl Source {
    /// The primary that the sentinels at `sentinels` monitor as `service`.
    /// Sentinels reached over TLS (`rediss://`) mean servers reached over
    /// TLS too, both with `certificates` if given; the first sentinel URL's
    /// user and password are every sentinel's, `auth` the servers'.
    #[cfg(feature = "sentinel")]
    pub(super) fn sentinel<T: redis::IntoConnectionInfo>(
        sentinels: Vec<T>,
        service: &str,
        auth: Option<&Credentials>,
        certificates: Option<Certificates>,
    ) -> Result<Self, Error> {
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};

        let infos = connection_infos(sentinels)?;
        let Some(first) = infos.first().map(|i| i.redis_settings().clone()) else {
            return Err(Error::unavailable("no sentinel address given"));
        };
        let tls = infos
            .iter()
            .any(|i| matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. }));
        let addrs = infos.into_iter().map(|i| i.addr().clone());
        let mut builder = SentinelClientBuilder::new(addrs, service, SentinelServerType::Master)
            .map_err(Error::unavailable)?;
        if let Some(user) = first.username() {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = first.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(auth) = auth {
            if let Some(user) = &auth.username {
                builder = builder.set_client_to_redis_username(user);
            }
            builder = builder.set_client_to_redis_password(&auth.password);
        }
        if tls {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            #[cfg(feature = "tls")]
            if let Some(certs) = certificates {
                builder = builder
                    .set_client_to_sentinel_certificates(certs.clone())
                    .set_client_to_redis_certificates(certs);
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = certificates;
        let client = builder.build().map_err(Error::unavailable)?;
        Ok(Source::Sentinel(tokio::sync::Mutex::new(client)))
    }

    /// The Redis Cluster that `nodes` (seed nodes) belong to.
    #[cfg(feature = "cluster")]
    pub(super) fn cluster<T: redis::IntoConnectionInfo>(
        nodes: Vec<T>,
        connect_timeout: Duration,
        certificates: Option<Certificates>,
    ) -> Result<Self, Error> {
        let seeds = connection_infos(nodes)?;
        if seeds.is_empty() {
            return Err(Error::unavailable("no cluster node given"));
        }
        let builder = redis::cluster::ClusterClient::builder(seeds.clone())
            .connection_timeout(connect_timeout);
        #[cfg(feature = "tls")]
        let builder = match &certificates {
            Some(certs) => builder.certs(certs.clone()),
            None => builder,
        };
        let client = builder.build().map_err(Error::unavailable)?;
        Ok(Source::Cluster(Box::new(Cluster {
            client,
            seeds,
            certificates,
        })))
    }
}

/// A Redis Cluster: redis-rs' client for it, and what the client cache's
/// own connections to its primaries are made from.
#[cfg(feature = "cluster")]
pub(super) struct Cluster {
    client: redis::cluster::ClusterClient,
    seeds: Vec<redis::ConnectionInfo>,
    certificates: Option<Certificates>,
}

/// Each of `urls` parsed (an invalid one is an error).
#[cfg(any(feature = "cluster", feature = "sentinel"))]
fn connection_infos<T: redis::IntoConnectionInfo>(
    urls: Vec<T>,
) -> Result<Vec<redis::ConnectionInfo>, Error> {
    urls.into_iter()
        .map(redis::IntoConnectionInfo::into_connection_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::unavailable)
}

/// The store's way to Redis, opened on first use.
pub(super) struct Connection {
    source: Source,
    options: Options,
    /// The open link. Replaced only where the source can name another
    /// server (Sentinel), once the link is [`stale`](Link::stale).
    link: std::sync::RwLock<Option<Arc<Link>>>,
    /// Serializes opening, so that concurrent first calls open one link.
    opening: tokio::sync::Mutex<()>,
}

/// An open connection and what belongs to it.
pub(super) struct Link {
    conn: Conn,
    cache: Option<Cached>,
    prefix: String,
    /// [`Options::max_per_user`].
    max_per_user: usize,
    timeout: Duration,
    /// The server's `major.minor`, asked once (`None`: it would not say).
    version: OnceCell<Option<(u32, u32)>>,
    /// Whether a failed call marks the link stale (its source can name
    /// another server).
    replaceable: bool,
    /// [`Options::replica_acks`], the wait bounded below the response
    /// timeout.
    replica_acks: Option<(u32, Duration)>,
    /// The server stopped being the one to use (unreachable, or answering
    /// as a replica): the next call opens a new link.
    stale: std::sync::atomic::AtomicBool,
}

/// A link's client cache and the task that keeps its invalidation stream
/// checked (one server's heartbeat; on Cluster, the tracking of every
/// primary), which stops with the link.
struct Cached {
    cache: Arc<Cache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cached {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// A connection to what `source` names, opened when first needed.
    pub(super) fn new(source: Source, options: Options) -> Self {
        Connection {
            source,
            options,
            link: std::sync::RwLock::new(None),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The caller's connection (never cached: the cache needs a connection
    /// whose pushes it receives).
    pub(super) fn given(conn: ConnectionManager, mut options: Options) -> Self {
        options.cache = None;
        let link = Link::new(Conn::Manager(conn), None, &options, false);
        Connection {
            source: Source::Given,
            link: std::sync::RwLock::new(Some(Arc::new(link))),
            options,
            opening: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn options(&self) -> &Options {
        &self.options
    }

    /// The open link, if it is open.
    pub(super) fn opened(&self) -> Option<Arc<Link>> {
        // A poisoned lock only ever held a whole `Option<Arc<_>>`.
        self.link.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open link, unless it is stale.
    fn current(&self) -> Option<Arc<Link>> {
        self.opened().filter(|l| !l.is_stale())
    }

    /// The link, opened now if it is not yet, or again if it went stale
    /// (within the response timeout).
    pub(super) async fn link(&self) -> Result<Arc<Link>, Error> {
        if let Some(link) = self.current() {
            return Ok(link);
        }
        tokio::time::timeout(self.options.response_timeout, self.reopen())
            .await
            .map_err(Error::unavailable)?
    }

    async fn reopen(&self) -> Result<Arc<Link>, Error> {
        let _one = self.opening.lock().await;
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let link = Arc::new(self.open().await?);
        *self.link.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&link));
        Ok(link)
    }

    /// A client for the server to use now.
    async fn client(&self) -> Result<Client, Error> {
        match &self.source {
            Source::Server(client) => Ok(client.clone()),
            #[cfg(feature = "sentinel")]
            Source::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                tokio::time::timeout(
                    self.options.connect_timeout * 2,
                    sentinel.async_get_client(),
                )
                .await
                .map_err(Error::unavailable)?
                .map_err(Error::unavailable)
            }
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => Err(Error::unavailable("a cluster has no single server")),
            Source::Given => Err(Error::unavailable("the store's connection is gone")),
        }
    }

    /// Opens a link to the cluster; with `cached`, and the cache asked
    /// for, with the cache's own tracking connection to every primary (if
    /// the nodes allow it; else without, with a warning). A primary that
    /// cannot be reached yet does not stop the link: the cache fills once
    /// every primary is tracked.
    #[cfg(feature = "cluster")]
    async fn open_cluster(&self, cluster: &Cluster, cached: bool) -> Result<Link, Error> {
        let conn = tokio::time::timeout(
            self.options.connect_timeout * 4,
            cluster.client.get_async_connection(),
        )
        .await
        .map_err(Error::unavailable)?
        .map_err(Error::unavailable)?;
        let cache = match &self.options.cache {
            Some(options) if cached => {
                let cache = Arc::new(Cache::new(options, self.options.response_timeout));
                let mut tracker = tracking::ClusterTracker {
                    cache: Arc::clone(&cache),
                    seeds: cluster.seeds.clone(),
                    certificates: cluster.certificates.clone(),
                    prefix: self.options.prefix.clone(),
                    timeout: self.options.response_timeout,
                    connect_timeout: self.options.connect_timeout,
                    nodes: std::collections::BTreeMap::new(),
                };
                match tracker.sync().await {
                    Err(e) if refused(&e) => {
                        tracing::warn!(
                            error = %crate::error::Chain(&e),
                            "the cluster refused RESP3 client tracking (or CLUSTER NODES); \
                             running without the client cache"
                        );
                        None
                    }
                    _ => Some(Cached {
                        cache,
                        task: tokio::spawn(tracker.run()),
                    }),
                }
            }
            _ => None,
        };
        Ok(Link::new(Conn::Cluster(conn), cache, &self.options, false))
    }

    /// Checks now that Redis answers: on the open link if there is one,
    /// else on a connection of its own, closed again.
    pub(super) async fn check(&self) -> Result<(), Error> {
        let ping = redis::cmd("PING");
        if let Some(link) = self.current() {
            return link.run::<Value>(&ping).await.map(|_| ());
        }
        #[cfg(feature = "cluster")]
        if let Source::Cluster(cluster) = &self.source {
            // A cluster connection of its own, closed again.
            let link = self.open_cluster(cluster, false).await?;
            return link.run::<Value>(&ping).await.map(|_| ());
        }
        let client = self.client().await?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(self.options.response_timeout));
        let check = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            ping.query_async::<Value>(&mut conn).await
        };
        let bound = self.options.connect_timeout + self.options.response_timeout;
        match tokio::time::timeout(bound, check).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::unavailable(e)),
            Err(elapsed) => Err(Error::unavailable(elapsed)),
        }
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            // Every call the store makes is bounded by its own response
            // timeout (`Link::bounded`, which also flushes the client cache
            // when it fires); a second timer inside redis-rs would cost
            // every call a timer-wheel insert and removal for nothing.
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.options.connect_timeout))
            // No retry loop inside the connection: while Redis is down, each
            // request makes (at most) one bounded reconnect attempt and fails
            // fast with a 503, and the first request after Redis is back
            // reconnects. Sleeping retries would make every request wait for
            // them.
            .set_number_of_retries(0)
    }

    async fn manager(
        &self,
        client: Client,
        config: ConnectionManagerConfig,
    ) -> Result<ConnectionManager, Error> {
        let connect = ConnectionManager::new_with_config(client, config);
        tokio::time::timeout(self.options.connect_timeout * 4, connect)
            .await
            .map_err(Error::unavailable)?
            .map_err(Error::unavailable)
    }

    /// Opens the link: with the cache if asked for and the server allows
    /// it (else without, with a warning).
    async fn open(&self) -> Result<Link, Error> {
        #[cfg(feature = "cluster")]
        if let Source::Cluster(cluster) = &self.source {
            return self.open_cluster(cluster, true).await;
        }
        let client = &self.client().await?;
        let cached = match &self.options.cache {
            Some(options) => match self.open_cached(client, options).await {
                Ok(cached) => Some(cached),
                Err(e) if refused(&e) => {
                    tracing::warn!(
                        error = %crate::error::Chain(&e),
                        "Redis refused RESP3 client tracking; running without the client cache"
                    );
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (conn, cache) = match cached {
            Some((conn, cache)) => (conn, Some(cache)),
            None => (
                self.manager(client.clone(), self.manager_config()).await?,
                None,
            ),
        };
        let replaceable = !matches!(self.source, Source::Server(_) | Source::Given);
        Ok(Link::new(
            Conn::Manager(conn),
            cache,
            &self.options,
            replaceable,
        ))
    }

    /// Connects over RESP3 with the cache's push handler, and enables
    /// tracking before the first load.
    async fn open_cached(
        &self,
        client: &Client,
        options: &ClientCache,
    ) -> Result<(ConnectionManager, Cached), Error> {
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3)).map_err(Error::unavailable)?;
        let cache = Arc::new(Cache::new(options, self.options.response_timeout));
        let pushes = Arc::clone(&cache);
        let config = self
            .manager_config()
            .set_push_sender(move |push: PushInfo| {
                on_push(&pushes, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = self.manager(client, config).await?;
        let epoch = cache.epoch();
        let mut tracking = redis::pipe();
        track_keys(&mut tracking, &self.options.prefix);
        match tokio::time::timeout(
            self.options.response_timeout,
            tracking.query_async::<(Value, Value)>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => cache.tracking_confirmed(epoch),
            Ok(Err(e)) => return Err(Error::unavailable(e)),
            Err(elapsed) => return Err(Error::unavailable(elapsed)),
        }
        cache.alive();
        let task = tokio::spawn(heartbeat(
            Arc::clone(&cache),
            conn.clone(),
            self.options.response_timeout,
        ));
        Ok((conn, Cached { cache, task }))
    }
}

/// The version in an `INFO server` reply: one server's text, or — from a
/// cluster, which asks every primary — the oldest of theirs.
fn version_of(reply: &Value) -> Option<(u32, u32)> {
    match reply {
        Value::BulkString(b) => layout::server_version(&String::from_utf8_lossy(b)),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => layout::server_version(s),
        Value::Map(nodes) => nodes.iter().map(|(_, v)| version_of(v)).min().flatten(),
        _ => None,
    }
}

impl Link {
    fn new(conn: Conn, cache: Option<Cached>, options: &Options, replaceable: bool) -> Self {
        Link {
            conn,
            cache,
            prefix: options.prefix.clone(),
            max_per_user: options.max_per_user,
            timeout: options.response_timeout,
            version: OnceCell::new(),
            replaceable,
            stale: std::sync::atomic::AtomicBool::new(false),
            replica_acks: options
                .replica_acks
                .map(|(n, wait)| (n, wait.min(options.response_timeout * 4 / 5))),
        }
    }

    /// With replica acknowledgements on, waits until that many replicas
    /// have every write this connection made so far (`WAIT`, on the node
    /// that holds `key`): a write is acknowledged only then. Fewer in time
    /// is a failure — the write stands, but may be lost in a failover.
    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    pub(super) async fn replicated(&self, key: &str) -> Result<(), Error> {
        let Some((replicas, wait)) = self.replica_acks else {
            return Ok(());
        };
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(crate::store::ms(wait));
        let acked: i64 = match &self.conn {
            Conn::Manager(_) => self.run(&cmd).await?,
            #[cfg(feature = "cluster")]
            Conn::Cluster(cluster) => {
                use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
                let node =
                    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                self.routed(cluster, &cmd, node).await?
            }
        };
        if acked < i64::from(replicas) {
            return Err(Error::unavailable(format!(
                "the write reached {acked} of {replicas} replicas in {wait:?}"
            )));
        }
        Ok(())
    }

    fn is_stale(&self) -> bool {
        self.stale.load(std::sync::atomic::Ordering::Acquire)
    }

    /// After a call answered `result`: a link whose source can name
    /// another server goes stale when the server is gone or answers as a
    /// replica (`READONLY`) or without its primary (`MASTERDOWN`).
    fn judge<T>(&self, result: &Result<redis::RedisResult<T>, Error>) {
        if !self.replaceable {
            return;
        }
        let moved_on = match result {
            Err(_) => true,
            Ok(Err(e)) => matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING")),
            Ok(Ok(_)) => false,
        };
        if moved_on {
            self.stale.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    pub(super) fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref().map(|c| &*c.cache)
    }

    /// The store's key prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sessions one user may have.
    pub(super) fn max_per_user(&self) -> usize {
        self.max_per_user
    }

    /// The server's version (`major.minor`), asked with `INFO server` the
    /// first time; `None` if the server would not say (an ACL without
    /// `INFO`, say). A failed call is not remembered: the next one asks
    /// again.
    pub(super) async fn server_version(&self) -> Result<Option<(u32, u32)>, Error> {
        let ask = || async {
            let mut info = redis::cmd("INFO");
            info.arg("server");
            Ok::<_, Error>(match self.run_raw::<Value>(&info).await? {
                Ok(reply) => version_of(&reply),
                Err(_) => None,
            })
        };
        self.version.get_or_try_init(ask).await.copied()
    }

    /// The primaries that hold the data, for commands that concern one
    /// node rather than one key (`SCAN`, `DBSIZE`): one server (`None`),
    /// or every primary of the cluster by address.
    pub(super) async fn data_nodes(&self) -> Result<Vec<Option<(String, u16)>>, Error> {
        match &self.conn {
            Conn::Manager(_) => Ok(vec![None]),
            #[cfg(feature = "cluster")]
            Conn::Cluster(cluster) => {
                use redis::cluster_routing::SingleNodeRoutingInfo;
                let mut nodes = redis::cmd("CLUSTER");
                nodes.arg("NODES");
                let text: String = self
                    .routed(cluster, &nodes, SingleNodeRoutingInfo::Random)
                    .await?;
                Ok(tracking::primaries_in(&text, "")?
                    .into_iter()
                    .map(Some)
                    .collect())
            }
        }
    }

    /// Runs `cmd` on `node` (from [`data_nodes`](Self::data_nodes)); an
    /// error reply is a failure.
    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    pub(super) async fn run_on<T: FromRedisValue>(
        &self,
        node: Option<&(String, u16)>,
        cmd: &Cmd,
    ) -> Result<T, Error> {
        match (&self.conn, node) {
            #[cfg(feature = "cluster")]
            (Conn::Cluster(cluster), Some((host, port))) => {
                use redis::cluster_routing::SingleNodeRoutingInfo;
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                self.routed(cluster, cmd, node).await
            }
            _ => self.run(cmd).await,
        }
    }

    /// Runs `cmd` on the one cluster node `node` names (within the
    /// response timeout; an error reply is a failure).
    #[cfg(feature = "cluster")]
    async fn routed<T: FromRedisValue>(
        &self,
        cluster: &redis::cluster_async::ClusterConnection,
        cmd: &Cmd,
        node: redis::cluster_routing::SingleNodeRoutingInfo,
    ) -> Result<T, Error> {
        let route = redis::cluster_routing::RoutingInfo::SingleNode(node);
        let mut conn = cluster.clone();
        let answer = self.bounded(conn.route_command(cmd.clone(), route)).await?;
        let value = self.failed_on_error(answer)?;
        redis::from_redis_value(value).map_err(Error::unavailable)
    }

    /// Runs `cmd`; an error reply is a failure.
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let answer = self.run_raw(cmd).await?;
        self.failed_on_error(answer)
    }

    /// Runs `cmd` and returns the server's answer, error replies included,
    /// for the caller to judge.
    pub(super) async fn run_raw<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
    ) -> Result<redis::RedisResult<T>, Error> {
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline whose commands all touch one key, returning the server's answer as
    /// [`run_raw`](Self::run_raw) does.
    pub(super) async fn pipe_raw<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<redis::RedisResult<T>, Error> {
        let mut conn = self.conn.clone();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    /// [`pipe_raw`](Self::pipe_raw); an error reply is a failure.
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, Error> {
        let answer = self.pipe_raw(pipe).await?;
        self.failed_on_error(answer)
    }

    /// Runs a script command built by `build` (`EVALSHA`); if the server
    /// does not have the script (a restart, `SCRIPT FLUSH`, another node),
    /// sends it again by source (`EVAL`, which caches it there).
    pub(super) async fn eval(
        &self,
        script: &Lua,
        key: &str,
        args: impl Fn(&mut Cmd),
    ) -> Result<redis::RedisResult<Value>, Error> {
        let build = |by_source: bool| {
            let mut cmd = script.cmd(by_source, key);
            args(&mut cmd);
            cmd
        };
        match self.run_raw(&build(false)).await? {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.run_raw(&build(true)).await
            }
            answer => Ok(answer),
        }
    }

    /// An error reply is a failed call: with the cache, the outcome of a
    /// write is unknown, so everything cached goes.
    pub(super) fn failed_on_error<T>(&self, answer: redis::RedisResult<T>) -> Result<T, Error> {
        answer.map_err(|e| {
            if let Some(cache) = self.cache() {
                cache.flush();
            }
            Error::unavailable(e)
        })
    }

    /// Runs one Redis call within the response timeout, and returns the
    /// server's answer, error replies included. No answer (a timeout, a
    /// broken connection) is an error, and flushes the cache; an answer
    /// proves the invalidation stream alive.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<redis::RedisResult<T>, Error> {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Err(e)) if !matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                Err(Error::unavailable(e))
            }
            Ok(answer) => Ok(answer),
            Err(elapsed) => Err(Error::unavailable(elapsed)),
        };
        if let Some(cache) = self.cache() {
            match result {
                Ok(_) if self.carries_pushes() => cache.alive(),
                Ok(_) => {}
                Err(_) => cache.flush(),
            }
        }
        self.judge(&result);
        result
    }

    /// Whether the cache's invalidations arrive on this link's own
    /// connection (one server), rather than on connections of their own
    /// (Cluster), whose answers are what prove the stream alive.
    fn carries_pushes(&self) -> bool {
        matches!(self.conn, Conn::Manager(_))
    }

    /// One `HGETALL` of `key`, as the server answers it. With `track`,
    /// tracking is (re-)enabled first, pipelined so that it is on the same
    /// connection; the flag says whether that worked (if the server refuses
    /// it, the load still succeeds: the cache just does not fill). On
    /// Cluster, tracking is the tracking connections' business: never here.
    pub(super) async fn fetch(
        &self,
        key: &str,
        track: bool,
    ) -> Result<(redis::RedisResult<Value>, bool), Error> {
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(key);
        if !track || !self.carries_pushes() {
            return Ok((self.run_raw(&hgetall).await?, false));
        }
        let mut pipe = redis::pipe();
        track_keys(&mut pipe, &self.prefix);
        pipe.add_command(hgetall).ignore_errors();
        let (_, tracking, reply): (
            redis::RedisResult<Value>,
            redis::RedisResult<Value>,
            redis::RedisResult<Value>,
        ) = self.pipe(&pipe).await?;
        if let Err(e) = &tracking {
            tracing::debug!(error = %e, "Redis refused CLIENT TRACKING; this load is not cached");
        }
        Ok((reply, tracking.is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_s_version_is_its_oldest_node_s() {
        let text =
            |v: &str| Value::BulkString(format!("# Server\r\nredis_version:{v}\r\n").into_bytes());
        assert_eq!(version_of(&text("7.0.15")), Some((7, 0)));
        let nodes = Value::Map(vec![
            (Value::SimpleString("a".into()), text("7.2.4")),
            (Value::SimpleString("b".into()), text("6.2.14")),
        ]);
        assert_eq!(version_of(&nodes), Some((6, 2)));
        let unknown = Value::Map(vec![
            (Value::SimpleString("a".into()), text("7.2.4")),
            (Value::SimpleString("b".into()), Value::Nil),
        ]);
        assert_eq!(
            version_of(&unknown),
            None,
            "a node that does not say: the plain layout"
        );
        assert_eq!(version_of(&Value::Nil), None);
    }
}
