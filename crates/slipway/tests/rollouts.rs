//! The Deployment and ReplicaSet controllers end to end, with the real kubectl against
//! `slipway serve --runtime simulated`: rollouts within the surge/unavailable budget,
//! `kubectl rollout` (status, history, pause, resume, undo, restart), proportional scaling,
//! Recreate ordering, progress deadlines, garbage collection, and a crash mid-rollout.

mod common;

use common::{Server, eventually, list_revision, watch_events};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn simulated() -> Server {
    Server::start_with(&["--runtime", "simulated"])
}

/// A Deployment manifest; `annotations` go on the pod template (simulated behaviour).
fn deployment(
    name: &str,
    replicas: u32,
    strategy: &str,
    template_annotations: &str,
    image: &str,
) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 60
  strategy:
{strategy}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{{template_annotations}}}
    spec:
      containers:
      - name: app
        image: {image}
"#
    )
}

const ROLLING_3_2: &str =
    "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 3, maxUnavailable: 2}";

/// Pods as seen through a watch, by name.
#[derive(Default)]
struct PodView {
    pods: BTreeMap<String, Value>,
}

impl PodView {
    fn apply(&mut self, ev: &Value) {
        let obj = &ev["object"];
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        match ev["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                self.pods.insert(name, obj.clone());
            }
            Some("DELETED") => {
                self.pods.remove(&name);
            }
            _ => {}
        }
    }

    fn live(&self) -> impl Iterator<Item = &Value> {
        self.pods
            .values()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
    }

    fn ready(&self) -> usize {
        self.live().filter(|p| is_ready(p)).count()
    }

    fn live_with_image(&self, image: &str) -> usize {
        self.pods
            .values()
            .filter(|p| p["spec"]["containers"][0]["image"] == image)
            .count()
    }
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Drains `events` into `view`, checking `check` after each, until `done` holds or the
/// deadline passes.
fn follow(
    events: &Receiver<Value>,
    view: &mut PodView,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(&PodView),
    mut done: impl FnMut(&PodView) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(view) {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("timed out waiting for {what}"));
        let ev = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        view.apply(&ev);
        check(view);
    }
}

#[test]
fn a_rolling_update_of_ten_replicas_stays_within_surge_and_unavailable() {
    let s = simulated();
    let ready_slowly = r#""sim.slipway.dev/ready-after": "150ms""#;
    s.apply(&deployment(
        "web",
        10,
        ROLLING_3_2,
        ready_slowly,
        "example/app:1.0",
    ));
    let status = s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );

    let pods_path = "/api/v1/namespaces/default/pods";
    let rv = list_revision(&s, pods_path);
    let mut view = PodView::default();
    let (code, body) = s.http("GET", pods_path, None, b"", true);
    assert_eq!(code, 200);
    for p in serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
    {
        view.apply(&serde_json::json!({"type": "ADDED", "object": p}));
    }
    assert_eq!(view.ready(), 10);
    let events = watch_events(
        &s,
        &format!("{pods_path}?watch=true&resourceVersion={rv}&timeoutSeconds=120"),
    );

    s.ok(&["set", "image", "deploy/web", "app=example/app:2.0"]);
    let mut max_live = 0;
    let mut min_ready = usize::MAX;
    follow(
        &events,
        &mut view,
        Duration::from_secs(60),
        "10 ready pods of example/app:2.0 and no old pod",
        |v| {
            let live = v.live().count();
            max_live = max_live.max(live);
            min_ready = min_ready.min(v.ready());
            assert!(
                live <= 13,
                "more than replicas + maxSurge = 13 pods: {live}"
            );
            assert!(
                v.ready() >= 8,
                "fewer than replicas - maxUnavailable = 8 ready pods: {}",
                v.ready()
            );
        },
        |v| {
            v.live_with_image("example/app:2.0") == 10
                && v.ready() == 10
                && v.live_with_image("example/app:1.0") == 0
        },
    );
    assert!(
        max_live > 10,
        "the rollout surged ({max_live} pods at most)"
    );
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = s.get_json(&["deploy", "web"]);
    assert_eq!(d["status"]["updatedReplicas"], 10);
    assert_eq!(d["status"]["availableReplicas"], 10);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let conditions = d["status"]["conditions"].as_array().unwrap();
    assert!(conditions.iter().any(|c| c["type"] == "Available"
        && c["status"] == "True"
        && c["reason"] == "MinimumReplicasAvailable"));
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable")
    );
}

#[test]
fn kubectl_rollout_history_pause_resume_undo_and_restart() {
    let s = simulated();
    s.apply(&deployment("web", 3, ROLLING_3_2, "", "example/app:1.0"));
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    s.ok(&["annotate", "deploy/web", "kubernetes.io/change-cause=v1"]);
    s.ok(&["set", "image", "deploy/web", "app=example/app:2.0"]);
    s.ok(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=v2",
        "--overwrite",
    ]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let history = s.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("REVISION") && history.contains("CHANGE-CAUSE"),
        "{history}"
    );
    assert!(
        history
            .lines()
            .any(|l| l.starts_with('2') && l.contains("v2")),
        "{history}"
    );
    let rev2 = s.ok(&["rollout", "history", "deploy/web", "--revision=2"]);
    assert!(rev2.contains("example/app:2.0"), "{rev2}");

    // Pause: template changes are recorded but not rolled out.
    s.ok(&["rollout", "pause", "deploy/web"]);
    let err = s.fails(&["rollout", "pause", "deploy/web"]);
    assert!(err.contains("already paused"), "{err}");
    s.ok(&["set", "image", "deploy/web", "app=example/app:3.0"]);
    let paused = s.get_json(&["deploy", "web"]);
    eventually(Duration::from_secs(10), "the paused condition", || {
        let d = s.get_json(&["deploy", "web"]);
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["reason"] == "DeploymentPaused")
            .then_some(())
    });
    assert_eq!(
        s.ok(&["get", "rs", "-o", "name"]).lines().count(),
        2,
        "no new ReplicaSet while paused"
    );
    let err = s.fails(&["rollout", "undo", "deploy/web"]);
    assert!(
        err.contains("you cannot rollback a paused deployment"),
        "{err}"
    );
    // The selector stays immutable while paused.
    let err = s.fails(&[
        "patch",
        "deploy/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"selector":{"matchLabels":{"app":"other"}}}}"#,
    ]);
    assert!(err.contains("field is immutable"), "{err}");
    assert_eq!(paused["spec"]["paused"], true);
    s.ok(&["rollout", "resume", "deploy/web"]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    assert_eq!(s.ok(&["get", "rs", "-o", "name"]).lines().count(), 3);

    // Undo goes back one revision, reusing that ReplicaSet with a new revision number.
    assert!(
        s.ok(&["rollout", "undo", "deploy/web"])
            .contains("rolled back")
    );
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let d = s.get_json(&["deploy", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/app:2.0"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    assert!(
        s.ok(&["rollout", "undo", "deploy/web", "--to-revision=1"])
            .contains("rolled back")
    );
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let d = s.get_json(&["deploy", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/app:1.0"
    );
    let err = s.fails(&["rollout", "undo", "deploy/web", "--to-revision=99"]);
    assert!(
        err.contains("unable to find specified revision 99 in history"),
        "{err}"
    );

    let before = s.ok(&["get", "rs", "-o", "name"]).lines().count();
    assert!(
        s.ok(&["rollout", "restart", "deploy/web"])
            .contains("restarted")
    );
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    assert_eq!(
        s.ok(&["get", "rs", "-o", "name"]).lines().count(),
        before + 1,
        "restart makes a new ReplicaSet"
    );
    s.ok(&[
        "wait",
        "--for=condition=available",
        "deploy/web",
        "--timeout=30s",
    ]);
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let s = simulated();
    s.apply(&deployment("web", 10, ROLLING_3_2, "", "example/app:1.0"));
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    // The new version never becomes ready: the rollout stops with old and new ReplicaSets.
    s.apply(&deployment(
        "web",
        10,
        ROLLING_3_2,
        r#""sim.slipway.dev/never-ready": "true""#,
        "example/app:2.0",
    ));
    let sizes = || -> (i64, i64) {
        let list = s.get_json(&["rs"]);
        let mut old = 0;
        let mut new = 0;
        for rs in list["items"].as_array().unwrap() {
            let n = rs["spec"]["replicas"].as_i64().unwrap();
            if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "example/app:2.0" {
                new += n
            } else {
                old += n
            }
        }
        (old, new)
    };
    let (old, new) = eventually(
        Duration::from_secs(20),
        "the stuck rollout: 8 old and 5 new",
        || {
            let (o, n) = sizes();
            (o == 8 && n == 5).then_some((o, n))
        },
    );
    assert_eq!(old + new, 13);
    s.ok(&["scale", "deploy/web", "--replicas=30"]);
    // 30 + 3 surge = 33 pods, split in proportion to 8:5 (Kubernetes' rounding) → 20 and 13.
    let (old, new) = eventually(
        Duration::from_secs(20),
        "proportional scaling to 33 replicas",
        || {
            let (o, n) = sizes();
            (o + n == 33).then_some((o, n))
        },
    );
    assert_eq!((old, new), (20, 13), "proportional split");
    let d = s.get_json(&["deploy", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
}

#[test]
fn a_replica_set_of_forty_reports_its_creations_as_client_go_correlates_them() {
    let s = simulated();
    s.apply(&deployment("many", 40, ROLLING_3_2, "", "example/app:1.0"));
    s.ok(&["rollout", "status", "deploy/many", "--timeout=30s"]);
    let rs = s.get_json(&["rs", "-l", "app=many"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let creations = || -> Vec<(String, i64)> {
        let list = s.get_json(&["events", "--field-selector", "reason=SuccessfulCreate"]);
        let mut found: Vec<(String, i64)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["name"] == rs.as_str())
            .map(|e| {
                let message = e["message"].as_str().unwrap().to_string();
                (message, e["count"].as_i64().unwrap())
            })
            .collect();
        found.sort();
        found
    };
    // Nine Events of their own; from the tenth pod on, one aggregate Event, counted up to the
    // 25th Event of the burst; the 15 creations after it are dropped by the spam filter.
    let found = eventually(
        Duration::from_secs(20),
        "the aggregate SuccessfulCreate Event to count 16",
        || {
            let found = creations();
            found
                .iter()
                .any(|(m, n)| {
                    m.starts_with("(combined from similar events): Created pod: ") && *n == 16
                })
                .then_some(found)
        },
    );
    assert_eq!(found.len(), 10, "{found:#?}");
    assert!(
        found[1..]
            .iter()
            .all(|(m, n)| m.starts_with(&format!("Created pod: {rs}-")) && *n == 1),
        "{found:#?}"
    );
    let describe = s.ok(&["describe", "rs", &rs]);
    assert!(
        describe.contains("(combined from similar events): Created pod:"),
        "{describe}"
    );
}

#[test]
fn recreate_terminates_every_old_pod_before_starting_new_ones() {
    let s = simulated();
    let slow_stop = r#""sim.slipway.dev/terminate-after": "300ms""#;
    s.apply(&deployment(
        "web",
        4,
        "    type: Recreate",
        slow_stop,
        "example/app:1.0",
    ));
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let pods_path = "/api/v1/namespaces/default/pods";
    let rv = list_revision(&s, pods_path);
    let (_, body) = s.http("GET", pods_path, None, b"", true);
    let mut view = PodView::default();
    for p in serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
    {
        view.apply(&serde_json::json!({"type": "ADDED", "object": p}));
    }
    let events = watch_events(
        &s,
        &format!("{pods_path}?watch=true&resourceVersion={rv}&timeoutSeconds=120"),
    );
    s.apply(&deployment(
        "web",
        4,
        "    type: Recreate",
        slow_stop,
        "example/app:2.0",
    ));
    follow(
        &events,
        &mut view,
        Duration::from_secs(60),
        "4 ready pods of example/app:2.0",
        |v| {
            let old = v.live_with_image("example/app:1.0");
            let new = v.live_with_image("example/app:2.0");
            assert!(
                old == 0 || new == 0,
                "old ({old}) and new ({new}) pods exist at once under Recreate"
            );
        },
        |v| v.live_with_image("example/app:2.0") == 4 && v.ready() == 4,
    );
}

#[test]
fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let s = simulated();
    let manifest = deployment(
        "stuck",
        2,
        ROLLING_3_2,
        r#""sim.slipway.dev/never-ready": "true""#,
        "example/app:1.0",
    )
    .replace("progressDeadlineSeconds: 60", "progressDeadlineSeconds: 2");
    s.apply(&manifest);
    let out = s.kubectl(&["rollout", "status", "deploy/stuck", "--timeout=60s"]);
    assert_eq!(out.code, 1, "stdout: {} stderr: {}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("deployment \"stuck\" exceeded its progress deadline"),
        "{}",
        out.stderr
    );
    let d = s.get_json(&["deploy", "stuck"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    assert_eq!(
        progressing["message"],
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            s.get_json(&["rs"])["items"][0]["metadata"]["name"]
                .as_str()
                .unwrap()
        )
    );
}

#[test]
fn deleting_a_deployment_collects_its_replicasets_and_pods_by_propagation_policy() {
    let s = simulated();
    s.apply(&deployment("bg", 2, ROLLING_3_2, "", "example/app:1.0"));
    s.apply(&deployment(
        "orphaner",
        2,
        ROLLING_3_2,
        "",
        "example/app:1.0",
    ));
    s.apply(&deployment("fg", 2, ROLLING_3_2, "", "example/app:1.0"));
    for d in ["bg", "orphaner", "fg"] {
        s.ok(&["rollout", "status", &format!("deploy/{d}"), "--timeout=30s"]);
    }
    s.ok(&["delete", "deploy", "bg"]);
    eventually(
        Duration::from_secs(20),
        "background deletion of bg's ReplicaSets and pods",
        || {
            (s.ok(&["get", "rs,pods", "-l", "app=bg", "-o", "name"])
                .trim()
                .is_empty())
            .then_some(())
        },
    );
    s.ok(&["delete", "deploy", "orphaner", "--cascade=orphan"]);
    let rs = s.get_json(&["rs", "-l", "app=orphaner"]);
    assert_eq!(rs["items"].as_array().unwrap().len(), 1);
    assert!(
        rs["items"][0]["metadata"]["ownerReferences"].is_null(),
        "orphaned: {}",
        rs["items"][0]["metadata"]
    );
    assert_eq!(
        s.ok(&["get", "pods", "-l", "app=orphaner", "-o", "name"])
            .lines()
            .count(),
        2
    );
    s.ok(&["delete", "deploy", "fg", "--cascade=foreground"]);
    assert_ne!(
        s.kubectl(&["get", "deploy", "fg"]).code,
        0,
        "foreground delete returns once the owner is gone"
    );
    assert!(
        s.ok(&["get", "rs,pods", "-l", "app=fg", "-o", "name"])
            .trim()
            .is_empty(),
        "dependents went first"
    );
}

#[test]
fn a_crash_mid_rollout_resumes_from_the_stored_state() {
    let mut s = simulated();
    let ready_slowly = r#""sim.slipway.dev/ready-after": "400ms""#;
    s.apply(&deployment(
        "web",
        10,
        ROLLING_3_2,
        ready_slowly,
        "example/app:1.0",
    ));
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    s.ok(&["set", "image", "deploy/web", "app=example/app:2.0"]);
    eventually(
        Duration::from_secs(20),
        "the rollout to be under way",
        || {
            let d = s.get_json(&["deploy", "web"]);
            (d["status"]["updatedReplicas"].as_i64().unwrap_or(0) >= 3).then_some(())
        },
    );
    s.kill9();
    s.spawn(&["--runtime", "simulated"]);
    let pods_path = "/api/v1/namespaces/default/pods";
    let rv = list_revision(&s, pods_path);
    let (_, body) = s.http("GET", pods_path, None, b"", true);
    let mut view = PodView::default();
    for p in serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
    {
        view.apply(&serde_json::json!({"type": "ADDED", "object": p}));
    }
    assert!(
        view.live().count() <= 13,
        "the stored state respects maxSurge"
    );
    let events = watch_events(
        &s,
        &format!("{pods_path}?watch=true&resourceVersion={rv}&timeoutSeconds=120"),
    );
    follow(
        &events,
        &mut view,
        Duration::from_secs(60),
        "the rollout to finish after the restart",
        |v| {
            assert!(
                v.live().count() <= 13,
                "more than 13 pods after the restart: {}",
                v.live().count()
            )
        },
        |v| {
            v.live_with_image("example/app:2.0") == 10
                && v.ready() == 10
                && v.live_with_image("example/app:1.0") == 0
        },
    );
    s.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
}
