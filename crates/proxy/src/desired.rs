//! From API objects to what the proxy serves: a pure function, no I/O, no clock.
//!
//! Inputs are Services, EndpointSlices and Pods as the API returns them, and the network
//! metadata the node agent writes for each pod it runs (which container serves which
//! port). The output is a [`DesiredState`]:
//!
//! - each Service port of a Service with a ClusterIP listens on `ClusterIP:port` on the
//!   host, on `127.0.0.1:nodePort` for NodePort and LoadBalancer Services, on
//!   `127.0.0.1:port` for LoadBalancer Services (as k3s's built-in load balancer), and
//!   on `ClusterIP:port` inside the network namespace of every isolated running container
//!   (so pods reach Services);
//! - its endpoints are the union of the EndpointSlices labelled with the Service's name,
//!   whatever controller manages them (the endpoint-slice controller, the mirroring of
//!   manual Endpoints);
//! - every running pod of the process runtime gets a synthetic [`ServiceKind::PodIp`]
//!   entry: `<pod IP>:<port>` on the host forwards into the pod, for each port the agent
//!   says it serves;
//! - each endpoint's group is the `pod-template-hash` label of its pod (looked up by
//!   `targetRef.uid`), and the Service's `slipway.dev/traffic-split` annotation
//!   ([`TRAFFIC_SPLIT_ANNOTATION`]) becomes every port's [`TrafficSplit`]. An annotation
//!   that does not parse (see [`parse_traffic_split`]) is ignored as a whole: the Service
//!   is served as without it (this function being pure, reporting it is the caller's).

use crate::model::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

/// The annotation that picks the load-balancing algorithm of a Service:
/// `round-robin` (default) or `least-connections`.
pub const BALANCING_ANNOTATION: &str = "slipway.dev/load-balancing";

/// The annotation that splits a Service's traffic between pod-template-hash groups, set by
/// the Rollout controller: a JSON object
/// `{"weights": {"<hash>": <0-100>, ..}, "headerRoutes": [{"name": "..", "header": "..",
/// "value": "..", "podHash": "<hash>"}, ..]}`, both members optional.
pub const TRAFFIC_SPLIT_ANNOTATION: &str = "slipway.dev/traffic-split";

/// The pod label that names an endpoint's group.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY_SECONDS: u64 = 10_800;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the node agent records of a pod's network in `<data_dir>/pods/<uid>/network.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNetwork {
    #[serde(default, rename = "podIP")]
    pub pod_ip: String,
    #[serde(default)]
    pub ports: Vec<ServedPort>,
}

/// A port a container of the pod listens on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ServedPort {
    pub port: u16,
    pub container: String,
}

impl PodNetwork {
    /// Parses `network.json`; `None` when it is not valid.
    pub fn parse(text: &str) -> Option<PodNetwork> {
        serde_json::from_str(text).ok()
    }

    /// The container that serves `port`; the only container when the pod has one.
    pub fn container_for(&self, port: u16) -> Option<&str> {
        if let Some(p) = self.ports.iter().find(|p| p.port == port) {
            return Some(&p.container);
        }
        let mut names = self.ports.iter().map(|p| p.container.as_str());
        let first = names.next()?;
        names.all(|n| n == first).then_some(first)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SplitSpec {
    #[serde(default)]
    weights: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    header_routes: Option<Vec<RouteSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteSpec {
    #[serde(default)]
    name: String,
    header: String,
    value: String,
    pod_hash: String,
}

/// Parses the value of [`TRAFFIC_SPLIT_ANNOTATION`]. `Ok(None)` when it names neither
/// weights nor routes; `Err` (with the reason) when it is not a JSON object of that shape,
/// a weight is not an integer in 0-100, or a route's header is not a valid header name or
/// its value not a valid header value.
pub fn parse_traffic_split(text: &str) -> Result<Option<TrafficSplit>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let spec = SplitSpec::deserialize(value).map_err(|e| e.to_string())?;
    let weights = match spec.weights {
        None => None,
        Some(w) => Some(
            w.into_iter()
                .map(|(group, weight)| match u32::try_from(weight) {
                    Ok(v) if v <= 100 => Ok((group, v)),
                    _ => Err(format!("weight {weight} of {group:?} is not in 0-100")),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
        ),
    };
    let mut header_routes = Vec::new();
    for r in spec.header_routes.unwrap_or_default() {
        if http::HeaderName::from_bytes(r.header.as_bytes()).is_err() {
            return Err(format!(
                "route {:?}: bad header name {:?}",
                r.name, r.header
            ));
        }
        if http::HeaderValue::from_str(&r.value).is_err() {
            return Err(format!(
                "route {:?}: bad header value {:?}",
                r.name, r.value
            ));
        }
        header_routes.push(HeaderRoute {
            name: r.name,
            header: r.header,
            value: r.value,
            group: r.pod_hash,
        });
    }
    if weights.is_none() && header_routes.is_empty() {
        return Ok(None);
    }
    Ok(Some(TrafficSplit {
        weights,
        header_routes,
    }))
}

/// The API objects and agent metadata the state is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub services: &'a [Arc<Value>],
    pub slices: &'a [Arc<Value>],
    pub pods: &'a [Arc<Value>],
    /// Pod uid → what its `network.json` says.
    pub pod_networks: &'a HashMap<String, PodNetwork>,
}

/// The network namespace of one container run, as [`Frontend::InPod`] names it:
/// `<pod uid>/<container>/<run>`, taken from the container's `slipway://` containerID.
/// A new run (a restart) has a new namespace, hence a new key.
pub fn netns_key(container_id: &str) -> Option<&str> {
    let rest = container_id.strip_prefix("slipway://")?;
    (rest.split('/').count() == 3).then_some(rest)
}

/// Computes what the proxy serves.
pub fn desired_state(inputs: &Inputs) -> DesiredState {
    let mut slices_by_service: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for slice in inputs.slices {
        let Some(service) = slice
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .and_then(Value::as_str)
        else {
            continue;
        };
        slices_by_service
            .entry((str_at(slice, "/metadata/namespace"), service))
            .or_default()
            .push(slice);
    }
    let pod_netns = running_netns(inputs.pods);
    let groups: HashMap<&str, &str> = inputs
        .pods
        .iter()
        .filter_map(|p| Some((meta_str(p, "uid")?, pod_group(p)?)))
        .collect();

    let mut services = BTreeMap::new();
    for svc in inputs.services {
        let namespace = str_at(svc, "/metadata/namespace");
        let name = str_at(svc, "/metadata/name");
        let slices = slices_by_service
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if let Some(state) = service_state(svc, slices, &pod_netns, &groups) {
            services.insert(
                ServiceKey {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
                state,
            );
        }
    }
    for pod in inputs.pods {
        if let Some((key, state)) = pod_ip_state(pod, inputs.pod_networks) {
            services.insert(key, state);
        }
    }
    DesiredState { services }
}

/// The isolated pods with a running container, by uid: each has one network namespace
/// (its containers share it), where the in-pod frontends are bound.
fn running_netns(pods: &[Arc<Value>]) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        if str_at(pod, "/status/phase") != "Running" || !is_isolated(pod) {
            continue;
        }
        let running = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| {
                s.pointer("/state/running").is_some()
                    && s.get("containerID")
                        .and_then(Value::as_str)
                        .and_then(netns_key)
                        .is_some()
            });
        if let Some(uid) = meta_str(pod, "uid").filter(|_| running) {
            out.push(uid.to_string());
        }
    }
    out
}

/// Pods of the process runtime carry `slipway.dev/Isolated=False` when they run as plain
/// processes on the host's network (which already reaches the host's listeners).
fn is_isolated(pod: &Value) -> bool {
    let conditions = pod.pointer("/status/conditions").and_then(Value::as_array);
    !conditions.into_iter().flatten().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("slipway.dev/Isolated")
            && c.get("status").and_then(Value::as_str) == Some("False")
    })
}

/// The `pod-template-hash` label of a pod.
fn pod_group(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/labels")?
        .get(POD_TEMPLATE_HASH_LABEL)?
        .as_str()
}

fn service_state(
    svc: &Value,
    slices: &[&Value],
    pod_netns: &[String],
    groups: &HashMap<&str, &str>,
) -> Option<ServiceState> {
    let spec = svc.get("spec")?;
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return None;
    }
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(|ip| ip.is_loopback());
    let session_affinity =
        (spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP")).then(|| {
            let seconds = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS);
            Duration::from_secs(seconds)
        });
    let annotations = svc.pointer("/metadata/annotations");
    let balancing = match annotations
        .and_then(|a| a.get(BALANCING_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some("least-connections") => Balancing::LeastConnections,
        _ => Balancing::RoundRobin,
    };
    // Invalid: ignored as a whole.
    let split = annotations
        .and_then(|a| a.get(TRAFFIC_SPLIT_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|t| parse_traffic_split(t).ok().flatten());
    let ports = spec.get("ports").and_then(Value::as_array);
    let mut out = Vec::new();
    for port in ports.into_iter().flatten() {
        if port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            != "TCP"
        {
            continue;
        }
        let Some(number) = port.get("port").and_then(Value::as_u64).and_then(as_port) else {
            continue;
        };
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        let mut frontends = Vec::new();
        if let Some(ip) = cluster_ip {
            let addr = SocketAddrV4::new(ip, number);
            frontends.push(Frontend::Host(addr));
            frontends.extend(pod_netns.iter().map(|key| Frontend::InPod {
                pod_uid: key.clone(),
                addr,
            }));
            if matches!(service_type, "NodePort" | "LoadBalancer")
                && let Some(node_port) = port
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .and_then(as_port)
            {
                frontends.push(Frontend::Host(SocketAddrV4::new(
                    Ipv4Addr::LOCALHOST,
                    node_port,
                )));
            }
            if service_type == "LoadBalancer" {
                frontends.push(Frontend::Host(SocketAddrV4::new(
                    Ipv4Addr::LOCALHOST,
                    number,
                )));
            }
        }
        out.push(PortState {
            name: name.to_string(),
            frontends,
            app_protocol: app_protocol(port, name),
            endpoints: endpoints_for_port(slices, name, groups),
            split: split.clone(),
        });
    }
    Some(ServiceState {
        kind: ServiceKind::Service,
        ports: out,
        session_affinity,
        balancing,
    })
}

/// `appProtocol` first, then the port name (`http`, `http-*`), else sniffing.
fn app_protocol(port: &Value, name: &str) -> AppProtocol {
    match port.get("appProtocol").and_then(Value::as_str) {
        Some(p) if p.eq_ignore_ascii_case("http") => return AppProtocol::Http,
        Some(_) => return AppProtocol::Tcp,
        None => {}
    }
    if name == "http" || name.starts_with("http-") {
        AppProtocol::Http
    } else {
        AppProtocol::Sniff
    }
}

/// Every endpoint the slices give for the Service port called `port_name`.
fn endpoints_for_port(
    slices: &[&Value],
    port_name: &str,
    groups: &HashMap<&str, &str>,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.get("addressType").and_then(Value::as_str) != Some("IPv4") {
            continue;
        }
        let ports = slice.get("ports").and_then(Value::as_array);
        let Some(number) = ports.into_iter().flatten().find_map(|p| {
            (p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                .then(|| p.get("port").and_then(Value::as_u64).and_then(as_port))
                .flatten()
        }) else {
            continue;
        };
        let endpoints = slice.get("endpoints").and_then(Value::as_array);
        for ep in endpoints.into_iter().flatten() {
            let Some(ip) = ep
                .pointer("/addresses/0")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            // Unset conditions mean "ready" (and so serving), as kube-proxy reads them.
            let condition = |name: &str, default: bool| {
                ep.pointer(&format!("/conditions/{name}"))
                    .and_then(Value::as_bool)
                    .unwrap_or(default)
            };
            let ready = condition("ready", true);
            let pod_uid = (ep.pointer("/targetRef/kind").and_then(Value::as_str) == Some("Pod"))
                .then(|| ep.pointer("/targetRef/uid").and_then(Value::as_str))
                .flatten()
                .filter(|u| !u.is_empty())
                .map(str::to_string);
            let group = pod_uid
                .as_deref()
                .and_then(|u| groups.get(u))
                .map_or_else(String::new, |g| (*g).to_string());
            out.push(Endpoint {
                group,
                pod_uid,
                ip,
                port: number,
                ready,
                serving: condition("serving", ready),
                terminating: condition("terminating", false),
                weight: 1,
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    out
}

/// `<pod IP>:<port>` forwarding for a running pod whose agent wrote its network metadata.
fn pod_ip_state(
    pod: &Value,
    networks: &HashMap<String, PodNetwork>,
) -> Option<(ServiceKey, ServiceState)> {
    if meta_str(pod, "deletionTimestamp").is_some() || str_at(pod, "/status/phase") != "Running" {
        return None;
    }
    let uid = str_at(pod, "/metadata/uid");
    let network = networks.get(uid)?;
    let ip = str_at(pod, "/status/podIP").parse::<Ipv4Addr>().ok()?;
    if !ip.is_loopback() {
        return None;
    }
    let mut numbers: Vec<u16> = network
        .ports
        .iter()
        .map(|p| p.port)
        .filter(|p| *p != 0)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let ports = numbers
        .into_iter()
        .map(|port| PortState {
            name: port.to_string(),
            frontends: vec![Frontend::Host(SocketAddrV4::new(ip, port))],
            app_protocol: AppProtocol::Tcp,
            endpoints: vec![Endpoint {
                pod_uid: Some(uid.to_string()),
                ip,
                port,
                ready: true,
                serving: true,
                terminating: false,
                weight: 1,
                group: pod_group(pod).unwrap_or_default().to_string(),
            }],
            split: None,
        })
        .collect::<Vec<_>>();
    if ports.is_empty() {
        return None;
    }
    Some((
        ServiceKey {
            namespace: format!("pod:{}", str_at(pod, "/metadata/namespace")),
            name: str_at(pod, "/metadata/name").to_string(),
        },
        ServiceState {
            kind: ServiceKind::PodIp,
            ports,
            session_affinity: None,
            balancing: Balancing::RoundRobin,
        },
    ))
}

fn as_port(n: u64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

#[cfg(test)]
mod tests;
