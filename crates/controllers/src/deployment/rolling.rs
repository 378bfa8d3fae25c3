//! RollingUpdate (§6): scale the new ReplicaSet up within `maxSurge`, scale old ones down
//! within `maxUnavailable`.

use super::pass::{NewReplicaSet, Pass};
use crate::error::PlanError;
use crate::fenceposts::max_unavailable;
use crate::replicas::{available_replicas_sum, new_rs_new_replicas, spec_replicas_sum};
use crate::spec::{desired_replicas, rs_available_replicas, rs_spec_replicas};
use crate::status::deployment_complete;
use crate::template::{by_creation, is_active};

/// rolloutRolling: one pass (§6).
pub fn rollout(pass: &mut Pass) -> Result<(), PlanError> {
    if pass.ensure_new_replica_set(true)? == NewReplicaSet::Collision {
        return Ok(());
    }
    let basis = pass.status_basis();
    if reconcile_new_replica_set(pass)? {
        pass.sync_rollout_status(&basis);
        return Ok(());
    }
    if reconcile_old_replica_sets(pass)? {
        pass.sync_rollout_status(&basis);
        return Ok(());
    }
    let stored_status = pass.deployment.status.clone().unwrap_or_default();
    if deployment_complete(&pass.deployment, &stored_status) {
        let old = pass.old_indices();
        super::cleanup::cleanup_deployment(pass, &old, &basis);
    }
    pass.sync_rollout_status(&basis);
    Ok(())
}

/// reconcileNewReplicaSet: scales the new ReplicaSet toward `spec.replicas` (down at once, up
/// by NewRSNewReplicas). Returns whether its size changed.
pub fn reconcile_new_replica_set(pass: &mut Pass) -> Result<bool, PlanError> {
    let Some(new) = pass.new_index else {
        return Ok(false);
    };
    let replicas = desired_replicas(&pass.deployment);
    let spec = rs_spec_replicas(&pass.replica_sets[new]);
    if spec == replicas {
        return Ok(false);
    }
    if spec > replicas {
        return Ok(pass.scale_and_record(new, replicas));
    }
    let all = pass.all_indices();
    let target = new_rs_new_replicas(&pass.deployment, pass.refs(&all), &pass.replica_sets[new])?;
    Ok(pass.scale_and_record(new, target))
}

/// Result of [`reconcile_old_replica_sets_detailed`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OldScaleDown {
    /// Replicas removed by the unhealthy cleanup (phase 1).
    pub cleaned_up: i32,
    /// Replicas removed by the availability-bounded scale-down (phase 2).
    pub scaled_down: i32,
}

/// reconcileOldReplicaSets: returns whether any old ReplicaSet was scaled down.
pub fn reconcile_old_replica_sets(pass: &mut Pass) -> Result<bool, PlanError> {
    let r = reconcile_old_replica_sets_detailed(pass)?;
    Ok(r.cleaned_up + r.scaled_down > 0)
}

/// reconcileOldReplicaSets with the two phases' counts.
///
/// As in Kubernetes, a phase that fails (a ReplicaSet whose stale status would make it
/// "scale down" upwards) ends the step without an error and reports nothing scaled; what it
/// had already scaled stays planned. The writes of this step are marked so that the
/// reconciler, as Kubernetes, ignores their failure (see [`super::DeploymentPlan`]).
pub fn reconcile_old_replica_sets_detailed(pass: &mut Pass) -> Result<OldScaleDown, PlanError> {
    let old_active: Vec<usize> = pass
        .old_indices()
        .into_iter()
        .filter(|&i| is_active(&pass.replica_sets[i]))
        .collect();
    if spec_replicas_sum(pass.refs(&old_active)) == 0 {
        return Ok(OldScaleDown::default());
    }
    let all = pass.all_indices();
    let all_pods = i64::from(spec_replicas_sum(pass.refs(&all)));
    let d = &pass.deployment;
    let min_available = i64::from(desired_replicas(d)) - i64::from(max_unavailable(d));
    let new_unavailable = pass.new_rs().map_or(0, |rs| {
        i64::from(rs_spec_replicas(rs)) - i64::from(rs_available_replicas(rs))
    });
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(OldScaleDown::default());
    }
    let max_scaled_down = i32::try_from(max_scaled_down).unwrap_or(i32::MAX);
    pass.ignore_write_failures(&old_active);
    let Ok(cleaned_up) = cleanup_unhealthy_replicas(pass, &old_active, max_scaled_down) else {
        return Ok(OldScaleDown::default());
    };
    let mut with_new = old_active.clone();
    with_new.extend(pass.new_index);
    let Ok(scaled_down) =
        scale_down_old_replica_sets_for_rolling_update(pass, &with_new, &old_active)
    else {
        return Ok(OldScaleDown::default());
    };
    Ok(OldScaleDown {
        cleaned_up,
        scaled_down,
    })
}

/// cleanupUnhealthyReplicas: oldest first, removes up to `max_cleanup` replicas that are not
/// available. Returns how many were removed.
pub fn cleanup_unhealthy_replicas(
    pass: &mut Pass,
    old: &[usize],
    max_cleanup: i32,
) -> Result<i32, PlanError> {
    let mut ordered = old.to_vec();
    ordered.sort_by(|&a, &b| by_creation(&pass.replica_sets[a], &pass.replica_sets[b]));
    let mut total = 0i32;
    for index in ordered {
        if total >= max_cleanup {
            break;
        }
        let rs = &pass.replica_sets[index];
        let spec = rs_spec_replicas(rs);
        let available = rs_available_replicas(rs);
        if spec == 0 || spec == available {
            continue;
        }
        let count = (max_cleanup - total).min(spec.saturating_sub(available));
        let target = spec.saturating_sub(count);
        if target > spec {
            return Err(PlanError::InvalidScaleDown {
                step: "cleaning up unhealthy replicas",
                name: crate::spec::name(&rs.metadata).to_string(),
                from: spec,
                to: target,
            });
        }
        pass.scale_and_record(index, target);
        total += count;
    }
    Ok(total)
}

/// scaleDownOldReplicaSetsForRollingUpdate: oldest first, removes as many old replicas as
/// availability above `minAvailable` allows (availability summed over `all`).
pub fn scale_down_old_replica_sets_for_rolling_update(
    pass: &mut Pass,
    all: &[usize],
    old: &[usize],
) -> Result<i32, PlanError> {
    let d = &pass.deployment;
    let min_available = desired_replicas(d).saturating_sub(max_unavailable(d));
    let available = available_replicas_sum(pass.refs(all));
    if available <= min_available {
        return Ok(0);
    }
    let budget = available - min_available;
    let mut ordered = old.to_vec();
    ordered.sort_by(|&a, &b| by_creation(&pass.replica_sets[a], &pass.replica_sets[b]));
    let mut total = 0i32;
    for index in ordered {
        if total >= budget {
            break;
        }
        let spec = rs_spec_replicas(&pass.replica_sets[index]);
        if spec == 0 {
            continue;
        }
        let count = spec.min(budget - total);
        let target = spec - count;
        if target > spec {
            return Err(PlanError::InvalidScaleDown {
                step: "scaling down old replica sets",
                name: crate::spec::name(&pass.replica_sets[index].metadata).to_string(),
                from: spec,
                to: target,
            });
        }
        pass.scale_and_record(index, target);
        total += count;
    }
    Ok(total)
}
