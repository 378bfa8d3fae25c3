//! Service allocations through the REST layer: NodePorts (range, conflicts, preservation on
//! update, type changes, LoadBalancers), ClusterIPs kept on updates that omit them, and
//! allocation under concurrent creates.

use serde_json::{Value, json};
use slipway_apiserver::negotiate::BodyFormat;
use slipway_apiserver::query::Query;
use slipway_apiserver::rest::Rest;
use slipway_apiserver::services::NODE_PORT_RANGE;
use slipway_apiserver::target::ResourceTarget;
use slipway_core::{ApiError, resources};
use slipway_store::Store;
use std::collections::HashSet;
use std::sync::Arc;

fn rest() -> Rest {
    let rest = Rest::new(Store::in_memory().expect("store"));
    slipway_apiserver::housekeeping::ensure_builtin_namespaces(&rest).expect("namespaces");
    rest
}

fn target(ns: &str, name: Option<&str>) -> ResourceTarget {
    ResourceTarget {
        info: resources::lookup("", "v1", "services").unwrap(),
        namespace: Some(ns.to_string()),
        name: name.map(str::to_string),
        subresource: None,
    }
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn create(rest: &Rest, ns: &str, name: &str, spec: Value) -> Result<Arc<Value>, ApiError> {
    rest.create(
        &target(ns, None),
        &Query::default(),
        service(name, spec),
        "test",
    )
    .map(|w| w.object)
}

fn put(rest: &Rest, ns: &str, body: Value) -> Result<Arc<Value>, ApiError> {
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    rest.update(&target(ns, Some(&name)), &Query::default(), body, "test")
        .map(|w| w.object)
}

fn patch(
    rest: &Rest,
    ns: &str,
    name: &str,
    format: BodyFormat,
    body: Value,
) -> Result<Arc<Value>, ApiError> {
    let q = Query {
        field_manager: Some("tester".into()),
        ..Query::default()
    };
    rest.patch(
        &target(ns, Some(name)),
        &q,
        format,
        body.to_string().as_bytes(),
        "test",
    )
    .map(|w| w.object)
}

fn node_ports(svc: &Value) -> Vec<Option<i64>> {
    svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect()
}

fn node_port_spec(ports: Value) -> Value {
    json!({"type": "NodePort", "selector": {"app": "web"}, "ports": ports})
}

#[test]
fn node_ports_are_allocated_from_the_range() {
    let rest = rest();
    let svc = create(
        &rest,
        "default",
        "web",
        node_port_spec(json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}])),
    )
    .unwrap();
    let nps: Vec<i64> = node_ports(&svc).into_iter().map(Option::unwrap).collect();
    assert!(nps.iter().all(|n| NODE_PORT_RANGE.contains(n)), "{nps:?}");
    assert_ne!(nps[0], nps[1]);
    let ip: std::net::Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(
        ip.octets()[0] == 127 && (96..128).contains(&ip.octets()[1]),
        "{ip} is outside 127.96.0.0/11"
    );
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
}

#[test]
fn a_node_port_held_by_another_service_is_refused_with_the_kubernetes_message() {
    let rest = rest();
    create(
        &rest,
        "default",
        "a",
        node_port_spec(json!([{"port": 80, "nodePort": 30080}])),
    )
    .unwrap();
    // Another namespace does not help: NodePorts are cluster-wide.
    let err = create(
        &rest,
        "kube-system",
        "b",
        node_port_spec(json!([{"port": 80, "nodePort": 30080}])),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // The same on update.
    create(
        &rest,
        "default",
        "c",
        node_port_spec(json!([{"port": 80}, {"name": "x", "port": 81}])),
    )
    .unwrap_err(); // two ports need names
    let c = create(&rest, "default", "c", node_port_spec(json!([{"port": 80}]))).unwrap();
    let mut body = (*c).clone();
    body["spec"]["ports"][0]["nodePort"] = json!(30080);
    let err = put(&rest, "default", body).unwrap_err();
    assert_eq!(
        err.message,
        "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // Deleting the holder releases the value.
    rest.delete(&target("default", Some("a")), &Default::default())
        .unwrap();
    create(
        &rest,
        "kube-system",
        "b",
        node_port_spec(json!([{"port": 80, "nodePort": 30080}])),
    )
    .unwrap();
}

#[test]
fn ports_of_one_service_share_a_node_port_only_across_protocols() {
    let rest = rest();
    let svc = create(
        &rest,
        "default",
        "dns",
        node_port_spec(json!([
            {"name": "tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
            {"name": "udp", "port": 53, "protocol": "UDP", "nodePort": 30053}
        ])),
    )
    .unwrap();
    assert_eq!(node_ports(&svc), vec![Some(30053), Some(30053)]);
    let err = create(
        &rest,
        "default",
        "twice",
        node_port_spec(json!([
            {"name": "a", "port": 80, "nodePort": 30081},
            {"name": "b", "port": 81, "nodePort": 30081}
        ])),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.ports[1].nodePort: Duplicate value: 30081"),
        "{}",
        err.message
    );
}

#[test]
fn allocated_values_survive_updates_that_omit_them() {
    let rest = rest();
    let created = create(
        &rest,
        "default",
        "web",
        node_port_spec(json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}])),
    )
    .unwrap();
    let ip = created["spec"]["clusterIP"].clone();
    let nps = node_ports(&created);
    // PUT of the original manifest (no clusterIP, no nodePorts), with a new label.
    let mut body = service(
        "web",
        node_port_spec(json!([{"name": "https", "port": 443}, {"name": "http", "port": 80}])),
    );
    body["metadata"]["labels"] = json!({"tier": "front"});
    let updated = put(&rest, "default", body).unwrap();
    assert_eq!(updated["spec"]["clusterIP"], ip);
    assert_eq!(updated["spec"]["clusterIPs"], json!([ip]));
    // Matched by port name, as Kubernetes does.
    assert_eq!(node_ports(&updated), vec![nps[1], nps[0]]);
    // Every patch type keeps them too.
    for format in [
        BodyFormat::MergePatch,
        BodyFormat::StrategicMergePatch,
        BodyFormat::JsonPatch,
    ] {
        let body = match format {
            BodyFormat::JsonPatch => {
                json!([{"op": "replace", "path": "/spec/selector", "value": {"app": "v2"}}])
            }
            _ => json!({"spec": {"selector": {"app": "v3"}}}),
        };
        let patched = patch(&rest, "default", "web", format, body).unwrap();
        assert_eq!(patched["spec"]["clusterIP"], ip);
        assert_eq!(node_ports(&patched), vec![nps[1], nps[0]]);
    }
    // Server-side apply of a manifest without them.
    let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "v2"}, "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}]}});
    let patched = patch(
        &rest,
        "default",
        "web",
        BodyFormat::ApplyPatch,
        applied.clone(),
    )
    .unwrap();
    assert_eq!(patched["spec"]["clusterIP"], ip);
    assert_eq!(node_ports(&patched), vec![nps[1], nps[0]]);
}

#[test]
fn a_cluster_ip_is_kept_on_a_put_without_it_and_cannot_change() {
    let rest = rest();
    let created = create(
        &rest,
        "default",
        "api",
        json!({"selector": {"app": "api"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
    let revision = rest.store().revision();
    let same = put(
        &rest,
        "default",
        service(
            "api",
            json!({"selector": {"app": "api"}, "ports": [{"port": 80}]}),
        ),
    )
    .unwrap();
    assert_eq!(same["spec"]["clusterIP"], json!(ip));
    assert_eq!(same["spec"]["clusterIPs"], json!([ip]));
    // Resubmitting what was created is not a change.
    assert_eq!(rest.store().revision(), revision);

    let mut body = (*same).clone();
    body["spec"]["clusterIP"] = json!("127.96.9.9");
    let err = put(&rest, "default", body).unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Service \"api\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"127.96.9.9\"}: may not change once set"
    );
    // Neither to nor from headless.
    let err = patch(
        &rest,
        "default",
        "api",
        BodyFormat::MergePatch,
        json!({"spec": {"clusterIP": "None"}}),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Service \"api\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"None\"}: may not change once set"
    );
    create(
        &rest,
        "default",
        "headless",
        json!({"clusterIP": "None", "selector": {"app": "api"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    let err = patch(
        &rest,
        "default",
        "headless",
        BodyFormat::MergePatch,
        json!({"spec": {"clusterIP": "127.96.9.10", "clusterIPs": ["127.96.9.10"]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Service \"headless\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"127.96.9.10\"}: may not change once set"
    );
    // A PUT of a headless Service without clusterIP keeps it headless.
    let kept = put(
        &rest,
        "default",
        service(
            "headless",
            json!({"selector": {"app": "x"}, "ports": [{"port": 80}]}),
        ),
    )
    .unwrap();
    assert_eq!(kept["spec"]["clusterIP"], "None");
}

#[test]
fn a_cluster_ip_held_by_another_service_is_refused() {
    let rest = rest();
    let a = create(
        &rest,
        "default",
        "a",
        json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    let err = create(
        &rest,
        "default",
        "b",
        json!({"clusterIP": ip, "selector": {"app": "a"}, "ports": [{"port": 80}]}),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        format!(
            "Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
}

#[test]
fn type_changes_allocate_and_release_node_ports() {
    let rest = rest();
    create(
        &rest,
        "default",
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    // ClusterIP -> NodePort (kubectl patch uses a strategic merge patch).
    let np = patch(
        &rest,
        "default",
        "web",
        BodyFormat::StrategicMergePatch,
        json!({"spec": {"type": "NodePort"}}),
    )
    .unwrap();
    let value = node_ports(&np)[0].expect("a NodePort");
    assert!(NODE_PORT_RANGE.contains(&value));
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let ip = np["spec"]["clusterIP"].clone();

    // NodePort -> ClusterIP: the NodePorts (and the traffic policy) go away.
    let back = patch(
        &rest,
        "default",
        "web",
        BodyFormat::StrategicMergePatch,
        json!({"spec": {"type": "ClusterIP"}}),
    )
    .unwrap();
    assert_eq!(node_ports(&back), vec![None]);
    assert_eq!(back["spec"].get("externalTrafficPolicy"), None);
    assert_eq!(back["spec"]["clusterIP"], ip);
    // The released value is free for others.
    create(
        &rest,
        "default",
        "other",
        node_port_spec(json!([{"port": 80, "nodePort": value}])),
    )
    .unwrap();

    // Changing the type while setting a new NodePort is refused, as on Kubernetes.
    let err = patch(
        &rest,
        "default",
        "other",
        BodyFormat::MergePatch,
        json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30999}]}}),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{}",
        err.message
    );

    // LoadBalancer -> ClusterIP with a merge patch drops the LoadBalancer fields too.
    create(
        &rest,
        "default",
        "lb",
        json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    let plain = patch(
        &rest,
        "default",
        "lb",
        BodyFormat::MergePatch,
        json!({"spec": {"type": "ClusterIP"}}),
    )
    .unwrap();
    assert_eq!(node_ports(&plain), vec![None]);
    assert_eq!(plain["spec"].get("allocateLoadBalancerNodePorts"), None);
}

#[test]
fn load_balancers_allocate_node_ports_unless_told_not_to() {
    let rest = rest();
    let lb = create(
        &rest,
        "default",
        "lb",
        json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
    )
    .unwrap();
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert!(node_ports(&lb)[0].is_some());

    let bare = create(
        &rest,
        "default",
        "bare",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
               "selector": {"app": "web"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30500}]}),
    )
    .unwrap();
    // Nothing is allocated, but a requested value is kept (and reserved).
    assert_eq!(node_ports(&bare), vec![None, Some(30500)]);
    let err = create(
        &rest,
        "default",
        "c",
        node_port_spec(json!([{"port": 80, "nodePort": 30500}])),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
}

#[test]
fn concurrent_creates_never_share_a_value() {
    let rest = rest();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let rest = rest.clone();
            std::thread::spawn(move || {
                (0..6)
                    .map(|i| {
                        create(
                            &rest,
                            "default",
                            &format!("svc-{t}-{i}"),
                            node_port_spec(
                                json!([{"name": "a", "port": 80}, {"name": "b", "port": 81}]),
                            ),
                        )
                        .expect("create")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: Vec<Arc<Value>> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(created.len(), 48);
    let mut ips = HashSet::new();
    let mut nps = HashSet::new();
    for svc in &created {
        assert!(ips.insert(svc["spec"]["clusterIP"].as_str().unwrap().to_string()));
        for np in node_ports(svc) {
            let np = np.expect("allocated");
            assert!(nps.insert(np), "NodePort {np} given twice");
        }
    }
}
