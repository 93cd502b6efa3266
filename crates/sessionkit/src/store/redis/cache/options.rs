//! The client cache's public options ([`ClientCache`]) and counters
//! ([`CacheStats`]).

use std::time::Duration;

/// Client-side caching options for a [`RedisStore`](crate::RedisStore)
/// (see [`RedisStoreBuilder::with_client_cache`](crate::RedisStoreBuilder::with_client_cache)).
///
/// With the cache, a request that reads a session which this process has
/// read recently costs **no** Redis round trip. Redis keeps the cache
/// coherent: it tells this process when anyone changes a cached session
/// (RESP3 `CLIENT TRACKING`, Redis 6 or later), and any loss of that channel
/// flushes the cache.
///
/// Memory is bounded in bytes: the cache counts each entry as the bytes of
/// its keys and encoded values plus a fixed allowance for the entry and for
/// each value, evicts the least recently used entries past
/// [`with_max_bytes`](Self::with_max_bytes), and does not cache a session
/// larger than [`with_max_entry_bytes`](Self::with_max_entry_bytes).
///
/// ```
/// use std::time::Duration;
/// use sessionkit::store::redis::ClientCache;
///
/// let cache = ClientCache::default()
///     .with_max_entries(50_000)
///     .with_max_bytes(128 << 20)
///     .with_ttl(Duration::from_secs(60));
/// # let _ = cache;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ClientCache {
    max_entries: usize,
    max_bytes: usize,
    max_entry_bytes: usize,
    ttl: Duration,
    heartbeat: Duration,
}

/// Default [`ClientCache::with_max_entries`]: 10 000 sessions (a few MB for
/// typical sessions of a few hundred bytes).
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Default [`ClientCache::with_max_bytes`]: 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
/// Default [`ClientCache::with_max_entry_bytes`]: 64 KiB (a session larger
/// than that is read from Redis on every request).
pub const DEFAULT_CACHE_ENTRY_BYTES: usize = 64 << 10;
/// Default [`ClientCache::with_ttl`]: 5 minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default [`ClientCache::with_heartbeat`]: 1 second.
pub const DEFAULT_CACHE_HEARTBEAT: Duration = Duration::from_secs(1);

impl Default for ClientCache {
    fn default() -> Self {
        ClientCache {
            max_entries: DEFAULT_CACHE_ENTRIES,
            max_bytes: DEFAULT_CACHE_BYTES,
            max_entry_bytes: DEFAULT_CACHE_ENTRY_BYTES,
            ttl: DEFAULT_CACHE_TTL,
            heartbeat: DEFAULT_CACHE_HEARTBEAT,
        }
    }
}

impl ClientCache {
    /// The default options (same as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many sessions are cached (default
    /// [`DEFAULT_CACHE_ENTRIES`]); the least recently used goes first.
    /// Values below 1 count as 1.
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// At most this many bytes of sessions are cached (default
    /// [`DEFAULT_CACHE_BYTES`]), counted as the type's doc says; the least
    /// recently used go first. A large cache is split into 16 parts, each
    /// bounded by a sixteenth of this.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// A session counted above this many bytes is not cached (default
    /// [`DEFAULT_CACHE_ENTRY_BYTES`]): each request reads it from Redis.
    pub fn with_max_entry_bytes(mut self, max_entry_bytes: usize) -> Self {
        self.max_entry_bytes = max_entry_bytes;
        self
    }

    /// The longest an entry is served without being read from Redis again
    /// (default [`DEFAULT_CACHE_TTL`]). Invalidation keeps entries correct;
    /// this bounds the damage of a lost invalidation nobody noticed. A
    /// session's own expiry is always respected, whatever this says.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How often the connection is checked when there is no other traffic
    /// (default [`DEFAULT_CACHE_HEARTBEAT`]). Cached records are served only
    /// while the connection has answered within twice this plus the
    /// response timeout, which bounds stale reads on a connection that died
    /// silently (no TCP reset). Values below 10 ms count as 10 ms.
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// The maximum number of cached sessions.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The byte budget of the cache.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The largest session that is cached, in bytes.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The longest an entry lives without a fresh read.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }
}

/// Counters of a store's client cache, from [`RedisStore::client_cache_stats`](crate::RedisStore::client_cache_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads answered from the cache (no Redis call).
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Keys invalidated by Redis (another client changed them).
    pub invalidations: u64,
    /// Whole-cache flushes (connection loss, failed call, `FLUSHALL`).
    pub flushes: u64,
    /// Sessions cached now.
    pub entries: u64,
    /// What the cached sessions are counted as now, in bytes (see
    /// [`ClientCache`]): at most its [`max_bytes`](ClientCache::max_bytes).
    pub bytes: u64,
}
