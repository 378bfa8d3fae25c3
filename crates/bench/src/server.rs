//! Spawning and stopping `slipway serve`, and reading its process counters from `/proc`.

use crate::client::{Conn, Endpoint};
use anyhow::{Context as _, Result, anyhow, bail};
use http::StatusCode;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Upper bound on any wait for the server to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run the server.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `--runtime` (the server's default when `None`).
    pub runtime: Option<&'static str>,
    /// Where to write the server's stderr (discarded when `None`).
    pub stderr_log: Option<PathBuf>,
}

/// A running `slipway serve`; killed when dropped.
pub struct Slipway {
    child: Child,
    /// How to reach it.
    pub endpoint: Endpoint,
    stderr_log: Option<PathBuf>,
}

impl Slipway {
    /// Spawns `slipway serve` on `data_dir` with the server's defaults; see [`Slipway::start_with`].
    pub async fn start(bin: &Path, data_dir: &Path) -> Result<(Slipway, Duration)> {
        Slipway::start_with(bin, data_dir, &ServeOptions::default()).await
    }

    /// Spawns `slipway serve` on `data_dir` and returns once an authenticated `GET /version`
    /// over TLS succeeds, with the time from spawn to that success.
    pub async fn start_with(
        bin: &Path,
        data_dir: &Path,
        options: &ServeOptions,
    ) -> Result<(Slipway, Duration)> {
        let stderr = match &options.stderr_log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        let t0 = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if let Some(runtime) = options.runtime {
            cmd.arg("--runtime").arg(runtime);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("API server listening on https://") {
                    return Ok(addr.trim().parse()?);
                }
            }
            Err(anyhow!("slipway serve exited before it was listening"))
        })
        .await
        .map_err(|_| anyhow!("slipway serve printed no address within {READY_TIMEOUT:?}"))??;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ca = std::fs::read_to_string(data_dir.join(slipway_pki::CA_CERT_FILE))?;
        let token = std::fs::read_to_string(data_dir.join(slipway_pki::TOKEN_FILE))?;
        let endpoint = Endpoint::new(addr, &ca, &token)?;
        loop {
            if let Ok(mut c) = endpoint.connect().await
                && let Ok((StatusCode::OK, _)) = c.get("/version").await
            {
                break;
            }
            if t0.elapsed() > READY_TIMEOUT {
                bail!("GET /version did not succeed within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready = t0.elapsed();
        Ok((
            Slipway {
                child,
                endpoint,
                stderr_log: options.stderr_log.clone(),
            },
            ready,
        ))
    }

    /// The server's process id.
    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("server already exited")
    }

    /// SIGTERM, and wait (bounded) for the exit; SIGKILL after 10 s. Returns false when the
    /// server had to be killed.
    pub async fn stop(self) -> Result<bool> {
        self.stop_within(Duration::from_secs(10)).await
    }

    /// SIGTERM, and wait up to `grace` for the exit, then SIGKILL. Returns false when the
    /// server had to be killed.
    pub async fn stop_within(mut self, grace: Duration) -> Result<bool> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                self.child.kill().await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The lines of the server's stderr (so far) that are WARN or ERROR level or a panic.
    pub fn stderr_problems(&self) -> Vec<String> {
        let Some(path) = &self.stderr_log else {
            return Vec::new();
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }
}

/// Milliseconds in `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Opens `n` connections.
pub async fn connect_all(ep: &Endpoint, n: usize) -> Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(ep.connect().await?);
    }
    Ok(conns)
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/<pid>/status`, in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

/// CPU time (user + system) the process `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    // After the name: state is field 3, utime field 14 and stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .context("short /proc/<pid>/stat")
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / clock_ticks_per_sec())
}

/// `getconf CLK_TCK` (the unit of `/proc/<pid>/stat` times), else the usual 100.
pub fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc_counters() {
        let pid = std::process::id();
        assert!(proc_status_bytes(pid, "VmRSS").unwrap() > 0);
        assert!(proc_status_bytes(pid, "VmHWM").unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}
