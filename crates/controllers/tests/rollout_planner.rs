//! Table tests of the Rollout planner, step by step, through a small in-memory world
//! (`rollout_support`): canary, blue-green, rollingUpdate and recreate; promote,
//! promote --full, abort (by request, a failed hook, a failed analysis), retry, a new
//! revision during an abort, timed pauses with an injected clock, the progress deadline,
//! first deployments, a broken stable, and restart safety.

mod rollout_support;

use rollout_support::{World, hash_of, rollout};
use serde_json::json;
use slipway_controllers::Requeue;
use slipway_controllers::rollout::RolloutAction;

fn canary_steps() -> serde_json::Value {
    json!({"canary": {"stableService": "web", "canaryService": "web-canary", "steps": [
        {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "1s"}}
    ]}})
}

/// A world with a stable first revision (v1) deployed and healthy.
fn deployed(strategy: serde_json::Value, replicas: i32, services: &[&str]) -> (World, String) {
    let mut w = World::new(rollout(replicas, strategy, "app:v1"), services);
    w.cycle(3);
    assert_eq!(w.phase(), "Healthy", "{:?}", w.status());
    let stable = w.stable();
    assert!(!stable.is_empty());
    (w, stable)
}

fn promote(w: &mut World) {
    w.status_mut().promote_requested_at = Some("2023-11-14T22:13:20Z".into());
}

#[test]
fn canary_first_deployment_goes_straight_to_stable() {
    let mut w = World::new(rollout(5, canary_steps(), "app:v1"), &["web", "web-canary"]);
    let p = w.sync();
    let created: Vec<_> = p
        .actions()
        .filter_map(|a| match a {
            RolloutAction::CreateReplicaSet(rs) => Some(rs.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1);
    let rs = &created[0];
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(5));
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Rollout");
    assert_eq!(owner.api_version, "slipway.dev/v1alpha1");
    assert_eq!(owner.controller, Some(true));
    let hash = hash_of(rs);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(w.phase(), "Progressing");
    w.settle();
    w.sync();
    assert_eq!(w.stable(), hash);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {hash.clone(): 100}}))
    );
    assert_eq!(w.selector_hash("web-canary"), Some(hash.clone()));
    w.sync();
    assert_eq!(w.phase(), "Healthy");
    assert_eq!(w.status().selector.as_deref(), Some("app=web"));
    // Converged: another pass writes nothing.
    let p = w.sync();
    assert_eq!(p.actions().count(), 0);
    assert_eq!(Some(p.status), w.rollout.status.clone());
}

#[test]
fn canary_happy_path_step_by_step() {
    let (mut w, s) = deployed(canary_steps(), 5, &["web", "web-canary"]);
    w.set_image("app:v2");
    let p = w.sync();
    let c = w.current();
    assert_ne!(c, s);
    assert!(p.all_events().iter().any(|e| e.reason == "RolloutUpdated"));
    // setWeight 20: one canary pod first; the weight waits for it.
    assert_eq!(w.spec_of(&c), 1);
    assert_eq!(w.spec_of(&s), 5);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 100, c.clone(): 0}}))
    );
    assert_eq!(w.status().current_step_index, Some(0));
    assert_eq!(w.selector_hash("web-canary"), Some(c.clone()));
    w.settle();
    let p = w.sync();
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 80, c.clone(): 20}}))
    );
    assert_eq!(w.status().current_step_index, Some(1));
    assert_eq!(w.status().weight, Some(20));
    assert!(
        p.all_events()
            .iter()
            .any(|e| e.reason == "CanaryStepCompleted" && e.message == "step 1/4: setWeight 20")
    );
    // pause {}: waits for promote.
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.status().pause_conditions[0].reason, "CanaryPauseStep");
    w.settle();
    let p = w.sync();
    assert_eq!(p.actions().count(), 0, "a paused rollout writes nothing");
    promote(&mut w);
    w.sync();
    assert_eq!(w.status().promote_requested_at, None);
    assert_eq!(w.status().current_step_index, Some(2));
    // setWeight 50: 3 canary pods, weight still 20 until they are available.
    assert_eq!(w.spec_of(&c), 3);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 80, c.clone(): 20}}))
    );
    w.settle();
    let p = w.sync();
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 50, c.clone(): 50}}))
    );
    assert_eq!(w.status().current_step_index, Some(3));
    // pause 1s: requeue after the remaining time.
    assert_eq!(
        p.requeue,
        Some(Requeue::After(std::time::Duration::from_secs(1)))
    );
    assert_eq!(w.phase(), "Paused");
    w.advance(2);
    w.sync();
    assert_eq!(w.status().current_step_index, Some(4));
    assert_eq!(w.spec_of(&c), 5, "full promotion scales the canary up");
    assert_eq!(w.spec_of(&s), 5, "the stable keeps its pods until promoted");
    w.settle();
    let p = w.sync();
    assert_eq!(w.split("web"), Some(json!({"weights": {c.clone(): 100}})));
    assert_eq!(w.stable(), c);
    assert!(
        p.all_events()
            .iter()
            .any(|e| e.reason == "RolloutCompleted")
    );
    w.sync();
    assert_eq!(w.split("web"), Some(json!({"weights": {c.clone(): 100}})));
    assert_eq!(w.spec_of(&s), 0);
    w.settle();
    w.sync();
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn canary_promote_full_skips_the_steps() {
    let (mut w, s) = deployed(canary_steps(), 4, &["web", "web-canary"]);
    w.set_image("app:v2");
    w.cycle(2);
    assert_eq!(w.phase(), "Paused");
    w.status_mut().promote_full = Some(true);
    w.cycle(3);
    w.sync();
    let c = w.current();
    assert_eq!(w.stable(), c);
    assert_eq!(w.spec_of(&s), 0);
    assert_eq!(w.status().promote_full, None);
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn canary_abort_retry_and_a_new_revision_during_the_abort() {
    let (mut w, s) = deployed(canary_steps(), 5, &["web", "web-canary"]);
    w.set_image("app:v2");
    w.cycle(2);
    let c = w.current();
    assert_eq!(w.status().weight, Some(20));
    w.status_mut().abort = Some(true);
    let p = w.sync();
    // Weight back first, then the canary scaled to 0.
    let first_patch = p
        .actions()
        .position(|a| matches!(a, RolloutAction::PatchService { .. }))
        .unwrap();
    let scale_down = p
        .actions()
        .position(|a| matches!(a, RolloutAction::UpdateReplicaSet(rs) if hash_of(rs) == c))
        .unwrap();
    assert!(first_patch < scale_down);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 100, c.clone(): 0}}))
    );
    assert_eq!(w.selector_hash("web-canary"), Some(s.clone()));
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.phase(), "Aborted");
    assert!(p.all_events().iter().any(|e| e.reason == "RolloutAborted"));
    assert_eq!(w.status().abort, Some(true));
    w.settle();
    w.sync();
    assert_eq!(w.phase(), "Aborted", "abort stays until retry");
    // Retry: the steps from 0.
    w.status_mut().abort = Some(false);
    w.sync();
    assert_eq!(w.status().current_step_index, Some(0));
    assert_eq!(w.spec_of(&c), 1);
    assert_eq!(w.phase(), "Progressing");
    w.settle();
    w.sync();
    assert_eq!(w.status().weight, Some(20));
    // Abort again, then a new revision: a fresh rollout toward it.
    w.status_mut().abort = Some(true);
    w.cycle(1);
    w.set_image("app:v3");
    w.sync();
    let d = w.current();
    assert_ne!(d, c);
    assert_eq!(w.status().abort, None);
    assert_eq!(w.status().current_step_index, Some(0));
    assert_eq!(w.phase(), "Progressing");
    assert_eq!(w.spec_of(&d), 1);
    assert_eq!(w.spec_of(&c), 0);
}

#[test]
fn canary_analysis_steps_pass_fail_and_pause_when_inconclusive() {
    let strategy = json!({"canary": {"stableService": "web", "steps": [
        {"setWeight": 20}, {"analysis": {"checks": [{"name": "errors", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/ok"}}]}},
        {"setWeight": 60}
    ], "analysis": {"checks": [{"name": "bg", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/ok"}}]}}});
    let (mut w, s) = deployed(strategy.clone(), 5, &["web"]);
    w.set_image("app:v2");
    w.cycle(2);
    let c = w.current();
    assert_eq!(w.status().current_step_index, Some(1));
    assert!(w.requested.iter().any(|(n, _, h)| n == "step-1" && h == &c));
    assert!(
        w.requested
            .iter()
            .any(|(n, _, h)| n == "background" && h == &c)
    );
    // Inconclusive pauses; promote continues.
    w.outcomes.insert("step-1".into(), "Inconclusive".into());
    w.cycle(2);
    assert_eq!(w.phase(), "Paused");
    assert_eq!(
        w.status().pause_conditions[0].reason,
        "InconclusiveAnalysis"
    );
    promote(&mut w);
    w.cycle(1);
    assert_eq!(w.status().current_step_index, Some(2));
    // Background analysis fails: abort.
    w.outcomes.insert("background".into(), "Failed".into());
    w.cycle(2);
    assert_eq!(w.phase(), "Aborted");
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 100, c.clone(): 0}}))
    );
    assert!(w.status().message.unwrap().contains("background"));

    // A failed step analysis aborts too.
    let (mut w, s) = deployed(strategy, 5, &["web"]);
    w.set_image("app:v2");
    w.outcomes.insert("step-1".into(), "Failed".into());
    w.cycle(4);
    let c = w.current();
    assert_eq!(w.phase(), "Aborted");
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.split("web"), Some(json!({"weights": {s: 100, c: 0}})));
}

#[test]
fn hooks_gate_the_rollout_and_a_failed_one_aborts() {
    let mut strategy = canary_steps();
    strategy["canary"]["steps"] = json!([{"setWeight": 50}, {"hook": {"name": "smoke", "http": {"url": "http://127.0.0.1:1/"}}}]);
    let mut r = rollout(4, strategy, "app:v1");
    r.spec.hooks = serde_json::from_value(json!({
        "pre": {"http": {"url": "http://127.0.0.1:1/pre"}},
        "post": {"http": {"url": "http://127.0.0.1:1/post"}},
        "onAbort": {"http": {"url": "http://127.0.0.1:1/abort"}}
    }))
    .unwrap();
    let mut w = World::new(r, &["web", "web-canary"]);
    // First deployment: nothing starts before the pre hook passed.
    w.cycle(2);
    assert!(w.rss.is_empty());
    assert_eq!(
        w.status().message.as_deref(),
        Some("waiting for the pre hook pre")
    );
    w.outcomes.insert("pre".into(), "Succeeded".into());
    w.outcomes.insert("post".into(), "Succeeded".into());
    w.cycle(5);
    assert_eq!(w.phase(), "Healthy");
    let s = w.stable();
    assert!(
        w.requested
            .iter()
            .any(|(n, k, h)| n == "post" && k == "post" && h == &s)
    );
    // The next revision: pre passed for v1 only, so v2 waits for its own pre hook.
    w.outcomes.remove("pre");
    w.set_image("app:v2");
    w.cycle(2);
    let c = w.current();
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 100, c.clone(): 0}}))
    );
    w.outcomes.insert("pre".into(), "Succeeded".into());
    w.cycle(3);
    assert_eq!(w.status().current_step_index, Some(1));
    // The step hook fails: abort, onAbort runs for the aborted revision.
    w.outcomes.insert("smoke".into(), "Failed".into());
    w.cycle(2);
    assert_eq!(w.phase(), "Aborted");
    assert!(
        w.requested
            .iter()
            .any(|(n, k, h)| n == "onAbort" && k == "onAbort" && h == &c)
    );
    assert_eq!(w.spec_of(&c), 0);
    // Ignored counts as passing.
    w.status_mut().abort = Some(false);
    w.outcomes.insert("smoke".into(), "Ignored".into());
    w.cycle(7);
    assert_eq!(w.stable(), c);
}

#[test]
fn progress_deadline_marks_degraded_then_aborts() {
    let mut r = rollout(3, canary_steps(), "app:v1");
    r.spec.progress_deadline_seconds = Some(10);
    r.spec.progress_deadline_abort = Some(true);
    let mut w = World::new(r, &["web", "web-canary"]);
    w.cycle(3);
    let s = w.stable();
    w.set_image("app:v2");
    w.ready_default = false;
    w.cycle(2);
    let c = w.current();
    assert_eq!(w.phase(), "Progressing");
    let p = w.sync();
    match p.requeue {
        Some(Requeue::After(d)) => assert!(d.as_secs() <= 11, "{d:?}"),
        other => panic!("expected a deadline requeue, got {other:?}"),
    }
    w.advance(12);
    let p = w.sync();
    assert!(
        p.all_events()
            .iter()
            .any(|e| e.reason == "ProgressDeadlineExceeded")
    );
    assert_eq!(w.phase(), "Degraded");
    w.sync();
    assert_eq!(w.phase(), "Aborted");
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.split("web"), Some(json!({"weights": {s: 100, c: 0}})));
    // A fix (a new revision) rolls out although the last one was stuck.
    w.ready_default = true;
    w.set_image("app:v3");
    w.cycle(3);
    assert_eq!(w.status().weight, Some(20));
}

#[test]
fn a_broken_stable_never_blocks_the_fix() {
    // Replica-based canary (no stableService), maxSurge 0: the stable's unavailable pods
    // give way to the canary.
    let strategy =
        json!({"canary": {"maxSurge": 0, "maxUnavailable": 1, "steps": [{"setWeight": 50}]}});
    let mut w = World::new(rollout(4, strategy, "app:v1"), &[]);
    w.cycle(3);
    let s = w.stable();
    w.ready.insert(s.clone(), false);
    w.settle();
    w.set_image("app:v2");
    w.cycle(8);
    let c = w.current();
    assert_eq!(w.stable(), c, "{:?}", w.status());
    assert_eq!(w.spec_of(&s), 0);
    assert_eq!(w.spec_of(&c), 4);
}

#[test]
fn replica_based_canary_stays_within_the_surge() {
    let strategy = json!({"canary": {"maxSurge": 1, "maxUnavailable": 0, "steps": [{"setWeight": 50}, {"pause": {}}]}});
    let mut w = World::new(rollout(4, strategy, "app:v1"), &[]);
    w.cycle(3);
    let s = w.stable();
    w.set_image("app:v2");
    for _ in 0..8 {
        w.sync();
        let total: i32 = w
            .rss
            .iter()
            .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap())
            .sum();
        assert!(total <= 5, "{total} pods");
        w.settle();
    }
    let c = w.current();
    assert_eq!(w.phase(), "Paused");
    assert_eq!((w.spec_of(&s), w.spec_of(&c)), (2, 2));
    assert_eq!(w.status().weight, Some(50));
}

fn blue_green(auto: bool) -> serde_json::Value {
    json!({"blueGreen": {"activeService": "web", "previewService": "web-preview",
        "autoPromotionEnabled": auto, "scaleDownDelaySeconds": 30}})
}

#[test]
fn blue_green_happy_path_with_manual_promotion() {
    let (mut w, s) = deployed(blue_green(false), 3, &["web", "web-preview"]);
    assert_eq!(w.selector_hash("web"), Some(s.clone()));
    w.set_image("app:v2");
    w.sync();
    let c = w.current();
    assert_eq!(w.spec_of(&c), 3);
    assert_eq!(w.selector_hash("web"), Some(s.clone()));
    assert_eq!(w.selector_hash("web-preview"), Some(s.clone()));
    w.settle();
    let p = w.sync();
    assert_eq!(w.selector_hash("web-preview"), Some(c.clone()));
    assert_eq!(w.selector_hash("web"), Some(s.clone()));
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.status().pause_conditions[0].reason, "BlueGreenPause");
    assert!(p.all_events().iter().any(|e| e.reason == "Paused"));
    let p = w.sync();
    assert_eq!(p.actions().count(), 0);
    promote(&mut w);
    let p = w.sync();
    assert_eq!(w.selector_hash("web"), Some(c.clone()));
    assert!(
        p.all_events()
            .iter()
            .any(|e| e.reason == "SwitchedActiveService")
    );
    assert_eq!(w.stable(), c);
    let bg = w.status().blue_green.unwrap();
    assert_eq!(bg.active_selector.as_deref(), Some(c.as_str()));
    assert_eq!(bg.previous_active_hash.as_deref(), Some(s.as_str()));
    assert!(bg.scale_down_at.is_some());
    w.settle();
    w.sync();
    assert_eq!(w.spec_of(&s), 3, "kept for scaleDownDelaySeconds");
    assert_eq!(w.phase(), "Healthy");
    w.advance(31);
    let p = w.sync();
    assert_eq!(w.spec_of(&s), 0);
    assert!(
        p.all_events()
            .iter()
            .any(|e| e.reason == "ScaledDownOldReplicaSet")
    );
}

#[test]
fn blue_green_auto_promotion_after_seconds_and_preview_count() {
    let mut strategy = blue_green(true);
    strategy["blueGreen"]["autoPromotionSeconds"] = json!(20);
    strategy["blueGreen"]["previewReplicaCount"] = json!(1);
    let (mut w, s) = deployed(strategy, 3, &["web", "web-preview"]);
    w.set_image("app:v2");
    w.cycle(2);
    let c = w.current();
    assert_eq!(w.spec_of(&c), 1);
    assert_eq!(w.phase(), "Paused");
    match w.last.requeue {
        Some(Requeue::After(d)) => assert_eq!(d.as_secs(), 20),
        other => panic!("{other:?}"),
    }
    w.advance(21);
    w.sync();
    assert_eq!(w.spec_of(&c), 3, "scaled to full before the switch");
    assert_eq!(w.selector_hash("web"), Some(s.clone()));
    w.settle();
    w.sync();
    assert_eq!(w.selector_hash("web"), Some(c.clone()));
}

#[test]
fn blue_green_abort_after_the_switch_by_a_failed_post_promotion_analysis() {
    let mut strategy = blue_green(true);
    strategy["blueGreen"]["postPromotionAnalysis"] =
        json!({"checks": [{"name": "e", "web": {"url": "http://127.0.0.1:1/", "jsonPath": "/x"}}]});
    let (mut w, s) = deployed(strategy, 2, &["web", "web-preview"]);
    w.set_image("app:v2");
    w.cycle(3);
    let c = w.current();
    assert_eq!(w.selector_hash("web"), Some(c.clone()));
    assert_ne!(w.stable(), c, "not stable before post-promotion passed");
    w.outcomes.insert("postPromotion".into(), "Failed".into());
    w.sync();
    let p = w.sync();
    assert_eq!(w.selector_hash("web"), Some(s.clone()), "switched back");
    assert_eq!(
        w.selector_hash("web-preview"),
        Some(c.clone()),
        "preview left on the new RS"
    );
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.spec_of(&s), 2);
    assert_eq!(w.phase(), "Aborted");
    let patch = p
        .actions()
        .position(|a| matches!(a, RolloutAction::PatchService { .. }))
        .unwrap();
    let scale = p
        .actions()
        .position(|a| matches!(a, RolloutAction::UpdateReplicaSet(_)))
        .unwrap();
    assert!(patch < scale);
}

#[test]
fn blue_green_post_promotion_waits_for_the_endpoints_to_move() {
    let mut strategy = blue_green(true);
    strategy["blueGreen"]["postPromotionHook"] =
        json!({"name": "smoke", "http": {"url": "http://127.0.0.1:1/"}});
    let (mut w, s) = deployed(strategy, 2, &["web", "web-preview"]);
    // The active Service's endpoints stay on the stable pods after the switch.
    w.frozen_endpoints.insert("web".into(), s.clone());
    w.set_image("app:v2");
    w.cycle(6);
    let c = w.current();
    assert_eq!(w.selector_hash("web"), Some(c.clone()), "switched");
    assert!(
        !w.requested
            .iter()
            .any(|(_, kind, _)| kind == "postPromotion"),
        "{:?}",
        w.requested
    );
    let message = w.status().message.unwrap_or_default();
    assert!(message.contains("endpoints"), "{message}");
    assert!(
        w.last.requeue.is_some(),
        "a missed slice event cannot wedge it"
    );
    assert_ne!(w.stable(), c);
    // The endpoints follow: the hook runs, and once it passed the rollout completes.
    w.frozen_endpoints.clear();
    w.cycle(1);
    assert_eq!(
        w.requested
            .iter()
            .filter(|(_, kind, hash)| kind == "postPromotion" && *hash == c)
            .count(),
        1,
        "{:?}",
        w.requested
    );
    w.outcomes.insert("smoke".into(), "Succeeded".into());
    w.cycle(2);
    assert_eq!(
        w.stable(),
        c,
        "promoted once the post-promotion hook passed"
    );
}

#[test]
fn blue_green_manual_abort_before_the_switch() {
    let (mut w, s) = deployed(blue_green(false), 2, &["web", "web-preview"]);
    w.set_image("app:v2");
    w.cycle(2);
    let c = w.current();
    w.status_mut().abort = Some(true);
    w.cycle(1);
    assert_eq!(w.selector_hash("web"), Some(s));
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.phase(), "Aborted");
    assert!(w.status().pause_conditions.is_empty());
}

#[test]
fn blue_green_pre_promotion_hook_must_pass_before_the_switch() {
    let mut strategy = blue_green(true);
    strategy["blueGreen"]["prePromotionHook"] = json!({"http": {"url": "http://127.0.0.1:1/"}});
    let (mut w, s) = deployed(strategy, 2, &["web", "web-preview"]);
    w.set_image("app:v2");
    w.cycle(3);
    let c = w.current();
    assert_eq!(w.selector_hash("web"), Some(s.clone()));
    assert!(
        w.requested
            .iter()
            .any(|(n, k, h)| n == "prePromotion" && k == "prePromotion" && h == &c)
    );
    w.outcomes.insert("prePromotion".into(), "Succeeded".into());
    w.cycle(2);
    assert_eq!(w.selector_hash("web"), Some(c));
}

#[test]
fn restart_between_the_weight_patch_and_the_status_write() {
    let (mut w, s) = deployed(canary_steps(), 5, &["web", "web-canary"]);
    w.set_image("app:v2");
    w.cycle(1);
    let c = w.current();
    // The pass that raises the weight: apply its writes but lose its status (kill -9).
    let p = rollout_support::World::observed(&w);
    let plan = slipway_controllers::rollout::plan(&p).unwrap();
    w.apply_actions(&plan);
    assert_eq!(
        w.split("web"),
        Some(json!({"weights": {s.clone(): 80, c.clone(): 20}}))
    );
    assert_eq!(w.status().current_step_index, Some(0));
    // The next pass resumes at the same step, finds the weight applied, moves on.
    let p = w.sync();
    assert!(
        !p.actions()
            .any(|a| matches!(a, RolloutAction::PatchService { .. }))
    );
    assert_eq!(w.status().current_step_index, Some(1));
    assert_eq!(w.phase(), "Paused");
}

#[test]
fn never_a_wider_weight_than_the_step_allows() {
    // Canary pods never become available: the weight stays at 0 whatever is promoted.
    let (mut w, s) = deployed(canary_steps(), 5, &["web", "web-canary"]);
    w.ready_default = false;
    w.ready.insert(s.clone(), true);
    w.set_image("app:v2");
    w.cycle(1);
    let c = w.current();
    for _ in 0..4 {
        promote(&mut w);
        w.cycle(1);
        let weight = w.split("web").unwrap()["weights"][&c].as_i64().unwrap();
        assert_eq!(weight, 0);
    }
    assert_eq!(w.split("web").unwrap()["weights"][&s], 100);
}

#[test]
fn rolling_update_is_a_deployment() {
    let strategy = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let mut r = rollout(3, strategy, "app:v1");
    r.spec.hooks =
        serde_json::from_value(json!({"pre": {"http": {"url": "http://127.0.0.1:1/"}}})).unwrap();
    let mut w = World::new(r, &[]);
    w.outcomes.insert("pre".into(), "Succeeded".into());
    w.cycle(4);
    assert_eq!(w.phase(), "Healthy", "{:?}", w.status());
    let s = w.stable();
    w.outcomes.remove("pre");
    w.set_image("app:v2");
    w.cycle(2);
    assert_eq!(w.rss.len(), 1, "the pre hook gates the new ReplicaSet");
    w.outcomes.insert("pre".into(), "Succeeded".into());
    for _ in 0..12 {
        w.sync();
        let total: i32 = w
            .rss
            .iter()
            .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap())
            .sum();
        assert!(total <= 4);
        w.settle();
    }
    let c = w.current();
    assert_eq!(w.stable(), c);
    assert_eq!(w.spec_of(&s), 0);
    let rs = w.rs(&c).unwrap();
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Rollout"
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn rolling_update_abort_rolls_back_to_the_stable_template() {
    let strategy = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let mut w = World::new(rollout(2, strategy, "app:v1"), &[]);
    w.cycle(3);
    let s = w.stable();
    w.set_image("app:v2");
    let c;
    {
        w.cycle(1);
        c = w.current();
        w.ready.insert(c.clone(), false);
        w.cycle(2);
    }
    w.status_mut().abort = Some(true);
    w.cycle(4);
    assert_eq!(w.phase(), "Aborted");
    assert_eq!(w.spec_of(&c), 0);
    assert_eq!(w.spec_of(&s), 2);
}

#[test]
fn recreate_runs_the_mid_hook_between_old_and_new_pods() {
    let mut r = rollout(2, json!({"recreate": {}}), "app:v1");
    r.spec.hooks =
        serde_json::from_value(json!({"mid": {"http": {"url": "http://127.0.0.1:1/"}}})).unwrap();
    let mut w = World::new(r, &[]);
    w.outcomes.insert("mid".into(), "Succeeded".into());
    w.cycle(4);
    assert_eq!(w.phase(), "Healthy", "{:?}", w.status());
    let s = w.stable();
    w.outcomes.insert("mid".into(), "Running".into());
    w.set_image("app:v2");
    w.cycle(4);
    let c = w.current();
    assert_eq!(w.spec_of(&s), 0);
    assert!(
        w.rs(&c).is_none_or(|_| w.spec_of(&c) == 0),
        "no new pod before mid"
    );
    assert!(w.requested.iter().any(|(n, _, h)| n == "mid" && h == &c));
    w.outcomes.insert("mid".into(), "Succeeded".into());
    w.cycle(3);
    assert_eq!(w.spec_of(&c), 2);
    assert_eq!(w.stable(), c);
}
