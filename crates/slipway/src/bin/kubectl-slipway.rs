//! `kubectl-slipway`: the kubectl plugin (`kubectl slipway ...`) for Rollouts. The same
//! commands are `slipway rollout ...`; both are in `rollout_cli`.

use clap::Parser;

#[path = "../rollout_cli/mod.rs"]
mod rollout_cli;

/// Rollouts (slipway.dev/v1alpha1) from kubectl: watch, promote, abort, retry, undo, pause
/// and resume.
#[derive(Parser, Debug)]
#[command(name = "kubectl slipway", bin_name = "kubectl slipway", version)]
struct Cli {
    #[command(flatten)]
    args: rollout_cli::RolloutArgs,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(rollout_cli::run(cli.args));
}
