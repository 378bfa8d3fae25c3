//! Baselines measured in the same run: a minimal TLS server, a plain SQLite write loop, and a
//! trivial process.

use crate::client::Endpoint;
use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The least an HTTPS server can do: TLS (the same rustls configuration and certificates
/// that Slipway uses), HTTP/1.1 keep-alive, and one fixed JSON body for every request. It
/// runs on its own runtime (its own threads), as a separate server process would.
pub struct MinimalServer {
    runtime: Option<tokio::runtime::Runtime>,
    /// How to reach it.
    pub endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

impl MinimalServer {
    /// Starts serving `body` on a free loopback port.
    pub fn start(body: Bytes) -> Result<MinimalServer> {
        let dir = tempfile::tempdir()?;
        let creds = slipway_pki::load_or_create(dir.path())?;
        let tls = slipway_pki::server_config(&creds)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("baseline-server")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |_req| {
                        let mut resp = Response::new(Full::new(body.clone()));
                        resp.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let endpoint = Endpoint::new(addr, &creds.ca_pem, &creds.token)?;
        Ok(MinimalServer {
            runtime: Some(runtime),
            endpoint,
            _dir: dir,
        })
    }
}

impl Drop for MinimalServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Durable single-row inserts per second with rusqlite: WAL, `synchronous=FULL`, one
/// transaction (INSERT + COMMIT) per row, for `duration`, storing `value` under unique keys.
pub fn sqlite_inserts_per_sec(value: &[u8], duration: Duration) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = rusqlite::Connection::open(dir.path().join("baseline.db"))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute_batch("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")?;
    let mut stmt = db.prepare("INSERT INTO kv (key, value) VALUES (?1, ?2)")?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration && n < 1_000_000 {
        // Autocommit: each execute is its own transaction, committed (and fsynced) on return.
        stmt.execute(rusqlite::params![format!("key-{n}"), value])
            .context("baseline insert")?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// VmRSS of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb / 1024.0)
}

/// RSS of a trivial process (`sleep`) shortly after it starts, in MiB.
pub fn trivial_rss_mib() -> Result<f64> {
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("spawning sleep")?;
    std::thread::sleep(Duration::from_millis(200));
    let rss = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    rss
}
