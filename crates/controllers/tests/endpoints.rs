//! Table tests of the Endpoints/EndpointSlice planner, the mirroring, the Service status
//! writer, the slice name suffixes and the controller metrics.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointPort, EndpointSubset, Endpoints,
    LoadBalancerIngress, LoadBalancerStatus, Pod, PodCondition, PodSpec, PodStatus, Service,
    ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_controllers::EventType;
use slipway_controllers::endpoints::{
    self, EndpointsAction, EndpointsPlan, MAX_ENDPOINTS_PER_SLICE, ObservedService, SliceAction,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const NS: &str = "default";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        port,
        protocol: Some("TCP".into()),
        target_port: target,
        ..ServicePort::default()
    }
}

fn service(name: &str, selector: &[(&str, &str)], ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("uid-svc-{name}")),
            resource_version: Some("5".into()),
            labels: Some(labels(&[("tier", "front")])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(selector)).filter(|s| !s.is_empty()),
            ports: Some(ports),
            cluster_ip: Some("127.96.0.10".into()),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A pod `name` with `labels`, IP `127.128.0.<n>`, ready or not, with container ports.
fn pod(name: &str, n: u32, app: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels(&[("app", app)])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("slipway".into()),
            containers: vec![Container {
                name: "app".into(),
                ports: Some(
                    ports
                        .iter()
                        .map(|(pname, p)| ContainerPort {
                            name: Some(pname.to_string()),
                            container_port: *p,
                            protocol: Some("TCP".into()),
                            ..ContainerPort::default()
                        })
                        .collect(),
                ),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(format!("127.128.{}.{}", n / 256, n % 256)),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time("2024-01-01T00:00:00Z".parse().expect("time")));
    p
}

fn observe(svc: Service, pods: Vec<Pod>) -> ObservedService {
    ObservedService {
        namespace: NS.into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        service: Some(svc),
        pods,
        endpoints: None,
        slices: Vec::new(),
    }
}

fn web_service() -> Service {
    service(
        "web",
        &[("app", "web")],
        vec![port("web", 80, Some(IntOrString::String("http".into())))],
    )
}

/// Applies a plan as the API server would (names, uids, resourceVersions), returning the
/// next observation.
fn apply(observed: &ObservedService, plan: &EndpointsPlan, seq: &mut u32) -> ObservedService {
    let mut next = observed.clone();
    for action in &plan.slices {
        *seq += 1;
        match action {
            SliceAction::Create(s) => {
                let mut s = s.clone();
                s.metadata.name = Some(format!(
                    "{}{:05}",
                    s.metadata.generate_name.clone().unwrap_or_default(),
                    seq
                ));
                s.metadata.uid = Some(format!("uid-slice-{seq}"));
                s.metadata.resource_version = Some(seq.to_string());
                next.slices.push(s);
            }
            SliceAction::Update(s) => {
                let mut s = s.clone();
                s.metadata.resource_version = Some(seq.to_string());
                let i = next
                    .slices
                    .iter()
                    .position(|x| x.metadata.name == s.metadata.name)
                    .expect("updated slice exists");
                next.slices[i] = s;
            }
            SliceAction::Delete { name, .. } => {
                next.slices
                    .retain(|x| x.metadata.name.as_deref() != Some(name.as_str()));
            }
        }
    }
    match &plan.endpoints {
        Some(EndpointsAction::Create(e)) | Some(EndpointsAction::Update(e)) => {
            let mut e = e.clone();
            e.metadata.uid.get_or_insert_with(|| "uid-ep".into());
            next.endpoints = Some(e);
        }
        Some(EndpointsAction::Delete { .. }) => next.endpoints = None,
        None => {}
    }
    if let Some(svc) = &plan.status {
        next.service = Some(svc.clone());
    }
    next
}

/// Plans until nothing is left to write (at most 3 passes); returns the settled state.
fn settle(mut observed: ObservedService) -> ObservedService {
    let mut seq = 0;
    for _ in 0..3 {
        let plan = endpoints::plan(&observed);
        if plan.is_noop() {
            return observed;
        }
        observed = apply(&observed, &plan, &mut seq);
    }
    let plan = endpoints::plan(&observed);
    assert!(plan.is_noop(), "plan did not settle: {plan:#?}");
    observed
}

fn created_endpoints(plan: &EndpointsPlan) -> &Endpoints {
    match &plan.endpoints {
        Some(EndpointsAction::Create(e)) => e,
        other => panic!("expected an Endpoints creation, got {other:#?}"),
    }
}

fn created_slices(plan: &EndpointsPlan) -> Vec<&EndpointSlice> {
    plan.slices
        .iter()
        .map(|a| match a {
            SliceAction::Create(s) => s,
            other => panic!("expected only creations, got {other:#?}"),
        })
        .collect()
}

fn ips(addrs: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    addrs.iter().flatten().map(|a| a.ip.as_str()).collect()
}

/// (ip, ready, serving, terminating) of a slice's endpoints.
fn conditions(s: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
    s.endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.addresses[0].clone(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn ready_unready_and_terminating_pods() {
    let pods = vec![
        pod("web-a", 3, "web", true, &[("http", 8080)]),
        pod("web-b", 1, "web", false, &[("http", 8080)]),
        terminating(pod("web-c", 2, "web", true, &[("http", 8080)])),
        pod("other", 4, "other", true, &[("http", 8080)]),
    ];
    let plan = endpoints::plan(&observe(web_service(), pods));
    let ep = created_endpoints(&plan);
    let subsets = ep.subsets.as_ref().expect("subsets");
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), vec!["127.128.0.3"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["127.128.0.1"]);
    let addr = &subsets[0].addresses.as_ref().expect("addresses")[0];
    assert_eq!(addr.node_name.as_deref(), Some("slipway"));
    let target = addr.target_ref.as_ref().expect("targetRef");
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.name.as_deref(), Some("web-a"));
    assert_eq!(target.namespace.as_deref(), Some(NS));
    assert_eq!(target.uid.as_deref(), Some("uid-web-a"));
    assert_eq!(
        subsets[0].ports,
        Some(vec![EndpointPort {
            name: Some("web".into()),
            port: 8080,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }])
    );
    let labels = ep.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        labels
            .get(endpoints::ENDPOINTS_MANAGED_BY_LABEL)
            .map(String::as_str),
        Some("endpoint-controller")
    );
    assert!(ep.metadata.owner_references.is_none());

    let slices = created_slices(&plan);
    assert_eq!(slices.len(), 1);
    let s = slices[0];
    assert_eq!(
        conditions(s),
        vec![
            ("127.128.0.1".into(), false, false, false),
            ("127.128.0.2".into(), false, true, true),
            ("127.128.0.3".into(), true, true, false),
        ]
    );
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert!(s.metadata.name.is_none(), "the reconciler names new slices");
    let l = s.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        l.get(endpoints::SERVICE_NAME_LABEL).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        l.get(endpoints::SLICE_MANAGED_BY_LABEL).map(String::as_str),
        Some(endpoints::SLICE_CONTROLLER)
    );
    assert_eq!(l.get("tier").map(String::as_str), Some("front"));
    let owner = &s.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Service", "web", "uid-svc-web")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let ports = s.ports.as_ref().expect("ports");
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].name.as_deref(), Some("web"));
    assert!(plan.events.is_empty());
    assert!(plan.status.is_none());
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let mut svc = web_service();
    svc.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
    let pods = vec![
        pod("web-a", 1, "web", false, &[("http", 8080)]),
        terminating(pod("web-b", 2, "web", false, &[("http", 8080)])),
    ];
    let plan = endpoints::plan(&observe(svc, pods));
    let subsets = created_endpoints(&plan).subsets.clone().expect("subsets");
    assert_eq!(
        ips(&subsets[0].addresses),
        vec!["127.128.0.1", "127.128.0.2"]
    );
    assert!(subsets[0].not_ready_addresses.is_none());
    assert_eq!(
        conditions(created_slices(&plan)[0]),
        vec![
            ("127.128.0.1".into(), true, true, false),
            ("127.128.0.2".into(), true, true, true),
        ]
    );
}

#[test]
fn numeric_unset_and_named_target_ports() {
    for (target, want) in [
        (Some(IntOrString::Int(9090)), 9090),
        (None, 80),
        (Some(IntOrString::String("http".into())), 8080),
    ] {
        let svc = service(
            "web",
            &[("app", "web")],
            vec![port("web", 80, target.clone())],
        );
        let pods = vec![pod("web-a", 1, "web", true, &[("http", 8080)])];
        let plan = endpoints::plan(&observe(svc, pods));
        let subsets = created_endpoints(&plan).subsets.clone().expect("subsets");
        assert_eq!(
            subsets[0].ports.as_ref().expect("ports")[0].port,
            want,
            "{target:?}"
        );
        let slice = created_slices(&plan)[0];
        assert_eq!(slice.ports.as_ref().expect("ports")[0].port, Some(want));
    }
}

#[test]
fn a_missing_named_port_leaves_the_pod_out_and_plans_one_warning() {
    let pods = vec![
        pod("web-a", 1, "web", true, &[("http", 8080)]),
        pod("web-abc", 2, "web", true, &[("metrics", 9100)]),
        pod("web-noip", 3, "web", true, &[]),
    ];
    let mut pods = pods;
    pods[2].status.as_mut().expect("status").pod_ip = None;
    let plan = endpoints::plan(&observe(web_service(), pods));
    assert_eq!(plan.events.len(), 1, "{:#?}", plan.events);
    assert_eq!(plan.events[0].event_type, EventType::Warning);
    assert_eq!(plan.events[0].reason, endpoints::PORT_NOT_FOUND);
    assert_eq!(
        plan.events[0].message,
        "pod default/web-abc has no container port named \"http\" (targetPort of port \"web\")"
    );
    let subsets = created_endpoints(&plan).subsets.clone().expect("subsets");
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), vec!["127.128.0.1"]);
    let slices = created_slices(&plan);
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].endpoints.len(), 1);
}

#[test]
fn no_resolvable_endpoints_gives_empty_endpoints_and_a_placeholder_slice() {
    let pods = vec![pod("web-a", 1, "web", true, &[("metrics", 9100)])];
    let plan = endpoints::plan(&observe(web_service(), pods));
    assert!(created_endpoints(&plan).subsets.is_none());
    let slices = created_slices(&plan);
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.is_empty());
    assert!(slices[0].ports.is_none());
    let settled = settle(observe(web_service(), Vec::new()));
    assert_eq!(settled.slices.len(), 1);
}

#[test]
fn multiple_ports_group_addresses_by_resolved_port_set() {
    let svc = service(
        "web",
        &[("app", "web")],
        vec![
            port("web", 80, Some(IntOrString::String("http".into()))),
            port("metrics", 9100, Some(IntOrString::String("metrics".into()))),
        ],
    );
    let pods = vec![
        pod(
            "web-a",
            1,
            "web",
            true,
            &[("http", 8080), ("metrics", 9100)],
        ),
        pod("web-b", 2, "web", true, &[("http", 8080)]),
        pod(
            "web-c",
            3,
            "web",
            true,
            &[("http", 8080), ("metrics", 9100)],
        ),
    ];
    let plan = endpoints::plan(&observe(svc, pods));
    let subsets = created_endpoints(&plan).subsets.clone().expect("subsets");
    assert_eq!(subsets.len(), 2);
    let by_ports: BTreeMap<usize, Vec<&str>> = subsets
        .iter()
        .map(|s| (s.ports.as_ref().map_or(0, Vec::len), ips(&s.addresses)))
        .collect();
    assert_eq!(by_ports[&2], vec!["127.128.0.1", "127.128.0.3"]);
    assert_eq!(by_ports[&1], vec!["127.128.0.2"]);
    let slices = created_slices(&plan);
    assert_eq!(slices.len(), 2);
    assert_eq!(plan.events.len(), 1);
}

#[test]
fn headless_services_get_the_headless_label_and_portless_endpoints() {
    let mut svc = service("db", &[("app", "db")], Vec::new());
    svc.spec.as_mut().expect("spec").cluster_ip = Some("None".into());
    let pods = vec![pod("db-0", 1, "db", true, &[])];
    let plan = endpoints::plan(&observe(svc, pods));
    let ep = created_endpoints(&plan);
    assert_eq!(
        ep.metadata
            .labels
            .as_ref()
            .expect("labels")
            .get(endpoints::HEADLESS_LABEL),
        Some(&String::new())
    );
    let subsets = ep.subsets.clone().expect("subsets");
    assert_eq!(ips(&subsets[0].addresses), vec!["127.128.0.1"]);
    assert!(subsets[0].ports.is_none());
    let slice = created_slices(&plan)[0];
    assert_eq!(
        slice
            .metadata
            .labels
            .as_ref()
            .expect("labels")
            .get(endpoints::HEADLESS_LABEL),
        Some(&String::new())
    );
    assert_eq!(slice.endpoints.len(), 1);
}

#[test]
fn pods_without_ip_and_finished_pods_are_skipped() {
    let mut no_ip = pod("web-a", 1, "web", true, &[("http", 8080)]);
    no_ip.status.as_mut().expect("status").pod_ip = Some(String::new());
    let mut done = pod("web-b", 2, "web", false, &[("http", 8080)]);
    done.spec.as_mut().expect("spec").restart_policy = Some("Never".into());
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let plan = endpoints::plan(&observe(web_service(), vec![no_ip, done]));
    assert!(created_endpoints(&plan).subsets.is_none());
    assert!(created_slices(&plan)[0].endpoints.is_empty());
}

#[test]
fn more_than_100_pods_take_several_slices_and_settle() {
    let pods: Vec<Pod> = (1..=250)
        .map(|i| pod(&format!("web-{i}"), i, "web", true, &[("http", 8080)]))
        .collect();
    let plan = endpoints::plan(&observe(web_service(), pods.clone()));
    let sizes: Vec<usize> = created_slices(&plan)
        .iter()
        .map(|s| s.endpoints.len())
        .collect();
    assert_eq!(
        sizes,
        vec![MAX_ENDPOINTS_PER_SLICE, MAX_ENDPOINTS_PER_SLICE, 50]
    );
    let settled = settle(observe(web_service(), pods));
    assert_eq!(settled.slices.len(), 3);
    let total: usize = settled.slices.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, 250);
}

#[test]
fn an_unchanged_input_plans_no_write() {
    let pods = vec![
        pod("web-a", 1, "web", true, &[("http", 8080)]),
        pod("web-b", 2, "web", false, &[("http", 8080)]),
    ];
    let settled = settle(observe(web_service(), pods));
    assert!(settled.endpoints.is_some());
    assert_eq!(settled.slices.len(), 1);
    // Server defaults (protocol, empty port name) and metadata do not count as changes.
    let mut roundtrip = settled.clone();
    let json = serde_json::to_value(&roundtrip.slices[0]).expect("json");
    roundtrip.slices[0] = serde_json::from_value(json).expect("slice");
    roundtrip.slices[0].metadata.managed_fields = Some(Vec::new());
    roundtrip.slices[0].metadata.creation_timestamp =
        Some(Time("2024-01-01T00:00:00Z".parse().expect("time")));
    let ep = roundtrip.endpoints.as_mut().expect("endpoints");
    ep.metadata.resource_version = Some("99".into());
    assert!(endpoints::plan(&roundtrip).is_noop());
}

#[test]
fn scaling_down_and_a_selector_change_update_the_slice_in_place() {
    let pods: Vec<Pod> = (1..=3)
        .map(|i| pod(&format!("web-{i}"), i, "web", true, &[("http", 8080)]))
        .collect();
    let settled = settle(observe(web_service(), pods.clone()));
    let name = settled.slices[0].metadata.name.clone();

    // Scale down to one pod: one update, no create or delete.
    let mut scaled = settled.clone();
    scaled.pods = pods[..1].to_vec();
    let plan = endpoints::plan(&scaled);
    assert_eq!(plan.slices.len(), 1, "{:#?}", plan.slices);
    match &plan.slices[0] {
        SliceAction::Update(s) => {
            assert_eq!(s.metadata.name, name);
            assert_eq!(s.endpoints.len(), 1);
        }
        other => panic!("expected an update, got {other:#?}"),
    }
    assert!(matches!(plan.endpoints, Some(EndpointsAction::Update(_))));

    // New selector, other pods: the same slice rewritten once.
    let mut changed = settled.clone();
    let mut svc = web_service();
    svc.spec.as_mut().expect("spec").selector = Some(labels(&[("app", "api")]));
    changed.service = Some(svc);
    changed.pods = (10..=11)
        .map(|i| pod(&format!("api-{i}"), i, "api", true, &[("http", 8080)]))
        .collect();
    let plan = endpoints::plan(&changed);
    assert_eq!(plan.slices.len(), 1, "{:#?}", plan.slices);
    match &plan.slices[0] {
        SliceAction::Update(s) => {
            assert_eq!(s.metadata.name, name);
            assert_eq!(
                s.endpoints
                    .iter()
                    .map(|e| e.addresses[0].as_str())
                    .collect::<Vec<_>>(),
                vec!["127.128.0.10", "127.128.0.11"]
            );
        }
        other => panic!("expected an update, got {other:#?}"),
    }

    // A changed targetPort rewrites the same slice with the new port.
    let mut retargeted = settled.clone();
    let mut svc = web_service();
    svc.spec.as_mut().expect("spec").ports =
        Some(vec![port("web", 80, Some(IntOrString::Int(9999)))]);
    retargeted.service = Some(svc);
    let plan = endpoints::plan(&retargeted);
    assert_eq!(plan.slices.len(), 1, "{:#?}", plan.slices);
    match &plan.slices[0] {
        SliceAction::Update(s) => {
            assert_eq!(s.metadata.name, name);
            assert_eq!(s.ports.as_ref().expect("ports")[0].port, Some(9999));
            assert_eq!(s.endpoints.len(), 3);
        }
        other => panic!("expected an update, got {other:#?}"),
    }
}

#[test]
fn a_manual_edit_of_a_slice_is_corrected() {
    let pods = vec![pod("web-a", 1, "web", true, &[("http", 8080)])];
    let mut settled = settle(observe(web_service(), pods));
    settled.slices[0].endpoints.clear();
    let plan = endpoints::plan(&settled);
    assert!(matches!(&plan.slices[..], [SliceAction::Update(s)] if s.endpoints.len() == 1));
}

fn user_endpoints(name: &str) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some("uid-user-ep".into()),
            labels: Some(labels(&[("owner", "me")])),
            ..ObjectMeta::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: "127.0.0.10".into(),
                ..EndpointAddress::default()
            }]),
            not_ready_addresses: Some(vec![EndpointAddress {
                ip: "127.0.0.11".into(),
                ..EndpointAddress::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("db".into()),
                port: 5432,
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]),
        }]),
    }
}

#[test]
fn selector_less_services_mirror_user_endpoints() {
    let svc = service("external", &[], vec![port("db", 5432, None)]);
    let mut observed = observe(svc, Vec::new());
    observed.endpoints = Some(user_endpoints("external"));
    let plan = endpoints::plan(&observed);
    assert!(plan.endpoints.is_none(), "user Endpoints are never written");
    let slices = created_slices(&plan);
    assert_eq!(slices.len(), 1);
    let s = slices[0];
    let l = s.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        l.get(endpoints::SLICE_MANAGED_BY_LABEL).map(String::as_str),
        Some(endpoints::MIRRORING_CONTROLLER)
    );
    assert_eq!(
        l.get(endpoints::SERVICE_NAME_LABEL).map(String::as_str),
        Some("external")
    );
    assert_eq!(l.get("owner").map(String::as_str), Some("me"));
    let owner = &s.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Endpoints", "uid-user-ep")
    );
    assert_eq!(
        conditions(s),
        vec![
            ("127.0.0.10".into(), true, true, false),
            ("127.0.0.11".into(), false, false, false),
        ]
    );
    assert_eq!(s.ports.as_ref().expect("ports")[0].port, Some(5432));

    // Settles, and follows an edit in place.
    let mut settled = settle(observed);
    let name = settled.slices[0].metadata.name.clone();
    settled
        .endpoints
        .as_mut()
        .expect("endpoints")
        .subsets
        .as_mut()
        .expect("subsets")[0]
        .not_ready_addresses = None;
    let plan = endpoints::plan(&settled);
    assert!(matches!(&plan.slices[..], [SliceAction::Update(s)]
        if s.metadata.name == name && s.endpoints.len() == 1));

    // Endpoints gone, or skip-mirror: the mirrored slice goes.
    let mut gone = settled.clone();
    gone.endpoints = None;
    assert!(matches!(
        &endpoints::plan(&gone).slices[..],
        [SliceAction::Delete { .. }]
    ));
    let mut skipped = settled.clone();
    skipped
        .endpoints
        .as_mut()
        .expect("endpoints")
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(endpoints::SKIP_MIRROR_LABEL.into(), "true".into());
    assert!(matches!(
        &endpoints::plan(&skipped).slices[..],
        [SliceAction::Delete { .. }]
    ));
}

#[test]
fn a_deleted_service_deletes_controller_endpoints_only() {
    let pods = vec![pod("web-a", 1, "web", true, &[("http", 8080)])];
    let mut settled = settle(observe(web_service(), pods));
    settled.service = None;
    let plan = endpoints::plan(&settled);
    assert!(matches!(
        plan.endpoints,
        Some(EndpointsAction::Delete { .. })
    ));
    assert!(
        plan.slices.is_empty(),
        "owned slices go through the garbage collector"
    );

    let mut user = observe(web_service(), Vec::new());
    user.service = None;
    user.endpoints = Some(user_endpoints("web"));
    assert!(endpoints::plan(&user).is_noop());
}

#[test]
fn load_balancer_services_get_the_loopback_ingress_and_lose_it_with_the_type() {
    let mut svc = web_service();
    svc.spec.as_mut().expect("spec").type_ = Some("LoadBalancer".into());
    let plan = endpoints::plan(&observe(svc, Vec::new()));
    let status = plan.status.expect("status").status.expect("status");
    let ingress = status.load_balancer.expect("lb").ingress.expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));

    let mut done = web_service();
    done.spec.as_mut().expect("spec").type_ = Some("LoadBalancer".into());
    done.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(ingress.clone()),
        }),
        ..ServiceStatus::default()
    });
    assert!(
        endpoints::plan(&observe(done.clone(), Vec::new()))
            .status
            .is_none()
    );

    let mut back = done;
    back.spec.as_mut().expect("spec").type_ = Some("ClusterIP".into());
    let cleared = endpoints::plan(&observe(back, Vec::new()))
        .status
        .expect("status")
        .status
        .expect("status");
    let ingress: Vec<LoadBalancerIngress> = cleared
        .load_balancer
        .and_then(|l| l.ingress)
        .unwrap_or_default();
    assert!(ingress.is_empty());
    assert!(
        endpoints::plan(&observe(web_service(), Vec::new()))
            .status
            .is_none()
    );
}

#[test]
fn external_name_services_get_no_endpoints() {
    let mut svc = web_service();
    svc.spec.as_mut().expect("spec").type_ = Some("ExternalName".into());
    let pods = vec![pod("web-a", 1, "web", true, &[("http", 8080)])];
    assert!(endpoints::plan(&observe(svc, pods)).is_noop());
}

#[test]
fn slice_name_suffixes_come_from_the_injected_random_source() {
    use slipway_controllers::reconcile::endpoints::{Random, name_suffix};
    let fixed: Random = Arc::new(|| 12345);
    let a = name_suffix(&fixed);
    assert_eq!(a, name_suffix(&fixed));
    assert_eq!(a.len(), 5);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{a}"
    );
    let other: Random = Arc::new(|| 987654321);
    assert_ne!(a, name_suffix(&other));
}

#[test]
fn metrics_render_in_prometheus_text_format() {
    let m = slipway_controllers::metrics::controller("endpoints-test");
    m.record_sync(true);
    m.record_sync(false);
    m.set_queue_depth(7);
    let text = slipway_controllers::metrics::render_prometheus();
    assert!(
        text.contains("# TYPE slipway_controller_syncs_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# HELP slipway_controller_sync_errors_total "),
        "{text}"
    );
    assert!(
        text.contains("# TYPE slipway_controller_queue_depth gauge"),
        "{text}"
    );
    assert!(
        text.contains("slipway_controller_syncs_total{controller=\"endpoints-test\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("slipway_controller_sync_errors_total{controller=\"endpoints-test\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("slipway_controller_queue_depth{controller=\"endpoints-test\"} 7"),
        "{text}"
    );
}
