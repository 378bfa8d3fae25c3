//! The Rollout's spec and status as stored (`slipway.dev/v1alpha1`, kind `Rollout`).
//!
//! `replicas`, `selector`, `template`, `minReadySeconds`, `revisionHistoryLimit`, `paused`
//! and `progressDeadlineSeconds` mean what they mean on a Deployment, and revisions and
//! ReplicaSets are managed the same way (ReplicaSets named `<rollout>-<pod-template-hash>`,
//! the `deployment.kubernetes.io/revision` annotation). Exactly one strategy is set.
//!
//! Durations (`pause.duration`, `interval`) are strings: `30s`, `5m`, `1h`, or a bare
//! number of seconds.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "slipway.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "slipway.dev/v1alpha1";
pub const KIND: &str = "Rollout";

/// A Rollout object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RolloutSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort back to stable when the progress deadline passes (Kubernetes only reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Hooks around the whole rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RolloutHooks>,
}

/// Exactly one member is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate: Option<RecreateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

/// As a Deployment's `rollingUpdate` (defaults 25% and 25%).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Every old pod stops before any new one starts; the `mid` hook runs in between.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecreateStrategy {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// The Service that carries production traffic; its selector is pinned to the active
    /// ReplicaSet's `pod-template-hash`. Required.
    #[serde(default)]
    pub active_service: String,
    /// A Service pinned to the new ReplicaSet as soon as it is available; must differ from
    /// `activeService`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Default true: promote once the new ReplicaSet is available (after
    /// `autoPromotionSeconds` if set). False: wait for `promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i32>,
    /// How long the old ReplicaSet keeps its pods after the switch. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Replicas of the new ReplicaSet before promotion (default: `replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<Analysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<Analysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_hook: Option<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_hook: Option<Hook>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The Service whose traffic is split between stable and canary by Slipway's proxy
    /// (`setWeight`); its selector must match both (the controller does not change it).
    /// Without it, weights are approximated by replica counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// Optional: a Service pinned to the canary ReplicaSet only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Run in order; no steps means a rolling update straight to 100%.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CanaryStep>,
    /// Runs for the whole rollout, from the first step to full promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// One step: exactly one member is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percent of new connections and HTTP requests to the canary, 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
}

/// `pause: {}` waits until promote; `pause: {duration: 30s}` waits that long.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Exactly one member is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Percent of `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Back to following the traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// Requests that carry a header go to the canary (HTTP mode of the proxy). An empty
/// `match` removes the route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    #[serde(default)]
    pub header_name: String,
    #[serde(default)]
    pub header_value: HeaderValueMatch,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutHooks {
    /// Before any new pod starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<Hook>,
    /// Recreate only: after the old pods are gone, before the new ones start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<Hook>,
    /// After the rollout completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<Hook>,
    /// When a rollout is aborted or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_abort: Option<Hook>,
}

/// A hook: a pod built from the Rollout's template with its own command (`exec`), or an
/// HTTP call (`http`). Exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Names the hook in status and Events; defaults to its kind (`pre`, `step-2`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHook>,
    /// Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// `Abort` (default): the rollout fails and rolls back. `Retry`: up to `retry.limit`
    /// more attempts with back-off. `Ignore`: go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HookRetry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecHook {
    /// The container of the template to take (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Replaces the container's command; required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Added to the container's env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHook {
    /// `http://` on a loopback address (a Service's ClusterIP, a pod IP, 127.0.0.1).
    #[serde(default)]
    pub url: String,
    /// Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Default: any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRetry {
    /// Further attempts after the first failure. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    /// First back-off, doubled each attempt. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<i32>,
}

/// Checks that promote or roll back on their own. Each check runs every `interval`,
/// `count` times (0: until the analysis ends); more than `failureLimit` failures fail the
/// analysis (abort, automatic rollback); more than `inconclusiveLimit` inconclusive results
/// pause the rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<AnalysisCheck>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisCheck {
    #[serde(default)]
    pub name: String,
    /// Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Default 1 (background analysis: 0, unbounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<i32>,
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<i32>,
    /// Exactly one provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyMetricCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobCheck>,
}

/// Slipway's proxy metrics of the canary (or, in blue-green, the preview) pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyMetricCheck {
    /// The Service whose traffic is measured (default: the canary's stable/active Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `errorRate` (5xx and failed requests over all, 0-1), `latencyP50` or `latencyP99`
    /// (seconds).
    #[serde(default)]
    pub metric: String,
    /// Fails above this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Fails above `maxRatioToStable` times the stable pods' value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio_to_stable: Option<f64>,
    /// Fewer requests than this in the interval: inconclusive. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<i64>,
}

/// An HTTP GET whose JSON answer is read at `jsonPath` and compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebCheck {
    /// `http://` on a loopback address.
    #[serde(default)]
    pub url: String,
    /// A JSON pointer (`/status/healthy`) or a dotted path (`status.healthy`).
    #[serde(default)]
    pub json_path: String,
    /// Passes when the value equals this (compared as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Passes when the number is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Passes when the number is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// A pod from the Rollout's template running `command`: exit 0 passes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// What the controller reports. The plugin writes only `abort` and `promote*` (through
/// the status subresource): `abort: true` aborts, `abort: false` after an abort retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Progressing`, `Paused`, `Healthy`, `Degraded` or `Aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// For the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// `pod-template-hash` of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// `pod-template-hash` of the stable ReplicaSet (the last fully promoted one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_pod_hash: Option<String>,
    /// Canary: the index of the step in progress (`steps.len()` when done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// When the current step (or pause) started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// Canary: the traffic share of the canary now, 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Why the rollout waits: `CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysis`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_conditions: Vec<PauseCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<String>,
    /// Set by `promote --full`: skip the remaining steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<bool>,
    /// Set by `promote`: the step or pause it releases (cleared by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_requested_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// Every hook run of the current revision (and the abort hooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<AnalysisStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RolloutCondition>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    pub reason: String,
    pub start_time: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// The hash the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// When the previous active ReplicaSet is scaled down (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_active_hash: Option<String>,
}

/// One hook of one revision. A hook whose phase is `Succeeded`, `Failed` or `Ignored` for
/// the revision is never run again for it (also across restarts: this is the record).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    pub name: String,
    /// `pre`, `mid`, `post`, `step`, `prePromotion`, `postPromotion`, `onAbort`.
    pub kind: String,
    /// The `pod-template-hash` the hook ran for.
    pub pod_hash: String,
    /// `Running`, `Succeeded`, `Failed`, `Ignored`, `Waiting` (back-off before a retry).
    pub phase: String,
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The hook pod of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines of the hook's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Back-off: the next attempt is not before this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// One analysis (a step's, pre/post promotion, or background) of one revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    pub name: String,
    pub pod_hash: String,
    /// `Running`, `Successful`, `Failed`, `Inconclusive`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub name: String,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    /// When the next measurement is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_manifest_round_trips() {
        let v = serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "k8spatterns/random-generator:1.0"}]}},
                "strategy": {"canary": {"stableService": "web", "steps": [
                    {"setWeight": 10}, {"pause": {"duration": "30s"}},
                    {"analysis": {"checks": [{"name": "errors", "interval": "5s", "count": 3,
                        "proxy": {"metric": "errorRate", "max": 0.01}}]}},
                    {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "yes"}}]}},
                    {"hook": {"exec": {"command": ["sh", "-c", "true"]}, "failurePolicy": "Retry", "retry": {"limit": 2}}},
                    {"setWeight": 50}, {"pause": {}}
                ]}},
                "hooks": {"pre": {"http": {"url": "http://127.0.0.1:9/ready"}}}
            }
        });
        let r: Rollout = serde_json::from_value(v.clone()).unwrap();
        let canary = r.spec.strategy.canary.as_ref().unwrap();
        assert_eq!(canary.steps.len(), 7);
        assert_eq!(
            canary.steps[3].set_header_route.as_ref().unwrap().matches[0].header_name,
            "X-Canary"
        );
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}
