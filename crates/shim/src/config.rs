//! The shim's configuration, written by the agent as `config.json` in the state dir.

use crate::ShimError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One environment variable of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Which isolation to set up. Each part is used only where the host allows it; what could
/// not be had is recorded in `isolation.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IsolationConfig {
    /// Master switch: false runs a plain process in its own process group.
    pub enabled: bool,
    pub mount_namespace: bool,
    pub pid_namespace: bool,
    pub uts_namespace: bool,
    pub network_namespace: bool,
    /// With `network_namespace`: join the namespace pinned at this path (the pod's, shared by
    /// its containers, made by the agent with `slipway_netns::create_pinned`) instead of
    /// creating one for this container alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_namespace_file: Option<PathBuf>,
    /// A private writable overlay (`lowerdir=/`, upper and work dirs in the state dir) as the
    /// container's root. Needs the mount namespace.
    pub overlay_root: bool,
    /// Host paths hidden (covered by an empty read-only tmpfs) inside the overlay root, e.g.
    /// the agent's data dir so a pod cannot see other pods' state. The state dir is always
    /// hidden.
    pub mask_paths: Vec<PathBuf>,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        IsolationConfig {
            enabled: true,
            mount_namespace: true,
            pid_namespace: true,
            uts_namespace: true,
            network_namespace: true,
            network_namespace_file: None,
            overlay_root: true,
            mask_paths: Vec::new(),
        }
    }
}

impl IsolationConfig {
    /// No isolation at all: a plain process.
    pub fn disabled() -> Self {
        IsolationConfig {
            enabled: false,
            ..IsolationConfig::default()
        }
    }
}

/// Optional resource limits, applied through cgroup v2 when it is available.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceLimits {
    /// `memory.max` in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in millicores (`cpu.max` = millis*100 per 100000 µs period).
    pub cpu_millis: Option<u64>,
}

impl ResourceLimits {
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu_millis.is_none()
    }
}

fn default_log_max_bytes() -> u64 {
    10 * 1024 * 1024
}

/// Everything a shim needs to run one container run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShimConfig {
    pub pod_uid: String,
    pub pod_name: String,
    pub pod_namespace: String,
    #[serde(default)]
    pub container_name: String,
    /// The container's hostname (Kubernetes: the pod name). Empty means the pod name.
    #[serde(default)]
    pub hostname: String,
    /// The resolved command line; `argv[0]` is looked up in `PATH` when it has no `/`.
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Working directory inside the container (default `/`).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// This container's state dir (absolute): pid files, logs, exit status, overlay dirs.
    pub state_dir: PathBuf,
    #[serde(default)]
    pub isolation: IsolationConfig,
    #[serde(default)]
    pub resources: ResourceLimits,
    /// Rotate `container.log` to `container.log.1` once it would exceed this many bytes.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// The container's stdin stays open (`spec.containers[].stdin`): the shim holds it and
    /// `kubectl attach -i` writes to it through the attach socket. Otherwise stdin is
    /// `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Stdin is closed (end of file for the container) when the first attach session that
    /// wrote to it ends (`stdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
    /// The container runs on a pseudo-terminal (`tty`): stdin, stdout and stderr are its
    /// slave side; its output is logged as stdout and sent raw to attach sessions.
    #[serde(default)]
    pub tty: bool,
}

impl ShimConfig {
    /// A configuration with default isolation and no limits.
    pub fn new(
        pod_name: impl Into<String>,
        argv: Vec<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let pod_name = pod_name.into();
        ShimConfig {
            pod_uid: String::new(),
            hostname: pod_name.clone(),
            pod_name,
            pod_namespace: "default".into(),
            container_name: String::new(),
            argv,
            env: Vec::new(),
            working_dir: None,
            state_dir: state_dir.into(),
            isolation: IsolationConfig::default(),
            resources: ResourceLimits::default(),
            log_max_bytes: default_log_max_bytes(),
            stdin: false,
            stdin_once: false,
            tty: false,
        }
    }

    pub fn validate(&self) -> Result<(), ShimError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(ShimError::Config("argv must not be empty".into()));
        }
        if !self.state_dir.is_absolute() {
            return Err(ShimError::Config(format!(
                "stateDir must be absolute, got {}",
                self.state_dir.display()
            )));
        }
        if let Some(wd) = &self.working_dir
            && !wd.is_absolute()
        {
            return Err(ShimError::Config(format!(
                "workingDir must be absolute, got {}",
                wd.display()
            )));
        }
        if self.log_max_bytes == 0 {
            return Err(ShimError::Config("logMaxBytes must be positive".into()));
        }
        Ok(())
    }

    /// The hostname the container gets.
    pub fn effective_hostname(&self) -> &str {
        if self.hostname.is_empty() {
            &self.pod_name
        } else {
            &self.hostname
        }
    }

    pub fn effective_working_dir(&self) -> PathBuf {
        self.working_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Loads a configuration written as JSON.
    pub fn load(path: &Path) -> Result<Self, ShimError> {
        let data = std::fs::read(path)
            .map_err(|e| ShimError::io(format!("read {}", path.display()), e))?;
        serde_json::from_slice(&data)
            .map_err(|e| ShimError::Config(format!("{}: {e}", path.display())))
    }

    /// The container's environment: the configured variables, plus `PATH` and `HOSTNAME`
    /// when they are not set (as a container runtime gives them).
    pub fn container_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push((
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ));
        }
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(("HOSTNAME".into(), self.effective_hostname().to_string()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let mut c = ShimConfig::new("web-1", vec!["/bin/sh".into()], "/data/pods/x/c");
        c.env.push(EnvVar::new("A", "b"));
        let text = serde_json::to_string(&c).unwrap();
        let back: ShimConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);

        let minimal: ShimConfig = serde_json::from_str(
            r#"{"podUid":"u","podName":"p","podNamespace":"default","argv":["sleep","1"],"stateDir":"/s"}"#,
        )
        .unwrap();
        assert!(minimal.isolation.enabled && minimal.isolation.pid_namespace);
        assert_eq!(minimal.log_max_bytes, 10 * 1024 * 1024);
        assert_eq!(minimal.effective_hostname(), "p");
        assert!(minimal.validate().is_ok());
    }

    #[test]
    fn validation() {
        let mut c = ShimConfig::new("p", vec![], "/s");
        assert!(c.validate().is_err());
        c.argv = vec!["x".into()];
        c.state_dir = "relative".into();
        assert!(c.validate().is_err());
        c.state_dir = "/s".into();
        c.working_dir = Some("rel".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn env_gets_path_and_hostname() {
        let mut c = ShimConfig::new("p", vec!["x".into()], "/s");
        c.env.push(EnvVar::new("PATH", "/bin"));
        let env = c.container_env();
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("HOSTNAME".into(), "p".into())));
    }
}
