//! [`SessionState`]: one request's view of its session — which phase it is
//! in, the values (still encoded), which keys changed, and what the handler
//! asked of its id (flush, cycle).
//!
//! A leaf: it records what the handler did and performs no I/O. What that
//! means for the store (delete, create, update, move) is decided by the
//! `lifecycle` module, which reads this state through its accessors and
//! moves it on through its transitions.

use std::collections::{HashMap, HashSet};

use crate::store::{data_size, Meta, Record};
use crate::{Error, SessionId, StorageId};

/// One step of a read-modify-write of a key ([`Session::update`]
/// (crate::Session::update)): the new encoded value (`None`: remove) from
/// the one held (`None`: absent).
pub(crate) type Step =
    Box<dyn FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, Error> + Send + Sync>;

/// A key changed by read-modify-write steps: saved only if the store still
/// holds `expected` there, and recomputed from what it holds otherwise.
struct Guard {
    /// The value the steps started from (as loaded, or as last seen in
    /// the store).
    expected: Option<Vec<u8>>,
    steps: Vec<Step>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

/// Where a request's session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing loaded yet (the handler has not needed the data).
    NotLoaded,
    /// A load was tried and the store was unavailable; another call retries.
    LoadFailed,
    /// A session with no stored record behind it (yet): new, flushed, or
    /// cycled (its record is to be created under a new id).
    Fresh,
    /// Based on the stored record [`SessionState::base`].
    Loaded,
}

/// What happens to the record the request started from, before anything
/// else is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Retire {
    /// Delete them (flush): the loaded record, or — when nothing was
    /// loaded — every record the request's cookies named.
    Delete(Vec<StorageId>),
    /// Move its data to a new id (cycle): create the new record, then
    /// read the old one and replace it by a forwarding marker.
    Move(StorageId),
}

/// One request's session state. Private fields; transitions are methods.
#[derive(Debug)]
pub(crate) struct SessionState {
    phase: Phase,
    /// The stored record this view is based on (phase `Loaded`).
    base: Option<StorageId>,
    /// Current values, encoded.
    data: HashMap<String, Vec<u8>>,
    /// Keys inserted or removed since the load.
    dirty: HashSet<String>,
    /// Keys only incremented since the load, by how much (the store adds
    /// it to what it holds then).
    increments: HashMap<String, i64>,
    /// Keys changed by read-modify-write steps since the load (also in
    /// `dirty`).
    guards: HashMap<String, Guard>,
    meta: Meta,
    /// `permanent`, `lifetime_ms` or `absolute_ms` changed.
    meta_changed: bool,
    /// The user the session is attached to.
    user: Option<String>,
    /// The handler attached (or detached) a user since the load.
    user_changed: bool,
    /// The user of the session a flush destroyed.
    retired_user: Option<String>,
    /// Device notes, and which of them changed since the load.
    info: std::collections::BTreeMap<String, String>,
    info_changed: std::collections::BTreeSet<String>,
    retire: Option<Retire>,
    /// The new id of a cycled session, once its record exists: the cookie
    /// to send, whatever else happens.
    reissue: Option<SessionId>,
    /// Encoded size of `data` (keys + values).
    size: usize,
    /// The codec of sessions this state starts afresh.
    configured_codec: crate::Codec,
    /// The id a session not stored yet will be created under, once the
    /// handler asked for its token.
    reserved: Option<SessionId>,
}

/// A value would take the session past its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverLimit {
    /// The encoded size the session would have.
    pub(crate) size: usize,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            phase: Phase::NotLoaded,
            base: None,
            data: HashMap::new(),
            dirty: HashSet::new(),
            increments: HashMap::new(),
            guards: HashMap::new(),
            meta: Meta::default(),
            meta_changed: false,
            user: None,
            user_changed: false,
            retired_user: None,
            info: std::collections::BTreeMap::new(),
            info_changed: std::collections::BTreeSet::new(),
            retire: None,
            reissue: None,
            size: 0,
            configured_codec: crate::Codec::Json,
            reserved: None,
        }
    }
}

impl SessionState {
    /// A state whose new sessions encode their values with `codec`.
    pub(crate) fn new(codec: crate::Codec) -> Self {
        SessionState {
            configured_codec: codec,
            ..SessionState::default()
        }
    }

    /// The codec of this session's values (its record's, or the
    /// configured one for a session not stored yet).
    pub(crate) fn codec(&self) -> crate::Codec {
        self.meta.codec
    }

    // ---- phases ---------------------------------------------------------

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the data is there to use (phase `Fresh` or `Loaded`).
    pub(crate) fn is_loaded(&self) -> bool {
        matches!(self.phase, Phase::Fresh | Phase::Loaded)
    }

    /// A load failed (the store was unavailable).
    pub(crate) fn load_failed(&mut self) {
        if !self.is_loaded() {
            self.phase = Phase::LoadFailed;
        }
    }

    /// Starts a new, empty session (nothing stored yet).
    pub(crate) fn start_fresh(&mut self, now_ms: u64) {
        self.phase = Phase::Fresh;
        self.reserved = None;
        self.base = None;
        self.data.clear();
        self.dirty.clear();
        self.increments.clear();
        self.guards.clear();
        self.meta = Meta {
            created_ms: now_ms,
            codec: self.configured_codec,
            ..Meta::default()
        };
        self.meta_changed = false;
        self.user = None;
        self.user_changed = false;
        self.info.clear();
        self.info_changed.clear();
        self.size = 0;
    }

    /// Starts from the stored record `record` under `base`.
    pub(crate) fn start_from(&mut self, base: StorageId, record: Record) {
        self.phase = Phase::Loaded;
        self.size = data_size(&record.data);
        self.data = record.data;
        self.meta = record.meta;
        self.user = record.user;
        self.user_changed = false;
        self.info = record.info;
        self.info_changed.clear();
        self.base = Some(base);
        self.dirty.clear();
        self.increments.clear();
        self.guards.clear();
        self.meta_changed = false;
    }

    // ---- what the handler does ------------------------------------------

    /// The encoded value under `key`.
    pub(crate) fn value(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// Stores an encoded value; storing the bytes a key already holds is no
    /// change. Refused, changing nothing, past `limit` bytes.
    pub(crate) fn insert(
        &mut self,
        key: &str,
        encoded: Vec<u8>,
        limit: usize,
    ) -> Result<(), OverLimit> {
        if self.data.get(key).is_some_and(|v| *v == encoded) {
            return Ok(());
        }
        self.put(key, encoded, limit)?;
        self.dirty.insert(key.to_owned());
        self.increments.remove(key);
        self.guards.remove(key);
        Ok(())
    }

    /// Holds `encoded` under `key`, keeping the size; refused past `limit`.
    fn put(&mut self, key: &str, encoded: Vec<u8>, limit: usize) -> Result<(), OverLimit> {
        let old = self.data.get(key);
        let size = self.size - old.map_or(0, |v| v.len() + key.len()) + key.len() + encoded.len();
        if size > limit {
            return Err(OverLimit { size });
        }
        self.size = size;
        self.data.insert(key.to_owned(), encoded);
        Ok(())
    }

    /// Adds `by` to the integer under `key`, now `encoded` (the caller
    /// computed it from the value here): saved as an increment, so that
    /// concurrent ones add up — unless this request set the key itself
    /// (then it is a plain value).
    pub(crate) fn increment(
        &mut self,
        key: &str,
        by: i64,
        encoded: Vec<u8>,
        limit: usize,
    ) -> Result<(), OverLimit> {
        if self.dirty.contains(key) {
            return self.insert(key, encoded, limit);
        }
        let pending = self.increments.get(key).copied().unwrap_or(0);
        let Some(total) = pending.checked_add(by) else {
            return self.insert(key, encoded, limit);
        };
        self.put(key, encoded, limit)?;
        self.increments.insert(key.to_owned(), total);
        Ok(())
    }

    /// Sets `key` to `new`, the result of a read-modify-write `step` on its
    /// value here: saved as a guarded change (see [`Guard`]) — unless this request set or
    /// incremented the key in another way (then it is a plain value).
    /// Refused, changing nothing, past `limit` bytes.
    pub(crate) fn update(
        &mut self,
        key: &str,
        new: Option<Vec<u8>>,
        step: Step,
        limit: usize,
    ) -> Result<(), Error> {
        let held = self.data.get(key).cloned();
        let over = |o: OverLimit| Error::TooLarge {
            size: o.size,
            limit,
        };
        if !self.guards.contains_key(key)
            && (self.dirty.contains(key) || self.increments.contains_key(key))
        {
            return match new {
                Some(v) => self.insert(key, v, limit).map_err(over),
                None => {
                    self.remove(key);
                    Ok(())
                }
            };
        }
        match new {
            Some(v) => self.put(key, v, limit).map_err(over)?,
            None => self.take_value(key),
        }
        self.dirty.insert(key.to_owned());
        self.guards
            .entry(key.to_owned())
            .or_insert_with(|| Guard {
                expected: held,
                steps: Vec::new(),
            })
            .steps
            .push(step);
        Ok(())
    }

    /// Whether `key` has read-modify-write steps to save.
    pub(crate) fn is_guarded(&self, key: &str) -> bool {
        self.guards.contains_key(key)
    }

    /// The guarded keys with the values the store must still hold.
    pub(crate) fn expected(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.guards
            .iter()
            .map(|(k, g)| (k.as_str(), g.expected.as_deref()))
    }

    /// The store holds `held` under the guarded `key` now: its steps run
    /// again from there. Not held to the size limit here (the store checks
    /// it as it saves).
    pub(crate) fn recompute(&mut self, key: &str, held: Option<Vec<u8>>) -> Result<(), Error> {
        let Some(guard) = self.guards.get_mut(key) else {
            return Ok(());
        };
        let mut value = held.clone();
        for step in &mut guard.steps {
            value = step(value.as_deref())?;
        }
        guard.expected = held;
        match value {
            Some(v) => {
                // No limit: cannot fail.
                let _ = self.put(key, v, usize::MAX);
            }
            None => self.take_value(key),
        }
        Ok(())
    }

    /// Drops the value under `key`, keeping the size.
    fn take_value(&mut self, key: &str) {
        if let Some(v) = self.data.remove(key) {
            self.size -= key.len() + v.len();
        }
    }

    /// The keys only incremented, by how much.
    pub(crate) fn increments(&self) -> impl Iterator<Item = (&str, i64)> {
        self.increments.iter().map(|(k, by)| (k.as_str(), *by))
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        match self.data.remove(key) {
            None => false,
            Some(v) => {
                self.size -= key.len() + v.len();
                self.dirty.insert(key.to_owned());
                self.increments.remove(key);
                self.guards.remove(key);
                true
            }
        }
    }

    /// Removes every value.
    pub(crate) fn clear(&mut self) {
        let keys: Vec<String> = self.data.drain().map(|(k, _)| k).collect();
        self.dirty.extend(keys);
        self.increments.clear();
        self.guards.clear();
        self.size = 0;
    }

    /// The keys that have values, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.data.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The handler destroyed the session: the record it started from goes
    /// (the loaded one, one already being retired, or — when nothing was
    /// loaded — `unseen`, the one the cookie names), and a new, empty
    /// session begins.
    pub(crate) fn flush(&mut self, now_ms: u64, unseen: impl FnOnce() -> Vec<StorageId>) {
        let old = match (self.base.take(), self.retire.take()) {
            (Some(sid), _) | (None, Some(Retire::Move(sid))) => vec![sid],
            (None, Some(Retire::Delete(sids))) => sids,
            (None, None) if !self.is_loaded() => unseen(),
            (None, None) => Vec::new(),
        };
        self.retire = (!old.is_empty()).then_some(Retire::Delete(old));
        self.reissue = None;
        if self.user.is_some() {
            self.retired_user = self.user.take();
        }
        self.start_fresh(now_ms);
    }

    /// The id this session will be created under (a session not stored
    /// yet, or one moving to a new id): chosen now, so that the handler can
    /// hand out its token.
    pub(crate) fn reserve_id(&mut self, format: crate::IdFormat) -> &SessionId {
        self.reserved
            .get_or_insert_with(|| SessionId::generate_as(format))
    }

    /// The reserved id, to create the record under.
    pub(crate) fn take_reserved(&mut self) -> Option<SessionId> {
        self.reserved.take()
    }

    /// The handler asked for a new id: a loaded record is to move, with
    /// its data, to a new one. A session with no record has no id to
    /// change (it gets a fresh one when it is first stored).
    pub(crate) fn cycle(&mut self) {
        if let Some(sid) = self.base.take() {
            self.retire = Some(Retire::Move(sid));
            self.phase = Phase::Fresh;
        }
    }

    /// Attaches the session to `user` (`None`: to nobody).
    pub(crate) fn set_user(&mut self, user: Option<String>) {
        if self.user != user {
            self.user = user;
            self.user_changed = true;
        }
    }

    /// Notes `value` under `key` about the session's device (an empty
    /// value removes the note).
    pub(crate) fn set_info(&mut self, key: &str, value: &str) {
        let current = self.info.get(key).map_or("", String::as_str);
        if current != value {
            if value.is_empty() {
                self.info.remove(key);
            } else {
                self.info.insert(key.to_owned(), value.to_owned());
            }
            self.info_changed.insert(key.to_owned());
        }
    }

    pub(crate) fn info(&self) -> &std::collections::BTreeMap<String, String> {
        &self.info
    }

    /// The notes changed since the load (`""`: removed).
    pub(crate) fn info_changes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.info_changed
            .iter()
            .map(|k| (k.as_str(), self.info.get(k).map_or("", String::as_str)))
    }

    pub(crate) fn set_permanent(&mut self, permanent: bool) {
        if self.meta.permanent != permanent {
            self.meta.permanent = permanent;
            self.meta_changed = true;
        }
    }

    pub(crate) fn set_lifetime(&mut self, lifetime_ms: Option<u64>) {
        if self.meta.lifetime_ms != lifetime_ms {
            self.meta.lifetime_ms = lifetime_ms;
            self.meta_changed = true;
        }
    }

    pub(crate) fn set_absolute(&mut self, absolute_ms: Option<u64>) {
        if self.meta.absolute_ms != absolute_ms {
            self.meta.absolute_ms = absolute_ms;
            self.meta_changed = true;
        }
    }

    // ---- what the lifecycle reads and does --------------------------------

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub(crate) fn user_changed(&self) -> bool {
        self.user_changed
    }

    /// The user of the session a flush destroyed.
    pub(crate) fn retired_user(&self) -> Option<&str> {
        self.retired_user.as_deref()
    }

    pub(crate) fn base(&self) -> Option<&StorageId> {
        self.base.as_ref()
    }

    pub(crate) fn retire(&self) -> Option<&Retire> {
        self.retire.as_ref()
    }

    pub(crate) fn reissue(&self) -> Option<&SessionId> {
        self.reissue.as_ref()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Whether anything is to be written besides a touch.
    pub(crate) fn changed(&self) -> bool {
        !self.dirty.is_empty()
            || !self.increments.is_empty()
            || self.meta_changed
            || self.user_changed
            || !self.info_changed.is_empty()
    }

    pub(crate) fn meta_changed(&self) -> bool {
        self.meta_changed
    }

    /// The changed keys: `(key, Some(value))` set, `(key, None)` removed.
    pub(crate) fn changes(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.dirty
            .iter()
            .map(|k| (k.as_str(), self.data.get(k).map(Vec::as_slice)))
    }

    /// Drops a value without a trace of it in the store: it is removed
    /// there at the end of the request (damaged data, or a value of
    /// another shape the handler chose to drop).
    pub(crate) fn discard(&mut self, key: &str) {
        self.remove(key);
    }

    /// The record the request started from was deleted.
    pub(crate) fn retired(&mut self) {
        self.retire = None;
    }

    /// A cycled session's record now exists under `reissue` (created from
    /// this state): it is the base from here on, and its cookie is sent.
    /// Returns the changes made by this request, which
    /// [`moved`](Self::moved) needs.
    pub(crate) fn reissued(&mut self, reissue: SessionId, expires_ms: u64) -> HashSet<String> {
        self.retire = None;
        self.meta.expires_ms = expires_ms;
        self.base = Some(reissue.storage_id());
        self.reissue = Some(reissue);
        self.phase = Phase::Loaded;
        self.meta_changed = false;
        self.user_changed = false;
        self.info_changed.clear();
        let mut changed = std::mem::take(&mut self.dirty);
        changed.extend(self.increments.drain().map(|(k, _)| k));
        self.guards.clear();
        changed
    }

    /// The session was deleted meanwhile: nothing is left to write.
    pub(crate) fn gone(&mut self, now_ms: u64) {
        self.reissue = None;
        self.start_fresh(now_ms);
    }

    /// The old record of a cycled session was moved; `current` is what it
    /// held then (concurrent writes included). What the new record lacks of
    /// it — what others wrote since this request loaded, under the keys
    /// this request did not change (`changed`) — becomes this state's
    /// changes, to be written to the new record.
    pub(crate) fn moved(&mut self, current: Record, changed: &HashSet<String>) {
        let mut merged = current.data;
        for key in changed {
            match self.data.get(key) {
                Some(v) => merged.insert(key.clone(), v.clone()),
                None => merged.remove(key),
            };
        }
        let differs = |k: &String| self.data.get(k) != merged.get(k);
        let dirty: HashSet<String> = merged
            .keys()
            .chain(self.data.keys())
            .filter(|k| differs(k))
            .cloned()
            .collect();
        self.size = data_size(&merged);
        self.data = merged;
        self.dirty = dirty;
    }

    /// The record to create from this state, expiring at `expires_ms`.
    pub(crate) fn to_record(&self, expires_ms: u64) -> Record {
        let mut meta = self.meta;
        meta.expires_ms = expires_ms;
        let mut record = Record::new(self.data.clone(), meta);
        record.user.clone_from(&self.user);
        record.info.clone_from(&self.info);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_respects_the_limit_and_ignores_same_bytes() {
        let mut s = SessionState::default();
        s.start_fresh(1);
        assert!(s.insert("a", b"12".to_vec(), 3).is_ok());
        assert_eq!(s.size(), 3);
        assert_eq!(s.insert("b", b"1".to_vec(), 3), Err(OverLimit { size: 5 }));
        assert_eq!(s.value("b"), None, "refused: nothing changed");
        let mut again = SessionState::default();
        again.start_from(
            StorageId::parse(format!("1.{}", "A".repeat(43))).unwrap(),
            Record::new([("a".to_owned(), b"1".to_vec())].into(), Meta::default()),
        );
        assert!(again.insert("a", b"1".to_vec(), 10).is_ok());
        assert!(!again.changed(), "the same bytes are no change");
    }

    #[test]
    fn moved_merges_this_requests_changes_over_the_stored_data() {
        let sid = StorageId::parse(format!("1.{}", "B".repeat(43))).unwrap();
        let mut s = SessionState::default();
        s.start_from(
            sid,
            Record::new(
                [
                    ("a".to_owned(), b"1".to_vec()),
                    ("b".to_owned(), b"2".to_vec()),
                ]
                .into(),
                Meta::default(),
            ),
        );
        s.insert("c", b"3".to_vec(), 100).unwrap();
        s.remove("a");
        s.cycle();
        assert!(matches!(s.retire(), Some(Retire::Move(_))));
        // Meanwhile another request stored "d".
        let current = Record::new(
            [
                ("a".to_owned(), b"1".to_vec()),
                ("b".to_owned(), b"2".to_vec()),
                ("d".to_owned(), b"4".to_vec()),
            ]
            .into(),
            Meta::default(),
        );
        let id = SessionId::generate();
        let changed = s.reissued(id.clone(), 9);
        assert_eq!(s.base(), Some(&id.storage_id()));
        assert!(!s.changed(), "the new record holds this request's view");
        s.moved(current, &changed);
        assert_eq!(s.keys(), ["b", "c", "d"]);
        assert_eq!(s.size(), 6);
        let dirty: Vec<_> = s.changes().collect();
        assert_eq!(
            dirty,
            [("d", Some(b"4".as_slice()))],
            "only what others wrote"
        );
        assert!(s.retire().is_none() && s.reissue() == Some(&id));
    }
}
