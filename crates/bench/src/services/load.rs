//! The zero-downtime load: `connections` keep-alive HTTP/1.1 clients on tokio tasks, each
//! sending `GET /` back to back (every [`CLOSE_EVERY`]-th with `Connection: close`, so new
//! connections are opened all along). Bounded by a request cap; stopped by the caller. A
//! request fails on a connect error, a missing or cut response, a timeout, or a status
//! other than 200.

use super::http::{Client, FailKind, json_str_field};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Every this many requests on a connection asks for `Connection: close`.
pub const CLOSE_EVERY: u64 = 10;
/// Pause after a failed request, so that a refused connect does not spin.
pub const FAILURE_BACKOFF: Duration = Duration::from_millis(5);
/// Failure descriptions kept.
const KEEP_FAILURES: usize = 10;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub by_kind: BTreeMap<FailKind, u64>,
    /// The first failures, described (at most [`KEEP_FAILURES`]).
    pub failures: Vec<String>,
    /// Since the load started: the first and the last failure.
    pub first_failure: Option<Duration>,
    pub last_failure: Option<Duration>,
    /// The milliseconds (since the load started) in which at least one request succeeded.
    success_ms: Vec<u32>,
    /// Responses per `version` and per `id` (pod name) field of the body.
    pub versions: BTreeMap<String, u64>,
    pub ids: BTreeMap<String, u64>,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.failed += o.failed;
        for (k, v) in o.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        self.failures.extend(o.failures);
        self.failures.truncate(KEEP_FAILURES);
        self.first_failure = match (self.first_failure, o.first_failure) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_failure = self.last_failure.max(o.last_failure);
        self.success_ms.extend(o.success_ms);
        for (k, v) in o.versions {
            *self.versions.entry(k).or_default() += v;
        }
        for (k, v) in o.ids {
            *self.ids.entry(k).or_default() += v;
        }
    }

    /// All requests, ok or failed.
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }

    /// From the first failed request to the last one (ms); 0 without failures.
    pub fn failure_window_ms(&self) -> f64 {
        match (self.first_failure, self.last_failure) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() * 1e3,
            _ => 0.0,
        }
    }

    /// The longest time (ms, to the millisecond) without any successful response, from
    /// the start of the load to its end.
    pub fn longest_gap_ms(&self) -> f64 {
        let mut ms = self.success_ms.clone();
        ms.sort_unstable();
        ms.dedup();
        let end = u32::try_from(self.elapsed.as_millis()).unwrap_or(u32::MAX);
        let mut prev = 0u32;
        let mut gap = 0u32;
        for t in ms.iter().copied().chain(std::iter::once(end)) {
            gap = gap.max(t.saturating_sub(prev));
            prev = t;
        }
        f64::from(gap)
    }

    /// Failures by kind, for notes.
    pub fn kinds(&self) -> String {
        if self.by_kind.is_empty() {
            return "none".into();
        }
        self.by_kind
            .iter()
            .map(|(k, v)| format!("{v} {}", k.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    started: Instant,
    tasks: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// Starts `connections` clients against `addr`, at most `cap` requests in all.
    pub fn start(addr: SocketAddr, connections: usize, cap: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks = (0..connections)
            .map(|i| {
                let (stop, done, issued) = (stop.clone(), done.clone(), issued.clone());
                // Stagger the `Connection: close` requests across connections.
                let offset = i as u64 % CLOSE_EVERY;
                tokio::spawn(async move {
                    client(addr, started, offset, cap, &stop, &done, &issued).await
                })
            })
            .collect();
        Load {
            stop,
            done,
            started,
            tasks,
        }
    }

    /// Requests completed so far (ok or failed).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Whether every client has ended (the cap is spent).
    pub fn finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }

    /// Waits until `n` requests in all have completed, or the clients ended, or `deadline`.
    pub async fn wait_for_total(&self, n: u64, deadline: Instant) -> bool {
        loop {
            if self.done() >= n {
                return true;
            }
            if self.finished() || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients (each ends after its request in flight) and adds up what they saw.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for t in std::mem::take(&mut self.tasks) {
            if let Ok(part) = t.await {
                tally.merge(part);
            }
        }
        tally.elapsed = self.started.elapsed();
        tally
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn client(
    addr: SocketAddr,
    started: Instant,
    offset: u64,
    cap: u64,
    stop: &AtomicBool,
    done: &AtomicU64,
    issued: &AtomicU64,
) -> Tally {
    let mut tally = Tally::default();
    let mut c = Client::new(addr);
    let mut sent = offset;
    let mut last_ms = u32::MAX;
    while !stop.load(Ordering::Relaxed) {
        if issued.fetch_add(1, Ordering::Relaxed) >= cap {
            break;
        }
        sent += 1;
        let close = sent.is_multiple_of(CLOSE_EVERY);
        let result = c.get(close).await;
        let at = started.elapsed();
        done.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(r) => {
                tally.ok += 1;
                let ms = u32::try_from(at.as_millis()).unwrap_or(u32::MAX);
                if ms != last_ms {
                    tally.success_ms.push(ms);
                    last_ms = ms;
                }
                let version = json_str_field(&r.body, "version").unwrap_or("?");
                match tally.versions.get_mut(version) {
                    Some(n) => *n += 1,
                    None => {
                        tally.versions.insert(version.to_string(), 1);
                    }
                }
                let id = json_str_field(&r.body, "id").unwrap_or("?");
                match tally.ids.get_mut(id) {
                    Some(n) => *n += 1,
                    None => {
                        tally.ids.insert(id.to_string(), 1);
                    }
                }
            }
            Err(f) => {
                tally.failed += 1;
                *tally.by_kind.entry(f.kind).or_default() += 1;
                if tally.failures.len() < KEEP_FAILURES {
                    tally
                        .failures
                        .push(format!("at {:.3} s: {}", at.as_secs_f64(), f.detail));
                }
                tally.first_failure.get_or_insert(at);
                tally.last_failure = Some(at);
                tokio::time::sleep(FAILURE_BACKOFF).await;
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_windows() {
        let mut t = Tally {
            success_ms: vec![5, 1, 2, 2, 30, 31],
            elapsed: Duration::from_millis(40),
            first_failure: Some(Duration::from_millis(3)),
            last_failure: Some(Duration::from_millis(29)),
            ..Tally::default()
        };
        assert_eq!(t.longest_gap_ms(), 25.0);
        assert_eq!(t.failure_window_ms(), 26.0);
        t.success_ms.clear();
        assert_eq!(t.longest_gap_ms(), 40.0);
    }
}
