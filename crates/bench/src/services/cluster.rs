//! One `slipway serve --runtime process` on a fresh data dir, driven by the real kubectl,
//! that can be killed with SIGKILL and started again on the same data dir. Cleanup (also
//! on drop): SIGTERM and a bounded wait, then every process recorded in the data dir (pod
//! shims and containers in `pods/*/*/*/state.json`, the service proxy in
//! `proxy/state.json`) that is still the same process (start time, field 22 of
//! `/proc/<pid>/stat`) is killed by PID. Never by name.

use crate::pods::{Proc, recorded_runs};
use crate::server::{ServeOptions, Slipway};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

/// Upper bound on one kubectl command.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server with pods may take to stop them all after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How long recorded processes may take to go once the server has exited.
const EXIT_LAG: Duration = Duration::from_secs(3);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);

/// The start time (field 22 of `/proc/<pid>/stat`) of a live, non-zombie process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// SIGKILL to `p`, if it is still that very process.
pub fn kill_proc(p: Proc) -> bool {
    if !p.alive() {
        return false;
    }
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(p.pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    true
}

/// The proxy process recorded in `<data_dir>/proxy/state.json`.
fn recorded_proxy(data_dir: &Path) -> Option<Proc> {
    let text = std::fs::read_to_string(data_dir.join("proxy").join("state.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(Proc {
        pid: u32::try_from(v["pid"].as_u64()?).ok()?,
        start: v["startTime"].as_u64()?,
    })
}

/// A server, its data dir and every process it was seen to run.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    bin: PathBuf,
    server: Option<Slipway>,
    server_proc: Option<Proc>,
    starts: usize,
    seen: BTreeSet<Proc>,
}

impl Cluster {
    /// Starts `slipway serve --runtime process --data-dir <fresh> --listen 127.0.0.1:0`.
    pub async fn start(bin: &Path) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-bench-svc-")
            .tempdir()?;
        let mut c = Cluster {
            data_dir: dir.path().join("data"),
            dir,
            bin: bin.to_path_buf(),
            server: None,
            server_proc: None,
            starts: 0,
            seen: BTreeSet::new(),
        };
        c.spawn().await?;
        Ok(c)
    }

    /// Starts the server (again) on the data dir.
    pub async fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let options = ServeOptions {
            runtime: Some("process"),
            stderr_log: Some(
                self.dir
                    .path()
                    .join(format!("serve-{}.stderr", self.starts)),
            ),
        };
        let (server, _) = Slipway::start_with(&self.bin, &self.data_dir, &options).await?;
        let pid = server.pid()?;
        let start = start_time(pid).context("reading the server's start time")?;
        self.server_proc = Some(Proc { pid, start });
        self.server = Some(server);
        self.note_processes();
        Ok(())
    }

    /// The server's process.
    pub fn server_proc(&self) -> Option<Proc> {
        self.server_proc
    }

    /// How to reach the server's API directly (while it runs).
    pub(crate) fn endpoint(&self) -> Option<crate::client::Endpoint> {
        self.server.as_ref().map(|s| s.endpoint.clone())
    }

    /// Remembers every process recorded in the data dir now.
    pub fn note_processes(&mut self) {
        for r in recorded_runs(&self.data_dir) {
            self.seen.insert(r.shim);
            self.seen.extend(r.container);
        }
        self.seen.extend(recorded_proxy(&self.data_dir));
    }

    /// `kill -9` of `slipway serve` by its PID, as a crash; returns once it is gone.
    pub async fn kill9(&mut self) -> Result<()> {
        self.note_processes();
        let p = self.server_proc.take().context("no server running")?;
        kill_proc(p);
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.alive() {
            if Instant::now() > deadline {
                bail!("slipway serve (pid {}) outlived SIGKILL by 10 s", p.pid);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Reaps it (tokio's kill_on_drop finds it already dead).
        self.server = None;
        Ok(())
    }

    fn kubectl_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.data_dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl (bounded) and returns its stdout; fails on a non-zero exit.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_input(args, None).await
    }

    /// Runs kubectl with `input` on stdin.
    pub async fn kubectl_input(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut cmd = self.kubectl_cmd(args);
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().context("running kubectl")?;
        if let Some(text) = input {
            let mut stdin = child.stdin.take().context("kubectl stdin")?;
            stdin.write_all(text.as_bytes()).await?;
            drop(stdin);
        }
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} took over {KUBECTL_TIMEOUT:?}"))??;
        if !out.status.success() {
            bail!(
                "kubectl {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -`.
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        self.kubectl_input(&["apply", "-f", "-"], Some(yaml))
            .await
            .map(drop)
    }

    /// `kubectl get <args> -o json`, parsed.
    pub async fn get_json(&self, args: &[&str]) -> Result<Value> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&full).await?)?)
    }

    /// `kubectl rollout status deploy/<name>` (bounded).
    pub async fn rollout(&self, deploy: &str) -> Result<()> {
        let out = self
            .kubectl(&[
                "rollout",
                "status",
                &format!("deploy/{deploy}"),
                "--timeout=120s",
            ])
            .await?;
        if !out.contains("successfully rolled out") {
            bail!("rollout of {deploy}: {out}");
        }
        Ok(())
    }

    /// The Service's `spec.clusterIP` and first port.
    pub async fn cluster_addr(&self, svc: &str) -> Result<SocketAddr> {
        let v = self.get_json(&["svc", svc]).await?;
        let ip = v["spec"]["clusterIP"]
            .as_str()
            .context("the Service has no clusterIP")?;
        let port = v["spec"]["ports"][0]["port"]
            .as_u64()
            .context("the Service has no port")?;
        let addr: SocketAddr = format!("{ip}:{port}").parse()?;
        if !addr.ip().is_loopback() {
            bail!("ClusterIP {ip} is not on 127.0.0.0/8");
        }
        Ok(addr)
    }

    /// The ready endpoints of the Service's EndpointSlices: the pod names they point at.
    pub async fn ready_endpoints(&self, svc: &str) -> Result<Vec<String>> {
        let v = self
            .get_json(&[
                "endpointslices",
                "-l",
                &format!("kubernetes.io/service-name={svc}"),
            ])
            .await?;
        Ok(v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .map(|e| e["targetRef"]["name"].as_str().unwrap_or("?").to_string())
            .collect())
    }

    /// Waits (bounded) until the Service has `n` ready endpoints, each of a pod whose name
    /// starts with `prefix`.
    pub async fn wait_endpoints(
        &self,
        svc: &str,
        n: usize,
        prefix: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let eps = self.ready_endpoints(svc).await?;
            if eps.len() == n && eps.iter().all(|e| e.starts_with(prefix)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "service {svc}: wanted {n} ready endpoints of {prefix}*, have {eps:?} after \
                     {timeout:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (bounded) until exactly `n` pods match `selector` (terminating ones count
    /// until they are gone).
    pub async fn wait_pods(&mut self, selector: &str, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.note_processes();
            let v = self.get_json(&["pods", "-l", selector]).await?;
            let have = v["items"].as_array().map_or(0, Vec::len);
            if have == n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{have} pods match {selector}, wanted {n}, after {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The WARN/ERROR lines and panics the server(s) logged.
    pub fn stderr_problems(&self) -> Vec<String> {
        (1..=self.starts)
            .flat_map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("serve-{i}.stderr")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("panicked"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// SIGTERM and a bounded wait, then kills (by PID) whatever recorded process is left;
    /// returns the problems seen (leaks, a server that needed SIGKILL).
    pub async fn shutdown(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        self.note_processes();
        if let Some(server) = self.server.take() {
            match server.stop_within(STOP_GRACE).await {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "slipway serve did not exit within {STOP_GRACE:?} of SIGTERM; killed"
                )),
                Err(e) => problems.push(format!("stopping slipway serve: {e:#}")),
            }
        }
        self.server_proc = None;
        let deadline = Instant::now() + EXIT_LAG;
        while self.seen.iter().any(|p| p.alive()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for p in self.reap() {
            problems.push(format!(
                "pid {} ({}) outlived slipway serve by {EXIT_LAG:?}; killed",
                p.pid,
                p.cmdline()
            ));
        }
        problems
    }

    /// Kills every seen or recorded process still alive; returns them.
    fn reap(&mut self) -> Vec<Proc> {
        self.note_processes();
        let left: Vec<Proc> = self.seen.iter().copied().filter(|p| p.alive()).collect();
        for p in &left {
            kill_proc(*p);
        }
        left
    }
}

impl Drop for Cluster {
    /// The error path: SIGTERM the server by PID and wait (bounded), then kill every
    /// recorded process left, by PID.
    fn drop(&mut self) {
        self.note_processes();
        if let Some(p) = self.server_proc.take() {
            if p.alive() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(p.pid.to_string())
                    .status();
            }
            let deadline = Instant::now() + STOP_GRACE;
            while p.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Kills the server if it is still running (kill_on_drop) and reaps it.
        self.server = None;
        let deadline = Instant::now() + EXIT_LAG;
        while self.seen.iter().any(|p| p.alive()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in self.reap() {
            eprintln!("warning: killed pid {} left by a services benchmark", p.pid);
        }
    }
}
