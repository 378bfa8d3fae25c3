//! Exec probes and exec hooks of one container run, through its exec server (the shim's
//! zygote, see `slipway_shim::zygote_main`).
//!
//! The server is started on the first exec of the run and kept until the run's last
//! [`RunExec`] is dropped, which kills it. Requests are multiplexed on one socket by id, so
//! a hanging liveness probe does not hold up a readiness probe. When no exec helper
//! executable is set (`slipway_shim::set_exec_helper`), or the server cannot start, each
//! command goes through `slipway_shim::exec_in` as before.

use parking_lot::Mutex;
use slipway_probes::{ExecOutcome, MAX_OUTPUT};
use slipway_shim::{ZygoteReply, ZygoteRequest, encode_frame, take_frame};
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;

/// How long the server may take to join the container.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Extra time a reply may take beyond the command's own timeout (the server kills the
/// command at the timeout, then reports).
const REPLY_GRACE: Duration = Duration::from_secs(2);

/// The execs of one container run (cheap to clone; clones share the server).
#[derive(Clone, Debug)]
pub struct RunExec {
    dir: PathBuf,
    server: Arc<tokio::sync::Mutex<Option<Arc<Server>>>>,
}

impl RunExec {
    /// The execs of the run whose shim state dir is `dir`.
    pub fn new(dir: PathBuf) -> RunExec {
        RunExec {
            dir,
            server: Arc::default(),
        }
    }

    /// Runs `argv` in the container (see `ProbeTarget::exec`).
    pub async fn run(&self, argv: Vec<String>, timeout: Duration) -> io::Result<ExecOutcome> {
        if argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        match self.server().await {
            Ok(Some(server)) => server.run(argv, timeout).await,
            Ok(None) => self.run_one_off(argv, timeout).await,
            Err(e) => Err(e),
        }
    }

    /// The live server, started if need be; None when there is no helper to start it with.
    async fn server(&self) -> io::Result<Option<Arc<Server>>> {
        let mut slot = self.server.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| s.alive.load(Ordering::Acquire)) {
            return Ok(Some(s.clone()));
        }
        *slot = None;
        let Some(helper) = slipway_shim::exec_helper() else {
            return Ok(None);
        };
        let server = Arc::new(Server::start(&helper, &self.dir).await?);
        *slot = Some(server.clone());
        Ok(Some(server))
    }

    /// Without a server: one `exec_in` helper process for this command.
    async fn run_one_off(&self, argv: Vec<String>, timeout: Duration) -> io::Result<ExecOutcome> {
        let child = slipway_shim::exec_in(
            &self.dir,
            &argv,
            &[],
            Stdio::null(),
            Stdio::piped(),
            Stdio::piped(),
        )
        .map_err(shim_error)?;
        slipway_probes::wait_child(child, timeout).await
    }
}

fn shim_error(e: slipway_shim::ShimError) -> io::Error {
    match e {
        slipway_shim::ShimError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// A started exec server.
struct Server {
    /// The container's environment and working dir: every command's.
    env: Vec<(String, String)>,
    working_dir: PathBuf,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<ZygoteReply>>>>,
    next_id: AtomicU64,
    /// False once the reader has seen the socket end.
    alive: Arc<AtomicBool>,
    /// Killed (and reaped by tokio) when the server is dropped.
    _process: tokio::process::Child,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("alive", &self.alive.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Server {
    async fn start(helper: &Path, dir: &Path) -> io::Result<Server> {
        let (state, env) = slipway_shim::exec_context(dir, &[]).map_err(shim_error)?;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let process = tokio::process::Command::new(helper)
            .arg(slipway_shim::ZYGOTE_SUBCOMMAND)
            .args(slipway_shim::zygote_args(&state))
            .env_clear()
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("start the exec server {}: {e}", helper.display()),
                )
            })?;
        let (mut reader, writer) = tokio::net::UnixStream::from_std(ours)?.into_split();
        let mut inbox = Vec::new();
        let first = tokio::time::timeout(START_TIMEOUT, read_frame(&mut reader, &mut inbox))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the exec server did not start")
            })??;
        match first {
            Some(ZygoteReply::Ready) => {}
            Some(ZygoteReply::NotRunning) => {
                return Err(shim_error(slipway_shim::ShimError::NotRunning(
                    dir.to_path_buf(),
                )));
            }
            Some(ZygoteReply::SetupFailed {
                errno,
                context,
                message,
            }) => {
                let source = if errno > 0 {
                    io::Error::from_raw_os_error(errno)
                } else {
                    io::Error::other(message)
                };
                return Err(io::Error::new(
                    source.kind(),
                    format!("{context}: {source}"),
                ));
            }
            other => {
                return Err(io::Error::other(format!(
                    "the exec server did not start ({other:?})"
                )));
            }
        }
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<ZygoteReply>>>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(dispatch(reader, inbox, pending.clone(), alive.clone()));
        Ok(Server {
            env,
            working_dir: state.working_dir,
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            alive,
            _process: process,
        })
    }

    async fn run(&self, argv: Vec<String>, timeout: Duration) -> io::Result<ExecOutcome> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        if !self.alive.load(Ordering::Acquire) {
            // The reader has ended (and may have cleared `pending` before the insert).
            self.pending.lock().remove(&id);
            return Err(io::Error::other("the exec server ended"));
        }
        let request = ZygoteRequest {
            id,
            argv,
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            max_output: MAX_OUTPUT,
        };
        let sent = self
            .writer
            .lock()
            .await
            .write_all(&encode_frame(&request))
            .await;
        if let Err(e) = sent {
            self.pending.lock().remove(&id);
            self.alive.store(false, Ordering::Release);
            return Err(e);
        }
        let reply = match tokio::time::timeout(timeout + REPLY_GRACE, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(io::Error::other("the exec server ended")),
            Err(_) => {
                self.pending.lock().remove(&id);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the exec server did not answer",
                ));
            }
        };
        match reply {
            ZygoteReply::Exited { code, output, .. } => Ok(ExecOutcome::Exited {
                code,
                output: output.into_bytes(),
            }),
            ZygoteReply::TimedOut { .. } => Ok(ExecOutcome::TimedOut),
            ZygoteReply::Failed { errno, message, .. } => Err(if errno > 0 {
                io::Error::from_raw_os_error(errno)
            } else {
                io::Error::other(message)
            }),
            other => Err(io::Error::other(format!(
                "unexpected reply from the exec server: {other:?}"
            ))),
        }
    }
}

/// Reads one frame; None at the end of the stream.
async fn read_frame(
    reader: &mut tokio::net::unix::OwnedReadHalf,
    inbox: &mut Vec<u8>,
) -> io::Result<Option<ZygoteReply>> {
    loop {
        if let Some(reply) = take_frame(inbox).map_err(io::Error::other)? {
            return Ok(Some(reply));
        }
        // Straight into the inbox: no buffer in the future, which lives as long as the run.
        inbox.reserve(1024);
        if reader.read_buf(inbox).await? == 0 {
            return Ok(None);
        }
    }
}

/// Hands each reply to the request with its id, until the socket ends; then fails the
/// requests still waiting (by dropping their senders).
async fn dispatch(
    mut reader: tokio::net::unix::OwnedReadHalf,
    mut inbox: Vec<u8>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<ZygoteReply>>>>,
    alive: Arc<AtomicBool>,
) {
    while let Ok(Some(reply)) = read_frame(&mut reader, &mut inbox).await {
        let id = match &reply {
            ZygoteReply::Exited { id, .. }
            | ZygoteReply::TimedOut { id, .. }
            | ZygoteReply::Failed { id, .. } => *id,
            _ => continue,
        };
        if let Some(tx) = pending.lock().remove(&id) {
            let _ = tx.send(reply);
        }
    }
    alive.store(false, Ordering::Release);
    pending.lock().clear();
}
