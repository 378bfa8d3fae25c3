//! `slipway-bench`: measures Slipway against baselines taken in the same run and prints one
//! line per metric (value, baseline, ratio, target, PASS/MISS). See docs/benchmarks.md.

mod api;
mod baseline;
mod client;
mod controllers;
mod load;
mod pods;
mod report;
mod rollouts;
mod runtime;
mod server;
mod services;
mod watch;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Benchmarks for Slipway.
#[derive(Parser, Debug)]
#[command(name = "slipway-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The API server: cold start, idle memory, GET latency, throughput, a 10,000-pod list and
    /// watch delivery.
    Api(Args),
    /// The controllers on the simulated runtime: a 100-replica rolling update, 1,000
    /// Deployments (10,000 pods) converging from a cold start, memory and idle CPU.
    Controllers(controllers::ControllersArgs),
    /// The process runtime: pod start to Ready, the seed's rolling update, the CPU cost of
    /// exec probes, and memory per pod (server and shim).
    Runtime(Args),
    /// Services and the service proxy: failed requests under load during rollouts,
    /// selector switches, a canary and a control-plane crash, and the proxy's overhead
    /// against HAProxy.
    Services(services::ServicesArgs),
    /// Rollouts: the canary's traffic share, promote/abort and analysis reaction times,
    /// failed requests through a canary's steps, and 1,100 Rollouts idle (CPU, memory).
    Rollouts(rollouts::RolloutsArgs),
}

/// Options every benchmark takes.
#[derive(clap::Args, Debug)]
struct Args {
    /// The `slipway` binary (default: next to this one, else `slipway` on PATH).
    #[arg(long)]
    slipway: Option<PathBuf>,
    /// Fewer and shorter trials, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Also print the results as a Markdown table.
    #[arg(long)]
    markdown: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let (args, trials, metrics) = match cli.command {
        Cmd::Api(args) => {
            let bin = args.slipway.clone().map_or_else(default_slipway, Ok)?;
            let plan = if args.quick {
                api::Plan::quick()
            } else {
                api::Plan::full()
            };
            (args, plan.trials, runtime.block_on(api::run(bin, plan)))
        }
        Cmd::Controllers(controllers_args) => {
            let args = controllers_args.common;
            let bin = args.slipway.clone().map_or_else(default_slipway, Ok)?;
            let mut plan = if args.quick {
                controllers::Plan::quick()
            } else {
                controllers::Plan::full()
            };
            plan.only = controllers_args.only;
            (
                args,
                plan.trials,
                runtime.block_on(controllers::run(bin, plan)),
            )
        }
        Cmd::Runtime(args) => {
            let bin = args.slipway.clone().map_or_else(default_slipway, Ok)?;
            let plan = if args.quick {
                runtime::Plan::quick()
            } else {
                runtime::Plan::full()
            };
            (args, plan.trials, runtime.block_on(runtime::run(bin, plan)))
        }
        Cmd::Services(services_args) => {
            let args = services_args.common;
            let bin = args.slipway.clone().map_or_else(default_slipway, Ok)?;
            let mut plan = if args.quick {
                services::Plan::quick()
            } else {
                services::Plan::full()
            };
            plan.only = services_args.only;
            (
                args,
                plan.rounds,
                runtime.block_on(services::run(bin, plan)),
            )
        }
        Cmd::Rollouts(rollouts_args) => {
            let args = rollouts_args.common;
            let bin = args.slipway.clone().map_or_else(default_slipway, Ok)?;
            let mut plan = if args.quick {
                rollouts::Plan::quick()
            } else {
                rollouts::Plan::full()
            };
            plan.only = rollouts_args.only;
            let trials = plan.reaction_trials;
            (args, trials, runtime.block_on(rollouts::run(bin, plan)))
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let metrics = metrics?;
    let bin = args.slipway.map_or_else(default_slipway, Ok)?;
    let missed = metrics.iter().filter(|m| m.verdict() == "MISS").count();
    println!(
        "{} metrics, {missed} missed; {} in {:.0} s ({trials} trials)",
        metrics.len(),
        bin.display(),
        started.elapsed().as_secs_f64(),
    );
    if args.markdown {
        println!("\n| metric | value | baseline | ratio | target | result |");
        println!("| --- | ---: | ---: | ---: | --- | --- |");
        for m in &metrics {
            println!("{}", m.markdown());
        }
    }
    Ok(())
}

/// `slipway` next to this executable, else on PATH.
fn default_slipway() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating slipway-bench")?;
    let sibling = me.with_file_name("slipway");
    Ok(if sibling.is_file() {
        sibling
    } else {
        PathBuf::from("slipway")
    })
}
