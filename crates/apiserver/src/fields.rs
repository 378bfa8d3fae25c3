//! Field-selector support per kind (pure): which field labels a resource can be selected by,
//! and their values on an object.

use serde_json::Value;
use slipway_core::ResourceInfo;

const COMMON: &[&str] = &["metadata.name", "metadata.namespace"];

/// The field labels `info` supports in `fieldSelector`.
pub fn supported(info: &ResourceInfo) -> Vec<&'static str> {
    let extra: &[&str] = match info.kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        "Service" => &["spec.clusterIP", "spec.type"],
        _ => &[],
    };
    COMMON.iter().chain(extra).copied().collect()
}

/// The value of field label `field` on `obj` (as a string, the way Kubernetes compares them).
pub fn value(obj: &Value, field: &str) -> Option<String> {
    let pointer = match field {
        "source" => "/source/component".to_string(),
        other => format!("/{}", other.replace('.', "/")),
    };
    match obj.pointer(&pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use slipway_core::resources::lookup;

    #[test]
    fn reads_pod_and_event_fields() {
        let pod =
            json!({"metadata":{"name":"p"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}});
        assert_eq!(value(&pod, "status.phase").as_deref(), Some("Running"));
        assert_eq!(value(&pod, "spec.nodeName").as_deref(), Some("n1"));
        let ev =
            json!({"involvedObject":{"uid":"u"},"source":{"component":"deployment-controller"}});
        assert_eq!(value(&ev, "involvedObject.uid").as_deref(), Some("u"));
        assert_eq!(
            value(&ev, "source").as_deref(),
            Some("deployment-controller")
        );
        let events = lookup("", "v1", "events").unwrap();
        assert!(supported(events).contains(&"involvedObject.name"));
        let deploys = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            supported(deploys),
            vec!["metadata.name", "metadata.namespace"]
        );
    }
}
