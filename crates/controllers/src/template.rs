//! ReplicaSet identity and ordering (§3.2): template equality ignoring the hash label,
//! FindNewReplicaSet / FindOldReplicaSets, and the sort keys used throughout.

use crate::annotations::{POD_TEMPLATE_HASH_LABEL, revision};
use crate::spec::{created, name, rs_spec_replicas};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::cmp::Ordering;

/// Semantic equality of two pod templates after removing the `pod-template-hash` label from
/// both. Like apimachinery's semantic equality, unset and empty maps/lists are equal.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

fn normalized_template(t: &PodTemplateSpec) -> Value {
    let mut copy = t.clone();
    if let Some(labels) = copy.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let mut value = serde_json::to_value(&copy).unwrap_or(Value::Null);
    prune_empty(&mut value);
    value
}

/// Removes nulls and empty maps/lists recursively (nil and empty compare equal).
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !is_empty_value(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The pod template of a ReplicaSet, if it has one.
pub fn rs_template(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref().and_then(|s| s.template.as_ref())
}

/// The Deployment's pod template, if it has a spec.
pub fn deployment_template(d: &Deployment) -> Option<&PodTemplateSpec> {
    d.spec.as_ref().map(|s| &s.template)
}

/// Key ordering ReplicaSets oldest first: creation time (unset first), then name.
pub fn creation_key(rs: &ReplicaSet) -> (Option<Timestamp>, &str) {
    (created(&rs.metadata), name(&rs.metadata))
}

/// ReplicaSetsByCreationTimestamp: oldest first, ties by name ascending.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    creation_key(a).cmp(&creation_key(b))
}

/// ReplicaSetsBySizeNewer: larger `spec.replicas` first; ties newest first (reverse creation).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_spec_replicas(b)
        .cmp(&rs_spec_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// ReplicaSetsBySizeOlder: larger `spec.replicas` first; ties oldest first.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_spec_replicas(b)
        .cmp(&rs_spec_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// ReplicaSetsByRevision: revision ascending (missing counts as 0; an unparsable revision also
/// counts as 0 so that the order stays total), ties by creation then name.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ra = revision(&a.metadata).unwrap_or(0);
    let rb = revision(&b.metadata).unwrap_or(0);
    ra.cmp(&rb).then_with(|| by_creation(a, b))
}

/// FindNewReplicaSet: the index of the oldest ReplicaSet whose template equals the
/// Deployment's ignoring the hash label.
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let template = deployment_template(d)?;
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|&i, &j| by_creation(&rss[i], &rss[j]));
    order
        .into_iter()
        .find(|&i| rs_template(&rss[i]).is_some_and(|t| equal_ignore_hash(t, template)))
}

/// FindOldReplicaSets: `(required, all_old)` indices in input order, where `all_old` is every
/// ReplicaSet other than the new one and `required` those with `spec.replicas != 0`.
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> (Vec<usize>, Vec<usize>) {
    let new = find_new_replica_set(d, rss);
    let all_old: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != new).collect();
    let required = all_old
        .iter()
        .copied()
        .filter(|&i| rs_spec_replicas(&rss[i]) != 0)
        .collect();
    (required, all_old)
}

/// Whether a ReplicaSet is active (`spec.replicas > 0`).
pub fn is_active(rs: &ReplicaSet) -> bool {
    rs_spec_replicas(rs) > 0
}
