//! The run executor's analyses: proxy, web and job checks, counts, phases, requeue hints.

mod rollout_runs_support;

use rollout_runs_support::{Answer, World, group};
use slipway_controllers::rollout_runs::{GroupSample, RunRequest};
use slipway_rollout::{Analysis, AnalysisCheck, JobCheck, ProxyMetricCheck, WebCheck};
use std::time::Duration;

const CANARY: &str = "canary1";
const STABLE: &str = "stable1";
const SECS10: Duration = Duration::from_secs(10);

fn proxy_check(name: &str, metric: &str, max: Option<f64>, ratio: Option<f64>) -> AnalysisCheck {
    AnalysisCheck {
        name: name.into(),
        interval: Some("10s".into()),
        count: Some(2),
        proxy: Some(ProxyMetricCheck {
            metric: metric.into(),
            max,
            max_ratio_to_stable: ratio,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn request(name: &str, checks: Vec<AnalysisCheck>) -> Vec<RunRequest> {
    vec![RunRequest::Analysis {
        name: name.into(),
        pod_hash: CANARY.into(),
        stable_hash: Some(STABLE.into()),
        service: Some("web".into()),
        analysis: Analysis { checks },
    }]
}

/// Cumulative counters: canary (requests, errors), stable (requests, errors).
fn traffic(w: &World, canary: (u64, u64), stable: (u64, u64)) {
    w.metrics.set(
        "web",
        vec![
            group(CANARY, canary.0, canary.1),
            group(STABLE, stable.0, stable.1),
        ],
    );
}

#[tokio::test]
async fn an_error_rate_check_passes_on_deltas_and_succeeds_after_count() {
    let mut w = World::new();
    let start = w.clock.now();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    // Lots of old errors before the analysis started: not counted.
    traffic(&w, (1000, 500), (1000, 0));
    assert_eq!(w.advance(&requests).await, Some(SECS10));
    let a = &w.status.analysis[0];
    assert_eq!(
        (a.name.as_str(), a.pod_hash.as_str(), a.phase.as_str()),
        ("step-1", CANARY, "Running")
    );
    let c = &a.checks[0];
    assert_eq!((c.successful, c.failed, c.inconclusive), (0, 0, 0));
    assert_eq!(
        c.next_at.as_deref(),
        Some(w.clock.stamp_after(start, SECS10).as_str())
    );
    assert!(c.last_message.as_deref().unwrap().contains("baseline"));

    // Not due yet: no sample.
    w.clock.advance(Duration::from_millis(9_250));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_millis(750)));
    assert_eq!(w.metrics.sample_count(), 1);

    w.clock.advance(Duration::from_millis(750));
    traffic(&w, (1100, 502), (1100, 0));
    assert_eq!(w.advance(&requests).await, Some(SECS10));
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.failed, c.inconclusive), (1, 0, 0));
    assert_eq!(c.last_value.as_deref(), Some("0.02"));
    assert_eq!(
        c.last_message.as_deref(),
        Some("errorRate 0.02 <= max 0.05 (2 errors of 100 requests)")
    );
    assert_eq!(w.status.analysis[0].phase, "Running");

    w.clock.advance(SECS10);
    traffic(&w, (1200, 503), (1200, 0));
    assert_eq!(w.advance(&requests).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Successful");
    assert_eq!(a.checks[0].successful, 2);
    assert_eq!(a.checks[0].next_at, None);
    let (reason, message) = w.client.events().pop().unwrap();
    assert_eq!(reason, "AnalysisSuccessful");
    assert!(
        message.contains("step-1") && message.contains("errors"),
        "{message}"
    );

    // Final: nothing sampled again, also after a restart.
    w.clock.advance(SECS10);
    assert_eq!(w.advance(&requests).await, None);
    w.restart();
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.metrics.sample_count(), 3);
    assert_eq!(w.client.events().len(), 1);
}

#[tokio::test]
async fn an_error_rate_above_max_fails_the_analysis_at_once() {
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (200, 20), (0, 0));
    assert_eq!(w.advance(&requests).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Failed");
    assert_eq!(a.checks[0].failed, 1);
    assert_eq!(a.checks[0].last_value.as_deref(), Some("0.1"));
    assert!(
        a.message
            .as_deref()
            .unwrap()
            .contains("errorRate 0.1 > max 0.05")
    );
    let (reason, message) = w.client.events().pop().unwrap();
    assert_eq!(reason, "AnalysisFailed");
    assert!(
        message.contains("check errors")
            && message.contains("errorRate 0.1 > max 0.05")
            && message.contains("failureLimit 0"),
        "{message}"
    );
}

#[tokio::test]
async fn failures_up_to_the_limit_are_tolerated() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.failure_limit = Some(1);
    check.count = Some(3);
    let requests = request("step-1", vec![check]);
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (100, 10), (0, 0));
    assert_eq!(w.advance(&requests).await, Some(SECS10));
    assert_eq!(w.status.analysis[0].phase, "Running");
    assert_eq!(w.status.analysis[0].checks[0].failed, 1);
    w.clock.advance(SECS10);
    traffic(&w, (200, 20), (0, 0));
    assert_eq!(w.advance(&requests).await, None);
    assert_eq!(w.status.analysis[0].phase, "Failed");
}

#[tokio::test]
async fn too_few_requests_are_inconclusive() {
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    traffic(&w, (100, 0), (100, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (105, 5), (200, 0));
    assert_eq!(w.advance(&requests).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Inconclusive");
    assert_eq!(a.checks[0].inconclusive, 1);
    assert_eq!(a.checks[0].last_value, None);
    assert!(
        a.checks[0]
            .last_message
            .as_deref()
            .unwrap()
            .contains("5 requests to canary1 in the interval (minRequests 10)")
    );
    assert_eq!(w.client.reasons(), vec!["AnalysisInconclusive"]);
}

#[tokio::test]
async fn inconclusive_results_up_to_the_limit_are_tolerated() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.inconclusive_limit = Some(1);
    if let Some(p) = check.proxy.as_mut() {
        p.min_requests = Some(50);
    }
    let requests = request("step-1", vec![check]);
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (20, 0), (0, 0));
    w.advance(&requests).await;
    assert_eq!(w.status.analysis[0].phase, "Running");
    w.clock.advance(SECS10);
    traffic(&w, (120, 0), (0, 0));
    w.advance(&requests).await;
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Successful");
    assert_eq!((a.checks[0].successful, a.checks[0].inconclusive), (1, 1));
}

#[tokio::test]
async fn missing_metrics_are_inconclusive_and_keep_the_baseline() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.inconclusive_limit = Some(5);
    let requests = request("step-1", vec![check]);
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    w.metrics.fail("web", "proxy control socket unreachable");
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!(c.inconclusive, 1);
    assert!(c.last_message.as_deref().unwrap().contains("unreachable"));
    w.clock.advance(SECS10);
    traffic(&w, (100, 1), (0, 0));
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.inconclusive), (1, 1));
    assert_eq!(c.last_value.as_deref(), Some("0.01"));
}

#[tokio::test]
async fn metrics_without_pod_hash_say_so() {
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    w.metrics.set("web", vec![group("", 100, 0)]);
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    w.metrics.set("web", vec![group("", 300, 0)]);
    w.advance(&requests).await;
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Inconclusive");
    assert!(
        a.checks[0]
            .last_message
            .as_deref()
            .unwrap()
            .contains("no pod_hash label")
    );
}

#[tokio::test]
async fn a_restart_takes_a_fresh_baseline_first() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.count = Some(3);
    let requests = request("step-1", vec![check]);
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (100, 0), (0, 0));
    w.advance(&requests).await;
    assert_eq!(w.status.analysis[0].checks[0].successful, 1);

    w.restart();
    w.clock.advance(SECS10);
    // Errors happened while Slipway was down; the new baseline does not count them.
    traffic(&w, (200, 90), (0, 0));
    assert_eq!(w.advance(&requests).await, Some(SECS10));
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.failed), (1, 0));
    assert!(c.last_message.as_deref().unwrap().contains("baseline"));
    w.clock.advance(SECS10);
    traffic(&w, (300, 91), (0, 0));
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.failed), (2, 0));
}

#[tokio::test]
async fn counters_going_down_take_a_new_baseline() {
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    traffic(&w, (500, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (40, 0), (0, 0));
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.failed, c.inconclusive), (0, 0, 0));
    assert!(c.last_message.as_deref().unwrap().contains("new baseline"));
}

fn latency_group(hash: &str, buckets: &[(f64, u64)]) -> GroupSample {
    let count = buckets.last().map(|b| b.1).unwrap_or(0);
    GroupSample {
        pod_hash: hash.into(),
        requests: count,
        errors: 0,
        latency_buckets: buckets.to_vec(),
        latency_count: count,
    }
}

#[tokio::test]
async fn latency_percentiles_come_from_histogram_deltas() {
    let inf = f64::INFINITY;
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![
            proxy_check("p50", "latencyP50", Some(0.2), None),
            proxy_check("p99", "latencyP99", Some(0.2), None),
        ],
    );
    // Before: 1000 slow responses (all in the (0.25, 0.5] bucket).
    let before = [(0.1, 0), (0.25, 0), (0.5, 1000), (inf, 1000)];
    w.metrics.set("web", vec![latency_group(CANARY, &before)]);
    w.advance(&requests).await;
    // During the interval: 100 responses, 90 within 0.1 s, 10 within (0.1, 0.25].
    let after = [(0.1, 90), (0.25, 100), (0.5, 1100), (inf, 1100)];
    w.clock.advance(SECS10);
    w.metrics.set("web", vec![latency_group(CANARY, &after)]);
    w.advance(&requests).await;
    let a = &w.status.analysis[0];
    let p50 = &a.checks[0];
    let p99 = &a.checks[1];
    // p50: rank 50 of 90 in [0, 0.1] -> 0.0556; p99: rank 99 -> 0.1 + 0.15 * 9/10 = 0.235.
    assert_eq!(p50.last_value.as_deref(), Some("0.0556"));
    assert_eq!((p50.successful, p50.failed), (1, 0));
    assert_eq!(p99.last_value.as_deref(), Some("0.235"));
    assert_eq!(p99.failed, 1);
    assert_eq!(a.phase, "Failed");
    assert!(
        a.message
            .as_deref()
            .unwrap()
            .contains("latencyP99 0.235 > max 0.2")
    );
}

#[tokio::test]
async fn the_ratio_to_stable_compares_with_the_stable_pods() {
    // Canary 4% errors, stable 1%: a ratio of 2 fails, 5 passes.
    for (ratio, phase) in [(2.0, "Failed"), (5.0, "Running")] {
        let mut w = World::new();
        let requests = request(
            "background",
            vec![proxy_check("errors", "errorRate", None, Some(ratio))],
        );
        traffic(&w, (0, 0), (0, 0));
        w.advance(&requests).await;
        w.clock.advance(SECS10);
        traffic(&w, (100, 4), (1000, 10));
        w.advance(&requests).await;
        let a = &w.status.analysis[0];
        assert_eq!(a.phase, phase, "ratio {ratio}");
        let msg = a.checks[0].last_message.as_deref().unwrap();
        assert!(
            msg.contains(&format!("x stable 0.01 = {}", ratio * 0.01)),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn a_quiet_stable_is_inconclusive_for_a_ratio_alone_and_ignored_with_a_max() {
    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", None, Some(2.0))],
    );
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (100, 4), (3, 0));
    w.advance(&requests).await;
    assert_eq!(w.status.analysis[0].phase, "Inconclusive");
    assert!(
        w.status.analysis[0].checks[0]
            .last_message
            .as_deref()
            .unwrap()
            .contains("too few")
    );

    let mut w = World::new();
    let requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), Some(2.0))],
    );
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    w.clock.advance(SECS10);
    traffic(&w, (100, 4), (3, 0));
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!(c.successful, 1);
    assert!(
        c.last_message
            .as_deref()
            .unwrap()
            .contains("judged by max only")
    );
}

#[tokio::test]
async fn the_check_service_overrides_the_request_service() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.proxy.as_mut().unwrap().service = Some("web-canary".into());
    w.advance(&request("step-1", vec![check])).await;
    assert_eq!(
        w.metrics.samples.lock().clone(),
        vec!["default/web-canary".to_string()]
    );
}

fn web_check(url: &str, path: &str, equals: serde_json::Value) -> AnalysisCheck {
    AnalysisCheck {
        name: "health".into(),
        interval: Some("5s".into()),
        count: Some(2),
        web: Some(WebCheck {
            url: url.into(),
            json_path: path.into(),
            equals: Some(equals),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_web_check_reads_the_json_path() {
    let mut w = World::new();
    w.service("status", "127.96.0.40");
    w.http.answer(vec![
        Answer::Reply(
            200,
            r#"{"status": {"healthy": true, "version": "2"}}"#.into(),
        ),
        Answer::Reply(200, r#"{"status": {"healthy": false}}"#.into()),
    ]);
    let requests = request(
        "step-3",
        vec![web_check(
            "http://status.default:8080/api/status",
            "status.healthy",
            serde_json::json!(true),
        )],
    );
    // Web checks measure at once.
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(5)));
    let c = &w.status.analysis[0].checks[0];
    assert_eq!(c.successful, 1);
    assert_eq!(c.last_value.as_deref(), Some("true"));
    let sent = w.http.sent();
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].url, "http://127.96.0.40:8080/api/status");
    assert_eq!(sent[0].timeout, Duration::from_secs(5));

    w.clock.advance(Duration::from_secs(5));
    assert_eq!(w.advance(&requests).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Failed");
    assert_eq!(a.checks[0].last_value.as_deref(), Some("false"));
    assert!(
        a.message
            .as_deref()
            .unwrap()
            .contains("status.healthy = false != true")
    );
}

#[tokio::test]
async fn a_web_check_error_is_a_failed_measurement() {
    let mut w = World::new();
    w.http
        .answer(vec![Answer::Error("connect: refused".into())]);
    w.advance(&request(
        "step-3",
        vec![web_check(
            "http://127.0.0.1:7000/s",
            "/ok",
            serde_json::json!(1),
        )],
    ))
    .await;
    let a = &w.status.analysis[0];
    assert_eq!(a.checks[0].failed, 1);
    assert_eq!(a.phase, "Failed");

    let mut w = World::new();
    w.advance(&request(
        "step-3",
        vec![web_check(
            "http://192.168.1.1/s",
            "/ok",
            serde_json::json!(1),
        )],
    ))
    .await;
    assert_eq!(w.status.analysis[0].phase, "Failed");
    assert!(w.http.sent().is_empty());
}

#[tokio::test]
async fn a_slow_web_check_is_polled_then_times_out() {
    let mut w = World::new();
    w.http.answer(vec![Answer::Hang]);
    let requests = request(
        "step-3",
        vec![web_check(
            "http://127.0.0.1:7000/s",
            "/ok",
            serde_json::json!(1),
        )],
    );
    assert_eq!(w.advance(&requests).await, Some(Duration::from_millis(100)));
    assert_eq!(w.status.analysis[0].checks[0].failed, 0);
    w.clock.advance(Duration::from_secs(6));
    w.advance(&requests).await;
    let c = &w.status.analysis[0].checks[0];
    assert_eq!(c.failed, 1);
    assert!(c.last_message.as_deref().unwrap().contains("timed out"));
    assert_eq!(w.http.sent().len(), 1);
}

fn job_check() -> AnalysisCheck {
    AnalysisCheck {
        name: "smoke".into(),
        interval: Some("30s".into()),
        count: Some(2),
        job: Some(JobCheck {
            container: None,
            command: vec!["./smoke-test".into()],
            args: vec!["--quick".into()],
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_check_runs_a_pod_per_measurement() {
    let mut w = World::new();
    let requests = request("step-4", vec![job_check()]);
    let pod1 = "web-job-step-4-smoke-canary1-1";
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    let pod = w.client.pod(pod1).expect("the job pod");
    assert_eq!(
        pod["metadata"]["labels"],
        serde_json::json!({"slipway.dev/rollout": "web", "slipway.dev/analysis": "step-4"})
    );
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        serde_json::json!(["./smoke-test"])
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    // Still running: polled, not recreated, also after a restart.
    w.clock.advance(Duration::from_secs(2));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    w.restart();
    w.advance(&requests).await;
    assert_eq!(w.client.pods_created().len(), 1);

    w.client.finish_pod(pod1, "Succeeded", Some(0));
    // Measured 2 s after it was due: the next one is due 30 s after the first was.
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(28)));
    let c = &w.status.analysis[0].checks[0];
    assert_eq!((c.successful, c.last_value.as_deref()), (1, Some("0")));
    assert_eq!(w.client.pods_deleted(), vec![pod1.to_string()]);

    w.clock.advance(Duration::from_secs(28));
    w.advance(&requests).await;
    let pod2 = "web-job-step-4-smoke-canary1-2";
    w.client.finish_pod(pod2, "Failed", Some(4));
    assert_eq!(w.advance(&requests).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Failed");
    assert_eq!(a.checks[0].last_value.as_deref(), Some("4"));
    assert!(a.message.as_deref().unwrap().contains("exit code 4"));
}

#[tokio::test]
async fn a_cancelled_analysis_deletes_its_job_pod_and_keeps_its_record() {
    let mut w = World::new();
    let requests = request("step-4", vec![job_check()]);
    w.advance(&requests).await;
    assert_eq!(w.advance(&[]).await, None);
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Running");
    assert_eq!(a.message.as_deref(), Some("cancelled"));
    assert_eq!(
        w.client.pods_deleted(),
        vec!["web-job-step-4-smoke-canary1-1".to_string()]
    );
}

#[tokio::test]
async fn a_background_analysis_measures_until_cancelled() {
    let mut w = World::new();
    let mut check = proxy_check("errors", "errorRate", Some(0.05), None);
    check.count = None;
    let requests = request("background", vec![check]);
    traffic(&w, (0, 0), (0, 0));
    w.advance(&requests).await;
    for i in 1..=5u64 {
        w.clock.advance(SECS10);
        traffic(&w, (100 * i, 0), (0, 0));
        assert_eq!(w.advance(&requests).await, Some(SECS10));
    }
    let a = &w.status.analysis[0];
    assert_eq!(a.phase, "Running");
    assert_eq!(a.checks[0].successful, 5);
    // Cancelled: the baseline is forgotten, so resuming starts with a new one.
    w.advance(&[]).await;
    assert_eq!(w.status.analysis[0].message.as_deref(), Some("cancelled"));
    assert_eq!(w.status.analysis[0].checks[0].next_at, None);
    w.clock.advance(SECS10);
    traffic(&w, (900, 100), (0, 0));
    w.advance(&requests).await;
    let a = &w.status.analysis[0];
    assert_eq!(a.message, None);
    assert_eq!((a.checks[0].successful, a.checks[0].failed), (5, 0));
}

#[tokio::test]
async fn the_hint_is_the_earliest_next_measurement() {
    let mut w = World::new();
    let mut fast = proxy_check("fast", "errorRate", Some(0.05), None);
    fast.interval = Some("3s".into());
    let mut slow = proxy_check("slow", "errorRate", Some(0.05), None);
    slow.interval = Some("1m".into());
    let requests = request("step-1", vec![slow, fast]);
    traffic(&w, (0, 0), (0, 0));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(3)));
    // A requeue that comes a little late keeps the schedule.
    w.clock.advance(Duration::from_millis(3_040));
    traffic(&w, (100, 0), (0, 0));
    assert_eq!(
        w.advance(&requests).await,
        Some(Duration::from_millis(2_960))
    );
    let fast = &w.status.analysis[0].checks[1];
    assert_eq!(fast.successful, 1);
    // The slow check was not due.
    assert_eq!(w.status.analysis[0].checks[0].successful, 0);
}

#[tokio::test]
async fn analyses_and_hooks_are_advanced_together() {
    let mut w = World::new();
    let mut requests = request(
        "step-1",
        vec![proxy_check("errors", "errorRate", Some(0.05), None)],
    );
    requests.push(RunRequest::Hook {
        key: slipway_controllers::rollout_runs::HookKey {
            kind: "step".into(),
            name: "step-2".into(),
            pod_hash: CANARY.into(),
        },
        hook: slipway_rollout::Hook {
            exec: Some(slipway_rollout::ExecHook {
                command: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    });
    traffic(&w, (0, 0), (0, 0));
    assert_eq!(w.advance(&requests).await, Some(Duration::from_secs(1)));
    assert_eq!(w.status.hooks.len(), 1);
    assert_eq!(w.status.analysis.len(), 1);
}

#[tokio::test]
async fn an_empty_analysis_succeeds_at_once() {
    let mut w = World::new();
    assert_eq!(w.advance(&request("step-1", vec![])).await, None);
    assert_eq!(w.status.analysis[0].phase, "Successful");
}
