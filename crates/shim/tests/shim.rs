//! End-to-end tests of the shim: real shim processes (the `slipway-shim-test` binary), real
//! namespaces and overlays (as root), real signals. Every test cleans up the processes it
//! started (by PID, through guards) and its temp dirs, even when it fails.

use slipway_shim::{
    EnvVar, ExitRecord, IsolationConfig, ShimConfig, ShimState, exec_in, launch, read_exit,
    read_isolation, read_state, stop,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_slipway-shim-test");

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Polls `cond` until it returns Some or the deadline passes (then panics with `what`).
fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            !after.starts_with('Z') && !after.starts_with('X')
        }
        Err(_) => false,
    }
}

/// PIDs of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// One container run under a shim, stopped (and its temp dir removed) on drop.
struct Pod {
    _dir: tempfile::TempDir,
    state_dir: PathBuf,
    state: Option<ShimState>,
}

fn config(name: &str, argv: &[&str], dir: &Path) -> ShimConfig {
    let mut c = ShimConfig::new(
        name,
        argv.iter().map(|s| s.to_string()).collect(),
        dir.join("state"),
    );
    c.pod_uid = format!("uid-{name}");
    c.container_name = "main".into();
    c
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("slipway-shim-test-")
        .tempdir()
        .unwrap()
}

fn shim_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("shim");
    cmd
}

impl Pod {
    fn start(name: &str, argv: &[&str]) -> Pod {
        Pod::start_with(name, argv, |_| {})
    }

    fn start_with(name: &str, argv: &[&str], tweak: impl FnOnce(&mut ShimConfig)) -> Pod {
        let dir = tempdir();
        let mut cfg = config(name, argv, dir.path());
        tweak(&mut cfg);
        let state_dir = cfg.state_dir.clone();
        let mut pod = Pod {
            _dir: dir,
            state_dir,
            state: None,
        };
        let state = launch(shim_command(), &cfg).expect("launch the shim");
        pod.state = Some(state);
        pod
    }

    fn state(&self) -> &ShimState {
        self.state.as_ref().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("container.log")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) -> String {
        wait_for(
            &format!("{needle:?} in the log"),
            Duration::from_secs(20),
            || {
                let log = self.log();
                log.contains(needle).then_some(log)
            },
        )
    }

    fn wait_exit(&self) -> ExitRecord {
        wait_for("exit.json", Duration::from_secs(20), || {
            read_exit(&self.state_dir)
        })
    }

    /// Runs a command in the container and returns (exit code, stdout).
    fn exec(&self, argv: &[&str]) -> (i32, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let child = exec_in(
            &self.state_dir,
            &argv,
            &[EnvVar::new("EXTRA", "1")],
            Stdio::null(),
            Stdio::piped(),
            Stdio::null(),
        )
        .expect("exec_in");
        let out = ChildGuard(Some(child)).wait_output();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if read_exit(&self.state_dir).is_none() && self.state.is_some() {
            let _ = stop(&self.state_dir, Duration::from_millis(100));
        }
        if let Some(st) = &self.state {
            // The shim exits right after writing exit.json; make sure it is gone.
            let shim = st.shim_pid;
            if alive(shim) && read_exit(&self.state_dir).is_none() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(shim),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Kills and reaps a child process on drop.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn wait_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("{test}: skipped, needs root for namespaces and mounts");
        return true;
    }
    false
}

#[test]
fn overlay_hostname_pid_and_exec_are_per_pod() {
    if skip_unless_root("overlay") {
        return;
    }
    let a = Pod::start(
        "pod-a",
        &[
            "/bin/sh",
            "-c",
            "touch /random-generator-ready && echo ready pid=$$ host=$(cat /proc/sys/kernel/hostname) && exec sleep 1000",
        ],
    );
    let b = Pod::start("pod-b", &["/bin/sh", "-c", "echo ready; exec sleep 1000"]);
    let log = a.wait_log("ready");
    b.wait_log("ready");

    let iso = read_isolation(&a.state_dir).unwrap();
    assert_eq!(iso.mode, "isolated", "{iso:?}");
    assert!(iso.overlay_root && iso.fresh_proc && iso.loopback_up);
    assert!(a.state().pid_namespace);

    // PID 1 of its namespace, hostname = pod name.
    assert!(log.contains("ready pid=1 host=pod-a"), "{log}");
    assert_eq!(
        a.exec(&["cat", "/proc/sys/kernel/hostname"]),
        (0, "pod-a".into())
    );
    assert_eq!(
        b.exec(&["cat", "/proc/sys/kernel/hostname"]),
        (0, "pod-b".into())
    );

    // The file is in pod A's writable layer only.
    assert!(
        !Path::new("/random-generator-ready").exists(),
        "leaked to the host"
    );
    assert!(a.state_dir.join("upper/random-generator-ready").exists());
    assert_eq!(a.exec(&["stat", "/random-generator-ready"]).0, 0);
    assert_ne!(b.exec(&["stat", "/random-generator-ready"]).0, 0);

    // exec sees the container's PID namespace and environment.
    let (code, out) = a.exec(&[
        "/bin/sh",
        "-c",
        "echo $HOSTNAME $EXTRA; cat /proc/1/cmdline",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("pod-a 1\nsleep"), "{out:?}");
    // The exit code of the exec'd command comes back.
    assert_eq!(a.exec(&["/bin/sh", "-c", "exit 42"]).0, 42);

    // The state dir is hidden inside the container.
    let inside = format!("{}/state.json", a.state_dir.display());
    assert_ne!(a.exec(&["stat", &inside]).0, 0);
}

#[test]
fn two_pods_listen_on_the_same_port() {
    if skip_unless_root("listen") {
        return;
    }
    let a = Pod::start("listen-a", &[BIN, "listen", "8080"]);
    let b = Pod::start("listen-b", &[BIN, "listen", "8080"]);
    a.wait_log("listening");
    b.wait_log("listening");
    assert_eq!(a.exec(&[BIN, "connect", "8080"]), (0, "listen-a".into()));
    assert_eq!(b.exec(&[BIN, "connect", "8080"]), (0, "listen-b".into()));
    assert!(read_exit(&a.state_dir).is_none() && read_exit(&b.state_dir).is_none());
}

fn parse_cri(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap();
            chrono::DateTime::parse_from_rfc3339(ts)
                .unwrap_or_else(|e| panic!("bad timestamp {ts:?}: {e}"));
            let stream = it.next().unwrap().to_string();
            let tag = it.next().unwrap().to_string();
            assert!(stream == "stdout" || stream == "stderr", "{l}");
            assert!(tag == "F" || tag == "P", "{l}");
            (stream, tag, it.next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn logs_are_in_cri_format() {
    let pod = Pod::start(
        "logs",
        &[
            "/bin/sh",
            "-c",
            "echo out-line; echo err-line >&2; printf no-newline",
        ],
    );
    pod.wait_exit();
    let mut records = parse_cri(&pod.log());
    records.sort();
    assert_eq!(
        records,
        vec![
            ("stderr".into(), "F".into(), "err-line".into()),
            ("stdout".into(), "F".into(), "no-newline".into()),
            ("stdout".into(), "F".into(), "out-line".into()),
        ]
    );
}

#[test]
fn logs_rotate_keeping_one_file() {
    let pod = Pod::start_with(
        "rotate",
        &[
            "/bin/sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
        ],
        |c| c.log_max_bytes = 1000,
    );
    pod.wait_exit();
    let cur = std::fs::metadata(pod.state_dir.join("container.log"))
        .unwrap()
        .len();
    let old = std::fs::metadata(pod.state_dir.join("container.log.1"))
        .unwrap()
        .len();
    assert!(cur <= 1000 && old <= 1000, "sizes {cur} {old}");
    assert!(!pod.state_dir.join("container.log.2").exists());
    let records = parse_cri(&pod.log());
    assert_eq!(records.last().unwrap().2, "line-199");
}

#[test]
fn exit_code_is_recorded() {
    let pod = Pod::start("exit3", &["/bin/sh", "-c", "exit 3"]);
    let exit = pod.wait_exit();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert_eq!(exit.reason, "Error");
    assert!(!exit.oom_killed);
    let started = chrono::DateTime::parse_from_rfc3339(&exit.started_at).unwrap();
    let finished = chrono::DateTime::parse_from_rfc3339(&exit.finished_at).unwrap();
    assert!(started <= finished);
    // One shim per run: it exits after recording.
    let shim = pod.state().shim_pid;
    wait_for("the shim to exit", Duration::from_secs(10), || {
        (!alive(shim)).then_some(())
    });

    let ok = Pod::start("exit0", &["/bin/sh", "-c", "exit 0"]);
    assert_eq!(ok.wait_exit().reason, "Completed");
}

#[test]
fn sigterm_is_forwarded_to_the_container() {
    let pod = Pod::start(
        "term",
        &[
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; sleep 1000 & wait",
        ],
    );
    pod.wait_log("ready");
    let exit = stop(&pod.state_dir, Duration::from_secs(60)).unwrap();
    assert_eq!((exit.exit_code, exit.signal), (7, None), "{exit:?}");
    assert!(pod.log().contains("got-term"));
}

#[test]
fn container_ignoring_sigterm_is_killed_at_the_grace_period() {
    let pod = Pod::start(
        "ignore-term",
        &[
            "/bin/sh",
            "-c",
            "trap '' TERM; echo ready; sleep 876100 & wait; sleep 876101",
        ],
    );
    pod.wait_log("ready");
    let grace = Duration::from_millis(300);
    let t0 = Instant::now();
    let exit = stop(&pod.state_dir, grace).unwrap();
    assert!(t0.elapsed() >= grace, "stopped before the grace period");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert_eq!(exit.exit_code, 137);
    assert_eq!(processes_with("876100"), Vec::<i32>::new());
    assert_eq!(processes_with("876101"), Vec::<i32>::new());
}

#[test]
fn background_child_is_not_left_behind() {
    if skip_unless_root("background") {
        return;
    }
    let pod = Pod::start("bg", &["/bin/sh", "-c", "sleep 876200 & echo bg; exit 0"]);
    assert_eq!(pod.wait_exit().exit_code, 0);
    assert_eq!(processes_with("876200"), Vec::<i32>::new());
}

#[test]
fn background_child_is_not_left_behind_without_isolation() {
    let pod = Pod::start_with(
        "bg-plain",
        &[
            "/bin/sh",
            "-c",
            "sleep 876300 & setsid sleep 876301 & echo bg; exit 0",
        ],
        |c| c.isolation = IsolationConfig::disabled(),
    );
    assert_eq!(pod.wait_exit().exit_code, 0);
    assert_eq!(processes_with("876300"), Vec::<i32>::new());
    assert_eq!(processes_with("876301"), Vec::<i32>::new());
}

#[test]
fn shim_and_container_survive_the_death_of_their_spawner() {
    let dir = tempdir();
    let cfg = config(
        "survivor",
        &["/bin/sh", "-c", "echo ready; exec sleep 876400"],
        dir.path(),
    );
    let cfg_path = dir.path().join("spawn.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    // The pod guard stops the run whatever happens below.
    let pod = Pod {
        _dir: dir,
        state_dir: cfg.state_dir.clone(),
        state: None,
    };
    let mut spawner = ChildGuard(Some(
        Command::new(BIN)
            .arg("spawn")
            .arg(&cfg_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let child = spawner.0.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let state = read_state(&pod.state_dir);
    let mut pod = pod;
    pod.state = state;
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"launched"), "{line:?}");
    let shim: i32 = words[1].parse().unwrap();
    let container: i32 = words[2].parse().unwrap();

    let spawner_pid = child.id() as i32;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!alive(spawner_pid));

    assert!(alive(shim), "the shim died with its spawner");
    assert!(alive(container), "the container died with its spawner");
    assert_eq!(pod.exec(&["stat", "/"]).0, 0);
    // The shim is in its own session, not the test's.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(shim))).unwrap();
    assert_eq!(sid.as_raw(), shim);
    assert!(read_exit(&pod.state_dir).is_none());

    let exit = stop(&pod.state_dir, Duration::from_millis(200)).unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(processes_with("876400"), Vec::<i32>::new());
}

#[test]
fn fallback_mode_runs_a_plain_process() {
    let pod = Pod::start_with(
        "plain",
        &[
            "/bin/sh",
            "-c",
            "touch $PWD/plain-file && echo ready host=$(cat /proc/sys/kernel/hostname) pid=$$; exec sleep 876500",
        ],
        |c| {
            c.isolation = IsolationConfig::disabled();
            c.working_dir = Some(c.state_dir.clone());
        },
    );
    let log = pod.wait_log("ready");
    let iso = read_isolation(&pod.state_dir).unwrap();
    assert_eq!(iso.mode, "none");
    assert!(
        iso.reasons.iter().any(|r| r.contains("disabled")),
        "{iso:?}"
    );
    let st = pod.state();
    assert!(!st.pid_namespace && st.namespaces.is_empty());
    assert_eq!(st.process_group, Some(st.container_pid));
    assert!(log.contains(&format!("pid={}", st.container_pid)), "{log}");
    // The plain process writes to the host filesystem, in its working dir.
    assert!(pod.state_dir.join("plain-file").exists());
    assert_eq!(pod.exec(&["stat", "plain-file"]).0, 0);

    let exit = stop(&pod.state_dir, Duration::from_millis(200)).unwrap();
    assert_eq!(
        exit.signal,
        Some(15),
        "sleep dies of the forwarded SIGTERM: {exit:?}"
    );
    assert_eq!(processes_with("876500"), Vec::<i32>::new());
}

#[test]
fn start_error_is_recorded() {
    let dir = tempdir();
    let cfg = config(
        "missing",
        &["/nonexistent/slipway-no-such-binary"],
        dir.path(),
    );
    let err = launch(shim_command(), &cfg).unwrap_err();
    assert!(err.to_string().contains("slipway-no-such-binary"), "{err}");
    let exit = read_exit(&cfg.state_dir).expect("exit.json");
    assert_eq!(exit.reason, "StartError");
    // A bad binary is not an isolation failure: no fallback was recorded.
    if is_root() {
        assert_eq!(read_isolation(&cfg.state_dir).unwrap().mode, "isolated");
    }
}

#[test]
fn stop_after_the_shim_was_killed_still_ends_the_run() {
    let pod = Pod::start(
        "orphan",
        &["/bin/sh", "-c", "echo ready; exec sleep 876600"],
    );
    pod.wait_log("ready");
    let st = pod.state().clone();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(st.shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the shim to die", Duration::from_secs(10), || {
        (!alive(st.shim_pid)).then_some(())
    });
    let exit = stop(&pod.state_dir, Duration::from_millis(200)).unwrap();
    assert_eq!(exit.reason, "Unknown");
    wait_for("the container to die", Duration::from_secs(10), || {
        processes_with("876600").is_empty().then_some(())
    });
}

#[test]
fn resource_limits_are_applied_or_reported_unavailable() {
    let pod = Pod::start_with("limits", &["/bin/sh", "-c", "echo ready; exit 0"], |c| {
        c.resources.memory_bytes = Some(64 * 1024 * 1024);
        c.resources.cpu_millis = Some(500);
    });
    let exit = pod.wait_exit();
    assert_eq!(exit.exit_code, 0);
    let iso = read_isolation(&pod.state_dir).unwrap();
    match slipway_shim::cgroup_v2_availability() {
        Ok(()) => assert!(iso.cgroup, "{iso:?}"),
        Err(reason) => {
            assert!(!iso.cgroup);
            assert!(iso.reasons.contains(&reason), "{iso:?}");
            assert_ne!(iso.mode, "isolated");
        }
    }
}

/// Inside a user namespace the kernel may refuse parts of the isolation (here: an overlay
/// of `/`); the shim then falls back step by step, says why, and still runs the container.
#[test]
fn isolation_failure_falls_back_and_says_why() {
    if skip_unless_root("userns fallback") || !Path::new("/usr/bin/unshare").exists() {
        return;
    }
    let dir = tempdir();
    let cfg = config("userns", &["/bin/sh", "-c", "echo ran; exit 5"], dir.path());
    let mut pod = Pod {
        _dir: dir,
        state_dir: cfg.state_dir.clone(),
        state: None,
    };
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.args(["--user", "--map-root-user", BIN, "shim"]);
    pod.state = Some(launch(cmd, &cfg).expect("launch in a user namespace"));
    let exit = pod.wait_exit();
    assert_eq!(exit.exit_code, 5);
    assert!(pod.log().contains("stdout F ran"));
    let iso = read_isolation(&pod.state_dir).unwrap();
    if iso.mode != "isolated" {
        assert!(!iso.reasons.is_empty(), "{iso:?}");
        if !iso.overlay_root {
            assert!(iso.reasons.iter().any(|r| r.contains("overlay")), "{iso:?}");
        }
    }
    eprintln!("isolation in a user namespace: {iso:?}");
}

/// Connects to a run's attach socket (it exists once the container has started).
fn attach_socket(pod: &Pod) -> std::os::unix::net::UnixStream {
    let path = pod.state_dir.join(slipway_shim::files::ATTACH);
    let stream = wait_for("the attach socket", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&path).ok()
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// `stdin: true`: what an attach session sends reaches the container's stdin, which stays
/// open after the session ends; with `stdinOnce` the end of the first session that used it
/// is the container's end of file. Both with and without isolation.
#[test]
fn attach_sessions_write_to_a_kept_open_stdin() {
    use slipway_shim::attach::{CLOSE_STDIN, STDIN, encode_frame};
    use std::io::Write;
    let script = "while read line; do echo \"got $line\"; done; echo stdin-ended";
    for isolated in [is_root(), false] {
        let pod = Pod::start_with("stdin", &["/bin/sh", "-c", script], |c| {
            c.stdin = true;
            if !isolated {
                c.isolation = IsolationConfig::disabled();
            }
        });
        let mut first = attach_socket(&pod);
        first.write_all(&encode_frame(STDIN, b"one\n")).unwrap();
        pod.wait_log("got one");
        // Without stdinOnce, the end of a session leaves stdin open for the next.
        first.write_all(&encode_frame(CLOSE_STDIN, b"")).unwrap();
        drop(first);
        let mut second = attach_socket(&pod);
        second.write_all(&encode_frame(STDIN, b"two\n")).unwrap();
        pod.wait_log("got two");
        assert!(!pod.log().contains("stdin-ended"), "{}", pod.log());
        drop(second);
        let _ = stop(&pod.state_dir, Duration::from_millis(200));
    }

    let pod = Pod::start_with("stdin-once", &["/bin/sh", "-c", script], |c| {
        c.stdin = true;
        c.stdin_once = true;
    });
    let mut session = attach_socket(&pod);
    session.write_all(&encode_frame(STDIN, b"only\n")).unwrap();
    drop(session);
    pod.wait_log("stdin-ended");
    assert!(pod.log().contains("got only"), "{}", pod.log());
    assert_eq!(pod.wait_exit().exit_code, 0);
    assert!(
        !pod.state_dir.join(slipway_shim::files::ATTACH).exists(),
        "the socket goes with the container"
    );
}

/// `tty: true`: the container runs on a terminal (its controlling terminal, of the size a
/// session sets); a session gets its output raw and types into it; the log has it as stdout.
#[test]
fn a_terminal_container_is_attached_raw() {
    use slipway_shim::attach::{RESIZE, STDIN, encode_frame};
    use std::io::{Read, Write};
    let script = "test -t 0 && echo on-a-tty; read size; echo \"size=$(stty size)\"; read x";
    let pod = Pod::start_with("tty", &["/bin/sh", "-c", script], |c| {
        c.stdin = true;
        c.tty = true;
    });
    let mut session = attach_socket(&pod);
    let mut resize = vec![];
    resize.extend_from_slice(&100u16.to_le_bytes());
    resize.extend_from_slice(&30u16.to_le_bytes());
    session.write_all(&encode_frame(RESIZE, &resize)).unwrap();
    session.write_all(&encode_frame(STDIN, b"go\r")).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("size=30 100") {
        let n = session.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "the session ended before the output; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The terminal echoes the input, and turns the output's \n into \r\n.
    assert!(seen.contains("go\r\n"), "{seen:?}");
    assert!(seen.contains("size=30 100\r\n"), "{seen:?}");
    let log = pod.wait_log("size=30 100");
    assert!(log.contains(" stdout F on-a-tty"), "{log}");
    session.write_all(&encode_frame(STDIN, b"end\r")).unwrap();
    assert_eq!(pod.wait_exit().exit_code, 0);
}
