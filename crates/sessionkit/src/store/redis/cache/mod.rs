//! The client-side cache of session records, kept coherent by Redis
//! (server-assisted client-side caching, RESP3 `CLIENT TRACKING`).
//!
//! [`ClientCache`] is the public configuration; [`Cache`] the state. The
//! store's connection tracks the key prefix in broadcast mode (the
//! `connection` module sets that up and hands this cache what Redis
//! reports: [`Cache::invalidate`] for a key that changed, was deleted or
//! expired, [`Cache::flush`] when the stream of those reports may have a
//! gap, [`Cache::alive`] when the connection answered). A write of ours
//! drops the entry when its reply arrives (and Redis reports the script's
//! write back to us as well); the next load reads the record again. Creates
//! do not touch the cache: a new session is cached by its first load.
//!
//! The rules, each one place below:
//!
//! - **No stale entry survives an invalidation.** An invalidation can be
//!   handled before the reply of a read that was sent earlier (replies and
//!   pushes reach different tasks). So every Redis operation on a key is an
//!   [`Op`] that registers *before* it is sent; a read during which the key
//!   was invalidated (or one of our writes ended) does not fill the cache
//!   (`Pending`, [`Shard::fill`]).
//! - **Nothing is served across a gap in the invalidation stream.** A
//!   connection loss, failed or timed-out call, or `FLUSHALL` flushes
//!   everything by moving to a new *epoch*; entries and in-flight
//!   operations of an older epoch are dead. A new epoch serves nothing until
//!   a read has re-enabled tracking on the connection ([`Cache::flush`],
//!   [`Cache::may_fill`]).
//! - **A silent connection cannot keep serving.** Entries are served only
//!   while the connection has answered within `2 × heartbeat + timeout`
//!   ([`Cache::get`]); the connection's heartbeat pings when there was no
//!   other traffic, and a failed ping flushes.
//! - **Never past a deadline.** An entry is served only before the record's
//!   `m:expires` and before the cache's own `ttl` ([`Entry::until_ms`]).
//! - **Bounded memory, in bytes.** Entries are counted by what they hold
//!   ([`cost`]); the least recently used go first when the cache passes its
//!   byte budget or its entry count, and a record above the per-entry
//!   ceiling is not cached at all (the `lru` crate keeps the order).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use crate::store::{ms, now_ms, Record};

mod options;

pub use options::{
    CacheStats, ClientCache, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_ENTRY_BYTES,
    DEFAULT_CACHE_HEARTBEAT, DEFAULT_CACHE_TTL,
};

/// Small caches are one exact LRU; large ones are sharded (each shard an
/// LRU of an equal part of the bounds) so that requests rarely contend.
const SHARDS: usize = 16;
const SHARD_FROM: usize = 1024;

/// No epoch has tracking confirmed.
const NO_EPOCH: u64 = u64::MAX;

/// What an entry is counted as, besides its bytes: the allocations and
/// bookkeeping of the entry itself, and of each value in it.
const ENTRY_OVERHEAD: usize = 256;
const VALUE_OVERHEAD: usize = 64;

/// The bytes an entry for `record` under `key` is counted as.
pub(crate) fn cost(key: &str, record: &Record) -> usize {
    let values: usize = record
        .data
        .iter()
        .map(|(k, v)| k.len() + v.len() + VALUE_OVERHEAD)
        .sum();
    ENTRY_OVERHEAD + key.len() + values
}

struct Entry {
    record: Record,
    epoch: u64,
    /// Served until then (Unix ms): the record's expiry or the cache's ttl.
    until_ms: u64,
    /// What it is counted as ([`cost`]).
    cost: usize,
}

/// Operations on one key in flight.
struct Pending {
    count: u32,
    /// Bumped by every invalidation of the key and every write of ours that
    /// ended: a read that sees it unchanged at its end was not disturbed.
    disturbed: u64,
}

/// The bounds of one shard.
#[derive(Clone, Copy)]
struct Bounds {
    entries: usize,
    bytes: usize,
    /// A record counted above this is not cached.
    entry_bytes: usize,
}

/// One part of the cache: its entries and its keys' operations in flight.
struct Shard {
    lru: LruCache<Box<str>, Entry>,
    /// The sum of the entries' costs.
    bytes: usize,
    bounds: Bounds,
    pending: HashMap<Box<str>, Pending>,
}

/// The cache state of one store (shared by its clones).
pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    epoch: AtomicU64,
    /// The epoch in which tracking is known to be on for the connection.
    tracking_epoch: AtomicU64,
    /// Last time (Unix ms) the connection answered.
    alive_ms: AtomicU64,
    ttl_ms: u64,
    heartbeat: Duration,
    /// Entries are served only while `now - alive_ms` is below this.
    live_for_ms: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    /// Wakes whatever keeps tracking on (Cluster) after a flush.
    flushed: tokio::sync::Notify,
}

/// What an operation learned, for [`Op::finish`].
pub(crate) enum Outcome<'a> {
    /// A read found this record, or nothing.
    Loaded(Option<&'a Record>),
    /// A write, or an unknown outcome: drop the entry.
    Dropped,
}

impl Cache {
    pub(crate) fn new(options: &ClientCache, response_timeout: Duration) -> Self {
        let n = if options.max_entries() < SHARD_FROM {
            1
        } else {
            SHARDS
        };
        let bounds = Bounds {
            entries: (options.max_entries() / n).max(1),
            bytes: options.max_bytes() / n,
            entry_bytes: options.max_entry_bytes().min(options.max_bytes() / n),
        };
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    lru: LruCache::unbounded(),
                    bytes: 0,
                    bounds,
                    pending: HashMap::new(),
                })
            })
            .collect();
        Cache {
            shards,
            epoch: AtomicU64::new(0),
            tracking_epoch: AtomicU64::new(NO_EPOCH),
            alive_ms: AtomicU64::new(now_ms()),
            ttl_ms: ms(options.ttl()),
            heartbeat: options.heartbeat(),
            live_for_ms: ms(options.heartbeat() * 2 + response_timeout),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flushed: tokio::sync::Notify::new(),
        }
    }
    /// The current epoch (see [`flush`](Self::flush)).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // Keys end with a storage id (base64 of a SHA-256): a hash of the
        // last few characters spreads them evenly.
        let tail = &key.as_bytes()[key.len().saturating_sub(8)..];
        let h = tail.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let i = usize::try_from(h % self.shards.len() as u64).unwrap_or(0);
        // Every critical section is a few map operations that cannot leave a
        // shard half-updated, so a poisoned lock is safe to use.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached record under `key`, if it may be served now.
    pub(crate) fn get(&self, key: &str) -> Option<Record> {
        let now = now_ms();
        let live = now.saturating_sub(self.alive_ms.load(Ordering::Acquire)) < self.live_for_ms;
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut shard = self.shard(key);
        let (fresh, stale) = match shard.lru.get(key) {
            Some(e) if e.epoch == epoch && now < e.until_ms && live => {
                (Some(e.record.clone()), false)
            }
            Some(_) => (None, true),
            None => (None, false),
        };
        if stale {
            shard.remove(key);
        }
        drop(shard);
        let (counter, name) = if fresh.is_some() {
            (&self.hits, crate::telemetry::names::CACHE_HITS)
        } else {
            (&self.misses, crate::telemetry::names::CACHE_MISSES)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::count(name);
        fresh
    }

    /// Registers an operation on `key`, before it is sent to Redis.
    pub(crate) fn begin<'a>(&'a self, key: &'a str) -> Op<'a> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let tracked = self.tracking_epoch.load(Ordering::Acquire) == epoch;
        let disturbed = self.shard(key).begin(key);
        Op {
            cache: self,
            key,
            disturbed,
            epoch,
            tracked,
            done: false,
        }
    }

    /// Whether tracking is known to be on in the operation's epoch (if not,
    /// the read enables it, pipelined on the same connection).
    pub(crate) fn tracking(&self, op: &Op<'_>) -> bool {
        self.tracking_epoch.load(Ordering::Acquire) == op.epoch
    }

    /// Whether tracking is known to be on in the current epoch.
    pub(crate) fn tracking_on(&self) -> bool {
        self.tracking_epoch.load(Ordering::Acquire) == self.epoch.load(Ordering::Acquire)
    }

    /// Waits for the next [`flush`](Self::flush) (or returns at once if one
    /// happened since the last wait ended).
    pub(crate) async fn flushed(&self) {
        self.flushed.notified().await;
    }

    /// The connection answered: the invalidation stream is flowing.
    pub(crate) fn alive(&self) {
        self.alive_ms.store(now_ms(), Ordering::Release);
    }

    /// Time since the connection last answered.
    pub(crate) fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.alive_ms.load(Ordering::Acquire)))
    }

    /// Tracking was enabled on the connection in `epoch`.
    pub(crate) fn tracking_confirmed(&self, epoch: u64) {
        // A flush racing this store leaves an old epoch here, which matches
        // no current operation: harmless.
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.tracking_epoch.store(epoch, Ordering::Release);
        }
    }

    /// Forgets everything: a new epoch, tracking to be re-enabled.
    pub(crate) fn flush(&self) {
        self.tracking_epoch.store(NO_EPOCH, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.lru.clear();
            shard.bytes = 0;
            for p in shard.pending.values_mut() {
                p.disturbed += 1;
            }
        }
        self.flushed.notify_one();
    }

    /// Redis says `key` changed.
    pub(crate) fn invalidate(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(key);
        shard.remove(key);
        if let Some(p) = shard.pending.get_mut(key) {
            p.disturbed += 1;
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let (mut entries, mut bytes) = (0, 0);
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            entries += shard.lru.len() as u64;
            bytes += shard.bytes as u64;
        }
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }

    /// Whether `op` may leave an entry: its read was sent with tracking on
    /// (confirmed when it began, or enabled by itself ahead of its read), no
    /// flush since it began, and tracking still confirmed in this epoch. A
    /// read sent before tracking was on could have missed a change made
    /// before tracking began.
    fn may_fill(&self, op: &Op<'_>) -> bool {
        let now = self.epoch.load(Ordering::Acquire);
        op.tracked && op.epoch == now && self.tracking_epoch.load(Ordering::Acquire) == now
    }

    fn end(&self, op: &Op<'_>, outcome: Outcome<'_>) {
        let now = now_ms();
        let mut shard = self.shard(op.key);
        let undisturbed = shard.end(op, &outcome);
        let epoch = self.epoch.load(Ordering::Acquire);
        match outcome {
            Outcome::Loaded(Some(record)) if undisturbed && self.may_fill(op) => {
                let until_ms = record.meta.expires_ms.min(now.saturating_add(self.ttl_ms));
                shard.fill(op.key, record, epoch, until_ms);
            }
            // Nothing found, a disturbed read, a write, or an unknown
            // outcome: whatever is cached for the key is not known to be
            // current.
            _ => shard.remove(op.key),
        }
    }
}

impl Shard {
    /// Bookkeeping: an operation on `key` begins; the key's disturbance
    /// count then.
    fn begin(&mut self, key: &str) -> u64 {
        match self.pending.get_mut(key) {
            Some(p) => {
                p.count += 1;
                p.disturbed
            }
            None => {
                let p = Pending {
                    count: 1,
                    disturbed: 0,
                };
                self.pending.insert(key.into(), p);
                0
            }
        }
    }

    /// Bookkeeping: `op` ends with `outcome`; whether nothing disturbed the
    /// key while it was in flight.
    fn end(&mut self, op: &Op<'_>, outcome: &Outcome<'_>) -> bool {
        let Some(p) = self.pending.get_mut(op.key) else {
            // Every operation is registered until it ends: not reached.
            return false;
        };
        p.count = p.count.saturating_sub(1);
        let undisturbed = p.disturbed == op.disturbed;
        if matches!(outcome, Outcome::Dropped) {
            p.disturbed += 1;
        }
        if p.count == 0 {
            self.pending.remove(op.key);
        }
        undisturbed
    }

    /// Caches `record` under `key`, unless it is above the per-entry
    /// ceiling; then evicts the least recently used entries until the shard
    /// is within its bounds.
    fn fill(&mut self, key: &str, record: &Record, epoch: u64, until_ms: u64) {
        self.remove(key);
        let cost = cost(key, record);
        if cost > self.bounds.entry_bytes {
            return;
        }
        let entry = Entry {
            record: record.clone(),
            epoch,
            until_ms,
            cost,
        };
        self.bytes += cost;
        self.lru.put(key.into(), entry);
        while self.lru.len() > self.bounds.entries || self.bytes > self.bounds.bytes {
            match self.lru.pop_lru() {
                Some((_, old)) => self.bytes -= old.cost,
                None => break,
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.lru.pop(key) {
            self.bytes -= old.cost;
        }
    }
}

/// One Redis operation on one key, registered with the cache from before it
/// is sent until its outcome is known. Dropped without [`finish`](Self::finish)
/// (a write, an error, or the request's future cancelled mid-flight), it
/// drops the entry: the key may have changed.
pub(crate) struct Op<'a> {
    cache: &'a Cache,
    key: &'a str,
    /// The key's `disturbed` count when it began.
    disturbed: u64,
    epoch: u64,
    /// Tracking was on before its read was sent.
    tracked: bool,
    done: bool,
}

impl Op<'_> {
    /// This operation enabled tracking (pipelined before its read): the
    /// connection tracks from now on, in this operation's epoch.
    pub(crate) fn confirm_tracking(&mut self) {
        self.tracked = true;
        self.cache.tracking_confirmed(self.epoch);
    }

    /// Records the outcome in the cache.
    pub(crate) fn finish(mut self, outcome: Outcome<'_>) {
        self.done = true;
        self.cache.end(&self, outcome);
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.end(self, Outcome::Dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Meta;

    fn record(n: &str) -> Record {
        let mut r = Record {
            meta: Meta {
                expires_ms: now_ms() + 60_000,
                ..Meta::default()
            },
            ..Record::default()
        };
        r.data.insert("n".to_owned(), n.as_bytes().to_vec());
        r
    }

    fn cache_with(options: &ClientCache) -> Cache {
        let c = Cache::new(options, Duration::from_millis(500));
        c.tracking_confirmed(0);
        c
    }

    fn cache() -> Cache {
        cache_with(&ClientCache::default())
    }

    fn n(c: &Cache, key: &str) -> Option<String> {
        c.get(key).and_then(|r| {
            r.data
                .get("n")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    }

    /// A read of `key` that found `n`.
    fn fill(c: &Cache, key: &str, n: &str) {
        c.begin(key).finish(Outcome::Loaded(Some(&record(n))));
    }

    #[test]
    fn a_read_fills_and_an_invalidation_empties() {
        let c = cache();
        fill(&c, "k", "1");
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
        c.invalidate("k");
        assert_eq!(n(&c, "k"), None);
        assert_eq!(c.stats().invalidations, 1);
        assert_eq!(c.stats().bytes, 0, "the bytes go with the entry");
    }

    #[test]
    fn invalidation_during_a_read_forbids_the_fill() {
        // The reply of a read sent before a change can be handled after the
        // change's invalidation: that reply is stale and must not be cached.
        let c = cache();
        let op = c.begin("k");
        c.invalidate("k");
        op.finish(Outcome::Loaded(Some(&record("old"))));
        assert_eq!(n(&c, "k"), None);
    }

    #[test]
    fn overlapping_reads_fill() {
        let c = cache();
        let first = c.begin("k");
        let second = c.begin("k");
        second.finish(Outcome::Loaded(Some(&record("1"))));
        first.finish(Outcome::Loaded(Some(&record("1"))));
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn a_write_drops_the_entry_and_forbids_reads_in_flight_to_fill() {
        let c = cache();
        fill(&c, "k", "1");
        let read = c.begin("k");
        drop(c.begin("k")); // a write, or a call whose outcome is unknown
        assert_eq!(n(&c, "k"), None);
        read.finish(Outcome::Loaded(Some(&record("1"))));
        assert_eq!(n(&c, "k"), None, "the read may predate the write");
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn disconnection_flushes_and_stops_filling_until_tracking_is_back() {
        let c = cache();
        fill(&c, "k", "1");
        let in_flight = c.begin("j");
        c.flush(); // what the connection does on a disconnection
        assert_eq!(n(&c, "k"), None);
        in_flight.finish(Outcome::Loaded(Some(&record("1"))));
        assert_eq!(
            n(&c, "j"),
            None,
            "an operation of the old epoch fills nothing"
        );
        let op = c.begin("k");
        assert!(!c.tracking(&op));
        op.finish(Outcome::Loaded(Some(&record("1"))));
        assert_eq!(n(&c, "k"), None, "no fill before tracking is re-enabled");
        let mut op = c.begin("k");
        op.confirm_tracking();
        op.finish(Outcome::Loaded(Some(&record("1"))));
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
        assert_eq!(c.stats().bytes, cost("k", &record("1")) as u64);
    }

    #[test]
    fn a_read_sent_before_tracking_was_on_fills_nothing() {
        // Cluster: tracking is enabled by its own connections, not by the
        // read. A read begun before that was confirmed may have missed a
        // change made just before tracking began.
        let c = cache();
        c.flush();
        let early = c.begin("k");
        c.tracking_confirmed(c.epoch());
        early.finish(Outcome::Loaded(Some(&record("old"))));
        assert_eq!(n(&c, "k"), None);
        fill(&c, "k", "1");
        assert_eq!(
            n(&c, "k").as_deref(),
            Some("1"),
            "a read begun after it fills"
        );
    }

    #[test]
    fn expired_and_silent_entries_are_not_served() {
        let c = cache();
        let mut r = record("1");
        r.meta.expires_ms = now_ms().saturating_sub(1);
        c.begin("k").finish(Outcome::Loaded(Some(&r)));
        assert_eq!(n(&c, "k"), None, "past the record's expiry");
        fill(&c, "k", "1");
        c.alive_ms.store(0, Ordering::Release);
        assert_eq!(
            n(&c, "k"),
            None,
            "the connection has not answered for too long"
        );
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recently_used() {
        let one = cost("k0", &record(&"x".repeat(1000)));
        // One shard (a small cache), so that the budget is exact.
        let options = ClientCache::default()
            .with_max_entries(100)
            .with_max_bytes(3 * one);
        let c = cache_with(&options);
        for i in 0..3 {
            fill(&c, &format!("k{i}"), &"x".repeat(1000));
        }
        assert_eq!(c.stats().entries, 3);
        assert!(n(&c, "k0").is_some(), "k0 is now the most recently used");
        fill(&c, "k3", &"x".repeat(1000));
        let stats = c.stats();
        assert_eq!((stats.entries, stats.bytes), (3, 3 * one as u64));
        assert!(n(&c, "k1").is_none(), "the least recently used went");
        assert!(n(&c, "k0").is_some() && n(&c, "k3").is_some());
        // A bigger entry makes room for itself.
        fill(&c, "big", &"x".repeat(2500));
        assert!(c.stats().bytes <= 3 * one as u64);
        assert!(n(&c, "big").is_some());
    }

    #[test]
    fn a_record_above_the_entry_ceiling_is_not_cached() {
        let c = cache_with(&ClientCache::default().with_max_entry_bytes(2000));
        fill(&c, "small", "1");
        fill(&c, "large", &"x".repeat(2000));
        assert!(n(&c, "small").is_some());
        assert!(n(&c, "large").is_none());
        // Growing past the ceiling drops what was cached.
        fill(&c, "small", &"x".repeat(2000));
        assert!(n(&c, "small").is_none());
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn the_entry_count_still_bounds_the_cache() {
        let c = cache_with(&ClientCache::default().with_max_entries(2));
        for k in ["a", "b", "c"] {
            fill(&c, k, "1");
        }
        assert_eq!(c.stats().entries, 2);
        assert!(n(&c, "a").is_none());
    }
}
