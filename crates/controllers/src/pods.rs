//! Pod predicates and the ReplicaSet controller's deletion order (§13).

use crate::spec::uid;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// Annotation lowering a pod's deletion priority cost (int32; invalid reads as 0).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `status.phase`, or `""`.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod reached Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// IsPodActive: not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Terminating (KEP-3973): being deleted but not yet terminal.
pub fn is_terminating(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_some()
}

/// The pod's Ready condition.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// IsPodReady: the Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// IsPodAvailable: ready, and ready since strictly before `now − minReadySeconds`
/// (always available once ready when `minReadySeconds` is 0).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_condition(pod)
        .and_then(|c| c.last_transition_time.as_ref())
        .is_some_and(|t| {
            t.0.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000
                < now.as_nanosecond()
        })
}

/// When a ready pod becomes available (`None` if not ready, already available, or never).
pub fn becomes_available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i128> {
    if min_ready_seconds <= 0 || !is_ready(pod) || is_available(pod, min_ready_seconds, now) {
        return None;
    }
    let since = ready_condition(pod)?.last_transition_time.as_ref()?.0;
    Some(
        since.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000 - now.as_nanosecond(),
    )
}

/// The `pod-deletion-cost` annotation (0 when absent or not an int32).
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Highest restart count among regular containers, and among restartable (sidecar) init
/// containers.
pub fn max_container_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let sidecars: BTreeSet<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// Logarithmic age bucket: floor(log2(now − t in ns)), −1 for a time not before `now`.
fn age_bucket(t: Timestamp, now: Timestamp) -> i32 {
    let age = now.as_nanosecond() - t.as_nanosecond();
    u128::try_from(age)
        .ok()
        .filter(|a| *a > 0)
        .map_or(-1, |a| i32::try_from(a.ilog2()).unwrap_or(i32::MAX))
}

/// The deletion order of `pods` (indices, first = delete first), as ActivePodsWithRanks sorts:
/// unassigned before assigned; Pending < Unknown < Running; not ready before ready; lower
/// `pod-deletion-cost` first; more active `related` pods on the same node first; ready for a
/// shorter time first (logarithmic buckets); more restarts first; newer first (logarithmic
/// buckets, unset creation first); then UID. Ties inside a bucket fall through to the next
/// rule (so the order is total), where Kubernetes compares UIDs at once.
pub fn deletion_order(pods: &[&Pod], related: &[&Pod], now: Timestamp) -> Vec<usize> {
    let mut on_node: BTreeMap<&str, i64> = BTreeMap::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for pod in pods.iter().chain(related) {
        let id = uid(&pod.metadata);
        if !id.is_empty() && !seen.insert(id) {
            continue;
        }
        if is_active(pod) {
            *on_node.entry(node_name(pod)).or_default() += 1;
        }
    }
    let key = |pod: &Pod| {
        let ready = is_ready(pod);
        let ready_bucket = if ready {
            ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map_or(i32::MAX, |t| age_bucket(t.0, now))
        } else {
            0
        };
        let created_bucket = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(-2, |t| age_bucket(t.0, now));
        let (regular, sidecar) = max_container_restarts(pod);
        let rank = on_node.get(node_name(pod)).copied().unwrap_or(0);
        (
            !node_name(pod).is_empty(),
            phase_ordinal(pod),
            ready,
            deletion_cost(pod),
            Reverse(rank),
            ready_bucket,
            Reverse(regular),
            Reverse(sidecar),
            created_bucket,
            uid(&pod.metadata).to_string(),
        )
    };
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by_cached_key(|&i| key(pods[i]));
    order
}

/// Decodes a pod with only what the ReplicaSet planner ([`crate::replicaset::plan`], through
/// the predicates and the deletion order of this module and the ownership claim) reads: all of
/// `metadata`, `spec.nodeName`, the names and restart policies of `spec.initContainers`, and
/// `status.phase`, `status.conditions` and the names and restart counts of the container
/// statuses. Every other field is left at its default. Planning with such pods gives the same
/// plan as with whole ones, and decoding skips the bulk of a pod (containers, their states),
/// which a ReplicaSet sync would otherwise decode for every pod it owns.
pub fn decode_for_replica_set(pod: &serde_json::Value) -> Result<Pod, serde_json::Error> {
    let slim = SlimPod::deserialize(pod)?;
    Ok(Pod {
        metadata: slim.metadata.unwrap_or_default(),
        spec: slim.spec.map(|s| PodSpec {
            node_name: s.node_name,
            init_containers: s.init_containers.map(|cs| {
                cs.into_iter()
                    .map(|c| Container {
                        name: c.name.unwrap_or_default(),
                        restart_policy: c.restart_policy,
                        ..Container::default()
                    })
                    .collect()
            }),
            ..PodSpec::default()
        }),
        status: slim.status.map(|s| PodStatus {
            phase: s.phase,
            conditions: s.conditions,
            container_statuses: s.container_statuses.map(SlimContainerStatus::all),
            init_container_statuses: s.init_container_statuses.map(SlimContainerStatus::all),
            ..PodStatus::default()
        }),
    })
}

/// The parts of a pod [`decode_for_replica_set`] keeps (unknown fields are skipped).
#[derive(Deserialize)]
struct SlimPod {
    metadata: Option<ObjectMeta>,
    spec: Option<SlimPodSpec>,
    status: Option<SlimPodStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimPodSpec {
    node_name: Option<String>,
    init_containers: Option<Vec<SlimContainer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimContainer {
    name: Option<String>,
    restart_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimPodStatus {
    phase: Option<String>,
    conditions: Option<Vec<PodCondition>>,
    container_statuses: Option<Vec<SlimContainerStatus>>,
    init_container_statuses: Option<Vec<SlimContainerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimContainerStatus {
    name: Option<String>,
    restart_count: Option<i32>,
}

impl SlimContainerStatus {
    fn all(statuses: Vec<SlimContainerStatus>) -> Vec<ContainerStatus> {
        statuses
            .into_iter()
            .map(|c| ContainerStatus {
                name: c.name.unwrap_or_default(),
                restart_count: c.restart_count.unwrap_or_default(),
                ..ContainerStatus::default()
            })
            .collect()
    }
}
