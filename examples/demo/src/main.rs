//! sessionkit demo: a small server-rendered site with sign-in, a visit
//! counter and a shopping cart, all kept in a server-side session.
//!
//! ```text
//! cargo run -p demo --release                      # Redis if reachable, else memory
//! cargo run -p demo -- --store memory --insecure-cookie --addr 127.0.0.1:3000
//! REDIS_URL=redis://127.0.0.1:6390/ cargo run -p demo -- --store redis
//! ```
//!
//! Session keys: `user` (the signed-in name), `visits` (a counter bumped by
//! every visit to `/`) and `cart` (item name → quantity); flash messages
//! after sign-in, sign-out and cart changes. A signed-in session is
//! attached to its user: `/devices` lists the user's sessions (browser and
//! system from each one's user agent), ends one, or all ("log out
//! everywhere"). `/metrics` serves the library's counters (Prometheus).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use sessionkit::{MemoryStore, RedisStore, Session, SessionConfig, SessionHandle, SessionLayer};
use tracing_subscriber::EnvFilter;

/// Longest accepted name or item, in characters.
const MAX_LEN: usize = 100;
/// Most distinct items a cart may hold.
const MAX_ITEMS: usize = 50;
/// Highest quantity of one item.
const MAX_QTY: u32 = 99;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    name = "demo",
    about = "sessionkit demo site: sign-in, visit counter and cart"
)]
struct Args {
    /// Session store: `redis`, `memory`, or `auto` (Redis if reachable, else memory).
    /// Redis is the one the environment names: REDIS_URL, or REDIS_CLUSTER_URLS, or
    /// REDIS_SENTINEL_URLS with REDIS_SENTINEL_SERVICE; REDIS_CA_FILE for TLS.
    #[arg(long, value_enum, default_value_t = StoreKind::Auto)]
    store: StoreKind,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Send the session cookie without the `Secure` attribute, for plain
    /// HTTP to a host other than localhost (a LAN address, a dev host name),
    /// where browsers drop `Secure` cookies. Not needed on http://localhost.
    #[arg(long)]
    insecure_cookie: bool,
}

/// Which session store to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Memory,
    Redis,
    Auto,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // Colours only for a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let shown_url = redis_shown();

    if args.insecure_cookie {
        eprintln!(
            "warning: --insecure-cookie: the session cookie is sent without `Secure`, \
             so its id travels in clear text over http. Use only for local testing."
        );
    }
    let config = SessionConfig::builder()
        .with_secure(!args.insecure_cookie)
        // The responses the middleware makes itself (a visitor during an
        // outage, a sign-out that could not reach the store) in the site's
        // style.
        .with_error_page(|kind| {
            let (title, msg) = match kind {
                sessionkit::ErrorKind::Unavailable => (
                    "Temporarily unavailable",
                    "The session store cannot be reached right now. Please try again in a \
                     moment. (If you signed out, you are signed out on this device; the \
                     session ends on the server by itself.)",
                ),
                sessionkit::ErrorKind::TooLarge => {
                    ("Too much", "Your session cannot hold that much. Remove something first.")
                }
                _ => ("Something went wrong", "Your session could not be used."),
            };
            let body = format!(
                r#"<section><h2>{}</h2><p>{}</p><p><a href="/">Back to the home page</a></p></section>"#,
                escape(title),
                escape(msg)
            );
            Some(sessionkit::ErrorPage::html(page(title, &body)))
        })
        .build()
        .map_err(|e| e.to_string())?;

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot set up /metrics: {e}"))?;
    let (layer, store_name) = match args.store {
        StoreKind::Memory => (SessionLayer::new(MemoryStore::new(), config), "memory"),
        StoreKind::Redis => {
            // The store connects on first use: the site starts even while
            // Redis is down, and its pages work as soon as Redis is up.
            let store = redis_store().await?;
            if let Err(e) = store.check().await {
                eprintln!(
                    "warning: Redis not reachable at {shown_url} yet ({}); pages that use \
                     the session answer 503 until it is",
                    chain(&e)
                );
            }
            (SessionLayer::new(store, config), "redis")
        }
        StoreKind::Auto => {
            let store = redis_store().await?;
            match store.check().await {
                Ok(()) => (SessionLayer::new(store, config), "redis"),
                Err(e) => {
                    eprintln!(
                        "warning: Redis not reachable at {shown_url} ({}); falling back to the \
                         in-memory store (sessions are lost on restart)",
                        chain(&e)
                    );
                    (SessionLayer::new(MemoryStore::new(), config), "memory")
                }
            }
        }
    };

    let app = Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/cart/add", post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/devices", get(devices))
        .route("/devices/end", post(end_device))
        .route("/logout-everywhere", post(logout_everywhere))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .fallback(not_found)
        .layer(layer);

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("sessionkit demo listening on http://{addr} (store: {store_name})");
    serve(listener, app, shutdown_signal()).await;
    println!("sessionkit demo stopped");
    Ok(())
}

/// Serves `app` like `axum::serve`, plus what a site on the open internet
/// needs and `axum::serve` lacks: a bound on how long a client may take to
/// send a request's headers (5 s), so that slow clients cannot hold
/// connections and their memory forever. On `shutdown`, connections in
/// flight get up to 5 s to finish.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use std::time::Duration;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
/// The Redis store the environment names; a wrong setting is an error,
/// whatever the `--store` mode (a typo must not silently fall back to
/// memory).
async fn redis_store() -> Result<RedisStore, String> {
    RedisStore::builder()
        .from_env()
        .await
        .map_err(|e| format!("the Redis settings are wrong: {}", chain(&e)))
}

/// Which Redis the environment names, for messages (passwords redacted).
fn redis_shown() -> String {
    let list = |var: &str| {
        std::env::var(var).ok().map(|v| {
            v.split(',')
                .map(|u| redact(u.trim()))
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    if let Some(nodes) = list("REDIS_CLUSTER_URLS") {
        return format!("the cluster {nodes}");
    }
    if let Some(sentinels) = list("REDIS_SENTINEL_URLS") {
        return format!("the primary the sentinels {sentinels} name");
    }
    redact(&std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

// ---------------------------------------------------------------- handlers

type Cart = BTreeMap<String, u32>;

/// Where a form's action sends the browser back: the home page, marked so
/// that the visit counter does not count the redirect.
const BACK: &str = "/?back";

/// The home page's query: `back` after a form's redirect.
#[derive(Deserialize)]
struct IndexQuery {
    back: Option<String>,
}

async fn index(
    session: Session,
    axum::extract::Query(q): axum::extract::Query<IndexQuery>,
) -> Result<Html<String>, AppError> {
    // `get_or_remove`: a value stored in another shape (by an older
    // release of this site) reads as absent instead of failing every page.
    let mut visits: u64 = session.get_or_remove::<u64>("visits").await?.unwrap_or(0);
    if q.back.is_none() {
        // Counted in the store: two tabs loading at once both count.
        visits = u64::try_from(session.increment("visits", 1).await?).unwrap_or(visits);
    }
    let user: Option<String> = session.get_or_remove("user").await?;
    let cart: Cart = session.get_or_remove("cart").await?.unwrap_or_default();

    let mut body = flashes(&session).await?;
    match &user {
        Some(name) => {
            let _ = write!(
                body,
                r#"<section><p>Signed in as <strong>{}</strong></p>
<p><a href="/devices">Your devices</a></p>
<form method="post" action="/logout"><button>Sign out</button></form></section>"#,
                escape(name)
            );
        }
        None => body.push_str(&format!(
            r#"<section><p>You are not signed in.</p>
<form method="post" action="/login">
<input name="name" placeholder="Your name" maxlength="{MAX_LEN}" required autofocus>
<button>Sign in</button></form></section>"#
        )),
    }
    let _ = write!(
        body,
        r#"<section><p>You have visited this page <strong>{visits}</strong> time{}.</p></section>"#,
        if visits == 1 { "" } else { "s" }
    );
    body.push_str("<section><h2>Cart</h2>");
    if cart.is_empty() {
        body.push_str("<p class=muted>Your cart is empty.</p>");
    } else {
        body.push_str("<ul>");
        let mut items: Vec<(&String, &u32)> = cart.iter().collect();
        items.sort_by(|a, b| natural(a.0, b.0));
        for (item, qty) in items {
            let item = escape(item);
            let _ = write!(
                body,
                r#"<li><span>{item} <span class=muted>× {qty}</span></span>
<form method="post" action="/cart/remove"><input type="hidden" name="item" value="{item}"><button class=small>Remove</button></form></li>"#
            );
        }
        body.push_str("</ul>");
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/cart/add">
<input name="item" placeholder="Item" maxlength="{MAX_LEN}" required>
<button>Add item</button></form></section>"#
    );
    Ok(Html(page("sessionkit demo", &body)))
}

/// Orders item names as people do: `js2` before `js10`.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    /// The name in runs: text, and numbers by value.
    fn runs(s: &str) -> Vec<(bool, u128, String)> {
        let mut out: Vec<(bool, u128, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, n, text)) if *d == digit => {
                    text.push(c);
                    if digit {
                        *n = n
                            .saturating_mul(10)
                            .saturating_add(u128::from(c as u8 - b'0'));
                    }
                }
                _ => out.push((
                    digit,
                    if digit { u128::from(c as u8 - b'0') } else { 0 },
                    c.to_string(),
                )),
            }
        }
        out
    }
    let key = |r: &(bool, u128, String)| (r.0, r.1, r.2.to_lowercase());
    runs(a)
        .iter()
        .map(key)
        .cmp(runs(b).iter().map(key))
        .then_with(|| a.cmp(b))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
}

async fn login(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Redirect, AppError> {
    let name = validate(&form.name, "name")?;
    // A new id on sign-in defeats session fixation; the cart and counter move along.
    session.cycle_id().await?;
    session.insert("user", &name).await?;
    // Listed among the user's devices, ended with them.
    session.set_user(&name).await?;
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    session.set_info("device", &device_of(agent)).await?;
    session.set_permanent(true).await?;
    session.flash(&format!("Welcome, {name}.")).await?;
    tracing::info!("signed in");
    Ok(Redirect::to(BACK))
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    session.flush().await;
    // The flash goes into the new, empty session the next page reads.
    session.flash("You are signed out.").await?;
    Ok(Redirect::to(BACK))
}

/// The flash messages for this page, as HTML.
async fn flashes(session: &Session) -> Result<String, AppError> {
    let shown: Vec<String> = session.take_flashes().await?;
    Ok(shown
        .iter()
        .map(|m| format!("<p class=flash>{}</p>", escape(m)))
        .collect())
}

/// "Firefox on Linux", from a user agent (the common ones; "A browser"
/// otherwise).
fn device_of(agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map_or("A browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// How long ago `t` was, roughly.
fn ago(t: std::time::SystemTime) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

async fn devices(session: Session) -> Result<Response, AppError> {
    if session.user().await?.is_none() {
        return Ok(Redirect::to(BACK).into_response());
    }
    let mut body = flashes(&session).await?;
    body.push_str("<section><h2>Your devices</h2><ul>");
    for d in session.devices().await? {
        let name = d.info.get("device").map_or("A browser", String::as_str);
        let seen = d.last_seen.map_or("-".to_owned(), ago);
        let _ = write!(
            body,
            r#"<li><span>{}{} <span class=muted>signed in {}, last seen {}</span></span>"#,
            escape(name),
            if d.current {
                " <strong>(this device)</strong>"
            } else {
                ""
            },
            ago(d.created),
            seen
        );
        if !d.current {
            let _ = write!(
                body,
                r#"<form method="post" action="/devices/end"><input type="hidden" name="handle" value="{}"><button class=small>End</button></form>"#,
                escape(d.handle.as_str())
            );
        }
        body.push_str("</li>");
    }
    body.push_str(
        r#"</ul><form method="post" action="/logout-everywhere"><button>Log out everywhere</button></form>
<p><a href="/">Back</a></p></section>"#,
    );
    Ok(Html(page("Your devices", &body)).into_response())
}

#[derive(Deserialize)]
struct HandleForm {
    #[serde(default)]
    handle: String,
}

async fn end_device(session: Session, Form(form): Form<HandleForm>) -> Result<Redirect, AppError> {
    let ended = match SessionHandle::parse(&form.handle) {
        Some(h) => session.revoke_device(&h).await?,
        None => false,
    };
    let note = if ended {
        "That device is signed out."
    } else {
        "That device was signed out already."
    };
    session.flash(note).await?;
    Ok(Redirect::to("/devices"))
}

async fn logout_everywhere(session: Session) -> Result<Redirect, AppError> {
    let others = session.logout_everywhere().await?;
    session
        .flash(&format!("Signed out here and on {others} other device(s)."))
        .await?;
    Ok(Redirect::to(BACK))
}

#[derive(Deserialize)]
struct ItemForm {
    #[serde(default)]
    item: String,
}

async fn cart_add(session: Session, Form(form): Form<ItemForm>) -> Result<Redirect, AppError> {
    let item = validate(&form.item, "item")?;
    let cart: Cart = session.get_or_remove("cart").await?.unwrap_or_default();
    if !cart.contains_key(&item) && cart.len() >= MAX_ITEMS {
        return Err(AppError::BadInput(format!(
            "the cart holds at most {MAX_ITEMS} different items"
        )));
    }
    session.flash(&format!("Added {item}.")).await?;
    // A read-modify-write that loses nothing: two tabs adding at once both
    // land (the change runs again on the newer cart if one did first).
    session
        .update("cart", move |cart: Option<Cart>| {
            let mut cart = cart.unwrap_or_default();
            if cart.contains_key(&item) || cart.len() < MAX_ITEMS {
                let qty = cart.entry(item.clone()).or_insert(0);
                *qty = (*qty + 1).min(MAX_QTY);
            }
            Some(cart)
        })
        .await?;
    Ok(Redirect::to(BACK))
}

async fn cart_remove(session: Session, Form(form): Form<ItemForm>) -> Result<Redirect, AppError> {
    let item = validate(&form.item, "item")?;
    let cart: Cart = session.get_or_remove("cart").await?.unwrap_or_default();
    if cart.contains_key(&item) {
        session.flash(&format!("Removed {item}.")).await?;
        session
            .update("cart", move |cart: Option<Cart>| {
                let mut cart = cart.unwrap_or_default();
                cart.remove(&item);
                (!cart.is_empty()).then_some(cart)
            })
            .await?;
    }
    Ok(Redirect::to(BACK))
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing here.",
    )
}

// ------------------------------------------------------------------ errors

/// A handler failure, rendered as a small HTML page.
enum AppError {
    Session(sessionkit::Error),
    BadInput(String),
}

impl From<sessionkit::Error> for AppError {
    fn from(e: sessionkit::Error) -> Self {
        AppError::Session(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadInput(msg) => error_page(StatusCode::BAD_REQUEST, "Invalid input", &msg),
            AppError::Session(e) if e.is_unavailable() => {
                tracing::error!(error = %chain(&e), "session store unavailable");
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The session store cannot be reached right now. Please try again in a moment.",
                )
            }
            AppError::Session(e) => {
                tracing::error!(error = %chain(&e), "session error");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Your session could not be used.",
                )
            }
        }
    }
}

fn error_page(status: StatusCode, title: &str, msg: &str) -> Response {
    let body = format!(
        r#"<section><h2>{}</h2><p>{}</p><p><a href="/">Back to the home page</a></p></section>"#,
        escape(title),
        escape(msg)
    );
    let mut res = Html(page(title, &body)).into_response();
    *res.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    res
}

/// Trims `raw` and checks it is a non-empty, printable string of at most [`MAX_LEN`] characters.
fn validate(raw: &str, what: &str) -> Result<String, AppError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(AppError::BadInput(format!("The {what} must not be empty.")));
    }
    if s.chars().count() > MAX_LEN {
        return Err(AppError::BadInput(format!(
            "The {what} must be at most {MAX_LEN} characters."
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(AppError::BadInput(format!(
            "The {what} must not contain control characters."
        )));
    }
    Ok(s.to_owned())
}

// ----------------------------------------------------------------- helpers

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page skeleton; `body` must already be escaped HTML.
fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin: 0 0 .5rem; }}
section {{ border: 1px solid #ddd; border-radius: 8px; padding: .75rem 1rem; margin: 1rem 0; }}
.flash {{ background: #eef6ff; border-left: 4px solid #2563eb; padding: .4rem .75rem; margin: .5rem 0; }}
form {{ display: inline-flex; gap: .5rem; margin: 0; }}
input {{ padding: .3rem .5rem; border: 1px solid #bbb; border-radius: 4px; }}
button {{ padding: .3rem .8rem; border: 0; border-radius: 4px; background: #2563eb; color: #fff; cursor: pointer; }}
button.small {{ padding: .15rem .6rem; background: #6b7280; font-size: .85rem; }}
ul {{ padding: 0; list-style: none; }} li {{ display: flex; justify-content: space-between; align-items: center; padding: .25rem 0; border-bottom: 1px solid #eee; }}
.muted {{ color: #6b7280; }} footer {{ color: #6b7280; font-size: .85rem; text-align: center; }}
</style></head>
<body><h1><a href="/" style="color:inherit;text-decoration:none">sessionkit demo</a></h1>
{body}
<footer>Server-side sessions with sessionkit &middot; axum</footer>
</body></html>"#,
        escape(title)
    )
}

/// A library error with its causes, for messages and logs.
fn chain(e: &sessionkit::Error) -> String {
    e.chain().to_string()
}

/// `url` with any password replaced by `***`, for printing.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn validates_input() {
        assert_eq!(validate("  milk ", "item").ok(), Some("milk".to_owned()));
        assert!(validate("   ", "item").is_err());
        assert!(validate(&"x".repeat(MAX_LEN + 1), "item").is_err());
        assert!(validate(&"é".repeat(MAX_LEN), "item").is_ok());
        assert!(validate("a\nb", "item").is_err());
    }

    #[test]
    fn cart_items_sort_as_people_read_them() {
        let mut items = vec!["js10", "js1", "Apple", "js2", "banana", "js0", "10", "9"];
        items.sort_by(|a, b| natural(a, b));
        assert_eq!(
            items,
            ["Apple", "banana", "js0", "js1", "js2", "js10", "9", "10"]
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("redis://u:p@h/"), "redis://u:***@h/");
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
