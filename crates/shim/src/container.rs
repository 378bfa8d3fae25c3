//! Starting the container process: namespaces, overlay root, fresh /proc, loopback, or a
//! plain process in its own process group when isolation is off or impossible.

use crate::config::ShimConfig;
use crate::{IsolationReport, files, sys};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::fs::File;
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which isolation this run will try, decided from the config and the host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub mount_ns: bool,
    pub pid_ns: bool,
    pub uts_ns: bool,
    pub net_ns: bool,
    pub overlay: bool,
    pub fresh_proc: bool,
    pub reasons: Vec<String>,
}

impl Plan {
    pub(crate) fn none(reason: String) -> Plan {
        Plan {
            reasons: vec![reason],
            ..Plan::default()
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.mount_ns || self.pid_ns || self.uts_ns || self.net_ns
    }

    pub(crate) fn namespaces(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.uts_ns, "uts"),
            (self.net_ns, "net"),
            (self.pid_ns, "pid"),
            (self.mount_ns, "mnt"),
        ] {
            if on {
                v.push(name.to_string());
            }
        }
        v
    }
}

fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

/// Decides the isolation to attempt.
pub(crate) fn plan(cfg: &ShimConfig) -> Plan {
    let iso = &cfg.isolation;
    if !iso.enabled {
        return Plan::none("isolation disabled by configuration".into());
    }
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Plan::none(format!(
            "not running as root (uid {uid}): namespaces and mounts need CAP_SYS_ADMIN"
        ));
    }
    let mut p = Plan {
        mount_ns: iso.mount_namespace,
        pid_ns: iso.pid_namespace,
        uts_ns: iso.uts_namespace,
        net_ns: iso.network_namespace,
        overlay: iso.overlay_root && iso.mount_namespace,
        fresh_proc: iso.mount_namespace && iso.pid_namespace,
        reasons: Vec::new(),
    };
    if iso.overlay_root && !iso.mount_namespace {
        p.reasons
            .push("overlay root needs the mount namespace, which is disabled".into());
    }
    if p.overlay && !overlay_supported() {
        p.overlay = false;
        p.reasons
            .push("overlayfs is not supported by this kernel (/proc/filesystems)".into());
    }
    let dir = cfg.state_dir.to_string_lossy();
    if p.overlay && (dir.contains(',') || dir.contains(':')) {
        p.overlay = false;
        p.reasons.push(format!(
            "state dir {dir} contains ',' or ':', which overlayfs options cannot carry"
        ));
    }
    p
}

impl Plan {
    pub(crate) fn report(&self, cfg: &ShimConfig, loopback: bool, cgroup: bool) -> IsolationReport {
        let iso = &cfg.isolation;
        let complete = iso.enabled
            && self.mount_ns == iso.mount_namespace
            && self.pid_ns == iso.pid_namespace
            && self.uts_ns == iso.uts_namespace
            && self.net_ns == iso.network_namespace
            && self.overlay == (iso.overlay_root && iso.mount_namespace)
            && self.reasons.is_empty();
        IsolationReport {
            mode: if !self.any() {
                "none"
            } else if complete {
                "isolated"
            } else {
                "partial"
            }
            .into(),
            mount_namespace: self.mount_ns,
            pid_namespace: self.pid_ns,
            uts_namespace: self.uts_ns,
            network_namespace: self.net_ns,
            overlay_root: self.overlay,
            fresh_proc: self.fresh_proc,
            loopback_up: loopback,
            cgroup,
            reasons: self.reasons.clone(),
        }
    }
}

/// A started container process and the shim's side of its standard streams.
pub(crate) struct Started {
    pub pid: i32,
    pub io: ShimIo,
}

/// The shim's side of a container's standard streams.
pub(crate) enum ShimIo {
    /// Output pipes, and the write end of stdin when it is kept open (`stdin: true`).
    Pipes {
        stdout: File,
        stderr: File,
        stdin: Option<File>,
    },
    /// The master side of the container's pseudo-terminal (`tty: true`): its output (both
    /// streams) and its input.
    Terminal(File),
}

/// The container's side of its standard streams, for one start attempt.
enum ChildIo {
    /// Pipes; stdin is `/dev/null` unless it is kept open.
    Pipes {
        stdin: Option<PipeReader>,
        stdout: PipeWriter,
        stderr: PipeWriter,
    },
    /// The slave side of a pseudo-terminal: stdin, stdout, stderr and controlling terminal.
    Terminal(File),
}

/// Opens the streams of one start attempt as the configuration asks: a pseudo-terminal
/// (`tty`), else pipes (with a stdin pipe for `stdin`).
fn open_io(cfg: &ShimConfig) -> std::io::Result<(ShimIo, ChildIo)> {
    if cfg.tty {
        let (master, slave) = crate::tty::open_pty()?;
        return Ok((ShimIo::Terminal(master), ChildIo::Terminal(slave)));
    }
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let (stdin_r, stdin_w) = if cfg.stdin {
        let (r, w) = std::io::pipe()?;
        (Some(r), Some(File::from(std::os::fd::OwnedFd::from(w))))
    } else {
        (None, None)
    };
    let file = |r: PipeReader| File::from(std::os::fd::OwnedFd::from(r));
    Ok((
        ShimIo::Pipes {
            stdout: file(out_r),
            stderr: file(err_r),
            stdin: stdin_w,
        },
        ChildIo::Pipes {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

/// Why a start attempt failed.
pub(crate) enum StartFailure {
    /// A setup step (namespaces, mounts...) failed: isolation is not possible; the message
    /// says which step.
    Setup(String),
    /// The setup worked but the process could not be executed (not found, not executable,
    /// bad working dir...): falling back would not help.
    Exec(String),
}

/// Prepares the overlay dirs: a fresh (empty) upper and work dir for each run, since a
/// container restart gets a fresh writable layer, as on Kubernetes.
pub(crate) fn prepare_overlay_dirs(state_dir: &Path) -> std::io::Result<()> {
    for d in [files::UPPER, files::WORK] {
        let p = state_dir.join(d);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&p)?;
    }
    let hosts = state_dir.join(files::HOSTS);
    if hosts.is_file() {
        let etc = state_dir.join(files::UPPER).join("etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::copy(&hosts, etc.join("hosts"))?;
    }
    std::fs::create_dir_all(state_dir.join(files::ROOTFS))
}

struct MountSetup {
    rootfs: PathBuf,
    overlay_opts: Option<String>,
    fresh_proc: bool,
    masks: Vec<PathBuf>,
}

/// Runs in the forked child (the single-threaded shim's child), before exec.
struct ChildSetup {
    /// The pod's pinned network namespace, joined before anything is unshared.
    join_net: Option<File>,
    unshare: CloneFlags,
    hostname: Option<String>,
    loopback: bool,
    mounts: Option<MountSetup>,
    workdir: PathBuf,
    cgroup_procs: Option<File>,
    diag: Option<std::io::PipeWriter>,
    /// Stdin is a terminal to become the controlling terminal of a new session.
    terminal: bool,
}

impl ChildSetup {
    fn fail(&mut self, step: &str, e: impl Into<std::io::Error>) -> std::io::Error {
        let e: std::io::Error = e.into();
        if let Some(d) = &mut self.diag {
            let _ = write!(d, "{step}: {e}");
        }
        e
    }

    fn run(&mut self) -> std::io::Result<()> {
        if self.terminal
            && let Err(e) = crate::tty::take_controlling_terminal()
        {
            return Err(self.fail("take the terminal", e));
        }
        if let Some(f) = &mut self.cgroup_procs {
            // "0" moves the writing process itself, whatever its PID namespace.
            if let Err(e) = f.write_all(b"0") {
                return Err(self.fail("join cgroup", e));
            }
        }
        if let Some(ns) = self.join_net.take()
            && let Err(e) = nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
        {
            return Err(self.fail("join the pod's network namespace", e));
        }
        if !self.unshare.is_empty()
            && let Err(e) = unshare(self.unshare)
        {
            return Err(self.fail("unshare namespaces", e));
        }
        if let Some(h) = self.hostname.take()
            && let Err(e) = nix::unistd::sethostname(&h)
        {
            return Err(self.fail("set hostname", e));
        }
        if self.loopback
            && let Err(e) = slipway_netns::loopback_up()
        {
            return Err(self.fail("bring up lo", e));
        }
        if let Some(m) = self.mounts.take()
            && let Err((step, e)) = setup_mounts(&m)
        {
            return Err(self.fail(&step, e));
        }
        // The shim blocks the signals it reads through a signalfd; the container starts
        // with none blocked.
        if let Err(e) = nix::sys::signal::SigSet::empty().thread_set_mask() {
            return Err(self.fail("reset the signal mask", e));
        }
        // Not a setup failure: a missing working dir is the container's own error.
        self.diag = None;
        nix::unistd::chdir(&self.workdir).map_err(std::io::Error::from)
    }
}

fn step(what: &str) -> impl FnOnce(nix::Error) -> (String, nix::Error) + '_ {
    move |e| (what.to_string(), e)
}

fn setup_mounts(m: &MountSetup) -> Result<(), (String, nix::Error)> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(step("make the mount tree private"))?;
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let Some(opts) = &m.overlay_opts else {
        if m.fresh_proc {
            mount(Some("proc"), "/proc", Some("proc"), quiet, none)
                .map_err(step("mount a fresh /proc"))?;
        }
        return Ok(());
    };
    let root = &m.rootfs;
    mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(step("mount the overlay root"))?;
    mount(
        Some("/dev"),
        &root.join("dev"),
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(step("bind /dev"))?;
    if root.join("dev/shm").is_dir() {
        mount(
            Some("shm"),
            &root.join("dev/shm"),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        )
        .map_err(step("mount /dev/shm"))?;
    }
    if m.fresh_proc {
        mount(Some("proc"), &root.join("proc"), Some("proc"), quiet, none)
            .map_err(step("mount a fresh /proc"))?;
    } else {
        mount(
            Some("/proc"),
            &root.join("proc"),
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(step("bind /proc"))?;
    }
    if mount(
        Some("sysfs"),
        &root.join("sys"),
        Some("sysfs"),
        quiet | MsFlags::MS_RDONLY,
        none,
    )
    .is_err()
    {
        mount(
            Some("/sys"),
            &root.join("sys"),
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(step("bind /sys"))?;
    }
    for mask in &m.masks {
        let rel = mask.strip_prefix("/").unwrap_or(mask);
        let target = root.join(rel);
        if target.is_dir() {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                quiet | MsFlags::MS_RDONLY,
                Some("size=4k,mode=755"),
            )
            .map_err(step(&format!("mask {}", mask.display())))?;
        }
    }
    // pivot_root(".", "."): the old root ends up stacked on the new one, then is detached.
    nix::unistd::chdir(root).map_err(step("chdir to the new root"))?;
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detach the old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir /"))?;
    Ok(())
}

fn base_command(cfg: &ShimConfig, io: ChildIo) -> std::io::Result<Command> {
    let mut cmd = Command::new(&cfg.argv[0]);
    cmd.args(&cfg.argv[1..])
        .env_clear()
        .envs(cfg.container_env());
    match io {
        ChildIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from))
                .stdout(stdout)
                .stderr(stderr);
        }
        ChildIo::Terminal(slave) => {
            cmd.stdin(slave.try_clone()?)
                .stdout(slave.try_clone()?)
                .stderr(slave);
        }
    }
    Ok(cmd)
}

fn open_cgroup_procs(cgroup_procs: Option<&Path>) -> std::io::Result<Option<File>> {
    cgroup_procs
        .map(|p| std::fs::OpenOptions::new().write(true).open(p))
        .transpose()
}

/// Starts the container with the isolation of `plan`. Must run in the single-threaded shim,
/// which must be a child subreaper.
///
/// The PID namespace is unshared by a short-lived helper child of the shim, not by the shim:
/// the helper spawns the container (PID 1 of the new namespace) and exits at once, so the
/// container is re-parented to the shim (the subreaper), which reaps it. The shim's own
/// namespace for new children never changes, so a fallback attempt after a failed setup
/// still works (a namespace whose init died accepts no new process).
pub(crate) fn start_isolated(
    cfg: &ShimConfig,
    plan: &Plan,
    cgroup_procs: Option<&Path>,
) -> Result<Started, StartFailure> {
    let setup_err = |what: &str, e: std::io::Error| StartFailure::Setup(format!("{what}: {e}"));
    let (shim_io, child_io) = open_io(cfg).map_err(|e| setup_err("open stdio", e))?;
    let (mut res_r, mut res_w) = std::io::pipe().map_err(|e| setup_err("pipe", e))?;
    match sys::fork_process().map_err(|e| setup_err("fork", e))? {
        sys::Forked::Child => {
            drop((shim_io, res_r));
            let msg = match spawn_isolated(cfg, plan, cgroup_procs, child_io) {
                Ok(pid) => format!("ok {pid}"),
                Err(StartFailure::Setup(m)) => format!("setup {m}"),
                Err(StartFailure::Exec(m)) => format!("exec {m}"),
            };
            let _ = res_w.write_all(msg.as_bytes());
            drop(res_w);
            sys::exit_now(0)
        }
        sys::Forked::Parent { child } => {
            drop((child_io, res_w));
            let mut msg = String::new();
            let _ = res_r.read_to_string(&mut msg);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            if let Some(pid) = msg.strip_prefix("ok ").and_then(|p| p.parse::<i32>().ok()) {
                Ok(Started { pid, io: shim_io })
            } else if let Some(m) = msg.strip_prefix("exec ") {
                Err(StartFailure::Exec(m.to_string()))
            } else if let Some(m) = msg.strip_prefix("setup ") {
                Err(StartFailure::Setup(m.to_string()))
            } else {
                Err(StartFailure::Setup(format!(
                    "the start helper ended without a report ({msg:?})"
                )))
            }
        }
    }
}

/// In the helper child: unshares the PID namespace and spawns the container; returns its
/// host PID.
fn spawn_isolated(
    cfg: &ShimConfig,
    plan: &Plan,
    cgroup_procs: Option<&Path>,
    io: ChildIo,
) -> Result<i32, StartFailure> {
    let setup_err = |what: &str, e: std::io::Error| StartFailure::Setup(format!("{what}: {e}"));
    let terminal = matches!(io, ChildIo::Terminal(_));
    let mut cmd = base_command(cfg, io).map_err(|e| setup_err("stdio", e))?;
    let (mut diag_r, diag_w) = std::io::pipe().map_err(|e| setup_err("pipe", e))?;
    // The pod's namespace when the agent pinned one, else a namespace of this run alone.
    let join_net = match &cfg.isolation.network_namespace_file {
        Some(path) if plan.net_ns => Some(File::open(path).map_err(|e| {
            setup_err(
                &format!("open the pod's network namespace {}", path.display()),
                e,
            )
        })?),
        _ => None,
    };
    let mut flags = CloneFlags::empty();
    flags.set(CloneFlags::CLONE_NEWNS, plan.mount_ns);
    flags.set(CloneFlags::CLONE_NEWUTS, plan.uts_ns);
    flags.set(CloneFlags::CLONE_NEWNET, plan.net_ns && join_net.is_none());
    let mounts = plan.mount_ns.then(|| {
        let mut masks = cfg.isolation.mask_paths.clone();
        masks.push(cfg.state_dir.clone());
        let dir = &cfg.state_dir;
        MountSetup {
            rootfs: dir.join(files::ROOTFS),
            overlay_opts: plan.overlay.then(|| {
                format!(
                    "lowerdir=/,upperdir={},workdir={}",
                    dir.join(files::UPPER).display(),
                    dir.join(files::WORK).display()
                )
            }),
            fresh_proc: plan.fresh_proc,
            masks,
        }
    });
    let mut setup = ChildSetup {
        loopback: plan.net_ns && join_net.is_none(),
        join_net,
        unshare: flags,
        hostname: plan.uts_ns.then(|| cfg.effective_hostname().to_string()),
        mounts,
        workdir: cfg.effective_working_dir(),
        cgroup_procs: open_cgroup_procs(cgroup_procs).map_err(|e| setup_err("cgroup", e))?,
        diag: Some(diag_w),
        terminal,
    };
    sys::set_pre_exec(&mut cmd, move || setup.run());
    if plan.pid_ns {
        // The next child of this helper, the container, is PID 1 of a new namespace.
        unshare(CloneFlags::CLONE_NEWPID)
            .map_err(|e| setup_err("unshare the PID namespace", e.into()))?;
    }
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipes' write ends and of the diag pipe
    match spawned {
        Ok(child) => Ok(child.id() as i32),
        Err(e) => {
            let mut msg = String::new();
            let _ = diag_r.read_to_string(&mut msg);
            if msg.is_empty() {
                Err(StartFailure::Exec(format!(
                    "cannot run {:?}: {e}",
                    cfg.argv[0]
                )))
            } else {
                Err(StartFailure::Setup(msg))
            }
        }
    }
}

/// Starts the container as a plain process leading its own process group.
pub(crate) fn start_plain(
    cfg: &ShimConfig,
    cgroup_procs: Option<&Path>,
) -> Result<Started, StartFailure> {
    let (shim_io, child_io) =
        open_io(cfg).map_err(|e| StartFailure::Exec(format!("stdio: {e}")))?;
    let terminal = matches!(child_io, ChildIo::Terminal(_));
    let mut cmd =
        base_command(cfg, child_io).map_err(|e| StartFailure::Exec(format!("stdio: {e}")))?;
    cmd.current_dir(cfg.effective_working_dir());
    if !terminal {
        // On a terminal the container leads a new session (and so its own group) instead.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut cgroup =
        open_cgroup_procs(cgroup_procs).map_err(|e| StartFailure::Exec(format!("cgroup: {e}")))?;
    sys::set_pre_exec(&mut cmd, move || {
        if terminal {
            crate::tty::take_controlling_terminal()?;
        }
        if let Some(f) = &mut cgroup {
            f.write_all(b"0")?;
        }
        // The shim blocks the signals it reads through a signalfd; unblock them.
        nix::sys::signal::SigSet::empty()
            .thread_set_mask()
            .map_err(std::io::Error::from)
    });
    let spawned = cmd.spawn();
    drop(cmd);
    match spawned {
        Ok(child) => Ok(Started {
            pid: child.id() as i32,
            io: shim_io,
        }),
        Err(e) => Err(StartFailure::Exec(format!(
            "cannot run {:?} in {}: {e}",
            cfg.argv[0],
            cfg.effective_working_dir().display()
        ))),
    }
}
