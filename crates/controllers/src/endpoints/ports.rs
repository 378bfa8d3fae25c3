//! Target port resolution (Kubernetes' `FindPort`) and the `PortNotFound` Warning.

use super::PORT_NOT_FOUND;
use crate::Event;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// How one Service port resolves on one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortResolution {
    /// The port number to use.
    Port(i32),
    /// The named targetPort is not a port of any of the pod's containers.
    Missing(String),
}

fn protocol(p: Option<&String>) -> &str {
    p.map(String::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP")
}

/// Resolves `port`'s targetPort on `pod`: a number is used as is (an unset targetPort means
/// `port`); a name is looked up among the ports of the pod's containers and of its
/// restartable init containers (sidecars), with the same protocol.
pub fn resolve_port(pod: &Pod, port: &ServicePort) -> PortResolution {
    let name = match &port.target_port {
        None => return PortResolution::Port(port.port),
        Some(IntOrString::Int(n)) if *n == 0 => return PortResolution::Port(port.port),
        Some(IntOrString::Int(n)) => return PortResolution::Port(*n),
        Some(IntOrString::String(name)) => name,
    };
    let want = protocol(port.protocol.as_ref());
    if let Some(spec) = &pod.spec {
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in spec.containers.iter().chain(sidecars) {
            for cp in c.ports.iter().flatten() {
                if cp.name.as_deref() == Some(name.as_str())
                    && protocol(cp.protocol.as_ref()) == want
                {
                    return PortResolution::Port(cp.container_port);
                }
            }
        }
    }
    PortResolution::Missing(name.clone())
}

/// The resolved ports of every pod, and the Warnings for the unresolvable ones.
pub(crate) struct Resolved {
    /// Per pod (same order as given): (index of the Service port, resolved number).
    pub per_pod: Vec<Vec<(usize, i32)>>,
    /// One `PortNotFound` Warning per pod and unresolvable port, sorted, de-duplicated.
    pub events: Vec<Event>,
}

/// The `PortNotFound` message for `pod` missing the named port `target` of `port`.
pub fn port_not_found_message(pod: &Pod, target: &str, port: &ServicePort) -> String {
    let which = match port.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("port \"{n}\""),
        None => format!("port {}", port.port),
    };
    format!(
        "pod {}/{} has no container port named \"{target}\" (targetPort of {which})",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or(""),
    )
}

pub(crate) fn resolve_all(service: &Service, pods: &[&Pod]) -> Resolved {
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let mut per_pod = Vec::with_capacity(pods.len());
    let mut messages = std::collections::BTreeSet::new();
    for pod in pods {
        let mut resolved = Vec::with_capacity(ports.len());
        for (i, port) in ports.iter().enumerate() {
            match resolve_port(pod, port) {
                PortResolution::Port(n) => resolved.push((i, n)),
                PortResolution::Missing(target) => {
                    // Only pods that would be endpoints deserve a warning.
                    if super::slices::pod_ip(pod).is_some() {
                        messages.insert(port_not_found_message(pod, &target, port));
                    }
                }
            }
        }
        per_pod.push(resolved);
    }
    Resolved {
        per_pod,
        events: messages
            .into_iter()
            .map(|m| Event::warning(PORT_NOT_FOUND, m))
            .collect(),
    }
}
