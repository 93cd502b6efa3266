//! The storage interface: what a backend must do, and the record it keeps.
//!
//! A store sees only [`StorageId`]s and encoded values; it never sees a
//! session id or a cookie. Every operation is one atomic step on one session,
//! so the lifecycle's guarantees hold for every backend:
//!
//! - [`create`](SessionStore::create) never overwrites an existing record;
//! - [`update`](SessionStore::update) never recreates a record that is gone;
//! - [`take`](SessionStore::take) reads and deletes in one step, leaving a
//!   short-lived forwarding marker so that requests which loaded the session
//!   before it moved still land their writes in the new record.
//!
//! A session attached to a user ([`Record::user`]) is also listed in that
//! user's index, which the store keeps in step with its records: an entry
//! is added (or its deadline raised) before a record with that user is
//! created or has its expiry moved, so the index never misses a live
//! session; entries of sessions that ended are removed as they end, or
//! lazily ([`sessions_of`](SessionStore::sessions_of)). The index holds at
//! most [`MAX_SESSIONS_PER_USER`] sessions per user (or the store's own
//! setting): attaching one more ends the one closest to expiring.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use crate::{Error, StorageId};

#[cfg(feature = "flask")]
pub mod flask;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed, `Send` future, as returned by [`SessionStore`] methods (keeps the
/// trait usable as `dyn SessionStore`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Current version of the record layout; stores write it and refuse others.
pub const LAYOUT_VERSION: u32 = 1;

/// How long a moved session's old id forwards the writes of requests that
/// loaded it before the move ([`SessionStore::take`]). Longer than any
/// sensible request; a request that loads the old id after the move sees no
/// session at all.
pub const MOVED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sessions of one user a store keeps by default; attaching one more ends
/// the one of them closest to expiring (the least recently active).
pub const MAX_SESSIONS_PER_USER: usize = 32;

/// One session as a store holds it.
///
/// New fields may be added in minor versions: build one with
/// [`Record::new`] (or `Default`) and set fields by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Encoded values by key.
    pub data: HashMap<String, Vec<u8>>,
    /// Timestamps and flags.
    pub meta: Meta,
    /// The user the session is attached to (listed in their index).
    pub user: Option<String>,
    /// What the application noted about the session's device
    /// ([`Session::set_info`](crate::Session::set_info)).
    pub info: std::collections::BTreeMap<String, String>,
}

/// A session's metadata. Times are Unix milliseconds.
///
/// New fields may be added in minor versions: start from
/// [`Meta::default`] and set fields by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// When the session was created.
    pub created_ms: u64,
    /// When the session expires (the store's TTL is set to this instant).
    pub expires_ms: u64,
    /// Whether the session is permanent (long-lived, persistent cookie).
    pub permanent: bool,
    /// A lifetime for this session only, overriding the configured one.
    pub lifetime_ms: Option<u64>,
    /// A hard end for this session only (Unix ms), on top of the configured
    /// absolute lifetime.
    pub absolute_ms: Option<u64>,
    /// When a request last saved or touched the session, kept for a
    /// session attached to a user (0: not known).
    pub seen_ms: u64,
    /// The format of the record's values, fixed when it is created.
    pub codec: crate::Codec,
}

/// A change to an existing record, as [`SessionStore::update`] receives it.
///
/// New fields may be added in minor versions; build one (in a test of a
/// store, say) from [`Changes::default`] and set fields by name.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Changes<'a> {
    /// Keys to set, with their encoded values.
    pub set: Vec<(&'a str, &'a [u8])>,
    /// Keys to remove.
    pub remove: Vec<&'a str>,
    /// New `permanent` and `lifetime_ms`, when they changed (`created_ms` and
    /// `expires_ms` of this value are ignored).
    pub flags: Option<Meta>,
    /// New expiry (Unix ms) for the record and its TTL; `None` keeps the
    /// current one.
    pub expires_ms: Option<u64>,
    /// Delete the record when no data key remains after this change.
    pub delete_if_empty: bool,
    /// Refuse, writing nothing, a change that would take the record's data
    /// (keys and encoded values, in bytes) past this size and make it
    /// larger than it is: [`Error::TooLarge`]. Checked in the same atomic
    /// step as the write, so that requests running in parallel cannot add
    /// up to more than the limit.
    pub max_size: Option<usize>,
    /// The user the session belongs to after this change, if any: its
    /// index entry follows a moved expiry.
    pub user: Option<&'a str>,
    /// This change attaches the session to [`user`](Self::user) (writes
    /// it; lists the session in that user's index).
    pub attach: bool,
    /// The record's expiry as the caller loaded it: what the index entry
    /// of a session attached without a new expiry keeps.
    pub stored_expires_ms: u64,
    /// When this request saw the session (Unix ms), to keep.
    pub seen_ms: Option<u64>,
    /// Device notes to set (an empty value removes one).
    pub info: Vec<(&'a str, &'a str)>,
    /// Integers to add to the values of these keys, in the store, so that
    /// concurrent increments add up: a value that is not an integer (or
    /// would overflow) starts over at the increment. Not held to
    /// `max_size` (an increment changes a size by a few bytes).
    pub increments: Vec<(&'a str, i64)>,
    /// Apply nothing unless each of these keys still holds this encoded
    /// value (`None`: no value) — checked in the same atomic step as the
    /// write; otherwise [`UpdateOutcome::Conflict`]. How
    /// [`Session::update`](crate::Session::update) loses no concurrent
    /// change.
    pub expect: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl Record {
    /// A record of `data` (encoded values by key) and `meta`.
    pub fn new(data: HashMap<String, Vec<u8>>, meta: Meta) -> Self {
        Record {
            data,
            meta,
            user: None,
            info: std::collections::BTreeMap::new(),
        }
    }

    /// The size the session limit counts: the bytes of every key and
    /// encoded value.
    pub fn size(&self) -> usize {
        data_size(&self.data)
    }
}

impl Changes<'_> {
    /// The size ([`Record::size`]) a record of size `before` has after this
    /// change; `held` gives the length of the value it holds under a key.
    pub fn size_after(&self, before: usize, held: impl Fn(&str) -> Option<usize>) -> usize {
        let old = |k: &str| held(k).map_or(0, |len| k.len() + len);
        let added: usize = self.set.iter().map(|(k, v)| k.len() + v.len()).sum();
        let dropped: usize = self
            .set
            .iter()
            .map(|(k, _)| old(k))
            .chain(self.remove.iter().map(|k| old(k)))
            .sum();
        (before + added).saturating_sub(dropped)
    }
}

/// What [`SessionStore::update`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateOutcome {
    /// The changes were applied.
    Saved,
    /// The record no longer exists (deleted or expired meanwhile); nothing
    /// was written.
    Gone,
    /// The changes left no data, so the record was deleted.
    Deleted,
    /// The session moved to this id ([`SessionStore::take`]) after the
    /// request loaded it; nothing was written. The caller may apply its data
    /// changes there.
    Moved(StorageId),
    /// A key of [`Changes::expect`] holds something else now; nothing was
    /// written. What each of those keys holds (`None`: no value), so that
    /// the caller can compute its change again and retry.
    Conflict(HeldValues),
}

/// Keys with the encoded values a record holds under them (`None`: no
/// value), as [`UpdateOutcome::Conflict`] reports them.
pub type HeldValues = Vec<(String, Option<Vec<u8>>)>;

/// A session backend.
///
/// Implement it for a new storage; [`MemoryStore`](memory::MemoryStore) is a
/// complete reference implementation.
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a record; `None` if there is none (or it has expired).
    ///
    /// A record that exists but cannot be read (wrong type, unknown layout)
    /// is an [`Error::Corrupt`]; the caller deletes it.
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>>;

    /// Stores a new record, expiring at `record.meta.expires_ms`. Returns
    /// `false`, writing nothing, if a record with this id already exists.
    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Applies `changes` to an existing record and sets its expiry, in one
    /// atomic step. A record that no longer exists is not recreated.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] (nothing written) when the change would take
    /// the record past [`Changes::max_size`].
    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>>;

    /// Deletes a record and its index entry (no error if there is none).
    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>>;

    /// The live sessions attached to `user`, with their records, in no
    /// particular order. Index entries of sessions that ended (expired,
    /// deleted, moved, attached to someone else since) are removed on the
    /// way: the index cannot grow without bound.
    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>>;

    /// Ends a session for good: deletes its record and its index entry,
    /// and, if it had moved (a cycled id), the session it moved to, the
    /// same way. Whether there was anything to end. A request that loaded
    /// it before cannot bring it back ([`update`](Self::update) does not
    /// recreate a record that is gone).
    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>>;

    /// Reads and deletes a record in one atomic step, leaving in its place
    /// for [`MOVED_GRACE`] a marker that makes [`load`](Self::load) see
    /// nothing and [`update`](Self::update) answer
    /// [`UpdateOutcome::Moved`]`(moved_to)`. Used by `cycle_id`: the caller
    /// then creates the record under `moved_to`. `None` if there was no
    /// record (or only a marker).
    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>>;
}

/// A store shared behind an `Arc` is a store (the application's and an
/// admin tool's, say).
impl<S: SessionStore + ?Sized> SessionStore for std::sync::Arc<S> {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        (**self).load(id)
    }
    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        (**self).create(id, record)
    }
    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        (**self).update(id, changes)
    }
    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        (**self).delete(id)
    }
    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        (**self).sessions_of(user)
    }
    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        (**self).revoke(id)
    }
    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        (**self).take(id, moved_to)
    }
}

/// The size the session limit counts of `data` (see [`Record::size`]).
pub(crate) fn data_size(data: &HashMap<String, Vec<u8>>) -> usize {
    data.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Current time in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
