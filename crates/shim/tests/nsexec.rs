//! `exec_in` through the exec helper (`slipway-shim-test nsexec`, what `slipway nsexec` is
//! to `slipway serve`), and the exec server (`slipway-shim-test zygote`). The helper is set for the whole test process, so these tests live in
//! their own test binary; `tests/shim.rs` covers the in-process path. Every test stops the
//! processes it started (by PID, through guards) and removes its temp dirs.

use slipway_shim::{
    EnvVar, IsolationConfig, ShimConfig, ShimError, ZYGOTE_SUBCOMMAND, ZygoteReply, ZygoteRequest,
    encode_frame, exec_in, launch, read_exit, read_state, set_exec_helper, stop, take_frame,
    zygote_args,
};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_slipway-shim-test");

fn use_helper() {
    set_exec_helper(Some(PathBuf::from(BIN)));
}

fn skip_unless_root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("{test}: skipped, needs root for namespaces and mounts");
        return true;
    }
    false
}

fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
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

fn cmdline(pid: i32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmd).replace('\0', " ")
}

/// PIDs of live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cmdline(*pid).contains(marker) && alive(*pid))
        .collect()
}

/// One container run under a shim, stopped (and its temp dir removed) on drop.
struct Pod {
    _dir: tempfile::TempDir,
    state_dir: PathBuf,
}

impl Pod {
    fn start(name: &str, argv: &[&str], tweak: impl FnOnce(&mut ShimConfig)) -> Pod {
        let dir = tempfile::Builder::new()
            .prefix("slipway-nsexec-test-")
            .tempdir()
            .unwrap();
        let mut cfg = ShimConfig::new(
            name,
            argv.iter().map(|s| s.to_string()).collect(),
            dir.path().join("state"),
        );
        cfg.pod_uid = format!("uid-{name}");
        cfg.container_name = "main".into();
        cfg.env.push(EnvVar::new("FROM_SPEC", "spec"));
        tweak(&mut cfg);
        let state_dir = cfg.state_dir.clone();
        let pod = Pod {
            _dir: dir,
            state_dir,
        };
        let mut shim = Command::new(BIN);
        shim.arg("shim");
        launch(shim, &cfg).expect("launch the shim");
        pod
    }

    fn spawn(&self, argv: &[&str], stdin: Stdio) -> Result<ChildGuard, ShimError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        exec_in(
            &self.state_dir,
            &argv,
            &[EnvVar::new("EXTRA", "1")],
            stdin,
            Stdio::piped(),
            Stdio::null(),
        )
        .map(|c| ChildGuard(Some(c)))
    }

    /// Runs a command in the container and returns (exit code, stdout).
    fn exec(&self, argv: &[&str]) -> (i32, String) {
        let out = self
            .spawn(argv, Stdio::null())
            .expect("exec_in")
            .wait_output();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if read_exit(&self.state_dir).is_none() {
            let _ = stop(&self.state_dir, Duration::from_millis(100));
        }
        if let Some(st) = read_state(&self.state_dir)
            && alive(st.shim_pid)
            && read_exit(&self.state_dir).is_none()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(st.shim_pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Kills and reaps a child process on drop.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

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

#[test]
fn exec_through_the_helper_enters_the_container() {
    if skip_unless_root("nsexec") {
        return;
    }
    use_helper();
    let pod = Pod::start(
        "helped",
        &["/bin/sh", "-c", "echo ready; exec sleep 876700"],
        |c| c.working_dir = Some("/etc".into()),
    );
    wait_for("the container", Duration::from_secs(20), || {
        read_state(&pod.state_dir)
    });

    // The returned child is the helper, and stdin/stdout are the command's.
    let mut cat = pod.spawn(&["cat"], Stdio::piped()).expect("exec_in cat");
    let helper = cat.child().id() as i32;
    assert!(
        cmdline(helper).starts_with(&format!("{BIN} nsexec ")),
        "{:?}",
        cmdline(helper)
    );
    let mut stdin = cat.child().stdin.take().unwrap();
    stdin.write_all(b"through the helper").unwrap();
    drop(stdin);
    let out = cat.wait_output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through the helper");

    // Hostname, PID namespace, working dir, environment.
    let (code, out) = pod.exec(&[
        "/bin/sh",
        "-c",
        "echo $(cat /proc/sys/kernel/hostname) $HOSTNAME $EXTRA $FROM_SPEC $(pwd); cat /proc/1/cmdline",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("helped helped 1 spec /etc\nsleep"),
        "{out:?}"
    );
    // The root is the container's: the state dir is hidden there.
    let inside = format!("{}/state.json", pod.state_dir.display());
    assert!(pod.state_dir.join("state.json").exists());
    assert_ne!(pod.exec(&["stat", &inside]).0, 0);

    // Exit codes come back, 128 + signal for a signal.
    assert_eq!(pod.exec(&["/bin/sh", "-c", "exit 42"]).0, 42);
    assert_eq!(pod.exec(&["/bin/sh", "-c", "kill -9 $$"]).0, 137);

    // A command that cannot be executed is an error of exec_in, as without the helper.
    match pod.spawn(&["/no/such/command"], Stdio::null()) {
        Err(ShimError::Io { context, source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{context}");
            assert!(context.contains("/no/such/command"), "{context}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("exec of a missing command succeeded"),
    }
}

#[test]
fn killing_the_helper_ends_the_command() {
    if skip_unless_root("nsexec kill") {
        return;
    }
    use_helper();
    let pod = Pod::start("killed", &["/bin/sh", "-c", "exec sleep 876800"], |_| {});
    wait_for("the container", Duration::from_secs(20), || {
        read_state(&pod.state_dir)
    });
    let mut child = pod
        .spawn(
            &["/bin/sh", "-c", "echo started; exec sleep 876801"],
            Stdio::null(),
        )
        .expect("exec_in");
    let mut first = [0u8; 8];
    child
        .child()
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"started\n");
    let command = wait_for("the exec'd command", Duration::from_secs(20), || {
        processes_with("sleep 876801").first().copied()
    });
    child.child().kill().unwrap();
    child.child().wait().unwrap();
    wait_for("the command to die", Duration::from_secs(20), || {
        (!alive(command)).then_some(())
    });
    // The container itself is untouched.
    assert!(read_exit(&pod.state_dir).is_none());
    assert_eq!(pod.exec(&["true"]).0, 0);
}

#[test]
fn exec_after_the_end_is_not_running() {
    use_helper();
    let pod = Pod::start("ended", &["/bin/sh", "-c", "exit 0"], |c| {
        c.isolation = IsolationConfig::disabled()
    });
    wait_for("exit.json", Duration::from_secs(20), || {
        read_exit(&pod.state_dir)
    });
    assert!(matches!(
        pod.spawn(&["true"], Stdio::null()),
        Err(ShimError::NotRunning(_))
    ));
}

#[test]
fn plain_processes_do_not_need_the_helper() {
    use_helper();
    let pod = Pod::start(
        "plain-helped",
        &["/bin/sh", "-c", "exec sleep 876900"],
        |c| {
            c.isolation = IsolationConfig::disabled();
            c.working_dir = Some(std::env::temp_dir());
        },
    );
    wait_for("the container", Duration::from_secs(20), || {
        read_state(&pod.state_dir)
    });
    let mut child = pod.spawn(&["sleep", "876901"], Stdio::null()).unwrap();
    // The command itself, not a helper.
    assert!(cmdline(child.child().id() as i32).starts_with("sleep 876901"));
    drop(child);
    let (code, out) = pod.exec(&["/bin/sh", "-c", "echo $EXTRA $FROM_SPEC $(pwd)"]);
    assert_eq!(code, 0);
    let tmp = std::env::temp_dir();
    assert_eq!(out, format!("1 spec {}", tmp.display()));
}

// ---------------------------------------------------------------------------------------
// The exec server (zygote): one process per container run that starts commands on request.

/// A zygote for `pod`, spoken to over a socket; killed and reaped on drop.
struct Zygote {
    sock: std::os::unix::net::UnixStream,
    inbox: Vec<u8>,
    process: ChildGuard,
}

impl Zygote {
    fn start(pod: &Pod) -> (Zygote, ZygoteReply) {
        let state = read_state(&pod.state_dir).expect("state.json");
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let process = Command::new(BIN)
            .arg(ZYGOTE_SUBCOMMAND)
            .args(zygote_args(&state))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .spawn()
            .expect("start the zygote");
        let mut z = Zygote {
            sock: ours,
            inbox: Vec::new(),
            process: ChildGuard(Some(process)),
        };
        let first = z.reply().expect("the zygote's first reply");
        (z, first)
    }

    fn send(&mut self, id: u64, argv: &[&str], timeout_ms: u64, max_output: usize) {
        let req = ZygoteRequest {
            id,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("FROM_REQUEST".into(), "req".into()),
            ],
            working_dir: "/etc".into(),
            timeout_ms,
            max_output,
        };
        self.sock.write_all(&encode_frame(&req)).unwrap();
    }

    /// The next reply (bounded: a reply must come within 20 s); None at the end.
    fn reply(&mut self) -> Option<ZygoteReply> {
        self.sock
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(r) = take_frame(&mut self.inbox).unwrap() {
                return Some(r);
            }
            let n = self.sock.read(&mut chunk).expect("a reply within 20 s");
            if n == 0 {
                return None;
            }
            self.inbox.extend_from_slice(&chunk[..n]);
        }
    }

    fn run(&mut self, id: u64, argv: &[&str]) -> ZygoteReply {
        self.send(id, argv, 20_000, 1024);
        self.reply().expect("a reply")
    }
}

#[test]
fn the_exec_server_runs_commands_in_the_container() {
    if skip_unless_root("zygote") {
        return;
    }
    let pod = Pod::start(
        "zygoted",
        &["/bin/sh", "-c", "echo ready; exec sleep 876900"],
        |_| {},
    );
    wait_for("the container", Duration::from_secs(20), || {
        read_state(&pod.state_dir)
    });
    let (mut z, first) = Zygote::start(&pod);
    assert_eq!(first, ZygoteReply::Ready);

    // Hostname, PID namespace, working dir, the request's environment; stdout and stderr
    // combined.
    let reply = z.run(
        1,
        &[
            "/bin/sh",
            "-c",
            "echo $(cat /proc/sys/kernel/hostname) $FROM_REQUEST $(pwd); cat /proc/1/cmdline; echo; echo oops >&2",
        ],
    );
    let ZygoteReply::Exited {
        id: 1,
        code: 0,
        output,
    } = reply
    else {
        panic!("unexpected reply {reply:?}");
    };
    assert!(output.starts_with("zygoted req /etc\nsleep"), "{output:?}");
    assert!(output.ends_with("oops\n"), "{output:?}");
    // The root is the container's: the state dir is hidden there.
    let inside = format!("{}/state.json", pod.state_dir.display());
    assert!(
        matches!(z.run(2, &["stat", &inside]), ZygoteReply::Exited { id: 2, code, .. } if code != 0)
    );

    // Exit codes, 128 + signal, and a command that cannot be executed.
    assert!(matches!(
        z.run(3, &["/bin/sh", "-c", "exit 42"]),
        ZygoteReply::Exited {
            id: 3,
            code: 42,
            ..
        }
    ));
    assert!(matches!(
        z.run(4, &["/bin/sh", "-c", "kill -9 $$"]),
        ZygoteReply::Exited {
            id: 4,
            code: 137,
            ..
        }
    ));
    let reply = z.run(5, &["/no/such/command"]);
    assert!(
        matches!(reply, ZygoteReply::Failed { id: 5, errno, .. } if errno == libc::ENOENT),
        "{reply:?}"
    );

    // Output is capped.
    z.send(6, &["/bin/sh", "-c", "echo 0123456789"], 20_000, 4);
    assert_eq!(
        z.reply(),
        Some(ZygoteReply::Exited {
            id: 6,
            code: 0,
            output: "0123".into()
        })
    );

    // Requests run side by side: a quick one answers while a slow one still runs; at its
    // timeout the slow one's whole process group is killed, background children included.
    z.send(
        7,
        &[
            "/bin/sh",
            "-c",
            "sleep 877001 & echo started; exec sleep 877002",
        ],
        1_500,
        1024,
    );
    let slow = wait_for("the slow command", Duration::from_secs(20), || {
        let found = processes_with("sleep 87700");
        (found.len() == 2).then_some(found)
    });
    assert!(matches!(
        z.run(8, &["true"]),
        ZygoteReply::Exited { id: 8, code: 0, .. }
    ));
    let reply = z.reply();
    assert!(
        matches!(&reply, Some(ZygoteReply::TimedOut { id: 7, output }) if output == "started\n"),
        "{reply:?}"
    );
    wait_for(
        "the timed-out commands to die",
        Duration::from_secs(20),
        || slow.iter().all(|p| !alive(*p)).then_some(()),
    );
    // The container itself is untouched.
    assert!(read_exit(&pod.state_dir).is_none());
}

#[test]
fn closing_the_socket_ends_the_exec_server_and_its_commands() {
    if skip_unless_root("zygote close") {
        return;
    }
    let pod = Pod::start("orphaned", &["/bin/sh", "-c", "exec sleep 876910"], |_| {});
    wait_for("the container", Duration::from_secs(20), || {
        read_state(&pod.state_dir)
    });
    let (mut z, first) = Zygote::start(&pod);
    assert_eq!(first, ZygoteReply::Ready);
    z.send(1, &["/bin/sh", "-c", "exec sleep 876911"], 600_000, 1024);
    let command = wait_for("the command", Duration::from_secs(20), || {
        processes_with("sleep 876911").first().copied()
    });
    let Zygote { sock, process, .. } = z;
    drop(sock);
    let status = process.wait_output().status;
    assert!(status.success(), "{status:?}");
    wait_for("the command to die", Duration::from_secs(20), || {
        (!alive(command)).then_some(())
    });
    assert!(read_exit(&pod.state_dir).is_none());
}

#[test]
fn an_exec_server_for_an_ended_container_says_so() {
    let pod = Pod::start("ended-z", &["/bin/sh", "-c", "exit 0"], |c| {
        c.isolation = IsolationConfig::disabled()
    });
    wait_for("exit.json", Duration::from_secs(20), || {
        read_exit(&pod.state_dir)
    });
    let (mut z, first) = Zygote::start(&pod);
    assert_eq!(first, ZygoteReply::NotRunning);
    assert_eq!(z.reply(), None);
}
