//! [`Browser`]: an HTTP client that keeps the session cookie the way a
//! browser does (sets it from `Set-Cookie`, drops it on `Max-Age=0`), but
//! sends it over plain HTTP regardless of `Secure`, for loopback tests — or,
//! for a header transport, keeps the token an API client would (from the
//! response's token header; sent back in a request header).

use std::time::Duration;

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// Every response header.
    pub headers: reqwest::header::HeaderMap,
    /// The `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// The values of the header that carries the session id out (the
    /// `Set-Cookie`s of the session cookie, or a header transport's
    /// tokens).
    pub ids: Vec<String>,
    /// This reply told the client to drop its id (a cookie removal, or an
    /// empty token).
    pub ends_session: bool,
}

impl Reply {
    /// All values of a header, joined with ", ".
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// A client holding at most one session cookie.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookie_name: String,
    /// The session cookie's value (or token), as a client would send it.
    pub cookie: Option<String>,
    /// A header transport instead of the cookie.
    header: Option<HeaderWire>,
}

/// How a header transport carries the token.
#[derive(Debug, Clone)]
struct HeaderWire {
    /// The request header (lowercase).
    request: String,
    /// The response header (lowercase).
    response: String,
    /// `Bearer <token>` rather than the bare token.
    bearer: bool,
}

impl Browser {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:3000`) whose
    /// session cookie is named `cookie_name`.
    pub fn new(base: impl Into<String>, cookie_name: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("reqwest client: {e}"));
        Browser {
            http,
            base: base.into(),
            cookie_name: cookie_name.into(),
            cookie: None,
            header: None,
        }
    }

    /// The same client speaking a header transport: it sends its token in
    /// `request` (as `Bearer <token>` when `bearer`), takes a new one from
    /// the response header `response`, and fails the test on any
    /// `Set-Cookie` (a header transport sends none).
    pub fn with_header_transport(mut self, request: &str, response: &str, bearer: bool) -> Self {
        self.header = Some(HeaderWire {
            request: request.to_ascii_lowercase(),
            response: response.to_ascii_lowercase(),
            bearer,
        });
        self
    }

    /// The server's address (`http://127.0.0.1:<port>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests `path` until the reply satisfies `done`; how long that took.
    ///
    /// # Panics
    ///
    /// If it does not within `bound`.
    pub async fn poll(
        &mut self,
        path: &str,
        bound: Duration,
        done: impl Fn(&Reply) -> bool,
    ) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let r = self.get(path).await;
            if done(&r) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < bound,
                "{path} still answers {} {:?} after {:?}",
                r.status,
                r.body,
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A second client with the same cookie (another tab, or an attacker
    /// replaying it).
    pub fn fork(&self) -> Self {
        self.clone()
    }

    /// The same client sending `cookie` as its session cookie.
    pub fn with_cookie(mut self, cookie: Option<&str>) -> Self {
        self.cookie = cookie.map(str::to_owned);
        self
    }

    /// `GET path`.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (no response).
    pub async fn get(&mut self, path: &str) -> Reply {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// `POST path` with a text body.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (no response).
    pub async fn post(&mut self, path: &str, body: impl Into<String>) -> Reply {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.into());
        self.send(req).await
    }

    /// Sends `raw` as the whole `Cookie` header, whatever the stored cookie.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (no response).
    pub async fn get_with_cookie_header(&mut self, path: &str, raw: &str) -> Reply {
        self.get_with_header(path, "cookie", raw).await
    }

    /// Sends `value` as the header `name` and nothing of the stored cookie
    /// or token.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (no response).
    pub async fn get_with_header(&mut self, path: &str, name: &str, value: &str) -> Reply {
        self.get_with_headers(path, &[(name, value)]).await
    }

    /// Sends these headers and nothing of the stored cookie or token.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (no response).
    pub async fn get_with_headers(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.apply(req.send().await).await
    }

    /// Sends `raw` bytes (not necessarily UTF-8) as the whole `Cookie`
    /// header, whatever the stored cookie.
    ///
    /// # Panics
    ///
    /// If `raw` is not a valid header value (control bytes) or the request
    /// fails at the HTTP level.
    pub async fn get_with_cookie_bytes(&mut self, path: &str, raw: &[u8]) -> Reply {
        let value = reqwest::header::HeaderValue::from_bytes(raw)
            .unwrap_or_else(|e| panic!("not a header value: {e}"));
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", value);
        self.apply(req.send().await).await
    }

    async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Reply {
        if let Some(c) = &self.cookie {
            req = match &self.header {
                None => req.header("cookie", format!("{}={c}", self.cookie_name)),
                Some(w) if w.bearer => req.header(&w.request, format!("Bearer {c}")),
                Some(w) => req.header(&w.request, c),
            };
        }
        self.apply(req.send().await).await
    }

    async fn apply(&mut self, res: reqwest::Result<reqwest::Response>) -> Reply {
        let res = res.unwrap_or_else(|e| panic!("request failed: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap_or_default();
        let set_cookies: Vec<String> = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let mut ids = Vec::new();
        let mut ends_session = false;
        if let Some(w) = &self.header {
            assert!(
                set_cookies.is_empty(),
                "a header transport sent Set-Cookie: {set_cookies:?}"
            );
            for v in headers.get_all(&w.response) {
                let token = v.to_str().unwrap_or_default().trim().to_owned();
                ends_session |= token.is_empty();
                self.cookie = (!token.is_empty()).then(|| token.clone());
                ids.push(token);
            }
        }
        for sc in set_cookies.iter().filter(|_| self.header.is_none()) {
            let Some((name, rest)) = sc.split_once('=') else {
                continue;
            };
            if name != self.cookie_name {
                continue;
            }
            let value = rest.split(';').next().unwrap_or("").to_owned();
            let removal = value.is_empty() || sc.contains("Max-Age=0");
            ends_session |= removal;
            self.cookie = (!removal).then_some(value);
            ids.push(sc.clone());
        }
        Reply {
            status,
            body,
            headers,
            set_cookies,
            ids,
            ends_session,
        }
    }
}
