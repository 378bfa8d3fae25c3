//! Replica arithmetic over ReplicaSets (§6.2, §8, §12.1): sums, saturation, NewRSNewReplicas,
//! and the proportional-scaling fractions.

use crate::annotations::{desired_replicas_annotation, max_replicas_annotation};
use crate::error::PlanError;
use crate::fenceposts::{clamp_i32, max_surge, rolling_parameters, scaled_value};
use crate::spec::{
    desired_replicas, is_recreate, rs_available_replicas, rs_ready_replicas, rs_spec_replicas,
    rs_status_replicas,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

fn sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>, f: fn(&ReplicaSet) -> i32) -> i32 {
    clamp_i32(rss.into_iter().map(|rs| i64::from(f(rs))).sum())
}

/// GetReplicaCountForReplicaSets: Σ `spec.replicas`.
pub fn spec_replicas_sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum(rss, rs_spec_replicas)
}

/// GetActualReplicaCountForReplicaSets: Σ `status.replicas`.
pub fn status_replicas_sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum(rss, rs_status_replicas)
}

/// GetReadyReplicaCountForReplicaSets: Σ `status.readyReplicas`.
pub fn ready_replicas_sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum(rss, rs_ready_replicas)
}

/// GetAvailableReplicaCountForReplicaSets: Σ `status.availableReplicas`.
pub fn available_replicas_sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum(rss, rs_available_replicas)
}

/// Σ `status.terminatingReplicas`. A ReplicaSet never observed by its controller
/// (`status.observedGeneration` 0/unset) counts 0; an observed one without the field makes the
/// total unknown (`None`).
pub fn terminating_replicas_sum<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Option<i32> {
    let mut total: i64 = 0;
    for rs in rss {
        let status = rs.status.as_ref();
        match status.and_then(|s| s.terminating_replicas) {
            Some(n) => total += i64::from(n),
            None if status.and_then(|s| s.observed_generation).unwrap_or(0) > 0 => return None,
            None => {}
        }
    }
    Some(clamp_i32(total))
}

/// IsSaturated: the new ReplicaSet runs exactly `spec.replicas` available pods and was last
/// sized for that many.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    let replicas = desired_replicas(d);
    rs_spec_replicas(rs) == replicas && desired == replicas && rs_available_replicas(rs) == replicas
}

/// The replicas a ReplicaSet counts against `replicas + maxSurge`: the larger of its size and
/// its live pods (`status.replicas`). Kubernetes counts the size alone, so for the moment
/// between an old ReplicaSet's scale-down and its controller deleting the pod, the new one may
/// already grow and the Deployment run one pod beyond the surge. Counting the pods not yet
/// removed closes that window; with `status` unset (or behind the size) nothing changes.
fn counted_replicas(rs: &ReplicaSet) -> i32 {
    rs_spec_replicas(rs).max(rs_status_replicas(rs))
}

/// NewRSNewReplicas: the size the new ReplicaSet may grow to in this pass. `all_rss` are the
/// ReplicaSets whose sizes count against `replicas + maxSurge` (normally old + new).
pub fn new_rs_new_replicas<'a>(
    d: &Deployment,
    all_rss: impl IntoIterator<Item = &'a ReplicaSet>,
    new_rs: &ReplicaSet,
) -> Result<i32, PlanError> {
    let replicas = desired_replicas(d);
    if is_recreate(d) {
        return Ok(replicas);
    }
    let (surge, _) = rolling_parameters(d);
    let surge = scaled_value(surge.as_ref(), replicas, true)?;
    let current = i64::from(sum(all_rss, counted_replicas));
    let max_total = i64::from(replicas) + i64::from(surge);
    let new_spec = i64::from(rs_spec_replicas(new_rs));
    if current >= max_total {
        return Ok(clamp_i32(new_spec));
    }
    let scale_up = (max_total - current).min(i64::from(replicas) - new_spec);
    Ok(clamp_i32(new_spec + scale_up))
}

/// getReplicaSetFraction: how many replicas this ReplicaSet gains (or loses) when the
/// Deployment moves from its annotated `max-replicas` to `replicas + maxSurge`, rounded half
/// away from zero. Guards: no usable annotation → `status.replicas`; still 0 → 0.
pub fn replica_set_fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    let replicas = desired_replicas(d);
    let spec = rs_spec_replicas(rs);
    if replicas == 0 {
        return spec.saturating_neg();
    }
    let new_max = i64::from(replicas) + i64::from(max_surge(d));
    let old_max = match max_replicas_annotation(rs) {
        Some(v) if v > 0 => i64::from(v),
        _ => i64::from(d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0)),
    };
    if old_max <= 0 {
        return 0;
    }
    #[allow(clippy::cast_precision_loss)]
    let scaled = (i64::from(spec) * new_max) as f64 / old_max as f64;
    #[allow(clippy::cast_possible_truncation)]
    let rounded = scaled
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i64;
    clamp_i32(rounded - i64::from(spec))
}

/// GetProportion: the share of `to_add` this ReplicaSet takes, given `added` so far.
/// Scale-up takes `min(fraction, to_add − added)`, scale-down `max(fraction, to_add − added)`.
pub fn proportion(d: &Deployment, rs: Option<&ReplicaSet>, to_add: i32, added: i32) -> i32 {
    let Some(rs) = rs else { return 0 };
    if rs_spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(d, rs);
    let allowed = to_add.saturating_sub(added);
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}
