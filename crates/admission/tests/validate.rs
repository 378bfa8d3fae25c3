//! Validation messages, through the public API: decode (Ignore) then validate, as the API
//! server does.

use serde_json::{Value, json};
use slipway_admission::{FieldValidation, decode, validate, validate_status_update};
use slipway_core::ResourceInfo;
use slipway_core::resources::by_kind;

fn info(api_version: &str, kind: &str) -> &'static ResourceInfo {
    by_kind(api_version, kind).unwrap_or_else(|| panic!("{kind} is served"))
}

fn seed() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{
                    "image": "k8spatterns/random-generator:1.0",
                    "name": "random-generator",
                    "readinessProbe": {"exec": {"command": ["stat", "/random-generator-ready"]}}
                }]}
            }
        }
    })
}

/// Decodes (Ignore) and validates as a create; returns the 422 causes as `field: message`.
fn errors(info: &ResourceInfo, body: Value, old: Option<Value>) -> Vec<String> {
    let decoded = decode(info, body, FieldValidation::Ignore)
        .unwrap_or_else(|e| panic!("decode: {}", e.message))
        .object;
    let old = old.map(|o| {
        decode(info, o, FieldValidation::Ignore)
            .unwrap_or_else(|e| panic!("decode old: {}", e.message))
            .object
    });
    match validate(info, &decoded, old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(e) => {
            assert_eq!(e.code, 422);
            assert_eq!(e.reason, "Invalid");
            e.causes
                .iter()
                .map(|c| format!("{}: {}", c.field.clone().unwrap_or_default(), c.message))
                .collect()
        }
    }
}

fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let target = if parent.is_empty() {
        Some(&mut body)
    } else {
        body.pointer_mut(parent)
    };
    if let Some(Value::Object(m)) = target {
        if value.is_null() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), value);
        }
    } else {
        panic!("no parent for {pointer}");
    }
    body
}

#[test]
fn seed_is_valid() {
    assert_eq!(
        errors(info("apps/v1", "Deployment"), seed(), None),
        Vec::<String>::new()
    );
}

#[test]
fn deployment_messages() {
    const C0: &str = "/spec/template/spec/containers/0";
    const LABEL_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const PERCENT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
    let cases: Vec<(String, Value, Vec<String>)> = vec![
        ("/metadata/name".to_string(), json!("Web_1"), vec![format!("metadata.name: Invalid value: \"Web_1\": {LABEL_SUBDOMAIN}")]),
        ("/metadata/name".to_string(), Value::Null, vec!["metadata.name: Required value: name or generateName is required".into()]),
        ("/metadata/namespace".to_string(), Value::Null, vec!["metadata.namespace: Required value".into()]),
        ("/metadata/labels".to_string(), json!({"app": "a b"}), vec!["metadata.labels: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()]),
        ("/metadata/annotations".to_string(), json!({"big": "x".repeat(262_142)}), vec!["metadata.annotations: Too long: may not be more than 262144 bytes".into()]),
        ("/spec/replicas".to_string(), json!(-1), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0".into()]),
        ("/spec/selector".to_string(), Value::Null, vec![
            "spec.selector: Required value".into(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`".into(),
        ]),
        ("/spec/selector".to_string(), json!({}), vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment".into()]),
        ("/spec/selector".to_string(), json!({"matchLabels": {"app": "y"}}), vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`".into()]),
        ("/spec/selector".to_string(), json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "z"]}]}), vec![]),
        ("/spec/selector".to_string(), json!({"matchExpressions": [{"key": "app", "operator": "Is"}]}), vec![
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Is\": not a valid selector operator".into(),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Is\", Values:[]string(nil)}}}: invalid label selector".into(),
        ]),
        ("/spec/template/metadata/labels".to_string(), json!({"app": "x", "bad key": "v"}), vec!["spec.template.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into()]),
        ("/spec/template/spec/containers".to_string(), json!([]), vec!["spec.template.spec.containers: Required value".into()]),
        (format!("{C0}/name"), json!("Random_Generator"), vec!["spec.template.spec.containers[0].name: Invalid value: \"Random_Generator\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into()]),
        (format!("{C0}/name"), json!(""), vec!["spec.template.spec.containers[0].name: Required value".into()]),
        (format!("{C0}/image"), Value::Null, vec!["spec.template.spec.containers[0].image: Required value".into()]),
        ("/spec/template/spec/containers".to_string(), json!([{"name": "a", "image": "i"}, {"name": "a", "image": "i"}]), vec!["spec.template.spec.containers[1].name: Duplicate value: \"a\"".into()]),
        ("/spec/template/spec/restartPolicy".to_string(), json!("Never"), vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".into()]),
        ("/spec/template/spec/restartPolicy".to_string(), json!("Sometimes"), vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".into(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\"".into(),
        ]),
        ("/spec/template/spec/dnsPolicy".to_string(), json!("Cluster"), vec!["spec.template.spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"".into()]),
        ("/spec/strategy/rollingUpdate".to_string(), json!({"maxSurge": "1.5%", "maxUnavailable": 1}), vec![format!("spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"1.5%\"}}: {PERCENT}")]),
        ("/spec/strategy/rollingUpdate".to_string(), json!({"maxSurge": 0, "maxUnavailable": 0}), vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0".into()]),
        ("/spec/strategy/rollingUpdate".to_string(), json!({"maxSurge": "0%", "maxUnavailable": "0%"}), vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0".into()]),
        ("/spec/strategy/rollingUpdate".to_string(), json!({"maxSurge": 1, "maxUnavailable": "101%"}), vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%".into()]),
        ("/spec/strategy/rollingUpdate".to_string(), json!({"maxSurge": -1, "maxUnavailable": 1}), vec!["spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0".into()]),
        ("/spec/strategy".to_string(), json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}), vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'".into()]),
        ("/spec/strategy".to_string(), json!({"type": "BlueGreen"}), vec!["spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"".into()]),
        ("/spec/revisionHistoryLimit".to_string(), json!(-2), vec!["spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0".into()]),
        ("/spec/minReadySeconds".to_string(), json!(-1), vec!["spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0".into()]),
        ("/spec/minReadySeconds".to_string(), json!(600), vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds".into()]),
        ("/spec/progressDeadlineSeconds".to_string(), json!(-1), vec![
            "spec.progressDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0".into(),
            "spec.progressDeadlineSeconds: Invalid value: -1: must be greater than minReadySeconds".into(),
        ]),
        (format!("{C0}/readinessProbe"), json!({"exec": {"command": ["a"]}, "httpGet": {"port": 80}}), vec!["spec.template.spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type".into()]),
        (format!("{C0}/readinessProbe"), json!({"periodSeconds": 5}), vec!["spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type".into()]),
        (format!("{C0}/readinessProbe"), json!({"exec": {"command": ["a"]}, "failureThreshold": -1}), vec!["spec.template.spec.containers[0].readinessProbe.failureThreshold: Invalid value: -1: must be greater than or equal to 0".into()]),
        (format!("{C0}/livenessProbe"), json!({"tcpSocket": {"port": 8080}, "successThreshold": 2}), vec!["spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1".into()]),
        (format!("{C0}/startupProbe"), json!({"httpGet": {"port": 70000}}), vec!["spec.template.spec.containers[0].startupProbe.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive".into()]),
        (format!("{C0}/ports"), json!([{"containerPort": 0}]), vec!["spec.template.spec.containers[0].ports[0].containerPort: Required value".into()]),
        (format!("{C0}/ports"), json!([{"containerPort": 65536}]), vec!["spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 65536: must be between 1 and 65535, inclusive".into()]),
        (format!("{C0}/ports"), json!([{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]), vec!["spec.template.spec.containers[0].ports[1].name: Duplicate value: \"web\"".into()]),
        (format!("{C0}/ports"), json!([{"containerPort": 80, "protocol": "HTTP"}]), vec!["spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into()]),
        (format!("{C0}/resources"), json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}), vec!["spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".into()]),
        (format!("{C0}/resources"), json!({"limits": {"gpu": "1"}}), vec!["spec.template.spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers".into()]),
        (format!("{C0}/volumeMounts"), json!([{"name": "data", "mountPath": "/data"}]), vec!["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"".into()]),
        (format!("{C0}/env"), json!([{"name": "A=B", "value": "x"}]), vec!["spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='".into()]),
        (format!("{C0}/imagePullPolicy"), json!("Sometimes"), vec!["spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"".into()]),
        ("/spec/template/spec/volumes".to_string(), json!([{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]), vec!["spec.template.spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type".into()]),
    ];
    for (pointer, value, want) in cases {
        let got = errors(
            info("apps/v1", "Deployment"),
            with(seed(), &pointer, value.clone()),
            None,
        );
        assert_eq!(got, want, "{pointer} = {value}");
    }
}

#[test]
fn invalid_message_names_the_object() {
    let d = info("apps/v1", "Deployment");
    let obj = decode(
        d,
        with(seed(), "/spec/replicas", json!(-1)),
        FieldValidation::Strict,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .object;
    let err = validate(d, &obj, None)
        .err()
        .unwrap_or_else(|| panic!("valid"));
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
}

#[test]
fn deployment_update_rules() {
    let d = info("apps/v1", "Deployment");
    let old = with(seed(), "/metadata/uid", json!("u1"));
    let changed_selector = with(
        with(
            seed(),
            "/spec/selector",
            json!({"matchLabels": {"app": "x", "tier": "web"}}),
        ),
        "/spec/template/metadata/labels",
        json!({"app": "x", "tier": "web"}),
    );
    assert_eq!(
        errors(d, changed_selector, Some(old.clone())),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\", \"tier\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    assert_eq!(
        errors(
            d,
            with(seed(), "/metadata/name", json!("other")),
            Some(old.clone())
        ),
        vec!["metadata.name: Invalid value: \"other\": field is immutable"]
    );
    assert_eq!(
        errors(
            d,
            with(seed(), "/metadata/uid", json!("u2")),
            Some(old.clone())
        ),
        vec!["metadata.uid: Invalid value: \"u2\": field is immutable"]
    );
    // replicas and image may change; an absent uid is filled by the server
    let scaled = with(seed(), "/spec/replicas", json!(10));
    assert_eq!(errors(d, scaled, Some(old.clone())), Vec::<String>::new());
    let bad_status = with(
        seed(),
        "/status",
        json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 2}),
    );
    assert_eq!(
        errors(d, bad_status, Some(old)),
        vec![
            "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas"
        ]
    );
}

#[test]
fn replica_set_rules() {
    let rs = info("apps/v1", "ReplicaSet");
    let mut body = seed();
    body["kind"] = json!("ReplicaSet");
    if let Some(spec) = body["spec"].as_object_mut() {
        spec.remove("strategy");
    }
    assert_eq!(errors(rs, body.clone(), None), Vec::<String>::new());
    assert_eq!(
        errors(rs, with(body.clone(), "/spec/selector", json!({})), None),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
    let changed = with(
        body.clone(),
        "/spec/selector",
        json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
    );
    assert_eq!(
        errors(rs, changed, Some(body)),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Exists\", Values:[]string(nil)}}}: field is immutable"
        ]
    );
}

fn object(api_version: &str, kind: &str, name: &str, extra: Value) -> Value {
    let mut body = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "default"}});
    if let (Some(m), Value::Object(e)) = (body.as_object_mut(), extra) {
        for (k, v) in e {
            if k == "metadata" {
                if let (Some(meta), Value::Object(more)) =
                    (m.get_mut("metadata").and_then(Value::as_object_mut), v)
                {
                    meta.extend(more);
                }
            } else {
                m.insert(k, v);
            }
        }
    }
    body
}

#[test]
fn other_kinds_messages() {
    let pod_spec = json!({"containers": [{"name": "c", "image": "i"}]});
    let cases: Vec<(&str, &str, &str, Value, Vec<&str>)> = vec![
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
            vec![],
        ),
        (
            "v1",
            "Service",
            "1web",
            json!({"spec": {"ports": [{"port": 80}]}}),
            vec![
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {}}),
            vec!["spec.ports: Required value"],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"clusterIP": "None"}}),
            vec![],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            vec![],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 0}]}}),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80, "protocol": "HTTP"}]}}),
            vec![
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"type": "Magic", "ports": [{"port": 80}]}}),
            vec![
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}}),
            vec![
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"type": "NodePort", "allocateLoadBalancerNodePorts": true, "ports": [{"port": 80}]}}),
            vec![
                "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}}),
            vec![],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81}]}}),
            vec!["spec.ports[1].name: Required value"],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}}),
            vec![
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ],
        ),
        (
            "v1",
            "Service",
            "web",
            json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "a b"}}}),
            vec![
                "spec.selector: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        ),
        ("v1", "Pod", "p", json!({"spec": pod_spec.clone()}), vec![]),
        (
            "v1",
            "Pod",
            "p",
            json!({"spec": {"containers": [{"name": "c", "image": " i"}]}}),
            vec![
                "spec.containers[0].image: Invalid value: \" i\": must not have leading or trailing whitespace",
            ],
        ),
        (
            "v1",
            "Pod",
            "p",
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Sometimes"}}),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            "v1",
            "Pod",
            "p",
            json!({"spec": {"containers": []}}),
            vec!["spec.containers: Required value"],
        ),
        (
            "v1",
            "Pod",
            "p",
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "initContainers": [{"name": "c", "image": "i"}]}}),
            vec!["spec.initContainers[0].name: Duplicate value: \"c\""],
        ),
        (
            "v1",
            "ConfigMap",
            "cm",
            json!({"data": {"app.properties": "x", "bad key": "y"}}),
            vec![
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ],
        ),
        (
            "v1",
            "Secret",
            "s",
            json!({"data": {"..x": "eA=="}}),
            vec!["data[..x]: Invalid value: \"..x\": must not start with '..'"],
        ),
        (
            "v1",
            "Secret",
            "s",
            json!({"type": "kubernetes.io/tls", "data": {}}),
            vec![
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value",
            ],
        ),
        (
            "v1",
            "Namespace",
            "Prod",
            json!({}),
            vec![
                "metadata.name: Invalid value: \"Prod\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            "v1",
            "Namespace",
            "a.b",
            json!({}),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"],
        ),
        (
            "v1",
            "Endpoints",
            "web",
            json!({"subsets": [{"addresses": [{"ip": "127.0.0.2"}], "ports": [{"port": 8080}]}]}),
            vec![],
        ),
        (
            "v1",
            "Endpoints",
            "web",
            json!({"subsets": [{"addresses": [{"ip": "nope"}]}]}),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "web-1",
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.2"]}], "ports": [{"port": 80}]}),
            vec![],
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "web-1",
            json!({"addressType": "IPv5", "endpoints": []}),
            vec![
                "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            ],
        ),
        (
            "v1",
            "Event",
            "web.1",
            json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started"}),
            vec![],
        ),
        (
            "v1",
            "Event",
            "web.1",
            json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}}),
            vec![
                "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace",
            ],
        ),
        (
            "v1",
            "ConfigMap",
            "cm",
            json!({"metadata": {"generateName": "cm-", "name": ""}}),
            vec![],
        ),
        (
            "v1",
            "ConfigMap",
            "cm",
            json!({"metadata": {"finalizers": ["custom"]}}),
            vec![
                "metadata.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
            ],
        ),
        (
            "v1",
            "ConfigMap",
            "cm",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u"}]}}),
            vec!["metadata.ownerReferences.name: Invalid value: \"\": must not be empty"],
        ),
    ];
    for (api_version, kind, name, extra, want) in cases {
        let r = info(api_version, kind);
        let mut body = object(api_version, kind, name, extra.clone());
        if !r.namespaced {
            body["metadata"]
                .as_object_mut()
                .map(|m| m.remove("namespace"));
        }
        assert_eq!(errors(r, body, None), want, "{kind} {name} {extra}");
    }
}

#[test]
fn update_rules_for_other_kinds() {
    let pod = info("v1", "Pod");
    let old = object(
        "v1",
        "Pod",
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "i:1"}]}}),
    );
    let new_image = object(
        "v1",
        "Pod",
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "i:2"}]}}),
    );
    assert_eq!(
        errors(pod, new_image, Some(old.clone())),
        Vec::<String>::new()
    );
    let bound = object(
        "v1",
        "Pod",
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "i:1"}], "nodeName": "node-1"}}),
    );
    assert_eq!(errors(pod, bound, Some(old.clone())), Vec::<String>::new());
    let new_port = object(
        "v1",
        "Pod",
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "i:1", "ports": [{"containerPort": 80}]}]}}),
    );
    assert_eq!(
        errors(pod, new_port, Some(old)),
        vec![
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
        ]
    );

    let cm = info("v1", "ConfigMap");
    let old = object(
        "v1",
        "ConfigMap",
        "cm",
        json!({"immutable": true, "data": {"a": "1"}}),
    );
    let new = object(
        "v1",
        "ConfigMap",
        "cm",
        json!({"immutable": true, "data": {"a": "2"}}),
    );
    assert_eq!(
        errors(cm, new, Some(old)),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );

    let secret = info("v1", "Secret");
    let old = object("v1", "Secret", "s", json!({"type": "Opaque"}));
    let new = object(
        "v1",
        "Secret",
        "s",
        json!({"type": "kubernetes.io/basic-auth", "data": {"username": "dQ=="}}),
    );
    assert_eq!(
        errors(secret, new, Some(old)),
        vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
    );

    let svc = info("v1", "Service");
    let old = object(
        "v1",
        "Service",
        "web",
        json!({"spec": {"clusterIP": "127.0.10.1", "ports": [{"port": 80}]}}),
    );
    let new = object(
        "v1",
        "Service",
        "web",
        json!({"spec": {"clusterIP": "127.0.10.2", "ports": [{"port": 80}]}}),
    );
    assert_eq!(
        errors(svc, new, Some(old)),
        vec![
            "spec.clusterIPs[0]: Invalid value: []string{\"127.0.10.2\"}: may not change once set"
        ]
    );

    let ns = info("v1", "Namespace");
    let old =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "uid": "1"}});
    let new = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "uid": "1", "labels": {"team": "x"}}});
    assert_eq!(errors(ns, new, Some(old)), Vec::<String>::new());
}

/// A status write is validated as Kubernetes' status strategies do: the metadata update and
/// the status counters, never the spec (which the write cannot change).
#[test]
fn status_writes_check_metadata_and_status_only() {
    let causes = |info: &ResourceInfo, new: &Value, old: &Value| -> Vec<String> {
        match validate_status_update(info, new, old) {
            Ok(()) => Vec::new(),
            Err(e) => {
                assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
                e.causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field.clone().unwrap_or_default(), c.message))
                    .collect()
            }
        }
    };
    let d = info("apps/v1", "Deployment");
    let mut old = seed();
    old["metadata"]["uid"] = json!("u1");
    let bad_status = with(
        old.clone(),
        "/status",
        json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 2}),
    );
    assert_eq!(
        causes(d, &bad_status, &old),
        vec![
            "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas"
        ]
    );
    let good_status = with(
        old.clone(),
        "/status",
        json!({"replicas": 3, "readyReplicas": 2}),
    );
    assert_eq!(causes(d, &good_status, &old), Vec::<String>::new());
    // The metadata update rules hold for status writes too.
    let renamed = with(good_status.clone(), "/metadata/uid", json!("u2"));
    assert_eq!(
        causes(d, &renamed, &old),
        vec!["metadata.uid: Invalid value: \"u2\": field is immutable"]
    );
    let bad_label = with(good_status, "/metadata/labels", json!({"a b": "x"}));
    assert_eq!(
        causes(d, &bad_label, &old).len(),
        1,
        "label keys are checked"
    );

    let rs = info("apps/v1", "ReplicaSet");
    let too_ready = with(
        old.clone(),
        "/status",
        json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 2, "availableReplicas": 1}),
    );
    assert_eq!(
        causes(rs, &too_ready, &old),
        vec!["status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    );

    // A pod's status write reads no spec: one that would fail the spec checks (it is the
    // stored spec, which passed them when it was written) is not refused here.
    let pods = info("v1", "Pod");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"containers": []},
        "status": {"phase": "Running"}
    });
    assert!(
        !errors(pods, pod.clone(), Some(pod.clone())).is_empty(),
        "the spec is invalid"
    );
    assert_eq!(causes(pods, &pod, &pod), Vec::<String>::new());
    let moved = with(pod.clone(), "/metadata/namespace", json!("other"));
    assert_eq!(
        causes(pods, &moved, &pod),
        vec!["metadata.namespace: Invalid value: \"other\": field is immutable"]
    );
}
