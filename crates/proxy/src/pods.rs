//! The [`Network`] of the process runtime: endpoints are reached, and in-pod frontends
//! bound, inside the network namespaces of the pods' containers.
//!
//! The proxy finds a container's namespace from the files the runtime keeps, without the
//! node agent: `<data_dir>/pods/<uid>/network.json` says which container serves which port,
//! the pod's status names each container's current run (`slipway://<uid>/<container>/<run>`),
//! and that run's `state.json` gives the container's PID. So Service traffic and pod-IP
//! forwarding go on while `slipway serve` is down.
//!
//! Addresses outside 127.0.0.0/8 are never dialled: an endpoint that is not a pod of this
//! node and not on loopback is refused.

use crate::desired::{PodNetwork, netns_key};
use crate::engine::Network;
use crate::model::{Endpoint, Frontend};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use slipway_netns::NetnsHandle;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the proxy knows of one running pod.
#[derive(Clone, Debug, Default)]
struct PodEntry {
    network: PodNetwork,
    /// Container name → the netns key of its current run (`uid/container/run`).
    runs: HashMap<String, String>,
}

#[derive(Default)]
struct Table {
    pods: HashMap<String, PodEntry>,
    by_ip: HashMap<Ipv4Addr, String>,
}

/// Pods' network namespaces, refreshed from the API objects by [`PodsNetwork::update`].
pub struct PodsNetwork {
    pods_dir: PathBuf,
    table: RwLock<Table>,
    /// Open namespace handles by netns key; handles of runs that are gone are dropped at
    /// the next update.
    handles: Mutex<HashMap<String, NetnsHandle>>,
}

impl PodsNetwork {
    pub fn new(data_dir: &Path) -> Arc<PodsNetwork> {
        Arc::new(PodsNetwork {
            pods_dir: data_dir.join("pods"),
            table: RwLock::default(),
            handles: Mutex::default(),
        })
    }

    /// Reads `network.json` of a pod (`None` when the agent has not written it).
    pub fn read_pod_network(&self, uid: &str) -> Option<PodNetwork> {
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return None;
        }
        let text = std::fs::read_to_string(self.pods_dir.join(uid).join("network.json")).ok()?;
        PodNetwork::parse(&text)
    }

    /// Takes the current pods (and their network metadata) as the table to resolve with.
    pub fn update(&self, pods: &[Arc<Value>], networks: &HashMap<String, PodNetwork>) {
        let mut table = Table::default();
        for pod in pods {
            let uid = pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut entry = PodEntry {
                network: networks.get(uid).cloned().unwrap_or_default(),
                runs: HashMap::new(),
            };
            let statuses = pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            for status in statuses.into_iter().flatten() {
                let name = status.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(key) = status
                    .get("containerID")
                    .and_then(Value::as_str)
                    .and_then(netns_key)
                {
                    entry.runs.insert(name.to_string(), key.to_string());
                }
            }
            if entry.runs.is_empty() {
                continue;
            }
            if let Some(ip) = pod
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .and_then(|ip| ip.parse().ok())
            {
                table.by_ip.insert(ip, uid.to_string());
            }
            table.pods.insert(uid.to_string(), entry);
        }
        let live: std::collections::HashSet<&String> = table
            .pods
            .iter()
            .flat_map(|(uid, p)| p.runs.values().chain(std::iter::once(uid)))
            .collect();
        self.handles.lock().retain(|key, _| live.contains(key));
        *self.table.write() = table;
    }

    /// The netns key of the container of pod `uid` that serves `port`.
    fn run_for(&self, uid: &str, port: u16) -> Option<String> {
        let table = self.table.read();
        let entry = table.pods.get(uid)?;
        let container = match entry.network.container_for(port) {
            Some(c) => c.to_string(),
            None if entry.runs.len() == 1 => entry.runs.keys().next()?.clone(),
            None => return None,
        };
        entry.runs.get(&container).cloned()
    }

    fn pod_of_ip(&self, ip: Ipv4Addr) -> Option<String> {
        self.table.read().by_ip.get(&ip).cloned()
    }

    /// The namespace handle of a pod (`key` is its uid): its pinned namespace
    /// (`<pod dir>/netns`, shared by its containers), or, for a pod without one, the
    /// namespace of one of its running containers.
    fn pod_handle(&self, uid: &str) -> io::Result<NetnsHandle> {
        if let Some(h) = self.handles.lock().get(uid) {
            return Ok(h.clone());
        }
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid pod uid {uid:?}"),
            ));
        }
        let pinned = self.pods_dir.join(uid).join("netns");
        let handle = if slipway_netns::is_pinned(&pinned) {
            NetnsHandle::start_pinned(&pinned)?
        } else {
            let run = {
                let table = self.table.read();
                let entry = table.pods.get(uid);
                let mut runs: Vec<&String> =
                    entry.into_iter().flat_map(|e| e.runs.values()).collect();
                runs.sort();
                runs.first().map(|r| (*r).clone())
            };
            let run = run.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("pod {uid} has no running container"),
                )
            })?;
            return self.handle(&run);
        };
        self.handles.lock().insert(uid.to_string(), handle.clone());
        Ok(handle)
    }

    /// The namespace handle of a run, started on first use from the run's `state.json`.
    fn handle(&self, key: &str) -> io::Result<NetnsHandle> {
        if let Some(h) = self.handles.lock().get(key) {
            return Ok(h.clone());
        }
        let state = slipway_shim::read_state(&self.pods_dir.join(key)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("container run {key} has not started"),
            )
        })?;
        let handle = NetnsHandle::start(state.container_pid)?;
        self.handles.lock().insert(key.to_string(), handle.clone());
        Ok(handle)
    }

    fn dial_now(&self, endpoint: &Endpoint) -> io::Result<DialPlan> {
        let uid = endpoint
            .pod_uid
            .clone()
            .or_else(|| self.pod_of_ip(endpoint.ip));
        if let Some(uid) = uid
            && let Some(key) = self.run_for(&uid, endpoint.port)
        {
            return Ok(DialPlan::Netns(self.handle(&key)?, endpoint.port));
        }
        if endpoint.ip.is_loopback() && !POD_RANGE.contains(endpoint.ip) {
            return Ok(DialPlan::Host(SocketAddr::from((
                endpoint.ip,
                endpoint.port,
            ))));
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "{}:{} is not a pod of this node nor a loopback address",
                endpoint.ip, endpoint.port
            ),
        ))
    }
}

/// Pod IPs (127.128.0.0/9): only reachable through a pod's namespace.
struct PodRange;
const POD_RANGE: PodRange = PodRange;
impl PodRange {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[0] == 127 && o[1] >= 128
    }
}

enum DialPlan {
    Netns(NetnsHandle, u16),
    Host(SocketAddr),
}

impl Network for PodsNetwork {
    fn dial(&self, endpoint: &Endpoint) -> BoxFuture<'static, io::Result<tokio::net::TcpStream>> {
        let plan = self.dial_now(endpoint);
        async move {
            match plan? {
                DialPlan::Netns(handle, port) => handle.connect(port).await,
                DialPlan::Host(addr) => tokio::net::TcpStream::connect(addr).await,
            }
        }
        .boxed()
    }

    fn listen(
        &self,
        frontend: &Frontend,
    ) -> BoxFuture<'static, io::Result<tokio::net::TcpListener>> {
        match frontend {
            Frontend::Host(addr) => {
                let addr = *addr;
                async move { tokio::net::TcpListener::bind(addr).await }.boxed()
            }
            Frontend::InPod { pod_uid, addr } => {
                let handle = self.pod_handle(pod_uid);
                let addr = SocketAddr::V4(*addr);
                async move { handle?.listen(addr).await }.boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn dials_into_the_serving_containers_namespace_and_refuses_other_addresses() {
        let dir = tempfile::tempdir().unwrap();
        // A "container" that is this test process: its namespace is ours.
        let run = dir.path().join("pods/u1/app/0");
        std::fs::create_dir_all(&run).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = json!({"shimPid": std::process::id(), "shimStartTime": 0,
            "containerPid": std::process::id(), "containerStartTime": 0, "pidNamespace": false,
            "namespaces": [], "workingDir": "/"});
        std::fs::write(run.join(slipway_shim::files::STATE), state.to_string()).unwrap();
        std::fs::write(
            dir.path().join("pods/u1/network.json"),
            format!(r#"{{"podIP":"127.128.0.9","ports":[{{"port":{port},"container":"app"}}]}}"#),
        )
        .unwrap();
        let net = PodsNetwork::new(dir.path());
        let pod = Arc::new(
            json!({"metadata": {"uid": "u1"}, "status": {"podIP": "127.128.0.9",
            "containerStatuses": [{"name": "app", "containerID": "slipway://u1/app/0"}]}}),
        );
        let networks = HashMap::from([("u1".to_string(), net.read_pod_network("u1").unwrap())]);
        net.update(&[pod], &networks);
        let ep = |uid: Option<&str>, ip: &str, port| Endpoint {
            pod_uid: uid.map(str::to_string),
            ip: ip.parse().unwrap(),
            port,
            ready: true,
            serving: true,
            terminating: false,
            weight: 1,
            group: String::new(),
        };
        // By uid, and by pod IP alone (manual endpoints), into the run's namespace.
        assert!(net.dial(&ep(Some("u1"), "127.128.0.9", port)).await.is_ok());
        assert!(net.dial(&ep(None, "127.128.0.9", port)).await.is_ok());
        // A plain loopback address is dialled on the host.
        assert!(net.dial(&ep(None, "127.0.0.1", port)).await.is_ok());
        // Unknown pod IPs and anything off loopback are refused without a packet sent.
        assert!(net.dial(&ep(None, "127.128.7.7", port)).await.is_err());
        assert!(net.dial(&ep(None, "10.0.0.1", port)).await.is_err());
        // A run that went away drops its handle.
        net.update(&[], &HashMap::new());
        assert!(net.handles.lock().is_empty());
        drop(listener);
    }
}
