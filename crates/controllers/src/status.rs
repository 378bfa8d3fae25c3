//! Deployment status (§12): field calculation, the complete / progressing / timed-out
//! predicates, the Progressing evaluation of rollout passes, and the deadline re-queue.

use crate::Requeue;
use crate::conditions::{
    AVAILABLE, FALSE, MINIMUM_REPLICAS_AVAILABLE, MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_REPLICA_SET_AVAILABLE, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING, REPLICA_FAILURE,
    REPLICA_SET_UPDATED, TRUE, get_deployment_condition, new_deployment_condition, reason,
    remove_deployment_condition, replica_set_to_deployment_condition, set_deployment_condition,
};
use crate::fenceposts::max_unavailable;
use crate::replicas::{
    available_replicas_sum, ready_replicas_sum, spec_replicas_sum, status_replicas_sum,
    terminating_replicas_sum,
};
use crate::spec::{desired_replicas, generation, name, progress_deadline_seconds};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    if v == T::default() { None } else { Some(v) }
}

/// Counter fields of a status, with unset read as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
}

impl StatusCounts {
    /// Reads the counters of a status.
    pub fn of(status: &DeploymentStatus) -> StatusCounts {
        StatusCounts {
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
        }
    }
}

fn stored_status(d: &Deployment) -> DeploymentStatus {
    d.status.clone().unwrap_or_default()
}

/// calculateStatus: the counters over `all_rss` (old + new) and the Available condition.
/// Conditions of other types are carried over untouched.
pub fn calculate_status(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let stored = stored_status(d);
    let available = available_replicas_sum(all_rss.iter().copied());
    let total_spec = spec_replicas_sum(all_rss.iter().copied());
    let unavailable = total_spec.saturating_sub(available).max(0);
    let mut status = DeploymentStatus {
        observed_generation: nonzero(generation(&d.metadata)),
        replicas: nonzero(status_replicas_sum(all_rss.iter().copied())),
        updated_replicas: nonzero(status_replicas_sum(new_rs)),
        ready_replicas: nonzero(ready_replicas_sum(all_rss.iter().copied())),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero(unavailable),
        collision_count: stored.collision_count,
        terminating_replicas: terminating_replicas_sum(all_rss.iter().copied()),
        conditions: stored.conditions.clone(),
    };
    let min_available = desired_replicas(d).saturating_sub(max_unavailable(d));
    let condition = if available >= min_available {
        new_deployment_condition(
            AVAILABLE,
            TRUE,
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_deployment_condition(
            AVAILABLE,
            FALSE,
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_deployment_condition(&mut status, condition);
    status
}

/// DeploymentComplete: every replica updated and available, no old ones, generation observed.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let c = StatusCounts::of(status);
    let replicas = desired_replicas(d);
    c.updated == replicas
        && c.replicas == replicas
        && c.available == replicas
        && c.observed_generation >= generation(&d.metadata)
}

/// DeploymentProgressing: the new status shows more updated, fewer old, more ready or more
/// available replicas than the stored status.
pub fn deployment_progressing(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let old = StatusCounts::of(&stored_status(d));
    let new = StatusCounts::of(new_status);
    new.updated > old.updated
        || (new.replicas - new.updated) < (old.replicas - old.updated)
        || new.ready > old.ready
        || new.available > old.available
}

/// DeploymentTimedOut: judged on the Progressing condition of `new_status`.
pub fn deployment_timed_out(d: &Deployment, new_status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline_seconds(d) else {
        return false;
    };
    let Some(condition) = get_deployment_condition(new_status, PROGRESSING) else {
        return false;
    };
    match reason(condition) {
        NEW_REPLICA_SET_AVAILABLE => false,
        PROGRESS_DEADLINE_EXCEEDED => true,
        _ => {
            let from = condition
                .last_update_time
                .as_ref()
                .map_or(i128::MIN / 2, |t| t.0.as_nanosecond());
            from + i128::from(deadline) * 1_000_000_000 < now.as_nanosecond()
        }
    }
}

/// The rollout's Progressing evaluation and ReplicaFailure mirroring (syncRolloutStatus),
/// as a status value. The caller writes it only if it differs from the stored status.
pub fn rollout_status(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all_rss, new_rs, now);
    let has_deadline = progress_deadline_seconds(d).is_some();
    if !has_deadline {
        remove_deployment_condition(&mut status, PROGRESSING);
    }
    let stored = stored_status(d);
    let current = get_deployment_condition(&stored, PROGRESSING).cloned();
    let counts = StatusCounts::of(&status);
    let already_complete = counts.replicas == counts.updated
        && current
            .as_ref()
            .is_some_and(|c| reason(c) == NEW_REPLICA_SET_AVAILABLE);
    if has_deadline && !already_complete {
        let subject = match new_rs {
            Some(rs) => format!("ReplicaSet \"{}\"", name(&rs.metadata)),
            None => format!("Deployment \"{}\"", name(&d.metadata)),
        };
        if deployment_complete(d, &status) {
            let c = new_deployment_condition(
                PROGRESSING,
                TRUE,
                NEW_REPLICA_SET_AVAILABLE,
                format!("{subject} has successfully progressed."),
                now,
            );
            set_deployment_condition(&mut status, c);
        } else if deployment_progressing(d, &status) {
            let mut c = new_deployment_condition(
                PROGRESSING,
                TRUE,
                REPLICA_SET_UPDATED,
                format!("{subject} is progressing."),
                now,
            );
            if let Some(current) = &current {
                if current.status == TRUE {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove_deployment_condition(&mut status, PROGRESSING);
            }
            set_deployment_condition(&mut status, c);
        } else if deployment_timed_out(d, &status, now) {
            let c = new_deployment_condition(
                PROGRESSING,
                FALSE,
                PROGRESS_DEADLINE_EXCEEDED,
                format!("{subject} has timed out progressing."),
                now,
            );
            set_deployment_condition(&mut status, c);
        }
    }
    match replica_failure(all_rss, new_rs) {
        Some(c) => set_deployment_condition(&mut status, c),
        None => remove_deployment_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// getReplicaFailures: the new ReplicaSet's ReplicaFailure condition, else the first one on
/// any ReplicaSet.
fn replica_failure(
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
    new_rs
        .into_iter()
        .chain(all_rss.iter().copied())
        .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .find(|c| c.type_ == REPLICA_FAILURE)
        .map(replica_set_to_deployment_condition)
}

/// requeueStuckDeployment: when a rollout with a deadline shows no progress, when to look
/// again. `None` when no deadline, no Progressing condition in the stored status, the new
/// status is complete, or the stored reason is `ProgressDeadlineExceeded`.
/// Otherwise `after = lastUpdateTime + deadline − now`: under 1s → [`Requeue::Now`], else
/// [`Requeue::After`]`(after + 1s)`.
pub fn requeue_stuck_deployment(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Requeue> {
    let deadline = progress_deadline_seconds(d)?;
    let stored = stored_status(d);
    let current = get_deployment_condition(&stored, PROGRESSING)?;
    if deployment_complete(d, new_status) || reason(current) == PROGRESS_DEADLINE_EXCEEDED {
        return None;
    }
    let from = current
        .last_update_time
        .as_ref()
        .map_or(0, |t| t.0.as_nanosecond());
    let after = from + i128::from(deadline) * 1_000_000_000 - now.as_nanosecond();
    if after < 1_000_000_000 {
        return Some(Requeue::Now);
    }
    let nanos = u64::try_from(after + 1_000_000_000).unwrap_or(u64::MAX);
    Some(Requeue::After(Duration::from_nanos(nanos)))
}

/// Deep equality of two statuses as Kubernetes serializes them (zero counters are omitted,
/// an empty condition list equals none).
pub fn status_equal(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    normalize(a) == normalize(b)
}

/// A status with zero counters unset and an empty condition list removed.
pub fn normalize(s: &DeploymentStatus) -> DeploymentStatus {
    let mut n = s.clone();
    for field in [
        &mut n.replicas,
        &mut n.updated_replicas,
        &mut n.ready_replicas,
        &mut n.available_replicas,
        &mut n.unavailable_replicas,
    ] {
        *field = field.filter(|v| *v != 0);
    }
    n.observed_generation = n.observed_generation.filter(|v| *v != 0);
    if n.conditions.as_ref().is_some_and(Vec::is_empty) {
        n.conditions = None;
    }
    n
}
