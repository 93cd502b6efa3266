//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`).
//!
//! **Not part of the public API.** This module exists only so that the
//! out-of-workspace fuzz crate can reach the crate-private parsers; it is
//! hidden from the docs, may change or vanish in any release, and must not
//! be used by applications. Each function is a thin wrapper: it adds no
//! logic of its own, so a finding here is a finding in the library.

use crate::cookie;
use crate::{SessionConfig, SessionId};

/// The session id a `Cookie` header carried, as the lifecycle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundId {
    /// The parsed (and, with signing on, verified) id.
    pub id: SessionId,
    /// Verified with a key other than the current (first) one, so the
    /// response would re-sign it.
    pub resign: bool,
}

/// The request-side cookie parser: finds the session id in `Cookie` header
/// values, as the middleware does for every request.
pub fn find_id<'a>(
    config: &SessionConfig,
    headers: impl IntoIterator<Item = &'a [u8]>,
) -> Option<FoundId> {
    cookie::find_id(config, headers).map(|f| FoundId {
        id: f.id,
        resign: f.resign,
    })
}

/// The `Set-Cookie` value the middleware would send for `id` (a
/// browser-session cookie), so a harness can build validly signed input.
pub fn set_cookie(config: &SessionConfig, id: &SessionId) -> String {
    cookie::set_cookie(config, id, None)
}

/// The Redis record decoder: an `HGETALL` reply's field/value pairs to a
/// record (`Ok(None)` for no record or a forwarding marker).
///
/// # Errors
///
/// [`Error::Corrupt`](crate::Error::Corrupt) for a hash that is not a
/// session record of the current layout.
#[cfg(feature = "redis")]
pub fn decode_record(
    fields: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Option<crate::store::Record>, crate::Error> {
    crate::store::redis::decode_record(fields)
}

/// The Redis record encoder of a new session: the `RESTORE` payload (Redis's
/// `DUMP` format) that creates the record's hash in one command, in the
/// layout a store sends to Redis 7 (a listpack when the record fits one).
#[cfg(feature = "redis")]
pub fn encode_new_record(record: &crate::store::Record) -> Vec<u8> {
    crate::store::redis::dump_record(record, true)
}

/// The limits the pickle entry points read with: the default depth, and
/// 64 KiB instead of 4 MiB, so an input that hits the copy budget (which
/// scales with `max_bytes`) keeps a run cheap.
#[cfg(feature = "flask")]
const PICKLE_LIMITS: crate::store::flask::pickle::Limits = crate::store::flask::pickle::Limits {
    max_bytes: 64 << 10,
    max_depth: 64,
};

/// The Flask-format pickle reader: `Ok` with the value's `Debug` text, or
/// `Err` with the error's message.
///
/// # Errors
///
/// Whatever the reader refuses, as its message.
#[cfg(feature = "flask")]
pub fn read_pickle(bytes: &[u8]) -> Result<String, String> {
    crate::store::flask::pickle::read(bytes, &PICKLE_LIMITS)
        .map(|value| format!("{value:?}"))
        .map_err(|e| e.to_string())
}

/// The pickle writer's output for what the reader gives, when that holds
/// nothing refused (else `None`): reading it again must give the same
/// value.
#[cfg(feature = "flask")]
pub fn repickle(bytes: &[u8]) -> Option<Vec<u8>> {
    use crate::store::flask::pickle;
    let value = pickle::read(bytes, &PICKLE_LIMITS).ok()?;
    (!value.contains_refused()).then(|| pickle::write(&value))
}
