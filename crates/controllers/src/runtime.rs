//! Running the controllers: shared informers (one cache per resource, shared by every
//! controller), the event recorder, and [`start`], which wires the garbage collector and the
//! Deployment and ReplicaSet controllers to the informers and spawns their workers.

use crate::Requeue;
use crate::gc::GarbageCollector;
use crate::reconcile::deployment::DeploymentController;
use crate::reconcile::replicaset::ReplicaSetController;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use slipway_client::{Client, Informer, WorkQueue};
use slipway_core::{ApiError, ResourceInfo, resources};
use std::collections::HashMap;
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
/// asks for it, and retries a failed sync after a short back-off (shorter after a conflict,
/// which only means the cache was a write behind).
pub(crate) async fn work<F, Fut>(queue: &WorkQueue, controller: &str, sync: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Requeue>, ApiError>>,
{
    while let Some(key) = queue.next().await {
        match sync(key.clone()).await {
            Ok(Some(Requeue::Now)) => queue.add_after(key.clone(), Duration::from_millis(1)),
            Ok(Some(Requeue::After(d))) => queue.add_after(key.clone(), d),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(controller, key, error = %e, "sync failed; retrying");
                let delay = if e.code == 409 { 5 } else { 250 };
                queue.add_after(key.clone(), Duration::from_millis(delay));
            }
        }
        queue.done(&key);
    }
}

/// One informer per resource, shared by every controller.
#[derive(Clone, Default)]
pub struct Informers {
    by_resource: Arc<RwLock<HashMap<(&'static str, &'static str), Informer>>>,
}

impl Informers {
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
/// workers run.
pub async fn start<C: Client>(client: C, clock: Clock) -> Informers {
    let informers = Informers::default();
    let gc = GarbageCollector::new(client.clone(), informers.clone());
    let deployments = DeploymentController::new(client.clone(), informers.clone(), clock.clone());
    let replicasets = ReplicaSetController::new(client.clone(), informers.clone(), clock.clone());
    for (group, plural) in GC_RESOURCES {
        let Some(info) = resources::lookup(group, "v1", plural) else {
            continue;
        };
        let (gc, dc, rc) = (gc.clone(), deployments.clone(), replicasets.clone());
        let informer = Informer::start(client.clone(), info, move |ev| {
            gc.handle(info, ev);
            match info.kind {
                "Deployment" => dc.on_deployment(ev),
                "ReplicaSet" => {
                    dc.on_replica_set(ev);
                    rc.on_replica_set(ev);
                }
                "Pod" => {
                    dc.on_pod(ev);
                    rc.on_pod(ev);
                }
                _ => {}
            }
        })
        .await;
        informers.insert(info, informer);
    }
    tokio::spawn(gc.run());
    for _ in 0..WORKERS {
        tokio::spawn(deployments.clone().run());
        tokio::spawn(replicasets.clone().run());
    }
    informers
}
