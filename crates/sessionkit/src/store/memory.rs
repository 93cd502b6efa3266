//! [`MemoryStore`]: sessions in this process, with the same semantics as the
//! Redis store (atomic create/update/take, forwarding after a move, expiry).
//! For tests, development and the demo when no Redis is reachable; data is
//! lost when the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    now_ms, BoxFuture, Changes, Record, SessionStore, UpdateOutcome, MAX_SESSIONS_PER_USER,
    MOVED_GRACE,
};
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

#[derive(Debug)]
struct Inner {
    entries: HashMap<StorageId, Entry>,
    /// Per user: their sessions' storage ids and deadlines.
    users: HashMap<String, HashMap<StorageId, u64>>,
    max_per_user: usize,
    writes: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            entries: HashMap::new(),
            users: HashMap::new(),
            max_per_user: MAX_SESSIONS_PER_USER,
            writes: 0,
        }
    }
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

    /// Keeps at most `n` sessions per user (at least 1; default
    /// [`MAX_SESSIONS_PER_USER`]): attaching one more ends the one closest
    /// to expiring.
    #[must_use]
    pub fn with_max_sessions_per_user(self, n: usize) -> Self {
        self.lock().max_per_user = n.max(1);
        self
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
            for sessions in self.users.values_mut() {
                sessions.retain(|_, deadline| *deadline > now);
            }
            self.users.retain(|_, sessions| !sessions.is_empty());
        }
    }

    /// Lists `id` in `user`'s index until at least `deadline`; ends the
    /// sessions closest to expiring past the cap.
    fn index(&mut self, user: &str, id: &StorageId, deadline: u64, now: u64) {
        let cap = self.max_per_user;
        let sessions = self.users.entry(user.to_owned()).or_default();
        sessions.retain(|_, d| *d > now);
        let d = sessions.entry(id.clone()).or_insert(deadline);
        *d = (*d).max(deadline);
        let mut evicted = Vec::new();
        while sessions.len() > cap {
            let Some(victim) = sessions
                .iter()
                .filter(|(sid, _)| *sid != id)
                .min_by_key(|(_, d)| **d)
                .map(|(sid, _)| sid.clone())
            else {
                break;
            };
            sessions.remove(&victim);
            evicted.push(victim);
        }
        for victim in evicted {
            self.revoke(&victim, now);
        }
    }

    /// Takes `id` out of `user`'s index.
    fn unindex(&mut self, user: Option<&str>, id: &StorageId) {
        let Some(user) = user else { return };
        if let Some(sessions) = self.users.get_mut(user) {
            sessions.remove(id);
            if sessions.is_empty() {
                self.users.remove(user);
            }
        }
    }

    /// Ends `id` and, if it moved, where it moved to.
    fn revoke(&mut self, id: &StorageId, now: u64) -> bool {
        let mut next = Some(id.clone());
        let mut ended = false;
        while let Some(id) = next.take() {
            // An expired entry is removed by `entry` and ends nothing.
            let removed = match self.entry(&id, now) {
                Some(_) => self.entries.remove(&id),
                None => None,
            };
            match removed {
                Some(Entry::Live(r)) => {
                    self.unindex(r.user.as_deref(), &id);
                    ended = true;
                }
                Some(Entry::Moved { to, .. }) => {
                    ended = true;
                    next = Some(to);
                }
                None => {}
            }
        }
        ended
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
            if let Some(user) = &record.user {
                inner.index(user, id, record.meta.expires_ms, now);
            }
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
            Some(Entry::Live(record))
                if changes
                    .expect
                    .iter()
                    .any(|(k, v)| record.data.get(*k).map(Vec::as_slice) != *v) =>
            {
                UpdateOutcome::Conflict(
                    changes
                        .expect
                        .iter()
                        .map(|(k, _)| ((*k).to_owned(), record.data.get(*k).cloned()))
                        .collect(),
                )
            }
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
                let codec = record.meta.codec;
                for (k, by) in &changes.increments {
                    let now = record
                        .data
                        .get(*k)
                        .and_then(|v| crate::codec::integer(codec, v))
                        .and_then(|n| n.checked_add(*by))
                        .unwrap_or(*by);
                    // Encoding an integer cannot fail.
                    if let Ok(encoded) = crate::codec::encode(codec, k, &now) {
                        record.data.insert((*k).to_owned(), encoded);
                    }
                }
                if let Some(flags) = changes.flags {
                    record.meta.permanent = flags.permanent;
                    record.meta.lifetime_ms = flags.lifetime_ms;
                    record.meta.absolute_ms = flags.absolute_ms;
                }
                if let Some(expires) = changes.expires_ms {
                    record.meta.expires_ms = expires;
                }
                if let Some(seen) = changes.seen_ms {
                    record.meta.seen_ms = seen;
                }
                for (k, v) in &changes.info {
                    if v.is_empty() {
                        record.info.remove(*k);
                    } else {
                        record.info.insert((*k).to_owned(), (*v).to_owned());
                    }
                }
                let before = record.user.clone();
                if changes.attach {
                    record.user = changes.user.map(str::to_owned);
                }
                let deadline = record.meta.expires_ms;
                if changes.delete_if_empty && record.data.is_empty() {
                    let user = record.user.clone();
                    inner.entries.remove(id);
                    inner.unindex(user.as_deref(), id);
                    UpdateOutcome::Deleted
                } else {
                    if changes.attach && before.as_deref() != changes.user {
                        inner.unindex(before.as_deref(), id);
                    }
                    if let Some(user) = changes.user {
                        if changes.attach || changes.expires_ms.is_some() {
                            inner.index(user, id, deadline, now);
                        }
                    }
                    UpdateOutcome::Saved
                }
            }
        };
        inner.wrote(now);
        Box::pin(async move { Ok(outcome) })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.lock();
        if let Some(Entry::Live(r)) = inner.entries.remove(id) {
            inner.unindex(r.user.as_deref(), id);
        }
        Box::pin(async { Ok(()) })
    }

    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        let now = now_ms();
        let mut inner = self.lock();
        let ids: Vec<StorageId> = inner
            .users
            .get(user)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        let mut live = Vec::new();
        for id in ids {
            match inner.entry(&id, now) {
                Some(Entry::Live(r)) if r.user.as_deref() == Some(user) => {
                    live.push((id, r.clone()));
                }
                _ => inner.unindex(Some(user), &id),
            }
        }
        Box::pin(async move { Ok(live) })
    }

    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        let ended = self.lock().revoke(id, now_ms());
        Box::pin(async move { Ok(ended) })
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
                    Some(Entry::Live(r)) => {
                        inner.unindex(r.user.as_deref(), id);
                        Some(r)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        inner.wrote(now);
        Box::pin(async move { Ok(out) })
    }
}
