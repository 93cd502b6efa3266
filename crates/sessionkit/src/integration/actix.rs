//! The actix-web middleware ([`SessionMiddleware`] → [`SessionMiddlewareService`]),
//! the `Session` extractor, and `Error` as an actix-web `ResponseError`.
//!
//! Like the tower adapter, this module only translates actix-web types: the
//! `lifecycle` module opens the session and decides, at the end, what to
//! store and which headers to set. It must never decide anything itself.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, RETRY_AFTER, SET_COOKIE, VARY,
};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::config::ErrorPages;
use crate::lifecycle::{self, Finish, Shared};
use crate::store::SessionStore;
use crate::{Error, Session, SessionConfig};

/// actix-web middleware that adds a [`Session`] to every request and saves
/// it after the response. Build it once, outside the `HttpServer` factory,
/// and `.wrap(sessions.clone())` in it: every worker then shares one store
/// (`Clone` is cheap).
///
/// Take the session in a handler as an extractor; a handler may return
/// [`Error`] (it becomes a bare 503/413/500, see its `ResponseError` impl):
///
/// ```
/// use actix_web::{test, web, App, HttpResponse};
/// use sessionkit::{Error, MemoryStore, Session, SessionConfig, SessionMiddleware};
///
/// async fn visits(session: Session) -> Result<String, Error> {
///     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", &n).await?;
///     Ok(n.to_string())
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let sessions = SessionMiddleware::new(MemoryStore::new(), SessionConfig::default());
/// let app = test::init_service(
///     App::new().wrap(sessions.clone()).route("/", web::get().to(visits)),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
/// assert!(res.headers().contains_key("set-cookie"));
/// assert_eq!(test::read_body(res).await, "1");
/// # });
/// ```
///
/// Serving it (2 workers, one shared store):
///
/// ```no_run
/// use actix_web::{web, App, HttpServer};
/// use sessionkit::{RedisStore, Session, SessionConfig, SessionMiddleware};
///
/// async fn hello(session: Session) -> Result<String, sessionkit::Error> {
///     let name: Option<String> = session.get("name").await?;
///     Ok(format!("hello {}", name.as_deref().unwrap_or("stranger")))
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let sessions = SessionMiddleware::new(store, SessionConfig::default());
/// HttpServer::new(move || App::new().wrap(sessions.clone()).route("/", web::get().to(hello)))
///     .workers(2)
///     .bind(("127.0.0.1", 3000))?
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    shared: Arc<Shared>,
}

impl SessionMiddleware {
    /// A middleware storing sessions in `store`, configured by `config`.
    ///
    /// ```
    /// use sessionkit::{MemoryStore, SessionConfig, SessionMiddleware};
    ///
    /// let sessions = SessionMiddleware::new(MemoryStore::new(), SessionConfig::default());
    /// let app = actix_web::App::new().wrap(sessions);
    /// ```
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Self {
        SessionMiddleware {
            shared: Shared::new(store, config),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody,
{
    type Transform = SessionMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService {
            service,
            id_header: id_header(&self.shared.config),
            shared: Arc::clone(&self.shared),
        }))
    }
}

/// The service made by [`SessionMiddleware`] around the app, one per worker.
/// It is built by actix-web (`App::wrap`), never by hand:
///
/// ```
/// use actix_web::{web, App};
/// use sessionkit::{MemoryStore, SessionConfig, SessionMiddleware};
///
/// // Each worker's App wraps its routes in a SessionMiddlewareService.
/// let app = App::new()
///     .wrap(SessionMiddleware::new(MemoryStore::new(), SessionConfig::default()))
///     .route("/", web::get().to(|| async { "ok" }));
/// ```
#[derive(Debug)]
pub struct SessionMiddlewareService<S> {
    service: S,
    /// The request header the id arrives in, parsed once.
    id_header: HeaderName,
    shared: Arc<Shared>,
}

impl<S, B> Service<ServiceRequest> for SessionMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let cookies = req
            .headers()
            .get_all(&self.id_header)
            .map(HeaderValue::as_bytes);
        let headers = req.headers();
        let insecure = || {
            crate::lifecycle::insecure_origin(
                &self.shared.config,
                headers
                    .get(actix_web::http::header::HOST)
                    .map(HeaderValue::as_bytes),
                req.app_config().secure(),
                headers
                    .get_all("x-forwarded-proto")
                    .chain(headers.get_all(actix_web::http::header::FORWARDED))
                    .map(HeaderValue::as_bytes),
            )
        };
        let session = Session::open(&self.shared, cookies, insecure);
        req.extensions_mut().insert(session.clone());
        let res = self.service.call(req);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let res = res.await?;
            let finish = session.finish(res.status().as_u16()).await;
            Ok(apply(&finish, res, &shared.config.error_page))
        })
    }
}

/// Applies the lifecycle's [`Finish`] to a response: type plumbing only.
fn apply<B>(
    finish: &Finish<'_>,
    res: ServiceResponse<B>,
    pages: &ErrorPages,
) -> ServiceResponse<EitherBody<B>> {
    // A response the middleware makes, or a handler's `sessionkit::Error`:
    // the application's page for it, if it gives one.
    let made_here = finish.replacement().or_else(|| {
        res.response()
            .error()
            .and_then(|e| e.as_error::<Error>())
            .map(|_| res.status().as_u16())
    });
    let page = made_here.and_then(|status| pages.page(status).map(|p| (status, p)));
    let mut res = match (finish.replacement(), page) {
        (replaced, Some((status, page))) => {
            let mut page_res = HttpResponse::build(status_code(status))
                .content_type(page.content_type)
                .body(page.body);
            if replaced.is_none() {
                // The handler's error response: keep its headers
                // (`Retry-After`).
                for (name, value) in res.response().headers() {
                    if name != actix_web::http::header::CONTENT_TYPE
                        && name != actix_web::http::header::CONTENT_LENGTH
                    {
                        page_res.headers_mut().append(name.clone(), value.clone());
                    }
                }
            }
            res.into_response(page_res).map_into_right_body()
        }
        (Some(status), None) => res
            .into_response(HttpResponse::new(status_code(status)))
            .map_into_right_body(),
        (None, None) => res.map_into_left_body(),
    };
    append_headers(finish, res.headers_mut());
    res
}

fn append_headers(finish: &Finish<'_>, headers: &mut HeaderMap) {
    for (name, value) in finish.headers(headers.contains_key(CACHE_CONTROL)) {
        // Values are built from validated config and base64url ids.
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The request's session, put there by [`SessionMiddleware`]. Without the
/// middleware the extraction fails with [`Error::MissingMiddleware`] (a 500).
///
/// ```
/// use sessionkit::Session;
///
/// async fn whoami(session: Session) -> Result<String, sessionkit::Error> {
///     Ok(session.get("user").await?.unwrap_or_else(|| "nobody".to_owned()))
/// }
/// let route = actix_web::web::get().to(whoami);
/// ```
impl FromRequest for Session {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Session>()
                .cloned()
                .ok_or_else(|| Error::MissingMiddleware.into()),
        )
    }
}

/// A handler may return `sessionkit::Error`: it becomes a bare status (503 +
/// `Retry-After` when the store is unavailable, 413 when the session is too
/// large, 500 otherwise) and an error event in the log, with the cause; the
/// client sees no detail.
///
/// ```
/// use actix_web::ResponseError;
///
/// let err = sessionkit::Error::unavailable("connection refused");
/// assert_eq!(err.status_code(), 503);
/// let res = err.error_response();
/// assert_eq!(res.headers().get("retry-after").unwrap(), "1");
/// ```
impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status_code(lifecycle::error_status(self))
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::new(self.status_code());
        append_headers(&Finish::handler_error(self), res.headers_mut());
        res
    }
}

/// The transport's request header (the config checked its name).
fn id_header(config: &SessionConfig) -> HeaderName {
    HeaderName::from_bytes(config.id_headers.request.as_bytes())
        .unwrap_or(actix_web::http::header::COOKIE)
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
