//! HTTP for hooks and web checks: loopback only.
//!
//! URLs name a loopback IPv4 address, `localhost`, or a Service (`<svc>`, `<svc>.<ns>`,
//! `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`); the executor resolves Service names to
//! their ClusterIP (Services live on 127.96.0.0/11) before calling [`HttpProbe`], and
//! [`LoopbackHttp`] refuses anything that is not loopback, so no traffic ever leaves the
//! machine.

use futures::future::BoxFuture;
use std::net::Ipv4Addr;
use std::time::Duration;

/// An HTTP client for hooks and web checks (loopback only).
pub trait HttpProbe: Send + Sync {
    /// Sends `method url` (with `body`, if any) and returns the status and the body, or an
    /// error when there is no answer within `timeout`.
    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(u16, String), String>>;
}

/// The parts of an `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    pub host: String,
    pub port: Option<u16>,
    /// Starts with `/`.
    pub path_and_query: String,
}

impl HttpUrl {
    /// The URL with `host` in place of its host.
    pub fn with_host(&self, host: &str) -> String {
        match self.port {
            Some(p) => format!("http://{host}:{p}{}", self.path_and_query),
            None => format!("http://{host}{}", self.path_and_query),
        }
    }
}

/// Splits an `http://` URL. Only plain HTTP without user info is accepted.
pub(crate) fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| {
            url.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("http://"))
                .map(|_| &url[7..])
        })
        .ok_or_else(|| format!("unsupported URL {url:?}: only http:// is allowed"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!("unsupported URL {url:?}: user info is not allowed"));
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    let (host, port) = if authority.starts_with('[') {
        // IPv6 literals are refused later; keep the host whole.
        match authority.rfind("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("URL {url:?} has a bad port"))?,
        ),
        None => None,
    };
    Ok(HttpUrl {
        host: host.to_ascii_lowercase(),
        port,
        path_and_query,
    })
}

/// Where a URL's host points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A loopback IPv4 literal or `localhost`: used as is.
    Loopback,
    /// A Service, to resolve to its ClusterIP.
    Service { namespace: String, name: String },
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Classifies `host` (lowercase); bare Service names are in `namespace`.
pub(crate) fn classify(host: &str, namespace: &str) -> Result<Target, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return if ip.is_loopback() {
            Ok(Target::Loopback)
        } else {
            Err(format!("refusing {host}: not a loopback address"))
        };
    }
    if host == "localhost" {
        return Ok(Target::Loopback);
    }
    let name = host.trim_end_matches('.');
    let name = name
        .strip_suffix(".svc.cluster.local")
        .or_else(|| name.strip_suffix(".svc"))
        .unwrap_or(name);
    let parts: Vec<&str> = name.split('.').collect();
    let refuse = || format!("refusing {host}: neither a loopback IPv4 address nor a Service name");
    if !parts.iter().all(|p| dns_label(p)) || parts.iter().all(|p| p.parse::<u32>().is_ok()) {
        return Err(refuse());
    }
    match parts.as_slice() {
        [svc] => Ok(Target::Service {
            namespace: namespace.to_string(),
            name: svc.to_string(),
        }),
        [svc, ns] => Ok(Target::Service {
            namespace: ns.to_string(),
            name: svc.to_string(),
        }),
        _ => Err(refuse()),
    }
}

/// The loopback address `host` names, if it names one.
fn loopback_ip(host: &str) -> Option<Ipv4Addr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(Ipv4Addr::LOCALHOST);
    }
    host.parse::<Ipv4Addr>().ok().filter(|ip| ip.is_loopback())
}

/// Largest response body kept.
const MAX_BODY: usize = 1 << 20;

/// [`HttpProbe`] over hyper (HTTP/1.1, one connection per call) that only connects to
/// loopback IPv4 addresses (`127.0.0.0/8`, `localhost`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopbackHttp;

impl HttpProbe for LoopbackHttp {
    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(u16, String), String>> {
        let (method, url) = (method.to_string(), url.to_string());
        Box::pin(async move {
            tokio::time::timeout(timeout, send(&method, &url, body))
                .await
                .map_err(|_| format!("no answer within {}s", timeout.as_secs_f64()))?
        })
    }
}

async fn send(method: &str, url: &str, body: Option<String>) -> Result<(u16, String), String> {
    use http_body_util::BodyExt as _;
    let parsed = parse_url(url)?;
    let ip = loopback_ip(&parsed.host)
        .ok_or_else(|| format!("refusing {}: not a loopback address", parsed.host))?;
    let port = parsed.port.unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("connect to {ip}:{port}: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake with {ip}:{port}: {e}"))?;
    let conn = tokio::spawn(conn);
    let method = hyper::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad HTTP method {method:?}"))?;
    let host = match parsed.port {
        Some(p) => format!("{}:{p}", parsed.host),
        None => parsed.host.clone(),
    };
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(parsed.path_and_query.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "slipway-rollout");
    if body.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.unwrap_or_default(),
        )))
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request to {ip}:{port}: {e}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("response body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                let room = MAX_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&data[..data.len().min(room)]);
                if buf.len() >= MAX_BODY {
                    break;
                }
            }
        }
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls_split() {
        let u = parse_url("http://web.prod:8080/health?x=1#frag").unwrap();
        assert_eq!(u.host, "web.prod");
        assert_eq!(u.port, Some(8080));
        assert_eq!(u.path_and_query, "/health?x=1");
        assert_eq!(
            u.with_host("127.96.0.3"),
            "http://127.96.0.3:8080/health?x=1"
        );
        let u = parse_url("HTTP://Localhost").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("localhost", None, "/")
        );
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http://user@127.0.0.1/").is_err());
        assert!(parse_url("http://127.0.0.1:99999/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn hosts_are_classified() {
        assert_eq!(classify("127.0.0.1", "default"), Ok(Target::Loopback));
        assert_eq!(classify("127.96.0.10", "default"), Ok(Target::Loopback));
        assert_eq!(classify("localhost", "default"), Ok(Target::Loopback));
        let svc = |ns: &str, n: &str| {
            Ok(Target::Service {
                namespace: ns.into(),
                name: n.into(),
            })
        };
        assert_eq!(classify("web", "team"), svc("team", "web"));
        assert_eq!(classify("web.prod", "team"), svc("prod", "web"));
        assert_eq!(classify("web.prod.svc", "team"), svc("prod", "web"));
        assert_eq!(
            classify("web.prod.svc.cluster.local", "team"),
            svc("prod", "web")
        );
        assert!(classify("10.0.0.1", "default").is_err());
        assert!(classify("8.8.8.8", "default").is_err());
        assert!(classify("example.com.evil.org", "default").is_err());
        assert!(classify("[::1]", "default").is_err());
        assert!(classify("2130706433", "default").is_err());
    }

    #[tokio::test]
    async fn loopback_http_talks_to_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(head_end) = text.find("\r\n\r\n")
                    && (text[head_end + 4..].len() >= 7 || n == 0)
                {
                    break;
                }
            }
            let body = "{\"ok\":true}";
            let resp = format!(
                "HTTP/1.1 201 Created\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        let url = format!("http://127.0.0.1:{port}/hook?x=1");
        let (code, body) = LoopbackHttp
            .call(
                "post",
                &url,
                Some("{\"a\":1}".into()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(code, 201);
        assert_eq!(body, "{\"ok\":true}");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with("{\"a\":1}"), "{request}");
    }

    #[tokio::test]
    async fn loopback_http_refuses_other_hosts() {
        for url in [
            "http://10.1.2.3/",
            "http://example.com/",
            "http://web.default/",
            "http://[::1]:80/",
        ] {
            let err = LoopbackHttp
                .call("GET", url, None, Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(err.contains("refusing"), "{url}: {err}");
        }
    }
}
