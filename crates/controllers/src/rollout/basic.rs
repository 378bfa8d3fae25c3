//! `rollingUpdate` and `recreate`: exactly a Deployment. The Deployment planner runs on the
//! Rollout viewed as a Deployment ([`super::util::deployment_view`]); its ReplicaSet writes
//! are taken over with the Rollout as controller.
//!
//! Hooks: `pre` before the new ReplicaSet gets any pod (the planner is not run until it
//! passed); `mid` (Recreate) once every old pod is gone and before the new ones start;
//! `post` once the rollout is complete. A failed hook (or `abort`, or the progress deadline
//! with `progressDeadlineAbort`) rolls back: the planner is then run with the stable
//! ReplicaSet's template, which makes that ReplicaSet the Deployment's "new" one again (and
//! raises its revision, as `kubectl rollout undo` does) until `abort` is cleared or the
//! template changes.

use super::canary::{pre_failed, pre_hook};
use super::util::{self, Gate, is_recreate};
use super::{Ctx, RolloutAction};
use crate::Step;
use crate::annotations::POD_TEMPLATE_HASH_LABEL;
use crate::deployment::recreate::{PodPhaseMap, old_pods_running};
use crate::deployment::{self, DeploymentAction, ObservedDeployment};
use crate::error::PlanError;
use crate::ownership::{controller_of, controller_ref};
use crate::status::deployment_complete;
use crate::{Event, Requeue};
use k8s_openapi::api::apps::v1::ReplicaSet;
use std::time::Duration;

/// Plans a rollingUpdate or recreate pass.
pub fn run(ctx: &mut Ctx) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    let stable = ctx.stable.clone();
    let in_progress = stable.as_deref() != Some(current.as_str());
    let mut aborted = in_progress && stable.is_some() && ctx.status.abort == Some(true);
    if in_progress && !aborted {
        if !pre_hook(ctx, &current)? {
            match pre_failed(ctx, &current) {
                Some(why) if stable.is_some() => {
                    ctx.begin_abort(&why);
                    aborted = true;
                }
                _ => return Ok(()),
            }
        }
        if !aborted
            && is_recreate(ctx.rollout)
            && let Some(h) = mid_hook(ctx)
        {
            let n = util::hook_name(&h, "mid");
            match util::hook_gate(&ctx.status, "mid", &n, &current) {
                Gate::Pass => {}
                Gate::Fail(why) if stable.is_some() => {
                    ctx.begin_abort(&why);
                    aborted = true;
                }
                Gate::Fail(why) => {
                    ctx.degraded = Some(why);
                    return Ok(());
                }
                _ => {
                    if old_pods_gone(ctx) {
                        let _ = ctx.hook("mid", &h, &n, &current);
                        ctx.message = Some(format!("running the mid hook {n}"));
                        return Ok(());
                    }
                }
            }
        }
    }
    if aborted {
        ctx.mark_aborted();
    }
    let mut view = ctx.pass.deployment.clone();
    if let Some(s) = view.status.as_mut() {
        s.conditions = util::to_deployment_conditions(&ctx.status.conditions);
    }
    if aborted
        && let Some(si) = stable.as_deref().and_then(|s| ctx.index_of(s))
        && let Some(mut t) = crate::template::rs_template(&ctx.pass.replica_sets[si]).cloned()
        && let Some(spec) = view.spec.as_mut()
    {
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        spec.template = t;
    }
    let dplan = deployment::plan(&ObservedDeployment {
        deployment: view.clone(),
        replica_sets: ctx.basis.clone(),
        pods: ctx.observed.pods.clone(),
        now: ctx.now,
    })?;
    let owner = controller_ref(
        slipway_rollout::API_VERSION,
        slipway_rollout::KIND,
        &ctx.rollout.metadata,
    );
    let fix = |mut rs: ReplicaSet| {
        if controller_of(&rs.metadata).is_some_and(|r| r.kind == "Deployment") {
            rs.metadata.owner_references = Some(vec![owner.clone()]);
        }
        rs
    };
    let mut steps = Vec::new();
    for step in &dplan.steps {
        let action = match &step.action {
            DeploymentAction::CreateReplicaSet(rs) => {
                RolloutAction::CreateReplicaSet(fix(rs.clone()))
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                RolloutAction::UpdateReplicaSet(fix(rs.clone()))
            }
            DeploymentAction::DeleteReplicaSet(k) => RolloutAction::DeleteReplicaSet(k.clone()),
            DeploymentAction::AdoptReplicaSet(p) => RolloutAction::AdoptReplicaSet(p.clone()),
            DeploymentAction::ReleaseReplicaSet(p) => RolloutAction::ReleaseReplicaSet(p.clone()),
            DeploymentAction::UpdateDeployment(_) | DeploymentAction::UpdateDeploymentStatus(_) => {
                continue;
            }
        };
        steps.push(Step {
            action,
            events: step.events.clone(),
        });
    }
    ctx.events.extend(dplan.events.iter().cloned());
    ctx.deployment_steps = Some(steps);
    match dplan.requeue {
        Some(Requeue::Now) => ctx.requeue_after(Duration::from_millis(1)),
        Some(Requeue::After(d)) => ctx.requeue_after(d),
        None => {}
    }
    let new_status = dplan
        .new_status()
        .cloned()
        .or_else(|| view.status.clone())
        .unwrap_or_default();
    let s = &mut ctx.status;
    s.replicas = new_status.replicas;
    s.updated_replicas = new_status.updated_replicas;
    s.ready_replicas = new_status.ready_replicas;
    s.available_replicas = new_status.available_replicas;
    s.collision_count = new_status.collision_count;
    s.conditions = util::from_deployment_conditions(new_status.conditions.as_ref());
    ctx.conditions_done = true;
    let complete = deployment_complete(&view, &new_status);
    if aborted {
        return Ok(());
    }
    if !complete {
        ctx.message = Some("rolling out".into());
        return Ok(());
    }
    if in_progress {
        ctx.stable = Some(current.clone());
        ctx.events.push(Event::normal(
            "RolloutCompleted",
            format!("Rollout completed: revision {current} is stable"),
        ));
    }
    ctx.healthy = true;
    if let Some(h) = ctx.rollout.spec.hooks.as_ref().and_then(|h| h.post.clone()) {
        let n = util::hook_name(&h, "post");
        match ctx.hook("post", &h, &n, &current) {
            Gate::Pass => {}
            Gate::Fail(why) => ctx.degraded = Some(why),
            _ => {
                ctx.healthy = false;
                ctx.message = Some(format!("running the post hook {n}"));
            }
        }
    }
    Ok(())
}

fn mid_hook(ctx: &Ctx) -> Option<slipway_rollout::Hook> {
    ctx.rollout.spec.hooks.as_ref()?.mid.clone()
}

/// Recreate's condition for starting new pods: every old ReplicaSet at 0 and no old pod
/// left (as [`old_pods_running`] judges).
fn old_pods_gone(ctx: &Ctx) -> bool {
    let new_index = ctx.index_of(&ctx.current);
    let old: Vec<&ReplicaSet> = ctx
        .basis
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| rs)
        .collect();
    if old.iter().any(|rs| crate::spec::rs_spec_replicas(rs) > 0) {
        return false;
    }
    let mut phases = PodPhaseMap::new();
    for pod in &ctx.observed.pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            continue;
        };
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        phases.entry(owner.uid.clone()).or_default().push(phase);
    }
    let new_uid = new_index.and_then(|i| ctx.basis[i].metadata.uid.clone());
    !old_pods_running(new_uid.as_deref(), &old, &phases)
}
