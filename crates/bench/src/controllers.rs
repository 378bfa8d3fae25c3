//! `slipway-bench controllers`: the Deployment and ReplicaSet controllers, the garbage
//! collector and the simulated node agent (`slipway serve --runtime simulated`), each target
//! against a baseline from the same run:
//!
//! 1. a rolling update of a 100-replica Deployment (wall time and overhead per wave, against
//!    the simulated ready delays and the same number of sequential API writes);
//! 2. convergence of 1,000 Deployments × 10 replicas from a cold start (against POSTing the
//!    same 10,000 pods directly), with the server's peak and final memory;
//! 3. the server's CPU time over an idle window with those objects settled (against an empty
//!    server).

use crate::client::{Conn, JSON, MERGE_PATCH};
use crate::load::create_many;
use crate::report::{Goal, Metric, header, median};
use crate::server::{ServeOptions, Slipway, cpu_seconds, ms, proc_status_bytes};
use crate::watch::{Watch, revision};
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rollouts timed (the median is quoted).
    pub trials: usize,
    /// Replicas of the rolled-out Deployment.
    pub rollout_replicas: u64,
    /// Deployments created for the convergence benchmark.
    pub deployments: usize,
    /// Replicas of each of those.
    pub replicas_each: u64,
    /// The idle window for the CPU measurement.
    pub idle: Duration,
    /// Run only this part (default: all).
    pub only: Option<Part>,
}

/// Which parts to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The rolling updates (metric 1).
    Rollouts,
    /// Convergence of the Deployments, memory and idle CPU (metrics 2 and 3), without the
    /// direct-POST baseline (its ratio shows n/a).
    Convergence,
}

/// The options of `slipway-bench controllers`.
#[derive(clap::Args, Debug)]
pub struct ControllersArgs {
    #[command(flatten)]
    pub common: crate::Args,
    /// Run only this part (default: all).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

impl Plan {
    /// The full run (about two minutes).
    pub fn full() -> Plan {
        Plan {
            trials: 9,
            rollout_replicas: 100,
            deployments: 1_000,
            replicas_each: 10,
            idle: Duration::from_secs(10),
            only: None,
        }
    }

    /// A quick smoke run: two rollouts, 100 Deployments, a 5 s idle window.
    pub fn quick() -> Plan {
        Plan {
            trials: 2,
            rollout_replicas: 100,
            deployments: 100,
            replicas_each: 10,
            idle: Duration::from_secs(5),
            only: None,
        }
    }
}

/// Concurrent connections that POST the Deployments (and the baseline's pods).
const CREATE_CONNS: usize = 16;
/// Upper bound on one rollout.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on creating the Deployments or the baseline's pods.
const CREATE_TIMEOUT: Duration = Duration::from_secs(90);
/// Upper bound on the convergence (from the first POST).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the convergence progress is sampled for the notes.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Upper bound on waiting for the store to go quiet.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The store is settled once its revision has not moved for this long.
const QUIET: Duration = Duration::from_millis(500);
/// How often the settle loop samples the revision.
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// Upper bound on the baseline's sequential patches.
const MAX_BASELINE_WRITES: u64 = 20_000;
/// Time after start before an idle window is measured.
const WARM_UP: Duration = Duration::from_secs(2);
/// Readiness delay of every simulated pod (`sim.slipway.dev/ready-after`).
const READY_AFTER: &str = "0s";

const NS: &str = "/api/v1/namespaces/default";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const REPLICASETS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const ROLLOUT: &str = "rollout";
/// A cheap list whose `resourceVersion` is the store's current revision.
const REVISION_PROBE: &str = "/api/v1/namespaces/default/configmaps?limit=1";

/// Runs every controller benchmark and prints one line per metric as it is measured.
pub async fn run(bin: PathBuf, plan: Plan) -> Result<Vec<Metric>> {
    let dir = tempfile::tempdir()?;
    let mut metrics = Vec::new();
    let mut problems = Vec::new();
    println!("{}", header());
    let mut emit = |m: Metric| {
        println!("{}", m.line());
        metrics.push(m);
    };

    // 3 (baseline). An empty server: idle CPU and memory.
    let empty = idle_empty_server(&bin, dir.path(), plan, &mut problems).await?;
    eprintln!(
        "note: empty server: {:.1} ms CPU over {:.0} s idle, VmRSS {:.1} MB, VmHWM {:.1} MB",
        empty.cpu_ms,
        plan.idle.as_secs_f64(),
        mb(empty.rss),
        mb(empty.hwm)
    );

    // 1. Rolling updates.
    if plan.only != Some(Part::Convergence) {
        rollout_metrics(&bin, dir.path(), plan, &mut problems, &mut emit).await?;
    }
    if plan.only == Some(Part::Rollouts) {
        return finish(metrics, problems);
    }

    // 2 (baseline). The same pods, POSTed directly.
    let pods = plan.deployments * plan.replicas_each as usize;
    let direct_s = if plan.only == Some(Part::Convergence) {
        f64::NAN
    } else {
        post_pods_directly(&bin, dir.path(), plan, &mut problems).await?
    };

    // 2 + 3. Convergence, memory, idle CPU.
    let c = converge(&bin, dir.path(), plan, &mut problems).await?;
    let d = plan.deployments;
    emit(Metric {
        name: format!("{d} Deployments x {} all Available (s)", plan.replicas_each),
        value: c.converged_s,
        baseline: direct_s,
        goal: Goal::Below(20.0),
    });
    emit(Metric {
        name: format!("{pods} pods converged vs KWOK gate (s)"),
        value: c.converged_s,
        baseline: 60.0 * pods as f64 / 10_000.0,
        goal: Goal::None,
    });
    emit(Metric {
        name: format!("server peak VmHWM, {pods} pods (MB)"),
        value: mb(c.hwm),
        baseline: mb(empty.hwm),
        goal: Goal::Below(400.0),
    });
    emit(Metric {
        name: format!("server final VmRSS, {pods} pods (MB)"),
        value: mb(c.rss),
        baseline: mb(empty.rss),
        goal: Goal::Below(400.0),
    });
    emit(Metric {
        name: format!(
            "idle CPU over {:.0} s, {d} Deployments{} (ms)",
            plan.idle.as_secs_f64(),
            if c.settled { "" } else { " UNSETTLED" }
        ),
        value: c.idle_cpu_ms,
        baseline: empty.cpu_ms,
        goal: Goal::Below(100.0 * plan.idle.as_secs_f64() / 10.0),
    });

    finish(metrics, problems)
}

/// Prints the servers' problems and returns the metrics.
fn finish(metrics: Vec<Metric>, problems: Vec<String>) -> Result<Vec<Metric>> {
    if problems.is_empty() {
        eprintln!("note: no WARN/ERROR lines or panics on the servers' stderr");
    }
    for p in &problems {
        eprintln!("warning: {p}");
    }
    Ok(metrics)
}

/// Metric 1: the rolling updates.
async fn rollout_metrics(
    bin: &Path,
    dir: &Path,
    plan: Plan,
    problems: &mut Vec<String>,
    emit: &mut impl FnMut(Metric),
) -> Result<()> {
    let r = rollouts(bin, dir, plan, problems).await?;
    let n = plan.rollout_replicas;
    emit(Metric {
        name: format!("rollout of {n} replicas, wall time (ms)"),
        value: r.wall_ms,
        baseline: 0.0,
        goal: Goal::Below(1_000.0),
    });
    emit(Metric {
        name: format!("rollout vs {:.0} sequential PATCHes (ms)", r.writes),
        value: r.wall_ms,
        baseline: r.writes_ms,
        goal: Goal::None,
    });
    emit(Metric {
        name: "rollout overhead per wave (ms)".into(),
        value: r.per_wave_ms,
        baseline: 0.0,
        goal: Goal::Below(10.0),
    });
    emit(Metric {
        name: "rollout overhead per wave vs PATCHes (ms)".into(),
        value: r.per_wave_ms,
        baseline: r.writes_per_wave_ms,
        goal: Goal::None,
    });
    emit(Metric {
        name: "server CPU per rollout vs its wall time (ms)".into(),
        value: r.server_cpu_ms,
        baseline: r.wall_ms,
        goal: Goal::None,
    });
    Ok(())
}

/// Bytes to MB (10^6).
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Spawns a server on a fresh data dir under `dir`, logging its stderr there.
async fn start(bin: &Path, dir: &Path, name: &str, runtime: &'static str) -> Result<Slipway> {
    let options = ServeOptions {
        runtime: Some(runtime),
        stderr_log: Some(dir.join(format!("{name}.stderr"))),
    };
    let (server, _) = Slipway::start_with(bin, &dir.join(name), &options).await?;
    Ok(server)
}

/// Stops `server`, first noting the WARN/ERROR lines and panics on its stderr.
async fn stop(server: Slipway, name: &str, problems: &mut Vec<String>) -> Result<()> {
    let lines: Vec<String> = server.stderr_problems();
    if let Some(first) = lines.first() {
        problems.push(format!(
            "the {name} server logged {} WARN/ERROR lines, the first: {first}",
            lines.len()
        ));
    }
    if !server.stop().await? {
        problems.push(format!(
            "the {name} server did not exit within 10 s of SIGTERM and was killed"
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Objects

fn deployment_json(name: &str, replicas: u64, image: &str) -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name},
                        "annotations": {"sim.slipway.dev/ready-after": READY_AFTER}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        })
        .to_string(),
    )
}

fn scale_name(i: usize) -> String {
    format!("scale-{i:04}")
}

/// A pod like the ones the convergence benchmark's ReplicaSets create (same labels,
/// annotation and container), minus the owner reference.
fn pod_json(i: usize) -> Bytes {
    let app = scale_name(i / 10);
    Bytes::from(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("{app}-pod-{i:05}"), "labels": {"app": app},
                "annotations": {"sim.slipway.dev/ready-after": READY_AFTER}},
            "spec": {"containers": [{"name": "app", "image": "bench:1"}]},
        })
        .to_string(),
    )
}

pub(crate) fn int(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// A rollout is complete: every replica updated and available, none extra, and the status
/// describes the current generation (at least `min_generation`).
pub(crate) fn rollout_complete(d: &Value, replicas: u64, min_generation: u64) -> bool {
    let generation = int(d, "/metadata/generation").unwrap_or(0);
    generation >= min_generation
        && int(d, "/status/observedGeneration") == Some(generation)
        && int(d, "/status/replicas") == Some(replicas)
        && int(d, "/status/updatedReplicas") == Some(replicas)
        && int(d, "/status/availableReplicas") == Some(replicas)
}

/// Complete, with the `Available` condition true.
fn deployment_available(d: &Value, replicas: u64) -> bool {
    rollout_complete(d, replicas, 1)
        && d.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Available" && c["status"] == "True")
            })
}

pub(crate) fn status_summary(d: &Value) -> String {
    format!(
        "generation {:?}, status {}",
        int(d, "/metadata/generation"),
        d.get("status").map_or("none".into(), Value::to_string)
    )
}

// ------------------------------------------------------------------------------------------
// Helpers against the server

pub(crate) async fn get_json(conn: &mut Conn, path: &str) -> Result<Value> {
    let body = conn
        .expect_ok(Method::GET, path, JSON, Bytes::new())
        .await?;
    Ok(serde_json::from_slice(&body)?)
}

/// The store's current revision.
pub(crate) async fn store_revision(conn: &mut Conn) -> Result<u64> {
    Ok(revision(&get_json(conn, REVISION_PROBE).await?))
}

/// Waits (bounded by [`SETTLE_TIMEOUT`]) until the store's revision stays put for [`QUIET`];
/// returns how long that took (including the quiet period), or `None` if it never settled.
pub(crate) async fn settle(conn: &mut Conn) -> Result<Option<Duration>> {
    let start = Instant::now();
    let mut last = store_revision(conn).await?;
    let mut since = Instant::now();
    while start.elapsed() < SETTLE_TIMEOUT {
        tokio::time::sleep(SETTLE_POLL).await;
        let rv = store_revision(conn).await?;
        if rv != last {
            last = rv;
            since = Instant::now();
        } else if since.elapsed() >= QUIET {
            return Ok(Some(start.elapsed()));
        }
    }
    Ok(None)
}

/// `n` sequential merge patches of one ConfigMap on `conn`; total milliseconds.
async fn sequential_patches(conn: &mut Conn, name: &str, n: u64) -> Result<f64> {
    let path = format!("{NS}/configmaps/{name}");
    let t = Instant::now();
    for i in 0..n.min(MAX_BASELINE_WRITES) {
        let body = Bytes::from(format!(r#"{{"data":{{"n":"{i}"}}}}"#));
        conn.expect_ok(Method::PATCH, &path, MERGE_PATCH, body)
            .await?;
    }
    Ok(ms(t.elapsed()))
}

/// Reads `watch` until a Deployment event satisfies `done` (bounded by `deadline`); returns
/// that event's arrival time and object, or `None` with the last object seen.
async fn wait_for(
    watch: &mut Watch,
    deadline: Instant,
    done: impl Fn(&Value) -> bool,
) -> Result<std::result::Result<(Instant, Value), Option<Value>>> {
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, watch.events.recv()).await {
            Err(_) => return Ok(Err(last)),
            Ok(None) => bail!("the watch ended early"),
            Ok(Some(ev)) => {
                if ev.kind == "ERROR" {
                    bail!("watch error: {}", ev.object);
                }
                if done(&ev.object) {
                    return Ok(Ok((ev.at, ev.object)));
                }
                last = Some(ev.object);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// 1. Rolling updates

struct Rollouts {
    /// Median wall time from the image PATCH to the completed status seen on the watch.
    wall_ms: f64,
    /// Median writes the store committed during a rollout.
    writes: f64,
    /// Median time of that many sequential PATCHes (measured after each rollout).
    writes_ms: f64,
    /// Median (wall time − ready delays) ÷ waves.
    per_wave_ms: f64,
    /// Median PATCH time ÷ waves.
    writes_per_wave_ms: f64,
    /// Median CPU time of the server from the PATCH to the completed status: steadier than
    /// wall time on a shared machine.
    server_cpu_ms: f64,
}

async fn rollouts(
    bin: &Path,
    dir: &Path,
    plan: Plan,
    problems: &mut Vec<String>,
) -> Result<Rollouts> {
    let server = start(bin, dir, "rollout", "simulated").await?;
    let pid = server.pid()?;
    let ep = server.endpoint.clone();
    let mut conn = ep.connect().await?;
    let replicas = plan.rollout_replicas;
    let d_path = format!("{DEPLOYMENTS}/{ROLLOUT}");
    let by_name = format!("&fieldSelector=metadata.name%3D{ROLLOUT}");

    // The Deployment, fully available (also the warm-up).
    let rv0 = store_revision(&mut conn).await?;
    let mut watch = Watch::start(&ep, DEPLOYMENTS, &rv0.to_string(), &by_name).await?;
    let t0 = Instant::now();
    conn.expect_ok(
        Method::POST,
        DEPLOYMENTS,
        JSON,
        deployment_json(ROLLOUT, replicas, "bench:0"),
    )
    .await?;
    match wait_for(&mut watch, t0 + ROLLOUT_TIMEOUT, |d| {
        rollout_complete(d, replicas, 1)
    })
    .await?
    {
        Ok((at, _)) => eprintln!(
            "note: {replicas}-replica Deployment created and fully available in {:.0} ms",
            ms(at - t0)
        ),
        Err(last) => bail!(
            "the {replicas}-replica Deployment was not available within {ROLLOUT_TIMEOUT:?}; last: {}",
            last.as_ref().map_or("none".into(), status_summary)
        ),
    }
    drop(watch);
    settle(&mut conn).await?;
    conn.expect_ok(
        Method::POST,
        &format!("{NS}/configmaps"),
        JSON,
        Bytes::from_static(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench-writes"},"data":{"n":"0"}}"#),
    )
    .await?;

    let (mut wall, mut writes, mut writes_ms, mut per_wave, mut writes_per_wave) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut server_cpu = Vec::new();
    for trial in 1..=plan.trials {
        // Each ReplicaSet's size before the rollout.
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let rs_list = get_json(
            &mut conn,
            &format!("{REPLICASETS}?labelSelector=app%3D{ROLLOUT}"),
        )
        .await?;
        for rs in rs_list["items"].as_array().into_iter().flatten() {
            let name = rs.pointer("/metadata/name").and_then(Value::as_str);
            if let (Some(name), Some(n)) = (name, int(rs, "/spec/replicas")) {
                sizes.insert(name.to_string(), n);
            }
        }
        let rv0 = store_revision(&mut conn).await?;
        let mut d_watch = Watch::start(&ep, DEPLOYMENTS, &rv0.to_string(), &by_name).await?;
        let mut rs_watch = Watch::start(
            &ep,
            REPLICASETS,
            &rv0.to_string(),
            &format!("&labelSelector=app%3D{ROLLOUT}"),
        )
        .await?;
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": format!("bench:{trial}")}]}}}});
        let cpu0 = cpu_seconds(pid)?;
        let t0 = Instant::now();
        let patched = conn
            .expect_ok(
                Method::PATCH,
                &d_path,
                MERGE_PATCH,
                Bytes::from(patch.to_string()),
            )
            .await?;
        let patched: Value = serde_json::from_slice(&patched)?;
        let generation = int(&patched, "/metadata/generation").context("no generation")?;
        let rv_patch = revision(&patched);
        let (done_at, done) = match wait_for(&mut d_watch, t0 + ROLLOUT_TIMEOUT, |d| {
            rollout_complete(d, replicas, generation)
        })
        .await?
        {
            Ok(found) => found,
            Err(last) => {
                problems.push(format!(
                    "rollout {trial} did not complete within {ROLLOUT_TIMEOUT:?}; last: {}",
                    last.as_ref().map_or("none".into(), status_summary)
                ));
                settle(&mut conn).await?;
                continue;
            }
        };
        let took = ms(done_at - t0);
        let cpu_ms = (cpu_seconds(pid)? - cpu0) * 1e3;
        let rv_done = revision(&done);
        // Writes by the controllers, the agent and the event recorder (not the user's PATCH).
        let n_writes = rv_done.saturating_sub(rv_patch);
        let settled = settle(&mut conn).await?;
        // Scale steps: each change of a ReplicaSet's spec.replicas up to the completion.
        let mut waves = 0u64;
        while let Ok(ev) = rs_watch.events.try_recv() {
            if ev.kind == "DELETED" || ev.kind == "BOOKMARK" || revision(&ev.object) > rv_done {
                continue;
            }
            let name = ev.object.pointer("/metadata/name").and_then(Value::as_str);
            let (Some(name), Some(n)) = (name, int(&ev.object, "/spec/replicas")) else {
                continue;
            };
            let previous = sizes.insert(name.to_string(), n);
            if previous.unwrap_or(0) != n {
                waves += 1;
            }
        }
        drop((d_watch, rs_watch));
        let base = sequential_patches(&mut conn, "bench-writes", n_writes).await?;
        // Ready delays on the critical path: READY_AFTER (0 s) per wave.
        let ready_delays_ms = 0.0;
        let waves_f = waves.max(1) as f64;
        eprintln!(
            "note: rollout {trial}: {took:.0} ms, {waves} waves (ReplicaSet scale steps), \
             {n_writes} writes, server CPU {cpu_ms:.0} ms; {n_writes} sequential PATCHes \
             {base:.0} ms; settled {}",
            settled.map_or("never (still writing after 30 s)".into(), |s| format!(
                "{:.0} ms after completion",
                ms(s)
            ))
        );
        wall.push(took);
        writes.push(n_writes as f64);
        writes_ms.push(base);
        per_wave.push((took - ready_delays_ms) / waves_f);
        writes_per_wave.push(base / waves_f);
        server_cpu.push(cpu_ms);
    }
    stop(server, "rollout", problems).await?;
    if wall.is_empty() {
        problems.push("no rollout completed".into());
    }
    Ok(Rollouts {
        wall_ms: median(&wall),
        writes: median(&writes),
        writes_ms: median(&writes_ms),
        per_wave_ms: median(&per_wave),
        writes_per_wave_ms: median(&writes_per_wave),
        server_cpu_ms: median(&server_cpu),
    })
}

// ------------------------------------------------------------------------------------------
// 2. Convergence at scale, and 3. idle cost

/// Seconds to POST the convergence benchmark's pods to a fresh `--runtime process` server
/// (pods are stored, nothing creates or runs them).
async fn post_pods_directly(
    bin: &Path,
    dir: &Path,
    plan: Plan,
    problems: &mut Vec<String>,
) -> Result<f64> {
    let server = start(bin, dir, "direct", "process").await?;
    let n = plan.deployments * plan.replicas_each as usize;
    let path = format!("{NS}/pods");
    let (created, took) = create_many(
        &server.endpoint,
        &path,
        n,
        CREATE_CONNS,
        CREATE_TIMEOUT,
        pod_json,
    )
    .await?;
    eprintln!(
        "note: baseline: {created} pods POSTed directly in {:.2} s ({:.0} pods/s, \
         {CREATE_CONNS} connections, --runtime process)",
        took.as_secs_f64(),
        created as f64 / took.as_secs_f64()
    );
    stop(server, "direct-pods", problems).await?;
    Ok(took.as_secs_f64())
}

struct Idle {
    cpu_ms: f64,
    rss: u64,
    hwm: u64,
}

/// CPU milliseconds `pid` uses over `window`, the store writes in that window, and the CPU
/// milliseconds of each whole second in it (to tell a draining backlog from a steady cost).
async fn idle_window(conn: &mut Conn, pid: u32, window: Duration) -> Result<(f64, u64, Vec<f64>)> {
    let rv0 = store_revision(conn).await?;
    let start = Instant::now();
    let cpu0 = cpu_seconds(pid)?;
    let mut per_second = Vec::new();
    let mut prev = cpu0;
    for s in 1..=window.as_secs() {
        tokio::time::sleep_until((start + Duration::from_secs(s)).into()).await;
        let now = cpu_seconds(pid)?;
        per_second.push((now - prev) * 1e3);
        prev = now;
    }
    tokio::time::sleep_until((start + window).into()).await;
    let cpu1 = cpu_seconds(pid)?;
    let rv1 = store_revision(conn).await?;
    Ok(((cpu1 - cpu0) * 1e3, rv1 - rv0, per_second))
}

fn series(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn idle_empty_server(
    bin: &Path,
    dir: &Path,
    plan: Plan,
    problems: &mut Vec<String>,
) -> Result<Idle> {
    let server = start(bin, dir, "empty", "simulated").await?;
    let pid = server.pid()?;
    let mut conn = server.endpoint.connect().await?;
    tokio::time::sleep(WARM_UP).await;
    let (cpu_ms, idle_writes, per_second) = idle_window(&mut conn, pid, plan.idle).await?;
    eprintln!(
        "note: empty server idle: {idle_writes} writes; CPU ms per second: {}",
        series(&per_second)
    );
    let idle = Idle {
        cpu_ms,
        rss: proc_status_bytes(pid, "VmRSS")?,
        hwm: proc_status_bytes(pid, "VmHWM")?,
    };
    drop(conn);
    stop(server, "empty", problems).await?;
    Ok(idle)
}

struct Converged {
    /// Seconds from the first POST to the last Deployment seen Available on the watch
    /// (NaN if not all converged).
    converged_s: f64,
    /// Whether the store went quiet before the idle window.
    settled: bool,
    idle_cpu_ms: f64,
    rss: u64,
    hwm: u64,
}

async fn converge(
    bin: &Path,
    dir: &Path,
    plan: Plan,
    problems: &mut Vec<String>,
) -> Result<Converged> {
    let server = start(bin, dir, "scale", "simulated").await?;
    let pid = server.pid()?;
    let ep = server.endpoint.clone();
    let mut conn = ep.connect().await?;
    let (n, each) = (plan.deployments, plan.replicas_each);
    let rv0 = store_revision(&mut conn).await?;
    let mut watch = Watch::start(&ep, DEPLOYMENTS, &rv0.to_string(), "").await?;

    let t0 = Instant::now();
    let creating = {
        let ep = ep.clone();
        tokio::spawn(async move {
            create_many(
                &ep,
                DEPLOYMENTS,
                n,
                CREATE_CONNS,
                CREATE_TIMEOUT,
                move |i| deployment_json(&scale_name(i), each, "bench:1"),
            )
            .await
        })
    };
    let mut available: HashSet<String> = HashSet::with_capacity(n);
    let mut last_at = t0;
    let mut rv_done = rv0;
    let deadline = t0 + CONVERGE_TIMEOUT;
    let mut next_progress = t0 + PROGRESS_EVERY;
    let mut progress = Vec::new();
    while available.len() < n {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_progress {
            progress.push(format!(
                "{:.0} s: {}",
                (now - t0).as_secs_f64(),
                available.len()
            ));
            next_progress += PROGRESS_EVERY;
        }
        let left = deadline.min(next_progress).saturating_duration_since(now);
        match tokio::time::timeout(left, watch.events.recv()).await {
            Err(_) => continue,
            Ok(None) => bail!("the Deployment watch ended early"),
            Ok(Some(ev)) => {
                if ev.kind == "ERROR" {
                    bail!("watch error: {}", ev.object);
                }
                if ev.kind == "DELETED" || !deployment_available(&ev.object, each) {
                    continue;
                }
                let name = ev.object.pointer("/metadata/name").and_then(Value::as_str);
                if let Some(name) = name
                    && available.insert(name.to_string())
                {
                    last_at = ev.at;
                    rv_done = revision(&ev.object);
                }
            }
        }
    }
    drop(watch);
    if !progress.is_empty() {
        eprintln!(
            "note: Deployments Available so far, every {} s: {}",
            PROGRESS_EVERY.as_secs(),
            progress.join(", ")
        );
    }
    let (created, post_took) = creating.await??;
    let converged_s = if available.len() == n {
        (last_at - t0).as_secs_f64()
    } else {
        problems.push(format!(
            "only {} of {n} Deployments became Available within {CONVERGE_TIMEOUT:?}",
            available.len()
        ));
        f64::NAN
    };
    let writes = rv_done - rv0;
    eprintln!(
        "note: {created} Deployments POSTed in {:.2} s ({:.0}/s, {CREATE_CONNS} connections); \
         all Available after {converged_s:.2} s; the store committed {writes} writes by then \
         ({:.0} writes/s, {:.1} per pod)",
        post_took.as_secs_f64(),
        created as f64 / post_took.as_secs_f64(),
        writes as f64 / converged_s,
        writes as f64 / (n as f64 * each as f64)
    );
    let hwm_at_convergence = proc_status_bytes(pid, "VmHWM")?;
    // A store that has not converged keeps writing: do not wait for it to go quiet.
    let settled = if converged_s.is_nan() {
        None
    } else {
        settle(&mut conn).await?
    };
    let pods = get_json(&mut conn, &format!("{NS}/pods?limit=1")).await?;
    let pod_count = pods["items"].as_array().map_or(0, Vec::len) as u64
        + int(&pods, "/metadata/remainingItemCount").unwrap_or(0);
    eprintln!(
        "note: {pod_count} pods; {}; VmHWM at convergence {:.1} MB",
        settled.map_or("the store did not settle".into(), |s| format!(
            "the store settled {:.2} s after convergence",
            s.as_secs_f64()
        )),
        mb(hwm_at_convergence)
    );

    // 3. Idle.
    let (idle_cpu_ms, idle_writes, per_second) = idle_window(&mut conn, pid, plan.idle).await?;
    eprintln!(
        "note: {n} Deployments ({}): {idle_cpu_ms:.1} ms CPU and {idle_writes} writes over \
         {:.0} s without client requests; CPU ms per second: {}",
        if settled.is_some() {
            "settled"
        } else {
            "NOT settled"
        },
        plan.idle.as_secs_f64(),
        series(&per_second)
    );
    let result = Converged {
        settled: settled.is_some(),
        converged_s,
        idle_cpu_ms,
        rss: proc_status_bytes(pid, "VmRSS")?,
        hwm: proc_status_bytes(pid, "VmHWM")?,
    };
    drop(conn);
    stop(server, "scale", problems).await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_needs_every_count_and_the_generation() {
        let mut d = json!({
            "metadata": {"generation": 2},
            "status": {"observedGeneration": 2, "replicas": 10, "updatedReplicas": 10,
                "availableReplicas": 10,
                "conditions": [{"type": "Available", "status": "True"}]},
        });
        assert!(rollout_complete(&d, 10, 2));
        assert!(!rollout_complete(&d, 10, 3));
        assert!(deployment_available(&d, 10));
        d["status"]["replicas"] = json!(12);
        assert!(!rollout_complete(&d, 10, 2));
        d["status"]["replicas"] = json!(10);
        d["status"]["observedGeneration"] = json!(1);
        assert!(!rollout_complete(&d, 10, 1));
    }

    #[test]
    fn bodies_are_json() {
        let d: Value = serde_json::from_slice(&deployment_json("x", 3, "i:1")).unwrap();
        assert_eq!(d["spec"]["replicas"], 3);
        let p: Value = serde_json::from_slice(&pod_json(12)).unwrap();
        assert_eq!(p["metadata"]["labels"]["app"], "scale-0001");
    }
}
