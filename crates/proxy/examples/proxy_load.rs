//! A fixed amount of keep-alive HTTP traffic through the engine, for instruction counts:
//!
//! ```text
//! cargo build --release -p slipway-proxy --example proxy_load
//! valgrind --tool=callgrind target/release/examples/proxy_load proxy 20000
//! valgrind --tool=callgrind target/release/examples/proxy_load direct 20000
//! ```
//!
//! Arguments: `proxy` or `direct` (client straight to the backend), the number of
//! requests, the number of client connections (default 1), `mt` for a 2-worker runtime
//! (default: one thread, for repeatable counts). Client and backend speak raw HTTP/1.1 with
//! as little work as possible, so (proxy - direct) / requests is the engine's cost.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use slipway_proxy::{
    AppProtocol, DesiredState, Endpoint, Frontend, HostNetwork, PortState, Proxy, ServiceKey,
    ServiceState,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BODY_LEN: usize = 44;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 44\r\n\r\n{\"value\":12345,\"generator\":\"random\",\"xy\":1}\n";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

async fn backend() -> SocketAddrV4 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(i) = find(&buf, b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        if s.write_all(RESPONSE).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

async fn client(addr: SocketAddr, n: usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    for _ in 0..n {
        s.write_all(REQUEST).await.unwrap();
        loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                // Every response is RESPONSE: its length is known.
                let total = i + 4 + BODY_LEN;
                if buf.len() >= total {
                    assert!(buf.starts_with(b"HTTP/1.1 200"), "bad response");
                    buf.drain(..total);
                    break;
                }
            }
            let k = s.read(&mut chunk).await.unwrap();
            assert!(k > 0, "connection closed");
            buf.extend_from_slice(&chunk[..k]);
        }
    }
}

async fn run(proxied: bool, n: usize, conns: usize) {
    let be = backend().await;
    let (target, _proxy) = if proxied {
        let fp = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = SocketAddrV4::new(Ipv4Addr::LOCALHOST, fp);
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
                        ip: *be.ip(),
                        port: be.port(),
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
        let p = Proxy::new(Arc::new(HostNetwork));
        assert!(p.apply(DesiredState { services }).await.is_empty());
        (SocketAddr::from(listen), Some(p))
    } else {
        (SocketAddr::from(be), None)
    };
    let per = n / conns;
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(client(target, per)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let proxied = match args.get(1).map(String::as_str) {
        Some("proxy") | None => true,
        Some("direct") => false,
        Some(o) => panic!("unknown mode {o}"),
    };
    let n: usize = args.get(2).map_or(20_000, |s| s.parse().unwrap());
    let conns: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let mt = args.get(4).is_some_and(|s| s == "mt");
    let rt = if mt {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let t = std::time::Instant::now();
    rt.block_on(run(proxied, n, conns));
    eprintln!("{n} requests in {:?}", t.elapsed());
}
