//! `chaos`: the reliability check under load (issue 4, point 8; issue 16,
//! point 5).
//!
//! Starts a private Redis topology and the given test-bed server
//! (`shared/bench/CONTRACT.md`), drives it with concurrent load while the
//! topology suffers faults, then reads every session back and prints the
//! figures. The faults, by `--topology` and `--fault`:
//!
//! - `standalone` / `outage` (the default): redis-server killed (SIGKILL)
//!   and restarted on its port, twice, over `--duration` (40 s);
//! - `sentinel` / `failover`: the primary killed until the sentinels
//!   promote a replica, then restarted (it comes back as a replica), `--rounds`
//!   times (3);
//! - `cluster` / `failover`: a primary killed until its replica takes
//!   over, then restarted, `--rounds` times;
//! - `cluster` / `reshard`: `--slots` hash slots (1000) moved from one
//!   primary to the next with `redis-cli --cluster reshard`, `--rounds` times.
//!
//! Each load task has sessions of its own and remembers the last count each
//! one's `/write` acknowledged; a later answer showing less (during the
//! load, or when every session is read back afterwards through a fresh
//! test-bed without the client cache) is an acknowledged write lost, and a
//! session made by an acknowledged `/new` that is no longer signed in is a
//! session lost. `--replica-acks N` starts the test-bed with
//! `SESSIONKIT_REPLICA_ACKS=N` (writes acknowledged once `N` replicas have
//! them). Exits non-zero unless:
//!
//! - the server is still alive and its stderr has no `panicked`;
//! - every request got a response within the client timeout (2 s);
//! - every status is 200 or 503, and a 503 only comes from a session route
//!   (`/new`, `/read`, `/write`) during a fault (from its start until 2 s
//!   after the topology is whole again); `/baseline` never fails;
//! - every kill produced at least one 503 (proof that it took effect) and
//!   after each fault every session route answers 200 again, with no 503
//!   after, within 2 s of the topology being whole;
//! - with `--replica-acks`, no acknowledged write and no session was lost;
//! - the server under test and a fresh one read every session alike (its
//!   client cache is not stale);
//! - the server's RSS after the faults is at most
//!   `max(before × 1.5, before + 8 MiB)`.
//!
//! ```text
//! cargo run --release -p testkit --bin chaos -- --server target/release/bench-server \
//!     [--topology sentinel] [--fault failover] [--replica-acks 1]
//! ```
//!
//! `--samples FILE` also writes every request as CSV
//! (`start_ms,end_ms,route,outcome`), offsets from the start of the load.

mod faults;
mod figures;
mod load;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{Kind, Plan, Scenario, Topology};
use figures::{Durability, Figures};
use load::{Load, Outcome, ReadBack, Sample};
use server::{http_client, session_cookie, BenchServer};

/// Bound on every request, connection included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on recovery: the topology whole again → session requests succeed.
const RECOVERY_BOUND: Duration = Duration::from_secs(2);
/// The session cookie's name (the library default).
const COOKIE: &str = sessionkit::DEFAULT_COOKIE_NAME;
/// A bound on the load in case the fault controller never ends it.
const LOAD_LIMIT: Duration = Duration::from_secs(600);

const USAGE: &str = "usage: chaos --server <test-bed binary> \
                     [--topology standalone|sentinel|cluster] [--fault outage|failover|reshard] \
                     [--duration 40s] [--rounds 3] [--slots 1000] [--replica-acks N] \
                     [--tasks 16] [--sessions 200] [--samples out.csv]";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e == "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chaos: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => {
            println!("chaos: PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("chaos: FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("chaos: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- arguments

struct Args {
    server: PathBuf,
    topology: Kind,
    plan: Plan,
    replica_acks: u32,
    tasks: usize,
    sessions: usize,
    samples: Option<PathBuf>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut server = None;
        let mut topology = Kind::Standalone;
        let mut scenario = None;
        let mut duration = Duration::from_secs(40);
        let mut rounds = 3;
        let mut slots = 1000;
        let mut replica_acks = 0;
        let mut tasks = 16;
        let mut sessions = 200;
        let mut samples = None;
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--server" => server = Some(PathBuf::from(value()?)),
                "--topology" => topology = Kind::parse(&value()?)?,
                "--fault" => scenario = Some(Scenario::parse(&value()?)?),
                "--duration" => duration = parse_duration(&value()?)?,
                "--rounds" => rounds = parse_count(&flag, &value()?)?,
                "--slots" => slots = parse_count(&flag, &value()?)?,
                "--replica-acks" => replica_acks = parse_count(&flag, &value()?)?,
                "--tasks" => tasks = parse_count(&flag, &value()?)?,
                "--sessions" => sessions = parse_count(&flag, &value()?)?,
                "--samples" => samples = Some(PathBuf::from(value()?)),
                "-h" | "--help" => return Err("help".to_owned()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let server = server.ok_or("--server is required")?;
        let scenario = scenario.unwrap_or(Scenario::default_for(topology));
        if !scenario.fits(topology) {
            return Err(format!(
                "a {} topology has no {} fault",
                topology.name(),
                scenario.name()
            ));
        }
        if scenario == Scenario::Outage && duration < Duration::from_secs(20) {
            return Err("--duration must be at least 20s (two outages and recoveries)".to_owned());
        }
        Ok(Args {
            server,
            topology,
            plan: Plan {
                scenario,
                duration,
                rounds,
                slots: u32::try_from(slots).map_err(|_| "--slots: at most 16384")?,
            },
            replica_acks: u32::try_from(replica_acks).map_err(|_| "--replica-acks: too many")?,
            tasks,
            sessions,
            samples,
        })
    }

    fn rounds(&self) -> usize {
        match self.plan.scenario {
            Scenario::Outage => 2,
            _ => self.plan.rounds,
        }
    }
}

/// `40s`, `40`, `1500ms` or `1m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {s:?} (e.g. 40s, 1500ms, 1m)");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}

fn parse_count(flag: &str, s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} needs a positive integer, got {s:?}")),
    }
}

// ---------------------------------------------------------------- the run

async fn run(args: Args) -> Result<bool, String> {
    let kind = args.topology;
    let topology = tokio::task::spawn_blocking(move || Topology::start(kind))
        .await
        .map_err(|e| format!("cannot start the {} topology: {e}", kind.name()))?;
    let mut env = topology.env();
    if args.replica_acks > 0 {
        env.push((
            "SESSIONKIT_REPLICA_ACKS".to_owned(),
            args.replica_acks.to_string(),
        ));
    }
    let mut server = BenchServer::spawn(&args.server, &env)?;
    let http = http_client()?;
    server.wait_ready(&http).await?;
    let pool = precreate_sessions(&http, &server.base, args.sessions).await?;

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (pid, plan, flag) = (server.pid(), args.plan, stop.clone());
    let controller =
        tokio::task::spawn_blocking(move || faults::run(topology, plan, pid, t0, flag));
    let load = Load {
        http: http.clone(),
        base: server.base.clone(),
        t0,
        stop,
        deadline: t0 + LOAD_LIMIT,
    };
    let outcomes = load.run(args.tasks, pool).await?;
    let duration = t0.elapsed();
    let (timeline, topology) = controller
        .await
        .map_err(|e| format!("the fault controller failed: {e}"))?;

    // Every session, read back through the server under test and through a
    // fresh one without the client cache (what Redis holds), while the
    // topology still runs.
    let mut sessions = outcomes.sessions;
    let under_test = ReadBack::take(&http, &server.base, &sessions).await?;
    env.push(("CLIENT_CACHE".to_owned(), "off".to_owned()));
    let mut fresh = BenchServer::spawn(&args.server, &env)?;
    fresh.wait_ready(&http).await?;
    let truth = ReadBack::take(&http, &fresh.base, &sessions).await?;
    fresh.stop();
    drop(topology);
    let durability = Durability {
        replica_acks: args.replica_acks,
        sessions: sessions.len(),
        during: outcomes.losses,
        after: truth.losses(&mut sessions, t0.elapsed()),
        stale: under_test.differences(&truth),
    };

    if let Some(path) = &args.samples {
        write_samples(path, &outcomes.samples)?;
    }
    let alive = server.alive();
    let log = server.log_text();
    let figures = Figures::compute(&outcomes.samples, &timeline, duration);
    print_header(&args);
    figures.print(&timeline, &durability);
    print_log_summary(&log);
    let expected = (args.plan.scenario, args.rounds());
    let failures = figures::check(&figures, &timeline, &durability, expected, alive, &log);

    let shutdown = server.stop();
    println!("shutdown           {shutdown}");
    for f in &failures {
        println!("chaos: FAILED: {f}");
    }
    if !failures.is_empty() {
        print_log_tail(&log, 20);
    }
    Ok(failures.is_empty())
}

/// `count` sessions made with `/new`, as their cookie values.
async fn precreate_sessions(
    http: &reqwest::Client,
    base: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut pool = Vec::with_capacity(count);
    for _ in 0..count {
        let resp = http
            .get(format!("{base}/new"))
            .send()
            .await
            .map_err(|e| format!("pre-creating sessions: GET /new: {e}"))?;
        let status = resp.status().as_u16();
        let cookie = session_cookie(resp.headers());
        if status != 200 {
            return Err(format!("pre-creating sessions: GET /new returned {status}"));
        }
        pool.push(cookie.ok_or("pre-creating sessions: GET /new set no `session` cookie")?);
    }
    Ok(pool)
}

fn write_samples(path: &std::path::Path, samples: &[Sample]) -> Result<(), String> {
    let mut csv = String::from("start_ms,end_ms,route,outcome\n");
    for s in samples {
        let outcome = match &s.outcome {
            Outcome::Status(code) => code.to_string(),
            Outcome::Timeout => "timeout".to_owned(),
            Outcome::Error(_) => "error".to_owned(),
        };
        csv.push_str(&format!(
            "{:.3},{:.3},{},{outcome}\n",
            s.start.as_secs_f64() * 1000.0,
            s.end.as_secs_f64() * 1000.0,
            s.route.path()
        ));
    }
    std::fs::write(path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_header(args: &Args) {
    println!(
        "== chaos: {} | {} {} ×{}{}, {} tasks, {} sessions, replica acks {}, client timeout {} s, \
         recovery bound {} s ==",
        args.server.display(),
        args.topology.name(),
        args.plan.scenario.name(),
        args.rounds(),
        if args.plan.scenario == Scenario::Outage {
            format!(" over {} s", args.plan.duration.as_secs_f64())
        } else {
            String::new()
        },
        args.tasks,
        args.sessions,
        args.replica_acks,
        CLIENT_TIMEOUT.as_secs(),
        RECOVERY_BOUND.as_secs()
    );
}

fn print_log_summary(log: &str) {
    let lines = log.lines().count();
    let warns = log.lines().filter(|l| l.contains("WARN")).count();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    println!(
        "server stderr      {lines} lines (WARN {warns}, ERROR {errors}), {}",
        if log.contains("panicked") {
            "contains \"panicked\""
        } else {
            "no \"panicked\""
        }
    );
    // The commonest messages, without their timestamps.
    let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for l in log.lines() {
        let message = ["WARN", "ERROR"]
            .iter()
            .find_map(|level| l.split_once(level).map(|(_, m)| m.trim()));
        if let Some(m) = message {
            *kinds.entry(m).or_default() += 1;
        }
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (m, n) in kinds.iter().take(3) {
        let m: String = m.chars().take(160).collect();
        println!("  {n:>6} x        {m}");
    }
}

fn print_log_tail(log: &str, n: usize) {
    let lines: Vec<&str> = log.lines().collect();
    println!("-- last {n} lines of the server's stderr --");
    for l in &lines[lines.len().saturating_sub(n)..] {
        println!("{l}");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs_str(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
