//! Micro-benchmarks of sessionkit's per-request CPU costs, no network.
//!
//! - `id`: a new [`SessionId`] from the OS CSPRNG (`generate`), and the
//!   storage id derived from it (`storage_id`, one SHA-256 + base64url).
//! - `cookie`: the request-side parser on a `Cookie:` header holding the
//!   session cookie among three others — signed and valid (parse + HMAC
//!   verify), unsigned and valid, forged (well-formed, bad tag: still one
//!   HMAC), malformed (truncated tag: rejected before any HMAC) — and
//!   building the signed `Set-Cookie` value.
//! - `record`: decoding a Redis `HGETALL` reply (9 field/value pairs: the
//!   seven `m:` metadata fields and two JSON `d:` values) into a record, as
//!   every Redis load does; and `encode`: the same record as the `RESTORE`
//!   payload that creates a new session.
//! - `lifecycle`: one request through the tower middleware ([`SessionLayer`]
//!   on a [`MemoryStore`], signed cookies, a `service_fn` handler):
//!   `new_insert` (no cookie, handler inserts a key: create + `Set-Cookie`),
//!   `load_read` (valid cookie, handler reads a key: one load, no write),
//!   `ignored` (valid cookie, handler never touches the session: no store
//!   call) and, for reference, `no_layer` (the same handler, no middleware).
//!
//! The cookie parser and the record decoder are crate-private; they are
//! reached through [`sessionkit::fuzzing`] (feature `fuzzing`), as the fuzz
//! targets reach them. Run with:
//!
//! ```text
//! cargo bench -p sessionkit --bench micro --features fuzzing
//! cargo bench -p sessionkit --bench micro --features fuzzing -- cookie   # one group
//! ```

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use http::{Request, Response};
use sessionkit::fuzzing::{decode_record, find_id, set_cookie};
use sessionkit::{MemoryStore, Session, SessionConfig, SessionId, SessionLayer};
use tower::{Layer as _, Service, ServiceExt as _};

/// The current signing key of the signed configs (32 bytes, the minimum).
const KEY: [u8; 32] = [0x5a; 32];

fn signed_config() -> SessionConfig {
    SessionConfig::builder()
        .with_signing_keys([KEY])
        .build()
        .unwrap_or_else(|e| panic!("signed config: {e}"))
}

/// The cookie value (`id` or `id.tag`) of a `Set-Cookie` value.
fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    let (_, value) = pair
        .split_once('=')
        .unwrap_or_else(|| panic!("no value in {set_cookie}"));
    value.to_owned()
}

/// A `Cookie:` header with the session cookie among three others, as a
/// browser sends it for a site with analytics and preference cookies.
fn cookie_header(session_value: &str) -> String {
    format!(
        "_ga=GA1.2.1234567890.1718000000; theme=dark; \
         {}={session_value}; lang=en-GB",
        sessionkit::DEFAULT_COOKIE_NAME
    )
}

fn id(c: &mut Criterion) {
    let mut g = c.benchmark_group("id");
    g.bench_function("generate", |b| b.iter(SessionId::generate));
    let id = SessionId::generate();
    g.bench_function("storage_id", |b| b.iter(|| black_box(&id).storage_id()));
    g.finish();
}

fn cookie(c: &mut Criterion) {
    let signed = signed_config();
    let plain = SessionConfig::default();
    // A fixed id, so that runs compare the same input.
    let id: SessionId = "q3vJ0Zp8Xw-_Lm2Nb7Ht4Rk9Ys1Ce5Dg"
        .parse()
        .unwrap_or_else(|e| panic!("sample id: {e}"));
    let good = cookie_value(&set_cookie(&signed, &id));
    let (id_part, tag) = good
        .split_once('.')
        .unwrap_or_else(|| panic!("unsigned value: {good}"));
    // Well-formed, wrong tag: its first character changed (a full 6 bits of
    // the MAC, so the tag still decodes and the HMAC is computed).
    let first = if tag.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{id_part}.{first}{}", &tag[1..]);
    // Truncated in transit: the tag has the wrong length, no HMAC.
    let truncated = &good[..good.len() - 8];

    let cases = [
        ("find_id/signed_valid", &signed, cookie_header(&good), true),
        (
            "find_id/unsigned_valid",
            &plain,
            cookie_header(&id.expose()),
            true,
        ),
        (
            "find_id/signed_forged",
            &signed,
            cookie_header(&forged),
            false,
        ),
        (
            "find_id/signed_malformed",
            &signed,
            cookie_header(truncated),
            false,
        ),
    ];
    let mut g = c.benchmark_group("cookie");
    for (name, config, header, valid) in &cases {
        // The bench measures what it claims: the header parses as intended.
        assert_eq!(
            find_id(config, [header.as_bytes()]).is_some(),
            *valid,
            "{name}: {header}"
        );
        g.bench_function(*name, |b| {
            b.iter(|| find_id(black_box(config), [black_box(header.as_bytes())]))
        });
    }
    g.bench_function("set_cookie/signed", |b| {
        b.iter(|| set_cookie(black_box(&signed), black_box(&id)))
    });
    g.finish();
}

/// An `HGETALL` reply of a typical session: layout version, times, flags,
/// revision, and two data keys holding JSON.
fn hgetall_reply() -> Vec<(Vec<u8>, Vec<u8>)> {
    let created: u64 = 1_718_000_000_000;
    [
        ("m:v", "1".to_owned()),
        ("m:created", created.to_string()),
        ("m:expires", (created + 86_400_000).to_string()),
        ("m:permanent", "0".to_owned()),
        ("m:absolute", "0".to_owned()),
        ("m:lifetime", "0".to_owned()),
        ("m:rev", "17".to_owned()),
        (
            "d:user",
            r#"{"id":48213,"name":"Ada Lovelace","roles":["admin","editor"]}"#.to_owned(),
        ),
        ("d:csrf", r#""q8Zt3vLw0xYp2mRk7HsN4bJc""#.to_owned()),
    ]
    .into_iter()
    .map(|(f, v)| (f.as_bytes().to_vec(), v.into_bytes()))
    .collect()
}

fn record(c: &mut Criterion) {
    let reply = hgetall_reply();
    match decode_record(reply.clone()) {
        Ok(Some(r)) if r.data.len() == 2 => {}
        other => panic!("the sample reply does not decode to a record: {other:?}"),
    }
    let mut g = c.benchmark_group("record");
    // The decoder takes the reply by value (as the store hands it over):
    // the copy is made in the untimed setup.
    g.bench_function("decode", |b| {
        b.iter_batched(|| reply.clone(), decode_record, BatchSize::SmallInput)
    });

    // The same record as a new session's RESTORE payload (the create path).
    let rec = decode_record(hgetall_reply())
        .ok()
        .flatten()
        .unwrap_or_default();
    g.bench_function("encode", |b| {
        b.iter(|| sessionkit::fuzzing::encode_new_record(black_box(&rec)))
    });

    g.finish();
}

/// The response body type: anything `Default` will do for the middleware.
type Body = String;

fn session_of<B>(req: &Request<B>) -> Session {
    req.extensions()
        .get::<Session>()
        .cloned()
        .unwrap_or_else(|| panic!("no Session in the request: middleware missing"))
}

fn get(cookie: Option<&str>) -> Request<()> {
    let mut req = Request::get("/");
    if let Some(c) = cookie {
        req = req.header(http::header::COOKIE, c);
    }
    req.body(()).unwrap_or_else(|e| panic!("request: {e}"))
}

fn lifecycle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let config = signed_config();

    let insert = tower::service_fn(|req: Request<()>| async move {
        let session = session_of(&req);
        session
            .insert("user", &48213_u64)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
        Ok::<_, Infallible>(Response::new(Body::new()))
    });
    let read = tower::service_fn(|req: Request<()>| async move {
        let user: Option<u64> = session_of(&req)
            .get("user")
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        Ok::<_, Infallible>(Response::new(
            user.map(|u| u.to_string()).unwrap_or_default(),
        ))
    });
    let ignore = tower::service_fn(|_: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(Body::from("hello")))
    });

    // One stored session, and the signed cookie a browser would send for it.
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone(), config.clone());
    let res = runtime
        .block_on(layer.layer(insert).oneshot(get(None)))
        .unwrap_or_else(|e| match e {});
    let set_cookie = res
        .headers()
        .get(http::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Set-Cookie on a new session: {res:?}"));
    let header = cookie_header(&cookie_value(set_cookie));
    assert_eq!(store.len(), 1);
    let read_svc = layer.layer(read);
    let res = runtime
        .block_on(read_svc.clone().oneshot(get(Some(&header))))
        .unwrap_or_else(|e| match e {});
    assert_eq!(res.body(), "48213", "the cookie loads the stored session");
    assert!(
        !res.headers().contains_key(http::header::SET_COOKIE),
        "{res:?}"
    );

    let mut g = c.benchmark_group("lifecycle");
    // A fresh store per iteration (built in the untimed setup, dropped after
    // the timing): the store does not grow with the iteration count.
    g.bench_function("new_insert", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                let svc = SessionLayer::new(MemoryStore::new(), config.clone()).layer(insert);
                (svc, get(None))
            },
            |(mut svc, req)| async move {
                let ready = svc.ready().await.unwrap_or_else(|e| match e {});
                let res = ready.call(req).await;
                (svc, res)
            },
            BatchSize::SmallInput,
        )
    });
    let with_cookie = || get(Some(&header));
    g.bench_function("load_read", |b| {
        b.to_async(&runtime).iter_batched(
            with_cookie,
            |req| read_svc.clone().oneshot(req),
            BatchSize::SmallInput,
        )
    });
    let ignore_svc = layer.layer(ignore);
    g.bench_function("ignored", |b| {
        b.to_async(&runtime).iter_batched(
            with_cookie,
            |req| ignore_svc.clone().oneshot(req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("no_layer", |b| {
        b.to_async(&runtime).iter_batched(
            with_cookie,
            |req| ignore.oneshot(req),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The read-only requests wrote nothing and created no session.
    assert_eq!(store.len(), 1);
}

// What `criterion_group!`/`criterion_main!` expand to, written out: the
// macros' generated `pub fn` trips the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    id(&mut c);
    cookie(&mut c);
    record(&mut c);
    lifecycle(&mut c);
    c.final_summary();
}
