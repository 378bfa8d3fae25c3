//! Hook runs: one pod (`exec`) or one HTTP call (`http`) per attempt, retried with
//! back-off under `failurePolicy: Retry`.

use super::HookKey;
use super::executor::{
    CALL_POLL, CANCELLED, Call, Cx, Hint, POD_POLL, PodError, RunExecutor, RunKey, hook_run_id,
    pod_outcome, pods, tail_lines,
};
use super::podspec::{HOOK_LABEL, PodRun, build_pod, hook_pod_name};
use super::util::{clip, parse_stamp, plus, stamp, until};
use crate::EventType;
use slipway_client::Client;
use slipway_rollout::{Hook, HookStatus, RolloutStatus};
use std::time::Duration;

/// Default `timeoutSeconds`.
const DEFAULT_TIMEOUT: i64 = 300;
/// Default `retry.limit`.
const DEFAULT_RETRY_LIMIT: i32 = 3;
/// Default `retry.backoffSeconds`.
const DEFAULT_BACKOFF: i64 = 5;
/// Lines of output kept in `logTail`.
const LOG_LINES: usize = 20;
/// Characters of output kept in `logTail` (the status stays small with long lines).
const LOG_CHARS: usize = 4000;
/// How long past its timeout an HTTP call may take before it is abandoned (the probe
/// enforces the timeout itself; this only guards against a probe that does not).
const CALL_GRACE: Duration = Duration::from_secs(1);

fn timeout_of(hook: &Hook) -> Duration {
    let secs = hook
        .timeout_seconds
        .map(i64::from)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(1);
    Duration::from_secs(secs as u64)
}

/// `Abort`, `Retry` or `Ignore` (case-insensitive; anything else is `Abort`).
fn policy_of(hook: &Hook) -> &'static str {
    match hook
        .failure_policy
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("retry") => "Retry",
        Some("ignore") => "Ignore",
        _ => "Abort",
    }
}

/// The back-off after failed attempt `attempt` (1-based): `backoffSeconds * 2^(attempt-1)`.
pub(crate) fn backoff(hook: &Hook, attempt: i32) -> Duration {
    let base = hook
        .retry
        .as_ref()
        .and_then(|r| r.backoff_seconds)
        .map(i64::from)
        .unwrap_or(DEFAULT_BACKOFF)
        .max(0) as u64;
    let exp = (attempt.max(1) - 1).min(20) as u32;
    Duration::from_secs(base.saturating_mul(1u64 << exp).min(86_400))
}

fn retry_limit(hook: &Hook) -> i32 {
    hook.retry
        .as_ref()
        .and_then(|r| r.limit)
        .unwrap_or(DEFAULT_RETRY_LIMIT)
        .max(0)
}

fn describe(key: &HookKey) -> String {
    if key.name == key.kind {
        format!("hook {}", key.name)
    } else {
        format!("hook {} ({})", key.name, key.kind)
    }
}

impl<C: Client> RunExecutor<C> {
    pub(crate) async fn advance_hook(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        hook: &Hook,
        status: &mut RolloutStatus,
        hint: &mut Hint,
    ) {
        let idx =
            match status.hooks.iter().position(|h| {
                h.name == key.name && h.kind == key.kind && h.pod_hash == key.pod_hash
            }) {
                Some(i) => i,
                None => {
                    status.hooks.push(HookStatus {
                        name: key.name.clone(),
                        kind: key.kind.clone(),
                        pod_hash: key.pod_hash.clone(),
                        phase: "Waiting".into(),
                        attempts: 0,
                        ..Default::default()
                    });
                    status.hooks.len() - 1
                }
            };
        let rec = &mut status.hooks[idx];
        match rec.phase.as_str() {
            "Succeeded" | "Failed" | "Ignored" => {}
            "Running" => self.observe_hook(cx, key, hook, rec, hint).await,
            _ => {
                let now = self.now();
                if let Some(due) = rec.next_attempt_at.as_deref().and_then(parse_stamp)
                    && due > now
                {
                    hint.at(until(now, due));
                    return;
                }
                self.start_attempt(cx, key, hook, rec, hint).await;
            }
        }
    }

    fn hook_pod(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        hook: &Hook,
        attempt: i32,
    ) -> Result<serde_json::Value, String> {
        let exec = hook.exec.as_ref().ok_or("not an exec hook")?;
        if exec.command.is_empty() {
            return Err("the exec hook has no command".into());
        }
        build_pod(
            cx.rollout,
            &PodRun {
                name: hook_pod_name(&cx.name, &key.kind, &key.name, &key.pod_hash, attempt),
                container: exec.container.as_deref(),
                command: &exec.command,
                args: &exec.args,
                env: &exec.env,
                deadline_seconds: timeout_of(hook).as_secs() as i64,
                labels: vec![(HOOK_LABEL, key.kind.clone())],
            },
        )
    }

    async fn start_attempt(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        hook: &Hook,
        rec: &mut HookStatus,
        hint: &mut Hint,
    ) {
        let now = self.now();
        let attempt = rec.attempts + 1;
        let what = describe(key);
        if hook.exec.is_some() {
            let pod_name = hook_pod_name(&cx.name, &key.kind, &key.name, &key.pod_hash, attempt);
            let created = match self.hook_pod(cx, key, hook, attempt) {
                Ok(pod) => self.create_pod(cx, pod).await,
                Err(e) => Err(PodError::Permanent(e)),
            };
            match created {
                Ok(()) => {
                    begin(rec, attempt, now, Some(pod_name.clone()));
                    self.event(
                        cx,
                        EventType::Normal,
                        "HookStarted",
                        format!("Started {what}, attempt {attempt}: pod {pod_name}"),
                    )
                    .await;
                    hint.at(POD_POLL);
                }
                Err(PodError::Transient(e)) => {
                    rec.phase = "Waiting".into();
                    rec.message = Some(e);
                    rec.next_attempt_at = Some(stamp(plus(now, POD_POLL)));
                    hint.at(POD_POLL);
                }
                Err(PodError::Permanent(e)) => {
                    begin(rec, attempt, now, Some(pod_name));
                    self.fail_attempt(cx, key, hook, rec, e, None, hint).await;
                }
            }
        } else if let Some(http) = &hook.http {
            begin(rec, attempt, now, None);
            let method = http.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
            self.event(
                cx,
                EventType::Normal,
                "HookStarted",
                format!("Started {what}, attempt {attempt}: {method} {}", http.url),
            )
            .await;
            self.observe_hook(cx, key, hook, rec, hint).await;
        } else {
            begin(rec, attempt, now, None);
            self.fail_attempt(
                cx,
                key,
                hook,
                rec,
                "the hook has neither exec nor http".into(),
                None,
                hint,
            )
            .await;
        }
    }

    async fn observe_hook(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        hook: &Hook,
        rec: &mut HookStatus,
        hint: &mut Hint,
    ) {
        let mut now = self.now();
        if rec.message.as_deref() == Some(CANCELLED) {
            // Requested again after a cancellation: the attempt starts over.
            rec.message = None;
            rec.started_at = Some(stamp(now));
        }
        let timeout = timeout_of(hook);
        let started = rec
            .started_at
            .as_deref()
            .and_then(parse_stamp)
            .unwrap_or(now);
        let deadline = plus(started, timeout);
        let timed_out = format!("timed out after {}s", timeout.as_secs());
        if let Some(http) = &hook.http {
            let call_key = RunKey {
                uid: cx.uid.clone(),
                run: hook_run_id(key),
                detail: rec.attempts.to_string(),
            };
            let method = http.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
            let url = if self.has_call(&call_key) {
                String::new()
            } else if now >= deadline {
                // Re-sent after a restart, too late.
                self.fail_attempt(cx, key, hook, rec, timed_out, None, hint)
                    .await;
                return;
            } else {
                match self.resolve_url(cx, &http.url).await {
                    Ok(url) => url,
                    Err(e) => {
                        self.fail_attempt(cx, key, hook, rec, e, None, hint).await;
                        return;
                    }
                }
            };
            let remaining = until(now, deadline).max(Duration::from_millis(1));
            match self
                .http_call(cx, &call_key, &method, &url, http.body.clone(), remaining)
                .await
            {
                Call::Done(Ok((code, body))) => {
                    let ok = match http.expected_status {
                        Some(expected) => i32::from(code) == expected,
                        None => (200..300).contains(&code),
                    };
                    if ok {
                        rec.log_tail = Some(tail_lines(&clip(&body, 4000), LOG_LINES))
                            .filter(|s| !s.is_empty());
                        self.succeed(cx, key, rec, None, format!("HTTP {code}"))
                            .await;
                    } else {
                        let expected = http
                            .expected_status
                            .map_or("2xx".to_string(), |e| e.to_string());
                        let mut reason = format!("HTTP {code}, expected {expected}");
                        if !body.trim().is_empty() {
                            reason.push_str(&format!(": {}", clip(&body, 200)));
                        }
                        self.fail_attempt(cx, key, hook, rec, reason, None, hint)
                            .await;
                    }
                }
                Call::Done(Err(e)) => self.fail_attempt(cx, key, hook, rec, e, None, hint).await,
                Call::Pending => {
                    now = self.now();
                    if now >= plus(deadline, CALL_GRACE) {
                        self.abort_call(&call_key);
                        self.fail_attempt(cx, key, hook, rec, timed_out, None, hint)
                            .await;
                    } else {
                        hint.at(CALL_POLL.min(until(now, plus(deadline, CALL_GRACE))));
                    }
                }
            }
            return;
        }
        // An exec hook.
        let pod_name = rec.pod_name.clone().unwrap_or_else(|| {
            hook_pod_name(&cx.name, &key.kind, &key.name, &key.pod_hash, rec.attempts)
        });
        rec.pod_name = Some(pod_name.clone());
        let pod = match self
            .client
            .get(pods(), Some(&cx.namespace), &pod_name)
            .await
        {
            Ok(pod) => pod,
            Err(e) => {
                tracing::debug!(pod = pod_name, error = %e, "reading a hook pod failed");
                hint.at(POD_POLL);
                return;
            }
        };
        match pod.as_deref().and_then(pod_outcome) {
            Some(Ok(())) => {
                rec.log_tail = self.output_of(cx, pod.as_deref(), None).await;
                self.succeed(cx, key, rec, Some(0), "exit code 0".into())
                    .await;
                return;
            }
            Some(Err((exit, mut message, term))) => {
                if pod
                    .as_deref()
                    .and_then(|p| p.pointer("/status/reason"))
                    .and_then(|r| r.as_str())
                    == Some("DeadlineExceeded")
                {
                    message = timed_out;
                }
                rec.log_tail = self.output_of(cx, pod.as_deref(), term).await;
                self.fail_attempt(cx, key, hook, rec, message, exit, hint)
                    .await;
                return;
            }
            None => {}
        }
        if now >= deadline {
            if pod.is_some() {
                // What it printed until now says where it hung.
                rec.log_tail = self.output_of(cx, pod.as_deref(), None).await;
                self.delete_pod(cx, &pod_name).await;
            }
            self.fail_attempt(cx, key, hook, rec, timed_out, None, hint)
                .await;
            return;
        }
        if pod.is_none() {
            // Deleted under us (or after a cancellation): the attempt goes on with a new pod.
            let created = match self.hook_pod(cx, key, hook, rec.attempts) {
                Ok(p) => self.create_pod(cx, p).await,
                Err(e) => Err(PodError::Permanent(e)),
            };
            if let Err(PodError::Permanent(e)) = created {
                self.fail_attempt(cx, key, hook, rec, e, None, hint).await;
                return;
            }
        }
        now = self.now();
        hint.at(POD_POLL
            .min(until(now, deadline))
            .max(Duration::from_millis(1)));
    }

    /// The last [`LOG_LINES`] lines the hook pod's container printed (at most
    /// [`LOG_CHARS`] characters, the end kept), else `fallback` (its termination message).
    /// A log that cannot be read is not an error of the hook: the fallback is used.
    async fn output_of(
        &self,
        cx: &Cx<'_>,
        pod: Option<&serde_json::Value>,
        fallback: Option<String>,
    ) -> Option<String> {
        let fallback = fallback
            .map(|t| tail_lines(&t, LOG_LINES))
            .filter(|t| !t.is_empty());
        let (Some(pod), Some(container)) = (
            pod,
            pod.and_then(|p| p.pointer("/spec/containers/0/name"))
                .and_then(|n| n.as_str()),
        ) else {
            return fallback;
        };
        let name = slipway_core::meta::name(pod);
        match self
            .client
            .pod_log(&cx.namespace, name, container, LOG_LINES)
            .await
        {
            Ok(log) if !log.trim().is_empty() => Some(keep_end(&tail_lines(&log, LOG_LINES))),
            Ok(_) => fallback,
            Err(e) => {
                tracing::debug!(pod = name, error = %e, "reading a hook pod's log failed");
                fallback
            }
        }
    }

    async fn succeed(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        rec: &mut HookStatus,
        exit: Option<i32>,
        message: String,
    ) {
        rec.phase = "Succeeded".into();
        rec.exit_code = exit;
        rec.finished_at = Some(stamp(self.now()));
        rec.next_attempt_at = None;
        rec.message = Some(message.clone());
        self.event(
            cx,
            EventType::Normal,
            "HookSucceeded",
            format!(
                "{} succeeded on attempt {}: {message}",
                capital(&describe(key)),
                rec.attempts
            ),
        )
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn fail_attempt(
        &self,
        cx: &Cx<'_>,
        key: &HookKey,
        hook: &Hook,
        rec: &mut HookStatus,
        reason: String,
        exit: Option<i32>,
        hint: &mut Hint,
    ) {
        let now = self.now();
        let what = capital(&describe(key));
        let attempt = rec.attempts;
        rec.exit_code = exit;
        rec.message = Some(reason.clone());
        // The Events carry the last line the hook printed, where the cause usually is.
        let reason = match last_output_line(rec) {
            Some(line) => format!("{reason} (last output: {line})"),
            None => reason,
        };
        match policy_of(hook) {
            "Retry" if attempt <= retry_limit(hook) => {
                let wait = backoff(hook, attempt);
                rec.phase = "Waiting".into();
                rec.next_attempt_at = Some(stamp(plus(now, wait)));
                hint.at(wait);
                self.event(
                    cx,
                    EventType::Warning,
                    "HookRetrying",
                    format!(
                        "{what} attempt {attempt} failed: {reason}; retrying in {}s (attempt {} of {})",
                        wait.as_secs(),
                        attempt + 1,
                        retry_limit(hook) + 1
                    ),
                )
                .await;
            }
            "Ignore" => {
                rec.phase = "Ignored".into();
                rec.finished_at = Some(stamp(now));
                rec.next_attempt_at = None;
                self.event(
                    cx,
                    EventType::Warning,
                    "HookIgnored",
                    format!("{what} failed on attempt {attempt}: {reason}; ignored (failurePolicy Ignore)"),
                )
                .await;
            }
            policy => {
                rec.phase = "Failed".into();
                rec.finished_at = Some(stamp(now));
                rec.next_attempt_at = None;
                let tail = if policy == "Retry" {
                    format!(" (retries exhausted after {attempt} attempts)")
                } else {
                    String::new()
                };
                self.event(
                    cx,
                    EventType::Warning,
                    "HookFailed",
                    format!("{what} failed on attempt {attempt}: {reason}{tail}"),
                )
                .await;
            }
        }
    }
}

/// The last non-empty line of an exec hook's output, at most 200 characters.
fn last_output_line(rec: &HookStatus) -> Option<String> {
    rec.pod_name.as_ref()?;
    let line = rec
        .log_tail
        .as_deref()?
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())?;
    Some(clip(line, 200))
}

/// `s` cut to its last [`LOG_CHARS`] characters (on a character boundary), marked with a
/// leading `...` when cut.
fn keep_end(s: &str) -> String {
    let count = s.chars().count();
    if count <= LOG_CHARS {
        return s.to_string();
    }
    let start = s
        .char_indices()
        .nth(count - LOG_CHARS)
        .map_or(0, |(i, _)| i);
    format!("...{}", &s[start..])
}

/// Marks `rec` running attempt `attempt` from `now`.
fn begin(
    rec: &mut HookStatus,
    attempt: i32,
    now: chrono::DateTime<chrono::Utc>,
    pod: Option<String>,
) {
    rec.attempts = attempt;
    rec.phase = "Running".into();
    rec.started_at = Some(stamp(now));
    rec.finished_at = None;
    rec.pod_name = pod;
    rec.exit_code = None;
    rec.message = None;
    rec.log_tail = None;
    rec.next_attempt_at = None;
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_rollout::HookRetry;

    #[test]
    fn backoff_doubles() {
        let hook = Hook {
            retry: Some(HookRetry {
                limit: Some(3),
                backoff_seconds: Some(2),
            }),
            ..Default::default()
        };
        assert_eq!(backoff(&hook, 1), Duration::from_secs(2));
        assert_eq!(backoff(&hook, 2), Duration::from_secs(4));
        assert_eq!(backoff(&hook, 3), Duration::from_secs(8));
        assert_eq!(backoff(&Hook::default(), 1), Duration::from_secs(5));
        assert_eq!(backoff(&hook, 1000), Duration::from_secs(86_400));
        assert_eq!(retry_limit(&Hook::default()), 3);
        assert_eq!(policy_of(&Hook::default()), "Abort");
    }

    #[test]
    fn keep_end_keeps_the_last_characters() {
        assert_eq!(keep_end("short"), "short");
        let long = format!("{}é{}", "a".repeat(LOG_CHARS), "b".repeat(9));
        let kept = keep_end(&long);
        assert!(kept.starts_with("..."), "{kept}");
        assert!(kept.ends_with(&"b".repeat(9)));
        assert_eq!(kept.chars().count(), LOG_CHARS + 3);
    }
}
