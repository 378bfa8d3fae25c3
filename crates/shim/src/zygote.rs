//! The exec server ("zygote") of one container run: a small process that joins the
//! container's namespaces once and then starts commands in them on request, for exec probes
//! and exec lifecycle hooks.
//!
//! Starting a fresh exec helper per probe ([`exec_in`](crate::exec_in)) costs an exec of the
//! helper, four `setns` calls and a fork into the PID namespace, every time. The zygote pays
//! that once per container run; each command after that is one fork of a small,
//! single-threaded process and the command's own exec.
//!
//! The caller starts `<helper> zygote <container pid> <start time> <namespaces> <cgroup dir
//! or ->` with its stdin one end of a Unix stream socket, and speaks frames on the other end:
//! a little-endian `u32` length, then a JSON [`ZygoteRequest`] or [`ZygoteReply`]. The
//! zygote first answers [`ZygoteReply::Ready`] (or why it could not join), then one reply per
//! request, in the order the commands end. Each command:
//! - runs with the request's argv, environment and working dir, stdin `/dev/null`, and its
//!   stdout and stderr on one pipe (combined, as the kubelet reports probe output);
//! - leads its own process group, which is killed (SIGKILL) at the request's timeout;
//! - is killed if the zygote dies (`PR_SET_PDEATHSIG`).
//!
//! The zygote joins the PID namespace with `setns` without forking itself into it, so it is
//! not one of the container's processes (its commands are). It exits, killing the commands
//! still running, when the caller closes its end of the socket: a crashed agent leaves no
//! zygote behind.

use crate::nsexec::{ContainerRef, EntryError};
use crate::{ShimState, sys};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The subcommand (first argument) the helper executable dispatches to [`zygote_main`].
pub const ZYGOTE_SUBCOMMAND: &str = "zygote";

/// Largest frame either side accepts (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// One command to run in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZygoteRequest {
    /// Chosen by the caller; the reply carries it back.
    pub id: u64,
    pub argv: Vec<String>,
    /// The whole environment of the command.
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// The command's process group is killed this long after it started.
    pub timeout_ms: u64,
    /// At most this much of the output is kept (the rest is read and dropped).
    pub max_output: usize,
}

/// What the zygote says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reply")]
pub enum ZygoteReply {
    /// It joined the container and takes requests.
    Ready,
    /// The container is not running (any more).
    NotRunning,
    /// It could not join the container.
    SetupFailed {
        errno: i32,
        context: String,
        message: String,
    },
    /// The command ended: its exit code (128 + the signal when a signal ended it) and the
    /// start of its output (lossy UTF-8).
    Exited { id: u64, code: i32, output: String },
    /// The command was still running at its timeout and was killed.
    TimedOut { id: u64, output: String },
    /// The command could not be started.
    Failed {
        id: u64,
        errno: i32,
        message: String,
    },
}

/// Encodes one frame.
pub fn encode_frame<T: Serialize>(value: &T) -> Vec<u8> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Takes the first complete frame off the front of `buf`: `Ok(None)` until one is complete,
/// an error for an oversized or undecodable frame (the stream is then unusable).
pub fn take_frame<T: serde::de::DeserializeOwned>(buf: &mut Vec<u8>) -> Result<Option<T>, String> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "frame of {len} bytes is over the limit of {MAX_FRAME}"
        ));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let value = serde_json::from_slice(&buf[4..4 + len]).map_err(|e| e.to_string());
    buf.drain(..4 + len);
    value.map(Some)
}

/// The arguments after `zygote` for the run in `state`.
pub fn zygote_args(state: &ShimState) -> Vec<OsString> {
    ContainerRef::args(state).to_vec()
}

/// The zygote's side, for the arguments after `zygote` (see the module docs); its stdin is
/// the socket. Returns the process exit code. Must run before the process starts a thread.
pub fn zygote_main(args: &[OsString]) -> i32 {
    // A close-on-exec copy: commands must not hold the socket.
    let mut sock = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => {
            eprintln!("zygote: stdin: {e}");
            return 2;
        }
    };
    let Some(container) = <&[OsString; 4]>::try_from(args)
        .ok()
        .and_then(ContainerRef::parse)
    else {
        eprintln!("usage: zygote <container pid> <start time> <namespaces> <cgroup dir|->");
        return 2;
    };
    let joined = match join(&container) {
        Ok(joined) => joined,
        Err(reply) => {
            let _ = sock.write_all(&encode_frame(&reply));
            return 1;
        }
    };
    if sock.write_all(&encode_frame(&ZygoteReply::Ready)).is_err() {
        return 1;
    }
    match serve(&mut sock, &joined) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("zygote: {e}");
            1
        }
    }
}

/// What the zygote keeps after joining.
struct Joined {
    /// The container's cgroup (`cgroup.procs`), which commands join.
    cgroup_procs: Option<File>,
    /// A command's parent PID as the command sees it: 0 when the PID namespace was joined
    /// (the zygote is outside it), else the zygote's own PID.
    expected_parent: i32,
}

/// Joins the container's namespaces (the mount namespace last).
fn join(container: &ContainerRef) -> Result<Joined, ZygoteReply> {
    let failed = |context: String, e: std::io::Error| ZygoteReply::SetupFailed {
        errno: e.raw_os_error().unwrap_or(0),
        context,
        message: e.to_string(),
    };
    let mut entry = container.open().map_err(|e| match e {
        EntryError::NotRunning => ZygoteReply::NotRunning,
        EntryError::Open { path, source } => failed(format!("open {path}"), source),
    })?;
    let cgroup_procs = entry.cgroup_procs.take();
    let expected_parent = entry
        .join()
        .map_err(|e| failed("join the container's namespaces".into(), e.into()))?;
    Ok(Joined {
        cgroup_procs,
        expected_parent,
    })
}

/// One command in flight.
struct Running {
    id: u64,
    child: Child,
    /// Read end of the command's stdout+stderr pipe, until its end.
    output_pipe: Option<File>,
    output: Vec<u8>,
    max_output: usize,
    deadline: Instant,
    exit_code: Option<i32>,
    timed_out: bool,
}

impl Running {
    /// Done: it has exited, and its output has ended or its time is up (a background
    /// process may hold the pipe open).
    fn done(&self, now: Instant) -> bool {
        self.exit_code.is_some() && (self.output_pipe.is_none() || now >= self.deadline)
    }

    fn reply(&self) -> ZygoteReply {
        let output = String::from_utf8_lossy(&self.output).into_owned();
        match self.exit_code {
            Some(_) if self.timed_out => ZygoteReply::TimedOut {
                id: self.id,
                output,
            },
            Some(code) => ZygoteReply::Exited {
                id: self.id,
                code,
                output,
            },
            None => ZygoteReply::TimedOut {
                id: self.id,
                output,
            },
        }
    }

    fn kill_group(&self) {
        // The group is the command's own (it leads it) and the command is not reaped yet, so
        // its PID (the group's ID) cannot have been reused.
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
    }
}

/// Takes requests until the caller closes the socket; then kills what still runs.
fn serve(sock: &mut File, joined: &Joined) -> std::io::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let mut inbox = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut open = true;
    while open || !running.is_empty() {
        let now = Instant::now();
        let next = running
            .iter()
            .filter(|r| !r.timed_out || r.exit_code.is_some())
            .map(|r| r.deadline)
            .min();
        let timeout = match next {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(
                d.saturating_duration_since(now)
                    .as_millis()
                    .clamp(1, 60_000) as i32,
            )
            .unwrap_or(PollTimeout::NONE),
        };
        let mut fds: Vec<PollFd> = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if open {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
        }
        let pipes: Vec<(usize, BorrowedFd)> = running
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.output_pipe.as_ref().map(|p| (i, p.as_fd())))
            .collect();
        for (_, fd) in &pipes {
            fds.push(PollFd::new(*fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let pipe_indexes: Vec<usize> = pipes.iter().map(|(i, _)| *i).collect();
        drop(fds);
        drop(pipes);

        let first_pipe = if open { 2 } else { 1 };
        for (k, &i) in pipe_indexes.iter().enumerate() {
            if ready[first_pipe + k] {
                read_output(&mut running[i], &mut chunk);
            }
        }
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            for r in running.iter_mut().filter(|r| r.exit_code.is_none()) {
                if let Ok(Some(status)) = r.child.try_wait() {
                    r.exit_code = Some(
                        status
                            .code()
                            .or_else(|| status.signal().map(|s| 128 + s))
                            .unwrap_or(255),
                    );
                }
            }
        }
        if open && ready[1] {
            match sock.read(&mut chunk) {
                Ok(0) => open = false,
                Ok(n) => inbox.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => open = false,
            }
            loop {
                match take_frame::<ZygoteRequest>(&mut inbox) {
                    Ok(Some(req)) => match start(&req, joined) {
                        Ok(r) => running.push(r),
                        Err(reply) => sock.write_all(&encode_frame(&reply))?,
                    },
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("zygote: bad request: {e}");
                        open = false;
                        break;
                    }
                }
            }
            if !open {
                // The caller is gone: nothing waits for these commands.
                for r in &running {
                    if r.exit_code.is_none() {
                        r.kill_group();
                    }
                }
            }
        }
        let now = Instant::now();
        for r in running.iter_mut() {
            if r.exit_code.is_none() && !r.timed_out && now >= r.deadline {
                r.kill_group();
                r.timed_out = true;
            }
        }
        let mut i = 0;
        while i < running.len() {
            if running[i].done(now) || (!open && running[i].exit_code.is_some()) {
                let r = running.swap_remove(i);
                if open {
                    sock.write_all(&encode_frame(&r.reply()))?;
                }
            } else {
                i += 1;
            }
        }
    }
    Ok(())
}

/// Reads what the pipe has, keeping at most `max_output` bytes; closes it at its end.
fn read_output(r: &mut Running, chunk: &mut [u8]) {
    let Some(pipe) = r.output_pipe.as_mut() else {
        return;
    };
    match pipe.read(chunk) {
        Ok(0) => r.output_pipe = None,
        Ok(n) => {
            let room = r.max_output.saturating_sub(r.output.len());
            r.output.extend_from_slice(&chunk[..n.min(room)]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(_) => r.output_pipe = None,
    }
}

/// Starts one command (see the module docs), or says why it could not.
fn start(req: &ZygoteRequest, joined: &Joined) -> Result<Running, ZygoteReply> {
    let failed = |e: std::io::Error| ZygoteReply::Failed {
        id: req.id,
        errno: e.raw_os_error().unwrap_or(0),
        message: e.to_string(),
    };
    let Some(program) = req.argv.first() else {
        return Err(failed(std::io::Error::other("empty command")));
    };
    let (reader, writer) = std::io::pipe().map_err(failed)?;
    let stderr = writer.try_clone().map_err(failed)?;
    let reader = File::from(std::os::fd::OwnedFd::from(reader));
    let _ = nix::fcntl::fcntl(
        reader.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut cmd = Command::new(program);
    cmd.args(&req.argv[1..])
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&req.working_dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .process_group(0);
    let cgroup = joined
        .cgroup_procs
        .as_ref()
        .and_then(|f| f.try_clone().ok());
    let expected_parent = joined.expected_parent;
    sys::set_pre_exec(&mut cmd, move || {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        if nix::unistd::getppid().as_raw() != expected_parent {
            return Err(std::io::Error::other("the exec server ended"));
        }
        if let Some(f) = &cgroup {
            nix::unistd::write(f, b"0")?;
        }
        Ok(())
    });
    let child = cmd.spawn().map_err(failed)?;
    Ok(Running {
        id: req.id,
        child,
        output_pipe: Some(reader),
        output: Vec::new(),
        max_output: req.max_output,
        deadline: Instant::now() + Duration::from_millis(req.timeout_ms),
        exit_code: None,
        timed_out: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let req = ZygoteRequest {
            id: 7,
            argv: vec!["stat".into(), "/ready".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: "/".into(),
            timeout_ms: 1000,
            max_output: 10,
        };
        let mut bytes = encode_frame(&req);
        bytes.extend(encode_frame(&ZygoteReply::Ready));
        // Byte by byte: nothing until a frame is whole.
        let mut buf = Vec::new();
        let mut got_req = None;
        for b in &bytes[..bytes.len() - 1] {
            buf.push(*b);
            if got_req.is_none() {
                got_req = take_frame::<ZygoteRequest>(&mut buf).unwrap();
            }
        }
        assert_eq!(got_req, Some(req));
        assert_eq!(take_frame::<ZygoteReply>(&mut buf).unwrap(), None);
        buf.push(*bytes.last().unwrap());
        assert_eq!(
            take_frame::<ZygoteReply>(&mut buf).unwrap(),
            Some(ZygoteReply::Ready)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let mut buf = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        assert!(take_frame::<ZygoteReply>(&mut buf).is_err());
        let mut buf = 3u32.to_le_bytes().to_vec();
        buf.extend_from_slice(b"{x}");
        assert!(take_frame::<ZygoteReply>(&mut buf).is_err());
    }

    #[test]
    fn arguments_parse() {
        let usage = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            zygote_main(&args)
        };
        assert_eq!(usage(&["1"]), 2);
        assert_eq!(usage(&["x", "1", "", "-"]), 2);
    }
}
