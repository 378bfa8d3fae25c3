//! HTTP mode: a hyper server on the client connection, one backend choice per request
//! (with connection pinning, except under a traffic split with weights, and for requests
//! a header route matches), pooled hyper client connections to endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use super::Inner;
use super::metrics::ErrorReason;
use super::state::{EndpointRt, EpId, Load, LoadGuard, PortRt, PortSnap, ep_id};
use super::tcp::{CountingStream, dial};

/// Body of a request sent to a backend.
pub(crate) enum ReqBody {
    Empty,
    /// The client's body.
    Client(Incoming),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Client(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Client(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Client(body) => body.size_hint(),
        }
    }
}

/// Body of a response sent to the client.
pub(crate) enum RespBody {
    Full(Option<Bytes>),
    Proxied(Proxied),
}

/// A backend response body. When it ends, the backend connection goes back to the pool;
/// when it is dropped, the request stops counting as in flight.
pub(crate) struct Proxied {
    body: Incoming,
    sender: Option<SendRequest<ReqBody>>,
    guard: Option<LoadGuard>,
}

impl Proxied {
    fn finish(&mut self, complete: bool) {
        if let Some(sender) = self.sender.take()
            && complete
            && let Some(g) = &self.guard
        {
            g.endpoint().pool_put(sender);
        }
        self.guard = None;
    }
}

impl Drop for Proxied {
    fn drop(&mut self) {
        let complete = self.body.is_end_stream();
        self.finish(complete);
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Proxied(p) => match Pin::new(&mut p.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if p.body.is_end_stream() {
                        p.finish(true);
                    }
                    Poll::Ready(Some(Ok(f)))
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(g) = &p.guard {
                        g.endpoint().m.error(ErrorReason::BackendReset);
                    }
                    p.finish(false);
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    p.finish(true);
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Proxied(p) => p.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Proxied(p) => p.body.size_hint(),
        }
    }
}

/// Serves one client connection in HTTP mode until it closes.
pub(crate) async fn serve(
    inner: Arc<Inner>,
    port: Arc<PortRt>,
    stream: CountingStream,
    peer: SocketAddr,
) {
    let xff = HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a valid header value");
    let ctx = Arc::new(ClientConn {
        inner,
        port,
        peer,
        xff,
        pin: Mutex::new(None),
    });
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(ctx.handle(req).await) }
    });
    // No header read timeout: idle client keep-alive connections stay open until the
    // client closes them (closing them here would race with the client's next request).
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .auto_date_header(false)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
}

struct ClientConn {
    inner: Arc<Inner>,
    port: Arc<PortRt>,
    peer: SocketAddr,
    /// The client IP as a header value.
    xff: HeaderValue,
    /// The endpoint the previous request used.
    pin: Mutex<Option<Arc<EndpointRt>>>,
}

/// Parts of a bodiless request kept to retry it on a fresh connection.
struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn of(req: &Request<ReqBody>) -> Template {
        Template {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        }
    }

    fn build(self) -> Request<ReqBody> {
        let mut req = Request::new(ReqBody::Empty);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        req
    }
}

enum Failure {
    NoEndpoints,
    AllFailed,
}

impl ClientConn {
    async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<RespBody> {
        let started = Instant::now();
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        prepare_request(&mut parts, &self.xff, upgrade);
        let retryable = body.is_end_stream() && !upgrade && idempotent(&parts.method);
        let snap = self.port.snapshot();
        let route = snap.route(&parts.headers);
        let mut req = Some(Request::from_parts(parts, ReqBody::Client(body)));
        let mut tried: Vec<EpId> = Vec::new();
        let mut fresh_only = false;
        // A retry on a fresh connection stays with the endpoint chosen.
        let mut again: Option<LoadGuard> = None;
        loop {
            let guard = match again.take() {
                Some(g) => g,
                None => match self.choose(&snap, &tried, route) {
                    Some(g) => g,
                    None => {
                        return self.fail(if tried.is_empty() {
                            Failure::NoEndpoints
                        } else {
                            Failure::AllFailed
                        });
                    }
                },
            };
            let ep = guard.endpoint().clone();
            let pooled = if fresh_only {
                None
            } else {
                ep.pool_take().await
            };
            let reused = pooled.is_some();
            let mut sender = match pooled {
                Some(s) => s,
                None => match self.connect(&ep).await {
                    Ok(s) => s,
                    Err(reason) => {
                        ep.m.error(reason);
                        tried.push(ep_id(&ep));
                        continue;
                    }
                },
            };
            let out = req.take().expect("request present until sent");
            let template = (reused && retryable).then(|| Template::of(&out));
            match sender.send_request(out).await {
                Ok(resp) => {
                    let pin = route.is_none();
                    return self.respond(guard, sender, resp, started, client_upgrade, pin);
                }
                Err(e) => match template {
                    Some(t) => {
                        tracing::debug!(endpoint = %ep.addr, error = %e, "retrying on a fresh connection");
                        req = Some(t.build());
                        fresh_only = true;
                        again = Some(guard);
                    }
                    None => {
                        ep.m.error(ErrorReason::BackendReset);
                        tracing::debug!(endpoint = %ep.addr, error = %e, "backend failed before response");
                        return text(
                            StatusCode::BAD_GATEWAY,
                            format!(
                                "backend {} of service {}/{} port {} failed before responding\n",
                                ep.addr,
                                self.port.key.namespace,
                                self.port.key.name,
                                self.port.label
                            ),
                        );
                    }
                },
            }
        }
    }

    /// The pinned endpoint while it stays pinnable, else a fresh pick; counted as in flight.
    ///
    /// A pin survives its endpoint leaving the port's set (a blue-green selector switch:
    /// the old pod keeps running), so a connection already open stays on its pod until it
    /// closes; it ends when the pod is drained (it is being deleted).
    ///
    /// No pin is used under a split with weights (each request is balanced, so the shares
    /// hold per request with long-lived clients), nor for a request that matched a header
    /// route (`route`: its group).
    fn choose(&self, snap: &PortSnap, tried: &[EpId], route: Option<usize>) -> Option<LoadGuard> {
        let pinned = if route.is_none() && !snap.per_request() {
            self.pin.lock().clone()
        } else {
            None
        };
        if let Some(ep) = pinned
            && !tried.contains(&ep_id(&ep))
            && (snap.pin_valid(&ep)
                || (ep.retired.load(std::sync::atomic::Ordering::SeqCst) && !ep.is_drained()))
            && let Some(g) = ep.try_acquire(Load::Req)
        {
            return Some(g);
        }
        let mut local: Vec<EpId> = Vec::new();
        loop {
            let skip: &[EpId] = if local.is_empty() { tried } else { &local };
            let ep = self.port.pick(snap, self.peer.ip(), skip, route)?;
            if let Some(g) = ep.try_acquire(Load::Req) {
                return Some(g);
            }
            // Drained between the pick and the count: pick again without it.
            if local.is_empty() {
                local.extend_from_slice(tried);
            }
            local.push(ep_id(&ep));
        }
    }

    async fn connect(&self, ep: &Arc<EndpointRt>) -> Result<SendRequest<ReqBody>, ErrorReason> {
        let stream: TcpStream = dial(&self.inner, ep).await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, ReqBody>(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorReason::Connect)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn respond(
        &self,
        guard: LoadGuard,
        sender: SendRequest<ReqBody>,
        mut resp: Response<Incoming>,
        started: Instant,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        pin: bool,
    ) -> Response<RespBody> {
        let ep = guard.endpoint().clone();
        let status = resp.status();
        ep.m.response(status.as_u16(), started.elapsed());
        if pin {
            let mut p = self.pin.lock();
            // Usually the same endpoint: spare the reference count traffic.
            if !p.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, &ep)) {
                *p = Some(ep.clone());
            }
        }
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_up) = client_upgrade
        {
            let backend_up = hyper::upgrade::on(&mut resp);
            let tunnel = ep.acquire(Load::Conn);
            tokio::spawn(async move {
                let _tunnel = tunnel;
                let _sender = sender;
                let (Ok(c), Ok(b)) = (client_up.await, backend_up.await) else {
                    return;
                };
                let mut c = TokioIo::new(c);
                let mut b = TokioIo::new(b);
                // The client side is a CountingStream underneath: bytes are counted there.
                let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
            });
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, RespBody::Full(None));
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        Response::from_parts(
            parts,
            RespBody::Proxied(Proxied {
                body,
                sender: Some(sender),
                guard: Some(guard),
            }),
        )
    }

    fn fail(&self, f: Failure) -> Response<RespBody> {
        let k = &self.port.key;
        let msg = match f {
            Failure::NoEndpoints => {
                self.port.m.no_endpoints.fetch_add(1, Relaxed);
                format!(
                    "no ready endpoints for service {}/{} port {}\n",
                    k.namespace, k.name, self.port.label
                )
            }
            Failure::AllFailed => format!(
                "no endpoint of service {}/{} port {} accepted a connection\n",
                k.namespace, k.name, self.port.label
            ),
        };
        text(StatusCode::SERVICE_UNAVAILABLE, msg)
    }
}

fn text(status: StatusCode, msg: String) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::Full(Some(Bytes::from(msg))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// `Connection: upgrade` plus an `Upgrade` header.
fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `n` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(n: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|h| h == n)
}

/// Removes hop-by-hop headers (and those the Connection header names); an upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    // Usual case: no hop-by-hop header at all (hence no Connection header naming others),
    // found by one walk over the names instead of a hashed lookup per hop-by-hop name.
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && *n == header::UPGRADE))
        .collect();
    for n in named {
        h.remove(n);
    }
    let upgrade_value = if upgrade {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    if let Some(v) = upgrade_value {
        h.insert(header::UPGRADE, v);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Makes the client's request fit to send to a backend: origin-form URI, no hop-by-hop
/// headers, `X-Forwarded-For` extended with the client IP.
fn prepare_request(parts: &mut http::request::Parts, client_ip: &HeaderValue, upgrade: bool) {
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        if !parts.headers.contains_key(header::HOST)
            && let Some(a) = parts.uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            parts.headers.insert(header::HOST, v);
        }
        if parts.method != Method::CONNECT {
            let pq = parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned();
            if let Ok(u) = pq.parse() {
                parts.uri = u;
            }
        }
    }
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.version = http::Version::HTTP_11;
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    // One hashed lookup of the name in the usual case (no X-Forwarded-For yet).
    let prev = match parts.headers.entry(XFF) {
        http::header::Entry::Vacant(v) => {
            v.insert(client_ip.clone());
            return;
        }
        http::header::Entry::Occupied(o) => o,
    };
    let ip = client_ip.to_str().unwrap_or_default();
    let value = match prev.get().to_str() {
        Ok(first) if !first.is_empty() => {
            let mut joined = String::with_capacity(first.len() + ip.len() + 2);
            for (i, v) in prev.iter().filter_map(|v| v.to_str().ok()).enumerate() {
                if i > 0 {
                    joined.push_str(", ");
                }
                joined.push_str(v);
            }
            joined.push_str(", ");
            joined.push_str(ip);
            joined
        }
        _ => ip.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        let mut prev = prev;
        prev.insert(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_removed_and_connection_named_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-foo"),
        );
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-bar", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-bar"));
    }

    #[test]
    fn upgrade_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_for_appended() {
        let req = Request::builder()
            .uri("http://example.com/a?b=1")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap();
        let (mut parts, _) = req.into_parts();
        prepare_request(&mut parts, &HeaderValue::from_static("127.0.0.9"), false);
        assert_eq!(parts.uri, "/a?b=1");
        assert_eq!(parts.headers["host"], "example.com");
        assert_eq!(parts.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
    }
}
