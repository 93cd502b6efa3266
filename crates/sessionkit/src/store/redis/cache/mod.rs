//! The client-side cache of session records, kept coherent by Redis
//! (server-assisted client-side caching, RESP3 `CLIENT TRACKING`).
//!
//! [`ClientCache`] is the public configuration; [`Cache`] the state. The
//! store's connection tracks the key prefix in broadcast mode with NOLOOP
//! (the `connection` module sets that up and hands this cache what Redis
//! reports: [`Cache::invalidate`] for a key anyone else changed, deleted or
//! expired, [`Cache::flush`] when the stream of those reports may have a
//! gap, [`Cache::alive`] when the connection answered). The store's own
//! update transactions (NOLOOP: Redis reports nothing for them) update or
//! drop the entry here, after the write's reply; what its Lua script writes
//! is reported back to it, so a script write only drops the entry. Creates
//! do not touch the cache: a new session is cached by its first load.
//!
//! The rules, each one place below:
//!
//! - **No stale entry survives an invalidation.** An invalidation can be
//!   handled before the reply of a read that was sent earlier (replies and
//!   pushes reach different tasks). So every Redis operation on a key is an
//!   [`Op`] that registers *before* it is sent; a read during which the key
//!   was invalidated (or one of our writes failed or deleted it) does not
//!   fill the cache (`Pending`, [`Shard::fill`]).
//! - **Our own writes are ordered by revision.** Every save bumps the
//!   record's revision (`m:rev`) and returns it; our writes send us no
//!   invalidation, and their replies may be handled in any order relative
//!   to each other and to our reads. So an entry is updated in place only
//!   by the write of the revision just after its own; a write of a
//!   revision it already holds is a no-op; one handled before its
//!   predecessor waits in the entry (at most [`MAX_AHEAD`], not served
//!   meanwhile); any other leaves no entry, and so does a wait that no
//!   write of ours ends ([`Shard::own_write`], [`Shard::end_gap`]). A read
//!   fills only with a revision at least as new as every write of ours
//!   handled while it was in flight, and never replaces a newer entry
//!   ([`Shard::fill`]). Overlapping requests of one user (parallel tabs,
//!   page assets) therefore keep the session cached.
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
//! - **Bounded memory.** At most `max_entries` records, least recently used
//!   evicted first (the `lru` crate).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use crate::store::{ms, now_ms, Changes, Meta, Record};

mod options;

pub use options::{
    CacheStats, ClientCache, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_HEARTBEAT, DEFAULT_CACHE_TTL,
};

/// Small caches are one exact LRU; large ones are sharded (each shard an
/// LRU of an equal part of the bound) so that requests rarely contend.
const SHARDS: usize = 16;
const SHARD_FROM: usize = 1024;

/// No epoch has tracking confirmed.
const NO_EPOCH: u64 = u64::MAX;

struct Entry {
    record: Record,
    rev: u64,
    epoch: u64,
    /// Served until then (Unix ms): the record's expiry or the cache's ttl.
    until_ms: u64,
    /// Writes of ours handled before the revision after `rev`, oldest
    /// first: applied when it arrives. The entry is not served meanwhile.
    ahead: Vec<Ahead>,
}

/// At most this many writes wait in [`Entry::ahead`]; more drop the entry.
const MAX_AHEAD: usize = 8;

/// A write of ours whose reply was handled before the one of the revision
/// just before it (replies reach different tasks, on different threads).
struct Ahead {
    rev: u64,
    set: Vec<(String, Vec<u8>)>,
    remove: Vec<String>,
    flags: Option<Meta>,
    expires_ms: Option<u64>,
}

impl Ahead {
    fn new(changes: &Changes<'_>, rev: u64) -> Self {
        Ahead {
            rev,
            set: changes
                .set
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            remove: changes.remove.iter().map(|k| (*k).to_owned()).collect(),
            flags: changes.flags,
            expires_ms: changes.expires_ms,
        }
    }

    /// The write as [`Changes`] again, for [`apply`].
    fn changes(&self) -> Changes<'_> {
        Changes {
            set: self
                .set
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect(),
            remove: self.remove.iter().map(String::as_str).collect(),
            flags: self.flags,
            expires_ms: self.expires_ms,
            delete_if_empty: false,
        }
    }
}

/// Operations on one key in flight.
struct Pending {
    count: u32,
    /// Bumped by every invalidation of the key and every write of ours that
    /// failed or deleted it: a read that sees it unchanged at its end was
    /// not disturbed.
    disturbed: u64,
    /// The newest revision our own writes made, among those handled while
    /// operations were in flight: a read that returns an older one is stale.
    newest_written: u64,
    /// A write of ours waits in the entry ([`Entry::ahead`]).
    waiting: bool,
}

/// What the bookkeeping of an ending operation found.
struct Ended {
    /// Nothing disturbed the key while the operation was in flight.
    undisturbed: bool,
    /// The newest revision our writes made meanwhile.
    newest_written: u64,
    /// The last of our operations on the key ended.
    last: bool,
    /// It was the last, and a write of ours ever waited: what still waits
    /// waits for a revision that was not ours.
    gap: bool,
}

/// One part of the cache: its entries and its keys' operations in flight.
struct Shard {
    lru: LruCache<Box<str>, Entry>,
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
}

/// What an operation learned, for [`Op::finish`].
pub(crate) enum Outcome<'a> {
    /// A read found this record at this revision, or nothing.
    Loaded(Option<(&'a Record, u64)>),
    /// An update applied `changes`, giving this revision.
    Updated(&'a Changes<'a>, u64),
    /// The record is gone, or the outcome is unknown: drop the entry.
    Dropped,
}

impl Cache {
    pub(crate) fn new(options: &ClientCache, response_timeout: Duration) -> Self {
        let (n, per_shard) = if options.max_entries() < SHARD_FROM {
            (1, options.max_entries())
        } else {
            (SHARDS, options.max_entries() / SHARDS)
        };
        let per_shard = NonZeroUsize::new(per_shard).unwrap_or(NonZeroUsize::MIN);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    lru: LruCache::new(per_shard),
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
        let fresh = match shard.lru.get_mut(key) {
            // Waiting for a write of ours to fill a gap: Redis is ahead.
            Some(e) if !e.ahead.is_empty() => None,
            Some(e) if e.epoch == epoch && now < e.until_ms && live => Some(e.record.clone()),
            Some(_) => {
                shard.lru.pop(key);
                None
            }
            None => None,
        };
        drop(shard);
        let counter = if fresh.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh
    }

    /// Registers an operation on `key`, before it is sent to Redis.
    pub(crate) fn begin<'a>(&'a self, key: &'a str) -> Op<'a> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let disturbed = self.shard(key).begin(key);
        Op {
            cache: self,
            key,
            disturbed,
            epoch,
            done: false,
        }
    }

    /// Whether tracking is known to be on in the operation's epoch (if not,
    /// the read enables it, pipelined on the same connection).
    pub(crate) fn tracking(&self, op: &Op<'_>) -> bool {
        self.tracking_epoch.load(Ordering::Acquire) == op.epoch
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
            for p in shard.pending.values_mut() {
                p.disturbed += 1;
            }
        }
    }

    /// Redis says `key` changed.
    pub(crate) fn invalidate(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(key);
        shard.lru.pop(key);
        if let Some(p) = shard.pending.get_mut(key) {
            p.disturbed += 1;
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let entries = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).lru.len() as u64)
            .sum();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            entries,
        }
    }

    /// Whether an operation of `epoch` may leave an entry: no flush since it
    /// began, and tracking confirmed in this epoch.
    fn may_fill(&self, epoch: u64) -> bool {
        let now = self.epoch.load(Ordering::Acquire);
        epoch == now && self.tracking_epoch.load(Ordering::Acquire) == now
    }

    fn end(&self, op: &Op<'_>, outcome: Outcome<'_>) {
        let now = now_ms();
        let mut shard = self.shard(op.key);
        let ended = shard.end(op, &outcome);
        let epoch = self.epoch.load(Ordering::Acquire);
        let may_fill = self.may_fill(op.epoch);
        let until = |r: &Record| r.meta.expires_ms.min(now.saturating_add(self.ttl_ms));
        match outcome {
            Outcome::Loaded(Some((record, rev))) => {
                if may_fill {
                    shard.fill(op.key, record, rev, epoch, &ended, until);
                }
            }
            Outcome::Updated(changes, rev) if may_fill => {
                shard.own_write(op.key, changes, rev, epoch, &ended, until);
            }
            // Nothing found, a failed or unknown outcome, or a write that
            // may not fill: whatever is cached for the key is not known to
            // be current.
            _ => {
                shard.lru.pop(op.key);
            }
        }
        if ended.gap {
            shard.end_gap(op.key);
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
                    newest_written: 0,
                    waiting: false,
                };
                self.pending.insert(key.into(), p);
                0
            }
        }
    }

    /// Bookkeeping: `op` ends with `outcome`.
    fn end(&mut self, op: &Op<'_>, outcome: &Outcome<'_>) -> Ended {
        let Some(p) = self.pending.get_mut(op.key) else {
            // Every operation is registered until it ends: not reached.
            return Ended {
                undisturbed: false,
                newest_written: u64::MAX,
                last: true,
                gap: false,
            };
        };
        p.count = p.count.saturating_sub(1);
        let undisturbed = p.disturbed == op.disturbed;
        match outcome {
            Outcome::Updated(_, rev) => p.newest_written = p.newest_written.max(*rev),
            Outcome::Dropped => p.disturbed += 1,
            Outcome::Loaded(_) => {}
        }
        let ended = Ended {
            undisturbed,
            newest_written: p.newest_written,
            last: p.count == 0,
            gap: p.count == 0 && p.waiting,
        };
        if ended.last {
            self.pending.remove(op.key);
        }
        ended
    }

    /// Rule: a read fills only if undisturbed, at least as new as our
    /// writes handled meanwhile, and not older than what is held.
    fn fill(
        &mut self,
        key: &str,
        record: &Record,
        rev: u64,
        epoch: u64,
        ended: &Ended,
        until: impl Fn(&Record) -> u64,
    ) {
        // Stale or unknown results are not cached: an entry there is kept
        // fresh by the writes' revisions, or was dropped by the
        // invalidation that disturbed this read.
        let fresh = ended.undisturbed && rev >= ended.newest_written;
        let newer_held = self
            .lru
            .peek(key)
            .is_some_and(|e| e.epoch == epoch && e.rev >= rev);
        if !fresh || newer_held {
            return;
        }
        let entry = Entry {
            until_ms: until(record),
            record: record.clone(),
            rev,
            epoch,
            ahead: Vec::new(),
        };
        self.lru.put(key.into(), entry);
    }

    /// Rule: our write of revision `rev` applies to an entry at `rev - 1`,
    /// is a no-op on one at `rev` or later, waits (unserved) while one of
    /// ours may still fill the gap, and drops the entry otherwise.
    fn own_write(
        &mut self,
        key: &str,
        changes: &Changes<'_>,
        rev: u64,
        epoch: u64,
        ended: &Ended,
        until: impl Fn(&Record) -> u64,
    ) {
        let keep = match self.lru.get_mut(key) {
            None => true,
            Some(e) if e.epoch != epoch => false,
            Some(e) if e.rev.checked_add(1) == Some(rev) => {
                apply(&mut e.record, changes);
                e.rev = rev;
                // Writes of ours handled early, now in order.
                while e.ahead.first().is_some_and(|a| a.rev <= e.rev + 1) {
                    let a = e.ahead.remove(0);
                    if a.rev == e.rev + 1 {
                        apply(&mut e.record, &a.changes());
                        e.rev = a.rev;
                    }
                }
                e.until_ms = until(&e.record);
                true
            }
            // Already read back with this write in it.
            Some(e) if e.rev >= rev => true,
            // A revision in between is not here yet: one of ours still in
            // flight (kept, unserved, until it arrives), or another
            // client's (its invalidation drops the entry, and so does the
            // end of our operations on the key).
            Some(e) if !ended.last && e.ahead.len() < MAX_AHEAD => {
                let at = e.ahead.partition_point(|a| a.rev < rev);
                e.ahead.insert(at, Ahead::new(changes, rev));
                if let Some(p) = self.pending.get_mut(key) {
                    p.waiting = true;
                }
                true
            }
            Some(_) => false,
        };
        if !keep {
            self.lru.pop(key);
        }
    }

    /// Rule: when our last operation on a key ends, a write still waiting
    /// in its entry waits for a revision that was not ours: the entry goes.
    fn end_gap(&mut self, key: &str) {
        if self.lru.peek(key).is_some_and(|e| !e.ahead.is_empty()) {
            self.lru.pop(key);
        }
    }
}

/// Applies `changes` to `record` exactly as an update applies them to the
/// stored hash.
fn apply(record: &mut Record, changes: &Changes<'_>) {
    for (key, value) in &changes.set {
        record.data.insert((*key).to_owned(), value.to_vec());
    }
    for key in &changes.remove {
        record.data.remove(*key);
    }
    if let Some(flags) = &changes.flags {
        // Stored as numbers where 0 means "none", as the decoder reads them.
        record.meta.permanent = flags.permanent;
        record.meta.lifetime_ms = flags.lifetime_ms.filter(|&ms| ms > 0);
        record.meta.absolute_ms = flags.absolute_ms.filter(|&ms| ms > 0);
    }
    if let Some(expires) = changes.expires_ms {
        record.meta.expires_ms = expires;
    }
}

/// One Redis operation on one key, registered with the cache from before it
/// is sent until its outcome is known. Dropped without [`finish`](Self::finish)
/// (an error, or the request's future cancelled mid-flight), it drops the
/// entry: the write may or may not have happened.
pub(crate) struct Op<'a> {
    cache: &'a Cache,
    key: &'a str,
    /// The key's `disturbed` count when it began.
    disturbed: u64,
    epoch: u64,
    done: bool,
}

impl Op<'_> {
    /// This operation enabled tracking (pipelined before its read): the
    /// connection tracks from now on, in this operation's epoch.
    pub(crate) fn confirm_tracking(&self) {
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

    fn cache() -> Cache {
        let c = Cache::new(&ClientCache::default(), Duration::from_millis(500));
        c.tracking_confirmed(0);
        c
    }

    fn n(c: &Cache, key: &str) -> Option<String> {
        c.get(key).and_then(|r| {
            r.data
                .get("n")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    }

    /// A read of "k" that found `n` at revision `rev`.
    fn fill(c: &Cache, n: &str, rev: u64) {
        c.begin("k")
            .finish(Outcome::Loaded(Some((&record(n), rev))));
    }

    fn invalidate(c: &Cache, key: &str) {
        c.invalidate(key);
    }

    #[test]
    fn a_read_fills_and_an_invalidation_empties() {
        let c = cache();
        fill(&c, "1", 1);
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
        invalidate(&c, "k");
        assert_eq!(n(&c, "k"), None);
        assert_eq!(c.stats().invalidations, 1);
    }

    #[test]
    fn invalidation_during_a_read_forbids_the_fill() {
        // The reply of a read sent before a change can be handled after the
        // change's invalidation: that reply is stale and must not be cached.
        let c = cache();
        let op = c.begin("k");
        invalidate(&c, "k");
        op.finish(Outcome::Loaded(Some((&record("old"), 1))));
        assert_eq!(n(&c, "k"), None);
    }

    #[test]
    fn overlapping_reads_fill() {
        let c = cache();
        let first = c.begin("k");
        let second = c.begin("k");
        second.finish(Outcome::Loaded(Some((&record("1"), 1))));
        first.finish(Outcome::Loaded(Some((&record("1"), 1))));
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn a_read_older_than_a_write_of_ours_does_not_fill() {
        // Our writes send us no invalidation, and their replies may be
        // handled before a read's: the revision tells which state is newer.
        let c = cache();
        let six = set_n(b"6");
        let read = c.begin("k");
        let write = c.begin("k");
        write.finish(Outcome::Updated(&six, 6));
        read.finish(Outcome::Loaded(Some((&record("5"), 5))));
        assert_eq!(n(&c, "k"), None, "the read saw the state before the write");
        // A read that saw the write fills, and the write's late reply is
        // then a no-op.
        let read = c.begin("k");
        let write = c.begin("k");
        read.finish(Outcome::Loaded(Some((&record("6"), 6))));
        write.finish(Outcome::Updated(&six, 6));
        assert_eq!(n(&c, "k").as_deref(), Some("6"));
        // A slow read never replaces a newer entry.
        let slow = c.begin("k");
        c.begin("k").finish(Outcome::Updated(&set_n(b"7"), 7));
        slow.finish(Outcome::Loaded(Some((&record("6"), 6))));
        assert_eq!(n(&c, "k").as_deref(), Some("7"));
    }

    #[test]
    fn a_failed_or_deleting_write_forbids_reads_in_flight_to_fill() {
        let c = cache();
        let read = c.begin("k");
        drop(c.begin("k")); // a delete, or a write whose outcome is unknown
        read.finish(Outcome::Loaded(Some((&record("1"), 1))));
        assert_eq!(n(&c, "k"), None);
        assert!(c.shard("k").pending.is_empty());
    }

    fn set_n(v: &[u8]) -> Changes<'_> {
        Changes {
            set: vec![("n", v)],
            remove: vec![],
            flags: None,
            expires_ms: None,
            delete_if_empty: false,
        }
    }

    #[test]
    fn overlapping_updates_keep_the_entry_when_handled_in_order() {
        // Two requests of one user writing at once: each reply carries the
        // revision it made, so handled in order they both apply.
        let c = cache();
        fill(&c, "1", 4);
        let (two, three) = (set_n(b"2"), set_n(b"3"));
        let a = c.begin("k");
        let b = c.begin("k");
        a.finish(Outcome::Updated(&two, 5));
        b.finish(Outcome::Updated(&three, 6));
        assert_eq!(n(&c, "k").as_deref(), Some("3"));
        assert_eq!(c.stats().hits, 1);
        // Handled out of order, the later write waits for the earlier one,
        // and the entry is not served meanwhile: Redis already holds it.
        let (four, five) = (set_n(b"4"), set_n(b"5"));
        let a = c.begin("k");
        let b = c.begin("k");
        b.finish(Outcome::Updated(&five, 8));
        assert_eq!(n(&c, "k"), None, "not served across a gap");
        a.finish(Outcome::Updated(&four, 7));
        assert_eq!(n(&c, "k").as_deref(), Some("5"));
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn a_gap_nobody_of_ours_fills_drops_the_entry() {
        // Revision 6 was another client's (its invalidation still on the
        // way): once no write of ours is left, the entry goes.
        let c = cache();
        fill(&c, "1", 5);
        let read = c.begin("k");
        c.begin("k").finish(Outcome::Updated(&set_n(b"7"), 7));
        assert_eq!(n(&c, "k"), None);
        // A read older than our write: it neither fills nor fills the gap.
        read.finish(Outcome::Loaded(Some((&record("1"), 5))));
        assert!(c.shard("k").lru.peek("k").is_none());
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn an_update_applies_only_on_the_revision_before() {
        let c = cache();
        fill(&c, "1", 4);
        let changes = set_n(b"2");
        c.begin("k").finish(Outcome::Updated(&changes, 5));
        assert_eq!(n(&c, "k").as_deref(), Some("2"));
        // Someone else wrote revision 6 (and its invalidation is still on
        // its way): our revision 7 is not based on what we hold.
        c.begin("k").finish(Outcome::Updated(&changes, 7));
        assert_eq!(n(&c, "k"), None);
    }

    #[test]
    fn a_dropped_operation_drops_the_entry() {
        let c = cache();
        fill(&c, "1", 1);
        drop(c.begin("k")); // a write cancelled mid-flight
        assert_eq!(n(&c, "k"), None);
        assert!(c.shard("k").pending.is_empty());
    }

    #[test]
    fn disconnection_flushes_and_stops_filling_until_tracking_is_back() {
        let c = cache();
        fill(&c, "1", 1);
        let in_flight = c.begin("j");
        c.flush(); // what the connection does on a disconnection
        assert_eq!(n(&c, "k"), None);
        in_flight.finish(Outcome::Loaded(Some((&record("1"), 1))));
        assert_eq!(
            n(&c, "j"),
            None,
            "an operation of the old epoch fills nothing"
        );
        let op = c.begin("k");
        assert!(!c.tracking(&op));
        op.finish(Outcome::Loaded(Some((&record("1"), 1))));
        assert_eq!(n(&c, "k"), None, "no fill before tracking is re-enabled");
        let op = c.begin("k");
        op.confirm_tracking();
        op.finish(Outcome::Loaded(Some((&record("1"), 1))));
        assert_eq!(n(&c, "k").as_deref(), Some("1"));
    }

    #[test]
    fn expired_and_silent_entries_are_not_served() {
        let c = cache();
        let mut r = record("1");
        r.meta.expires_ms = now_ms().saturating_sub(1);
        c.begin("k").finish(Outcome::Loaded(Some((&r, 1))));
        assert_eq!(n(&c, "k"), None, "past the record's expiry");
        fill(&c, "1", 1);
        c.alive_ms.store(0, Ordering::Release);
        assert_eq!(
            n(&c, "k"),
            None,
            "the connection has not answered for too long"
        );
    }
}
