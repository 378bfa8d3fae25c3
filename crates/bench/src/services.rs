//! `slipway-bench services`: Services and the service proxy (issue 5's targets).
//!
//! 1. Zero-downtime cases, each on a fresh `slipway serve --runtime process`: a load of
//!    200 keep-alive connections against a Service's ClusterIP while a rolling update, a
//!    blue-green selector switch, a canary, a rollout restart, a Recreate rollout (only
//!    reported) and a `kill -9` of `slipway serve` run end to end; failed requests per case.
//! 2. Proxy overhead: the sample on the host behind HAProxy and behind Slipway's proxy
//!    engine (in-process): added p50 latency over one keep-alive connection, and requests/s
//!    over 64 connections.

pub(crate) mod cases;
pub(crate) mod cluster;
pub(crate) mod http;
pub(crate) mod load;
mod overhead;

use crate::report::{Goal, Metric, header};
use anyhow::Result;
use cases::Case;
use overhead::Path3;
use std::path::PathBuf;
use std::time::Duration;

/// Which parts to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The zero-downtime cases.
    Cases,
    /// The proxy overhead against HAProxy.
    Overhead,
}

/// The options of `slipway-bench services`.
#[derive(clap::Args, Debug)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub common: crate::Args,
    /// Run only this part (default: both).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

/// How much to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Rounds of the overhead comparison (medians are quoted).
    pub rounds: usize,
    /// Requests per zero-downtime case, at least.
    pub min_requests: u64,
    /// Timed sequential requests per latency run, and the untimed ones before.
    pub latency_requests: usize,
    pub latency_warm_up: usize,
    /// Each throughput window.
    pub throughput_window: Duration,
    /// How long the load goes on with `slipway serve` dead.
    pub crash_hold: Duration,
    /// Which parts.
    pub only: Option<Part>,
}

impl Plan {
    /// The full run.
    pub fn full() -> Plan {
        Plan {
            rounds: 5,
            min_requests: 100_000,
            latency_requests: 20_000,
            latency_warm_up: 2_000,
            throughput_window: Duration::from_secs(5),
            crash_hold: Duration::from_secs(5),
            only: None,
        }
    }

    /// A quick smoke run.
    pub fn quick() -> Plan {
        Plan {
            rounds: 1,
            min_requests: 10_000,
            latency_requests: 3_000,
            latency_warm_up: 500,
            throughput_window: Duration::from_secs(2),
            crash_hold: Duration::from_secs(3),
            only: None,
        }
    }
}

/// Runs the services benchmarks and prints one line per metric as it is measured.
pub async fn run(bin: PathBuf, plan: Plan) -> Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    let mut problems = Vec::new();
    println!("{}", header());
    let mut emit = |m: Metric| {
        println!("{}", m.line());
        metrics.push(m);
    };

    if plan.only != Some(Part::Overhead) {
        for case in Case::ALL {
            let outcome = cases::run(&bin, &plan, case, &mut problems).await;
            match outcome {
                Ok(o) => {
                    let t = &o.tally;
                    let secs = t.elapsed.as_secs_f64();
                    eprintln!(
                        "note: {}: {} requests in {secs:.1} s ({:.0}/s, {} connections), {} \
                         failed ({}); failure window {:.0} ms, longest gap without a 200 {:.0} \
                         ms; {}",
                        case.label(),
                        t.total(),
                        t.total() as f64 / secs,
                        cases::CONNECTIONS,
                        t.failed,
                        t.kinds(),
                        t.failure_window_ms(),
                        t.longest_gap_ms(),
                        o.notes.join("; ")
                    );
                    for f in t.failures.iter().take(5) {
                        eprintln!("note:   failure {f}");
                    }
                    let name =
                        format!("{}: failed of {} req, {secs:.0} s", case.label(), t.total());
                    if case.zero_downtime() {
                        emit(Metric {
                            name,
                            value: t.failed as f64,
                            baseline: t.total() as f64,
                            goal: Goal::Below(1.0),
                        });
                    } else {
                        emit(Metric {
                            name,
                            value: t.failed as f64,
                            baseline: t.total() as f64,
                            goal: Goal::None,
                        });
                        emit(Metric {
                            name: format!("{}: downtime, 1st to last failure (ms)", case.label()),
                            value: t.failure_window_ms(),
                            baseline: f64::NAN,
                            goal: Goal::None,
                        });
                        emit(Metric {
                            name: format!("{}: longest gap without a 200 (ms)", case.label()),
                            value: t.longest_gap_ms(),
                            baseline: f64::NAN,
                            goal: Goal::None,
                        });
                    }
                }
                Err(e) => {
                    problems.push(format!("{}: {e:#}", case.label()));
                    emit(Metric {
                        name: format!("{}: did not complete (see warnings)", case.label()),
                        value: f64::NAN,
                        baseline: f64::NAN,
                        goal: if case.zero_downtime() {
                            Goal::Below(1.0)
                        } else {
                            Goal::None
                        },
                    });
                }
            }
        }
    }

    if plan.only != Some(Part::Cases) {
        let o = overhead::run(&bin, &plan).await?;
        let rounds = o.rounds;
        for p in [Path3::Direct, Path3::HaProxy, Path3::Slipway] {
            if let Some(s) = o.series.get(&p)
                && s.failed > 0
            {
                problems.push(format!(
                    "{} failed requests in the throughput runs via {}",
                    s.failed,
                    p.label()
                ));
            }
        }
        eprintln!(
            "note: overhead, medians of {rounds}: p50 direct {:.3} / HAProxy {:.3} / Slipway \
             {:.3} ms; p99 {:.3} / {:.3} / {:.3} ms; req/s over {} connections {:.0} / {:.0} \
             / {:.0}",
            o.p50(Path3::Direct),
            o.p50(Path3::HaProxy),
            o.p50(Path3::Slipway),
            o.p99(Path3::Direct),
            o.p99(Path3::HaProxy),
            o.p99(Path3::Slipway),
            overhead::THROUGHPUT_CONNS,
            o.rps(Path3::Direct),
            o.rps(Path3::HaProxy),
            o.rps(Path3::Slipway),
        );
        emit(Metric {
            name: "p50 1 conn via Slipway (ms; base direct)".into(),
            value: o.p50(Path3::Slipway),
            baseline: o.p50(Path3::Direct),
            goal: Goal::None,
        });
        if o.haproxy {
            emit(Metric {
                name: "p50 1 conn via HAProxy (ms; base direct)".into(),
                value: o.p50(Path3::HaProxy),
                baseline: o.p50(Path3::Direct),
                goal: Goal::None,
            });
            let hap = o.added_p50(Path3::HaProxy);
            emit(Metric {
                name: "added p50 via Slipway (ms; base HAProxy's)".into(),
                value: o.added_p50(Path3::Slipway),
                baseline: hap,
                goal: Goal::Below(1.5 * hap),
            });
            emit(Metric {
                name: "p99 1 conn via Slipway (ms; base HAProxy)".into(),
                value: o.p99(Path3::Slipway),
                baseline: o.p99(Path3::HaProxy),
                goal: Goal::None,
            });
            emit(Metric {
                name: format!(
                    "req/s {} conns via HAProxy (base direct)",
                    overhead::THROUGHPUT_CONNS
                ),
                value: o.rps(Path3::HaProxy),
                baseline: o.rps(Path3::Direct),
                goal: Goal::None,
            });
            let hap = o.rps(Path3::HaProxy);
            emit(Metric {
                name: format!(
                    "req/s {} conns via Slipway (base HAProxy)",
                    overhead::THROUGHPUT_CONNS
                ),
                value: o.rps(Path3::Slipway),
                baseline: hap,
                goal: Goal::AtLeast(0.8 * hap),
            });
        } else {
            emit(Metric {
                name: "added p50 via Slipway (ms; no HAProxy)".into(),
                value: o.added_p50(Path3::Slipway),
                baseline: f64::NAN,
                goal: Goal::None,
            });
            emit(Metric {
                name: format!(
                    "req/s {} conns via Slipway (base direct)",
                    overhead::THROUGHPUT_CONNS
                ),
                value: o.rps(Path3::Slipway),
                baseline: o.rps(Path3::Direct),
                goal: Goal::None,
            });
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
