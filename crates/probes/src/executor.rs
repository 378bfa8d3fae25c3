//! Running one probe against a container: httpGet, tcpSocket, exec and grpc, each bounded
//! by the probe's timeout. How the container is reached is the caller's: see
//! [`ProbeTarget`].

use std::future::Future;
use std::io::{self, Read};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use crate::schedule::ProbeResult;
use crate::spec::{HttpGetAction, HttpScheme, ProbeAction};

/// The `User-Agent` the kubelet of Kubernetes 1.33 sends.
pub const USER_AGENT: &str = "kube-probe/1.33";

/// At most this much of a response body or command output goes into a message (10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// How probes reach one container.
pub trait ProbeTarget: Send + Sync {
    /// Opens a TCP connection to `port` of the container (in its network namespace).
    fn connect(&self, port: u16) -> impl Future<Output = io::Result<TcpStream>> + Send;

    /// Opens a TCP connection to `host:port` for probes that name a `host`. By default a
    /// plain connection from the agent's own network namespace.
    fn connect_host(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<TcpStream>> + Send {
        let addr = (host.to_string(), port);
        async move { TcpStream::connect(addr).await }
    }

    /// Runs `argv` inside the container with stdin null, and says how it ended: its exit
    /// code and the start (up to [`MAX_OUTPUT`]) of its combined stdout and stderr, or that
    /// it was killed at `timeout`. An error means it could not be started.
    fn exec(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<ExecOutcome>> + Send;

    /// The address the container is reached at, for the `Host` header and messages
    /// (the pod IP).
    fn host(&self) -> String;
}

/// How a command run by [`ProbeTarget::exec`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with `code` (128 + the signal when a signal ended it). `output` is the start
    /// of its combined stdout and stderr.
    Exited { code: i32, output: Vec<u8> },
    /// It was still running at the timeout, and was killed.
    TimedOut,
}

/// A target on the agent's own network and process namespaces at `ip` (host-network pods,
/// tests).
#[derive(Debug, Clone)]
pub struct HostTarget {
    pub ip: IpAddr,
}

impl ProbeTarget for HostTarget {
    fn connect(&self, port: u16) -> impl Future<Output = io::Result<TcpStream>> + Send {
        let ip = self.ip;
        async move { TcpStream::connect((ip, port)).await }
    }

    fn exec(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<ExecOutcome>> + Send {
        let spawned = match argv.split_first() {
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command")),
            Some((program, args)) => Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn(),
        };
        async move { wait_child(spawned?, timeout).await }
    }

    fn host(&self) -> String {
        self.ip.to_string()
    }
}

/// Runs one probe, bounded by `timeout`: a probe that has not finished by then is
/// abandoned (its connection dropped, its command killed) and counts as a failure.
pub async fn run_probe<T: ProbeTarget>(
    target: &T,
    action: &ProbeAction,
    timeout: Duration,
) -> ProbeResult {
    match action {
        ProbeAction::HttpGet(h) => http_get(target, h, timeout).await,
        ProbeAction::TcpSocket { port, host } => {
            tcp_socket(target, *port, host.as_deref(), timeout).await
        }
        ProbeAction::Exec { command } => exec(target, command, timeout).await,
        ProbeAction::Grpc { port, service } => {
            grpc(target, *port, service.as_deref(), timeout).await
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn connect<T: ProbeTarget>(
    target: &T,
    host: Option<&str>,
    port: u16,
) -> io::Result<TcpStream> {
    match host {
        Some(h) => target.connect_host(h, port).await,
        None => target.connect(port).await,
    }
}

/// tcpSocket: success when the connection opens within the timeout.
pub async fn tcp_socket<T: ProbeTarget>(
    target: &T,
    port: u16,
    host: Option<&str>,
    timeout: Duration,
) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    let addr = host_port(host.unwrap_or(&target.host()), port);
    match timeout_at(deadline, connect(target, host, port)).await {
        Ok(Ok(_stream)) => ProbeResult::Success,
        Ok(Err(e)) => ProbeResult::Failure(format!("dial tcp {addr}: {e}")),
        Err(_) => ProbeResult::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// httpGet: a `GET` over HTTP/1.1; success when the status is 200–399 (redirects are not
/// followed: a 3xx is a success).
pub async fn http_get<T: ProbeTarget>(
    target: &T,
    action: &HttpGetAction,
    timeout: Duration,
) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    let host = action.host.clone().unwrap_or_else(|| target.host());
    let authority = host_port(&host, action.port);
    let path = if action.path.is_empty() {
        "/".to_string()
    } else if action.path.starts_with('/') {
        action.path.clone()
    } else {
        format!("/{}", action.path)
    };
    let url = format!("http://{authority}{path}");
    if action.scheme == HttpScheme::Https {
        return ProbeResult::Error(format!("Get {url:?}: HTTPS probes are not supported"));
    }
    let request = http_request(&path, &authority, &action.headers);
    let exchange = async {
        let mut stream = connect(target, action.host.as_deref(), action.port).await?;
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream).await
    };
    match timeout_at(deadline, exchange).await {
        Ok(Ok((status, _))) if (200..400).contains(&status) => ProbeResult::Success,
        Ok(Ok((status, body))) => {
            let body = String::from_utf8_lossy(&body);
            if body.is_empty() {
                ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}"))
            } else {
                ProbeResult::Failure(format!(
                    "HTTP probe failed with statuscode: {status}: {body}"
                ))
            }
        }
        Ok(Err(e)) => ProbeResult::Failure(format!("Get {url:?}: {e}")),
        Err(_) => ProbeResult::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

fn http_request(path: &str, authority: &str, headers: &[(String, String)]) -> String {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("user-agent") {
        req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        // A header that would break the request framing is dropped.
        if name.is_empty() || [name, value].iter().any(|s| s.contains(['\r', '\n'])) {
            continue;
        }
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads the final (non-1xx) response: its status and up to [`MAX_OUTPUT`] of its body.
async fn read_response(stream: &mut TcpStream) -> io::Result<(u16, Vec<u8>)> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err(invalid("response headers too large"));
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF"));
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.advance(head_end);
        let status_line = head.lines().next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("malformed HTTP response {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| invalid(format!("malformed HTTP status code {status_line:?}")))?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let length = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let chunked = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
            })
        });
        // The body only feeds a failure message: read what is cheap to read.
        let want = if chunked {
            0
        } else {
            length.unwrap_or(MAX_OUTPUT).min(MAX_OUTPUT)
        };
        while buf.len() < want {
            if stream.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        buf.truncate(want);
        return Ok((status, buf.to_vec()));
    }
}

/// exec: success when the command exits with 0; killed at the timeout.
pub async fn exec<T: ProbeTarget>(target: &T, argv: &[String], timeout: Duration) -> ProbeResult {
    let shown = argv.join(" ");
    match target.exec(argv.to_vec(), timeout).await {
        Err(e) => ProbeResult::Error(format!("exec {shown:?}: {e}")),
        Ok(ExecOutcome::TimedOut) => ProbeResult::Failure(format!("command {shown:?} timed out")),
        Ok(ExecOutcome::Exited { code: 0, .. }) => ProbeResult::Success,
        Ok(ExecOutcome::Exited { code, output }) if output.is_empty() => {
            ProbeResult::Failure(format!("command {shown:?} exited with code {code}"))
        }
        Ok(ExecOutcome::Exited { output, .. }) => {
            ProbeResult::Failure(String::from_utf8_lossy(&output).into_owned())
        }
    }
}

/// Waits for a child started with piped stdout and stderr (for targets that start their
/// commands as children of this process), reading its output; kills it at `timeout`.
pub async fn wait_child(mut child: Child, timeout: Duration) -> io::Result<ExecOutcome> {
    let deadline = Instant::now() + timeout;
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        readers.push(drain(pipe, output.clone()));
    }
    // Wait for the exit in a thread without reaping the child (WNOWAIT): until this task
    // reaps it, its PID cannot be reused, so killing it at the timeout is always safe.
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, exited) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        while let Err(nix::errno::Errno::EINTR) =
            waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
        {}
        let _ = tx.send(());
    });
    if timeout_at(deadline, exited).await.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(ExecOutcome::TimedOut);
    }
    let status = child.wait()?;
    // Output still in the pipes (a background process may hold them open: bounded).
    for r in readers {
        let _ = timeout_at(deadline, r).await;
    }
    let output = std::mem::take(&mut *output.lock().expect("output lock"));
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255);
    Ok(ExecOutcome::Exited { code, output })
}

/// Reads a pipe to its end in a thread, keeping the first [`MAX_OUTPUT`] bytes; the
/// receiver fires at the end.
fn drain(mut pipe: Box<dyn Read + Send>, out: Arc<Mutex<Vec<u8>>>) -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut o = out.lock().expect("output lock");
                    let room = MAX_OUTPUT.saturating_sub(o.len());
                    o.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    Other(u64),
}

impl ServingStatus {
    fn from_wire(v: u64) -> Self {
        match v {
            0 => ServingStatus::Unknown,
            1 => ServingStatus::Serving,
            2 => ServingStatus::NotServing,
            3 => ServingStatus::ServiceUnknown,
            n => ServingStatus::Other(n),
        }
    }

    pub fn as_str(self) -> String {
        match self {
            ServingStatus::Unknown => "UNKNOWN".into(),
            ServingStatus::Serving => "SERVING".into(),
            ServingStatus::NotServing => "NOT_SERVING".into(),
            ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN".into(),
            ServingStatus::Other(n) => n.to_string(),
        }
    }
}

/// The gRPC length-prefixed frame of `HealthCheckRequest { service }`.
pub fn encode_health_request(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

/// Decodes the gRPC frame of a `HealthCheckResponse` (the inverse of what a health server
/// sends; also used by test servers).
pub fn decode_health_response(frame: &[u8]) -> Result<ServingStatus, String> {
    let msg = grpc_message(frame)?;
    let mut status = 0;
    let mut rest = msg;
    while !rest.is_empty() {
        let key = get_varint(&mut rest)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut rest)?,
            (_, 0) => {
                get_varint(&mut rest)?;
            }
            (_, 1) => rest = rest.get(8..).ok_or("truncated fixed64")?,
            (_, 5) => rest = rest.get(4..).ok_or("truncated fixed32")?,
            (_, 2) => {
                let len = get_varint(&mut rest)? as usize;
                rest = rest.get(len..).ok_or("truncated field")?;
            }
            (_, w) => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(ServingStatus::from_wire(status))
}

/// Decodes the frame of a `HealthCheckRequest` into its service name.
pub fn decode_health_request(frame: &[u8]) -> Result<String, String> {
    let mut rest = grpc_message(frame)?;
    let mut service = String::new();
    while !rest.is_empty() {
        let key = get_varint(&mut rest)?;
        match key & 7 {
            0 => {
                get_varint(&mut rest)?;
            }
            2 => {
                let len = get_varint(&mut rest)? as usize;
                let v = rest.get(..len).ok_or("truncated field")?;
                if key >> 3 == 1 {
                    service = String::from_utf8(v.to_vec()).map_err(|e| e.to_string())?;
                }
                rest = &rest[len..];
            }
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(service)
}

/// Encodes the frame of a `HealthCheckResponse { status }`.
pub fn encode_health_response(status: u64) -> Bytes {
    let mut msg = Vec::new();
    if status != 0 {
        msg.push(0x08); // field 1, varint
        put_varint(&mut msg, status);
    }
    let mut frame = vec![0];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

fn grpc_message(frame: &[u8]) -> Result<&[u8], String> {
    if frame.len() < 5 {
        return Err("short gRPC message".into());
    }
    if frame[0] != 0 {
        return Err("compressed gRPC message".into());
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    frame
        .get(5..5 + len)
        .ok_or_else(|| "truncated gRPC message".to_string())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// grpc: `grpc.health.v1.Health/Check` over HTTP/2 cleartext; success when it answers
/// `SERVING`.
pub async fn grpc<T: ProbeTarget>(
    target: &T,
    port: u16,
    service: Option<&str>,
    timeout: Duration,
) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    let authority = host_port(&target.host(), port);
    let service = service.unwrap_or("");
    match timeout_at(deadline, grpc_check(target, port, &authority, service)).await {
        Ok(Ok(ServingStatus::Serving)) => ProbeResult::Success,
        Ok(Ok(other)) => ProbeResult::Failure(format!(
            "service unhealthy (responded with {:?})",
            other.as_str()
        )),
        Ok(Err(GrpcError::Connect(e))) => ProbeResult::Failure(format!(
            "failed to connect service {authority:?} within {}s: {e}",
            timeout.as_secs()
        )),
        Ok(Err(GrpcError::Rpc(e))) => ProbeResult::Failure(e),
        Err(_) => ProbeResult::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
    }
}

enum GrpcError {
    Connect(String),
    Rpc(String),
}

async fn grpc_check<T: ProbeTarget>(
    target: &T,
    port: u16,
    authority: &str,
    service: &str,
) -> Result<ServingStatus, GrpcError> {
    let rpc = |e: &dyn std::fmt::Display| GrpcError::Rpc(format!("rpc error: {e}"));
    let stream = target
        .connect(port)
        .await
        .map_err(|e| GrpcError::Connect(e.to_string()))?;
    let (client, connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| GrpcError::Connect(e.to_string()))?;
    let call = async {
        let mut client = client.ready().await.map_err(|e| rpc(&e))?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{authority}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", USER_AGENT)
            .body(())
            .map_err(|e| rpc(&e))?;
        let (response, mut send) = client.send_request(request, false).map_err(|e| rpc(&e))?;
        send.send_data(encode_health_request(service), true)
            .map_err(|e| rpc(&e))?;
        let response = response.await.map_err(|e| rpc(&e))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(GrpcError::Rpc(format!(
                "rpc error: HTTP status {}",
                parts.status
            )));
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| rpc(&e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if data.len() < 64 * 1024 {
                data.extend_from_slice(&chunk);
            }
        }
        let trailers = body.trailers().await.map_err(|e| rpc(&e))?;
        // A trailers-only response carries grpc-status in the headers.
        let grpc_status = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| parts.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let message = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| parts.headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        match grpc_status.as_deref() {
            Some("0") => {}
            Some(code) => {
                return Err(GrpcError::Rpc(format!(
                    "rpc error: code = {} desc = {message}",
                    grpc_code_name(code)
                )));
            }
            None => return Err(GrpcError::Rpc("rpc error: missing grpc-status".into())),
        }
        decode_health_response(&data).map_err(|e| GrpcError::Rpc(format!("rpc error: {e}")))
    };
    tokio::pin!(connection);
    tokio::select! {
        r = call => r,
        r = &mut connection => match r {
            Ok(()) => Err(GrpcError::Rpc("rpc error: connection closed".into())),
            Err(e) => Err(GrpcError::Rpc(format!("rpc error: {e}"))),
        },
    }
}

fn grpc_code_name(code: &str) -> String {
    let name = match code {
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "7" => "PermissionDenied",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "16" => "Unauthenticated",
        other => return format!("Code({other})"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_round_trip() {
        assert_eq!(&encode_health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_health_request("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(
            decode_health_request(&encode_health_request("svc.v1")).unwrap(),
            "svc.v1"
        );
        let long = "x".repeat(300);
        assert_eq!(
            decode_health_request(&encode_health_request(&long)).unwrap(),
            long
        );
        assert_eq!(
            decode_health_response(&encode_health_response(1)).unwrap(),
            ServingStatus::Serving
        );
        assert_eq!(
            decode_health_response(&encode_health_response(2)).unwrap(),
            ServingStatus::NotServing
        );
        assert_eq!(
            decode_health_response(&encode_health_response(0)).unwrap(),
            ServingStatus::Unknown
        );
        // Unknown fields are skipped.
        assert_eq!(
            decode_health_response(&[0, 0, 0, 0, 6, 0x12, 1, b'z', 0x08, 1, 0x18]).unwrap_err(),
            "truncated varint"
        );
        assert_eq!(
            decode_health_response(&[0, 0, 0, 0, 5, 0x12, 1, b'z', 0x08, 1]).unwrap(),
            ServingStatus::Serving
        );
        assert!(decode_health_response(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_health_response(&[0, 0, 0]).is_err());
    }

    #[test]
    fn request_headers() {
        let r = http_request("/h?x=1", "10.0.0.1:80", &[("X-A".into(), "b".into())]);
        assert_eq!(
            r,
            "GET /h?x=1 HTTP/1.1\r\nHost: 10.0.0.1:80\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nX-A: b\r\nConnection: close\r\n\r\n"
        );
        let r = http_request(
            "/",
            "a:1",
            &[
                ("host".into(), "example".into()),
                ("Bad".into(), "x\r\ny".into()),
            ],
        );
        assert!(r.starts_with("GET / HTTP/1.1\r\nUser-Agent"), "{r}");
        assert!(r.contains("host: example\r\n") && !r.contains("Bad"));
        assert_eq!(host_port("::1", 80), "[::1]:80");
    }
}
