//! The store's connections ("lanes"), where they run, and how sessions are
//! split among them.
//!
//! A lane is one redis-rs [`ConnectionManager`] and, with the client cache,
//! its [`Cache`]. `connect` opens lane 0 (which proves Redis reachable);
//! the others open when first needed. Under actix-web, whose workers are
//! single-threaded runtimes, the adapter registers each worker
//! ([`Lanes::add_home`]) and lane `k` opens on worker `k mod workers`, so
//! that its I/O task runs on that worker's thread — lane 0 too, replacing
//! the connection `connect` made. Elsewhere (tokio's multi-threaded
//! runtime, which moves tasks between its threads anyway) lane 0 stays as
//! `connect` made it and the others open where first needed.
//! Why: a multiplexed connection's I/O is one task on one thread. Opened in
//! actix-web's `main`, it runs on a third thread beside the two workers,
//! and every Redis call hands off to it and back; on a worker, the calls of
//! that worker do not leave their thread, and no third thread competes for
//! the CPUs (measured: ARCHITECTURE.md, "the connection's structure").
//!
//! With several lanes ([`RedisStoreBuilder::with_connections`](super::RedisStoreBuilder::with_connections)),
//! sessions are split by [`StorageId::shard`](crate::StorageId) (the first
//! character of the digest) and every operation on a session goes through
//! its shard's lane, whose cache holds only that shard. Each lane's
//! connection tracks the whole prefix (`CLIENT TRACKING ON BCAST PREFIX …
//! NOLOOP`) and ignores invalidations of other shards' keys, the other
//! lanes' own writes among them. So every cached session still has exactly
//! one connection carrying its reads, its writes and its invalidations, in
//! one order — what the cache's coherence rests on (the `cache` module)
//! holds per lane unchanged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, ErrorKind, ProtocolVersion, PushInfo, Script, ServerErrorKind, Value};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::OnceCell;

use super::cache::{Cache, CacheStats, ClientCache};
use super::RedisStoreBuilder;
use crate::id::shard_of;
use crate::Error;

/// One connection and what belongs to it.
pub(super) struct Lane {
    conn: ConnectionManager,
    cache: Option<Cached>,
    /// The key prefix this lane's connection tracks.
    prefix: String,
    timeout: Duration,
}

/// A lane's client cache and its heartbeat, which stops with the lane.
struct Cached {
    cache: Arc<Cache>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Cached {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// All lanes of a store (shared by its clones).
pub(super) struct Lanes {
    slots: Box<[OnceCell<Lane>]>,
    /// The connection `connect` made, until lane 0 takes it or replaces it.
    parked: Mutex<Option<Lane>>,
    /// How to open a lane; `None` when the one lane was given ready-made.
    opener: Option<Opener>,
    /// Worker runtimes to open lanes on, with their threads.
    homes: Mutex<Vec<(std::thread::ThreadId, Handle)>>,
    /// Whether lanes run the client cache.
    cached: bool,
    timeout: Duration,
}

/// At most this many worker runtimes are remembered as homes.
const MAX_HOMES: usize = 256;

impl Lanes {
    /// Lanes opened on demand by `opener`; `first`, the connection that
    /// proved Redis reachable, becomes lane 0 unless lane 0 opens on a
    /// worker's thread.
    pub(super) fn new(opener: Opener, first: Lane) -> Self {
        let n = opener.options.connections;
        Lanes {
            slots: (0..n).map(|_| OnceCell::new()).collect(),
            timeout: opener.options.response_timeout,
            cached: first.cache.is_some(),
            parked: Mutex::new(Some(first)),
            opener: Some(opener),
            homes: Mutex::new(Vec::new()),
        }
    }

    /// One lane, on a connection the caller made (never cached).
    pub(super) fn given(conn: ConnectionManager, prefix: &str, timeout: Duration) -> Self {
        let lane = Lane {
            conn,
            cache: None,
            prefix: prefix.to_owned(),
            timeout,
        };
        Lanes {
            slots: Box::new([OnceCell::new_with(Some(lane))]),
            parked: Mutex::new(None),
            opener: None,
            homes: Mutex::new(Vec::new()),
            cached: false,
            timeout,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn cached(&self) -> bool {
        self.cached
    }

    /// The bound on each Redis call, opening a lane included.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Lane `k` if it is open.
    pub(super) fn ready(&self, k: usize) -> Option<&Lane> {
        self.slots.get(k).and_then(OnceCell::get)
    }

    /// Lane `k`, opened now if it is not yet (within the response timeout).
    pub(super) async fn get(&self, k: usize) -> Result<&Lane, Error> {
        let Some(slot) = self.slots.get(k) else {
            return Err(Error::unavailable(format!("no connection {k}")));
        };
        if let Some(lane) = slot.get() {
            return Ok(lane);
        }
        tokio::time::timeout(self.timeout, slot.get_or_try_init(|| self.open(k)))
            .await
            .map_err(Error::unavailable)?
    }

    async fn open(&self, k: usize) -> Result<Lane, Error> {
        let Some(opener) = &self.opener else {
            return Err(Error::unavailable("the store's connection is gone"));
        };
        let (home, parked) = {
            let homes = self.homes.lock().unwrap_or_else(|p| p.into_inner());
            let home = homes.get(k % homes.len().max(1)).map(|(_, h)| h.clone());
            let parked = if k == 0 {
                self.parked.lock().unwrap_or_else(|p| p.into_inner()).take()
            } else {
                None
            };
            (home, parked)
        };
        if let Some(home) = home {
            // A fresh connection on the home replaces the one `connect`
            // made, which runs on the thread that connected (dropping it
            // closes it). A home whose runtime has stopped refuses the task
            // (a `JoinError`): the lane then stays or opens here.
            if let Ok(opened) = home.spawn(opener.clone().open(k)).await {
                return opened;
            }
        }
        if let Some(lane) = parked {
            return Ok(lane);
        }
        opener.clone().open(k).await
    }

    /// Registers the current thread's runtime as a home for lanes, if it is
    /// a single-threaded one (an actix-web worker); lanes that open later
    /// are spread over the homes in the order they came.
    pub(super) fn add_home(&self) {
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return;
        }
        let thread = std::thread::current().id();
        let mut homes = self.homes.lock().unwrap_or_else(|p| p.into_inner());
        if homes.len() < MAX_HOMES && !homes.iter().any(|(t, _)| *t == thread) {
            homes.push((thread, handle));
        }
    }

    /// The open lanes' cache counters, summed; `None` without the cache.
    pub(super) fn stats(&self) -> Option<CacheStats> {
        if !self.cached {
            return None;
        }
        let mut sum = CacheStats::default();
        for lane in self.slots.iter().filter_map(OnceCell::get) {
            if let Some(c) = &lane.cache {
                sum.add(&c.cache.stats());
            }
        }
        Some(sum)
    }
}

/// Everything needed to open a lane, on any thread: the client and the
/// store's options.
#[derive(Clone)]
pub(super) struct Opener {
    pub(super) client: Client,
    /// Its `cache` is `None` when lanes run without the client cache.
    pub(super) options: RedisStoreBuilder,
}

impl Opener {
    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            // Every call the store makes is bounded by its own response
            // timeout (`bounded`, which also flushes the client cache when
            // it fires); a second timer inside redis-rs would cost every
            // call a timer-wheel insert and removal for nothing.
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.options.connect_timeout))
            // No retry loop inside the connection: while Redis is down, each
            // request makes (at most) one bounded reconnect attempt and fails
            // fast with a 503, and the first request after Redis is back
            // reconnects. Sleeping retries would make every request wait for
            // them (about 500 ms per request during an outage, measured).
            .set_number_of_retries(0)
    }

    async fn connection(
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

    /// Opens lane `k`: with the cache if asked for and the server allows
    /// it (else without, with a warning).
    pub(super) async fn open(self, k: usize) -> Result<Lane, Error> {
        let cached = match &self.options.cache {
            Some(options) => match self.open_cached(options, k).await {
                Ok(cached) => Some(cached),
                Err(e) if unsupported(&e) => {
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
            None => {
                let plain = self.client.clone();
                (self.connection(plain, self.manager_config()).await?, None)
            }
        };
        Ok(Lane {
            conn,
            cache,
            prefix: self.options.prefix.clone(),
            timeout: self.options.response_timeout,
        })
    }

    /// Connects over RESP3 with the push handler of lane `k`'s cache, and
    /// enables tracking before the first load.
    async fn open_cached(
        &self,
        options: &ClientCache,
        k: usize,
    ) -> Result<(ConnectionManager, Cached), Error> {
        let info = self.client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3)).map_err(Error::unavailable)?;
        let share = options
            .clone()
            .with_max_entries(options.max_entries() / self.options.connections);
        let mut cache = Cache::new(&share, self.options.response_timeout);
        if self.options.connections > 1 {
            // Every lane hears about every key under the prefix (the other
            // lanes' writes included); only its own share is its business.
            let (prefix, n) = (self.options.prefix.clone(), self.options.connections);
            cache = cache.only_keys(move |key| {
                key.strip_prefix(prefix.as_str())
                    .is_some_and(|id| shard_of(id, n) == k)
            });
        }
        let cache = Arc::new(cache);
        let pushes = Arc::clone(&cache);
        let config = self
            .manager_config()
            .set_push_sender(move |push: PushInfo| {
                pushes.on_push(push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = self.connection(client, config).await?;
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
        let heartbeat = tokio::spawn(heartbeat(
            Arc::clone(&cache),
            conn.clone(),
            self.options.response_timeout,
        ));
        Ok((conn, Cached { cache, heartbeat }))
    }
}

/// Appends to `pipe` the commands that (re-)enable tracking on the
/// connection, in broadcast mode for the store's prefix: Redis reports every
/// change by another client to any session key, keeps no per-key state, and
/// the lane's own plain writes (RESTORE, the update transaction) need no
/// read-back to stay covered. (A script's writes are reported back to the
/// NOLOOP client that ran it; the store caches nothing a script wrote.)
/// Tracking is switched off first: Redis refuses a prefix the connection
/// already tracks. Two replies; the second says whether tracking is on.
///
/// Every lane tracks the whole prefix, not its share: Redis matches each
/// written key against every tracked prefix of every client, and 64
/// per-character prefixes made each `SET` cost Redis 2-3 µs more than one
/// prefix (6.0-6.3 against 2.7-4.2 µs, pipelined `redis-benchmark`), while
/// a second client on the same prefix added 0-0.7 µs.
fn track_keys(pipe: &mut redis::Pipeline, prefix: &str) {
    pipe.cmd("CLIENT").arg("TRACKING").arg("OFF");
    let on = pipe.cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST");
    if !prefix.is_empty() {
        on.arg("PREFIX").arg(prefix);
    }
    on.arg("NOLOOP");
}

/// Whether a connection error says the server does not do RESP3 client
/// tracking (it answered, with an error), rather than that it is unreachable.
fn unsupported(e: &Error) -> bool {
    let Error::Unavailable(src) = e else {
        return false;
    };
    src.downcast_ref::<redis::RedisError>().is_some_and(|re| {
        !(re.is_io_error()
            || re.is_timeout()
            || re.is_connection_dropped()
            || re.is_connection_refusal())
    })
}

/// Checks the connection when nothing else has for a heartbeat; a failed
/// check flushes the cache (invalidations may have been lost).
async fn heartbeat(cache: Arc<Cache>, mut conn: ConnectionManager, timeout: Duration) {
    let every = cache.heartbeat();
    loop {
        tokio::time::sleep(every).await;
        if cache.silent_for() < every {
            continue;
        }
        let ping = redis::cmd("PING").to_owned();
        match tokio::time::timeout(timeout, ping.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => cache.alive(),
            _ => cache.flush(),
        }
    }
}

impl Lane {
    pub(super) fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref().map(|c| &*c.cache)
    }

    /// A handle on the connection, for one call.
    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Loads `scripts` into Redis, so that the first save is one EVALSHA.
    /// (After a Redis restart, redis-rs reloads them on NOSCRIPT.)
    pub(super) async fn load_scripts(&self, scripts: &[&Script]) -> Result<(), Error> {
        let mut conn = self.conn();
        for script in scripts {
            self.bounded(script.prepare_invoke().load_async(&mut conn))
                .await?;
        }
        Ok(())
    }

    /// Runs one Redis call within the response timeout. With the cache, an
    /// answer proves the invalidation stream alive, and a failure flushes
    /// the cache (invalidations may have been lost with the connection).
    pub(super) async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        let answer = self.bounded_raw(fut).await?;
        self.failed_on_error(answer)
    }

    /// Runs a save command built for `script`; if Redis lost the script (a
    /// restart, `SCRIPT FLUSH`), loads it and sends the command again.
    pub(super) async fn eval(&self, script: &Script, cmd: &Cmd) -> Result<Value, Error> {
        let mut conn = self.conn();
        match self
            .bounded_raw(cmd.query_async::<Value>(&mut conn))
            .await?
        {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.bounded(script.prepare_invoke().load_async(&mut conn))
                    .await?;
                self.bounded(cmd.query_async::<Value>(&mut conn)).await
            }
            answer => self.failed_on_error(answer),
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
    /// server's answer, error replies included, for the caller to judge.
    /// No answer (a timeout, a broken connection) is an error, and flushes
    /// the cache; an answer proves the invalidation stream alive.
    pub(super) async fn bounded_raw<T>(
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
                Ok(_) => cache.alive(),
                Err(_) => cache.flush(),
            }
        }
        result
    }

    /// One HGETALL. With `track`, tracking is (re-)enabled first, pipelined
    /// so that it is on the same connection; the flag says whether that
    /// worked (if the server refuses it, the load still succeeds: the cache
    /// just does not fill).
    pub(super) async fn fetch(&self, key: &str, track: bool) -> Result<(Value, bool), Error> {
        let mut conn = self.conn();
        if !track {
            let cmd = redis::cmd("HGETALL").arg(key).to_owned();
            let reply = self.bounded(cmd.query_async(&mut conn)).await;
            return reply.map(|v| (v, false)).map_err(super::load_error);
        }
        let mut pipe = redis::pipe();
        track_keys(&mut pipe, &self.prefix);
        pipe.cmd("HGETALL").arg(key).ignore_errors();
        let (_, tracking, reply): (
            redis::RedisResult<Value>,
            redis::RedisResult<Value>,
            redis::RedisResult<Value>,
        ) = self.bounded(pipe.query_async(&mut conn)).await?;
        if let Err(e) = &tracking {
            tracing::debug!(error = %e, "Redis refused CLIENT TRACKING; this load is not cached");
        }
        let reply = reply.map_err(|e| super::load_error(Error::unavailable(e)))?;
        Ok((reply, tracking.is_ok()))
    }
}
