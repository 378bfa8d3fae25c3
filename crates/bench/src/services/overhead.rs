//! Proxy overhead: the sample run directly on the host as the backend, HAProxy from Debian
//! in front of it, and Slipway's proxy engine in-process (its own 2-worker runtime) in
//! front of it; latency over one keep-alive connection and throughput over 64.

use super::Plan;
use super::http::Client;
use crate::report::{median, quantile};
use anyhow::{Context as _, Result, bail};
use slipway_proxy::{
    AppProtocol, DesiredState, Endpoint, Frontend, HostNetwork, PortState, Proxy, ServiceKey,
    ServiceState,
};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Debian's HAProxy.
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// The throughput test's connections.
pub const THROUGHPUT_CONNS: usize = 64;
/// Before the throughput window: the connections open and warm up.
const THROUGHPUT_WARM_UP: Duration = Duration::from_millis(500);
/// Bound on a process starting to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on one latency run.
const LATENCY_TIMEOUT: Duration = Duration::from_secs(120);

/// What a request goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path3 {
    Direct,
    HaProxy,
    Slipway,
}

impl Path3 {
    pub fn label(self) -> &'static str {
        match self {
            Path3::Direct => "direct",
            Path3::HaProxy => "HAProxy",
            Path3::Slipway => "Slipway",
        }
    }
}

/// Per path, one value per round.
#[derive(Debug, Default)]
pub struct Series {
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
    pub rps: Vec<f64>,
    pub failed: u64,
}

/// The measurements of every round.
#[derive(Debug, Default)]
pub struct Overhead {
    pub series: BTreeMap<Path3, Series>,
    /// Whether HAProxy was there.
    pub haproxy: bool,
    pub rounds: usize,
}

impl Overhead {
    fn get(&self, p: Path3) -> Option<&Series> {
        self.series.get(&p)
    }

    /// Median over rounds of the per-round p50 (ms) through `p`.
    pub fn p50(&self, p: Path3) -> f64 {
        self.get(p).map_or(f64::NAN, |s| median(&s.p50))
    }

    pub fn p99(&self, p: Path3) -> f64 {
        self.get(p).map_or(f64::NAN, |s| median(&s.p99))
    }

    pub fn rps(&self, p: Path3) -> f64 {
        self.get(p).map_or(f64::NAN, |s| median(&s.rps))
    }

    /// Median over rounds of (p50 through `p` - p50 direct) of the same round (ms).
    pub fn added_p50(&self, p: Path3) -> f64 {
        let (Some(s), Some(d)) = (self.get(p), self.get(Path3::Direct)) else {
            return f64::NAN;
        };
        let added: Vec<f64> = s.p50.iter().zip(&d.p50).map(|(a, b)| a - b).collect();
        median(&added)
    }
}

/// A child process killed (SIGKILL, by its PID) and reaped on drop.
struct ChildGuard {
    child: Child,
    what: &'static str,
}

impl ChildGuard {
    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.what);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this child's PID (still ours until reaped).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Slipway's proxy engine on its own 2-worker runtime; stopped on drop.
struct InProcessProxy {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessProxy {
    /// Serves `listen` -> `backend` (HTTP mode, one ready endpoint).
    async fn start(listen: SocketAddrV4, backend: SocketAddrV4) -> Result<InProcessProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("slipway-proxy")
            .enable_all()
            .build()?;
        let mut services = BTreeMap::new();
        services.insert(
            ServiceKey {
                namespace: "bench".into(),
                name: "backend".into(),
            },
            ServiceState {
                ports: vec![PortState {
                    name: "http".into(),
                    frontends: vec![Frontend::Host(listen)],
                    app_protocol: AppProtocol::Http,
                    endpoints: vec![Endpoint {
                        pod_uid: None,
                        ip: *backend.ip(),
                        port: backend.port(),
                        ready: true,
                        serving: true,
                        terminating: false,
                        weight: 1,
                        ..Endpoint::default()
                    }],
                    ..PortState::default()
                }],
                ..ServiceState::default()
            },
        );
        let state = DesiredState { services };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let proxy = Proxy::new(Arc::new(HostNetwork));
            let failures = proxy.apply(state).await;
            let _ = ready_tx.send(failures);
            let _ = stop_rx.await;
            drop(proxy);
        });
        let mut guard = InProcessProxy {
            runtime: Some(runtime),
            stop: Some(stop_tx),
        };
        let failures = ready_rx.await.context("the proxy task ended")?;
        if !failures.is_empty() {
            guard.stop();
            bail!("the proxy could not listen: {failures:?}");
        }
        Ok(guard)
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for InProcessProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until a `GET /` through `addr` returns 200 (bounded).
async fn wait_answers(addr: SocketAddr, child: Option<&mut ChildGuard>) -> Result<()> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let mut child = child;
    loop {
        let mut c = Client::new(addr);
        let err = match c.get(true).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if let Some(ch) = child.as_deref_mut() {
            ch.check_running()?;
        }
        if Instant::now() > deadline {
            bail!(
                "{addr} did not answer within {LISTEN_TIMEOUT:?}: {}",
                err.detail
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The HAProxy configuration: HTTP mode, keep-alive, one server, 2 threads, 30 s timeouts.
fn haproxy_config(listen: u16, backend: u16) -> String {
    format!(
        "global\n    nbthread 2\n    maxconn 4000\n\n\
         defaults\n    mode http\n    option http-keep-alive\n    timeout connect 30s\n    \
         timeout client 30s\n    timeout server 30s\n\n\
         frontend bench\n    bind 127.0.0.1:{listen}\n    default_backend sample\n\n\
         backend sample\n    server s1 127.0.0.1:{backend}\n"
    )
}

/// Sequential keep-alive GETs over one connection: `(p50, p99)` in ms of `n` timed
/// requests after `warm_up`. Any failure fails the run.
async fn latency(addr: SocketAddr, warm_up: usize, n: usize) -> Result<(f64, f64)> {
    let run = async {
        let mut c = Client::new(addr);
        for _ in 0..warm_up {
            c.get(false)
                .await
                .map_err(|e| anyhow::anyhow!("warm-up: {}", e.detail))?;
        }
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            c.get(false)
                .await
                .map_err(|e| anyhow::anyhow!("request {i}: {}", e.detail))?;
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
        anyhow::Ok((quantile(&samples, 0.5), quantile(&samples, 0.99)))
    };
    tokio::time::timeout(LATENCY_TIMEOUT, run)
        .await
        .with_context(|| format!("latency run over {LATENCY_TIMEOUT:?}"))?
}

/// `conns` keep-alive connections sending GETs back to back; responses per second over
/// `window` (after a warm-up), and the failed requests.
async fn throughput(addr: SocketAddr, conns: usize, window: Duration) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut c = Client::new(addr);
                while !stop.load(Ordering::Relaxed) {
                    match c.get(false).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(THROUGHPUT_WARM_UP).await;
    let (n0, f0, t0) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (n1, f1, took) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    ((n1 - n0) as f64 / took.as_secs_f64(), f1 - f0)
}

/// Runs the comparison.
pub async fn run(bin: &Path, plan: &Plan) -> Result<Overhead> {
    let dir = tempfile::Builder::new()
        .prefix("slipway-bench-proxy-")
        .tempdir()?;
    let lo = Ipv4Addr::LOCALHOST;

    // The backend: the sample on the host.
    let backend_port = free_port()?;
    let mut backend = ChildGuard {
        child: Command::new(bin)
            .args(["sample", "random-generator"])
            .env("PORT", backend_port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("QUIET", "1")
            .env("READY_DELAY_SECONDS", "0")
            .env("READY_FILE", dir.path().join("ready"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {} sample random-generator", bin.display()))?,
        what: "the sample backend",
    };
    let backend_addr = SocketAddrV4::new(lo, backend_port);
    wait_answers(backend_addr.into(), Some(&mut backend)).await?;

    // HAProxy, if installed.
    let mut haproxy = None;
    let mut paths = vec![(Path3::Direct, SocketAddr::from(backend_addr))];
    if Path::new(HAPROXY).is_file() {
        let port = free_port()?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_config(port, backend_port))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let mut guard = ChildGuard {
            child: Command::new(HAPROXY)
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("spawning haproxy")?,
            what: "haproxy",
        };
        let addr = SocketAddr::from(SocketAddrV4::new(lo, port));
        if let Err(e) = wait_answers(addr, Some(&mut guard)).await {
            let log = std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default();
            return Err(e.context(format!("haproxy log: {}", log.trim())));
        }
        eprintln!(
            "note: {}",
            Command::new(HAPROXY)
                .arg("-v")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string())
                .unwrap_or_default()
        );
        haproxy = Some(guard);
        paths.push((Path3::HaProxy, addr));
    } else {
        println!(
            "SKIP proxy overhead vs HAProxy: {HAPROXY} is missing (apt-get install haproxy); \
             Slipway is compared with the direct path only"
        );
    }

    // Slipway's engine, in-process.
    let listen = SocketAddrV4::new(lo, free_port()?);
    let proxy = InProcessProxy::start(listen, backend_addr).await?;
    wait_answers(listen.into(), None).await?;
    paths.push((Path3::Slipway, listen.into()));

    let mut out = Overhead {
        haproxy: haproxy.is_some(),
        rounds: plan.rounds,
        ..Overhead::default()
    };
    for round in 0..plan.rounds {
        let mut order = paths.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for &(p, addr) in &order {
            let (p50, p99) = latency(addr, plan.latency_warm_up, plan.latency_requests)
                .await
                .with_context(|| format!("latency via {}", p.label()))?;
            let s = out.series.entry(p).or_default();
            s.p50.push(p50);
            s.p99.push(p99);
        }
        for &(p, addr) in &order {
            let (rps, failed) = throughput(addr, THROUGHPUT_CONNS, plan.throughput_window).await;
            let s = out.series.entry(p).or_default();
            s.rps.push(rps);
            s.failed += failed;
        }
        let line: Vec<String> = order
            .iter()
            .map(|(p, _)| {
                let s = &out.series[p];
                format!(
                    "{} p50 {:.3} ms p99 {:.3} ms {:.0} req/s",
                    p.label(),
                    s.p50[round],
                    s.p99[round],
                    s.rps[round]
                )
            })
            .collect();
        eprintln!("note: round {}: {}", round + 1, line.join("; "));
        backend.check_running()?;
        if let Some(h) = haproxy.as_mut() {
            h.check_running()?;
        }
    }
    drop(proxy);
    drop(haproxy);
    drop(backend);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_both_ports() {
        let c = haproxy_config(1234, 5678);
        assert!(c.contains("bind 127.0.0.1:1234"));
        assert!(c.contains("server s1 127.0.0.1:5678"));
        assert!(c.contains("mode http") && c.contains("nbthread 2"));
    }

    #[test]
    fn added_latency_pairs_rounds() {
        let mut o = Overhead::default();
        o.series.entry(Path3::Direct).or_default().p50 = vec![0.1, 0.2, 0.1];
        o.series.entry(Path3::Slipway).or_default().p50 = vec![0.15, 0.3, 0.12];
        let added = o.added_p50(Path3::Slipway);
        assert!((added - 0.05).abs() < 1e-9, "{added}");
        assert!(o.added_p50(Path3::HaProxy).is_nan());
    }
}
