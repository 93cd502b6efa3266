//! [`FlaskApp`]: the Flask app of `crates/testkit/flask` (`app.py`, on
//! Armin Ronacher's "Server-side Sessions with Redis" recipe in `recipe.py`),
//! run with its own virtualenv ([`venv`]) on a free loopback port, killed on
//! drop. For testing that sessionkit shares sessions with such an app.
//!
//! The app's routes (all `GET`, answering 200 with plain text or JSON):
//! `/login?user=U`, `/whoami`, `/cart`, `/cart/add?item=X`,
//! `/flash?msg=M&category=C`, `/flashes`, `/permanent`, `/logout`, and
//! `/health` (for readiness: answered before Flask opens a session, with a
//! Redis `PING`, 503 if Redis does not answer). Note that the recipe sends
//! Redis a `DEL` of the session's key on every other request that leaves the
//! session empty (a fresh visitor's `/whoami` too).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming the Python interpreter the virtualenv is made
/// with (default: `python3` on PATH).
pub const PYTHON_ENV: &str = "SESSIONKIT_PYTHON";

/// How long [`FlaskApp::start`] waits for `/health` to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks a virtualenv whose `pip install` finished.
const READY_MARK: &str = ".sessionkit-ready";

/// The folder with `app.py`, `recipe.py` and `requirements.txt`.
pub fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("flask")
}

/// The workspace's root (two levels above this crate).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_owned()
}

/// Cargo's target folder: `CARGO_TARGET_DIR` (relative to the workspace
/// root, as cargo reads it when run there), else the ancestor of the running
/// executable that holds cargo's `CACHEDIR.TAG`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return workspace_root().join(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|d| d.join("CACHEDIR.TAG").is_file())
        {
            return dir.to_owned();
        }
    }
    workspace_root().join("target")
}

/// 64-bit FNV-1a, for naming the virtualenv after `requirements.txt`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn python_bin() -> String {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether `venv` finished installing and its python imports Flask and redis.
fn usable(venv: &Path) -> bool {
    venv.join(READY_MARK).is_file()
        && Command::new(venv_python(venv))
            .args(["-c", "import flask, redis"])
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// Runs `code` with the virtualenv's Python, `input` on its stdin; what it
/// wrote to stdout. For tests that make or read pickles as Python does.
///
/// # Panics
///
/// If the virtualenv cannot be made or the program fails.
pub fn python(code: &str, input: &[u8]) -> Vec<u8> {
    let python = venv().unwrap_or_else(|e| panic!("venv: {e}"));
    let mut child = Command::new(python)
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run python: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .unwrap_or_else(|e| panic!("write to python: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python: {e}"));
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `pickle.loads(bytes)` as Python sees it, as JSON (tuples become lists).
///
/// # Panics
///
/// If Python cannot unpickle it.
pub fn unpickle(bytes: &[u8]) -> serde_json::Value {
    let out = python(
        "import json, pickle, sys; print(json.dumps(pickle.loads(sys.stdin.buffer.read())))",
        bytes,
    );
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("python printed no JSON: {e}"))
}

/// The virtualenv with the pinned packages of `requirements.txt`, made once
/// under `target/flask-venv-<hash of requirements.txt>` (with `python3 -m
/// venv`, or [`PYTHON_ENV`]'s interpreter, then `pip install -r`); returns
/// its python.
///
/// Safe when several test processes call it at once: each builds in a
/// private folder beside the final one and renames it into place; the first
/// rename wins and the others use that one.
///
/// # Errors
///
/// If Python, its `venv` module (Debian: `apt-get install python3-venv`) or
/// the package install fails; the message carries their output.
pub fn venv() -> io::Result<PathBuf> {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    static BUILDING: Mutex<()> = Mutex::new(());
    if let Some(python) = DONE.get() {
        return Ok(python.clone());
    }
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(python) = DONE.get() {
        return Ok(python.clone());
    }
    let requirements = app_dir().join("requirements.txt");
    let pins = std::fs::read(&requirements).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", requirements.display()),
        )
    })?;
    let target = target_dir();
    let venv = target.join(format!("flask-venv-{:016x}", fnv1a(&pins)));
    if !usable(&venv) {
        std::fs::create_dir_all(&target)?;
        build(&venv, &requirements)?;
    }
    let python = venv_python(&venv);
    Ok(DONE.get_or_init(|| python).clone())
}

/// Builds the virtualenv in a private folder and renames it to `venv`.
fn build(venv: &Path, requirements: &Path) -> io::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = venv
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = venv.with_file_name(format!(".{name}.{}-{nanos}", std::process::id()));
    let result = build_in(&tmp, requirements).and_then(|()| install(&tmp, venv));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn build_in(tmp: &Path, requirements: &Path) -> io::Result<()> {
    let python = python_bin();
    let venv_made = run(
        Command::new(&python).args(["-m", "venv"]).arg(tmp),
        &format!("`{python} -m venv`"),
    );
    if let Err(e) = venv_made {
        let no_ensurepip = Command::new(&python)
            .args(["-c", "import ensurepip"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success());
        let hint = if no_ensurepip || e.to_string().contains("ensurepip") {
            "Python's venv module cannot install pip (no ensurepip). Install it \
             (Debian: `apt-get install python3-venv`)"
        } else {
            "Install Python 3 with its venv module (Debian: `apt-get install python3 \
             python3-venv`) or point SESSIONKIT_PYTHON at a python3"
        };
        return Err(io::Error::new(e.kind(), format!("{hint}.\n{e}")));
    }
    run(
        Command::new(venv_python(tmp))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(requirements),
        &format!("`pip install -r {}`", requirements.display()),
    )?;
    File::create(tmp.join(READY_MARK))?;
    Ok(())
}

/// Renames the built `tmp` to `venv`: if another process got there first
/// with a usable one, keeps that; a broken one is moved aside and replaced.
fn install(tmp: &Path, venv: &Path) -> io::Result<()> {
    for _attempt in 0..3 {
        match std::fs::rename(tmp, venv) {
            Ok(()) => return Ok(()),
            Err(_) if usable(venv) => return Ok(()),
            Err(_) if venv.exists() => {
                let aside = PathBuf::from(format!("{}.stale", tmp.display()));
                if std::fs::rename(venv, &aside).is_ok() {
                    let _ = std::fs::remove_dir_all(&aside);
                }
            }
            Err(e) => return Err(e),
        }
    }
    if usable(venv) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cannot put the virtualenv in place at {}",
            venv.display()
        )))
    }
}

/// The session settings of a [`FlaskApp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaskOptions {
    /// The Redis key prefix (`SESSION_PREFIX`; default `session:`).
    pub prefix: String,
    /// The session cookie's name (`SESSION_COOKIE_NAME`; default `session`).
    pub cookie_name: String,
}

impl Default for FlaskOptions {
    fn default() -> Self {
        FlaskOptions {
            prefix: "session:".to_owned(),
            cookie_name: "session".to_owned(),
        }
    }
}

/// The Flask app on the Redis session recipe, started for one test, killed
/// on drop.
#[derive(Debug)]
pub struct FlaskApp {
    child: Option<Child>,
    port: u16,
    options: FlaskOptions,
    log: PathBuf,
    /// Holds the log file.
    _dir: tempfile::TempDir,
}

impl FlaskApp {
    /// Starts the app on the Redis at `redis_url` (`redis://127.0.0.1:PORT`)
    /// with the default [`FlaskOptions`].
    ///
    /// # Errors
    ///
    /// As [`start_with`](Self::start_with).
    pub fn start(redis_url: &str) -> io::Result<Self> {
        Self::start_with(redis_url, FlaskOptions::default())
    }

    /// Starts the app on the Redis at `redis_url` with `options`, on a free
    /// loopback port, and waits until `/health` answers.
    ///
    /// # Errors
    ///
    /// If the virtualenv cannot be made ([`venv`]), or the app exits or does
    /// not answer within [`START_TIMEOUT`]; the message ends with the tail
    /// of the app's output.
    pub fn start_with(redis_url: &str, options: FlaskOptions) -> io::Result<Self> {
        let python = venv()?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("flask.log");
        let mut app = FlaskApp {
            child: None,
            port: 0,
            options,
            log,
            _dir: dir,
        };
        let mut last = None;
        for _attempt in 0..5 {
            app.port = crate::server::free_port();
            match app.spawn(&python, redis_url) {
                Ok(()) => return Ok(app),
                // Another process took the port between our check and the
                // app's bind: try another one.
                Err(e) if app.log().contains("Address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("the Flask app did not start")))
    }

    fn spawn(&mut self, python: &Path, redis_url: &str) -> io::Result<()> {
        let out = File::create(&self.log)?;
        let err = out.try_clone()?;
        let child = Command::new(python)
            .arg(app_dir().join("app.py"))
            .current_dir(app_dir())
            .env("REDIS_URL", redis_url)
            .env("PORT", self.port.to_string())
            .env("SESSION_PREFIX", &self.options.prefix)
            .env("SESSION_COOKIE_NAME", &self.options.cookie_name)
            .env("SECRET_KEY", "sessionkit-testkit-flask")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            // No debug mode: its reloader would fork a child that outlives kill().
            .env_remove("FLASK_DEBUG")
            .env_remove("FLASK_RUN_FROM_CLI")
            .env_remove("WERKZEUG_RUN_MAIN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run {}: {e}", python.display()))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(io::Error::other(format!(
                    "the Flask app exited ({status}) before answering /health:\n{}",
                    self.log_tail()
                )));
            }
            let last = match self.health() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the Flask app did not answer /health within {START_TIMEOUT:?} \
                         (last: {last}):\n{}",
                        self.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /health`: `Ok` on 200 `ok`, else what went wrong.
    fn health(&self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map_err(|e| format!("connect: {e}"))?;
        let timeout = Some(Duration::from_secs(2));
        s.set_read_timeout(timeout)
            .and_then(|()| s.set_write_timeout(timeout))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read: {e}"))?;
        let status = reply.lines().next().unwrap_or("").to_owned();
        let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if status.split(' ').nth(1) == Some("200") && body == "ok" {
            Ok(())
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`, or is empty
    /// for the base URL).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The app's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Redis key prefix the app uses.
    pub fn prefix(&self) -> &str {
        &self.options.prefix
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.options.cookie_name
    }

    /// The Redis key of the session whose cookie value is `sid`.
    pub fn key(&self, sid: &str) -> String {
        format!("{}{sid}", self.options.prefix)
    }

    /// Everything the app printed so far (stdout and stderr: Flask's
    /// banner, one line per request, tracebacks).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last 40 lines of [`log`](Self::log).
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the app's process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the app.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FlaskApp {
    fn drop(&mut self) {
        self.kill();
    }
}
