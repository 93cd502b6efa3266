//! The test-bed server under test, and the HTTP client that drives it.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ms, CLIENT_TIMEOUT, COOKIE};

/// The test-bed server process; stopped on drop (SIGTERM, then SIGKILL).
pub(crate) struct BenchServer {
    child: Option<Child>,
    pid: u32,
    pub(crate) base: String,
    log: tempfile::NamedTempFile,
}

impl BenchServer {
    /// Starts `bin` on a free port with the topology's environment `env`
    /// (CONTRACT.md: `REDIS_URL`, `REDIS_SENTINEL_URLS`, …).
    pub(crate) fn spawn(bin: &Path, env: &[(String, String)]) -> Result<BenchServer, String> {
        let port = free_port()?;
        let log = tempfile::NamedTempFile::new()
            .map_err(|e| format!("cannot create the server log file: {e}"))?;
        let stderr = log
            .reopen()
            .map_err(|e| format!("cannot open the server log file: {e}"))?;
        let child = Command::new(bin)
            .env("PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}); build it first: cargo build --release -p bench-server",
                    bin.display()
                )
            })?;
        Ok(BenchServer {
            pid: child.id(),
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Polls `GET /baseline` until it answers 200 (10 s at most).
    pub(crate) async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("{}/baseline", self.base);
        while Instant::now() < deadline {
            if !self.alive() {
                return Err(format!(
                    "the server stopped during start-up: {}; its stderr:\n{}",
                    self.stop(),
                    self.log_text()
                ));
            }
            if let Ok(resp) = http.get(&url).send().await {
                if resp.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the server did not answer GET /baseline within 10 s".to_owned())
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    pub(crate) fn log_text(&self) -> String {
        let mut bytes = Vec::new();
        match self
            .log
            .reopen()
            .and_then(|mut f| f.read_to_end(&mut bytes))
        {
            Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read the server log: {e})"),
        }
    }

    /// SIGTERM, then SIGKILL after 5 s. Says how the process ended.
    pub(crate) fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".to_owned();
        };
        if let Ok(Some(status)) = child.try_wait() {
            return format!("had already exited ({status})");
        }
        let started = Instant::now();
        let term = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if term.is_ok() {
            while started.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(status)) = child.try_wait() {
                    return format!("SIGTERM -> exited ({status}) in {}", ms(started.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        "did not exit within 5 s of SIGTERM: SIGKILLed".to_owned()
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .connect_timeout(CLIENT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The value of the `session` cookie set by a response, if any (a removal —
/// empty value or `Max-Age=0` — counts as none).
pub(crate) fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.to_ascii_lowercase().contains("max-age=0"))
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(name, value)| name.trim() == COOKIE && !value.is_empty())
        .map(|(_, value)| value.trim().to_owned())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// VmRSS of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
