//! A bounded HTTP/1.1 load client for the zero-downtime tests: a few threads, each with a
//! keep-alive connection (every `CLOSE_EVERY`-th request asks `Connection: close`, so new
//! connections are made all along), sending `GET /` without pause until stopped or until
//! the request budget is spent. A request fails when it cannot connect, gets no complete
//! response, or gets a status other than 200.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLOSE_EVERY: u64 = 10;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
    /// Responses per `version` field of the body.
    pub versions: BTreeMap<String, u64>,
    /// Responses per `id` (pod name) field of the body.
    pub ids: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.failures.extend(other.failures);
        self.failures.truncate(20);
        for (k, v) in other.versions {
            *self.versions.entry(k).or_default() += v;
        }
        for (k, v) in other.ids {
            *self.ids.entry(k).or_default() += v;
        }
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
}

impl Load {
    /// Starts `connections` client threads against `addr`, at most `budget` requests in all.
    pub fn start(addr: SocketAddr, connections: usize, budget: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let threads = (0..connections)
            .map(|_| {
                let (stop, done) = (stop.clone(), done.clone());
                std::thread::spawn(move || client(addr, &stop, &done, budget))
            })
            .collect();
        Load {
            stop,
            done,
            threads,
        }
    }

    /// Requests completed so far (ok or failed).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more requests have completed (or the budget ran out).
    pub fn wait_for_more(&self, n: u64, timeout: Duration) {
        let target = self.done() + n;
        super::eventually(
            timeout,
            &format!("{n} more requests through the load client"),
            || {
                (self.done() >= target || self.threads.iter().all(|t| t.is_finished()))
                    .then_some(())
            },
        );
    }

    /// Stops the clients and adds up what they saw.
    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for t in self.threads {
            tally.merge(t.join().expect("load client thread"));
        }
        tally
    }
}

fn client(addr: SocketAddr, stop: &AtomicBool, done: &AtomicU64, budget: u64) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if done.fetch_add(1, Ordering::Relaxed) >= budget {
            break;
        }
        sent += 1;
        let close = sent.is_multiple_of(CLOSE_EVERY);
        let result = one_request(addr, &mut conn, close);
        match result {
            Ok(body) => {
                tally.ok += 1;
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                *tally
                    .versions
                    .entry(v["version"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
                *tally
                    .ids
                    .entry(v["id"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
            }
            Err(e) => {
                tally.failed += 1;
                if tally.failures.len() < 20 {
                    tally.failures.push(e);
                }
                conn = None;
            }
        }
        if close {
            conn = None;
        }
    }
    tally
}

/// One `GET /` on the kept connection (made first if there is none); the body on a 200.
fn one_request(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
    close: bool,
) -> Result<String, String> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
        *conn = Some(BufReader::new(s));
    }
    let reader = conn.as_mut().expect("connected above");
    let started = Instant::now();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|e| format!("read status after {:?}: {e}", started.elapsed()))?;
    if status_line.is_empty() {
        return Err(format!(
            "connection closed without a response after {:?}",
            started.elapsed()
        ));
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read headers: {e}"))?;
        if line.is_empty() {
            return Err("connection closed in the headers".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().map_err(|_| "bad content-length")?;
        }
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(format!("{} {body}", status_line.trim_end()));
    }
    Ok(body)
}
