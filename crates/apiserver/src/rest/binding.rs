//! The `binding` subresource of pods: how a scheduler assigns a pod to a node, as Kubernetes'
//! binding storage does it. The pod is changed in place (`spec.nodeName`, the Binding's
//! annotations, the `PodScheduled` condition) without the pod's own update path: no
//! decoding, validation or managed-fields entry, as on a cluster.

use super::{MAX_UPDATE_ATTEMPTS, Rest, check_preconditions, key, parse_rv, store_error};
use crate::query::Query;
use crate::target::ResourceTarget;
use k8s_openapi::api::core::v1::Binding;
use serde_json::{Value, json};
use slipway_core::field::quoted;
use slipway_core::{ApiError, meta};
use slipway_store::StoreError;
use std::sync::Arc;

/// A failure of the assignment itself: Kubernetes reports it as a conflict on
/// `pods/binding`.
fn binding_conflict(name: &str, why: &str) -> ApiError {
    let mut err = ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on pods/binding {name:?}: {why}"),
    );
    err.name = Some(name.to_string());
    err.group = Some(String::new());
    err.kind = Some("pods/binding".to_string());
    err
}

/// The Binding of a request body, checked as Kubernetes checks it before assigning: a
/// Binding of `v1`, named as the pod, in its namespace, whose target is a node by name.
fn decode_binding(t: &ResourceTarget, mut body: Value) -> Result<Binding, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    };
    // A missing target is reported as a missing target name, below.
    map.entry("target").or_insert_with(|| json!({}));
    for (field, expected) in [("apiVersion", "v1"), ("kind", "Binding")] {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.to_string(), json!(expected));
            }
            Some(found) if found == expected => {}
            Some(found) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({found}) does not match the expected {field} ({expected})"
                )));
            }
        }
    }
    let binding: Binding = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Binding in version \"v1\" cannot be handled as a Binding: {e}"
        ))
    })?;
    let name = t.name.as_deref().unwrap_or_default();
    if binding.metadata.name.as_deref().unwrap_or_default() != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    if let Some(ns) = binding
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        && Some(ns) != t.namespace.as_deref()
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    // Kubernetes returns these as a plain error list: a 500 with no reason.
    let mut problems = Vec::new();
    if !binding
        .target
        .kind
        .as_deref()
        .is_none_or(|k| k.is_empty() || k == "Node")
    {
        problems.push(format!(
            "target.kind: Unsupported value: {}: supported values: \"Node\", \"<empty>\"",
            quoted(binding.target.kind.as_deref().unwrap_or_default())
        ));
    }
    if binding
        .target
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        problems.push("target.name: Required value".to_string());
    }
    match problems.as_slice() {
        [] => Ok(binding),
        [one] => Err(ApiError::new(500, "", one.clone())),
        many => Err(ApiError::new(500, "", format!("[{}]", many.join(", ")))),
    }
}

/// Sets the `PodScheduled` condition to True, as Kubernetes' `UpdatePodCondition` does: a new
/// condition (or a changed status) gets `lastTransitionTime` now; reason and message go.
fn set_scheduled(pod: &mut Value, now: &str) {
    let status = meta::object_mut(pod)
        .entry("status")
        .or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = meta::object_mut(status)
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("an array");
    let existing = list
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"));
    let since = existing
        .map(|i| &list[i])
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    match existing {
        Some(i) => list[i] = condition,
        None => list.push(condition),
    }
}

impl Rest {
    /// POST of a pod's `binding`: assigns the pod to the Binding's target node. The
    /// Binding's `metadata.uid` and `resourceVersion`, when set, are preconditions on the
    /// pod. Refused (409 on `pods/binding`) when the pod is being deleted, is already
    /// assigned, or has scheduling gates. Returns the pod as stored, lean (without
    /// `metadata.managedFields`).
    pub fn bind(&self, t: &ResourceTarget, q: &Query, body: Value) -> Result<Arc<Value>, ApiError> {
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        let binding = decode_binding(t, body)?;
        let node = binding.target.name.unwrap_or_default();
        let wanted_uid = binding.metadata.uid.filter(|u| !u.is_empty());
        let wanted_rv = binding.metadata.resource_version.filter(|r| !r.is_empty());
        let k = key(info, t.namespace.as_deref(), &name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            // The managed fields do not change: the lean object is changed and written, and
            // the store keeps them.
            let current = self.get_lean(t)?;
            check_preconditions(
                info,
                &name,
                &current,
                wanted_uid.as_deref(),
                wanted_rv.as_deref(),
            )?;
            if meta::deletion_timestamp(&current).is_some() {
                return Err(binding_conflict(
                    &name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let assigned = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !assigned.is_empty() {
                return Err(binding_conflict(
                    &name,
                    &format!(
                        "pod {name} is already assigned to node {}",
                        quoted(assigned)
                    ),
                ));
            }
            if current
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty())
            {
                return Err(binding_conflict(
                    &name,
                    &format!("pod {name} has non-empty .spec.schedulingGates"),
                ));
            }
            let expected = parse_rv(meta::resource_version(&current))?;
            let mut pod = (*current).clone();
            if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("nodeName".into(), json!(node));
            }
            if let Some(annotations) = binding
                .metadata
                .annotations
                .as_ref()
                .filter(|a| !a.is_empty())
            {
                let m = meta::metadata_mut(&mut pod);
                let target = m.entry("annotations").or_insert_with(|| json!({}));
                if !target.is_object() {
                    *target = json!({});
                }
                for (k, v) in annotations {
                    meta::object_mut(target).insert(k.clone(), json!(v));
                }
            }
            set_scheduled(&mut pod, &self.now_string());
            if q.dry_run {
                return Ok(Arc::new(pod));
            }
            match self.store.update_lean_json(&k, pod, expected) {
                Ok((stored, _)) => return Ok(stored),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => return Err(ApiError::not_found(info, &name)),
                Err(e) => return Err(store_error(info, &name, e)),
            }
        }
        Err(ApiError::conflict(info, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduling_sets_the_condition_once_and_keeps_its_transition_time() {
        let mut pod = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "no node", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        set_scheduled(&mut pod, "2026-01-02T00:00:00Z");
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": "2026-01-02T00:00:00Z"}])
        );
        set_scheduled(&mut pod, "2026-01-03T00:00:00Z");
        assert_eq!(
            pod["status"]["conditions"][0]["lastTransitionTime"], "2026-01-02T00:00:00Z",
            "an unchanged status keeps its transition time"
        );
        let mut bare = json!({"metadata": {"name": "p"}});
        set_scheduled(&mut bare, "2026-01-02T00:00:00Z");
        assert_eq!(bare["status"]["conditions"][0]["status"], "True");
    }
}
