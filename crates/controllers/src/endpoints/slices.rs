//! EndpointSlices computed from pods, and the placement of endpoints into slices that keeps
//! every endpoint in the slice it already is in, so a change is one in-place write per slice.

use super::ports::Resolved;
use super::{
    HEADLESS_LABEL, ObservedService, SERVICE_NAME_LABEL, SLICE_CONTROLLER, SLICE_MANAGED_BY_LABEL,
    SliceAction, is_headless,
};
use crate::ownership::controller_ref;
use crate::pods::{is_ready, phase};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{BTreeMap, BTreeSet};

/// Endpoints per slice (the controller's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A slice's port set, comparable: (name, port, protocol, appProtocol), in order.
pub(crate) type PortKey = Vec<(String, i32, String, Option<String>)>;

/// Endpoints by port set; each group sorted by address and without duplicate addresses.
pub(crate) type Groups = BTreeMap<PortKey, Vec<Endpoint>>;

/// The pod's IP, if it has one.
pub(crate) fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// ShouldPodBeInEndpoints: has an IP, is not terminating (unless `include_terminating`), and
/// has not finished for good (a terminal pod that its restart policy would not restart).
pub(crate) fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ip(pod).is_none() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match restart {
        "Never" => !matches!(phase(pod), "Succeeded" | "Failed"),
        "OnFailure" => phase(pod) != "Succeeded",
        _ => true,
    }
}

/// Sort key of an address: IPv4 numerically, then IPv6, then anything else as text.
pub(crate) fn ip_order(ip: &str) -> (u8, u128, String) {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => (0, u128::from(u32::from(v4)), String::new()),
        Ok(std::net::IpAddr::V6(v6)) => (1, u128::from(v6), String::new()),
        Err(_) => (2, 0, ip.to_string()),
    }
}

fn first_address(e: &Endpoint) -> &str {
    e.addresses.first().map(String::as_str).unwrap_or("")
}

/// The hostname an address gets (pod `hostname` when its `subdomain` is the Service).
pub(crate) fn pod_hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| host.to_string())
}

/// The `targetRef` of a pod.
pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

pub(crate) fn port_key_entry(
    port: &ServicePort,
    number: i32,
) -> (String, i32, String, Option<String>) {
    (
        port.name.clone().unwrap_or_default(),
        number,
        port.protocol
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "TCP".to_string()),
        port.app_protocol.clone(),
    )
}

/// The pod's port set, or `None` when the Service has ports and none resolves on the pod.
pub(crate) fn pod_port_key(service: &Service, resolved: &[(usize, i32)]) -> Option<PortKey> {
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    if !ports.is_empty() && resolved.is_empty() {
        return None;
    }
    Some(
        resolved
            .iter()
            .map(|(i, n)| port_key_entry(&ports[*i], *n))
            .collect(),
    )
}

fn slice_ports(key: &PortKey) -> Option<Vec<EndpointPort>> {
    if key.is_empty() {
        return None;
    }
    Some(
        key.iter()
            .map(|(name, port, protocol, app)| EndpointPort {
                name: Some(name.clone()),
                port: Some(*port),
                protocol: Some(protocol.clone()),
                app_protocol: app.clone(),
            })
            .collect(),
    )
}

/// The port set of an existing slice, with the API defaults applied.
pub(crate) fn slice_port_key(slice: &EndpointSlice) -> PortKey {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "TCP".to_string()),
                p.app_protocol.clone(),
            )
        })
        .collect()
}

/// The fields of a slice the controllers own, with API defaults applied, for comparison.
pub fn normalized_slice(s: &EndpointSlice) -> EndpointSlice {
    let empty_to_none = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    EndpointSlice {
        metadata: ObjectMeta {
            labels: s.metadata.labels.clone().filter(|l| !l.is_empty()),
            owner_references: s
                .metadata
                .owner_references
                .clone()
                .filter(|o| !o.is_empty()),
            ..ObjectMeta::default()
        },
        address_type: s.address_type.clone(),
        ports: slice_ports(&slice_port_key(s)),
        endpoints: s
            .endpoints
            .iter()
            .map(|e| Endpoint {
                hostname: empty_to_none(&e.hostname),
                node_name: empty_to_none(&e.node_name),
                zone: empty_to_none(&e.zone),
                ..e.clone()
            })
            .collect(),
    }
}

/// What every slice of one manager and owner looks like.
pub(crate) struct SliceTemplate {
    pub namespace: String,
    pub generate_name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
}

fn managed_by(s: &EndpointSlice) -> &str {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SLICE_MANAGED_BY_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

fn controller_uid(s: &EndpointSlice) -> Option<&str> {
    crate::ownership::controller_of(&s.metadata).map(|r| r.uid.as_str())
}

fn delete_action(s: &EndpointSlice) -> SliceAction {
    SliceAction::Delete {
        name: s.metadata.name.clone().unwrap_or_default(),
        uid: s.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Deletions of the slices managed by `manager` (and controlled by `owner_uid`, if given).
pub(crate) fn delete_all(
    slices: &[EndpointSlice],
    manager: &str,
    owner_uid: Option<&str>,
) -> Vec<SliceAction> {
    let mut doomed: Vec<&EndpointSlice> = slices
        .iter()
        .filter(|s| managed_by(s) == manager && s.metadata.deletion_timestamp.is_none())
        .filter(|s| owner_uid.is_none_or(|uid| controller_uid(s) == Some(uid)))
        .collect();
    doomed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    doomed.into_iter().map(delete_action).collect()
}

/// Orders actions: creations, then updates, then deletions (stable within each).
pub(crate) fn order(mut actions: Vec<SliceAction>) -> Vec<SliceAction> {
    actions.sort_by_key(|a| match a {
        SliceAction::Create(_) => 0,
        SliceAction::Update(_) => 1,
        SliceAction::Delete { .. } => 2,
    });
    actions
}

/// The existing slices of `manager` controlled by `owner_uid` (sorted by name), and
/// deletions of the other slices of `manager` (stale owners).
pub(crate) fn split_owned<'a>(
    slices: &'a [EndpointSlice],
    manager: &str,
    owner_uid: &str,
) -> (Vec<&'a EndpointSlice>, Vec<SliceAction>) {
    let mut owned = Vec::new();
    let mut stale = Vec::new();
    for s in slices
        .iter()
        .filter(|s| managed_by(s) == manager && s.metadata.deletion_timestamp.is_none())
    {
        if controller_uid(s) == Some(owner_uid) {
            owned.push(s);
        } else {
            stale.push(s);
        }
    }
    owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    stale.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    (owned, stale.into_iter().map(delete_action).collect())
}

struct Slot<'a> {
    existing: Option<&'a EndpointSlice>,
    key: PortKey,
    endpoints: Vec<Endpoint>,
}

/// Places the desired endpoints into slices and returns the writes, ordered.
///
/// Endpoints stay in the slice that holds them (updated in place); new ones fill slices of
/// their port set that have room, then slices whose port set is no longer wanted (rewritten
/// in place, e.g. after a targetPort change), then new slices of at most
/// [`MAX_ENDPOINTS_PER_SLICE`]. Slices left empty are deleted, except that with
/// `placeholder` one slice (with no ports and no endpoints) remains when nothing is desired.
pub(crate) fn assign(
    desired: Groups,
    existing: &[&EndpointSlice],
    template: &SliceTemplate,
    placeholder: bool,
) -> Vec<SliceAction> {
    let wanted: BTreeSet<PortKey> = desired.keys().cloned().collect();
    let mut remaining: BTreeMap<PortKey, BTreeMap<String, Endpoint>> = desired
        .into_iter()
        .map(|(k, eps)| {
            let by_ip = eps
                .into_iter()
                .map(|e| (first_address(&e).to_string(), e))
                .collect();
            (k, by_ip)
        })
        .collect();
    let mut slots: Vec<Slot> = Vec::new();
    for s in existing {
        let key = slice_port_key(s);
        let mut kept = Vec::new();
        if let Some(group) = remaining.get_mut(&key) {
            for e in &s.endpoints {
                if let Some(d) = group.remove(first_address(e)) {
                    kept.push(d);
                }
            }
        }
        slots.push(Slot {
            existing: Some(s),
            key,
            endpoints: kept,
        });
    }
    for (key, group) in remaining {
        let mut left: Vec<Endpoint> = group.into_values().collect();
        left.sort_by_key(|e| ip_order(first_address(e)));
        let mut left = left.into_iter().peekable();
        for slot in slots.iter_mut() {
            if left.peek().is_none() {
                break;
            }
            if slot.key != key && wanted.contains(&slot.key) {
                continue;
            }
            if slot.key != key {
                if !slot.endpoints.is_empty() {
                    continue;
                }
                slot.key = key.clone();
            }
            while slot.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                match left.next() {
                    Some(e) => slot.endpoints.push(e),
                    None => break,
                }
            }
        }
        let left: Vec<Endpoint> = left.collect();
        for chunk in left.chunks(MAX_ENDPOINTS_PER_SLICE) {
            slots.push(Slot {
                existing: None,
                key: key.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    let any = slots.iter().any(|s| !s.endpoints.is_empty());
    let mut kept_placeholder = false;
    let mut actions = Vec::new();
    for mut slot in slots {
        if slot.endpoints.is_empty() {
            if placeholder && !any && !kept_placeholder {
                kept_placeholder = true;
                slot.key = PortKey::new();
            } else {
                if let Some(s) = slot.existing {
                    actions.push(delete_action(s));
                }
                continue;
            }
        }
        slot.endpoints.sort_by_key(|e| ip_order(first_address(e)));
        let body = EndpointSlice {
            metadata: ObjectMeta::default(),
            address_type: "IPv4".to_string(),
            ports: slice_ports(&slot.key),
            endpoints: slot.endpoints,
        };
        match slot.existing {
            Some(s) => {
                let mut updated = s.clone();
                updated.metadata.labels = Some(template.labels.clone());
                updated.metadata.owner_references = Some(vec![template.owner.clone()]);
                updated.address_type = body.address_type;
                updated.ports = body.ports;
                updated.endpoints = body.endpoints;
                if normalized_slice(&updated) != normalized_slice(s) {
                    actions.push(SliceAction::Update(updated));
                }
            }
            None => actions.push(SliceAction::Create(EndpointSlice {
                metadata: new_meta(template),
                ..body
            })),
        }
    }
    if placeholder && !any && !kept_placeholder {
        actions.push(SliceAction::Create(EndpointSlice {
            metadata: new_meta(template),
            address_type: "IPv4".to_string(),
            ports: None,
            endpoints: Vec::new(),
        }));
    }
    order(actions)
}

fn new_meta(template: &SliceTemplate) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(template.namespace.clone()),
        generate_name: Some(template.generate_name.clone()),
        labels: Some(template.labels.clone()),
        owner_references: Some(vec![template.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The labels of the slices of a Service: its own, then the service-name and manager labels,
/// and the headless label when its clusterIP is `None`.
pub(crate) fn selector_slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.to_string(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        SLICE_MANAGED_BY_LABEL.to_string(),
        SLICE_CONTROLLER.to_string(),
    );
    labels
}

/// The endpoint of one pod for a Service.
pub(crate) fn pod_endpoint(pod: &Pod, service: &Service, ip: &str) -> Endpoint {
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = publish || is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish || (serving && !terminating);
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(pod, service),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(pod_reference(pod)),
        ..Endpoint::default()
    }
}

/// The slice writes of a Service with a selector.
pub(crate) fn plan_selector_slices(
    observed: &ObservedService,
    service: &Service,
    pods: &[&Pod],
    resolved: &Resolved,
) -> Vec<SliceAction> {
    let mut groups: Groups = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (pod, ports) in pods.iter().zip(&resolved.per_pod) {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            continue;
        }
        let Some(key) = pod_port_key(service, ports) else {
            continue;
        };
        if !seen.insert((key.clone(), ip.to_string())) {
            continue;
        }
        groups
            .entry(key)
            .or_default()
            .push(pod_endpoint(pod, service, ip));
    }
    let uid = service.metadata.uid.clone().unwrap_or_default();
    let template = SliceTemplate {
        namespace: observed.namespace.clone(),
        generate_name: format!("{}-", observed.name),
        labels: selector_slice_labels(service),
        owner: controller_ref("v1", "Service", &service.metadata),
    };
    let (owned, _stale) = split_owned(&observed.slices, SLICE_CONTROLLER, &uid);
    // Slices of an earlier Service of the same name are left to the garbage collector.
    assign(groups, &owned, &template, true)
}
