//! The Rollout controller's blue-green and canary strategies end to end, with the real
//! kubectl against `slipway serve --runtime simulated`: the active/preview Service selectors
//! follow a blue-green rollout through promotion and abort; the stable Service's
//! `slipway.dev/traffic-split` annotation follows a canary's steps, promote releases an
//! indefinite pause, abort puts the weight back to 0. Promote and abort are status patches
//! (what the kubectl plugin writes).

mod common;

use common::{Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn simulated() -> Server {
    Server::start_with(&["--runtime", "simulated"])
}

fn service(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

fn rollout(replicas: u32, image: &str, strategy: &str) -> String {
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: {image}
  strategy:
{strategy}
"#
    )
}

fn status(s: &Server) -> Value {
    s.get_json(&["rollout.slipway.dev", "web"])["status"].clone()
}

fn selector_hash(s: &Server, svc: &str) -> Option<String> {
    s.get_json(&["service", svc])["spec"]["selector"]["pod-template-hash"]
        .as_str()
        .map(str::to_string)
}

fn split(s: &Server) -> Option<Value> {
    s.get_json(&["service", "web"])["metadata"]["annotations"]["slipway.dev/traffic-split"]
        .as_str()
        .map(|t| serde_json::from_str(t).expect("the annotation is JSON"))
}

fn patch_status(s: &Server, body: &Value) {
    s.ok(&[
        "patch",
        "rollout.slipway.dev",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &body.to_string(),
    ]);
}

fn promote(s: &Server) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    patch_status(s, &json!({"status": {"promoteRequestedAt": now}}));
}

fn field(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

#[test]
fn blue_green_promotion_and_abort_move_the_active_service() {
    common::require_kubectl();
    let s = simulated();
    s.apply(&service("web"));
    s.apply(&service("web-preview"));
    let strategy = "    blueGreen:\n      activeService: web\n      previewService: web-preview\n      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 1";
    s.apply(&rollout(2, "example/app:1.0", strategy));
    // First deployment: the active Service selects it directly.
    let v1 = eventually(WAIT, "the first revision to be stable", || {
        let st = status(&s);
        (field(&st, "phase") == "Healthy").then(|| field(&st, "stablePodHash"))
    });
    assert_eq!(selector_hash(&s, "web").as_deref(), Some(v1.as_str()));

    s.apply(&rollout(2, "example/app:2.0", strategy));
    let v2 = eventually(WAIT, "the new revision to pause with its preview", || {
        let st = status(&s);
        let cur = field(&st, "currentPodHash");
        (field(&st, "phase") == "Paused"
            && cur != v1
            && selector_hash(&s, "web-preview").as_deref() == Some(cur.as_str()))
        .then_some(cur)
    });
    let st = status(&s);
    assert_eq!(st["pauseConditions"][0]["reason"], "BlueGreenPause");
    assert_eq!(selector_hash(&s, "web").as_deref(), Some(v1.as_str()));

    promote(&s);
    eventually(WAIT, "the active Service to switch", || {
        (selector_hash(&s, "web").as_deref() == Some(v2.as_str())).then_some(())
    });
    eventually(WAIT, "the new revision to be stable and healthy", || {
        let st = status(&s);
        (field(&st, "stablePodHash") == v2 && field(&st, "phase") == "Healthy").then_some(())
    });

    // A third revision, aborted while it waits for promotion: the active Service stays on
    // (goes back to) the stable one, the new ReplicaSet is scaled to 0.
    s.apply(&rollout(2, "example/app:3.0", strategy));
    let v3 = eventually(WAIT, "the third revision to pause", || {
        let st = status(&s);
        let cur = field(&st, "currentPodHash");
        (field(&st, "phase") == "Paused" && cur != v2).then_some(cur)
    });
    patch_status(&s, &json!({"status": {"abort": true}}));
    eventually(WAIT, "the abort", || {
        let st = status(&s);
        let rs = s.get_json(&["rs", &format!("web-{v3}")]);
        (field(&st, "phase") == "Aborted" && rs["spec"]["replicas"] == 0).then_some(())
    });
    assert_eq!(selector_hash(&s, "web").as_deref(), Some(v2.as_str()));
    assert_eq!(
        selector_hash(&s, "web-preview").as_deref(),
        Some(v3.as_str())
    );
}

#[test]
fn canary_steps_drive_the_traffic_split_annotation() {
    common::require_kubectl();
    let s = simulated();
    s.apply(&service("web"));
    let strategy = "    canary:\n      stableService: web\n      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 50\n      - pause: {duration: 1s}";
    s.apply(&rollout(5, "example/app:1.0", strategy));
    let v1 = eventually(WAIT, "the first revision to be stable", || {
        let st = status(&s);
        (field(&st, "phase") == "Healthy").then(|| field(&st, "stablePodHash"))
    });
    assert_eq!(split(&s), Some(json!({"weights": {v1.clone(): 100}})));

    s.apply(&rollout(5, "example/app:2.0", strategy));
    let v2 = eventually(WAIT, "setWeight 20, then the indefinite pause", || {
        let st = status(&s);
        let cur = field(&st, "currentPodHash");
        (field(&st, "phase") == "Paused" && cur != v1).then_some(cur)
    });
    assert_eq!(
        split(&s),
        Some(json!({"weights": {v1.clone(): 80, v2.clone(): 20}}))
    );
    let st = status(&s);
    assert_eq!(st["currentStepIndex"], 1);
    assert_eq!(st["pauseConditions"][0]["reason"], "CanaryPauseStep");
    let canary = s.get_json(&["rs", &format!("web-{v2}")]);
    assert_eq!(canary["spec"]["replicas"], 1);

    // The 50/50 split lasts about the 1 s pause: watched, not polled, so it cannot be missed.
    let services = "/api/v1/namespaces/default/services";
    let rv = common::list_revision(&s, services);
    let events = common::watch_events(
        &s,
        &format!(
            "{services}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dweb&timeoutSeconds=120"
        ),
    );
    promote(&s);
    let half = json!({"weights": {v1.clone(): 50, v2.clone(): 50}});
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(ev) = events.recv_timeout(left) else {
            panic!("no setWeight 50 within {WAIT:?}; splits seen: {seen:?}");
        };
        let text = ev["object"]["metadata"]["annotations"]["slipway.dev/traffic-split"]
            .as_str()
            .map(str::to_string);
        let now: Option<Value> = text.map(|t| serde_json::from_str(&t).expect("JSON"));
        if now.as_ref() == Some(&half) {
            break;
        }
        seen.push(now);
    }
    eventually(
        WAIT,
        "the 1s pause to end and the canary to be promoted",
        || {
            let st = status(&s);
            (field(&st, "stablePodHash") == v2
                && split(&s) == Some(json!({"weights": {v2.clone(): 100}})))
            .then_some(())
        },
    );

    s.apply(&rollout(5, "example/app:3.0", strategy));
    let v3 = eventually(WAIT, "the next canary at 20%", || {
        let st = status(&s);
        let cur = field(&st, "currentPodHash");
        (field(&st, "phase") == "Paused" && cur != v2).then_some(cur)
    });
    assert_eq!(
        split(&s),
        Some(json!({"weights": {v2.clone(): 80, v3.clone(): 20}}))
    );
    patch_status(&s, &json!({"status": {"abort": true}}));
    eventually(WAIT, "the abort to put the weight back to 0", || {
        let st = status(&s);
        (field(&st, "phase") == "Aborted"
            && split(&s) == Some(json!({"weights": {v2.clone(): 100, v3.clone(): 0}})))
        .then_some(())
    });
    eventually(WAIT, "the canary to be scaled to 0", || {
        (s.get_json(&["rs", &format!("web-{v3}")])["spec"]["replicas"] == 0).then_some(())
    });
}
