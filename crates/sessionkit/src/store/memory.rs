//! [`MemoryStore`]: sessions in this process, with the same semantics as the
//! Redis store (atomic create/update/take, expiry). For tests, development and
//! the demo when no Redis is reachable; data is lost when the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{now_ms, BoxFuture, Changes, Record, SessionStore, UpdateOutcome};
use crate::{Error, StorageId};

/// Expired records are swept every this many writes.
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

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<StorageId, Record>,
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
            .records
            .values()
            .filter(|r| r.meta.expires_ms > now)
            .count()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave a record half-written
        // (every mutation is a single map operation), so a poisoned lock is safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// The live record for `id`, removing it if it has expired.
    fn live(&mut self, id: &StorageId, now: u64) -> Option<&mut Record> {
        if self.records.get(id).is_some_and(|r| r.meta.expires_ms <= now) {
            self.records.remove(id);
        }
        self.records.get_mut(id)
    }

    fn wrote(&mut self, now: u64) {
        self.writes += 1;
        if self.writes % SWEEP_EVERY == 0 {
            self.records.retain(|_, r| r.meta.expires_ms > now);
        }
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        let out = self.lock().live(id, now_ms()).map(|r| r.clone());
        Box::pin(async move { Ok(out) })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let created = if inner.live(id, now).is_some() {
            false
        } else {
            inner.records.insert(id.clone(), record.clone());
            inner.wrote(now);
            true
        };
        Box::pin(async move { Ok(created) })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let outcome = match inner.live(id, now) {
            None => UpdateOutcome::Gone,
            Some(record) => {
                for (k, v) in &changes.set {
                    record.data.insert((*k).to_owned(), v.to_vec());
                }
                for k in &changes.remove {
                    record.data.remove(*k);
                }
                let created_ms = record.meta.created_ms;
                record.meta = changes.meta;
                record.meta.created_ms = created_ms;
                if changes.delete_if_empty && record.data.is_empty() {
                    inner.records.remove(id);
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
        self.lock().records.remove(id);
        Box::pin(async { Ok(()) })
    }

    fn take<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let out = inner.live(id, now).is_some().then(|| inner.records.remove(id)).flatten();
        Box::pin(async move { Ok(out) })
    }
}
