//! The Deployment controller's planner: one pass of `syncDeployment` (§2.2) as a value.
//!
//! Drive it like this: on every trigger (Deployment or owned ReplicaSet change, pod deletion
//! for Recreate, a [`Requeue`] coming due), list the Deployment, every ReplicaSet of its
//! namespace that it controls or that has no controller, and the pods controlled by those
//! ReplicaSets; call [`plan`] with the clock reading; then apply [`DeploymentPlan::steps`]
//! in order, stopping at the first failure (re-queue with back-off; the next pass re-plans
//! from fresh observations). Record each step's events after it succeeds, and
//! [`DeploymentPlan::events`] in any case. Updates carry the observed `resourceVersion`, so a
//! stale plan fails with a conflict instead of overwriting newer state. If creating the new
//! ReplicaSet fails, use [`resolve_create_conflict`] (`AlreadyExists`) or [`create_failed`]
//! (any other error) to get the status update Kubernetes writes in that case.

mod cleanup;
pub mod pass;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod scale;

pub use cleanup::cleanup_deployment;
pub use pass::{NewReplicaSet, Pass, ScaleDirection};

use crate::annotations::{REVISION, rollback_to};
use crate::conditions::{
    DEPLOYMENT_PAUSED, DEPLOYMENT_RESUMED, FALSE, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING,
    REPLICA_SET_CREATE_ERROR, UNKNOWN, get_deployment_condition, new_deployment_condition, reason,
    set_deployment_condition,
};
use crate::error::PlanError;
use crate::ownership::{
    OwnershipChange, OwnershipPatch, claim, controller_of, controller_ref, selector_matcher,
    selects_everything,
};
use crate::spec::{
    generation, has_progress_deadline, is_being_deleted, is_paused, is_recreate, name,
};
use crate::status::status_equal;
use crate::template::{equal_ignore_hash, rs_template};
use crate::{Event, Requeue, Step};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use pass::RsWrite;
use recreate::PodPhaseMap;
use std::collections::BTreeSet;

/// What one pass observed.
#[derive(Clone, Debug)]
pub struct ObservedDeployment {
    /// The Deployment as stored (defaulted).
    pub deployment: Deployment,
    /// ReplicaSets of the namespace that the Deployment controls or that have no controller
    /// (orphans matching the selector are adopted). Others are ignored.
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods controlled by those ReplicaSets (others are ignored); only Recreate reads them.
    pub pods: Vec<Pod>,
    /// The clock reading for this pass.
    pub now: Timestamp,
}

/// A reference to an object to delete, with optional preconditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (precondition).
    pub uid: String,
    /// resourceVersion as observed.
    pub resource_version: String,
}

/// One write of a Deployment pass.
#[derive(Clone, Debug, PartialEq)]
pub enum DeploymentAction {
    /// Patch a ReplicaSet to add the Deployment as its controller; the pass ends after
    /// claiming and asks for an immediate re-queue.
    AdoptReplicaSet(OwnershipPatch),
    /// Patch a ReplicaSet to drop the Deployment's controller reference.
    ReleaseReplicaSet(OwnershipPatch),
    /// Create this ReplicaSet (name `<deployment>-<hash>`). On `AlreadyExists` see
    /// [`resolve_create_conflict`]; on other errors [`create_failed`].
    CreateReplicaSet(ReplicaSet),
    /// Replace this ReplicaSet (its `metadata.resourceVersion` is the observed one).
    UpdateReplicaSet(ReplicaSet),
    /// Delete this ReplicaSet (history cleanup).
    DeleteReplicaSet(ObjectKey),
    /// Replace the Deployment (main resource; legacy rollback only).
    UpdateDeployment(Deployment),
    /// Replace the Deployment through `/status`; its annotations (the revision) are kept by
    /// the status strategy.
    UpdateDeploymentStatus(Deployment),
}

/// The result of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    /// Writes, in the order to apply them.
    pub steps: Vec<Step<DeploymentAction>>,
    /// Events to record whatever happens to the steps.
    pub events: Vec<Event>,
    /// When to look again even without a trigger.
    pub requeue: Option<Requeue>,
    /// Indices into `steps` of the old ReplicaSets' scale-down in a rolling update. As
    /// Kubernetes' `reconcileOldReplicaSets` ignores its errors, the first of these steps
    /// that fails skips the rest of them (and its own Events), and the pass goes on.
    pub failure_ignored: BTreeSet<usize>,
}

impl DeploymentPlan {
    /// The actions, in order.
    pub fn actions(&self) -> impl Iterator<Item = &DeploymentAction> {
        self.steps.iter().map(|s| &s.action)
    }

    /// Every event (unconditional ones first, then each step's).
    pub fn all_events(&self) -> Vec<&Event> {
        self.events
            .iter()
            .chain(self.steps.iter().flat_map(|s| &s.events))
            .collect()
    }

    /// The Deployment status this plan writes, if any.
    pub fn new_status(&self) -> Option<&k8s_openapi::api::apps::v1::DeploymentStatus> {
        self.actions().find_map(|a| match a {
            DeploymentAction::UpdateDeploymentStatus(d) => d.status.as_ref(),
            _ => None,
        })
    }
}

/// Plans one sync pass (syncDeployment, §2.2): selector check, claiming, then
/// deleting → status only; paused → scale only; rollback annotation → rollback; scaling
/// event → proportional scale; otherwise Recreate or RollingUpdate.
pub fn plan(observed: &ObservedDeployment) -> Result<DeploymentPlan, PlanError> {
    let d = &observed.deployment;
    let mut plan = DeploymentPlan::default();
    let selector = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    if selects_everything(&selector) {
        plan.events.push(Event::warning(
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        ));
        let generation = generation(&d.metadata);
        let mut updated = d.clone();
        let status = updated.status.get_or_insert_with(Default::default);
        if status.observed_generation.unwrap_or(0) < generation {
            status.observed_generation = Some(generation);
            plan.steps
                .push(step(DeploymentAction::UpdateDeploymentStatus(updated)));
        }
        return Ok(plan);
    }
    let matcher = selector_matcher(&selector, name(&d.metadata))?;
    let owner = controller_ref("apps/v1", "Deployment", &d.metadata);
    let deleting = is_being_deleted(&d.metadata);
    let metas: Vec<_> = observed
        .replica_sets
        .iter()
        .map(|rs| &rs.metadata)
        .collect();
    let claims = claim(&owner, deleting, &matcher, &metas);
    if !claims.patches.is_empty() {
        for patch in claims.patches {
            let action = match patch.change {
                OwnershipChange::Adopt(_) => DeploymentAction::AdoptReplicaSet(patch),
                OwnershipChange::Release { .. } => DeploymentAction::ReleaseReplicaSet(patch),
            };
            plan.steps.push(step(action));
        }
        plan.requeue = Some(Requeue::Now);
        return Ok(plan);
    }
    let owned: Vec<ReplicaSet> = claims
        .owned
        .iter()
        .map(|&i| observed.replica_sets[i].clone())
        .collect();
    let pods = pod_phases_by_owner(&owned, &observed.pods);
    let mut pass = Pass::new(d.clone(), owned, observed.now);

    if deleting {
        pass.ensure_new_replica_set(false)?;
        let basis = pass.status_basis();
        pass.sync_deployment_status(&basis);
        return Ok(finish(pass, plan, false));
    }
    check_paused_conditions(&mut pass);
    if is_paused(d) {
        sync(&mut pass)?;
        return Ok(finish(pass, plan, false));
    }
    if let Some(target) = rollback_to(d) {
        let outcome = rollback::rollback(&mut pass, target)?;
        plan.events.extend(outcome.warnings);
        if outcome.collision {
            return Ok(finish(pass, plan, false));
        }
        let mut planned = finish(pass, plan, true);
        if let Some(last) = planned.steps.last_mut() {
            last.events.extend(outcome.on_update);
        }
        return Ok(planned);
    }
    pass.ensure_new_replica_set(false)?;
    if scale::is_scaling_event(&pass) {
        sync(&mut pass)?;
    } else if is_recreate(d) {
        recreate::rollout(&mut pass, &pods)?;
    } else {
        rolling::rollout(&mut pass)?;
    }
    Ok(finish(pass, plan, false))
}

fn step<A>(action: A) -> Step<A> {
    Step {
        action,
        events: Vec::new(),
    }
}

/// sync: the scale-only pass (paused Deployments and scaling events).
fn sync(pass: &mut Pass) -> Result<(), PlanError> {
    pass.ensure_new_replica_set(false)?;
    let basis = pass.status_basis();
    scale::scale(pass);
    if is_paused(&pass.deployment) && rollback_to(&pass.deployment).is_none() {
        let old = pass.old_indices();
        cleanup_deployment(pass, &old, &basis);
    }
    pass.sync_deployment_status(&basis);
    Ok(())
}

/// checkPausedConditions: Progressing Unknown/DeploymentPaused when pausing,
/// Unknown/DeploymentResumed when resuming (only with a deadline, never over a timeout).
fn check_paused_conditions(pass: &mut Pass) {
    if !has_progress_deadline(&pass.deployment) {
        return;
    }
    let paused = is_paused(&pass.deployment);
    let now = pass.now;
    let status = pass.deployment.status.get_or_insert_with(Default::default);
    let current_reason =
        get_deployment_condition(status, PROGRESSING).map(|c| reason(c).to_string());
    if current_reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return;
    }
    let paused_condition = current_reason.as_deref() == Some(DEPLOYMENT_PAUSED);
    if paused && !paused_condition {
        let c = new_deployment_condition(
            PROGRESSING,
            UNKNOWN,
            DEPLOYMENT_PAUSED,
            "Deployment is paused",
            now,
        );
        set_deployment_condition(status, c);
    } else if !paused && paused_condition {
        let c = new_deployment_condition(
            PROGRESSING,
            UNKNOWN,
            DEPLOYMENT_RESUMED,
            "Deployment is resumed",
            now,
        );
        set_deployment_condition(status, c);
    }
}

/// Pod phases grouped by the UID of the owning ReplicaSet (only pods of `rss`).
fn pod_phases_by_owner(rss: &[ReplicaSet], pods: &[Pod]) -> PodPhaseMap {
    let uids: BTreeSet<&str> = rss
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    let mut map = PodPhaseMap::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            continue;
        };
        if !uids.contains(owner.uid.as_str()) {
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        map.entry(owner.uid.clone()).or_default().push(phase);
    }
    map
}

/// Turns the pass log into ordered steps. `spec_update` plans a main-resource Deployment
/// update (rollback) instead of a status write.
fn finish(pass: Pass, mut plan: DeploymentPlan, spec_update: bool) -> DeploymentPlan {
    for (write, events, failure_ignored) in pass.replica_set_writes() {
        let action = match write {
            RsWrite::Create(rs) => DeploymentAction::CreateReplicaSet(rs),
            RsWrite::Update(rs) => DeploymentAction::UpdateReplicaSet(rs),
            RsWrite::Delete(key) => DeploymentAction::DeleteReplicaSet(key),
        };
        if failure_ignored {
            plan.failure_ignored.insert(plan.steps.len());
        }
        plan.steps.push(Step { action, events });
    }
    plan.requeue = pass.requeue;
    if spec_update {
        plan.steps
            .push(step(DeploymentAction::UpdateDeployment(pass.deployment)));
        return plan;
    }
    let stored_status = pass.observed.status.clone().unwrap_or_default();
    let new_status = pass.deployment.status.clone().unwrap_or_default();
    let annotations_changed =
        pass.observed.metadata.annotations != pass.deployment.metadata.annotations;
    if annotations_changed || !status_equal(&stored_status, &new_status) {
        plan.steps
            .push(step(DeploymentAction::UpdateDeploymentStatus(
                pass.deployment,
            )));
    }
    plan
}

/// How to treat `AlreadyExists` when creating the new ReplicaSet.
#[derive(Clone, Debug, PartialEq)]
pub enum CreateConflict {
    /// The existing ReplicaSet is this Deployment's new one: re-queue and re-plan.
    Ours,
    /// A hash collision: write this Deployment through `/status` (collisionCount + 1) and
    /// re-queue; the next pass computes a different name.
    Collision(Box<Deployment>),
}

/// Decides what an `AlreadyExists` on the new ReplicaSet's name means, given the existing
/// object: ours if controlled by the Deployment with an equal template (ignoring the hash).
pub fn resolve_create_conflict(d: &Deployment, existing: &ReplicaSet) -> CreateConflict {
    let ours = controller_of(&existing.metadata)
        .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref());
    let same_template = match (d.spec.as_ref(), rs_template(existing)) {
        (Some(spec), Some(t)) => equal_ignore_hash(&spec.template, t),
        _ => false,
    };
    if ours && same_template {
        return CreateConflict::Ours;
    }
    let mut updated = d.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    CreateConflict::Collision(Box::new(updated))
}

/// What Kubernetes records when creating the new ReplicaSet fails with `error`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateFailure {
    /// With a progress deadline: the Deployment with Progressing False/ReplicaSetCreateError,
    /// to write through `/status`.
    pub status_update: Option<Deployment>,
    /// Warning `ReplicaSetCreateError` event.
    pub event: Event,
}

/// The status update and event for a failed creation of ReplicaSet `rs_name`.
pub fn create_failed(d: &Deployment, rs_name: &str, error: &str, now: Timestamp) -> CreateFailure {
    let message = format!("Failed to create new replica set \"{rs_name}\": {error}");
    let status_update = has_progress_deadline(d).then(|| {
        let mut updated = d.clone();
        let c = new_deployment_condition(
            PROGRESSING,
            FALSE,
            REPLICA_SET_CREATE_ERROR,
            message.clone(),
            now,
        );
        set_deployment_condition(updated.status.get_or_insert_with(Default::default), c);
        updated
    });
    CreateFailure {
        status_update,
        event: Event::warning(REPLICA_SET_CREATE_ERROR, message),
    }
}

/// The Deployment's current revision annotation, if any.
pub fn current_revision(d: &Deployment) -> Option<String> {
    crate::annotations::get(&d.metadata, REVISION)
}

/// getDeploymentsForReplicaSet: the Deployments of the ReplicaSet's namespace whose non-empty
/// selector matches its labels (to route an orphan ReplicaSet's events). None → error.
pub fn deployments_for_replica_set<'a>(
    rs: &ReplicaSet,
    deployments: &'a [Deployment],
) -> Result<Vec<&'a Deployment>, PlanError> {
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    let mut found = Vec::new();
    for d in deployments {
        if d.metadata.namespace != rs.metadata.namespace {
            continue;
        }
        let Some(selector) = d.spec.as_ref().map(|s| &s.selector) else {
            continue;
        };
        if selects_everything(selector) {
            continue;
        }
        let Ok(matcher) = selector_matcher(selector, name(&d.metadata)) else {
            continue;
        };
        if matcher.matches(&labels) {
            found.push(d);
        }
    }
    if found.is_empty() {
        let printed: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        return Err(PlanError::NoDeploymentForReplicaSet {
            name: name(&rs.metadata).to_string(),
            namespace: rs.metadata.namespace.clone().unwrap_or_default(),
            labels: printed.join(" "),
        });
    }
    Ok(found)
}

/// Whether a pod deletion should trigger a sync of its Deployment: only for Recreate, and
/// only when no pod of the Deployment remains (`remaining_pods`), so the new ReplicaSet can be
/// created without waiting for a resync.
pub fn should_sync_on_pod_deletion(d: &Deployment, remaining_pods: usize) -> bool {
    is_recreate(d) && remaining_pods == 0
}
