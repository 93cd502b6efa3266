//! Session events for the application's own records (an audit log, a
//! security notice): a [`SessionListener`] registered on the config
//! ([`SessionConfigBuilder::with_listener`](crate::SessionConfigBuilder::with_listener))
//! hears each one once the store has done it. Events name sessions by their
//! public [`SessionHandle`], never by an id.

use std::sync::Arc;

use crate::SessionHandle;

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session was stored.
    Created {
        /// The new session.
        handle: SessionHandle,
        /// The user it was attached to from the start, if any.
        user: Option<String>,
    },
    /// A session was attached to a user ([`Session::set_user`](crate::Session::set_user)).
    UserAttached {
        /// The session (after a cycle in the same request: its new handle).
        handle: SessionHandle,
        /// The user.
        user: String,
    },
    /// A session got a new id ([`Session::cycle_id`](crate::Session::cycle_id)).
    IdCycled {
        /// Its handle before.
        from: SessionHandle,
        /// Its handle now.
        to: SessionHandle,
        /// Its user, if any.
        user: Option<String>,
    },
    /// A session was destroyed by its own request (logout, emptied).
    Destroyed {
        /// The session.
        handle: SessionHandle,
        /// Its user, if the request had loaded the session (a logout that
        /// never read it does not know).
        user: Option<String>,
    },
    /// A session was ended from elsewhere: from another of its user's
    /// devices, or by [`UserSessions`](crate::admin::UserSessions) (an
    /// admin tool). (Sessions the store ends past a user's cap are not
    /// reported.)
    Revoked {
        /// The session.
        handle: SessionHandle,
        /// Its user.
        user: String,
    },
}

/// Hears [`SessionEvent`]s. Called on the request's task right after the
/// store call: keep it quick (hand the event to a channel for slow work).
pub trait SessionListener: Send + Sync + 'static {
    /// One event.
    fn on_event(&self, event: &SessionEvent);
}

impl<F: Fn(&SessionEvent) + Send + Sync + 'static> SessionListener for F {
    fn on_event(&self, event: &SessionEvent) {
        self(event);
    }
}

/// The listener a config carries, if any.
#[derive(Clone, Default)]
pub(crate) struct Listener(Option<Arc<dyn SessionListener>>);

impl Listener {
    pub(crate) fn new(listener: impl SessionListener) -> Self {
        Listener(Some(Arc::new(listener)))
    }

    /// Tells the listener, if there is one, the event `event` makes.
    pub(crate) fn emit(&self, event: impl FnOnce() -> SessionEvent) {
        if let Some(l) = &self.0 {
            l.on_event(&event());
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Listener(set)"
        } else {
            "Listener(none)"
        })
    }
}
