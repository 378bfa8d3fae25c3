//! The HTTP samples: `random-generator` and `never-ready`.
//!
//! A thread per connection, HTTP/1.1 with keep-alive (HTTP/1.0 with `Connection:
//! keep-alive`), idle connections closed after `IDLE_TIMEOUT_SECONDS`. On SIGTERM it stops
//! keeping connections alive, lets requests in flight finish (up to 5 s), and exits 0.

use super::{env_flag, env_parse, env_seconds, log, signal_channel, signal_name};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    RandomGenerator,
    NeverReady,
}

const DEFAULT_READY_FILE: &str = "/random-generator-ready";
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: u64 = 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct Server {
    name: &'static str,
    version: String,
    /// The id, JSON-encoded once.
    id_json: String,
    /// The version, JSON-encoded once.
    version_json: String,
    error_rate: f64,
    port: u16,
    ready_file: PathBuf,
    ready: AtomicBool,
    started: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    shutting_down: AtomicBool,
    idle_timeout: Duration,
    quiet: bool,
}

pub(crate) fn run(mode: Mode, args: &[String]) -> i32 {
    let name = match mode {
        Mode::RandomGenerator => "random-generator",
        Mode::NeverReady => "never-ready",
    };
    let signals = match signal_channel() {
        Ok(rx) => rx,
        Err(e) => {
            log(format!("{name}: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    let mut version = "1.0".to_string();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if let Some(v) = arg.strip_prefix("--version=") {
            version = v.to_string();
        } else if arg == "--version" {
            match rest.next() {
                Some(v) => version = v.clone(),
                None => log(format!("{name}: --version needs a value")),
            }
        } else {
            log(format!("{name}: ignoring argument {arg:?}"));
        }
    }

    let id = pod_id();
    let port: u16 = env_parse("PORT", 8080);
    let bind = std::env::var("BIND_ADDRESS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    let ready_delay = env_seconds("READY_DELAY_SECONDS", 0.0);
    let ready_file = PathBuf::from(
        std::env::var("READY_FILE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_READY_FILE.to_string()),
    );
    let mut error_rate: f64 = env_parse("ERROR_RATE", 0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        log(format!(
            "{name}: ERROR_RATE must be between 0 and 1; using 0"
        ));
        error_rate = 0.0;
    }
    if error_rate > 0.0 && (mode != Mode::RandomGenerator || version == "1.0") {
        log(format!(
            "{name}: ERROR_RATE is honoured by version 2.0 only; ignoring it"
        ));
        error_rate = 0.0;
    }
    let idle_timeout = env_seconds("IDLE_TIMEOUT_SECONDS", 60.0).max(Duration::from_millis(10));

    let listener = match TcpListener::bind((bind.as_str(), port)) {
        Ok(l) => l,
        Err(e) => {
            log(format!("{name}: cannot listen on {bind}:{port}: {e}"));
            return 1;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{bind}:{port}"));
    let server = Arc::new(Server {
        name,
        id_json: serde_json::to_string(&id).unwrap_or_else(|_| "\"\"".into()),
        version_json: serde_json::to_string(&version).unwrap_or_else(|_| "\"\"".into()),
        version,
        error_rate,
        port: listener.local_addr().map(|a| a.port()).unwrap_or(port),
        ready_file,
        ready: AtomicBool::new(false),
        started: Instant::now(),
        requests: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        shutting_down: AtomicBool::new(false),
        idle_timeout,
        quiet: env_flag("QUIET"),
    });
    let readiness = match mode {
        Mode::RandomGenerator => format!(
            "ready file {} in {}s",
            server.ready_file.display(),
            ready_delay.as_secs_f64()
        ),
        Mode::NeverReady => "never ready".to_string(),
    };
    log(format!(
        "{name} {} listening on {local} (id {id}, pid {}, {readiness}{})",
        server.version,
        std::process::id(),
        if server.error_rate > 0.0 {
            format!(", error rate {}", server.error_rate)
        } else {
            String::new()
        }
    ));

    if mode == Mode::RandomGenerator {
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("ready".into())
            .spawn(move || {
                std::thread::sleep(ready_delay);
                match std::fs::File::create(&s.ready_file) {
                    Ok(_) => {
                        s.ready.store(true, Ordering::SeqCst);
                        log(format!(
                            "{}: ready, created {}",
                            s.name,
                            s.ready_file.display()
                        ));
                    }
                    Err(e) => log(format!(
                        "{}: cannot create ready file {}: {e}",
                        s.name,
                        s.ready_file.display()
                    )),
                }
            });
        if let Err(e) = spawned {
            log(format!("{name}: cannot start the readiness thread: {e}"));
        }
    }

    let s = server.clone();
    let spawned = std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            if let Ok(signal) = signals.recv() {
                s.shutting_down.store(true, Ordering::SeqCst);
                log(format!(
                    "{}: received {}, shutting down",
                    s.name,
                    signal_name(signal)
                ));
                let deadline = Instant::now() + DRAIN_TIMEOUT;
                while s.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                log(format!(
                    "{}: stopped after {} requests",
                    s.name,
                    s.requests.load(Ordering::Relaxed)
                ));
                std::process::exit(0);
            }
        });
    if let Err(e) = spawned {
        log(format!("{name}: cannot start the shutdown thread: {e}"));
        return 1;
    }

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if server.shutting_down.load(Ordering::SeqCst) {
                    continue;
                }
                let s = server.clone();
                let spawned = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || s.serve(stream));
                if let Err(e) = spawned {
                    log(format!("{name}: cannot start a connection thread: {e}"));
                }
            }
            Err(e) => {
                log(format!("{name}: accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    1
}

/// The id a response reports: `POD_NAME`, else `HOSTNAME`, else the host name.
fn pod_id() -> String {
    for var in ["POD_NAME", "HOSTNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return v;
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

static RNG: AtomicU64 = AtomicU64::new(0);

/// splitmix64 over a shared counter (seeded lazily from the clock and PID).
fn random_u64() -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    if RNG.load(Ordering::Relaxed) == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) | 1;
        let _ = RNG.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = RNG.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
}

/// Why a request could not be read: the connection just ends, or it gets an error response.
enum ReadFailure {
    Closed,
    Respond(u16, &'static str),
}

impl Server {
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(self.idle_timeout));
        let mut reader = BufReader::with_capacity(4096, &stream);
        let mut line = Vec::with_capacity(256);
        let mut out = Vec::with_capacity(512);
        loop {
            let request = match read_request(&mut reader, &mut line) {
                Ok(r) => r,
                Err(ReadFailure::Closed) => return,
                Err(ReadFailure::Respond(status, message)) => {
                    out.clear();
                    write_response(
                        &mut out,
                        status,
                        "text/plain",
                        &[],
                        false,
                        message.as_bytes(),
                        false,
                    );
                    let _ = (&stream).write_all(&out);
                    return;
                }
            };
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let keep_alive = request.keep_alive && !self.shutting_down.load(Ordering::SeqCst);
            out.clear();
            self.respond(&request, keep_alive, &mut out);
            let written = (&stream).write_all(&out).is_ok();
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if !written || !keep_alive {
                return;
            }
        }
    }

    fn respond(&self, req: &Request, keep_alive: bool, out: &mut Vec<u8>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let head = req.method == "HEAD";
        let get_like = req.method == "GET" || head;
        let known = matches!(req.path.as_str(), "/" | "/healthz" | "/info");
        let (status, content_type, body, note): (u16, &str, String, String) = if !known {
            (
                404,
                "text/plain",
                "404 page not found\n".into(),
                String::new(),
            )
        } else if !get_like {
            (
                405,
                "text/plain",
                "405 method not allowed\n".into(),
                String::new(),
            )
        } else {
            match req.path.as_str() {
                "/" => {
                    let fail = self.error_rate > 0.0
                        && ((random_u64() >> 11) as f64 / (1u64 << 53) as f64) < self.error_rate;
                    if fail {
                        let body = format!(
                            "{{\"error\":\"injected failure (ERROR_RATE={})\",\"id\":{},\"version\":{}}}",
                            self.error_rate, self.id_json, self.version_json
                        );
                        (500, "application/json", body, " (injected error)".into())
                    } else {
                        let n = random_u64() >> 33;
                        let body = format!(
                            "{{\"random\":{n},\"id\":{},\"version\":{}}}",
                            self.id_json, self.version_json
                        );
                        (200, "application/json", body, format!(" random={n}"))
                    }
                }
                "/healthz" => (200, "text/plain", "ok\n".into(), String::new()),
                _ => (200, "application/json", self.info(), String::new()),
            }
        };
        let extra: &[(&str, &str)] = if status == 405 {
            &[("Allow", "GET, HEAD")]
        } else {
            &[]
        };
        write_response(
            out,
            status,
            content_type,
            extra,
            keep_alive,
            body.as_bytes(),
            head,
        );
        if !self.quiet {
            log(format!("{} {} {status}{note}", req.method, req.path));
        }
    }

    fn info(&self) -> String {
        serde_json::json!({
            "name": self.name,
            "version": self.version,
            "id": serde_json::from_str::<String>(&self.id_json).unwrap_or_default(),
            "pid": std::process::id(),
            "port": self.port,
            "ready": self.ready.load(Ordering::SeqCst),
            "readyFile": self.ready_file.display().to_string(),
            "errorRate": self.error_rate,
            "uptimeSeconds": self.started.elapsed().as_secs_f64(),
            "requests": self.requests.load(Ordering::Relaxed),
        })
        .to_string()
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    keep_alive: bool,
    body: &[u8],
    head: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason_phrase(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body);
    }
}

/// Reads one line (with its `\n`) into `buf`; `Ok(false)` at end of stream.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, ReadFailure> {
    buf.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', buf)
        .map_err(|_| ReadFailure::Closed)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(ReadFailure::Respond(
                431,
                "request line or header too long\n",
            ));
        }
        return Err(ReadFailure::Closed);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(true)
}

fn read_request(reader: &mut impl BufRead, line: &mut Vec<u8>) -> Result<Request, ReadFailure> {
    // The request line (empty lines before it are allowed).
    let mut blank = 0;
    loop {
        if !read_line(reader, line)? {
            return Err(ReadFailure::Closed);
        }
        if !line.is_empty() {
            break;
        }
        blank += 1;
        if blank > 4 {
            return Err(ReadFailure::Respond(400, "bad request\n"));
        }
    }
    let bad = || ReadFailure::Respond(400, "bad request\n");
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => {
            return Err(ReadFailure::Respond(505, "HTTP version not supported\n"));
        }
        _ => return Err(bad()),
    };
    let method = method.to_string();
    let path = request_path(target).ok_or_else(bad)?;

    let mut content_length: u64 = 0;
    let mut headers = 0;
    loop {
        if !read_line(reader, line)? {
            return Err(ReadFailure::Closed);
        }
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(ReadFailure::Respond(431, "too many headers\n"));
        }
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let (name, value) = text.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| bad())?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadFailure::Respond(
                501,
                "transfer-encoding is not supported\n",
            ));
        }
    }
    if content_length > MAX_BODY {
        return Err(ReadFailure::Respond(413, "request body too large\n"));
    }
    if content_length > 0 {
        let copied = io::copy(&mut reader.by_ref().take(content_length), &mut io::sink())
            .map_err(|_| ReadFailure::Closed)?;
        if copied != content_length {
            return Err(ReadFailure::Closed);
        }
    }
    Ok(Request {
        method,
        path,
        keep_alive,
    })
}

/// The path of a request target (origin form `/p?q` or absolute form `http://h/p?q`),
/// without its query.
fn request_path(target: &str) -> Option<String> {
    let target = match target.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        },
        None => target,
    };
    if !target.starts_with('/') {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    Some(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, u16> {
        let mut reader = BufReader::new(raw.as_bytes());
        let mut line = Vec::new();
        read_request(&mut reader, &mut line).map_err(|e| match e {
            ReadFailure::Closed => 0,
            ReadFailure::Respond(s, _) => s,
        })
    }

    #[test]
    fn parses_requests() {
        let r = parse("GET /info?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.keep_alive),
            ("GET", "/info", true)
        );
        let r = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .ok()
            .unwrap();
        assert!(!r.keep_alive);
        let r = parse("GET http://h:1/healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .ok()
            .unwrap();
        assert_eq!((r.path.as_str(), r.keep_alive), ("/healthz", true));
        let r = parse("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
            .ok()
            .unwrap();
        assert!(!r.keep_alive);
        assert_eq!(parse("GET / HTTP/1.1\r\n").err(), Some(0));
        assert_eq!(parse("").err(), Some(0));
        assert_eq!(parse("GARBAGE\r\n\r\n").err(), Some(400));
        assert_eq!(parse("GET / HTTP/2.0\r\n\r\n").err(), Some(505));
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").err(),
            Some(501)
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&long).err(), Some(431));
    }

    #[test]
    fn random_numbers_vary() {
        let a: Vec<u64> = (0..8).map(|_| random_u64()).collect();
        let mut b = a.clone();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
