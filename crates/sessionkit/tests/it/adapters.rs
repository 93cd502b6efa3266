//! The edges of both framework adapters, checked the same way on each: a
//! store failure at the end of a request is a bare 503 with `Retry-After`, a
//! handler's `sessionkit::Error` is a bare status, the app's own
//! `Cache-Control` wins, a missing middleware is a 500. Served in-process.

use sessionkit::store::{BoxFuture, Changes, Record, UpdateOutcome};
use sessionkit::{Error, MemoryStore, Session, SessionConfig, SessionId, SessionStore, StorageId};
use testkit::conformance::Framework;

/// A store that is always unavailable.
#[derive(Clone)]
struct Down;

fn down<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, Error>> {
    Box::pin(async { Err(Error::unavailable("connection refused")) })
}

impl SessionStore for Down {
    fn load<'a>(&'a self, _: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        down()
    }
    fn create<'a>(&'a self, _: &'a StorageId, _: &'a Record) -> BoxFuture<'a, Result<bool, Error>> {
        down()
    }
    fn update<'a>(
        &'a self,
        _: &'a StorageId,
        _: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        down()
    }
    fn delete<'a>(&'a self, _: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        down()
    }
    fn take<'a>(
        &'a self,
        _: &'a StorageId,
        _: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        down()
    }
    fn sessions_of<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        down()
    }
    fn revoke<'a>(&'a self, _: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        down()
    }
}

// The handlers, written once; both frameworks take them as they are.

async fn read(session: Session) -> Result<String, Error> {
    Ok(session.get::<i64>("n").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<&'static str, Error> {
    session.insert("n", &1).await?;
    Ok("ok")
}

async fn too_large(_: Session) -> Result<&'static str, Error> {
    Err(Error::TooLarge { size: 2, limit: 1 })
}

/// The one framework-specific route: it sets its own `Cache-Control`.
const APP_CACHE_CONTROL: &str = "private, max-age=60";

/// One response, framework-neutral.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `GET uri` through `fw`, with the session middleware on `store` if
/// `middleware`, sending `cookie` as the session cookie.
async fn get(
    fw: Framework,
    store: impl SessionStore,
    middleware: bool,
    uri: &str,
    cookie: Option<&str>,
) -> Reply {
    let cookie = cookie.map(|c| format!("{}={c}", sessionkit::DEFAULT_COOKIE_NAME));
    match fw {
        Framework::Axum => {
            use axum::routing::get;
            use tower::ServiceExt;

            let private = |s: Session| async move {
                write(s).await?;
                Ok::<_, Error>(([(http::header::CACHE_CONTROL, APP_CACHE_CONTROL)], "ok"))
            };
            let mut app = axum::Router::new()
                .route("/read", get(read))
                .route("/write", get(write))
                .route("/too-large", get(too_large))
                .route("/private", get(private));
            if middleware {
                app = app.layer(sessionkit::SessionLayer::new(
                    store,
                    SessionConfig::default(),
                ));
            }
            let mut req = http::Request::get(uri);
            if let Some(c) = &cookie {
                req = req.header("cookie", c);
            }
            let req = req
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("request: {e}"));
            let res = app.oneshot(req).await.unwrap_or_else(|e| match e {});
            let status = res.status().as_u16();
            let headers = res
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("body: {e}"));
            Reply {
                status,
                headers,
                body: body.to_vec(),
            }
        }
        Framework::Actix => {
            use actix_web::{test, web, App, HttpResponse};

            let private = |s: Session| async move {
                write(s).await?;
                Ok::<_, Error>(
                    HttpResponse::Ok()
                        .insert_header(("cache-control", APP_CACHE_CONTROL))
                        .body("ok"),
                )
            };
            let app = App::new()
                .wrap(actix_web::middleware::Condition::new(
                    middleware,
                    sessionkit::SessionMiddleware::new(store, SessionConfig::default()),
                ))
                .route("/read", web::get().to(read))
                .route("/write", web::get().to(write))
                .route("/too-large", web::get().to(too_large))
                .route("/private", web::get().to(private));
            let app = test::init_service(app).await;
            let mut req = test::TestRequest::get().uri(uri);
            if let Some(c) = &cookie {
                req = req.insert_header(("cookie", c.as_str()));
            }
            let res = test::call_service(&app, req.to_request()).await;
            let status = res.status().as_u16();
            let headers = res
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = test::read_body(res).await;
            Reply {
                status,
                headers,
                body: body.to_vec(),
            }
        }
    }
}

fn cookie() -> String {
    SessionId::generate().expose()
}

const BOTH: [Framework; 2] = [Framework::Axum, Framework::Actix];

#[tokio::test]
async fn store_down_at_save_is_a_bare_503() {
    for fw in BOTH {
        let r = get(fw, Down, true, "/write", None).await;
        assert_eq!(r.status, 503, "[{fw:?}] {r:?}");
        assert_eq!(r.header("retry-after"), ["1"], "[{fw:?}] {r:?}");
        assert!(r.header("set-cookie").is_empty(), "[{fw:?}] {r:?}");
        assert!(r.body.is_empty(), "[{fw:?}] opaque to clients: {r:?}");
    }
}

#[tokio::test]
async fn handler_error_is_a_bare_status() {
    for fw in BOTH {
        // The load fails in the handler, which returns the error.
        let r = get(fw, Down, true, "/read", Some(&cookie())).await;
        assert_eq!(r.status, 503, "[{fw:?}] {r:?}");
        assert_eq!(r.header("retry-after"), ["1"], "[{fw:?}] {r:?}");
        assert!(r.body.is_empty(), "[{fw:?}] opaque to clients: {r:?}");
        let r = get(fw, MemoryStore::new(), true, "/too-large", None).await;
        assert_eq!(r.status, 413, "[{fw:?}] {r:?}");
        assert!(r.header("retry-after").is_empty(), "[{fw:?}] {r:?}");
        assert!(r.body.is_empty(), "[{fw:?}] {r:?}");
    }
}

#[tokio::test]
async fn app_cache_control_wins() {
    for fw in BOTH {
        let r = get(fw, MemoryStore::new(), true, "/private", None).await;
        assert_eq!(r.status, 200, "[{fw:?}] {r:?}");
        assert_eq!(r.header("set-cookie").len(), 1, "[{fw:?}] {r:?}");
        assert_eq!(
            r.header("cache-control"),
            [APP_CACHE_CONTROL],
            "[{fw:?}] {r:?}"
        );
        assert_eq!(r.header("vary"), ["Cookie"], "[{fw:?}] {r:?}");
        let r = get(fw, MemoryStore::new(), true, "/write", None).await;
        assert_eq!(r.header("cache-control"), ["no-store"], "[{fw:?}] {r:?}");
    }
}

/// Without the middleware the `Session` extractor fails the same way on
/// both frameworks: a bare 500 (the cause is logged, not shown).
#[tokio::test]
async fn missing_middleware_is_a_bare_500() {
    for fw in BOTH {
        let r = get(fw, MemoryStore::new(), false, "/read", None).await;
        assert_eq!(r.status, 500, "[{fw:?}] {r:?}");
        assert!(r.body.is_empty(), "[{fw:?}] {r:?}");
    }
}
