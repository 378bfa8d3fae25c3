//! Part 5: many Rollouts on `slipway serve --runtime simulated`. The server first idles
//! empty (the baseline); then it receives the canary Rollouts (1 replica, no steps, no
//! Service) and the blue-green Rollouts with an active Service each; once all are Healthy
//! and the store is quiet, its CPU is read over an idle window, and its resident memory
//! every [`SAMPLE_EVERY`] over the soak.

use super::Plan;
use super::common::{ROLLOUTS, SERVICES};
use crate::controllers::{get_json, settle, store_revision};
use crate::load::create_many;
use crate::server::{ServeOptions, Slipway, cpu_seconds, proc_status_bytes};
use anyhow::{Result, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// How often memory is sampled during the soak.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples from this far into the soak on are the reference for "flat".
const REFERENCE_AFTER: Duration = Duration::from_secs(60);
/// Time after start before the empty server's idle window.
const WARM_UP: Duration = Duration::from_secs(2);
/// Concurrent connections creating the objects.
const CREATE_CONNS: usize = 16;
/// Bound on creating the objects.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on every Rollout becoming Healthy (from the first POST).
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the Rollouts are listed while waiting.
const LIST_EVERY: Duration = Duration::from_secs(1);

/// What part 5 measured.
pub struct Scale {
    /// Seconds to POST every object, and from the first POST to all Healthy.
    pub created_s: f64,
    pub healthy_s: f64,
    /// CPU over the idle window, percent of one core: empty, then with the Rollouts.
    pub empty_cpu_pct: f64,
    pub idle_cpu_pct: f64,
    /// MB (10^6 bytes).
    pub empty_rss_mb: f64,
    pub rss_first_mb: f64,
    pub rss_reference_mb: f64,
    pub reference_at_s: f64,
    pub rss_last_mb: f64,
    pub slope_mb_per_min: f64,
    /// CPU over the whole soak, percent of one core.
    pub soak_cpu_pct: f64,
}

pub async fn run(bin: &Path, plan: &Plan, problems: &mut Vec<String>) -> Result<Scale> {
    let dir = tempfile::Builder::new()
        .prefix("slipway-bench-ro-")
        .tempdir()?;
    let options = ServeOptions {
        runtime: Some("simulated"),
        stderr_log: Some(dir.path().join("serve.stderr")),
    };
    // Killed (SIGKILL, by the child handle) if anything below fails or times out.
    let (server, _) = Slipway::start_with(bin, &dir.path().join("data"), &options).await?;
    let bound = plan.soak + 2 * plan.idle + WARM_UP + CREATE_TIMEOUT + HEALTHY_TIMEOUT;
    let result = tokio::time::timeout(bound, body(&server, plan))
        .await
        .unwrap_or_else(|_| bail!("the scale part did not finish within {bound:?}"));
    let lines = server.stderr_problems();
    if let Some(first) = lines.first() {
        problems.push(format!(
            "scale: the server logged {} WARN/ERROR lines, the first: {first}",
            lines.len()
        ));
    }
    if !server.stop().await? {
        problems.push("scale: the server did not exit within 10 s of SIGTERM; killed".into());
    }
    result
}

fn canary_json(name: &str) -> Bytes {
    rollout_json(name, json!({"canary": {}}))
}

fn blue_green_json(name: &str) -> Bytes {
    rollout_json(name, json!({"blueGreen": {"activeService": name}}))
}

fn rollout_json(name: &str, strategy: Value) -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name},
                        "annotations": {"sim.slipway.dev/ready-after": "0s"}},
                    "spec": {"containers": [{"name": "app", "image": "bench:1"}]},
                },
                "strategy": strategy,
            },
        })
        .to_string(),
    )
}

fn service_json(name: &str) -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        })
        .to_string(),
    )
}

fn canary_name(i: usize) -> String {
    format!("ro-{i:04}")
}

fn blue_green_name(i: usize) -> String {
    format!("bg-{i:04}")
}

/// Healthy on the current revision, as observed for the current generation.
fn healthy(r: &Value) -> bool {
    let st = &r["status"];
    st["phase"] == "Healthy"
        && st["observedGeneration"] == r["metadata"]["generation"]
        && st["currentPodHash"].is_string()
        && st["currentPodHash"] == st["stablePodHash"]
}

/// CPU milliseconds over `window`, and per whole second.
async fn cpu_window(pid: u32, window: Duration) -> Result<(f64, Vec<f64>)> {
    let start = Instant::now();
    let cpu0 = cpu_seconds(pid)?;
    let mut prev = cpu0;
    let mut per_second = Vec::new();
    for s in 1..=window.as_secs() {
        tokio::time::sleep_until((start + Duration::from_secs(s)).into()).await;
        let now = cpu_seconds(pid)?;
        per_second.push((now - prev) * 1e3);
        prev = now;
    }
    tokio::time::sleep_until((start + window).into()).await;
    Ok(((cpu_seconds(pid)? - cpu0) * 1e3, per_second))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn series(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The least-squares slope of `(x, y)` points (y per unit of x); NaN for fewer than two.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

async fn body(server: &Slipway, plan: &Plan) -> Result<Scale> {
    let pid = server.pid()?;
    let ep = server.endpoint.clone();
    let mut conn = ep.connect().await?;
    let window_s = plan.idle.as_secs_f64();

    // The baseline: the same server, empty.
    tokio::time::sleep(WARM_UP).await;
    let rv0 = store_revision(&mut conn).await?;
    let (empty_cpu_ms, empty_series) = cpu_window(pid, plan.idle).await?;
    let empty_writes = store_revision(&mut conn).await? - rv0;
    let empty_rss = proc_status_bytes(pid, "VmRSS")?;
    eprintln!(
        "note: scale: empty server: {empty_cpu_ms:.0} ms CPU over {window_s:.0} s, \
         {empty_writes} writes, VmRSS {:.1} MB; CPU ms per second: {}",
        mb(empty_rss),
        series(&empty_series, 0)
    );

    // The Rollouts.
    let (nc, nb) = (plan.scale_canaries, plan.scale_blue_greens);
    let t0 = Instant::now();
    create_many(&ep, SERVICES, nb, CREATE_CONNS, CREATE_TIMEOUT, |i| {
        service_json(&blue_green_name(i))
    })
    .await?;
    create_many(
        &ep,
        ROLLOUTS,
        nc + nb,
        CREATE_CONNS,
        CREATE_TIMEOUT,
        move |i| {
            if i < nc {
                canary_json(&canary_name(i))
            } else {
                blue_green_json(&blue_green_name(i - nc))
            }
        },
    )
    .await?;
    let created_s = t0.elapsed().as_secs_f64();
    let deadline = t0 + HEALTHY_TIMEOUT;
    let mut progress = Vec::new();
    let healthy_s = loop {
        let list = get_json(&mut conn, ROLLOUTS).await?;
        let items = list["items"].as_array().map_or(&[][..], Vec::as_slice);
        let ok = items.iter().filter(|r| healthy(r)).count();
        if items.len() == nc + nb && ok == nc + nb {
            break t0.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            let sick: Vec<String> = items
                .iter()
                .filter(|r| !healthy(r))
                .take(3)
                .map(|r| format!("{} {}", r["metadata"]["name"], r["status"]))
                .collect();
            bail!(
                "{ok} of {} Rollouts Healthy after {HEALTHY_TIMEOUT:?}, e.g. {sick:?}",
                nc + nb
            );
        }
        progress.push(format!("{:.0} s: {ok}", t0.elapsed().as_secs_f64()));
        tokio::time::sleep(LIST_EVERY).await;
    };
    let settled = settle(&mut conn).await?;
    let pods = get_json(&mut conn, "/api/v1/namespaces/default/pods").await?;
    let pod_count = pods["items"].as_array().map_or(0, Vec::len);
    eprintln!(
        "note: scale: {nc} canary + {nb} blue-green Rollouts ({nb} Services) POSTed in \
         {created_s:.1} s, all Healthy at {healthy_s:.1} s ({}), {pod_count} pods; {}",
        progress.join(", "),
        settled.map_or("the store did not settle within 30 s".into(), |d| format!(
            "the store settled {:.1} s later",
            d.as_secs_f64()
        ))
    );

    // Idle CPU.
    let rv0 = store_revision(&mut conn).await?;
    let (idle_cpu_ms, idle_series) = cpu_window(pid, plan.idle).await?;
    let idle_writes = store_revision(&mut conn).await? - rv0;
    eprintln!(
        "note: scale: {idle_cpu_ms:.0} ms CPU over {window_s:.0} s idle with the Rollouts, \
         {idle_writes} writes; CPU ms per second: {}",
        series(&idle_series, 0)
    );
    drop(conn);

    // The soak: no requests from the bench, VmRSS every SAMPLE_EVERY.
    let soak0 = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    // CPU milliseconds between consecutive samples.
    let mut cpu_steps: Vec<f64> = Vec::new();
    let cpu_start = cpu_seconds(pid)?;
    let mut cpu_prev = cpu_start;
    let mut k = 0u32;
    loop {
        let at = SAMPLE_EVERY * k;
        if at > plan.soak {
            break;
        }
        tokio::time::sleep_until((soak0 + at).into()).await;
        samples.push((at.as_secs_f64(), mb(proc_status_bytes(pid, "VmRSS")?)));
        let cpu = cpu_seconds(pid)?;
        if k > 0 {
            cpu_steps.push((cpu - cpu_prev) * 1e3);
        }
        cpu_prev = cpu;
        k += 1;
    }
    let cpu_soak_ms = (cpu_prev - cpu_start) * 1e3;
    let first = samples.first().map_or(f64::NAN, |s| s.1);
    let last = samples.last().map_or(f64::NAN, |s| s.1);
    let reference_at = if plan.soak > REFERENCE_AFTER {
        REFERENCE_AFTER.as_secs_f64()
    } else {
        0.0
    };
    let (reference_at_s, reference) = samples
        .iter()
        .copied()
        .find(|s| s.0 >= reference_at)
        .unwrap_or((f64::NAN, f64::NAN));
    let tail: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|s| s.0 >= reference_at_s)
        .collect();
    let slope_mb_per_min = slope(&tail) * 60.0;
    let soak_s = plan.soak.as_secs_f64();
    eprintln!(
        "note: scale: VmRSS (MB) every {} s over the {soak_s:.0} s soak: {}; VmHWM {:.1} MB; \
         CPU over the soak {cpu_soak_ms:.0} ms ({:.2} % of a core), per {} s: {}",
        SAMPLE_EVERY.as_secs(),
        series(&samples.iter().map(|s| s.1).collect::<Vec<_>>(), 1),
        mb(proc_status_bytes(pid, "VmHWM")?),
        cpu_soak_ms / (soak_s * 1e3) * 100.0,
        SAMPLE_EVERY.as_secs(),
        series(&cpu_steps, 0),
    );
    Ok(Scale {
        created_s,
        healthy_s,
        empty_cpu_pct: empty_cpu_ms / (window_s * 1e3) * 100.0,
        idle_cpu_pct: idle_cpu_ms / (window_s * 1e3) * 100.0,
        empty_rss_mb: mb(empty_rss),
        rss_first_mb: first,
        rss_reference_mb: reference,
        reference_at_s,
        rss_last_mb: last,
        slope_mb_per_min,
        soak_cpu_pct: cpu_soak_ms / (soak_s * 1e3) * 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_and_bodies() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert!(slope(&[(0.0, 1.0)]).is_nan());
        let r: Value = serde_json::from_slice(&blue_green_json("bg-0001")).unwrap();
        assert_eq!(
            r["spec"]["strategy"]["blueGreen"]["activeService"],
            "bg-0001"
        );
        let r: Value = serde_json::from_slice(&canary_json("ro-0001")).unwrap();
        assert!(r["spec"]["strategy"]["canary"].is_object());
        let mut r = r;
        r["metadata"]["generation"] = json!(1);
        r["status"] = json!({"phase": "Healthy", "observedGeneration": 1,
            "currentPodHash": "a", "stablePodHash": "a"});
        assert!(healthy(&r));
        r["status"]["stablePodHash"] = json!("b");
        assert!(!healthy(&r));
    }
}
