//! The run executor's hooks: exec pods, HTTP calls, retries, idempotence, cancellation.

mod rollout_runs_support;

use rollout_runs_support::{Answer, World};
use serde_json::json;
use slipway_controllers::rollout_runs::{HookKey, RunRequest};
use slipway_rollout::{ExecHook, Hook, HookRetry, HttpHook};
use std::time::Duration;

const HASH: &str = "abc123";

fn key(kind: &str, name: &str) -> HookKey {
    HookKey {
        kind: kind.into(),
        name: name.into(),
        pod_hash: HASH.into(),
    }
}

fn exec_hook(policy: Option<&str>) -> Hook {
    Hook {
        exec: Some(ExecHook {
            container: None,
            command: vec!["sh".into(), "-c".into()],
            args: vec!["./migrate".into()],
            env: vec![k8s_openapi::api::core::v1::EnvVar {
                name: "HOOK".into(),
                value: Some("pre".into()),
                ..Default::default()
            }],
        }),
        timeout_seconds: Some(30),
        failure_policy: policy.map(str::to_string),
        ..Default::default()
    }
}

fn pre(hook: Hook) -> Vec<RunRequest> {
    vec![RunRequest::Hook {
        key: key("pre", "pre"),
        hook,
    }]
}

fn http_hook(url: &str, expected: Option<i32>) -> Hook {
    Hook {
        http: Some(HttpHook {
            url: url.into(),
            method: Some("post".into()),
            body: Some("{\"x\":1}".into()),
            expected_status: expected,
        }),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

const POD1: &str = "web-hook-pre-pre-abc123-1";

#[tokio::test]
async fn the_advance_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    let rollout = w.rollout.clone();
    let fut = w.exec.advance(&rollout, &requests, &mut w.status);
    assert_send(&fut);
    fut.await;
}

#[tokio::test]
async fn an_exec_hook_runs_a_pod_built_from_the_template_and_succeeds() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    let hint = w.advance(&requests).await;
    assert_eq!(hint, Some(Duration::from_secs(1)));
    let rec = &w.status.hooks[0];
    assert_eq!(
        (rec.name.as_str(), rec.kind.as_str(), rec.pod_hash.as_str()),
        ("pre", "pre", HASH)
    );
    assert_eq!(rec.phase, "Running");
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.pod_name.as_deref(), Some(POD1));
    assert_eq!(rec.started_at.as_deref(), Some("2025-06-01T12:00:00.000Z"));

    let pod = w.client.pod(POD1).expect("the hook pod");
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"slipway.dev/rollout": "web", "slipway.dev/hook": "pre"}),
        "a hook pod carries none of the template's labels, so no Service selects it"
    );
    assert_eq!(
        pod["metadata"]["ownerReferences"],
        json!([{"apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout", "name": "web",
                "uid": "rollout-uid", "controller": false, "blockOwnerDeletion": false}])
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 30);
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "app");
    assert_eq!(c["image"], "example/web:2");
    assert_eq!(c["command"], json!(["sh", "-c"]));
    assert_eq!(c["args"], json!(["./migrate"]));
    assert_eq!(
        c["env"],
        json!([{"name": "MODE", "value": "prod"}, {"name": "HOOK", "value": "pre"}])
    );
    assert!(c.get("ports").is_none());
    assert!(c.get("readinessProbe").is_none());
    assert!(c.get("livenessProbe").is_none());
    assert_eq!(w.client.reasons(), vec!["HookStarted"]);

    // Still running: polled every second.
    w.clock.advance(Duration::from_secs(3));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    assert_eq!(w.status.hooks[0].phase, "Running");

    let output: String = (1..=25).map(|i| format!("migrated {i}\n")).collect();
    w.client.set_log(POD1, &output);
    w.client.finish_pod(POD1, "Succeeded", Some(0));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Succeeded");
    assert_eq!(rec.exit_code, Some(0));
    let expected: Vec<String> = (6..=25).map(|i| format!("migrated {i}")).collect();
    assert_eq!(rec.log_tail.as_deref(), Some(expected.join("\n").as_str()));
    assert_eq!(rec.finished_at.as_deref(), Some("2025-06-01T12:00:03.000Z"));
    let events = w.client.events();
    assert_eq!(events[1].0, "HookSucceeded");
    assert!(
        events[1].1.contains("hook pre") || events[1].1.contains("Hook pre"),
        "{events:?}"
    );
    assert!(events[1].1.contains("attempt 1"), "{events:?}");

    // Final: never run again, by this executor or after a restart.
    let before = w.status.clone();
    assert_eq!(w.advance(&requests).await, None);
    w.restart();
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.status, before);
    assert_eq!(w.client.pods_created().len(), 1);
    assert_eq!(w.client.events().len(), 2);
}

#[tokio::test]
async fn the_named_container_is_taken() {
    let mut w = World::new();
    let mut hook = exec_hook(None);
    hook.exec.as_mut().unwrap().container = Some("sidecar".into());
    w.advance(&pre(hook)).await;
    let pod = w.client.pod(POD1).unwrap();
    assert_eq!(pod["spec"]["containers"][0]["name"], "sidecar");
    assert_eq!(pod["spec"]["containers"][0]["image"], "example/sidecar:1");

    let mut w = World::new();
    let mut hook = exec_hook(None);
    hook.exec.as_mut().unwrap().container = Some("nope".into());
    w.advance(&pre(hook)).await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
    assert!(
        w.status.hooks[0]
            .message
            .as_deref()
            .unwrap()
            .contains("no container \"nope\"")
    );
}

#[tokio::test]
async fn a_failed_exec_hook_aborts_by_default() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    w.client.set_log(
        POD1,
        "applying 0042_orders\nerror: relation \"orders\" exists\n",
    );
    w.client.finish_pod(POD1, "Failed", Some(3));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Failed");
    assert_eq!(rec.exit_code, Some(3));
    assert_eq!(
        rec.log_tail.as_deref(),
        Some("applying 0042_orders\nerror: relation \"orders\" exists")
    );
    assert!(rec.message.as_deref().unwrap().contains("exit code 3"));
    let (reason, message) = w.client.events().pop().unwrap();
    assert_eq!(reason, "HookFailed");
    assert!(
        message.contains("attempt 1") && message.contains("exit code 3"),
        "{message}"
    );
    assert!(
        message.contains("(last output: error: relation \"orders\" exists)"),
        "{message}"
    );
}

#[tokio::test]
async fn an_exec_hook_that_outlives_its_timeout_is_deleted_and_fails() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    w.client.set_pod_phase(POD1, "Running");
    w.client.set_log(POD1, "waiting for the lock\n");
    w.clock.advance(Duration::from_millis(29_400));
    // 600 ms to the deadline: the hint is not later than it.
    assert_eq!(w.advance(&requests).await, Some(Duration::from_millis(600)));
    w.clock.advance(Duration::from_millis(600));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Failed");
    assert_eq!(rec.message.as_deref(), Some("timed out after 30s"));
    assert_eq!(rec.log_tail.as_deref(), Some("waiting for the lock"));
    assert_eq!(w.client.pods_deleted(), vec![POD1.to_string()]);
    assert!(w.client.pod(POD1).is_none());
}

#[tokio::test]
async fn retries_back_off_and_then_give_up() {
    let mut w = World::new();
    let mut hook = exec_hook(Some("Retry"));
    hook.retry = Some(HookRetry {
        limit: Some(2),
        backoff_seconds: Some(5),
    });
    let requests = pre(hook);
    let start = w.clock.now();
    w.advance(&requests).await;
    w.client.finish_pod(POD1, "Failed", Some(1));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(5)));
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Waiting");
    assert_eq!(rec.attempts, 1);
    assert_eq!(
        rec.next_attempt_at.as_deref(),
        Some(w.clock.stamp_after(start, Duration::from_secs(5)).as_str())
    );
    let (reason, message) = w.client.events().pop().unwrap();
    assert_eq!(reason, "HookRetrying");
    assert!(
        message.contains("retrying in 5s") && message.contains("attempt 2 of 3"),
        "{message}"
    );

    // Not before the back-off.
    w.clock.advance(Duration::from_secs(4));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    assert_eq!(w.client.pods_created().len(), 1);

    // Attempt 2, then back-off doubled.
    w.clock.advance(Duration::from_secs(1));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    let rec = &w.status.hooks[0];
    assert_eq!((rec.phase.as_str(), rec.attempts), ("Running", 2));
    assert_eq!(rec.pod_name.as_deref(), Some("web-hook-pre-pre-abc123-2"));
    w.client
        .finish_pod("web-hook-pre-pre-abc123-2", "Failed", Some(1));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(10)));

    // Attempt 3 fails: 3 > limit 2, exhausted.
    w.clock.advance(Duration::from_secs(10));
    w.advance(&requests).await;
    w.client
        .finish_pod("web-hook-pre-pre-abc123-3", "Failed", Some(2));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Failed");
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.exit_code, Some(2));
    assert_eq!(
        w.client.reasons(),
        vec![
            "HookStarted",
            "HookRetrying",
            "HookStarted",
            "HookRetrying",
            "HookStarted",
            "HookFailed"
        ]
    );
    assert_eq!(w.client.pods_created().len(), 3);
}

#[tokio::test]
async fn a_retried_hook_can_succeed() {
    let mut w = World::new();
    let requests = pre(exec_hook(Some("Retry")));
    w.advance(&requests).await;
    w.client.finish_pod(POD1, "Failed", Some(1));
    w.advance(&requests).await;
    w.clock.advance(Duration::from_secs(5));
    w.advance(&requests).await;
    w.client
        .finish_pod("web-hook-pre-pre-abc123-2", "Succeeded", Some(0));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!((rec.phase.as_str(), rec.attempts), ("Succeeded", 2));
    assert_eq!(rec.next_attempt_at, None);
}

#[tokio::test]
async fn an_ignored_failure_ends_ignored() {
    let mut w = World::new();
    let requests = pre(exec_hook(Some("Ignore")));
    w.advance(&requests).await;
    w.client.finish_pod(POD1, "Failed", Some(7));
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.status.hooks[0].phase, "Ignored");
    assert_eq!(w.status.hooks[0].exit_code, Some(7));
    assert_eq!(w.client.reasons(), vec!["HookStarted", "HookIgnored"]);
    w.advance(&requests).await;
    assert_eq!(w.client.pods_created().len(), 1);
}

#[tokio::test]
async fn a_restart_adopts_the_running_pod() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    w.restart();
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    assert_eq!(w.client.pods_created().len(), 1);
    assert_eq!(w.status.hooks[0].attempts, 1);
    w.client.finish_pod(POD1, "Succeeded", Some(0));
    w.advance(&requests).await;
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
    assert_eq!(w.client.reasons(), vec!["HookStarted", "HookSucceeded"]);
}

#[tokio::test]
async fn a_pod_left_by_a_crash_before_the_status_write_is_adopted() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    // The status with the Running record was never written.
    w.status = Default::default();
    w.restart();
    w.advance(&requests).await;
    let rec = &w.status.hooks[0];
    assert_eq!((rec.phase.as_str(), rec.attempts), ("Running", 1));
    assert_eq!(w.client.pods_created().len(), 1);
    w.client.finish_pod(POD1, "Succeeded", Some(0));
    w.advance(&requests).await;
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
}

#[tokio::test]
async fn a_hook_run_again_after_retry_gets_a_new_pod_not_the_old_result() {
    // Regression: `retry` drops the final records of the revision, so the next run numbers
    // its attempts from 1 again and its pod name is the failed run's, whose pod is kept as
    // evidence. Adopting that finished pod took its old exit code as the new run's result.
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    w.client.finish_pod(POD1, "Failed", Some(3));
    w.advance(&requests).await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
    // What `retry` leaves: no record of the hook for this revision.
    w.status.hooks.clear();
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    let rec = &w.status.hooks[0];
    assert_eq!(
        (rec.phase.as_str(), rec.attempts),
        ("Waiting", 0),
        "{rec:?}"
    );
    assert_eq!(w.client.pods_deleted(), vec![POD1.to_string()]);
    w.clock.advance(Duration::from_secs(1));
    w.advance(&requests).await;
    let rec = &w.status.hooks[0];
    assert_eq!(
        (rec.phase.as_str(), rec.attempts),
        ("Running", 1),
        "{rec:?}"
    );
    assert_eq!(w.client.pods_created().len(), 2);
    assert!(w.client.pod(POD1).unwrap().get("status").is_none());
    w.client.finish_pod(POD1, "Succeeded", Some(0));
    w.advance(&requests).await;
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
}

#[tokio::test]
async fn a_pod_name_taken_by_another_object_fails_the_attempt() {
    let mut w = World::new();
    w.client.put(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": POD1, "namespace": "default", "labels": {"app": "other"}}}),
    );
    w.advance(&pre(exec_hook(None))).await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
    assert!(
        w.status.hooks[0]
            .message
            .as_deref()
            .unwrap()
            .contains("does not belong")
    );
}

#[tokio::test]
async fn a_request_that_disappears_cancels_the_run() {
    let mut w = World::new();
    let requests = pre(exec_hook(None));
    w.advance(&requests).await;
    assert_eq!(w.advance(&[]).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Running");
    assert_eq!(rec.message.as_deref(), Some("cancelled"));
    assert_eq!(w.client.pods_deleted(), vec![POD1.to_string()]);
    // Idempotent.
    w.advance(&[]).await;
    assert_eq!(w.client.pods_deleted().len(), 1);
    // Requested again: the attempt starts over with a new pod of the same name.
    w.clock.advance(Duration::from_secs(100));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    let rec = &w.status.hooks[0];
    assert_eq!(rec.message, None);
    assert_eq!(rec.attempts, 1);
    assert!(w.client.pod(POD1).is_some());
    assert_eq!(rec.phase, "Running");
}

#[tokio::test]
async fn other_hooks_keep_their_own_records() {
    let mut w = World::new();
    let mut requests = pre(exec_hook(None));
    requests.push(RunRequest::Hook {
        key: key("step", "step-2"),
        hook: exec_hook(None),
    });
    w.advance(&requests).await;
    assert_eq!(w.status.hooks.len(), 2);
    assert!(w.client.pod("web-hook-step-step-2-abc123-1").is_some());
    w.client.finish_pod(POD1, "Succeeded", Some(0));
    w.advance(&requests).await;
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
    assert_eq!(w.status.hooks[1].phase, "Running");
    // The same hook for another revision is another record.
    let other = vec![RunRequest::Hook {
        key: HookKey {
            pod_hash: "def456".into(),
            ..key("pre", "pre")
        },
        hook: exec_hook(None),
    }];
    w.advance(&other).await;
    assert_eq!(w.status.hooks.len(), 3);
    assert!(w.client.pod("web-hook-pre-pre-def456-1").is_some());
}

#[tokio::test]
async fn an_http_hook_succeeds_on_any_2xx_by_default() {
    let mut w = World::new();
    w.http.answer(vec![Answer::Reply(204, String::new())]);
    let requests = pre(http_hook("http://127.0.0.1:9000/hooks/pre", None));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Succeeded");
    assert_eq!(rec.message.as_deref(), Some("HTTP 204"));
    let sent = w.http.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].url, "http://127.0.0.1:9000/hooks/pre");
    assert_eq!(sent[0].body.as_deref(), Some("{\"x\":1}"));
    assert_eq!(sent[0].timeout, Duration::from_secs(5));
    assert_eq!(w.client.reasons(), vec!["HookStarted", "HookSucceeded"]);
    assert!(w.client.pods_created().is_empty());
}

#[tokio::test]
async fn an_http_hook_matches_the_expected_status() {
    let mut w = World::new();
    w.http.answer(vec![Answer::Reply(200, "ok".into())]);
    w.advance(&pre(http_hook("http://localhost:9000/x", Some(202))))
        .await;
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Failed");
    assert_eq!(rec.message.as_deref(), Some("HTTP 200, expected 202: ok"));

    let mut w = World::new();
    w.http.answer(vec![Answer::Reply(202, String::new())]);
    w.advance(&pre(http_hook("http://localhost:9000/x", Some(202))))
        .await;
    assert_eq!(w.status.hooks[0].phase, "Succeeded");

    let mut w = World::new();
    w.http.answer(vec![Answer::Reply(500, "boom".into())]);
    w.advance(&pre(http_hook("http://localhost:9000/x", None)))
        .await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
    assert_eq!(
        w.status.hooks[0].message.as_deref(),
        Some("HTTP 500, expected 2xx: boom")
    );
}

#[tokio::test]
async fn an_http_hook_resolves_service_names_to_the_cluster_ip() {
    for host in [
        "checks",
        "checks.default",
        "checks.default.svc",
        "checks.default.svc.cluster.local",
    ] {
        let mut w = World::new();
        w.service("checks", "127.96.0.12");
        w.advance(&pre(http_hook(
            &format!("http://{host}:8080/ready?full=1"),
            None,
        )))
        .await;
        assert_eq!(w.status.hooks[0].phase, "Succeeded", "{host}");
        assert_eq!(w.http.sent()[0].url, "http://127.96.0.12:8080/ready?full=1");
    }
    // Default port.
    let mut w = World::new();
    w.service("checks", "127.96.0.12");
    w.advance(&pre(http_hook("http://checks/ready", None)))
        .await;
    assert_eq!(w.http.sent()[0].url, "http://127.96.0.12/ready");
}

#[tokio::test]
async fn an_http_hook_refuses_non_loopback_hosts() {
    for (url, why) in [
        ("http://10.0.0.5/hook", "refusing"),
        ("http://8.8.8.8:80/hook", "refusing"),
        ("http://example.com.attacker.net/hook", "refusing"),
        ("http://missing/hook", "not found"),
        ("https://127.0.0.1/hook", "only http://"),
    ] {
        let mut w = World::new();
        w.advance(&pre(http_hook(url, None))).await;
        let rec = &w.status.hooks[0];
        assert_eq!(rec.phase, "Failed", "{url}");
        assert!(
            rec.message.as_deref().unwrap().contains(why),
            "{url}: {rec:?}"
        );
        assert!(w.http.sent().is_empty(), "{url}");
    }
    // A Service whose ClusterIP is not loopback is refused too.
    let mut w = World::new();
    w.service("outside", "10.96.0.1");
    w.advance(&pre(http_hook("http://outside/hook", None)))
        .await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
    assert!(w.http.sent().is_empty());
}

#[tokio::test]
async fn an_http_hook_that_never_answers_times_out() {
    let mut w = World::new();
    w.http.answer(vec![Answer::Hang]);
    let requests = pre(http_hook("http://127.0.0.1:9000/x", None));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_millis(100)));
    assert_eq!(w.status.hooks[0].phase, "Running");
    // Polled, not re-sent.
    w.clock.advance(Duration::from_secs(2));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_millis(100)));
    assert_eq!(w.http.sent().len(), 1);
    w.clock.advance(Duration::from_secs(4));
    assert_eq!(w.advance(&requests).await, None);
    let rec = &w.status.hooks[0];
    assert_eq!(rec.phase, "Failed");
    assert_eq!(rec.message.as_deref(), Some("timed out after 5s"));
}

#[tokio::test]
async fn an_http_hook_error_is_retried() {
    let mut w = World::new();
    w.http.answer(vec![
        Answer::Error("connect: refused".into()),
        Answer::Reply(200, "{}".into()),
    ]);
    let mut hook = http_hook("http://127.0.0.1:9000/x", None);
    hook.failure_policy = Some("Retry".into());
    hook.retry = Some(HookRetry {
        limit: Some(1),
        backoff_seconds: Some(2),
    });
    let requests = pre(hook);
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(2)));
    assert_eq!(w.status.hooks[0].phase, "Waiting");
    assert_eq!(
        w.status.hooks[0].message.as_deref(),
        Some("connect: refused")
    );
    w.clock.advance(Duration::from_secs(2));
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
    assert_eq!(w.status.hooks[0].attempts, 2);
}

#[tokio::test]
async fn a_hook_with_neither_exec_nor_http_fails() {
    let mut w = World::new();
    w.advance(&pre(Hook::default())).await;
    assert_eq!(w.status.hooks[0].phase, "Failed");
}

#[tokio::test]
async fn long_names_are_cut_to_a_valid_pod_name() {
    let mut w = World::new();
    w.rollout.metadata.name = Some("a-very-long-rollout-name-that-goes-on-and-on".into());
    let requests = vec![RunRequest::Hook {
        key: HookKey {
            kind: "prePromotion".into(),
            name: "Check_Database_Schema_Version".into(),
            pod_hash: HASH.into(),
        },
        hook: exec_hook(None),
    }];
    w.advance(&requests).await;
    let name = w.status.hooks[0].pod_name.clone().unwrap();
    assert_eq!(name.len(), 63, "{name}");
    assert!(name.starts_with("a-very-long-rollout-name-that-goes-on-and-on-hook-pr-"));
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    );
    assert!(w.client.pod(&name).is_some());
}

#[tokio::test]
async fn an_http_hook_in_flight_at_a_restart_is_sent_again() {
    let mut w = World::new();
    w.http.answer(vec![Answer::Hang]);
    let requests = pre(http_hook("http://127.0.0.1:9000/x", None));
    w.advance(&requests).await;
    w.restart();
    w.http.answer(vec![Answer::Reply(200, String::new())]);
    w.clock.advance(Duration::from_secs(1));
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.http.sent().len(), 2);
    assert_eq!(w.status.hooks[0].phase, "Succeeded");
    assert_eq!(w.status.hooks[0].attempts, 1);

    // Past its timeout by then: failed without sending.
    let mut w = World::new();
    w.http.answer(vec![Answer::Hang]);
    w.advance(&requests).await;
    w.restart();
    w.clock.advance(Duration::from_secs(6));
    w.advance(&requests).await;
    assert_eq!(w.http.sent().len(), 1);
    assert_eq!(
        w.status.hooks[0].message.as_deref(),
        Some("timed out after 5s")
    );
}

#[test]
fn the_executor_can_be_shared_between_workers() {
    fn assert_shared<T: Send + Sync + Clone + 'static>() {}
    assert_shared::<slipway_controllers::rollout_runs::RunExecutor<rollout_runs_support::FakeClient>>(
    );
}
