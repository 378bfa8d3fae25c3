//! What the proxy is told to serve: a plain value, computed elsewhere (by a pure function
//! of Services, EndpointSlices and Pods) and handed to [`crate::Proxy::apply`] whole.
//! Applying the same state twice changes nothing; applying a new one replaces every
//! service's endpoint set atomically (a new connection or request sees the old set or
//! the new one, never a mix).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Everything the proxy serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub services: BTreeMap<ServiceKey, ServiceState>,
}

/// `namespace/name` of a Service. Pod-IP forwarding uses synthetic keys whose `kind` is
/// [`ServiceKind::PodIp`] (they are not reported in metrics).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceKind {
    /// A Kubernetes Service.
    #[default]
    Service,
    /// `<pod IP>:<port>` forwarded into the pod itself.
    PodIp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balancing {
    #[default]
    RoundRobin,
    LeastConnections,
}

/// One Service as the proxy serves it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub kind: ServiceKind,
    pub ports: Vec<PortState>,
    /// `sessionAffinity: ClientIP` with its timeout; `None` for no affinity.
    pub session_affinity: Option<Duration>,
    pub balancing: Balancing,
}

/// How the proxy treats the bytes of a port's connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppProtocol {
    /// Look at the first bytes the client sends: an HTTP/1.x request line selects HTTP
    /// mode; anything else, or no bytes within a short wait (server-speaks-first
    /// protocols), selects TCP mode.
    #[default]
    Sniff,
    /// `appProtocol: http` (or a port name `http`/`http-*`): HTTP/1.1 mode at once.
    Http,
    /// `appProtocol: tcp` and any other protocol: bytes forwarded as they are.
    Tcp,
}

/// One port of a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortState {
    /// The port's name (may be empty for a single-port Service).
    pub name: String,
    /// Where the proxy listens for this port.
    pub frontends: Vec<Frontend>,
    pub app_protocol: AppProtocol,
    /// Every endpoint the slices list for this port, ready or not. The proxy sends new
    /// connections (and new HTTP requests) only to endpoints that are `ready`, falling back
    /// to `serving && terminating` ones when none is ready (as kube-proxy does).
    pub endpoints: Vec<Endpoint>,
    /// The Service's traffic split between endpoint groups (the
    /// `slipway.dev/traffic-split` annotation), if any.
    pub split: Option<TrafficSplit>,
}

/// How a port's traffic is shared between endpoint [groups](Endpoint::group) (canary
/// releases). See `docs/services.md`, "Traffic split".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficSplit {
    /// Group → weight (0-100). `Some`: each group that has candidate endpoints gets exactly
    /// its weight over the sum of the weights of such groups, of new TCP connections and of
    /// HTTP requests (HTTP connections are then not pinned); groups not listed get none.
    /// When every group with candidates has weight 0, the endpoints are balanced as without
    /// a split. `None`: no weights (balancing as without a split).
    pub weights: Option<BTreeMap<String, u32>>,
    /// HTTP mode only: requests matching a route go to its group first (first match wins).
    pub header_routes: Vec<HeaderRoute>,
}

impl TrafficSplit {
    /// The split weight of `group`: `None` without weights, 0 for a group not listed.
    pub fn weight_of(&self, group: &str) -> Option<u32> {
        self.weights
            .as_ref()
            .map(|w| w.get(group).copied().unwrap_or(0))
    }
}

/// A request whose header `header` (name case-insensitive) has exactly the value `value`
/// goes to the ready endpoints of `group`, or is routed normally when it has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderRoute {
    pub name: String,
    pub header: String,
    pub value: String,
    /// The `pod-template-hash` of the target group.
    pub group: String,
}

/// A listening address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frontend {
    /// On the host: ClusterIP:port, 127.0.0.1:nodePort, 127.0.0.1:port for a LoadBalancer,
    /// or a pod IP.
    Host(SocketAddrV4),
    /// Inside a pod's network namespace (so the pod reaches ClusterIP:port), identified by
    /// the pod's uid; the [`crate::Network`] knows how to bind there.
    InPod { pod_uid: String, addr: SocketAddrV4 },
}

/// One backend address of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod behind the address (`targetRef.uid`), when there is one.
    pub pod_uid: Option<String>,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Relative share of new connections/requests among the chosen endpoints (1 by default;
    /// 0 takes none). With a [`TrafficSplit`], the share among the endpoints of its group.
    pub weight: u32,
    /// The `pod-template-hash` label of the pod behind the address; empty when there is no
    /// pod or no label. [`TrafficSplit`] weights and routes name groups.
    pub group: String,
}

impl Default for Endpoint {
    /// A ready endpoint of weight 1 at `0.0.0.0:0`, no pod, no group.
    fn default() -> Endpoint {
        Endpoint {
            pod_uid: None,
            ip: Ipv4Addr::UNSPECIFIED,
            port: 0,
            ready: true,
            serving: true,
            terminating: false,
            weight: 1,
            group: String::new(),
        }
    }
}
