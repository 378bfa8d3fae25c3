//! Rollouts end to end with real pods: `slipway serve` with the process runtime, the real
//! kubectl and the `kubectl-slipway` plugin, the sample image as real processes, the service
//! proxy with its traffic split, and a load client on the Services' ClusterIPs. Canary with
//! an exact split, blue-green through promote, hooks with every failure policy (and across a
//! kill -9 of the control plane), Recreate's pre/mid/post hooks in order, blue-green's
//! pre-/post-promotion hooks gating the switch, a header route, proxy-metrics analysis
//! passing and failing, the progress deadline abort, and a restart in the middle of a step.
//!
//! The tests are serialized (one `slipway serve` with its pods and load at a time), so they
//! stay reliable on a small machine whatever `--test-threads` says.

mod common;

use common::load::{Load, Tally};
use common::{ProcessServer, Run, cluster_addr, eventually, http_get, wait_ready_endpoints};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-slipway");
const WAIT: Duration = Duration::from_secs(120);
const BUDGET: u64 = 10_000_000;
const V1: &str = "k8spatterns/random-generator:1.0";
const V2: &str = "k8spatterns/random-generator:2.0";
const SPLIT: &str = "slipway.dev/traffic-split";

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (a failed test poisons the lock; the next one goes on).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A ClusterIP Service on port 80 (named `http`) to the sample's 8080, selecting `app`.
fn service(name: &str, app: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {app}}}
  ports:
  - name: http
    port: 80
    targetPort: 8080
"#
    )
}

/// A Rollout of the sample (quiet, ready within a second). `env` is extra YAML list items
/// of the container's env (indented by 8), `strategy` and `extra` are spec YAML (indented
/// by 2).
fn rollout(
    name: &str,
    replicas: u32,
    image: &str,
    env: &str,
    strategy: &str,
    extra: &str,
) -> String {
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
        ports:
        - name: http
          containerPort: 8080
        env:
        - {{name: QUIET, value: "1"}}
        - {{name: READY_DELAY_SECONDS, value: "0"}}
{env}        readinessProbe:
          exec:
            command: ["stat", "/random-generator-ready"]
          periodSeconds: 1
          failureThreshold: 1
  strategy:
{strategy}
{extra}"#
    )
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run command");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl-slipway ARGS --kubeconfig <server's>`, asserted to succeed.
fn plugin(s: &ProcessServer, args: &[&str]) -> String {
    let r = run(Command::new(PLUGIN)
        .args(args)
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .env_remove("KUBECONFIG"));
    assert_eq!(
        r.code, 0,
        "kubectl slipway {args:?} failed:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r.stdout
}

fn get_rollout(s: &ProcessServer, name: &str) -> Value {
    s.get_json(&["rollouts.slipway.dev", name])
}

/// Waits until the Rollout's observed status satisfies `f`; returns the Rollout.
fn wait_rollout(s: &ProcessServer, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(WAIT, &format!("rollout {name}: {what}"), || {
            let r = get_rollout(s, name);
            let observed = r["status"]["observedGeneration"] == r["metadata"]["generation"];
            let ok = observed && f(&r["status"]);
            last = r.clone();
            ok.then_some(r)
        })
    }));
    match found {
        Ok(r) => r,
        Err(_) => panic!(
            "rollout {name}: timed out waiting for {what}; last status:\n{:#}\nevents:\n{}",
            last["status"],
            s.kubectl(&["get", "events"]).stdout
        ),
    }
}

fn phase_is(phase: &'static str) -> impl Fn(&Value) -> bool {
    move |st| st["phase"] == phase
}

/// Healthy with the current revision stable.
fn completed(st: &Value) -> bool {
    st["phase"] == "Healthy"
        && st["currentPodHash"].is_string()
        && st["currentPodHash"] == st["stablePodHash"]
}

fn split(s: &ProcessServer, svc: &str) -> Value {
    s.get_json(&["service", svc])["metadata"]["annotations"][SPLIT]
        .as_str()
        .map(|t| serde_json::from_str(t).expect("the annotation is JSON"))
        .unwrap_or(Value::Null)
}

fn selector_hash(s: &ProcessServer, svc: &str) -> Option<String> {
    s.get_json(&["service", svc])["spec"]["selector"]["pod-template-hash"]
        .as_str()
        .map(str::to_string)
}

/// The `version` of `GET /` on a new connection, if it answered 200.
fn version_at(addr: SocketAddr) -> Option<String> {
    let (code, body) = http_get(&addr.to_string(), "/").ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (code == 200).then(|| v["version"].as_str().unwrap_or("").to_string())
}

/// Waits until ten fresh requests in a row answer `version`.
fn wait_serves_only(addr: SocketAddr, version: &str) {
    eventually(WAIT, &format!("{addr} to answer only {version}"), || {
        (0..10)
            .all(|_| version_at(addr).as_deref() == Some(version))
            .then_some(())
    });
}

fn assert_no_failures(case: &str, t: &Tally) {
    assert_eq!(
        t.failed,
        0,
        "{case}: {} of {} requests failed; first failures: {:#?}",
        t.failed,
        t.ok + t.failed,
        t.failures
    );
    assert!(t.ok >= 1_000, "{case}: only {} requests went through", t.ok);
}

/// The ReplicaSets of a Rollout by `pod-template-hash`: (spec.replicas, status.replicas).
fn replica_set(s: &ProcessServer, app: &str, hash: &str) -> (i64, i64) {
    let v = s.get_json(&["rs", &format!("{app}-{hash}")]);
    (
        v["spec"]["replicas"].as_i64().unwrap_or(0),
        v["status"]["replicas"].as_i64().unwrap_or(0),
    )
}

fn hook_record(st: &Value, name: &str) -> Value {
    st["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Pods carrying `slipway.dev/rollout=<name>` (hook and job pods), by name.
fn run_pods(s: &ProcessServer, rollout: &str) -> Vec<String> {
    let v = s.get_json(&["pods", "-l", &format!("slipway.dev/rollout={rollout}")]);
    let mut names: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The Events of the object `name`, one `REASON: message` line each.
fn events_of(s: &ProcessServer, name: &str) -> String {
    s.get_json(&["events"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            format!(
                "{}: {}\n",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn canary_steps(svc: &str, steps: &str) -> String {
    format!("    canary:\n      stableService: {svc}\n      steps:\n{steps}")
}

/// Starts a server with the Service `svc` and the Rollout at 1.0 (`yaml`), fully rolled out
/// with `replicas` ready endpoints.
fn start_with(yaml: &str, svc: &str, replicas: usize) -> ProcessServer {
    let s = ProcessServer::start();
    // The Service first: pods take a snapshot of the Services at start.
    s.apply(&service(svc, svc));
    s.apply(yaml);
    wait_rollout(&s, svc, "the first revision rolled out", completed);
    wait_ready_endpoints(&s, svc, replicas);
    s
}

/// A blue-green strategy on the Services `<app>-active` and `<app>-preview`, with
/// `options` (YAML lines of the `blueGreen` map, indented by 6).
fn blue_green(app: &str, options: &str) -> String {
    format!(
        "    blueGreen:\n      activeService: {app}-active\n      previewService: {app}-preview\n{options}"
    )
}

/// Starts a server with the Services `<app>-active` and `<app>-preview` and the Rollout
/// `app` at 1.0 with `strategy`, fully rolled out with 2 ready active endpoints; returns it
/// with the first revision's hash.
fn start_blue_green(app: &str, strategy: &str) -> (ProcessServer, String) {
    let s = ProcessServer::start();
    s.apply(&service(&format!("{app}-active"), app));
    s.apply(&service(&format!("{app}-preview"), app));
    s.apply(&rollout(app, 2, V1, "", strategy, ""));
    let r = wait_rollout(&s, app, "the first revision rolled out", completed);
    wait_ready_endpoints(&s, &format!("{app}-active"), 2);
    let first = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    (s, first)
}

#[test]
fn canary_splits_real_traffic_exactly_and_completes() {
    let _serial = serial();
    let steps = "      - setWeight: 25\n      - pause: {}\n      - setWeight: 50\n      - pause: {duration: 1s}\n";
    let yaml = rollout("web", 4, V1, "", &canary_steps("web", steps), "");
    let s = start_with(&yaml, "web", 4);
    let addr = cluster_addr(&s, "web");
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(500, WAIT);

    assert_eq!(
        plugin(&s, &["set", "image", "web", &format!("app={V2}")]),
        "rollout.slipway.dev/web image updated\n"
    );
    let r = wait_rollout(&s, "web", "paused at step 2 with weight 25", |st| {
        st["phase"] == "Paused" && st["currentStepIndex"] == 1 && st["weight"] == 25
    });
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let stable = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    assert_ne!(canary, stable);
    let sp = split(&s, "web");
    assert_eq!(sp["weights"][&canary], 25, "{sp}");
    assert_eq!(sp["weights"][&stable], 75, "{sp}");
    // The stable ReplicaSet keeps its full size; the canary runs one pod.
    wait_ready_endpoints(&s, "web", 5);

    // A window of 2,400 requests while the main load goes on.
    let window = Load::start(addr, 4, 2_400);
    window.wait_for_more(2_400, WAIT);
    let w = window.stop();
    assert_eq!(w.failed, 0, "window failures: {:#?}", w.failures);
    assert!(w.ok >= 2_000, "window: {} requests", w.ok);
    let share = *w.versions.get("2.0").unwrap_or(&0) as f64 / w.ok as f64;
    assert!(
        (share - 0.25).abs() <= 0.03,
        "share of 2.0 at weight 25: {:.3} ({:?})",
        share,
        w.versions
    );

    plugin(&s, &["promote", "web"]);
    let r = wait_rollout(&s, "web", "completed", completed);
    assert_eq!(r["status"]["currentPodHash"], canary.as_str());
    assert_eq!(r["status"]["weight"], 100);
    eventually(WAIT, "the old ReplicaSet scaled to 0", || {
        (replica_set(&s, "web", &stable) == (0, 0)).then_some(())
    });
    wait_ready_endpoints(&s, "web", 4);
    load.wait_for_more(1_000, WAIT);
    let t = load.stop();
    assert_no_failures("canary", &t);
    assert!(
        t.versions.contains_key("1.0") && t.versions.contains_key("2.0"),
        "versions seen: {:?}",
        t.versions
    );
    let after = Load::start(addr, 2, 400);
    after.wait_for_more(400, WAIT);
    let a = after.stop();
    assert_eq!(a.failed, 0, "{:#?}", a.failures);
    assert_eq!(a.versions.keys().collect::<Vec<_>>(), vec!["2.0"]);
}

#[test]
fn blue_green_promotes_with_zero_failed_requests() {
    let _serial = serial();
    let strategy = blue_green(
        "bg",
        "      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 2\n",
    );
    let (s, _) = start_blue_green("bg", &strategy);
    let active = cluster_addr(&s, "bg-active");
    let preview = cluster_addr(&s, "bg-preview");
    let load = Load::start(active, 8, BUDGET);
    load.wait_for_more(500, WAIT);

    plugin(&s, &["set", "image", "bg", &format!("app={V2}")]);
    let r = wait_rollout(&s, "bg", "paused before promotion", |st| {
        st["phase"] == "Paused" && st["currentPodHash"] != st["stablePodHash"]
    });
    let new = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let old = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    eventually(WAIT, "the preview Service on the new revision", || {
        (selector_hash(&s, "bg-preview").as_deref() == Some(new.as_str())).then_some(())
    });
    assert_eq!(
        selector_hash(&s, "bg-active").as_deref(),
        Some(old.as_str())
    );
    wait_ready_endpoints(&s, "bg-preview", 2);
    wait_serves_only(preview, "2.0");
    for _ in 0..10 {
        assert_eq!(version_at(active).as_deref(), Some("1.0"));
    }
    load.wait_for_more(1_000, WAIT);

    plugin(&s, &["promote", "bg"]);
    wait_serves_only(active, "2.0");
    wait_rollout(&s, "bg", "completed", completed);
    assert_eq!(
        selector_hash(&s, "bg-active").as_deref(),
        Some(new.as_str())
    );
    load.wait_for_more(1_000, WAIT);
    // scaleDownDelaySeconds: 2, then the old ReplicaSet goes to 0.
    eventually(WAIT, "the old ReplicaSet scaled to 0", || {
        (replica_set(&s, "bg", &old) == (0, 0)).then_some(())
    });
    load.wait_for_more(1_000, WAIT);

    // undo to revision 1: a new rollout toward 1.0's template, previewed, then promoted.
    plugin(&s, &["undo", "bg", "--to-revision=1"]);
    let r = wait_rollout(&s, "bg", "the undo paused before promotion", |st| {
        st["phase"] == "Paused" && st["currentPodHash"] != st["stablePodHash"]
    });
    assert_eq!(
        r["status"]["currentPodHash"],
        old.as_str(),
        "undo reuses revision 1's ReplicaSet"
    );
    wait_ready_endpoints(&s, "bg-preview", 2);
    wait_serves_only(preview, "1.0");
    plugin(&s, &["promote", "bg"]);
    wait_rollout(&s, "bg", "the undo completed", completed);
    wait_serves_only(active, "1.0");
    load.wait_for_more(1_000, WAIT);
    let t = load.stop();
    assert_no_failures("blue-green", &t);
    assert!(
        t.versions.contains_key("1.0") && t.versions.contains_key("2.0"),
        "versions seen: {:?}",
        t.versions
    );
}

#[test]
fn hooks_with_every_failure_policy_and_across_a_restart() {
    let _serial = serial();
    let mut s = ProcessServer::start();
    // (a) a pre hook that succeeds.
    let pre = "  hooks:\n    pre:\n      name: check\n      exec:\n        command: [sh, -c, 'echo ok']\n";
    let plain_canary = |svc: &str| canary_steps(svc, "      - setWeight: 50\n");
    s.apply(&service("pre", "pre"));
    s.apply(&rollout("pre", 1, V1, "", &plain_canary("pre"), pre));
    // (b) + (e) a step hook with failurePolicy Abort that exits with the template's
    // HOOK_EXIT (3), and an onAbort hook.
    let abort_steps = "      - setWeight: 50\n      - hook:\n          name: smoke\n          exec:\n            command: [sh, -c, 'exit $HOOK_EXIT']\n          failurePolicy: Abort\n";
    let on_abort = "  hooks:\n    onAbort:\n      name: notify\n      exec:\n        command: [sh, -c, 'echo rolled back']\n";
    let hook_exit = |code: u32| format!("        - {{name: HOOK_EXIT, value: \"{code}\"}}\n");
    s.apply(&service("ab", "ab"));
    s.apply(&rollout(
        "ab",
        1,
        V1,
        &hook_exit(3),
        &canary_steps("ab", abort_steps),
        on_abort,
    ));
    // (c) Retry with limit 1: two attempts, then Failed.
    let retry_steps = "      - hook:\n          name: flaky\n          exec:\n            command: [sh, -c, 'exit 3']\n          failurePolicy: Retry\n          retry: {limit: 1, backoffSeconds: 1}\n";
    s.apply(&service("rt", "rt"));
    s.apply(&rollout(
        "rt",
        1,
        V1,
        "",
        &canary_steps("rt", retry_steps),
        "",
    ));
    // (d) Ignore: the rollout goes on.
    let ignore_steps = "      - hook:\n          name: optional\n          exec:\n            command: [sh, -c, 'exit 3']\n          failurePolicy: Ignore\n      - setWeight: 50\n";
    s.apply(&service("ig", "ig"));
    s.apply(&rollout(
        "ig",
        1,
        V1,
        "",
        &canary_steps("ig", ignore_steps),
        "",
    ));

    let r = wait_rollout(&s, "pre", "completed after its pre hook", completed);
    let h = hook_record(&r["status"], "check");
    assert_eq!(h["phase"], "Succeeded", "{h}");
    assert_eq!(h["kind"], "pre", "{h}");
    assert_eq!(h["attempts"], 1, "{h}");
    assert_eq!(h["exitCode"], 0, "{h}");
    assert_eq!(
        h["logTail"], "ok",
        "the hook's output, read from its log: {h}"
    );
    for name in ["ab", "rt", "ig"] {
        wait_rollout(&s, name, "the first revision rolled out", completed);
    }

    // New revisions.
    for name in ["ab", "rt", "ig"] {
        plugin(&s, &["set", "image", name, &format!("app={V2}")]);
    }

    // (b) Abort: back to stable, the step hook's exit code recorded, HookFailed.
    let r = wait_rollout(&s, "ab", "aborted by its step hook", phase_is("Aborted"));
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let stable = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    let h = hook_record(&r["status"], "smoke");
    assert_eq!(h["phase"], "Failed", "{h}");
    assert_eq!(h["exitCode"], 3, "{h}");
    assert_eq!(h["podHash"], canary.as_str(), "{h}");
    let sp = split(&s, "ab");
    assert_eq!(sp["weights"][&canary], 0, "{sp}");
    assert_eq!(sp["weights"][&stable], 100, "{sp}");
    eventually(WAIT, "the aborted canary scaled to 0", || {
        (replica_set(&s, "ab", &canary).0 == 0).then_some(())
    });
    // (e) onAbort ran.
    let r = wait_rollout(&s, "ab", "the onAbort hook succeeded", |st| {
        hook_record(st, "notify")["phase"] == "Succeeded"
    });
    let h = hook_record(&r["status"], "notify");
    assert_eq!(h["kind"], "onAbort", "{h}");
    assert_eq!(h["logTail"], "rolled back", "{h}");
    let ev = events_of(&s, "ab");
    assert!(ev.contains("HookFailed"), "{ev}");
    assert!(ev.contains("RolloutAborted"), "{ev}");

    // (c) Retry, limit 1: attempts 2, then Failed (and the rollout aborts).
    let r = wait_rollout(&s, "rt", "aborted after its retries", phase_is("Aborted"));
    let h = hook_record(&r["status"], "flaky");
    assert_eq!(h["phase"], "Failed", "{h}");
    assert_eq!(h["attempts"], 2, "{h}");
    let ev = events_of(&s, "rt");
    assert!(ev.contains("HookRetrying"), "{ev}");

    // (d) Ignore: Ignored, and the rollout completes.
    let r = wait_rollout(&s, "ig", "completed past an ignored hook", completed);
    let h = hook_record(&r["status"], "optional");
    assert_eq!(h["phase"], "Ignored", "{h}");
    assert_eq!(h["exitCode"], 3, "{h}");

    // (b) again: with the hook fixed, `retry` runs the steps of the same revision again
    // (a new hook pod, not the failed one's result) and the rollout completes.
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "ab",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/strategy/canary/steps/1/hook/exec/command","value":["sh","-c","exit 0"]}]"#,
    ]);
    wait_rollout(&s, "ab", "the fixed hook observed", phase_is("Aborted"));
    plugin(&s, &["retry", "ab"]);
    let r = wait_rollout(&s, "ab", "completed after retry", completed);
    assert_eq!(r["status"]["currentPodHash"], canary.as_str());
    let h = hook_record(&r["status"], "smoke");
    assert_eq!(h["phase"], "Succeeded", "{:#}", r["status"]["hooks"]);
    assert_eq!(h["exitCode"], 0, "{h}");
    assert!(events_of(&s, "ab").contains("RolloutRetried"));

    // kill -9 and a restart: no finished hook runs again.
    let before: Vec<(String, Value, Vec<String>)> = ["pre", "ab", "rt", "ig"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                get_rollout(&s, n)["status"]["hooks"].clone(),
                run_pods(&s, n),
            )
        })
        .collect();
    s.kill9();
    s.spawn(&[]);
    // A spec change to each Rollout, observed: the restarted controller has synced each one
    // at least once (a hook it wrongly ran again would have its pod created in that pass).
    for name in ["pre", "ab", "rt", "ig"] {
        s.ok(&[
            "patch",
            "rollouts.slipway.dev",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"revisionHistoryLimit":5}}"#,
        ]);
    }
    for name in ["pre", "ab", "rt", "ig"] {
        wait_rollout(&s, name, "observed after the restart", |_| true);
    }
    for (name, hooks, pods) in before {
        let after = get_rollout(&s, &name)["status"]["hooks"].clone();
        let strip = |v: &Value| -> Vec<(Value, Value, Value, Value)> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        h["name"].clone(),
                        h["podHash"].clone(),
                        h["phase"].clone(),
                        h["attempts"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            strip(&after),
            strip(&hooks),
            "{name}: hooks after the restart"
        );
        assert_eq!(
            run_pods(&s, &name),
            pods,
            "{name}: hook pods after the restart"
        );
    }
}

#[test]
fn proxy_analysis_passes_then_fails_and_aborts() {
    let _serial = serial();
    let steps = "      - setWeight: 50\n      - analysis:\n          checks:\n          - name: errors\n            interval: 2s\n            count: 2\n            proxy: {metric: errorRate, max: 0.05}\n";
    let yaml = rollout("an", 2, V1, "", &canary_steps("an", steps), "");
    let s = start_with(&yaml, "an", 2);
    let addr = cluster_addr(&s, "an");

    // 2.0 healthy: the analysis succeeds and the rollout completes, without a failure.
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(500, WAIT);
    plugin(&s, &["set", "image", "an", &format!("app={V2}")]);
    let r = wait_rollout(&s, "an", "completed after a successful analysis", completed);
    let a = r["status"]["analysis"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["podHash"] == r["status"]["currentPodHash"])
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(a["phase"], "Successful", "{:#}", r["status"]);
    assert!(events_of(&s, "an").contains("AnalysisSuccessful"));
    load.wait_for_more(500, WAIT);
    let t = load.stop();
    assert_no_failures("healthy analysis", &t);
    let good = r["status"]["currentPodHash"].as_str().unwrap().to_string();

    // Half the requests fail: the analysis fails and the rollout aborts on its own.
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(500, WAIT);
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "an",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"ERROR_RATE","value":"0.5"}}]"#,
    ]);
    let started = std::time::Instant::now();
    let r = wait_rollout(
        &s,
        "an",
        "aborted by the failed analysis",
        phase_is("Aborted"),
    );
    let bad = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(bad, good);
    let a = r["status"]["analysis"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["podHash"] == bad.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(a["phase"], "Failed", "{:#}", r["status"]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the abort took {:?}",
        started.elapsed()
    );
    let sp = split(&s, "an");
    assert_eq!(sp["weights"][&bad], 0, "{sp}");
    assert_eq!(sp["weights"][&good], 100, "{sp}");
    assert!(events_of(&s, "an").contains("AnalysisFailed"));
    // Back on the stable revision: no more 500s.
    load.stop();
    eventually(WAIT, "the aborted canary scaled to 0", || {
        (replica_set(&s, "an", &bad) == (0, 0)).then_some(())
    });
    let after = Load::start(addr, 4, 1_000);
    after.wait_for_more(1_000, WAIT);
    let t = after.stop();
    assert_eq!(t.failed, 0, "after the abort: {:#?}", t.failures);
}

#[test]
fn progress_deadline_aborts_a_revision_that_never_becomes_ready() {
    let _serial = serial();
    let steps = "      - setWeight: 50\n      - pause: {}\n";
    let extra = "  progressDeadlineSeconds: 5\n  progressDeadlineAbort: true\n";
    let yaml = rollout("pd", 2, V1, "", &canary_steps("pd", steps), extra);
    let s = start_with(&yaml, "pd", 2);
    let addr = cluster_addr(&s, "pd");
    let load = Load::start(addr, 4, BUDGET);
    load.wait_for_more(300, WAIT);
    plugin(&s, &["set", "image", "pd", "app=slipway/never-ready:1.0"]);
    let r = wait_rollout(
        &s,
        "pd",
        "aborted by the progress deadline",
        phase_is("Aborted"),
    );
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let stable = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    assert_eq!(r["status"]["weight"], 0);
    let sp = split(&s, "pd");
    assert_eq!(sp["weights"][&canary], 0, "{sp}");
    assert_eq!(sp["weights"][&stable], 100, "{sp}");
    eventually(WAIT, "the never-ready canary scaled to 0", || {
        (replica_set(&s, "pd", &canary) == (0, 0)).then_some(())
    });
    let ev = events_of(&s, "pd");
    assert!(ev.contains("ProgressDeadlineExceeded"), "{ev}");
    load.wait_for_more(500, WAIT);
    let t = load.stop();
    assert_eq!(t.failed, 0, "{:#?}", t.failures);
    assert_eq!(t.versions.keys().collect::<Vec<_>>(), vec!["1.0"]);

    // Never wedged: the fix applied to the aborted rollout rolls out from its first step.
    let load = Load::start(addr, 4, BUDGET);
    load.wait_for_more(300, WAIT);
    plugin(&s, &["set", "image", "pd", &format!("app={V2}")]);
    let r = wait_rollout(&s, "pd", "the fix paused at its first pause", |st| {
        st["phase"] == "Paused" && st["weight"] == 50
    });
    assert_ne!(r["status"]["currentPodHash"], canary.as_str());
    plugin(&s, &["promote", "pd"]);
    wait_rollout(&s, "pd", "the fix completed", completed);
    wait_serves_only(addr, "2.0");
    load.wait_for_more(300, WAIT);
    let t = load.stop();
    assert_eq!(t.failed, 0, "rolling out the fix: {:#?}", t.failures);
}

#[test]
fn a_restart_mid_step_keeps_the_step_and_the_traffic() {
    let _serial = serial();
    let steps = "      - setWeight: 25\n      - pause: {}\n";
    let yaml = rollout("rs", 4, V1, "", &canary_steps("rs", steps), "");
    let mut s = start_with(&yaml, "rs", 4);
    let addr = cluster_addr(&s, "rs");
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(500, WAIT);
    plugin(&s, &["set", "image", "rs", &format!("app={V2}")]);
    let r = wait_rollout(&s, "rs", "paused at weight 25", |st| {
        st["phase"] == "Paused" && st["currentStepIndex"] == 1 && st["weight"] == 25
    });
    wait_ready_endpoints(&s, "rs", 5);
    let sp = split(&s, "rs");
    let step = r["status"]["currentStepIndex"].clone();
    load.wait_for_more(1_000, WAIT);

    s.kill9();
    load.wait_for_more(1_000, WAIT);
    s.spawn(&[]);
    // The restarted controller has run once it observes a spec change.
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "rs",
        "--type=merge",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":5}}"#,
    ]);
    let r = wait_rollout(&s, "rs", "observed after the restart", phase_is("Paused"));
    load.wait_for_more(2_000, WAIT);
    assert_eq!(
        split(&s, "rs"),
        sp,
        "the annotation changed across the restart"
    );
    assert_eq!(r["status"]["currentStepIndex"], step);
    assert_eq!(get_rollout(&s, "rs")["status"]["currentStepIndex"], step);
    assert_eq!(get_rollout(&s, "rs")["status"]["weight"], 25);

    plugin(&s, &["promote", "rs"]);
    wait_rollout(&s, "rs", "completed", completed);
    wait_ready_endpoints(&s, "rs", 4);
    load.wait_for_more(1_000, WAIT);
    let t = load.stop();
    assert_no_failures("restart mid-step", &t);
    assert!(
        t.versions.contains_key("1.0") && t.versions.contains_key("2.0"),
        "versions seen: {:?}",
        t.versions
    );
}

#[test]
fn a_blue_green_restart_before_promotion_keeps_the_active_service() {
    let _serial = serial();
    let strategy = blue_green(
        "rb",
        "      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 1\n",
    );
    let (mut s, _) = start_blue_green("rb", &strategy);
    let active = cluster_addr(&s, "rb-active");
    let load = Load::start(active, 8, BUDGET);
    load.wait_for_more(500, WAIT);

    plugin(&s, &["set", "image", "rb", &format!("app={V2}")]);
    let r = wait_rollout(&s, "rb", "paused before promotion", |st| {
        st["phase"] == "Paused" && st["currentPodHash"] != st["stablePodHash"]
    });
    let new = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let old = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    eventually(WAIT, "the preview Service on the new revision", || {
        (selector_hash(&s, "rb-preview").as_deref() == Some(new.as_str())).then_some(())
    });

    s.kill9();
    load.wait_for_more(1_000, WAIT);
    s.spawn(&[]);
    // The restarted controller has run once it observes a spec change.
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "rb",
        "--type=merge",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":5}}"#,
    ]);
    let r = wait_rollout(&s, "rb", "observed after the restart", |st| {
        st["phase"] == "Paused" && st["observedGeneration"].as_i64().is_some()
    });
    assert_eq!(r["status"]["currentPodHash"], new.as_str());
    load.wait_for_more(1_000, WAIT);
    // Still before promotion: production traffic stays on the stable revision.
    assert_eq!(
        selector_hash(&s, "rb-active").as_deref(),
        Some(old.as_str())
    );
    assert_eq!(
        selector_hash(&s, "rb-preview").as_deref(),
        Some(new.as_str())
    );
    for _ in 0..10 {
        assert_eq!(version_at(active).as_deref(), Some("1.0"));
    }

    plugin(&s, &["promote", "rb"]);
    wait_serves_only(active, "2.0");
    wait_rollout(&s, "rb", "completed", completed);
    load.wait_for_more(1_000, WAIT);
    let t = load.stop();
    assert_no_failures("blue-green restart before promotion", &t);
}

/// `GET /` on a new connection, with `header` if given; the `version` when it answered 200.
fn version_with(addr: SocketAddr, header: Option<(&str, &str)>) -> Option<String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra = header.map_or(String::new(), |(k, v)| format!("{k}: {v}\r\n"));
    write!(
        tcp,
        "GET / HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// The `version` in an HTTP hook's recorded response body (`logTail`).
fn logged_version(hook: &Value) -> String {
    let body = hook["logTail"].as_str().unwrap_or("");
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the hook's logTail is not the sample's JSON ({e}): {hook}"));
    v["version"].as_str().unwrap_or("").to_string()
}

/// Pod watch events, in the order the API server sent them: (type, pod).
#[derive(Default)]
struct PodTimeline {
    events: Vec<(String, Value)>,
}

impl PodTimeline {
    /// Takes events from `rx` until `done` holds for what was seen, or panics after `WAIT`.
    fn follow(
        &mut self,
        rx: &std::sync::mpsc::Receiver<Value>,
        what: &str,
        done: impl Fn(&PodTimeline) -> bool,
    ) {
        let deadline = std::time::Instant::now() + WAIT;
        while !done(self) {
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .unwrap_or_else(|| panic!("timed out waiting for {what} in the pod watch"));
            let ev = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for {what} in the pod watch"));
            let kind = ev["type"].as_str().unwrap_or("").to_string();
            self.events.push((kind, ev["object"].clone()));
        }
    }

    /// How many replicas of `app` at `image` were seen ready.
    fn ready_replicas(&self, app: &str, image: &str) -> usize {
        self.events
            .iter()
            .filter(|(k, p)| k == "MODIFIED" && is_replica_of(p, app, image) && pod_ready(p))
            .filter_map(|(_, p)| p["metadata"]["name"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    /// The index of the first event matching `f`.
    fn first(&self, f: impl Fn(&str, &Value) -> bool) -> Option<usize> {
        self.events.iter().position(|(k, p)| f(k, p))
    }

    /// The index of the last event matching `f`.
    fn last(&self, f: impl Fn(&str, &Value) -> bool) -> Option<usize> {
        self.events.iter().rposition(|(k, p)| f(k, p))
    }
}

fn is_replica_of(p: &Value, app: &str, image: &str) -> bool {
    p["metadata"]["labels"]["app"] == app && p["spec"]["containers"][0]["image"] == image
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[test]
fn recreate_hooks_run_before_between_and_after_the_pods() {
    let _serial = serial();
    let s = ProcessServer::start();
    let recreate = "    recreate: {}\n";
    for app in ["rc", "mf"] {
        s.apply(&service(app, app));
        s.apply(&rollout(app, 2, V1, "", recreate, ""));
    }
    for app in ["rc", "mf"] {
        wait_rollout(&s, app, "the first revision rolled out", completed);
        wait_ready_endpoints(&s, app, 2);
    }
    let pods_path = "/api/v1/namespaces/default/pods";
    let rv = common::list_revision(&s, pods_path);
    let rx = common::watch_events(
        &s,
        &format!("{pods_path}?watch=true&resourceVersion={rv}&timeoutSeconds=600"),
    );

    // rc: an HTTP pre hook (it sees 1.0 still serving), an exec mid hook, an HTTP post hook
    // (it sees 2.0).
    let hooks = "  hooks:\n    pre:\n      name: before\n      http: {url: 'http://rc/'}\n    mid:\n      name: between\n      exec:\n        command: [sh, -c, 'echo migrating']\n    post:\n      name: after\n      http: {url: 'http://rc/'}\n";
    s.apply(&rollout("rc", 2, V2, "", recreate, hooks));
    // mf: a mid hook that fails, failurePolicy Abort: back to 1.0.
    let failing_mid = "  hooks:\n    mid:\n      name: migrate\n      exec:\n        command: [sh, -c, 'echo half-way; exit 4']\n      failurePolicy: Abort\n";
    s.apply(&rollout("mf", 2, V2, "", recreate, failing_mid));

    let r = wait_rollout(&s, "rc", "completed and its post hook run", |st| {
        completed(st) && hook_record(st, "after")["phase"] == "Succeeded"
    });
    let st = &r["status"];
    let before = hook_record(st, "before");
    assert_eq!(
        (&before["kind"], &before["phase"]),
        (&"pre".into(), &"Succeeded".into()),
        "{before}"
    );
    assert_eq!(
        logged_version(&before),
        "1.0",
        "the pre hook ran before any change"
    );
    let between = hook_record(st, "between");
    assert_eq!(between["kind"], "mid", "{between}");
    assert_eq!(between["phase"], "Succeeded", "{between}");
    assert_eq!(between["logTail"], "migrating", "{between}");
    let after = hook_record(st, "after");
    assert_eq!(after["kind"], "post", "{after}");
    assert_eq!(
        logged_version(&after),
        "2.0",
        "the post hook ran on the new pods"
    );

    // The order, from the pod watch: every old pod gone, then the mid hook's pod, which
    // finished before the first new pod was created.
    let mut timeline = PodTimeline::default();
    timeline.follow(&rx, "two ready 2.0 pods of rc", |t| {
        t.ready_replicas("rc", V2) >= 2
    });
    let mid_pod = between["podName"]
        .as_str()
        .expect("the mid hook's pod name");
    let last_old_gone = timeline
        .last(|k, p| k == "DELETED" && is_replica_of(p, "rc", V1))
        .expect("the old pods were deleted");
    let mid_created = timeline
        .first(|k, p| k == "ADDED" && p["metadata"]["name"] == mid_pod)
        .expect("the mid hook's pod was created");
    let mid_done = timeline
        .first(|_, p| p["metadata"]["name"] == mid_pod && p["status"]["phase"] == "Succeeded")
        .expect("the mid hook's pod succeeded");
    let first_new = timeline
        .first(|k, p| k == "ADDED" && is_replica_of(p, "rc", V2))
        .expect("a new pod was created");
    assert!(
        last_old_gone < mid_created && mid_done < first_new,
        "order: last old pod gone #{last_old_gone}, mid hook pod created #{mid_created}, \
         succeeded #{mid_done}, first new pod #{first_new}"
    );

    // mf: the mid hook failed, so no new pod ever started and 1.0 is back.
    let r = wait_rollout(&s, "mf", "aborted by its mid hook", phase_is("Aborted"));
    let h = hook_record(&r["status"], "migrate");
    assert_eq!(h["phase"], "Failed", "{h}");
    assert_eq!(h["exitCode"], 4, "{h}");
    assert_eq!(h["logTail"], "half-way", "{h}");
    wait_ready_endpoints(&s, "mf", 2);
    wait_serves_only(cluster_addr(&s, "mf"), "1.0");
    timeline.follow(&rx, "two ready 1.0 pods of mf again", |t| {
        t.ready_replicas("mf", V1) >= 2
    });
    assert_eq!(
        timeline.first(|k, p| k == "ADDED" && is_replica_of(p, "mf", V2)),
        None,
        "a pod of the revision whose mid hook failed was started"
    );
    let ev = events_of(&s, "mf");
    assert!(ev.contains("HookFailed"), "{ev}");
}

#[test]
fn blue_green_promotion_hooks_gate_the_switch() {
    let _serial = serial();
    let strategy = blue_green("bh", "      scaleDownDelaySeconds: 2\n");
    let (s, _) = start_blue_green("bh", &strategy);
    let active = cluster_addr(&s, "bh-active");
    let load = Load::start(active, 4, BUDGET);
    load.wait_for_more(300, WAIT);

    // A pre-promotion hook that fails (Abort): no switch, the rollout aborts.
    let hooks = "      prePromotionHook:\n        name: gate\n        exec:\n          command: [sh, -c, 'echo not yet; exit 5']\n      postPromotionHook:\n        name: announce\n        http: {url: 'http://bh-active/'}\n";
    s.apply(&rollout("bh", 2, V2, "", &format!("{strategy}{hooks}"), ""));
    let r = wait_rollout(
        &s,
        "bh",
        "aborted by the pre-promotion hook",
        phase_is("Aborted"),
    );
    let stable = r["status"]["stablePodHash"].as_str().unwrap().to_string();
    let new = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let gate = hook_record(&r["status"], "gate");
    assert_eq!(gate["kind"], "prePromotion", "{gate}");
    assert_eq!(gate["phase"], "Failed", "{gate}");
    assert_eq!(gate["exitCode"], 5, "{gate}");
    assert_eq!(gate["logTail"], "not yet", "{gate}");
    assert_eq!(hook_record(&r["status"], "announce"), Value::Null);
    assert_eq!(
        selector_hash(&s, "bh-active").as_deref(),
        Some(stable.as_str())
    );
    for _ in 0..10 {
        assert_eq!(version_at(active).as_deref(), Some("1.0"));
    }
    let out = plugin(&s, &["get", "rollout", "bh"]);
    assert!(
        out.contains("Output of gate (prePromotion") && out.contains("    not yet"),
        "{out}"
    );

    // The gate becomes an HTTP check of the preview, and `retry` runs it again: it sees
    // 2.0 on the preview, the active Service switches, then the post-promotion hook sees
    // 2.0 on the active Service.
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "bh",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/strategy/blueGreen/prePromotionHook","value":{"name":"gate","http":{"url":"http://bh-preview/"}}}]"#,
    ]);
    wait_rollout(&s, "bh", "the fixed gate observed", phase_is("Aborted"));
    plugin(&s, &["retry", "bh"]);
    let r = wait_rollout(&s, "bh", "promoted, post hook run", |st| {
        completed(st) && hook_record(st, "announce")["phase"] == "Succeeded"
    });
    assert_eq!(r["status"]["currentPodHash"], new.as_str());
    let gate = hook_record(&r["status"], "gate");
    assert_eq!(gate["phase"], "Succeeded", "{gate}");
    assert_eq!(logged_version(&gate), "2.0", "the gate read the preview");
    let announce = hook_record(&r["status"], "announce");
    assert_eq!(announce["kind"], "postPromotion", "{announce}");
    assert_eq!(
        logged_version(&announce),
        "2.0",
        "the post-promotion hook ran after the switch"
    );
    assert_eq!(
        selector_hash(&s, "bh-active").as_deref(),
        Some(new.as_str())
    );
    wait_serves_only(active, "2.0");
    load.wait_for_more(500, WAIT);
    let t = load.stop();
    assert_no_failures("blue-green abort, retry and promotion", &t);
}

#[test]
fn a_header_route_then_a_manual_abort_and_retry_of_a_canary() {
    let _serial = serial();
    let steps = "      - setCanaryScale: {replicas: 1}\n      - setHeaderRoute:\n          name: beta\n          match:\n          - headerName: X-Canary\n            headerValue: {exact: 'yes'}\n      - pause: {}\n";
    let yaml = rollout("hr", 2, V1, "", &canary_steps("hr", steps), "");
    let s = start_with(&yaml, "hr", 2);
    let addr = cluster_addr(&s, "hr");
    plugin(&s, &["set", "image", "hr", &format!("app={V2}")]);
    let r = wait_rollout(&s, "hr", "paused after the header route", |st| {
        st["phase"] == "Paused" && st["currentStepIndex"] == 2
    });
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_eq!(r["status"]["weight"], 0);
    eventually(WAIT, "the header route in the traffic split", || {
        let sp = split(&s, "hr");
        (sp["headerRoutes"].as_array().is_some_and(|r| !r.is_empty())).then_some(sp)
    });
    let marked = Some(("X-Canary", "yes"));
    eventually(WAIT, "marked requests answered by the canary", || {
        (0..10)
            .all(|_| version_with(addr, marked).as_deref() == Some("2.0"))
            .then_some(())
    });
    for _ in 0..40 {
        assert_eq!(version_with(addr, marked).as_deref(), Some("2.0"));
        assert_eq!(version_with(addr, None).as_deref(), Some("1.0"));
        assert_eq!(
            version_with(addr, Some(("X-Canary", "no"))).as_deref(),
            Some("1.0")
        );
    }
    let sp = split(&s, "hr");
    assert_eq!(sp["weights"][&canary], 0, "{sp}");

    // Full promotion: the route is gone and everything is 2.0.
    plugin(&s, &["promote", "hr", "--full"]);
    wait_rollout(&s, "hr", "completed", completed);
    wait_serves_only(addr, "2.0");

    // A manual abort under load: the canary's route and pods go, everything stays on 2.0;
    // `retry` runs the steps again, and a full promotion completes.
    let load = Load::start(addr, 4, BUDGET);
    load.wait_for_more(300, WAIT);
    plugin(&s, &["set", "image", "hr", &format!("app={V1}")]);
    let r = wait_rollout(&s, "hr", "paused after the header route again", |st| {
        st["phase"] == "Paused" && st["currentStepIndex"] == 2
    });
    let canary = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    eventually(WAIT, "marked requests answered by the 1.0 canary", || {
        (version_with(addr, marked).as_deref() == Some("1.0")).then_some(())
    });
    plugin(&s, &["abort", "hr"]);
    wait_rollout(&s, "hr", "aborted", phase_is("Aborted"));
    eventually(WAIT, "the aborted canary scaled to 0", || {
        (replica_set(&s, "hr", &canary) == (0, 0)).then_some(())
    });
    let sp = split(&s, "hr");
    assert!(
        sp["headerRoutes"].as_array().is_none_or(|r| r.is_empty()),
        "the header route outlived the abort: {sp}"
    );
    for _ in 0..20 {
        assert_eq!(version_with(addr, marked).as_deref(), Some("2.0"));
    }
    plugin(&s, &["retry", "hr"]);
    wait_rollout(&s, "hr", "paused at the route after retry", |st| {
        st["phase"] == "Paused" && st["currentStepIndex"] == 2
    });
    plugin(&s, &["promote", "hr", "--full"]);
    wait_rollout(&s, "hr", "the retried revision completed", completed);
    wait_serves_only(addr, "1.0");
    load.wait_for_more(300, WAIT);
    let t = load.stop();
    assert_eq!(t.failed, 0, "abort, retry and promotion: {:#?}", t.failures);
}

#[test]
fn blue_green_web_and_job_analysis_gate_promotion() {
    let _serial = serial();
    let strategy = blue_green(
        "bw",
        "      scaleDownDelaySeconds: 2\n      prePromotionAnalysis:\n        checks:\n        - name: preview-errors\n          interval: 1s\n          count: 2\n          web: {url: 'http://bw-preview/info', jsonPath: errorRate, max: 0.01}\n        - name: smoke\n          interval: 1s\n          job:\n            command: [sh, -c, 'test \"$QUIET\" = 1']\n",
    );
    let (s, first) = start_blue_green("bw", &strategy);
    let active = cluster_addr(&s, "bw-active");
    let load = Load::start(active, 4, BUDGET);
    load.wait_for_more(300, WAIT);

    // 2.0, healthy: both checks pass and the promotion is automatic.
    plugin(&s, &["set", "image", "bw", &format!("app={V2}")]);
    let r = wait_rollout(&s, "bw", "promoted after a passing analysis", |st| {
        completed(st) && st["currentPodHash"] != first.as_str()
    });
    let good = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    let a = analysis_of(&r["status"], &good);
    assert_eq!(a["phase"], "Successful", "{:#}", r["status"]);
    wait_serves_only(active, "2.0");

    // 2.0 failing half its requests: the web check reads errorRate 0.5 on the preview, the
    // analysis fails, the rollout aborts and the active Service never switches.
    s.ok(&[
        "patch",
        "rollouts.slipway.dev",
        "bw",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"ERROR_RATE","value":"0.5"}}]"#,
    ]);
    let r = wait_rollout(
        &s,
        "bw",
        "aborted by the failed analysis",
        phase_is("Aborted"),
    );
    let bad = r["status"]["currentPodHash"].as_str().unwrap().to_string();
    assert_ne!(bad, good);
    let a = analysis_of(&r["status"], &bad);
    assert_eq!(a["phase"], "Failed", "{:#}", r["status"]);
    assert_eq!(
        selector_hash(&s, "bw-active").as_deref(),
        Some(good.as_str())
    );
    let ev = events_of(&s, "bw");
    assert!(ev.contains("AnalysisFailed"), "{ev}");
    load.wait_for_more(500, WAIT);
    let t = load.stop();
    assert_no_failures("blue-green analysis", &t);
}

/// The analysis record of revision `hash`.
fn analysis_of(st: &Value, hash: &str) -> Value {
    st["analysis"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["podHash"] == hash)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_restart_during_recreate_and_rolling_hooks_runs_no_hook_twice() {
    let _serial = serial();
    let mut s = ProcessServer::start();
    let recreate = "    recreate: {}\n";
    let rolling = "    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    for (app, strategy) in [("rh", recreate), ("ru", rolling)] {
        s.apply(&service(app, app));
        s.apply(&rollout(app, 2, V1, "", strategy, ""));
    }
    for app in ["rh", "ru"] {
        wait_rollout(&s, app, "the first revision rolled out", completed);
    }
    // Hooks that take a few seconds: the mid hook of a Recreate, the pre hook of a
    // rollingUpdate. serve is killed while both run.
    let slow = "      exec:\n        command: [sh, -c, 'echo started; sleep 3; echo done']\n";
    s.apply(&rollout(
        "rh",
        2,
        V2,
        "",
        recreate,
        &format!("  hooks:\n    mid:\n      name: slow\n{slow}"),
    ));
    s.apply(&rollout(
        "ru",
        2,
        V2,
        "",
        rolling,
        &format!("  hooks:\n    pre:\n      name: slow\n{slow}"),
    ));
    for app in ["rh", "ru"] {
        wait_rollout(&s, app, "its slow hook running", |st| {
            hook_record(st, "slow")["phase"] == "Running"
        });
    }
    s.kill9();
    s.spawn(&[]);
    for (app, kind) in [("rh", "mid"), ("ru", "pre")] {
        let r = wait_rollout(&s, app, "completed after the restart", completed);
        let h = hook_record(&r["status"], "slow");
        assert_eq!(h["kind"], kind, "{h}");
        assert_eq!(h["phase"], "Succeeded", "{h}");
        assert_eq!(h["attempts"], 1, "{app}: the hook ran again: {h}");
        assert_eq!(h["logTail"], "started\ndone", "{h}");
        assert_eq!(
            run_pods(&s, app).len(),
            1,
            "{app}: hook pods {:?}",
            run_pods(&s, app)
        );
        wait_ready_endpoints(&s, app, 2);
        wait_serves_only(cluster_addr(&s, app), "2.0");
    }
}
