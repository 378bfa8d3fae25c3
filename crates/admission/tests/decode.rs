//! Decoding and defaulting, through the public API.

use proptest::prelude::*;
use serde_json::{Value, json};
use slipway_admission::{FieldValidation, decode};
use slipway_core::ResourceInfo;
use slipway_core::resources::{RESOURCES, by_kind};

fn info(api_version: &str, kind: &str) -> &'static ResourceInfo {
    by_kind(api_version, kind).unwrap_or_else(|| panic!("{kind} is served"))
}

fn deployments() -> &'static ResourceInfo {
    info("apps/v1", "Deployment")
}

fn seed() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "random-generator"},
        "spec": {
            "replicas": 3,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "selector": {"matchLabels": {"app": "random-generator"}},
            "template": {
                "metadata": {"labels": {"app": "random-generator"}},
                "spec": {"containers": [{
                    "image": "k8spatterns/random-generator:1.0",
                    "name": "random-generator",
                    "readinessProbe": {"exec": {"command": ["stat", "/random-generator-ready"]}}
                }]}
            }
        }
    })
}

fn decode_ok(info: &ResourceInfo, body: Value) -> Value {
    match decode(info, body, FieldValidation::Strict) {
        Ok(d) => {
            assert!(d.warnings.is_empty(), "{:?}", d.warnings);
            d.object
        }
        Err(e) => panic!("decode failed: {}", e.message),
    }
}

fn decode_err(info: &ResourceInfo, body: Value, v: FieldValidation) -> String {
    match decode(info, body, v) {
        Ok(d) => panic!("decoded: {}", d.object),
        Err(e) => {
            assert_eq!(e.code, 400, "{}", e.message);
            assert_eq!(e.reason, "BadRequest");
            e.message
        }
    }
}

#[test]
fn seed_decodes_strictly_and_defaults_like_a_1_33_cluster() {
    let got = decode_ok(deployments(), seed());
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "random-generator"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "random-generator"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "random-generator"}},
                "spec": {
                    "containers": [{
                        "image": "k8spatterns/random-generator:1.0",
                        "imagePullPolicy": "IfNotPresent",
                        "name": "random-generator",
                        "readinessProbe": {
                            "exec": {"command": ["stat", "/random-generator-ready"]},
                            "failureThreshold": 3,
                            "periodSeconds": 10,
                            "successThreshold": 1,
                            "timeoutSeconds": 1
                        },
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {}
    });
    assert_eq!(got, want);
    // decoding is idempotent: the canonical form decodes to itself
    assert_eq!(decode_ok(deployments(), got.clone()), got);
}

#[test]
fn broken_seed_names_the_misplaced_fields() {
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "random-generator"},
        "spec": {
            "replicas": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
                "selector": {"matchLables": {"app": "random-generator"}},
                "template": {
                    "metadata": {"labels": "app:random-generator"},
                    "spec": {"containers": [{"image": "k8spatterns/random-generator:1.0", "name": "random-generator"}]}
                }
            }
        }
    });
    assert_eq!(
        decode_err(deployments(), body.clone(), FieldValidation::Strict),
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.strategy.selector\", unknown field \"spec.strategy.template\""
    );
    let warned = decode(deployments(), body.clone(), FieldValidation::Warn)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        warned.warnings,
        vec![
            "unknown field \"spec.strategy.selector\"",
            "unknown field \"spec.strategy.template\""
        ]
    );
    assert!(warned.object.pointer("/spec/strategy/selector").is_none());
    let ignored =
        decode(deployments(), body, FieldValidation::Ignore).unwrap_or_else(|e| panic!("{e}"));
    assert!(ignored.warnings.is_empty());
    // the selector is absent (not `{}`) so validation can say "Required value"
    assert!(ignored.object.pointer("/spec/selector").is_none());
}

#[test]
fn misspelt_match_labels_is_an_unknown_field() {
    let mut body = seed();
    body["spec"]["selector"] = json!({"matchLables": {"app": "random-generator"}});
    assert_eq!(
        decode_err(deployments(), body, FieldValidation::Strict),
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.selector.matchLables\""
    );
}

#[test]
fn labels_given_as_a_string_is_a_type_error_naming_the_field() {
    let mut body = seed();
    body["spec"]["template"]["metadata"]["labels"] = json!("app:random-generator");
    for mode in [
        FieldValidation::Strict,
        FieldValidation::Warn,
        FieldValidation::Ignore,
    ] {
        let msg = decode_err(deployments(), body.clone(), mode);
        assert!(
            msg.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: spec.template.metadata.labels: invalid type: string \"app:random-generator\""),
            "{msg}"
        );
    }
}

#[test]
fn type_errors_inside_lists_name_the_index() {
    let mut body = seed();
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": "http"}]);
    let msg = decode_err(deployments(), body, FieldValidation::Strict);
    assert!(
        msg.contains(": spec.template.spec.containers[0].ports[0].containerPort: invalid type: string \"http\""),
        "{msg}"
    );
}

#[test]
fn unknown_fields_deep_in_lists_are_reported_with_indexes_in_document_order() {
    let mut body = seed();
    body["spec"]["template"]["spec"]["containers"][0]["foo"] = json!(1);
    body["spec"]["bar"] = json!({"x": 1});
    body["zzz"] = json!(true);
    assert_eq!(
        decode_err(deployments(), body, FieldValidation::Strict),
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.template.spec.containers[0].foo\", unknown field \"spec.bar\", unknown field \"zzz\""
    );
}

#[test]
fn no_false_positives_for_nulls_empties_and_special_types() {
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "creationTimestamp": null,
            "labels": {}, "annotations": {"a": ""}, "finalizers": [], "generateName": ""
        },
        "spec": {
            "replicas": 1,
            "paused": false,
            "minReadySeconds": 0,
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": []},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}, "annotations": {}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx", "args": [], "command": [], "env": [],
                        "ports": [{"containerPort": 80, "name": "", "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {}},
                        "securityContext": {},
                        "livenessProbe": {"httpGet": {"port": "http", "path": ""}},
                        "volumeMounts": []
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "nodeSelector": {},
                    "tolerations": [],
                    "securityContext": {}
                }
            }
        },
        "status": {}
    });
    let got = decode_ok(deployments(), body);
    assert_eq!(
        got.pointer("/spec/template/spec/containers/0/resources/limits/cpu"),
        Some(&json!("1"))
    );
    assert_eq!(
        got.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        Some(&json!("25%"))
    );
    assert_eq!(
        got.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        Some(&json!(0))
    );
    assert_eq!(
        got.pointer("/spec/strategy/type"),
        Some(&json!("RollingUpdate"))
    );
    assert_eq!(
        got.pointer("/spec/template/spec/containers/0/imagePullPolicy"),
        Some(&json!("Always"))
    );
    assert_eq!(
        got.pointer("/spec/template/spec/containers/0/livenessProbe/httpGet"),
        Some(&json!({"path": "/", "port": "http", "scheme": "HTTP"}))
    );

    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "creationTimestamp": null},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"app": "web"}, "clusterIP": ""},
        "status": {"loadBalancer": {}}
    });
    decode_ok(info("v1", "Service"), svc);

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"k": "dmFsdWU="}, "stringData": {"x": "y"}});
    decode_ok(info("v1", "Secret"), secret);
}

#[test]
fn api_version_and_kind_are_checked_and_filled() {
    let mut body = seed();
    body["apiVersion"] = json!("apps/v1beta1");
    assert_eq!(
        decode_err(deployments(), body, FieldValidation::Strict),
        "the API version in the data (apps/v1beta1) does not match the expected API version (apps/v1)"
    );
    let mut body = seed();
    body["kind"] = json!("ReplicaSet");
    assert_eq!(
        decode_err(deployments(), body, FieldValidation::Strict),
        "ReplicaSet in version \"v1\" cannot be handled as a Deployment: the kind in the data (ReplicaSet) does not match the expected kind (Deployment)"
    );
    let mut body = seed();
    body.as_object_mut().map(|m| {
        m.remove("kind");
        m.remove("apiVersion")
    });
    let got = decode_ok(deployments(), body);
    assert_eq!(got["kind"], "Deployment");
    assert_eq!(got["apiVersion"], "apps/v1");
    let msg = decode_err(deployments(), json!([1]), FieldValidation::Strict);
    assert!(
        msg.starts_with(
            "couldn't get version/kind; json parse error: json: cannot unmarshal array"
        ),
        "{msg}"
    );
    let msg = decode_err(deployments(), json!({"kind": 3}), FieldValidation::Strict);
    assert!(
        msg.contains("cannot unmarshal number into Go struct field .kind of type string"),
        "{msg}"
    );
}

#[test]
fn deployment_defaults_table() {
    let base = |spec: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec});
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({}), "/spec/replicas", json!(1)),
        (
            json!({}),
            "/spec/strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        ),
        (
            json!({"strategy": {"type": "Recreate"}}),
            "/spec/strategy",
            json!({"type": "Recreate"}),
        ),
        (
            json!({"strategy": {"rollingUpdate": {"maxSurge": 2}}}),
            "/spec/strategy/rollingUpdate",
            json!({"maxSurge": 2, "maxUnavailable": "25%"}),
        ),
        (json!({}), "/spec/revisionHistoryLimit", json!(10)),
        (
            json!({"revisionHistoryLimit": 0}),
            "/spec/revisionHistoryLimit",
            json!(0),
        ),
        (json!({}), "/spec/progressDeadlineSeconds", json!(600)),
        (
            json!({}),
            "/spec/template/metadata",
            json!({"creationTimestamp": null}),
        ),
        (
            json!({}),
            "/spec/template/spec/restartPolicy",
            json!("Always"),
        ),
        (json!({}), "/status", json!({})),
    ];
    for (spec, pointer, want) in cases {
        let got = decode_ok(deployments(), base(spec.clone()));
        assert_eq!(got.pointer(pointer), Some(&want), "{spec} {pointer}");
    }
}

#[test]
fn pod_spec_defaults_table() {
    let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    let c = |extra: Value| {
        let mut c = json!({"name": "c", "image": "nginx:1.25"});
        if let (Some(m), Value::Object(e)) = (c.as_object_mut(), extra) {
            m.extend(e);
        }
        json!({"containers": [c]})
    };
    let cases: Vec<(Value, &str, Value)> = vec![
        (c(json!({})), "/spec/restartPolicy", json!("Always")),
        (
            c(json!({})),
            "/spec/terminationGracePeriodSeconds",
            json!(30),
        ),
        (c(json!({})), "/spec/dnsPolicy", json!("ClusterFirst")),
        (
            c(json!({})),
            "/spec/schedulerName",
            json!("default-scheduler"),
        ),
        (c(json!({})), "/spec/securityContext", json!({})),
        (c(json!({})), "/spec/enableServiceLinks", json!(true)),
        (c(json!({})), "/spec/serviceAccountName", json!("default")),
        (c(json!({})), "/spec/serviceAccount", json!("default")),
        (c(json!({})), "/spec/priority", json!(0)),
        (
            c(json!({})),
            "/spec/preemptionPolicy",
            json!("PreemptLowerPriority"),
        ),
        (
            c(json!({})),
            "/spec/tolerations",
            json!([
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
            ]),
        ),
        (
            c(json!({})),
            "/status",
            json!({"phase": "Pending", "qosClass": "BestEffort"}),
        ),
        (
            c(json!({})),
            "/spec/containers/0/terminationMessagePath",
            json!("/dev/termination-log"),
        ),
        (
            c(json!({})),
            "/spec/containers/0/terminationMessagePolicy",
            json!("File"),
        ),
        (
            c(json!({})),
            "/spec/containers/0/imagePullPolicy",
            json!("IfNotPresent"),
        ),
        (
            c(json!({"image": "nginx"})),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            c(json!({"image": "nginx:latest"})),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            c(json!({"imagePullPolicy": "Never"})),
            "/spec/containers/0/imagePullPolicy",
            json!("Never"),
        ),
        (
            c(json!({"ports": [{"containerPort": 80}]})),
            "/spec/containers/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            c(json!({"livenessProbe": {"tcpSocket": {"port": 80}}})),
            "/spec/containers/0/livenessProbe",
            json!({"tcpSocket": {"port": 80}, "failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}),
        ),
        (
            c(
                json!({"startupProbe": {"httpGet": {"port": 80, "path": "/healthz"}, "periodSeconds": 0}}),
            ),
            "/spec/containers/0/startupProbe/httpGet/scheme",
            json!("HTTP"),
        ),
        (
            c(
                json!({"startupProbe": {"httpGet": {"port": 80, "path": "/healthz"}, "periodSeconds": 0}}),
            ),
            "/spec/containers/0/startupProbe/periodSeconds",
            json!(10),
        ),
        (
            c(json!({"readinessProbe": {"grpc": {"port": 9000}}})),
            "/spec/containers/0/readinessProbe/grpc",
            json!({"port": 9000, "service": ""}),
        ),
        (
            c(
                json!({"env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
            ),
            "/spec/containers/0/env/0/valueFrom/fieldRef",
            json!({"apiVersion": "v1", "fieldPath": "metadata.name"}),
        ),
        (
            c(json!({"resources": {"limits": {"cpu": "0.5", "memory": 134217728}}})),
            "/spec/containers/0/resources",
            json!({"limits": {"cpu": "500m", "memory": "134217728"}, "requests": {"cpu": "500m", "memory": "134217728"}}),
        ),
        (
            c(json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})),
            "/status/qosClass",
            json!("Guaranteed"),
        ),
        (
            c(json!({"resources": {"requests": {"cpu": "100m"}}})),
            "/status/qosClass",
            json!("Burstable"),
        ),
        (
            {
                let mut s = c(json!({}));
                s["volumes"] = json!([{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]);
                s
            },
            "/spec/volumes",
            json!([{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}]),
        ),
        (
            {
                let mut s = c(json!({}));
                s["serviceAccount"] = json!("robot");
                s
            },
            "/spec/serviceAccountName",
            json!("robot"),
        ),
    ];
    for (spec, pointer, want) in cases {
        let got = decode_ok(info("v1", "Pod"), pod(spec.clone()));
        assert_eq!(got.pointer(pointer), Some(&want), "{spec} {pointer}");
    }
    // templates get the pod spec defaults but not the pod-only ones
    let d = decode_ok(deployments(), seed());
    let template = &d["spec"]["template"]["spec"];
    for absent in [
        "enableServiceLinks",
        "serviceAccountName",
        "tolerations",
        "priority",
    ] {
        assert!(template.get(absent).is_none(), "{absent}");
    }
    // updates (a resourceVersion is present) do not get create-time admission defaults
    let mut update = pod(c(json!({})));
    update["metadata"]["resourceVersion"] = json!("7");
    let got = decode_ok(info("v1", "Pod"), update);
    assert!(got.pointer("/spec/tolerations").is_none());
}

#[test]
fn other_kinds_defaults_table() {
    let cases: Vec<(&str, &str, Value, &str, Value)> = vec![
        (
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}]}}),
            "/spec",
            json!({"internalTrafficPolicy": "Cluster", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "sessionAffinity": "None", "type": "ClusterIP"}),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "web"}]}}),
            "/spec/externalTrafficPolicy",
            json!("Cluster"),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
            "/spec/allocateLoadBalancerNodePorts",
            json!(true),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
            "/spec/sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}),
            "/spec/internalTrafficPolicy",
            Value::Null,
        ),
        (
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}]}}),
            "/status",
            json!({"loadBalancer": {}}),
        ),
        (
            "v1",
            "Namespace",
            json!({}),
            "/metadata/labels",
            json!({"kubernetes.io/metadata.name": "thing"}),
        ),
        (
            "v1",
            "Namespace",
            json!({}),
            "/spec",
            json!({"finalizers": ["kubernetes"]}),
        ),
        (
            "v1",
            "Namespace",
            json!({}),
            "/status",
            json!({"phase": "Active"}),
        ),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "thing", "namespace": "default"}}),
            "/metadata/namespace",
            Value::Null,
        ),
        ("v1", "Secret", json!({}), "/type", json!("Opaque")),
        (
            "v1",
            "Secret",
            json!({"stringData": {"a": "b"}, "data": {"c": "ZA=="}}),
            "/data",
            json!({"a": "Yg==", "c": "ZA=="}),
        ),
        (
            "v1",
            "Secret",
            json!({"stringData": {"a": "b"}}),
            "/stringData",
            Value::Null,
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {}}),
            "/spec/replicas",
            json!(1),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {}}),
            "/status",
            json!({"replicas": 0}),
        ),
        (
            "v1",
            "Endpoints",
            json!({"subsets": [{"addresses": [{"ip": "127.0.0.2"}], "ports": [{"port": 80}]}]}),
            "/subsets/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]}),
            "/ports/0",
            json!({"name": "", "port": 80, "protocol": "TCP"}),
        ),
        (
            "v1",
            "Event",
            json!({"involvedObject": {"kind": "Pod", "name": "p"}}),
            "/reportingComponent",
            json!(""),
        ),
        (
            "v1",
            "Event",
            json!({"involvedObject": {"kind": "Pod", "name": "p"}}),
            "/eventTime",
            Value::Null,
        ),
        (
            "v1",
            "ConfigMap",
            json!({"data": {"a": "b"}}),
            "/data",
            json!({"a": "b"}),
        ),
    ];
    for (api_version, kind, extra, pointer, want) in cases {
        let mut body =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "thing"}});
        if let (Some(m), Value::Object(e)) = (body.as_object_mut(), extra.clone()) {
            for (k, v) in e {
                m.insert(k, v);
            }
        }
        let got = decode_ok(info(api_version, kind), body);
        let found = got.pointer(pointer).cloned().unwrap_or(Value::Null);
        assert_eq!(found, want, "{kind} {extra} {pointer}");
    }
}

#[test]
fn bad_quantities_are_rejected_like_kubernetes() {
    let mut body = seed();
    body["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"memory": "1GB"}});
    assert_eq!(
        decode_err(deployments(), body, FieldValidation::Ignore),
        "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
}

#[test]
fn every_served_kind_decodes_a_minimal_object() {
    for r in RESOURCES {
        let body =
            json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
        let got = decode(r, body, FieldValidation::Strict)
            .unwrap_or_else(|e| panic!("{}: {}", r.kind, e.message));
        assert_eq!(got.object["kind"], r.kind);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-zA-Z0-9:%./-]{0,12}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("spec".to_string()),
        Just("metadata".to_string()),
        Just("template".to_string()),
        Just("containers".to_string()),
        Just("selector".to_string()),
        Just("matchLabels".to_string()),
        Just("labels".to_string()),
        Just("resources".to_string()),
        Just("limits".to_string()),
        Just("strategy".to_string()),
        Just("rollingUpdate".to_string()),
        Just("maxSurge".to_string()),
        Just("ports".to_string()),
        Just("name".to_string()),
        Just("data".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decode_and_validate_never_panic(body in arb_json(), idx in 0usize..RESOURCES.len(), mode in 0u8..3) {
        let r = &RESOURCES[idx];
        let mode = [FieldValidation::Ignore, FieldValidation::Warn, FieldValidation::Strict][mode as usize];
        let mut body = body;
        if let Value::Object(m) = &mut body {
            m.insert("kind".into(), json!(r.kind));
        }
        if let Ok(d) = decode(r, body, mode) {
            let _ = slipway_admission::validate(r, &d.object, None);
            let _ = slipway_admission::validate(r, &d.object, Some(&d.object));
            // canonical objects decode to themselves
            let again = decode(r, d.object.clone(), FieldValidation::Strict);
            prop_assert!(again.is_ok(), "{:?}", again.err());
        }
    }
}

#[test]
fn fields_a_default_removes_are_known_and_unknown_ones_next_to_them_are_reported() {
    // Defaulting drops a Service's `sessionAffinityConfig` when the affinity is None, and a
    // Secret's `stringData` (merged into `data`): neither is an unknown field.
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"sessionAffinity": "None",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}},
                 "ports": [{"port": 80}]}
    });
    let decoded = decode(
        info("v1", "Service"),
        service.clone(),
        FieldValidation::Strict,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert!(
        decoded
            .object
            .pointer("/spec/sessionAffinityConfig")
            .is_none()
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "stringData": {"a": "b"}});
    let decoded = decode(info("v1", "Secret"), secret, FieldValidation::Strict)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.object["data"]["a"], "Yg==");
    let mut with_unknown = service;
    with_unknown["spec"]["sessionAffinityConfig"]["bogus"] = json!(1);
    assert_eq!(
        decode_err(info("v1", "Service"), with_unknown, FieldValidation::Strict),
        "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.sessionAffinityConfig.bogus\""
    );
}
