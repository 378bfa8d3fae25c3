//! The exec helper: `exec_in` without forking the caller.
//!
//! Entering a container needs `setns` (the mount namespace only works in a single-threaded
//! process) and a fork so that a joined PID namespace applies. Doing that in a `pre_exec`
//! hook of the caller makes `std` `fork()` the whole caller (for `slipway serve`: about a
//! hundred threads and tens of MB of page tables) for every exec probe. Instead, the caller
//! registers an executable that runs [`nsexec_main`] for its first argument `nsexec`
//! ([`set_exec_helper`]; the `slipway` binary registers itself) and `exec_in` starts it with
//! a plain [`Command`] (no hook, so `std` uses `posix_spawn`/`vfork` and copies nothing).
//! The small fresh helper joins the namespaces, starts the command in them and mirrors its
//! exit status, as the intermediate process of the in-process path did.
//!
//! The helper reports whether the command started (or why not) on a pipe of the caller,
//! which it opens through `/proc/<caller pid>/fd/<n>` (the caller's end is close-on-exec,
//! so no other child of the caller inherits it): `exec_in` fails as before when the
//! namespaces cannot be joined or the command cannot be executed.
//!
//! Arguments after `nsexec`: an optional `--tty`, then (all positional, none optional)
//! `<container pid> <container start time> <namespaces, comma-separated> <cgroup dir or ->
//! <working dir> <report path> <argv...>`. The environment of the helper is the command's.
//! With `--tty` the helper's stdin is a terminal (see [`exec_in_tty`](crate::exec_in_tty)):
//! the command leads a new session with that terminal as its controlling terminal.

use crate::{ShimError, ShimState, sys};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::RwLock;

/// The subcommand (first argument) the helper executable dispatches to [`nsexec_main`].
pub const NSEXEC_SUBCOMMAND: &str = "nsexec";

/// The optional first argument after `nsexec`: make the helper's stdin (a terminal) the
/// command's controlling terminal.
const TTY_FLAG: &str = "--tty";

/// Longest report: a write of at most `PIPE_BUF` bytes on a pipe is atomic.
const MAX_REPORT: usize = 4000;

static EXEC_HELPER: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets (or with `None` clears) the executable [`exec_in`](crate::exec_in) starts to enter a
/// container: it must run [`nsexec_main`] with the arguments that follow its first argument
/// `nsexec` (as `slipway nsexec ...` does), before it starts any thread. Without one,
/// `exec_in` enters the container from a fork of the calling process, which costs a copy of
/// the caller's page tables per call.
pub fn set_exec_helper(exe: Option<PathBuf>) {
    *EXEC_HELPER.write().unwrap_or_else(|e| e.into_inner()) = exe;
}

/// The executable set with [`set_exec_helper`], if any.
pub fn exec_helper() -> Option<PathBuf> {
    EXEC_HELPER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

pub(crate) fn flag_of(ns: &str) -> Option<CloneFlags> {
    Some(match ns {
        "uts" => CloneFlags::CLONE_NEWUTS,
        "net" => CloneFlags::CLONE_NEWNET,
        "pid" => CloneFlags::CLONE_NEWPID,
        "mnt" => CloneFlags::CLONE_NEWNS,
        _ => return None,
    })
}

/// The caller's side: starts `helper nsexec ...` for `argv` in the container of `state`
/// and returns once the command has started (the helper is the returned child) or failed.
/// With `tty` the command takes the helper's stdin (a terminal) as its controlling terminal.
pub(crate) fn spawn_helper(
    helper: &Path,
    state_dir: &Path,
    state: &ShimState,
    argv: &[String],
    env: Vec<(String, String)>,
    stdio: (Stdio, Stdio, Stdio),
    tty: bool,
) -> Result<Child, ShimError> {
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ShimError::io("create the exec helper's report pipe", e.into()))?;
    let report_path = format!("/proc/{}/fd/{}", std::process::id(), report_w.as_raw_fd());
    let mut cmd = Command::new(helper);
    cmd.arg(NSEXEC_SUBCOMMAND);
    if tty {
        cmd.arg(TTY_FLAG);
    }
    cmd.args(ContainerRef::args(state))
        .arg(&state.working_dir)
        .arg(&report_path)
        .args(argv)
        .env_clear()
        .envs(env)
        .stdin(stdio.0)
        .stdout(stdio.1)
        .stderr(stdio.2);
    let mut child = cmd
        .spawn()
        .map_err(|e| ShimError::io(format!("run the exec helper {}", helper.display()), e))?;
    let report = read_report(&report_r, &mut child);
    drop(report_w);
    let report = match report {
        Ok(Some(r)) => r,
        Ok(None) => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(ShimError::io(
                format!("exec {:?} in the container", argv[0]),
                std::io::Error::other(format!(
                    "the exec helper {} ended without a report ({status})",
                    helper.display()
                )),
            ));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ShimError::io("read the exec helper's report", e));
        }
    };
    if report == "ok" {
        return Ok(child);
    }
    // The helper exits at once after a failure report.
    let _ = child.wait();
    if report == "notrunning" {
        return Err(ShimError::NotRunning(state_dir.to_path_buf()));
    }
    let mut parts = report.splitn(4, '\0');
    let (errno, context, text) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("err"), Some(n), Some(c), Some(t)) => (n.parse::<i32>().unwrap_or(0), c, t),
        _ => (0, "exec in the container", report.as_str()),
    };
    let source = if errno > 0 {
        std::io::Error::from_raw_os_error(errno)
    } else {
        std::io::Error::other(text.to_string())
    };
    Err(ShimError::io(context, source))
}

/// Waits until the helper writes its report (Some) or ends without one (None).
fn read_report(pipe: &impl AsFd, child: &mut Child) -> std::io::Result<Option<String>> {
    // A pidfd wakes the poll when the helper ends; without one (old kernels), poll in steps.
    let pidfd = sys::pidfd_open(child.id() as i32).ok();
    loop {
        let mut fds = vec![PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if pidfd.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(50u16)
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let readable = |fd: &PollFd| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        if readable(&fds[0]) {
            let mut buf = vec![0u8; MAX_REPORT + 96];
            let n = loop {
                match nix::unistd::read(pipe.as_fd(), &mut buf) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r?,
                }
            };
            buf.truncate(n);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        let ended = match fds.get(1) {
            Some(p) => readable(p),
            None => child.try_wait()?.is_some(),
        };
        if ended {
            return Ok(None);
        }
    }
}

/// The container to enter, as both helpers take it on their command line: `<container
/// pid> <container start time> <namespaces, comma-separated> <cgroup dir or ->`.
pub(crate) struct ContainerRef {
    pid: i32,
    start_time: u64,
    namespaces: Vec<String>,
    cgroup: Option<PathBuf>,
}

impl ContainerRef {
    /// The four arguments for the run in `state`.
    pub(crate) fn args(state: &ShimState) -> [OsString; 4] {
        [
            state.container_pid.to_string().into(),
            state.container_start_time.to_string().into(),
            state.namespaces.join(",").into(),
            state
                .cgroup
                .as_ref()
                .map_or_else(|| OsString::from("-"), |d| d.clone().into_os_string()),
        ]
    }

    /// Parses the four arguments.
    pub(crate) fn parse(args: &[OsString; 4]) -> Option<ContainerRef> {
        let [pid, start, ns, cgroup] = args;
        let cgroup = PathBuf::from(cgroup);
        Some(ContainerRef {
            pid: pid.to_str()?.parse().ok()?,
            start_time: start.to_str()?.parse().ok()?,
            namespaces: ns
                .to_str()?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            cgroup: cgroup.is_absolute().then_some(cgroup),
        })
    }

    /// Opens the container's namespaces and cgroup (see [`Entry`]).
    pub(crate) fn open(&self) -> Result<Entry, EntryError> {
        Entry::open(
            self.pid,
            self.start_time,
            &self.namespaces,
            self.cgroup.as_deref(),
        )
    }
}

/// What the helper was asked to do.
struct Request {
    container: ContainerRef,
    working_dir: PathBuf,
    report: PathBuf,
    argv: Vec<OsString>,
    /// The command takes stdin (a terminal) as its controlling terminal.
    tty: bool,
}

impl Request {
    fn parse(args: &[OsString]) -> Option<Request> {
        let (tty, args) = match args.split_first() {
            Some((first, rest)) if first == TTY_FLAG => (true, rest),
            _ => (false, args),
        };
        let [pid, start, ns, cgroup, wd, report, argv @ ..] = args else {
            return None;
        };
        if argv.is_empty() {
            return None;
        }
        Some(Request {
            container: ContainerRef::parse(&[
                pid.clone(),
                start.clone(),
                ns.clone(),
                cgroup.clone(),
            ])?,
            working_dir: PathBuf::from(wd),
            report: PathBuf::from(report),
            argv: argv.to_vec(),
            tty,
        })
    }
}

enum Failure {
    NotRunning,
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// The helper's side, for the arguments after `nsexec` (see the module docs): joins the
/// container's namespaces, starts the command there (in the container's working dir, cgroup
/// and root, with the helper's own environment and stdio), reports to the caller, waits for
/// the command and returns its exit code (128 + signal when a signal ended it). The
/// command is killed if the helper dies. Must run before the process starts a thread.
pub fn nsexec_main(args: &[OsString]) -> i32 {
    let Some(req) = Request::parse(args) else {
        eprintln!(
            "usage: nsexec [--tty] <container pid> <start time> <namespaces> <cgroup dir|-> <working dir> <report path> <argv...>"
        );
        return 2;
    };
    let mut report = match std::fs::OpenOptions::new().write(true).open(&req.report) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nsexec: open {}: {e}", req.report.display());
            return 127;
        }
    };
    let message = match enter_and_spawn(&req) {
        Ok(child) => {
            let _ = report.write_all(b"ok");
            drop(report);
            // Keep no copy of the command's stdio: its readers see EOF when it ends.
            for fd in 0..=2 {
                let _ = nix::unistd::close(fd);
            }
            return mirror(child);
        }
        Err(Failure::NotRunning) => "notrunning".to_string(),
        Err(Failure::Io { context, source }) => {
            let mut m = format!(
                "err\0{}\0{context}\0{source}",
                source.raw_os_error().unwrap_or(0)
            );
            if m.len() > MAX_REPORT {
                let mut end = MAX_REPORT;
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                m.truncate(end);
            }
            m
        }
    };
    let _ = report.write_all(message.as_bytes());
    127
}

/// A running container, ready to be joined: its namespace files, opened while it was
/// checked to be the same live process, and its cgroup.
pub(crate) struct Entry {
    /// Mount namespace last: after it, host paths are out of reach and the root is the
    /// container's.
    ns_files: Vec<(File, CloneFlags)>,
    /// The container's `cgroup.procs`, for the commands to join.
    pub cgroup_procs: Option<File>,
}

/// Why a container cannot be entered.
pub(crate) enum EntryError {
    NotRunning,
    Open {
        path: String,
        source: std::io::Error,
    },
}

impl Entry {
    /// Opens the namespaces (`uts`, `net`, `pid`, `mnt`) of the container process
    /// `pid` started at `start_time`, and its cgroup's `cgroup.procs` if `cgroup` is set.
    pub(crate) fn open(
        pid: i32,
        start_time: u64,
        namespaces: &[String],
        cgroup: Option<&Path>,
    ) -> Result<Entry, EntryError> {
        let mut ns_files: Vec<(File, CloneFlags)> = Vec::new();
        for ns in namespaces {
            let Some(flag) = flag_of(ns) else { continue };
            let path = format!("/proc/{pid}/ns/{ns}");
            let f = File::open(&path).map_err(|source| EntryError::Open { path, source })?;
            ns_files.push((f, flag));
        }
        // The files opened belong to the container only if it still is the process at
        // that PID.
        if !sys::is_same_live_process(pid, start_time) {
            return Err(EntryError::NotRunning);
        }
        ns_files.sort_by_key(|(_, flag)| *flag == CloneFlags::CLONE_NEWNS);
        let cgroup_procs = cgroup.and_then(|dir| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .ok()
        });
        Ok(Entry {
            ns_files,
            cgroup_procs,
        })
    }

    /// Joins the namespaces (`setns`; a joined PID namespace applies to children only).
    /// Returns the PID a child of this process sees as its parent: 0 when the PID namespace
    /// was joined (this process is outside it), else this process's own.
    pub(crate) fn join(self) -> nix::Result<i32> {
        let joins_pid = self
            .ns_files
            .iter()
            .any(|(_, f)| *f == CloneFlags::CLONE_NEWPID);
        for (f, flag) in &self.ns_files {
            setns(f.as_fd(), *flag)?;
        }
        Ok(if joins_pid {
            0
        } else {
            std::process::id() as i32
        })
    }
}

fn enter_and_spawn(req: &Request) -> Result<Child, Failure> {
    let mut entry = req.container.open().map_err(|e| match e {
        EntryError::NotRunning => Failure::NotRunning,
        EntryError::Open { path, source } => Failure::Io {
            context: format!("open {path}"),
            source,
        },
    })?;
    let cgroup_procs = entry.cgroup_procs.take();
    let argv0 = req.argv[0].to_string_lossy().into_owned();
    let context = format!("exec {argv0:?} in the container");
    let expected_parent = entry.join().map_err(|e| Failure::Io {
        context: context.clone(),
        source: e.into(),
    })?;

    // The command's parent is this process; seen from a joined PID namespace it is outside,
    // so its PID there reads as 0 (`expected_parent`).
    let mut cmd = Command::new(&req.argv[0]);
    cmd.args(&req.argv[1..]).current_dir(&req.working_dir);
    let tty = req.tty;
    sys::set_pre_exec(&mut cmd, move || {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        if nix::unistd::getppid().as_raw() != expected_parent {
            return Err(std::io::Error::other("the exec helper ended"));
        }
        if let Some(f) = &cgroup_procs {
            nix::unistd::write(f, b"0")?;
        }
        if tty {
            crate::tty::take_controlling_terminal()?;
        }
        Ok(())
    });
    cmd.spawn()
        .map_err(|source| Failure::Io { context, source })
}

/// Waits for the command and returns its exit code, or 128 + the signal that ended it.
fn mirror(mut child: Child) -> i32 {
    match child.wait() {
        Ok(status) => exit_code(status),
        Err(_) => 127,
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn request_parsing() {
        let r = Request::parse(&os(&[
            "42",
            "7",
            "uts,net,pid,mnt",
            "-",
            "/work",
            "/proc/1/fd/3",
            "sh",
            "-c",
            "exit 3",
        ]))
        .unwrap();
        assert_eq!((r.container.pid, r.container.start_time), (42, 7));
        assert_eq!(r.container.namespaces, vec!["uts", "net", "pid", "mnt"]);
        assert_eq!(r.container.cgroup, None);
        assert_eq!(r.working_dir, PathBuf::from("/work"));
        assert_eq!(r.argv, os(&["sh", "-c", "exit 3"]));
        assert!(!r.tty);
        let r = Request::parse(&os(&["--tty", "42", "7", "pid", "-", "/", "/r", "sh"])).unwrap();
        assert!(r.tty);
        assert_eq!((r.container.pid, r.container.start_time), (42, 7));
        assert_eq!(r.argv, os(&["sh"]));
        let r =
            Request::parse(&os(&["1", "2", "", "/sys/fs/cgroup/x", "/", "/r", "true"])).unwrap();
        assert!(r.container.namespaces.is_empty());
        assert_eq!(r.container.cgroup, Some(PathBuf::from("/sys/fs/cgroup/x")));
        assert!(Request::parse(&os(&["1", "2", "", "-", "/", "/r"])).is_none());
        assert!(Request::parse(&os(&["x", "2", "", "-", "/", "/r", "true"])).is_none());
    }

    #[test]
    fn usage_error_without_arguments() {
        assert_eq!(nsexec_main(&[]), 2);
    }

    #[test]
    fn exit_codes_mirror_the_command() {
        let code = |s: &str| exit_code(Command::new("/bin/sh").args(["-c", s]).status().unwrap());
        assert_eq!(code("exit 3"), 3);
        assert_eq!(code("kill -9 $$"), 137);
    }
}
