//! The sample programs behind the built-in images (`slipway sample <name> [args...]`).
//!
//! Each is a small blocking program that logs readable lines to stdout and exits cleanly
//! (code 0) on SIGTERM or SIGINT. They are configured by environment variables, as container
//! images usually are:
//!
//! | sample | variables |
//! | --- | --- |
//! | `random-generator` | `PORT` (8080; 0 picks a free one), `BIND_ADDRESS` (0.0.0.0), `READY_DELAY_SECONDS` (0), `READY_FILE` (`/random-generator-ready`), `ERROR_RATE` (0; version 2.0 only), `IDLE_TIMEOUT_SECONDS` (60), `POD_NAME` |
//! | `never-ready` | as `random-generator`, but it never creates the ready file |
//! | `crasher` | `CRASH_AFTER_SECONDS` (5), `CRASH_EXIT_CODE` (1) |
//! | `sleeper` | `IGNORE_SIGTERM` (`1` to ignore SIGTERM) |

mod http;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// The names `run_sample` knows.
pub const SAMPLES: &[&str] = &["random-generator", "never-ready", "crasher", "sleeper"];

/// Runs the sample program `name` with `args` (the arguments after the name) and returns
/// its exit code. Blocks until the program ends; the HTTP samples end the process themselves
/// (code 0) on SIGTERM.
pub fn run_sample(name: &str, args: &[String]) -> i32 {
    match name {
        "random-generator" => http::run(http::Mode::RandomGenerator, args),
        "never-ready" => http::run(http::Mode::NeverReady, args),
        "crasher" => crasher(args),
        "sleeper" => sleeper(args),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "unknown sample {name:?}; the samples are: {}",
                SAMPLES.join(", ")
            );
            2
        }
    }
}

/// Writes one line to stdout, ignoring errors (a closed log pipe must not kill the sample).
pub(crate) fn log(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_ref().as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Installs handlers for SIGTERM and SIGINT (replacing their default action) and returns a
/// channel that receives each signal as it arrives.
pub(crate) fn signal_channel() -> std::io::Result<mpsc::Receiver<i32>> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "a signal",
    }
}

/// A duration in (possibly fractional) seconds from env `name`, or `default`.
pub(crate) fn env_seconds(name: &str, default: f64) -> Duration {
    let fallback = Duration::from_secs_f64(default);
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<f64>() {
            Ok(secs) => Duration::try_from_secs_f64(secs).unwrap_or_else(|_| {
                log(format!(
                    "ignoring {name}={v:?}: not a non-negative number of seconds"
                ));
                fallback
            }),
            Err(_) => {
                log(format!("ignoring {name}={v:?}: not a number of seconds"));
                fallback
            }
        },
        _ => fallback,
    }
}

/// Env `name` parsed as `T`, or `default` (logging why when it does not parse).
pub(crate) fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| {
            log(format!("ignoring {name}={v:?}: cannot parse it"));
            default
        }),
        _ => default,
    }
}

pub(crate) fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn ignore_args(sample: &str, args: &[String]) {
    if !args.is_empty() {
        log(format!("{sample}: ignoring arguments {args:?}"));
    }
}

fn crasher(args: &[String]) -> i32 {
    let signals = match signal_channel() {
        Ok(rx) => rx,
        Err(e) => {
            log(format!("crasher: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    ignore_args("crasher", args);
    let after = env_seconds("CRASH_AFTER_SECONDS", 5.0);
    let code: i32 = env_parse("CRASH_EXIT_CODE", 1);
    log(format!(
        "crasher: started (pid {}); exiting with code {code} in {}s",
        std::process::id(),
        after.as_secs_f64()
    ));
    match signals.recv_timeout(after) {
        Ok(signal) => {
            log(format!(
                "crasher: received {}, exiting",
                signal_name(signal)
            ));
            0
        }
        Err(_) => {
            log(format!("crasher: crashing now with exit code {code}"));
            code
        }
    }
}

fn sleeper(args: &[String]) -> i32 {
    let signals = match signal_channel() {
        Ok(rx) => rx,
        Err(e) => {
            log(format!("sleeper: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    ignore_args("sleeper", args);
    let ignore_term = env_flag("IGNORE_SIGTERM");
    if ignore_term {
        log(format!(
            "sleeper: sleeping (pid {}); ignoring SIGTERM (IGNORE_SIGTERM=1)",
            std::process::id()
        ));
    } else {
        log(format!(
            "sleeper: sleeping until SIGTERM (pid {})",
            std::process::id()
        ));
    }
    while let Ok(signal) = signals.recv() {
        if signal == SIGTERM && ignore_term {
            log("sleeper: received SIGTERM, ignoring it");
            continue;
        }
        log(format!(
            "sleeper: received {}, exiting",
            signal_name(signal)
        ));
        return 0;
    }
    0
}
