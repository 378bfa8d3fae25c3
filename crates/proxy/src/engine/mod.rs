//! The data path: listeners for frontends, endpoint choice, TCP and HTTP forwarding,
//! draining, metrics and the control socket.
//!
//! [`Proxy::apply`] turns a [`DesiredState`] into listeners and per-port endpoint sets; an
//! endpoint set is an immutable snapshot swapped whole, so a new connection or request sees
//! the old set or the new one. Counters are atomics; the hot path takes no global lock.

mod control;
mod http;
mod metrics;
mod state;
mod tcp;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::model::{DesiredState, Endpoint, Frontend, ServiceKey};
use state::{EndpointRt, EpSlot, Groups, PortRt, PortSnap};

/// How the proxy reaches endpoints and binds frontends (the process runtime's impl joins
/// pod network namespaces; tests use plain loopback).
pub trait Network: Send + Sync + 'static {
    /// Opens a TCP connection to `endpoint` (`ip:port`).
    fn dial(&self, endpoint: &Endpoint) -> BoxFuture<'static, io::Result<TcpStream>>;
    /// Binds a listener for `frontend`.
    fn listen(&self, frontend: &Frontend) -> BoxFuture<'static, io::Result<TcpListener>>;
}

/// The plain-loopback [`Network`]: dials `ip:port`, binds the Host address; InPod
/// frontends are an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostNetwork;

impl Network for HostNetwork {
    fn dial(&self, endpoint: &Endpoint) -> BoxFuture<'static, io::Result<TcpStream>> {
        let addr = std::net::SocketAddrV4::new(endpoint.ip, endpoint.port);
        Box::pin(TcpStream::connect(addr))
    }

    fn listen(&self, frontend: &Frontend) -> BoxFuture<'static, io::Result<TcpListener>> {
        match frontend {
            Frontend::Host(addr) => {
                let addr = *addr;
                Box::pin(TcpListener::bind(addr))
            }
            Frontend::InPod { pod_uid, .. } => {
                let msg = format!("HostNetwork cannot bind inside pod {pod_uid}");
                Box::pin(async move { Err(io::Error::new(io::ErrorKind::Unsupported, msg)) })
            }
        }
    }
}

/// A frontend that could not be bound by [`Proxy::apply`]; the next apply retries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenFailure {
    pub service: ServiceKey,
    pub port_name: String,
    pub frontend: Frontend,
    pub error: String,
}

/// What [`Proxy::drain`] left open when it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainOutcome {
    /// TCP-mode (and upgraded) connections to the pod still open.
    pub open_connections: usize,
    /// HTTP requests to the pod whose response had not completed.
    pub in_flight_requests: usize,
    /// Whether the timeout expired with something still open.
    pub timed_out: bool,
}

type PortId = (ServiceKey, String);

/// How long [`Network::listen`] may take before the frontend counts as failed.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

struct ListenerEntry {
    task: JoinHandle<()>,
    target: Arc<RwLock<Arc<PortRt>>>,
}

/// Shared by the [`Proxy`] handles and every task of the data path.
pub(crate) struct Inner {
    network: Arc<dyn Network>,
    apply_lock: tokio::sync::Mutex<()>,
    ports: RwLock<BTreeMap<PortId, Arc<PortRt>>>,
    listeners: Mutex<HashMap<Frontend, ListenerEntry>>,
    /// Drained pod uids. Lock order: `drained`, then `by_uid`.
    drained: Mutex<HashSet<String>>,
    /// Every endpoint object of a pod still alive (in a port, or carrying traffic).
    by_uid: Mutex<HashMap<String, Vec<Weak<EndpointRt>>>>,
    notify: Arc<Notify>,
}

/// Aborts the accept loops when the last [`Proxy`] handle goes away.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        for (_, l) in self.inner.listeners.lock().drain() {
            l.task.abort();
        }
    }
}

/// The service proxy's data path. Cheap to clone; the last clone dropped stops listening
/// (accepted connections continue).
#[derive(Clone)]
pub struct Proxy {
    handle: Arc<Handle>,
}

impl Proxy {
    pub fn new(network: Arc<dyn Network>) -> Proxy {
        Proxy {
            handle: Arc::new(Handle {
                inner: Arc::new(Inner {
                    network,
                    apply_lock: tokio::sync::Mutex::new(()),
                    ports: RwLock::new(BTreeMap::new()),
                    listeners: Mutex::new(HashMap::new()),
                    drained: Mutex::new(HashSet::new()),
                    by_uid: Mutex::new(HashMap::new()),
                    notify: Arc::new(Notify::new()),
                }),
            }),
        }
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Makes the proxy serve `state`: opens listeners for new frontends, closes listeners
    /// of frontends that are gone before returning (connections already accepted
    /// continue), swaps every port's endpoint set atomically. Applying the same state again
    /// re-binds nothing. Returns the frontends that could not be bound; the next apply
    /// retries them. Applies are serialized.
    pub async fn apply(&self, state: DesiredState) -> Vec<ListenFailure> {
        let inner = self.inner();
        let _serial = inner.apply_lock.lock().await;
        let mut failures = Vec::new();
        let desired = self.apply_endpoints(&state, &mut failures);

        // Listeners of frontends that are gone: abort and wait until the socket is closed.
        let mut closing = Vec::new();
        {
            let mut ls = inner.listeners.lock();
            let gone: Vec<Frontend> = ls
                .keys()
                .filter(|f| !desired.contains_key(*f))
                .cloned()
                .collect();
            for f in gone {
                if let Some(l) = ls.remove(&f) {
                    l.task.abort();
                    closing.push(l.task);
                }
            }
            for (f, l) in ls.iter() {
                if let Some((_, port)) = desired.get(f) {
                    let mut t = l.target.write();
                    if !Arc::ptr_eq(&t, port) {
                        *t = port.clone();
                    }
                }
            }
        }
        for task in closing {
            let _ = task.await;
        }

        // New frontends: bind concurrently.
        let to_bind: Vec<(Frontend, PortId, Arc<PortRt>)> = {
            let ls = inner.listeners.lock();
            desired
                .iter()
                .filter(|(f, _)| !ls.contains_key(*f))
                .map(|(f, (id, port))| (f.clone(), id.clone(), port.clone()))
                .collect()
        };
        let binds = futures::future::join_all(
            to_bind
                .iter()
                .map(|(f, _, _)| tokio::time::timeout(LISTEN_TIMEOUT, inner.network.listen(f)))
                .collect::<Vec<_>>(),
        )
        .await;
        let mut ls = inner.listeners.lock();
        for ((frontend, id, port), result) in to_bind.into_iter().zip(binds) {
            match result {
                Ok(Ok(listener)) => {
                    let target = Arc::new(RwLock::new(port));
                    let task =
                        tokio::spawn(tcp::accept_loop(inner.clone(), listener, target.clone()));
                    ls.insert(frontend, ListenerEntry { task, target });
                }
                Ok(Err(e)) => failures.push(ListenFailure {
                    service: id.0,
                    port_name: id.1,
                    frontend,
                    error: e.to_string(),
                }),
                Err(_) => failures.push(ListenFailure {
                    service: id.0,
                    port_name: id.1,
                    frontend,
                    error: format!("listen timed out after {LISTEN_TIMEOUT:?}"),
                }),
            }
        }
        failures
    }

    /// Builds and publishes every port's endpoint snapshot; returns the wanted frontends.
    fn apply_endpoints(
        &self,
        state: &DesiredState,
        failures: &mut Vec<ListenFailure>,
    ) -> HashMap<Frontend, (PortId, Arc<PortRt>)> {
        let inner = self.inner();
        let mut drained = inner.drained.lock();
        let old_ports = inner.ports.read().clone();
        let mut new_ports: BTreeMap<PortId, Arc<PortRt>> = BTreeMap::new();
        let mut frontends: HashMap<Frontend, (PortId, Arc<PortRt>)> = HashMap::new();
        // The endpoint sets as they were, before ports that stay get their new snapshot.
        let old_snaps: Vec<Arc<PortSnap>> = old_ports.values().map(|p| p.snapshot()).collect();
        let mut kept: HashSet<usize> = HashSet::new();
        let mut present_uids: HashSet<&str> = HashSet::new();
        for (key, svc) in &state.services {
            for p in &svc.ports {
                let id: PortId = (key.clone(), p.name.clone());
                if new_ports.contains_key(&id) {
                    tracing::warn!(service = ?key, port = %p.name, "duplicate port name ignored");
                    continue;
                }
                let port = match old_ports.get(&id) {
                    Some(port) if port.kind == svc.kind => port.clone(),
                    _ => {
                        let label = if p.name.is_empty() {
                            p.frontends.first().map_or_else(String::new, |f| match f {
                                Frontend::Host(a) | Frontend::InPod { addr: a, .. } => {
                                    a.port().to_string()
                                }
                            })
                        } else {
                            p.name.clone()
                        };
                        Arc::new(PortRt::new(key.clone(), p.name.clone(), label, svc.kind))
                    }
                };
                let mut slots = Vec::with_capacity(p.endpoints.len());
                let mut groups = Groups::default();
                for e in &p.endpoints {
                    let rt = port.find_endpoint(e).unwrap_or_else(|| {
                        let d = e.pod_uid.as_ref().is_some_and(|u| drained.contains(u));
                        Arc::new(EndpointRt::new(e, inner.notify.clone(), d))
                    });
                    kept.insert(Arc::as_ptr(&rt) as usize);
                    if let Some(uid) = &e.pod_uid {
                        present_uids.insert(uid);
                    }
                    slots.push(EpSlot {
                        rt,
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                        weight: e.weight,
                        group: groups.index(&e.group),
                    });
                }
                for f in &p.frontends {
                    if frontends.contains_key(f) {
                        failures.push(ListenFailure {
                            service: key.clone(),
                            port_name: p.name.clone(),
                            frontend: f.clone(),
                            error: "frontend already used by another service port".into(),
                        });
                    } else {
                        frontends.insert(f.clone(), (id.clone(), port.clone()));
                    }
                }
                port.set_snapshot(Arc::new(PortSnap::new(
                    p.app_protocol,
                    svc.balancing,
                    svc.session_affinity,
                    p.frontends.clone(),
                    slots,
                    groups,
                    p.split.as_ref(),
                )));
                new_ports.insert(id, port);
            }
        }
        // Endpoints no longer in their port: close idle connections, stop pooling.
        for snap in &old_snaps {
            for s in &snap.endpoints {
                if !kept.contains(&(Arc::as_ptr(&s.rt) as usize)) {
                    s.rt.retire();
                }
            }
        }
        drained.retain(|u| present_uids.contains(u.as_str()));
        let mut by_uid = inner.by_uid.lock();
        by_uid.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        for port in new_ports.values() {
            for s in &port.snapshot().endpoints {
                if let Some(uid) = &s.rt.ep.pod_uid {
                    let list = by_uid.entry(uid.clone()).or_default();
                    if !list
                        .iter()
                        .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&s.rt)))
                    {
                        list.push(Arc::downgrade(&s.rt));
                    }
                }
            }
        }
        *inner.ports.write() = new_ports;
        frontends
    }

    /// Takes every endpoint of pod `pod_uid` out of rotation at once (no new connection or
    /// request; pinned client connections move at their next request; idle pooled
    /// connections closed), then waits until the proxy carries no connection or request to
    /// it any more, or `timeout`. The pod stays drained until an apply no longer lists it.
    pub async fn drain(&self, pod_uid: &str, timeout: Duration) -> DrainOutcome {
        let inner = self.inner();
        let deadline = tokio::time::Instant::now() + timeout;
        let endpoints: Vec<Arc<EndpointRt>> = {
            let mut drained = inner.drained.lock();
            drained.insert(pod_uid.to_owned());
            let by_uid = inner.by_uid.lock();
            let list: Vec<_> = by_uid
                .get(pod_uid)
                .map(|v| v.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            for ep in &list {
                ep.drained.store(true, Ordering::SeqCst);
                ep.clear_pool();
            }
            list
        };
        let count = || {
            endpoints.iter().fold((0, 0), |(c, r), ep| {
                (
                    c + ep.active.load(Ordering::SeqCst),
                    r + ep.inflight.load(Ordering::SeqCst),
                )
            })
        };
        loop {
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (c, r) = count();
            if c == 0 && r == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        // Connections that finished their last response while we waited.
        for ep in &endpoints {
            ep.clear_pool();
        }
        let (open_connections, in_flight_requests) = count();
        DrainOutcome {
            open_connections,
            in_flight_requests,
            timed_out: open_connections + in_flight_requests > 0,
        }
    }

    /// Prometheus text exposition of the proxy's metrics (PodIp services excluded).
    pub fn metrics_text(&self) -> String {
        let ports: Vec<Arc<PortRt>> = self.inner().ports.read().values().cloned().collect();
        metrics::render(&ports)
    }

    /// Serves the control API on a Unix socket at `path` (a stale socket file is removed
    /// first; the new one gets mode 0600) until the returned future is dropped:
    /// `GET /metrics`, `POST /v1/drain?uid=..&timeoutSeconds=..`, `GET /healthz`,
    /// `GET /v1/state`.
    pub async fn serve_control(&self, path: &Path) -> io::Result<()> {
        control::serve(self.clone(), path).await
    }

    /// A JSON summary of services, frontends and endpoint counts (for debugging).
    pub fn state_json(&self) -> serde_json::Value {
        let inner = self.inner();
        let ports: Vec<Arc<PortRt>> = inner.ports.read().values().cloned().collect();
        let listening: HashSet<Frontend> = inner.listeners.lock().keys().cloned().collect();
        let mut services: BTreeMap<ServiceKey, Vec<serde_json::Value>> = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for port in &ports {
            let snap = port.snapshot();
            let [total, ready, serving, terminating, drained, candidates] = snap.counts();
            let frontends: Vec<_> = snap
                .frontends
                .iter()
                .map(|f| {
                    let (addr, pod) = match f {
                        Frontend::Host(a) => (a.to_string(), None),
                        Frontend::InPod { pod_uid, addr } => (addr.to_string(), Some(pod_uid)),
                    };
                    serde_json::json!({
                        "address": addr,
                        "podUid": pod,
                        "listening": listening.contains(f),
                    })
                })
                .collect();
            let (active, inflight) = snap.endpoints.iter().fold((0, 0), |(a, r), s| {
                (
                    a + s.rt.active.load(Ordering::Relaxed),
                    r + s.rt.inflight.load(Ordering::Relaxed),
                )
            });
            let idle: usize = snap.endpoints.iter().map(|s| s.rt.idle_connections()).sum();
            kinds.insert(port.key.clone(), format!("{:?}", port.kind));
            services
                .entry(port.key.clone())
                .or_default()
                .push(serde_json::json!({
                    "name": port.name,
                    "appProtocol": format!("{:?}", snap.app_protocol),
                    "balancing": format!("{:?}", snap.balancing),
                    "sessionAffinitySeconds": snap.affinity.map(|d| d.as_secs()),
                    "trafficSplit": snap.split.as_ref().map(|t| serde_json::json!({
                        "weights": t.weights,
                        "headerRoutes": t.header_routes.iter().map(|r| serde_json::json!({
                            "name": r.name, "header": r.header, "value": r.value,
                            "podHash": r.group,
                        })).collect::<Vec<_>>(),
                    })),
                    "frontends": frontends,
                    "endpoints": {
                        "total": total, "ready": ready, "serving": serving,
                        "terminating": terminating, "drained": drained, "candidates": candidates,
                    },
                    "clientConnections": port.m.active.load(Ordering::Relaxed),
                    "backendConnections": active,
                    "inFlightRequests": inflight,
                    "idleBackendConnections": idle,
                }));
        }
        let services: Vec<_> = services
            .into_iter()
            .map(|(k, ports)| {
                serde_json::json!({
                    "namespace": k.namespace,
                    "name": k.name,
                    "kind": kinds.get(&k),
                    "ports": ports,
                })
            })
            .collect();
        let mut drained: Vec<String> = inner.drained.lock().iter().cloned().collect();
        drained.sort();
        serde_json::json!({ "services": services, "drained": drained })
    }
}
