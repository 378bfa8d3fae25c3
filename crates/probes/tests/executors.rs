//! Each probe executor against real servers and processes on 127.0.0.1.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slipway_probes::executor::{decode_health_request, encode_health_response};
use slipway_probes::{
    ContainerProbes, ExecOutcome, HostTarget, HttpGetAction, HttpScheme, ProbeAction, ProbeActions,
    ProbeEvent, ProbeKind, ProbeResult, ProbeSpec, ProbeTarget, drive_target, run_probe,
    wait_child,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn target() -> HostTarget {
    HostTarget { ip: LOCAL }
}

/// A port with nothing listening on it.
async fn closed_port() -> u16 {
    let l = TcpListener::bind((LOCAL, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

/// An HTTP/1.1 server: /ok 200, /fail 500 "boom", /redirect 302, /continue 100 then 204,
/// /headers 200 only with the expected headers, /slow never answers.
async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req).to_string();
                let path = req.split(' ').nth(1).unwrap_or("").to_string();
                let response = match path.as_str() {
                    "/ok" | "/" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
                    "/fail" => {
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"
                            .to_string()
                    }
                    "/notfound" => "HTTP/1.1 404 Not Found\r\n\r\n".to_string(),
                    "/redirect" => {
                        "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
                            .to_string()
                    }
                    "/continue" => {
                        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_string()
                    }
                    "/headers" => {
                        let lower = req.to_ascii_lowercase();
                        let ok = lower.contains("\r\nx-probe: yes\r\n")
                            && lower.contains("\r\nuser-agent: kube-probe/1.33\r\n")
                            && lower.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", addr.port()))
                            && lower.contains("\r\nconnection: close\r\n");
                        if ok {
                            "HTTP/1.1 200 OK\r\n\r\n".to_string()
                        } else {
                            format!(
                                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{req}",
                                req.len()
                            )
                        }
                    }
                    "/slow" => {
                        // Hold the connection without answering.
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                    _ => "HTTP/1.1 400 Bad Request\r\n\r\n".to_string(),
                };
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

fn http(port: u16, path: &str) -> ProbeAction {
    ProbeAction::HttpGet(HttpGetAction {
        port,
        path: path.to_string(),
        scheme: HttpScheme::Http,
        host: None,
        headers: vec![],
    })
}

const T1: Duration = Duration::from_secs(1);

#[tokio::test]
async fn http_get_statuses() {
    let port = http_server().await.port();
    let t = target();
    for path in ["/ok", "", "/redirect", "/continue"] {
        assert_eq!(
            run_probe(&t, &http(port, path), T1).await,
            ProbeResult::Success,
            "{path}"
        );
    }
    assert_eq!(
        run_probe(&t, &http(port, "/fail"), T1).await,
        ProbeResult::Failure("HTTP probe failed with statuscode: 500: boom".into())
    );
    assert_eq!(
        run_probe(&t, &http(port, "/notfound"), T1).await,
        ProbeResult::Failure("HTTP probe failed with statuscode: 404".into())
    );
}

#[tokio::test]
async fn http_get_sends_headers() {
    let port = http_server().await.port();
    let ProbeAction::HttpGet(mut action) = http(port, "headers") else {
        unreachable!()
    };
    let r = run_probe(&target(), &ProbeAction::HttpGet(action.clone()), T1).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.contains("400")),
        "{r:?}"
    );
    action.headers.push(("X-Probe".into(), "yes".into()));
    assert_eq!(
        run_probe(&target(), &ProbeAction::HttpGet(action), T1).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn http_get_slow_times_out() {
    let port = http_server().await.port();
    let start = Instant::now();
    let r = run_probe(&target(), &http(port, "/slow"), Duration::from_millis(500)).await;
    let took = start.elapsed();
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.contains("context deadline exceeded")),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn http_get_closed_port_and_https() {
    let port = closed_port().await;
    let r = run_probe(&target(), &http(port, "/"), T1).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.contains("refused")),
        "{r:?}"
    );
    let ProbeAction::HttpGet(mut a) = http(port, "/") else {
        unreachable!()
    };
    a.scheme = HttpScheme::Https;
    assert!(matches!(
        run_probe(&target(), &ProbeAction::HttpGet(a), T1).await,
        ProbeResult::Error(_)
    ));
}

#[tokio::test]
async fn http_get_explicit_host() {
    let port = http_server().await.port();
    // The target's own address is unreachable; `host` goes around it.
    let t = HostTarget {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
    };
    let ProbeAction::HttpGet(mut a) = http(port, "/ok") else {
        unreachable!()
    };
    a.host = Some("127.0.0.1".into());
    assert_eq!(
        run_probe(&t, &ProbeAction::HttpGet(a), T1).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn tcp_socket_open_and_closed() {
    let port = http_server().await.port();
    let t = target();
    assert_eq!(
        run_probe(&t, &ProbeAction::TcpSocket { port, host: None }, T1).await,
        ProbeResult::Success
    );
    let closed = closed_port().await;
    let r = run_probe(
        &t,
        &ProbeAction::TcpSocket {
            port: closed,
            host: None,
        },
        T1,
    )
    .await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.starts_with(&format!("dial tcp 127.0.0.1:{closed}: "))),
        "{r:?}"
    );
}

/// A target whose connect never completes.
struct Blackhole;

impl ProbeTarget for Blackhole {
    fn connect(&self, _port: u16) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::pending()
    }
    async fn exec(&self, _argv: Vec<String>, _timeout: Duration) -> io::Result<ExecOutcome> {
        Err(io::Error::other("no exec"))
    }
    fn host(&self) -> String {
        "10.9.9.9".into()
    }
}

#[tokio::test(start_paused = true)]
async fn hung_connects_time_out() {
    let t = Blackhole;
    let r = run_probe(
        &t,
        &ProbeAction::TcpSocket {
            port: 80,
            host: None,
        },
        T1,
    )
    .await;
    assert_eq!(
        r,
        ProbeResult::Failure("dial tcp 10.9.9.9:80: i/o timeout".into())
    );
    let r = run_probe(
        &t,
        &ProbeAction::Grpc {
            port: 80,
            service: None,
        },
        T1,
    )
    .await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.starts_with("timeout")),
        "{r:?}"
    );
    let r = run_probe(&t, &http(80, "/"), T1).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.contains("deadline")),
        "{r:?}"
    );
    let r = run_probe(
        &t,
        &ProbeAction::Exec {
            command: vec!["true".into()],
        },
        T1,
    )
    .await;
    assert!(matches!(r, ProbeResult::Error(_)));
}

/// Runs exec probes as their own process group and remembers the PIDs, so a test can
/// check the process is gone and clean up anything it left behind.
#[derive(Default)]
struct ExecTarget {
    pids: Mutex<Vec<u32>>,
}

impl ProbeTarget for ExecTarget {
    fn connect(&self, port: u16) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect((LOCAL, port))
    }
    async fn exec(&self, argv: Vec<String>, timeout: Duration) -> io::Result<ExecOutcome> {
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        self.pids.lock().unwrap().push(child.id());
        wait_child(child, timeout).await
    }
    fn host(&self) -> String {
        "127.0.0.1".into()
    }
}

impl Drop for ExecTarget {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().iter() {
            // Anything left in the probe's process group (each group is the probe's own).
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::SIGKILL,
            );
        }
    }
}

fn sh(script: &str) -> ProbeAction {
    ProbeAction::Exec {
        command: vec!["sh".into(), "-c".into(), script.into()],
    }
}

#[tokio::test]
async fn exec_exit_codes_and_output() {
    let t = ExecTarget::default();
    assert_eq!(run_probe(&t, &sh("exit 0"), T1).await, ProbeResult::Success);
    assert_eq!(
        run_probe(&t, &sh("exit 1"), T1).await,
        ProbeResult::Failure("command \"sh -c exit 1\" exited with code 1".into())
    );
    assert_eq!(
        run_probe(&t, &sh("echo not healthy; exit 3"), T1).await,
        ProbeResult::Failure("not healthy\n".into())
    );
    assert_eq!(
        run_probe(&t, &sh("echo to stderr >&2; exit 2"), T1).await,
        ProbeResult::Failure("to stderr\n".into())
    );
    // Output past 10 KiB is cut.
    let r = run_probe(&t, &sh("head -c 100000 /dev/zero | tr '\\0' x; exit 1"), T1).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.len() == 10 * 1024),
        "{}",
        format!("{r:?}").len()
    );
    // A missing program is an error (the probe could not run), not a failure.
    let r = run_probe(
        &target(),
        &ProbeAction::Exec {
            command: vec!["/nonexistent/probe".into()],
        },
        T1,
    )
    .await;
    assert!(matches!(r, ProbeResult::Error(_)), "{r:?}");
}

#[tokio::test]
async fn exec_hung_command_is_killed_at_the_timeout() {
    let t = ExecTarget::default();
    let start = Instant::now();
    let r = run_probe(&t, &sh("sleep 5"), T1).await;
    let took = start.elapsed();
    assert_eq!(
        r,
        ProbeResult::Failure("command \"sh -c sleep 5\" timed out".into())
    );
    assert!(took >= T1 && took < Duration::from_millis(2500), "{took:?}");
    // The command was killed and reaped: its PID is gone.
    let pid = t.pids.lock().unwrap()[0];
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still there"
    );
}

/// An h2c gRPC health server: "" → SERVING, "down" → NOT_SERVING, "slow" → no answer,
/// anything else → NOT_FOUND (trailers-only).
async fn grpc_server() -> SocketAddr {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(grpc_handle(req, respond));
                }
            });
        }
    });
    addr
}

async fn grpc_handle(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
    assert_eq!(req.headers()["content-type"], "application/grpc");
    let mut body = req.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let service = decode_health_request(&data).unwrap();
    let status = match service.as_str() {
        "" => 1,
        "down" => 2,
        "slow" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        _ => {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "5")
                .header("grpc-message", "unknown service")
                .body(())
                .unwrap();
            respond.send_response(resp, true).unwrap();
            return;
        }
    };
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let mut stream = respond.send_response(resp, false).unwrap();
    stream
        .send_data(encode_health_response(status), false)
        .unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    stream.send_trailers(trailers).unwrap();
}

fn grpc(port: u16, service: Option<&str>) -> ProbeAction {
    ProbeAction::Grpc {
        port,
        service: service.map(str::to_string),
    }
}

#[tokio::test]
async fn grpc_health_check() {
    let port = grpc_server().await.port();
    let t = target();
    assert_eq!(
        run_probe(&t, &grpc(port, None), T1).await,
        ProbeResult::Success
    );
    assert_eq!(
        run_probe(&t, &grpc(port, Some("down")), T1).await,
        ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    assert_eq!(
        run_probe(&t, &grpc(port, Some("other")), T1).await,
        ProbeResult::Failure("rpc error: code = NotFound desc = unknown service".into())
    );
    let start = Instant::now();
    let r = run_probe(&t, &grpc(port, Some("slow")), Duration::from_millis(500)).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.starts_with("timeout")),
        "{r:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn grpc_against_wrong_servers() {
    let t = target();
    let closed = closed_port().await;
    let r = run_probe(&t, &grpc(closed, None), T1).await;
    assert!(
        matches!(&r, ProbeResult::Failure(m) if m.starts_with("failed to connect service")),
        "{r:?}"
    );
    // An HTTP/1 server does not speak h2.
    let http_port = http_server().await.port();
    let r = run_probe(&t, &grpc(http_port, None), T1).await;
    assert!(matches!(r, ProbeResult::Failure(_)), "{r:?}");
}

/// The loop end to end with real probes: readiness over HTTP, liveness over TCP to a port
/// that closes.
#[tokio::test]
async fn drive_target_end_to_end() {
    let http_port = http_server().await.port();
    let live = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let live_port = live.local_addr().unwrap().port();
    let ms = Duration::from_millis;
    let readiness = ProbeSpec::new(ProbeKind::Readiness, ms(0), ms(50), T1, 1, 1).unwrap();
    let liveness = ProbeSpec::new(ProbeKind::Liveness, ms(0), ms(50), T1, 1, 2).unwrap();
    let mut probes = ContainerProbes::new(Instant::now(), None, Some(readiness), Some(liveness));
    let actions = ProbeActions {
        startup: None,
        readiness: Some(http(http_port, "/ok")),
        liveness: Some(ProbeAction::TcpSocket {
            port: live_port,
            host: None,
        }),
    };
    let t = target();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let request = {
        let driver = drive_target(&mut probes, &actions, &t, |e| tx.send(e.clone()).unwrap());
        tokio::pin!(driver);
        // Ready first; then close the liveness port and expect the restart.
        tokio::select! {
            _ = &mut driver => panic!("restart before the port closed"),
            e = rx.recv() => assert_eq!(e, Some(ProbeEvent::Ready(true))),
        }
        drop(live);
        tokio::time::timeout(Duration::from_secs(5), &mut driver)
            .await
            .expect("restart requested")
    };
    assert_eq!(request.kind, ProbeKind::Liveness);
    assert!(request.message.contains("refused"), "{}", request.message);
    assert_eq!(rx.recv().await, Some(ProbeEvent::Ready(false)));
    assert!(matches!(rx.recv().await, Some(ProbeEvent::Restart(_))));
    assert!(!probes.ready());
}
