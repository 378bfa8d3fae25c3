//! cgroup v2 limits (memory, CPU) and OOM detection, when the unified hierarchy is mounted
//! at `/sys/fs/cgroup` with the needed controllers and is writable.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "slipway";

/// Whether cgroup v2 limits can be used here: `Ok(())` or the reason they cannot.
pub fn cgroup_v2_availability() -> Result<(), String> {
    availability_at(Path::new(ROOT))
}

fn availability_at(root: &Path) -> Result<(), String> {
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).map_err(|_| {
        format!(
            "cgroup v2 not available: the unified hierarchy is not mounted at {} (cgroup v1 or hybrid host)",
            root.display()
        )
    })?;
    for needed in ["memory", "cpu"] {
        if !controllers.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "cgroup v2 not available: controller {needed} is not enabled at {}",
                root.display()
            ));
        }
    }
    if nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(format!(
            "cgroup v2 not available: {} is not writable",
            root.display()
        ));
    }
    Ok(())
}

/// A cgroup created for one container run.
pub(crate) struct Cgroup {
    pub(crate) path: PathBuf,
}

impl Cgroup {
    /// Creates `/sys/fs/cgroup/slipway/<name>` with the limits. `name` must be unique per run.
    pub(crate) fn create(
        name: &str,
        memory_bytes: Option<u64>,
        cpu_millis: Option<u64>,
    ) -> Result<Cgroup, String> {
        cgroup_v2_availability()?;
        let root = Path::new(ROOT);
        let parent = root.join(PARENT);
        let err = |what: &str, e: std::io::Error| format!("cgroup v2: {what}: {e}");
        std::fs::create_dir_all(&parent).map_err(|e| err("create parent", e))?;
        // Delegate the controllers down to our level (idempotent).
        std::fs::write(root.join("cgroup.subtree_control"), "+memory +cpu")
            .map_err(|e| err("enable controllers at the root", e))?;
        std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu")
            .map_err(|e| err("enable controllers for slipway", e))?;
        let path = parent.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err("create", e)),
        }
        let cg = Cgroup { path };
        if let Some(bytes) = memory_bytes {
            std::fs::write(cg.path.join("memory.max"), bytes.to_string())
                .map_err(|e| err("memory.max", e))?;
            // No swap, so the memory limit is the limit.
            let _ = std::fs::write(cg.path.join("memory.swap.max"), "0");
        }
        if let Some(millis) = cpu_millis {
            let quota = (millis * 100).max(1000);
            std::fs::write(cg.path.join("cpu.max"), format!("{quota} 100000"))
                .map_err(|e| err("cpu.max", e))?;
        }
        Ok(cg)
    }

    pub(crate) fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// True when `memory.events` counts an OOM kill.
    pub(crate) fn oom_killed(path: &Path) -> bool {
        std::fs::read_to_string(path.join("memory.events"))
            .map(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
            .unwrap_or(false)
    }

    /// Kills what is left in the cgroup (`cgroup.kill`, Linux 5.14+) and removes it.
    pub(crate) fn remove(path: &Path) {
        let _ = std::fs::write(path.join("cgroup.kill"), "1");
        let _ = std::fs::remove_dir(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_reports_reason() {
        let dir = tempfile::tempdir().unwrap();
        let r = availability_at(dir.path());
        assert!(r.unwrap_err().contains("not mounted"));
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu io\n").unwrap();
        assert!(availability_at(dir.path()).unwrap_err().contains("memory"));
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu io memory\n").unwrap();
        assert!(availability_at(dir.path()).is_ok());
        // Whatever this host has, the answer is either Ok or a reason.
        if let Err(reason) = cgroup_v2_availability() {
            assert!(reason.starts_with("cgroup v2 not available"));
        }
    }

    #[test]
    fn oom_events() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Cgroup::oom_killed(dir.path()));
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 1\noom_kill 0\n",
        )
        .unwrap();
        assert!(!Cgroup::oom_killed(dir.path()));
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\noom 1\noom_kill 2\n",
        )
        .unwrap();
        assert!(Cgroup::oom_killed(dir.path()));
    }
}
