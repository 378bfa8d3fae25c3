//! Part 4: failed requests under the 200-connection load while a canary goes through
//! `setWeight` 20, 50 and 80 (each released by a promote after 1 s at that weight), its
//! full promotion (the old pods scaled down), then a new revision that is aborted at 20 %
//! (its pods scaled down).

use super::Plan;
use super::common::{Deployed, ProxyState, WAIT, deploy_rg, on_cluster, rollout_yaml, weight};
use crate::services::cases::{CONNECTIONS, IMAGE_1, IMAGE_2};
use crate::services::cluster::Cluster;
use crate::services::load::{Load, Tally};
use anyhow::{Result, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// Steps 1, 3 and 5 are the pauses at 20, 50 and 80.
const STRATEGY: &str = "    canary:
      stableService: rg
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}
      - setWeight: 80
      - pause: {}";
/// Hard cap on the load's requests.
const REQUEST_CAP: u64 = 5_000_000;
/// Requests before the first change.
const BEFORE_CHANGE: u64 = 2_000;
/// How long each weight is held under load.
const HOLD: Duration = Duration::from_secs(1);
/// How long the load goes on after the last change, at least.
const AFTER_CHANGE: Duration = Duration::from_secs(1);
/// Bound on reaching the plan's request count after the changes.
const FINISH: Duration = Duration::from_secs(120);

pub async fn run(bin: &Path, plan: &Plan, problems: &mut Vec<String>) -> Result<Tally> {
    on_cluster(bin, "downtime", problems, async |c| body(c, plan).await).await
}

async fn body(c: &mut Cluster, plan: &Plan) -> Result<Tally> {
    let Deployed {
        mut api, v1, addr, ..
    } = deploy_rg(c, STRATEGY).await?;
    let mut proxy = ProxyState::new(&c.data_dir);

    let load = Load::start(addr, CONNECTIONS, REQUEST_CAP);
    if !load
        .wait_for_total(BEFORE_CHANGE, Instant::now() + WAIT)
        .await
    {
        let t = load.stop().await;
        bail!(
            "the load made only {} requests before the change",
            t.total()
        );
    }
    let t0 = Instant::now();
    let mut marks = Vec::new();
    let mut mark = |what: &str| marks.push(format!("{what} +{:.1} s", t0.elapsed().as_secs_f64()));

    // The canary through 20, 50, 80, then promoted.
    c.apply(&rollout_yaml(4, IMAGE_2, &[], STRATEGY)).await?;
    let mut v2 = String::new();
    for (w, step) in [(20, 1), (50, 3), (80, 5)] {
        let st = api
            .wait_rollout("rg", &format!("the pause at {w}"), WAIT, |s| {
                s.phase == "Paused" && s.step == step && s.stable == v1 && s.current != v1
            })
            .await?;
        v2 = st.current;
        proxy
            .wait_port("rg", &format!("the split at {w}"), WAIT, |p| {
                weight(p, &v2) == Some(w) && weight(p, &v1) == Some(100 - w)
            })
            .await?;
        mark(&format!("at {w}"));
        tokio::time::sleep(HOLD).await;
        api.promote("rg").await?;
    }
    api.wait_rollout("rg", "the promoted canary to be Healthy", WAIT, |s| {
        s.healthy() && s.stable == v2
    })
    .await?;
    proxy
        .wait_port("rg", "the split at 100", WAIT, |p| {
            weight(p, &v2) == Some(100)
        })
        .await?;
    c.wait_pods(&format!("pod-template-hash={v1}"), 0, WAIT)
        .await?;
    c.wait_endpoints("rg", 4, "rg-", WAIT).await?;
    mark("promoted, old pods gone");

    // A new revision, aborted at 20.
    c.apply(&rollout_yaml(4, IMAGE_1, &[("REV", "3")], STRATEGY))
        .await?;
    let v3 = api
        .wait_rollout("rg", "the third revision's pause at 20", WAIT, |s| {
            s.phase == "Paused" && s.step == 1 && s.stable == v2 && s.current != v2
        })
        .await?
        .current;
    proxy
        .wait_port("rg", "the third revision's split at 20", WAIT, |p| {
            weight(p, &v3) == Some(20)
        })
        .await?;
    mark("third revision at 20");
    tokio::time::sleep(HOLD).await;
    api.set_abort("rg", true).await?;
    api.wait_rollout("rg", "the abort", WAIT, |s| s.phase == "Aborted")
        .await?;
    proxy
        .wait_port("rg", "the split back at 0", WAIT, |p| {
            weight(p, &v3) == Some(0)
        })
        .await?;
    c.wait_pods(&format!("pod-template-hash={v3}"), 0, WAIT)
        .await?;
    c.wait_endpoints("rg", 4, "rg-", WAIT).await?;
    mark("aborted, its pods gone");

    tokio::time::sleep(AFTER_CHANGE).await;
    let reached = load
        .wait_for_total(plan.downtime_requests, Instant::now() + FINISH)
        .await;
    let tally = load.stop().await;
    let secs = tally.elapsed.as_secs_f64();
    eprintln!(
        "note: downtime: {} requests in {secs:.1} s ({:.0}/s), {} failed ({}); longest gap \
         without a 200 {:.0} ms; answers {:?} from {} pods; {}{}",
        tally.total(),
        tally.total() as f64 / secs,
        tally.failed,
        tally.kinds(),
        tally.longest_gap_ms(),
        tally.versions,
        tally.ids.len(),
        marks.join(", "),
        if reached {
            String::new()
        } else {
            format!("; WARNING: fewer than {} requests", plan.downtime_requests)
        }
    );
    for f in tally.failures.iter().take(5) {
        eprintln!("note:   failure {f}");
    }
    Ok(tally)
}
