//! The shim process itself: detach, start the container, copy its output into the log,
//! forward SIGTERM, reap, record the exit.

use crate::attach::{AttachServer, Watched};
use crate::cgroup::Cgroup;
use crate::config::ShimConfig;
use crate::container::{self, Plan, ShimIo, StartFailure, Started};
use crate::logs::{CriLogWriter, LogStream, rfc3339_nano};
use crate::{ExitRecord, ShimError, ShimState, files, sys, write_atomic, write_json};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the shim keeps reading the container's output after the container exited
/// (output still buffered in the pipes, or held by a straggler being killed).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the shim for one container run.
///
/// Call it at the start of a fresh process, before any thread is started: it forks to
/// detach. It returns twice, like `fork`: in the short-lived starter process (once the
/// detached shim has started the container, or failed to; `Ok(0)` on success) and in the
/// detached shim (once the container has exited and `exit.json` is written). Either way
/// the caller should exit the process with the returned code.
///
/// The detached shim runs in its own session, is re-parented away from the process that
/// started it, and survives that process's death.
pub fn run_shim(config: ShimConfig) -> Result<i32, ShimError> {
    config.validate()?;
    let threads = sys::current_thread_count().map_err(|e| ShimError::io("count threads", e))?;
    if threads != 1 {
        return Err(ShimError::NotSingleThreaded(threads));
    }
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| ShimError::io(format!("create {}", dir.display()), e))?;
    let (mut ready_r, ready_w) = std::io::pipe().map_err(|e| ShimError::io("pipe", e))?;
    match sys::fork_process().map_err(|e| ShimError::io("fork", e))? {
        sys::Forked::Parent { .. } => {
            drop(ready_w);
            let mut msg = String::new();
            let _ = ready_r.read_to_string(&mut msg);
            if msg == "ok" {
                Ok(0)
            } else if msg.is_empty() {
                Err(ShimError::StartFailed(
                    "the shim died before starting the container (see shim.log)".into(),
                ))
            } else {
                Err(ShimError::StartFailed(msg))
            }
        }
        sys::Forked::Child => {
            drop(ready_r);
            // A fresh child is never a process group leader, so this cannot fail.
            let _ = nix::unistd::setsid();
            let mut ready = Some(ready_w);
            let result = supervise(&config, &mut ready);
            if let (Err(e), Some(mut w)) = (&result, ready.take()) {
                let _ = write!(w, "{e}");
            }
            if let Err(e) = &result {
                eprintln!("slipway-shim: {e}");
            }
            result
        }
    }
}

fn now() -> String {
    rfc3339_nano(chrono::Utc::now())
}

fn remove_if_exists(path: &Path) -> Result<(), ShimError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ShimError::io(format!("remove {}", path.display()), e)),
    }
}

fn supervise(cfg: &ShimConfig, ready: &mut Option<PipeWriter>) -> Result<i32, ShimError> {
    let dir = cfg.state_dir.as_path();
    for f in [
        files::EXIT,
        files::CONTAINER_PID,
        files::STATE,
        files::ISOLATION,
    ] {
        remove_if_exists(&dir.join(f))?;
    }
    let me = nix::unistd::getpid().as_raw();
    write_atomic(dir, files::SHIM_PID, format!("{me}\n").as_bytes())?;
    // Orphans of the container (in fallback mode) come to us, so we can kill and reap them.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| ShimError::io("PR_SET_CHILD_SUBREAPER", e.into()))?;
    let _ = nix::unistd::chdir("/");

    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| ShimError::io("block signals", e.into()))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| ShimError::io("signalfd", e.into()))?;

    let mut log = CriLogWriter::open(&dir.join(files::LOG), cfg.log_max_bytes)
        .map_err(|e| ShimError::io("open container.log", e))?;

    let mut plan = container::plan(cfg);
    if plan.overlay
        && let Err(e) = container::prepare_overlay_dirs(dir)
    {
        plan.overlay = false;
        plan.reasons.push(format!("overlay dirs: {e}"));
    }

    let mut cgroup: Option<Cgroup> = None;
    let mut cgroup_reason = None;
    if !cfg.resources.is_empty() {
        let name = format!(
            "{}-{}-{me}",
            if cfg.pod_uid.is_empty() {
                &cfg.pod_name
            } else {
                &cfg.pod_uid
            },
            cfg.container_name
        );
        match Cgroup::create(&name, cfg.resources.memory_bytes, cfg.resources.cpu_millis) {
            Ok(cg) => cgroup = Some(cg),
            Err(reason) => cgroup_reason = Some(reason),
        }
    }
    let procs = cgroup.as_ref().map(|c| c.procs_file());

    let mut loopback = false;
    let mut started: Result<Started, StartFailure> = Err(StartFailure::Setup(String::new()));
    // Try the full plan; if its setup fails with the overlay, try once more without it
    // (namespaces only); if that fails too, run a plain process. Each step says why.
    while plan.any() {
        started = container::start_isolated(cfg, &plan, procs.as_deref());
        match &started {
            Ok(_) => {
                loopback = plan.net_ns;
                break;
            }
            Err(StartFailure::Setup(why)) if plan.overlay => {
                plan.overlay = false;
                plan.reasons.push(format!(
                    "overlay root failed, running on the host filesystem: {why}"
                ));
            }
            Err(StartFailure::Setup(why)) => {
                let mut reasons = std::mem::take(&mut plan.reasons);
                reasons.push(format!(
                    "isolation failed, running a plain process instead: {why}"
                ));
                plan = Plan {
                    reasons,
                    ..Plan::default()
                };
            }
            Err(StartFailure::Exec(_)) => break,
        }
    }
    if !plan.any() {
        started = container::start_plain(cfg, procs.as_deref());
    }
    let started_at = now();
    let mut report = plan.report(cfg, loopback, cgroup.is_some());
    if let Some(reason) = cgroup_reason {
        report.reasons.push(reason);
        if report.mode == "isolated" {
            report.mode = "partial".into();
        }
    }
    write_json(dir, files::ISOLATION, &report)?;

    let started = match started {
        Ok(s) => s,
        Err(StartFailure::Setup(m)) | Err(StartFailure::Exec(m)) => {
            let record = ExitRecord {
                exit_code: 128,
                signal: None,
                reason: "StartError".into(),
                message: Some(m),
                started_at: started_at.clone(),
                finished_at: started_at,
                oom_killed: false,
            };
            if let Some(cg) = &cgroup {
                Cgroup::remove(&cg.path);
            }
            write_json(dir, files::EXIT, &record)?;
            signal_ready(ready);
            return Ok(0);
        }
    };

    let pid = started.pid;
    write_atomic(dir, files::CONTAINER_PID, format!("{pid}\n").as_bytes())?;
    let state = ShimState {
        shim_pid: me,
        shim_start_time: sys::process_start_time(me).unwrap_or(0),
        container_pid: pid,
        container_start_time: sys::process_start_time(pid).unwrap_or(0),
        pid_namespace: plan.pid_ns,
        process_group: (!plan.pid_ns).then_some(pid),
        cgroup: cgroup.as_ref().map(|c| c.path.clone()),
        namespaces: plan.namespaces(),
        working_dir: cfg.effective_working_dir(),
    };
    write_json(dir, files::STATE, &state)?;
    let mut started = started;
    let mut attach = open_attach(cfg, &mut started.io);
    signal_ready(ready);

    let status = supervise_loop(&sfd, &started, &mut log, attach.as_mut(), plan.pid_ns);
    drop(attach);
    let finished_at = now();
    let _ = log.finish(LogStream::Stdout);
    let _ = log.finish(LogStream::Stderr);

    let oom = cgroup.as_ref().is_some_and(|c| Cgroup::oom_killed(&c.path));
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let reason = if oom {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    if let Some(cg) = &cgroup {
        Cgroup::remove(&cg.path);
    }
    let record = ExitRecord {
        exit_code,
        signal,
        reason: reason.into(),
        message: None,
        started_at,
        finished_at,
        oom_killed: oom,
    };
    write_json(dir, files::EXIT, &record)?;
    Ok(0)
}

fn signal_ready(ready: &mut Option<PipeWriter>) {
    if let Some(mut w) = ready.take() {
        let _ = w.write_all(b"ok");
    }
}

/// The attach socket, for a container that keeps stdin open or runs on a terminal; `None`
/// (with the reason in `shim.log`) when it cannot be opened: the container runs anyway.
/// The stdin pipe's write end moves to the server, so that closing it there is the end of
/// file for the container.
fn open_attach(cfg: &ShimConfig, io: &mut ShimIo) -> Option<AttachServer> {
    if !(cfg.stdin || cfg.tty) {
        return None;
    }
    let input = match io {
        ShimIo::Pipes { stdin, .. } => Ok(stdin.take()),
        ShimIo::Terminal(master) if cfg.stdin => master.try_clone().map(Some),
        ShimIo::Terminal(_) => Ok(None),
    };
    let opened = input.and_then(|input| {
        AttachServer::listen(
            &cfg.state_dir,
            input,
            matches!(io, ShimIo::Terminal(_)),
            cfg.stdin_once,
        )
    });
    match opened {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!("slipway-shim: cannot open the attach socket: {e}");
            None
        }
    }
}

struct Output<'a> {
    reader: &'a File,
    stream: LogStream,
    open: bool,
}

/// Waits for the container to exit while copying its output; returns its wait status once
/// it has exited, every other process of it is gone and the output is drained.
fn supervise_loop(
    sfd: &SignalFd,
    started: &Started,
    log: &mut CriLogWriter,
    mut attach: Option<&mut AttachServer>,
    pid_ns: bool,
) -> WaitStatus {
    let container = Pid::from_raw(started.pid);
    let (mut outputs, terminal) = match &started.io {
        ShimIo::Pipes { stdout, stderr, .. } => (
            vec![
                Output {
                    reader: stdout,
                    stream: LogStream::Stdout,
                    open: true,
                },
                Output {
                    reader: stderr,
                    stream: LogStream::Stderr,
                    open: true,
                },
            ],
            None,
        ),
        // A terminal's output is logged as stdout, as the kubelet does.
        ShimIo::Terminal(master) => (
            vec![Output {
                reader: master,
                stream: LogStream::Stdout,
                open: true,
            }],
            Some(master),
        ),
    };
    let mut exit: Option<WaitStatus> = None;
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as i32)
                    .unwrap_or(PollTimeout::NONE)
            }
        };
        if exit.is_some() && outputs.iter().all(|o| !o.open) {
            break;
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let open: Vec<usize> = (0..outputs.len()).filter(|&i| outputs[i].open).collect();
        for &i in &open {
            fds.push(PollFd::new(outputs[i].reader.as_fd(), PollFlags::POLLIN));
        }
        // Attach sessions are served while the container runs.
        let attach_fds = match (&attach, exit.is_none()) {
            (Some(server), true) => server.poll_fds(),
            _ => Vec::new(),
        };
        let attach_base = fds.len();
        let mut watched = Vec::with_capacity(attach_fds.len());
        for (fd, what, out) in attach_fds {
            let flags = if out {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            fds.push(PollFd::new(fd, flags));
            watched.push(what);
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("slipway-shim: poll: {e}");
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let ready_attach: Vec<Watched> = watched
            .into_iter()
            .enumerate()
            .filter(|(k, _)| ready[attach_base + k])
            .map(|(_, w)| w)
            .collect();
        if let Some(server) = attach.as_deref_mut()
            && !ready_attach.is_empty()
            && let Some((cols, rows)) = server.on_ready(&ready_attach)
            && let Some(master) = terminal
        {
            let _ = crate::tty::set_window_size(master, cols, rows);
        }
        for (k, &i) in open.iter().enumerate() {
            if !ready[k + 1] {
                continue;
            }
            let out = &mut outputs[i];
            let mut reader = out.reader;
            match reader.read(&mut buf) {
                Ok(0) => {
                    out.open = false;
                    let _ = log.finish(out.stream);
                }
                Ok(n) => {
                    if let Err(e) = log.feed(out.stream, &buf[..n]) {
                        eprintln!("slipway-shim: write log: {e}");
                    }
                    if let Some(server) = attach.as_deref_mut() {
                        server.broadcast(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A terminal's master reads EIO once no process holds its slave side.
                Err(e) if terminal.is_some() && e.raw_os_error() == Some(libc::EIO) => {
                    out.open = false;
                    let _ = log.finish(out.stream);
                }
                Err(e) => {
                    eprintln!("slipway-shim: read output: {e}");
                    out.open = false;
                }
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                // SIGTERM, SIGINT and SIGQUIT are forwarded as SIGTERM; SIGHUP is ignored
                // (the shim outlives its session); SIGCHLD is handled by reaping below.
                let stop = matches!(
                    Signal::try_from(info.ssi_signo as i32),
                    Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
                );
                if stop && exit.is_none() {
                    let _ = kill(container, Signal::SIGTERM);
                }
            }
            // Reap every child that has ended (SIGCHLD coalesces).
            if reap(container, &mut exit) && deadline.is_none() {
                deadline = Some(Instant::now() + DRAIN);
                if !pid_ns {
                    kill_leftovers(started.pid);
                }
            }
        }
    }
    if !pid_ns {
        // Until no child is left: kill the group and every orphan handed to us, reap.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            kill_leftovers(started.pid);
            reap(container, &mut exit);
            if matches!(
                waitpid(None, Some(WaitPidFlag::WNOHANG)),
                Err(Errno::ECHILD)
            ) || Instant::now() > until
            {
                break;
            }
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(100u16));
            while let Ok(Some(_)) = sfd.read_signal() {}
        }
    }
    exit.unwrap_or(WaitStatus::Exited(container, 255))
}

/// Reaps ended children; returns true when the container itself was reaped just now.
fn reap(container: Pid, exit: &mut Option<WaitStatus>) -> bool {
    let mut container_ended = false;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(st) => {
                if st.pid() == Some(container)
                    && matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                {
                    *exit = Some(st);
                    container_ended = true;
                }
            }
        }
    }
    container_ended
}

/// Fallback mode: SIGKILL the container's process group and every remaining child of the
/// shim (orphans re-parented to it as the subreaper).
fn kill_leftovers(pgid: i32) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let me = nix::unistd::getpid().as_raw();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && sys::process_parent(pid) == Some(me)
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}
