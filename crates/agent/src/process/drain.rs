//! Taking a pod out of the service proxy's rotation before it is stopped.
//!
//! When a pod is deleted, the agent first asks the service proxy to drain it, then runs the
//! preStop hooks and sends SIGTERM. The proxy listens on the Unix socket
//! `<data_dir>/proxy/control.sock`; the request is
//!
//! ```text
//! POST /v1/drain?uid=<pod uid>&timeoutSeconds=<n> HTTP/1.1
//! ```
//!
//! and the proxy answers `200` with `{"openConnections":N,"inFlightRequests":N,"timedOut":bool}`
//! once it sends no new connection or request to the pod and the ones it carried have
//! finished, or after `n` seconds. `n` is half the termination grace period (at least 1, at
//! most 30 s); the whole call is bounded by `n + 2` s. Without a proxy (no socket, or any
//! failure) the agent goes on at once: there is nothing to drain.

use serde::Deserialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// What the proxy reports once a pod is drained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DrainReport {
    /// Connections to the pod still open when the proxy answered.
    pub open_connections: u64,
    /// Requests to the pod still in flight when the proxy answered.
    pub in_flight_requests: u64,
    /// True when the proxy answered because the timeout passed.
    pub timed_out: bool,
}

/// A boxed future, so that the trait can be used as `dyn TrafficDrain`.
pub type DrainFuture<'a> = Pin<Box<dyn Future<Output = Option<DrainReport>> + Send + 'a>>;

/// Takes a pod out of rotation before it is stopped. Injected into the agent
/// ([`start_process_with_drain`](super::start_process_with_drain)); the default is
/// [`ProxyDrain`].
pub trait TrafficDrain: Send + Sync + 'static {
    /// Drains the pod `uid`, waiting at most about `timeout` (the implementation bounds
    /// itself). `None` when nothing was drained (no proxy, or the call failed).
    fn drain<'a>(&'a self, uid: &'a str, timeout: Duration) -> DrainFuture<'a>;
}

/// No draining at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDrain;

impl TrafficDrain for NoDrain {
    fn drain<'a>(&'a self, _uid: &'a str, _timeout: Duration) -> DrainFuture<'a> {
        Box::pin(async { None })
    }
}

/// The drain timeout for a termination grace period: half of it, rounded down, at least
/// 1 s and at most 30 s.
pub fn drain_timeout(grace: Duration) -> Duration {
    Duration::from_secs((grace.as_secs() / 2).clamp(1, 30))
}

/// The service proxy's control socket under a data dir.
pub fn control_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("proxy").join("control.sock")
}

/// Drains through the service proxy's control socket (HTTP/1.1 over a Unix socket).
#[derive(Clone, Debug)]
pub struct ProxyDrain {
    socket: PathBuf,
}

impl ProxyDrain {
    /// A client of the proxy listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> ProxyDrain {
        ProxyDrain {
            socket: socket.into(),
        }
    }

    /// The client of the proxy of a data dir (`<data_dir>/proxy/control.sock`).
    pub fn for_data_dir(data_dir: &Path) -> ProxyDrain {
        ProxyDrain::new(control_socket(data_dir))
    }

    /// The request, bounded by `timeout` + 2 s. Errors say what failed.
    pub async fn request(&self, uid: &str, timeout: Duration) -> Result<DrainReport, String> {
        let bound = timeout + Duration::from_secs(2);
        tokio::time::timeout(bound, self.request_unbounded(uid, timeout))
            .await
            .map_err(|_| format!("no answer within {bound:?}"))?
    }

    async fn request_unbounded(&self, uid: &str, timeout: Duration) -> Result<DrainReport, String> {
        use http_body_util::BodyExt as _;
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| format!("connect to {}: {e}", self.socket.display()))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let conn = tokio::spawn(conn);
        let uri = format!(
            "/v1/drain?uid={}&timeoutSeconds={}",
            query_escape(uid),
            timeout.as_secs()
        );
        let request = hyper::Request::post(uri)
            .header(hyper::header::HOST, "localhost")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("response body: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            serde_json::from_slice(&body).map_err(|e| format!("response body: {e}"))
        }
        .await;
        conn.abort();
        result
    }
}

impl TrafficDrain for ProxyDrain {
    fn drain<'a>(&'a self, uid: &'a str, timeout: Duration) -> DrainFuture<'a> {
        Box::pin(async move {
            if !self.socket.exists() {
                tracing::debug!(uid, socket = %self.socket.display(), "no service proxy; nothing to drain");
                return None;
            }
            match self.request(uid, timeout).await {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::debug!(uid, error = %e, "draining the pod at the service proxy failed; going on");
                    None
                }
            }
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn timeouts_are_half_the_grace_period_within_1_and_30_s() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(drain_timeout(s(0)), s(1));
        assert_eq!(drain_timeout(s(1)), s(1));
        assert_eq!(drain_timeout(s(5)), s(2));
        assert_eq!(drain_timeout(s(30)), s(15));
        assert_eq!(drain_timeout(s(3600)), s(30));
        assert_eq!(query_escape("a-b_c.d~e/f g"), "a-b_c.d~e%2Ff%20g");
    }

    /// Serves one request on `path`; returns the request head it read.
    async fn serve_once(
        listener: tokio::net::UnixListener,
        response: &'static str,
    ) -> tokio::task::JoinHandle<String> {
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending a request");
                head.extend_from_slice(&buf[..n]);
            }
            conn.write_all(response.as_bytes()).await.unwrap();
            conn.shutdown().await.ok();
            String::from_utf8_lossy(&head).into_owned()
        })
    }

    #[tokio::test]
    async fn the_proxy_client_posts_the_drain_and_reads_the_report() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = control_socket(tmp.path());
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let body = r#"{"openConnections":2,"inFlightRequests":1,"timedOut":true}"#;
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let server = serve_once(listener, response).await;
        let drain = ProxyDrain::for_data_dir(tmp.path());
        let report = drain.drain("0b1c-uid", Duration::from_secs(7)).await;
        assert_eq!(
            report,
            Some(DrainReport {
                open_connections: 2,
                in_flight_requests: 1,
                timed_out: true
            })
        );
        let head = server.await.unwrap();
        assert!(
            head.starts_with("POST /v1/drain?uid=0b1c-uid&timeoutSeconds=7 HTTP/1.1\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn without_a_proxy_or_with_a_failing_one_the_drain_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let drain = ProxyDrain::for_data_dir(tmp.path());
        let started = std::time::Instant::now();
        assert_eq!(drain.drain("u", Duration::from_secs(5)).await, None);
        assert!(started.elapsed() < Duration::from_secs(1));

        let socket = control_socket(tmp.path());
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = serve_once(
            listener,
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
        )
        .await;
        assert_eq!(drain.drain("u", Duration::from_secs(5)).await, None);
        server.await.unwrap();
        let err = drain
            .request("u", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }

    #[tokio::test]
    async fn a_proxy_that_does_not_answer_is_given_up_after_the_timeout_and_2_s() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = control_socket(tmp.path());
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let silent = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            // Holds the connection open without answering.
            std::future::pending::<()>().await;
            drop(conn);
        });
        let drain = ProxyDrain::for_data_dir(tmp.path());
        let err = drain
            .request("u", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.contains("no answer within 3s"), "{err}");
        silent.abort();
    }
}
