use super::*;
use serde_json::json;

fn svc(name: &str, spec: Value) -> Arc<Value> {
    Arc::new(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("svc-{name}")},
        "spec": spec,
    }))
}

fn slice(service: &str, ports: Value, endpoints: Value) -> Arc<Value> {
    Arc::new(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abcde"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
    }))
}

fn ep(ip: &str, uid: &str, ready: bool, terminating: bool) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating},
           "targetRef": {"kind": "Pod", "namespace": "default", "name": uid, "uid": uid}})
}

fn pod(uid: &str, ip: &str, container_id: &str, isolated: bool) -> Arc<Value> {
    let mut conditions = vec![json!({"type": "Ready", "status": "True"})];
    if !isolated {
        conditions.push(json!({"type": "slipway.dev/Isolated", "status": "False"}));
    }
    Arc::new(json!({
        "metadata": {"name": format!("pod-{uid}"), "namespace": "default", "uid": uid},
        "status": {"phase": "Running", "podIP": ip, "conditions": conditions,
                   "containerStatuses": [{"name": "app", "containerID": container_id, "state": {"running": {}}}]},
    }))
}

fn state(
    services: &[Arc<Value>],
    slices: &[Arc<Value>],
    pods: &[Arc<Value>],
    nets: &HashMap<String, PodNetwork>,
) -> DesiredState {
    desired_state(&Inputs {
        services,
        slices,
        pods,
        pod_networks: nets,
    })
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

#[test]
fn cluster_ip_service_listens_on_its_ip_and_takes_slice_endpoints() {
    let services = [svc(
        "web",
        json!({"type": "ClusterIP", "clusterIP": "127.96.0.10",
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
    )];
    let slices = [slice(
        "web",
        json!([{"name": "", "port": 8080, "protocol": "TCP"}]),
        json!([
            ep("127.128.0.2", "a", true, false),
            ep("127.128.0.3", "b", false, false),
            ep("127.128.0.4", "c", false, true)
        ]),
    )];
    let s = state(&services, &slices, &[], &HashMap::new());
    let web = &s.services[&key("web")];
    assert_eq!(web.ports.len(), 1);
    let port = &web.ports[0];
    assert_eq!(port.frontends, vec![Frontend::Host(addr("127.96.0.10:80"))]);
    assert_eq!(port.app_protocol, AppProtocol::Sniff);
    let summary: Vec<_> = port
        .endpoints
        .iter()
        .map(|e| {
            (
                e.ip.to_string(),
                e.port,
                e.ready,
                e.serving,
                e.terminating,
                e.pod_uid.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "127.128.0.2".into(),
                8080,
                true,
                true,
                false,
                Some("a".into())
            ),
            (
                "127.128.0.3".into(),
                8080,
                false,
                false,
                false,
                Some("b".into())
            ),
            (
                "127.128.0.4".into(),
                8080,
                false,
                true,
                true,
                Some("c".into())
            ),
        ]
    );
}

#[test]
fn node_port_and_load_balancer_listen_on_localhost() {
    let services = [
        svc(
            "np",
            json!({"type": "NodePort", "clusterIP": "127.96.0.11",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        ),
        svc(
            "lb",
            json!({"type": "LoadBalancer", "clusterIP": "127.96.0.12",
            "ports": [{"name": "web", "port": 8081, "nodePort": 30081}]}),
        ),
    ];
    let s = state(&services, &[], &[], &HashMap::new());
    assert_eq!(
        s.services[&key("np")].ports[0].frontends,
        vec![
            Frontend::Host(addr("127.96.0.11:80")),
            Frontend::Host(addr("127.0.0.1:30080"))
        ]
    );
    assert_eq!(
        s.services[&key("np")].ports[0].app_protocol,
        AppProtocol::Http,
        "a port named http is HTTP"
    );
    assert_eq!(
        s.services[&key("lb")].ports[0].frontends,
        vec![
            Frontend::Host(addr("127.96.0.12:8081")),
            Frontend::Host(addr("127.0.0.1:30081")),
            Frontend::Host(addr("127.0.0.1:8081")),
        ]
    );
}

#[test]
fn multiple_ports_match_slice_ports_by_name() {
    let services = [svc(
        "multi",
        json!({"clusterIP": "127.96.0.13", "ports": [
            {"name": "web", "port": 80, "appProtocol": "http"},
            {"name": "metrics", "port": 9090, "appProtocol": "tcp"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]}),
    )];
    let slices = [slice(
        "multi",
        json!([{"name": "web", "port": 8080}, {"name": "metrics", "port": 9100}]),
        json!([ep("127.128.0.2", "a", true, false)]),
    )];
    let s = state(&services, &slices, &[], &HashMap::new());
    let ports = &s.services[&key("multi")].ports;
    assert_eq!(ports.len(), 2, "UDP ports are not served");
    assert_eq!(
        (ports[0].app_protocol, ports[0].endpoints[0].port),
        (AppProtocol::Http, 8080)
    );
    assert_eq!(
        (ports[1].app_protocol, ports[1].endpoints[0].port),
        (AppProtocol::Tcp, 9100)
    );
}

#[test]
fn headless_and_external_name_services_have_no_listeners() {
    let services = [
        svc(
            "headless",
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        ),
        svc(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    ];
    let s = state(&services, &[], &[], &HashMap::new());
    assert!(s.services[&key("headless")].ports[0].frontends.is_empty());
    assert!(!s.services.contains_key(&key("ext")));
}

#[test]
fn affinity_and_balancing_come_from_the_spec_and_annotation() {
    let mut v = (*svc(
        "a",
        json!({"clusterIP": "127.96.0.14", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
    ))
    .clone();
    v["metadata"]["annotations"] = json!({BALANCING_ANNOTATION: "least-connections"});
    let services = [
        Arc::new(v),
        svc(
            "b",
            json!({"clusterIP": "127.96.0.15", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}),
        ),
    ];
    let s = state(&services, &[], &[], &HashMap::new());
    assert_eq!(
        s.services[&key("a")].session_affinity,
        Some(Duration::from_secs(10_800))
    );
    assert_eq!(s.services[&key("a")].balancing, Balancing::LeastConnections);
    assert_eq!(
        s.services[&key("b")].session_affinity,
        Some(Duration::from_secs(60))
    );
    assert_eq!(s.services[&key("b")].balancing, Balancing::RoundRobin);
}

#[test]
fn isolated_running_pods_get_one_in_pod_listener_each() {
    let services = [svc(
        "web",
        json!({"clusterIP": "127.96.0.16", "ports": [{"port": 80}]}),
    )];
    // p3's two containers share the pod's namespace: one listener, keyed by the pod.
    let two = Arc::new(json!({
        "metadata": {"name": "pod-p3", "namespace": "default", "uid": "p3"},
        "status": {"phase": "Running", "podIP": "127.128.0.4",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       {"name": "app", "containerID": "slipway://p3/app/0", "state": {"running": {}}},
                       {"name": "side", "containerID": "slipway://p3/side/2", "state": {"running": {}}}]},
    }));
    let waiting = Arc::new(json!({
        "metadata": {"name": "pod-p4", "namespace": "default", "uid": "p4"},
        "status": {"phase": "Running", "podIP": "127.128.0.5",
                   "containerStatuses": [{"name": "app", "containerID": "slipway://p4/app/1",
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    }));
    let pods = [
        pod("p1", "127.128.0.2", "slipway://p1/app/0", true),
        pod("p2", "127.128.0.3", "slipway://p2/app/3", false),
        two,
        waiting,
    ];
    let s = state(&services, &[], &pods, &HashMap::new());
    let in_pod = |uid: &str| Frontend::InPod {
        pod_uid: uid.into(),
        addr: addr("127.96.0.16:80"),
    };
    assert_eq!(
        s.services[&key("web")].ports[0].frontends,
        vec![
            Frontend::Host(addr("127.96.0.16:80")),
            in_pod("p1"),
            in_pod("p3")
        ]
    );
}

#[test]
fn running_pods_with_network_metadata_get_pod_ip_forwarding() {
    let pods = [
        pod("p1", "127.128.0.2", "slipway://p1/app/0", true),
        pod("p2", "127.128.0.3", "slipway://p2/app/0", true),
    ];
    let nets = HashMap::from([(
        "p1".to_string(),
        PodNetwork::parse(r#"{"podIP":"127.128.0.2","ports":[{"port":8080,"container":"app"}]}"#)
            .unwrap(),
    )]);
    let s = state(&[], &[], &pods, &nets);
    assert_eq!(s.services.len(), 1, "p2 has no network.json");
    let (k, v) = s.services.iter().next().unwrap();
    assert_eq!(k.namespace, "pod:default");
    assert_eq!(v.kind, ServiceKind::PodIp);
    assert_eq!(
        v.ports[0].frontends,
        vec![Frontend::Host(addr("127.128.0.2:8080"))]
    );
    assert_eq!(v.ports[0].endpoints[0].pod_uid.as_deref(), Some("p1"));
}

#[test]
fn netns_keys_and_network_metadata_parse() {
    assert_eq!(netns_key("slipway://u/c/2"), Some("u/c/2"));
    assert_eq!(netns_key("containerd://abc"), None);
    assert_eq!(netns_key("slipway://u/c"), None);
    let n = PodNetwork::parse(r#"{"podIP":"127.128.0.9","ports":[{"port":80,"container":"a"},{"port":81,"container":"b"}]}"#).unwrap();
    assert_eq!(n.container_for(81), Some("b"));
    assert_eq!(n.container_for(9999), None, "two containers: no guess");
    let one = PodNetwork::parse(r#"{"ports":[{"port":80,"container":"a"}]}"#).unwrap();
    assert_eq!(one.container_for(9999), Some("a"));
    assert!(PodNetwork::parse("not json").is_none());
}

#[test]
fn same_inputs_give_the_same_state() {
    let services = [svc(
        "web",
        json!({"clusterIP": "127.96.0.10", "ports": [{"port": 80}]}),
    )];
    let slices = [slice(
        "web",
        json!([{"port": 8080}]),
        json!([
            ep("127.128.0.3", "b", true, false),
            ep("127.128.0.2", "a", true, false)
        ]),
    )];
    let a = state(&services, &slices, &[], &HashMap::new());
    let b = state(&services, &slices, &[], &HashMap::new());
    assert_eq!(a, b);
    assert_eq!(
        a.services[&key("web")].ports[0].endpoints[0].ip.to_string(),
        "127.128.0.2",
        "sorted"
    );
}

/// A pod (not running) with a `pod-template-hash` label.
fn labelled(uid: &str, hash: &str) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": format!("pod-{uid}"), "namespace": "default", "uid": uid,
                     "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash}},
        "status": {"phase": "Pending"},
    }))
}

fn annotated(name: &str, annotation: &str, spec: Value) -> Arc<Value> {
    let mut v = (*svc(name, spec)).clone();
    v["metadata"]["annotations"] = json!({TRAFFIC_SPLIT_ANNOTATION: annotation});
    Arc::new(v)
}

#[test]
fn traffic_split_annotation_parses() {
    let full = TrafficSplit {
        weights: Some(BTreeMap::from([("s1".into(), 80), ("c1".into(), 20)])),
        header_routes: vec![HeaderRoute {
            name: "beta".into(),
            header: "X-Canary".into(),
            value: "always".into(),
            group: "c1".into(),
        }],
    };
    let only_routes = TrafficSplit {
        weights: None,
        ..full.clone()
    };
    let only_weights = TrafficSplit {
        header_routes: Vec::new(),
        ..full.clone()
    };
    let zero = TrafficSplit {
        weights: Some(BTreeMap::from([("s1".into(), 0), ("c1".into(), 100)])),
        header_routes: Vec::new(),
    };
    let route = r#"{"name": "beta", "header": "X-Canary", "value": "always", "podHash": "c1"}"#;
    let cases: Vec<(String, Result<Option<TrafficSplit>, ()>)> = vec![
        (
            format!(r#"{{"weights": {{"s1": 80, "c1": 20}}, "headerRoutes": [{route}]}}"#),
            Ok(Some(full.clone())),
        ),
        (
            format!(r#"{{"headerRoutes": [{route}]}}"#),
            Ok(Some(only_routes)),
        ),
        (
            r#"{"weights": {"s1": 80, "c1": 20}, "headerRoutes": []}"#.into(),
            Ok(Some(only_weights.clone())),
        ),
        (
            r#"{"weights": {"s1": 80, "c1": 20}, "extra": true}"#.into(),
            Ok(Some(only_weights)),
        ),
        (
            r#"{"weights": {"s1": 0, "c1": 100}}"#.into(),
            Ok(Some(zero)),
        ),
        (
            r#"{"weights": {}}"#.into(),
            Ok(Some(TrafficSplit {
                weights: Some(BTreeMap::new()),
                header_routes: Vec::new(),
            })),
        ),
        ("{}".into(), Ok(None)),
        (r#"{"weights": null, "headerRoutes": null}"#.into(), Ok(None)),
        ("not json".into(), Err(())),
        ("[]".into(), Err(())),
        (r#"{"weights": {"s1": 101}}"#.into(), Err(())),
        (r#"{"weights": {"s1": -1}}"#.into(), Err(())),
        (r#"{"weights": {"s1": 12.5}}"#.into(), Err(())),
        (r#"{"weights": {"s1": "80"}}"#.into(), Err(())),
        (r#"{"weights": [80, 20]}"#.into(), Err(())),
        (
            r#"{"headerRoutes": [{"name": "r", "header": "X-A", "value": "1"}]}"#.into(),
            Err(()),
        ),
        (
            r#"{"headerRoutes": [{"name": "r", "header": "X A", "value": "1", "podHash": "c1"}]}"#
                .into(),
            Err(()),
        ),
        (
            r#"{"headerRoutes": [{"name": "r", "header": "X-A", "value": "a\nb", "podHash": "c1"}]}"#
                .into(),
            Err(()),
        ),
    ];
    for (text, want) in cases {
        let got = parse_traffic_split(&text).map_err(|_| ());
        assert_eq!(got, want, "annotation {text}");
    }
}

#[test]
fn endpoints_get_groups_from_pod_labels_and_the_split_applies_by_group() {
    let annotation = r#"{"weights": {"s1": 80, "c1": 20},
        "headerRoutes": [{"name": "beta", "header": "x-canary", "value": "1", "podHash": "c1"}]}"#;
    let services = [annotated(
        "web",
        annotation,
        json!({"clusterIP": "127.96.0.20", "ports": [
            {"name": "http", "port": 80}, {"name": "admin", "port": 81}]}),
    )];
    let mut manual = json!({"addresses": ["127.128.0.9"], "conditions": {"ready": true}});
    manual["targetRef"] = json!({"kind": "Service", "name": "x", "uid": "x"});
    let slices = [slice(
        "web",
        json!([{"name": "http", "port": 8080}, {"name": "admin", "port": 8081}]),
        json!([
            ep("127.128.0.2", "a", true, false),
            ep("127.128.0.3", "b", true, false),
            ep("127.128.0.4", "c", true, false),
            ep("127.128.0.5", "old", true, false),
            ep("127.128.0.6", "nolabel", true, false),
            ep("127.128.0.7", "gone", true, false),
            manual,
        ]),
    )];
    let mut bare = (*labelled("nolabel", "")).clone();
    bare["metadata"]["labels"] = json!({"app": "web"});
    let pods = [
        labelled("a", "s1"),
        labelled("b", "s1"),
        labelled("c", "c1"),
        labelled("old", "o0"),
        Arc::new(bare),
    ];
    let s = state(&services, &slices, &pods, &HashMap::new());
    let web = &s.services[&key("web")];
    assert_eq!(web.ports.len(), 2);
    for port in &web.ports {
        let split = port.split.as_ref().expect("every port carries the split");
        assert_eq!(split.header_routes.len(), 1);
        assert_eq!(split.header_routes[0].group, "c1");
        // (ip, group, split weight of the group)
        let mut got: Vec<_> = port
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.ip.to_string(),
                    e.group.as_str(),
                    split.weight_of(&e.group),
                    e.weight,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("127.128.0.2".into(), "s1", Some(80), 1),
                ("127.128.0.3".into(), "s1", Some(80), 1),
                ("127.128.0.4".into(), "c1", Some(20), 1),
                ("127.128.0.5".into(), "o0", Some(0), 1),
                ("127.128.0.6".into(), "", Some(0), 1),
                ("127.128.0.7".into(), "", Some(0), 1),
                ("127.128.0.9".into(), "", Some(0), 1),
            ],
            "port {}",
            port.name
        );
    }
}

#[test]
fn invalid_traffic_split_is_ignored_as_a_whole() {
    let spec = json!({"clusterIP": "127.96.0.21", "ports": [{"port": 80}]});
    let slices = [slice(
        "bad-weight",
        json!([{"port": 8080}]),
        json!([ep("127.128.0.2", "a", true, false)]),
    )];
    let pods = [labelled("a", "s1")];
    for (name, text) in [
        (
            "bad-weight",
            r#"{"weights": {"s1": 150}, "headerRoutes": [{"name": "r", "header": "x-a", "value": "1", "podHash": "s1"}]}"#,
        ),
        ("bad-json", r#"{"weights": {"s1": 80"#),
        (
            "bad-route",
            r#"{"weights": {"s1": 80}, "headerRoutes": [{"header": "x-a"}]}"#,
        ),
    ] {
        let services = [annotated(name, text, spec.clone())];
        let s = state(&services, &slices, &pods, &HashMap::new());
        let port = &s.services[&key(name)].ports[0];
        assert_eq!(port.split, None, "{name}: ignored");
        if name == "bad-weight" {
            assert_eq!(port.endpoints[0].group, "s1", "groups still set");
            assert_eq!(port.endpoints[0].weight, 1);
        }
    }
    // No annotation, or a non-string one: no split either.
    let mut v = (*svc("plain", spec.clone())).clone();
    v["metadata"]["annotations"] = json!({TRAFFIC_SPLIT_ANNOTATION: {"weights": {"s1": 1}}});
    let s = state(&[Arc::new(v)], &[], &[], &HashMap::new());
    assert_eq!(s.services[&key("plain")].ports[0].split, None);
}

#[test]
fn split_states_compare_by_value() {
    let text = r#"{"weights": {"s1": 80, "c1": 20}}"#;
    let spec = json!({"clusterIP": "127.96.0.22", "ports": [{"port": 80}]});
    let a = state(
        &[annotated("w", text, spec.clone())],
        &[],
        &[],
        &HashMap::new(),
    );
    let b = state(
        &[annotated("w", text, spec.clone())],
        &[],
        &[],
        &HashMap::new(),
    );
    assert_eq!(a, b);
    let c = state(
        &[annotated("w", r#"{"weights": {"s1": 50, "c1": 50}}"#, spec)],
        &[],
        &[],
        &HashMap::new(),
    );
    assert_ne!(a, c, "a weight change is a state change");
}
