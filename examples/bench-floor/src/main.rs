//! The floor of the shared benchmark (`shared/bench/CONTRACT.md`, the four
//! routes `run.sh` drives): actix-web with 2 workers and one redis-rs
//! `ConnectionManager`, each route doing the least any Redis-backed session
//! library could do, and no session logic at all — no signing, no hashing
//! of ids, no record, no timeouts, no cache.
//!
//! - `/new`: one `SET <id> {"user":"bench"} EX 86400`, a cookie with the id;
//! - `/read`: one `GET <id>:count` (a session library with a client cache
//!   does no Redis call here: its floor is `baseline-cookie`);
//! - `/write`: one `INCR <id>:count` (not a session update: no read, no
//!   existence check, no expiry).
//!
//! What it is for: whatever a library does, it cannot beat this server on
//! `new` and `write` by much, since the Redis round trip it measures is one
//! every library must make. Comparing a peer with this floor says how much
//! room there is above that peer. Not a session server: do not use it as one.
//!
//! `FLOOR_CONNECTION=per-worker` gives each worker its own connection, opened
//! by the worker's first request so that its I/O runs on the worker's own
//! thread; by default one connection, opened in `main` (its I/O on the main
//! thread), is shared by both workers, as the session test-beds and the
//! peers do. The difference is the cost of that structure, not of any
//! session logic.

use std::process::ExitCode;
use std::rc::Rc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// A worker's connection: set in `main` when shared, else opened by the
/// worker's first request.
#[derive(Clone)]
struct Conn {
    cell: Rc<OnceCell<ConnectionManager>>,
    client: redis::Client,
}

impl Conn {
    async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let client = &self.client;
        self.cell
            .get_or_try_init(|| ConnectionManager::new(client.clone()))
            .await
            .cloned()
    }
}

fn main() -> ExitCode {
    match actix_web::rt::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .filter(|p| !p.is_empty())
        .map_or(Ok(3000), |p| p.parse())?;
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let client = redis::Client::open(url)?;
    let shared = match std::env::var("FLOOR_CONNECTION").as_deref() {
        Ok("per-worker") => None,
        Ok("" | "shared") | Err(_) => Some(ConnectionManager::new(client.clone()).await?),
        Ok(other) => return Err(format!("FLOOR_CONNECTION={other}: shared or per-worker").into()),
    };
    HttpServer::new(move || {
        let cell = Rc::new(OnceCell::new_with(shared.clone()));
        App::new()
            .app_data(Conn {
                cell,
                client: client.clone(),
            })
            .route("/baseline", web::get().to(|| async { "ok" }))
            .route("/new", web::get().to(new))
            .route("/read", web::get().to(read))
            .route("/write", web::get().to(write))
    })
    .workers(2)
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}

fn unavailable(e: redis::RedisError) -> HttpResponse {
    HttpResponse::ServiceUnavailable().body(e.to_string())
}

/// Runs one command on the worker's connection; a Redis failure is a 503.
async fn query<T: redis::FromRedisValue>(
    req: &HttpRequest,
    cmd: &redis::Cmd,
) -> Result<T, HttpResponse> {
    let Some(conn) = req.app_data::<Conn>() else {
        return Err(HttpResponse::InternalServerError().body("no connection registered"));
    };
    let mut conn = conn.get().await.map_err(unavailable)?;
    cmd.query_async(&mut conn).await.map_err(unavailable)
}

/// The `floor` cookie's value (actix-web's cookie parsing is a feature this
/// crate leaves off, as the session test-beds do).
fn id(req: &HttpRequest) -> Option<&str> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    header
        .split(';')
        .find_map(|pair| pair.trim().strip_prefix("floor="))
}

async fn new(req: HttpRequest) -> HttpResponse {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let set = redis::cmd("SET")
        .arg(&id)
        .arg(r#"{"user":"bench"}"#)
        .arg("EX")
        .arg(86_400)
        .to_owned();
    match query::<()>(&req, &set).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((
                "set-cookie",
                format!("floor={id}; HttpOnly; SameSite=Lax; Secure; Path=/"),
            ))
            .body("ok"),
        Err(response) => response,
    }
}

async fn read(req: HttpRequest) -> HttpResponse {
    let Some(id) = id(&req) else {
        return HttpResponse::Ok().body("0");
    };
    let get = redis::cmd("GET").arg(format!("{id}:count")).to_owned();
    match query::<Option<i64>>(&req, &get).await {
        Ok(n) => HttpResponse::Ok().body(n.unwrap_or(0).to_string()),
        Err(response) => response,
    }
}

async fn write(req: HttpRequest) -> HttpResponse {
    let Some(id) = id(&req) else {
        return HttpResponse::BadRequest().body("no cookie");
    };
    let incr = redis::cmd("INCR").arg(format!("{id}:count")).to_owned();
    match query::<i64>(&req, &incr).await {
        Ok(n) => HttpResponse::Ok().body(n.to_string()),
        Err(response) => response,
    }
}
