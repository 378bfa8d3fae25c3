//! `maxSurge` / `maxUnavailable` resolution (§5): ResolveFenceposts, MaxUnavailable,
//! MinAvailable, MaxSurge.

use crate::error::PlanError;
use crate::spec::{desired_replicas, is_recreate};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Resolves an int-or-percent against `total`: integers are absolute, `"N%"` is `N·total/100`
/// rounded up (`round_up`) or down. Unset resolves to 0. A string without `%` is an error.
pub fn scaled_value(
    value: Option<&IntOrString>,
    total: i32,
    round_up: bool,
) -> Result<i32, PlanError> {
    match value {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let invalid = || PlanError::InvalidIntOrPercent { value: s.clone() };
            let digits = s.strip_suffix('%').ok_or_else(invalid)?;
            let percent: i64 = digits.parse().map_err(|_| invalid())?;
            let product = percent.saturating_mul(i64::from(total));
            let scaled = if round_up {
                div_ceil(product, 100)
            } else {
                product.div_euclid(100)
            };
            Ok(clamp_i32(scaled))
        }
    }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

/// Narrows to i32, saturating.
pub(crate) fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// ResolveFenceposts: `(surge, unavailable)` for `desired` replicas. Surge rounds up,
/// unavailable rounds down; if both resolve to 0, unavailable becomes 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), PlanError> {
    let surge = scaled_value(max_surge, desired, true)?;
    let unavailable = scaled_value(max_unavailable, desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// The rolling-update parameters as stored; an absent `rollingUpdate` block reads as the
/// apps/v1 defaults (25%/25%), an absent field inside a present block as unset.
pub fn rolling_parameters(d: &Deployment) -> (Option<IntOrString>, Option<IntOrString>) {
    let strategy = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
    match strategy.and_then(|s| s.rolling_update.as_ref()) {
        Some(ru) => (ru.max_surge.clone(), ru.max_unavailable.clone()),
        None => (
            Some(IntOrString::String("25%".into())),
            Some(IntOrString::String("25%".into())),
        ),
    }
}

/// The Deployment's resolved fenceposts `(surge, unavailable)` for its own `spec.replicas`.
pub fn deployment_fenceposts(d: &Deployment) -> Result<(i32, i32), PlanError> {
    let (surge, unavailable) = rolling_parameters(d);
    resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), desired_replicas(d))
}

/// MaxUnavailable(d): 0 for Recreate or 0 replicas, else the resolved value capped at
/// `spec.replicas`. Unresolvable values count as 0 (as upstream, which ignores the error).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = desired_replicas(d);
    if is_recreate(d) || replicas == 0 {
        return 0;
    }
    let unavailable = deployment_fenceposts(d).map_or(0, |(_, u)| u);
    unavailable.min(replicas)
}

/// MinAvailable(d): `spec.replicas − MaxUnavailable(d)` for RollingUpdate, 0 for Recreate.
pub fn min_available(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    desired_replicas(d).saturating_sub(max_unavailable(d))
}

/// MaxSurge(d): 0 for Recreate, else the resolved surge (not capped). Unresolvable → 0.
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    deployment_fenceposts(d).map_or(0, |(s, _)| s)
}
