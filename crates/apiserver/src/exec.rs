//! `pods/exec` and `pods/attach` over WebSocket (`v5.channel.k8s.io`), and the answers to
//! `pods/portforward` and to the SPDY fallback.
//!
//! The protocol, as kubectl 1.33 speaks it: a `GET` upgrade offering `v5.channel.k8s.io`; the
//! server answers 101 naming that protocol. Every message is a binary frame whose first byte
//! is the channel: 0 stdin (client to server; `0xff 0x00` closes it), 1 stdout, 2 stderr,
//! 3 the final `Status` (server to client), 4 terminal size (client to server,
//! `{"Width":W,"Height":H}`). The server ends with the `Status` and a close frame with code
//! 1000.
//!
//! `exec` with `tty=true` (`kubectl exec -t`): the server waits (up to a second) for the
//! client's first terminal size, then asks [`PodIo::exec_process`] for a pseudo-terminal of
//! that size; stdin goes to its master side, the master's output goes out on channel 1 (no
//! stderr channel with a TTY, as Kubernetes), and every later size message resizes it. A
//! [`PodIo`] without terminal support runs the command with pipes instead.
//!
//! `attach` shows the container's output as it is written to its log. With `stdin=true`
//! (`attach -i`, only for a container whose spec keeps stdin open: `stdin: true`) or
//! `tty=true` (which kubectl only sends for a container with `tty: true`), the session also
//! connects to the container through [`PodIo::attach`]: stdin, its end and terminal sizes go
//! there, and with a terminal the output comes from there, raw, on channel 1.
//!
//! hyper hands the upgraded connection out through an `OnUpgrade` in the request's
//! extensions; [`capture_upgrades`] keeps it (with the raw query string, which carries the
//! repeated `command` parameters) in a task-local for the handler to take.

use crate::http::AppState;
use crate::logs::{self, Assembler, FollowPos, LogLine, PodIds, Stream};
use crate::podio::{AttachMessage, ExecProcess, ExecRequest, PodIo, ResizeFn, Terminal};
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
use std::fs::File;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
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
    if sub == Subresource::Attach && opts.stdin && !container_flag(&pod, &container, "stdin") {
        return Err(ApiError::bad_request(format!(
            "container {container} in pod {pod_name} does not keep its stdin open (its spec \
             has no stdin: true); attach without -i to see its output, or use kubectl exec"
        )));
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
        Subresource::Exec if opts.tty => Session::ExecTty(ExecStart {
            pod_io,
            ids,
            container,
            request: ExecRequest {
                argv: opts.command.clone(),
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: false,
                tty: true,
            },
        }),
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
            // With stdin or a terminal, the session also connects to the container; the
            // terminal's output then comes from there, raw.
            let connect = opts.stdin || (opts.tty && container_flag(&pod, &container, "tty"));
            // Output written from now on is shown: the position is taken before the 101.
            let files = tokio::task::spawn_blocking(move || {
                let files = logs::find_files(pod_io2.as_ref(), &ids2, &container2, false)
                    .map(|f| (FollowPos::at_end(&f), f))?;
                let stream = connect
                    .then(|| pod_io2.attach(&ids2.namespace, &ids2.name, &ids2.uid, &container2))
                    .transpose()?;
                Ok((files, stream))
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

/// What starting an exec needs (a TTY exec starts once the terminal size is known).
struct ExecStart {
    pod_io: Arc<dyn PodIo>,
    ids: PodIds,
    container: String,
    request: ExecRequest,
}

type AttachStart = (
    (FollowPos, crate::podio::LogFiles),
    Option<crate::podio::AttachStream>,
);

enum Session {
    Exec(Result<Child, ApiError>),
    ExecTty(ExecStart),
    Attach {
        /// Where the log follow starts, and the container's stdin or terminal.
        files: Result<AttachStart, ApiError>,
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
        Session::Exec(Ok(child)) => run_exec(ws, child, Vec::new()).await,
        Session::ExecTty(start) => start_exec_tty(ws, start, opts).await,
        Session::Attach {
            files: Ok((log, stream)),
            pod_io,
            ids,
            container,
        } => match stream {
            Some(stream) => {
                run_attach_connected(ws, log, stream, pod_io, ids, container, opts).await
            }
            None => run_attach(ws, log, pod_io, ids, container, opts).await,
        },
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

/// A client message, decoded.
#[derive(Debug, PartialEq, Eq)]
enum ClientMessage {
    /// Channel 0 data.
    Stdin(Bytes),
    /// `0xff 0x00`: the client's stdin ended.
    CloseStdin,
    /// Channel 4: the terminal is now `width` columns by `height` rows.
    Resize { width: u16, height: u16 },
    /// Anything else (pings, unknown channels, an unreadable size): ignored.
    Ignored,
    /// The client closed the connection or it failed.
    Gone,
}

/// Whether the spec of the pod's container `name` sets the boolean `field` (`stdin`, `tty`).
fn container_flag(pod: &Value, name: &str, field: &str) -> bool {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}"))?.as_array())
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|c| c.get(field)?.as_bool())
        .unwrap_or(false)
}

/// A channel 4 message body: `{"Width":W,"Height":H}` (kubectl's `TerminalSize`).
fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u16::try_from(n).ok());
    Some((dim("Width")?, dim("Height")?))
}

fn decode(m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> ClientMessage {
    match m {
        Some(Ok(Message::Binary(b))) => match b.first() {
            Some(&STDIN) if b.len() > 1 => ClientMessage::Stdin(b.slice(1..)),
            Some(&CLOSE) if b.get(1) == Some(&STDIN) => ClientMessage::CloseStdin,
            Some(&RESIZE) => match parse_resize(&b[1..]) {
                Some((width, height)) => ClientMessage::Resize { width, height },
                None => ClientMessage::Ignored,
            },
            _ => ClientMessage::Ignored,
        },
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => ClientMessage::Gone,
        Some(Ok(_)) => ClientMessage::Ignored,
    }
}

/// Handles one client message: stdin data goes to `stdin` (dropping it closes the child's
/// stdin), a terminal size goes to `resize`.
async fn on_client_message(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    stdin: &mut Option<tokio::sync::mpsc::Sender<Bytes>>,
    resize: &(dyn Fn(u16, u16) + Send + Sync),
) -> FromClient {
    match decode(m) {
        ClientMessage::Stdin(data) => {
            if let Some(tx) = stdin
                && tx.send(data).await.is_err()
            {
                *stdin = None;
            }
        }
        ClientMessage::CloseStdin => *stdin = None,
        ClientMessage::Resize { width, height } => resize(width, height),
        ClientMessage::Ignored => {}
        ClientMessage::Gone => return FromClient::Gone,
    }
    FromClient::Continue
}

/// For streams without a terminal: size messages are ignored.
fn no_terminal(_width: u16, _height: u16) {}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Relays a command started with pipes; `pending` is stdin the client sent before it started.
async fn run_exec(mut ws: Ws, mut child: Child, pending: Vec<Bytes>) {
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
    if let Some(tx) = &stdin_tx {
        for chunk in pending {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    }
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
                if let FromClient::Gone = on_client_message(m, &mut stdin_tx, &no_terminal).await {
                    return kill(child).await;
                }
            }
        }
    }
    // The output is complete: wait for the exit status (still serving stdin and close).
    let Some(status) = wait_exit(&mut ws, &mut child, &mut stdin_tx, &no_terminal).await else {
        return kill(child).await;
    };
    drop(stdin_tx);
    finish(&mut ws, &exit_status(status)).await;
}

/// Waits for the command to exit, still serving stdin, size messages and close. `None` when
/// the client went away (the caller kills the command); `Some(None)` when waiting failed.
async fn wait_exit(
    ws: &mut Ws,
    child: &mut Child,
    stdin_tx: &mut Option<tokio::sync::mpsc::Sender<Bytes>>,
    resize: &(dyn Fn(u16, u16) + Send + Sync),
) -> Option<Option<ExitStatus>> {
    let mut delay = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(Some(st)),
            Ok(None) => {}
            Err(_) => return Some(None),
        }
        let room = stdin_tx.as_ref().is_none_or(|tx| tx.capacity() > 0);
        tokio::select! {
            _ = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_millis(100)),
            m = ws.next(), if room => {
                if let FromClient::Gone = on_client_message(m, stdin_tx, resize).await {
                    return None;
                }
            }
        }
    }
}

/// The final Status for an exit status (`None`: waiting failed).
fn exit_status(status: Option<ExitStatus>) -> Value {
    match status.map(exit_code) {
        Some(0) => status_success(),
        Some(code) => status_exit(code),
        None => status_error(&ApiError::internal("waiting for the command failed")),
    }
}

/// How long a TTY exec waits for the client's first terminal size before it starts the
/// command anyway (kubectl sends it right after the upgrade).
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// How long the output of a terminal is still relayed after its command exited, when
/// something the command left behind keeps the terminal open.
const TTY_DRAIN: Duration = Duration::from_millis(250);

/// A TTY exec: waits for the first terminal size (keeping any stdin that comes first), then
/// starts the command on a terminal of that size and relays it.
async fn start_exec_tty(mut ws: Ws, start: ExecStart, opts: StreamOptions) {
    let mut pending = Vec::new();
    let mut stdin_closed = false;
    let mut size = None;
    let waited = tokio::time::timeout(FIRST_SIZE_WAIT, async {
        loop {
            match decode(ws.next().await) {
                ClientMessage::Resize { width, height } => {
                    size = Some((width, height));
                    return true;
                }
                ClientMessage::Stdin(data) if !stdin_closed => pending.push(data),
                ClientMessage::CloseStdin => stdin_closed = true,
                ClientMessage::Gone => return false,
                _ => {}
            }
        }
    })
    .await;
    if waited == Ok(false) {
        return; // The client went away before anything started.
    }
    let ExecStart {
        pod_io,
        ids,
        container,
        request,
    } = start;
    let started = tokio::task::spawn_blocking(move || {
        pod_io.exec_process(
            &ids.namespace,
            &ids.name,
            &ids.uid,
            &container,
            &request,
            size,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("starting the command failed: {e}")))
    .and_then(|r| r);
    match started {
        Err(e) => finish(&mut ws, &status_error(&e)).await,
        Ok(ExecProcess {
            mut child,
            terminal: None,
        }) => {
            // The runtime has no terminals: pipes, as without a TTY.
            if stdin_closed {
                drop(child.stdin.take());
            }
            run_exec(ws, child, pending).await
        }
        Ok(ExecProcess {
            child,
            terminal: Some(terminal),
        }) => {
            let pending = if stdin_closed && pending.is_empty() {
                None
            } else {
                Some(pending)
            };
            run_exec_tty(ws, child, terminal, pending, opts.stdout).await
        }
    }
}

/// Registers a (non-blocking) terminal master with the reactor.
#[allow(unsafe_code)]
fn register(master: File) -> std::io::Result<AsyncFd<File>> {
    // SAFETY: the `File` owns its descriptor and the `AsyncFd` owns the `File`: the
    // descriptor stays open, and is the one `as_raw_fd` returns, for the `AsyncFd`'s life.
    unsafe { AsyncFd::register(master) }.map_err(std::io::Error::from)
}

/// Reads from a non-blocking terminal master (`EIO` once no process holds the slave).
async fn read_tty(fd: &AsyncFd<File>, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    loop {
        let mut guard = fd.readable().await?;
        if let Ok(r) = guard.try_io(|f| f.get_ref().read(buf)) {
            return r;
        }
    }
}

/// Writes all of `data` to a non-blocking terminal master.
async fn write_tty(fd: &AsyncFd<File>, mut data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|f| f.get_ref().write(data)) {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Relays a command running on a terminal: stdin (`pending` first; `None` when the client's
/// stdin already ended) to the master, the master's output to channel 1 (when `stdout`),
/// size messages to [`Terminal::resize`], then the exit code.
async fn run_exec_tty(
    mut ws: Ws,
    mut child: Child,
    terminal: Terminal,
    pending: Option<Vec<Bytes>>,
    stdout: bool,
) {
    let Terminal { master, resize } = terminal;
    let master = match register(master) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            kill(child).await;
            let e = ApiError::internal(format!("relaying the terminal failed: {e}"));
            return finish(&mut ws, &status_error(&e)).await;
        }
    };
    let resize_master = {
        let master = master.clone();
        let resize: ResizeFn = resize;
        move |width: u16, height: u16| {
            if let Err(e) = resize(master.get_ref(), width, height) {
                tracing::debug!(error = %e, "resizing an exec terminal failed");
            }
        }
    };
    // Input is written by its own task, so a command that does not read never stops its
    // output from being read. With a terminal, the end of the client's stdin only stops
    // the input (a terminal cannot be half-closed).
    let mut stdin_tx = None;
    let mut writer = None;
    if let Some(pending) = pending {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let fd = master.clone();
        writer = Some(tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if write_tty(&fd, &chunk).await.is_err() {
                    break;
                }
            }
        }));
        for chunk in pending {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        stdin_tx = Some(tx);
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut exited: Option<tokio::time::Instant> = None;
    let mut check = tokio::time::interval(Duration::from_millis(100));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let room = stdin_tx.as_ref().is_none_or(|tx| tx.capacity() > 0);
        let drain_until = exited.map(|t| t + TTY_DRAIN);
        tokio::select! {
            r = read_tty(&master, &mut buf) => match r {
                Ok(n) if n > 0 => {
                    if stdout && ws.send(frame(STDOUT, &buf[..n])).await.is_err() {
                        break;
                    }
                }
                // EOF, or EIO: nothing holds the terminal any more.
                _ => {
                    if let Some(status) =
                        wait_exit(&mut ws, &mut child, &mut stdin_tx, &resize_master).await
                    {
                        drop(stdin_tx);
                        if let Some(w) = writer {
                            w.abort();
                        }
                        return finish(&mut ws, &exit_status(status)).await;
                    }
                    break;
                }
            },
            m = ws.next(), if room => {
                if let FromClient::Gone =
                    on_client_message(m, &mut stdin_tx, &resize_master).await
                {
                    break;
                }
            }
            _ = check.tick(), if exited.is_none() => {
                // The command may be gone while something it started keeps the terminal.
                if let Ok(Some(_)) = child.try_wait() {
                    exited = Some(tokio::time::Instant::now());
                }
            }
            _ = tokio::time::sleep_until(drain_until.unwrap_or_else(tokio::time::Instant::now)),
                if drain_until.is_some() =>
            {
                let status = child.try_wait().ok().flatten();
                drop(stdin_tx);
                if let Some(w) = writer {
                    w.abort();
                }
                return finish(&mut ws, &exit_status(status)).await;
            }
        }
    }
    // The client went away (or the connection failed).
    if let Some(w) = writer {
        w.abort();
    }
    kill(child).await;
}

/// Starts following the container's log from `pos` on a thread of its own; its lines come
/// out of the returned channel, which ends with the container's output.
fn follow_log(
    (pos, files): (FollowPos, crate::podio::LogFiles),
    pod_io: Arc<dyn PodIo>,
    ids: PodIds,
    container: String,
) -> Result<tokio::sync::mpsc::Receiver<Vec<LogLine>>, ApiError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<LogLine>>(16);
    std::thread::Builder::new()
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
        })
        .map_err(|e| ApiError::internal(format!("starting attach: {e}")))?;
    Ok(rx)
}

/// Sends log lines on their channels (stderr on stdout with a terminal); false when the
/// client is gone.
async fn send_lines(ws: &mut Ws, lines: Vec<LogLine>, opts: &StreamOptions) -> bool {
    for l in lines {
        let channel = match l.stream {
            Stream::Stderr if !opts.tty => STDERR,
            _ => STDOUT,
        };
        let wanted = if channel == STDERR {
            opts.stderr
        } else {
            opts.stdout
        };
        if !wanted {
            continue;
        }
        let mut data = l.content;
        data.push(b'\n');
        if ws.send(frame(channel, &data)).await.is_err() {
            return false;
        }
    }
    true
}

/// Attach without stdin or a terminal: the container's output as its log shows it.
async fn run_attach(
    mut ws: Ws,
    log: (FollowPos, crate::podio::LogFiles),
    pod_io: Arc<dyn PodIo>,
    ids: PodIds,
    container: String,
    opts: StreamOptions,
) {
    let mut rx = match follow_log(log, pod_io, ids, container) {
        Ok(rx) => rx,
        Err(e) => return finish(&mut ws, &status_error(&e)).await,
    };
    let mut no_stdin = None;
    loop {
        tokio::select! {
            lines = rx.recv() => {
                let Some(lines) = lines else { break };
                if !send_lines(&mut ws, lines, &opts).await {
                    return;
                }
            }
            m = ws.next() => {
                if let FromClient::Gone = on_client_message(m, &mut no_stdin, &no_terminal).await {
                    return;
                }
            }
        }
    }
    finish(&mut ws, &status_success()).await;
}

/// Attach connected to the container (`attach -i`, or `-t` to a container with a terminal):
/// stdin, its end and terminal sizes go to the container. With a terminal its output comes
/// from the connection, raw, on channel 1; without one, from the log as in [`run_attach`].
/// The session ends when the container's output does (it exited) or when the client leaves,
/// which ends the connection (and, with `stdinOnce`, the container's stdin).
async fn run_attach_connected(
    mut ws: Ws,
    log: (FollowPos, crate::podio::LogFiles),
    stream: crate::podio::AttachStream,
    pod_io: Arc<dyn PodIo>,
    ids: PodIds,
    container: String,
    opts: StreamOptions,
) {
    let encode = stream.encode;
    let connected = stream
        .stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(stream.stream));
    let (mut from_container, mut to_container) = match connected {
        Ok(s) => s.into_split(),
        Err(e) => {
            let e = ApiError::internal(format!("attach failed: {e}"));
            return finish(&mut ws, &status_error(&e)).await;
        }
    };
    // Written by a task of its own, so a container that does not read its stdin never stops
    // its output from being relayed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if to_container.write_all(&message).await.is_err() {
                break;
            }
        }
    });
    let mut log_lines = if opts.tty {
        None
    } else {
        match follow_log(log, pod_io, ids, container) {
            Ok(rx) => Some(rx),
            Err(e) => {
                writer.abort();
                return finish(&mut ws, &status_error(&e)).await;
            }
        }
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdin_open = opts.stdin;
    loop {
        tokio::select! {
            lines = async { log_lines.as_mut()?.recv().await }, if log_lines.is_some() => {
                let Some(lines) = lines else { break };
                if !send_lines(&mut ws, lines, &opts).await {
                    break;
                }
            }
            n = from_container.read(&mut buf), if opts.tty => match n {
                Ok(n) if n > 0 => {
                    if opts.stdout && ws.send(frame(STDOUT, &buf[..n])).await.is_err() {
                        break;
                    }
                }
                _ => {
                    // The container exited (the shim closed the connection).
                    writer.abort();
                    return finish(&mut ws, &status_success()).await;
                }
            },
            m = ws.next() => {
                let message = match decode(m) {
                    ClientMessage::Stdin(data) if stdin_open => {
                        Some(encode(AttachMessage::Stdin(&data)))
                    }
                    ClientMessage::CloseStdin if stdin_open => {
                        stdin_open = false;
                        Some(encode(AttachMessage::CloseStdin))
                    }
                    ClientMessage::Resize { width, height } if opts.tty => {
                        Some(encode(AttachMessage::Resize(width, height)))
                    }
                    ClientMessage::Gone => break,
                    _ => None,
                };
                if let Some(message) = message
                    && tx.send(message).await.is_err()
                {
                    stdin_open = false;
                }
            }
        }
    }
    writer.abort();
    if log_lines.is_some() {
        // The log ended: the container exited.
        finish(&mut ws, &status_success()).await;
    }
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
    fn resize_messages() {
        assert_eq!(
            parse_resize(br#"{"Width":100,"Height":30}"#),
            Some((100, 30))
        );
        assert_eq!(parse_resize(br#"{"Height":7,"Width":9}"#), Some((9, 7)));
        assert_eq!(parse_resize(br#"{"Width":100}"#), None);
        assert_eq!(parse_resize(br#"{"Width":70000,"Height":30}"#), None);
        assert_eq!(parse_resize(br#"{"Width":-1,"Height":30}"#), None);
        assert_eq!(parse_resize(b"not json"), None);
    }

    #[test]
    fn client_messages_by_channel() {
        let bin = |b: &[u8]| Some(Ok(Message::Binary(Bytes::copy_from_slice(b))));
        assert_eq!(
            decode(bin(b"\x00ls\n")),
            ClientMessage::Stdin(Bytes::from_static(b"ls\n"))
        );
        assert_eq!(decode(bin(b"\x00")), ClientMessage::Ignored);
        assert_eq!(decode(bin(b"\xff\x00")), ClientMessage::CloseStdin);
        assert_eq!(decode(bin(b"\xff\x01")), ClientMessage::Ignored);
        let mut resize = vec![RESIZE];
        resize.extend_from_slice(br#"{"Width":120,"Height":40}"#);
        assert_eq!(
            decode(bin(&resize)),
            ClientMessage::Resize {
                width: 120,
                height: 40
            }
        );
        assert_eq!(decode(bin(b"\x04{}")), ClientMessage::Ignored);
        assert_eq!(decode(bin(b"\x01out")), ClientMessage::Ignored);
        assert_eq!(decode(Some(Ok(Message::Close(None)))), ClientMessage::Gone);
        assert_eq!(decode(None), ClientMessage::Gone);
        assert_eq!(
            decode(Some(Ok(Message::Ping(Bytes::new())))),
            ClientMessage::Ignored
        );
    }

    #[tokio::test]
    async fn client_messages_reach_stdin_and_the_terminal() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let mut stdin = Some(tx);
        let sizes = parking_lot::Mutex::new(Vec::new());
        let resize = |w: u16, h: u16| sizes.lock().push((w, h));
        let bin = |b: &[u8]| Some(Ok(Message::Binary(Bytes::copy_from_slice(b))));
        let mut resize_msg = vec![RESIZE];
        resize_msg.extend_from_slice(br#"{"Width":80,"Height":24}"#);
        for m in [bin(b"\x00abc"), bin(&resize_msg), bin(b"\xff\x00")] {
            assert!(matches!(
                on_client_message(m, &mut stdin, &resize).await,
                FromClient::Continue
            ));
        }
        assert!(stdin.is_none(), "closing stdin drops the sender");
        assert_eq!(rx.recv().await, Some(Bytes::from_static(b"abc")));
        assert_eq!(rx.recv().await, None);
        assert_eq!(*sizes.lock(), vec![(80, 24)]);
        assert!(matches!(
            on_client_message(None, &mut stdin, &no_terminal).await,
            FromClient::Gone
        ));
    }

    #[tokio::test]
    async fn nonblocking_relay_reads_and_writes_everything() {
        // A non-blocking pipe stands in for a terminal master: larger than the pipe buffer,
        // so both sides meet WouldBlock.
        let (w, r) = tokio::net::unix::pipe::pipe().unwrap();
        let w = register(File::from(w.into_nonblocking_fd().unwrap())).unwrap();
        let r = register(File::from(r.into_nonblocking_fd().unwrap())).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            write_tty(&w, &data).await.unwrap();
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = read_tty(&r, &mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, expected);
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

    #[test]
    fn final_status_of_an_exit() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            exit_status(Some(ExitStatus::from_raw(0)))["status"],
            "Success"
        );
        let s = exit_status(Some(ExitStatus::from_raw(3 << 8)));
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let s = exit_status(Some(ExitStatus::from_raw(9)));
        assert_eq!(s["details"]["causes"][0]["message"], "137");
        assert_eq!(exit_status(None)["status"], "Failure");
    }
}
