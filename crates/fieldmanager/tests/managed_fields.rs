//! managedFields bookkeeping for non-apply writes, and the FieldsV1 encoding of a Deployment.

use serde_json::{Value, json};
use slipway_fieldmanager::record_update;

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";

/// A Deployment as the API server stores it after `kubectl apply` (client-side) and defaulting.
fn defaulted_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "6f1c1a5e-0000-4000-8000-000000000001",
            "resourceVersion": "101",
            "generation": 1,
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent"
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler"
                }
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

#[test]
fn create_records_kubernetes_fields_v1_for_a_deployment() {
    let mut obj = defaulted_deployment();
    record_update(
        "Deployment",
        "apps/v1",
        None,
        &mut obj,
        "kubectl-client-side-apply",
        None,
        T1,
    );
    let all = entries(&obj);
    assert_eq!(all.len(), 1);
    let expected = r#"{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}}"#;
    assert_eq!(all[0].to_string(), expected);
    // managedFields is the last metadata field, as Kubernetes serialises ObjectMeta.
    let meta_keys: Vec<&String> = obj["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(meta_keys.last().unwrap().as_str(), "managedFields");
}

#[test]
fn fields_v1_table_for_small_objects() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
            json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}}),
        ),
        (
            "Service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "type": "ClusterIP"}}),
            json!({"f:spec": {"f:ports": {".": {}, "k:{\"port\":80}": {".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}}, "f:selector": {}, "f:type": {}}}),
        ),
        (
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/b"]},
                   "spec": {"containers": [{"name": "c", "args": ["x", "y"]}]}, "status": {"phase": "Pending"}}),
            json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"a/b\"": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:args": {}, "f:name": {}}}}}),
        ),
    ];
    for (kind, mut obj, fields) in cases {
        let api_version = obj["apiVersion"].as_str().unwrap().to_string();
        record_update(kind, &api_version, None, &mut obj, "m", None, T1);
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"].to_string(),
            fields.to_string(),
            "{kind}"
        );
    }
}

#[test]
fn update_moves_changed_fields_to_the_updater() {
    let mut obj = defaulted_deployment();
    record_update(
        "Deployment",
        "apps/v1",
        None,
        &mut obj,
        "kubectl-create",
        None,
        T1,
    );
    let old = obj.clone();
    obj["spec"]["replicas"] = json!(5);
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    record_update(
        "Deployment",
        "apps/v1",
        Some(&old),
        &mut obj,
        "kubectl-edit",
        None,
        T2,
    );

    let creator = entry(&obj, "kubectl-create").unwrap();
    assert_eq!(creator["time"], T1, "the creator's entry is not touched");
    assert!(creator["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert!(
        creator["fieldsV1"]["f:spec"]
            .get("f:revisionHistoryLimit")
            .is_some()
    );
    let app = &creator["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert!(app.get("f:image").is_none());
    assert!(app.get("f:name").is_some());

    let editor = entry(&obj, "kubectl-edit").unwrap();
    assert_eq!(editor["operation"], "Update");
    assert_eq!(editor["time"], T2);
    assert_eq!(
        editor["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
    );
    let managers: Vec<Value> = entries(&obj).iter().map(|e| e["manager"].clone()).collect();
    assert_eq!(
        managers,
        vec![json!("kubectl-create"), json!("kubectl-edit")]
    );
}

#[test]
fn update_in_place_drops_empty_entries_and_removed_fields() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update("ConfigMap", "v1", None, &mut obj, "creator", None, T1);
    // A second writer takes the field; the creator keeps only the map it created (".").
    let old = obj.clone();
    obj["data"]["a"] = json!("2");
    record_update("ConfigMap", "v1", Some(&old), &mut obj, "editor", None, T1);
    assert_eq!(
        entry(&obj, "creator").unwrap()["fieldsV1"],
        json!({"f:data": {}})
    );
    // The same writer again: one entry, updated in place with the new time.
    let old = obj.clone();
    obj["data"]["b"] = json!("3");
    record_update("ConfigMap", "v1", Some(&old), &mut obj, "editor", None, T2);
    assert_eq!(entries(&obj).len(), 2);
    assert_eq!(entry(&obj, "editor").unwrap()["time"], T2);
    assert_eq!(
        entry(&obj, "editor").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    // Removing a field removes it from every set; a pure removal owns nothing.
    let old = obj.clone();
    obj["data"].as_object_mut().unwrap().remove("a");
    record_update("ConfigMap", "v1", Some(&old), &mut obj, "janitor", None, T2);
    assert_eq!(
        entry(&obj, "editor").unwrap()["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
    assert!(entry(&obj, "janitor").is_none());
    // A no-op write keeps everything as it was.
    let old = obj.clone();
    record_update(
        "ConfigMap",
        "v1",
        Some(&old),
        &mut obj,
        "idle",
        None,
        "2030-01-01T00:00:00Z",
    );
    assert_eq!(obj, old);
    // Removing the whole map empties both entries, which are dropped with managedFields.
    let old = obj.clone();
    obj.as_object_mut().unwrap().remove("data");
    record_update("ConfigMap", "v1", Some(&old), &mut obj, "janitor", None, T2);
    assert!(obj["metadata"].get("managedFields").is_none());
}

#[test]
fn status_subresource_writes_are_recorded_separately() {
    let mut obj = defaulted_deployment();
    record_update("Deployment", "apps/v1", None, &mut obj, "kubectl", None, T1);
    let old = obj.clone();
    obj["status"] = json!({"replicas": 2, "observedGeneration": 1});
    record_update(
        "Deployment",
        "apps/v1",
        Some(&old),
        &mut obj,
        "kube-controller-manager",
        Some("status"),
        T2,
    );
    let status = entry(&obj, "kube-controller-manager").unwrap();
    assert_eq!(status["subresource"], "status");
    assert_eq!(
        status["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}, "f:replicas": {}}})
    );
    // A main-resource write never owns status.
    assert!(
        entry(&obj, "kubectl").unwrap()["fieldsV1"]
            .get("f:status")
            .is_none()
    );
}

#[test]
fn managed_fields_can_be_reset_with_one_empty_entry() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update("ConfigMap", "v1", None, &mut obj, "creator", None, T1);
    let old = obj.clone();
    obj["metadata"]["managedFields"] = json!([{}]);
    record_update(
        "ConfigMap",
        "v1",
        Some(&old),
        &mut obj,
        "resetter",
        None,
        T2,
    );
    assert!(obj["metadata"].get("managedFields").is_none());
}
