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
