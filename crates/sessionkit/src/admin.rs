//! A user's sessions: who is signed in where, and ending them — one, all
//! ("log out everywhere"), or all but one. [`UserSessions`] works on a
//! store directly (an admin page, a support tool, the operator CLI); a
//! request's [`Session`](crate::Session) offers the same for its own user
//! (`devices`, `revoke_device`, `logout_everywhere`, `logout_others`).
//!
//! Sessions are found through the store's per-user index
//! ([`SessionStore::sessions_of`]), which never misses a live session;
//! ending one is [`SessionStore::revoke`]: final, whatever requests of it
//! are in flight.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::{Listener, SessionEvent, SessionListener};
use crate::store::{Record, SessionStore};
use crate::{Error, SessionHandle, StorageId};

/// One session of a user, as a device list shows it. Carries no id: only
/// the public [`SessionHandle`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// What names this session to its owner (never usable as a cookie).
    pub handle: SessionHandle,
    /// The user it is attached to.
    pub user: String,
    /// When it was created.
    pub created: SystemTime,
    /// When a request last saved or touched it (to within the touch
    /// interval: a read that writes nothing does not count); `None` if
    /// never recorded.
    pub last_seen: Option<SystemTime>,
    /// When it expires unless used again.
    pub expires: SystemTime,
    /// Whether it is the session of the request that asked.
    pub current: bool,
    /// What the application noted about its device
    /// ([`Session::set_info`](crate::Session::set_info)).
    pub info: std::collections::BTreeMap<String, String>,
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl SessionInfo {
    /// The entry for the record `record` under `id`, attached to `user`.
    fn of(user: &str, id: &StorageId, record: &Record, current: Option<&StorageId>) -> Self {
        SessionInfo {
            handle: id.handle(),
            user: user.to_owned(),
            created: time(record.meta.created_ms),
            last_seen: (record.meta.seen_ms > 0).then(|| time(record.meta.seen_ms)),
            expires: time(record.meta.expires_ms),
            current: current == Some(id),
            info: record.info.clone(),
        }
    }
}

/// The sessions of users in a store.
///
/// ```
/// # async fn demo(store: sessionkit::MemoryStore) -> Result<(), sessionkit::Error> {
/// use sessionkit::admin::UserSessions;
/// let sessions = UserSessions::new(store);
/// for s in sessions.list("ann").await? {
///     println!("{} created {:?}", s.handle, s.created);
/// }
/// let ended = sessions.revoke_all("ann").await?; // log ann out everywhere
/// # let _ = ended;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UserSessions {
    store: Arc<dyn SessionStore>,
    listener: Listener,
}

impl std::fmt::Debug for UserSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSessions").finish_non_exhaustive()
    }
}

impl UserSessions {
    /// The sessions in `store` (a clone of the store the application uses:
    /// clones share their sessions).
    pub fn new(store: impl SessionStore) -> Self {
        UserSessions {
            store: Arc::new(crate::telemetry::Measured(store)),
            listener: Listener::default(),
        }
    }

    /// Tells `listener` of every session this ends ([`SessionEvent::Revoked`]).
    #[must_use]
    pub fn with_listener(mut self, listener: impl SessionListener) -> Self {
        self.listener = Listener::new(listener);
        self
    }

    pub(crate) fn of_store(store: Arc<dyn SessionStore>, listener: Listener) -> Self {
        UserSessions { store, listener }
    }

    /// Ends `id`, a session of `user`, and says so.
    async fn end(&self, user: &str, id: &StorageId) -> Result<bool, Error> {
        let ended = self.store.revoke(id).await?;
        if ended {
            self.listener.emit(|| SessionEvent::Revoked {
                handle: id.handle(),
                user: user.to_owned(),
            });
        }
        Ok(ended)
    }

    /// The live sessions of `user`, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn list(&self, user: &str) -> Result<Vec<SessionInfo>, Error> {
        self.list_marking(user, None).await
    }

    pub(crate) async fn list_marking(
        &self,
        user: &str,
        current: Option<&StorageId>,
    ) -> Result<Vec<SessionInfo>, Error> {
        let mut list: Vec<SessionInfo> = self
            .store
            .sessions_of(user)
            .await?
            .iter()
            .map(|(id, record)| SessionInfo::of(user, id, record, current))
            .collect();
        list.sort_by(|a, b| (a.created, &a.handle).cmp(&(b.created, &b.handle)));
        Ok(list)
    }

    /// Ends the session of `user` that `handle` names; whether it was one
    /// of theirs (a handle of another user's session ends nothing).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn revoke(&self, user: &str, handle: &SessionHandle) -> Result<bool, Error> {
        for (id, _) in self.store.sessions_of(user).await? {
            if id.handle() == *handle {
                self.end(user, &id).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ends every session of `user` ("log out everywhere"); how many.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached (some may
    /// have ended: ending them again is harmless).
    pub async fn revoke_all(&self, user: &str) -> Result<usize, Error> {
        self.revoke_all_but(user, None).await
    }

    /// Ends every session of `user` but the one `keep` names (the device
    /// the user is on); how many.
    ///
    /// # Errors
    ///
    /// As [`revoke_all`](Self::revoke_all).
    pub async fn revoke_all_but(
        &self,
        user: &str,
        keep: Option<&SessionHandle>,
    ) -> Result<usize, Error> {
        let mut ended = 0;
        for (id, _) in self.store.sessions_of(user).await? {
            if keep != Some(&id.handle()) && self.end(user, &id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }
}
