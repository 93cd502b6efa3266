//! [`SentinelSetup`]: a primary with two replicas, watched by three
//! sentinels (`redis-server --sentinel`), on free loopback ports, torn down
//! on drop. Sentinels declare the primary down after 1 s and fail over.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{free_port, server_bin, RedisServer};

/// The name the sentinels monitor the primary under.
pub const SERVICE: &str = "mymaster";

/// One `redis-server --sentinel` process.
struct SentinelProcess {
    child: Child,
    port: u16,
    /// Its TLS port, in a TLS setup.
    tls_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A primary, two replicas and three sentinels.
pub struct SentinelSetup {
    /// The data servers: the first is the primary at the start.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<SentinelProcess>,
    /// In a TLS setup ([`start_tls`](Self::start_tls)): the certificates,
    /// each server's TLS port (what the sentinels and replicas use), the
    /// files the servers read.
    tls: Option<(crate::tls::TestCerts, Vec<u16>, crate::tls::TlsFiles)>,
}

impl SentinelSetup {
    /// Starts the servers and the sentinels and waits until the replicas
    /// are in sync and every sentinel knows the two others and both
    /// replicas (so that a failover can be agreed on).
    ///
    /// # Panics
    ///
    /// If any of them does not come up within 20 s.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The same, with `extra` arguments for every data server (e.g. ACL
    /// users; the sentinels and replicas log in as `default`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_all(extra, None)
    }

    /// The same over TLS: every server and sentinel also listens with TLS
    /// (certificates made now, [`certs`](Self::certs)), replicas and
    /// sentinels talk TLS to the servers (`tls-replication yes`), and
    /// [`tls_sentinel_urls`](Self::tls_sentinel_urls) name the sentinels'
    /// TLS ports; the plain ports stay for the test's own commands.
    ///
    /// [`wait_for_replicas`](Self::wait_for_replicas) does not work on it
    /// (replicas name their primary by its TLS port).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_tls() -> Self {
        let certs = crate::tls::TestCerts::generate();
        let files = crate::tls::TlsFiles::write(&certs);
        Self::start_all(&[], Some((certs, files)))
    }

    fn start_all(
        extra: &[&str],
        tls: Option<(crate::tls::TestCerts, crate::tls::TlsFiles)>,
    ) -> Self {
        let tls_ports: Vec<u16> = match tls {
            Some(_) => (0..3).map(|_| free_port()).collect(),
            None => Vec::new(),
        };
        let server = |i: usize, replica_of: Option<u16>| {
            // A replica that (re)joins is synced at once, not after the
            // default 5 s wait for others to join with it.
            let mut args: Vec<String> = ["--repl-diskless-sync-delay", "0"]
                .map(str::to_owned)
                .to_vec();
            if let Some(port) = replica_of {
                args.extend([
                    "--replicaof".to_owned(),
                    "127.0.0.1".to_owned(),
                    port.to_string(),
                ]);
            }
            if let Some((_, files)) = &tls {
                args.extend(files.args(tls_ports[i], false));
                args.extend(["--tls-replication", "yes"].map(str::to_owned));
            }
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            RedisServer::start_with(&args)
        };
        let primary = server(0, None);
        let mut servers = vec![primary];
        // Replicas (and sentinels) reach the primary where it announces
        // itself: its TLS port in a TLS setup.
        let port = if tls.is_some() {
            tls_ports[0]
        } else {
            servers[0].port()
        };
        for i in 1..3 {
            servers.push(server(i, Some(port)));
        }
        let sentinels = (0..3)
            .map(|_| sentinel(port, tls.as_ref().map(|(_, files)| files)))
            .collect();
        let setup = SentinelSetup {
            servers,
            sentinels,
            tls: tls.map(|(certs, files)| (certs, tls_ports, files)),
        };
        setup.wait_until(
            Duration::from_secs(20),
            "replicas in sync and sentinels acquainted",
            |s| {
                s.servers[1..].iter().all(|r| {
                    let info: String = r.cmd(&["INFO", "replication"]);
                    info.contains("master_link_status:up")
                }) && s.sentinels.iter().all(|p| {
                    let known = |what: &str| -> usize {
                        sentinel_cmd::<Vec<redis::Value>>(p.port, &["SENTINEL", what, SERVICE])
                            .map_or(0, |v| v.len())
                    };
                    known("replicas") == 2 && known("sentinels") == 2
                })
            },
        );
        setup
    }

    /// The primary, and the rest of the setup (replicas and sentinels),
    /// which must live as long: for a test that only talks to the primary.
    pub fn split(mut self) -> (RedisServer, SentinelRest) {
        let primary = self.servers.remove(0).watched();
        let urls = self.sentinel_urls();
        (primary, SentinelRest { _setup: self, urls })
    }

    /// `rediss://127.0.0.1:<tls port>/` of each sentinel of a TLS setup
    /// (none otherwise).
    pub fn tls_sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .filter_map(|s| s.tls_port)
            .map(|p| format!("rediss://127.0.0.1:{p}/"))
            .collect()
    }

    /// The certificates of a TLS setup.
    pub fn certs(&self) -> Option<&crate::tls::TestCerts> {
        self.tls.as_ref().map(|(certs, _, _)| certs)
    }

    /// Whether `server` is the one the sentinels call `port` (its plain
    /// port, or its TLS port in a TLS setup).
    fn is_at(&self, server: &RedisServer, port: u16) -> bool {
        server.port() == port
            || self.tls.as_ref().is_some_and(|(_, ports, _)| {
                self.servers
                    .iter()
                    .position(|s| s.port() == server.port())
                    .is_some_and(|i| ports.get(i) == Some(&port))
            })
    }

    /// `redis://127.0.0.1:<port>/` of each sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}/", s.port))
            .collect()
    }

    /// The data server the sentinels name as primary now.
    ///
    /// # Panics
    ///
    /// If no sentinel answers.
    pub fn primary(&self) -> &RedisServer {
        let port = self.primary_port();
        self.servers
            .iter()
            .find(|s| self.is_at(s, port))
            .unwrap_or_else(|| panic!("the primary on {port} is none of ours"))
    }

    fn primary_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|p| {
                sentinel_cmd::<(String, String)>(
                    p.port,
                    &["SENTINEL", "get-master-addr-by-name", SERVICE],
                )
                .ok()
                .and_then(|(_, port)| port.parse().ok())
            })
            .unwrap_or_else(|| panic!("no sentinel names a primary"))
    }

    /// Waits until every live replica has everything the primary has
    /// (replication offsets), within 5 s.
    ///
    /// # Panics
    ///
    /// If they do not catch up in time.
    pub fn wait_for_replicas(&self) {
        self.wait_until(Duration::from_secs(5), "replicas caught up", |s| {
            crate::server::replicas_caught_up(&s.servers)
        });
    }

    /// Kills the current primary and waits until the sentinels have
    /// promoted a replica and finished failing over to it (within 20 s
    /// each); the old primary stays down. Returns how long it took until
    /// the sentinels named the promoted replica.
    ///
    /// # Panics
    ///
    /// If no replica is promoted in time.
    pub fn fail_over(&mut self) -> Duration {
        let old = self.primary_port();
        let started = Instant::now();
        if let Some(i) = self.servers.iter().position(|s| self.is_at(s, old)) {
            self.servers[i].kill();
        }
        self.wait_until(Duration::from_secs(20), "a replica promoted", |s| {
            let new = s.primary_port();
            new != old
                && s.servers.iter().any(|r| {
                    s.is_at(r, new) && {
                        let info: String = r.cmd(&["INFO", "replication"]);
                        info.contains("role:master")
                    }
                })
        });
        let took = started.elapsed();
        self.wait_until(Duration::from_secs(20), "the failover finished", |s| {
            s.failover_done(old)
        });
        took
    }

    /// Restarts every data server that is down (after [`fail_over`](Self::fail_over))
    /// as a replica of the primary (what an operator does; the sentinels
    /// would turn a returning old primary into one too, ~10 s later), and
    /// waits until each server but the primary is its replica again, in
    /// sync (within 30 s). Returns how long that took.
    ///
    /// # Panics
    ///
    /// If they are not all replicas in time.
    pub fn rejoin(&mut self) -> Duration {
        let started = Instant::now();
        let primary = self.primary_port();
        for s in self.servers.iter_mut().filter(|s| !s.is_running()) {
            s.restart();
            let _: String = s.cmd(&["REPLICAOF", "127.0.0.1", &primary.to_string()]);
        }
        let link = format!("master_port:{primary}");
        self.wait_until(
            Duration::from_secs(30),
            "every server a replica again",
            |s| {
                s.servers.iter().filter(|r| r.port() != primary).all(|r| {
                    let info: String = r.cmd(&["INFO", "replication"]);
                    info.contains(&link) && info.contains("master_link_status:up")
                })
            },
        );
        started.elapsed()
    }

    /// Whether every sentinel names the same primary, not `old`, and has
    /// finished failing over to it: a server that returns while a sentinel
    /// is still in its failover can be promoted a second time (two
    /// primaries).
    /// The data servers that answer as primaries (more than one: a
    /// sentinel promoted a replica in a failover attempt that another
    /// superseded, until the sentinels turn it back).
    pub fn primaries(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.is_running())
            .filter(|s| {
                s.cmd::<String>(&["INFO", "replication"])
                    .contains("role:master")
            })
            .count()
    }

    fn failover_done(&self, old: u16) -> bool {
        let views: Vec<Option<String>> = self
            .sentinels
            .iter()
            .map(|p| {
                let fields =
                    sentinel_cmd::<Vec<String>>(p.port, &["SENTINEL", "MASTER", SERVICE]).ok()?;
                let field = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|kv| kv[0] == name)
                        .and_then(|kv| kv.get(1).cloned())
                        .unwrap_or_default()
                };
                // `disconnected` only says that the sentinel's own link to
                // the new primary is still being made.
                let flags = field("flags");
                let settled = !flags.contains("failover_in_progress") && !flags.contains("_down");
                settled.then(|| field("port"))
            })
            .collect();
        // All settled on one primary that is not the old one (which one
        // is theirs to say: a superseded attempt may have named another).
        views.iter().all(|v| v.is_some() && *v == views[0])
            && views[0].as_deref() != Some(old.to_string().as_str())
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        crate::server::wait_until(within, &format!("sentinel setup: {what}"), || done(self));
    }
}

/// The replicas and sentinels of a [`SentinelSetup::split`] one.
pub struct SentinelRest {
    _setup: SentinelSetup,
    /// The sentinels' URLs.
    pub urls: Vec<String>,
}

fn sentinel(primary: u16, tls: Option<&crate::tls::TlsFiles>) -> SentinelProcess {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    for _attempt in 0..5 {
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let conf = dir.path().join("sentinel.conf");
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 10000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            dir = dir.path().display()
        );
        if let (Some(files), Some(tls_port)) = (tls, tls_port) {
            // The same directives as the servers' command-line arguments.
            let args = files.args(tls_port, false);
            for pair in args.chunks(2) {
                let name = pair[0].trim_start_matches("--");
                text.push_str(&format!("{name} {}\n", pair[1]));
            }
            text.push_str("tls-replication yes\n");
        }
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write sentinel.conf: {e}"));
        let child = Command::new(server_bin())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a sentinel: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut child = Some(child);
        while Instant::now() < deadline {
            if sentinel_cmd::<String>(port, &["PING"]).is_ok() {
                if let Some(child) = child.take() {
                    return SentinelProcess {
                        child,
                        port,
                        tls_port,
                        _dir: dir,
                    };
                }
            }
            if let Some(c) = child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    break; // exited: the port was taken, probably
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    panic!("no sentinel started after 5 attempts");
}

fn sentinel_cmd<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}
