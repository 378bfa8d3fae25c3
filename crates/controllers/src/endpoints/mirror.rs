//! Mirroring user-written Endpoints of a Service without selector into EndpointSlices.
//!
//! Mirrored slices are controlled by the Endpoints object (as in Kubernetes), so the garbage
//! collector removes them with it. Only IPv4 addresses are mirrored (Slipway's pods and
//! Services are IPv4); an Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"`
//! is not mirrored.

use super::slices::{PortKey, SliceTemplate, assign, ip_order, split_owned};
use super::{
    MIRRORING_CONTROLLER, ObservedService, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL,
    SLICE_MANAGED_BY_LABEL, SliceAction,
};
use crate::ownership::controller_ref;
use k8s_openapi::api::core::v1::{EndpointAddress, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
use std::collections::{BTreeMap, BTreeSet};

fn mirrored_endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: None,
        }),
        hostname: a.hostname.clone().filter(|h| !h.is_empty()),
        node_name: a.node_name.clone().filter(|n| !n.is_empty()),
        target_ref: a.target_ref.clone(),
        ..Endpoint::default()
    }
}

/// The mirrored slice writes of a Service without selector.
pub(crate) fn plan_mirror(observed: &ObservedService, _service: &Service) -> Vec<SliceAction> {
    let endpoints = observed.endpoints.as_ref().filter(|e| {
        e.metadata.deletion_timestamp.is_none()
            && e.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SKIP_MIRROR_LABEL))
                .is_none_or(|v| v != "true")
    });
    let Some(ep) = endpoints else {
        return super::slices::delete_all(&observed.slices, MIRRORING_CONTROLLER, None);
    };
    let uid = ep.metadata.uid.clone().unwrap_or_default();
    let (owned, mut stale) = split_owned(&observed.slices, MIRRORING_CONTROLLER, &uid);
    let mut groups: BTreeMap<PortKey, Vec<Endpoint>> = BTreeMap::new();
    let mut seen: BTreeSet<(PortKey, String)> = BTreeSet::new();
    for subset in ep.subsets.iter().flatten() {
        let key: PortKey = subset
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "TCP".to_string()),
                    p.app_protocol.clone(),
                )
            })
            .collect();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (a, is_ready) in ready.chain(not_ready) {
            if a.ip.parse::<std::net::Ipv4Addr>().is_err()
                || !seen.insert((key.clone(), a.ip.clone()))
            {
                continue;
            }
            groups
                .entry(key.clone())
                .or_default()
                .push(mirrored_endpoint(a, is_ready));
        }
    }
    for eps in groups.values_mut() {
        eps.sort_by_key(|e| ip_order(e.addresses.first().map(String::as_str).unwrap_or("")));
    }
    let mut labels = ep.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_string(), observed.name.clone());
    labels.insert(
        SLICE_MANAGED_BY_LABEL.to_string(),
        MIRRORING_CONTROLLER.to_string(),
    );
    let template = SliceTemplate {
        namespace: observed.namespace.clone(),
        generate_name: format!("{}-", observed.name),
        labels,
        owner: controller_ref("v1", "Endpoints", &ep.metadata),
    };
    let mut actions = assign(groups, &owned, &template, false);
    actions.append(&mut stale);
    actions
}
