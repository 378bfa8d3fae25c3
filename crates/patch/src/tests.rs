use super::*;
use proptest::prelude::*;
use serde_json::json;

/// A Deployment as the server stores it (defaulted), with two containers, two ports and two
/// env vars, as before the captured client-side apply of kubectl-protocol.md section 4.3.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b9c7f1e-1111-2222-3333-444455556666",
            "resourceVersion": "1017",
            "generation": 2,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web", "team": "blue"},
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"
            }
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"containerPort": 443, "protocol": "TCP"}
                            ],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}],
                            "resources": {},
                            "imagePullPolicy": "IfNotPresent"
                        },
                        {"name": "side", "image": "busybox:1.36", "args": ["sleep", "3600"]}
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst"
                }
            }
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "conditions": [{"type": "Available", "status": "True"}]
        }
    })
}

fn smp(doc: &Value, patch: Value) -> Value {
    strategic_merge_patch("Deployment", doc, &patch).unwrap_or_else(|e| panic!("{e}"))
}

fn malformed(result: Result<Value, PatchError>) -> String {
    match result {
        Err(PatchError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch with the patches kubectl actually sends.

#[test]
fn client_side_apply_three_way_patch() {
    let patch = json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"},
            "labels": {"team": null}
        },
        "spec": {
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [
                    {
                        "name": "nginx",
                        "$setElementOrder/env": [{"name": "B"}],
                        "$setElementOrder/ports": [{"containerPort": 80}],
                        "env": [{"name": "B", "value": "2"}, {"$patch": "delete", "name": "A"}],
                        "ports": [{"$patch": "delete", "containerPort": 443}]
                    },
                    {"$patch": "delete", "name": "side"}
                ]
            }}
        }
    });
    let mut expected = deployment();
    expected["metadata"]["labels"] = json!({"app": "web"});
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"new\":true}\n");
    expected["spec"]["strategy"] = json!({"type": "Recreate"});
    expected["spec"]["template"]["spec"]["containers"] = json!([{
        "name": "nginx",
        "image": "nginx:1.25",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "B", "value": "2"}],
        "resources": {},
        "imagePullPolicy": "IfNotPresent"
    }]);
    let result = smp(&deployment(), patch);
    assert_eq!(result, expected);
    // The document's key order is kept.
    assert_eq!(result.to_string(), expected.to_string());
}

#[test]
fn client_side_apply_simple_image_and_replicas_change() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x"}},
        "spec": {"replicas": 2, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"}]
        }}}
    });
    let mut expected = deployment();
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("x");
    expected["spec"]["replicas"] = json!(2);
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(smp(&deployment(), patch), expected);
}

#[test]
fn set_image_patch() {
    let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],"containers":[{"image":"nginx:2.0","name":"nginx"}]}}}});
    let result = smp(&deployment(), patch);
    let mut expected = deployment();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2.0");
    // `side` is not listed in $setElementOrder: it keeps its place after the listed ones.
    assert_eq!(result, expected);
    assert_eq!(result.to_string(), expected.to_string());
}

#[test]
fn rollout_pause_resume_and_restart() {
    let paused = smp(&deployment(), json!({"spec": {"paused": true}}));
    let mut expected = deployment();
    expected["spec"]["paused"] = json!(true);
    assert_eq!(paused, expected);

    let resumed = smp(&paused, json!({"spec": {"paused": null}}));
    assert_eq!(resumed, deployment());
    assert_eq!(resumed.to_string(), deployment().to_string());

    let restarted = smp(
        &deployment(),
        json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-27T16:15:39Z"}}}}}),
    );
    let mut expected = deployment();
    expected["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-11-27T16:15:39Z"});
    assert_eq!(restarted, expected);
}

#[test]
fn rollout_undo_json_patch_accepts_nulls() {
    let mut live = deployment();
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2.0");
    let template = deployment()["spec"]["template"].clone();
    let annotations = json!({
        "deployment.kubernetes.io/revision": "3",
        "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"
    });
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations}
    ]);
    let result = json_patch(&live, &patch).unwrap();
    let mut expected = deployment();
    expected["metadata"]["annotations"] = annotations;
    assert_eq!(result, expected);
    assert_eq!(
        result["spec"]["template"]["metadata"]["creationTimestamp"],
        Value::Null
    );
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch: semantics table.

#[test]
fn strategic_merge_semantics() {
    struct Case {
        name: &'static str,
        kind: &'static str,
        doc: Value,
        patch: Value,
        expected: Value,
    }
    let cases = vec![
        Case {
            name: "maps merge and null deletes",
            kind: "Pod",
            doc: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            patch: json!({"metadata": {"labels": {"a": null, "c": "3", "missing": null}}}),
            expected: json!({"metadata": {"labels": {"b": "2", "c": "3"}}}),
        },
        Case {
            name: "map $patch replace",
            kind: "Pod",
            doc: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "d": null}}}),
            expected: json!({"metadata": {"labels": {"c": "3"}}}),
        },
        Case {
            name: "map $patch delete",
            kind: "Pod",
            doc: json!({"metadata": {"name": "p", "labels": {"a": "1"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "delete"}}}),
            expected: json!({"metadata": {"name": "p"}}),
        },
        Case {
            name: "map $patch merge is a plain merge",
            kind: "Pod",
            doc: json!({"metadata": {"labels": {"a": "1"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
            expected: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        },
        Case {
            name: "new merge-key element is appended, directives inside it resolved",
            kind: "Pod",
            doc: json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
            patch: json!({"spec": {"containers": [{
                "name": "b", "image": "y", "args": ["1"],
                "$setElementOrder/env": [{"name": "E"}],
                "env": [{"name": "E", "value": "v", "valueFrom": null}]
            }]}}),
            expected: json!({"spec": {"containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "y", "args": ["1"], "env": [{"name": "E", "value": "v"}]}
            ]}}),
        },
        Case {
            name: "atomic lists are replaced",
            kind: "Pod",
            doc: json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}], "tolerations": [{"key": "k"}]}}),
            patch: json!({"spec": {"containers": [{"name": "a", "args": ["3"]}], "tolerations": []}}),
            expected: json!({"spec": {"containers": [{"name": "a", "args": ["3"]}], "tolerations": []}}),
        },
        Case {
            name: "list element $patch replace replaces the whole list",
            kind: "Pod",
            doc: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "z"}]}}),
            expected: json!({"spec": {"containers": [{"name": "c", "image": "z"}]}}),
        },
        Case {
            name: "numeric merge keys (container ports) and service ports",
            kind: "Service",
            doc: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "$patch": "delete"}, {"port": 53, "protocol": "UDP"}]}}),
            expected: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 53, "protocol": "UDP"}]}}),
        },
        Case {
            name: "set lists union, $deleteFromPrimitiveList removes",
            kind: "Service",
            doc: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c", "b"]}}),
            expected: json!({"metadata": {"finalizers": ["b", "c"]}}),
        },
        Case {
            name: "$setElementOrder: listed first in order, then unlisted in relative order",
            kind: "Pod",
            doc: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}}),
            patch: json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "zz"}]}}),
            expected: json!({"spec": {"containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}, {"name": "d"}]}}),
        },
        Case {
            name: "$setElementOrder on a primitive set",
            kind: "Namespace",
            doc: json!({"metadata": {"finalizers": ["x", "y"]}}),
            patch: json!({"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]}}),
            expected: json!({"metadata": {"finalizers": ["z", "y", "x"]}}),
        },
        Case {
            name: "volumes honour $retainKeys per element",
            kind: "Pod",
            doc: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            patch: json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
            expected: json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
        },
        Case {
            name: "unknown directives are dropped",
            kind: "Pod",
            doc: json!({"metadata": {"name": "p"}}),
            patch: json!({"$future": {"x": 1}, "metadata": {"$other": "y", "labels": {"a": "b"}}}),
            expected: json!({"metadata": {"name": "p", "labels": {"a": "b"}}}),
        },
        Case {
            name: "schema-less kinds merge maps and replace lists",
            kind: "ConfigMap",
            doc: json!({"data": {"a": "1"}, "list": [1, 2]}),
            patch: json!({"data": {"b": "2"}, "list": [3]}),
            expected: json!({"data": {"a": "1", "b": "2"}, "list": [3]}),
        },
        Case {
            name: "conditions merge on type",
            kind: "Deployment",
            doc: json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
            patch: json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
            expected: json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
        },
        Case {
            name: "owner references merge on uid",
            kind: "ReplicaSet",
            doc: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
            expected: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}),
        },
        Case {
            name: "root $patch replace",
            kind: "ConfigMap",
            doc: json!({"data": {"a": "1"}, "kind": "ConfigMap"}),
            patch: json!({"$patch": "replace", "data": {"b": "2"}}),
            expected: json!({"data": {"b": "2"}}),
        },
        Case {
            name: "a scalar replaces whatever the document had",
            kind: "Deployment",
            doc: json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%"}}}}),
            patch: json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
            expected: json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
        },
    ];
    for case in cases {
        let result = strategic_merge_patch(case.kind, &case.doc, &case.patch)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(result, case.expected, "{}", case.name);
    }
}

#[test]
fn strategic_merge_errors_name_the_field() {
    let doc = deployment();
    let table = [
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            "spec.template.spec.containers[0]",
            "does not contain declared merge key \"name\"",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
            "spec.template.spec.containers[0]",
            "merge key \"name\"",
        ),
        (
            json!({"spec": {"selector": ["app=web"]}}),
            "spec.selector",
            "a list where the document has a map",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": {"name": "x"}}}}}),
            "spec.template.spec.containers",
            "a map where the document has a list",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": ["nginx"]}}}}),
            "spec.template.spec.containers[0]",
            "expected a map with merge key \"name\"",
        ),
        (
            json!({"spec": {"$patch": "explode"}}),
            "spec",
            "unknown patch type \"explode\"",
        ),
        (
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            "spec.strategy",
            "must be a list",
        ),
        (
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            "spec.strategy",
            "\"rollingUpdate\", which $retainKeys does not list",
        ),
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "x"}}}}}),
            "spec.template.spec",
            "must be a list",
        ),
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}),
            "spec.template.spec.containers[0]",
            "merge key \"name\"",
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/name": ["x"]}}),
            "metadata.name",
            "needs a list",
        ),
        (
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            "metadata.finalizers[0]",
            "expected a primitive",
        ),
    ];
    for (patch, path, detail) in table {
        let message = malformed(strategic_merge_patch("Deployment", &doc, &patch));
        assert!(
            message.contains(&format!(" at {path}: ")),
            "{patch}: {message}"
        );
        assert!(message.contains(detail), "{patch}: {message}");
    }
    assert_eq!(
        malformed(strategic_merge_patch("Rollout", &doc, &json!({}))),
        "strategic merge patch is not supported for Rollout"
    );
    assert!(malformed(strategic_merge_patch("Pod", &doc, &json!([]))).contains("JSON object"));
}

#[test]
fn strategic_merge_does_not_modify_its_inputs() {
    let doc = deployment();
    let patch = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}});
    let patch_before = patch.clone();
    let _ = smp(&doc, patch.clone());
    assert_eq!(doc, deployment());
    assert_eq!(patch, patch_before);
}

// ---------------------------------------------------------------------------------------
// JSON merge patch (RFC 7386 examples).

#[test]
fn merge_patch_rfc7386_examples() {
    let table = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, expected) in table {
        assert_eq!(merge_patch(&doc, &patch), Ok(expected), "{doc} + {patch}");
    }
}

#[test]
fn merge_patch_scale_and_label_keep_key_order() {
    let doc = json!({"a": 1, "b": 2, "c": 3, "spec": {"replicas": 3, "paused": false}});
    let result = merge_patch(&doc, &json!({"a": null, "spec": {"replicas": 5}})).unwrap();
    assert_eq!(
        result.to_string(),
        r#"{"b":2,"c":3,"spec":{"replicas":5,"paused":false}}"#
    );
}

// ---------------------------------------------------------------------------------------
// JSON patch (RFC 6902).

#[test]
fn json_patch_operations() {
    let doc = json!({"a": {"b": 1}, "list": [1, 2, 3]});
    let table = [
        (
            json!([{"op": "add", "path": "/a/c", "value": null}]),
            json!({"a": {"b": 1, "c": null}, "list": [1, 2, 3]}),
        ),
        (
            json!([{"op": "add", "path": "/list/-", "value": 4}]),
            json!({"a": {"b": 1}, "list": [1, 2, 3, 4]}),
        ),
        (
            json!([{"op": "add", "path": "/list/0", "value": 0}]),
            json!({"a": {"b": 1}, "list": [0, 1, 2, 3]}),
        ),
        (
            json!([{"op": "remove", "path": "/list/1"}]),
            json!({"a": {"b": 1}, "list": [1, 3]}),
        ),
        (
            json!([{"op": "replace", "path": "/a", "value": {"x": null}}]),
            json!({"a": {"x": null}, "list": [1, 2, 3]}),
        ),
        (
            json!([{"op": "move", "from": "/a/b", "path": "/b"}]),
            json!({"a": {}, "list": [1, 2, 3], "b": 1}),
        ),
        (
            json!([{"op": "copy", "from": "/list", "path": "/copy"}]),
            json!({"a": {"b": 1}, "list": [1, 2, 3], "copy": [1, 2, 3]}),
        ),
        (
            json!([{"op": "test", "path": "/a/b", "value": 1}, {"op": "remove", "path": "/a"}]),
            json!({"list": [1, 2, 3]}),
        ),
        (json!([]), doc.clone()),
    ];
    for (patch, expected) in table {
        assert_eq!(json_patch(&doc, &patch), Ok(expected), "{patch}");
    }
}

#[test]
fn json_patch_errors() {
    let doc = json!({"metadata": {"name": "web"}, "list": [1]});
    let cannot_apply = [
        (
            json!([{"op": "replace", "path": "/metadata/annotations", "value": {}}]),
            "/metadata/annotations",
        ),
        (json!([{"op": "remove", "path": "/spec"}]), "/spec"),
        (json!([{"op": "remove", "path": "/list/5"}]), "/list/5"),
        (
            json!([{"op": "test", "path": "/metadata/name", "value": "api"}]),
            "/metadata/name",
        ),
        (
            json!([{"op": "test", "path": "/nope", "value": 1}]),
            "/nope",
        ),
        (
            json!([{"op": "add", "path": "/a/b/c", "value": 1}]),
            "/a/b/c",
        ),
        (json!([{"op": "move", "from": "/x", "path": "/y"}]), "/x"),
        (json!([{"op": "copy", "from": "/x", "path": "/y"}]), "/x"),
        (
            json!([{"op": "move", "from": "/metadata", "path": "/metadata/inner"}]),
            "/metadata/inner",
        ),
    ];
    for (patch, path) in cannot_apply {
        match json_patch(&doc, &patch) {
            Err(PatchError::CannotApply(m)) => {
                assert!(m.contains(&format!("\"{path}\"")), "{patch}: {m}")
            }
            other => panic!("{patch}: expected CannotApply, got {other:?}"),
        }
    }
    let test_failure = json_patch(
        &doc,
        &json!([{"op": "test", "path": "/metadata/name", "value": "api"}]),
    );
    assert_eq!(
        test_failure,
        Err(PatchError::CannotApply(
            "json patch test operation 0 failed: the value at path \"/metadata/name\" does not match".into()
        ))
    );
    let malformed_patches = [
        json!({"op": "add", "path": "/a", "value": 1}),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([{"op": "add", "path": "a", "value": 1}]),
        json!([{"op": "add", "path": "/a"}]),
        json!([{"path": "/a"}]),
        json!(["add"]),
    ];
    for patch in malformed_patches {
        assert!(
            matches!(json_patch(&doc, &patch), Err(PatchError::Malformed(_))),
            "{patch}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Property tests: no engine panics on arbitrary input; empty patches are identities;
// directives never leak.

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "metadata", "spec", "template", "containers", "name", "image", "env", "ports",
            "containerPort", "finalizers", "labels", "strategy", "volumes", "status",
            "conditions", "type", "args", "value",
        ]).prop_map(str::to_string),
        2 => prop::sample::select(vec![
            "$patch", "$retainKeys", "$setElementOrder/containers", "$setElementOrder/env",
            "$deleteFromPrimitiveList/finalizers", "$setElementOrder/", "$unknown",
        ]).prop_map(str::to_string),
        1 => "[a-z$/]{0,6}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..100).prop_map(Value::from),
        prop::sample::select(vec![
            "replace", "delete", "merge", "nginx", "name", "A", "", "/a", "/spec"
        ])
        .prop_map(Value::from),
    ]
}

/// Keys of documents as the server stores them: never `$`-prefixed.
fn document_key() -> impl Strategy<Value = String> {
    json_key().prop_map(|k| k.replace('$', "x"))
}

fn json_tree(keys: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    json_tree(json_key().boxed())
}

fn object_of(keys: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    prop::collection::vec((keys.clone(), json_tree(keys)), 0..6)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
}

fn arbitrary_object() -> impl Strategy<Value = Value> {
    object_of(json_key().boxed())
}

fn document_object() -> impl Strategy<Value = Value> {
    object_of(document_key().boxed())
}

fn json_patch_operation() -> impl Strategy<Value = Value> {
    let pointer = prop::sample::select(vec![
        "",
        "/",
        "/spec",
        "/spec/containers",
        "/spec/containers/0",
        "/spec/containers/-",
        "/metadata/name",
        "/a/b",
        "/0",
        "/~1x",
    ]);
    (
        prop::sample::select(vec![
            "add", "remove", "replace", "move", "copy", "test", "bad",
        ]),
        pointer.clone(),
        pointer,
        arbitrary_json(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

fn has_directive_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_directive_key(v)),
        Value::Array(items) => items.iter().any(has_directive_key),
        _ => false,
    }
}

const KINDS: [&str; 6] = [
    "Deployment",
    "Pod",
    "Service",
    "ConfigMap",
    "Namespace",
    "Rollout",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_engine_panics(doc in arbitrary_json(), patch in arbitrary_json(), kind in prop::sample::select(KINDS.to_vec())) {
        let _ = merge_patch(&doc, &patch);
        let _ = json_patch(&doc, &patch);
        let _ = strategic_merge_patch(kind, &doc, &patch);
    }

    #[test]
    fn strategic_merge_on_objects_never_panics_and_never_leaks_directives(
        doc in document_object(),
        patch in arbitrary_object(),
        kind in prop::sample::select(KINDS[..5].to_vec()),
    ) {
        prop_assert!(!has_directive_key(&doc));
        if let Ok(result) = strategic_merge_patch(kind, &doc, &patch) {
            prop_assert!(!has_directive_key(&result), "leaked directive: {}", result);
        }
    }

    #[test]
    fn json_patch_sequences_never_panic(doc in arbitrary_object(), ops in prop::collection::vec(json_patch_operation(), 0..5)) {
        let _ = json_patch(&doc, &Value::Array(ops));
    }

    #[test]
    fn empty_patches_are_identities(doc in arbitrary_object(), kind in prop::sample::select(KINDS[..5].to_vec())) {
        let empty = json!({});
        prop_assert_eq!(strategic_merge_patch(kind, &doc, &empty), Ok(doc.clone()));
        prop_assert_eq!(merge_patch(&doc, &empty), Ok(doc.clone()));
        prop_assert_eq!(json_patch(&doc, &json!([])), Ok(doc.clone()));
    }

    #[test]
    fn merge_patch_sets_what_the_patch_says(doc in arbitrary_object(), patch in arbitrary_object()) {
        let result = merge_patch(&doc, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (key, value) in patch.as_object().into_iter().flatten() {
            match value {
                Value::Null => prop_assert!(result.get(key).is_none()),
                Value::Object(_) => prop_assert!(result.get(key).is_some_and(Value::is_object)),
                other => prop_assert_eq!(result.get(key), Some(other)),
            }
        }
    }
}
