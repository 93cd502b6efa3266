//! Session configuration: cookie attributes, lifetimes, touch throttling and
//! limits, with secure defaults.

use std::time::Duration;

/// `SameSite` attribute of the session cookie.
pub use cookie::SameSite;

/// How long a non-permanent session lives without activity: one day (what
/// the Flask recipe this library started from keeps a session).
pub const DEFAULT_IDLE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a permanent session lives (31 days, as Flask's `PERMANENT_SESSION_LIFETIME`).
pub const DEFAULT_PERMANENT_LIFETIME: Duration = Duration::from_secs(31 * 24 * 60 * 60);
/// Largest encoded session accepted by default (1 MiB).
pub const DEFAULT_MAX_SIZE: usize = 1024 * 1024;
/// The default cookie name, for a `Secure` host-only cookie of `Path=/`
/// (the defaults): browsers accept a `__Host-` cookie only from the host
/// itself, over HTTPS, for the whole site — so a sibling subdomain or a page
/// on a narrower path cannot plant one beside it.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-session";
/// The default cookie name when the cookie cannot be a `__Host-` one (not
/// `Secure`, a `Domain`, or a `Path` other than `/`): the seed's name.
pub const PLAIN_COOKIE_NAME: &str = "session";

/// Settings shared by every request: build one with [`SessionConfig::builder`]
/// or take [`SessionConfig::default`].
///
/// | setting | default | why |
/// |---|---|---|
/// | cookie name | `__Host-session` ([`DEFAULT_COOKIE_NAME`]); `session` when the cookie is not `Secure`, has a `Domain` or another `Path` | the `__Host-` prefix makes browsers refuse a cookie of that name set by a sibling subdomain, over plain HTTP or for a narrower path, so no one can plant a session cookie beside the user's ("cookie tossing") |
/// | `HttpOnly` | on | scripts cannot read the id (XSS cannot steal it) |
/// | `Secure` | on | the id never travels over plain HTTP |
/// | `SameSite` | `Lax` | no session on cross-site subrequests (CSRF) |
/// | `Path` | `/` | one session for the whole site |
/// | `Domain` | none | host-only cookie |
/// | idle lifetime | 1 day | non-permanent sessions: browser-session cookie, store TTL |
/// | permanent lifetime | 31 days | cookie `Max-Age` and store TTL after `set_permanent(true)` |
/// | absolute lifetime | none | optional hard end, counted from creation |
/// | touch interval | 1/10 of the lifetime | rolling expiry costs at most one touch per interval |
/// | max size | 1 MiB | encoded size of one session |
/// | failure policy | closed | a store outage is a 503, never a silent logout |
///
/// ```
/// use std::time::Duration;
/// use sessionkit::SessionConfig;
///
/// let config = SessionConfig::builder()
///     .with_cookie_name("__Host-sid")
///     .with_idle_lifetime(Duration::from_secs(30 * 60))
///     .build()
///     .unwrap();
/// assert_eq!(config.cookie_name(), "__Host-sid");
/// ```
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub(crate) cookie_name: String,
    pub(crate) cookie_path: String,
    pub(crate) cookie_domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) idle_lifetime: Duration,
    pub(crate) permanent_lifetime: Duration,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) touch_interval: Option<Duration>,
    pub(crate) max_size: usize,
    pub(crate) codec: crate::Codec,
    pub(crate) id_format: crate::IdFormat,
    pub(crate) transport: Transport,
    /// The request header the id arrives in, the response header it is
    /// sent in, and the `Vary` value naming the former (lowercase names),
    /// derived from `transport`.
    pub(crate) id_headers: IdHeaders,
    pub(crate) failure_policy: FailurePolicy,
    /// The page of the responses the middleware makes itself.
    pub(crate) error_page: ErrorPages,
    pub(crate) signing: SigningKeys,
    /// Hears what happens to sessions.
    pub(crate) listener: crate::events::Listener,
    /// What follows `name=value` in a `Set-Cookie` of a browser-session
    /// cookie (`; HttpOnly; ...`), as the `cookie` crate writes it: derived
    /// from the fields above when the config is made, so that a request
    /// does not format the same attributes again.
    pub(crate) cookie_attrs: Box<str>,
}

/// How the session id travels between client and server.
///
/// Whatever the transport, the id is the same random value (signed when
/// signing keys are set), a presented id that names no live session is
/// never adopted, and a response that carries an id is marked
/// `Cache-Control: no-store`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A cookie (`Cookie` in, `Set-Cookie` out), with the configured
    /// name and attributes. The default, for browsers.
    #[default]
    Cookie,
    /// For APIs and mobile clients: the id arrives in `Authorization:
    /// Bearer <token>`; a response that starts a session or changes its id
    /// carries the token in the header `Session-Token` (and the
    /// application may hand it out in its body: [`Session::token`](crate::Session::token)),
    /// one that ends it an empty `Session-Token` (drop the token). Never a
    /// cookie.
    Bearer,
    /// Like [`Bearer`](Self::Bearer), with the bare token in this header
    /// both ways (e.g. `X-Session`).
    Header(String),
}

/// Header names of a transport (lowercase).
#[derive(Clone, Debug)]
pub(crate) struct IdHeaders {
    pub(crate) request: Box<str>,
    pub(crate) response: Box<str>,
    pub(crate) vary: Box<str>,
}

impl IdHeaders {
    fn of(transport: &Transport) -> Self {
        let (request, response, vary) = match transport {
            Transport::Cookie => ("cookie", "set-cookie", "Cookie"),
            Transport::Bearer => ("authorization", "session-token", "Authorization"),
            Transport::Header(name) => (name.as_str(), name.as_str(), name.as_str()),
        };
        IdHeaders {
            request: request.to_ascii_lowercase().into(),
            response: response.to_ascii_lowercase().into(),
            vary: vary.into(),
        }
    }
}

/// The body of a response the middleware makes itself, from
/// [`SessionConfigBuilder::with_error_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorPage {
    /// Its `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl ErrorPage {
    /// An HTML page (`text/html; charset=utf-8`).
    pub fn html(body: impl Into<String>) -> Self {
        ErrorPage {
            content_type: "text/html; charset=utf-8".to_owned(),
            body: body.into(),
        }
    }

    /// A plain-text page (`text/plain; charset=utf-8`).
    pub fn text(body: impl Into<String>) -> Self {
        ErrorPage {
            content_type: "text/plain; charset=utf-8".to_owned(),
            body: body.into(),
        }
    }
}

/// What the middleware answers with when it answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store could not be reached (503, with `Retry-After: 1`).
    Unavailable,
    /// The session would be larger than the limit (413).
    TooLarge,
    /// Anything else (500).
    Other,
}

type PageFn = dyn Fn(ErrorKind) -> Option<ErrorPage> + Send + Sync;

/// The application's error page hook, if any.
#[derive(Clone, Default)]
pub(crate) struct ErrorPages(Option<std::sync::Arc<PageFn>>);

impl ErrorPages {
    /// The page for a response of `status`, if the application gives one.
    pub(crate) fn page(&self, status: u16) -> Option<ErrorPage> {
        let kind = match status {
            503 => ErrorKind::Unavailable,
            413 => ErrorKind::TooLarge,
            _ => ErrorKind::Other,
        };
        self.0.as_ref().and_then(|f| f(kind))
    }
}

impl std::fmt::Debug for ErrorPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ErrorPages(set)"
        } else {
            "ErrorPages(none)"
        })
    }
}

/// HMAC keys for signed cookies; the first signs, all verify. `Debug` shows
/// only how many there are.
#[derive(Clone, Default)]
pub(crate) struct SigningKeys(pub(crate) Vec<Vec<u8>>);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} keys, redacted)", self.0.len())
    }
}

/// Shortest signing key accepted (256 bits, the HMAC-SHA256 output size).
pub const MIN_SIGNING_KEY_LEN: usize = 32;

/// What a request gets when its session cannot be loaded because the store
/// is unavailable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// The response is a bare `503 Service Unavailable` with `Retry-After`,
    /// whatever the handler made of the error: a page built without the
    /// session (a logged-out view, an empty cart) is never shown as if it
    /// were the user's. The default.
    #[default]
    Closed,
    /// The handler's response stands: it got an error value from the session
    /// call and decided what to show. Nothing is written for that request.
    /// Saves that fail are still a 503 (nothing pretends to be saved).
    Open,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            cookie_path: "/".to_owned(),
            cookie_domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            idle_lifetime: DEFAULT_IDLE_LIFETIME,
            permanent_lifetime: DEFAULT_PERMANENT_LIFETIME,
            absolute_lifetime: None,
            touch_interval: None,
            max_size: DEFAULT_MAX_SIZE,
            codec: crate::Codec::Json,
            id_format: crate::IdFormat::Random,
            transport: Transport::Cookie,
            id_headers: IdHeaders::of(&Transport::Cookie),
            failure_policy: FailurePolicy::Closed,
            error_page: ErrorPages::default(),
            signing: SigningKeys::default(),
            listener: crate::events::Listener::default(),
            cookie_attrs: Box::default(),
        }
        .with_cookie_attrs()
    }
}

impl SessionConfig {
    fn with_cookie_attrs(mut self) -> Self {
        self.cookie_attrs = crate::cookie::attributes(&self).into();
        self
    }

    /// A builder starting from the defaults.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder {
            config: SessionConfig::default(),
            named: false,
        }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Lifetime of a non-permanent session.
    pub fn idle_lifetime(&self) -> Duration {
        self.idle_lifetime
    }

    /// Lifetime of a permanent session.
    pub fn permanent_lifetime(&self) -> Duration {
        self.permanent_lifetime
    }

    /// Optional hard limit on a session's age.
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }

    /// Maximum encoded size of one session.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// How new session ids are made.
    pub fn id_format(&self) -> crate::IdFormat {
        self.id_format
    }

    /// How the session id travels.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The format new sessions store their values in.
    pub fn codec(&self) -> crate::Codec {
        self.codec
    }

    /// The touch interval for a session of the given lifetime: an unchanged
    /// session's expiry is pushed back only once this much of it has passed.
    pub(crate) fn touch_interval_for(&self, lifetime: Duration) -> Duration {
        self.touch_interval.unwrap_or(lifetime / 10).min(lifetime)
    }
}

/// Builds a [`SessionConfig`]; [`build`](Self::build) checks it.
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionConfigBuilder {
    config: SessionConfig,
    /// The name was chosen (else it follows from the attributes).
    named: bool,
}

impl SessionConfigBuilder {
    /// Cookie name (default [`DEFAULT_COOKIE_NAME`], or
    /// [`PLAIN_COOKIE_NAME`] when the attributes rule out a `__Host-`
    /// cookie). `__Host-` names are checked to be `Secure`, `Path=/` and
    /// without `Domain`; `__Secure-` names to be `Secure`.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie_name = name.into();
        self.named = true;
        self
    }

    /// Cookie `Path` (default `/`).
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie_path = path.into();
        self
    }

    /// Cookie `Domain` (default: none, a host-only cookie). Setting it shares
    /// the session with every subdomain.
    pub fn with_cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie_domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute (default on).
    ///
    /// **Warning:** off sends the session id over plain HTTP, where anyone on
    /// the path can take it. Turn it off only for local development.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default on).
    ///
    /// **Warning:** off lets page scripts (and any XSS) read the session id.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`). `None` requires `Secure`.
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config.same_site = same_site;
        self
    }

    /// Lifetime of a non-permanent session since its last use (default 1 day).
    pub fn with_idle_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.idle_lifetime = lifetime;
        self
    }

    /// Lifetime of a permanent session since its last use (default 31 days).
    pub fn with_permanent_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.permanent_lifetime = lifetime;
        self
    }

    /// A hard limit on a session's age, counted from its creation, however
    /// active it is (default: none).
    pub fn with_absolute_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.config.absolute_lifetime = lifetime;
        self
    }

    /// How much of its lifetime must pass before a read-only request pushes a
    /// session's expiry back (default: a tenth of the lifetime). `ZERO` touches
    /// on every request.
    pub fn with_touch_interval(mut self, interval: Duration) -> Self {
        self.config.touch_interval = Some(interval);
        self
    }

    /// Maximum encoded size of one session in bytes (default 1 MiB).
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.config.max_size = bytes;
        self
    }

    /// What happens when the session cannot be loaded (default
    /// [`FailurePolicy::Closed`]: a bare 503).
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.config.failure_policy = policy;
        self
    }

    /// Signs the cookie with HMAC-SHA256 (default: unsigned). The first key
    /// signs; every key verifies, so keys can be rotated: put the new key
    /// first and keep the old one until the cookies it signed have expired.
    /// A cookie signed with an older key is accepted and re-signed with the
    /// first on that response. A cookie with a missing or bad signature is
    /// treated as no cookie, without any store call. Each key must be at
    /// least [`MIN_SIGNING_KEY_LEN`] bytes of secret random data.
    ///
    /// The id alone already resists guessing (192 random bits); signing adds
    /// forgery rejection before any store access and key-based revocation of
    /// every outstanding cookie.
    ///
    /// ```
    /// # use sessionkit::SessionConfig;
    /// let config = SessionConfig::builder()
    ///     .with_signing_keys([[7u8; 32], [9u8; 32]])
    ///     .build()
    ///     .unwrap();
    /// # let _ = config;
    /// ```
    pub fn with_signing_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        self.config.signing = SigningKeys(keys.into_iter().map(|k| k.as_ref().to_vec()).collect());
        self
    }

    /// How new session ids are made ([`IdFormat`](crate::IdFormat)):
    /// random and hashed in the store (the default), or the Flask
    /// recipe's uuid4s, for `FlaskStore` (feature `flask`).
    pub fn with_id_format(mut self, format: crate::IdFormat) -> Self {
        self.config.id_format = format;
        self
    }

    /// The body of the responses the middleware makes itself — when the
    /// store is unavailable (503), a session would be too large (413), or
    /// a handler returned a [`sessionkit::Error`](crate::Error) — so that
    /// they look like the rest of the site (`None`: an empty body, the
    /// default). The status and headers stay the middleware's.
    ///
    /// ```
    /// use sessionkit::{ErrorKind, ErrorPage, SessionConfig};
    ///
    /// let config = SessionConfig::builder()
    ///     .with_error_page(|kind| match kind {
    ///         ErrorKind::Unavailable => Some(ErrorPage::html(
    ///             "<h1>Back in a moment</h1><p>Please try again.</p>",
    ///         )),
    ///         _ => None,
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = config;
    /// ```
    pub fn with_error_page(
        mut self,
        page: impl Fn(ErrorKind) -> Option<ErrorPage> + Send + Sync + 'static,
    ) -> Self {
        self.config.error_page = ErrorPages(Some(std::sync::Arc::new(page)));
        self
    }

    /// How the session id travels: a cookie (the default) or a header
    /// ([`Transport`]).
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.config.transport = transport;
        self
    }

    /// The format new sessions store their values in (JSON unless set).
    /// A stored session keeps its own, whatever this says later
    /// ([`Codec`](crate::Codec)).
    pub fn with_codec(mut self, codec: crate::Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Tells `listener` what happens to sessions: created, attached to a
    /// user, id cycled, destroyed, revoked ([`SessionEvent`](crate::events::SessionEvent)).
    pub fn with_listener(mut self, listener: impl crate::events::SessionListener) -> Self {
        self.config.listener = crate::events::Listener::new(listener);
        self
    }

    /// Checks the settings and returns the config.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the cookie name is not a valid token, a `__Host-` or
    /// `__Secure-` name is used without the attributes browsers require of it,
    /// `SameSite=None` is used without `Secure`, or a lifetime is zero.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let mut c = self.config;
        if !self.named {
            let host_only = c.secure && c.cookie_path == "/" && c.cookie_domain.is_none();
            c.cookie_name = if host_only {
                DEFAULT_COOKIE_NAME
            } else {
                PLAIN_COOKIE_NAME
            }
            .to_owned();
        }
        let name = &c.cookie_name;
        let is_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        if !is_token(name) {
            return Err(ConfigError::new(format!(
                "cookie name {name:?} is not a valid cookie-name token"
            )));
        }
        if name.starts_with("__Host-")
            && (!c.secure || c.cookie_path != "/" || c.cookie_domain.is_some())
        {
            return Err(ConfigError::new(
                "a __Host- cookie must be Secure, have Path=/ and no Domain",
            ));
        }
        if name.starts_with("__Secure-") && !c.secure {
            return Err(ConfigError::new("a __Secure- cookie must be Secure"));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(ConfigError::new("SameSite=None requires Secure"));
        }
        if !c.cookie_path.starts_with('/') || c.cookie_path.contains(';') {
            return Err(ConfigError::new(
                "cookie path must start with '/' and contain no ';'",
            ));
        }
        if c.cookie_domain.as_deref().is_some_and(|d| !is_token(d)) {
            return Err(ConfigError::new("cookie domain is not valid"));
        }
        if c.idle_lifetime.is_zero() || c.permanent_lifetime.is_zero() {
            return Err(ConfigError::new(
                "session lifetimes must be greater than zero",
            ));
        }
        if c.signing.0.iter().any(|k| k.len() < MIN_SIGNING_KEY_LEN) {
            return Err(ConfigError::new(format!(
                "every signing key must be at least {MIN_SIGNING_KEY_LEN} bytes"
            )));
        }
        if c.absolute_lifetime.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "the absolute lifetime must be greater than zero",
            ));
        }
        if c.id_format == crate::IdFormat::Uuid4 && !c.signing.0.is_empty() {
            return Err(ConfigError::new(
                "the Flask recipe's ids (IdFormat::Uuid4) are bare uuids: they cannot be signed",
            ));
        }
        if let Transport::Header(name) = &c.transport {
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err()
                || matches!(lower.as_str(), "cookie" | "set-cookie")
            {
                return Err(ConfigError::new(format!(
                    "{name:?} cannot carry session ids (not a header name, or a cookie header)"
                )));
            }
        }
        c.id_headers = IdHeaders::of(&c.transport);
        Ok(c.with_cookie_attrs())
    }
}

/// A [`SessionConfig`] that browsers would reject or that cannot work.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid session config: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn new(msg: impl Into<String>) -> Self {
        ConfigError(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefix_is_checked() {
        assert!(SessionConfig::builder()
            .with_cookie_name("__Host-s")
            .build()
            .is_ok());
        let err = SessionConfig::builder()
            .with_cookie_name("__Host-s")
            .with_cookie_domain("example.com")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("__Host-"));
        assert!(SessionConfig::builder()
            .with_cookie_name("__Host-s")
            .with_cookie_path("/app")
            .build()
            .is_err());
        assert!(SessionConfig::builder()
            .with_cookie_name("__Host-s")
            .with_secure(false)
            .build()
            .is_err());
        assert!(SessionConfig::builder()
            .with_cookie_name("__Secure-s")
            .with_secure(false)
            .build()
            .is_err());
    }

    #[test]
    fn the_default_name_is_host_prefixed_where_browsers_allow_it() {
        assert_eq!(SessionConfig::default().cookie_name(), DEFAULT_COOKIE_NAME);
        let built = SessionConfig::builder().build().unwrap();
        assert_eq!(built.cookie_name(), "__Host-session");
        for plain in [
            SessionConfig::builder().with_secure(false),
            SessionConfig::builder().with_cookie_domain("example.com"),
            SessionConfig::builder().with_cookie_path("/app"),
        ] {
            assert_eq!(plain.build().unwrap().cookie_name(), PLAIN_COOKIE_NAME);
        }
        let named = SessionConfig::builder()
            .with_cookie_name("sid")
            .build()
            .unwrap();
        assert_eq!(named.cookie_name(), "sid");
        let c = SessionConfig::builder().with_secure(false).build().unwrap();
        let set = crate::cookie::set_cookie(&c, &crate::SessionId::generate(), None);
        assert!(
            set.starts_with("session=") && !set.contains("Secure"),
            "{set}"
        );
    }

    #[test]
    fn bad_names_and_lifetimes_are_rejected() {
        assert!(SessionConfig::builder()
            .with_cookie_name("a b")
            .build()
            .is_err());
        assert!(SessionConfig::builder()
            .with_cookie_name("")
            .build()
            .is_err());
        assert!(SessionConfig::builder()
            .with_idle_lifetime(Duration::ZERO)
            .build()
            .is_err());
        assert!(SessionConfig::builder()
            .with_same_site(SameSite::None)
            .with_secure(false)
            .build()
            .is_err());
    }

    #[test]
    fn touch_interval_defaults_to_a_tenth() {
        let c = SessionConfig::default();
        assert_eq!(
            c.touch_interval_for(Duration::from_secs(1000)),
            Duration::from_secs(100)
        );
    }
}
