//! The crate's error type.
//!
//! Errors carry their cause (`#[source]`) for logs, but never a session id or a
//! cookie value: an error may be logged or shown, an id must not be.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// What went wrong in a session operation.
///
/// Handlers get these as values from [`Session`](crate::Session) calls; the
/// middleware turns the ones it meets itself into a bare status code (503 when
/// the store is unavailable) and a `tracing` event with the error chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session store could not be reached, timed out, or failed.
    #[error("session store unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored value could not be decoded into the requested type.
    #[error("session value for key {key:?} could not be decoded")]
    Decode {
        /// The session key whose value failed to decode.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// A value could not be encoded.
    #[error("session value for key {key:?} could not be encoded")]
    Encode {
        /// The session key whose value failed to encode.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// The encoded session would exceed the configured maximum size.
    #[error("session too large: {size} bytes encoded, the limit is {limit}")]
    TooLarge {
        /// Encoded size the session would have.
        size: usize,
        /// The configured limit ([`SessionConfigBuilder::with_max_size`](crate::SessionConfigBuilder::with_max_size)).
        limit: usize,
    },
    /// A stored record did not have the expected layout (wrong type, unknown
    /// version, undecodable metadata).
    #[error("stored session record is corrupt: {0}")]
    Corrupt(String),
    /// The request has no session: the middleware is not installed on this route.
    #[error("no session in this request: is the SessionLayer / SessionMiddleware installed?")]
    MissingMiddleware,
}

/// A boxed error, as kept in [`Error`] sources.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// The error and every cause after it, `: `-separated, each said once:
    /// for a log line or a start-up message (it never holds an id).
    pub fn chain(&self) -> impl fmt::Display + '_ {
        Chain(self)
    }

    /// Wraps a store failure.
    pub fn unavailable(err: impl Into<BoxError>) -> Self {
        Error::Unavailable(err.into())
    }

    /// Is this a failure to reach or use the store (retrying later may work)?
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// Is this a value that could not be decoded into the requested type?
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// Is this the session size limit?
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::TooLarge { .. })
    }

    /// Is this a corrupt stored record?
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt(_))
    }
}

/// Lets a log line through at most once a second, counting what it held
/// back: every line that a client can cause once per request goes through
/// one (a flood of bad requests must not become a flood of log lines).
pub(crate) struct Gate {
    second: AtomicU64,
    suppressed: AtomicU64,
}

impl Gate {
    pub(crate) const fn new() -> Self {
        Gate {
            second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` if a line may go out now.
    pub(crate) fn pass(&self) -> Option<u64> {
        let second = crate::store::now_ms() / 1000;
        let last = self.second.load(Ordering::Relaxed);
        if last == second
            || self
                .second
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// A `tracing` event at `$level` behind its own [`Gate`] (named `$gate`):
/// at most one a second, with a `suppressed` field counting the events held
/// back before it.
macro_rules! limited {
    ($gate:ident, $level:ident, $($event:tt)+) => {{
        static $gate: $crate::error::Gate = $crate::error::Gate::new();
        if let Some(suppressed) = $gate.pass() {
            tracing::$level!(suppressed, $($event)+);
        }
    }};
}

/// Logs a session error with its cause chain at error level, at most once a
/// second for each kind of error (with the number not logged since): an
/// outage, or a client sending oversized or undecodable data on every
/// request, cannot flood the log.
pub(crate) fn log(err: &Error, what: &'static str) {
    match err {
        Error::Unavailable(_) => limited!(UNAVAILABLE, error, error = %Chain(err), "{what}"),
        Error::TooLarge { .. } => limited!(TOO_LARGE, error, error = %Chain(err), "{what}"),
        Error::Decode { .. } | Error::Encode { .. } => {
            limited!(CODEC, error, error = %Chain(err), "{what}");
        }
        Error::Corrupt(_) => limited!(CORRUPT, error, error = %Chain(err), "{what}"),
        Error::MissingMiddleware => limited!(MISSING, error, error = %Chain(err), "{what}"),
    }
}

/// Formats an error with its whole `source()` chain, for log lines.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cur = self.0.source();
        while let Some(err) = cur {
            // Many errors repeat their source in their own message; say it once.
            let text = err.to_string();
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cur = err.source();
        }
        Ok(())
    }
}
