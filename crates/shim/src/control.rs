//! The agent's side: launch a shim, read its files, stop it, exec into its container.

use crate::config::{EnvVar, ShimConfig};
use crate::{ExitRecord, IsolationReport, ShimError, ShimState, files, sys, write_json};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often [`stop`] looks for `exit.json`.
const POLL: Duration = Duration::from_millis(10);
/// How long [`stop`] waits for `exit.json` after the SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(10);

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// `exit.json`, once the container run has ended.
pub fn read_exit(state_dir: &Path) -> Option<ExitRecord> {
    read_json(&state_dir.join(files::EXIT))
}

/// `state.json`, once the container has started.
pub fn read_state(state_dir: &Path) -> Option<ShimState> {
    read_json(&state_dir.join(files::STATE))
}

/// `isolation.json`: the isolation in force for the run.
pub fn read_isolation(state_dir: &Path) -> Option<IsolationReport> {
    read_json(&state_dir.join(files::ISOLATION))
}

/// What the state dir says about the run (used by a restarted agent to adopt shims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimStatus {
    /// The container is running under a live shim.
    Running(ShimState),
    /// The run has ended.
    Exited(ExitRecord),
    /// Neither: never started, or the shim died without recording the end.
    Unknown,
}

pub fn status(state_dir: &Path) -> ShimStatus {
    if let Some(exit) = read_exit(state_dir) {
        return ShimStatus::Exited(exit);
    }
    match read_state(state_dir) {
        Some(st) if sys::is_same_live_process(st.shim_pid, st.shim_start_time) => {
            ShimStatus::Running(st)
        }
        _ => ShimStatus::Unknown,
    }
}

/// A pidfd (`pidfd_open(2)`) of the live shim of `state`, which becomes readable when the
/// shim exits (it writes `exit.json` first), so a caller can wait for the end of a run
/// without polling. None when the shim is gone or the kernel has no pidfds (before 5.3).
pub fn shim_exit_fd(state: &ShimState) -> Option<std::os::fd::OwnedFd> {
    let fd = sys::pidfd_open(state.shim_pid).ok()?;
    // Opened first, checked second: the descriptor is the shim's only if the process at that
    // PID is still the one that started at the recorded time.
    sys::is_same_live_process(state.shim_pid, state.shim_start_time).then_some(fd)
}

/// Entry point for the shim subcommand: loads the configuration, runs the shim, and returns
/// the process exit code (errors are printed on stderr, which [`launch`] sends to
/// `shim.log`).
pub fn shim_main(config_path: &Path) -> i32 {
    let result = ShimConfig::load(config_path).and_then(crate::run_shim);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slipway-shim: {e}");
            1
        }
    }
}

/// Starts a shim for `config`: writes `config.json` in the state dir, runs `shim_command`
/// with the config path appended as its last argument (the command must end up in
/// [`shim_main`] or [`run_shim`](crate::run_shim)), and waits until the shim has started the container (or
/// recorded why it could not, in `exit.json`). The shim's own output goes to `shim.log`.
///
/// The shim is not left as a child of the caller: it detaches (new session, re-parented),
/// so nothing has to reap it and it outlives the caller.
pub fn launch(mut shim_command: Command, config: &ShimConfig) -> Result<ShimState, ShimError> {
    config.validate()?;
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| ShimError::io(format!("create {}", dir.display()), e))?;
    if let ShimStatus::Running(_) = status(dir) {
        return Err(ShimError::AlreadyRunning(dir.clone()));
    }
    write_json(dir, files::CONFIG, config)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(files::SHIM_LOG))
        .map_err(|e| ShimError::io("open shim.log", e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| ShimError::io("dup shim.log", e))?;
    let st = shim_command
        .arg(dir.join(files::CONFIG))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|e| ShimError::io("run the shim", e))?;
    if !st.success() {
        let text = std::fs::read_to_string(dir.join(files::SHIM_LOG)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(ShimError::StartFailed(format!(
            "shim exited with {st}: {}",
            tail.join(" | ")
        )));
    }
    if let Some(state) = read_state(dir) {
        return Ok(state);
    }
    if let Some(exit) = read_exit(dir) {
        // The container could not start; the shim recorded why and exited.
        return Err(ShimError::StartFailed(
            exit.message.unwrap_or_else(|| exit.reason.clone()),
        ));
    }
    Err(ShimError::StartFailed(
        "the shim reported success but wrote no state.json".into(),
    ))
}

fn wait_for_exit(state_dir: &Path, until: Instant) -> Option<ExitRecord> {
    loop {
        if let Some(e) = read_exit(state_dir) {
            return Some(e);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn kill_container(state: &ShimState, sig: Signal) {
    if !sys::is_same_live_process(state.container_pid, state.container_start_time) {
        // Already gone (or only its zombie is left for the shim to reap). A fallback-mode
        // group may still have members: the shim kills those when the leader ends.
        return;
    }
    let pid = Pid::from_raw(state.container_pid);
    match state.process_group {
        // Without a PID namespace the container leads its process group: kill the group.
        Some(pgid) if sig == Signal::SIGKILL => {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
        // With a PID namespace, SIGKILL to its init kills every process in it.
        _ => {
            let _ = kill(pid, sig);
        }
    }
}

/// Stops the container run: SIGTERM to the shim (which forwards it to the container), then
/// after `grace` SIGKILL to the whole container (its PID namespace's init, or its process
/// group); returns the exit record once `exit.json` exists.
///
/// If the shim died without recording the end, the container is killed and an `Unknown`
/// record is written in its place, so the caller always ends with an `exit.json`.
pub fn stop(state_dir: &Path, grace: Duration) -> Result<ExitRecord, ShimError> {
    if let Some(e) = read_exit(state_dir) {
        return Ok(e);
    }
    let Some(state) = read_state(state_dir) else {
        return Err(ShimError::NotRunning(state_dir.to_path_buf()));
    };
    let shim_alive = || sys::is_same_live_process(state.shim_pid, state.shim_start_time);
    if shim_alive() {
        let _ = kill(Pid::from_raw(state.shim_pid), Signal::SIGTERM);
    } else {
        kill_container(&state, Signal::SIGTERM);
    }
    let start = Instant::now();
    if let Some(e) = wait_for_exit(state_dir, start + grace) {
        return Ok(e);
    }
    kill_container(&state, Signal::SIGKILL);
    let until = Instant::now() + AFTER_KILL;
    loop {
        if let Some(e) = read_exit(state_dir) {
            return Ok(e);
        }
        if !shim_alive() {
            // Check once more: the shim may have written exit.json just before ending.
            if let Some(e) = read_exit(state_dir) {
                return Ok(e);
            }
            let now = crate::logs::rfc3339_nano(chrono::Utc::now());
            let record = ExitRecord {
                exit_code: 137,
                signal: Some(libc::SIGKILL),
                reason: "Unknown".into(),
                message: Some("the shim ended without recording the container's exit".into()),
                started_at: now.clone(),
                finished_at: now,
                oom_killed: false,
            };
            write_json(state_dir, files::EXIT, &record)?;
            return Ok(record);
        }
        if Instant::now() >= until {
            return Err(ShimError::Timeout(format!(
                "no exit.json in {} {:?} after SIGKILL",
                state_dir.display(),
                AFTER_KILL
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// What an exec into the container of `state_dir` needs: its state (the container still
/// the same live process) and its environment (from its config) with `env` on top. Fails with
/// [`ShimError::NotRunning`] when the container has exited.
pub(crate) fn exec_target(
    state_dir: &Path,
    argv: &[String],
    env: &[EnvVar],
) -> Result<(ShimState, Vec<(String, String)>), ShimError> {
    if argv.is_empty() {
        return Err(ShimError::Config("exec argv must not be empty".into()));
    }
    exec_context(state_dir, env)
}

/// What every exec into the running container of `state_dir` shares: its state (the
/// container still the same live process) and its environment (from its config) with
/// `env` on top. Fails with [`ShimError::NotRunning`] when the container has exited.
pub fn exec_context(
    state_dir: &Path,
    env: &[EnvVar],
) -> Result<(ShimState, Vec<(String, String)>), ShimError> {
    if read_exit(state_dir).is_some() {
        return Err(ShimError::NotRunning(state_dir.to_path_buf()));
    }
    let state = read_state(state_dir).ok_or_else(|| ShimError::NotRunning(state_dir.into()))?;
    if !sys::is_same_live_process(state.container_pid, state.container_start_time) {
        return Err(ShimError::NotRunning(state_dir.to_path_buf()));
    }
    let config = ShimConfig::load(&state_dir.join(files::CONFIG))?;
    let mut full_env = config.container_env();
    for v in env {
        full_env.retain(|(k, _)| k != &v.name);
        full_env.push((v.name.clone(), v.value.clone()));
    }
    Ok((state, full_env))
}

/// Runs `argv` inside the running container of `state_dir`: it joins the container's
/// namespaces (`setns` on `/proc/<pid>/ns/{uts,net,pid,mnt}`, then a fork so the PID
/// namespace applies), so it sees the container's root, processes, hostname and network,
/// and starts in the container's working dir with the container's environment plus `env`.
///
/// The returned [`Child`] is a small intermediate process that waits for the command and
/// exits with its exit code (128 + signal if a signal ended it); killing it kills the
/// command. Without namespaces (fallback mode) the command runs as a plain process in the
/// working dir.
///
/// When an exec helper is set ([`set_exec_helper`](crate::set_exec_helper); `slipway serve`
/// sets its own executable), that intermediate is a fresh `<helper> nsexec ...` process
/// started without forking the caller (see [`nsexec_main`](crate::nsexec_main)); otherwise
/// it is a fork of the caller, which copies the caller's page tables on every call.
pub fn exec_in(
    state_dir: &Path,
    argv: &[String],
    env: &[EnvVar],
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Child, ShimError> {
    let (state, full_env) = exec_target(state_dir, argv, env)?;

    if !state.namespaces.is_empty()
        && let Some(helper) = crate::nsexec::exec_helper()
    {
        return crate::nsexec::spawn_helper(
            &helper,
            state_dir,
            &state,
            argv,
            full_env,
            (stdin, stdout, stderr),
            false,
        );
    }

    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(full_env)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);

    if state.namespaces.is_empty() {
        cmd.current_dir(&state.working_dir);
        return cmd
            .spawn()
            .map_err(|e| ShimError::io(format!("exec {:?}", argv[0]), e));
    }

    // No exec helper: enter the container from a fork of this process.

    // Everything the hook needs is prepared here: the hook runs in a child of a possibly
    // multi-threaded process and must not allocate.
    let mut ns_files: Vec<(File, CloneFlags)> = Vec::new();
    for ns in &state.namespaces {
        let flag = match ns.as_str() {
            "uts" => CloneFlags::CLONE_NEWUTS,
            "net" => CloneFlags::CLONE_NEWNET,
            "pid" => CloneFlags::CLONE_NEWPID,
            "mnt" => CloneFlags::CLONE_NEWNS,
            _ => continue,
        };
        let path = format!("/proc/{}/ns/{ns}", state.container_pid);
        let f = File::open(&path).map_err(|e| ShimError::io(format!("open {path}"), e))?;
        ns_files.push((f, flag));
    }
    // Join the mount namespace last: the others are opened already, and after it the
    // process's root is the container's root.
    ns_files.sort_by_key(|(_, flag)| *flag == CloneFlags::CLONE_NEWNS);
    let join_pid = state.namespaces.iter().any(|n| n == "pid");
    let workdir = CString::new(state.working_dir.as_os_str().as_bytes())
        .map_err(|_| ShimError::Config("working dir contains NUL".into()))?;
    // The exec'd command joins the container's cgroup too, if there is one.
    let cgroup_procs = state.cgroup.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p.join("cgroup.procs"))
            .ok()
    });

    sys::set_pre_exec(&mut cmd, move || {
        for (f, flag) in &ns_files {
            setns(f.as_fd(), *flag).map_err(std::io::Error::from)?;
        }
        if join_pid {
            sys::fork_into_joined_pid_namespace()?;
        }
        nix::sys::signal::SigSet::empty()
            .thread_set_mask()
            .map_err(std::io::Error::from)?;
        if let Some(f) = &cgroup_procs {
            nix::unistd::write(f, b"0").map_err(std::io::Error::from)?;
        }
        nix::unistd::chdir(workdir.as_c_str()).map_err(std::io::Error::from)
    });
    cmd.spawn()
        .map_err(|e| ShimError::io(format!("exec {:?} in the container", argv[0]), e))
}
