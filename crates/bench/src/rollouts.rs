//! `slipway-bench rollouts`: the Rollout kind (issue 6's targets), each next to a baseline
//! from the same run:
//!
//! 1. the canary's share of requests at `setWeight: 20`, through the stable Service's
//!    ClusterIP under the 200-connection load (baseline: the target share);
//! 2. the reaction time from the API write of a promote or an abort to the proxy applying
//!    the new split, seen on the proxy's control socket (baseline: a Service selector
//!    patch reaching the proxy);
//! 3. an analysis that fails (a canary with `ERROR_RATE=0.5`): from the analysis' start,
//!    and from its failing measurement, to the proxy's split showing weight 0;
//! 4. failed requests under load through a canary's steps, its promotion, and a new
//!    revision aborted at 20 %;
//! 5. 1,000 canary Rollouts and 100 blue-green Rollouts with their Services on
//!    `--runtime simulated`: idle CPU (baseline: the same server empty) and resident memory
//!    over a soak.
//!
//! Parts 1 to 4 use `slipway serve --runtime process` with the sample
//! `random-generator` (the services benchmark's cluster, kubectl and load generator); each
//! group runs on a fresh server, cleaned up by PID also on error.

mod analysis;
mod common;
mod downtime;
mod scale;
mod traffic;

use crate::report::{Goal, Metric, header, median, quantile};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// Which parts to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// 1 and 2: the canary's share and the promote/abort reaction time.
    Traffic,
    /// 3: analysis failure to rollback.
    Analysis,
    /// 4: failed requests through steps, promote and abort.
    Downtime,
    /// 5: 1,100 Rollouts on the simulated runtime: idle CPU and memory.
    Scale,
}

/// The options of `slipway-bench rollouts`.
#[derive(clap::Args, Debug)]
pub struct RolloutsArgs {
    #[command(flatten)]
    pub common: crate::Args,
    /// Run only these parts (repeatable; default: all).
    #[arg(long, value_enum)]
    pub only: Vec<Part>,
}

/// How much to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Requests of the share measurement.
    pub share_requests: u64,
    /// Reaction trials (alternating promote and abort), and as many baseline trials.
    pub reaction_trials: usize,
    /// Analysis failures measured (the median is quoted).
    pub analysis_trials: usize,
    /// Requests of the zero-downtime run, at least.
    pub downtime_requests: u64,
    /// Canary and blue-green Rollouts of the scale part.
    pub scale_canaries: usize,
    pub scale_blue_greens: usize,
    /// The idle CPU window.
    pub idle: Duration,
    /// The memory soak, sampled every [`scale::SAMPLE_EVERY`].
    pub soak: Duration,
    /// Which parts (empty: all).
    pub only: Vec<Part>,
}

impl Plan {
    /// The full run.
    pub fn full() -> Plan {
        Plan {
            share_requests: 10_000,
            reaction_trials: 20,
            analysis_trials: 3,
            downtime_requests: 100_000,
            scale_canaries: 1_000,
            scale_blue_greens: 100,
            idle: Duration::from_secs(30),
            soak: Duration::from_secs(600),
            only: Vec::new(),
        }
    }

    /// A quick smoke run.
    pub fn quick() -> Plan {
        Plan {
            share_requests: 2_000,
            reaction_trials: 5,
            analysis_trials: 1,
            downtime_requests: 10_000,
            scale_canaries: 1_000,
            scale_blue_greens: 100,
            idle: Duration::from_secs(10),
            soak: Duration::from_secs(60),
            only: Vec::new(),
        }
    }

    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Runs the rollout benchmarks and prints one line per metric as it is measured.
pub async fn run(bin: PathBuf, plan: Plan) -> Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    println!("{}", header());
    let mut emit = |m: Metric| {
        println!("{}", m.line());
        metrics.push(m);
    };
    let failed = |what: &str, goal: Goal| Metric {
        name: format!("{what}: did not complete (see warnings)"),
        value: f64::NAN,
        baseline: f64::NAN,
        goal,
    };

    // The median abort reaction of part 2, the baseline of part 3's reaction.
    let mut abort_p50 = f64::NAN;
    if plan.runs(Part::Traffic) {
        match traffic::run(&bin, &plan, &mut problems).await {
            Ok(t) => {
                emit(Metric {
                    name: format!("canary share at setWeight 20, {} req (%)", t.requests),
                    value: t.share_pct,
                    baseline: 20.0,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: "canary share, distance from 20 (pp; base 20 %)".into(),
                    value: (t.share_pct - 20.0).abs(),
                    baseline: 20.0,
                    goal: Goal::Below(2.0),
                });
                let all: Vec<f64> = t.promote_ms.iter().chain(&t.abort_ms).copied().collect();
                abort_p50 = median(&t.abort_ms);
                let base_p50 = median(&t.selector_ms);
                let base_p99 = quantile(&t.selector_ms, 0.99);
                emit(Metric {
                    name: format!("promote/abort to proxy p50, {} trials (ms)", all.len()),
                    value: median(&all),
                    baseline: base_p50,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: format!("promote/abort to proxy p99, {} trials (ms)", all.len()),
                    value: quantile(&all, 0.99),
                    baseline: base_p99,
                    goal: Goal::Below(50.0),
                });
                emit(Metric {
                    name: "  promote (20 -> 50) to proxy p50 (ms)".into(),
                    value: median(&t.promote_ms),
                    baseline: base_p50,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: "  abort (50 -> 0) to proxy p50 (ms)".into(),
                    value: abort_p50,
                    baseline: base_p50,
                    goal: Goal::None,
                });
            }
            Err(e) => {
                problems.push(format!("traffic: {e:#}"));
                emit(failed("canary share", Goal::Below(2.0)));
                emit(failed("promote/abort reaction", Goal::Below(50.0)));
            }
        }
    }

    if plan.runs(Part::Analysis) {
        match analysis::run(&bin, &plan, &mut problems).await {
            Ok(a) => {
                let interval_ms = analysis::INTERVAL.as_secs_f64() * 1e3;
                emit(Metric {
                    name: format!(
                        "analysis start to split 0, {} trial(s) (ms)",
                        a.from_start_ms.len()
                    ),
                    value: median(&a.from_start_ms),
                    baseline: interval_ms,
                    goal: Goal::Below(interval_ms + 100.0),
                });
                emit(Metric {
                    name: "failing measurement to split 0 (ms; base abort)".into(),
                    value: median(&a.from_failure_ms),
                    baseline: abort_p50,
                    goal: Goal::Below(100.0),
                });
            }
            Err(e) => {
                problems.push(format!("analysis: {e:#}"));
                emit(failed("analysis rollback", Goal::Below(100.0)));
            }
        }
    }

    if plan.runs(Part::Downtime) {
        match downtime::run(&bin, &plan, &mut problems).await {
            Ok(t) => {
                let secs = t.elapsed.as_secs_f64();
                emit(Metric {
                    name: format!(
                        "canary 20/50/80/promote + abort: failed of {} req, {secs:.0} s",
                        t.total()
                    ),
                    value: t.failed as f64,
                    baseline: t.total() as f64,
                    goal: Goal::Below(1.0),
                });
                if t.total() < plan.downtime_requests {
                    problems.push(format!(
                        "downtime: only {} of {} requests",
                        t.total(),
                        plan.downtime_requests
                    ));
                }
            }
            Err(e) => {
                problems.push(format!("downtime: {e:#}"));
                emit(failed("canary steps under load", Goal::Below(1.0)));
            }
        }
    }

    if plan.runs(Part::Scale) {
        match scale::run(&bin, &plan, &mut problems).await {
            Ok(s) => {
                let n = plan.scale_canaries + plan.scale_blue_greens;
                let idle_s = plan.idle.as_secs_f64();
                emit(Metric {
                    name: format!("{n} Rollouts all Healthy (s; base POSTs)"),
                    value: s.healthy_s,
                    baseline: s.created_s,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: format!("idle CPU over {idle_s:.0} s, {n} Rollouts (% of a core)"),
                    value: s.idle_cpu_pct,
                    baseline: s.empty_cpu_pct,
                    goal: Goal::Below(1.0),
                });
                emit(Metric {
                    name: format!(
                        "CPU over the {:.0} s soak (% of a core; base empty)",
                        plan.soak.as_secs_f64()
                    ),
                    value: s.soak_cpu_pct,
                    baseline: s.empty_cpu_pct,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: format!("VmRSS, {n} Rollouts (MB; base empty)"),
                    value: s.rss_first_mb,
                    baseline: s.empty_rss_mb,
                    goal: Goal::None,
                });
                emit(Metric {
                    name: format!(
                        "VmRSS after {:.0} s soak (MB; base at {:.0} s)",
                        plan.soak.as_secs_f64(),
                        s.reference_at_s
                    ),
                    value: s.rss_last_mb,
                    baseline: s.rss_reference_mb,
                    goal: Goal::Below(1.05 * s.rss_reference_mb),
                });
                emit(Metric {
                    name: "VmRSS slope over the soak (MB/min)".into(),
                    value: s.slope_mb_per_min,
                    baseline: f64::NAN,
                    goal: Goal::None,
                });
            }
            Err(e) => {
                problems.push(format!("scale: {e:#}"));
                emit(failed("1,100 Rollouts idle", Goal::Below(1.0)));
            }
        }
    }

    if problems.is_empty() {
        eprintln!(
            "note: no ERROR lines or panics on the servers' stderr, and no recorded process \
             outlived its server"
        );
    }
    for p in &problems {
        eprintln!("warning: {p}");
    }
    Ok(metrics)
}
