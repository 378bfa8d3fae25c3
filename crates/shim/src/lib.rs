//! `slipway-shim`: the per-container supervisor (the role containerd-shim or conmon play).
//!
//! One shim process holds one container run. It detaches from whoever started it (its own
//! session, re-parented away from the agent), starts the container in its own namespaces on a
//! private overlay of the host root filesystem where the host allows it (a plain process in
//! its own process group otherwise), copies the container's stdout and stderr into a CRI
//! format log, forwards SIGTERM, and records the exit status in `exit.json` before it exits.
//!
//! The agent side of the protocol is [`launch`], [`stop`], [`exec_in`] and the readers
//! ([`read_exit`], [`read_state`], [`read_isolation`], [`status`]). The shim side is
//! [`run_shim`] (or [`shim_main`]), which the `slipway` binary exposes as a hidden
//! subcommand, as it does the exec helper [`nsexec_main`] that [`exec_in`] starts (once set
//! with [`set_exec_helper`]) to enter a container without forking the caller. Everything the two sides share lives in files of the state dir:
//!
//! | file | written by | content |
//! | --- | --- | --- |
//! | `config.json` | [`launch`] | the [`ShimConfig`] |
//! | `shim.pid` | shim | the shim's PID (decimal, newline) |
//! | `container.pid` | shim | the container's host PID |
//! | `state.json` | shim | [`ShimState`]: PIDs with their start times, process group, cgroup |
//! | `isolation.json` | shim | [`IsolationReport`]: what isolation is in force and why not |
//! | `container.log` (+ `.1`) | shim | CRI log lines |
//! | `exit.json` | shim | [`ExitRecord`], written last |
//! | `shim.log` | [`launch`] | the shim's own diagnostics |
//! | `rootfs/`, `upper/`, `work/` | shim | overlay mount point, upper and work dirs |

pub mod attach;
mod cgroup;
mod config;
mod container;
mod control;
mod daemon;
mod logs;
mod nsexec;
mod sys;
mod tty;
mod zygote;

pub use cgroup::cgroup_v2_availability;
pub use config::{EnvVar, IsolationConfig, ResourceLimits, ShimConfig};
pub use control::{
    ShimStatus, exec_context, exec_in, launch, read_exit, read_isolation, read_state, shim_exit_fd,
    shim_main, status, stop,
};
pub use daemon::run_shim;
pub use logs::{CriLogWriter, LogStream, rfc3339_nano};
pub use nsexec::{NSEXEC_SUBCOMMAND, exec_helper, nsexec_main, set_exec_helper};
pub use sys::{is_same_live_process, process_start_time};
pub use tty::{TtyExec, exec_in_tty, open_pty, set_window_size, window_size};
pub use zygote::{
    MAX_FRAME, ZYGOTE_SUBCOMMAND, ZygoteReply, ZygoteRequest, encode_frame, take_frame,
    zygote_args, zygote_main,
};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors of the shim and of its control functions.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid shim configuration: {0}")]
    Config(String),
    #[error("the shim must start single-threaded (it forks to detach); found {0} threads")]
    NotSingleThreaded(usize),
    #[error("the shim failed to start the container run: {0}")]
    StartFailed(String),
    #[error("a shim is already running for {0}")]
    AlreadyRunning(PathBuf),
    #[error("no container is running for {0}")]
    NotRunning(PathBuf),
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ShimError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ShimError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What `exit.json` holds: how the container run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// The exit code, or 128 + signal number when a signal ended the container (as
    /// Kubernetes reports it).
    pub exit_code: i32,
    /// The signal that ended the container, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `Completed` (code 0), `Error`, `OOMKilled`, `StartError` (the process never ran) or
    /// `Unknown` (the shim vanished without recording the end).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 (nanoseconds) time the container process started.
    pub started_at: String,
    /// RFC 3339 (nanoseconds) time the shim saw the container process end.
    pub finished_at: String,
    /// True when the kernel's OOM killer killed a process of the container's cgroup.
    pub oom_killed: bool,
}

/// What `state.json` holds: the processes of this run, so that another process (the agent,
/// possibly restarted) can signal them without confusing a reused PID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShimState {
    pub shim_pid: i32,
    /// Start time of the shim (field 22 of `/proc/<pid>/stat`, clock ticks since boot).
    pub shim_start_time: u64,
    pub container_pid: i32,
    pub container_start_time: u64,
    /// True when the container is the init (PID 1) of its own PID namespace: killing it
    /// kills every process of the container.
    pub pid_namespace: bool,
    /// The container's process group when it has no PID namespace (it leads its group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<i32>,
    /// The container's cgroup v2 directory, when one is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The namespaces the container has its own copy of (`mnt`, `pid`, `uts`, `net`), which
    /// [`exec_in`] joins.
    pub namespaces: Vec<String>,
    /// The working directory inside the container.
    pub working_dir: PathBuf,
}

/// What `isolation.json` holds: the isolation actually in force for this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IsolationReport {
    /// `isolated` (every isolation asked for is in force), `partial`, or `none` (a plain
    /// process).
    pub mode: String,
    pub mount_namespace: bool,
    pub pid_namespace: bool,
    pub uts_namespace: bool,
    pub network_namespace: bool,
    /// A private writable overlay of the host root is the container's root.
    pub overlay_root: bool,
    /// A fresh `/proc` for the container's PID namespace.
    pub fresh_proc: bool,
    /// `lo` is up in the container's network namespace.
    pub loopback_up: bool,
    /// cgroup v2 limits in force.
    pub cgroup: bool,
    /// Why some isolation asked for is not in force (empty when `mode` is `isolated`).
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// Names of the files in a state dir.
pub mod files {
    pub const CONFIG: &str = "config.json";
    pub const SHIM_PID: &str = "shim.pid";
    pub const CONTAINER_PID: &str = "container.pid";
    pub const STATE: &str = "state.json";
    pub const ISOLATION: &str = "isolation.json";
    pub const EXIT: &str = "exit.json";
    pub const LOG: &str = "container.log";
    pub const LOG_ROTATED: &str = "container.log.1";
    pub const SHIM_LOG: &str = "shim.log";
    pub const ROOTFS: &str = "rootfs";
    pub const UPPER: &str = "upper";
    pub const WORK: &str = "work";
    /// Optional: the container's `/etc/hosts`, written by the agent before the shim starts
    /// and placed in the overlay's upper layer, so the container sees it from its first
    /// instruction.
    pub const HOSTS: &str = "hosts";
    /// The attach socket, while a container that keeps stdin open or has a terminal runs
    /// (see [`crate::attach`]).
    pub const ATTACH: &str = "attach.sock";
}

/// Writes `data` to `dir/name` atomically (a temporary file renamed into place), so that a
/// reader never sees half a file.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), ShimError> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| ShimError::io(format!("create {}", tmp.display()), e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| ShimError::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| ShimError::io(format!("rename to {}", path.display()), e))
}

pub(crate) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), ShimError> {
    let mut data = serde_json::to_vec_pretty(value)
        .map_err(|e| ShimError::Config(format!("serialise {name}: {e}")))?;
    data.push(b'\n');
    write_atomic(dir, name, &data)
}
