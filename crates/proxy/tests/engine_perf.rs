//! Rough performance numbers (ignored by default; run with
//! `cargo test -p slipway-proxy --release --test engine_perf -- --ignored --nocapture`).
//! Clients, backend and proxy share one 2-thread runtime, so the ratios matter, not the
//! absolute numbers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use slipway_proxy::{
    AppProtocol, Balancing, DesiredState, Endpoint, Frontend, HostNetwork, PortState, Proxy,
    ServiceKey, ServiceKind, ServiceState,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn state(fp: u16, proto: AppProtocol, backends: &[SocketAddr]) -> DesiredState {
    let endpoints = backends
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let SocketAddr::V4(a) = a else { panic!() };
            Endpoint {
                pod_uid: Some(format!("p{i}")),
                ip: *a.ip(),
                port: a.port(),
                ready: true,
                serving: true,
                terminating: false,
                weight: 1,
                group: String::new(),
            }
        })
        .collect();
    DesiredState {
        services: BTreeMap::from([(
            ServiceKey {
                namespace: "ns".into(),
                name: "perf".into(),
            },
            ServiceState {
                kind: ServiceKind::Service,
                ports: vec![PortState {
                    name: "p".into(),
                    frontends: vec![Frontend::Host(SocketAddrV4::new(Ipv4Addr::LOCALHOST, fp))],
                    app_protocol: proto,
                    endpoints,
                    split: None,
                }],
                session_affinity: None,
                balancing: Balancing::RoundRobin,
            },
        )]),
    }
}

async fn http_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(
                        b"hello world",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

async fn sink_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0u64;
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = s.write_all(&n.to_le_bytes()).await;
            });
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn client(addr: SocketAddr) -> Sender {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(s: &mut Sender) {
    s.ready().await.unwrap();
    let req = Request::get("/")
        .header("host", "perf")
        .body(Empty::new())
        .unwrap();
    let resp = s.send_request(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
}

async fn p50(addr: SocketAddr, n: usize) -> Duration {
    let mut s = client(addr).await;
    for _ in 0..200 {
        get(&mut s).await;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        get(&mut s).await;
        v.push(t.elapsed());
    }
    v.sort();
    v[n / 2]
}

async fn rps(addr: SocketAddr, conns: usize, dur: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = client(addr).await;
            while !stop.load(Ordering::Relaxed) {
                get(&mut s).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / dur.as_secs_f64()
}

async fn tcp_mbps(addr: SocketAddr, total: usize) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![7u8; 256 * 1024];
    let t = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    s.shutdown().await.unwrap();
    let mut n = [0u8; 8];
    s.read_exact(&mut n).await.unwrap();
    assert_eq!(u64::from_le_bytes(n) as usize, sent);
    sent as f64 / t.elapsed().as_secs_f64() / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "performance printout; run in release"]
async fn perf_printout() {
    let backend = http_backend().await;
    let p = Proxy::new(Arc::new(HostNetwork));
    let (hp, sp, tp) = (free_port(), free_port(), free_port());
    let mut s = state(hp, AppProtocol::Http, &[backend]);
    let mut sniff = state(sp, AppProtocol::Sniff, &[backend]);
    let sniff_svc = sniff.services.pop_first().unwrap().1;
    s.services.insert(
        ServiceKey {
            namespace: "ns".into(),
            name: "sniff".into(),
        },
        sniff_svc,
    );
    let sink = sink_backend().await;
    let tcp = state(tp, AppProtocol::Tcp, &[sink])
        .services
        .pop_first()
        .unwrap()
        .1;
    s.services.insert(
        ServiceKey {
            namespace: "ns".into(),
            name: "tcp".into(),
        },
        tcp,
    );
    assert!(p.apply(s).await.is_empty());
    let fa: SocketAddr = ([127, 0, 0, 1], hp).into();
    let fs: SocketAddr = ([127, 0, 0, 1], sp).into();
    let ft: SocketAddr = ([127, 0, 0, 1], tp).into();

    let d = p50(backend, 5000).await;
    let x = p50(fa, 5000).await;
    let y = p50(fs, 5000).await;
    println!(
        "latency p50: direct {d:?}, proxy http {x:?} (+{:?}), proxy sniff {y:?} (+{:?})",
        x.saturating_sub(d),
        y.saturating_sub(d)
    );
    let dur = Duration::from_secs(2);
    let rd = rps(backend, 16, dur).await;
    let rx = rps(fa, 16, dur).await;
    println!(
        "throughput 16 keep-alive conns: direct {rd:.0} req/s, proxy {rx:.0} req/s ({:.2}x)",
        rx / rd
    );
    let total = 512 * 1024 * 1024;
    let md = tcp_mbps(sink, total).await;
    let mx = tcp_mbps(ft, total).await;
    println!(
        "tcp bulk: direct {md:.0} MB/s, proxy {mx:.0} MB/s ({:.2}x)",
        mx / md
    );
}
