//! Recreate (§7): scale every old ReplicaSet to 0, wait until no old pod runs, then create and
//! scale up the new one.

use super::pass::{NewReplicaSet, Pass};
use crate::error::PlanError;
use crate::replicas::status_replicas_sum;
use crate::spec::desired_replicas;
use crate::status::deployment_complete;
use crate::template::is_active;
use k8s_openapi::api::apps::v1::ReplicaSet;
use std::collections::BTreeMap;

/// Phase of one pod, as Recreate needs it (`status.phase`, empty when unset).
pub type PodPhaseMap = BTreeMap<String, Vec<String>>;

/// rolloutRecreate: one pass. `pods_by_rs_uid` holds the phase of every pod owned by one of
/// the Deployment's ReplicaSets, keyed by the owning ReplicaSet's UID.
pub fn rollout(pass: &mut Pass, pods_by_rs_uid: &PodPhaseMap) -> Result<(), PlanError> {
    pass.ensure_new_replica_set(false)?;
    let mut basis = pass.status_basis();
    let old_active: Vec<usize> = pass
        .old_indices()
        .into_iter()
        .filter(|&i| is_active(&pass.replica_sets[i]))
        .collect();
    if scale_down_old_replica_sets(pass, &old_active) {
        pass.sync_rollout_status(&basis);
        return Ok(());
    }
    let old = pass.old_indices();
    let new_uid = pass.new_rs().and_then(|rs| rs.metadata.uid.clone());
    if old_pods_running(new_uid.as_deref(), &pass.refs(&old), pods_by_rs_uid) {
        pass.sync_rollout_status(&basis);
        return Ok(());
    }
    if pass.new_index.is_none() {
        if pass.ensure_new_replica_set(true)? == NewReplicaSet::Collision {
            return Ok(());
        }
        basis = pass.status_basis();
    }
    if let Some(new) = pass.new_index {
        let replicas = desired_replicas(&pass.deployment);
        pass.scale_and_record(new, replicas);
    }
    let stored_status = pass.deployment.status.clone().unwrap_or_default();
    if deployment_complete(&pass.deployment, &stored_status) {
        let old = pass.old_indices();
        super::cleanup::cleanup_deployment(pass, &old, &basis);
    }
    pass.sync_rollout_status(&basis);
    Ok(())
}

/// scaleDownOldReplicaSetsForRecreate: every active old ReplicaSet to 0; whether any changed.
pub fn scale_down_old_replica_sets(pass: &mut Pass, old_active: &[usize]) -> bool {
    let mut scaled = false;
    for &index in old_active {
        if crate::spec::rs_spec_replicas(&pass.replica_sets[index]) == 0 {
            continue;
        }
        scaled |= pass.scale_and_record(index, 0);
    }
    scaled
}

/// oldPodsRunning: any old ReplicaSet reports pods, or any pod owned by a ReplicaSet other
/// than the new one is not Succeeded/Failed (Pending, Running, Unknown, empty phase and
/// terminating pods all count).
pub fn old_pods_running(
    new_rs_uid: Option<&str>,
    old_rss: &[&ReplicaSet],
    pods_by_rs_uid: &PodPhaseMap,
) -> bool {
    if status_replicas_sum(old_rss.iter().copied()) > 0 {
        return true;
    }
    pods_by_rs_uid
        .iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_rs_uid)
        .flat_map(|(_, phases)| phases)
        .any(|phase| phase != "Succeeded" && phase != "Failed")
}
