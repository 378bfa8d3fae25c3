//! The interface through which the API server reaches pod processes: container log files for
//! `pods/log` (and `pods/attach`), and command execution for `pods/exec` (and so `kubectl cp`).
//! The node agent implements [`PodIo`]; without one, logs are empty and exec is refused.
//! An exec with `tty=true` goes through [`PodIo::exec_process`], which may allocate a
//! terminal ([`Terminal`]).

use slipway_core::ApiError;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};

/// The CRI-format log files of one container run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFiles {
    /// The file being written (`container.log`). It need not exist yet.
    pub current: PathBuf,
    /// The rotated file (`container.log.1`), older records, read before `current` when it
    /// exists.
    pub rotated: PathBuf,
    /// Whether the run that writes these files is still running. A `follow` stream polls
    /// [`PodIo::log_files`] (with `previous = false`, a few times a second) and ends, after
    /// reading what is left, when this turns false, when `current` changes (a new run began)
    /// or when the call fails or finds no run.
    pub running: bool,
}

impl LogFiles {
    /// The files `container.log` and `container.log.1` of a state dir.
    pub fn in_dir(dir: &std::path::Path, running: bool) -> LogFiles {
        LogFiles {
            current: dir.join("container.log"),
            rotated: dir.join("container.log.1"),
            running,
        }
    }
}

/// What `pods/exec` asks to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments (never empty).
    pub argv: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether the client wants stdout.
    pub stdout: bool,
    /// Whether the client wants stderr (never with a TTY).
    pub stderr: bool,
    /// Whether the client asked for a terminal: [`PodIo::exec_process`] then starts the
    /// command on one when the implementation can (its stdin, stdout and stderr), and the
    /// server relays it.
    pub tty: bool,
}

/// A started `pods/exec` command.
#[derive(Debug)]
pub struct ExecProcess {
    /// The process: killing it must end the command; its exit code is the command's.
    pub child: Child,
    /// The terminal the command runs on, when one was allocated. The child's stdio handles
    /// are then not used.
    pub terminal: Option<Terminal>,
}

/// How a terminal's size is set: `(master, columns, rows)`.
pub type ResizeFn = fn(&File, u16, u16) -> std::io::Result<()>;

/// The server's side of a pseudo-terminal allocated for an exec.
#[derive(Debug)]
pub struct Terminal {
    /// The master side: reads give what the command writes (stdout and stderr merged), writes
    /// are its input. It must be non-blocking (`O_NONBLOCK`) and close-on-exec, and only the
    /// command (not the server) may hold the slave side, so that reads fail (`EIO`) or end
    /// once the command is gone.
    pub master: File,
    /// Sets the terminal's size (the client's channel 4 messages).
    pub resize: ResizeFn,
}

impl ExecRequest {
    /// The stdio the spawned [`Child`] must have: `piped()` for each requested stream,
    /// `null()` for the others (stdin, stdout, stderr).
    pub fn stdio(&self) -> (Stdio, Stdio, Stdio) {
        let pick = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        (pick(self.stdin), pick(self.stdout), pick(self.stderr))
    }
}

/// Access to the processes of pods, implemented by the node agent.
///
/// Both methods are called on a blocking thread. Errors are returned to the client as the
/// `Status` of the request (use [`ApiError::bad_request`] for "container not running" and the
/// like).
/// What an attach session sends a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMessage<'a> {
    /// Bytes for its stdin.
    Stdin(&'a [u8]),
    /// The terminal's new size: columns, rows.
    Resize(u16, u16),
    /// The client's stdin ended.
    CloseStdin,
}

/// A connection to a running container for an attach session ([`PodIo::attach`]). With a
/// terminal, the container's output comes out of `stream` raw; the stream ends when the
/// container has exited.
pub struct AttachStream {
    pub stream: std::os::unix::net::UnixStream,
    /// How a message is written to `stream`.
    pub encode: fn(AttachMessage<'_>) -> Vec<u8>,
}

pub trait PodIo: Send + Sync + 'static {
    /// The log files of a container of the pod `namespace/pod` (with `uid`): of its current
    /// (or last) run, or with `previous` of the run before that. `Ok(None)` when there is no
    /// such run (the container has not started yet, or has not restarted).
    fn log_files(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        previous: bool,
    ) -> Result<Option<LogFiles>, ApiError>;

    /// Starts `request.argv` inside the running container, with the stdio of
    /// [`ExecRequest::stdio`]. Killing the returned child must end the command; its exit code
    /// is the command's (128 + signal when a signal ended it).
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        request: &ExecRequest,
    ) -> Result<Child, ApiError>;

    /// Starts `request.argv` as [`PodIo::exec`] does and, when `request.tty` is set and the
    /// implementation supports it, on a new terminal that is the command's stdin, stdout,
    /// stderr and controlling terminal ([`ExecProcess::terminal`]; `size` is its initial
    /// size, columns and rows, if known). The default runs [`PodIo::exec`] without a
    /// terminal (stdout then carries the output, and there is no stderr, as with a TTY).
    fn exec_process(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        request: &ExecRequest,
        size: Option<(u16, u16)>,
    ) -> Result<ExecProcess, ApiError> {
        let _ = size;
        self.exec(namespace, pod, uid, container, request)
            .map(|child| ExecProcess {
                child,
                terminal: None,
            })
    }

    /// Connects to the running container's stdin (kept open: `stdin: true`) or terminal
    /// (`tty: true`), for `kubectl attach -i` or `-t`. The default: attaching that way is not
    /// supported.
    fn attach(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
    ) -> Result<AttachStream, ApiError> {
        let _ = (namespace, uid);
        Err(ApiError::bad_request(format!(
            "attaching to container {container} of pod {pod} with stdin or a terminal is not \
             supported by this runtime"
        )))
    }
}

impl std::fmt::Debug for dyn PodIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodIo")
    }
}
