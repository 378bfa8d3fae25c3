//! The Rollout reconciler: observes a Rollout, its ReplicaSets (and their pods for
//! Recreate) and the Services its strategy names from the shared informers, asks
//! [`crate::rollout::plan`] for one pass, applies the steps in order (stopping at the first
//! failure), lets the hook and analysis executor ([`Runs`]) advance the runs the plan lists,
//! writes the status through `/status` when it changed, and records the events.
//!
//! The executor of hooks and analyses is reached through the [`Runs`] trait:
//! [`crate::runtime::start`] connects `crate::rollout_runs::RunExecutor`, and tests pass
//! doubles to `runtime::start_with_runs`.

use crate::events;
use crate::reconcile::deployment::controller_of;
use crate::rollout::{self, ObservedRollout, RolloutAction};
use crate::rollout_runs::RunRequest;
use crate::runtime::{Clock, Informers, jiff_now};
use crate::{Requeue, Step};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use slipway_client::{Client, InformerEvent, PatchType, WorkQueue, object_key};
use slipway_core::{ApiError, ResourceInfo, meta, resources};
use slipway_rollout::{Rollout, RolloutStatus};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const COMPONENT: &str = "rollout-controller";

/// The hook and analysis executor as the reconciler uses it (the contract of
/// [`crate::rollout_runs`]): start what `requests` lists and is not started, observe what
/// runs, cancel what is no longer listed, and update the records in `status.hooks` /
/// `status.analysis`. Returns when to look again (a check's next measurement, a retry's
/// back-off).
pub trait Runs: Send + Sync + 'static {
    /// Advances the runs of one Rollout.
    fn advance(
        &self,
        rollout: &Rollout,
        requests: &[RunRequest],
        status: &mut RolloutStatus,
        now: Timestamp,
    ) -> impl Future<Output = Option<Duration>> + Send;
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", meta::name(v))))
}

fn untyped<T: serde::Serialize>(t: &T) -> Result<Value, ApiError> {
    serde_json::to_value(t).map_err(|e| ApiError::internal(e.to_string()))
}

/// The Rollout kind's resource, when this server knows it.
pub fn rollout_info() -> Option<&'static ResourceInfo> {
    resources::lookup(slipway_rollout::GROUP, slipway_rollout::VERSION, "rollouts")
}

/// The names of the Services a Rollout's strategy uses.
pub fn service_names(r: &Rollout) -> Vec<String> {
    let s = &r.spec.strategy;
    let mut names = Vec::new();
    if let Some(bg) = &s.blue_green {
        names.push(bg.active_service.clone());
        names.extend(bg.preview_service.clone());
    }
    if let Some(c) = &s.canary {
        names.extend(c.stable_service.clone());
        names.extend(c.canary_service.clone());
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
fn slice_service(slice: &Value) -> Option<&str> {
    slice
        .pointer("/metadata/labels/kubernetes.io~1service-name")
        .and_then(Value::as_str)
}

/// The Rollout controller.
pub struct RolloutController<C: Client, R: Runs> {
    client: C,
    informers: Informers,
    clock: Clock,
    queue: WorkQueue,
    runs: R,
}

impl<C: Client, R: Runs> RolloutController<C, R> {
    /// A controller over shared informers, with the executor of hooks and analyses.
    pub fn new(client: C, informers: Informers, clock: Clock, runs: R) -> Arc<Self> {
        Arc::new(RolloutController {
            client,
            informers,
            clock,
            queue: WorkQueue::new(),
            runs,
        })
    }

    /// Informer handler for Rollouts.
    pub fn on_rollout(&self, ev: &InformerEvent) {
        let obj = ev.object();
        self.queue.add(object_key(obj));
    }

    /// Informer handler for ReplicaSets: wakes the owning Rollout, or for an orphan the
    /// Rollouts of its namespace whose selector matches it.
    pub fn on_replica_set(&self, ev: &InformerEvent) {
        let (new, old) = ev.new_and_old();
        for obj in std::iter::once(new).chain(old) {
            match controller_of(obj) {
                Some(("Rollout", name, _)) => {
                    self.queue.add(format!("{}/{name}", meta::namespace(obj)));
                }
                Some(_) => {}
                None => self.enqueue_selecting(obj),
            }
        }
    }

    fn enqueue_selecting(&self, rs: &Value) {
        let Some(rollouts) = rollout_info().and_then(|i| self.informers.get(i)) else {
            return;
        };
        let labels = rs
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        for r in rollouts.list_namespace(meta::namespace(rs)) {
            let Some(selector) = r.pointer("/spec/selector") else {
                continue;
            };
            if let Ok(sel) = slipway_selectors::LabelSelector::from_object(Some(selector))
                && !selector.as_object().is_none_or(serde_json::Map::is_empty)
                && sel.matches(&labels)
            {
                self.queue.add(object_key(&r));
            }
        }
    }

    /// Informer handler for pods: a deleted pod wakes its Rollout (Recreate waits for the
    /// last old pod to go); a changed one too (availability moves canary steps).
    pub fn on_pod(&self, ev: &InformerEvent) {
        let pod = ev.object();
        let Some(("ReplicaSet", rs_name, _)) = controller_of(pod) else {
            return;
        };
        let Some(info) = resources::lookup("apps", "v1", "replicasets") else {
            return;
        };
        let Some(rs) = self
            .informers
            .get(info)
            .and_then(|i| i.get(&format!("{}/{rs_name}", meta::namespace(pod))))
        else {
            return;
        };
        if let Some(("Rollout", r, _)) = controller_of(&rs) {
            self.queue.add(format!("{}/{r}", meta::namespace(pod)));
        }
    }

    /// Informer handler for Services: wakes the Rollouts of the namespace that name it.
    pub fn on_service(&self, ev: &InformerEvent) {
        let svc = ev.object();
        let Some(rollouts) = rollout_info().and_then(|i| self.informers.get(i)) else {
            return;
        };
        let name = meta::name(svc);
        for r in rollouts.list_namespace(meta::namespace(svc)) {
            if let Ok(typed) = typed::<Rollout>(&r)
                && service_names(&typed).iter().any(|n| n == name)
            {
                self.queue.add(object_key(&r));
            }
        }
    }

    /// Informer handler for EndpointSlices: wakes the Rollouts of the namespace that name
    /// the slice's Service (blue-green waits for the active Service's endpoints to move).
    pub fn on_slice(&self, ev: &InformerEvent) {
        let slice = ev.object();
        let Some(svc) = slice_service(slice) else {
            return;
        };
        let Some(rollouts) = rollout_info().and_then(|i| self.informers.get(i)) else {
            return;
        };
        for r in rollouts.list_namespace(meta::namespace(slice)) {
            if let Ok(typed) = typed::<Rollout>(&r)
                && typed.spec.strategy.blue_green.is_some()
                && service_names(&typed).iter().any(|n| n == svc)
            {
                self.queue.add(object_key(&r));
            }
        }
    }

    /// Processes the queue until it shuts down.
    pub async fn run(self: Arc<Self>) {
        crate::runtime::work(&self.queue, "rollout", |key| {
            let this = self.clone();
            async move { this.sync(&key).await }
        })
        .await;
    }

    fn observe(&self, r: &Value) -> Result<ObservedRollout, ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let pod_info = resources::lookup("", "v1", "pods").expect("served");
        let svc_info = resources::lookup("", "v1", "services").expect("served");
        let rollout: Rollout = typed(r)?;
        let owned = self.informers.controlled_by(rs_info, meta::uid(r));
        let orphans = self.informers.orphans(rs_info, meta::namespace(r));
        let slice_info = resources::lookup("discovery.k8s.io", "v1", "endpointslices");
        let pods: Vec<Pod> = if crate::rollout::util::is_recreate(&rollout)
            || rollout.spec.strategy.blue_green.is_some()
        {
            owned
                .iter()
                .flat_map(|rs| self.informers.controlled_by(pod_info, meta::uid(rs)))
                .filter_map(|p| typed(&p).ok())
                .collect()
        } else {
            Vec::new()
        };
        let services: Vec<Service> = match self.informers.get(svc_info) {
            Some(inf) => service_names(&rollout)
                .iter()
                .filter_map(|n| inf.get(&format!("{}/{n}", meta::namespace(r))))
                .filter_map(|s| typed(&s).ok())
                .collect(),
            None => Vec::new(),
        };
        let names = service_names(&rollout);
        let endpoint_slices: Vec<EndpointSlice> = match slice_info
            .filter(|_| !names.is_empty())
            .and_then(|i| self.informers.get(i))
        {
            Some(inf) => inf
                .list_namespace(meta::namespace(r))
                .iter()
                .filter(|sl| slice_service(sl).is_some_and(|n| names.iter().any(|m| m == n)))
                .filter_map(|sl| typed(sl).ok())
                .collect(),
            None => Vec::new(),
        };
        let replica_sets: Vec<ReplicaSet> = owned
            .iter()
            .chain(&orphans)
            .map(|rs| typed(rs))
            .collect::<Result<_, _>>()?;
        Ok(ObservedRollout {
            rollout,
            replica_sets,
            pods,
            services,
            endpoint_slices,
            now: jiff_now(&self.clock),
        })
    }

    async fn sync(&self, key: &str) -> Result<Option<Requeue>, ApiError> {
        let Some(info) = rollout_info() else {
            return Ok(None);
        };
        let Some(r) = self.informers.get(info).and_then(|i| i.get(key)) else {
            return Ok(None);
        };
        let observed = self.observe(&r)?;
        let plan = rollout::plan(&observed).map_err(|e| ApiError::internal(e.to_string()))?;
        let now = (self.clock)();
        for Step {
            action,
            events: step_events,
        } in &plan.steps
        {
            self.apply(&observed.rollout, action).await?;
            for event in step_events {
                events::record(&self.client, &r, event, COMPONENT, now).await;
            }
        }
        let mut status = plan.status.clone();
        let hint = self
            .runs
            .advance(&observed.rollout, &plan.runs, &mut status, observed.now)
            .await;
        let stored = observed.rollout.status.clone().unwrap_or_default();
        if status != stored {
            let mut updated = observed.rollout.clone();
            updated.status = Some(status);
            let mut body = untyped(&updated)?;
            body["apiVersion"] = Value::String(slipway_rollout::API_VERSION.into());
            body["kind"] = Value::String(slipway_rollout::KIND.into());
            self.client.replace_status(info, body).await?;
        }
        for event in &plan.events {
            events::record(&self.client, &r, event, COMPONENT, now).await;
        }
        let requeue = match (plan.requeue, hint) {
            (Some(Requeue::Now), _) => Some(Requeue::Now),
            (Some(Requeue::After(a)), Some(b)) => Some(Requeue::After(a.min(b))),
            (Some(Requeue::After(a)), None) | (None, Some(a)) => Some(Requeue::After(a)),
            (None, None) => None,
        };
        Ok(requeue)
    }

    async fn apply(&self, r: &Rollout, action: &RolloutAction) -> Result<(), ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let svc_info = resources::lookup("", "v1", "services").expect("served");
        let ns = r.metadata.namespace.as_deref();
        match action {
            RolloutAction::AdoptReplicaSet(p) | RolloutAction::ReleaseReplicaSet(p) => {
                self.client
                    .patch(
                        rs_info,
                        ns,
                        &p.name,
                        PatchType::Strategic,
                        p.strategic_merge_patch(),
                    )
                    .await?;
            }
            RolloutAction::CreateReplicaSet(rs) => {
                match self.client.create(rs_info, untyped(rs)?).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {
                        // Ours (a cache behind) or a hash collision: both resolve on a
                        // re-plan from fresh observations; a collision is detected by the
                        // planner (the name is taken by another ReplicaSet).
                        return Err(e);
                    }
                    Err(e) => {
                        let event = crate::Event::warning(
                            crate::conditions::REPLICA_SET_CREATE_ERROR,
                            format!(
                                "Failed to create new replica set \"{}\": {}",
                                rs.metadata.name.as_deref().unwrap_or(""),
                                e.message
                            ),
                        );
                        let obj = untyped(r)?;
                        events::record(&self.client, &obj, &event, COMPONENT, (self.clock)()).await;
                        return Err(e);
                    }
                }
            }
            RolloutAction::UpdateReplicaSet(rs) => {
                self.client.replace(rs_info, untyped(rs)?).await?;
            }
            RolloutAction::DeleteReplicaSet(k) => {
                crate::reconcile::deployment::delete_replica_set(&self.client, k).await?;
            }
            RolloutAction::PatchService { name, patch } => {
                self.client
                    .patch(svc_info, ns, name, PatchType::Merge, patch.clone())
                    .await?;
            }
        }
        Ok(())
    }
}
