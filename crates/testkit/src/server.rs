//! [`RedisServer`]: a private `redis-server` on a free loopback port, killed on drop.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `redis-server` binary (default: `redis-server` on PATH).
pub const SERVER_BIN_ENV: &str = "SESSIONKIT_REDIS_SERVER";

/// A redis-server started for one test. Never a server someone else started:
/// tests may flush and kill it freely.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// Files the server reads (TLS certificates), kept as long as it runs.
    keep: Option<tempfile::TempDir>,
    /// Commands other processes send it on their own (a replica's
    /// `REPLCONF`, a sentinel's `PING` / `INFO` / `PUBLISH`), left out of
    /// [`command_counts`](Self::command_counts).
    background: &'static [&'static str],
}

impl RedisServer {
    /// Starts a server with no persistence (`--save ""`, `--appendonly no`)
    /// that checks every `RESTORE` payload in full
    /// (`--sanitize-dump-payload yes`), so that a malformed payload fails a
    /// test instead of being loaded.
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be started; the message says how to install it.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `--option value` arguments (e.g. `["--appendonly", "yes"]`).
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be started.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            keep: None,
            background: &[],
        };
        for _attempt in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port after 5 attempts");
    }

    fn spawn(&mut self) -> bool {
        let bin = server_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--sanitize-dump-payload", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run `{bin}` ({e}). Install it (Debian: `apt-get install redis-server`) \
                 or point {SERVER_BIN_ENV} at a redis-server binary."
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false; // exited: port taken, probably
                }
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Leaves what replicas, sentinels and cluster clients send a node by
    /// themselves (`REPLCONF`, `PUBLISH`, `SUBSCRIBE`, `PSYNC`, `ROLE`,
    /// `CLIENT`, `CLUSTER`, `HELLO`; `PING` and `INFO` are never counted)
    /// out of the command counts.
    #[must_use]
    pub fn watched(mut self) -> Self {
        self.background = &[
            "replconf",
            "publish",
            "subscribe",
            "psync",
            "sync",
            "role",
            "client",
            "cluster",
            "hello",
        ];
        self
    }

    /// Keeps `files` (which the server reads, on a restart too) as long as
    /// the server.
    #[must_use]
    pub fn keeping(mut self, files: tempfile::TempDir) -> Self {
        self.keep = Some(files);
        self
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (where an AOF or RDB file goes).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A blocking connection for inspecting the server from a test.
    ///
    /// # Panics
    ///
    /// If the server does not answer.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("test redis-server on port {} unreachable: {e}", self.port))
    }

    /// Runs one command on a fresh blocking connection.
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.conn())
            .unwrap_or_else(|e| panic!("redis command {:?} failed: {e}", args[0]))
    }

    /// Calls per command name since the last [`reset_stats`](Self::reset_stats)
    /// (lower-case names, e.g. `hgetall`, `evalsha`), from `INFO commandstats`,
    /// excluding the `INFO` and `CONFIG` calls this harness makes itself and
    /// `PING` (the harness's readiness check, and the client cache's
    /// heartbeat on an idle connection: neither is a request's cost).
    pub fn command_counts(&self) -> HashMap<String, u64> {
        let info: String = self.cmd(&["INFO", "commandstats"]);
        let mut counts = HashMap::new();
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let background = self
                .background
                .iter()
                .any(|b| name == *b || name.starts_with(&format!("{b}|")));
            if name != "info"
                && name != "ping"
                && !name.starts_with("config")
                && !background
                && calls > 0
            {
                counts.insert(name.to_owned(), calls);
            }
        }
        counts
    }

    /// Total of [`command_counts`](Self::command_counts).
    pub fn total_commands(&self) -> u64 {
        self.command_counts().values().sum()
    }

    /// Zeroes the command statistics.
    pub fn reset_stats(&self) {
        let _: String = self.cmd(&["CONFIG", "RESETSTAT"]);
    }

    /// Whether the server process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (a crash: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill)).
    ///
    /// # Panics
    ///
    /// If it does not come back within 5 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A number in the server's `INFO replication` (`name` with its colon,
/// e.g. `master_repl_offset:`).
fn replication(server: &RedisServer, name: &str) -> Option<u64> {
    let info: String = server.cmd(&["INFO", "replication"]);
    info.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether every running replica among `nodes` has everything its primary
/// (one of `nodes`, running) has: replication offsets.
pub(crate) fn replicas_caught_up(nodes: &[RedisServer]) -> bool {
    nodes
        .iter()
        .filter(|n| n.is_running())
        .filter_map(|r| replication(r, "master_port:").map(|port| (r, port)))
        .all(|(replica, port)| {
            let primary = nodes
                .iter()
                .find(|n| u64::from(n.port()) == port && n.is_running());
            match (
                replication(replica, "slave_repl_offset:"),
                primary.and_then(|p| replication(p, "master_repl_offset:")),
            ) {
                (Some(have), Some(want)) => have >= want,
                _ => false,
            }
        })
}

/// Waits until `done` holds, checking every 100 ms.
///
/// # Panics
///
/// If it does not within `within` (the message names `what`).
pub(crate) fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The redis-server binary to run: [`SERVER_BIN_ENV`] or `redis-server`.
pub(crate) fn server_bin() -> String {
    std::env::var(SERVER_BIN_ENV).unwrap_or_else(|_| "redis-server".to_owned())
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
