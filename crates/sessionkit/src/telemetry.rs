//! Metrics (through the `metrics` facade: whatever recorder the
//! application installs, e.g. `metrics-exporter-prometheus`; none, and they
//! cost next to nothing) and the tracing spans of store calls. Names are
//! listed in [`names`]; no label or field ever carries an id.
//!
//! The lifecycle counts what it decides (creates, updates, touches,
//! deletes, forwarded saves, corrupt records, 503s, session sizes);
//! a wrapper around the store times every call; the Redis store's
//! client cache counts its hits and misses.

use std::time::Instant;

use tracing::Instrument as _;

use crate::store::{BoxFuture, Changes, Record, SessionStore, UpdateOutcome};
use crate::{Error, StorageId};

/// The metric names.
pub mod names {
    /// Counter: sessions loaded from the store (one per load call).
    pub const LOADS: &str = "sessionkit_loads_total";
    /// Counter: loads answered by the client cache (Redis store).
    pub const CACHE_HITS: &str = "sessionkit_cache_hits_total";
    /// Counter: loads the client cache could not answer (Redis store).
    pub const CACHE_MISSES: &str = "sessionkit_cache_misses_total";
    /// Counter: new sessions stored (cycles included).
    pub const CREATES: &str = "sessionkit_creates_total";
    /// Counter: saves of changed data.
    pub const UPDATES: &str = "sessionkit_updates_total";
    /// Counter: saves that only moved the expiry.
    pub const TOUCHES: &str = "sessionkit_touches_total";
    /// Counter: sessions destroyed by their own request (logout, emptied).
    pub const DELETES: &str = "sessionkit_deletes_total";
    /// Counter: sessions ended from elsewhere (revoked).
    pub const REVOCATIONS: &str = "sessionkit_revocations_total";
    /// Counter: saves forwarded to a session that had moved (a cycled id).
    pub const FORWARDED: &str = "sessionkit_forwarded_saves_total";
    /// Saves retried because a key updated with `Session::update` changed
    /// in the store meanwhile (counter).
    pub const CONFLICTS: &str = "sessionkit_update_conflicts_total";
    /// Counter: corrupt records dropped.
    pub const CORRUPT: &str = "sessionkit_corrupt_records_total";
    /// Counter: responses replaced by a 503 (the store unavailable).
    pub const UNAVAILABLE: &str = "sessionkit_unavailable_total";
    /// Histogram (seconds), label `op`: each store call's duration.
    pub const STORE_CALL: &str = "sessionkit_store_call_seconds";
    /// Histogram (bytes): a session's size when saved.
    pub const SESSION_BYTES: &str = "sessionkit_session_bytes";
}

/// Adds one to counter `name`.
pub(crate) fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}

/// Records a saved session's size.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn session_size(bytes: usize) {
    metrics::histogram!(names::SESSION_BYTES).record(bytes as f64);
}

/// A store whose every call is timed ([`names::STORE_CALL`]) and runs in a
/// `store` span (the operation and the session's short tag).
pub(crate) struct Measured<S>(pub(crate) S);

async fn timed<T>(
    op: &'static str,
    id: Option<&StorageId>,
    call: BoxFuture<'_, Result<T, Error>>,
) -> Result<T, Error> {
    let span = tracing::debug_span!("store", op, session = id.map(StorageId::short));
    let started = Instant::now();
    let result = call.instrument(span).await;
    metrics::histogram!(names::STORE_CALL, "op" => op).record(started.elapsed().as_secs_f64());
    result
}

impl<S: SessionStore> SessionStore for Measured<S> {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        count(names::LOADS);
        Box::pin(timed("load", Some(id), self.0.load(id)))
    }
    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(timed("create", Some(id), self.0.create(id, record)))
    }
    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        Box::pin(timed("update", Some(id), self.0.update(id, changes)))
    }
    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(timed("delete", Some(id), self.0.delete(id)))
    }
    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        Box::pin(timed("sessions_of", None, self.0.sessions_of(user)))
    }
    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let ended = timed("revoke", Some(id), self.0.revoke(id)).await?;
            if ended {
                count(names::REVOCATIONS);
            }
            Ok(ended)
        })
    }
    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(timed("take", Some(id), self.0.take(id, moved_to)))
    }
}
