//! Hook and job pods: built from the Rollout's template, never selected by it.

use super::util::{dns_name, label_value};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;
use slipway_rollout::Rollout;
use std::collections::BTreeMap;

/// Label: the Rollout a hook or job pod belongs to.
pub const ROLLOUT_LABEL: &str = "slipway.dev/rollout";
/// Label: the kind of hook a hook pod runs.
pub const HOOK_LABEL: &str = "slipway.dev/hook";
/// Label: the analysis a job-check pod measures for.
pub const ANALYSIS_LABEL: &str = "slipway.dev/analysis";

/// What a one-shot pod runs.
pub(crate) struct PodRun<'a> {
    pub name: String,
    pub container: Option<&'a str>,
    pub command: &'a [String],
    pub args: &'a [String],
    pub env: &'a [EnvVar],
    pub deadline_seconds: i64,
    pub labels: Vec<(&'static str, String)>,
}

/// The hook pod of one attempt: `<rollout>-hook-<kind>-<name>-<podhash>-<attempt>`.
pub(crate) fn hook_pod_name(
    rollout: &str,
    kind: &str,
    name: &str,
    hash: &str,
    attempt: i32,
) -> String {
    dns_name(&format!("{rollout}-hook-{kind}-{name}-{hash}-{attempt}"))
}

/// The pod of one job-check measurement: `<rollout>-job-<analysis>-<check>-<podhash>-<n>`.
pub(crate) fn job_pod_name(
    rollout: &str,
    analysis: &str,
    check: &str,
    hash: &str,
    n: i32,
) -> String {
    dns_name(&format!("{rollout}-job-{analysis}-{check}-{hash}-{n}"))
}

/// The namespace of `rollout` (`default` when unset).
pub(crate) fn namespace_of(rollout: &Rollout) -> &str {
    rollout
        .metadata
        .namespace
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// The pod for `run` from `rollout`'s template: one container (the one named, else the
/// first) with its command, args and env replaced or extended, no probes, no ports,
/// `restartPolicy: Never`, `activeDeadlineSeconds`, the template's annotations, and a
/// non-controller owner reference to the Rollout. Its labels are `slipway.dev/rollout` and
/// `run.labels` only: none of the template's, so the pod is never one of the Rollout's
/// replicas nor an endpoint of any Service that selects them (a hook pod serves nothing).
pub(crate) fn build_pod(rollout: &Rollout, run: &PodRun<'_>) -> Result<Value, String> {
    let template = &rollout.spec.template;
    let mut spec = template
        .spec
        .clone()
        .ok_or_else(|| "the Rollout's template has no pod spec".to_string())?;
    let index = match run.container {
        Some(name) => spec
            .containers
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| format!("the template has no container {name:?}"))?,
        None if spec.containers.is_empty() => {
            return Err("the Rollout's template has no container".into());
        }
        None => 0,
    };
    if run.command.is_empty() {
        return Err("no command given".into());
    }
    let mut container = spec.containers.swap_remove(index);
    container.command = Some(run.command.to_vec());
    container.args = if run.args.is_empty() {
        None
    } else {
        Some(run.args.to_vec())
    };
    if !run.env.is_empty() {
        container
            .env
            .get_or_insert_with(Vec::new)
            .extend(run.env.iter().cloned());
    }
    container.liveness_probe = None;
    container.readiness_probe = None;
    container.startup_probe = None;
    container.ports = None;
    container.lifecycle = None;
    spec.containers = vec![container];
    // Sidecars (restartable init containers) would outlive the run; plain init containers
    // prepare the environment the command may need.
    if let Some(inits) = spec.init_containers.as_mut() {
        inits.retain(|c| c.restart_policy.as_deref() != Some("Always"));
        for c in inits.iter_mut() {
            c.ports = None;
        }
    }
    spec.ephemeral_containers = None;
    spec.restart_policy = Some("Never".into());
    spec.active_deadline_seconds = Some(run.deadline_seconds.max(1));
    spec.node_name = None;

    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let rollout_name = rollout.metadata.name.clone().unwrap_or_default();
    labels.insert(ROLLOUT_LABEL.into(), label_value(&rollout_name));
    for (k, v) in &run.labels {
        labels.insert((*k).to_string(), label_value(v));
    }
    let owner = OwnerReference {
        api_version: slipway_rollout::API_VERSION.into(),
        kind: slipway_rollout::KIND.into(),
        name: rollout_name,
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(run.name.clone()),
            namespace: Some(namespace_of(rollout).to_string()),
            labels: Some(labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    let mut v = serde_json::to_value(&pod).map_err(|e| format!("encoding the pod: {e}"))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("apiVersion".into(), "v1".into());
        obj.insert("kind".into(), "Pod".into());
    }
    Ok(v)
}
