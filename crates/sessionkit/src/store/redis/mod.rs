//! [`RedisStore`]: one Redis HASH per session.
//!
//! The folder's parts, each with one job:
//!
//! - `layout`: how a session lies in Redis (key, field names, encoding and
//!   decoding, the `RESTORE` payload, the Lua scripts and their arguments);
//! - `commands`: the store's operations as Redis commands, and what their
//!   replies mean;
//! - `connection`: the seam — the one place that knows how Redis is
//!   reached (today one standalone server); bounded calls, tracking for the
//!   cache, heartbeat;
//! - `cache`: the client cache's coherence rules.
//!
//! This file holds the public types and wires them together.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, IntoConnectionInfo};

use super::{BoxFuture, Changes, Record, SessionStore, UpdateOutcome};
use crate::{Error, StorageId};

mod cache;
mod commands;
mod connection;
mod env;
mod inventory;
mod layout;

pub use cache::{
    CacheStats, ClientCache, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_ENTRY_BYTES,
    DEFAULT_CACHE_HEARTBEAT, DEFAULT_CACHE_TTL,
};
pub use inventory::{KeyScan, StoredKey, StoredSession};
#[cfg(feature = "fuzzing")]
pub(crate) use layout::{decode_record, dump_record};

use commands::Commands;
use connection::{Connection, Options};

/// Default key prefix (the seed's).
pub const DEFAULT_PREFIX: &str = "session:";
/// Default bound on one Redis call, connection included.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The address used when none is given, as in the seed.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

/// A [`SessionStore`] on Redis, through redis-rs's [`ConnectionManager`]
/// (a multiplexed connection that reconnects by itself). Cloning is cheap
/// and shares the connection (and the [`ClientCache`], if any).
///
/// Building the store does not wait for Redis: the connection opens when a
/// request first needs it, on that request's thread, so an app starts (and
/// serves its routes that do not use the session) while Redis is still
/// down; session routes answer 503 until Redis is reachable, then work
/// without a restart. Under actix-web this also puts the connection's I/O
/// on a worker thread rather than on the thread that built the store. To
/// fail fast at boot instead, call [`check`](RedisStore::check).
///
/// ```no_run
/// # async fn run() -> Result<(), sessionkit::Error> {
/// use sessionkit::RedisStore;
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// // or: RedisStore::builder().with_prefix("myapp:session:").connect(url).await?
/// store.check().await?; // optional: fail now if Redis cannot be reached
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    commands: Commands,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = self.inner.connection.options();
        f.debug_struct("RedisStore")
            .field("prefix", &options.prefix)
            .field("response_timeout", &options.response_timeout)
            .field("connect_timeout", &options.connect_timeout)
            .field("client_cache", &options.cache.is_some())
            .field("connected", &self.inner.connection.opened().is_some())
            .finish_non_exhaustive()
    }
}

/// Options for a [`RedisStore`]; start with [`RedisStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    options: Options,
    /// Certificates for `rediss://` (a CA to trust, a client pair to show);
    /// redis-rs redacts them in `Debug`.
    #[cfg(feature = "tls")]
    tls: redis::TlsCertificates,
    /// How to log in to the servers Sentinel names.
    #[cfg(feature = "sentinel")]
    sentinel_auth: Option<connection::Credentials>,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            options: Options {
                prefix: DEFAULT_PREFIX.to_owned(),
                response_timeout: DEFAULT_RESPONSE_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                cache: Some(ClientCache::default()),
                replica_acks: None,
                max_per_user: crate::store::MAX_SESSIONS_PER_USER,
            },
            #[cfg(feature = "tls")]
            tls: redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            },
            #[cfg(feature = "sentinel")]
            sentinel_auth: None,
        }
    }
}

impl RedisStoreBuilder {
    /// Keeps at most `n` sessions per user (at least 1; default
    /// [`MAX_SESSIONS_PER_USER`](crate::store::MAX_SESSIONS_PER_USER)):
    /// attaching one more ends the one of them closest to expiring (the
    /// least recently active).
    pub fn with_max_sessions_per_user(mut self, n: usize) -> Self {
        self.options.max_per_user = n.max(1);
        self
    }

    /// Key prefix (default `session:`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// Bound on each Redis call (default 500 ms). A call that takes longer
    /// fails with [`Error::Unavailable`].
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.options.response_timeout = timeout;
        self
    }

    /// Bound on each connection attempt (default 500 ms).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Caches session records in process, kept coherent by Redis (on by
    /// default, with [`ClientCache::default`]).
    ///
    /// A load of a session this process read recently then costs no Redis
    /// round trip. Any write by any client invalidates the entry here
    /// (RESP3 `CLIENT TRACKING`, which needs Redis 6 or later; the
    /// connection is switched to RESP3 whatever the URL says). Connection
    /// loss flushes the cache. Memory is bounded in bytes
    /// ([`ClientCache::with_max_bytes`]) and in entries.
    ///
    /// If the server refuses RESP3 or client tracking (Redis 5, or an ACL
    /// without `CLIENT`), the store logs a warning and runs without the
    /// cache.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionkit::Error> {
    /// use sessionkit::store::redis::ClientCache;
    /// use sessionkit::RedisStore;
    ///
    /// let store = RedisStore::builder()
    ///     .with_client_cache(ClientCache::default().with_max_entries(100_000))
    ///     .connect("redis://127.0.0.1:6379/")
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn with_client_cache(mut self, cache: ClientCache) -> Self {
        self.options.cache = Some(cache);
        self
    }

    /// Acknowledges a session write only once `replicas` replicas have it,
    /// waiting at most `wait` (`WAIT`, bounded below the response
    /// timeout): a write the response confirmed survives the failover of
    /// its primary. Fewer replicas in time fail the request with 503 (the
    /// write stands and may still replicate). Off by default: Redis
    /// replicates asynchronously, and a failover can lose the last writes.
    pub fn with_replica_acks(mut self, replicas: u32, wait: Duration) -> Self {
        self.options.replica_acks = (replicas > 0).then_some((replicas, wait));
        self
    }

    /// No client cache: every load is one Redis round trip (`HGETALL`).
    pub fn without_client_cache(mut self) -> Self {
        self.options.cache = None;
        self
    }

    /// Trusts this CA (a PEM file's bytes) for `rediss://` connections,
    /// instead of the system's root certificates (feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn with_tls_ca(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_cert = Some(ca_pem.into());
        self
    }

    /// Presents this client certificate and private key (PEM bytes) to a
    /// Redis that asks for one (`tls-auth-clients yes`; feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn with_tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// A store for the Redis at `url`: `redis://host:port/db`, or
    /// `rediss://…` for TLS (feature `tls`; the system's root certificates
    /// unless `with_tls_ca` says otherwise). An ACL
    /// user and password go in the URL (`redis://user:password@host/`). The
    /// connection opens when first needed; this does not wait for Redis.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the URL is invalid, names TLS without the
    /// `tls` feature, or a certificate given to the builder does not parse.
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<RedisStore, Error> {
        let client = self.open_client(url)?;
        self.client(client).await
    }

    #[cfg(feature = "tls")]
    fn open_client(&self, url: impl IntoConnectionInfo) -> Result<Client, Error> {
        match self.certificates() {
            Some(certs) => Client::build_with_tls(url, certs).map_err(Error::unavailable),
            None => Client::open(url).map_err(Error::unavailable),
        }
    }

    /// The certificates given to the builder, if any (and the TLS
    /// library's crypto set up for them).
    #[cfg(feature = "tls")]
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        // rustls needs a process-wide crypto provider; with more than one
        // compiled in (an application's own rustls may bring aws-lc-rs) it
        // cannot choose and panics. Install ring unless the application
        // installed one already (then this is refused, harmlessly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let given = self.tls.root_cert.is_some() || self.tls.client_tls.is_some();
        given.then(|| self.tls.clone())
    }

    #[cfg(all(not(feature = "tls"), any(feature = "cluster", feature = "sentinel")))]
    #[allow(clippy::unused_self)]
    fn certificates(&self) -> Option<connection::NoCertificates> {
        None
    }

    #[cfg(not(feature = "tls"))]
    #[allow(clippy::unused_self)]
    fn open_client(&self, url: impl IntoConnectionInfo) -> Result<Client, Error> {
        Client::open(url).map_err(Error::unavailable)
    }

    /// Logs in to the servers the sentinels name as this ACL user (`None`:
    /// `default`) with this password (feature `sentinel`; the sentinels'
    /// own credentials go in their URLs, `redis://user:password@host`).
    /// The password is redacted in `Debug`.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn with_sentinel_auth(mut self, username: Option<&str>, password: &str) -> Self {
        self.sentinel_auth = Some(connection::Credentials {
            username: username.map(str::to_owned),
            password: password.to_owned(),
        });
        self
    }

    /// A store for the primary that the sentinels at `sentinels` (e.g.
    /// `redis://10.0.0.1:26379/`) monitor as `service` (feature
    /// `sentinel`). The primary is asked for when the connection first
    /// opens, and again when a call fails or the server answers as a
    /// replica (a failover): requests meanwhile answer 503, then go to the
    /// new primary without a restart. The cache (if on) starts empty on
    /// each new primary.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if no sentinel address is given or one is not
    /// a valid URL.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub async fn sentinel<T: IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = T>,
        service: &str,
    ) -> Result<RedisStore, Error> {
        let sentinels = sentinels.into_iter().collect();
        let auth = self.sentinel_auth.as_ref();
        let source = connection::Source::sentinel(sentinels, service, auth, self.certificates())?;
        Ok(RedisStore::from(Connection::new(source, self.options)))
    }

    /// A store for the Redis Cluster that `nodes` (seed nodes, e.g.
    /// `redis://10.0.0.1:7000/`, or `rediss://` for TLS with the
    /// builder's certificates) belong to (feature `cluster`). Every
    /// operation names one key, so one slot; redis-rs routes it, follows
    /// `MOVED` / `ASK` and refreshes the slot map after a failover or a
    /// resharding. The client cache keeps a tracking connection of its
    /// own to every primary (those redis-rs' cluster connection uses report
    /// no pushes); it serves only while every primary of the moment is
    /// tracked, and flushes when one of those connections drops or goes
    /// silent or the set of primaries changes.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if no node is given or one is not a valid
    /// URL.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn cluster<T: IntoConnectionInfo>(
        self,
        nodes: impl IntoIterator<Item = T>,
    ) -> Result<RedisStore, Error> {
        let nodes = nodes.into_iter().collect();
        let source =
            connection::Source::cluster(nodes, self.options.connect_timeout, self.certificates())?;
        Ok(RedisStore::from(Connection::new(source, self.options)))
    }

    /// A store for the server an existing [`redis::Client`] names. The
    /// connection opens when first needed.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for checks of the client.
    pub async fn client(self, client: Client) -> Result<RedisStore, Error> {
        Ok(RedisStore::from(Connection::new(
            connection::Source::Server(client),
            self.options,
        )))
    }

    /// Uses an existing [`ConnectionManager`] (its own timeouts apply, and
    /// this builder's response timeout bounds each call on top).
    ///
    /// Never caches: the [`ClientCache`] needs a connection of its own,
    /// which [`connect`](Self::connect) and [`client`](Self::client) make.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for checks of the connection.
    pub async fn manager(self, conn: ConnectionManager) -> Result<RedisStore, Error> {
        Ok(RedisStore::from(Connection::given(conn, self.options)))
    }
}

impl From<Connection> for RedisStore {
    fn from(connection: Connection) -> Self {
        RedisStore {
            inner: Arc::new(Inner {
                connection,
                commands: Commands::new(),
            }),
        }
    }
}

impl RedisStore {
    /// Options: prefix, timeouts, client cache.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// A store for the Redis at `url` with the default options (see
    /// [`RedisStoreBuilder::connect`]).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the URL is invalid.
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// A store for an existing [`redis::Client`], with the default options.
    ///
    /// # Errors
    ///
    /// None today (see [`RedisStoreBuilder::client`]).
    pub async fn new(client: Client) -> Result<Self, Error> {
        Self::builder().client(client).await
    }

    /// A store for `redis://127.0.0.1:6379/`, as the seed connects when
    /// given no client.
    ///
    /// # Errors
    ///
    /// None in practice (the URL is valid).
    pub async fn connect_default() -> Result<Self, Error> {
        Self::connect(DEFAULT_URL).await
    }

    /// Checks now that Redis can be reached and answers, within the
    /// connect and response timeouts: the way to fail fast at boot, or to
    /// answer a health check. It uses the store's connection when that is
    /// open, and otherwise a connection of its own, closed again (so that a
    /// check on a framework's main thread does not put the store's
    /// connection there).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if Redis cannot be reached or does not answer.
    pub async fn check(&self) -> Result<(), Error> {
        self.inner.connection.check().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.connection.options().prefix
    }

    /// Runs `cmd` (on one key) on the store's connection, bounded like
    /// every store call, for another layout of sessions (the Flask
    /// recipe's): a `WRONGTYPE` reply is corrupt data, any other error
    /// reply a failure.
    #[cfg(feature = "flask")]
    pub(crate) async fn run_command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, Error> {
        let link = self.inner.connection.link().await?;
        let answer = link.run_raw(cmd).await?;
        commands::classify(&link, answer)
    }

    /// [`run_command`](Self::run_command) for a pipeline on one key.
    #[cfg(feature = "flask")]
    pub(crate) async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
        let link = self.inner.connection.link().await?;
        let answer = link.pipe_raw(pipe).await?;
        commands::classify(&link, answer)
    }

    /// The client cache's counters; `None` when the store runs without one
    /// ([`RedisStoreBuilder::without_client_cache`], or the server refused
    /// it). Zero until the connection has opened.
    pub fn client_cache_stats(&self) -> Option<CacheStats> {
        match self.inner.connection.opened() {
            Some(link) => link.cache().map(cache::Cache::stats),
            None => self
                .inner
                .connection
                .options()
                .cache
                .as_ref()
                .map(|_| CacheStats::default()),
        }
    }

    /// The Redis key of a session.
    pub fn key(&self, id: &StorageId) -> String {
        let prefix = self.prefix();
        let mut key = String::with_capacity(prefix.len() + id.as_str().len());
        key.push_str(prefix);
        key.push_str(id.as_str());
        key
    }
}

impl RedisStore {
    /// [`key`](Self::key), for a store operation: the Flask recipe's ids
    /// (unhashed) are refused, as they belong to `FlaskStore`.
    fn session_key(&self, id: &StorageId) -> Result<String, Error> {
        if id.flask_uuid().is_some() {
            return Err(Error::unavailable(
                "RedisStore keeps hashed ids: the Flask recipe's ids (IdFormat::Uuid4) need FlaskStore",
            ));
        }
        Ok(self.key(id))
    }
}

impl SessionStore for RedisStore {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner
                .commands
                .load(&link, &self.session_key(id)?)
                .await
        })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner
                .commands
                .create(&link, &self.session_key(id)?, record)
                .await
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner
                .commands
                .update(&link, &self.session_key(id)?, changes)
                .await
        })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner
                .commands
                .delete(&link, &self.session_key(id)?)
                .await
        })
    }

    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner.commands.sessions_of(&link, user).await
        })
    }

    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.session_key(id)?;
            self.inner.commands.revoke(&link, id.as_str()).await
        })
    }

    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let link = self.inner.connection.link().await?;
            self.inner
                .commands
                .take(&link, &self.session_key(id)?, moved_to)
                .await
        })
    }
}
