//! `kubectl exec -it` and `kubectl attach -i`/`-it` end to end: a real `slipway serve`
//! (process runtime, isolated pods when run as root) and the real kubectl on a
//! pseudo-terminal of the test's own, so that kubectl
//! asks for a TTY (it only does when its stdin is a terminal) and forwards the terminal's
//! size. kubectl runs in a session of its own with that terminal as its controlling terminal
//! (`setsid -c`), so a resize of the test's terminal reaches it as `SIGWINCH`, as in a real
//! terminal emulator. Every process started here is killed on drop, also on failure.

mod common;

use common::{ProcessServer, eventually};
use std::fs::File;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: k8spatterns/random-generator:1.0
"#;

/// A command (kubectl) running on the test's terminal; killed and reaped on drop.
struct OnTerminal {
    child: Option<Child>,
    master: File,
    output: Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl OnTerminal {
    /// Starts `cmd` in a new session whose controlling terminal is a new pseudo-terminal of
    /// `cols` x `rows`, which is also its stdin, stdout and stderr.
    fn spawn(cmd: Command, cols: u16, rows: u16) -> OnTerminal {
        let (master, slave) = slipway_shim::open_pty().expect("open a pseudo-terminal");
        slipway_shim::set_window_size(&master, cols, rows).expect("set the terminal size");
        let program = cmd.get_program().to_owned();
        let mut setsid = Command::new("setsid");
        setsid.arg("--ctty").arg(program).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => setsid.env(k, v),
                None => setsid.env_remove(k),
            };
        }
        let stdio = || Stdio::from(slave.try_clone().expect("dup the terminal"));
        let child = setsid
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .expect("spawn setsid --ctty kubectl");
        // Only kubectl holds the slave now: the reader below ends (EIO) once it is gone.
        drop(slave);
        let (tx, output) = channel();
        let mut reader = master.try_clone().expect("dup the master");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        });
        OnTerminal {
            child: Some(child),
            master,
            output,
            seen: Vec::new(),
        }
    }

    /// Types `text` on the terminal.
    fn type_text(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write the terminal");
    }

    /// Everything shown on the terminal so far, as text.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads the terminal until `needle` was shown (from `from` on), for at most `timeout`.
    fn shows(&mut self, needle: &str, from: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..]).contains(needle) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(_) => return false,
            }
        }
    }

    /// Resizes the terminal and waits until a shell on it reports the new size (asking
    /// again each second: the resize reaches it asynchronously), or fails with the screen.
    fn resize_and_wait(&mut self, cols: u16, rows: u16) {
        slipway_shim::set_window_size(&self.master, cols, rows).expect("resize");
        let wanted = format!("SIZE_{rows} {cols}_END");
        let deadline = Instant::now() + WAIT;
        loop {
            let from = self.seen.len();
            self.type_text("echo SIZE_$(stty size)_END\n");
            if self.shows(&wanted, from, Duration::from_secs(1)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the resize never arrived; the terminal shows:\n{}",
                self.screen()
            );
        }
    }

    /// Waits until `needle` is shown, or fails with the screen.
    fn expect(&mut self, needle: &str) {
        let from = 0;
        assert!(
            self.shows(needle, from, WAIT),
            "{needle:?} not shown within {WAIT:?}; the terminal shows:\n{}",
            self.screen()
        );
    }

    /// Waits for the command to exit (reading its output meanwhile); returns its exit code.
    fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for kubectl") {
                self.child = None;
                // What is left on the terminal.
                while let Ok(chunk) = self.output.recv_timeout(Duration::from_millis(200)) {
                    self.seen.extend_from_slice(&chunk);
                }
                return status.code().unwrap_or(-1);
            }
            let left = deadline.checked_duration_since(Instant::now());
            assert!(
                left.is_some(),
                "kubectl did not exit within {timeout:?}; the terminal shows:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            // Output arriving wakes us early; otherwise look again shortly.
            if let Ok(chunk) = self.output.recv_timeout(Duration::from_millis(50)) {
                self.seen.extend_from_slice(&chunk);
            }
        }
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_pod(s: &ProcessServer) {
    s.apply(POD);
    wait_running(s, "shell");
}

#[test]
fn exec_it_runs_a_shell_on_a_terminal_of_the_clients_size() {
    let s = ProcessServer::start();
    start_pod(&s);

    let mut term = OnTerminal::spawn(s.kubectl_cmd(&["exec", "-it", "shell", "--", "sh"]), 97, 31);

    // stdin is a terminal (the markers are computed, so the echo of the typed line never
    // matches them).
    term.type_text("test -t 0 && test -t 1 && echo TTY_$((40+2))\n");
    term.expect("TTY_42");
    // The terminal has the size of kubectl's terminal.
    term.type_text("echo SIZE_$(stty size)_END\n");
    term.expect("SIZE_31 97_END");
    // It is the shell's controlling terminal, and a real one of the container's /dev/pts.
    term.type_text(": </dev/tty && echo CTTY_$((1+1)); echo NAME_$(tty)_END\n");
    term.expect("CTTY_2");
    term.expect("NAME_/dev/pts/");
    // The shell leads its own session inside the container (its own PID namespace when
    // isolated: then it is not PID 1, the container is).
    term.type_text("test \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\" && echo LEADER_$((2+3))\n");
    term.expect("LEADER_5");

    // A resize of kubectl's terminal reaches the command.
    term.resize_and_wait(120, 40);

    // Ctrl-C interrupts the foreground command, not the session.
    // The marker comes from the foreground job itself, so it is the terminal's foreground
    // process group by then.
    term.type_text("sh -c 'echo WAIT_$((5+6)); exec sleep 60'\n");
    term.expect("WAIT_11");
    let from = term.seen.len();
    term.type_text("\x03");
    // The terminal echoes ^C as it signals the foreground job; type on once it did.
    assert!(term.shows("^C", from, WAIT), "{}", term.screen());
    term.type_text("echo AFTER_$((3+4))\n");
    assert!(
        term.shows("AFTER_7", from, WAIT),
        "Ctrl-C did not interrupt sleep; the terminal shows:\n{}",
        term.screen()
    );

    // The shell's exit code is kubectl's.
    term.type_text("exit 3\n");
    let code = term.wait(WAIT);
    assert_eq!(code, 3, "the terminal shows:\n{}", term.screen());
    assert!(
        term.screen()
            .contains("command terminated with exit code 3"),
        "{}",
        term.screen()
    );

    // A command run directly (no shell) sees the size at once.
    let mut term = OnTerminal::spawn(
        s.kubectl_cmd(&["exec", "-it", "shell", "--", "stty", "size"]),
        88,
        22,
    );
    term.expect("22 88");
    assert_eq!(term.wait(WAIT), 0, "{}", term.screen());

    // A background process that keeps the terminal open does not keep the session: it
    // ends shortly after the command exits.
    let mut term = OnTerminal::spawn(
        s.kubectl_cmd(&[
            "exec",
            "-it",
            "shell",
            "--",
            "sh",
            "-c",
            "trap '' HUP; sleep 300 & echo BACKGROUND; exit 2",
        ]),
        80,
        24,
    );
    term.expect("BACKGROUND");
    assert_eq!(term.wait(Duration::from_secs(10)), 2, "{}", term.screen());

    // Without -t nothing changes: pipes, stderr apart, no terminal.
    let r = s.kubectl(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "test -t 0 || test -t 1 || echo NO_TTY; echo to-stderr >&2; exit 5",
    ]);
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "NO_TTY\n");
    assert!(r.stderr.contains("to-stderr"), "{}", r.stderr);
}

#[test]
fn attach_i_is_refused_clearly_without_stdin_in_the_spec() {
    let s = ProcessServer::start();
    start_pod(&s);
    // The container has no TTY in its spec: kubectl falls back to no TTY itself and says so;
    // it keeps no stdin open either, so the server refuses to attach stdin.
    let mut term = OnTerminal::spawn(s.kubectl_cmd(&["attach", "-it", "shell"]), 80, 24);
    let code = term.wait(WAIT);
    let screen = term.screen();
    assert_ne!(code, 0, "{screen}");
    assert!(
        screen.contains("Unable to use a TTY - container app did not allocate one"),
        "{screen}"
    );
    assert!(
        screen.contains("container app in pod shell does not keep its stdin open"),
        "{screen}"
    );
}

/// Waits for a pod's first container to be running.
fn wait_running(s: &ProcessServer, pod: &str) {
    eventually(WAIT, &format!("pod {pod} running"), || {
        let p = s.get_json(&["pod", pod]);
        p["status"]["containerStatuses"][0]["state"]["running"]
            .is_object()
            .then_some(())
    });
}

/// `kubectl attach -it` to a container with `stdin: true` and `tty: true`: the session is
/// the container's own terminal (its size is kubectl's, typing reaches the shell, and its
/// output comes back raw), and the session ends when the shell exits.
#[test]
fn attach_it_reaches_a_shell_on_the_containers_terminal() {
    let s = ProcessServer::start();
    s.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: tty-shell
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: k8spatterns/random-generator:1.0
    command: [sh]
    stdin: true
    tty: true
"#,
    );
    wait_running(&s, "tty-shell");
    let mut term = OnTerminal::spawn(s.kubectl_cmd(&["attach", "-it", "tty-shell"]), 91, 27);
    term.expect("If you don't see a command prompt, try pressing enter.");
    // The markers are computed, so the terminal's echo of the typed line never matches them.
    term.type_text("test -t 0 && echo TTY_$((40+2))\n");
    term.expect("TTY_42");
    term.type_text("echo SIZE_$(stty size)_END\n");
    term.expect("SIZE_27 91_END");
    // A resize of kubectl's terminal reaches the container's.
    term.resize_and_wait(100, 35);
    // The shell's exit ends the container, and with it the session.
    term.type_text("exit 0\n");
    assert_eq!(term.wait(WAIT), 0, "{}", term.screen());
    eventually(WAIT, "tty-shell Succeeded", || {
        (s.get_json(&["pod", "tty-shell"])["status"]["phase"] == "Succeeded").then_some(())
    });
    // Its output is in the log too, as stdout.
    let logs = s.kubectl(&["logs", "tty-shell"]);
    assert!(logs.stdout.contains("TTY_42"), "{}", logs.stdout);
}

/// `kubectl attach -i` without a terminal to a container with `stdin: true` and `stdinOnce:
/// true`: what kubectl reads goes to the container's stdin, the end of kubectl's input is
/// the container's end of file, and the output comes back through the log.
#[test]
fn attach_i_writes_to_a_kept_open_stdin() {
    let s = ProcessServer::start();
    s.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: k8spatterns/random-generator:1.0
    command: [sh, -c, 'while read line; do echo "got $line"; done; echo stdin-ended']
    stdin: true
    stdinOnce: true
"#,
    );
    wait_running(&s, "reader");
    // kubectl's input ends after the two lines: kubectl then closes the container's stdin.
    let out = kubectl_with_input(&s, &["attach", "-i", "reader"], b"one\ntwo\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("got one\ngot two\n"), "{stdout}");
    assert!(stdout.contains("stdin-ended"), "{stdout}");
    eventually(WAIT, "reader Succeeded", || {
        (s.get_json(&["pod", "reader"])["status"]["phase"] == "Succeeded").then_some(())
    });
}

/// Runs kubectl with `input` as its stdin (closed after it) and returns its output; kubectl
/// must exit within [`WAIT`], else it is killed (by PID, while it is not yet reaped) and
/// the test fails.
fn kubectl_with_input(s: &ProcessServer, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = s
        .kubectl_cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let written = stdin.write_all(input);
    drop(stdin);
    match rx.recv_timeout(WAIT) {
        Ok(out) => {
            written.expect("write kubectl's stdin");
            out.expect("wait for kubectl")
        }
        Err(_) => {
            // Not reaped yet (its waiter still waits), so the PID is still kubectl's.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("kubectl {args:?} did not exit within {WAIT:?}");
        }
    }
}

/// `kubectl run -i --rm`: kubectl creates a pod with `stdin: true` and `stdinOnce: true`,
/// attaches to it, sends its own input, reports the container's exit code as its own and
/// deletes the pod.
#[test]
fn run_i_rm_attaches_and_cleans_up() {
    let s = ProcessServer::start();
    let out = kubectl_with_input(
        &s,
        &[
            "run",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=k8spatterns/random-generator:1.0",
            "one-off",
            "--command",
            "--",
            "sh",
        ],
        b"echo hello-$((1+2))\nexit 4\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(stdout.contains("hello-3"), "{stdout}{stderr}");
    assert!(
        stdout.contains("pod \"one-off\" deleted"),
        "{stdout}{stderr}"
    );
    eventually(WAIT, "pod one-off gone", || {
        let left = s.kubectl(&["get", "pod", "one-off", "--ignore-not-found", "-o", "name"]);
        (left.code == 0 && left.stdout.is_empty()).then_some(())
    });
}
