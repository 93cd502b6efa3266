//! The tower middleware ([`SessionLayer`] → [`SessionService`]) and, with the
//! `axum` feature, the `Session` extractor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, CACHE_CONTROL, RETRY_AFTER, SET_COOKIE, VARY};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::ErrorPages;
use crate::lifecycle::{Finish, Shared};
use crate::store::SessionStore;
use crate::{Session, SessionConfig};

/// Adds a [`Session`](crate::Session) to every request and saves it after
/// the response. Build it once and share it (`Clone` is cheap).
///
/// ```
/// use axum::{routing::get, Router};
/// use sessionkit::{MemoryStore, Session, SessionConfig, SessionLayer};
///
/// async fn hello(session: Session) -> String {
///     let name: Option<String> = session.get("name").await.ok().flatten();
///     format!("hello {}", name.as_deref().unwrap_or("stranger"))
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(hello))
///     .layer(SessionLayer::new(MemoryStore::new(), SessionConfig::default()));
/// ```
#[derive(Clone, Debug)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl SessionLayer {
    /// A layer storing sessions in `store`, configured by `config`.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Self {
        SessionLayer {
            shared: Shared::new(store, config),
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            id_header: id_header(&self.shared.config),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    /// The request header the id arrives in, parsed once.
    id_header: HeaderName,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let cookies = req
            .headers()
            .get_all(&self.id_header)
            .into_iter()
            .map(HeaderValue::as_bytes);
        let config = &self.shared.config;
        let headers = req.headers();
        let insecure = || {
            let host = headers
                .get(http::header::HOST)
                .map(HeaderValue::as_bytes)
                .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()));
            crate::lifecycle::insecure_origin(
                config,
                host,
                req.uri().scheme() == Some(&http::uri::Scheme::HTTPS),
                headers
                    .get_all("x-forwarded-proto")
                    .into_iter()
                    .chain(headers.get_all(http::header::FORWARDED))
                    .map(HeaderValue::as_bytes),
            )
        };
        let session = Session::open(&self.shared, cookies, insecure);
        req.extensions_mut().insert(session.clone());
        // Call the service that was polled ready, leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let res = inner.call(req).await?;
            let finish = session.finish(res.status().as_u16()).await;
            let res = apply(&finish, res, ResBody::default);
            Ok(with_page(&shared.config.error_page, res))
        })
    }
}

/// Applies the lifecycle's [`Finish`] to a response: type plumbing only.
fn apply<B>(finish: &Finish<'_>, res: Response<B>, empty: impl FnOnce() -> B) -> Response<B> {
    let mut res = match finish.replacement() {
        Some(status) => {
            let mut bare = Response::new(empty());
            *bare.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            bare.extensions_mut().insert(MadeHere);
            bare
        }
        None => res,
    };
    let has_cache_control = res.headers().contains_key(CACHE_CONTROL);
    for (name, value) in finish.headers(has_cache_control) {
        // Values are built from validated config and base64url ids.
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::from_str(value)) {
            res.headers_mut().append(name, value);
        }
    }
    res
}

/// Marks a response the middleware (or `IntoResponse for Error`) made.
#[derive(Clone, Copy, Debug)]
struct MadeHere;

/// The application's page for a response the middleware made.
fn with_page<B: From<String>>(pages: &ErrorPages, mut res: Response<B>) -> Response<B> {
    if res.extensions().get::<MadeHere>().is_none() {
        return res;
    }
    if let Some(page) = pages.page(res.status().as_u16()) {
        if let Ok(kind) = HeaderValue::from_str(&page.content_type) {
            res.headers_mut().insert(http::header::CONTENT_TYPE, kind);
        }
        *res.body_mut() = B::from(page.body);
    }
    res
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::body::Body;
    use axum_core::extract::FromRequestParts;
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;

    use crate::lifecycle::Finish;
    use crate::{Error, Session};

    /// A handler may return `sessionkit::Error`: it becomes a bare status
    /// (503 + `Retry-After` when the store is unavailable, 413 when the
    /// session is too large, 500 otherwise) and an error event in the log,
    /// with the cause; the client sees no detail.
    impl IntoResponse for Error {
        fn into_response(self) -> Response {
            super::apply(
                &Finish::handler_error(&self),
                Response::default(),
                Body::empty,
            )
        }
    }

    /// Without the middleware the extraction fails with
    /// [`Error::MissingMiddleware`]: a bare 500, logged, as on actix-web.
    impl<S: Send + Sync> FromRequestParts<S> for Session {
        type Rejection = Error;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Session>()
                .cloned()
                .ok_or(Error::MissingMiddleware)
        }
    }
}

/// The transport's request header (the config checked its name).
fn id_header(config: &SessionConfig) -> HeaderName {
    HeaderName::from_bytes(config.id_headers.request.as_bytes()).unwrap_or(http::header::COOKIE)
}

/// A header name of [`Finish::headers`]: the fixed ones without parsing,
/// a header transport's (checked by the config) parsed.
fn header_name(name: &str) -> Option<HeaderName> {
    Some(match name {
        "set-cookie" => SET_COOKIE,
        "vary" => VARY,
        "cache-control" => CACHE_CONTROL,
        "retry-after" => RETRY_AFTER,
        other => return HeaderName::from_bytes(other.as_bytes()).ok(),
    })
}
