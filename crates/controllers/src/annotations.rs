//! Annotation keys and bookkeeping (§4): revisions, revision history, desired/max replicas,
//! and the Deployment → ReplicaSet copying rules.

use crate::error::PlanError;
use crate::fenceposts::max_surge;
use crate::spec::{desired_replicas, name};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Label distinguishing the ReplicaSets of one Deployment.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Rollout sequence number on ReplicaSets and Deployments.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a re-used ReplicaSet has served, comma separated.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the ReplicaSet was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Legacy server-side rollback request.
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// KEP-3973 bookkeeping of partial proportional scaling (only skipped here).
pub const REPLICAS_BEFORE_SCALE: &str = "deployment.kubernetes.io/replicaset-replicas-before-scale";
/// kubectl's record of the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The change cause shown by `kubectl rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Production length cap of the revision-history annotation.
pub const REVISION_HISTORY_MAX_CHARS: usize = 2000;

/// Whether an annotation key is never copied between a Deployment and its ReplicaSets.
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | ROLLBACK_TO
            | REPLICAS_BEFORE_SCALE
    )
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn annotations_mut(meta: &mut ObjectMeta) -> &mut BTreeMap<String, String> {
    meta.annotations.get_or_insert_with(BTreeMap::new)
}

/// Revision(obj): the revision annotation as int64; missing → 0; unparsable → error.
pub fn revision(meta: &ObjectMeta) -> Result<i64, PlanError> {
    match annotation(meta, REVISION) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| PlanError::InvalidRevision {
            object: name(meta).to_string(),
            value: v.to_string(),
        }),
    }
}

/// MaxRevision: the highest parseable revision among `rss` (unparsable ones are skipped).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(&rs.metadata).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// LastRevision: the second-highest revision among `rss` (0 when there is none).
pub fn last_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    let (mut max, mut second) = (0i64, 0i64);
    for v in rss.into_iter().filter_map(|rs| revision(&rs.metadata).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

/// Why a replicas annotation is unusable (it then behaves as absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationValueError {
    /// Not a base-10 unsigned integer.
    InvalidSyntax,
    /// Above 2147483647.
    OutOfRange,
}

/// Parses a replicas annotation strictly: base-10 unsigned, at most `i32::MAX`.
/// `Ok(None)` when absent.
pub fn non_negative_int32_annotation(
    meta: &ObjectMeta,
    key: &str,
) -> Result<Option<i32>, AnnotationValueError> {
    let Some(raw) = annotation(meta, key) else {
        return Ok(None);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AnnotationValueError::InvalidSyntax);
    }
    let value: u64 = raw.parse().map_err(|_| AnnotationValueError::OutOfRange)?;
    i32::try_from(value)
        .map(Some)
        .map_err(|_| AnnotationValueError::OutOfRange)
}

/// The `desired-replicas` annotation when present and valid.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(&rs.metadata, DESIRED_REPLICAS)
        .ok()
        .flatten()
}

/// The `max-replicas` annotation when present and valid.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_int32_annotation(&rs.metadata, MAX_REPLICAS)
        .ok()
        .flatten()
}

/// SetReplicasAnnotations: writes desired/max replicas; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = annotations_mut(&mut rs.metadata);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// ReplicasAnnotationsNeedUpdate: whether desired/max replicas differ (as strings).
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Copies every non-skipped Deployment annotation whose value differs onto the ReplicaSet.
/// Never deletes keys. Returns whether anything changed.
pub fn copy_deployment_annotations_to_replica_set(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let Some(source) = d.metadata.annotations.as_ref() else {
        return false;
    };
    let target = annotations_mut(&mut rs.metadata);
    let mut changed = false;
    for (key, value) in source {
        if skip_copy_annotation(key) || target.get(key) == Some(value) {
            continue;
        }
        target.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Appends `old_revision` to a comma-separated history, dropping the oldest entries until the
/// result fits `limit_chars`; `None` when it cannot fit at all.
pub fn append_revision_history(
    history: &str,
    old_revision: &str,
    limit_chars: usize,
) -> Option<String> {
    if history.is_empty() {
        return Some(old_revision.to_string());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_revision.len() + 1;
    let mut start = 0;
    while total > limit_chars && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > limit_chars {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(old_revision);
    Some(kept.join(","))
}

/// SetNewReplicaSetAnnotations: copies Deployment annotations, raises the revision to
/// `new_revision` (never lowers it), records the replaced revision in `revision-history`, and
/// for a ReplicaSet about to be created (`exists == false`) sets desired/max replicas.
/// Returns whether the ReplicaSet changed. An unparsable existing revision leaves it untouched.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    history_limit_chars: usize,
) -> bool {
    let old_revision = annotation(&rs.metadata, REVISION).map(str::to_string);
    let old_value = match old_revision.as_deref() {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    if old_value < new_revision {
        annotations_mut(&mut rs.metadata).insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old_revision.as_deref() {
            let history = annotation(&rs.metadata, REVISION_HISTORY).unwrap_or("");
            if let Some(joined) = append_revision_history(history, old, history_limit_chars) {
                annotations_mut(&mut rs.metadata).insert(REVISION_HISTORY.to_string(), joined);
            }
        }
    }
    if !exists {
        let replicas = desired_replicas(d);
        changed |= set_replicas_annotations(rs, replicas, replicas.saturating_add(max_surge(d)));
    }
    changed
}

/// SetDeploymentRevision: sets the Deployment's revision annotation; returns whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = annotations_mut(&mut d.metadata);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.to_string(), revision.to_string());
    true
}

/// The legacy rollback target (`deprecated.deployment.rollback.to`), if present and an integer.
pub fn rollback_to(d: &Deployment) -> Option<i64> {
    annotation(&d.metadata, ROLLBACK_TO).and_then(|v| v.parse().ok())
}

/// SetDeploymentAnnotationsTo: keeps the Deployment's skip-listed annotations and replaces all
/// others with the ReplicaSet's non-skip-listed annotations.
pub fn set_deployment_annotations_to(d: &mut Deployment, rs: &ReplicaSet) {
    let mut result: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| skip_copy_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !skip_copy_annotation(k) {
            result.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(result);
}

/// Reads one annotation of an object.
pub fn get(meta: &ObjectMeta, key: &str) -> Option<String> {
    annotation(meta, key).map(str::to_string)
}
