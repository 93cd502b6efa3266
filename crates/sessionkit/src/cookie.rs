//! Reading the session id from `Cookie` headers and writing `Set-Cookie`
//! values, with the `cookie` crate — or, with a header transport
//! ([`Transport`]), from and to the configured headers. No I/O, no
//! allocation on the read path beyond the parsed id.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cookie::Cookie;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{SessionConfig, SessionId, Transport};

/// What the MAC covers besides the id: names the scheme, so a signature made
/// for anything else never verifies here.
const MAC_CONTEXT: &[u8] = b"sessionkit/cookie/v1\0";
/// base64url length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 43;

/// The session id a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) id: SessionId,
    /// Signed with a key other than the current one: sign it again.
    pub(crate) resign: bool,
}

/// The session ids a request's cookies offered: every value of the session
/// cookie that parses (and, with signing on, verifies), without repeats, in
/// header order.
///
/// A browser sends the same name several times when cookies of that name
/// were set for different paths or domains — which is how a sibling
/// subdomain or a page on a more specific path plants one ("cookie
/// tossing"). The lifecycle therefore never trusts an order: it uses the
/// one candidate that resolves to a live session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Offered(Vec<Found>);

impl Offered {
    /// The candidates, in header order.
    pub(crate) fn candidates(&self) -> &[Found] {
        &self.0
    }

    /// The only candidate, when there is exactly one.
    pub(crate) fn single(&self) -> Option<&Found> {
        match self.0.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The candidate stored under `sid`.
    pub(crate) fn naming(&self, sid: &crate::StorageId) -> Option<&Found> {
        match self.0.as_slice() {
            [one] => Some(one),
            many => many.iter().find(|f| f.id.storage_id() == *sid),
        }
    }
}

/// Finds the session id candidates in the values of the request's id
/// header (`Cookie`, or the transport's header).
///
/// Each cookie `name=value` pair is parsed on its own: a pair that is not
/// UTF-8 or not a cookie (a sibling application's binary value, say) is
/// skipped and the others still count. Anything malformed or badly signed
/// is no candidate.
pub(crate) fn find_ids<'a>(
    config: &SessionConfig,
    headers: impl IntoIterator<Item = &'a [u8]>,
) -> Offered {
    let mut found: Vec<Found> = Vec::new();
    let mut offer = |value: &str| {
        if let Some(f) = parse_value(config, value) {
            if !found.iter().any(|seen| seen.id == f.id) {
                found.push(f);
            }
        }
    };
    let name = config.cookie_name.as_str();
    for header in headers {
        match &config.transport {
            Transport::Cookie => {
                let pairs = header
                    .split(|b| *b == b';')
                    .filter_map(|pair| std::str::from_utf8(pair).ok())
                    .filter_map(|pair| Cookie::parse(pair.trim()).ok());
                for c in pairs.filter(|c| c.name() == name) {
                    offer(c.value_trimmed());
                }
            }
            // `Bearer` is case-insensitive (RFC 9110, 11.1).
            Transport::Bearer => {
                let v = std::str::from_utf8(header).unwrap_or_default().trim();
                if let Some((scheme, token)) = v.split_once(' ') {
                    if scheme.eq_ignore_ascii_case("bearer") {
                        offer(token.trim());
                    }
                }
            }
            Transport::Header(_) => offer(std::str::from_utf8(header).unwrap_or_default().trim()),
        }
    }
    Offered(found)
}

/// The first candidate (for the fuzz targets and tests: the lifecycle
/// never trusts an order).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn find_id<'a>(
    config: &SessionConfig,
    headers: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Found> {
    find_ids(config, headers).0.into_iter().next()
}

fn parse_value(config: &SessionConfig, value: &str) -> Option<Found> {
    let keys = &config.signing.0;
    if keys.is_empty() {
        let id = SessionId::parse_as(config.id_format, value)?;
        return Some(Found { id, resign: false });
    }
    let (id, tag) = value.split_once('.')?;
    if tag.len() != TAG_LEN {
        return None;
    }
    let id: SessionId = id.parse().ok()?;
    let mut raw = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(tag, &mut raw) {
        Ok(32) => {}
        _ => return None,
    }
    // Constant-time comparison (`verify_slice`) against every key.
    let index = keys
        .iter()
        .position(|k| mac(k, &id).is_some_and(|m| m.verify_slice(&raw).is_ok()))?;
    Some(Found {
        id,
        resign: index > 0,
    })
}

fn mac(key: &[u8], id: &SessionId) -> Option<Hmac<Sha256>> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(MAC_CONTEXT);
    m.update(id.expose().as_bytes());
    Some(m)
}

/// The cookie value for `id`: the id, and with signing on `.` and the tag
/// made with the first key.
fn value(config: &SessionConfig, id: &SessionId) -> String {
    let mut v = id.expose();
    if let Some(m) = config.signing.0.first().and_then(|k| mac(k, id)) {
        v.push('.');
        URL_SAFE_NO_PAD.encode_string(m.finalize().into_bytes(), &mut v);
    }
    v
}

/// The token a client presents for `id` (the cookie's value, or the
/// header transport's token).
pub(crate) fn token(config: &SessionConfig, id: &SessionId) -> String {
    value(config, id)
}

/// The value of the response's id header carrying `id`: a `Set-Cookie`
/// value (`max_age` makes it persistent), or with a header transport the
/// bare token.
pub(crate) fn set_cookie(
    config: &SessionConfig,
    id: &SessionId,
    max_age: Option<Duration>,
) -> String {
    let value = value(config, id);
    if config.transport != Transport::Cookie {
        return value;
    }
    let Some(age) = max_age else {
        // The attributes of a browser-session cookie never change: the
        // config holds them as the `cookie` crate writes them. The name is a
        // token and the value base64url, neither needs encoding.
        let mut s = String::with_capacity(
            config.cookie_name.len() + 1 + value.len() + config.cookie_attrs.len(),
        );
        s.push_str(&config.cookie_name);
        s.push('=');
        s.push_str(&value);
        s.push_str(&config.cookie_attrs);
        return s;
    };
    let mut c = base(config, value);
    let age = cookie::time::Duration::try_from(age).unwrap_or(cookie::time::Duration::MAX);
    c.set_max_age(age);
    c.set_expires(cookie::time::OffsetDateTime::now_utc().saturating_add(age));
    c.to_string()
}

/// What follows `name=value` in the `Set-Cookie` of a browser-session
/// cookie under `config` (see `SessionConfig::cookie_attrs`).
pub(crate) fn attributes(config: &SessionConfig) -> String {
    let whole = base(config, String::new()).to_string();
    // `name=` then the attributes.
    whole
        .get(config.cookie_name.len() + 1..)
        .unwrap_or_default()
        .to_owned()
}

/// A `Set-Cookie` value that deletes the session cookie; with a header
/// transport, an empty token (drop yours).
pub(crate) fn removal(config: &SessionConfig) -> Option<String> {
    if config.transport != Transport::Cookie {
        return Some(String::new());
    }
    let mut c = base(config, String::new());
    c.make_removal();
    Some(c.to_string())
}

fn base(config: &SessionConfig, value: String) -> Cookie<'static> {
    let mut c = Cookie::new(config.cookie_name.clone(), value);
    c.set_path(config.cookie_path.clone());
    if let Some(d) = &config.cookie_domain {
        c.set_domain(d.clone());
    }
    c.set_secure(config.secure);
    c.set_http_only(config.http_only);
    c.set_same_site(config.same_site);
    c
}

/// A config whose cookie is called `session`, for readable test headers.
#[cfg(test)]
fn plain() -> SessionConfig {
    SessionConfig::builder()
        .with_cookie_name("session")
        .build()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_valid_id() {
        let config = plain();
        let id = SessionId::generate();
        let header = format!("a=b; session=junk; session={}", id.expose());
        let found = Some(Found {
            id: id.clone(),
            resign: false,
        });
        assert_eq!(find_id(&config, [header.as_bytes()]), found);
        let quoted = format!("session=\"{}\"", id.expose());
        assert_eq!(find_id(&config, [quoted.as_bytes()]), found);
        assert_eq!(find_id(&config, [b"session=".as_slice()]), None);
        assert_eq!(find_id(&config, [b"\xff\xfe".as_slice()]), None);
        assert_eq!(find_id(&config, [b"xsession=abc".as_slice()]), None);
        assert_eq!(find_id(&config, std::iter::empty()), None);
    }

    #[test]
    fn a_pair_that_is_not_utf8_or_not_a_cookie_is_skipped_alone() {
        let config = plain();
        let id = SessionId::generate();
        for header in [
            format!("a=\u{fffd}; session={}", id.expose()).into_bytes(),
            [b"a=\xff\xfe; session=".as_slice(), id.expose().as_bytes()].concat(),
            [
                b"\xff; =x; session=".as_slice(),
                id.expose().as_bytes(),
                b"; b=\xc3",
            ]
            .concat(),
        ] {
            let found = find_ids(&config, [header.as_slice()]);
            assert_eq!(found.single().map(|f| &f.id), Some(&id), "{header:?}");
        }
    }

    #[test]
    fn every_candidate_is_offered_once_in_order() {
        let config = plain();
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let header = format!(
            "session={}; session=junk; session={}; session={}",
            a.expose(),
            b.expose(),
            a.expose()
        );
        let offered = find_ids(&config, [header.as_bytes()]);
        let ids: Vec<_> = offered.candidates().iter().map(|f| &f.id).collect();
        assert_eq!(ids, [&a, &b]);
        assert!(offered.single().is_none());
        assert_eq!(offered.naming(&b.storage_id()).map(|f| &f.id), Some(&b));
        assert_eq!(offered.naming(&SessionId::generate().storage_id()), None);
    }

    #[test]
    fn set_cookie_has_secure_defaults() {
        let config = SessionConfig::default();
        let id = SessionId::generate();
        let s = set_cookie(&config, &id, None);
        assert!(s.starts_with(&format!("__Host-session={}", id.expose())));
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!s.contains("Max-Age"));
        // The precomputed attributes are what the cookie crate writes.
        assert_eq!(s, base(&config, value(&config, &id)).to_string());
        let custom = SessionConfig::builder()
            .with_cookie_name("__Host-x")
            .with_same_site(crate::SameSite::Strict)
            .build()
            .unwrap();
        let s = set_cookie(&custom, &id, None);
        assert_eq!(s, base(&custom, value(&custom, &id)).to_string());
        assert!(
            s.starts_with("__Host-x=") && s.contains("SameSite=Strict"),
            "{s}"
        );
        let p = set_cookie(&config, &id, Some(Duration::from_secs(60)));
        assert!(p.contains("Max-Age=60"), "{p}");
        assert!(p.contains("Expires="), "{p}");
        let r = removal(&config).unwrap_or_default();
        assert!(r.contains("Max-Age=0"), "{r}");
    }

    #[test]
    fn header_transports_take_their_header_and_send_bare_tokens() {
        let id = SessionId::generate();
        let bearer = SessionConfig::builder()
            .with_transport(Transport::Bearer)
            .build()
            .unwrap();
        let token = token(&bearer, &id);
        for good in [format!("Bearer {token}"), format!("bearer  {token} ")] {
            let found = find_id(&bearer, [good.as_bytes()]).map(|f| f.id);
            assert_eq!(found, Some(id.clone()), "{good:?}");
        }
        for bad in [
            format!("Basic {token}"),
            token.clone(),
            format!("{}={token}", crate::DEFAULT_COOKIE_NAME),
        ] {
            assert_eq!(find_id(&bearer, [bad.as_bytes()]), None, "{bad:?}");
        }
        assert_eq!(
            set_cookie(&bearer, &id, Some(Duration::from_secs(9))),
            token
        );
        assert_eq!(removal(&bearer).as_deref(), Some(""));
        // A cookie is no token, and a token no cookie.
        let cookie = format!("{}={token}", plain().cookie_name());
        assert!(find_id(&plain(), [cookie.as_bytes()]).is_some());
        let named = SessionConfig::builder()
            .with_transport(Transport::Header("X-Session".to_owned()))
            .build()
            .unwrap();
        assert!(find_id(&named, [token.as_bytes()]).is_some());
        assert!(find_id(&named, [cookie.as_bytes()]).is_none());
    }
}

#[cfg(test)]
mod signing {
    use super::*;

    fn signed(keys: &[[u8; 32]]) -> SessionConfig {
        SessionConfig::builder()
            .with_cookie_name("session")
            .with_signing_keys(keys)
            .build()
            .unwrap()
    }

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
    }

    #[test]
    fn signed_cookie_verifies_and_rotates() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let id = SessionId::generate();
        let before = signed(&[old]);
        let sc = set_cookie(&before, &id, None);
        let v = cookie_value(&sc);
        assert_eq!(v.len(), 32 + 1 + TAG_LEN);
        let header = format!("session={v}");
        let found = find_id(&before, [header.as_bytes()]).unwrap();
        assert_eq!((found.id, found.resign), (id.clone(), false));
        // Rotation: new key first, old still accepted and marked for re-signing.
        let after = signed(&[new, old]);
        let found = find_id(&after, [header.as_bytes()]).unwrap();
        assert_eq!((found.id.clone(), found.resign), (id.clone(), true));
        let resigned = set_cookie(&after, &found.id, None);
        assert_ne!(cookie_value(&resigned), v);
        // Old key retired: the cookie is no id at all.
        assert_eq!(find_id(&signed(&[new]), [header.as_bytes()]), None);
    }

    #[test]
    fn forged_or_unsigned_cookies_are_no_id() {
        let config = signed(&[[3u8; 32]]);
        let id = SessionId::generate();
        let good = cookie_value(&set_cookie(&config, &id, None)).to_owned();
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let other = SessionId::generate().expose();
        for bad in [
            id.expose(),
            format!("{}.", id.expose()),
            flipped,
            format!("{other}{}", &good[32..]),
            format!("{good}x"),
        ] {
            let header = format!("session={bad}");
            assert_eq!(find_id(&config, [header.as_bytes()]), None, "{bad}");
        }
        assert!(SessionConfig::builder()
            .with_signing_keys([[0u8; 16]])
            .build()
            .is_err());
        let debug = format!("{config:?}");
        assert!(!debug.contains("3, 3"), "keys in Debug: {debug}");
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any header bytes: no panic, and an id found is a real id that
        /// occurs in the header.
        #[test]
        fn any_cookie_header_is_safe(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let config = plain();
            if let Some(found) = find_id(&config, [raw.as_slice()]) {
                let text = String::from_utf8_lossy(&raw);
                prop_assert!(text.contains(&found.id.expose()));
            }
        }

        #[test]
        fn structured_cookie_headers_are_safe(name in "[a-z_]{0,8}", value in "[ -~]{0,48}") {
            let config = plain();
            let header = format!("{name}={value}; session={value}");
            let _ = find_id(&config, [header.as_bytes()]);
        }
    }
}
