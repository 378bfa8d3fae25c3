//! The Rollout controller's planner (`slipway.dev/v1alpha1`, kind `Rollout`): one sync pass
//! as a value, like [`crate::deployment::plan`].
//!
//! Drive it like this: on every trigger (the Rollout, one of its ReplicaSets or their pods,
//! one of the Services its strategy names, or a [`Requeue`] coming due), list the Rollout,
//! the ReplicaSets of its namespace that it controls or that have no controller, the pods of
//! those ReplicaSets (Recreate only), and the Services named by the strategy; call [`plan`]
//! with the clock reading; apply [`RolloutPlan::steps`] in order, stopping at the first
//! failure; then give [`RolloutPlan::runs`] and [`RolloutPlan::status`] to the hook and
//! analysis executor ([`crate::rollout_runs`]), write the status through `/status` if it
//! differs from the stored one, and record [`RolloutPlan::events`] once it is written.
//!
//! Everything the planner needs between passes is in the Rollout's status and in the objects
//! themselves, so a restart resumes at the same step: the canary weight is the
//! `slipway.dev/traffic-split` annotation of the stable Service, the active and preview
//! ReplicaSets are the `pod-template-hash` in those Services' selectors, finished hooks and
//! analyses are their records in the status. Writes are ordered so that a crash between two
//! of them never leaves traffic on a ReplicaSet the rollout does not allow: Service patches
//! (which move traffic away) come before the ReplicaSet scale-downs, and the status (which
//! records the step) comes last; a weight is raised only when the canary's pods for it are
//! already available.
//!
//! Strategies:
//! - `rollingUpdate` and `recreate`: the Deployment planner, run on the Rollout viewed as a
//!   Deployment ([`util::deployment_view`]); the `pre` hook gates the whole rollout, the
//!   `mid` hook (Recreate) runs once the old pods are gone; an abort (or a failed hook)
//!   rolls back by planning the view with the stable ReplicaSet's template.
//! - `blueGreen`: [`bluegreen`]. - `canary`: [`canary`].

pub mod basic;
pub mod bluegreen;
pub mod canary;
pub mod util;

use crate::Requeue;
use crate::conditions::{
    AVAILABLE, FALSE, MINIMUM_REPLICAS_AVAILABLE, MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_REPLICA_SET_AVAILABLE, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING, REPLICA_SET_UPDATED, TRUE,
    UNKNOWN, get_deployment_condition, new_deployment_condition, reason, set_deployment_condition,
};
use crate::deployment::pass::RsWrite;
use crate::deployment::{ObjectKey, Pass};
use crate::error::PlanError;
use crate::fenceposts::max_unavailable;
use crate::hash::compute_hash;
use crate::ownership::{
    OwnershipChange, OwnershipPatch, claim, controller_ref, selector_matcher, selects_everything,
};
use crate::rollout_runs::RunRequest;
use crate::spec::{is_being_deleted, name, rs_available_replicas, rs_spec_replicas};
use crate::{Event, Step};
use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use slipway_rollout::{Hook, PauseCondition, Rollout, RolloutStatus};
use std::collections::BTreeSet;
use std::time::Duration;
use util::{Gate, hook_final, parse_time, rs_hash, stamp};

pub use util::TRAFFIC_SPLIT;

/// What one pass observed.
#[derive(Clone, Debug)]
pub struct ObservedRollout {
    /// The Rollout as stored.
    pub rollout: Rollout,
    /// ReplicaSets of the namespace that the Rollout controls or that have no controller.
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods controlled by those ReplicaSets (Recreate and blue-green read them).
    pub pods: Vec<Pod>,
    /// The Services the strategy names (others are ignored).
    pub services: Vec<Service>,
    /// The EndpointSlices of those Services (blue-green reads them: the switch has reached
    /// the data plane once the active Service's endpoints are the new pods).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// The clock reading for this pass.
    pub now: Timestamp,
}

/// One write of a Rollout pass.
#[derive(Clone, Debug, PartialEq)]
pub enum RolloutAction {
    /// Add the Rollout as controller of a ReplicaSet (strategic-merge patch).
    AdoptReplicaSet(OwnershipPatch),
    /// Drop the Rollout's controller reference from a ReplicaSet.
    ReleaseReplicaSet(OwnershipPatch),
    /// Create this ReplicaSet.
    CreateReplicaSet(ReplicaSet),
    /// Replace this ReplicaSet (its `resourceVersion` is the observed one).
    UpdateReplicaSet(ReplicaSet),
    /// Delete this ReplicaSet (history clean-up).
    DeleteReplicaSet(ObjectKey),
    /// Merge-patch (RFC 7386) a Service of the Rollout's namespace: a selector's
    /// `pod-template-hash`, or the traffic-split annotation.
    PatchService {
        /// The Service's name.
        name: String,
        /// The merge patch.
        patch: Value,
    },
}

/// The result of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutPlan {
    /// Writes, in order; each step's events are recorded once it succeeded.
    pub steps: Vec<Step<RolloutAction>>,
    /// The Rollout status after this pass (before the executor advanced the runs). Write it
    /// through `/status` when it differs from the stored one.
    pub status: RolloutStatus,
    /// Events of the Rollout's transitions: record them once the status is written.
    pub events: Vec<Event>,
    /// Hooks and analyses that must be running now (see [`crate::rollout_runs`]).
    pub runs: Vec<RunRequest>,
    /// When to look again even without a trigger.
    pub requeue: Option<Requeue>,
}

impl RolloutPlan {
    /// The actions, in order.
    pub fn actions(&self) -> impl Iterator<Item = &RolloutAction> {
        self.steps.iter().map(|s| &s.action)
    }

    /// Every event (the steps' then the transitions').
    pub fn all_events(&self) -> Vec<&Event> {
        self.steps
            .iter()
            .flat_map(|s| &s.events)
            .chain(&self.events)
            .collect()
    }
}

/// The working state of one pass, shared by the strategies.
pub struct Ctx<'a> {
    /// What was observed.
    pub observed: &'a ObservedRollout,
    /// The Rollout.
    pub rollout: &'a Rollout,
    /// The clock.
    pub now: Timestamp,
    /// The stored status.
    pub old: RolloutStatus,
    /// The status being built.
    pub status: RolloutStatus,
    /// The ReplicaSets (working copies) and their changes, as the Deployment planner keeps
    /// them.
    pub pass: Pass,
    /// The ReplicaSets as observed (before this pass scaled anything).
    pub basis: Vec<ReplicaSet>,
    /// `pod-template-hash` of the template.
    pub current: String,
    /// `pod-template-hash` of the stable ReplicaSet.
    pub stable: Option<String>,
    /// Service patches, applied after creations and before updates.
    pub patches: Vec<Step<RolloutAction>>,
    /// Actions planned by the Deployment planner (rollingUpdate / recreate), used instead of
    /// [`Ctx::pass`] when set.
    pub deployment_steps: Option<Vec<Step<RolloutAction>>>,
    /// Transition events.
    pub events: Vec<Event>,
    /// Runs needed now.
    pub runs: Vec<RunRequest>,
    /// Earliest time-based re-check.
    pub requeue: Option<Duration>,
    /// Pause reasons of this pass (`CanaryPauseStep`, `BlueGreenPause`, ...).
    pub pauses: Vec<String>,
    /// The rollout is aborted (phase Aborted).
    pub aborted: bool,
    /// Everything converged (phase Healthy).
    pub healthy: bool,
    /// The rollout waits for pods to become available (the progress deadline runs).
    pub waiting_on_pods: bool,
    /// Why the rollout is degraded, if it is (besides the progress deadline).
    pub degraded: Option<String>,
    /// What the rollout waits for, for `status.message`.
    pub message: Option<String>,
    /// The Rollout's own Progressing condition is maintained by the Deployment planner.
    pub conditions_done: bool,
    /// Services already patched in this pass (name → patch), so reads see the new state.
    patched: Vec<(String, Value)>,
}

impl<'a> Ctx<'a> {
    /// Asks for a re-check after `d`.
    pub fn requeue_after(&mut self, d: Duration) {
        let d = d.max(Duration::from_millis(10));
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    /// Runs `progress` (one strategy's pass toward the new revision); when it returns a
    /// reason to abort, forgets everything it planned (so an abort never widens the new
    /// revision's traffic first) and begins the abort.
    pub fn progress_or_abort(
        &mut self,
        progress: impl FnOnce(&mut Ctx<'a>) -> Result<Option<String>, PlanError>,
    ) -> Result<(), PlanError> {
        let saved = (
            self.pass.clone(),
            self.patches.clone(),
            self.patched.clone(),
            self.runs.len(),
            self.events.len(),
            self.status.clone(),
            self.pauses.clone(),
            self.requeue,
        );
        if let Some(why) = progress(self)? {
            self.pass = saved.0;
            self.patches = saved.1;
            self.patched = saved.2;
            self.runs.truncate(saved.3);
            self.events.truncate(saved.4);
            self.status = saved.5;
            self.pauses = saved.6;
            self.requeue = saved.7;
            self.waiting_on_pods = false;
            self.message = None;
            self.begin_abort(&why);
        }
        Ok(())
    }

    /// A Service of the strategy, by name.
    pub fn service(&self, svc: &str) -> Option<&Service> {
        self.observed
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(svc))
    }

    /// The `pod-template-hash` a Service selects (after this pass's patches).
    pub fn service_hash(&self, svc: &str) -> Option<String> {
        if let Some(h) = self
            .patched
            .iter()
            .rev()
            .find(|(n, p)| n == svc && p.pointer("/spec/selector").is_some())
            .and_then(|(_, p)| p.pointer("/spec/selector/pod-template-hash"))
            .and_then(Value::as_str)
        {
            return Some(h.to_string());
        }
        util::service_selector(self.service(svc)?)
            .get(crate::annotations::POD_TEMPLATE_HASH_LABEL)
            .cloned()
    }

    /// Whether the endpoints of Service `svc` have followed its selector to `hash`: its
    /// EndpointSlices list at least one ready endpoint, and only pods of that hash. Until
    /// then the service proxy still sends new connections to the previous pods.
    pub fn endpoints_moved_to(&self, svc: &str, hash: &str) -> bool {
        let hash_of_pod: std::collections::BTreeMap<&str, Option<&str>> = self
            .observed
            .pods
            .iter()
            .map(|p| {
                let h = p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::annotations::POD_TEMPLATE_HASH_LABEL))
                    .map(String::as_str);
                (p.metadata.name.as_deref().unwrap_or(""), h)
            })
            .collect();
        let endpoints: Vec<_> = self
            .observed
            .endpoint_slices
            .iter()
            .filter(|sl| {
                sl.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .map(String::as_str)
                    == Some(svc)
            })
            .flat_map(|sl| sl.endpoints.iter())
            .collect();
        let on_hash = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
            e.target_ref
                .as_ref()
                .and_then(|t| t.name.as_deref())
                .and_then(|n| hash_of_pod.get(n).copied().flatten())
                == Some(hash)
        };
        let ready = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
            e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
        };
        endpoints.iter().all(on_hash) && endpoints.iter().any(ready)
    }

    /// Pins a Service's selector to `hash` (merge patch of that one key). Returns false
    /// when the Service does not exist.
    pub fn pin_service(&mut self, svc: &str, hash: &str) -> bool {
        if self.service(svc).is_none() {
            self.missing_service(svc);
            return false;
        }
        if self.service_hash(svc).as_deref() == Some(hash) {
            return true;
        }
        let patch = json!({"spec": {"selector": {"pod-template-hash": hash}}});
        self.patch(svc, patch);
        true
    }

    fn missing_service(&mut self, svc: &str) {
        let message = format!("Service {svc:?} not found");
        if self.message.is_none() {
            self.message = Some(message.clone());
        }
        if self.old.message.as_deref() != Some(message.as_str()) {
            let e = Event::warning("ServiceNotFound", message);
            if !self.events.contains(&e) {
                self.events.push(e);
            }
        }
    }

    fn patch(&mut self, svc: &str, patch: Value) {
        self.patched.push((svc.to_string(), patch.clone()));
        self.patches.push(Step {
            action: RolloutAction::PatchService {
                name: svc.to_string(),
                patch,
            },
            events: Vec::new(),
        });
    }

    /// The traffic-split annotation of a Service (after this pass's patches), parsed.
    pub fn traffic_split(&self, svc: &str) -> Option<Value> {
        if let Some((_, p)) = self
            .patched
            .iter()
            .rev()
            .find(|(n, p)| n == svc && p.pointer("/metadata/annotations").is_some())
        {
            let raw = p.pointer("/metadata/annotations")?.get(TRAFFIC_SPLIT)?;
            return raw.as_str().and_then(|s| serde_json::from_str(s).ok());
        }
        let raw = self
            .service(svc)?
            .metadata
            .annotations
            .as_ref()?
            .get(TRAFFIC_SPLIT)?;
        serde_json::from_str(raw).ok()
    }

    /// Sets the traffic-split annotation of a Service (no write when equal).
    pub fn set_traffic_split(&mut self, svc: &str, value: &Value) -> bool {
        if self.service(svc).is_none() {
            self.missing_service(svc);
            return false;
        }
        if self.traffic_split(svc).as_ref() == Some(value) {
            return true;
        }
        let text = value.to_string();
        self.patch(
            svc,
            json!({"metadata": {"annotations": {TRAFFIC_SPLIT: text}}}),
        );
        true
    }

    /// Index of the working ReplicaSet with this hash.
    pub fn index_of(&self, hash: &str) -> Option<usize> {
        self.pass
            .replica_sets
            .iter()
            .position(|rs| rs_hash(rs) == Some(hash))
    }

    /// Available pods of the ReplicaSet at `index`, as observed.
    pub fn available(&self, index: usize) -> i32 {
        rs_available_replicas(&self.pass.replica_sets[index])
    }

    /// `spec.replicas` of the ReplicaSet at `index`, as observed before this pass.
    pub fn observed_spec(&self, index: usize) -> i32 {
        self.pass
            .observed_replica_sets
            .get(index)
            .map_or(0, rs_spec_replicas)
    }

    /// Pods (`status.replicas`) of the ReplicaSet at `index`.
    pub fn pods(&self, index: usize) -> i32 {
        crate::spec::rs_status_replicas(&self.pass.replica_sets[index])
    }

    /// Scales the ReplicaSet at `index` (records `ScalingReplicaSet`).
    pub fn scale(&mut self, index: usize, replicas: i32) {
        self.pass.scale_and_record(index, replicas.max(0));
    }

    /// Ensures the ReplicaSet of the current template exists with `replicas` (created at
    /// that size); returns its index, or `None` on a hash collision (the pass then only
    /// writes the bumped `collisionCount`).
    pub fn ensure_current(&mut self, replicas: i32) -> Result<Option<usize>, PlanError> {
        if let Some(i) = self.pass.new_index {
            self.scale(i, replicas);
            return Ok(Some(i));
        }
        let before = self.pass.replica_sets.len();
        if self.pass.ensure_new_replica_set(true)? == crate::deployment::NewReplicaSet::Collision {
            let count = self
                .pass
                .deployment
                .status
                .as_ref()
                .and_then(|s| s.collision_count);
            self.status.collision_count = count;
            self.requeue_after(Duration::from_millis(1));
            return Ok(None);
        }
        let Some(i) = self.pass.new_index else {
            return Ok(None);
        };
        if i >= before {
            // Created by this pass: at exactly `replicas`, owned by the Rollout.
            let owner = controller_ref(
                slipway_rollout::API_VERSION,
                slipway_rollout::KIND,
                &self.rollout.metadata,
            );
            let rs = &mut self.pass.replica_sets[i];
            rs.metadata.owner_references = Some(vec![owner]);
            crate::spec::set_rs_spec_replicas(rs, replicas.max(0));
            let rs_name = name(&rs.metadata).to_string();
            self.pass.rs_events.retain(|(j, _)| *j != i);
            if replicas > 0 {
                self.pass.rs_events.push((
                    i,
                    Event::normal(
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {rs_name} to {replicas}"),
                    ),
                ));
            }
        } else {
            self.scale(i, replicas);
        }
        Ok(Some(i))
    }

    /// Scales every ReplicaSet whose hash is not in `keep` to 0; a ReplicaSet that goes to 0
    /// also gets a `ScaledDownOldReplicaSet` event.
    pub fn scale_down_others(&mut self, keep: &[&str]) {
        for i in 0..self.pass.replica_sets.len() {
            let hash = rs_hash(&self.pass.replica_sets[i])
                .unwrap_or("")
                .to_string();
            if keep.contains(&hash.as_str()) {
                continue;
            }
            if rs_spec_replicas(&self.pass.replica_sets[i]) > 0 {
                self.scale(i, 0);
                let rs_name = name(&self.pass.replica_sets[i].metadata).to_string();
                self.events.push(Event::normal(
                    "ScaledDownOldReplicaSet",
                    format!("Scaled down old replica set {rs_name} to 0"),
                ));
            }
        }
    }

    /// The gate of a hook of the current state; lists it as a run while not final.
    pub fn hook(&mut self, kind: &str, hook: &Hook, name: &str, hash: &str) -> Gate {
        let gate = util::hook_gate(&self.status, kind, name, hash);
        if gate == Gate::Wait {
            self.runs.push(util::hook_request(kind, name, hash, hook));
        }
        gate
    }

    /// The gate of an analysis; lists it as a run while not final.
    pub fn analysis(
        &mut self,
        name: &str,
        analysis: &slipway_rollout::Analysis,
        hash: &str,
        service: Option<&str>,
    ) -> Gate {
        let gate = util::analysis_gate(&self.status, name, hash);
        if gate == Gate::Wait {
            let stable = self.stable.clone();
            self.runs.push(util::analysis_request(
                name,
                hash,
                stable.as_deref(),
                service,
                analysis,
            ));
        }
        gate
    }

    /// Starts an abort of the current revision (a failed hook or analysis, the progress
    /// deadline): `status.abort` true with the reason as message.
    pub fn begin_abort(&mut self, why: &str) {
        self.status.abort = Some(true);
        self.status.message = Some(why.to_string());
    }

    /// The bookkeeping of an aborted rollout: `abortedAt`, the `RolloutAborted` event, the
    /// `onAbort` hook of the aborted revision.
    pub fn mark_aborted(&mut self) {
        self.aborted = true;
        let current = self.current.clone();
        if self.status.aborted_at.is_none() {
            self.status.aborted_at = Some(stamp(self.now));
            let why = self
                .status
                .message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "aborted by request".to_string());
            self.events.push(Event::warning(
                "RolloutAborted",
                format!("Rollout aborted, back to the stable ReplicaSet: {why}"),
            ));
        }
        if self.status.message.as_deref().is_none_or(str::is_empty) {
            self.status.message = Some("aborted by request".into());
        }
        if let Some(h) = self
            .rollout
            .spec
            .hooks
            .as_ref()
            .and_then(|h| h.on_abort.clone())
        {
            let hook_name = util::hook_name(&h, "onAbort");
            let _ = self.hook("onAbort", &h, &hook_name, &current);
        }
        self.pauses.clear();
    }

    /// Sets the pause conditions of this pass (keeps start times of those that stay).
    fn settle_pauses(&mut self) {
        let mut list = Vec::new();
        for reason in &self.pauses {
            if list.iter().any(|p: &PauseCondition| &p.reason == reason) {
                continue;
            }
            let start = self
                .old
                .pause_conditions
                .iter()
                .find(|p| &p.reason == reason)
                .map(|p| p.start_time.clone())
                .unwrap_or_else(|| stamp(self.now));
            list.push(PauseCondition {
                reason: reason.clone(),
                start_time: start,
            });
        }
        self.status.pause_conditions = list;
    }

    /// Start time of a pause of this pass (now if new).
    pub fn pause_start(&self, reason: &str) -> Timestamp {
        self.old
            .pause_conditions
            .iter()
            .find(|p| p.reason == reason)
            .and_then(|p| parse_time(&p.start_time))
            .unwrap_or(self.now)
    }
}

/// Plans one sync pass of a Rollout.
pub fn plan(observed: &ObservedRollout) -> Result<RolloutPlan, PlanError> {
    let r = &observed.rollout;
    let now = observed.now;
    let old = r.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = r.metadata.generation;
    status.selector = Some(util::selector_string(r.spec.selector.as_ref()));
    let mut plan = RolloutPlan::default();
    let selector = r.spec.selector.clone().unwrap_or_default();
    if selects_everything(&selector) {
        let message = "This rollout is selecting all pods. A non-empty selector is required.";
        if old.message.as_deref() != Some(message) {
            plan.events.push(Event::warning("SelectingAll", message));
        }
        status.phase = Some("Degraded".into());
        status.message = Some(message.into());
        plan.status = status;
        return Ok(plan);
    }
    let matcher = selector_matcher(&selector, name(&r.metadata))?;
    let owner = controller_ref(
        slipway_rollout::API_VERSION,
        slipway_rollout::KIND,
        &r.metadata,
    );
    let deleting = is_being_deleted(&r.metadata);
    let metas: Vec<_> = observed
        .replica_sets
        .iter()
        .map(|rs| &rs.metadata)
        .collect();
    let claims = claim(&owner, deleting, &matcher, &metas);
    if !claims.patches.is_empty() {
        for patch in claims.patches {
            let action = match patch.change {
                OwnershipChange::Adopt(_) => RolloutAction::AdoptReplicaSet(patch),
                OwnershipChange::Release { .. } => RolloutAction::ReleaseReplicaSet(patch),
            };
            plan.steps.push(Step {
                action,
                events: Vec::new(),
            });
        }
        plan.status = old;
        plan.requeue = Some(Requeue::Now);
        return Ok(plan);
    }
    let owned: Vec<ReplicaSet> = claims
        .owned
        .iter()
        .map(|&i| observed.replica_sets[i].clone())
        .collect();
    let view = util::deployment_view(r);
    let mut pass = Pass::new(view, owned.clone(), now);
    pass.ensure_new_replica_set(false)?;
    let current = match pass.new_rs().and_then(rs_hash) {
        Some(h) => h.to_string(),
        None => compute_hash(&r.spec.template, old.collision_count),
    };
    let stable = old.stable_pod_hash.clone();
    let mut ctx = Ctx {
        observed,
        rollout: r,
        now,
        old: old.clone(),
        status,
        pass,
        basis: owned,
        current: current.clone(),
        stable: stable.clone(),
        patches: Vec::new(),
        deployment_steps: None,
        events: Vec::new(),
        runs: Vec::new(),
        requeue: None,
        pauses: Vec::new(),
        aborted: false,
        healthy: false,
        waiting_on_pods: false,
        degraded: None,
        message: None,
        conditions_done: false,
        patched: Vec::new(),
    };
    if deleting {
        counters(&mut ctx);
        plan.status = ctx.status;
        return Ok(plan);
    }
    new_revision(&mut ctx);
    retry(&mut ctx);
    prune_records(&mut ctx);
    deadline_abort(&mut ctx);
    let strategy = &r.spec.strategy;
    if let Some(bg) = &strategy.blue_green {
        bluegreen::run(&mut ctx, bg)?;
    } else if let Some(c) = &strategy.canary {
        canary::run(&mut ctx, c)?;
    } else {
        basic::run(&mut ctx)?;
    }
    finish(ctx, plan)
}

/// A new template (a new hash): a fresh rollout toward it, whatever state the previous one
/// was in (aborted, paused, degraded, stuck).
fn new_revision(ctx: &mut Ctx) {
    let previous = ctx.old.current_pod_hash.clone();
    if previous.as_deref() == Some(ctx.current.as_str()) {
        return;
    }
    let s = &mut ctx.status;
    s.current_pod_hash = Some(ctx.current.clone());
    s.current_step_index = ctx.rollout.spec.strategy.canary.as_ref().map(|_| 0);
    s.step_started_at = Some(stamp(ctx.now));
    s.abort = None;
    s.aborted_at = None;
    s.promote_full = None;
    s.promote_requested_at = None;
    s.pause_conditions.clear();
    s.message = None;
    ctx.old.pause_conditions.clear();
    if ctx.rollout.spec.strategy.canary.is_some() {
        s.weight = Some(0);
    }
    let Some(previous) = previous else {
        return;
    };
    ctx.events.push(Event::normal(
        "RolloutUpdated",
        format!(
            "Rollout updated to revision {} (was {previous})",
            ctx.current
        ),
    ));
    // Going back to the stable revision while another one was rolling out is a rollback of
    // that one: its onAbort hook runs.
    if ctx.stable.as_deref() == Some(ctx.current.as_str())
        && ctx.stable.as_deref() != Some(&previous)
        && let Some(h) = ctx
            .rollout
            .spec
            .hooks
            .as_ref()
            .and_then(|h| h.on_abort.clone())
    {
        let hook_name = util::hook_name(&h, "onAbort");
        let _ = ctx.hook("onAbort", &h, &hook_name, &previous);
    }
    let mut ds = DeploymentStatus {
        conditions: util::to_deployment_conditions(&ctx.status.conditions),
        ..Default::default()
    };
    let c = new_deployment_condition(
        PROGRESSING,
        TRUE,
        "RolloutUpdated",
        format!("Rollout to revision {} started", ctx.current),
        ctx.now,
    );
    crate::conditions::remove_deployment_condition(&mut ds, PROGRESSING);
    set_deployment_condition(&mut ds, c);
    ctx.status.conditions = util::from_deployment_conditions(ds.conditions.as_ref());
}

/// `abort: false` after an abort: start the steps again from 0, with the hooks and analyses
/// of the revision run anew.
fn retry(ctx: &mut Ctx) {
    if ctx.status.aborted_at.is_none() || ctx.status.abort == Some(true) {
        return;
    }
    let current = ctx.current.clone();
    let s = &mut ctx.status;
    s.aborted_at = None;
    s.abort = None;
    s.message = None;
    s.current_step_index = ctx.rollout.spec.strategy.canary.as_ref().map(|_| 0);
    s.step_started_at = Some(stamp(ctx.now));
    s.pause_conditions.clear();
    s.promote_full = None;
    s.promote_requested_at = None;
    ctx.old.pause_conditions.clear();
    s.hooks
        .retain(|h| h.pod_hash != current || !hook_final(&h.phase));
    s.analysis
        .retain(|a| a.pod_hash != current || !util::analysis_final(&a.phase));
    ctx.events.push(Event::normal(
        "RolloutRetried",
        format!("Rollout to revision {current} retried from the first step"),
    ));
}

/// Drops final records of revisions that no longer exist (records of the current, stable and
/// kept ReplicaSets stay; unfinished ones stay until the executor finishes them). Keeps
/// running `onAbort` hooks listed.
fn prune_records(ctx: &mut Ctx) {
    let mut keep: BTreeSet<String> = ctx
        .basis
        .iter()
        .filter_map(|rs| rs_hash(rs).map(str::to_string))
        .collect();
    keep.insert(ctx.current.clone());
    keep.extend(ctx.stable.clone());
    ctx.status
        .hooks
        .retain(|h| keep.contains(&h.pod_hash) || !hook_final(&h.phase));
    ctx.status
        .analysis
        .retain(|a| keep.contains(&a.pod_hash) || !util::analysis_final(&a.phase));
    if let Some(h) = ctx
        .rollout
        .spec
        .hooks
        .as_ref()
        .and_then(|h| h.on_abort.clone())
    {
        let running: Vec<(String, String)> = ctx
            .status
            .hooks
            .iter()
            .filter(|r| r.kind == "onAbort" && !hook_final(&r.phase) && r.pod_hash != ctx.current)
            .map(|r| (r.name.clone(), r.pod_hash.clone()))
            .collect();
        for (n, hash) in running {
            let _ = ctx.hook("onAbort", &h, &n, &hash);
        }
    }
}

/// With `progressDeadlineAbort`, a rollout whose deadline passed (recorded in the stored
/// Progressing condition) aborts.
fn deadline_abort(ctx: &mut Ctx) {
    if ctx.rollout.spec.progress_deadline_abort != Some(true)
        || ctx.status.abort == Some(true)
        || ctx.stable.is_none()
        || ctx.stable.as_deref() == Some(ctx.current.as_str())
    {
        return;
    }
    let exceeded =
        ctx.status.conditions.iter().any(|c| {
            c.type_ == PROGRESSING && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
        });
    if exceeded {
        ctx.begin_abort("progress deadline exceeded");
    }
}

/// Counters over the observed ReplicaSets.
fn counters(ctx: &mut Ctx) {
    let all: Vec<&ReplicaSet> = ctx.basis.iter().collect();
    let nz = |v: i32| (v != 0).then_some(v);
    let s = &mut ctx.status;
    s.replicas = nz(crate::replicas::status_replicas_sum(all.iter().copied()));
    s.ready_replicas = nz(crate::replicas::ready_replicas_sum(all.iter().copied()));
    s.available_replicas = nz(crate::replicas::available_replicas_sum(all.iter().copied()));
    s.updated_replicas = nz(ctx
        .basis
        .iter()
        .filter(|rs| rs_hash(rs) == Some(ctx.current.as_str()))
        .map(crate::spec::rs_status_replicas)
        .sum());
}

/// Available and Progressing conditions of the blue-green and canary strategies, and the
/// progress deadline.
fn conditions(ctx: &mut Ctx, paused: bool) {
    let view = &ctx.pass.deployment;
    let replicas = util::replicas(ctx.rollout);
    let min_available = replicas.saturating_sub(max_unavailable(view));
    let mut ds = DeploymentStatus {
        conditions: util::to_deployment_conditions(&ctx.status.conditions),
        ..Default::default()
    };
    let now = ctx.now;
    let available = ctx.status.available_replicas.unwrap_or(0);
    let c = if available >= min_available {
        new_deployment_condition(
            AVAILABLE,
            TRUE,
            MINIMUM_REPLICAS_AVAILABLE,
            "Rollout has minimum availability.",
            now,
        )
    } else {
        new_deployment_condition(
            AVAILABLE,
            FALSE,
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Rollout does not have minimum availability.",
            now,
        )
    };
    set_deployment_condition(&mut ds, c);
    let subject = match ctx.pass.new_rs() {
        Some(rs) => format!("ReplicaSet \"{}\"", name(&rs.metadata)),
        None => format!("Rollout \"{}\"", name(&ctx.rollout.metadata)),
    };
    let current = get_deployment_condition(&ds, PROGRESSING).cloned();
    let current_reason = current.as_ref().map(|c| reason(c).to_string());
    let old = &ctx.old;
    let s = &ctx.status;
    let progressed = old.current_step_index != s.current_step_index
        || old.stable_pod_hash != s.stable_pod_hash
        || old.weight != s.weight
        || s.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || s.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || s.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
        || old
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone())
            != s.blue_green
                .as_ref()
                .and_then(|b| b.active_selector.clone());
    let deadline = ctx
        .rollout
        .spec
        .progress_deadline_seconds
        .unwrap_or(600)
        .max(0);
    if ctx.aborted {
        let message = ctx.status.message.clone().unwrap_or_default();
        set_deployment_condition(
            &mut ds,
            new_deployment_condition(PROGRESSING, FALSE, "RolloutAborted", message, now),
        );
    } else if ctx.healthy {
        set_deployment_condition(
            &mut ds,
            new_deployment_condition(
                PROGRESSING,
                TRUE,
                NEW_REPLICA_SET_AVAILABLE,
                format!("{subject} has successfully progressed."),
                now,
            ),
        );
    } else if paused {
        set_deployment_condition(
            &mut ds,
            new_deployment_condition(
                PROGRESSING,
                UNKNOWN,
                "RolloutPaused",
                "Rollout is paused",
                now,
            ),
        );
    } else if current_reason.as_deref() == Some(NEW_REPLICA_SET_AVAILABLE)
        && ctx.stable.as_deref() == Some(ctx.current.as_str())
    {
        // Complete before; a pod going away does not restart the clock.
    } else if progressed
        || current.is_none()
        || matches!(
            current_reason.as_deref(),
            Some("RolloutPaused" | "RolloutAborted" | NEW_REPLICA_SET_AVAILABLE)
        )
    {
        let mut c = new_deployment_condition(
            PROGRESSING,
            TRUE,
            REPLICA_SET_UPDATED,
            format!("{subject} is progressing."),
            now,
        );
        if let Some(cur) = &current
            && cur.status == TRUE
        {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        crate::conditions::remove_deployment_condition(&mut ds, PROGRESSING);
        set_deployment_condition(&mut ds, c);
    } else if ctx.waiting_on_pods
        && deadline < i32::MAX
        && current_reason.as_deref() != Some(PROGRESS_DEADLINE_EXCEEDED)
    {
        {
            let from = current
                .as_ref()
                .and_then(|c| c.last_update_time.as_ref())
                .map_or(now, |t| t.0);
            let due = util::plus(
                from,
                Duration::from_secs(u64::try_from(deadline).unwrap_or(0)),
            );
            if now > due {
                let message = format!("{subject} has timed out progressing.");
                ctx.events
                    .push(Event::warning(PROGRESS_DEADLINE_EXCEEDED, message.clone()));
                set_deployment_condition(
                    &mut ds,
                    new_deployment_condition(
                        PROGRESSING,
                        FALSE,
                        PROGRESS_DEADLINE_EXCEEDED,
                        message,
                        now,
                    ),
                );
                if ctx.rollout.spec.progress_deadline_abort == Some(true) {
                    ctx.requeue_after(Duration::from_millis(1));
                }
            } else {
                let wait = util::until(now, due) + Duration::from_secs(1);
                ctx.requeue_after(wait);
            }
        }
    }
    ctx.status.conditions = util::from_deployment_conditions(ds.conditions.as_ref());
}

/// Collects the ReplicaSet changes of the working set as actions (creations, then the
/// Service patches, then updates, then deletions).
fn pass_steps(ctx: &mut Ctx) -> Vec<Step<RolloutAction>> {
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for (write, events, _) in ctx.pass.replica_set_writes() {
        let (action, bucket) = match write {
            RsWrite::Create(rs) => (RolloutAction::CreateReplicaSet(rs), &mut creates),
            RsWrite::Update(rs) => (RolloutAction::UpdateReplicaSet(rs), &mut updates),
            RsWrite::Delete(key) => (RolloutAction::DeleteReplicaSet(key), &mut deletes),
        };
        bucket.push(Step { action, events });
    }
    let mut steps = creates;
    steps.append(&mut ctx.patches);
    steps.extend(updates);
    steps.extend(deletes);
    steps
}

fn finish(mut ctx: Ctx, mut plan: RolloutPlan) -> Result<RolloutPlan, PlanError> {
    if !ctx.aborted && ctx.status.abort == Some(true) && ctx.stable.as_deref() == Some(&ctx.current)
    {
        // Nothing in progress to abort.
        ctx.status.abort = None;
        ctx.status.aborted_at = None;
    }
    ctx.status.stable_pod_hash = ctx.stable.clone();
    ctx.settle_pauses();
    if !ctx.conditions_done {
        counters(&mut ctx);
    }
    let paused = !ctx.status.pause_conditions.is_empty() || ctx.rollout.spec.paused == Some(true);
    if !ctx.conditions_done {
        let paused = paused && !ctx.aborted;
        conditions(&mut ctx, paused);
    }
    let deadline_exceeded =
        ctx.status.conditions.iter().any(|c| {
            c.type_ == PROGRESSING && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
        });
    let phase = if ctx.aborted {
        "Aborted"
    } else if paused {
        "Paused"
    } else if deadline_exceeded || ctx.degraded.is_some() {
        "Degraded"
    } else if ctx.healthy {
        "Healthy"
    } else {
        "Progressing"
    };
    ctx.status.phase = Some(phase.to_string());
    if !ctx.aborted {
        ctx.status.message = ctx
            .degraded
            .clone()
            .or(ctx.message.clone())
            .or_else(|| deadline_exceeded.then(|| "progress deadline exceeded".to_string()));
    }
    plan.steps = match ctx.deployment_steps.take() {
        Some(mut steps) => {
            let mut all = std::mem::take(&mut ctx.patches);
            // Service patches first: a rollback must move traffic before pods go.
            all.append(&mut steps);
            all
        }
        None => pass_steps(&mut ctx),
    };
    plan.events.append(&mut ctx.events);
    plan.runs = ctx.runs;
    plan.requeue = ctx.requeue.map(|d| {
        if d <= Duration::from_millis(1) {
            Requeue::Now
        } else {
            Requeue::After(d)
        }
    });
    plan.status = ctx.status;
    Ok(plan)
}
