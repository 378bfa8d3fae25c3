//! Small pure helpers of the Rollout planner: durations and timestamps, the records of hooks
//! and analyses, the traffic-split annotation, the Deployment view of a Rollout, conditions.

use crate::annotations::POD_TEMPLATE_HASH_LABEL;
use crate::rollout_runs::{HookKey, RunRequest};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use slipway_rollout::{
    Analysis, AnalysisStatus, Hook, HookStatus, Rollout, RolloutCondition, RolloutStatus,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// The annotation of the canary's stable Service read by the proxy.
pub const TRAFFIC_SPLIT: &str = "slipway.dev/traffic-split";

/// Parses a duration: `30s`, `5m`, `1h`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = digits.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `now` at whole seconds, as RFC 3339 (how every time in the status is written).
pub fn stamp(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Parses an RFC 3339 time of the status.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// `at + d`.
pub fn plus(at: Timestamp, d: Duration) -> Timestamp {
    let nanos = i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 4);
    Timestamp::from_nanosecond(at.as_nanosecond().saturating_add(nanos)).unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `at` (zero when past).
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    let diff = at.as_nanosecond() - now.as_nanosecond();
    if diff <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(diff).unwrap_or(u64::MAX))
    }
}

/// The `pod-template-hash` of a ReplicaSet (its label, else its selector's).
pub fn rs_hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .or_else(|| {
            rs.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref())
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        })
        .map(String::as_str)
}

/// The label-selector string of the scale subresource (`app=web,tier in (a,b)`).
pub fn selector_string(selector: Option<&LabelSelector>) -> String {
    let Some(sel) = selector else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// What a run's record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Not finished (or not started).
    Wait,
    /// Succeeded / Ignored / Successful.
    Pass,
    /// Failed, with a message.
    Fail(String),
    /// Analysis only: Inconclusive.
    Inconclusive(String),
}

/// The name a hook is recorded under.
pub fn hook_name(hook: &Hook, default: &str) -> String {
    hook.name.clone().unwrap_or_else(|| default.to_string())
}

/// The record of a hook.
pub fn hook_record<'a>(
    status: &'a RolloutStatus,
    kind: &str,
    name: &str,
    hash: &str,
) -> Option<&'a HookStatus> {
    status
        .hooks
        .iter()
        .find(|h| h.kind == kind && h.name == name && h.pod_hash == hash)
}

/// The gate of a hook: Waiting/Running/absent wait; Succeeded/Ignored pass; Failed fails.
pub fn hook_gate(status: &RolloutStatus, kind: &str, name: &str, hash: &str) -> Gate {
    match hook_record(status, kind, name, hash) {
        Some(h) if h.phase == "Succeeded" || h.phase == "Ignored" => Gate::Pass,
        Some(h) if h.phase == "Failed" => Gate::Fail(format!(
            "{kind} hook {name} failed{}",
            h.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        _ => Gate::Wait,
    }
}

/// The gate of an analysis.
pub fn analysis_gate(status: &RolloutStatus, name: &str, hash: &str) -> Gate {
    let record = status
        .analysis
        .iter()
        .find(|a| a.name == name && a.pod_hash == hash);
    let message = |a: &AnalysisStatus, what: &str| {
        format!(
            "analysis {name} {what}{}",
            a.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    };
    match record {
        Some(a) if a.phase == "Successful" => Gate::Pass,
        Some(a) if a.phase == "Failed" => Gate::Fail(message(a, "failed")),
        Some(a) if a.phase == "Inconclusive" => Gate::Inconclusive(message(a, "inconclusive")),
        _ => Gate::Wait,
    }
}

/// Whether a hook phase is final.
pub fn hook_final(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Ignored")
}

/// Whether an analysis phase is final.
pub fn analysis_final(phase: &str) -> bool {
    matches!(phase, "Successful" | "Failed" | "Inconclusive")
}

/// A hook request.
pub fn hook_request(kind: &str, name: &str, hash: &str, hook: &Hook) -> RunRequest {
    RunRequest::Hook {
        key: HookKey {
            kind: kind.to_string(),
            name: name.to_string(),
            pod_hash: hash.to_string(),
        },
        hook: hook.clone(),
    }
}

/// An analysis request.
pub fn analysis_request(
    name: &str,
    hash: &str,
    stable: Option<&str>,
    service: Option<&str>,
    analysis: &Analysis,
) -> RunRequest {
    RunRequest::Analysis {
        name: name.to_string(),
        pod_hash: hash.to_string(),
        stable_hash: stable.map(str::to_string),
        service: service.map(str::to_string),
        analysis: analysis.clone(),
    }
}

/// One header route of the traffic split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRoute {
    /// The route's name (from `setHeaderRoute.name`).
    pub name: String,
    /// Header name.
    pub header: String,
    /// Exact value.
    pub value: String,
}

/// The traffic-split annotation value: `{"weights":{...},"headerRoutes":[...]}`.
pub fn traffic_split(weights: &[(&str, i32)], routes: &[HeaderRoute], canary: &str) -> Value {
    let mut w = serde_json::Map::new();
    for (hash, weight) in weights {
        w.insert((*hash).to_string(), json!(weight));
    }
    let mut v = json!({ "weights": w });
    if !routes.is_empty() {
        v["headerRoutes"] = Value::Array(
            routes
                .iter()
                .map(|r| {
                    json!({"name": r.name, "header": r.header, "value": r.value, "podHash": canary})
                })
                .collect(),
        );
    }
    v
}

/// Converts Rollout conditions to a Deployment status holding them (to reuse the Deployment
/// condition rules).
pub fn to_deployment_conditions(
    conditions: &[RolloutCondition],
) -> Option<Vec<DeploymentCondition>> {
    if conditions.is_empty() {
        return None;
    }
    serde_json::to_value(conditions)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// Converts Deployment conditions back.
pub fn from_deployment_conditions(
    conditions: Option<&Vec<DeploymentCondition>>,
) -> Vec<RolloutCondition> {
    conditions
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// `spec.replicas` (default 1).
pub fn replicas(r: &Rollout) -> i32 {
    r.spec.replicas.unwrap_or(1).max(0)
}

/// Whether the strategy is Recreate.
pub fn is_recreate(r: &Rollout) -> bool {
    let s = &r.spec.strategy;
    s.recreate.is_some() && s.blue_green.is_none() && s.canary.is_none()
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.to_string())
}

/// The Rollout seen as a Deployment, to reuse the Deployment planner and its helpers:
/// same metadata, replicas, selector, template, minReadySeconds, revisionHistoryLimit
/// (default 10), paused, progressDeadlineSeconds (default 600); the strategy is Recreate
/// for `recreate`, else RollingUpdate with the canary's or rollingUpdate's budgets (default
/// 25%/25%); the status carries the counters, collisionCount and conditions.
pub fn deployment_view(r: &Rollout) -> Deployment {
    let spec = &r.spec;
    let strategy = if is_recreate(r) {
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        }
    } else {
        let (surge, unavailable) = match (&spec.strategy.rolling_update, &spec.strategy.canary) {
            (Some(ru), _) => (ru.max_surge.clone(), ru.max_unavailable.clone()),
            (None, Some(c)) => (c.max_surge.clone(), c.max_unavailable.clone()),
            _ => (None, None),
        };
        let (surge, unavailable) = match (surge, unavailable) {
            (None, None) => (pct("25%"), pct("25%")),
            (s, u) => (
                s.unwrap_or(IntOrString::Int(0)),
                u.unwrap_or(IntOrString::Int(0)),
            ),
        };
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        }
    };
    let status = r.status.clone().unwrap_or_default();
    Deployment {
        metadata: r.metadata.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas(r)),
            selector: spec.selector.clone().unwrap_or_default(),
            template: spec.template.clone(),
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: Some(spec.revision_history_limit.unwrap_or(10)),
            paused: spec.paused,
            progress_deadline_seconds: Some(spec.progress_deadline_seconds.unwrap_or(600)),
            strategy: Some(strategy),
        }),
        status: Some(DeploymentStatus {
            observed_generation: status.observed_generation,
            replicas: status.replicas,
            updated_replicas: status.updated_replicas,
            ready_replicas: status.ready_replicas,
            available_replicas: status.available_replicas,
            collision_count: status.collision_count,
            conditions: to_deployment_conditions(&status.conditions),
            ..Default::default()
        }),
    }
}

/// The Service's `spec.selector`.
pub fn service_selector(svc: &k8s_openapi::api::core::v1::Service) -> BTreeMap<String, String> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}
