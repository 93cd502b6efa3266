//! Session ids and the storage ids derived from them.
//!
//! A [`SessionId`] is what the cookie carries: 192 bits from the operating
//! system's CSPRNG, base64url without padding (32 characters). It is never
//! stored: stores see only a [`StorageId`], a versioned SHA-256 digest of it, so
//! a read-only leak of the store yields no usable cookie, and a storage id sent
//! back as a cookie fails to parse (wrong length) and resolves to nothing.
//!
//! The one exception is [`IdFormat::Uuid4`], the Flask recipe's ids, for
//! sharing sessions with a Flask app during a migration: a uuid4 in the
//! cookie, and the same uuid4 as the storage id (the recipe keys Redis by
//! it).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};

/// Number of random bytes in a session id.
const ID_BYTES: usize = 24;
/// Length of a session id in base64url characters (24 bytes → 32 chars, no padding).
const ID_LEN: usize = 32;

/// How new session ids are made and which cookie values are ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdFormat {
    /// 192 random bits, base64url; stores see only a hash of it. The
    /// default.
    #[default]
    Random,
    /// The Flask recipe's ids: a random uuid4 (`str(uuid4())`, 122 random
    /// bits), unsigned, and the uuid itself as the storage id — what
    /// `FlaskStore` (feature `flask`) needs to share
    /// sessions with the recipe. Weaker by design: a leaked key listing is
    /// a list of usable cookies. Only for a migration.
    Uuid4,
}

/// A session id, as carried by the cookie.
///
/// `Debug` and `Display` never show it; use [`SessionId::expose`] only to
/// write the cookie.
///
/// ```
/// use sessionkit::SessionId;
/// let id = SessionId::generate();
/// let parsed: SessionId = id.expose().parse().unwrap();
/// assert_eq!(parsed, id);
/// assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
/// assert!("not an id".parse::<SessionId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Raw);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Raw {
    Random([u8; ID_BYTES]),
    Uuid4([u8; 16]),
}

/// Length of a uuid's text form (`8-4-4-4-12` hex digits).
const UUID_LEN: usize = 36;
/// Storage ids of [`IdFormat::Uuid4`] ids: `f.` and the uuid.
const UUID_SCHEME: &str = "f.";

/// Fills `bytes` from the operating system's CSPRNG.
fn os_random(bytes: &mut [u8]) {
    // `OsRng` fails only when the OS has no entropy source; continuing with
    // a predictable id would be a security hole, so this is a hard stop.
    #[allow(clippy::expect_used)]
    rand::rngs::OsRng
        .try_fill_bytes(bytes)
        .expect("the OS random number generator failed");
}

impl SessionId {
    /// A new id of `format`.
    pub(crate) fn generate_as(format: IdFormat) -> Self {
        match format {
            IdFormat::Random => Self::generate(),
            IdFormat::Uuid4 => {
                let mut b = [0u8; 16];
                os_random(&mut b);
                // RFC 9562: version 4, variant 10.
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                SessionId(Raw::Uuid4(b))
            }
        }
    }

    /// Reads a cookie value as an id of `format` (a uuid4 in the recipe's
    /// lowercase `8-4-4-4-12` form, for [`IdFormat::Uuid4`]).
    pub(crate) fn parse_as(format: IdFormat, s: &str) -> Option<Self> {
        match format {
            IdFormat::Random => s.parse().ok(),
            IdFormat::Uuid4 => parse_uuid4(s).map(|b| SessionId(Raw::Uuid4(b))),
        }
    }

    /// A new id from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes at all, in
    /// which case no secure session can be issued.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        os_random(&mut bytes);
        SessionId(Raw::Random(bytes))
    }

    /// The id's cookie form (base64url; a uuid's text form for
    /// [`IdFormat::Uuid4`]). The only way to see the secret.
    pub fn expose(&self) -> String {
        match &self.0 {
            Raw::Random(b) => URL_SAFE_NO_PAD.encode(b),
            Raw::Uuid4(b) => uuid_text(b),
        }
    }

    /// The storage id: what a store may see and keep.
    pub fn storage_id(&self) -> StorageId {
        StorageId::derive(self)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// Why a cookie value is not a session id. Carries no part of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not exactly 32 characters.
    #[error("session id has the wrong length")]
    Length,
    /// A character outside the base64url alphabet, or non-canonical trailing bits.
    #[error("session id is not canonical base64url")]
    Alphabet,
}

impl FromStr for SessionId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Length and alphabet first: cheap, and everything after sees clean input.
        if s.len() != ID_LEN {
            return Err(ParseIdError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ParseIdError::Alphabet);
        }
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(ID_BYTES) => Ok(SessionId(Raw::Random(bytes))),
            _ => Err(ParseIdError::Alphabet),
        }
    }
}

/// The text form of a uuid.
fn uuid_text(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(UUID_LEN);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A uuid4 in lowercase `8-4-4-4-12` form (what Python's `str(uuid4())`
/// writes), version and variant checked.
fn parse_uuid4(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != UUID_LEN {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = s
        .iter()
        .enumerate()
        .filter(|(i, c)| !(matches!(i, 8 | 13 | 18 | 23) && **c == b'-'))
        .map(|(_, c)| HEX.iter().position(|h| h == c));
    for byte in &mut out {
        let hi = u8::try_from(digits.next()??).ok()?;
        let lo = u8::try_from(digits.next()??).ok()?;
        *byte = (hi << 4) | lo;
    }
    let hyphens = [8, 13, 18, 23].iter().all(|i| s.get(*i) == Some(&b'-'));
    (hyphens && digits.next().is_none() && out[6] >> 4 == 4 && out[8] >> 6 == 0b10).then_some(out)
}

/// Current version of the storage-id scheme; the first character of every
/// [`StorageId`], so a later scheme can be introduced next to this one.
const STORAGE_SCHEME: &str = "1";

/// What a store keys a session by: `1.` followed by base64url(SHA-256(id)).
///
/// Safe to log and to keep: it cannot be turned back into a cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StorageId(String);

impl StorageId {
    fn derive(id: &SessionId) -> Self {
        let bytes = match &id.0 {
            Raw::Random(b) => b,
            Raw::Uuid4(b) => return StorageId(format!("{UUID_SCHEME}{}", uuid_text(b))),
        };
        let digest = Sha256::digest(bytes);
        let mut s = String::with_capacity(2 + 43);
        s.push_str(STORAGE_SCHEME);
        s.push('.');
        URL_SAFE_NO_PAD.encode_string(digest, &mut s);
        StorageId(s)
    }

    /// Reads back a storage id a store kept (e.g. a forwarding marker).
    /// `None` unless it has the current scheme's exact shape (or that of
    /// an [`IdFormat::Uuid4`] id: `f.` and the uuid4).
    pub fn parse(s: String) -> Option<Self> {
        if let Some(uuid) = s.strip_prefix(UUID_SCHEME) {
            return parse_uuid4(uuid).is_some().then_some(StorageId(s));
        }
        let digest = s.strip_prefix(STORAGE_SCHEME)?.strip_prefix('.')?;
        let well_formed = digest.len() == 43
            && digest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then_some(StorageId(s))
    }

    /// The storage id as text (what a store puts after its key prefix).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uuid of an [`IdFormat::Uuid4`] id (which is its own storage id,
    /// as the Flask recipe keys Redis by it); `None` for a hashed one.
    pub fn flask_uuid(&self) -> Option<&str> {
        self.0.strip_prefix(UUID_SCHEME)
    }

    /// A short tag for log lines: the first 10 base64url characters of
    /// SHA-256(process salt ‖ storage id). It correlates one session's events
    /// within a process, but matches nothing in Redis or in another
    /// process's logs (the salt is random per process and never written).
    pub fn short(&self) -> String {
        static SALT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
        let salt = SALT.get_or_init(|| {
            let mut salt = [0u8; 16];
            // Without OS randomness the salt stays zero: the tag is then an
            // unsalted hash of a hash, still no usable identifier.
            let _ = rand::rngs::OsRng.try_fill_bytes(&mut salt);
            salt
        });
        let digest = Sha256::new()
            .chain_update(salt)
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut tag = URL_SAFE_NO_PAD.encode(digest);
        tag.truncate(10);
        tag
    }
}

impl StorageId {
    /// The session's public handle (see [`SessionHandle`]).
    pub fn handle(&self) -> SessionHandle {
        let digest = Sha256::new()
            .chain_update(b"sessionkit handle\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut s = String::with_capacity(2 + HANDLE_LEN);
        s.push_str("h.");
        let mut tail = URL_SAFE_NO_PAD.encode(digest);
        tail.truncate(HANDLE_LEN);
        s.push_str(&tail);
        SessionHandle(s)
    }
}

/// Base64url characters of a handle after its `h.` (132 bits).
const HANDLE_LEN: usize = 22;

/// A session's public handle: what a device list shows its owner, and what
/// they give back to end that session (`h.` and 22 base64url characters, a
/// hash of the storage id). It is not the cookie id and not the storage
/// id, neither can be derived from it, and it never parses as a session
/// id: sent as a cookie, it is no session.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// Reads a handle back (from a request, a command line); `None` unless
    /// it has a handle's exact shape.
    pub fn parse(s: &str) -> Option<Self> {
        let tail = s.strip_prefix("h.")?;
        let well_formed = tail.len() == HANDLE_LEN
            && tail
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| SessionHandle(s.to_owned()))
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({})", self.0)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageId({}…)", self.short())
    }
}

impl fmt::Display for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ID_LEN);
        assert_eq!(a.expose().parse::<SessionId>(), Ok(a));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!("".parse::<SessionId>(), Err(ParseIdError::Length));
        assert_eq!(
            "a".repeat(33).parse::<SessionId>(),
            Err(ParseIdError::Length)
        );
        assert_eq!(
            "a".repeat(31).parse::<SessionId>(),
            Err(ParseIdError::Length)
        );
        let mut bad = "a".repeat(31);
        bad.push('+');
        assert_eq!(bad.parse::<SessionId>(), Err(ParseIdError::Alphabet));
        assert_eq!(
            "é".repeat(16).parse::<SessionId>(),
            Err(ParseIdError::Alphabet)
        );
    }

    #[test]
    fn a_handle_is_neither_id_and_parses_back() {
        let id = SessionId::generate();
        let handle = id.storage_id().handle();
        assert_eq!(handle, id.storage_id().handle(), "stable");
        assert_ne!(handle, SessionId::generate().storage_id().handle());
        assert!(handle.as_str().parse::<SessionId>().is_err());
        assert!(StorageId::parse(handle.as_str().to_owned()).is_none());
        assert!(!handle.as_str().contains(&id.expose()));
        assert_eq!(SessionHandle::parse(handle.as_str()), Some(handle.clone()));
        assert_eq!(SessionHandle::parse("h.short"), None);
        assert_eq!(SessionHandle::parse(&id.expose()), None);
    }

    #[test]
    fn storage_id_is_not_a_session_id() {
        let id = SessionId::generate();
        let sid = id.storage_id();
        assert!(sid.as_str().starts_with("1."));
        assert!(!sid.as_str().contains(&id.expose()));
        assert!(sid.as_str().parse::<SessionId>().is_err());
        assert!(sid.as_str()[2..].parse::<SessionId>().is_err());
        assert_eq!(sid, id.storage_id(), "derivation is deterministic");
        assert_eq!(StorageId::parse(sid.as_str().to_owned()), Some(sid.clone()));
        assert_eq!(StorageId::parse(id.expose()), None);
        assert_eq!(StorageId::parse(format!("2.{}", &sid.as_str()[2..])), None);
    }

    #[test]
    fn uuid4_ids_are_the_recipes_and_their_own_storage_ids() {
        let id = SessionId::generate_as(IdFormat::Uuid4);
        let text = id.expose();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4", "version 4: {text}");
        assert!("89ab".contains(&text[19..20]), "variant 10: {text}");
        assert_eq!(
            SessionId::parse_as(IdFormat::Uuid4, &text),
            Some(id.clone())
        );
        assert_eq!(SessionId::parse_as(IdFormat::Random, &text), None);
        let sid = id.storage_id();
        assert_eq!(sid.flask_uuid(), Some(text.as_str()));
        assert_eq!(StorageId::parse(sid.as_str().to_owned()), Some(sid));
        assert_eq!(SessionId::generate().storage_id().flask_uuid(), None);
        for bad in [
            text.to_uppercase(),
            text.replace('-', ""),
            format!("{text}0"),
            "0b7e4a52-7c1e-1b1f-9a52-3f1c2d4e5f60".to_owned(), // version 1
            "0b7e4a52-7c1e-4b1f-7a52-3f1c2d4e5f60".to_owned(), // variant 0
            "0b7e4a52-7c1e-4b1f-9a52+3f1c2d4e5f60".to_owned(),
        ] {
            assert_eq!(SessionId::parse_as(IdFormat::Uuid4, &bad), None, "{bad}");
        }
        assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
    }

    #[test]
    fn debug_redacts() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(&id.expose()));
        let sid = id.storage_id();
        assert!(!format!("{sid:?}").contains(sid.as_str()));
        let tag = sid.short();
        assert_eq!(tag.len(), 10);
        assert_eq!(tag, sid.short(), "stable within a process");
        assert!(
            !sid.as_str().contains(&tag),
            "salted: not a prefix of the key"
        );
    }
}
