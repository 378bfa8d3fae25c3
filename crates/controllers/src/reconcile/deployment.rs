//! The Deployment reconciler: observes a Deployment, its ReplicaSets and their pods from the
//! shared informers, asks [`crate::deployment::plan`] for one pass, and applies the steps in
//! order, stopping at the first failure.

use crate::deployment::{self, CreateConflict, DeploymentAction, ObservedDeployment};
use crate::events;
use crate::runtime::{Clock, Informers, jiff_now};
use crate::{Requeue, Step};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use slipway_client::{Client, DeleteParams, InformerEvent, PatchType, WorkQueue, object_key};
use slipway_core::{ApiError, meta, resources};
use std::sync::Arc;

const COMPONENT: &str = "deployment-controller";

/// The controller reference of an object: (kind, name, uid).
pub(crate) fn controller_of(obj: &Value) -> Option<(&str, &str, &str)> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| {
            Some((
                r.get("kind")?.as_str()?,
                r.get("name")?.as_str()?,
                r.get("uid")?.as_str()?,
            ))
        })
}

/// Decodes a cached object straight from the tree (no copy of the tree first).
fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ApiError::internal(format!("decoding {}: {e}", meta::name(v))))
}

fn untyped<T: serde::Serialize>(t: &T) -> Result<Value, ApiError> {
    serde_json::to_value(t).map_err(|e| ApiError::internal(e.to_string()))
}

/// The Deployment controller.
pub struct DeploymentController<C: Client> {
    client: C,
    informers: Informers,
    clock: Clock,
    queue: WorkQueue,
    recorder: events::Recorder,
}

impl<C: Client> DeploymentController<C> {
    /// A controller over shared informers, recording Events through `recorder`.
    pub fn new(
        client: C,
        informers: Informers,
        clock: Clock,
        recorder: events::Recorder,
    ) -> Arc<Self> {
        Arc::new(DeploymentController {
            client,
            informers,
            clock,
            queue: WorkQueue::new(),
            recorder,
        })
    }

    /// Informer handler for Deployments.
    pub fn on_deployment(&self, ev: &InformerEvent) {
        let obj = ev.object();
        self.queue.add(object_key(obj));
    }

    /// Informer handler for ReplicaSets: wakes the owning Deployment, or for an orphan, the
    /// Deployments whose selector matches it.
    pub fn on_replica_set(&self, ev: &InformerEvent) {
        let (new, old) = ev.new_and_old();
        for obj in std::iter::once(new).chain(old) {
            match controller_of(obj) {
                Some(("Deployment", name, _)) => {
                    self.queue.add(format!("{}/{name}", meta::namespace(obj)));
                }
                Some(_) => {}
                None => self.enqueue_selecting(obj),
            }
        }
    }

    fn enqueue_selecting(&self, rs: &Value) {
        let Some(info) = resources::lookup("apps", "v1", "deployments") else {
            return;
        };
        let Some(deployments) = self.informers.get(info) else {
            return;
        };
        let Ok(rs_typed) = typed::<ReplicaSet>(rs) else {
            return;
        };
        let candidates: Vec<Deployment> = deployments
            .list_namespace(meta::namespace(rs))
            .iter()
            .filter_map(|d| typed(d).ok())
            .collect();
        if let Ok(found) = deployment::deployments_for_replica_set(&rs_typed, &candidates) {
            for d in found {
                self.queue.add(format!(
                    "{}/{}",
                    meta::namespace(rs),
                    d.metadata.name.as_deref().unwrap_or("")
                ));
            }
        }
    }

    /// Informer handler for pods, as Kubernetes' `deletePod`: a deleted pod wakes its
    /// Deployment only when that is a Recreate one with no pod of its ReplicaSets left (it
    /// waits for the last old pod to go). A rolling update follows its ReplicaSets' status.
    pub fn on_pod(&self, ev: &InformerEvent) {
        let InformerEvent::Deleted(pod) = ev else {
            return;
        };
        let Some(("ReplicaSet", rs_name, _)) = controller_of(pod) else {
            return;
        };
        let (Some(rs_info), Some(d_info), Some(pod_info)) = (
            resources::lookup("apps", "v1", "replicasets"),
            resources::lookup("apps", "v1", "deployments"),
            resources::lookup("", "v1", "pods"),
        ) else {
            return;
        };
        let namespace = meta::namespace(pod);
        let Some(rs) = self
            .informers
            .get(rs_info)
            .and_then(|i| i.get(&format!("{namespace}/{rs_name}")))
        else {
            return;
        };
        let Some(("Deployment", d_name, _)) = controller_of(&rs) else {
            return;
        };
        let key = format!("{namespace}/{d_name}");
        let Some(d) = self.informers.get(d_info).and_then(|i| i.get(&key)) else {
            return;
        };
        if d.pointer("/spec/strategy/type").and_then(Value::as_str) != Some("Recreate") {
            return;
        }
        // The deleted pod has left the cache already.
        let pods_left = self
            .informers
            .controlled_by(rs_info, meta::uid(&d))
            .iter()
            .any(|rs| {
                !self
                    .informers
                    .controlled_by(pod_info, meta::uid(rs))
                    .is_empty()
            });
        if !pods_left {
            self.queue.add(key);
        }
    }

    /// Processes the queue until it shuts down.
    pub async fn run(self: Arc<Self>) {
        crate::runtime::work(&self.queue, "deployment", |key| {
            let this = self.clone();
            async move { this.sync(&key).await }
        })
        .await;
    }

    fn observe(&self, d: &Value) -> Result<ObservedDeployment, ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let pod_info = resources::lookup("", "v1", "pods").expect("served");
        let deployment: Deployment = typed(d)?;
        let owned = self.informers.controlled_by(rs_info, meta::uid(d));
        // Orphans matching the selector are adopted by the planner.
        let orphans = self.informers.orphans(rs_info, meta::namespace(d));
        // Only Recreate looks at pods (it waits for the old ones to be gone).
        let recreate = deployment
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        let pods: Vec<Pod> = if recreate {
            owned
                .iter()
                .flat_map(|rs| self.informers.controlled_by(pod_info, meta::uid(rs)))
                .filter_map(|p| typed(&p).ok())
                .collect()
        } else {
            Vec::new()
        };
        Ok(ObservedDeployment {
            deployment,
            replica_sets: owned
                .iter()
                .chain(&orphans)
                .map(|rs| typed(rs))
                .collect::<Result<_, _>>()?,
            pods,
            now: jiff_now(&self.clock),
        })
    }

    async fn sync(&self, key: &str) -> Result<Option<Requeue>, ApiError> {
        let info = resources::lookup("apps", "v1", "deployments").expect("served");
        let Some(d) = self.informers.get(info).and_then(|i| i.get(key)) else {
            return Ok(None);
        };
        let observed = self.observe(&d)?;
        let plan = deployment::plan(&observed).map_err(|e| ApiError::internal(e.to_string()))?;
        let now = (self.clock)();
        for event in &plan.events {
            self.recorder.record(&d, event, COMPONENT, now);
        }
        let mut skipping_ignored = false;
        for (
            index,
            Step {
                action,
                events: step_events,
            },
        ) in plan.steps.iter().enumerate()
        {
            let failure_ignored = plan.failure_ignored.contains(&index);
            if failure_ignored && skipping_ignored {
                continue;
            }
            match self.apply(&observed.deployment, action).await {
                Ok(()) => {}
                Err(e) if failure_ignored => {
                    tracing::debug!(key, error = %e, "scaling down an old ReplicaSet failed; going on, as Kubernetes does");
                    skipping_ignored = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            for event in step_events {
                self.recorder.record(&d, event, COMPONENT, now);
            }
        }
        Ok(plan.requeue)
    }

    async fn apply(&self, d: &Deployment, action: &DeploymentAction) -> Result<(), ApiError> {
        let rs_info = resources::lookup("apps", "v1", "replicasets").expect("served");
        let d_info = resources::lookup("apps", "v1", "deployments").expect("served");
        let ns = d.metadata.namespace.as_deref();
        match action {
            DeploymentAction::AdoptReplicaSet(p) | DeploymentAction::ReleaseReplicaSet(p) => {
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
            DeploymentAction::CreateReplicaSet(rs) => {
                let name = rs.metadata.name.clone().unwrap_or_default();
                match self.client.create(rs_info, untyped(rs)?).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {
                        let Some(existing) = self.client.get(rs_info, ns, &name).await? else {
                            return Err(e);
                        };
                        match deployment::resolve_create_conflict(d, &typed(&existing)?) {
                            CreateConflict::Ours => {}
                            CreateConflict::Collision(updated) => {
                                self.client
                                    .replace_status(d_info, untyped(&*updated)?)
                                    .await?;
                            }
                        }
                        return Err(ApiError::conflict(rs_info, &name));
                    }
                    Err(e) => {
                        let failure =
                            deployment::create_failed(d, &name, &e.message, jiff_now(&self.clock));
                        let obj = untyped(d)?;
                        self.recorder
                            .record(&obj, &failure.event, COMPONENT, (self.clock)());
                        if let Some(update) = failure.status_update {
                            self.client
                                .replace_status(d_info, untyped(&update)?)
                                .await?;
                        }
                        return Err(e);
                    }
                }
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                self.client.replace(rs_info, untyped(rs)?).await?;
            }
            DeploymentAction::DeleteReplicaSet(k) => {
                delete_replica_set(&self.client, k).await?;
            }
            DeploymentAction::UpdateDeployment(updated) => {
                self.client.replace(d_info, untyped(updated)?).await?;
            }
            DeploymentAction::UpdateDeploymentStatus(updated) => {
                self.client
                    .replace_status(d_info, untyped(updated)?)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Deletes a ReplicaSet of history clean-up: background propagation, preconditions on the
/// uid and resourceVersion it was planned with; already gone counts as done.
pub(crate) async fn delete_replica_set<C: Client>(
    client: &C,
    k: &crate::deployment::ObjectKey,
) -> Result<(), ApiError> {
    let rs_info = resources::lookup("apps", "v1", "replicasets").expect("replicasets are served");
    let params = DeleteParams {
        propagation_policy: Some("Background".into()),
        precondition_uid: Some(k.uid.clone()).filter(|u| !u.is_empty()),
        precondition_resource_version: Some(k.resource_version.clone()).filter(|r| !r.is_empty()),
        ..DeleteParams::default()
    };
    match client
        .delete(rs_info, Some(&k.namespace), &k.name, params)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
