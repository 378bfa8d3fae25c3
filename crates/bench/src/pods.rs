//! A `slipway serve --runtime process` whose pods run as real processes: the shim and
//! container processes recorded in its data dir (`pods/<uid>/<container>/<run>/state.json`),
//! their CPU time and memory from `/proc`, and a shutdown that makes sure none of them
//! outlives the server.

use crate::client::Endpoint;
use crate::server::{ServeOptions, Slipway, clock_ticks_per_sec};
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a server with pods may take to stop them all after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How long a recorded process may outlive the server's exit (a shim writes `exit.json`
/// as its last act, then exits) before it counts as leaked.
const EXIT_LAG: Duration = Duration::from_secs(2);

/// One process, identified by its PID and its start time (field 22 of `/proc/<pid>/stat`,
/// in clock ticks since boot), so that a reused PID is never mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proc {
    /// The process id.
    pub pid: u32,
    /// Its start time, in clock ticks since boot.
    pub start: u64,
}

impl Proc {
    /// Whether this very process is still running (not a zombie).
    pub fn alive(self) -> bool {
        stat_fields(self.pid).is_some_and(|f| {
            !matches!(f.first().map(String::as_str), Some("Z" | "X"))
                && field(&f, 22) == Some(self.start)
        })
    }

    /// CPU ticks used so far: (its own utime + stime, its reaped children's cutime +
    /// cstime); `None` once it is gone or the PID belongs to another process.
    pub fn cpu_ticks(self) -> Option<(u64, u64)> {
        let f = stat_fields(self.pid)?;
        if field(&f, 22) != Some(self.start) {
            return None;
        }
        Some((
            field(&f, 14)? + field(&f, 15)?,
            field(&f, 16)? + field(&f, 17)?,
        ))
    }

    /// `VmRSS` in bytes, if this process is still running.
    pub fn rss(self) -> Option<u64> {
        self.status_bytes("VmRSS")
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`) in bytes, or
    /// the plain number for a count (`Threads`), if this process is still running.
    pub fn status_bytes(self, name: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        kb_field(&status, name)
            .map(|kb| kb * 1024)
            .or_else(|| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse().ok())
            })
            .filter(|_| self.alive())
    }

    /// The proportional set size (`Pss` of `/proc/<pid>/smaps_rollup`: pages shared with
    /// other processes count in part), in bytes.
    pub fn pss(self) -> Option<u64> {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid)).ok()?;
        kb_field(&rollup, "Pss").map(|kb| kb * 1024)
    }

    /// The command line, for reports.
    pub fn cmdline(self) -> String {
        std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// SIGKILL, by PID.
    fn kill(self) {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(self.pid.to_string())
            .status();
    }
}

/// The value of a `Name:   123 kB` line, in kB.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/<pid>/stat` split by [`stat_fields`].
fn field(fields: &[String], n: usize) -> Option<u64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// The processes of one container run, as its shim recorded them.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The supervisor.
    pub shim: Proc,
    /// The container's main process.
    pub container: Option<Proc>,
}

/// Every container run recorded under `data_dir` (live or not).
pub fn recorded_runs(data_dir: &Path) -> Vec<Run> {
    let mut out = Vec::new();
    let dirs = |p: PathBuf| {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
    };
    for pod in dirs(data_dir.join("pods")) {
        for container in dirs(pod) {
            for run in dirs(container) {
                let Ok(text) = std::fs::read_to_string(run.join("state.json")) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let get = |pid: &str, start: &str| {
                    Some(Proc {
                        pid: u32::try_from(v[pid].as_u64()?).ok()?,
                        start: v[start].as_u64()?,
                    })
                };
                if let Some(shim) = get("shimPid", "shimStartTime") {
                    out.push(Run {
                        shim,
                        container: get("containerPid", "containerStartTime"),
                    });
                }
            }
        }
    }
    out
}

/// The live children of `parent` whose first argument is `mode`.
fn children_with_mode(parent: Proc, mode: &str) -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(f) = stat_fields(pid) else { continue };
        if field(&f, 4) != Some(u64::from(parent.pid)) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).nth(1) != Some(mode.as_bytes()) {
            continue;
        }
        if let Some(start) = field(&f, 22) {
            let p = Proc { pid, start };
            if p.alive() {
                out.push(p);
            }
        }
    }
    out
}

/// Clock ticks to seconds.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks_per_sec()
}

/// A running server with the process runtime, and every pod process it was seen to run.
pub struct PodServer {
    server: Option<Slipway>,
    /// How to reach it.
    pub endpoint: Endpoint,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// The server process.
    pub proc: Proc,
    name: String,
    /// Every shim and container process seen recorded in the data dir so far (pods whose
    /// files are gone included).
    seen: BTreeSet<Proc>,
}

impl PodServer {
    /// Spawns `slipway serve` (with `--runtime runtime`, else its default `--runtime
    /// process`) on a fresh data dir `dir/name`, with its stderr in `dir/name.stderr`.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        runtime: Option<&'static str>,
    ) -> Result<PodServer> {
        let data_dir = dir.join(name);
        let options = ServeOptions {
            runtime,
            stderr_log: Some(dir.join(format!("{name}.stderr"))),
        };
        let (server, _) = Slipway::start_with(bin, &data_dir, &options).await?;
        let pid = server.pid()?;
        let start = stat_fields(pid)
            .and_then(|f| field(&f, 22))
            .context("reading the server's start time")?;
        Ok(PodServer {
            endpoint: server.endpoint.clone(),
            server: Some(server),
            data_dir,
            proc: Proc { pid, start },
            name: name.to_string(),
            seen: BTreeSet::new(),
        })
    }

    /// The container runs recorded now whose shim is alive; remembers every recorded
    /// process for the leak check at shutdown.
    pub fn live_runs(&mut self) -> Vec<Run> {
        let runs = recorded_runs(&self.data_dir);
        for r in &runs {
            self.seen.insert(r.shim);
            self.seen.extend(r.container);
        }
        runs.into_iter().filter(|r| r.shim.alive()).collect()
    }

    /// The server's live exec servers (`<shim executable> zygote ...`, one per container
    /// that has had an exec probe or hook); remembered for the leak check at shutdown.
    pub fn exec_servers(&mut self) -> Vec<Proc> {
        let found = children_with_mode(self.proc, "zygote");
        self.seen.extend(found.iter().copied());
        found
    }

    /// SIGTERM (the server stops every pod), a bounded wait, then the leak check: every
    /// shim or container process ever seen must be gone. Leaked ones are reported in
    /// `problems` and killed by PID. Also notes WARN/ERROR lines on the server's stderr.
    pub async fn shutdown(mut self, problems: &mut Vec<String>) -> Result<()> {
        let _ = self.live_runs();
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        let lines = server.stderr_problems();
        if let Some(first) = lines.first() {
            problems.push(format!(
                "the {} server logged {} WARN/ERROR lines, the first: {first}",
                self.name,
                lines.len()
            ));
        }
        let t = Instant::now();
        let clean = server.stop_within(STOP_GRACE).await?;
        let stopped_in = t.elapsed();
        if !clean {
            problems.push(format!(
                "the {} server did not exit within {STOP_GRACE:?} of SIGTERM and was killed",
                self.name
            ));
        }
        let leaked = self.reap_leftovers();
        eprintln!(
            "note: {} server stopped in {:.2} s (SIGTERM); {} pod processes seen, {} left behind",
            self.name,
            stopped_in.as_secs_f64(),
            self.seen.len(),
            leaked.len()
        );
        for (p, cmd) in leaked {
            problems.push(format!(
                "LEAK: after the {} server exited, pid {} ({cmd}) was still running; killed",
                self.name, p.pid
            ));
        }
        Ok(())
    }

    /// Waits up to [`EXIT_LAG`] for every seen or recorded process to go, then kills the
    /// rest by PID; returns those, with their command lines.
    fn reap_leftovers(&mut self) -> Vec<(Proc, String)> {
        let _ = self.live_runs();
        let deadline = Instant::now() + EXIT_LAG;
        loop {
            let alive: Vec<Proc> = self.seen.iter().copied().filter(|p| p.alive()).collect();
            if alive.is_empty() {
                return Vec::new();
            }
            if Instant::now() >= deadline {
                return alive
                    .into_iter()
                    .map(|p| {
                        let cmd = p.cmdline();
                        p.kill();
                        (p, cmd)
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PodServer {
    /// The fallback when a benchmark fails half-way: SIGTERM the server and wait for it
    /// (bounded), then kill any pod process left, so nothing outlives the bench.
    fn drop(&mut self) {
        if self.server.is_none() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.proc.pid.to_string())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while self.proc.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Dropping the server kills it if it is still running (kill_on_drop).
        self.server = None;
        for (p, cmd) in self.reap_leftovers() {
            eprintln!(
                "warning: killed pid {} ({cmd}) left by the {} server",
                p.pid, self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let f = stat_fields(pid).unwrap();
        let me = Proc {
            pid,
            start: field(&f, 22).unwrap(),
        };
        assert!(me.alive());
        assert!(me.cpu_ticks().is_some());
        assert!(me.rss().unwrap() > 0);
        assert!(me.status_bytes("RssAnon").unwrap() > 0);
        assert!(me.status_bytes("Threads").unwrap() >= 1);
        assert!(me.pss().unwrap() > 0);
        let other = Proc {
            start: me.start + 1,
            ..me
        };
        assert!(!other.alive());
        assert!(other.cpu_ticks().is_none());
    }

    #[test]
    fn reads_state_files() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("pods/uid/app/0");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("state.json"),
            r#"{"shimPid": 10, "shimStartTime": 20, "containerPid": 11, "containerStartTime": 21}"#,
        )
        .unwrap();
        let runs = recorded_runs(dir.path());
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].shim, Proc { pid: 10, start: 20 });
        assert_eq!(runs[0].container, Some(Proc { pid: 11, start: 21 }));
    }
}
