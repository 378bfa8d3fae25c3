//! The control API: HTTP/1.1 on a Unix socket.

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::task::JoinSet;

use super::Proxy;

/// Longest drain the API accepts.
const MAX_DRAIN: Duration = Duration::from_secs(3600);

pub(crate) async fn serve(proxy: Proxy, path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    // Dropping this future drops the set, which aborts the connection tasks.
    let mut conns = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let proxy = proxy.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(route(&proxy, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", format!("{v}\n"))
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": msg }))
}

async fn route(proxy: &Proxy, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok".into()),
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            proxy.metrics_text(),
        ),
        (&Method::GET, "/v1/state") => json(StatusCode::OK, &proxy.state_json()),
        (&Method::POST, "/v1/drain") => {
            let mut uid = None;
            let mut timeout = None;
            for (k, v) in query_pairs(req.uri().query().unwrap_or("")) {
                match k.as_str() {
                    "uid" => uid = Some(v),
                    "timeoutSeconds" => timeout = Some(v),
                    _ => {}
                }
            }
            let Some(uid) = uid.filter(|u| !u.is_empty()) else {
                return error(StatusCode::BAD_REQUEST, "query parameter uid is required");
            };
            let timeout = match timeout.map(|t| t.parse::<f64>()) {
                None => Duration::from_secs(30),
                Some(Ok(t)) if t.is_finite() && t >= 0.0 => {
                    Duration::from_secs_f64(t).min(MAX_DRAIN)
                }
                Some(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "timeoutSeconds must be a non-negative number",
                    );
                }
            };
            let out = proxy.drain(&uid, timeout).await;
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "openConnections": out.open_connections,
                    "inFlightRequests": out.in_flight_requests,
                    "timedOut": out.timed_out,
                }),
            )
        }
        (_, "/healthz" | "/metrics" | "/v1/state" | "/v1/drain") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `a=b&c=d` with percent-decoding (`+` is a space).
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = query_pairs("uid=a%2Db&timeoutSeconds=5&x=%zz&y=%4");
        assert_eq!(q[0], ("uid".into(), "a-b".into()));
        assert_eq!(q[1], ("timeoutSeconds".into(), "5".into()));
        assert_eq!(q[2], ("x".into(), "%zz".into()));
        assert_eq!(q[3], ("y".into(), "%4".into()));
    }
}
