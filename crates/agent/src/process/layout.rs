//! Where a pod's files live, and the API server's access to them ([`PodFiles`], the
//! [`PodIo`] of the process runtime).
//!
//! ```text
//! <data_dir>/pods/<pod uid>/<container>/<run>/   one shim state dir per container run
//! ```
//!
//! `<run>` counts the runs of a container from 0, so the newest run of a container is its
//! `restartCount`, and the run before it holds what `kubectl logs --previous` shows. Older
//! runs are pruned when a new one starts.

use slipway_apiserver::podio::{
    AttachMessage, AttachStream, ExecProcess, ExecRequest, LogFiles, PodIo, Terminal,
};
use slipway_core::ApiError;
use slipway_shim::ShimStatus;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The pod directory tree under a data dir.
#[derive(Clone, Debug)]
pub struct Layout {
    data_dir: PathBuf,
    pods: PathBuf,
}

/// A path component that is safe to join: no separators, not `.`/`..`, not empty. Pod
/// uids and container names always are (the API validates them); anything else is refused.
fn safe(component: &str) -> bool {
    !component.is_empty()
        && component != "."
        && component != ".."
        && !component.contains('/')
        && !component.contains('\0')
}

impl Layout {
    pub fn new(data_dir: &Path) -> Layout {
        Layout {
            data_dir: data_dir.to_path_buf(),
            pods: data_dir.join("pods"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pods_dir(&self) -> &Path {
        &self.pods
    }

    pub fn pod_dir(&self, uid: &str) -> Option<PathBuf> {
        safe(uid).then(|| self.pods.join(uid))
    }

    pub fn container_dir(&self, uid: &str, container: &str) -> Option<PathBuf> {
        Some(self.pod_dir(uid)?.join(container)).filter(|_| safe(container))
    }

    pub fn run_dir(&self, uid: &str, container: &str, run: u32) -> Option<PathBuf> {
        Some(self.container_dir(uid, container)?.join(run.to_string()))
    }

    /// The runs of a container on disk, oldest first.
    pub fn runs(&self, uid: &str, container: &str) -> Vec<u32> {
        let Some(dir) = self.container_dir(uid, container) else {
            return Vec::new();
        };
        let mut runs: Vec<u32> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        runs.sort_unstable();
        runs
    }

    /// Every run dir of a pod, of every container.
    pub fn all_runs(&self, uid: &str) -> Vec<PathBuf> {
        let Some(pod) = self.pod_dir(uid) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in std::fs::read_dir(pod).into_iter().flatten().flatten() {
            let Some(name) = c.file_name().to_str().map(str::to_string) else {
                continue;
            };
            for r in self.runs(uid, &name) {
                out.extend(self.run_dir(uid, &name, r));
            }
        }
        out
    }

    /// The pod uids that have a directory.
    pub fn pod_uids(&self) -> Vec<String> {
        std::fs::read_dir(&self.pods)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|u| safe(u))
            .collect()
    }

    /// Removes the runs of a container older than `keep_from`.
    pub fn prune_runs(&self, uid: &str, container: &str, keep_from: u32) {
        for r in self.runs(uid, container) {
            if r < keep_from
                && let Some(dir) = self.run_dir(uid, container, r)
            {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    /// Removes everything of a pod.
    pub fn remove_pod(&self, uid: &str) {
        if let Some(dir) = self.pod_dir(uid) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing a pod's files failed")
                }
            }
        }
    }
}

/// The process runtime's [`PodIo`]: log files and exec, found from the files alone (so it
/// works the same for containers the agent adopted after a restart).
#[derive(Clone, Debug)]
pub struct PodFiles {
    layout: Layout,
}

impl PodFiles {
    pub fn new(data_dir: &Path) -> PodFiles {
        PodFiles {
            layout: Layout::new(data_dir),
        }
    }
}

impl PodIo for PodFiles {
    fn log_files(
        &self,
        _namespace: &str,
        _pod: &str,
        uid: &str,
        container: &str,
        previous: bool,
    ) -> Result<Option<LogFiles>, ApiError> {
        let runs = self.layout.runs(uid, container);
        let pick = if previous {
            runs.len().checked_sub(2).map(|i| runs[i])
        } else {
            runs.last().copied()
        };
        let Some(run) = pick else {
            return Ok(None);
        };
        let Some(dir) = self.layout.run_dir(uid, container, run) else {
            return Ok(None);
        };
        let running = !previous && matches!(slipway_shim::status(&dir), ShimStatus::Running(_));
        Ok(Some(LogFiles::in_dir(&dir, running)))
    }

    fn exec(
        &self,
        _namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        request: &ExecRequest,
    ) -> Result<Child, ApiError> {
        let dir = self.current_run(pod, uid, container)?;
        let (stdin, stdout, stderr) = request.stdio();
        slipway_shim::exec_in(&dir, &request.argv, &[], stdin, stdout, stderr)
            .map_err(|e| exec_error(e, pod, container, request))
    }

    /// With `tty`, the command runs on a new pseudo-terminal ([`slipway_shim::exec_in_tty`]):
    /// it is the command's stdin, stdout, stderr and controlling terminal.
    fn exec_process(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        request: &ExecRequest,
        size: Option<(u16, u16)>,
    ) -> Result<ExecProcess, ApiError> {
        if !request.tty {
            let child = self.exec(namespace, pod, uid, container, request)?;
            return Ok(ExecProcess {
                child,
                terminal: None,
            });
        }
        let dir = self.current_run(pod, uid, container)?;
        let started = slipway_shim::exec_in_tty(&dir, &request.argv, &[], size)
            .map_err(|e| exec_error(e, pod, container, request))?;
        Ok(ExecProcess {
            child: started.child,
            terminal: Some(Terminal {
                master: started.master,
                resize: |master, cols, rows| slipway_shim::set_window_size(master, cols, rows),
            }),
        })
    }

    fn attach(
        &self,
        _namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
    ) -> Result<AttachStream, ApiError> {
        use slipway_shim::attach::{CLOSE_STDIN, RESIZE, STDIN, encode_frame};
        Ok(AttachStream {
            stream: self.attach_socket(pod, uid, container)?,
            encode: |message| match message {
                AttachMessage::Stdin(data) => encode_frame(STDIN, data),
                AttachMessage::Resize(cols, rows) => {
                    let mut size = cols.to_le_bytes().to_vec();
                    size.extend_from_slice(&rows.to_le_bytes());
                    encode_frame(RESIZE, &size)
                }
                AttachMessage::CloseStdin => encode_frame(CLOSE_STDIN, &[]),
            },
        })
    }
}

impl PodFiles {
    /// The attach socket of the container's newest run, which is running.
    fn attach_socket(
        &self,
        pod: &str,
        uid: &str,
        container: &str,
    ) -> Result<std::os::unix::net::UnixStream, ApiError> {
        let dir = self.current_run(pod, uid, container)?;
        if !matches!(slipway_shim::status(&dir), ShimStatus::Running(_)) {
            return Err(not_running(pod, container));
        }
        std::os::unix::net::UnixStream::connect(dir.join(slipway_shim::files::ATTACH)).map_err(
            |e| {
                ApiError::bad_request(format!(
                    "cannot attach to container {container} of pod {pod}: {e} (its stdin is \
                     kept open only with stdin: true, and it has a terminal only with tty: true)"
                ))
            },
        )
    }

    /// The state dir of the newest run of a container (which exec enters).
    fn current_run(&self, pod: &str, uid: &str, container: &str) -> Result<PathBuf, ApiError> {
        let run = self.layout.runs(uid, container).last().copied();
        run.and_then(|run| self.layout.run_dir(uid, container, run))
            .ok_or_else(|| not_running(pod, container))
    }
}

fn not_running(pod: &str, container: &str) -> ApiError {
    ApiError::bad_request(format!("container {container} is not running in pod {pod}"))
}

fn exec_error(
    e: slipway_shim::ShimError,
    pod: &str,
    container: &str,
    request: &ExecRequest,
) -> ApiError {
    match e {
        slipway_shim::ShimError::NotRunning(_) => not_running(pod, container),
        other => ApiError::bad_request(format!(
            "cannot run {:?} in container {container} of pod {pod}: {other}",
            request.argv[0]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_listed_in_order_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(tmp.path());
        for r in [0u32, 2, 10, 1] {
            std::fs::create_dir_all(l.run_dir("u1", "app", r).unwrap()).unwrap();
        }
        assert_eq!(l.runs("u1", "app"), vec![0, 1, 2, 10]);
        l.prune_runs("u1", "app", 2);
        assert_eq!(l.runs("u1", "app"), vec![2, 10]);
        assert_eq!(l.pod_uids(), vec!["u1".to_string()]);
        assert_eq!(l.all_runs("u1").len(), 2);
        assert!(l.pod_dir("../x").is_none() && l.container_dir("u1", "a/b").is_none());
        l.remove_pod("u1");
        assert!(l.pod_uids().is_empty());
    }

    #[test]
    fn log_files_of_current_and_previous_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(tmp.path());
        let io = PodFiles::new(tmp.path());
        assert_eq!(io.log_files("ns", "p", "u", "c", false).unwrap(), None);
        std::fs::create_dir_all(l.run_dir("u", "c", 0).unwrap()).unwrap();
        assert_eq!(io.log_files("ns", "p", "u", "c", true).unwrap(), None);
        std::fs::create_dir_all(l.run_dir("u", "c", 1).unwrap()).unwrap();
        let cur = io.log_files("ns", "p", "u", "c", false).unwrap().unwrap();
        assert!(cur.current.ends_with("c/1/container.log") && !cur.running);
        let prev = io.log_files("ns", "p", "u", "c", true).unwrap().unwrap();
        assert!(prev.current.ends_with("c/0/container.log"));
    }
}
