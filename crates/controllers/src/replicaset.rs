//! The ReplicaSet controller's planner: one pass of `syncReplicaSet` (§13) as a value.
//!
//! Drive it like this: on every trigger (ReplicaSet change, change of a pod it controls or of
//! an orphan pod its selector matches, a [`Requeue`] coming due), list the ReplicaSet, the pods
//! of its namespace that it controls or that have no controller, optionally the pods of its
//! sibling ReplicaSets (same controller; they only refine the deletion order), and pass the
//! creations/deletions still expected from earlier passes ([`Expectations`]). Apply
//! [`ReplicaSetPlan::ownership`], then create [`ReplicaSetPlan::create`] in the batch sizes of
//! [`ReplicaSetPlan::create_batches`] (stop at the first failing batch), or delete
//! [`ReplicaSetPlan::delete`]; raise the expectations by what was sent and lower them as the
//! pods appear or vanish (or after a timeout). Then write [`ReplicaSetPlan::status`] through
//! `/status` if present; if creating or deleting failed, write
//! [`status_after_failure`] instead.

use crate::conditions::{
    FAILED_CREATE, FAILED_DELETE, REPLICA_FAILURE, TRUE, get_replica_set_condition,
    new_replica_set_condition, remove_replica_set_condition, set_replica_set_condition,
};
use crate::deployment::ObjectKey;
use crate::error::PlanError;
use crate::ownership::{OwnershipChange, OwnershipPatch, claim, controller_ref, selector_matcher};
use crate::pods::{
    becomes_available_in, deletion_order, is_active, is_available, is_ready, is_terminating,
};
use crate::spec::{generation, is_being_deleted, name, rs_min_ready_seconds, rs_spec_replicas};
use crate::{Event, Requeue};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// At most this many pods are created or deleted per pass (burstReplicas).
pub const BURST_REPLICAS: i32 = 500;

/// Creations and deletions sent earlier and not yet observed. While any are outstanding the
/// planner does not create or delete (so it never over-creates); it only refreshes status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Pod creations not yet seen in the pod list.
    pub pending_creations: i32,
    /// Pod deletions not yet seen.
    pub pending_deletions: i32,
}

impl Expectations {
    /// SatisfiedExpectations: nothing outstanding.
    pub fn satisfied(&self) -> bool {
        self.pending_creations <= 0 && self.pending_deletions <= 0
    }
}

/// What one pass observed.
#[derive(Clone, Debug)]
pub struct ObservedReplicaSet {
    /// The ReplicaSet as stored.
    pub replica_set: ReplicaSet,
    /// Pods of the namespace it controls or that have no controller. The planner reads only
    /// what [`crate::pods::decode_for_replica_set`] keeps of a pod. Shared: the controller
    /// keeps decoded pods from one pass to the next.
    pub pods: Vec<Arc<Pod>>,
    /// Active pods of sibling ReplicaSets (same controller), for co-location ranking (read
    /// likewise).
    pub related_pods: Vec<Arc<Pod>>,
    /// Outstanding expectations from earlier passes.
    pub expectations: Expectations,
    /// The clock reading for this pass.
    pub now: Timestamp,
}

/// The result of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSetPlan {
    /// Pod adoptions and releases, to apply first.
    pub ownership: Vec<OwnershipPatch>,
    /// Pods to create (`generateName: <rs>-`).
    pub create: Vec<Pod>,
    /// Slow-start batch sizes for `create` (1, 2, 4, …); stop at the first failing batch.
    pub create_batches: Vec<usize>,
    /// Pods to delete, in Kubernetes' deletion order.
    pub delete: Vec<ObjectKey>,
    /// The new status, when it differs from the stored one (assuming the writes succeed).
    pub status: Option<ReplicaSetStatus>,
    /// Events to record (`SuccessfulCreate`/`SuccessfulDelete` are per pod; the reconciler
    /// records them as it goes, with [`pod_created_event`] / [`pod_deleted_event`]).
    pub events: Vec<Event>,
    /// When to look again (pods becoming available after `minReadySeconds`).
    pub requeue: Option<Requeue>,
}

/// Plans one pass: claim pods, create or delete toward `spec.replicas` (unless expectations
/// are outstanding or the ReplicaSet is being deleted), and compute the status.
pub fn plan(observed: &ObservedReplicaSet) -> Result<ReplicaSetPlan, PlanError> {
    let rs = &observed.replica_set;
    let rs_name = name(&rs.metadata).to_string();
    let spec = rs.spec.clone().ok_or_else(|| PlanError::MissingField {
        object: rs_name.clone(),
        field: "spec",
    })?;
    let matcher = selector_matcher(&spec.selector, &rs_name)?;
    let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
    let deleting = is_being_deleted(&rs.metadata);
    let metas: Vec<&ObjectMeta> = observed.pods.iter().map(|p| &p.metadata).collect();
    let claims = claim(&owner, deleting, &matcher, &metas);
    let mut plan = ReplicaSetPlan::default();
    let mut claimed: Vec<&Pod> = claims.owned.iter().map(|&i| &*observed.pods[i]).collect();
    for patch in &claims.patches {
        if let OwnershipChange::Adopt(_) = patch.change
            && let Some(pod) = observed
                .pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(patch.uid.as_str()))
        {
            claimed.push(pod);
        }
    }
    plan.ownership = claims.patches;
    let active: Vec<&Pod> = claimed.iter().copied().filter(|p| is_active(p)).collect();

    if observed.expectations.satisfied() && !deleting {
        let desired = rs_spec_replicas(rs);
        let diff = i64::try_from(active.len()).unwrap_or(i64::MAX) - i64::from(desired);
        if diff < 0 {
            let count = usize::try_from((-diff).min(i64::from(BURST_REPLICAS))).unwrap_or(0);
            let template_pod = pod_from_template(rs)?;
            plan.create = vec![template_pod; count];
            plan.create_batches = slow_start_batches(count);
        } else if diff > 0 {
            let count = usize::try_from(diff.min(i64::from(BURST_REPLICAS))).unwrap_or(0);
            let related: Vec<&Pod> = observed.related_pods.iter().map(|p| &**p).collect();
            let chosen: Vec<usize> = if count < active.len() {
                deletion_order(&active, &related, observed.now)
                    .into_iter()
                    .take(count)
                    .collect()
            } else {
                (0..active.len()).collect()
            };
            plan.delete = chosen.into_iter().map(|i| pod_key(active[i])).collect();
        }
    }

    let status = calculate_status(rs, &claimed, observed.now);
    if !status_equal(rs.status.as_ref(), &status) {
        plan.status = Some(status.clone());
    }
    plan.requeue = availability_requeue(rs, &active, observed.now);
    Ok(plan)
}

fn pod_key(pod: &Pod) -> ObjectKey {
    ObjectKey {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: name(&pod.metadata).to_string(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
    }
}

/// slowStartBatch sizes: 1, 2, 4, … capped by what remains, summing to `count`.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = 1usize.min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = size.saturating_mul(2).min(remaining);
    }
    batches
}

/// GetPodFromTemplate: a pod with the template's labels, annotations, finalizers and spec,
/// `generateName: <rs>-`, the ReplicaSet's namespace and a controller reference to it.
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Pod, PlanError> {
    let rs_name = name(&rs.metadata);
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| PlanError::MissingField {
            object: rs_name.to_string(),
            field: "spec.template",
        })?;
    let template_meta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{rs_name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// calculateStatus over the pods the ReplicaSet controls (terminal and terminating ones are
/// skipped for the counters). Keeps the stored conditions (a ReplicaFailure is removed, as
/// after a successful pass).
pub fn calculate_status(rs: &ReplicaSet, pods: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = rs_min_ready_seconds(rs);
    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| -> i32 {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let ready = count(&is_ready);
    let available = count(&|p| is_available(p, min_ready, now));
    let terminating = pods.iter().filter(|p| is_terminating(p)).count();
    let mut status = rs.status.clone().unwrap_or_default();
    remove_replica_set_condition(&mut status, REPLICA_FAILURE);
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    status.replicas = i32::try_from(active.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = nonzero(fully_labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    status.terminating_replicas = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
    status.observed_generation = Some(generation(&rs.metadata)).filter(|g| *g != 0);
    status
}

fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// The status to write when creating or deleting pods failed with `error`: a ReplicaFailure
/// condition (`FailedCreate` with too few pods, `FailedDelete` with too many) unless one is
/// already present.
pub fn status_after_failure(
    rs: &ReplicaSet,
    planned: &ReplicaSetStatus,
    active_pods: i32,
    error: &str,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = planned.clone();
    let stored = rs.status.clone().unwrap_or_default();
    if let Some(existing) = get_replica_set_condition(&stored, REPLICA_FAILURE) {
        set_replica_set_condition(&mut status, existing.clone());
        return status;
    }
    let diff = i64::from(active_pods) - i64::from(rs_spec_replicas(rs));
    let reason = match diff {
        d if d < 0 => FAILED_CREATE,
        d if d > 0 => FAILED_DELETE,
        _ => "",
    };
    let c = new_replica_set_condition(REPLICA_FAILURE, TRUE, reason, error, now);
    set_replica_set_condition(&mut status, c);
    status
}

fn status_equal(stored: Option<&ReplicaSetStatus>, new: &ReplicaSetStatus) -> bool {
    let normalize = |s: &ReplicaSetStatus| {
        let mut n = s.clone();
        for f in [
            &mut n.fully_labeled_replicas,
            &mut n.ready_replicas,
            &mut n.available_replicas,
        ] {
            *f = f.filter(|v| *v != 0);
        }
        n.observed_generation = n.observed_generation.filter(|v| *v != 0);
        if n.conditions.as_ref().is_some_and(Vec::is_empty) {
            n.conditions = None;
        }
        n
    };
    normalize(&stored.cloned().unwrap_or_default()) == normalize(new)
}

/// When the next pod becomes available (`minReadySeconds` after turning ready), plus 1ms.
fn availability_requeue(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<Requeue> {
    let min_ready = rs_min_ready_seconds(rs);
    let soonest = active
        .iter()
        .filter_map(|p| becomes_available_in(p, min_ready, now))
        .min()?;
    let nanos = u64::try_from(soonest.max(0) + 1_000_000).unwrap_or(u64::MAX);
    Some(Requeue::After(Duration::from_nanos(nanos)))
}

/// The `SuccessfulCreate` event recorded on the ReplicaSet for a created pod.
pub fn pod_created_event(pod_name: &str) -> Event {
    Event::normal("SuccessfulCreate", format!("Created pod: {pod_name}"))
}

/// The `SuccessfulDelete` event recorded on the ReplicaSet for a deleted pod.
pub fn pod_deleted_event(pod_name: &str) -> Event {
    Event::normal("SuccessfulDelete", format!("Deleted pod: {pod_name}"))
}

/// The `FailedCreate` warning recorded on the ReplicaSet when a pod creation fails.
pub fn pod_create_failed_event(error: &str) -> Event {
    Event::warning(FAILED_CREATE, format!("Error creating: {error}"))
}
