//! [`MemoryStore`]: sessions in this process, with the same semantics as the
//! Redis store (atomic create/update/take, forwarding after a move, expiry).
//! For tests, development and the demo when no Redis is reachable; data is
//! lost when the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{now_ms, BoxFuture, Changes, Record, SessionStore, UpdateOutcome, MOVED_GRACE};
use crate::{Error, StorageId};

/// Expired entries are swept every this many writes.
const SWEEP_EVERY: u64 = 1024;

/// An in-process [`SessionStore`]. Cloning shares the same sessions.
///
/// ```
/// use sessionkit::{MemoryStore, SessionConfig, SessionLayer};
/// let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default());
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
enum Entry {
    Live(Record),
    /// Moved by `take`: forwards updates until `until_ms`.
    Moved {
        to: StorageId,
        until_ms: u64,
    },
}

impl Entry {
    fn expires_ms(&self) -> u64 {
        match self {
            Entry::Live(r) => r.meta.expires_ms,
            Entry::Moved { until_ms, .. } => *until_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<StorageId, Entry>,
    writes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live (unexpired) sessions.
    pub fn len(&self) -> usize {
        let now = now_ms();
        self.lock()
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Live(r) if r.meta.expires_ms > now))
            .count()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is a single map operation, so a panic elsewhere
        // cannot leave a record half-written: a poisoned lock is safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// The unexpired entry for `id`, removing it if it has expired.
    fn entry(&mut self, id: &StorageId, now: u64) -> Option<&mut Entry> {
        if self.entries.get(id).is_some_and(|e| e.expires_ms() <= now) {
            self.entries.remove(id);
        }
        self.entries.get_mut(id)
    }

    fn wrote(&mut self, now: u64) {
        self.writes += 1;
        if self.writes % SWEEP_EVERY == 0 {
            self.entries.retain(|_, e| e.expires_ms() > now);
        }
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        let out = match self.lock().entry(id, now_ms()) {
            Some(Entry::Live(r)) => Some(r.clone()),
            _ => None,
        };
        Box::pin(async move { Ok(out) })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let created = inner.entry(id, now).is_none();
        if created {
            inner
                .entries
                .insert(id.clone(), Entry::Live(record.clone()));
            inner.wrote(now);
        }
        Box::pin(async move { Ok(created) })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let outcome = match inner.entry(id, now) {
            None => UpdateOutcome::Gone,
            Some(Entry::Moved { to, .. }) => UpdateOutcome::Moved(to.clone()),
            Some(Entry::Live(record)) => {
                let before = record.size();
                let after = changes.size_after(before, |k| record.data.get(k).map(Vec::len));
                if let Some(limit) = changes.max_size.filter(|l| after > *l && after > before) {
                    let e = Error::TooLarge { size: after, limit };
                    return Box::pin(async move { Err(e) });
                }
                for (k, v) in &changes.set {
                    record.data.insert((*k).to_owned(), v.to_vec());
                }
                for k in &changes.remove {
                    record.data.remove(*k);
                }
                if let Some(flags) = changes.flags {
                    record.meta.permanent = flags.permanent;
                    record.meta.lifetime_ms = flags.lifetime_ms;
                    record.meta.absolute_ms = flags.absolute_ms;
                }
                if let Some(expires) = changes.expires_ms {
                    record.meta.expires_ms = expires;
                }
                if changes.delete_if_empty && record.data.is_empty() {
                    inner.entries.remove(id);
                    UpdateOutcome::Deleted
                } else {
                    UpdateOutcome::Saved
                }
            }
        };
        inner.wrote(now);
        Box::pin(async move { Ok(outcome) })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        self.lock().entries.remove(id);
        Box::pin(async { Ok(()) })
    }

    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let out = match inner.entry(id, now) {
            Some(Entry::Live(_)) => {
                let marker = Entry::Moved {
                    to: moved_to.clone(),
                    until_ms: now.saturating_add(super::ms(MOVED_GRACE)),
                };
                match inner.entries.insert(id.clone(), marker) {
                    Some(Entry::Live(r)) => Some(r),
                    _ => None,
                }
            }
            _ => None,
        };
        inner.wrote(now);
        Box::pin(async move { Ok(out) })
    }
}
