//! The load: concurrent tasks driving the contract's session routes, each
//! on sessions of its own, remembering every count the server acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::session_cookie;
use crate::COOKIE;

/// Requests per load task at most (the loop is bounded by time first).
const MAX_REQUESTS_PER_TASK: usize = 2_000_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Route {
    Baseline,
    New,
    Read,
    Write,
}

impl Route {
    pub(crate) const ALL: [Route; 4] = [Route::Baseline, Route::New, Route::Read, Route::Write];

    pub(crate) fn path(self) -> &'static str {
        match self {
            Route::Baseline => "/baseline",
            Route::New => "/new",
            Route::Read => "/read",
            Route::Write => "/write",
        }
    }

    pub(crate) fn uses_session(self) -> bool {
        self != Route::Baseline
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Status(u16),
    Timeout,
    Error(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(s) => write!(f, "status {s}"),
            Outcome::Timeout => write!(f, "timeout"),
            Outcome::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// One request: start and end as offsets from the start of the load.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    pub(crate) route: Route,
    pub(crate) outcome: Outcome,
}

impl Sample {
    pub(crate) fn latency(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// A session of the load and what the server acknowledged about it.
#[derive(Clone, Debug)]
pub(crate) struct Tracked {
    pub(crate) cookie: String,
    /// The count the last `/write` answered 200 with (or that a later read
    /// showed, after a loss was counted).
    acked: Option<u64>,
    /// Made by a `/new` that answered 200: `/whoami` must name its user.
    pub(crate) signed_in: bool,
}

impl Tracked {
    pub(crate) fn new(cookie: String) -> Tracked {
        Tracked {
            cookie,
            acked: None,
            signed_in: true,
        }
    }

    /// The server said the session holds `count` now: the acknowledged
    /// writes it no longer has (counted once: the count is taken as it is).
    pub(crate) fn observe(&mut self, count: u64) -> u64 {
        match self.acked {
            Some(a) if count < a => {
                self.acked = Some(count);
                a - count
            }
            _ => 0,
        }
    }
}

/// Acknowledged state found missing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Losses {
    /// Acknowledged `/write`s whose increment a later answer did not show.
    pub(crate) writes: u64,
    /// Sessions made by an acknowledged `/new` that were gone later.
    pub(crate) sessions: u64,
    /// When the load first saw one.
    pub(crate) first: Option<Duration>,
}

impl Losses {
    fn add(&mut self, writes: u64, sessions: u64, at: Duration) {
        if writes + sessions > 0 {
            self.writes += writes;
            self.sessions += sessions;
            self.first = Some(self.first.map_or(at, |f| f.min(at)));
        }
    }

    pub(crate) fn merge(&mut self, other: Losses) {
        self.writes += other.writes;
        self.sessions += other.sessions;
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What the load returns: every request, every session it used, and the
/// losses it saw while running.
pub(crate) struct Outcomes {
    pub(crate) samples: Vec<Sample>,
    pub(crate) sessions: Vec<Tracked>,
    pub(crate) losses: Losses,
}

#[derive(Clone)]
pub(crate) struct Load {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) t0: Instant,
    /// Set by the fault controller when its plan is done.
    pub(crate) stop: Arc<AtomicBool>,
    /// A bound in case the controller never says stop.
    pub(crate) deadline: Instant,
}

impl Load {
    /// `tasks` concurrent loops until told to stop; session `i` of `pool`
    /// belongs to task `i % tasks` alone, so that no two requests of the
    /// load change one session at once and every count is checkable.
    pub(crate) async fn run(&self, tasks: usize, pool: Vec<String>) -> Result<Outcomes, String> {
        let mut owned: Vec<Vec<Tracked>> = vec![Vec::new(); tasks];
        for (i, cookie) in pool.into_iter().enumerate() {
            owned[i % tasks].push(Tracked::new(cookie));
        }
        let handles: Vec<_> = owned
            .into_iter()
            .enumerate()
            .map(|(i, mine)| tokio::spawn(self.clone().worker(i as u64, mine)))
            .collect();
        let mut all = Outcomes {
            samples: Vec::new(),
            sessions: Vec::new(),
            losses: Losses::default(),
        };
        for h in handles {
            let part = h.await.map_err(|e| format!("a load task failed: {e}"))?;
            all.samples.extend(part.samples);
            all.sessions.extend(part.sessions);
            all.losses.merge(part.losses);
        }
        all.samples.sort_by_key(|s| s.start);
        Ok(all)
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Acquire) && Instant::now() < self.deadline
    }

    /// Per iteration: /read or /write in turn on a random session of the
    /// task's own; every 10th iteration also /baseline, every 20th also
    /// /new (whose session replaces that one; the old one stays tracked).
    async fn worker(self, id: u64, mut mine: Vec<Tracked>) -> Outcomes {
        let mut rng = Rng::new(id);
        let mut samples = Vec::new();
        let mut retired = Vec::new();
        let mut losses = Losses::default();
        let mut i = 0usize;
        while !mine.is_empty() && self.running() && samples.len() < MAX_REQUESTS_PER_TASK {
            let k = rng.below(mine.len());
            let route = [Route::Read, Route::Write][i % 2];
            let (sample, answer) = self.request(route, Some(&mine[k].cookie)).await;
            if let Some((body, cookie)) = answer {
                let (writes, sessions) = account(&mut mine[k], route, &body, cookie);
                losses.add(writes, sessions, sample.end);
            }
            samples.push(sample);
            if i.is_multiple_of(10) {
                samples.push(self.request(Route::Baseline, None).await.0);
            }
            if i.is_multiple_of(20) {
                let (sample, answer) = self.request(Route::New, None).await;
                if let Some((_, Some(cookie))) = answer {
                    retired.push(std::mem::replace(&mut mine[k], Tracked::new(cookie)));
                }
                samples.push(sample);
            }
            i += 1;
        }
        retired.extend(mine);
        Outcomes {
            samples,
            sessions: retired,
            losses,
        }
    }

    /// One request; for a 200, its body and the session cookie it set.
    async fn request(
        &self,
        route: Route,
        cookie: Option<&str>,
    ) -> (Sample, Option<(String, Option<String>)>) {
        let start = self.t0.elapsed();
        let (outcome, answer) = get(&self.http, &self.base, route.path(), cookie).await;
        let sample = Sample {
            start,
            end: self.t0.elapsed(),
            route,
            outcome,
        };
        (sample, answer)
    }
}

/// Books a 200 answer of `/read` or `/write` on `session`: the writes and
/// sessions it shows lost.
fn account(session: &mut Tracked, route: Route, body: &str, cookie: Option<String>) -> (u64, u64) {
    let Ok(count) = body.trim().parse::<u64>() else {
        return (0, 0);
    };
    match (route, cookie) {
        // The session was gone: the server started a new one.
        (Route::Write, Some(new)) => {
            let lost = (session.acked.unwrap_or(0), u64::from(session.signed_in));
            *session = Tracked {
                cookie: new,
                acked: Some(count),
                signed_in: false,
            };
            lost
        }
        (Route::Write, None) => {
            let lost = session.observe(count.saturating_sub(1));
            session.acked = Some(count);
            (lost, 0)
        }
        _ => (session.observe(count), 0),
    }
}

/// `GET base+path` with the session cookie, if any: the outcome, and for a
/// 200 the body and the session cookie set.
pub(crate) async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: Option<&str>,
) -> (Outcome, Option<(String, Option<String>)>) {
    let mut req = http.get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        req = req.header(reqwest::header::COOKIE, format!("{COOKIE}={cookie}"));
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let cookie = session_cookie(resp.headers());
            match resp.text().await {
                Ok(body) => {
                    let answer = (status == 200).then_some((body, cookie));
                    (Outcome::Status(status), answer)
                }
                Err(e) => (error_outcome(&e), None),
            }
        }
        Err(e) => (error_outcome(&e), None),
    }
}

fn error_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Error(e.to_string())
    }
}

/// What one server says each session holds: its count and whether it is
/// signed in, read with `/read` and `/whoami` after the load.
pub(crate) struct ReadBack {
    pub(crate) counts: Vec<u64>,
    pub(crate) signed_in: Vec<bool>,
}

impl ReadBack {
    /// Reads every session through the server at `base`, one at a time.
    pub(crate) async fn take(
        http: &reqwest::Client,
        base: &str,
        sessions: &[Tracked],
    ) -> Result<ReadBack, String> {
        let mut back = ReadBack {
            counts: Vec::with_capacity(sessions.len()),
            signed_in: Vec::with_capacity(sessions.len()),
        };
        for s in sessions {
            let (outcome, answer) = get(http, base, "/read", Some(&s.cookie)).await;
            let count = answer
                .and_then(|(body, _)| body.trim().parse().ok())
                .ok_or_else(|| format!("reading back: GET /read answered {outcome}"))?;
            let (outcome, _) = get(http, base, "/whoami", Some(&s.cookie)).await;
            let signed_in = match outcome {
                Outcome::Status(200) => true,
                Outcome::Status(401) => false,
                other => return Err(format!("reading back: GET /whoami answered {other}")),
            };
            back.counts.push(count);
            back.signed_in.push(signed_in);
        }
        Ok(back)
    }

    /// The acknowledged writes and sessions it shows lost (booked on
    /// `sessions`).
    pub(crate) fn losses(&self, sessions: &mut [Tracked], at: Duration) -> Losses {
        let mut losses = Losses::default();
        for (i, s) in sessions.iter_mut().enumerate() {
            let writes = s.observe(self.counts[i]);
            let gone = u64::from(s.signed_in && !self.signed_in[i]);
            losses.add(writes, gone, at);
        }
        losses
    }

    /// Sessions on which two servers disagree.
    pub(crate) fn differences(&self, other: &ReadBack) -> usize {
        let counts = self.counts.iter().zip(&other.counts);
        let signed = self.signed_in.iter().zip(&other.signed_in);
        counts
            .zip(signed)
            .filter(|((a, b), (c, d))| a != b || c != d)
            .count()
    }
}

/// xorshift64*: enough to pick sessions, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % n as u64) as usize
    }
}
