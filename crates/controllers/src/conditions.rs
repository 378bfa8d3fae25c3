//! Deployment and ReplicaSet conditions (§12): types, reasons, messages, and the write rules.

use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentStatus, ReplicaSetCondition, ReplicaSetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Condition type: minimum availability.
pub const AVAILABLE: &str = "Available";
/// Condition type: rollout progress.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: pods could not be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Condition status values.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";
/// Condition status `Unknown`.
pub const UNKNOWN: &str = "Unknown";

/// Progressing reason: the new ReplicaSet was created.
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason: an existing new ReplicaSet was found.
pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
/// Progressing reason: the rollout made progress.
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing reason: the rollout completed.
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: the progress deadline passed.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the Deployment is paused.
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
/// Progressing reason: the Deployment was resumed.
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
/// Progressing reason (and event reason): creating the new ReplicaSet failed.
pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
/// Available reason: enough replicas are available.
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available reason: too few replicas are available.
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// ReplicaFailure reason on a ReplicaSet: too few pods and creating failed.
pub const FAILED_CREATE: &str = "FailedCreate";
/// ReplicaFailure reason on a ReplicaSet: too many pods and deleting failed.
pub const FAILED_DELETE: &str = "FailedDelete";

/// Truncates to whole seconds: condition times are serialized at second precision, so a
/// computed status compares equal to its stored copy.
pub fn to_condition_time(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// NewDeploymentCondition: both times set to `now` (whole seconds).
pub fn new_deployment_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) -> DeploymentCondition {
    let t = to_condition_time(now);
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.into()),
        last_update_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

/// GetDeploymentCondition.
pub fn get_deployment_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// The reason of a condition, or `""`.
pub fn reason(c: &DeploymentCondition) -> &str {
    c.reason.as_deref().unwrap_or("")
}

/// SetDeploymentCondition: no-op when status and reason are unchanged; keeps
/// `lastTransitionTime` when only the reason changes; the new condition goes last.
pub fn set_deployment_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_deployment_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_deployment_condition(status, &condition.type_.clone());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// RemoveDeploymentCondition.
pub fn remove_deployment_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// ReplicaSetToDeploymentCondition: `lastUpdateTime` takes the RS's `lastTransitionTime`.
pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

/// NewReplicaSetCondition: `lastTransitionTime` set to `now` (whole seconds).
pub fn new_replica_set_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) -> ReplicaSetCondition {
    ReplicaSetCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.into()),
        last_transition_time: Some(to_condition_time(now)),
    }
}

/// GetCondition for ReplicaSets.
pub fn get_replica_set_condition<'a>(
    status: &'a ReplicaSetStatus,
    type_: &str,
) -> Option<&'a ReplicaSetCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// SetCondition for ReplicaSets: no-op when status and reason are unchanged; the new
/// condition replaces the old one at the end of the list.
pub fn set_replica_set_condition(status: &mut ReplicaSetStatus, condition: ReplicaSetCondition) {
    if let Some(current) = get_replica_set_condition(status, &condition.type_)
        && current.status == condition.status
        && current.reason == condition.reason
    {
        return;
    }
    remove_replica_set_condition(status, &condition.type_.clone());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// RemoveCondition for ReplicaSets.
pub fn remove_replica_set_condition(status: &mut ReplicaSetStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}
