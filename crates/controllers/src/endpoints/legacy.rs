//! The core/v1 Endpoints object of a Service with a selector.

use super::ports::Resolved;
use super::slices::{
    PortKey, ip_order, pod_hostname, pod_ip, pod_port_key, pod_reference, should_be_in_endpoints,
};
use super::{
    ENDPOINTS_CONTROLLER, ENDPOINTS_MANAGED_BY_LABEL, EndpointsAction, HEADLESS_LABEL,
    OVER_CAPACITY_ANNOTATION, ObservedService, is_headless,
};
use crate::pods::is_ready;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Addresses an Endpoints object holds at most; beyond, it is truncated (ready addresses
/// kept first) and annotated `endpoints.kubernetes.io/over-capacity: truncated`.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;

type Addresses = BTreeMap<(u8, u128, String), EndpointAddress>;

/// The subsets of a Service's Endpoints: one per distinct resolved port set, ready addresses
/// in `addresses` and the others in `notReadyAddresses`, sorted by IP; and whether they were
/// truncated to [`MAX_ENDPOINTS_ADDRESSES`].
pub fn desired_subsets(service: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let resolved = super::ports::resolve_all(service, pods);
    subsets(service, pods, &resolved)
}

fn subsets(service: &Service, pods: &[&Pod], resolved: &Resolved) -> (Vec<EndpointSubset>, bool) {
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<PortKey, (Addresses, Addresses)> = BTreeMap::new();
    for (pod, ports) in pods.iter().zip(&resolved.per_pod) {
        if !should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let Some(key) = pod_port_key(service, ports) else {
            continue;
        };
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: pod_hostname(pod, service),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_reference(pod)),
        };
        let (ready, not_ready) = groups.entry(key).or_default();
        let order = ip_order(ip);
        if ready.contains_key(&order) || not_ready.contains_key(&order) {
            continue;
        }
        if publish || is_ready(pod) {
            ready.insert(order, address);
        } else {
            not_ready.insert(order, address);
        }
    }
    let total: usize = groups.values().map(|(r, n)| r.len() + n.len()).sum();
    let truncated = total > MAX_ENDPOINTS_ADDRESSES;
    let mut budget = MAX_ENDPOINTS_ADDRESSES;
    let mut kept: Vec<(PortKey, Vec<EndpointAddress>, Vec<EndpointAddress>)> = groups
        .into_iter()
        .map(|(k, (r, n))| (k, r.into_values().collect(), n.into_values().collect()))
        .collect();
    if truncated {
        for (_, ready, _) in kept.iter_mut() {
            ready.truncate(budget);
            budget -= ready.len();
        }
        for (_, _, not_ready) in kept.iter_mut() {
            not_ready.truncate(budget);
            budget -= not_ready.len();
        }
    }
    let subsets = kept
        .into_iter()
        .filter(|(_, r, n)| !r.is_empty() || !n.is_empty())
        .map(|(key, ready, not_ready)| EndpointSubset {
            addresses: Some(ready).filter(|a| !a.is_empty()),
            not_ready_addresses: Some(not_ready).filter(|a| !a.is_empty()),
            ports: Some(
                key.into_iter()
                    .map(|(name, port, protocol, app)| EndpointPort {
                        name: Some(name).filter(|n| !n.is_empty()),
                        port,
                        protocol: Some(protocol),
                        app_protocol: app,
                    })
                    .collect::<Vec<_>>(),
            )
            .filter(|p| !p.is_empty()),
        })
        .collect();
    (subsets, truncated)
}

/// Subsets with API defaults applied and empty lists as absent, for comparison.
fn normalized(subsets: Option<&Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    let address = |a: &EndpointAddress| EndpointAddress {
        hostname: a.hostname.clone().filter(|h| !h.is_empty()),
        node_name: a.node_name.clone().filter(|n| !n.is_empty()),
        ..a.clone()
    };
    subsets
        .into_iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: s
                .addresses
                .as_ref()
                .map(|v| v.iter().map(address).collect::<Vec<_>>())
                .filter(|v| !v.is_empty()),
            not_ready_addresses: s
                .not_ready_addresses
                .as_ref()
                .map(|v| v.iter().map(address).collect::<Vec<_>>())
                .filter(|v| !v.is_empty()),
            ports: s
                .ports
                .as_ref()
                .map(|ps| {
                    ps.iter()
                        .map(|p| EndpointPort {
                            name: p.name.clone().filter(|n| !n.is_empty()),
                            protocol: Some(
                                p.protocol
                                    .clone()
                                    .filter(|p| !p.is_empty())
                                    .unwrap_or_else(|| "TCP".to_string()),
                            ),
                            ..p.clone()
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|p| !p.is_empty()),
        })
        .collect()
}

/// The labels of a Service's Endpoints: its own, the manager label, and the headless label
/// when its clusterIP is `None`.
pub(crate) fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels.insert(
        ENDPOINTS_MANAGED_BY_LABEL.to_string(),
        ENDPOINTS_CONTROLLER.to_string(),
    );
    labels
}

/// The Endpoints write of a Service with a selector, if its Endpoints differ.
pub(crate) fn plan_endpoints(
    observed: &ObservedService,
    service: &Service,
    pods: &[&Pod],
    resolved: &Resolved,
) -> Option<EndpointsAction> {
    let (subsets, truncated) = subsets(service, pods, resolved);
    let labels = endpoints_labels(service);
    let mut annotations = observed
        .endpoints
        .as_ref()
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    if truncated {
        annotations.insert(
            OVER_CAPACITY_ANNOTATION.to_string(),
            "truncated".to_string(),
        );
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    let subsets = Some(subsets).filter(|s| !s.is_empty());
    let annotations = Some(annotations).filter(|a| !a.is_empty());
    match &observed.endpoints {
        Some(current) => {
            let same = normalized(current.subsets.as_ref()) == normalized(subsets.as_ref())
                && current.metadata.labels.clone().unwrap_or_default() == labels
                && current
                    .metadata
                    .annotations
                    .clone()
                    .filter(|a| !a.is_empty())
                    == annotations;
            if same {
                return None;
            }
            let mut updated = current.clone();
            updated.metadata.labels = Some(labels);
            updated.metadata.annotations = annotations;
            updated.subsets = subsets;
            Some(EndpointsAction::Update(updated))
        }
        None => Some(EndpointsAction::Create(Endpoints {
            metadata: ObjectMeta {
                name: Some(observed.name.clone()),
                namespace: Some(observed.namespace.clone()),
                labels: Some(labels),
                annotations,
                ..ObjectMeta::default()
            },
            subsets,
        })),
    }
}
