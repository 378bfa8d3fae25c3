//! The proxy data path over real loopback sockets with [`HostNetwork`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use slipway_proxy::{
    AppProtocol, Balancing, DesiredState, Endpoint, Frontend, HeaderRoute, HostNetwork, PortState,
    Proxy, ServiceKey, ServiceKind, ServiceState, TrafficSplit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs a test body with an overall deadline so a hang fails with a message.
async fn deadline<F: Future>(what: &str, secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {secs}s"))
}

/// A free loopback port (bound once and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn front(port: u16) -> Frontend {
    Frontend::Host(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn ep(addr: SocketAddr, uid: &str) -> Endpoint {
    let SocketAddr::V4(a) = addr else {
        panic!("v4 only")
    };
    Endpoint {
        pod_uid: Some(uid.to_owned()),
        ip: *a.ip(),
        port: a.port(),
        ready: true,
        serving: true,
        terminating: false,
        weight: 1,
        group: String::new(),
    }
}

fn weighted(mut e: Endpoint, w: u32) -> Endpoint {
    e.weight = w;
    e
}

fn conditions(mut e: Endpoint, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    e.ready = ready;
    e.serving = serving;
    e.terminating = terminating;
    e
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        namespace: "ns".into(),
        name: name.into(),
    }
}

/// One service `ns/<name>` with one port named `port_name` on `fe_port`.
fn one(
    name: &str,
    port_name: &str,
    fe_port: u16,
    proto: AppProtocol,
    endpoints: Vec<Endpoint>,
) -> DesiredState {
    with(name, port_name, fe_port, proto, endpoints, |_| {})
}

fn with(
    name: &str,
    port_name: &str,
    fe_port: u16,
    proto: AppProtocol,
    endpoints: Vec<Endpoint>,
    tweak: impl FnOnce(&mut ServiceState),
) -> DesiredState {
    let mut svc = ServiceState {
        kind: ServiceKind::Service,
        ports: vec![PortState {
            name: port_name.into(),
            frontends: vec![front(fe_port)],
            app_protocol: proto,
            endpoints,
            split: None,
        }],
        session_affinity: None,
        balancing: Balancing::RoundRobin,
    };
    tweak(&mut svc);
    DesiredState {
        services: BTreeMap::from([(key(name), svc)]),
    }
}

fn proxy() -> Proxy {
    Proxy::new(Arc::new(HostNetwork))
}

async fn apply_ok(p: &Proxy, s: DesiredState) {
    let failures = p.apply(s).await;
    assert!(failures.is_empty(), "listen failures: {failures:?}");
}

/// A backend server; stopping (or dropping) it closes the listener and every connection.
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Requests (HTTP) or connections (TCP) served.
    hits: Arc<AtomicUsize>,
    /// `/slow` requests wait for a permit.
    release: Arc<Semaphore>,
    /// Signals that a `/slow` request arrived.
    slow_started: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl Backend {
    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP server that writes `<id>\n` on accept, then echoes.
async fn tcp_backend(id: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let banner = format!("{id}\n");
    let h = hits.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            h.fetch_add(1, Ordering::SeqCst);
            let banner = banner.clone();
            conns.spawn(async move {
                if s.write_all(banner.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Backend {
        addr,
        task,
        hits,
        release: Arc::new(Semaphore::new(0)),
        slow_started: None,
    }
}

/// An HTTP/1.1 server answering its id; `/slow` waits for a permit; `/echo` echoes the
/// body; `/xff` answers the X-Forwarded-For it saw; an upgrade request to `/upgrade` gets
/// 101 and an echo over the upgraded stream.
async fn http_backend(id: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Semaphore::new(0));
    let (started_tx, started_rx) = tokio::sync::mpsc::unbounded_channel();
    let id: Arc<str> = id.into();
    let (h, rel) = (hits.clone(), release.clone());
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let (id, h, rel, started) = (id.clone(), h.clone(), rel.clone(), started_tx.clone());
            conns.spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let (id, h, rel, started) =
                        (id.clone(), h.clone(), rel.clone(), started.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        let path = req.uri().path().to_owned();
                        let body = match path.as_str() {
                            "/slow" => {
                                let _ = started.send(());
                                rel.acquire().await.unwrap().forget();
                                Bytes::from(id.to_string())
                            }
                            "/echo" => req.into_body().collect().await?.to_bytes(),
                            "/xff" => Bytes::from(
                                req.headers()
                                    .get("x-forwarded-for")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default(),
                            ),
                            "/upgrade" => {
                                let on = hyper::upgrade::on(&mut req);
                                tokio::spawn(async move {
                                    if let Ok(up) = on.await {
                                        let mut io = TokioIo::new(up);
                                        let mut buf = [0u8; 1024];
                                        while let Ok(n) = io.read(&mut buf).await {
                                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                                break;
                                            }
                                        }
                                    }
                                });
                                return Ok::<_, hyper::Error>(
                                    Response::builder()
                                        .status(StatusCode::SWITCHING_PROTOCOLS)
                                        .header("connection", "upgrade")
                                        .header("upgrade", "echo")
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                );
                            }
                            _ => Bytes::from(id.to_string()),
                        };
                        Ok::<_, hyper::Error>(Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend {
        addr,
        task,
        hits,
        release,
        slow_started: Some(started_rx),
    }
}

/// A keep-alive HTTP client connection.
struct Client {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    async fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        Self::over(s).await
    }

    async fn over(s: TcpStream) -> std::io::Result<Client> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .map_err(std::io::Error::other)?;
        let task = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(Client { sender, task })
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, String), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn get(&mut self, path: &str) -> Result<(StatusCode, String), String> {
        let req = Request::get(path)
            .header("host", "svc")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }
}

/// One request on a new connection; panics on failure.
async fn get_once(port: u16, path: &str) -> (StatusCode, String) {
    let mut c = Client::connect(port).await.expect("connect to proxy");
    c.get(path).await.expect("request through proxy")
}

async fn get_body(port: u16) -> String {
    let (status, body) = get_once(port, "/").await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    body
}

/// Connects to the proxy and reads the backend's banner line.
async fn tcp_banner(port: u16) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to proxy");
    let line = read_line(&mut s).await;
    (s, line)
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => out.push(b[0]),
        }
    }
    String::from_utf8(out).unwrap()
}

/// Polls `cond` until true or `secs` elapse.
async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn metric_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn labels(svc: &str, port: &str, e: Option<(&Backend, &str)>) -> String {
    let mut l = format!("namespace=\"ns\",service=\"{svc}\",port=\"{port}\"");
    if let Some((b, uid)) = e {
        l.push_str(&format!(",endpoint=\"{}\",pod_uid=\"{uid}\"", b.addr));
    }
    l
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_with_half_close() {
    deadline("tcp echo", 20, async {
        let b = tcp_backend("a").await;
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one("echo", "tcp", fp, AppProtocol::Tcp, vec![ep(b.addr, "a")]),
        )
        .await;
        let (mut s, banner) = tcp_banner(fp).await;
        assert_eq!(banner, "a");
        s.write_all(b"hello proxy").await.unwrap();
        s.shutdown().await.unwrap(); // half-close: the backend sees EOF, echoes, closes
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"hello proxy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_round_robin_exact_distribution() {
    deadline("round robin", 30, async {
        let (a, b) = (http_backend("a").await, http_backend("b").await);
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![ep(a.addr, "a"), ep(b.addr, "b")],
            ),
        )
        .await;
        let mut seq = String::new();
        for _ in 0..100 {
            seq.push_str(&get_body(fp).await);
        }
        assert_eq!(seq.matches('a').count(), 50, "1:1 sequence {seq}");
        assert_eq!(seq.matches('b').count(), 50, "1:1 sequence {seq}");

        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![weighted(ep(a.addr, "a"), 1), weighted(ep(b.addr, "b"), 4)],
            ),
        )
        .await;
        let mut seq = String::new();
        for _ in 0..100 {
            seq.push_str(&get_body(fp).await);
        }
        assert_eq!(seq.matches('a').count(), 20, "1:4 sequence {seq}");
        for (i, w) in seq.as_bytes().chunks(5).enumerate() {
            assert_eq!(
                w.iter().filter(|c| **c == b'a').count(),
                1,
                "window {i} of 1:4 sequence {seq} is not interleaved"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connection_is_pinned_until_invalid() {
    deadline("pinning", 30, async {
        let (a, b) = (http_backend("a").await, http_backend("b").await);
        let p = proxy();
        let fp = free_port();
        let both =
            |ea: Endpoint, eb: Endpoint| one("web", "http", fp, AppProtocol::Http, vec![ea, eb]);
        apply_ok(&p, both(ep(a.addr, "a"), ep(b.addr, "b"))).await;
        let mut c = Client::connect(fp).await.unwrap();
        let first = c.get("/").await.unwrap().1;
        for i in 0..50 {
            assert_eq!(
                c.get("/").await.unwrap().1,
                first,
                "request {i} left its pin"
            );
        }
        // New connections still alternate.
        let n1 = get_body(fp).await;
        let n2 = get_body(fp).await;
        assert_ne!(n1, n2, "new connections should alternate");

        // The pinned endpoint becomes terminating: the next request moves.
        let (pinned, other) = if first == "a" { (&a, &b) } else { (&b, &a) };
        let (pu, ou) = if first == "a" { ("a", "b") } else { ("b", "a") };
        apply_ok(
            &p,
            both(
                conditions(ep(pinned.addr, pu), false, true, true),
                ep(other.addr, ou),
            ),
        )
        .await;
        for i in 0..10 {
            assert_eq!(
                c.get("/").await.unwrap().1,
                ou,
                "request {i} after terminating"
            );
        }
        // Back to both ready: the connection stays pinned to its new endpoint.
        apply_ok(&p, both(ep(pinned.addr, pu), ep(other.addr, ou))).await;
        for i in 0..10 {
            assert_eq!(c.get("/").await.unwrap().1, ou, "re-pinned request {i}");
        }
        // Drained: moves too.
        let out = p.drain(ou, Duration::from_secs(5)).await;
        assert!(!out.timed_out, "{out:?}");
        assert_eq!(c.get("/").await.unwrap().1, pu, "request after drain");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_and_zero_weight_get_no_new_traffic() {
    deadline("not ready", 30, async {
        let (a, b, z) = (
            http_backend("a").await,
            http_backend("b").await,
            http_backend("z").await,
        );
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![
                    conditions(ep(a.addr, "a"), false, false, false),
                    ep(b.addr, "b"),
                    weighted(ep(z.addr, "z"), 0),
                ],
            ),
        )
        .await;
        for _ in 0..20 {
            assert_eq!(get_body(fp).await, "b");
        }
        assert_eq!(a.hits.load(Ordering::SeqCst), 0);
        assert_eq!(z.hits.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_serving_fallback() {
    deadline("fallback", 30, async {
        let (a, b, c) = (
            http_backend("a").await,
            http_backend("b").await,
            http_backend("c").await,
        );
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![
                    conditions(ep(a.addr, "a"), false, true, true),
                    conditions(ep(b.addr, "b"), false, false, true),
                    conditions(ep(c.addr, "c"), false, false, false),
                ],
            ),
        )
        .await;
        for _ in 0..10 {
            assert_eq!(get_body(fp).await, "a");
        }
        assert_eq!(
            b.hits.load(Ordering::SeqCst) + c.hits.load(Ordering::SeqCst),
            0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_and_all_down() {
    deadline("no endpoints", 30, async {
        let p = proxy();
        let (hp, tp) = (free_port(), free_port());
        let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut s = one("web", "http", hp, AppProtocol::Http, vec![]);
        s.services.extend(one("raw", "tcp", tp, AppProtocol::Tcp, vec![]).services);
        apply_ok(&p, s).await;
        let (status, body) = get_once(hp, "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.trim(), "no ready endpoints for service ns/web port http");
        let mut t = TcpStream::connect(("127.0.0.1", tp)).await.unwrap();
        let mut buf = [0u8; 8];
        let n = t.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "TCP mode without endpoints must close the connection");

        // Endpoints that refuse: 503 / close, connect errors counted.
        let mut s = one("web", "http", hp, AppProtocol::Http, vec![ep(dead, "d")]);
        s.services.extend(one("raw", "tcp", tp, AppProtocol::Tcp, vec![ep(dead, "d")]).services);
        apply_ok(&p, s).await;
        let (status, _) = get_once(hp, "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let mut t = TcpStream::connect(("127.0.0.1", tp)).await.unwrap();
        assert_eq!(t.read(&mut buf).await.unwrap_or(0), 0);
        let m = p.metrics_text();
        let l = format!(
            "slipway_proxy_errors_total{{namespace=\"ns\",service=\"web\",port=\"http\",endpoint=\"{dead}\",pod_uid=\"d\",reason=\"connect\"}}"
        );
        assert_eq!(metric_value(&m, &l), Some(1.0), "{m}");
        let l = "slipway_proxy_errors_total{namespace=\"ns\",service=\"raw\",port=\"tcp\",reason=\"no_endpoints\"}";
        assert_eq!(metric_value(&m, l), Some(1.0), "{m}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_an_endpoint_refuses() {
    deadline("failover", 30, async {
        let b = http_backend("b").await;
        let t = tcp_backend("t").await;
        let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let p = proxy();
        let (hp, tp) = (free_port(), free_port());
        let mut s = one(
            "web",
            "http",
            hp,
            AppProtocol::Http,
            vec![ep(dead, "d"), ep(b.addr, "b")],
        );
        s.services.extend(
            one(
                "raw",
                "tcp",
                tp,
                AppProtocol::Tcp,
                vec![ep(dead, "d"), ep(t.addr, "t")],
            )
            .services,
        );
        apply_ok(&p, s).await;
        for _ in 0..10 {
            assert_eq!(get_body(hp).await, "b");
            assert_eq!(tcp_banner(tp).await.1, "t");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_by_client_ip() {
    deadline("affinity", 30, async {
        let (a, b) = (tcp_backend("a").await, tcp_backend("b").await);
        let p = proxy();
        let fp = free_port();
        let state = |ea: Endpoint, eb: Endpoint| {
            with("sticky", "tcp", fp, AppProtocol::Tcp, vec![ea, eb], |s| {
                s.session_affinity = Some(Duration::from_secs(600));
            })
        };
        apply_ok(&p, state(ep(a.addr, "a"), ep(b.addr, "b"))).await;
        async fn from(ip: [u8; 4], port: u16) -> String {
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::from((ip, 0))).unwrap();
            let mut s = sock
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap();
            read_line(&mut s).await
        }
        let first = from([127, 0, 0, 1], fp).await;
        let second = from([127, 0, 0, 2], fp).await;
        assert_ne!(first, second, "round robin for a new client");
        for _ in 0..10 {
            assert_eq!(from([127, 0, 0, 1], fp).await, first);
            assert_eq!(from([127, 0, 0, 2], fp).await, second);
        }
        // The first client's endpoint stops being ready: it moves, and stays moved.
        let (ea, eb) = if first == "a" {
            (
                conditions(ep(a.addr, "a"), false, false, false),
                ep(b.addr, "b"),
            )
        } else {
            (
                ep(a.addr, "a"),
                conditions(ep(b.addr, "b"), false, false, false),
            )
        };
        apply_ok(&p, state(ea, eb)).await;
        let moved = from([127, 0, 0, 1], fp).await;
        assert_ne!(moved, first);
        apply_ok(&p, state(ep(a.addr, "a"), ep(b.addr, "b"))).await;
        for _ in 0..5 {
            assert_eq!(
                from([127, 0, 0, 1], fp).await,
                moved,
                "affinity kept after the move"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections() {
    deadline("least connections", 30, async {
        let (a, b) = (tcp_backend("a").await, tcp_backend("b").await);
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            with(
                "lc",
                "tcp",
                fp,
                AppProtocol::Tcp,
                vec![weighted(ep(a.addr, "a"), 1), weighted(ep(b.addr, "b"), 3)],
                |s| s.balancing = Balancing::LeastConnections,
            ),
        )
        .await;
        let mut held = Vec::new();
        let mut ids = Vec::new();
        let mut count = BTreeMap::<String, usize>::new();
        for _ in 0..8 {
            let (s, id) = tcp_banner(fp).await;
            *count.entry(id.clone()).or_default() += 1;
            held.push(s);
            ids.push(id);
        }
        assert_eq!(count.get("a"), Some(&2), "{count:?}");
        assert_eq!(count.get("b"), Some(&6), "{count:?}");
        // Close four b connections: b (2 open, weight 3) is now the least loaded, so the
        // next four new connections go to b.
        let (mut on_b, on_a): (Vec<_>, Vec<_>) =
            held.into_iter().zip(ids).partition(|(_, id)| id == "b");
        on_b.truncate(2);
        let b_active = format!(
            "slipway_proxy_active_connections{{{}}}",
            labels("lc", "tcp", Some((&b, "b")))
        );
        let p2 = p.clone();
        eventually("b connections closed", 10, move || {
            metric_value(&p2.metrics_text(), &b_active) == Some(2.0)
        })
        .await;
        for i in 0..4 {
            let (s, id) = tcp_banner(fp).await;
            assert_eq!(id, "b", "connection {i} after b's load dropped");
            on_b.push((s, id));
        }
        drop(on_a);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_switch_keeps_open_connection_on_old_pod() {
    deadline("selector switch", 30, async {
        let (blue, green) = (http_backend("blue").await, http_backend("green").await);
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![ep(blue.addr, "blue")],
            ),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        assert_eq!(c.get("/").await.unwrap().1, "blue");
        // Switch: green selected, blue still running but no longer selected (listed as
        // serving, not ready).
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![
                    ep(green.addr, "green"),
                    conditions(ep(blue.addr, "blue"), false, true, false),
                ],
            ),
        )
        .await;
        for _ in 0..5 {
            assert_eq!(
                get_body(fp).await,
                "green",
                "new connections go to the new set"
            );
        }
        for _ in 0..5 {
            assert_eq!(c.get("/").await.unwrap().1, "blue", "open connection stays");
        }
        // Blue gone from the set entirely (what the endpoints controller writes after a
        // selector change): the open connection still stays, the pod still runs.
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![ep(green.addr, "green")],
            ),
        )
        .await;
        assert_eq!(c.get("/").await.unwrap().1, "blue", "open connection stays");
        assert_eq!(get_body(fp).await, "green");
        // Blue is being deleted: drained, the open connection moves at its next request.
        let outcome = p.drain("blue", Duration::from_secs(5)).await;
        assert!(!outcome.timed_out, "{outcome:?}");
        assert_eq!(c.get("/").await.unwrap().1, "green");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_in_flight_request() {
    deadline("drain", 30, async {
        let (mut a, b) = (http_backend("a").await, http_backend("b").await);
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                vec![ep(a.addr, "a"), ep(b.addr, "b")],
            ),
        )
        .await;
        // Round robin starts at a: the slow request goes there.
        let slow = tokio::spawn(async move { get_once(fp, "/slow").await });
        a.slow_started
            .as_mut()
            .unwrap()
            .recv()
            .await
            .expect("slow request reached a");
        let drain = p.drain("a", Duration::from_secs(20));
        tokio::pin!(drain);
        assert!(
            futures::poll!(drain.as_mut()).is_pending(),
            "drain returned early"
        );
        let a_hits = a.hits.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(
                get_body(fp).await,
                "b",
                "no new request to a drained endpoint"
            );
        }
        assert_eq!(a.hits.load(Ordering::SeqCst), a_hits);
        assert!(
            futures::poll!(drain.as_mut()).is_pending(),
            "drain returned before the response"
        );
        a.release.add_permits(1);
        let (status, body) = slow.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
        let out = drain.await;
        assert_eq!(
            out,
            slipway_proxy::DrainOutcome {
                open_connections: 0,
                in_flight_requests: 0,
                timed_out: false
            }
        );
        // Timeout path: a slow TCP connection held open.
        let t = tcp_backend("t").await;
        let tp = free_port();
        apply_ok(
            &p,
            one("raw", "tcp", tp, AppProtocol::Tcp, vec![ep(t.addr, "t")]),
        )
        .await;
        let (held, _) = tcp_banner(tp).await;
        let out = p.drain("t", Duration::from_millis(50)).await;
        assert_eq!((out.open_connections, out.timed_out), (1, true), "{out:?}");
        drop(held);
        let out = p.drain("t", Duration::from_secs(10)).await;
        assert_eq!((out.open_connections, out.timed_out), (0, false), "{out:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_service_closes_its_listener_at_once() {
    deadline("remove", 30, async {
        let a = http_backend("a").await;
        let p = proxy();
        let fp = free_port();
        let s = one("web", "http", fp, AppProtocol::Http, vec![ep(a.addr, "a")]);
        apply_ok(&p, s.clone()).await;
        // Applying the same state again does not re-bind (which would fail: in use).
        apply_ok(&p, s.clone()).await;
        let mut c = Client::connect(fp).await.unwrap();
        assert_eq!(c.get("/").await.unwrap().1, "a");
        apply_ok(&p, DesiredState::default()).await;
        let err = TcpStream::connect(("127.0.0.1", fp))
            .await
            .expect_err("listener must be closed when apply returns");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        // The accepted connection continues (it has no endpoint set any more, but the
        // request was routed against the snapshot it was accepted with).
        assert_eq!(
            c.get("/").await.unwrap().1,
            "a",
            "accepted connection continues"
        );
        // A frontend that cannot be bound is reported and retried at the next apply.
        let blocker = std::net::TcpListener::bind(("127.0.0.1", fp)).unwrap();
        let failures = p.apply(s.clone()).await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].frontend, front(fp));
        assert_eq!(failures[0].port_name, "http");
        drop(blocker);
        apply_ok(&p, s).await;
        assert_eq!(get_body(fp).await, "a");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_families_and_counts() {
    deadline("metrics", 30, async {
        let a = http_backend("a").await;
        let t = tcp_backend("t").await;
        let p = proxy();
        let (hp, tp, pp) = (free_port(), free_port(), free_port());
        let mut s = one("web", "http", hp, AppProtocol::Http, vec![ep(a.addr, "a")]);
        s.services
            .extend(one("raw", "tcp", tp, AppProtocol::Tcp, vec![ep(t.addr, "t")]).services);
        let mut pod = one("10.1.1.1", "", pp, AppProtocol::Tcp, vec![ep(t.addr, "t")]);
        pod.services
            .values_mut()
            .for_each(|v| v.kind = ServiceKind::PodIp);
        s.services.extend(pod.services);
        apply_ok(&p, s).await;
        let mut c = Client::connect(hp).await.unwrap();
        for _ in 0..3 {
            assert_eq!(c.get("/").await.unwrap().1, "a");
        }
        drop(c);
        for _ in 0..2 {
            let (mut s, _) = tcp_banner(tp).await;
            s.write_all(b"ping").await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
        }
        let _ = tcp_banner(pp).await;
        let web = labels("web", "http", None);
        let web_a = labels("web", "http", Some((&a, "a")));
        let raw = labels("raw", "tcp", None);
        let raw_t = labels("raw", "tcp", Some((&t, "t")));
        // Connection teardown is asynchronous: wait for the gauges to settle.
        let pp2 = p.clone();
        let raw2 = raw.clone();
        eventually("raw connections closed", 10, move || {
            metric_value(
                &pp2.metrics_text(),
                &format!("slipway_proxy_active_connections{{{raw2}}}"),
            ) == Some(0.0)
        })
        .await;
        let m = p.metrics_text();
        for fam in [
            "slipway_proxy_connections_total counter",
            "slipway_proxy_active_connections gauge",
            "slipway_proxy_requests_total counter",
            "slipway_proxy_errors_total counter",
            "slipway_proxy_request_duration_seconds histogram",
            "slipway_proxy_bytes_total counter",
        ] {
            assert!(
                m.contains(&format!("# TYPE {fam}")),
                "missing {fam} in\n{m}"
            );
        }
        let v = |l: String| metric_value(&m, &l);
        assert_eq!(
            v(format!("slipway_proxy_connections_total{{{web}}}")),
            Some(1.0),
            "{m}"
        );
        assert_eq!(
            v(format!(
                "slipway_proxy_requests_total{{{web_a},code=\"2xx\"}}"
            )),
            Some(3.0),
            "{m}"
        );
        assert_eq!(
            v(format!(
                "slipway_proxy_requests_total{{{web_a},code=\"5xx\"}}"
            )),
            Some(0.0)
        );
        assert_eq!(
            v(format!(
                "slipway_proxy_request_duration_seconds_count{{{web_a}}}"
            )),
            Some(3.0)
        );
        assert_eq!(
            v(format!(
                "slipway_proxy_request_duration_seconds_bucket{{{web_a},le=\"+Inf\"}}"
            )),
            Some(3.0)
        );
        assert_eq!(
            v(format!("slipway_proxy_connections_total{{{raw}}}")),
            Some(2.0)
        );
        assert_eq!(
            v(format!("slipway_proxy_connections_total{{{raw_t}}}")),
            Some(2.0)
        );
        // 2 x "ping" in; 2 x ("t\n" + "ping") out.
        assert_eq!(
            v(format!(
                "slipway_proxy_bytes_total{{{raw},direction=\"in\"}}"
            )),
            Some(8.0)
        );
        assert_eq!(
            v(format!(
                "slipway_proxy_bytes_total{{{raw},direction=\"out\"}}"
            )),
            Some(12.0)
        );
        assert!(
            v(format!(
                "slipway_proxy_bytes_total{{{web},direction=\"in\"}}"
            ))
            .unwrap()
                > 0.0
        );
        assert!(
            !m.contains("10.1.1.1"),
            "PodIp services are not reported:\n{m}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket() {
    use std::os::unix::fs::PermissionsExt;
    deadline("control socket", 30, async {
        let a = http_backend("a").await;
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one("web", "http", fp, AppProtocol::Http, vec![ep(a.addr, "a")]),
        )
        .await;
        assert_eq!(get_body(fp).await, "a");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.sock");
        std::fs::write(&path, b"stale").unwrap();
        let server = {
            let (p, path) = (p.clone(), path.clone());
            tokio::spawn(async move { p.serve_control(&path).await })
        };
        let stream = loop {
            match tokio::net::UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(_) => {
                    assert!(!server.is_finished(), "control server exited");
                    tokio::task::yield_now().await;
                }
            }
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let mut call = async |method: &str, uri: &str| {
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "proxy")
                .body(Empty::new())
                .unwrap();
            // The previous response's end may not have freed the connection yet.
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        assert_eq!(call("GET", "/healthz").await, (StatusCode::OK, "ok".into()));
        let (status, m) = call("GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(m.contains("slipway_proxy_requests_total{"), "{m}");
        let (status, st) = call("GET", "/v1/state").await;
        assert_eq!(status, StatusCode::OK);
        let st: serde_json::Value = serde_json::from_str(&st).unwrap();
        assert_eq!(st["services"][0]["name"], "web");
        assert_eq!(st["services"][0]["ports"][0]["endpoints"]["ready"], 1);
        assert_eq!(
            st["services"][0]["ports"][0]["frontends"][0]["listening"],
            true
        );
        let (status, d) = call("POST", "/v1/drain?uid=a&timeoutSeconds=5").await;
        assert_eq!(status, StatusCode::OK, "{d}");
        let d: serde_json::Value = serde_json::from_str(&d).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"openConnections": 0, "inFlightRequests": 0, "timedOut": false})
        );
        let (status, _) = call("POST", "/v1/drain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Drained: the only endpoint is out of rotation.
        assert_eq!(get_once(fp, "/").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (_, st) = call("GET", "/v1/state").await;
        assert!(st.contains("\"drained\":[\"a\"]"), "{st}");
        conn.abort();
        server.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sniffing_tcp_banner_and_http() {
    deadline("sniff", 30, async {
        let t = tcp_backend("banner").await;
        let h = http_backend("h").await;
        let p = proxy();
        let (tp, hp) = (free_port(), free_port());
        let mut s = one("smtp", "", tp, AppProtocol::Sniff, vec![ep(t.addr, "t")]);
        s.services.extend(one("web", "", hp, AppProtocol::Sniff, vec![ep(h.addr, "h")]).services);
        apply_ok(&p, s).await;
        // Server speaks first: the client sends nothing and still gets the banner.
        let (mut s, banner) = tcp_banner(tp).await;
        assert_eq!(banner, "banner");
        s.write_all(b"EHLO x\r\n").await.unwrap();
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"EHLO x\r\n");
        // Binary client data: TCP mode at once.
        let (mut s2, _) = {
            let mut s2 = TcpStream::connect(("127.0.0.1", tp)).await.unwrap();
            s2.write_all(b"\x16\x03\x01hi").await.unwrap();
            let l = read_line(&mut s2).await;
            (s2, l)
        };
        let mut buf = [0u8; 5];
        s2.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"\x16\x03\x01hi");
        // HTTP through a Sniff port: HTTP mode (X-Forwarded-For added).
        let mut c = Client::connect(hp).await.unwrap();
        assert_eq!(c.get("/").await.unwrap().1, "h");
        assert_eq!(c.get("/xff").await.unwrap().1, "127.0.0.1");
        let m = p.metrics_text();
        let l = format!(
            "slipway_proxy_requests_total{{namespace=\"ns\",service=\"web\",port=\"{hp}\",endpoint=\"{}\",pod_uid=\"h\",code=\"2xx\"}}",
            h.addr
        );
        assert_eq!(metric_value(&m, &l), Some(2.0), "{m}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_and_upgrade() {
    deadline("bodies and upgrade", 30, async {
        let a = http_backend("a").await;
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one("web", "http", fp, AppProtocol::Http, vec![ep(a.addr, "a")]),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        let big = "x".repeat(300_000);
        let req = Request::post("/echo")
            .header("host", "svc")
            .body(Full::new(Bytes::from(big.clone())))
            .unwrap();
        let (status, body) = c.send(req).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), big.len());
        // Upgrade: 101, then raw bytes both ways.
        let mut u = Client::connect(fp).await.unwrap();
        let req = Request::get("/upgrade")
            .header("host", "svc")
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()))
            .unwrap();
        u.sender.ready().await.unwrap();
        let resp = u.sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let up = hyper::upgrade::on(resp).await.expect("upgraded");
        let mut io = TokioIo::new(up);
        io.write_all(b"over the tunnel").await.unwrap();
        let mut buf = [0u8; 15];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"over the tunnel");
    })
    .await;
}

/// 8 keep-alive clients, 2000 requests, the endpoint set swapped 20 times, one backend
/// drained and stopped: no request may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failures_under_swaps_and_drain() {
    deadline("zero failures", 120, async {
        let g1 = [http_backend("a1").await, http_backend("a2").await];
        let g2 = [http_backend("b1").await, http_backend("b2").await];
        let p = proxy();
        let fp = free_port();
        let group = |bs: &[&Backend], uids: &[&str]| {
            one(
                "web",
                "http",
                fp,
                AppProtocol::Http,
                bs.iter().zip(uids).map(|(b, u)| ep(b.addr, u)).collect(),
            )
        };
        apply_ok(&p, group(&[&g1[0], &g1[1]], &["a1", "a2"])).await;
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
        let mut clients = JoinSet::new();
        for _ in 0..8 {
            let (done, failed) = (done.clone(), failed.clone());
            clients.spawn(async move {
                let mut c = Client::connect(fp).await.unwrap();
                for _ in 0..250 {
                    match c.get("/").await {
                        Ok((StatusCode::OK, _)) => {}
                        Ok((s, b)) => failed.lock().push(format!("{s}: {b}")),
                        Err(e) => failed.lock().push(e),
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let mut a1_stopped = false;
        let mut a1_hits_at_stop = 0;
        for i in 0..20 {
            // Wait for some progress between swaps.
            let target = (i + 1) * 90;
            let d = done.clone();
            eventually("client progress", 60, move || {
                d.load(Ordering::SeqCst) >= target.min(1990)
            })
            .await;
            let state = if i % 2 == 0 {
                group(&[&g2[0], &g2[1]], &["b1", "b2"])
            } else if a1_stopped {
                group(&[&g1[1]], &["a2"])
            } else {
                group(&[&g1[0], &g1[1]], &["a1", "a2"])
            };
            apply_ok(&p, state).await;
            if i == 9 {
                // a1 is in the current set: drain it, then stop it.
                let out = p.drain("a1", Duration::from_secs(20)).await;
                assert!(!out.timed_out, "drain a1: {out:?}");
                g1[0].stop();
                a1_stopped = true;
                a1_hits_at_stop = g1[0].hits.load(Ordering::SeqCst);
            }
        }
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
        {
            let failed = failed.lock();
            assert!(
                failed.is_empty(),
                "{} failed requests: {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            );
        }
        assert_eq!(done.load(Ordering::SeqCst), 2000);
        assert_eq!(g1[0].hits.load(Ordering::SeqCst), a1_hits_at_stop);
        // Keep-alive clients stay with their pods across swaps (the pods keep running);
        // only the drain of a1 moved them. New connections go to the current set.
        assert!(g1[1].hits.load(Ordering::SeqCst) > 0, "a2 got no request");
        let mut c = Client::connect(fp).await.unwrap();
        assert_eq!(c.get("/").await.unwrap().1, "a2");
        println!(
            "hits: a1 {} a2 {} b1 {} b2 {}",
            g1[0].hits.load(Ordering::SeqCst),
            g1[1].hits.load(Ordering::SeqCst),
            g2[0].hits.load(Ordering::SeqCst),
            g2[1].hits.load(Ordering::SeqCst)
        );
    })
    .await;
}

/// Prints the added latency of the proxy (debug build numbers are pessimistic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_comparison_printout() {
    deadline("latency", 60, async {
        let a = http_backend("a").await;
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            one("web", "http", fp, AppProtocol::Http, vec![ep(a.addr, "a")]),
        )
        .await;
        async fn p50(mut c: Client, n: usize) -> Duration {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                c.get("/").await.unwrap();
                v.push(t.elapsed());
            }
            v.sort();
            v[n / 2]
        }
        let n = 2000;
        let direct = p50(
            Client::over(TcpStream::connect(a.addr).await.unwrap())
                .await
                .unwrap(),
            n,
        )
        .await;
        let proxied = p50(Client::connect(fp).await.unwrap(), n).await;
        println!(
            "HTTP keep-alive p50: direct {direct:?}, through proxy {proxied:?}, added {:?}",
            proxied.saturating_sub(direct)
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Traffic split
// ---------------------------------------------------------------------------------------

fn in_group(mut e: Endpoint, group: &str) -> Endpoint {
    e.group = group.into();
    e
}

fn split(weights: &[(&str, u32)], routes: &[(&str, &str, &str)]) -> TrafficSplit {
    TrafficSplit {
        weights: Some(weights.iter().map(|(g, w)| (g.to_string(), *w)).collect()),
        header_routes: routes
            .iter()
            .map(|(header, value, group)| HeaderRoute {
                name: format!("route-{group}"),
                header: header.to_string(),
                value: value.to_string(),
                group: group.to_string(),
            })
            .collect(),
    }
}

/// `ns/<name>` with one port and a traffic split.
fn split_state(
    name: &str,
    fe_port: u16,
    proto: AppProtocol,
    endpoints: Vec<Endpoint>,
    split: TrafficSplit,
) -> DesiredState {
    with(name, "p", fe_port, proto, endpoints, |s| {
        s.ports[0].split = Some(split)
    })
}

/// Stable backends s1, s2 (group "stable") and canary c1 (group "canary").
async fn canary_backends() -> [Backend; 3] {
    [
        http_backend("s1").await,
        http_backend("s2").await,
        http_backend("c1").await,
    ]
}

fn canary_endpoints(b: &[Backend; 3]) -> Vec<Endpoint> {
    vec![
        in_group(ep(b[0].addr, "s1"), "stable"),
        in_group(ep(b[1].addr, "s2"), "stable"),
        in_group(ep(b[2].addr, "c1"), "canary"),
    ]
}

/// Sends `n` GETs (with `headers`) on a keep-alive connection; the bodies in order.
async fn bodies(c: &mut Client, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut b = Request::get("/").header("host", "svc");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (status, body) = c
            .send(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        out.push(body);
    }
    out
}

fn count(bodies: &[String], id: &str) -> usize {
    bodies.iter().filter(|b| *b == id).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_http_share_is_exact_per_request_on_keep_alive_connections() {
    deadline("http split share", 120, async {
        let b = canary_backends().await;
        let p = proxy();
        let fp = free_port();
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                canary_endpoints(&b),
                split(&[("stable", 80), ("canary", 20)], &[]),
            ),
        )
        .await;
        // 4 keep-alive connections, 2,500 requests each, concurrently.
        let mut clients = JoinSet::new();
        for _ in 0..4 {
            clients.spawn(async move {
                let mut c = Client::connect(fp).await.unwrap();
                bodies(&mut c, 2500, &[]).await
            });
        }
        let mut all = Vec::new();
        let mut per_conn_canary = Vec::new();
        while let Some(r) = clients.join_next().await {
            let v = r.unwrap();
            per_conn_canary.push(count(&v, "c1"));
            all.extend(v);
        }
        assert_eq!(all.len(), 10_000);
        let (s1, s2, c1) = (count(&all, "s1"), count(&all, "s2"), count(&all, "c1"));
        let share = c1 as f64 / all.len() as f64 * 100.0;
        println!(
            "http split 80/20 over 10000 requests: s1 {s1} s2 {s2} c1 {c1} (canary {share:.2}%), \
             canary per connection {per_conn_canary:?}"
        );
        assert!((share - 20.0).abs() <= 0.5, "canary share {share}%");
        assert_eq!(c1, 2000, "smooth weighted round robin is exact");
        assert_eq!((s1, s2), (4000, 4000), "stable endpoints share equally");
        // Every connection reached the canary: no connection pinning under weights.
        assert!(per_conn_canary.iter().all(|c| *c > 0), "{per_conn_canary:?}");

        // Metrics carry the group as pod_hash.
        let m = p.metrics_text();
        let c_labels = format!(
            "namespace=\"ns\",service=\"web\",port=\"p\",endpoint=\"{}\",pod_uid=\"c1\",pod_hash=\"canary\"",
            b[2].addr
        );
        assert_eq!(
            metric_value(
                &m,
                &format!("slipway_proxy_requests_total{{{c_labels},code=\"2xx\"}}")
            ),
            Some(2000.0),
            "{m}"
        );
        let st = p.state_json();
        assert_eq!(
            st["services"][0]["ports"][0]["trafficSplit"]["weights"]["canary"],
            20,
            "{st}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_tcp_share_of_new_connections_is_exact() {
    deadline("tcp split share", 120, async {
        let b = [
            tcp_backend("s1").await,
            tcp_backend("s2").await,
            tcp_backend("c1").await,
        ];
        let p = proxy();
        let fp = free_port();
        let eps = vec![
            in_group(ep(b[0].addr, "s1"), "stable"),
            in_group(ep(b[1].addr, "s2"), "stable"),
            in_group(ep(b[2].addr, "c1"), "canary"),
        ];
        // Header routes are ignored in TCP mode.
        let sp = split(
            &[("stable", 80), ("canary", 20)],
            &[("x-canary", "1", "canary")],
        );
        apply_ok(&p, split_state("raw", fp, AppProtocol::Tcp, eps, sp)).await;
        let mut seen = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let (s, banner) = tcp_banner(fp).await;
            drop(s);
            seen.push(banner);
        }
        let (s1, s2, c1) = (count(&seen, "s1"), count(&seen, "s2"), count(&seen, "c1"));
        let share = c1 as f64 / 10.0;
        println!(
            "tcp split 80/20 over 1000 connections: s1 {s1} s2 {s2} c1 {c1} (canary {share:.1}%)"
        );
        assert!((share - 20.0).abs() <= 1.0, "canary share {share}%");
        assert_eq!((s1, s2, c1), (400, 400, 200));
        for (i, w) in seen.chunks(5).enumerate() {
            assert_eq!(count(w, "c1"), 1, "window {i} not interleaved: {w:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_weight_change_applies_from_the_next_request() {
    deadline("weight change", 60, async {
        let b = canary_backends().await;
        let p = proxy();
        let fp = free_port();
        let at = |w: u32| {
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                canary_endpoints(&b),
                split(&[("stable", 100 - w), ("canary", w)], &[]),
            )
        };
        apply_ok(&p, at(20)).await;
        let mut c = Client::connect(fp).await.unwrap();
        let before = bodies(&mut c, 100, &[]).await;
        assert_eq!(count(&before, "c1"), 20);
        apply_ok(&p, at(50)).await;
        // Same keep-alive connection: every pair of requests from the next one on holds one
        // canary request (at 20% the first pair after a change holds none).
        let after = bodies(&mut c, 100, &[]).await;
        for (i, pair) in after.chunks(2).enumerate() {
            assert_eq!(count(pair, "c1"), 1, "pair {i} after the change: {pair:?}");
        }
        assert_eq!(count(&after, "s1"), 25);
        apply_ok(&p, at(0)).await;
        let none = bodies(&mut c, 50, &[]).await;
        assert_eq!(count(&none, "c1"), 0, "canary at 0%");
        apply_ok(&p, at(100)).await;
        let all = bodies(&mut c, 50, &[]).await;
        assert_eq!(count(&all, "c1"), 50, "canary at 100%");
        println!(
            "weight change: 20% -> {}/100, 50% -> {}/100",
            count(&before, "c1"),
            count(&after, "c1")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_skips_groups_without_candidates() {
    deadline("groups without candidates", 60, async {
        let b = canary_backends().await;
        let c2 = http_backend("c2").await;
        let p = proxy();
        let fp = free_port();
        let sp = || split(&[("stable", 80), ("canary", 20)], &[]);
        // The canary is not ready: everything to stable, nothing fails.
        let mut eps = canary_endpoints(&b);
        eps[2] = conditions(eps[2].clone(), false, false, false);
        apply_ok(&p, split_state("web", fp, AppProtocol::Http, eps, sp())).await;
        let mut c = Client::connect(fp).await.unwrap();
        let v = bodies(&mut c, 200, &[]).await;
        assert_eq!(
            (count(&v, "s1"), count(&v, "s2"), count(&v, "c1")),
            (100, 100, 0)
        );

        // Stable unready, canary ready: all to the canary (on new connections too).
        let mut eps = canary_endpoints(&b);
        eps[0] = conditions(eps[0].clone(), false, false, false);
        eps[1] = conditions(eps[1].clone(), false, true, true);
        apply_ok(&p, split_state("web", fp, AppProtocol::Http, eps, sp())).await;
        let v = bodies(&mut c, 50, &[]).await;
        assert_eq!(count(&v, "c1"), 50);
        for _ in 0..5 {
            assert_eq!(get_body(fp).await, "c1");
        }

        // Two canaries; one is drained (no apply): the other takes the whole canary share.
        let mut eps = canary_endpoints(&b);
        eps.push(in_group(ep(c2.addr, "c2"), "canary"));
        apply_ok(
            &p,
            split_state("web", fp, AppProtocol::Http, eps.clone(), sp()),
        )
        .await;
        let v = bodies(&mut c, 100, &[]).await;
        assert_eq!((count(&v, "c1"), count(&v, "c2")), (10, 10), "{v:?}");
        let out = p.drain("c1", Duration::from_secs(5)).await;
        assert!(!out.timed_out, "{out:?}");
        let v = bodies(&mut c, 500, &[]).await;
        assert_eq!(
            (count(&v, "c1"), count(&v, "c2")),
            (0, 100),
            "computed at pick time"
        );
        // Both drained: 100% stable, no failures.
        let out = p.drain("c2", Duration::from_secs(5)).await;
        assert!(!out.timed_out, "{out:?}");
        let v = bodies(&mut c, 100, &[]).await;
        assert_eq!(count(&v, "s1") + count(&v, "s2"), 100);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_with_zero_weights_falls_back_and_unlisted_groups_get_nothing() {
    deadline("zero weights", 60, async {
        let b = canary_backends().await;
        let old = http_backend("o1").await;
        let p = proxy();
        let fp = free_port();
        let mut eps = canary_endpoints(&b);
        eps.push(in_group(ep(old.addr, "o1"), "old"));
        // "old" is not listed: no traffic while listed groups have candidates.
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                eps.clone(),
                split(&[("stable", 80), ("canary", 20)], &[]),
            ),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        let v = bodies(&mut c, 100, &[]).await;
        assert_eq!((count(&v, "o1"), count(&v, "c1")), (0, 20));
        // All weights 0: plain round robin over every ready endpoint.
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                eps.clone(),
                split(&[("stable", 0), ("canary", 0)], &[]),
            ),
        )
        .await;
        let v = bodies(&mut c, 100, &[]).await;
        for id in ["s1", "s2", "c1", "o1"] {
            assert_eq!(count(&v, id), 25, "{id} in {v:?}");
        }
        // Listed groups without candidates: the unlisted group serves rather than 503.
        let mut eps2 = eps.clone();
        for e in &mut eps2[..3] {
            e.ready = false;
            e.serving = false;
        }
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                eps2,
                split(&[("stable", 80), ("canary", 20)], &[]),
            ),
        )
        .await;
        let v = bodies(&mut c, 10, &[]).await;
        assert_eq!(count(&v, "o1"), 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_route_sends_matching_requests_to_its_group() {
    deadline("header route", 60, async {
        let b = canary_backends().await;
        let p = proxy();
        let fp = free_port();
        let routes = [("x-nope", "1", "missing"), ("X-Canary", "always", "canary")];
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                canary_endpoints(&b),
                split(&[("stable", 80), ("canary", 20)], &routes),
            ),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        let mut matching = Vec::new();
        let mut others = Vec::new();
        for _ in 0..100 {
            matching.extend(bodies(&mut c, 1, &[("x-canary", "always")]).await);
            others.extend(bodies(&mut c, 1, &[]).await);
            // Exact value only.
            others.extend(bodies(&mut c, 1, &[("x-canary", "Always")]).await);
        }
        assert_eq!(
            count(&matching, "c1"),
            100,
            "every matching request to the canary"
        );
        assert_eq!(
            count(&others, "c1"),
            40,
            "the others per weights: {others:?}"
        );
        println!(
            "header route: matching {}/100 to canary; others {}/200 to canary",
            count(&matching, "c1"),
            count(&others, "c1")
        );

        // Dark launch: canary weight 0, the header still reaches it.
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Sniff,
                canary_endpoints(&b),
                split(&[("stable", 100), ("canary", 0)], &routes),
            ),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        for _ in 0..20 {
            assert_eq!(bodies(&mut c, 1, &[("X-CANARY", "always")]).await, ["c1"]);
            assert_ne!(bodies(&mut c, 1, &[]).await, ["c1"]);
        }

        // The canary not ready: matching requests are routed normally.
        let mut eps = canary_endpoints(&b);
        eps[2].ready = false;
        eps[2].serving = false;
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                eps,
                split(&[("stable", 80), ("canary", 20)], &routes),
            ),
        )
        .await;
        let v = bodies(&mut c, 20, &[("x-canary", "always")]).await;
        assert_eq!(count(&v, "s1") + count(&v, "s2"), 20);

        // Routes without weights: non-matching requests keep their connection's pin, and a
        // matching one neither uses nor moves it.
        let routes_only = TrafficSplit {
            weights: None,
            ..split(&[], &routes)
        };
        apply_ok(
            &p,
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                canary_endpoints(&b),
                routes_only,
            ),
        )
        .await;
        let mut c = Client::connect(fp).await.unwrap();
        let first = bodies(&mut c, 1, &[]).await.remove(0);
        for _ in 0..10 {
            assert_eq!(bodies(&mut c, 1, &[("x-canary", "always")]).await, ["c1"]);
            assert_eq!(bodies(&mut c, 1, &[]).await, [first.as_str()], "pin kept");
        }
    })
    .await;
}

/// 8 keep-alive clients, 2000 requests, the weights changed 20 times: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_zero_failures_while_weights_change() {
    deadline("split zero failures", 120, async {
        let b = canary_backends().await;
        let p = proxy();
        let fp = free_port();
        let at = |w: u32| {
            split_state(
                "web",
                fp,
                AppProtocol::Http,
                canary_endpoints(&b),
                split(
                    &[("stable", 100 - w), ("canary", w)],
                    &[("x-canary", "1", "canary")],
                ),
            )
        };
        apply_ok(&p, at(0)).await;
        let (progress, watch) = tokio::sync::watch::channel(0usize);
        let progress = Arc::new(progress);
        let failed = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
        let mut clients = JoinSet::new();
        for k in 0..8 {
            let (progress, failed) = (progress.clone(), failed.clone());
            clients.spawn(async move {
                let mut c = Client::connect(fp).await.unwrap();
                for i in 0..250 {
                    let mut req = Request::get("/").header("host", "svc");
                    if (k + i) % 10 == 0 {
                        req = req.header("x-canary", "1");
                    }
                    match c.send(req.body(Full::new(Bytes::new())).unwrap()).await {
                        Ok((StatusCode::OK, _)) => {}
                        Ok((s, b)) => failed.lock().push(format!("{s}: {b}")),
                        Err(e) => failed.lock().push(e),
                    }
                    progress.send_modify(|n| *n += 1);
                }
            });
        }
        for i in 0..20u32 {
            let target = (i as usize + 1) * 90;
            let mut w = watch.clone();
            w.wait_for(|n| *n >= target.min(1990)).await.unwrap();
            apply_ok(&p, at((i * 35) % 101)).await;
        }
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
        let failed = failed.lock();
        assert!(
            failed.is_empty(),
            "{} failed requests: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert_eq!(*watch.borrow(), 2000);
        let hits: Vec<usize> = b.iter().map(|b| b.hits.load(Ordering::SeqCst)).collect();
        println!("weights changed 20 times under 8 clients: hits s1/s2/c1 {hits:?}");
        assert_eq!(hits.iter().sum::<usize>(), 2000);
        assert!(hits.iter().all(|h| *h > 0), "{hits:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_group_shares_hold_with_least_connections() {
    deadline("split least connections", 60, async {
        let b = canary_backends().await;
        let p = proxy();
        let fp = free_port();
        let mut s = split_state(
            "web",
            fp,
            AppProtocol::Http,
            canary_endpoints(&b),
            split(&[("stable", 70), ("canary", 30)], &[]),
        );
        s.services.values_mut().for_each(|v| {
            v.balancing = Balancing::LeastConnections;
        });
        apply_ok(&p, s).await;
        let mut c = Client::connect(fp).await.unwrap();
        let v = bodies(&mut c, 1000, &[]).await;
        assert_eq!(count(&v, "c1"), 300);
        assert_eq!(count(&v, "s1") + count(&v, "s2"), 700);
        assert!(count(&v, "s1") > 0 && count(&v, "s2") > 0, "{v:?}");
    })
    .await;
}
