//! `kubectl slipway ...` (the `kubectl-slipway` plugin) and `slipway rollout ...`: watch,
//! promote, abort, retry, undo, pause and resume Rollouts (`slipway.dev/v1alpha1`) through
//! the API server named by a kubeconfig. See docs/rollouts-cli.md.
//!
//! Both binaries include this module: `slipway` under its `rollout` subcommand, the plugin
//! as its whole command line. Errors are printed as kubectl does (`error: ...` on stderr,
//! exit code 1).

mod checks;
mod commands;
mod kubeconfig;
mod view;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// The connection flags, as kubectl's.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeFlags {
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig file (default: the first file of $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current-context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

/// Rollout commands and the connection flags.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// A duration flag: `30s`, `5m`, `1h30m`, or a number of seconds.
fn duration_arg(text: &str) -> Result<Duration, String> {
    view::parse_duration(text)
        .ok_or_else(|| format!("invalid duration {text:?} (examples: 30s, 5m, 1h30m)"))
}

/// The commands.
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum RolloutCommand {
    /// Show a rollout: status, step, traffic weight, images, revisions and their pods,
    /// hooks and analyses (`get rollout NAME`, `get NAME`); `get rollouts` lists them.
    Get {
        /// `rollout NAME`, `NAME`, `rollout/NAME`, or `rollouts` for the list.
        #[arg(required = true, num_args = 1..=2, value_name = "ROLLOUT")]
        target: Vec<String>,
        /// Redraw on every change of the rollout, its ReplicaSets or pods, until Ctrl-C.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Stop watching after this long (with --watch).
        #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// The list: every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// List rollouts: NAME STRATEGY STATUS STEP WEIGHT AGE.
    #[command(visible_alias = "ls")]
    List {
        /// `rollouts` (optional).
        #[arg(value_name = "rollouts")]
        what: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Set things of a rollout's pod template.
    Set {
        #[command(subcommand)]
        what: SetCommand,
    },
    /// Release the current step or pause; with --full, skip every remaining step.
    Promote {
        /// The rollout (`NAME` or `rollout/NAME`).
        rollout: String,
        /// Promote to 100% at once, skipping the remaining steps, analyses and pauses.
        #[arg(long)]
        full: bool,
    },
    /// Abort the rollout in progress: traffic and replicas go back to the stable revision.
    Abort {
        /// The rollout.
        rollout: String,
    },
    /// Retry an aborted rollout.
    Retry {
        /// The rollout.
        rollout: String,
    },
    /// Roll back to a previous revision (its pod template), like `kubectl rollout undo`.
    Undo {
        /// The rollout.
        rollout: String,
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0, value_name = "N")]
        to_revision: i64,
    },
    /// Pause the rollout (spec.paused: true).
    Pause {
        /// The rollout.
        rollout: String,
    },
    /// Resume a paused rollout (spec.paused: false).
    Resume {
        /// The rollout.
        rollout: String,
    },
    /// Follow a rollout until it completes, like `kubectl rollout status`: exit 0 when it
    /// is Healthy on its current revision, 1 when it is Aborted or Degraded.
    Status {
        /// The rollout.
        rollout: String,
        /// Wait for the end (`--watch=false`: print the state once).
        #[arg(
            short = 'w',
            long,
            default_value_t = true,
            num_args = 0..=1,
            default_missing_value = "true",
            action = clap::ArgAction::Set
        )]
        watch: bool,
        /// Give up after this long (exit 1); 0 waits forever.
        #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
        timeout: Option<Duration>,
    },
}

/// `set` commands.
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum SetCommand {
    /// Set container images, like `kubectl set image`: CONTAINER=IMAGE ... (`*` for every
    /// container).
    Image {
        /// The rollout.
        rollout: String,
        /// CONTAINER=IMAGE pairs.
        #[arg(required = true, value_name = "CONTAINER=IMAGE")]
        images: Vec<String>,
    },
}

/// Runs a command; returns the exit code (errors are printed as `error: ...`).
pub fn run(args: RolloutArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(commands::execute(args));
    // Watches still running must not hold the exit up.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The plugin's command line (as in `bin/kubectl-slipway.rs`).
    #[derive(Parser, Debug)]
    #[command(name = "kubectl slipway")]
    struct Plugin {
        #[command(flatten)]
        args: RolloutArgs,
    }

    fn parse(line: &[&str]) -> RolloutArgs {
        let mut argv = vec!["kubectl-slipway"];
        argv.extend_from_slice(line);
        Plugin::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .args
    }

    fn fails(line: &[&str]) {
        let mut argv = vec!["kubectl-slipway"];
        argv.extend_from_slice(line);
        assert!(Plugin::try_parse_from(argv).is_err(), "{line:?} parsed");
    }

    #[test]
    fn kubectl_style_flags_go_anywhere() {
        let a = parse(&[
            "-n",
            "shop",
            "promote",
            "web",
            "--full",
            "--kubeconfig",
            "/k",
            "--context=c1",
        ]);
        assert_eq!(
            a.kube,
            KubeFlags {
                namespace: Some("shop".into()),
                kubeconfig: Some("/k".into()),
                context: Some("c1".into())
            }
        );
        assert_eq!(
            a.command,
            RolloutCommand::Promote {
                rollout: "web".into(),
                full: true
            }
        );
        let a = parse(&["abort", "rollout/web", "--namespace=x"]);
        assert_eq!(a.kube.namespace.as_deref(), Some("x"));
        assert_eq!(
            a.command,
            RolloutCommand::Abort {
                rollout: "rollout/web".into()
            }
        );
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            parse(&["get", "rollout", "web", "-w", "--timeout", "5s"]).command,
            RolloutCommand::Get {
                target: vec!["rollout".into(), "web".into()],
                watch: true,
                timeout: Some(Duration::from_secs(5)),
                all_namespaces: false
            }
        );
        assert_eq!(
            parse(&["get", "web"]).command,
            RolloutCommand::Get {
                target: vec!["web".into()],
                watch: false,
                timeout: None,
                all_namespaces: false
            }
        );
        assert_eq!(
            parse(&["list", "rollouts", "-A"]).command,
            RolloutCommand::List {
                what: Some("rollouts".into()),
                all_namespaces: true
            }
        );
        assert_eq!(
            parse(&["set", "image", "web", "app=a:2", "side=s:2"]).command,
            RolloutCommand::Set {
                what: SetCommand::Image {
                    rollout: "web".into(),
                    images: vec!["app=a:2".into(), "side=s:2".into()]
                }
            }
        );
        assert_eq!(
            parse(&["undo", "web", "--to-revision=3"]).command,
            RolloutCommand::Undo {
                rollout: "web".into(),
                to_revision: 3
            }
        );
        assert_eq!(
            parse(&["undo", "web"]).command,
            RolloutCommand::Undo {
                rollout: "web".into(),
                to_revision: 0
            }
        );
        for (cmd, want) in [
            (
                "pause",
                RolloutCommand::Pause {
                    rollout: "web".into(),
                },
            ),
            (
                "resume",
                RolloutCommand::Resume {
                    rollout: "web".into(),
                },
            ),
            (
                "retry",
                RolloutCommand::Retry {
                    rollout: "web".into(),
                },
            ),
        ] {
            assert_eq!(parse(&[cmd, "web"]).command, want);
        }
        assert_eq!(
            parse(&["status", "web", "--timeout=1m"]).command,
            RolloutCommand::Status {
                rollout: "web".into(),
                watch: true,
                timeout: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            parse(&["status", "web", "--watch=false"]).command,
            RolloutCommand::Status {
                rollout: "web".into(),
                watch: false,
                timeout: None
            }
        );
        fails(&["get"]);
        fails(&["get", "rollout", "a", "b"]);
        fails(&["set", "image", "web"]);
        fails(&["promote"]);
        fails(&["status", "web", "--timeout=soon"]);
        fails(&["frobnicate", "web"]);
    }

    /// `slipway rollout ...` takes the same arguments under a subcommand.
    #[test]
    fn the_same_commands_under_a_subcommand() {
        #[derive(Parser, Debug)]
        struct Outer {
            #[command(subcommand)]
            cmd: Sub,
        }
        #[derive(clap::Subcommand, Debug)]
        enum Sub {
            Rollout(RolloutArgs),
        }
        let o = Outer::try_parse_from(["slipway", "rollout", "-n", "x", "pause", "web"]).unwrap();
        let Sub::Rollout(a) = o.cmd;
        assert_eq!(a.kube.namespace.as_deref(), Some("x"));
        assert_eq!(
            a.command,
            RolloutCommand::Pause {
                rollout: "web".into()
            }
        );
    }
}
