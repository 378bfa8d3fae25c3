//! The blue-green strategy.
//!
//! The active Service's selector is pinned (merge patch of its `pod-template-hash` key) to
//! the stable ReplicaSet while the new one runs `previewReplicaCount` pods (default
//! `replicas`); the preview Service is pinned to the new one once it is available. Then the
//! pre-promotion hook and analysis run, the rollout pauses (`BlueGreenPause`) unless
//! auto-promotion applies (`autoPromotionSeconds` after the pause started), the new
//! ReplicaSet is scaled to `replicas`, and once all of them are available the active Service
//! is switched in one patch (atomic in the proxy). The post-promotion hook and analysis run
//! next, once the active Service's EndpointSlices list only the new pods (what the proxy
//! routes by); when they pass the new ReplicaSet becomes stable, and the previous one keeps its
//! pods until `status.blueGreen.scaleDownAt` (`scaleDownDelaySeconds`, default 30).
//!
//! The active Service's selector is the truth about the switch: after a restart the planner
//! reads it back. `promoteRequestedAt` stays set until the switch, so a promote is not lost
//! while the new ReplicaSet scales up.
//!
//! Abort (by request, a failed hook or analysis, the progress deadline): the active Service
//! goes back to the stable hash if it had been switched, the preview Service is left on the
//! new ReplicaSet, and the new ReplicaSet is scaled to 0. Its pods are deleted, not kept for
//! inspection: the evidence is in the hook and analysis records of the status (messages,
//! exit codes, log tails) and in the Events.

use super::canary::{pre_failed, pre_hook, steady_common};
use super::util::{Gate, plus, stamp, until};
use super::{Ctx, util};
use crate::Event;
use crate::error::PlanError;
use slipway_rollout::{BlueGreenStatus, BlueGreenStrategy};
use std::time::Duration;

/// Plans a blue-green pass.
pub fn run(ctx: &mut Ctx, bg: &BlueGreenStrategy) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    match ctx.stable.clone() {
        None => bootstrap(ctx, bg)?,
        Some(s) if s == current => steady(ctx, bg)?,
        Some(s) => {
            if ctx.status.abort != Some(true) {
                ctx.progress_or_abort(|ctx| progress(ctx, bg, &s))?;
            }
            if ctx.status.abort == Some(true) {
                aborted(ctx, bg, &s);
            }
        }
    }
    let active = ctx.service_hash(&bg.active_service);
    let preview = bg
        .preview_service
        .as_deref()
        .and_then(|p| ctx.service_hash(p));
    let status = ctx
        .status
        .blue_green
        .get_or_insert_with(BlueGreenStatus::default);
    status.active_selector = active;
    status.preview_selector = preview;
    Ok(())
}

fn pin_preview(ctx: &mut Ctx, bg: &BlueGreenStrategy, hash: &str) {
    if let Some(p) = &bg.preview_service {
        ctx.pin_service(p, hash);
    }
}

/// The first revision: the active Service selects it directly, no pause.
fn bootstrap(ctx: &mut Ctx, bg: &BlueGreenStrategy) -> Result<(), PlanError> {
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
    ctx.pin_service(&bg.active_service, &current);
    pin_preview(ctx, bg, &current);
    if ctx.available(ci) >= replicas {
        complete(ctx, None, bg);
    } else {
        ctx.waiting_on_pods = true;
        ctx.message = Some(format!(
            "waiting for pods: {}/{replicas} available",
            ctx.available(ci)
        ));
    }
    Ok(())
}

fn complete(ctx: &mut Ctx, previous: Option<String>, bg: &BlueGreenStrategy) {
    let current = ctx.current.clone();
    ctx.stable = Some(current.clone());
    ctx.status.promote_requested_at = None;
    ctx.pauses.clear();
    let delay = bg.scale_down_delay_seconds.unwrap_or(30).max(0);
    let at = previous.as_ref().map(|_| {
        stamp(plus(
            ctx.now,
            Duration::from_secs(u64::try_from(delay).unwrap_or(0)),
        ))
    });
    let status = ctx
        .status
        .blue_green
        .get_or_insert_with(BlueGreenStatus::default);
    // Only a previous active ReplicaSet has a scale-down to wake up for.
    let wake = at.is_some() && delay > 0;
    status.previous_active_hash = previous;
    status.scale_down_at = at;
    if wake {
        ctx.requeue_after(Duration::from_secs(u64::try_from(delay).unwrap_or(0)));
    }
    ctx.events.push(Event::normal(
        "RolloutCompleted",
        format!("Rollout completed: revision {current} is stable"),
    ));
}

/// Stable == current: the Services on it, the previous active ReplicaSet scaled down once
/// its delay is over, the `post` hook.
fn steady(ctx: &mut Ctx, bg: &BlueGreenStrategy) -> Result<(), PlanError> {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    let basis = ctx.pass.status_basis();
    let Some(ci) = ctx.ensure_current(replicas)? else {
        return Ok(());
    };
    ctx.pin_service(&bg.active_service, &current);
    pin_preview(ctx, bg, &current);
    let mut kept = None;
    let mut keep = vec![current.clone()];
    let bgs = ctx.status.blue_green.clone().unwrap_or_default();
    if let (Some(prev), Some(at)) = (
        bgs.previous_active_hash.clone(),
        bgs.scale_down_at.as_deref().and_then(util::parse_time),
    ) && prev != current
        && ctx.now < at
        && let Some(i) = ctx.index_of(&prev)
    {
        kept = Some(i);
        keep.push(prev);
        let left = until(ctx.now, at);
        ctx.requeue_after(left);
    } else if let Some(status) = ctx.status.blue_green.as_mut() {
        status.previous_active_hash = None;
        status.scale_down_at = None;
    }
    let keep_refs: Vec<&str> = keep.iter().map(String::as_str).collect();
    ctx.scale_down_others(&keep_refs);
    steady_common(ctx, ci, replicas, &basis, kept);
    Ok(())
}

/// A rollout toward the new ReplicaSet. Returns `Some(reason)` to abort.
fn progress(
    ctx: &mut Ctx,
    bg: &BlueGreenStrategy,
    stable: &str,
) -> Result<Option<String>, PlanError> {
    let current = ctx.current.clone();
    let replicas = util::replicas(ctx.rollout);
    let active_hash = ctx.service_hash(&bg.active_service);
    if ctx.service(&bg.active_service).is_none() {
        ctx.missing_service(&bg.active_service);
    }
    if active_hash.as_deref() != Some(current.as_str()) {
        // Not switched (yet): the active Service selects the stable ReplicaSet.
        if active_hash.as_deref() != Some(stable) && ctx.index_of(stable).is_some() {
            ctx.pin_service(&bg.active_service, stable);
        }
        if !pre_hook(ctx, &current)? {
            if let Some(why) = pre_failed(ctx, &current) {
                return Ok(Some(why));
            }
            if let Some(si) = ctx.index_of(stable) {
                ctx.scale(si, replicas);
            }
            ctx.scale_down_others(&[stable]);
            return Ok(None);
        }
        let promoted = ctx.status.promote_requested_at.is_some();
        let ci = ctx.index_of(&current);
        let c_spec = ci.map_or(0, |i| ctx.observed_spec(i));
        let c_avail = ci.map_or(0, |i| ctx.available(i));
        let preview_count = bg
            .preview_replica_count
            .unwrap_or(replicas)
            .clamp(replicas.min(1), replicas.max(1));
        // Once promotion began (full size requested) the new ReplicaSet is not shrunk back.
        let target = if c_spec >= replicas {
            replicas
        } else {
            preview_count
        };
        let Some(_) = ctx.ensure_current(target)? else {
            return Ok(None);
        };
        if let Some(si) = ctx.index_of(stable) {
            ctx.scale(si, replicas);
        }
        ctx.scale_down_others(&[stable, current.as_str()]);
        if c_avail < preview_count.min(target) {
            ctx.waiting_on_pods = true;
            ctx.message = Some(format!(
                "waiting for the preview pods: {c_avail}/{preview_count} available"
            ));
            return Ok(None);
        }
        pin_preview(ctx, bg, &current);
        if let Some(why) = promotion_runs(ctx, bg, &current, true) {
            return Ok(why);
        }
        let auto = bg.auto_promotion_enabled != Some(false);
        if !promoted {
            if ctx.rollout.spec.paused == Some(true) {
                ctx.message = Some("paused (spec.paused)".into());
                return Ok(None);
            }
            if !auto {
                pause(ctx, "waiting for promote".into());
                return Ok(None);
            }
            if let Some(secs) = bg.auto_promotion_seconds {
                let due = plus(
                    ctx.pause_start("BlueGreenPause"),
                    Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0)),
                );
                if ctx.now < due {
                    let left = until(ctx.now, due);
                    ctx.requeue_after(left);
                    pause(
                        ctx,
                        format!("promoting automatically in {}s", left.as_secs()),
                    );
                    return Ok(None);
                }
                // Remembered like a promote until the switch.
                ctx.status.promote_requested_at = Some(stamp(ctx.now));
            }
        }
        if let Some(i) = ctx.index_of(&current) {
            ctx.scale(i, replicas);
        }
        if c_avail < replicas {
            ctx.waiting_on_pods = true;
            ctx.message = Some(format!(
                "promoting: waiting for pods ({c_avail}/{replicas} available)"
            ));
            return Ok(None);
        }
        if !ctx.pin_service(&bg.active_service, &current) {
            return Ok(None);
        }
        ctx.status.promote_requested_at = None;
        if promoted {
            ctx.events.push(Event::normal(
                "Promoted",
                "Promoted: switching to the new ReplicaSet",
            ));
        }
        ctx.events.push(Event::normal(
            "SwitchedActiveService",
            format!(
                "Switched Service {} from {stable} to {current}",
                bg.active_service
            ),
        ));
    }
    // Switched: post-promotion.
    if let Some(i) = ctx.index_of(&current) {
        ctx.scale(i, replicas);
    }
    if let Some(si) = ctx.index_of(stable) {
        ctx.scale(si, replicas);
    }
    ctx.scale_down_others(&[stable, current.as_str()]);
    ctx.status.promote_requested_at = None;
    // The post-promotion hook and analysis judge the new pods behind the active Service:
    // they wait until its endpoints (and so the proxy) have moved to them.
    let post_runs = bg.post_promotion_hook.is_some() || bg.post_promotion_analysis.is_some();
    if post_runs && !ctx.endpoints_moved_to(&bg.active_service, &current) {
        ctx.message = Some(format!(
            "switching: waiting for Service {}'s endpoints to move to the new pods",
            bg.active_service
        ));
        // Slice and pod events wake the rollout; this only bounds a missed one.
        ctx.requeue_after(Duration::from_secs(1));
        return Ok(None);
    }
    if let Some(why) = promotion_runs(ctx, bg, &current, false) {
        return Ok(why);
    }
    complete(ctx, Some(stable.to_string()), bg);
    Ok(None)
}

fn pause(ctx: &mut Ctx, message: String) {
    ctx.pauses.push("BlueGreenPause".into());
    if !ctx
        .old
        .pause_conditions
        .iter()
        .any(|p| p.reason == "BlueGreenPause")
    {
        ctx.events.push(Event::normal(
            "Paused",
            "Paused (BlueGreenPause): the preview is ready",
        ));
    }
    ctx.message = Some(message);
}

/// Pre- (`pre == true`) or post-promotion hook and analysis: `None` when both passed,
/// `Some(None)` while waiting, `Some(Some(reason))` to abort.
fn promotion_runs(
    ctx: &mut Ctx,
    bg: &BlueGreenStrategy,
    hash: &str,
    pre: bool,
) -> Option<Option<String>> {
    let (kind, hook, analysis) = if pre {
        (
            "prePromotion",
            bg.pre_promotion_hook.clone(),
            bg.pre_promotion_analysis.clone(),
        )
    } else {
        (
            "postPromotion",
            bg.post_promotion_hook.clone(),
            bg.post_promotion_analysis.clone(),
        )
    };
    let mut waiting = false;
    if let Some(h) = hook {
        let n = util::hook_name(&h, kind);
        match ctx.hook(kind, &h, &n, hash) {
            Gate::Pass => {}
            Gate::Fail(why) => return Some(Some(why)),
            _ => {
                waiting = true;
                ctx.message = Some(format!("running the {kind} hook {n}"));
            }
        }
    }
    if let Some(a) = analysis {
        let svc = if pre {
            bg.preview_service.clone()
        } else {
            Some(bg.active_service.clone())
        };
        match ctx.analysis(kind, &a, hash, svc.as_deref()) {
            Gate::Pass => {}
            Gate::Fail(why) => return Some(Some(why)),
            Gate::Inconclusive(why) => {
                if ctx.status.promote_requested_at.is_none() {
                    ctx.pauses.push("InconclusiveAnalysis".into());
                    ctx.message = Some(why);
                    waiting = true;
                }
            }
            Gate::Wait => {
                waiting = true;
                ctx.message = Some(format!("running the {kind} analysis"));
            }
        }
    }
    waiting.then_some(None)
}

/// Aborted: the active Service back on the stable ReplicaSet, the new one scaled to 0.
fn aborted(ctx: &mut Ctx, bg: &BlueGreenStrategy, stable: &str) {
    let replicas = util::replicas(ctx.rollout);
    ctx.mark_aborted();
    if ctx.service_hash(&bg.active_service).as_deref() != Some(stable) {
        ctx.pin_service(&bg.active_service, stable);
    }
    if let Some(si) = ctx.index_of(stable) {
        ctx.scale(si, replicas);
    }
    ctx.scale_down_others(&[stable]);
    ctx.status.promote_requested_at = None;
    if let Some(s) = ctx.status.blue_green.as_mut() {
        s.scale_down_at = None;
    }
}
