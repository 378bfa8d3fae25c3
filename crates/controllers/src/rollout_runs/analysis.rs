//! Analysis runs: every check takes a measurement every `interval`, `count` times, and the
//! analysis ends `Failed`, `Inconclusive` or `Successful` from the counts.

use super::executor::{
    CALL_POLL, CANCELLED, Call, Cx, Hint, POD_POLL, PodError, RunExecutor, RunKey, analysis_run_id,
    pod_outcome, pods,
};
use super::metrics::{GroupSample, histogram_quantile};
use super::podspec::{ANALYSIS_LABEL, PodRun, build_pod, job_pod_name};
use super::util::{clip, num, parse_duration, parse_stamp, plus, stamp, until};
use crate::EventType;
use chrono::{DateTime, Utc};
use serde_json::Value;
use slipway_client::Client;
use slipway_rollout::{
    Analysis, AnalysisCheck, AnalysisStatus, CheckStatus, JobCheck, ProxyMetricCheck,
    RolloutStatus, WebCheck,
};
use std::time::Duration;

/// Default `interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest interval honoured.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Default `minRequests`.
const DEFAULT_MIN_REQUESTS: i64 = 10;
/// How long a job-check pod may run.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest a web check waits for its answer (shorter when the interval is).
const WEB_TIMEOUT: Duration = Duration::from_secs(10);

/// An analysis request, borrowed.
pub(crate) struct AnalysisRequest<'a> {
    pub name: &'a str,
    pub pod_hash: &'a str,
    pub stable_hash: Option<&'a str>,
    pub service: Option<&'a str>,
    pub analysis: &'a Analysis,
}

/// What one measurement found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Successful,
    Failed,
    Inconclusive,
}

/// The result of trying to take a measurement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Still measuring; look again after this.
    Pending(Duration),
    /// Only a baseline was taken (not counted).
    Baseline(String),
    /// A counted measurement: verdict, value, explanation.
    Measured(Verdict, Option<String>, String),
}

fn measured(v: Verdict, value: Option<String>, message: impl Into<String>) -> Outcome {
    Outcome::Measured(v, value, message.into())
}

/// The interval of a check (default 10s; an unreadable one is the default too).
pub(crate) fn interval_of(check: &AnalysisCheck) -> Duration {
    check
        .interval
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_INTERVAL)
        .max(MIN_INTERVAL)
}

/// `count`: default 1, or 0 (until cancelled) for the background analysis.
fn count_of(check: &AnalysisCheck, analysis_name: &str) -> i32 {
    check
        .count
        .unwrap_or(if analysis_name == "background" { 0 } else { 1 })
        .max(0)
}

fn taken(cs: &CheckStatus) -> i32 {
    cs.successful + cs.failed + cs.inconclusive
}

/// The next measurement after one due at `due`, on schedule unless that is already past.
fn schedule(due: DateTime<Utc>, interval: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    let next = plus(due, interval);
    if next > now {
        next
    } else {
        plus(now, interval)
    }
}

impl<C: Client> RunExecutor<C> {
    pub(crate) async fn advance_analysis(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        status: &mut RolloutStatus,
        outer: &mut Hint,
    ) {
        // Merged into `outer` only while the analysis goes on.
        let mut local = Hint::default();
        let hint = &mut local;
        let idx = match status
            .analysis
            .iter()
            .position(|a| a.name == req.name && a.pod_hash == req.pod_hash)
        {
            Some(i) => i,
            None => {
                status.analysis.push(AnalysisStatus {
                    name: req.name.to_string(),
                    pod_hash: req.pod_hash.to_string(),
                    phase: "Running".into(),
                    ..Default::default()
                });
                status.analysis.len() - 1
            }
        };
        let rec = &mut status.analysis[idx];
        if super::executor::is_final_analysis(&rec.phase) {
            return;
        }
        rec.phase = "Running".into();
        if rec.message.as_deref() == Some(CANCELLED) {
            rec.message = None;
        }
        for check in &req.analysis.checks {
            if !rec.checks.iter().any(|c| c.name == check.name) {
                rec.checks.push(CheckStatus {
                    name: check.name.clone(),
                    ..Default::default()
                });
            }
        }
        for check in &req.analysis.checks {
            let Some(cs) = rec.checks.iter_mut().find(|c| c.name == check.name) else {
                continue;
            };
            let count = count_of(check, req.name);
            if count > 0 && taken(cs) >= count {
                cs.next_at = None;
                continue;
            }
            let now = self.now();
            let due = cs.next_at.as_deref().and_then(parse_stamp).unwrap_or(now);
            if due > now {
                hint.at(until(now, due));
                continue;
            }
            // Pin the due time: a measurement that takes a while is timed from it.
            cs.next_at = Some(stamp(due));
            let interval = interval_of(check);
            let outcome = self.measure(cx, req, check, cs, due, interval).await;
            let now = self.now();
            match outcome {
                Outcome::Pending(d) => hint.at(d),
                Outcome::Baseline(message) => {
                    cs.last_message = Some(message);
                    let next = schedule(due, interval, now);
                    cs.next_at = Some(stamp(next));
                    hint.at(until(now, next));
                }
                Outcome::Measured(verdict, value, message) => {
                    match verdict {
                        Verdict::Successful => cs.successful += 1,
                        Verdict::Failed => cs.failed += 1,
                        Verdict::Inconclusive => cs.inconclusive += 1,
                    }
                    cs.last_value = value;
                    cs.last_message = Some(message);
                    if count > 0 && taken(cs) >= count {
                        cs.next_at = None;
                    } else {
                        let next = schedule(due, interval, now);
                        cs.next_at = Some(stamp(next));
                        hint.at(until(now, next));
                    }
                }
            }
        }
        self.judge_analysis(cx, req, rec).await;
        if !super::executor::is_final_analysis(&rec.phase)
            && let Some(d) = local.0
        {
            outer.at(d);
        }
    }

    /// Sets the analysis' phase from its checks' counts; on a final phase records the
    /// Event and stops what still measures.
    async fn judge_analysis(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        rec: &mut AnalysisStatus,
    ) {
        let checks = &req.analysis.checks;
        let status_of = |c: &AnalysisCheck| rec.checks.iter().find(|s| s.name == c.name);
        let mut verdict: Option<(&str, EventType, &str, String)> = None;
        for check in checks {
            let Some(cs) = status_of(check) else { continue };
            let limit = check.failure_limit.unwrap_or(0).max(0);
            if cs.failed > limit {
                verdict = Some((
                    "Failed",
                    EventType::Warning,
                    "AnalysisFailed",
                    format!(
                        "check {}: {} (failed {} > failureLimit {limit})",
                        check.name,
                        cs.last_message.as_deref().unwrap_or("failed"),
                        cs.failed
                    ),
                ));
                break;
            }
        }
        if verdict.is_none() {
            for check in checks {
                let Some(cs) = status_of(check) else { continue };
                let limit = check.inconclusive_limit.unwrap_or(0).max(0);
                if cs.inconclusive > limit {
                    verdict = Some((
                        "Inconclusive",
                        EventType::Warning,
                        "AnalysisInconclusive",
                        format!(
                            "check {}: {} (inconclusive {} > inconclusiveLimit {limit})",
                            check.name,
                            cs.last_message.as_deref().unwrap_or("inconclusive"),
                            cs.inconclusive
                        ),
                    ));
                    break;
                }
            }
        }
        if verdict.is_none() {
            let done = checks.iter().all(|check| {
                let count = count_of(check, req.name);
                count > 0 && status_of(check).is_some_and(|cs| taken(cs) >= count)
            });
            if done {
                let summary: Vec<String> = checks
                    .iter()
                    .filter_map(|check| {
                        let cs = status_of(check)?;
                        let mut s = format!(
                            "check {}: {} successful, {} failed, {} inconclusive",
                            check.name, cs.successful, cs.failed, cs.inconclusive
                        );
                        if let Some(m) = &cs.last_message {
                            s.push_str(&format!(" (last: {m})"));
                        }
                        Some(s)
                    })
                    .collect();
                let summary = if summary.is_empty() {
                    "no checks".to_string()
                } else {
                    summary.join("; ")
                };
                verdict = Some((
                    "Successful",
                    EventType::Normal,
                    "AnalysisSuccessful",
                    summary,
                ));
            }
        }
        let Some((phase, event_type, reason, message)) = verdict else {
            return;
        };
        rec.phase = phase.into();
        rec.message = Some(message.clone());
        // Stop what still measures.
        for check in checks {
            let Some(cs) = rec.checks.iter_mut().find(|s| s.name == check.name) else {
                continue;
            };
            let count = count_of(check, req.name);
            let unfinished = count == 0 || taken(cs) < count;
            if check.job.is_some() && unfinished {
                let pod =
                    job_pod_name(&cx.name, req.name, &check.name, req.pod_hash, taken(cs) + 1);
                self.delete_pod(cx, &pod).await;
            }
            cs.next_at = None;
        }
        self.forget_run(&cx.uid, &analysis_run_id(req.name, req.pod_hash));
        self.event(
            cx,
            event_type,
            reason,
            format!(
                "Analysis {} of {} {}: {message}",
                req.name,
                req.pod_hash,
                phase.to_lowercase()
            ),
        )
        .await;
    }

    async fn measure(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        check: &AnalysisCheck,
        cs: &CheckStatus,
        due: DateTime<Utc>,
        interval: Duration,
    ) -> Outcome {
        if let Some(proxy) = &check.proxy {
            self.measure_proxy(cx, req, check, proxy).await
        } else if let Some(web) = &check.web {
            self.measure_web(cx, req, check, web, cs, due, interval)
                .await
        } else if let Some(job) = &check.job {
            self.measure_job(cx, req, check, job, cs, due).await
        } else {
            measured(
                Verdict::Failed,
                None,
                "the check has no provider (proxy, web or job)",
            )
        }
    }

    async fn measure_proxy(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        check: &AnalysisCheck,
        proxy: &ProxyMetricCheck,
    ) -> Outcome {
        let Some(service) = proxy.service.as_deref().or(req.service) else {
            return measured(Verdict::Failed, None, "no Service to read proxy metrics of");
        };
        if !matches!(
            proxy.metric.as_str(),
            "errorRate" | "latencyP50" | "latencyP99"
        ) {
            return measured(
                Verdict::Failed,
                None,
                format!(
                    "unknown metric {:?} (errorRate, latencyP50 or latencyP99)",
                    proxy.metric
                ),
            );
        }
        let sample = match self.metrics.sample(&cx.namespace, service).await {
            Ok(s) => s,
            Err(e) => {
                return measured(
                    Verdict::Inconclusive,
                    None,
                    format!("proxy metrics of Service {service} unavailable: {e}"),
                );
            }
        };
        let key = RunKey {
            uid: cx.uid.clone(),
            run: analysis_run_id(req.name, req.pod_hash),
            detail: check.name.clone(),
        };
        let previous = self.memory.lock().baselines.insert(key, sample.clone());
        match previous {
            None => {
                let so_far = sample
                    .iter()
                    .find(|g| g.pod_hash == req.pod_hash)
                    .map_or(0, |g| g.requests);
                Outcome::Baseline(format!(
                    "baseline taken ({so_far} requests to {} so far)",
                    req.pod_hash
                ))
            }
            Some(prev) => judge_proxy(proxy, req.pod_hash, req.stable_hash, &prev, &sample),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn measure_web(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        check: &AnalysisCheck,
        web: &WebCheck,
        cs: &CheckStatus,
        due: DateTime<Utc>,
        interval: Duration,
    ) -> Outcome {
        let key = RunKey {
            uid: cx.uid.clone(),
            run: analysis_run_id(req.name, req.pod_hash),
            detail: format!("{}/{}", check.name, taken(cs) + 1),
        };
        let timeout = interval.clamp(Duration::from_secs(1), WEB_TIMEOUT);
        let url = if self.has_call(&key) {
            String::new()
        } else {
            match self.resolve_url(cx, &web.url).await {
                Ok(u) => u,
                Err(e) => return measured(Verdict::Failed, None, e),
            }
        };
        match self.http_call(cx, &key, "GET", &url, None, timeout).await {
            Call::Pending => {
                let now = self.now();
                let deadline = plus(due, timeout + Duration::from_secs(1));
                if now >= deadline {
                    self.abort_call(&key);
                    measured(
                        Verdict::Failed,
                        None,
                        format!("GET {}: timed out after {}s", web.url, timeout.as_secs()),
                    )
                } else {
                    Outcome::Pending(CALL_POLL.min(until(now, deadline)))
                }
            }
            Call::Done(Err(e)) => measured(Verdict::Failed, None, format!("GET {}: {e}", web.url)),
            Call::Done(Ok((code, body))) => judge_web(web, code, &body),
        }
    }

    async fn measure_job(
        &self,
        cx: &Cx<'_>,
        req: &AnalysisRequest<'_>,
        check: &AnalysisCheck,
        job: &JobCheck,
        cs: &CheckStatus,
        due: DateTime<Utc>,
    ) -> Outcome {
        let n = taken(cs) + 1;
        let name = job_pod_name(&cx.name, req.name, &check.name, req.pod_hash, n);
        let pod = match self.client.get(pods(), Some(&cx.namespace), &name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(pod = name, error = %e, "reading a job-check pod failed");
                return Outcome::Pending(POD_POLL);
            }
        };
        match pod.as_deref().and_then(pod_outcome) {
            Some(Ok(())) => {
                self.delete_pod(cx, &name).await;
                return measured(Verdict::Successful, Some("0".into()), "exit code 0");
            }
            Some(Err((exit, message, term))) => {
                self.delete_pod(cx, &name).await;
                let mut message = message;
                if let Some(t) = term {
                    message.push_str(&format!(": {}", clip(&t, 200)));
                }
                return measured(Verdict::Failed, exit.map(|c| c.to_string()), message);
            }
            None => {}
        }
        let now = self.now();
        let deadline = plus(due, JOB_TIMEOUT);
        if now >= deadline {
            if pod.is_some() {
                self.delete_pod(cx, &name).await;
            }
            return measured(
                Verdict::Failed,
                None,
                format!("timed out after {}s", JOB_TIMEOUT.as_secs()),
            );
        }
        if pod.is_none() {
            let built = build_pod(
                cx.rollout,
                &PodRun {
                    name: name.clone(),
                    container: job.container.as_deref(),
                    command: &job.command,
                    args: &job.args,
                    env: &[],
                    deadline_seconds: JOB_TIMEOUT.as_secs() as i64,
                    labels: vec![(ANALYSIS_LABEL, req.name.to_string())],
                },
            );
            let created = match built {
                Ok(p) => self.create_pod(cx, p).await,
                Err(e) => Err(PodError::Permanent(e)),
            };
            if let Err(PodError::Permanent(e)) = created {
                return measured(Verdict::Failed, None, e);
            }
        }
        Outcome::Pending(
            POD_POLL
                .min(until(now, deadline))
                .max(Duration::from_millis(1)),
        )
    }
}

/// The counters of group `hash` since `prev`; `Err` when a counter went down (the proxy
/// restarted or endpoints went away), which makes the interval unmeasurable.
pub(crate) fn group_delta(
    prev: &[GroupSample],
    cur: &[GroupSample],
    hash: &str,
) -> Result<GroupSample, ()> {
    let p = prev.iter().find(|g| g.pod_hash == hash);
    let Some(c) = cur.iter().find(|g| g.pod_hash == hash) else {
        return Ok(GroupSample {
            pod_hash: hash.to_string(),
            ..Default::default()
        });
    };
    let Some(p) = p else {
        return Ok(c.clone());
    };
    if c.requests < p.requests || c.errors < p.errors || c.latency_count < p.latency_count {
        return Err(());
    }
    let mut buckets = Vec::with_capacity(c.latency_buckets.len());
    for &(le, n) in &c.latency_buckets {
        let before = p
            .latency_buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map_or(0, |(_, n)| *n);
        if n < before {
            return Err(());
        }
        buckets.push((le, n - before));
    }
    Ok(GroupSample {
        pod_hash: hash.to_string(),
        requests: c.requests - p.requests,
        errors: c.errors - p.errors,
        latency_buckets: buckets,
        latency_count: c.latency_count - p.latency_count,
    })
}

/// The metric over a delta: how many observations it rests on and its value.
fn metric_value(metric: &str, d: &GroupSample) -> (u64, Option<f64>) {
    match metric {
        "errorRate" => (
            d.requests,
            (d.requests > 0).then(|| d.errors as f64 / d.requests as f64),
        ),
        "latencyP50" => (
            d.latency_count,
            histogram_quantile(0.5, &d.latency_buckets, d.latency_count),
        ),
        _ => (
            d.latency_count,
            histogram_quantile(0.99, &d.latency_buckets, d.latency_count),
        ),
    }
}

/// Judges a proxy check from two samples.
pub(crate) fn judge_proxy(
    proxy: &ProxyMetricCheck,
    canary: &str,
    stable: Option<&str>,
    prev: &[GroupSample],
    cur: &[GroupSample],
) -> Outcome {
    let metric = proxy.metric.as_str();
    let min = proxy.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS).max(0) as u64;
    let unit = if metric == "errorRate" {
        "requests"
    } else {
        "timed responses"
    };
    let Ok(delta) = group_delta(prev, cur, canary) else {
        return Outcome::Baseline(
            "counters went down (proxy restart or endpoints removed): new baseline".into(),
        );
    };
    let (n, value) = metric_value(metric, &delta);
    let value = match value {
        Some(v) if n >= min => v,
        _ => {
            let mut message = format!("{n} {unit} to {canary} in the interval (minRequests {min})");
            let unattributed = cur.iter().any(|g| g.pod_hash.is_empty() && g.requests > 0);
            if unattributed && !cur.iter().any(|g| g.pod_hash == canary) {
                message.push_str("; the proxy's metrics carry no pod_hash label");
            }
            return measured(Verdict::Inconclusive, None, message);
        }
    };
    let stable_value = stable
        .filter(|s| *s != canary)
        .and_then(|s| group_delta(prev, cur, s).ok())
        .map(|d| metric_value(metric, &d))
        .and_then(|(sn, sv)| sv.filter(|_| sn >= min));
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    let shown = num(value);
    if let Some(max) = proxy.max {
        if value > max {
            failures.push(format!("{metric} {shown} > max {}", num(max)));
        } else {
            passes.push(format!("{metric} {shown} <= max {}", num(max)));
        }
    }
    if let Some(ratio) = proxy.max_ratio_to_stable {
        match stable_value {
            Some(s) => {
                let limit = ratio * s;
                let text = format!("{} x stable {} = {}", num(ratio), num(s), num(limit));
                if value > limit {
                    failures.push(format!("{metric} {shown} > {text}"));
                } else {
                    passes.push(format!("{metric} {shown} <= {text}"));
                }
            }
            None if proxy.max.is_none() => {
                return measured(
                    Verdict::Inconclusive,
                    Some(shown.clone()),
                    format!(
                        "{metric} {shown}; the stable pods ({}) had too few {unit} to compare with (minRequests {min})",
                        stable.unwrap_or("none")
                    ),
                );
            }
            None => passes.push("stable too quiet to compare; judged by max only".into()),
        }
    }
    if passes.is_empty() && failures.is_empty() {
        passes.push(format!("{metric} {shown} (no threshold)"));
    }
    let context = if metric == "errorRate" {
        format!(" ({} errors of {} requests)", delta.errors, delta.requests)
    } else {
        format!(" ({} responses)", delta.latency_count)
    };
    if failures.is_empty() {
        measured(
            Verdict::Successful,
            Some(shown),
            format!("{}{context}", passes.join("; ")),
        )
    } else {
        measured(
            Verdict::Failed,
            Some(shown),
            format!("{}{context}", failures.join("; ")),
        )
    }
}

/// Reads `path` in `doc`: a JSON pointer when it starts with `/`, else a dotted path
/// (`status.items.0.ready`, `status.items[0].ready`, an optional leading `$.`).
pub fn json_lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    if path.starts_with('/') {
        return doc.pointer(path);
    }
    let path = path.strip_prefix('$').unwrap_or(path);
    let path = path.replace('[', ".").replace(']', "");
    let mut cur = doc;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Judges a web check's answer.
pub(crate) fn judge_web(web: &WebCheck, code: u16, body: &str) -> Outcome {
    if !(200..300).contains(&code) {
        return measured(
            Verdict::Failed,
            None,
            format!("GET {}: HTTP {code}: {}", web.url, clip(body, 200)),
        );
    }
    let doc: Value = match serde_json::from_str(body) {
        Ok(d) => d,
        Err(e) => {
            return measured(
                Verdict::Failed,
                None,
                format!("GET {}: not JSON: {e}", web.url),
            );
        }
    };
    let Some(value) = json_lookup(&doc, &web.json_path) else {
        return measured(
            Verdict::Failed,
            None,
            format!("GET {}: nothing at {}", web.url, web.json_path),
        );
    };
    let shown = match value {
        Value::String(s) => clip(s, 100),
        other => clip(&other.to_string(), 100),
    };
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    if let Some(expected) = &web.equals {
        if json_equal(value, expected) {
            passes.push(format!("{} == {expected}", web.json_path));
        } else {
            failures.push(format!(
                "{} = {} != {expected}",
                web.json_path,
                clip(&value.to_string(), 100)
            ));
        }
    }
    if web.min.is_some() || web.max.is_some() {
        match as_number(value) {
            None => failures.push(format!("{} = {shown} is not a number", web.json_path)),
            Some(n) => {
                if let Some(max) = web.max {
                    if n > max {
                        failures.push(format!("{} = {} > max {}", web.json_path, num(n), num(max)));
                    } else {
                        passes.push(format!(
                            "{} = {} <= max {}",
                            web.json_path,
                            num(n),
                            num(max)
                        ));
                    }
                }
                if let Some(min) = web.min {
                    if n < min {
                        failures.push(format!("{} = {} < min {}", web.json_path, num(n), num(min)));
                    } else {
                        passes.push(format!(
                            "{} = {} >= min {}",
                            web.json_path,
                            num(n),
                            num(min)
                        ));
                    }
                }
            }
        }
    }
    if failures.is_empty() {
        if passes.is_empty() {
            passes.push(format!("{} = {shown}", web.json_path));
        }
        measured(Verdict::Successful, Some(shown), passes.join("; "))
    } else {
        measured(Verdict::Failed, Some(shown), failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(hash: &str, requests: u64, errors: u64) -> GroupSample {
        GroupSample {
            pod_hash: hash.into(),
            requests,
            errors,
            ..Default::default()
        }
    }

    #[test]
    fn deltas_and_resets() {
        let prev = vec![group("a", 100, 5)];
        let cur = vec![group("a", 150, 6), group("b", 7, 0)];
        let d = group_delta(&prev, &cur, "a").unwrap();
        assert_eq!((d.requests, d.errors), (50, 1));
        let d = group_delta(&prev, &cur, "b").unwrap();
        assert_eq!((d.requests, d.errors), (7, 0));
        let d = group_delta(&prev, &cur, "c").unwrap();
        assert_eq!(d.requests, 0);
        assert!(group_delta(&cur, &prev, "a").is_err());
    }

    #[test]
    fn dotted_paths_and_pointers() {
        let doc = json!({"status": {"healthy": true, "items": [{"n": 1}, {"n": 2}]}});
        assert_eq!(json_lookup(&doc, "/status/healthy"), Some(&json!(true)));
        assert_eq!(json_lookup(&doc, "status.healthy"), Some(&json!(true)));
        assert_eq!(json_lookup(&doc, "$.status.items[1].n"), Some(&json!(2)));
        assert_eq!(json_lookup(&doc, "status.items.0.n"), Some(&json!(1)));
        assert_eq!(json_lookup(&doc, "status.missing"), None);
        assert_eq!(json_lookup(&doc, ""), Some(&doc));
    }

    #[test]
    fn web_conditions_all_hold() {
        let web = WebCheck {
            url: "http://x/".into(),
            json_path: "load".into(),
            min: Some(0.1),
            max: Some(0.8),
            ..Default::default()
        };
        assert!(matches!(
            judge_web(&web, 200, r#"{"load": 0.5}"#),
            Outcome::Measured(Verdict::Successful, ..)
        ));
        assert!(matches!(
            judge_web(&web, 200, r#"{"load": 0.9}"#),
            Outcome::Measured(Verdict::Failed, ..)
        ));
        assert!(matches!(
            judge_web(&web, 200, r#"{"load": "0.05"}"#),
            Outcome::Measured(Verdict::Failed, ..)
        ));
        assert!(matches!(
            judge_web(&web, 200, r#"{"load": "high"}"#),
            Outcome::Measured(Verdict::Failed, ..)
        ));
        assert!(matches!(
            judge_web(&web, 500, r#"{"load": 0.5}"#),
            Outcome::Measured(Verdict::Failed, ..)
        ));
        assert!(matches!(
            judge_web(&web, 200, "not json"),
            Outcome::Measured(Verdict::Failed, ..)
        ));
        let eq = WebCheck {
            url: "http://x/".into(),
            json_path: "/v".into(),
            equals: Some(json!(1)),
            ..Default::default()
        };
        assert!(matches!(
            judge_web(&eq, 200, r#"{"v": 1.0}"#),
            Outcome::Measured(Verdict::Successful, ..)
        ));
    }

    #[test]
    fn intervals_and_counts() {
        let mut c = AnalysisCheck::default();
        assert_eq!(interval_of(&c), Duration::from_secs(10));
        c.interval = Some("0".into());
        assert_eq!(interval_of(&c), MIN_INTERVAL);
        c.interval = Some("bogus".into());
        assert_eq!(interval_of(&c), Duration::from_secs(10));
        assert_eq!(count_of(&c, "step-1"), 1);
        assert_eq!(count_of(&c, "background"), 0);
    }
}
