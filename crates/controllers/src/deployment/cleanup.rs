//! revisionHistoryLimit cleanup (§11).

use super::pass::Pass;
use crate::spec::{is_being_deleted, revision_history_limit, rs_spec_replicas, rs_status_replicas};
use crate::template::by_revision;
use k8s_openapi::api::apps::v1::ReplicaSet;

/// cleanupDeployment: among the old ReplicaSets not being deleted, visits the
/// `count − limit` lowest revisions and deletes those that are fully scaled down (spec and
/// status 0) and observed by their controller. `basis` holds the ReplicaSets as they were
/// before this pass scaled anything; ReplicaSets this pass changed are never deleted.
pub fn cleanup_deployment(pass: &mut Pass, old: &[usize], basis: &[ReplicaSet]) {
    let Some(limit) = revision_history_limit(&pass.deployment) else {
        return;
    };
    let snapshot = |index: usize| -> ReplicaSet {
        let current = &pass.replica_sets[index];
        basis
            .iter()
            .find(|rs| rs.metadata.name == current.metadata.name)
            .unwrap_or(current)
            .clone()
    };
    let mut cleanable: Vec<(usize, ReplicaSet)> = old
        .iter()
        .map(|&i| (i, snapshot(i)))
        .filter(|(_, rs)| !is_being_deleted(&rs.metadata))
        .collect();
    let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
    if diff <= 0 {
        return;
    }
    cleanable.sort_by(|a, b| by_revision(&a.1, &b.1));
    let visit = usize::try_from(diff).unwrap_or(usize::MAX);
    for (index, rs) in cleanable.into_iter().take(visit) {
        let observed = rs
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        let generation = rs.metadata.generation.unwrap_or(0);
        if rs_status_replicas(&rs) != 0
            || rs_spec_replicas(&rs) != 0
            || generation > observed
            || is_being_deleted(&rs.metadata)
            || pass.is_touched(index)
        {
            continue;
        }
        pass.delete(index);
    }
}
