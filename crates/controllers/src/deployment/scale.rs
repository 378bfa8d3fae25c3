//! Scaling events and proportional scaling (§8).

use super::pass::{Pass, ScaleDirection};
use crate::annotations::desired_replicas_annotation;
use crate::fenceposts::max_surge;
use crate::replicas::{is_saturated, proportion, spec_replicas_sum};
use crate::spec::{desired_replicas, is_recreate, rs_spec_replicas};
use crate::template::{by_creation, by_size_newer, by_size_older, is_active};

/// isScalingEvent: some active ReplicaSet was last sized for a different `spec.replicas`.
/// Call after the new ReplicaSet has been resolved.
pub fn is_scaling_event(pass: &Pass) -> bool {
    let replicas = desired_replicas(&pass.deployment);
    pass.all_indices().into_iter().any(|i| {
        let rs = &pass.replica_sets[i];
        is_active(rs) && desired_replicas_annotation(rs).is_some_and(|d| d != replicas)
    })
}

/// FindActiveOrLatest: the only active ReplicaSet; with none active, the new one or else the
/// newest old one; `None` when several are active.
pub fn active_or_latest(pass: &Pass) -> Option<usize> {
    let mut old = pass.old_indices();
    if pass.new_index.is_none() && old.is_empty() {
        return None;
    }
    old.sort_by(|&a, &b| by_creation(&pass.replica_sets[b], &pass.replica_sets[a]));
    let mut candidates = old.clone();
    candidates.extend(pass.new_index);
    let active: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| is_active(&pass.replica_sets[i]))
        .collect();
    match active.as_slice() {
        [] => pass.new_index.or_else(|| old.first().copied()),
        [only] => Some(*only),
        _ => None,
    }
}

/// scale: resizes the ReplicaSets for a changed `spec.replicas` (single target, saturated new
/// ReplicaSet, or proportional distribution of `replicas + maxSurge` for RollingUpdate).
pub fn scale(pass: &mut Pass) {
    let replicas = desired_replicas(&pass.deployment);
    if let Some(target) = active_or_latest(pass) {
        let direction = if rs_spec_replicas(&pass.replica_sets[target]) <= replicas {
            ScaleDirection::Up
        } else {
            ScaleDirection::Down
        };
        // Unlike upstream, this also refreshes stale replica annotations when the size
        // already matches: otherwise every later pass is a "scaling event" that changes
        // nothing, and the rollout never progresses nor times out (found by the
        // deterministic simulation, seeds 694 and 1985; cf. kubernetes/kubernetes#138840).
        pass.scale_replica_set(target, replicas, direction);
        return;
    }
    if is_saturated(&pass.deployment, pass.new_rs()) {
        for index in pass.old_indices() {
            if is_active(&pass.replica_sets[index]) {
                pass.scale_and_record(index, 0);
            }
        }
        return;
    }
    if is_recreate(&pass.deployment) {
        return;
    }
    let mut active: Vec<usize> = pass
        .all_indices()
        .into_iter()
        .filter(|&i| is_active(&pass.replica_sets[i]))
        .collect();
    let current = spec_replicas_sum(pass.refs(&active));
    let allowed = if replicas > 0 {
        replicas.saturating_add(max_surge(&pass.deployment))
    } else {
        0
    };
    let to_add = allowed.saturating_sub(current);
    let direction = match to_add {
        n if n > 0 => {
            active.sort_by(|&a, &b| by_size_newer(&pass.replica_sets[a], &pass.replica_sets[b]));
            ScaleDirection::Up
        }
        n if n < 0 => {
            active.sort_by(|&a, &b| by_size_older(&pass.replica_sets[a], &pass.replica_sets[b]));
            ScaleDirection::Down
        }
        _ => ScaleDirection::Unspecified,
    };
    let mut added = 0i32;
    let mut sizes = Vec::with_capacity(active.len());
    for &index in &active {
        let rs = &pass.replica_sets[index];
        let spec = rs_spec_replicas(rs);
        if to_add == 0 {
            sizes.push(spec);
            continue;
        }
        let p = proportion(&pass.deployment, Some(rs), to_add, added);
        sizes.push(spec.saturating_add(p));
        added = added.saturating_add(p);
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = first.saturating_add(to_add.saturating_sub(added)).max(0);
    }
    for (index, size) in active.into_iter().zip(sizes) {
        pass.scale_replica_set(index, size, direction);
    }
}
