//! Running a Rollout's hooks and analyses: the bridge between the Rollout planner, which
//! decides *which* hooks and analyses must run (as [`RunRequest`]s) and reads their results
//! from the Rollout's status, and the world (hook pods, HTTP calls, proxy metrics).
//!
//! Contract:
//! - The planner lists every run the current state of the rollout needs, on every sync
//!   (a level, not an edge): a hook that must run now, an analysis that must be measuring
//!   now. A run that is no longer listed is cancelled (its pod deleted), but its record
//!   stays in the status.
//! - [`RunExecutor::advance`] starts what is not started, observes what runs, and updates
//!   the records in `status.hooks` / `status.analysis` (keyed by name + kind + pod hash for
//!   hooks, name + pod hash for analyses). A record whose phase is final (`Succeeded`,
//!   `Failed`, `Ignored` for hooks; `Successful`, `Failed`, `Inconclusive` for analyses)
//!   is never run again: after a restart of Slipway the status is the memory.
//! - The planner decides what a final record means (continue, abort, pause).
//!
//! Pieces: [`RunExecutor`] (the executor), [`TrafficMetrics`] with [`PrometheusTextMetrics`]
//! (proxy metrics for `proxy` checks), [`HttpProbe`] with [`LoopbackHttp`] (HTTP hooks and
//! `web` checks; loopback only, Service names resolved to their ClusterIP by the executor).
//!
//! Hook pods are named `<rollout>-hook-<kind>-<name>-<podhash>-<attempt>`, job-check pods
//! `<rollout>-job-<analysis>-<check>-<podhash>-<n>` (lowercased, cut to 63 characters with a
//! hash suffix when longer); both carry only the labels `slipway.dev/rollout=<name>` and
//! `slipway.dev/hook=<kind>` or `slipway.dev/analysis=<name>` (none of the template's, so
//! no Service selects them), and a non-controller owner reference to the Rollout.
//!
//! Hooks: an attempt fails on a non-zero exit, a failed pod, a non-matching HTTP status,
//! an HTTP error, or its `timeoutSeconds` (the pod is then deleted). `logTail` holds the
//! last 20 lines the hook's container printed (`pods/log`, at most 4000 characters; the
//! termination message when the log is empty), or an HTTP hook's response body.
//!
//! Analyses: every check measures when its `nextAt` is due (at once when it starts), then
//! every `interval` on schedule; `advance` returns the time to the earliest due
//! measurement, retry or poll (1 s while a pod runs, 100 ms while an HTTP call is in
//! flight), so a failing measurement is seen within an interval. A proxy check's first
//! measurement only takes the baseline; then the canary group's delta is judged (fewer than
//! `minRequests`: inconclusive; proxy metrics unavailable: inconclusive). A web check fails
//! on an HTTP error, a non-2xx status, a body that is not JSON, or nothing at `jsonPath`;
//! it waits at most its interval (1-10 s). A job check's pod may run 300 s.
//!
//! What is kept in memory only (and rebuilt after a restart): HTTP calls in flight (a
//! running HTTP hook attempt is re-sent after a restart) and the previous proxy sample of
//! each proxy check (after a restart the next measurement takes a fresh baseline and is not
//! counted).

mod analysis;
mod executor;
mod hooks;
mod http;
mod metrics;
mod podspec;
mod runs_impl;
mod util;

pub use analysis::{Verdict, json_lookup};
pub use executor::RunExecutor;
pub use http::{HttpProbe, LoopbackHttp};
pub use metrics::{
    FetchText, GroupSample, PromLine, PrometheusTextMetrics, TrafficMetrics, histogram_quantile,
    parse_groups, parse_line,
};
pub use podspec::{ANALYSIS_LABEL, HOOK_LABEL, ROLLOUT_LABEL};
pub use util::parse_duration;

use slipway_rollout::{Analysis, Hook};

/// Which hook of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookKey {
    /// `pre`, `mid`, `post`, `step`, `prePromotion`, `postPromotion`, `onAbort`.
    pub kind: String,
    /// The hook's name (its `name`, else its kind, or `step-<index>` for a step hook).
    pub name: String,
    /// The `pod-template-hash` of the revision it runs for.
    pub pod_hash: String,
}

/// Something the planner needs running now.
#[derive(Clone, Debug, PartialEq)]
pub enum RunRequest {
    Hook {
        key: HookKey,
        hook: Hook,
    },
    Analysis {
        /// Unique per rollout revision: `background`, `step-<index>`, `prePromotion`,
        /// `postPromotion`.
        name: String,
        /// The revision under analysis (canary / preview).
        pod_hash: String,
        /// The stable (active) revision, for comparisons.
        stable_hash: Option<String>,
        /// The Service whose traffic proxy checks read by default.
        service: Option<String>,
        analysis: Analysis,
    },
}
