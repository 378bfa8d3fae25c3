//! The decisions of the commands, from the objects read: what a name argument means,
//! whether there is anything to promote, abort or retry, which revision `undo` goes back
//! to, the patch of `set image`, and the progress line of `status`. Pure (no I/O).

use super::view::{self, HASH_LABEL};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use slipway_rollout::{Rollout, RolloutStatus};

/// The resource names that mean Rollout on the command line.
const ROLLOUT_WORDS: &[&str] = &[
    "rollout",
    "rollouts",
    "ro",
    "rollout.slipway.dev",
    "rollouts.slipway.dev",
    "rollout.v1alpha1.slipway.dev",
    "rollouts.v1alpha1.slipway.dev",
];

fn is_rollout_word(s: &str) -> bool {
    ROLLOUT_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// A Rollout argument: `web`, or `rollout/web` (any name of the resource before the `/`).
pub fn rollout_name(arg: &str) -> Result<String, String> {
    let name = match arg.split_once('/') {
        Some((kind, name)) if is_rollout_word(kind) => name,
        Some((kind, _)) => {
            return Err(format!(
                "{arg:?} is not a rollout: only rollouts are handled here (not {kind:?})"
            ));
        }
        None => arg,
    };
    if name.is_empty() {
        return Err(format!("{arg:?}: the rollout name is empty"));
    }
    Ok(name.to_string())
}

/// What `get` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetTarget {
    /// One Rollout.
    One(String),
    /// Every Rollout of the namespace.
    List,
}

/// `get rollout NAME`, `get NAME`, `get rollout/NAME`, `get rollouts`.
pub fn get_target(args: &[String]) -> Result<GetTarget, String> {
    match args {
        [] => {
            Err("get: name a rollout (get rollout NAME) or ask for the list (get rollouts)".into())
        }
        [one] if is_rollout_word(one) => Ok(GetTarget::List),
        [one] => Ok(GetTarget::One(rollout_name(one)?)),
        [kind, name] if is_rollout_word(kind) => Ok(GetTarget::One(rollout_name(name)?)),
        [kind, _] => Err(format!(
            "the resource type {kind:?} is not handled here: only rollouts (get rollout NAME)"
        )),
        _ => Err("get takes one rollout: get rollout NAME".into()),
    }
}

/// `CONTAINER=IMAGE` arguments.
pub fn image_pairs(args: &[String]) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err("at least one image update is required: CONTAINER=IMAGE".into());
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
            _ => Err(format!(
                "invalid image update {a:?}: expected CONTAINER=IMAGE"
            )),
        })
        .collect()
}

/// The JSON patch of `set image`: for each container named (or `*`: every container) of
/// `spec.template` (init containers too), a `test` of its name at its index and a
/// `replace` of its image.
pub fn set_image_patch(rollout: &Value, pairs: &[(String, String)]) -> Result<Value, String> {
    let mut ops = Vec::new();
    for (container, image) in pairs {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            let Some(items) = rollout
                .pointer(&format!("/spec/template/spec/{list}"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for (i, c) in items.iter().enumerate() {
                let name = c["name"].as_str().unwrap_or_default();
                if container == "*" || name == container {
                    found = true;
                    let path = format!("/spec/template/spec/{list}/{i}");
                    ops.push(json!({"op": "test", "path": format!("{path}/name"), "value": name}));
                    ops.push(
                        json!({"op": "replace", "path": format!("{path}/image"), "value": image}),
                    );
                }
            }
        }
        if !found {
            return Err(format!("unable to find container named {container:?}"));
        }
    }
    Ok(Value::Array(ops))
}

/// Why there is nothing in progress (the phase to name), or `None` when a rollout is under
/// way: no status yet, a Healthy rollout whose current revision is the stable one, or an
/// Aborted one, are not in progress; a spec change the controller has not observed yet is.
fn idle_phase(generation: i64, status: Option<&RolloutStatus>) -> Option<String> {
    let Some(status) = status else {
        return Some("unknown: no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    let phase = status.phase.as_deref().unwrap_or("");
    let settled = phase == "Healthy" && status.current_pod_hash == status.stable_pod_hash;
    (settled || phase == "Aborted").then(|| phase.to_string())
}

/// Whether `promote` has something to release.
pub fn check_promote(
    name: &str,
    generation: i64,
    status: Option<&RolloutStatus>,
) -> Result<(), String> {
    match idle_phase(generation, status) {
        Some(phase) => Err(format!(
            "rollout {name:?} is not paused or progressing: nothing to promote (phase {phase})"
        )),
        None => Ok(()),
    }
}

/// Whether `abort` has a rollout to stop.
pub fn check_abort(
    name: &str,
    generation: i64,
    status: Option<&RolloutStatus>,
) -> Result<(), String> {
    match idle_phase(generation, status) {
        Some(phase) => Err(format!(
            "rollout {name:?} has no rollout in progress to abort (phase {phase})"
        )),
        None => Ok(()),
    }
}

/// Whether `retry` applies: only to an Aborted rollout.
pub fn check_retry(name: &str, status: Option<&RolloutStatus>) -> Result<(), String> {
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "unknown: no status yet".into());
    if phase == "Aborted" {
        Ok(())
    } else {
        Err(format!(
            "rollout {name:?} is not aborted: nothing to retry (phase {phase})"
        ))
    }
}

/// Where `undo` goes.
#[derive(Clone, Debug, PartialEq)]
pub struct UndoPlan {
    /// The revision rolled back to.
    pub revision: i64,
    /// Its pod template, without the `pod-template-hash` label.
    pub template: Value,
    /// The Rollout's template is that already.
    pub unchanged: bool,
}

/// A pod template without the `pod-template-hash` label.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

/// The ReplicaSet revision `undo` rolls back to, as `kubectl rollout undo` picks it:
/// `to_revision` if not 0, else the one before the newest.
pub fn select_undo(
    name: &str,
    replica_sets: &[Value],
    current_template: &Value,
    to_revision: i64,
) -> Result<UndoPlan, String> {
    let mut history: Vec<(i64, &Value)> = replica_sets
        .iter()
        .filter_map(|rs| view::revision(rs).filter(|r| *r > 0).map(|r| (r, rs)))
        .collect();
    history.sort_by_key(|(r, _)| *r);
    let (revision, rs) = if to_revision > 0 {
        *history
            .iter()
            .find(|(r, _)| *r == to_revision)
            .ok_or_else(|| format!("unable to find specified revision {to_revision} in history"))?
    } else if to_revision < 0 {
        return Err(format!(
            "invalid --to-revision {to_revision}: must be 0 (the previous revision) or more"
        ));
    } else {
        if history.len() < 2 {
            return Err(format!("no rollout history found for rollout {name:?}"));
        }
        history[history.len() - 2]
    };
    let template = without_hash(&rs["spec"]["template"]);
    let unchanged = without_hash(current_template) == template;
    Ok(UndoPlan {
        revision,
        template,
        unchanged,
    })
}

/// Where a rollout is, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Healthy, the current revision stable: exit 0.
    Done(String),
    /// Aborted or Degraded: exit 1.
    Failed(String),
    /// Still going.
    Waiting(String),
}

/// The `status` line of a Rollout.
pub fn progress(generation: i64, r: &Rollout, now: DateTime<Utc>) -> Progress {
    let name = r.metadata.name.as_deref().unwrap_or("");
    let Some(status) = r.status.as_ref() else {
        return Progress::Waiting(format!(
            "Waiting for rollout {name:?} to be observed by the controller..."
        ));
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting(format!(
            "Waiting for rollout {name:?} spec update to be observed..."
        ));
    }
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    let message = status
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match phase {
        "Aborted" => return Progress::Failed(format!("rollout {name:?} was aborted{message}")),
        "Degraded" => return Progress::Failed(format!("rollout {name:?} is degraded{message}")),
        "Healthy" if status.current_pod_hash == status.stable_pod_hash => {
            return Progress::Done(format!("rollout {name:?} successfully rolled out"));
        }
        _ => {}
    }
    let mut parts = vec![phase.to_string()];
    if !status.pause_conditions.is_empty() {
        let reasons: Vec<&str> = status
            .pause_conditions
            .iter()
            .map(|p| p.reason.as_str())
            .collect();
        parts[0] = format!("{phase} ({})", reasons.join(", "));
    }
    if let Some(step) = view::step_progress(r, now) {
        // Without the countdown, so the line only changes when the rollout does.
        let step = strip_countdown(&step);
        parts.push(format!("step {step}"));
    }
    parts.push(format!(
        "{} of {} replicas updated, {} available",
        status.updated_replicas.unwrap_or(0),
        r.spec.replicas.unwrap_or(1),
        status.available_replicas.unwrap_or(0)
    ));
    Progress::Waiting(format!(
        "Waiting for rollout {name:?} to finish: {}...",
        parts.join(", ")
    ))
}

/// `pause: 30s (12s left)` without ` (12s left)`.
fn strip_countdown(step: &str) -> String {
    match step.rfind(" (") {
        Some(i) if step.ends_with(" left)") => step[..i].to_string(),
        _ => step.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: Value) -> RolloutStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rollout_arguments() {
        assert_eq!(rollout_name("web").unwrap(), "web");
        assert_eq!(rollout_name("rollout/web").unwrap(), "web");
        assert_eq!(rollout_name("ro/web").unwrap(), "web");
        assert_eq!(rollout_name("rollouts.slipway.dev/web").unwrap(), "web");
        assert!(rollout_name("deploy/web").is_err());
        assert!(rollout_name("rollout/").is_err());
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            get_target(&s(&["rollout", "web"])).unwrap(),
            GetTarget::One("web".into())
        );
        assert_eq!(
            get_target(&s(&["web"])).unwrap(),
            GetTarget::One("web".into())
        );
        assert_eq!(
            get_target(&s(&["ro/web"])).unwrap(),
            GetTarget::One("web".into())
        );
        assert_eq!(get_target(&s(&["rollouts"])).unwrap(), GetTarget::List);
        assert_eq!(get_target(&s(&["ro"])).unwrap(), GetTarget::List);
        // A rollout called "rollout".
        assert_eq!(
            get_target(&s(&["rollout", "rollout"])).unwrap(),
            GetTarget::One("rollout".into())
        );
        assert!(get_target(&s(&["deploy", "web"])).is_err());
        assert!(get_target(&s(&[])).is_err());
    }

    #[test]
    fn image_arguments_and_the_set_image_patch() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            image_pairs(&s(&["app=nginx:1.2", "side=busybox"])).unwrap(),
            vec![
                ("app".to_string(), "nginx:1.2".to_string()),
                ("side".to_string(), "busybox".to_string())
            ]
        );
        assert!(image_pairs(&s(&["app"])).is_err());
        assert!(image_pairs(&s(&["=x"])).is_err());
        assert!(image_pairs(&s(&[])).is_err());
        let r = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "i:1"}],
            "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}}});
        let p = set_image_patch(&r, &[("side".into(), "s:2".into())]).unwrap();
        assert_eq!(
            p,
            json!([
                {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "side"},
                {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "s:2"}
            ])
        );
        let p = set_image_patch(&r, &[("*".into(), "x:9".into())]).unwrap();
        assert_eq!(p.as_array().unwrap().len(), 6);
        assert_eq!(
            p[1]["path"], "/spec/template/spec/initContainers/0/image",
            "{p}"
        );
        assert_eq!(
            set_image_patch(&r, &[("nope".into(), "x".into())]).unwrap_err(),
            "unable to find container named \"nope\""
        );
    }

    #[test]
    fn nothing_to_promote_or_abort_when_settled() {
        let healthy = status(json!({"observedGeneration": 3, "phase": "Healthy",
                                    "currentPodHash": "a", "stablePodHash": "a"}));
        assert_eq!(
            check_promote("web", 3, Some(&healthy)).unwrap_err(),
            "rollout \"web\" is not paused or progressing: nothing to promote (phase Healthy)"
        );
        assert_eq!(
            check_abort("web", 3, Some(&healthy)).unwrap_err(),
            "rollout \"web\" has no rollout in progress to abort (phase Healthy)"
        );
        // A spec change the controller has not seen yet is a rollout about to start.
        assert!(check_promote("web", 4, Some(&healthy)).is_ok());
        assert!(check_abort("web", 4, Some(&healthy)).is_ok());
        // No status at all: nothing to act on.
        assert_eq!(
            check_promote("web", 1, None).unwrap_err(),
            "rollout \"web\" is not paused or progressing: nothing to promote (phase unknown: no status yet)"
        );
        assert!(check_abort("web", 1, None).is_err());
        // Healthy but the current revision is not the stable one: in progress.
        let moving = status(json!({"observedGeneration": 3, "phase": "Healthy",
                                   "currentPodHash": "b", "stablePodHash": "a"}));
        assert!(check_promote("web", 3, Some(&moving)).is_ok());
        for phase in ["Paused", "Progressing", "Degraded"] {
            let s = status(json!({"observedGeneration": 3, "phase": phase,
                                  "currentPodHash": "b", "stablePodHash": "a"}));
            assert!(check_promote("web", 3, Some(&s)).is_ok(), "{phase}");
            assert!(check_abort("web", 3, Some(&s)).is_ok(), "{phase}");
            assert_eq!(
                check_retry("web", Some(&s)).unwrap_err(),
                format!("rollout \"web\" is not aborted: nothing to retry (phase {phase})")
            );
        }
        let aborted = status(
            json!({"observedGeneration": 3, "phase": "Aborted", "abort": true,
                                    "currentPodHash": "b", "stablePodHash": "a"}),
        );
        assert_eq!(
            check_abort("web", 3, Some(&aborted)).unwrap_err(),
            "rollout \"web\" has no rollout in progress to abort (phase Aborted)"
        );
        assert!(check_promote("web", 3, Some(&aborted)).is_err());
        assert!(check_retry("web", Some(&aborted)).is_ok());
        assert!(check_retry("web", None).is_err());
    }

    fn rs(hash: &str, rev: Option<i64>, image: &str) -> Value {
        let mut v = json!({
            "metadata": {"name": format!("web-{hash}"), "labels": {HASH_LABEL: hash}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", HASH_LABEL: hash}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}
        });
        if let Some(r) = rev {
            v["metadata"]["annotations"] = json!({view::REVISION_ANNOTATION: r.to_string()});
        }
        v
    }

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    #[test]
    fn undo_goes_to_the_previous_or_the_named_revision() {
        let sets = vec![
            rs("c", Some(3), "app:3"),
            rs("a", Some(1), "app:1"),
            rs("b", Some(2), "app:2"),
            rs("x", None, "app:x"),
        ];
        let plan = select_undo("web", &sets, &template("app:3"), 0).unwrap();
        assert_eq!(plan.revision, 2);
        assert_eq!(
            plan.template,
            template("app:2"),
            "the hash label is dropped"
        );
        assert!(!plan.unchanged);
        let plan = select_undo("web", &sets, &template("app:3"), 1).unwrap();
        assert_eq!(plan.revision, 1);
        assert_eq!(plan.template, template("app:1"));
        let plan = select_undo("web", &sets, &template("app:3"), 3).unwrap();
        assert!(plan.unchanged);
        assert_eq!(
            select_undo("web", &sets, &template("app:3"), 7).unwrap_err(),
            "unable to find specified revision 7 in history"
        );
        assert_eq!(
            select_undo("web", &sets[..1], &template("app:3"), 0).unwrap_err(),
            "no rollout history found for rollout \"web\""
        );
        assert!(select_undo("web", &sets, &template("app:3"), -1).is_err());
    }

    fn rollout(status: Value) -> Rollout {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 4, "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1m"}}]}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn status_lines() {
        let now = view::parse_time("2025-01-01T00:00:30Z").unwrap();
        let r = rollout(json!({"observedGeneration": 2, "phase": "Healthy",
                               "currentPodHash": "a", "stablePodHash": "a"}));
        assert_eq!(
            progress(2, &r, now),
            Progress::Done("rollout \"web\" successfully rolled out".into())
        );
        assert_eq!(
            progress(3, &r, now),
            Progress::Waiting("Waiting for rollout \"web\" spec update to be observed...".into())
        );
        let r = rollout(
            json!({"observedGeneration": 2, "phase": "Aborted", "message": "analysis failed"}),
        );
        assert_eq!(
            progress(2, &r, now),
            Progress::Failed("rollout \"web\" was aborted: analysis failed".into())
        );
        let r = rollout(json!({"observedGeneration": 2, "phase": "Degraded"}));
        assert_eq!(
            progress(2, &r, now),
            Progress::Failed("rollout \"web\" is degraded".into())
        );
        let r = rollout(json!({"observedGeneration": 2, "phase": "Paused",
                               "currentPodHash": "b", "stablePodHash": "a",
                               "currentStepIndex": 1, "stepStartedAt": "2025-01-01T00:00:00Z",
                               "updatedReplicas": 2, "availableReplicas": 4,
                               "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-01-01T00:00:00Z"}]}));
        assert_eq!(
            progress(2, &r, now),
            Progress::Waiting(
                "Waiting for rollout \"web\" to finish: Paused (CanaryPauseStep), step 2/2 pause: 1m, 2 of 4 replicas updated, 4 available...".into()
            )
        );
        let r = rollout(json!(null));
        assert!(
            matches!(progress(1, &r, now), Progress::Waiting(m) if m.contains("observed by the controller"))
        );
    }
}
