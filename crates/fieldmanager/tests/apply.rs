//! Server-side apply: create, re-apply, removal, conflicts, merging with other managers.

use serde_json::{Value, json};
use slipway_fieldmanager::{ApplyError, Conflict, apply, record_update};

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";
const T3: &str = "2024-05-01T12:00:00Z";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": image, "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "envoy:1"}
                ]}
            }
        }
    })
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn containers(obj: &Value) -> &Vec<Value> {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

#[test]
fn apply_creates_the_object_with_an_apply_entry() {
    let obj = apply(
        "Deployment",
        None,
        &config(3, "nginx:1"),
        "kubectl",
        false,
        T1,
    )
    .unwrap();
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["metadata"]["name"], "web");
    let e = entry(&obj, "kubectl", "Apply").unwrap();
    assert_eq!(
        e.to_string(),
        r#"{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{},"f:tier":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80}":{".":{},"f:containerPort":{}}}},"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}"#
    );
}

#[test]
fn reapplying_the_same_configuration_is_a_no_op() {
    let cfg = config(3, "nginx:1");
    let first = apply("Deployment", None, &cfg, "kubectl", false, T1).unwrap();
    let second = apply("Deployment", Some(&first), &cfg, "kubectl", false, T2).unwrap();
    assert_eq!(second, first);
    assert_eq!(entry(&second, "kubectl", "Apply").unwrap()["time"], T1);
}

#[test]
fn dropping_a_field_from_the_configuration_removes_it() {
    let first = apply("Deployment", None, &config(3, "nginx:1"), "ci", false, T1).unwrap();
    let mut smaller = config(3, "nginx:1");
    smaller["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("tier");
    smaller["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .pop();
    smaller["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let second = apply("Deployment", Some(&first), &smaller, "ci", false, T2).unwrap();
    assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        containers(&second),
        &vec![json!({"name": "app", "image": "nginx:1"})]
    );
    let fields = &entry(&second, "ci", "Apply").unwrap()["fieldsV1"];
    assert!(fields["f:metadata"]["f:labels"].get("f:tier").is_none());
    assert_eq!(entry(&second, "ci", "Apply").unwrap()["time"], T2);
}

#[test]
fn a_field_another_manager_also_owns_survives_removal() {
    let first = apply("Deployment", None, &config(3, "nginx:1"), "ci", false, T1).unwrap();
    // A second applier claims the same label with the same value: shared ownership.
    let claim = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "labels": {"tier": "front"}}});
    let shared = apply("Deployment", Some(&first), &claim, "other", false, T2).unwrap();
    let mut smaller = config(3, "nginx:1");
    smaller["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("tier");
    let after = apply("Deployment", Some(&shared), &smaller, "ci", false, T3).unwrap();
    assert_eq!(after["metadata"]["labels"]["tier"], "front");
}

fn created_by_client_side_apply(with_annotation: bool) -> Value {
    let mut obj = config(1, "nginx:1");
    obj["metadata"]["uid"] = json!("u-1");
    if with_annotation {
        let mut last = config(1, "nginx:1");
        last["metadata"]["annotations"] = json!({});
        obj["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    }
    record_update(
        "Deployment",
        "apps/v1",
        None,
        &mut obj,
        "kubectl-client-side-apply",
        None,
        T1,
    );
    obj
}

#[test]
fn conflicting_with_a_client_side_apply_owner_fails_with_kubernetes_message() {
    let live = created_by_client_side_apply(false);
    let err = apply(
        "Deployment",
        Some(&live),
        &config(3, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        err,
        ApplyError::Conflicts {
            message: err.to_string(),
            conflicts: vec![Conflict {
                manager: "kubectl-client-side-apply".into(),
                field: ".spec.replicas".into()
            }]
        }
    );

    let forced = apply(
        "Deployment",
        Some(&live),
        &config(3, "nginx:1"),
        "kubectl",
        true,
        T2,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let applier = &entry(&forced, "kubectl", "Apply").unwrap()["fieldsV1"];
    assert!(applier["f:spec"].get("f:replicas").is_some());
    let csa = &entry(&forced, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"];
    assert!(csa["f:spec"].get("f:replicas").is_none());
    assert!(
        csa["f:spec"].get("f:selector").is_some(),
        "unchanged fields stay shared"
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let mut live = apply("Deployment", None, &config(1, "nginx:1"), "ci", false, T1).unwrap();
    let old = live.clone();
    live["spec"]["replicas"] = json!(2);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    record_update(
        "Deployment",
        "apps/v1",
        Some(&old),
        &mut live,
        "kubectl",
        None,
        T2,
    );
    let err = apply(
        "Deployment",
        Some(&live),
        &config(1, "nginx:1"),
        "ci",
        false,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
}

#[test]
fn kubectl_takes_over_fields_that_client_side_apply_last_applied() {
    let live = created_by_client_side_apply(true);
    let result = apply(
        "Deployment",
        Some(&live),
        &config(3, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .unwrap();
    assert_eq!(result["spec"]["replicas"], 3);
    // The client-side annotation follows the server-side applied configuration.
    let annotation = result["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    let recorded: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(recorded["spec"]["replicas"], 3);
    assert!(annotation.ends_with('\n'));
    // Another manager name gets no such allowance.
    assert!(
        apply(
            "Deployment",
            Some(&live),
            &config(3, "nginx:1"),
            "helm",
            false,
            T2
        )
        .is_err()
    );
}

#[test]
fn containers_merge_by_name_and_keep_other_managers_fields() {
    let live = apply("Deployment", None, &config(3, "nginx:1"), "ci", false, T1).unwrap();
    // Another manager adds an env var to the app container.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": "debug"}]);
    record_update(
        "Deployment",
        "apps/v1",
        Some(&live),
        &mut edited,
        "kubectl-edit",
        None,
        T2,
    );
    // The applier changes the image: the env var stays, the order stays.
    let result = apply(
        "Deployment",
        Some(&edited),
        &config(3, "nginx:2"),
        "ci",
        false,
        T3,
    )
    .unwrap();
    let app = &containers(&result)[0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["image"], "nginx:2");
    assert_eq!(app["env"], json!([{"name": "MODE", "value": "debug"}]));
    assert_eq!(containers(&result)[1]["name"], "sidecar");
    assert!(entry(&result, "kubectl-edit", "Update").is_some());
}

#[test]
fn kubectl_last_applied_metadata_only_apply_keeps_the_spec() {
    let live = created_by_client_side_apply(true);
    let live = apply(
        "Deployment",
        Some(&live),
        &config(3, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .unwrap();
    let annotation = live["metadata"]["annotations"][LAST_APPLIED].clone();
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {LAST_APPLIED: annotation}}});
    let result = apply(
        "Deployment",
        Some(&live),
        &body,
        "kubectl-last-applied",
        false,
        T3,
    )
    .unwrap();
    assert_eq!(result["spec"], live["spec"]);
    assert_eq!(result["metadata"]["labels"], live["metadata"]["labels"]);
    let e = entry(&result, "kubectl-last-applied", "Apply").unwrap();
    assert_eq!(
        e["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {format!("f:{LAST_APPLIED}"): {}}}})
    );
    assert!(
        e.get("time").is_none(),
        "a no-op apply records no time, as in Kubernetes"
    );
}

#[test]
fn null_in_the_configuration_unsets_a_field() {
    let live = apply("Deployment", None, &config(3, "nginx:1"), "ci", false, T1).unwrap();
    let mut cfg = config(3, "nginx:1");
    cfg["spec"]["replicas"] = Value::Null;
    let result = apply("Deployment", Some(&live), &cfg, "ci", false, T2).unwrap();
    assert!(result["spec"].get("replicas").is_none());
    let again = apply("Deployment", Some(&result), &cfg, "ci", false, T3).unwrap();
    assert_eq!(again, result);
}

#[test]
fn invalid_configurations_are_rejected() {
    let mut cfg = config(1, "x");
    cfg["spec"]["template"]["spec"]["containers"][1]["name"] = json!("app");
    match apply("Deployment", None, &cfg, "ci", false, T1) {
        Err(ApplyError::Invalid(m)) => assert_eq!(
            m,
            "failed to create typed patch object (apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"app\"]"
        ),
        other => panic!("unexpected {other:?}"),
    }
    let mut with_managed = config(1, "x");
    with_managed["metadata"]["managedFields"] = json!([]);
    assert!(matches!(
        apply("Deployment", None, &with_managed, "ci", false, T1),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        apply("Deployment", None, &json!([1]), "ci", false, T1),
        Err(ApplyError::Invalid(_))
    ));
}

#[test]
fn status_in_an_applied_configuration_is_ignored() {
    let mut cfg = config(1, "x");
    cfg["status"] = json!({"replicas": 7});
    let obj = apply("Deployment", None, &cfg, "ci", false, T1).unwrap();
    assert!(obj.get("status").is_none());
}
