//! End-to-end tests of the sample programs, each run as a subprocess: this test binary
//! re-executes itself with `SLIPWAY_IMAGES_TEST_SAMPLE` set, which makes `sample_child`
//! call `run_sample`. Servers listen on a free loopback port (`PORT=0`, the port is read
//! from the start-up log line) with `READY_FILE` in a temp dir.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SLIPWAY_IMAGES_TEST_SAMPLE";
const TIMEOUT: Duration = Duration::from_secs(20);
/// Variables a sample reads, removed from the child's environment unless a test sets them.
const SAMPLE_VARS: &[&str] = &[
    "PORT",
    "BIND_ADDRESS",
    "READY_DELAY_SECONDS",
    "READY_FILE",
    "ERROR_RATE",
    "IDLE_TIMEOUT_SECONDS",
    "POD_NAME",
    "HOSTNAME",
    "QUIET",
    "CRASH_AFTER_SECONDS",
    "CRASH_EXIT_CODE",
    "IGNORE_SIGTERM",
];

/// The entry point of the re-executed test binary; does nothing in a normal test run.
#[test]
fn sample_child() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.split('\u{1f}').map(str::to_string);
        let name = parts.next().unwrap_or_default();
        let args: Vec<String> = parts.collect();
        let code = slipway_images::run_sample(&name, &args);
        std::process::exit(code);
    }
}

/// A running sample: killed (by PID) and reaped on drop; its temp dir is removed.
struct Sample {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Sample {
    fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = name.to_string();
        for a in args {
            spec.push('\u{1f}');
            spec.push_str(a);
        }
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "sample_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        for var in SAMPLE_VARS {
            cmd.env_remove(var);
        }
        cmd.env("BIND_ADDRESS", "127.0.0.1")
            .env("PORT", "0")
            .env("READY_FILE", dir.path().join("ready"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sample {
            child,
            lines,
            log: Vec::new(),
            dir,
            started: Instant::now(),
        }
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready")
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no log line with {needle:?} ({e:?}); log so far: {:#?}",
                    self.log
                ),
            }
        }
    }

    /// The port from the "listening on 127.0.0.1:PORT" line.
    fn port(&mut self) -> u16 {
        let line = self.wait_line("listening on 127.0.0.1:");
        let rest = line.split("listening on 127.0.0.1:").nth(1).unwrap();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits (bounded) for the process to close its stdout, then reaps it.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the sample did not exit; log: {:#?}", self.log)
                }
            }
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// A keep-alive HTTP/1.1 client connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, raw: &str) -> Response {
        self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
        // A response to HEAD has Content-Length but no body.
        self.read_response(!raw.starts_with("HEAD "))
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
    }

    fn read_response(&mut self, with_body: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; if with_body { len } else { 0 }];
        self.reader.read_exact(&mut body).unwrap();
        Response {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    /// True when the server has closed the connection (bounded by the read timeout).
    fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

#[test]
fn random_generator_serves_json_and_becomes_ready_after_the_delay() {
    let delay = 0.4;
    let mut s = Sample::spawn(
        "random-generator",
        &["--version=1.0"],
        &[("READY_DELAY_SECONDS", "0.4"), ("POD_NAME", "web-abc")],
    );
    let port = s.port();
    // Before the delay has passed the file cannot exist.
    if s.started.elapsed().as_secs_f64() < delay {
        assert!(!s.ready_file().exists());
    }
    let mut c = Client::connect(port);
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let json = r.json();
    assert_eq!(json["version"], "1.0");
    assert_eq!(json["id"], "web-abc");
    assert!(json["random"].is_u64(), "{json}");

    s.wait_line("ready");
    assert!(s.started.elapsed().as_secs_f64() >= delay);
    assert!(s.ready_file().exists());

    // Keep-alive: more requests on the same connection.
    for _ in 0..3 {
        assert_eq!(c.get("/").json()["version"], "1.0");
    }
    assert_eq!(c.get("/healthz").status, 200);
    let info = c.get("/info");
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["ready"], true);
    assert_eq!(info.json()["version"], "1.0");
    assert_eq!(c.get("/nope").status, 404);
    let post = c.send("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(post.status, 405);
    assert_eq!(c.get("/?q=1").status, 200);
    let head = c.send("HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(c.get("/").status, 200, "the connection goes on after HEAD");
    s.wait_line("GET /nope 404");

    // HTTP/1.0 without keep-alive, and Connection: close, end the connection.
    let mut c10 = Client::connect(port);
    let r = c10.send("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c10.closed_by_server());
    let mut cc = Client::connect(port);
    assert_eq!(
        cc.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .status,
        200
    );
    assert!(cc.closed_by_server());

    s.signal(Signal::SIGTERM);
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0), "log: {:#?}", s.log);
    assert!(
        s.log.iter().any(|l| l.contains("received SIGTERM")),
        "{:#?}",
        s.log
    );
}

#[test]
fn version_2_error_rate_gives_500s() {
    let mut bad = Sample::spawn(
        "random-generator",
        &["--version=2.0"],
        &[("ERROR_RATE", "1")],
    );
    let mut good = Sample::spawn("random-generator", &["--version=2.0"], &[]);
    let mut v1 = Sample::spawn(
        "random-generator",
        &["--version=1.0"],
        &[("ERROR_RATE", "1")],
    );

    let mut c = Client::connect(bad.port());
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["version"], "2.0");
    }
    assert_eq!(c.get("/healthz").status, 200);

    let mut c = Client::connect(good.port());
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["version"], "2.0");
    }

    // Version 1.0 does not honour ERROR_RATE.
    let mut c = Client::connect(v1.port());
    assert_eq!(c.get("/").status, 200);

    for s in [&mut bad, &mut good, &mut v1] {
        s.signal(Signal::SIGTERM);
        assert_eq!(s.wait_exit().code(), Some(0));
    }
}

#[test]
fn idle_connections_are_closed() {
    let mut s = Sample::spawn("random-generator", &[], &[("IDLE_TIMEOUT_SECONDS", "0.2")]);
    let mut c = Client::connect(s.port());
    assert_eq!(c.get("/").status, 200);
    assert!(c.closed_by_server());
    s.signal(Signal::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn never_ready_serves_but_never_creates_the_file() {
    let mut s = Sample::spawn("never-ready", &[], &[("READY_DELAY_SECONDS", "0")]);
    let mut c = Client::connect(s.port());
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], "1.0");
    assert_eq!(c.get("/info").json()["ready"], false);
    s.signal(Signal::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
    assert!(!s.log.iter().any(|l| l.contains("created")), "{:#?}", s.log);
    assert!(!s.ready_file().exists());
}

#[test]
fn crasher_exits_1() {
    let mut s = Sample::spawn("crasher", &[], &[("CRASH_AFTER_SECONDS", "0.1")]);
    assert_eq!(s.wait_exit().code(), Some(1));
    assert!(s.log.iter().any(|l| l.contains("crashing")), "{:#?}", s.log);
}

#[test]
fn crasher_stops_on_sigterm() {
    let mut s = Sample::spawn("crasher", &[], &[("CRASH_AFTER_SECONDS", "600")]);
    s.wait_line("crasher: started");
    s.signal(Signal::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn sleeper_exits_0_on_sigterm() {
    let mut s = Sample::spawn("sleeper", &[], &[]);
    s.wait_line("sleeping until SIGTERM");
    s.signal(Signal::SIGTERM);
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn sleeper_can_ignore_sigterm() {
    use std::os::unix::process::ExitStatusExt;
    let mut s = Sample::spawn("sleeper", &[], &[("IGNORE_SIGTERM", "1")]);
    s.wait_line("ignoring SIGTERM");
    s.signal(Signal::SIGTERM);
    s.wait_line("received SIGTERM, ignoring it");
    assert!(s.child.try_wait().unwrap().is_none(), "it must still run");
    s.signal(Signal::SIGKILL);
    assert_eq!(s.wait_exit().signal(), Some(9));
}

#[test]
fn unknown_sample_is_exit_2() {
    assert_eq!(slipway_images::run_sample("no-such-sample", &[]), 2);
}
