//! Defaulting of a Rollout, as the API server applies it on every write (pure).
//!
//! What this module defaults (only unset fields are touched, so defaulting twice changes
//! nothing):
//!
//! | Field | Default |
//! | --- | --- |
//! | `spec.replicas` | 1 |
//! | `spec.revisionHistoryLimit` | 10 |
//! | `spec.progressDeadlineSeconds` | 600 |
//! | `spec.strategy` with no member | `rollingUpdate` (as a Deployment) |
//! | `rollingUpdate.maxSurge` / `maxUnavailable` | `25%` / `25%` |
//! | `canary.maxSurge` / `maxUnavailable` | `25%` / `25%` (Argo Rollouts' defaults) |
//! | `blueGreen.autoPromotionEnabled` | `true` |
//! | `blueGreen.scaleDownDelaySeconds` | 30 |
//! | every hook's `timeoutSeconds` / `failurePolicy` | 300 / `Abort` |
//! | a `Retry` hook's `retry.limit` / `retry.backoffSeconds` | 3 / 5 |
//! | every analysis check's `interval`, `failureLimit`, `inconclusiveLimit` | `10s`, 0, 0 |
//! | an analysis check's `count` | 1; 0 (unbounded) in the canary's background `analysis` |
//!
//! An empty strategy becomes a plain rolling update rather than a canary without steps:
//! both end in the same place, and the rolling update is what a Deployment does.
//!
//! The pod template gets the defaults of a Deployment's pod template; those live with the
//! API server's admission (`slipway-admission`), which applies them after this.

use crate::types::{
    Analysis, AnalysisCheck, CanaryStep, Hook, HookRetry, RollingUpdateStrategy, Rollout,
    RolloutSpec, RolloutStrategy,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Default `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// Default `spec.revisionHistoryLimit`.
pub const REVISION_HISTORY_LIMIT: i32 = 10;
/// Default `spec.progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default `maxSurge` and `maxUnavailable` of the rolling update and canary strategies.
pub const MAX_SURGE_UNAVAILABLE: &str = "25%";
/// Default `blueGreen.scaleDownDelaySeconds`.
pub const SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default hook `timeoutSeconds`.
pub const HOOK_TIMEOUT_SECONDS: i32 = 300;
/// Default hook `failurePolicy`.
pub const HOOK_FAILURE_POLICY: &str = "Abort";
/// Default `retry.limit` of a `Retry` hook.
pub const RETRY_LIMIT: i32 = 3;
/// Default `retry.backoffSeconds` of a `Retry` hook.
pub const RETRY_BACKOFF_SECONDS: i32 = 5;
/// Default analysis check `interval`.
pub const CHECK_INTERVAL: &str = "10s";

fn percent(field: &mut Option<IntOrString>) {
    field.get_or_insert_with(|| IntOrString::String(MAX_SURGE_UNAVAILABLE.to_string()));
}

/// Applies every default of the table in the module docs to `rollout`.
pub fn rollout(rollout: &mut Rollout) {
    spec(&mut rollout.spec);
}

/// The defaults of a spec (see the module docs).
pub fn spec(spec: &mut RolloutSpec) {
    spec.replicas.get_or_insert(REPLICAS);
    spec.revision_history_limit
        .get_or_insert(REVISION_HISTORY_LIMIT);
    spec.progress_deadline_seconds
        .get_or_insert(PROGRESS_DEADLINE_SECONDS);
    strategy(&mut spec.strategy);
    if let Some(hooks) = &mut spec.hooks {
        for h in [
            &mut hooks.pre,
            &mut hooks.mid,
            &mut hooks.post,
            &mut hooks.on_abort,
        ]
        .into_iter()
        .flatten()
        {
            hook(h);
        }
    }
}

fn strategy(s: &mut RolloutStrategy) {
    if s.rolling_update.is_none()
        && s.recreate.is_none()
        && s.blue_green.is_none()
        && s.canary.is_none()
    {
        s.rolling_update = Some(RollingUpdateStrategy::default());
    }
    if let Some(ru) = &mut s.rolling_update {
        percent(&mut ru.max_surge);
        percent(&mut ru.max_unavailable);
    }
    if let Some(bg) = &mut s.blue_green {
        bg.auto_promotion_enabled.get_or_insert(true);
        bg.scale_down_delay_seconds
            .get_or_insert(SCALE_DOWN_DELAY_SECONDS);
        for a in [
            &mut bg.pre_promotion_analysis,
            &mut bg.post_promotion_analysis,
        ]
        .into_iter()
        .flatten()
        {
            analysis(a, 1);
        }
        for h in [&mut bg.pre_promotion_hook, &mut bg.post_promotion_hook]
            .into_iter()
            .flatten()
        {
            hook(h);
        }
    }
    if let Some(c) = &mut s.canary {
        percent(&mut c.max_surge);
        percent(&mut c.max_unavailable);
        c.steps.iter_mut().for_each(step);
        if let Some(a) = &mut c.analysis {
            analysis(a, 0);
        }
    }
}

fn step(s: &mut CanaryStep) {
    if let Some(a) = &mut s.analysis {
        analysis(a, 1);
    }
    if let Some(h) = &mut s.hook {
        hook(h);
    }
}

/// Hook defaults: timeout, failure policy, and the retry budget of `Retry` hooks.
pub fn hook(h: &mut Hook) {
    h.timeout_seconds.get_or_insert(HOOK_TIMEOUT_SECONDS);
    if h.failure_policy.as_deref().unwrap_or("").is_empty() {
        h.failure_policy = Some(HOOK_FAILURE_POLICY.to_string());
    }
    if h.failure_policy.as_deref() == Some("Retry") {
        let retry = h.retry.get_or_insert_with(HookRetry::default);
        retry.limit.get_or_insert(RETRY_LIMIT);
        retry.backoff_seconds.get_or_insert(RETRY_BACKOFF_SECONDS);
    }
}

/// Analysis defaults; `count` is the default count of its checks (1 for an analysis that
/// gates a step or a promotion, 0 for the canary's background analysis).
pub fn analysis(a: &mut Analysis, count: i32) {
    for c in &mut a.checks {
        check(c, count);
    }
}

fn check(c: &mut AnalysisCheck, count: i32) {
    if c.interval.as_deref().unwrap_or("").is_empty() {
        c.interval = Some(CHECK_INTERVAL.to_string());
    }
    c.count.get_or_insert(count);
    c.failure_limit.get_or_insert(0);
    c.inconclusive_limit.get_or_insert(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        BlueGreenStrategy, CanaryStrategy, ExecHook, RecreateStrategy, RolloutHooks,
    };
    use serde_json::json;

    fn defaulted(spec: serde_json::Value) -> serde_json::Value {
        let mut r: Rollout = serde_json::from_value(json!({"spec": spec})).unwrap();
        rollout(&mut r);
        serde_json::to_value(&r.spec).unwrap()
    }

    fn pct(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }

    #[test]
    fn an_empty_spec_gets_the_deployment_defaults_and_a_rolling_update() {
        let mut r = Rollout::default();
        rollout(&mut r);
        assert_eq!(r.spec.replicas, Some(1));
        assert_eq!(r.spec.revision_history_limit, Some(10));
        assert_eq!(r.spec.progress_deadline_seconds, Some(600));
        assert_eq!(
            r.spec.strategy,
            RolloutStrategy {
                rolling_update: Some(RollingUpdateStrategy {
                    max_surge: pct("25%"),
                    max_unavailable: pct("25%"),
                }),
                ..Default::default()
            }
        );
        assert!(r.spec.hooks.is_none());
    }

    #[test]
    fn set_values_are_kept() {
        let out = defaulted(json!({
            "replicas": 0, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 60,
            "strategy": {"rollingUpdate": {"maxSurge": 0}}
        }));
        assert_eq!(out["replicas"], 0);
        assert_eq!(out["revisionHistoryLimit"], 2);
        assert_eq!(out["progressDeadlineSeconds"], 60);
        assert_eq!(
            out["strategy"],
            json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn a_strategy_member_is_not_joined_by_rolling_update() {
        let out = defaulted(json!({"strategy": {"recreate": {}}}));
        assert_eq!(out["strategy"], json!({"recreate": {}}));
    }

    #[test]
    fn blue_green_defaults() {
        let out = defaulted(json!({"strategy": {"blueGreen": {
            "activeService": "web",
            "prePromotionAnalysis": {"checks": [{"name": "a", "web": {"url": "http://x", "jsonPath": "ok"}}]},
            "postPromotionHook": {"http": {"url": "http://127.0.0.1/x"}}
        }}}));
        let bg = &out["strategy"]["blueGreen"];
        assert_eq!(bg["autoPromotionEnabled"], true);
        assert_eq!(bg["scaleDownDelaySeconds"], 30);
        assert_eq!(
            bg["prePromotionAnalysis"]["checks"][0],
            json!({"name": "a", "interval": "10s", "count": 1, "failureLimit": 0,
                   "inconclusiveLimit": 0, "web": {"url": "http://x", "jsonPath": "ok"}})
        );
        assert_eq!(
            bg["postPromotionHook"],
            json!({"http": {"url": "http://127.0.0.1/x"}, "timeoutSeconds": 300, "failurePolicy": "Abort"})
        );
        // Explicit values stay.
        let out = defaulted(json!({"strategy": {"blueGreen": {
            "activeService": "web", "autoPromotionEnabled": false, "scaleDownDelaySeconds": 0
        }}}));
        assert_eq!(out["strategy"]["blueGreen"]["autoPromotionEnabled"], false);
        assert_eq!(out["strategy"]["blueGreen"]["scaleDownDelaySeconds"], 0);
    }

    #[test]
    fn canary_defaults() {
        let out = defaulted(json!({"strategy": {"canary": {
            "maxUnavailable": 0,
            "steps": [
                {"setWeight": 10},
                {"analysis": {"checks": [{"name": "e", "interval": "5s", "count": 3,
                    "proxy": {"metric": "errorRate", "max": 0.01}}]}},
                {"hook": {"exec": {"command": ["true"]}, "failurePolicy": "Retry"}},
                {"hook": {"exec": {"command": ["true"]}, "failurePolicy": "Retry", "retry": {"limit": 1}}},
                {"hook": {"exec": {"command": ["true"]}, "failurePolicy": "Ignore", "timeoutSeconds": 7}}
            ],
            "analysis": {"checks": [{"name": "bg", "job": {"command": ["true"]}}]}
        }}}));
        let c = &out["strategy"]["canary"];
        assert_eq!(c["maxSurge"], "25%");
        assert_eq!(c["maxUnavailable"], 0);
        assert_eq!(c["steps"][0], json!({"setWeight": 10}));
        assert_eq!(
            c["steps"][1]["analysis"]["checks"][0],
            json!({"name": "e", "interval": "5s", "count": 3, "failureLimit": 0,
                   "inconclusiveLimit": 0, "proxy": {"metric": "errorRate", "max": 0.01}})
        );
        assert_eq!(
            c["steps"][2]["hook"],
            json!({"exec": {"command": ["true"]}, "timeoutSeconds": 300, "failurePolicy": "Retry",
                   "retry": {"limit": 3, "backoffSeconds": 5}})
        );
        assert_eq!(
            c["steps"][3]["hook"]["retry"],
            json!({"limit": 1, "backoffSeconds": 5})
        );
        assert_eq!(
            c["steps"][4]["hook"],
            json!({"exec": {"command": ["true"]}, "timeoutSeconds": 7, "failurePolicy": "Ignore"})
        );
        // The background analysis runs until the rollout ends.
        assert_eq!(c["analysis"]["checks"][0]["count"], 0);
        assert_eq!(c["analysis"]["checks"][0]["interval"], "10s");
    }

    #[test]
    fn rollout_hooks_are_defaulted() {
        let mut s = RolloutSpec {
            strategy: RolloutStrategy {
                recreate: Some(RecreateStrategy {}),
                ..Default::default()
            },
            hooks: Some(RolloutHooks {
                pre: Some(Hook {
                    exec: Some(ExecHook {
                        command: vec!["true".into()],
                        ..Default::default()
                    }),
                    failure_policy: Some(String::new()),
                    ..Default::default()
                }),
                mid: Some(Hook::default()),
                post: Some(Hook::default()),
                on_abort: Some(Hook::default()),
            }),
            ..Default::default()
        };
        spec(&mut s);
        let hooks = s.hooks.unwrap();
        for h in [hooks.pre, hooks.mid, hooks.post, hooks.on_abort] {
            let h = h.unwrap();
            assert_eq!(h.timeout_seconds, Some(300));
            assert_eq!(h.failure_policy.as_deref(), Some("Abort"));
            assert!(h.retry.is_none());
        }
    }

    #[test]
    fn defaulting_is_idempotent() {
        let mut r = Rollout {
            spec: RolloutSpec {
                strategy: RolloutStrategy {
                    blue_green: Some(BlueGreenStrategy {
                        active_service: "a".into(),
                        ..Default::default()
                    }),
                    canary: Some(CanaryStrategy::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        rollout(&mut r);
        let once = r.clone();
        rollout(&mut r);
        assert_eq!(r, once);
    }
}
