//! Parts 1 and 2, on one server: the canary's share of requests at `setWeight: 20`, then
//! the time from the API write of a promote or an abort to the proxy applying the new split
//! (next to a Service selector patch reaching the proxy).

use super::Plan;
use super::common::{
    Deployed, ProxyState, REACTION_TIMEOUT, SERVICES, WAIT, deploy_rg, on_cluster, ready,
    rollout_yaml, total, weight,
};
use crate::services::cases::{CONNECTIONS, IMAGE_2, free_cluster_ip, service};
use crate::services::cluster::Cluster;
use crate::services::load::Load;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// The canary scales to 2 pods first, so that both weights (20 and 50) are served by pods
/// that are already running: a promote from 20 to 50 then waits for no pod, and its time
/// is the control path only. Steps 2 and 4 are the pauses.
const STRATEGY: &str = "    canary:
      stableService: rg
      steps:
      - setCanaryScale: {replicas: 2}
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}";
const PAUSE_AT_20: i64 = 2;
const PAUSE_AT_50: i64 = 4;
/// Pods behind the Service while the canary runs: 4 stable, 2 canary.
const ENDPOINTS: i64 = 6;

/// What parts 1 and 2 measured.
pub struct Traffic {
    /// Requests of the share measurement (all answered).
    pub requests: u64,
    /// Percent of the answers that came from version 2.0.
    pub share_pct: f64,
    /// Promote (20 -> 50) and abort (50 -> 0) reactions, ms.
    pub promote_ms: Vec<f64>,
    pub abort_ms: Vec<f64>,
    /// The baseline: selector patches of the Service `bl` reaching the proxy, ms.
    pub selector_ms: Vec<f64>,
}

pub async fn run(bin: &Path, plan: &Plan, problems: &mut Vec<String>) -> Result<Traffic> {
    on_cluster(bin, "traffic", problems, async |c| body(c, plan).await).await
}

async fn body(c: &mut Cluster, plan: &Plan) -> Result<Traffic> {
    let Deployed {
        mut api, v1, addr, ..
    } = deploy_rg(c, STRATEGY).await?;

    // 1. The share at setWeight 20.
    let t = Instant::now();
    c.apply(&rollout_yaml(4, IMAGE_2, &[], STRATEGY)).await?;
    let v2 = api
        .wait_rollout("rg", "the canary to pause at setWeight 20", WAIT, |s| {
            s.phase == "Paused" && s.step == PAUSE_AT_20 && s.stable == v1 && s.current != v1
        })
        .await?
        .current;
    let mut proxy = ProxyState::new(&c.data_dir);
    proxy
        .wait_port("rg", "the split 80/20 with 6 ready endpoints", WAIT, |p| {
            weight(p, &v1) == Some(80) && weight(p, &v2) == Some(20) && ready(p) == ENDPOINTS
        })
        .await?;
    eprintln!(
        "note: traffic: ClusterIP {addr}; stable {v1}, canary {v2}; paused at 20 % {:.1} s \
         after the new template",
        t.elapsed().as_secs_f64()
    );
    let load = Load::start(addr, CONNECTIONS, plan.share_requests);
    let reached = load
        .wait_for_total(plan.share_requests, Instant::now() + WAIT)
        .await;
    let tally = load.stop().await;
    if !reached || tally.failed > 0 {
        bail!(
            "share: {} of {} requests answered, {} failed ({}; {:?})",
            tally.ok,
            plan.share_requests,
            tally.failed,
            tally.kinds(),
            tally.failures
        );
    }
    let canary = tally.versions.get("2.0").copied().unwrap_or(0);
    let share_pct = 100.0 * canary as f64 / tally.ok as f64;
    let canary_pods = tally
        .ids
        .keys()
        .filter(|id| id.starts_with(&format!("rg-{v2}-")))
        .count();
    eprintln!(
        "note: share: {canary} of {} answers from 2.0 ({share_pct:.2} %), {} pods answered \
         ({canary_pods} canary), {:.0} requests/s over {CONNECTIONS} connections",
        tally.ok,
        tally.ids.len(),
        tally.total() as f64 / tally.elapsed.as_secs_f64()
    );

    // 2. Reaction times, with the baseline Service `bl` toggled between the stable pods
    //    and none.
    let mut ip2 = free_cluster_ip()?;
    while std::net::IpAddr::V4(ip2) == addr.ip() {
        ip2 = free_cluster_ip()?;
    }
    let bl_selector = [("app", "rg"), ("pod-template-hash", v1.as_str())];
    c.apply(&service("bl", ip2, &bl_selector)).await?;
    proxy
        .wait_port("bl", "the baseline Service with 4 endpoints", WAIT, |p| {
            total(p) == 4
        })
        .await?;
    let mut out = Traffic {
        requests: tally.ok,
        share_pct,
        promote_ms: Vec::new(),
        abort_ms: Vec::new(),
        selector_ms: Vec::new(),
    };
    let mut acks = Vec::new();
    let bl_path = format!("{SERVICES}/bl");
    for i in 0..plan.reaction_trials {
        if i % 2 == 0 {
            // Paused at 20: promote to 50.
            let (ms, ack) = timed(
                &mut proxy,
                "rg",
                "promote to 50",
                |p| weight(p, &v2) == Some(50),
                api.promote("rg"),
            )
            .await?;
            out.promote_ms.push(ms);
            acks.push(ack);
            api.wait_rollout("rg", "the pause at 50", WAIT, |s| {
                s.phase == "Paused" && s.step == PAUSE_AT_50
            })
            .await?;
        } else {
            // Paused at 50: abort to 0, then retry (untimed) back to the pause at 20.
            let (ms, ack) = timed(
                &mut proxy,
                "rg",
                "abort to 0",
                |p| weight(p, &v2) == Some(0),
                api.set_abort("rg", true),
            )
            .await?;
            out.abort_ms.push(ms);
            acks.push(ack);
            api.wait_rollout("rg", "the abort", WAIT, |s| s.phase == "Aborted")
                .await?;
            api.set_abort("rg", false).await?;
            api.wait_rollout("rg", "the retry to pause at 20", WAIT, |s| {
                s.phase == "Paused" && s.step == PAUSE_AT_20 && s.current == v2
            })
            .await?;
            proxy
                .wait_port("rg", "the retried split at 20", WAIT, |p| {
                    weight(p, &v2) == Some(20) && ready(p) == ENDPOINTS
                })
                .await?;
        }
        // The baseline: the same path for a selector patch (stable pods <-> none).
        let on = i % 2 == 1;
        let (hash, want) = if on { (v1.as_str(), 4) } else { ("none", 0) };
        let patch = json!({"spec": {"selector": {"pod-template-hash": hash}}});
        let (ms, _) = timed(
            &mut proxy,
            "bl",
            "the selector patch",
            |p| total(p) == want,
            api.merge_patch(&bl_path, &patch),
        )
        .await?;
        out.selector_ms.push(ms);
    }
    let series = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "note: reaction (ms, from sending the status PATCH to the proxy's state): promote \
         {}; abort {}; the PATCH's own ack: p50 {:.1}; selector patches (baseline) {}",
        series(&out.promote_ms),
        series(&out.abort_ms),
        crate::report::median(&acks),
        series(&out.selector_ms)
    );
    Ok(out)
}

/// Sends `write` while polling the proxy's state for `svc` until `ok` holds (the state must
/// not hold before); returns the milliseconds from just before the write was sent to the
/// poll that saw it, and the write's own round trip.
async fn timed(
    proxy: &mut ProxyState,
    svc: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
    write: impl Future<Output = Result<()>>,
) -> Result<(f64, f64)> {
    let before = proxy.get().await?;
    if super::common::port_of(&before, svc).is_some_and(&ok) {
        bail!("{what}: the proxy already shows the change before the write");
    }
    let t0 = Instant::now();
    let write = async {
        write.await?;
        anyhow::Ok(t0.elapsed())
    };
    let (seen, ack) = tokio::join!(proxy.wait_port(svc, what, REACTION_TIMEOUT, ok), write);
    let ack: Duration = ack?;
    let (at, _) = seen?;
    Ok(((at - t0).as_secs_f64() * 1e3, ack.as_secs_f64() * 1e3))
}
