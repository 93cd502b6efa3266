//! `sessionctl`: what is in Redis, for operators of a sessionkit
//! application — count, list, show, revoke and purge sessions, and their
//! statistics. Every walk is `SCAN` on every primary (never `KEYS`), with a
//! progress bar on a terminal; `--json` for scripts. It shows sessions by
//! their public handle and storage id, never a cookie id (Redis holds
//! none).
//!
//! Redis: `--url`, else the environment as the library reads it
//! (`RedisStoreBuilder::from_env`: `REDIS_URL`, `REDIS_CLUSTER_URLS`,
//! `REDIS_SENTINEL_URLS` with `REDIS_SENTINEL_SERVICE`, `REDIS_CA_FILE`…).

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sessionkit::admin::UserSessions;
use sessionkit::store::redis::{StoredKey, StoredSession};
use sessionkit::{RedisStore, SessionHandle, SessionStore};

/// Operate the sessions a sessionkit application keeps in Redis.
#[derive(Parser, Debug)]
#[command(name = "sessionctl", version)]
struct Cli {
    /// Redis URL (`redis://` or `rediss://`). Without it: the environment
    /// (REDIS_URL, or REDIS_CLUSTER_URLS, or REDIS_SENTINEL_URLS with
    /// REDIS_SENTINEL_SERVICE; REDIS_CA_FILE, REDIS_CLIENT_CERT and
    /// REDIS_CLIENT_KEY for TLS).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The application's key prefix.
    #[arg(long, global = true, default_value = "session:")]
    prefix: String,
    /// Print JSON (one document) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// How many sessions, users and forwarding markers there are.
    Count,
    /// The sessions of one user (`--user`), or of everyone.
    List {
        /// Only this user's (through their index: no scan).
        #[arg(long)]
        user: Option<String>,
    },
    /// One session, by its handle.
    Show {
        /// The session's handle (`h.…`, as `list` shows it).
        handle: String,
    },
    /// Ends one session, by its handle.
    Revoke {
        /// The session's handle.
        handle: String,
    },
    /// Ends every session of a user ("log out everywhere").
    RevokeUser {
        /// The user id the application attached.
        user: String,
    },
    /// Removes index entries of sessions that ended, and gives an expiry
    /// to any key that lacks one.
    Purge,
    /// Sessions, their sizes and remaining lifetimes, sessions per user.
    Stats,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessionctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sessionctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// A library error as a message.
fn chain(e: &sessionkit::Error) -> String {
    e.chain().to_string()
}

async fn run(cli: Cli) -> Result<(), String> {
    let builder = RedisStore::builder()
        .with_prefix(cli.prefix.clone())
        .without_client_cache();
    let store = match &cli.url {
        Some(url) => builder.connect(url.as_str()).await,
        None => builder.from_env().await,
    }
    .map_err(|e| chain(&e))?;
    store.check().await.map_err(|e| chain(&e))?;
    let out = Out { json: cli.json };
    let walker = Walker {
        store: store.clone(),
        progress: !cli.quiet,
    };
    match cli.command {
        Command::Count => count(&walker, &out).await,
        Command::List { user: Some(user) } => list_user(&store, &user, &out).await,
        Command::List { user: None } => list_all(&walker, &out).await,
        Command::Show { handle } => show(&walker, &handle, &out).await,
        Command::Revoke { handle } => revoke(&walker, &handle, &out).await,
        Command::RevokeUser { user } => revoke_user(&store, &user, &out).await,
        Command::Purge => purge(&walker, &out).await,
        Command::Stats => stats(&walker, &out).await,
    }
}

/// Where results go: text lines, or one JSON document.
struct Out {
    json: bool,
}

impl Out {
    fn print(&self, value: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}

/// Walks every key under the prefix.
struct Walker {
    store: RedisStore,
    progress: bool,
}

/// Keys inspected at once (the connection pipelines them).
const IN_FLIGHT: usize = 256;

impl Walker {
    /// Calls `visit` with every key and what it is, until it returns
    /// `false`.
    async fn walk(&self, mut visit: impl FnMut(&str, StoredKey) -> bool) -> Result<(), String> {
        let err = |e: sessionkit::Error| chain(&e);
        let bar = if self.progress {
            let total = self.store.key_count_hint().await.map_err(err)?;
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} keys scanned, {per_sec}, {elapsed} (ETA {eta})",
                )
                .map_err(|e| e.to_string())?,
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut seen = HashSet::new();
        let mut scan = self.store.scan(1000).await.map_err(err)?;
        while let Some(keys) = scan.next_batch().await.map_err(err)? {
            bar.inc(keys.len() as u64);
            let fresh: Vec<String> = keys
                .into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect();
            for chunk in fresh.chunks(IN_FLIGHT) {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, key) in chunk.iter().enumerate() {
                    let (store, key) = (self.store.clone(), key.clone());
                    tasks.spawn(async move { (i, store.inspect(&key).await) });
                }
                let mut found = vec![None; chunk.len()];
                while let Some(done) = tasks.join_next().await {
                    let (i, kind) = done.map_err(|e| e.to_string())?;
                    found[i] = Some(kind.map_err(err)?);
                }
                for (key, kind) in chunk.iter().zip(found) {
                    if let Some(kind) = kind {
                        if !visit(key, kind) {
                            bar.finish_and_clear();
                            return Ok(());
                        }
                    }
                }
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// The session `handle` names.
    async fn find(&self, handle: &str) -> Result<StoredSession, String> {
        let wanted =
            SessionHandle::parse(handle).ok_or_else(|| format!("{handle:?} is not a handle"))?;
        let mut found = None;
        self.walk(|_, kind| match kind {
            StoredKey::Session(s) if s.handle == wanted => {
                found = Some(s);
                false
            }
            _ => true,
        })
        .await?;
        found.ok_or_else(|| format!("no session has the handle {handle}"))
    }
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), for 1970 onwards.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn session_json(s: &StoredSession) -> Value {
    json!({
        "handle": s.handle.as_str(),
        "storage_id": s.id.as_str(),
        "user": s.user,
        "created": s.created_ms / 1000,
        "last_seen": (s.seen_ms > 0).then_some(s.seen_ms / 1000),
        "expires": s.expires_ms / 1000,
        "size": s.size,
        "ttl_ms": s.ttl_ms,
    })
}

fn session_line(s: &StoredSession) -> String {
    format!(
        "{}  user {}  created {}  last seen {}  expires {}  {} bytes",
        s.handle,
        s.user.as_deref().unwrap_or("-"),
        iso(s.created_ms),
        if s.seen_ms > 0 {
            iso(s.seen_ms)
        } else {
            "-".to_owned()
        },
        iso(s.expires_ms),
        s.size
    )
}

async fn count(walker: &Walker, out: &Out) -> Result<(), String> {
    let (mut sessions, mut attached, mut markers, mut users) = (0u64, 0u64, 0u64, 0u64);
    walker
        .walk(|_, kind| {
            match kind {
                StoredKey::Session(s) => {
                    sessions += 1;
                    attached += u64::from(s.user.is_some());
                }
                StoredKey::Marker { .. } => markers += 1,
                StoredKey::Index { .. } => users += 1,
                _ => {}
            }
            true
        })
        .await?;
    out.print(
        &json!({"sessions": sessions, "attached": attached, "users": users, "markers": markers}),
        || {
            format!(
                "{sessions} sessions ({attached} attached to a user), {users} users, {markers} forwarding markers"
            )
        },
    );
    Ok(())
}

async fn list_user(store: &RedisStore, user: &str, out: &Out) -> Result<(), String> {
    let list = UserSessions::new(store.clone())
        .list(user)
        .await
        .map_err(|e| chain(&e))?;
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "handle": s.handle.as_str(),
                "user": s.user,
                "created": unix_ms(s.created) / 1000,
                "last_seen": s.last_seen.map(|t| unix_ms(t) / 1000),
                "expires": unix_ms(s.expires) / 1000,
            })
        })
        .collect();
    out.print(&Value::Array(rows), || {
        let mut text = format!("{} sessions of {user}", list.len());
        for s in &list {
            text.push_str(&format!(
                "\n{}  created {}  last seen {}  expires {}",
                s.handle,
                iso(unix_ms(s.created)),
                s.last_seen.map_or("-".to_owned(), |t| iso(unix_ms(t))),
                iso(unix_ms(s.expires))
            ));
        }
        text
    });
    Ok(())
}

async fn list_all(walker: &Walker, out: &Out) -> Result<(), String> {
    let mut all = Vec::new();
    walker
        .walk(|_, kind| {
            if let StoredKey::Session(s) = kind {
                all.push(s);
            }
            true
        })
        .await?;
    all.sort_by_key(|s| (s.created_ms, s.handle.clone()));
    out.print(
        &Value::Array(all.iter().map(session_json).collect()),
        || {
            let mut text = format!("{} sessions", all.len());
            for s in &all {
                text.push('\n');
                text.push_str(&session_line(s));
            }
            text
        },
    );
    Ok(())
}

async fn show(walker: &Walker, handle: &str, out: &Out) -> Result<(), String> {
    let s = walker.find(handle).await?;
    out.print(&session_json(&s), || {
        format!(
            "{}\n  storage id {}\n  ttl {}",
            session_line(&s),
            s.id,
            s.ttl_ms.map_or("none".to_owned(), |ms| format!(
                "{:?}",
                Duration::from_millis(ms)
            ))
        )
    });
    Ok(())
}

async fn revoke(walker: &Walker, handle: &str, out: &Out) -> Result<(), String> {
    let s = walker.find(handle).await?;
    let ended = walker.store.revoke(&s.id).await.map_err(|e| chain(&e))?;
    out.print(&json!({"revoked": ended, "handle": handle}), || {
        if ended {
            format!("ended {handle}")
        } else {
            format!("{handle} had ended already")
        }
    });
    Ok(())
}

async fn revoke_user(store: &RedisStore, user: &str, out: &Out) -> Result<(), String> {
    let ended = UserSessions::new(store.clone())
        .revoke_all(user)
        .await
        .map_err(|e| chain(&e))?;
    out.print(&json!({"user": user, "revoked": ended}), || {
        format!("ended {ended} sessions of {user}")
    });
    Ok(())
}

async fn purge(walker: &Walker, out: &Out) -> Result<(), String> {
    let mut to_fix = Vec::new();
    walker
        .walk(|key, kind| {
            let fix = match kind {
                StoredKey::Index { .. } => true,
                StoredKey::Marker { ttl_ms } => ttl_ms.is_none(),
                StoredKey::Session(s) => s.ttl_ms.is_none(),
                _ => false,
            };
            if fix {
                to_fix.push(key.to_owned());
            }
            true
        })
        .await?;
    let mut fixed = 0;
    for key in &to_fix {
        fixed += walker.store.purge(key).await.map_err(|e| chain(&e))?;
    }
    out.print(
        &json!({"keys_checked": to_fix.len(), "fixed": fixed}),
        || {
            format!(
                "checked {} keys, removed or fixed {fixed} entries or keys",
                to_fix.len()
            )
        },
    );
    Ok(())
}

/// The `q`-quantile of sorted `values` (nearest rank).
fn quantile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn distribution(mut values: Vec<u64>) -> Value {
    values.sort_unstable();
    json!({
        "min": values.first().copied().unwrap_or(0),
        "p50": quantile(&values, 0.5),
        "p90": quantile(&values, 0.9),
        "p99": quantile(&values, 0.99),
        "max": values.last().copied().unwrap_or(0),
    })
}

async fn stats(walker: &Walker, out: &Out) -> Result<(), String> {
    let (mut sizes, mut ttls) = (Vec::new(), Vec::new());
    let mut per_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut anonymous = 0u64;
    let mut ttl_buckets: BTreeMap<&str, u64> = BTreeMap::new();
    walker
        .walk(|_, kind| {
            if let StoredKey::Session(s) = kind {
                sizes.push(s.size);
                let ttl = s.ttl_ms.unwrap_or(u64::MAX);
                ttls.push(ttl / 1000);
                let bucket = match ttl / 1000 {
                    t if t < 3600 => "1 under an hour",
                    t if t < 86_400 => "2 under a day",
                    t if t < 7 * 86_400 => "3 under a week",
                    t if t < 32 * 86_400 => "4 under 32 days",
                    _ => "5 longer or none",
                };
                *ttl_buckets.entry(bucket).or_default() += 1;
                match s.user {
                    Some(u) => *per_user.entry(u).or_default() += 1,
                    None => anonymous += 1,
                }
            }
            true
        })
        .await?;
    let sessions = sizes.len();
    let mut counts: Vec<u64> = per_user.values().copied().collect();
    let mut top: Vec<(&String, &u64)> = per_user.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    top.truncate(5);
    let buckets: BTreeMap<&str, u64> = ttl_buckets.iter().map(|(k, v)| (&k[2..], *v)).collect();
    let value = json!({
        "sessions": sessions,
        "anonymous": anonymous,
        "users": per_user.len(),
        "size_bytes": distribution(sizes),
        "ttl_seconds": distribution(ttls),
        "ttl_buckets": buckets,
        "sessions_per_user": distribution(std::mem::take(&mut counts)),
        "top_users": top.iter().map(|(u, n)| json!({"user": u, "sessions": n})).collect::<Vec<_>>(),
    });
    out.print(&value, || {
        let d = |k: &str| {
            let v = &value[k];
            format!(
                "min {} p50 {} p90 {} p99 {} max {}",
                v["min"], v["p50"], v["p90"], v["p99"], v["max"]
            )
        };
        let mut text = format!(
            "{sessions} sessions ({anonymous} without a user), {} users\nsize (bytes): {}\nremaining ttl (s): {}\nsessions per user: {}",
            per_user.len(),
            d("size_bytes"),
            d("ttl_seconds"),
            d("sessions_per_user")
        );
        for (k, v) in &ttl_buckets {
            text.push_str(&format!("\n  ttl {}: {v}", &k[2..]));
        }
        for (u, n) in &top {
            text.push_str(&format!("\n  user {u}: {n} sessions"));
        }
        text
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso(1_796_356_245_000), "2026-12-04T03:50:45Z");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
