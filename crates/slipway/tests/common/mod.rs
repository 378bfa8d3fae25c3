//! Test harness: a real `slipway serve` on a free loopback port with its own data dir, driven
//! by the real kubectl. Every process and temp dir is cleaned up on drop, also on failure.

#![allow(dead_code)]

pub mod load;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `slipway serve`.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub addr: String,
    pub token: String,
    pub ca_pem: String,
}

/// kubectl's result.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn slipway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_slipway")
}

/// Fails the test unless kubectl is installed: the tests never skip.
pub fn require_kubectl() {
    let ok = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "kubectl is not on PATH: the integration tests need the real kubectl"
    );
}

impl Server {
    /// Starts a server with a fresh data dir.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Server::start_in(dir, data_dir, &[])
    }

    /// Starts a server with extra `serve` arguments.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Server::start_in(dir, data_dir, args)
    }

    fn start_in(dir: tempfile::TempDir, data_dir: PathBuf, args: &[&str]) -> Server {
        require_kubectl();
        let mut server = Server {
            child: None,
            kubeconfig: data_dir.join("kubeconfig"),
            data_dir,
            dir,
            addr: String::new(),
            token: String::new(),
            ca_pem: String::new(),
        };
        server.spawn(args);
        server
    }

    /// Starts the process (again) on the same data dir, on a new free port.
    pub fn spawn(&mut self, args: &[&str]) {
        let mut child = Command::new(slipway_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("SLIPWAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn slipway serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Keep stderr drained so the server never blocks on a full pipe.
        let log_path = self.dir.path().join("server.log");
        std::thread::spawn(move || {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ready = false;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("API server listening on https://") => {
                    self.addr = line["API server listening on https://".len()..].to_string();
                    ready = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert!(
            ready,
            "slipway serve did not report ready within 30 s; log:\n{}",
            self.log()
        );
        self.token = std::fs::read_to_string(self.data_dir.join("token"))
            .unwrap_or_default()
            .trim()
            .to_string();
        self.ca_pem = std::fs::read_to_string(self.data_dir.join("ca.crt")).unwrap_or_default();
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The PID of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        match self.stop_gracefully(Duration::from_secs(20)) {
            Ok(status) => status,
            Err(()) => panic!("slipway serve did not exit within 20 s of SIGTERM"),
        }
    }

    /// SIGTERM, then wait up to `grace`; on timeout SIGKILL and `Err`. Never panics.
    fn stop_gracefully(&mut self, grace: Duration) -> Result<Option<std::process::ExitStatus>, ()> {
        let Some(mut c) = self.child.take() else {
            return Ok(None);
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Ok(Some(st));
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return Err(());
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("kubectl-cache")
    }

    /// A kubectl command for this server (fresh discovery cache per server).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args);
        cmd.env_remove("KUBECONFIG");
        cmd
    }

    /// Runs kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        Run::from(self.kubectl_cmd(args).output().expect("run kubectl"))
    }

    /// Runs kubectl with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("kubectl output"))
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_eq!(
            r.code,
            0,
            "kubectl {args:?} failed: {}\n{}\nserver log:\n{}",
            r.stderr,
            r.stdout,
            self.log()
        );
        r.stdout
    }

    /// Applies YAML from stdin and asserts success.
    pub fn apply(&self, yaml: &str) -> String {
        let r = self.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert_eq!(
            r.code, 0,
            "kubectl apply failed: {}\n{}",
            r.stderr, r.stdout
        );
        r.stdout
    }

    /// Runs kubectl and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_ne!(
            r.code, 0,
            "kubectl {args:?} should have failed but printed: {}",
            r.stdout
        );
        r.stderr
    }

    /// `kubectl get -o json` parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&full)).expect("kubectl printed JSON")
    }

    /// A raw HTTPS request with the admin token (or none). Returns status and body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        auth: bool,
    ) -> (u16, String) {
        http_request(
            &self.addr,
            &self.ca_pem,
            if auth { Some(&self.token) } else { None },
            method,
            path,
            content_type,
            body,
        )
    }
}

impl Drop for Server {
    /// Stops the server gracefully (SIGTERM: it stops every pod), then kills, by PID, any
    /// shim or container process still recorded under the data dir (after a kill -9, or a
    /// server that did not stop in time), so no test leaves a process behind.
    fn drop(&mut self) {
        let _ = self.stop_gracefully(Duration::from_secs(20));
        for (pid, start) in recorded_processes(&self.data_dir) {
            if process_start_time(pid) == Some(start) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
        // Pods' pinned network namespaces survive a kill -9 (as they must, for adoption);
        // the temp dir can only go once they are unmounted.
        for mount_point in mounts_under(&self.data_dir) {
            let _ = Command::new("umount").arg("-l").arg(&mount_point).status();
        }
    }
}

/// Mount points (from `/proc/self/mountinfo`) at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A TLS connection to the server at `addr`, trusting its CA (reads time out after 30 s, a
/// bound for tests that would otherwise hang).
fn tls_connect(
    addr: &str,
    ca_pem: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS client");
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
    rustls::StreamOwned::new(conn, tcp)
}

/// A minimal HTTP/1.1 client over TLS (rustls, trusting the server's CA), for requests that
/// kubectl cannot make (wrong content types, oversize bodies, no token).
pub fn http_request(
    addr: &str,
    ca_pem: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut tls = tls_connect(addr, ca_pem);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    // Large bodies ask first (as curl does), so a refusal such as 413 arrives cleanly
    // instead of as a reset while the body is still being written.
    let ask_first = body.len() > 1024 * 1024;
    if ask_first {
        req.push_str("Expect: 100-continue\r\n");
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    if ask_first {
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            match tls.read(&mut byte) {
                Ok(1) => raw.push(byte[0]),
                _ => return parse_response(&raw),
            }
        }
        if !raw.starts_with(b"HTTP/1.1 100") {
            let _ = tls.read_to_end(&mut raw);
            return parse_response(&raw);
        }
        raw.clear();
    }
    let _ = tls.write_all(body);
    let _ = tls.flush();
    let _ = tls.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return (code, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    (code, out)
}

/// Writes `contents` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write file");
    p
}

/// A streaming watch over raw HTTPS: each event, parsed, arrives on the returned channel as
/// the server sends it. The reading thread ends when the server closes the stream (at
/// `timeoutSeconds`, or when the server stops).
pub fn watch_events(s: &Server, path: &str) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let mut tls = tls_connect(&s.addr, &s.ca_pem);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.addr, s.token
    );
    tls.write_all(req.as_bytes()).expect("send watch");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(tls);
        let mut line = String::new();
        // Headers.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        // Chunked body: size line, data, CRLF. Events are newline-terminated JSON.
        let mut pending = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
                return;
            };
            if size == 0 {
                return;
            }
            let mut buf = vec![0u8; size + 2];
            if reader.read_exact(&mut buf).is_err() {
                return;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..size]));
            while let Some(pos) = pending.find('\n') {
                let event: String = pending.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_str(event.trim())
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

/// The list resourceVersion of a collection path.
pub fn list_revision(s: &Server, path: &str) -> String {
    let (code, body) = s.http("GET", path, None, b"", true);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("list JSON");
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string()
}

/// Kept for the tests that name it: every [`Server`] now stops its pods on drop.
pub type ProcessServer = Server;

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks), for a live process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process `pid` with start time `start` is alive.
pub fn alive(pid: i32, start: u64) -> bool {
    process_start_time(pid) == Some(start)
}

/// The shim and container processes (PID, start time) recorded in the `state.json` files
/// under `<data_dir>/pods`, optionally of one pod uid only.
pub fn recorded_processes_of(data_dir: &Path, uid: Option<&str>) -> Vec<(i32, u64)> {
    let mut out = Vec::new();
    let pods = data_dir.join("pods");
    for pod in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        if uid.is_some_and(|u| pod.file_name().to_str() != Some(u)) {
            continue;
        }
        for c in std::fs::read_dir(pod.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for run in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                let Ok(text) = std::fs::read_to_string(run.path().join("state.json")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                for (p, t) in [
                    ("shimPid", "shimStartTime"),
                    ("containerPid", "containerStartTime"),
                ] {
                    if let (Some(pid), Some(start)) = (v[p].as_i64(), v[t].as_u64()) {
                        out.push((pid as i32, start));
                    }
                }
            }
        }
    }
    out
}

/// Every recorded shim and container process of a data dir, and its service proxy.
pub fn recorded_processes(data_dir: &Path) -> Vec<(i32, u64)> {
    let mut out = recorded_processes_of(data_dir, None);
    out.extend(recorded_proxy(data_dir));
    out
}

/// The service proxy recorded in `<data_dir>/proxy/state.json`: (PID, start time).
pub fn recorded_proxy(data_dir: &Path) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(data_dir.join("proxy/state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((v["pid"].as_i64()? as i32, v["startTime"].as_u64()?))
}

/// A plain HTTP/1.1 GET over TCP (for pod IPs); returns status and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("address"),
        Duration::from_secs(5),
    )?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// `<clusterIP>:<first port>` of the Service `svc`.
pub fn cluster_addr(s: &Server, svc: &str) -> std::net::SocketAddr {
    let v = s.get_json(&["svc", svc]);
    let ip = v["spec"]["clusterIP"].as_str().expect("clusterIP");
    let port = v["spec"]["ports"][0]["port"].as_u64().expect("port");
    format!("{ip}:{port}").parse().expect("address")
}

/// The ready endpoints in the EndpointSlices of the Service `svc`.
pub fn ready_endpoints(s: &Server, svc: &str) -> usize {
    let v = s.get_json(&[
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
    ]);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .count()
}

/// Waits (at most 120 s) until the Service `svc` has exactly `n` ready endpoints.
pub fn wait_ready_endpoints(s: &Server, svc: &str, n: usize) {
    eventually(
        Duration::from_secs(120),
        &format!("{n} ready endpoints of service {svc}"),
        || (ready_endpoints(s, svc) == n).then_some(()),
    );
}
