//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward` driven by the real kubectl
//! against an in-process API server whose pod processes are a fake [`PodIo`]: exec runs the
//! command as a local process, and the log files are temp files written here in CRI format.

use slipway_apiserver::{Config, ExecRequest, LogFiles, PodIo};
use slipway_core::ApiError;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Log files under `root/<container>/{current,previous}`; a container is running until
/// [`FakeIo::stop`].
struct FakeIo {
    root: PathBuf,
    stopped: parking_lot::Mutex<HashMap<String, bool>>,
    uids: parking_lot::Mutex<Vec<String>>,
}

impl FakeIo {
    fn dir(&self, container: &str, previous: bool) -> PathBuf {
        self.root
            .join(container)
            .join(if previous { "previous" } else { "current" })
    }

    fn stop(&self, container: &str) {
        self.stopped.lock().insert(container.to_string(), true);
    }
}

impl PodIo for FakeIo {
    fn log_files(
        &self,
        _namespace: &str,
        _pod: &str,
        uid: &str,
        container: &str,
        previous: bool,
    ) -> Result<Option<LogFiles>, ApiError> {
        self.uids.lock().push(uid.to_string());
        let dir = self.dir(container, previous);
        if !dir.is_dir() {
            return Ok(None);
        }
        let running = !previous && !self.stopped.lock().get(container).copied().unwrap_or(false);
        Ok(Some(LogFiles::in_dir(&dir, running)))
    }

    fn exec(
        &self,
        _namespace: &str,
        _pod: &str,
        uid: &str,
        container: &str,
        request: &ExecRequest,
    ) -> Result<Child, ApiError> {
        self.uids.lock().push(uid.to_string());
        if container == "stopped" {
            return Err(ApiError::bad_request(format!(
                "container {container} is not running"
            )));
        }
        let (i, o, e) = request.stdio();
        Command::new(&request.argv[0])
            .args(&request.argv[1..])
            .stdin(i)
            .stdout(o)
            .stderr(e)
            .spawn()
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// An in-process API server on loopback with its own data dir.
struct Harness {
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    io: Option<Arc<FakeIo>>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Kills a child (by its handle, so by PID) unless it was waited for.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn lines_of<R: Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    rx
}

/// Waits for a child to exit within [`WAIT`] (killing it otherwise) and returns its output.
fn wait_run(mut child: Child) -> Run {
    let out = read_all(child.stdout.take().expect("stdout"));
    let err = read_all(child.stderr.take().expect("stderr"));
    let stdout = out.recv_timeout(WAIT);
    let stderr = err.recv_timeout(WAIT).unwrap_or_default();
    let mut guard = ChildGuard(Some(child));
    let stdout = stdout.unwrap_or_else(|_| panic!("command did not finish; stderr: {stderr}"));
    let code = guard
        .0
        .take()
        .expect("child")
        .wait()
        .expect("wait")
        .code()
        .unwrap_or(-1);
    Run {
        code,
        stdout,
        stderr,
    }
}

impl Harness {
    fn start(with_io: bool) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let io = with_io.then(|| {
            Arc::new(FakeIo {
                root: dir.path().join("pods"),
                stopped: Default::default(),
                uids: Default::default(),
            })
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let pod_io = io.clone().map(|io| io as Arc<dyn PodIo>);
        let running = rt
            .block_on(slipway_apiserver::start(Config {
                data_dir: dir.path().join("data"),
                listen: "127.0.0.1:0".parse().unwrap(),
                event_ttl: Duration::from_secs(3600),
                pod_io,
            }))
            .expect("start the API server");
        Harness {
            _rt: rt,
            kubeconfig: running.kubeconfig,
            dir,
            io,
        }
    }

    fn io(&self) -> &FakeIo {
        self.io.as_deref().expect("fake PodIo")
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        wait_run(self.kubectl_cmd(args).spawn().expect("run kubectl"))
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        wait_run(child)
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_eq!(
            r.code, 0,
            "kubectl {args:?} failed: {}\n{}",
            r.stderr, r.stdout
        );
        r.stdout
    }

    fn create_pod(&self) {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: app:1\n  - name: side\n    image: side:1\n  - name: stopped\n    image: stopped:1\n";
        let path = self.dir.path().join("pod.yaml");
        std::fs::write(&path, yaml).expect("write pod");
        self.ok(&["create", "-f", path.to_str().unwrap()]);
    }

    /// Writes CRI records (`(time, stream, tag, payload)`) to a container's log file.
    fn write_log(&self, container: &str, previous: bool, name: &str, records: &[Rec]) {
        let dir = self.io().dir(container, previous);
        std::fs::create_dir_all(&dir).expect("log dir");
        append(&dir.join(name), records);
    }
}

type Rec<'a> = (&'a str, &'a str, &'a str, &'a str);

fn append(path: &Path, records: &[Rec]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    for (t, s, tag, p) in records {
        writeln!(f, "{t} {s} {tag} {p}").expect("write log");
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[test]
fn exec_separates_streams_and_reports_the_exit_code() {
    let h = Harness::start(true);
    h.create_pod();

    let r = h.kubectl(&[
        "exec",
        "web",
        "-c",
        "app",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.starts_with("err\n"), "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("command terminated with exit code 3"),
        "stderr: {}",
        r.stderr
    );

    let r = h.kubectl(&["exec", "web", "-c", "app", "--", "sh", "-c", "echo a b"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "a b\n"), "{}", r.stderr);

    // Stdin, ended by the close signal, and a larger payload than one frame.
    let big: String = (0..20000).map(|i| format!("line {i}\n")).collect();
    let r = h.kubectl_stdin(&["exec", "-i", "web", "-c", "side", "--", "cat"], &big);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.len(), big.len());
    assert!(r.stdout == big);

    // A failure to start reaches kubectl as the error of the exec.
    let r = h.kubectl(&["exec", "web", "-c", "stopped", "--", "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("container stopped is not running"),
        "{}",
        r.stderr
    );
    let r = h.kubectl(&["exec", "web", "-c", "nope", "--", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);

    // The SPDY fallback says what is needed.
    let mut cmd = h.kubectl_cmd(&["exec", "web", "-c", "app", "--", "true"]);
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let r = wait_run(cmd.spawn().expect("kubectl"));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            && r.stderr.contains("v5.channel.k8s.io"),
        "{}",
        r.stderr
    );

    let uids = h.io().uids.lock().clone();
    assert!(!uids.is_empty() && uids.iter().all(|u| !u.is_empty()));
}

#[test]
fn cp_copies_a_file_out_of_the_pod() {
    let h = Harness::start(true);
    h.create_pod();
    let src = h.dir.path().join("inside.txt");
    std::fs::write(&src, "copied content\n").unwrap();
    let dst = h.dir.path().join("outside.txt");
    let from = format!("web:{}", src.display());
    let r = h.kubectl(&["cp", "-c", "app", &from, dst.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "copied content\n");
}

#[test]
fn logs_honour_the_options() {
    let h = Harness::start(true);
    h.create_pod();
    let now = chrono::Utc::now();
    let old = rfc3339(now - chrono::Duration::hours(2));
    let mid = rfc3339(now - chrono::Duration::minutes(30));
    let new = rfc3339(now - chrono::Duration::seconds(5));
    h.write_log(
        "app",
        false,
        "container.log.1",
        &[(&old, "stdout", "F", "first")],
    );
    h.write_log(
        "app",
        false,
        "container.log",
        &[
            (&mid, "stderr", "F", "second"),
            (&mid, "stdout", "P", "thi"),
            (&new, "stdout", "F", "rd"),
            ("2030-01-01T00:00:00.5Z", "stdout", "F", "fourth"),
        ],
    );
    h.write_log(
        "side",
        false,
        "container.log",
        &[("2024-05-06T07:08:09.120Z", "stdout", "F", "side line")],
    );
    h.write_log(
        "app",
        true,
        "container.log",
        &[("2024-05-06T07:08:09Z", "stdout", "F", "before the restart")],
    );

    assert_eq!(
        h.ok(&["logs", "web", "-c", "app"]),
        "first\nsecond\nthird\nfourth\n"
    );
    // Without -c kubectl picks the first container.
    assert_eq!(h.ok(&["logs", "web"]), "first\nsecond\nthird\nfourth\n");
    assert_eq!(
        h.ok(&["logs", "web", "-c", "app", "--tail=2"]),
        "third\nfourth\n"
    );
    assert_eq!(
        h.ok(&["logs", "web", "-c", "side", "--timestamps"]),
        "2024-05-06T07:08:09.12Z side line\n"
    );
    assert_eq!(
        h.ok(&["logs", "web", "-c", "app", "--since=1h"]),
        "second\nthird\nfourth\n"
    );
    assert_eq!(
        h.ok(&[
            "logs",
            "web",
            "-c",
            "app",
            "--since-time=2029-12-31T00:00:00Z"
        ]),
        "fourth\n"
    );
    assert_eq!(
        h.ok(&["logs", "web", "-c", "app", "--limit-bytes=9"]),
        "first\nsec"
    );
    assert_eq!(
        h.ok(&["logs", "web", "-c", "app", "--previous"]),
        "before the restart\n"
    );
    let r = h.kubectl(&["logs", "web", "-c", "side", "--previous"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("previous terminated container \"side\" in pod \"web\" not found"),
        "{}",
        r.stderr
    );
    let r = h.kubectl(&["logs", "web", "-c", "stopped"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is waiting to start"), "{}", r.stderr);
    let r = h.kubectl(&["logs", "web", "-c", "nope"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("container nope is not valid for pod web"),
        "{}",
        r.stderr
    );
}

#[test]
fn logs_follow_streams_across_rotation_until_the_container_stops() {
    let h = Harness::start(true);
    h.create_pod();
    h.write_log(
        "app",
        false,
        "container.log",
        &[("2024-05-06T07:08:09Z", "stdout", "F", "before")],
    );
    let mut child = h
        .kubectl_cmd(&["logs", "-f", "web", "-c", "app"])
        .spawn()
        .expect("kubectl logs -f");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let mut guard = ChildGuard(Some(child));
    let next = |what: &str| {
        lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("kubectl logs -f printed no {what}"))
    };
    assert_eq!(next("existing line"), "before");

    let current = h.io().dir("app", false).join("container.log");
    append(
        &current,
        &[
            ("2024-05-06T07:08:10Z", "stdout", "F", "appended"),
            ("2024-05-06T07:08:11Z", "stderr", "P", "half "),
        ],
    );
    assert_eq!(next("appended line"), "appended");

    // Rotation: the file is renamed and a new one started (the partial line continues).
    std::fs::rename(&current, current.with_extension("log.1")).unwrap();
    append(
        &current,
        &[
            ("2024-05-06T07:08:12Z", "stderr", "F", "and half"),
            ("2024-05-06T07:08:13Z", "stdout", "F", "after rotation"),
        ],
    );
    assert_eq!(next("joined line"), "half and half");
    assert_eq!(next("line after rotation"), "after rotation");

    append(
        &current,
        &[("2024-05-06T07:08:14Z", "stdout", "F", "last words")],
    );
    h.io().stop("app");
    assert_eq!(next("last line"), "last words");
    // kubectl exits when the server ends the stream.
    let err = stderr
        .recv_timeout(WAIT)
        .expect("kubectl logs -f did not exit after the container stopped");
    let status = guard.0.take().unwrap().wait().expect("wait");
    assert!(status.success(), "{err}");
    assert!(lines.recv_timeout(WAIT).is_err());
}

#[test]
fn attach_shows_new_output_until_the_container_stops() {
    let h = Harness::start(true);
    h.create_pod();
    h.write_log(
        "side",
        false,
        "container.log",
        &[("2024-05-06T07:08:09Z", "stdout", "F", "old output")],
    );
    let mut child = h
        .kubectl_cmd(&["attach", "web", "-c", "side"])
        .spawn()
        .expect("kubectl attach");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    let mut guard = ChildGuard(Some(child));
    // kubectl prints its hint on stderr once connected; output written after that shows.
    let hint = stderr.recv_timeout(WAIT).expect("kubectl attach started");
    assert!(hint.contains("If you don't see a command prompt"), "{hint}");
    // The hint comes before the connection: output is written until it shows, so the first
    // lines may fall before the attach began.
    let current = h.io().dir("side", false).join("container.log");
    let mut attached = None;
    for i in 0..150 {
        let mark = format!("mark {i}");
        append(&current, &[("2024-05-06T07:08:09Z", "stdout", "F", &mark)]);
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            let seen: usize = line["mark ".len()..].parse().expect("a mark");
            attached = Some((seen, i));
            break;
        }
    }
    let (seen, last) = attached.expect("kubectl attach showed no output");
    for j in seen + 1..=last {
        assert_eq!(lines.recv_timeout(WAIT).expect("mark"), format!("mark {j}"));
    }
    append(
        &current,
        &[
            ("2024-05-06T07:08:10Z", "stdout", "F", "new output"),
            ("2024-05-06T07:08:11Z", "stderr", "F", "new error"),
        ],
    );
    assert_eq!(
        lines.recv_timeout(WAIT).expect("attached output"),
        "new output"
    );
    assert_eq!(
        stderr.recv_timeout(WAIT).expect("attached error"),
        "new error"
    );
    h.io().stop("side");
    assert!(lines.recv_timeout(WAIT).is_err(), "stdout closes");
    let status = guard.0.take().unwrap().wait().expect("wait");
    assert!(status.success());
}

#[test]
fn without_pod_processes_logs_are_empty_and_exec_is_refused() {
    let h = Harness::start(false);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\nspec:\n  containers:\n  - name: app\n    image: app:1\n";
    let path = h.dir.path().join("solo.yaml");
    std::fs::write(&path, yaml).unwrap();
    h.ok(&["create", "-f", path.to_str().unwrap()]);
    assert_eq!(h.ok(&["logs", "solo"]), "");
    let r = h.kubectl(&["exec", "solo", "--", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("runs no pod processes"), "{}", r.stderr);
}

#[test]
fn port_forward_explains_that_pod_ips_are_reachable() {
    let h = Harness::start(true);
    h.create_pod();
    // kubectl only forwards to a running pod.
    h.ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    let r = h.kubectl(&["port-forward", "pod/web", "0:80"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("pod IPs are reachable directly from the host"),
        "{}",
        r.stderr
    );
}
