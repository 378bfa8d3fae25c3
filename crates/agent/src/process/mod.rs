//! The process runtime: pods as real local processes, each container run held by a shim
//! (`slipway shim`, see the `slipway-shim` crate) that outlives the agent.
//!
//! * The agent loop ([`start_process`]) binds new pods to the node, starts one worker per
//!   pod bound here, and on start adopts what runs already: every container run is a
//!   directory `<data_dir>/pods/<pod uid>/<container>/<run>` (see [`layout`]), so a
//!   restarted agent finds running shims, exit records and restart counts there. Pods that
//!   no longer exist get their shims stopped and their files removed.
//! * A pod worker ([`pod`]) allocates the pod IP, runs init containers one after the other,
//!   then the containers, each in a loop of image resolution, launch, postStart, probes,
//!   exit and restart with back-off ([`container`]); it writes the pod status when it
//!   changes, records the pod's network for the service proxy ([`network`]: `network.json`;
//!   the proxy forwards `<pod IP>:<port>` into the container's network namespace), gives
//!   each isolated container a hosts file with the Services, and on deletion asks the proxy
//!   to drain the pod ([`drain`]), runs preStop hooks, stops the shims within the grace
//!   period, confirms the deletion and removes the pod's files.
//! * [`PodFiles`] gives the API server the log files and exec of container runs.
//!
//! docs/runtime.md describes the design and its crash-safety guarantee.

mod container;
pub mod drain;
pub mod env;
pub mod events;
mod exec_server;
pub mod layout;
pub use slipway_netns as netns;
pub mod network;
mod pod;
pub mod status;
pub mod target;
#[cfg(test)]
pub(crate) mod testing;

pub use drain::{DrainReport, ProxyDrain, TrafficDrain};
pub use layout::{Layout, PodFiles};

use crate::{IpPool, NODE_NAME};
use events::PodEvent;
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, Informer, WorkQueue, split_key};
use slipway_core::{ApiError, meta, resources};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the process runtime runs.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The data dir: pods live under `<data_dir>/pods`, the image catalog is
    /// `<data_dir>/images.yaml`.
    pub data_dir: PathBuf,
    /// The `slipway` executable: it runs the built-in images.
    pub slipway_exe: PathBuf,
    /// The executable of the shims (`<shim_exe> shim <config>`): the small `slipway-shim`
    /// when it is installed, else `slipway` itself (which has the same mode).
    pub shim_exe: PathBuf,
    /// Isolate pods (namespaces, overlay root) where the host allows it. False runs plain
    /// processes.
    pub isolation: bool,
}

/// Why pods cannot be isolated on this host, or `None` when they can be.
pub fn isolation_unavailable(wanted: bool) -> Option<String> {
    if !wanted {
        return Some("isolation is disabled (SLIPWAY_POD_ISOLATION=off): containers run as plain processes that share the host's filesystem, process table, hostname and network".into());
    }
    if !cfg!(target_os = "linux") {
        return Some("namespaces need Linux: containers run as plain processes".into());
    }
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Some(format!(
            "slipway serve is not running as root (uid {uid}): containers run as plain processes that share the host's filesystem, process table, hostname and network"
        ));
    }
    None
}

/// Shared by the agent loop and the pod workers.
pub(crate) struct Ctx<C> {
    pub client: C,
    pub layout: Layout,
    pub slipway_exe: PathBuf,
    pub shim_exe: PathBuf,
    pub not_isolated: Option<String>,
    pub ips: Mutex<IpPool>,
    pub clock: crate::Clock,
    /// Takes a deleted pod out of the service proxy's rotation before it is stopped.
    pub drain: Arc<dyn TrafficDrain>,
    pub events: events::EventSink,
}

impl<C: Client> Ctx<C> {
    /// Records an Event about `pod` (written in the background, see [`events::EventSink`]).
    pub async fn event(&self, pod: &Value, ev: PodEvent) {
        self.events.record(pod, &ev, (self.clock)());
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn cancelled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

/// What the agent loop tells a pod worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    /// `slipway serve` is stopping: stop the containers gracefully, keep the pod.
    Shutdown,
    /// The pod object is gone (force-deleted, or deleted while the agent was down).
    Vanished,
}

struct Worker {
    uid: String,
    pod: watch::Sender<Arc<Value>>,
    control: watch::Sender<Control>,
    task: JoinHandle<()>,
}

/// The running process runtime.
pub struct ProcessAgent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ProcessAgent {
    /// Stops every pod gracefully (preStop hooks, SIGTERM, SIGKILL at the grace period)
    /// and returns when all have stopped. The pods stay in the API; their files stay on
    /// disk, so the next start restarts their containers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the process runtime. Returns once pods are being watched; the work goes on in
/// tasks until [`ProcessAgent::shutdown`]. Deleted pods are drained at the service proxy of
/// the data dir ([`ProxyDrain`]) before they are stopped.
pub async fn start_process<C: Client>(
    client: C,
    config: ProcessConfig,
    clock: crate::Clock,
) -> ProcessAgent {
    let drain = Arc::new(ProxyDrain::for_data_dir(&config.data_dir));
    start_process_with_drain(client, config, clock, drain).await
}

/// [`start_process`] with another way to drain deleted pods before they are stopped.
pub async fn start_process_with_drain<C: Client>(
    client: C,
    config: ProcessConfig,
    clock: crate::Clock,
    drain: Arc<dyn TrafficDrain>,
) -> ProcessAgent {
    let not_isolated = isolation_unavailable(config.isolation);
    if let Some(why) = &not_isolated {
        tracing::warn!("pods are not isolated: {why}");
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        layout: Layout::new(&config.data_dir),
        slipway_exe: config.slipway_exe,
        shim_exe: config.shim_exe,
        not_isolated,
        ips: Mutex::new(IpPool::default()),
        clock,
        drain,
        events: events::EventSink::start(client.clone()),
    });
    let info = resources::lookup("", "v1", "pods").expect("pods are served");
    let queue = WorkQueue::new();
    let handler_queue = queue.clone();
    let pods = Informer::start(client, info, move |ev| {
        let obj = ev.object();
        handler_queue.add(slipway_client::object_key(obj));
    })
    .await;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(ctx, pods, queue, stop_rx));
    ProcessAgent { stop, task }
}

async fn run<C: Client>(
    ctx: Arc<Ctx<C>>,
    pods: Informer,
    queue: WorkQueue,
    mut stop: watch::Receiver<bool>,
) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut retired: Vec<JoinHandle<()>> = Vec::new();
    // Keep the addresses of existing pods out of the pool before anything is allocated.
    for p in pods.list() {
        if let Some(ip) = p.pointer("/status/podIP").and_then(Value::as_str)
            && p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(NODE_NAME)
        {
            ctx.ips.lock().get_or_allocate(meta::uid(&p), Some(ip));
        }
    }
    // Files of pods that no longer exist: stop what still runs there, remove the files.
    let live: HashSet<String> = pods
        .list()
        .iter()
        .map(|p| meta::uid(p).to_string())
        .collect();
    for uid in ctx.layout.pod_uids() {
        if !live.contains(&uid) {
            let ctx = ctx.clone();
            retired.push(tokio::spawn(
                async move { pod::remove_orphan(&ctx, &uid).await },
            ));
        }
    }
    loop {
        tokio::select! {
            key = queue.next() => {
                let Some(key) = key else { break };
                if let Err(e) = reconcile(&ctx, &pods, &mut workers, &mut retired, &key).await {
                    tracing::debug!(pod = key, error = %e, "agent sync failed; retrying");
                    queue.add_after(key.clone(), std::time::Duration::from_millis(200));
                }
                queue.done(&key);
            }
            _ = cancelled(&mut stop) => break,
        }
        retired.retain(|h| !h.is_finished());
    }
    tracing::info!(pods = workers.len(), "stopping every pod");
    for w in workers.values() {
        let _ = w.control.send(Control::Shutdown);
    }
    for w in workers.into_values() {
        let _ = w.task.await;
    }
    for h in retired {
        let _ = h.await;
    }
    // The Events of the stop (Killing, ...) are written before the agent returns.
    ctx.events.flush().await;
}

async fn reconcile<C: Client>(
    ctx: &Arc<Ctx<C>>,
    pods: &Informer,
    workers: &mut HashMap<String, Worker>,
    retired: &mut Vec<JoinHandle<()>>,
    key: &str,
) -> Result<(), ApiError> {
    let retire = |w: Worker, retired: &mut Vec<JoinHandle<()>>| {
        let _ = w.control.send(Control::Vanished);
        retired.push(w.task);
    };
    let Some(pod) = pods.get(key) else {
        if let Some(w) = workers.remove(key) {
            retire(w, retired);
        }
        return Ok(());
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        if meta::deletion_timestamp(&pod).is_none() && crate::scheduled_by_us(&pod) {
            let (namespace, name) = split_key(key);
            match ctx
                .client
                .bind(
                    namespace.unwrap_or_default(),
                    name,
                    meta::uid(&pod),
                    NODE_NAME,
                )
                .await
            {
                Ok(()) => {}
                // Bound or deleted meanwhile: the watch brings the news.
                Err(e) if e.code == 404 || e.code == 409 => return Ok(()),
                Err(e) => return Err(e),
            }
            let message = format!(
                "Successfully assigned {}/{} to {NODE_NAME}",
                meta::namespace(&pod),
                meta::name(&pod)
            );
            ctx.event(
                &pod,
                PodEvent::normal("Scheduled", message).from(events::SCHEDULER),
            )
            .await;
        }
        return Ok(());
    }
    if node != NODE_NAME {
        return Ok(());
    }
    let uid = meta::uid(&pod).to_string();
    if let Some(w) = workers.get(key) {
        if w.uid == uid && !w.task.is_finished() {
            w.pod.send_replace(pod);
            return Ok(());
        }
        if w.uid == uid {
            // Its work is done (the pod was deleted and confirmed); nothing more to do.
            return Ok(());
        }
        let old = workers.remove(key).expect("present");
        retire(old, retired);
    }
    let (pod_tx, pod_rx) = watch::channel(pod);
    let (control_tx, control_rx) = watch::channel(Control::Run);
    let task = tokio::spawn(pod::pod_worker(ctx.clone(), pod_rx, control_rx));
    workers.insert(
        key.to_string(),
        Worker {
            uid,
            pod: pod_tx,
            control: control_tx,
            task,
        },
    );
    Ok(())
}
