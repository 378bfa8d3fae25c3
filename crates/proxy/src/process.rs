//! The proxy as its own process (`slipway proxy`), and how `slipway serve` starts, adopts
//! and stops it.
//!
//! Like kube-proxy, the proxy follows the API (Services, EndpointSlices, Pods) through the
//! kubeconfig that `slipway serve` writes, and keeps serving its last state while the API
//! is away: a kill -9 of `slipway serve` does not stop Service traffic. When the kubeconfig
//! changes (a restart on another port), the proxy reconnects with the new one.
//!
//! Files, under `<data_dir>/proxy/`:
//! - `state.json`: `{"pid", "startTime"}` of the running proxy (start time as in
//!   `/proc/<pid>/stat`, so a reused PID is never mistaken for it);
//! - `control.sock`: the control API (drain, metrics, health);
//! - `proxy.log`: its log.

use crate::desired::{self, Inputs, PodNetwork};
use crate::engine::{ListenFailure, Proxy};
use crate::pods::PodsNetwork;
use serde_json::{Value, json};
use slipway_client::{Client, DeleteParams, Informer, PatchType, RemoteClient, WatchStream};
use slipway_core::{ApiError, ResourceInfo, resources};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The directory of the proxy's files.
pub fn proxy_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("proxy")
}

/// The control socket.
pub fn control_socket(data_dir: &Path) -> PathBuf {
    proxy_dir(data_dir).join("control.sock")
}

fn state_file(data_dir: &Path) -> PathBuf {
    proxy_dir(data_dir).join("state.json")
}

/// The recorded proxy process: `(pid, start time)`.
pub fn recorded(data_dir: &Path) -> Option<(i32, u64)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(state_file(data_dir)).ok()?).ok()?;
    Some((
        v.get("pid")?.as_i64()? as i32,
        v.get("startTime")?.as_u64()?,
    ))
}

/// The recorded proxy, if it is alive.
pub fn running(data_dir: &Path) -> Option<(i32, u64)> {
    recorded(data_dir).filter(|(pid, start)| slipway_shim::is_same_live_process(*pid, *start))
}

/// Starts the proxy process for `data_dir` unless a live one is recorded (then it is
/// adopted), and waits until its control socket answers. Returns its PID.
pub async fn start_or_adopt(exe: &Path, data_dir: &Path) -> io::Result<i32> {
    if let Some((pid, _)) = running(data_dir) {
        tracing::info!(pid, "adopted the running service proxy");
        return Ok(pid);
    }
    std::fs::create_dir_all(proxy_dir(data_dir))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(proxy_dir(data_dir).join("proxy.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("proxy")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: a Ctrl-C in the terminal of `slipway serve` reaches serve
    // only, which then stops the proxy in order (after the pods).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Reap it when it exits while we run (after a crash of serve, init does).
    std::thread::Builder::new()
        .name("proxy-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if running(data_dir).is_some_and(|(p, _)| p == pid) && control_answers(data_dir).await {
            tracing::info!(pid, "started the service proxy");
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "the service proxy (pid {pid}) did not come up within 10 s; see {}",
                proxy_dir(data_dir).join("proxy.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps the proxy running for as long as the returned task runs: checks every second
/// and starts a new one when the recorded proxy is gone (it crashed, or was killed).
/// Abort the task before [`stop`]ping the proxy.
pub fn supervise(exe: PathBuf, data_dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if running(&data_dir).is_none() {
                tracing::warn!("the service proxy is gone; starting it again");
                if let Err(e) = start_or_adopt(&exe, &data_dir).await {
                    tracing::error!(error = %e, "cannot restart the service proxy");
                }
            }
        }
    })
}

/// True when the control socket answers `/healthz`.
async fn control_answers(data_dir: &Path) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::UnixStream::connect(control_socket(data_dir)),
    )
    .await
    else {
        return false;
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = b"GET /healthz HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n";
    if s.write_all(request).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut buf)).await,
        Ok(Ok(_))
    ) && buf.starts_with(b"HTTP/1.1 200")
}

/// Fetches the proxy's Prometheus metrics over the control socket (for the API server's
/// `/metrics`).
pub async fn fetch_metrics(data_dir: &Path) -> io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::UnixStream::connect(control_socket(data_dir)).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed response from the proxy"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("the proxy answered {head}")));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

/// Decodes a chunked body (the control API may stream).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Stops the recorded proxy (SIGTERM, then SIGKILL after `grace`), by PID and start time.
pub async fn stop(data_dir: &Path, grace: Duration) {
    let Some((pid, start)) = running(data_dir) else {
        return;
    };
    let target = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while slipway_shim::is_same_live_process(pid, start) {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `slipway proxy` process: records itself, serves the control socket, follows the
/// API and serves what it says, until SIGTERM or SIGINT.
pub async fn run(data_dir: PathBuf) -> io::Result<()> {
    let dir = proxy_dir(&data_dir);
    std::fs::create_dir_all(&dir)?;
    let network = PodsNetwork::new(&data_dir);
    let proxy = Proxy::new(network.clone());
    let control = {
        let proxy = proxy.clone();
        let path = control_socket(&data_dir);
        tokio::spawn(async move {
            if let Err(e) = proxy.serve_control(&path).await {
                tracing::error!(error = %e, "the control socket failed");
            }
        })
    };
    let me = std::process::id() as i32;
    let start = slipway_shim::process_start_time(me).unwrap_or(0);
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, json!({"pid": me, "startTime": start}).to_string())?;
    std::fs::rename(&tmp, state_file(&data_dir))?;

    let follower = tokio::spawn(follow(data_dir.clone(), proxy.clone(), network));
    shutdown_signal().await;
    tracing::info!("service proxy stopping");
    follower.abort();
    control.abort();
    let _ = std::fs::remove_file(control_socket(&data_dir));
    if recorded(&data_dir).is_some_and(|(pid, _)| pid == me) {
        let _ = std::fs::remove_file(state_file(&data_dir));
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    // A hang-up of the terminal that started `slipway serve` is not a reason to stop.
    let _hup = signal(SignalKind::hangup());
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Follows Services, EndpointSlices and Pods, and applies the desired state after every
/// change (changes that arrive together are applied together).
async fn follow(data_dir: PathBuf, proxy: Proxy, network: Arc<PodsNetwork>) {
    let client = loop {
        match ReloadingClient::new(data_dir.join("kubeconfig")) {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for a usable kubeconfig");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let dirty = Arc::new(tokio::sync::Notify::new());
    let informer = |info: &'static ResourceInfo| {
        let dirty = dirty.clone();
        Informer::start(client.clone(), info, move |_| dirty.notify_one())
    };
    let services = informer(lookup("", "services")).await;
    let slices = informer(lookup("discovery.k8s.io", "endpointslices")).await;
    let pods = informer(lookup("", "pods")).await;
    let mut networks: HashMap<String, PodNetwork> = HashMap::new();
    let mut reported: BTreeMap<(String, String), String> = BTreeMap::new();
    loop {
        let pod_list = pods.list();
        networks.retain(|uid, _| pod_list.iter().any(|p| slipway_core::meta::uid(p) == uid));
        for pod in &pod_list {
            let uid = slipway_core::meta::uid(pod);
            if !networks.contains_key(uid)
                && let Some(n) = network.read_pod_network(uid)
            {
                networks.insert(uid.to_string(), n);
            }
        }
        network.update(&pod_list, &networks);
        let state = desired::desired_state(&Inputs {
            services: &services.list(),
            slices: &slices.list(),
            pods: &pod_list,
            pod_networks: &networks,
        });
        let failures = proxy.apply(state).await;
        report_failures(&client, &services, &failures, &mut reported).await;
        // A host port that could not be bound is retried at the next change, or after a
        // second (it may be freed); in-pod listeners at the next change.
        let host_failures = failures
            .iter()
            .any(|f| matches!(f.frontend, crate::model::Frontend::Host(_)));
        let retry = if !host_failures {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(1)
        };
        let _ = tokio::time::timeout(retry, dirty.notified()).await;
    }
}

/// Services, Pods and Events are `v1`; EndpointSlices `discovery.k8s.io/v1`.
fn lookup(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::lookup(group, "v1", plural).expect("a resource the API server serves")
}

/// The condition the proxy keeps on a Service whose ports it cannot listen on.
const LISTENING_CONDITION: &str = "slipway.dev/Listening";

/// Tells users about ports the proxy cannot listen on: a Warning Event and a
/// `slipway.dev/Listening=False` condition on the Service, cleared once it listens.
async fn report_failures(
    client: &ReloadingClient,
    services: &Informer,
    failures: &[ListenFailure],
    reported: &mut BTreeMap<(String, String), String>,
) {
    let mut now: BTreeMap<(String, String), String> = BTreeMap::new();
    for f in failures {
        if let crate::model::Frontend::InPod { pod_uid, addr } = &f.frontend {
            // Expected when the pod itself listens on that port on every address (see
            // docs/services.md): the pod then reaches its own server there.
            tracing::debug!(run = %pod_uid, %addr, error = %f.error, "no Service listener inside the pod");
            continue;
        }
        if f.service.namespace.starts_with("pod:") {
            tracing::warn!(pod = %f.service.name, error = %f.error, "cannot listen on the pod IP");
            continue;
        }
        let text = now
            .entry((f.service.namespace.clone(), f.service.name.clone()))
            .or_default();
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&format!("{}: {}", describe(&f.frontend), f.error));
    }
    let keys: Vec<(String, String)> = reported.keys().chain(now.keys()).cloned().collect();
    for key in keys {
        let (old, new) = (reported.get(&key), now.get(&key));
        if old == new {
            continue;
        }
        let Some(svc) = services.get(&format!("{}/{}", key.0, key.1)) else {
            continue;
        };
        if let Some(message) = new {
            let message = format!("cannot listen for this Service: {message}");
            let _ = record_event(client, &svc, "FailedToListen", &message).await;
        }
        let _ = set_listening_condition(client, &svc, new.map(String::as_str)).await;
    }
    *reported = now;
}

fn describe(frontend: &crate::model::Frontend) -> String {
    match frontend {
        crate::model::Frontend::Host(a) => a.to_string(),
        crate::model::Frontend::InPod { pod_uid, addr } => format!("{addr} in pod {pod_uid}"),
    }
}

async fn record_event(
    client: &ReloadingClient,
    svc: &Value,
    reason: &str,
    message: &str,
) -> Result<Value, ApiError> {
    let now = chrono_now();
    let ns = slipway_core::meta::namespace(svc);
    let name = slipway_core::meta::name(svc);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": ns, "name": name,
                           "uid": slipway_core::meta::uid(svc), "resourceVersion": slipway_core::meta::resource_version(svc)},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "slipway-proxy"},
        "reportingComponent": "slipway-proxy",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    client.create(lookup("", "events"), event).await
}

/// Sets (`Some(message)`) or clears (`None`) the Listening condition; a few tries against
/// conflicts with other status writers.
async fn set_listening_condition(
    client: &ReloadingClient,
    svc: &Value,
    failure: Option<&str>,
) -> Result<(), ApiError> {
    let info = lookup("", "services");
    let ns = slipway_core::meta::namespace(svc).to_string();
    let name = slipway_core::meta::name(svc).to_string();
    for _ in 0..5 {
        let Some(current) = client.get(info, Some(&ns), &name).await? else {
            return Ok(());
        };
        let mut obj = (*current).clone();
        let status = slipway_core::meta::object_mut(&mut obj)
            .entry("status")
            .or_insert_with(|| json!({}));
        let Some(status) = status.as_object_mut() else {
            return Ok(());
        };
        let conditions = status.entry("conditions").or_insert_with(|| json!([]));
        let Some(list) = conditions.as_array_mut() else {
            return Ok(());
        };
        let had = list.len();
        list.retain(|c| c.get("type").and_then(Value::as_str) != Some(LISTENING_CONDITION));
        if let Some(message) = failure {
            list.push(json!({
                "type": LISTENING_CONDITION,
                "status": "False",
                "reason": "PortInUse",
                "message": message,
                "lastTransitionTime": chrono_now(),
                "observedGeneration": slipway_core::meta::generation(svc),
            }));
        } else if list.len() == had {
            return Ok(());
        }
        if list.is_empty() {
            status.remove("conditions");
        }
        match client.replace_status(info, obj).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A [`RemoteClient`] that re-reads the kubeconfig when it changes (a restarted
/// `slipway serve` may listen on another port).
#[derive(Clone)]
struct ReloadingClient {
    path: PathBuf,
    current: Arc<parking_lot::Mutex<(String, RemoteClient)>>,
}

impl ReloadingClient {
    fn new(path: PathBuf) -> io::Result<ReloadingClient> {
        let text = std::fs::read_to_string(&path)?;
        let client = RemoteClient::from_kubeconfig(&path).map_err(io::Error::other)?;
        Ok(ReloadingClient {
            path,
            current: Arc::new(parking_lot::Mutex::new((text, client))),
        })
    }

    /// The client for the kubeconfig as it is now.
    fn client(&self) -> RemoteClient {
        let mut current = self.current.lock();
        if let Ok(text) = std::fs::read_to_string(&self.path)
            && text != current.0
            && let Ok(fresh) = RemoteClient::from_kubeconfig(&self.path)
        {
            tracing::info!("the kubeconfig changed; reconnecting");
            *current = (text, fresh);
        }
        current.1.clone()
    }
}

impl Client for ReloadingClient {
    async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        self.client().get(info, namespace, name).await
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Value>>, String), ApiError> {
        self.client().list(info, namespace).await
    }

    async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        resource_version: &str,
    ) -> Result<WatchStream, ApiError> {
        self.client().watch(info, namespace, resource_version).await
    }

    async fn create(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        self.client().create(info, obj).await
    }

    async fn replace(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        self.client().replace(info, obj).await
    }

    async fn replace_status(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.client().replace_status(info, obj).await
    }

    async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.client()
            .patch(info, namespace, name, kind, patch)
            .await
    }

    async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        params: DeleteParams,
    ) -> Result<Option<Value>, ApiError> {
        self.client().delete(info, namespace, name, params).await
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        self.client().bind(namespace, name, uid, node).await
    }

    async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail_lines: usize,
    ) -> Result<String, ApiError> {
        self.client()
            .pod_log(namespace, pod, container, tail_lines)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("zz\r\n"), "");
    }
}
