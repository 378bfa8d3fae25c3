//! `slipway-bench`: measures Slipway against baselines taken in the same run and prints one
//! line per metric (value, baseline, ratio, target, PASS/MISS). See docs/benchmarks.md.

mod api;
mod baseline;
mod client;
mod report;

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
    Api {
        /// The `slipway` binary (default: next to this one, else `slipway` on PATH).
        #[arg(long)]
        slipway: Option<PathBuf>,
        /// Fewer and shorter trials, for a smoke run.
        #[arg(long)]
        quick: bool,
        /// Also print the results as a Markdown table.
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Api {
            slipway,
            quick,
            markdown,
        } => {
            let bin = slipway.map_or_else(default_slipway, Ok)?;
            let plan = if quick {
                api::Plan::quick()
            } else {
                api::Plan::full()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("bench-client")
                .enable_all()
                .build()?;
            let started = std::time::Instant::now();
            let metrics = runtime.block_on(api::run(bin.clone(), plan))?;
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            let missed = metrics.iter().filter(|m| m.verdict() == "MISS").count();
            println!(
                "{} metrics, {missed} missed; {} in {:.0} s ({} trials)",
                metrics.len(),
                bin.display(),
                started.elapsed().as_secs_f64(),
                plan.trials
            );
            if markdown {
                println!("\n| metric | value | baseline | ratio | target | result |");
                println!("| --- | ---: | ---: | ---: | --- | --- |");
                for m in &metrics {
                    println!("{}", m.markdown());
                }
            }
            Ok(())
        }
    }
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
