//! A minimal HTTP/1.1 client for plain-TCP load: one keep-alive connection, `GET /` with an
//! optional `Connection: close`, responses framed by `Content-Length` or chunked encoding.
//! Written for speed and strictness rather than generality: any framing it cannot follow
//! is a failure, never a guess.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Upper bound on a connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound on one request, from sending it to the last byte of its response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on a response head.
const MAX_HEAD: usize = 16 * 1024;

/// What a failed request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailKind {
    /// The TCP connect failed or timed out.
    Connect,
    /// The connection ended (or errored) before a whole response arrived.
    Cut,
    /// No whole response within [`IO_TIMEOUT`].
    Timeout,
    /// A status other than 200.
    Status,
    /// A response the client cannot frame.
    Malformed,
}

impl FailKind {
    pub fn label(self) -> &'static str {
        match self {
            FailKind::Connect => "connect error",
            FailKind::Cut => "response missing or cut",
            FailKind::Timeout => "timeout",
            FailKind::Status => "status not 200",
            FailKind::Malformed => "malformed response",
        }
    }
}

/// A failed request: its kind and a description.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailKind,
    pub detail: String,
}

impl Failure {
    fn new(kind: FailKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

/// One complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server said `Connection: close` (the connection cannot be reused).
    pub close: bool,
}

/// One client connection, or none yet.
pub struct Client {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    keep_alive_req: Vec<u8>,
    close_req: Vec<u8>,
}

impl Client {
    /// A client of `addr`; connects on the first request.
    pub fn new(addr: SocketAddr) -> Client {
        let host = addr.to_string();
        Client {
            keep_alive_req: format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            close_req: format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            addr,
            host,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Whether a connection is open.
    #[cfg(test)]
    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Drops the connection, if any.
    pub fn disconnect(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    /// Opens the connection if there is none.
    pub async fn ensure_connected(&mut self) -> Result<(), Failure> {
        if self.stream.is_some() {
            return Ok(());
        }
        let s = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Failure::new(
                    FailKind::Connect,
                    format!("connect {}: {e}", self.host),
                ));
            }
            Err(_) => {
                return Err(Failure::new(
                    FailKind::Connect,
                    format!(
                        "connect {}: no answer within {CONNECT_TIMEOUT:?}",
                        self.host
                    ),
                ));
            }
        };
        let _ = s.set_nodelay(true);
        self.stream = Some(s);
        self.buf.clear();
        Ok(())
    }

    /// `GET /` (connecting first if needed). With `close`, the request asks for
    /// `Connection: close` and the connection is dropped after the response. A failure
    /// drops the connection too.
    pub async fn get(&mut self, close: bool) -> Result<Response, Failure> {
        self.ensure_connected().await?;
        let result = match tokio::time::timeout(IO_TIMEOUT, self.exchange(close)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                FailKind::Timeout,
                format!("no whole response within {IO_TIMEOUT:?}"),
            )),
        };
        match &result {
            Ok(r) if !close && !r.close && r.status == 200 => {}
            _ => self.disconnect(),
        }
        let r = result?;
        if r.status != 200 {
            return Err(Failure::new(
                FailKind::Status,
                format!(
                    "status {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).trim_end()
                ),
            ));
        }
        Ok(r)
    }

    async fn exchange(&mut self, close: bool) -> Result<Response, Failure> {
        let Client {
            stream,
            buf,
            keep_alive_req,
            close_req,
            ..
        } = self;
        let stream = stream.as_mut().expect("connected above");
        let req = if close { close_req } else { keep_alive_req };
        stream
            .write_all(req)
            .await
            .map_err(|e| Failure::new(FailKind::Cut, format!("send: {e}")))?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err(Failure::new(FailKind::Malformed, "response head too long"));
            }
            fill(stream, buf, "the response head").await?;
        };
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|_| Failure::new(FailKind::Malformed, "response head not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Failure::new(
                    FailKind::Malformed,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let http10 = status_line.starts_with("HTTP/1.0");
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut conn_close = http10;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| {
                    Failure::new(FailKind::Malformed, format!("bad content-length {value:?}"))
                })?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    conn_close = true;
                } else if v.contains("keep-alive") {
                    conn_close = false;
                }
            }
        }
        buf.drain(..head_end);
        let body = if chunked {
            read_chunked(stream, buf).await?
        } else if let Some(n) = length {
            while buf.len() < n {
                fill(stream, buf, "the body").await?;
            }
            buf.drain(..n).collect()
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            // Delimited by the end of the connection.
            loop {
                let before = buf.len();
                buf.reserve(4096);
                let n = read_some(stream, buf).await?;
                if n == 0 || buf.len() == before {
                    break;
                }
            }
            conn_close = true;
            std::mem::take(buf)
        };
        Ok(Response {
            status,
            body,
            close: conn_close,
        })
    }
}

/// Reads a chunked body out of `buf` (reading more from `stream` as needed).
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            fill(stream, buf, "a chunk size").await?;
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            Failure::new(FailKind::Malformed, format!("bad chunk size {size_text:?}"))
        })?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (none expected), then the final CRLF.
            loop {
                if let Some(i) = find(buf, b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(body);
                    }
                } else {
                    fill(stream, buf, "the last chunk").await?;
                }
            }
        }
        while buf.len() < size + 2 {
            fill(stream, buf, "a chunk").await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// Reads more bytes into `buf`; the connection ending is a cut response.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, what: &str) -> Result<(), Failure> {
    match read_some(stream, buf).await? {
        0 => Err(Failure::new(
            FailKind::Cut,
            format!("connection closed while reading {what}"),
        )),
        _ => Ok(()),
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    buf.reserve(4096);
    stream
        .read_buf(buf)
        .await
        .map_err(|e| Failure::new(FailKind::Cut, format!("read: {e}")))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of a top-level string field `"name":"value"` in a small JSON body, without
/// parsing the whole body (the sample writes no spaces and no escapes in these fields).
pub fn json_str_field<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(responses: Vec<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            for r in responses {
                let _ = s.read(&mut b).await;
                s.write_all(r).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn frames_length_chunked_and_errors() {
        let addr = serve_once(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 29\r\n\r\n{\"id\":\"rg-1\",\"version\":\"2.0\"}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno",
        ])
        .await;
        let mut c = Client::new(addr);
        let r = c.get(false).await.unwrap();
        assert_eq!(json_str_field(&r.body, "id"), Some("rg-1"));
        assert_eq!(json_str_field(&r.body, "version"), Some("2.0"));
        assert!(c.connected());
        let r = c.get(false).await.unwrap();
        assert_eq!(r.body, b"abcde");
        let e = c.get(false).await.unwrap_err();
        assert_eq!(e.kind, FailKind::Status);
        assert!(!c.connected());
    }

    #[tokio::test]
    async fn a_cut_response_fails() {
        let addr = serve_once(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]).await;
        let mut c = Client::new(addr);
        assert_eq!(c.get(false).await.unwrap_err().kind, FailKind::Cut);
    }
}
