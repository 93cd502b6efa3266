//! Reading the session id from `Cookie` headers and writing `Set-Cookie`
//! values, with the `cookie` crate. No I/O, no allocation on the read path
//! beyond the parsed id.

use std::time::Duration;

use cookie::Cookie;

use crate::{SessionConfig, SessionId};

/// Finds the session id in the request's `Cookie` header values.
///
/// A browser may send the same name twice (cookies set for different paths);
/// the first value that parses as an id wins. Anything malformed is "no id".
pub(crate) fn find_id<'a>(
    config: &SessionConfig,
    headers: impl IntoIterator<Item = &'a [u8]>,
) -> Option<SessionId> {
    let name = config.cookie_name.as_str();
    headers
        .into_iter()
        .filter_map(|h| std::str::from_utf8(h).ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .find_map(|c| c.value_trimmed().parse().ok())
}

/// A `Set-Cookie` value carrying `id`. `max_age` makes it persistent.
pub(crate) fn set_cookie(
    config: &SessionConfig,
    id: &SessionId,
    max_age: Option<Duration>,
) -> String {
    let mut c = base(config, id.expose());
    if let Some(age) = max_age {
        let age = cookie::time::Duration::try_from(age).unwrap_or(cookie::time::Duration::MAX);
        c.set_max_age(age);
        c.set_expires(cookie::time::OffsetDateTime::now_utc().saturating_add(age));
    }
    c.to_string()
}

/// A `Set-Cookie` value that deletes the session cookie.
pub(crate) fn removal(config: &SessionConfig) -> String {
    let mut c = base(config, String::new());
    c.make_removal();
    c.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_valid_id() {
        let config = SessionConfig::default();
        let id = SessionId::generate();
        let header = format!("a=b; session=junk; session={}", id.expose());
        assert_eq!(find_id(&config, [header.as_bytes()]), Some(id.clone()));
        let quoted = format!("session=\"{}\"", id.expose());
        assert_eq!(find_id(&config, [quoted.as_bytes()]), Some(id.clone()));
        assert_eq!(find_id(&config, [b"session=".as_slice()]), None);
        assert_eq!(find_id(&config, [b"\xff\xfe".as_slice()]), None);
        assert_eq!(find_id(&config, [b"xsession=abc".as_slice()]), None);
        assert_eq!(find_id(&config, std::iter::empty()), None);
    }

    #[test]
    fn set_cookie_has_secure_defaults() {
        let config = SessionConfig::default();
        let id = SessionId::generate();
        let s = set_cookie(&config, &id, None);
        assert!(s.starts_with(&format!("session={}", id.expose())));
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!s.contains("Max-Age"));
        let p = set_cookie(&config, &id, Some(Duration::from_secs(60)));
        assert!(p.contains("Max-Age=60"), "{p}");
        assert!(p.contains("Expires="), "{p}");
        let r = removal(&config);
        assert!(r.contains("Max-Age=0"), "{r}");
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
            let config = SessionConfig::default();
            if let Some(id) = find_id(&config, [raw.as_slice()]) {
                let text = String::from_utf8_lossy(&raw);
                prop_assert!(text.contains(&id.expose()));
            }
        }

        #[test]
        fn structured_cookie_headers_are_safe(name in "[a-z_]{0,8}", value in "[ -~]{0,48}") {
            let config = SessionConfig::default();
            let header = format!("{name}={value}; session={value}");
            let _ = find_id(&config, [header.as_bytes()]);
        }
    }
}
