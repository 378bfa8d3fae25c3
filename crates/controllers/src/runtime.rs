//! Running the controllers: shared informers (one cache per resource, shared by every
//! controller), the event recorder, and [`start`], which wires the garbage collector, the
//! Deployment and ReplicaSet controllers and the Endpoints/EndpointSlice controller to the
//! informers and spawns their workers. Every sync run through [`work`] is counted in
//! [`crate::metrics`].

use crate::Requeue;
use crate::gc::GarbageCollector;
use crate::reconcile::deployment::DeploymentController;
use crate::reconcile::endpoints::{EndpointsController, default_random};
use crate::reconcile::replicaset::ReplicaSetController;
use crate::reconcile::rollout::{RolloutController, Runs, rollout_info};
use crate::rollout_runs::{LoopbackHttp, RunExecutor, TrafficMetrics};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde_json::Value;
use slipway_client::{Client, Informer, InformerEvent, WorkQueue};
use slipway_core::{ApiError, ResourceInfo, meta, resources};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A clock, injected so tests and simulations control time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The clock reading as the planners take it.
pub fn jiff_now(clock: &Clock) -> k8s_openapi::jiff::Timestamp {
    let now = clock();
    k8s_openapi::jiff::Timestamp::from_millisecond(now.timestamp_millis())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// Processes `queue` with `sync` until the queue shuts down: requeues a key when its sync
/// asks for it, and retries a failed sync after the queue's per-key back-off (a success on any
/// worker forgets the key's failures). A failure is most often a cache a write behind (a
/// conflict, or a check of Kubernetes' own that a stale status trips), which the next try
/// passes.
pub(crate) async fn work<F, Fut>(queue: &WorkQueue, controller: &str, sync: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Requeue>, ApiError>>,
{
    let metrics = crate::metrics::controller(controller);
    while let Some(key) = queue.next().await {
        metrics.set_queue_depth(queue.len());
        let result = sync(key.clone()).await;
        metrics.record_sync(result.is_ok());
        if result.is_ok() {
            queue.forget(&key);
        }
        match result {
            Ok(Some(Requeue::Now)) => queue.add_after(key.clone(), Duration::from_millis(1)),
            Ok(Some(Requeue::After(d))) => queue.add_after(key.clone(), d),
            Ok(None) => {}
            Err(e) => {
                let delay = queue.add_rate_limited(key.clone());
                tracing::debug!(controller, key, error = %e, ?delay, "sync failed; retrying");
            }
        }
        queue.done(&key);
    }
}

/// Objects of one resource by their controller: what a controller owns, found without
/// scanning its namespace (which would make every sync cost as much as the namespace is big).
#[derive(Default)]
struct ControllerIndex {
    /// Controller UID → keys of the objects it controls.
    owned: HashMap<String, BTreeSet<String>>,
    /// Namespace → keys of objects without a controller (candidates for adoption).
    orphans: HashMap<String, BTreeSet<String>>,
    /// Key → where it is filed, to move or remove it.
    filed_under: HashMap<String, Filing>,
}

#[derive(Clone, PartialEq, Eq)]
enum Filing {
    Owned(String),
    Orphan(String),
}

impl ControllerIndex {
    fn remove(&mut self, key: &str) {
        match self.filed_under.remove(key) {
            Some(Filing::Owned(uid)) => {
                if let Some(set) = self.owned.get_mut(&uid) {
                    set.remove(key);
                    if set.is_empty() {
                        self.owned.remove(&uid);
                    }
                }
            }
            Some(Filing::Orphan(ns)) => {
                if let Some(set) = self.orphans.get_mut(&ns) {
                    set.remove(key);
                    if set.is_empty() {
                        self.orphans.remove(&ns);
                    }
                }
            }
            None => {}
        }
    }

    fn file(&mut self, obj: &Value) {
        let key = slipway_client::object_key(obj);
        let filing = match crate::reconcile::deployment::controller_of(obj) {
            Some((_, _, uid)) => Filing::Owned(uid.to_string()),
            None => Filing::Orphan(meta::namespace(obj).to_string()),
        };
        if self.filed_under.get(&key) == Some(&filing) {
            return;
        }
        self.remove(&key);
        match &filing {
            Filing::Owned(uid) => self
                .owned
                .entry(uid.clone())
                .or_default()
                .insert(key.clone()),
            Filing::Orphan(ns) => self
                .orphans
                .entry(ns.clone())
                .or_default()
                .insert(key.clone()),
        };
        self.filed_under.insert(key, filing);
    }
}

/// One informer per resource, shared by every controller, with an index of each object by
/// its controller for the resources controllers own (ReplicaSets and pods).
#[derive(Clone, Default)]
pub struct Informers {
    by_resource: Arc<RwLock<HashMap<(&'static str, &'static str), Informer>>>,
    by_controller: Arc<RwLock<HashMap<&'static str, ControllerIndex>>>,
}

impl Informers {
    /// Updates the controller index from an informer event (call before dispatching it).
    fn index(&self, info: &'static ResourceInfo, ev: &InformerEvent) {
        if !matches!(info.kind, "ReplicaSet" | "Pod") {
            return;
        }
        let mut indexes = self.by_controller.write();
        let index = indexes.entry(info.kind).or_default();
        match ev {
            InformerEvent::Applied { new, .. } => index.file(new),
            InformerEvent::Deleted(last) => index.remove(&slipway_client::object_key(last)),
        }
    }

    /// The cached objects of `info` whose controller has UID `owner`.
    pub fn controlled_by(&self, info: &'static ResourceInfo, owner: &str) -> Vec<Arc<Value>> {
        let Some(informer) = self.get(info) else {
            return Vec::new();
        };
        let keys: Vec<String> = self
            .by_controller
            .read()
            .get(info.kind)
            .and_then(|i| i.owned.get(owner))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter().filter_map(|k| informer.get(k)).collect()
    }

    /// The cached objects of `info` in `namespace` that have no controller.
    pub fn orphans(&self, info: &'static ResourceInfo, namespace: &str) -> Vec<Arc<Value>> {
        let Some(informer) = self.get(info) else {
            return Vec::new();
        };
        let keys: Vec<String> = self
            .by_controller
            .read()
            .get(info.kind)
            .and_then(|i| i.orphans.get(namespace))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter().filter_map(|k| informer.get(k)).collect()
    }

    /// The informer of `info`, once it has started.
    pub fn get(&self, info: &ResourceInfo) -> Option<Informer> {
        self.by_resource
            .read()
            .get(&(info.group, info.plural))
            .cloned()
    }

    fn insert(&self, info: &'static ResourceInfo, informer: Informer) {
        self.by_resource
            .write()
            .insert((info.group, info.plural), informer);
    }
}

/// Worker tasks per controller: enough to overlap writes (the store commits concurrent
/// writes together), few enough to stay light.
const WORKERS: usize = 4;

/// Resources the garbage collector follows (the kinds that have or are owners).
const GC_RESOURCES: &[(&str, &str)] = &[
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("", "pods"),
    ("", "services"),
    ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"),
    ("", "configmaps"),
    ("", "secrets"),
];

/// Starts the informers and the controllers; returns once every cache is loaded and the
/// workers run. Rollout hooks run as pods and HTTP calls on loopback; traffic analyses read
/// the proxy's metrics from `metrics`.
pub async fn start<C: Client>(
    client: C,
    clock: Clock,
    metrics: Arc<dyn TrafficMetrics>,
) -> Informers {
    let runs = RunExecutor::new(
        client.clone(),
        clock.clone(),
        metrics,
        Arc::new(LoopbackHttp),
    );
    start_with_runs(client, clock, runs).await
}

/// [`start`] with the executor of Rollout hooks and analyses.
pub async fn start_with_runs<C: Client, R: Runs>(client: C, clock: Clock, runs: R) -> Informers {
    let informers = Informers::default();
    let rollouts = RolloutController::new(client.clone(), informers.clone(), clock.clone(), runs);
    let gc = GarbageCollector::new(client.clone(), informers.clone());
    // One asynchronous recorder: the Events of both controllers share commits.
    let recorder = crate::events::Recorder::start(client.clone());
    let deployments = DeploymentController::new(
        client.clone(),
        informers.clone(),
        clock.clone(),
        recorder.clone(),
    );
    let replicasets =
        ReplicaSetController::new(client.clone(), informers.clone(), clock.clone(), recorder);
    let endpoints = EndpointsController::new(
        client.clone(),
        informers.clone(),
        clock.clone(),
        default_random(),
    );
    for (group, plural) in GC_RESOURCES {
        let Some(info) = resources::lookup(group, "v1", plural) else {
            continue;
        };
        let (gc, dc, rc) = (gc.clone(), deployments.clone(), replicasets.clone());
        let ec = endpoints.clone();
        let ro = rollouts.clone();
        let indexes = informers.clone();
        let informer = Informer::start(client.clone(), info, move |ev| {
            indexes.index(info, ev);
            gc.handle(info, ev);
            match info.kind {
                "Deployment" => dc.on_deployment(ev),
                "ReplicaSet" => {
                    dc.on_replica_set(ev);
                    rc.on_replica_set(ev);
                    ro.on_replica_set(ev);
                }
                "Pod" => {
                    dc.on_pod(ev);
                    rc.on_pod(ev);
                    ec.on_pod(ev);
                    ro.on_pod(ev);
                }
                "Service" => {
                    ec.on_service(ev);
                    ro.on_service(ev);
                }
                "Endpoints" => ec.on_endpoints(ev),
                "EndpointSlice" => {
                    ec.on_slice(ev);
                    ro.on_slice(ev);
                }
                _ => {}
            }
        })
        .await;
        informers.insert(info, informer);
    }
    let rollouts_served = match rollout_info() {
        None => false,
        // The kind may be known to this build but not served yet: an informer would wait
        // for its first list forever.
        Some(info) => client.list(info, None).await.is_ok(),
    };
    if let (true, Some(info)) = (rollouts_served, rollout_info()) {
        let (gc, ro) = (gc.clone(), rollouts.clone());
        let indexes = informers.clone();
        let informer = Informer::start(client.clone(), info, move |ev| {
            indexes.index(info, ev);
            gc.handle(info, ev);
            ro.on_rollout(ev);
        })
        .await;
        informers.insert(info, informer);
        for _ in 0..WORKERS {
            tokio::spawn(rollouts.clone().run());
        }
    } else {
        tracing::debug!("the Rollout kind is not served; the rollout controller is not started");
    }
    tokio::spawn(gc.run());
    for _ in 0..WORKERS {
        tokio::spawn(deployments.clone().run());
        tokio::spawn(replicasets.clone().run());
        tokio::spawn(endpoints.clone().run());
    }
    informers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::time::Instant;

    /// The workers retry through the queue's back-off and end it on success. (Each worker
    /// once kept its own failure counts, so a key that failed on every worker in turn was at
    /// last retried only after minutes, although it had succeeded in between, and a rollout
    /// stalled until then. The counts are now the queue's; its own tests cover sharing.)
    #[tokio::test(start_paused = true)]
    async fn workers_retry_with_the_queue_s_back_off_and_end_it_on_success() {
        let queue = WorkQueue::new();
        // Outcomes of the key's successive syncs: false fails, true succeeds and requeues.
        let script = Arc::new(parking_lot::Mutex::new(VecDeque::from([
            false, false, false, true, false, false, true,
        ])));
        let start = Instant::now();
        let attempts = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done_tx = Arc::new(parking_lot::Mutex::new(Some(done_tx)));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (queue, script, attempts) = (queue.clone(), script.clone(), attempts.clone());
            let done_tx = done_tx.clone();
            workers.push(tokio::spawn(async move {
                work(&queue, "backoff-test", |_key| {
                    let outcome = script.lock().pop_front();
                    attempts.lock().push((Instant::now() - start).as_millis());
                    if script.lock().is_empty()
                        && let Some(tx) = done_tx.lock().take()
                    {
                        let _ = tx.send(());
                    }
                    async move {
                        match outcome {
                            Some(false) => Err(ApiError::internal("stale status")),
                            Some(true) => Ok(Some(Requeue::Now)),
                            None => Ok(None),
                        }
                    }
                })
                .await
            }));
        }
        queue.add("ns/key");
        tokio::time::timeout(Duration::from_secs(60), done_rx)
            .await
            .expect("the scripted syncs did not all run within 60 s (of paused time)")
            .expect("done");
        // Back-off 5, 10, 20 ms; the success requeues after 1 ms; then 5, 10 ms again.
        assert_eq!(*attempts.lock(), vec![0, 5, 15, 35, 36, 41, 51]);
        queue.shut_down();
        for w in workers {
            w.await.expect("worker");
        }
    }
}
