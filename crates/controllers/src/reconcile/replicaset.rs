//! The ReplicaSet reconciler: keeps the number of pods of each ReplicaSet at `spec.replicas`.
//! It tracks the creations and deletions it has asked for until the informer shows them
//! (expectations), so it never over-creates while its cache lags.

use crate::Requeue;
use crate::events;
use crate::reconcile::deployment::controller_of;
use crate::replicaset::{self, Expectations, ObservedReplicaSet};
use crate::runtime::{Clock, Informers, jiff_now};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{
    Client, DeleteParams, InformerEvent, PatchType, WorkQueue, object_key, split_key,
};
use slipway_core::{ApiError, meta, resources};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const COMPONENT: &str = "replicaset-controller";
/// Expectations older than this are dropped (a lost watch event must not wedge a ReplicaSet).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

/// Extra attempts of a failed status write, each on the object read again from the API, as
/// Kubernetes' `statusUpdateRetries`.
const STATUS_UPDATE_RETRIES: usize = 1;

/// Decodes a cached object straight from the tree (no copy of the tree first).
fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ApiError::internal(format!("decoding {}: {e}", meta::name(v))))
}

/// Pods decoded for the planner that are kept between passes, least recently used out
/// first: enough for the old and new pods of a rollout of 250 replicas, and a few MB at most.
const DECODED_PODS: usize = 512;

/// Pods as the planner reads them ([`crate::pods::decode_for_replica_set`]), by uid, with the
/// `resourceVersion` each was decoded at: a pass decodes only the pods changed since the
/// last pass that saw them (a rollout syncs a ReplicaSet dozens of times, for a few changed
/// pods each time).
struct DecodedPods {
    by_uid: hashlink::LruCache<String, (String, Arc<Pod>)>,
}

impl DecodedPods {
    fn new() -> DecodedPods {
        DecodedPods {
            by_uid: hashlink::LruCache::new(DECODED_PODS),
        }
    }

    /// The planner's view of the cached pod `v`.
    fn get(&mut self, v: &Value) -> Result<Arc<Pod>, ApiError> {
        let (uid, rv) = (meta::uid(v), meta::resource_version(v));
        if let Some((seen_rv, pod)) = self.by_uid.get(uid)
            && seen_rv == rv
            && !uid.is_empty()
        {
            return Ok(Arc::clone(pod));
        }
        let pod = Arc::new(
            crate::pods::decode_for_replica_set(v)
                .map_err(|e| ApiError::internal(format!("decoding {}: {e}", meta::name(v))))?,
        );
        if !uid.is_empty() {
            self.by_uid
                .insert(uid.to_string(), (rv.to_string(), Arc::clone(&pod)));
        }
        Ok(pod)
    }
}

#[derive(Clone, Copy)]
struct Pending {
    expectations: Expectations,
    since: Instant,
}

/// The ReplicaSet controller.
pub struct ReplicaSetController<C: Client> {
    client: C,
    informers: Informers,
    clock: Clock,
    queue: WorkQueue,
    expectations: Mutex<HashMap<String, Pending>>,
    recorder: events::Recorder,
    decoded: Mutex<DecodedPods>,
}

impl<C: Client> ReplicaSetController<C> {
    /// A controller over shared informers, recording Events through `recorder`.
    pub fn new(
        client: C,
        informers: Informers,
        clock: Clock,
        recorder: events::Recorder,
    ) -> Arc<Self> {
        Arc::new(ReplicaSetController {
            client,
            informers,
            clock,
            queue: WorkQueue::new(),
            expectations: Mutex::default(),
            recorder,
            decoded: Mutex::new(DecodedPods::new()),
        })
    }

    /// Informer handler for ReplicaSets.
    pub fn on_replica_set(&self, ev: &InformerEvent) {
        match ev {
            InformerEvent::Applied { new, .. } => self.queue.add(object_key(new)),
            InformerEvent::Deleted(last) => {
                self.expectations.lock().remove(&object_key(last));
                self.queue.add(object_key(last));
            }
        }
    }

    /// Informer handler for pods: observes expectations and wakes the owning ReplicaSet (or,
    /// for an orphan, the ReplicaSets of its namespace, which may adopt it).
    pub fn on_pod(&self, ev: &InformerEvent) {
        let (pod, created, deleted) = match ev {
            InformerEvent::Applied { new, old } => {
                let newly_deleting = meta::deletion_timestamp(new).is_some()
                    && old
                        .as_ref()
                        .is_some_and(|o| meta::deletion_timestamp(o).is_none());
                (new, old.is_none(), newly_deleting)
            }
            InformerEvent::Deleted(last) => (last, false, meta::deletion_timestamp(last).is_none()),
        };
        match controller_of(pod) {
            Some(("ReplicaSet", rs, _)) => {
                let key = format!("{}/{rs}", meta::namespace(pod));
                if created || deleted {
                    let mut exp = self.expectations.lock();
                    if let Some(p) = exp.get_mut(&key) {
                        if created {
                            p.expectations.pending_creations -= 1;
                        }
                        if deleted {
                            p.expectations.pending_deletions -= 1;
                        }
                    }
                }
                self.queue.add(key);
            }
            Some(_) => {}
            None => {
                let Some(info) = resources::lookup("apps", "v1", "replicasets") else {
                    return;
                };
                if let Some(rss) = self.informers.get(info) {
                    for rs in rss.list_namespace(meta::namespace(pod)) {
                        self.queue.add(object_key(&rs));
                    }
                }
            }
        }
    }

    /// Processes the queue until it shuts down.
    pub async fn run(self: Arc<Self>) {
        crate::runtime::work(&self.queue, "replicaset", |key| {
            let this = self.clone();
            async move { this.sync(&key).await }
        })
        .await;
    }

    fn current_expectations(&self, key: &str) -> Expectations {
        let mut exp = self.expectations.lock();
        match exp.get(key) {
            Some(p) if p.since.elapsed() > EXPECTATIONS_TIMEOUT => {
                exp.remove(key);
                Expectations::default()
            }
            Some(p) => p.expectations,
            None => Expectations::default(),
        }
    }

    fn expect(&self, key: &str, creations: i32, deletions: i32) {
        self.expectations.lock().insert(
            key.to_string(),
            Pending {
                expectations: Expectations {
                    pending_creations: creations,
                    pending_deletions: deletions,
                },
                since: Instant::now(),
            },
        );
    }

    fn lower(&self, key: &str, creations: i32, deletions: i32) {
        if let Some(p) = self.expectations.lock().get_mut(key) {
            p.expectations.pending_creations -= creations;
            p.expectations.pending_deletions -= deletions;
        }
    }

    fn observe(&self, rs: &Value, key: &str) -> Result<ObservedReplicaSet, ApiError> {
        let pod_info = resources::lookup("", "v1", "pods").expect("served");
        let mut pods = self.informers.controlled_by(pod_info, meta::uid(rs));
        // Orphans matching the selector are adopted by the planner.
        pods.extend(self.informers.orphans(pod_info, meta::namespace(rs)));
        let mut decoded = self.decoded.lock();
        Ok(ObservedReplicaSet {
            replica_set: typed(rs)?,
            pods: pods
                .iter()
                .map(|p| decoded.get(p))
                .collect::<Result<_, _>>()?,
            related_pods: Vec::new(),
            expectations: self.current_expectations(key),
            now: jiff_now(&self.clock),
        })
    }

    /// Active pods of sibling ReplicaSets (same controller): they rank deletions by
    /// co-location, and matter to nothing else the planner decides.
    fn related_pods(&self, rs: &Value) -> Result<Vec<Arc<Pod>>, ApiError> {
        let pod_info = resources::lookup("", "v1", "pods").expect("served");
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let Some((_, _, owner)) = controller_of(rs) else {
            return Ok(Vec::new());
        };
        let uid = meta::uid(rs);
        let mut decoded = self.decoded.lock();
        self.informers
            .controlled_by(rs_info, owner)
            .iter()
            .filter(|sibling| meta::uid(sibling) != uid)
            .flat_map(|sibling| self.informers.controlled_by(pod_info, meta::uid(sibling)))
            .map(|p| decoded.get(&p))
            .collect()
    }

    async fn sync(&self, key: &str) -> Result<Option<Requeue>, ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let pod_info = resources::lookup("", "v1", "pods").expect("served");
        let Some(rs) = self.informers.get(rs_info).and_then(|i| i.get(key)) else {
            self.expectations.lock().remove(key);
            return Ok(None);
        };
        let mut observed = self.observe(&rs, key)?;
        let mut plan =
            replicaset::plan(&observed).map_err(|e| ApiError::internal(e.to_string()))?;
        // Sibling pods only order deletions: read them (and plan again) only when deleting.
        if !plan.delete.is_empty() {
            observed.related_pods = self.related_pods(&rs)?;
            if !observed.related_pods.is_empty() {
                plan =
                    replicaset::plan(&observed).map_err(|e| ApiError::internal(e.to_string()))?;
            }
        }
        let (ns, _) = split_key(key);
        let now = (self.clock)();

        for patch in &plan.ownership {
            match self
                .client
                .patch(
                    pod_info,
                    ns,
                    &patch.name,
                    PatchType::Strategic,
                    patch.strategic_merge_patch(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }

        let mut failure: Option<ApiError> = None;
        if !plan.create.is_empty() {
            let total = i32::try_from(plan.create.len()).unwrap_or(i32::MAX);
            self.expect(key, total, 0);
            let mut sent = 0usize;
            'batches: for &size in &plan.create_batches {
                let batch = &plan.create[sent..(sent + size).min(plan.create.len())];
                let results = futures_join(batch.iter().map(|pod| {
                    let client = self.client.clone();
                    let body = serde_json::to_value(pod);
                    async move {
                        match body {
                            Ok(b) => client.create(pod_info, b).await,
                            Err(e) => Err(ApiError::internal(e.to_string())),
                        }
                    }
                }))
                .await;
                sent += batch.len();
                for r in results {
                    match r {
                        Ok(created) => {
                            let event = replicaset::pod_created_event(meta::name(&created));
                            self.recorder.record(&rs, &event, COMPONENT, now);
                        }
                        Err(e) => {
                            self.lower(key, 1, 0);
                            let event = replicaset::pod_create_failed_event(&e.message);
                            self.recorder.record(&rs, &event, COMPONENT, now);
                            failure.get_or_insert(e);
                        }
                    }
                }
                if failure.is_some() {
                    // Slow start: stop at the first failing batch; the rest are not sent.
                    self.lower(key, i32::try_from(plan.create.len() - sent).unwrap_or(0), 0);
                    break 'batches;
                }
            }
        }
        if !plan.delete.is_empty() {
            self.expect(key, 0, i32::try_from(plan.delete.len()).unwrap_or(i32::MAX));
            // All at once, as Kubernetes does (one goroutine per pod).
            let results = futures_join(plan.delete.iter().map(|k| {
                let client = self.client.clone();
                let params = DeleteParams {
                    precondition_uid: Some(k.uid.clone()).filter(|u| !u.is_empty()),
                    ..DeleteParams::default()
                };
                async move {
                    client
                        .delete(pod_info, Some(&k.namespace), &k.name, params)
                        .await
                }
            }))
            .await;
            for (k, result) in plan.delete.iter().zip(results) {
                match result {
                    Ok(_) => {
                        let event = replicaset::pod_deleted_event(&k.name);
                        self.recorder.record(&rs, &event, COMPONENT, now);
                    }
                    Err(e) if e.code == 404 || e.code == 409 => self.lower(key, 0, 1),
                    Err(e) => {
                        self.lower(key, 0, 1);
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        for event in &plan.events {
            self.recorder.record(&rs, event, COMPONENT, now);
        }
        let status = match &failure {
            Some(e) => {
                let planned = plan
                    .status
                    .clone()
                    .unwrap_or_else(|| observed.replica_set.status.clone().unwrap_or_default());
                let active = planned.replicas;
                Some(replicaset::status_after_failure(
                    &observed.replica_set,
                    &planned,
                    active,
                    &e.message,
                    observed.now,
                ))
            }
            None => plan.status.clone(),
        };
        if let Some(status) = status {
            self.write_status(observed.replica_set, status).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(plan.requeue),
        }
    }

    /// Writes `status` on `rs`, as Kubernetes' `updateReplicaSetStatus`: when the write fails
    /// (most often a conflict with a scale), it is tried once more on the object read again
    /// from the API. The status keeps the generation it was computed for, so a newer spec is
    /// still seen as unobserved and synced next.
    async fn write_status(
        &self,
        mut rs: ReplicaSet,
        status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> Result<(), ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let mut attempt = 0;
        loop {
            rs.status = Some(status.clone());
            let body = serde_json::to_value(&rs).map_err(|e| ApiError::internal(e.to_string()))?;
            let failed = match self.client.replace_status(rs_info, body).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if attempt >= STATUS_UPDATE_RETRIES {
                return Err(failed);
            }
            attempt += 1;
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            let namespace = rs.metadata.namespace.as_deref();
            match self.client.get(rs_info, namespace, name).await? {
                Some(current) => rs = typed(&current)?,
                // Gone: the next sync finds it missing from the cache and stops.
                None => return Err(failed),
            }
        }
    }
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join<F: std::future::Future<Output = T> + Send, T: Send>(
    futs: impl Iterator<Item = F>,
) -> Vec<T> {
    futures::future::join_all(futs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, rv: &str, phase: &str) -> Value {
        json!({"metadata": {"name": format!("p-{uid}"), "namespace": "default", "uid": uid,
                            "resourceVersion": rv},
               "spec": {"containers": [{"name": "app", "image": "x"}]},
               "status": {"phase": phase}})
    }

    #[test]
    fn decoded_pods_are_reused_until_their_resource_version_changes() {
        let mut decoded = DecodedPods::new();
        let first = decoded.get(&pod("a", "1", "Pending")).unwrap();
        let again = decoded.get(&pod("a", "1", "Pending")).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "same version: decoded once");
        let changed = decoded.get(&pod("a", "2", "Running")).unwrap();
        assert_eq!(
            changed.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        assert_eq!(
            *changed,
            crate::pods::decode_for_replica_set(&pod("a", "2", "Running")).unwrap()
        );
        // Without a uid nothing is kept.
        let anonymous = json!({"metadata": {"name": "x", "resourceVersion": "1"}});
        let one = decoded.get(&anonymous).unwrap();
        assert!(!Arc::ptr_eq(&one, &decoded.get(&anonymous).unwrap()));
    }
}
