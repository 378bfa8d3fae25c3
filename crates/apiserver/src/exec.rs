//! `pods/exec` and `pods/attach` over WebSocket (`v5.channel.k8s.io`), and the answers to
//! `pods/portforward` and to the SPDY fallback.
//!
//! The protocol, as kubectl 1.33 speaks it: a `GET` upgrade offering `v5.channel.k8s.io`; the
//! server answers 101 naming that protocol. Every message is a binary frame whose first byte
//! is the channel: 0 stdin (client to server; `0xff 0x00` closes it), 1 stdout, 2 stderr,
//! 3 the final `Status` (server to client), 4 terminal size (ignored: no TTY is allocated).
//! The server ends with the `Status` and a close frame with code 1000.
//!
//! `attach` shows the container's output as it is written to its log (the runtime keeps no
//! stdin open for the container, so `attach -i` is refused).
//!
//! hyper hands the upgraded connection out through an `OnUpgrade` in the request's
//! extensions; [`capture_upgrades`] keeps it (with the raw query string, which carries the
//! repeated `command` parameters) in a task-local for the handler to take.

use crate::http::AppState;
use crate::logs::{self, Assembler, FollowPos, LogLine, PodIds, Stream};
use crate::podio::{ExecRequest, PodIo};
use crate::target::ResourceTarget;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use slipway_core::{ApiError, Subresource};
use std::cell::Cell;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The only remote-command protocol served.
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What an upgrade request brought along, kept for its handler.
struct UpgradeContext {
    on_upgrade: OnUpgrade,
    raw_query: Option<String>,
}

tokio::task_local! {
    static UPGRADE: Cell<Option<UpgradeContext>>;
}

async fn capture(mut req: Request, next: Next) -> Response {
    match req.extensions_mut().remove::<OnUpgrade>() {
        None => next.run(req).await,
        Some(on_upgrade) => {
            let ctx = UpgradeContext {
                on_upgrade,
                raw_query: req.uri().query().map(str::to_string),
            };
            UPGRADE.scope(Cell::new(Some(ctx)), next.run(req)).await
        }
    }
}

/// Wraps the router so that upgrade requests keep what their handler needs to take over the
/// connection.
pub fn capture_upgrades(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(capture))
}

fn take_upgrade() -> Option<UpgradeContext> {
    UPGRADE.try_with(Cell::take).ok().flatten()
}

/// The query parameters of exec and attach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `command`, one per argv word.
    pub command: Vec<String>,
    /// `container`.
    pub container: Option<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`.
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
}

impl StreamOptions {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<StreamOptions, ApiError> {
        let mut o = StreamOptions::default();
        let flag = |k: &str, v: &str| match v {
            "true" | "1" | "True" | "TRUE" => Ok(true),
            "false" | "0" | "False" | "FALSE" | "" => Ok(false),
            _ => Err(ApiError::bad_request(format!(
                "invalid value for {k}: {v:?}: must be true or false"
            ))),
        };
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "container" => o.container = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "stdin" => o.stdin = flag(&k, &v)?,
                "stdout" => o.stdout = flag(&k, &v)?,
                "stderr" => o.stderr = flag(&k, &v)?,
                "tty" => o.tty = flag(&k, &v)?,
                _ => {}
            }
        }
        if o.tty {
            // With a terminal, stderr is merged into stdout (kubectl leaves it out too).
            o.stderr = false;
        }
        Ok(o)
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

fn status_success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

fn status_exit(code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn status_error(e: &ApiError) -> Value {
    let mut s = e.to_status();
    if let Some(o) = s.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    s
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(c) = status.code() {
        return c;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

/// Serves `pods/exec`, `pods/attach` and `pods/portforward` of the pod addressed by `t`.
pub async fn serve(
    state: &Arc<AppState>,
    method: &Method,
    headers: &HeaderMap,
    t: &ResourceTarget,
    sub: Subresource,
) -> Result<Response, ApiError> {
    let upgrade = take_upgrade();
    let pod = state.rest.get(t)?;
    let pod_name = t.name.as_deref().unwrap_or("");
    if sub == Subresource::PortForward {
        return Err(ApiError::bad_request(
            "pods/portforward is not supported: pod IPs are reachable directly from the host, \
             so connect to the pod's IP and port instead (SPDY/3.1 framing is not implemented)",
        ));
    }
    let raw_query = upgrade.as_ref().and_then(|u| u.raw_query.clone());
    let opts = StreamOptions::parse(raw_query.as_deref())?;
    let container = logs::choose_container(&pod, pod_name, opts.container.as_deref())?
        .ok_or_else(|| ApiError::bad_request(format!("pod {pod_name} has no containers")))?;
    let Some(pod_io) = state.pod_io.clone() else {
        return Err(ApiError::bad_request(format!(
            "pods/{} is not available: this server runs no pod processes",
            sub.name()
        )));
    };
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if sub == Subresource::Exec && opts.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if sub == Subresource::Attach && opts.stdin {
        return Err(ApiError::bad_request(
            "attaching with stdin is not supported: this runtime does not keep the container's \
             stdin open; attach without -i to see its output, or use kubectl exec",
        ));
    }
    let websocket = *method == Method::GET && header_has(headers, header::UPGRADE, "websocket");
    if !websocket {
        return Err(ApiError::bad_request(format!(
            "pods/{} requires the WebSocket protocol {PROTOCOL_V5}; SPDY/3.1 is not supported. \
             Use kubectl 1.30 or later without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false",
            sub.name()
        )));
    }
    if !header_has(headers, header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL_V5) {
        return Err(ApiError::bad_request(format!(
            "the WebSocket request must offer the subprotocol {PROTOCOL_V5}"
        )));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("the WebSocket request has no Sec-WebSocket-Key"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Some(upgrade) = upgrade else {
        return Err(ApiError::bad_request(
            "this connection cannot be upgraded (HTTP/1.1 is required)",
        ));
    };
    let ids = PodIds::of(t, &pod);
    let session = match sub {
        Subresource::Exec => {
            let request = ExecRequest {
                argv: opts.command.clone(),
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
                tty: opts.tty,
            };
            let (pod_io, ids, container) = (pod_io.clone(), ids.clone(), container.clone());
            // Started before the upgrade; a failure goes to the client as the final Status.
            let started = tokio::task::spawn_blocking(move || {
                pod_io.exec(&ids.namespace, &ids.name, &ids.uid, &container, &request)
            })
            .await
            .map_err(|e| ApiError::internal(format!("starting the command failed: {e}")))?;
            Session::Exec(started)
        }
        _ => {
            let (pod_io2, ids2, container2) = (pod_io.clone(), ids.clone(), container.clone());
            // Output written from now on is shown: the position is taken before the 101.
            let files = tokio::task::spawn_blocking(move || {
                logs::find_files(pod_io2.as_ref(), &ids2, &container2, false)
                    .map(|f| (FollowPos::at_end(&f), f))
            })
            .await
            .map_err(|e| ApiError::internal(format!("attach failed: {e}")))?;
            Session::Attach {
                files,
                pod_io,
                ids,
                container,
            }
        }
    };
    tokio::spawn(run(upgrade.on_upgrade, session, opts));
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOL_V5),
    );
    Ok(resp)
}

enum Session {
    Exec(Result<Child, ApiError>),
    Attach {
        files: Result<(FollowPos, crate::podio::LogFiles), ApiError>,
        pod_io: Arc<dyn PodIo>,
        ids: PodIds,
        container: String,
    },
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Sends the final Status and a normal close, then waits (briefly) for the client's close.
async fn finish(ws: &mut Ws, status: &Value) {
    let body = serde_json::to_vec(status).unwrap_or_default();
    let _ = ws.send(frame(ERROR, &body)).await;
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn run(on_upgrade: OnUpgrade, session: Session, opts: StreamOptions) {
    let Ok(upgraded) = on_upgrade.await else {
        if let Session::Exec(Ok(child)) = session {
            kill(child).await;
        }
        return;
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(64 << 20);
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    match session {
        Session::Exec(Err(e)) | Session::Attach { files: Err(e), .. } => {
            finish(&mut ws, &status_error(&e)).await
        }
        Session::Exec(Ok(child)) => run_exec(ws, child).await,
        Session::Attach {
            files: Ok((pos, files)),
            pod_io,
            ids,
            container,
        } => run_attach(ws, (pos, files), pod_io, ids, container, opts).await,
    }
}

async fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

/// What a client message asks for.
enum FromClient {
    Continue,
    Gone,
}

/// Handles one client message: stdin data goes to `stdin` (dropping it closes the child's
/// stdin), resize is ignored.
async fn on_client_message(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    stdin: &mut Option<tokio::sync::mpsc::Sender<Bytes>>,
) -> FromClient {
    match m {
        Some(Ok(Message::Binary(b))) => {
            match b.first() {
                Some(&STDIN) if b.len() > 1 => {
                    if let Some(tx) = stdin
                        && tx.send(b.slice(1..)).await.is_err()
                    {
                        *stdin = None;
                    }
                }
                Some(&CLOSE) if b.get(1) == Some(&STDIN) => *stdin = None,
                Some(&RESIZE) => {}
                _ => {}
            }
            FromClient::Continue
        }
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => FromClient::Gone,
        Some(Ok(_)) => FromClient::Continue,
    }
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn run_exec(mut ws: Ws, mut child: Child) {
    let mut stdout = child
        .stdout
        .take()
        .and_then(|s| tokio::process::ChildStdout::from_std(s).ok());
    let mut stderr = child
        .stderr
        .take()
        .and_then(|s| tokio::process::ChildStderr::from_std(s).ok());
    // Stdin is written by its own task, so a child that does not read its input never stops
    // its output from being read.
    let mut stdin_tx = child
        .stdin
        .take()
        .and_then(|s| tokio::process::ChildStdin::from_std(s).ok())
        .map(|mut w| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = w.shutdown().await;
            });
            tx
        });
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    while stdout.is_some() || stderr.is_some() {
        let room = stdin_tx.as_ref().is_none_or(|tx| tx.capacity() > 0);
        tokio::select! {
            r = read_some(&mut stdout, &mut out_buf) => match r {
                Ok(n) if n > 0 => {
                    if ws.send(frame(STDOUT, &out_buf[..n])).await.is_err() {
                        return kill(child).await;
                    }
                }
                _ => stdout = None,
            },
            r = read_some(&mut stderr, &mut err_buf) => match r {
                Ok(n) if n > 0 => {
                    if ws.send(frame(STDERR, &err_buf[..n])).await.is_err() {
                        return kill(child).await;
                    }
                }
                _ => stderr = None,
            },
            m = ws.next(), if room => {
                if let FromClient::Gone = on_client_message(m, &mut stdin_tx).await {
                    return kill(child).await;
                }
            }
        }
    }
    // The output is complete: wait for the exit status (still serving stdin and close).
    let mut delay = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        let room = stdin_tx.as_ref().is_none_or(|tx| tx.capacity() > 0);
        tokio::select! {
            _ = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_millis(100)),
            m = ws.next(), if room => {
                if let FromClient::Gone = on_client_message(m, &mut stdin_tx).await {
                    return kill(child).await;
                }
            }
        }
    };
    drop(stdin_tx);
    let status = match status.map(exit_code) {
        Some(0) => status_success(),
        Some(code) => status_exit(code),
        None => status_error(&ApiError::internal("waiting for the command failed")),
    };
    finish(&mut ws, &status).await;
}

async fn run_attach(
    mut ws: Ws,
    (pos, files): (FollowPos, crate::podio::LogFiles),
    pod_io: Arc<dyn PodIo>,
    ids: PodIds,
    container: String,
    opts: StreamOptions,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<LogLine>>(16);
    let spawned = std::thread::Builder::new()
        .name("pod-attach".into())
        .spawn(move || {
            let mut emit = |lines: Vec<LogLine>| {
                !tx.is_closed() && (lines.is_empty() || tx.blocking_send(lines).is_ok())
            };
            logs::follow(
                pod_io.as_ref(),
                &ids,
                &container,
                &files,
                pos,
                Assembler::default(),
                &mut emit,
            );
        });
    if let Err(e) = spawned {
        let e = ApiError::internal(format!("starting attach: {e}"));
        return finish(&mut ws, &status_error(&e)).await;
    }
    let mut no_stdin = None;
    loop {
        tokio::select! {
            lines = rx.recv() => {
                let Some(lines) = lines else { break };
                for l in lines {
                    let channel = match l.stream {
                        Stream::Stderr if !opts.tty => STDERR,
                        _ => STDOUT,
                    };
                    let wanted = if channel == STDERR { opts.stderr } else { opts.stdout };
                    if !wanted {
                        continue;
                    }
                    let mut data = l.content;
                    data.push(b'\n');
                    if ws.send(frame(channel, &data)).await.is_err() {
                        return;
                    }
                }
            }
            m = ws.next() => {
                if let FromClient::Gone = on_client_message(m, &mut no_stdin).await {
                    return;
                }
            }
        }
    }
    finish(&mut ws, &status_success()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exec_query() {
        let o = StreamOptions::parse(Some(
            "command=sh&command=-c&command=echo+a+b&container=app&stderr=true&stdout=true&stdin=true",
        ))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo a b"]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let t = StreamOptions::parse(Some("command=sh&tty=true&stderr=true&stdout=true")).unwrap();
        assert!(t.tty && !t.stderr);
        assert!(StreamOptions::parse(Some("stdin=maybe")).is_err());
    }

    #[test]
    fn exit_statuses_as_kubectl_reads_them() {
        assert_eq!(status_success()["status"], "Success");
        let s = status_exit(3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: exit status 3"
        );
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }
}
