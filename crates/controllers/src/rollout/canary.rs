//! The canary strategy.
//!
//! The stable ReplicaSet is `status.stablePodHash`, the canary the current template's. The
//! steps run in order (`status.currentStepIndex`, `status.stepStartedAt`); the state the
//! completed steps leave (weight, canary scale, header routes) is derived from the steps
//! before the index, so nothing else needs remembering.
//!
//! - With a `stableService`, traffic is split by the proxy: the Service's
//!   `slipway.dev/traffic-split` annotation is `{"weights":{"<stable>":100-W,"<canary>":W}}`
//!   (plus `headerRoutes`). The stable ReplicaSet keeps `replicas` until full promotion; the
//!   canary runs `ceil(replicas*W/100)` pods (or `setCanaryScale`). No surge budget applies
//!   (as Argo Rollouts with traffic routing).
//! - Without it, the weight is approximated by replica counts: canary `ceil(replicas*W/100)`,
//!   stable the rest, moved within `maxSurge`/`maxUnavailable` like a rolling update; pods of
//!   the stable that are not available can always go, so a broken stable never blocks.
//!
//! A weight is raised only once the canary has the pods it needs for it available (at least
//! one for any weight above 0): a `setWeight` step completes when that is so and the
//! annotation says it. Abort puts the weight back to 0, drops header routes, then scales the
//! canary to 0.

use super::util::{
    Gate, HeaderRoute, parse_duration, parse_time, plus, stamp, traffic_split, until,
};
use super::{Ctx, util};
use crate::Event;
use crate::error::PlanError;
use crate::fenceposts::{max_surge, max_unavailable};
use serde_json::Value;
use slipway_rollout::{CanaryStep, CanaryStrategy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    Replicas(i32),
    Weight(i32),
}

/// The state the completed steps leave.
#[derive(Clone, Debug, Default)]
struct Derived {
    weight: i32,
    scale: Option<Scale>,
    routes: Vec<HeaderRoute>,
}

impl Derived {
    fn of(steps: &[CanaryStep]) -> Derived {
        let mut d = Derived::default();
        for s in steps {
            d.apply(s);
        }
        d
    }

    fn apply(&mut self, step: &CanaryStep) {
        if let Some(w) = step.set_weight {
            self.weight = w.clamp(0, 100);
        }
        if let Some(s) = &step.set_canary_scale {
            self.scale = if s.match_traffic_weight == Some(true) {
                None
            } else if let Some(n) = s.replicas {
                Some(Scale::Replicas(n))
            } else {
                s.weight.map(Scale::Weight)
            };
        }
        if let Some(h) = &step.set_header_route {
            self.routes.retain(|r| r.name != h.name);
            for m in &h.matches {
                self.routes.push(HeaderRoute {
                    name: h.name.clone(),
                    header: m.header_name.clone(),
                    value: m.header_value.exact.clone().unwrap_or_default(),
                });
            }
        }
    }
}

fn ceil_pct(replicas: i32, pct: i32) -> i32 {
    let p = i64::from(pct.clamp(0, 100));
    let n = (i64::from(replicas) * p + 99) / 100;
    i32::try_from(n).unwrap_or(replicas)
}

fn canary_replicas(replicas: i32, weight: i32, scale: Option<Scale>) -> i32 {
    match scale {
        Some(Scale::Replicas(n)) => n.clamp(0, replicas),
        Some(Scale::Weight(p)) => ceil_pct(replicas, p),
        None => ceil_pct(replicas, weight),
    }
}

/// How a step is named in events and messages.
pub fn describe(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        format!("setWeight {w}")
    } else if let Some(p) = &step.pause {
        match &p.duration {
            Some(d) => format!("pause {d}"),
            None => "pause".into(),
        }
    } else if step.set_canary_scale.is_some() {
        "setCanaryScale".into()
    } else if let Some(h) = &step.set_header_route {
        format!("setHeaderRoute {}", h.name)
    } else if step.analysis.is_some() {
        "analysis".into()
    } else if let Some(h) = &step.hook {
        format!("hook {}", h.name.as_deref().unwrap_or("step"))
    } else {
        "empty step".into()
    }
}

/// Plans a canary pass.
pub fn run(ctx: &mut Ctx, c: &CanaryStrategy) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    match ctx.stable.clone() {
        None => bootstrap(ctx, c),
        Some(s) if s == current => steady(ctx, c),
        Some(s) => {
            if ctx.status.abort != Some(true) {
                ctx.progress_or_abort(|ctx| progress(ctx, c, &s))?;
            }
            if ctx.status.abort == Some(true) {
                aborted(ctx, c, &s);
            }
            Ok(())
        }
    }
}

/// The first revision: no stable to split with; it becomes stable once fully available.
fn bootstrap(ctx: &mut Ctx, c: &CanaryStrategy) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    ctx.status.abort = None;
    if !pre_hook(ctx, &current)? {
        return Ok(());
    }
    let Some(ci) = ctx.ensure_current(replicas)? else {
        return Ok(());
    };
    // Nothing is stable yet: what an earlier, unfinished first revision runs goes.
    ctx.scale_down_others(&[current.as_str()]);
    if let Some(svc) = &c.canary_service {
        ctx.pin_service(svc, &current);
    }
    if ctx.available(ci) >= replicas {
        complete(ctx, c);
    } else {
        ctx.waiting_on_pods = true;
        ctx.message = Some(format!(
            "waiting for pods: {}/{replicas} available",
            ctx.available(ci)
        ));
    }
    Ok(())
}

/// The `pre` hook gate: true when it passed (or there is none).
pub(super) fn pre_hook(ctx: &mut Ctx, hash: &str) -> Result<bool, PlanError> {
    let Some(h) = ctx.rollout.spec.hooks.as_ref().and_then(|h| h.pre.clone()) else {
        return Ok(true);
    };
    let n = util::hook_name(&h, "pre");
    match ctx.hook("pre", &h, &n, hash) {
        Gate::Pass => Ok(true),
        Gate::Fail(why) => {
            if ctx.stable.is_none() {
                ctx.degraded = Some(why);
            } else {
                // The caller turns this into an abort.
                ctx.message = Some(why);
            }
            Ok(false)
        }
        _ => {
            ctx.message = Some(format!("waiting for the pre hook {n}"));
            Ok(false)
        }
    }
}

/// The failure of the `pre` hook, if it failed.
pub(super) fn pre_failed(ctx: &Ctx, hash: &str) -> Option<String> {
    let h = ctx.rollout.spec.hooks.as_ref()?.pre.as_ref()?;
    let n = util::hook_name(h, "pre");
    match util::hook_gate(&ctx.status, "pre", &n, hash) {
        Gate::Fail(why) => Some(why),
        _ => None,
    }
}

fn complete(ctx: &mut Ctx, c: &CanaryStrategy) {
    let current = ctx.current.clone();
    if let Some(svc) = &c.stable_service {
        let split = traffic_split(&[(current.as_str(), 100)], &[], &current);
        ctx.set_traffic_split(svc, &split);
    }
    ctx.stable = Some(current.clone());
    ctx.status.current_step_index = Some(i32::try_from(c.steps.len()).unwrap_or(i32::MAX));
    ctx.status.weight = Some(100);
    ctx.status.promote_full = None;
    ctx.status.promote_requested_at = None;
    ctx.pauses.clear();
    ctx.events.push(Event::normal(
        "RolloutCompleted",
        format!("Rollout completed: revision {current} is stable"),
    ));
}

/// Stable == current: everything on the stable ReplicaSet, the `post` hook.
fn steady(ctx: &mut Ctx, c: &CanaryStrategy) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    let basis = ctx.pass.status_basis();
    let Some(ci) = ctx.ensure_current(replicas)? else {
        return Ok(());
    };
    if let Some(svc) = &c.stable_service {
        let split = traffic_split(&[(current.as_str(), 100)], &[], &current);
        ctx.set_traffic_split(svc, &split);
    }
    if let Some(svc) = &c.canary_service {
        ctx.pin_service(svc, &current);
    }
    ctx.scale_down_others(&[current.as_str()]);
    ctx.status.current_step_index = Some(i32::try_from(c.steps.len()).unwrap_or(i32::MAX));
    ctx.status.weight = Some(100);
    ctx.status.promote_full = None;
    ctx.status.promote_requested_at = None;
    steady_common(ctx, ci, replicas, &basis, None);
    Ok(())
}

/// Shared by the steady states of canary and blue-green: the `post` hook, health, history.
pub(super) fn steady_common(
    ctx: &mut Ctx,
    ci: usize,
    replicas: i32,
    basis: &[k8s_openapi::api::apps::v1::ReplicaSet],
    kept: Option<usize>,
) {
    let current = ctx.current.clone();
    let others_gone = (0..ctx.pass.replica_sets.len())
        .filter(|&i| i != ci && Some(i) != kept)
        .all(|i| ctx.pods(i) == 0);
    let mut post_ok = true;
    if let Some(h) = ctx.rollout.spec.hooks.as_ref().and_then(|h| h.post.clone()) {
        let n = util::hook_name(&h, "post");
        match ctx.hook("post", &h, &n, &current) {
            Gate::Pass => {}
            Gate::Fail(why) => {
                ctx.degraded = Some(why);
                post_ok = false;
            }
            _ => {
                ctx.message = Some(format!("running the post hook {n}"));
                post_ok = false;
            }
        }
    }
    let available = ctx.available(ci) >= replicas;
    ctx.healthy = available && others_gone && post_ok;
    if !available {
        ctx.waiting_on_pods = true;
        let avail = ctx.available(ci);
        ctx.message
            .get_or_insert_with(|| format!("waiting for pods: {avail}/{replicas} available"));
    }
    if available && others_gone {
        let old = ctx.pass.old_indices();
        crate::deployment::cleanup_deployment(&mut ctx.pass, &old, basis);
    }
}

/// A rollout toward the canary. Returns `Some(reason)` to abort.
fn progress(ctx: &mut Ctx, c: &CanaryStrategy, stable: &str) -> Result<Option<String>, PlanError> {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    let routed = c.stable_service.is_some();
    let steps = &c.steps;
    let len = steps.len();
    let len_i = i32::try_from(len).unwrap_or(i32::MAX);
    let mut idx =
        usize::try_from(ctx.status.current_step_index.unwrap_or(0).clamp(0, len_i)).unwrap_or(0);
    if ctx.status.promote_full == Some(true) && idx < len {
        idx = len;
        ctx.events.push(Event::normal(
            "Promoted",
            "Promoted fully: the remaining steps are skipped",
        ));
    }
    let start_idx = idx;
    let mut started = ctx
        .status
        .step_started_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(ctx.now);
    let mut derived = Derived::of(&steps[..idx]);
    let mut promote = ctx.status.promote_requested_at.is_some();
    ctx.status.promote_requested_at = None;
    let paused = ctx.rollout.spec.paused == Some(true);

    let pre_ok = pre_hook(ctx, &current)?;
    if let Some(why) = pre_failed(ctx, &current) {
        return Ok(Some(why));
    }

    // Observed state of the two ReplicaSets.
    let ci = ctx.index_of(&current);
    let si = ctx.index_of(stable);
    let canary_avail = ci.map_or(0, |i| ctx.available(i));
    let stable_spec = si.map_or(0, |i| ctx.observed_spec(i));
    let ready_for = |tc: i32, w: i32| -> bool {
        canary_avail >= tc
            && (w == 0 || canary_avail >= 1)
            && (routed || stable_spec <= replicas - tc)
    };

    let mut blocked = !pre_ok || paused;
    if paused && pre_ok {
        ctx.message = Some("paused (spec.paused)".into());
    }
    if pre_ok && let Some(a) = &c.analysis {
        let svc = c.stable_service.clone();
        match ctx.analysis("background", a, &current, svc.as_deref()) {
            Gate::Fail(why) => return Ok(Some(why)),
            Gate::Inconclusive(why) => {
                if promote {
                    promote = false;
                    ctx.status
                        .analysis
                        .retain(|r| !(r.name == "background" && r.pod_hash == current));
                    ctx.events.push(Event::normal(
                        "Promoted",
                        "Promoted: background analysis resumed",
                    ));
                } else {
                    ctx.pauses.push("InconclusiveAnalysis".into());
                    ctx.message = Some(why);
                    blocked = true;
                }
            }
            _ => {}
        }
    }

    let mut blocked_weight: Option<i32> = None;
    while idx < len && !blocked {
        let step = &steps[idx];
        let position = format!("step {}/{len}: {}", idx + 1, describe(step));
        let done = if let Some(w) = step.set_weight {
            let w = w.clamp(0, 100);
            let tc = canary_replicas(replicas, w, derived.scale);
            if ready_for(tc, w) {
                true
            } else if promote {
                promote = false;
                ctx.events.push(Event::normal(
                    "Promoted",
                    format!("Promoted: {position} skipped"),
                ));
                true
            } else {
                blocked_weight = Some(w);
                ctx.waiting_on_pods = true;
                ctx.message = Some(format!(
                    "{position}: waiting for canary pods ({canary_avail}/{tc} available)"
                ));
                false
            }
        } else if let Some(p) = &step.pause {
            if promote {
                promote = false;
                ctx.events.push(Event::normal(
                    "Promoted",
                    format!("Promoted: {position} released"),
                ));
                true
            } else {
                match p.duration.as_deref().map(parse_duration) {
                    Some(Some(d)) if ctx.now >= plus(started, d) => true,
                    Some(Some(d)) => {
                        let left = until(ctx.now, plus(started, d));
                        ctx.requeue_after(left);
                        ctx.pauses.push("CanaryPauseStep".into());
                        ctx.message = Some(position.clone());
                        false
                    }
                    _ => {
                        ctx.pauses.push("CanaryPauseStep".into());
                        ctx.message = Some(format!("{position}: waiting for promote"));
                        false
                    }
                }
            }
        } else if let Some(a) = &step.analysis {
            let svc = c.stable_service.clone();
            match ctx.analysis(&format!("step-{idx}"), a, &current, svc.as_deref()) {
                Gate::Pass => true,
                Gate::Fail(why) => return Ok(Some(why)),
                Gate::Inconclusive(why) => {
                    if promote {
                        promote = false;
                        ctx.events.push(Event::normal(
                            "Promoted",
                            format!("Promoted: {position} inconclusive, continued"),
                        ));
                        true
                    } else {
                        ctx.pauses.push("InconclusiveAnalysis".into());
                        ctx.message = Some(why);
                        false
                    }
                }
                Gate::Wait => {
                    ctx.message = Some(format!("{position}: running"));
                    false
                }
            }
        } else if let Some(h) = &step.hook {
            let n = util::hook_name(h, &format!("step-{idx}"));
            match ctx.hook("step", h, &n, &current) {
                Gate::Pass => true,
                Gate::Fail(why) => return Ok(Some(why)),
                _ => {
                    ctx.message = Some(format!("{position}: running"));
                    false
                }
            }
        } else {
            true
        };
        if !done {
            break;
        }
        derived.apply(step);
        ctx.events
            .push(Event::normal("CanaryStepCompleted", position));
        idx += 1;
        started = ctx.now;
    }
    if promote && idx < len {
        // Nothing was waiting on promote (the pass was blocked before the steps).
        ctx.status.promote_requested_at = ctx.old.promote_requested_at.clone();
    }
    for p in &ctx.pauses {
        if !ctx.old.pause_conditions.iter().any(|o| &o.reason == p) {
            let e = Event::normal(
                "Paused",
                format!("Paused ({p}) at step {}/{len}", (idx + 1).min(len.max(1))),
            );
            if !ctx.events.contains(&e) {
                ctx.events.push(e);
            }
        }
    }
    ctx.status.current_step_index = Some(i32::try_from(idx).unwrap_or(i32::MAX));
    ctx.status.step_started_at = if idx != start_idx {
        Some(stamp(ctx.now))
    } else {
        Some(stamp(started))
    };

    // Targets.
    let full = pre_ok && idx >= len;
    let tc = if !pre_ok {
        0
    } else if full {
        replicas
    } else if let Some(w) = blocked_weight {
        canary_replicas(replicas, w, derived.scale)
    } else {
        canary_replicas(replicas, derived.weight, derived.scale)
    };
    let ts = if routed { replicas } else { replicas - tc };
    if full && canary_avail < replicas {
        ctx.waiting_on_pods = true;
        ctx.message = Some(format!(
            "promoting: waiting for canary pods ({canary_avail}/{replicas} available)"
        ));
    }

    // Scaling.
    let (new_c, new_s) = if routed {
        (tc, replicas)
    } else {
        let view = &ctx.pass.deployment;
        let surge = max_surge(view);
        let min_available = replicas.saturating_sub(max_unavailable(view));
        let c_spec = ci.map_or(0, |i| ctx.observed_spec(i));
        let s_avail = si.map_or(0, |i| ctx.available(i));
        let new_c = if tc > c_spec {
            let room = (replicas + surge - c_spec - stable_spec).max(0);
            (c_spec + room).min(tc)
        } else {
            tc
        };
        let new_s = if ts < stable_spec {
            let keep = if s_avail + canary_avail >= min_available {
                (min_available - canary_avail).max(0)
            } else {
                s_avail
            };
            ts.max(keep.min(stable_spec))
        } else {
            ts
        };
        (new_c, new_s)
    };
    if (pre_ok || ci.is_some()) && ctx.ensure_current(new_c)?.is_none() {
        return Ok(None);
    }
    if let Some(si) = ctx.index_of(stable) {
        ctx.scale(si, new_s);
    }
    ctx.scale_down_others(&[stable, current.as_str()]);

    // Traffic.
    let observed_weight = if routed {
        c.stable_service
            .as_deref()
            .and_then(|svc| ctx.traffic_split(svc))
            .and_then(|v| {
                v.pointer(&format!("/weights/{current}"))
                    .and_then(Value::as_i64)
            })
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0)
    } else {
        ctx.old.weight.unwrap_or(0)
    };
    let desired = derived.weight;
    let mut weight = if desired <= observed_weight
        || ready_for(canary_replicas(replicas, desired, derived.scale), desired)
    {
        desired
    } else {
        observed_weight.min(desired)
    };
    let completing = full && ready_for(replicas, 100);
    if completing {
        weight = 100;
    }
    if let Some(svc) = c.stable_service.as_ref().filter(|_| !completing) {
        let routes: &[HeaderRoute] = if canary_avail >= 1 {
            &derived.routes
        } else {
            &[]
        };
        let split = traffic_split(
            &[(stable, 100 - weight), (current.as_str(), weight)],
            routes,
            &current,
        );
        ctx.set_traffic_split(svc, &split);
    }
    if let Some(svc) = &c.canary_service {
        ctx.pin_service(svc, &current);
    }
    ctx.status.weight = Some(weight);
    if completing {
        complete(ctx, c);
    } else if ctx.message.is_none() && idx < len {
        ctx.message = Some(format!("step {}/{len}: {}", idx + 1, describe(&steps[idx])));
    }
    Ok(None)
}

/// Aborted: weight back to 0 (stable 100), header routes removed, the canary scaled to 0.
fn aborted(ctx: &mut Ctx, c: &CanaryStrategy, stable: &str) {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    ctx.mark_aborted();
    if let Some(svc) = &c.stable_service {
        let split = traffic_split(&[(stable, 100), (current.as_str(), 0)], &[], &current);
        ctx.set_traffic_split(svc, &split);
    }
    if let Some(svc) = &c.canary_service {
        ctx.pin_service(svc, stable);
    }
    if let Some(si) = ctx.index_of(stable) {
        ctx.scale(si, replicas);
    }
    ctx.scale_down_others(&[stable]);
    ctx.status.weight = Some(0);
    ctx.status.promote_requested_at = None;
    ctx.status.promote_full = None;
}
