//! Part 3: a canary whose analysis fails, under load. The canary image answers half of its
//! requests with 500 (`ERROR_RATE=0.5`); the step analysis reads the proxy's error rate
//! every 2 s (`max: 0.05`, 3 times). A proxy check takes a baseline sample when it starts
//! (due time `t0`), and its first real measurement is due at `t0 + interval`
//! (`status.analysis[].checks[].nextAt`, stamped by the controller to the millisecond
//! while the baseline is the last sample); that measurement fails, which fails the
//! analysis and aborts the rollout. Measured, on the wall clock the server shares with
//! the bench: the time from `t0` and from the failing measurement's due time to the first
//! poll of the proxy's state showing the canary's weight at 0.

use super::Plan;
use super::common::{
    Api, Deployed, ProxyState, ROLLOUTS, WAIT, deploy_rg, ms_between, on_cluster, parse_time,
    rollout_yaml, weight,
};
use crate::services::cases::{CONNECTIONS, IMAGE_2};
use crate::services::cluster::Cluster;
use crate::services::load::Load;
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The check's interval.
pub const INTERVAL: Duration = Duration::from_secs(2);
const STRATEGY: &str = "    canary:
      stableService: rg
      steps:
      - setWeight: 20
      - analysis:
          checks:
          - name: errors
            interval: 2s
            count: 3
            proxy: {metric: errorRate, max: 0.05}
      - pause: {}";
/// Hard cap on the load's requests.
const REQUEST_CAP: u64 = 5_000_000;
/// How often the Rollout is read while the analysis runs.
const STATUS_POLL: Duration = Duration::from_millis(20);

/// Per trial, ms.
pub struct Analysis {
    /// From the analysis' start (its baseline sample's due time) to the split at 0.
    pub from_start_ms: Vec<f64>,
    /// From the failing measurement's due time to the split at 0.
    pub from_failure_ms: Vec<f64>,
}

pub async fn run(bin: &Path, plan: &Plan, problems: &mut Vec<String>) -> Result<Analysis> {
    on_cluster(bin, "analysis", problems, async |c| body(c, plan).await).await
}

async fn body(c: &mut Cluster, plan: &Plan) -> Result<Analysis> {
    let Deployed {
        mut api, v1, addr, ..
    } = deploy_rg(c, STRATEGY).await?;
    let load = Load::start(addr, CONNECTIONS, REQUEST_CAP);
    let mut out = Analysis {
        from_start_ms: Vec::new(),
        from_failure_ms: Vec::new(),
    };
    let mut proxy = ProxyState::new(&c.data_dir);
    for trial in 0..plan.analysis_trials {
        let rev = format!("{}", trial + 2);
        let env = [("ERROR_RATE", "0.5"), ("REV", rev.as_str())];
        c.apply(&rollout_yaml(4, IMAGE_2, &env, STRATEGY)).await?;
        let h = api
            .wait_rollout("rg", "the new canary revision", WAIT, |s| {
                s.observed && s.stable == v1 && !s.current.is_empty() && s.current != v1
            })
            .await?
            .current;
        let watch_split = async {
            proxy
                .wait_port("rg", "the canary at 20", WAIT, |p| {
                    weight(p, &h) == Some(20)
                })
                .await?;
            let (_, at) = proxy
                .wait_port("rg", "the canary back at 0", WAIT, |p| {
                    weight(p, &h) == Some(0)
                })
                .await?;
            anyhow::Ok(at)
        };
        let (split0, due) = tokio::join!(watch_split, first_measurement_due(&mut api, &h));
        let (split0, due) = (split0?, due?);
        let st = api
            .wait_rollout("rg", "the analysis to abort the rollout", WAIT, |s| {
                s.phase == "Aborted"
            })
            .await?;
        let record = st.raw["analysis"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["podHash"] == h.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        if record["phase"] != "Failed" {
            bail!("the analysis of {h} ended {record}, not Failed");
        }
        let start = due - INTERVAL;
        let from_start = ms_between(start, split0);
        let from_failure = ms_between(due, split0);
        eprintln!(
            "note: analysis trial {}: canary {h}; baseline due {}, failing measurement due \
             {}, split 0 seen {from_start:.0} ms after the start ({from_failure:.1} ms after \
             the failing measurement was due); {}",
            trial + 1,
            rfc3339(start),
            rfc3339(due),
            record["message"].as_str().unwrap_or("")
        );
        out.from_start_ms.push(from_start);
        out.from_failure_ms.push(from_failure);
    }
    let tally = load.stop().await;
    eprintln!(
        "note: analysis: load {} requests, {} failed ({}; the canary's injected 500s), \
         answers {:?}",
        tally.total(),
        tally.failed,
        tally.kinds(),
        tally.versions
    );
    Ok(out)
}

/// Reads the Rollout until the analysis of `hash` has taken its baseline sample; returns
/// the due time of its first measurement (`nextAt`).
async fn first_measurement_due(api: &mut Api, hash: &str) -> Result<SystemTime> {
    let deadline = Instant::now() + WAIT;
    let path = format!("{ROLLOUTS}/rg");
    loop {
        let v = api.get(&path).await?;
        let check = v["status"]["analysis"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["podHash"] == hash))
            .and_then(|r| r["checks"].get(0));
        if let Some(cs) = check {
            let taken = ["successful", "failed", "inconclusive"]
                .iter()
                .map(|k| cs[*k].as_i64().unwrap_or(0))
                .sum::<i64>();
            if taken > 0 {
                bail!("missed the baseline sample: a measurement is already recorded ({cs})");
            }
            let baseline = cs["lastMessage"]
                .as_str()
                .is_some_and(|m| m.starts_with("baseline"));
            if baseline && let Some(next) = cs["nextAt"].as_str() {
                return parse_time(next).with_context(|| format!("nextAt {next:?}"));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the analysis of {hash} took no baseline within {WAIT:?} (status {})",
                v["status"]
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
