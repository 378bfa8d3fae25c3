//! [`RunExecutor`]: the shared machinery (context, in-memory state, HTTP calls, pods,
//! events, cancellation). Hooks are in `hooks.rs`, analyses in `analysis.rs`.

use super::http::{HttpProbe, Target, classify, parse_url};
use super::metrics::{GroupSample, TrafficMetrics};
use super::podspec::{ROLLOUT_LABEL, job_pod_name, namespace_of};
use super::{HookKey, RunRequest};
use crate::events;
use crate::runtime::Clock;
use crate::{Event, EventType};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, DeleteParams};
use slipway_core::{ResourceInfo, resources};
use slipway_rollout::{Rollout, RolloutStatus};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The component Events are reported by.
pub(crate) const COMPONENT: &str = "rollout-controller";
/// The poll period while a pod runs.
pub(crate) const POD_POLL: Duration = Duration::from_secs(1);
/// The poll period while an HTTP call is in flight.
pub(crate) const CALL_POLL: Duration = Duration::from_millis(100);
/// How long one `advance` waits, in total, for HTTP answers before returning (most answer
/// in a few milliseconds, so a result is usually recorded in the call that started it).
const INLINE_WAIT: Duration = Duration::from_millis(50);
/// Marker message of a run cancelled while running.
pub(crate) const CANCELLED: &str = "cancelled";

pub(crate) type CallResult = Result<(u16, String), String>;

/// Identifies in-memory state of one run: the Rollout's UID, the run (`hook/<kind>/<name>/
/// <hash>` or `analysis/<name>/<hash>`) and a detail (attempt, check, measurement).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RunKey {
    pub uid: String,
    pub run: String,
    pub detail: String,
}

#[derive(Default)]
pub(crate) struct Memory {
    /// HTTP calls still in flight.
    pub calls: HashMap<RunKey, tokio::task::JoinHandle<CallResult>>,
    /// Proxy checks: the previous sample of every group.
    pub baselines: HashMap<RunKey, Vec<GroupSample>>,
}

impl Drop for Memory {
    fn drop(&mut self) {
        for (_, h) in self.calls.drain() {
            h.abort();
        }
    }
}

/// Starts, observes and cancels a Rollout's hooks and analyses (see the module docs).
pub struct RunExecutor<C: Client> {
    pub(crate) client: C,
    pub(crate) clock: Clock,
    pub(crate) metrics: Arc<dyn TrafficMetrics>,
    pub(crate) http: Arc<dyn HttpProbe>,
    pub(crate) memory: Arc<Mutex<Memory>>,
}

impl<C: Client> Clone for RunExecutor<C> {
    fn clone(&self) -> Self {
        RunExecutor {
            client: self.client.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            http: self.http.clone(),
            memory: self.memory.clone(),
        }
    }
}

/// The earliest time the executor needs to be called again.
#[derive(Default)]
pub(crate) struct Hint(pub Option<Duration>);

impl Hint {
    pub fn at(&mut self, d: Duration) {
        self.0 = Some(self.0.map_or(d, |h| h.min(d)));
    }
}

/// What one `advance` works on.
pub(crate) struct Cx<'a> {
    pub rollout: &'a Rollout,
    /// The Rollout as JSON, for Events.
    pub object: Value,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Until when HTTP answers are awaited inline.
    pub wait_until: Instant,
}

/// The result of an HTTP call, if there is one yet.
pub(crate) enum Call {
    Done(CallResult),
    Pending,
}

/// Why a pod could not be created.
pub(crate) enum PodError {
    /// Try again shortly (the API was unavailable).
    Transient(String),
    /// Counts as a failed attempt / measurement.
    Permanent(String),
}

pub(crate) fn pods() -> &'static ResourceInfo {
    resources::lookup("", "v1", "pods").expect("pods are served")
}

fn services() -> &'static ResourceInfo {
    resources::lookup("", "v1", "services").expect("services are served")
}

pub(crate) fn hook_run_id(key: &HookKey) -> String {
    format!("hook/{}/{}/{}", key.kind, key.name, key.pod_hash)
}

pub(crate) fn analysis_run_id(name: &str, pod_hash: &str) -> String {
    format!("analysis/{name}/{pod_hash}")
}

pub(crate) fn is_final_hook(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Ignored")
}

pub(crate) fn is_final_analysis(phase: &str) -> bool {
    matches!(phase, "Successful" | "Failed" | "Inconclusive")
}

impl<C: Client> RunExecutor<C> {
    pub fn new(
        client: C,
        clock: Clock,
        metrics: Arc<dyn TrafficMetrics>,
        http: Arc<dyn HttpProbe>,
    ) -> Self {
        RunExecutor {
            client,
            clock,
            metrics,
            http,
            memory: Arc::default(),
        }
    }

    /// Starts, observes and cancels runs; updates `status.hooks` / `status.analysis`
    /// records in place. Returns when it next needs to be called (a requeue hint), if any:
    /// the earliest next measurement, retry, or pod / HTTP poll.
    pub async fn advance(
        &self,
        rollout: &Rollout,
        requests: &[RunRequest],
        status: &mut RolloutStatus,
    ) -> Option<Duration> {
        let mut object = serde_json::to_value(rollout).unwrap_or(Value::Null);
        if let Some(obj) = object.as_object_mut() {
            obj.insert("apiVersion".into(), slipway_rollout::API_VERSION.into());
            obj.insert("kind".into(), slipway_rollout::KIND.into());
        }
        let cx = Cx {
            rollout,
            object,
            namespace: namespace_of(rollout).to_string(),
            name: rollout.metadata.name.clone().unwrap_or_default(),
            uid: rollout.metadata.uid.clone().unwrap_or_default(),
            wait_until: Instant::now() + INLINE_WAIT,
        };
        let mut hint = Hint::default();
        self.cancel_unrequested(&cx, requests, status).await;
        for request in requests {
            match request {
                RunRequest::Hook { key, hook } => {
                    self.advance_hook(&cx, key, hook, status, &mut hint).await;
                }
                RunRequest::Analysis {
                    name,
                    pod_hash,
                    stable_hash,
                    service,
                    analysis,
                } => {
                    let req = super::analysis::AnalysisRequest {
                        name,
                        pod_hash,
                        stable_hash: stable_hash.as_deref(),
                        service: service.as_deref(),
                        analysis,
                    };
                    self.advance_analysis(&cx, &req, status, &mut hint).await;
                }
            }
        }
        self.forget_inactive(&cx, requests, status);
        hint.0
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub(crate) async fn event(
        &self,
        cx: &Cx<'_>,
        event_type: EventType,
        reason: &str,
        message: String,
    ) {
        let event = match event_type {
            EventType::Normal => Event::normal(reason, message),
            EventType::Warning => Event::warning(reason, message),
        };
        events::record(&self.client, &cx.object, &event, COMPONENT, self.now()).await;
    }

    /// Resolves a hook's or web check's URL to a loopback URL: loopback literals and
    /// `localhost` as they are, Service names to the Service's ClusterIP. Anything else is
    /// refused.
    pub(crate) async fn resolve_url(&self, cx: &Cx<'_>, url: &str) -> Result<String, String> {
        let parsed = parse_url(url)?;
        match classify(&parsed.host, &cx.namespace)? {
            Target::Loopback => Ok(parsed.with_host(&parsed.host)),
            Target::Service { namespace, name } => {
                let svc = self
                    .client
                    .get(services(), Some(&namespace), &name)
                    .await
                    .map_err(|e| format!("looking up Service {namespace}/{name}: {e}"))?
                    .ok_or_else(|| format!("Service {namespace}/{name} not found"))?;
                let ip = svc
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match ip.parse::<std::net::Ipv4Addr>() {
                    Ok(addr) if addr.is_loopback() => Ok(parsed.with_host(ip)),
                    _ => Err(format!(
                        "Service {namespace}/{name} has no loopback ClusterIP ({ip:?})"
                    )),
                }
            }
        }
    }

    pub(crate) fn has_call(&self, key: &RunKey) -> bool {
        self.memory.lock().calls.contains_key(key)
    }

    pub(crate) fn abort_call(&self, key: &RunKey) {
        if let Some(h) = self.memory.lock().calls.remove(key) {
            h.abort();
        }
    }

    /// Polls the call `key`, starting it (`method url`) when none is in flight. Waits for
    /// the answer until `cx.wait_until`; a call not answered by then goes on in the
    /// background and is polled again by the next `advance`.
    pub(crate) async fn http_call(
        &self,
        cx: &Cx<'_>,
        key: &RunKey,
        method: &str,
        url: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Call {
        let wait = cx.wait_until.saturating_duration_since(Instant::now());
        let existing = self.memory.lock().calls.remove(key);
        match existing {
            Some(mut handle) => match tokio::time::timeout(wait, &mut handle).await {
                Ok(joined) => {
                    Call::Done(joined.unwrap_or_else(|e| Err(format!("call failed: {e}"))))
                }
                Err(_) => {
                    self.memory.lock().calls.insert(key.clone(), handle);
                    Call::Pending
                }
            },
            None => {
                let mut fut: BoxFuture<'static, CallResult> =
                    self.http.call(method, url, body, timeout);
                match tokio::time::timeout(wait, &mut fut).await {
                    Ok(result) => Call::Done(result),
                    Err(_) => {
                        let handle = tokio::spawn(fut);
                        self.memory.lock().calls.insert(key.clone(), handle);
                        Call::Pending
                    }
                }
            }
        }
    }

    /// Creates `pod`; a pod of that name that already belongs to this Rollout is adopted
    /// while it runs (a crash between its creation and the status write). One that has
    /// already finished is the pod of an earlier run of the same name (the records were
    /// reset by `retry`, which numbers attempts from 1 again): it is deleted and the pod is
    /// created anew, rather than its old result being taken for this run's.
    pub(crate) async fn create_pod(&self, cx: &Cx<'_>, pod: Value) -> Result<(), PodError> {
        let name = slipway_core::meta::name(&pod).to_string();
        match self.client.create(pods(), pod).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => {
                match self.client.get(pods(), Some(&cx.namespace), &name).await {
                    Ok(Some(existing)) => {
                        let labels = slipway_core::meta::labels(&existing);
                        let ours = labels.get(ROLLOUT_LABEL).map(String::as_str)
                            == Some(super::util::label_value(&cx.name).as_str());
                        let deleting = existing
                            .pointer("/metadata/deletionTimestamp")
                            .is_some_and(|t| !t.is_null());
                        if ours && (deleting || pod_outcome(&existing).is_some()) {
                            if !deleting {
                                self.delete_pod(cx, &name).await;
                            }
                            Err(PodError::Transient(format!(
                                "pod {name} of an earlier run is being replaced"
                            )))
                        } else if ours {
                            Ok(())
                        } else {
                            Err(PodError::Permanent(format!(
                                "pod {name} exists and does not belong to Rollout {}",
                                cx.name
                            )))
                        }
                    }
                    // Gone again in between: create it next time.
                    Ok(None) => Err(PodError::Transient(format!("pod {name} is being replaced"))),
                    Err(e) => Err(PodError::Transient(format!("reading pod {name}: {e}"))),
                }
            }
            Err(e) if e.code >= 500 || e.code == 429 => {
                Err(PodError::Transient(format!("creating pod {name}: {e}")))
            }
            Err(e) => Err(PodError::Permanent(format!("creating pod {name}: {e}"))),
        }
    }

    /// Deletes a pod at once; `true` when it is gone or going.
    pub(crate) async fn delete_pod(&self, cx: &Cx<'_>, name: &str) -> bool {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match self
            .client
            .delete(pods(), Some(&cx.namespace), name, params)
            .await
        {
            Ok(_) => true,
            Err(e) if e.code == 404 => true,
            Err(e) => {
                tracing::debug!(pod = name, error = %e, "deleting a rollout run pod failed");
                false
            }
        }
    }

    /// Cancels the runs that are running but no longer requested: deletes their pods,
    /// aborts their calls and forgets their baselines; their records stay, marked
    /// `cancelled`.
    async fn cancel_unrequested(
        &self,
        cx: &Cx<'_>,
        requests: &[RunRequest],
        status: &mut RolloutStatus,
    ) {
        let mut hooks = HashSet::new();
        let mut analyses = HashSet::new();
        for r in requests {
            match r {
                RunRequest::Hook { key, .. } => {
                    hooks.insert(hook_run_id(key));
                }
                RunRequest::Analysis { name, pod_hash, .. } => {
                    analyses.insert(analysis_run_id(name, pod_hash));
                }
            }
        }
        for rec in status.hooks.iter_mut() {
            let key = HookKey {
                kind: rec.kind.clone(),
                name: rec.name.clone(),
                pod_hash: rec.pod_hash.clone(),
            };
            let id = hook_run_id(&key);
            if rec.phase != "Running"
                || rec.message.as_deref() == Some(CANCELLED)
                || hooks.contains(&id)
            {
                continue;
            }
            if let Some(pod) = rec.pod_name.clone()
                && !self.delete_pod(cx, &pod).await
            {
                continue;
            }
            self.forget_run(&cx.uid, &id);
            rec.message = Some(CANCELLED.into());
        }
        for rec in status.analysis.iter_mut() {
            let id = analysis_run_id(&rec.name, &rec.pod_hash);
            if rec.phase != "Running"
                || rec.message.as_deref() == Some(CANCELLED)
                || analyses.contains(&id)
            {
                continue;
            }
            // The spec of the analysis is not at hand: a job measurement may be running
            // for any check.
            let mut all_gone = true;
            for cs in &rec.checks {
                let n = cs.successful + cs.failed + cs.inconclusive + 1;
                let pod = job_pod_name(&cx.name, &rec.name, &cs.name, &rec.pod_hash, n);
                all_gone &= self.delete_pod(cx, &pod).await;
            }
            if !all_gone {
                continue;
            }
            self.forget_run(&cx.uid, &id);
            rec.message = Some(CANCELLED.into());
            for cs in rec.checks.iter_mut() {
                cs.next_at = None;
            }
        }
    }

    /// Drops the in-memory state of one run.
    pub(crate) fn forget_run(&self, uid: &str, run: &str) {
        let mut memory = self.memory.lock();
        memory.calls.retain(|k, h| {
            let keep = !(k.uid == uid && k.run == run);
            if !keep {
                h.abort();
            }
            keep
        });
        memory
            .baselines
            .retain(|k, _| !(k.uid == uid && k.run == run));
    }

    /// Drops the in-memory state of this Rollout's runs that are not requested or final.
    fn forget_inactive(&self, cx: &Cx<'_>, requests: &[RunRequest], status: &RolloutStatus) {
        let mut active = HashSet::new();
        for r in requests {
            match r {
                RunRequest::Hook { key, .. } => {
                    let running = status.hooks.iter().any(|h| {
                        h.kind == key.kind
                            && h.name == key.name
                            && h.pod_hash == key.pod_hash
                            && !is_final_hook(&h.phase)
                    });
                    if running {
                        active.insert(hook_run_id(key));
                    }
                }
                RunRequest::Analysis { name, pod_hash, .. } => {
                    let running = status.analysis.iter().any(|a| {
                        &a.name == name && &a.pod_hash == pod_hash && !is_final_analysis(&a.phase)
                    });
                    if running {
                        active.insert(analysis_run_id(name, pod_hash));
                    }
                }
            }
        }
        let mut memory = self.memory.lock();
        memory.calls.retain(|k, h| {
            let keep = k.uid != cx.uid || active.contains(&k.run);
            if !keep {
                h.abort();
            }
            keep
        });
        memory
            .baselines
            .retain(|k, _| k.uid != cx.uid || active.contains(&k.run));
    }
}

/// How a finished pod ended: `Some(Ok(()))` succeeded, `Some(Err((exit code, message,
/// termination message)))` failed, `None` still running.
pub(crate) type PodOutcome = Option<Result<(), (Option<i32>, String, Option<String>)>>;

/// Reads a one-shot pod's outcome.
pub(crate) fn pod_outcome(pod: &Value) -> PodOutcome {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    match phase {
        "Succeeded" => Some(Ok(())),
        "Failed" => {
            let statuses = pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let terminated = statuses.and_then(|s| s.first()).and_then(|c| {
                c.pointer("/state/terminated")
                    .or_else(|| c.pointer("/lastState/terminated"))
            });
            let exit = terminated
                .and_then(|t| t.get("exitCode"))
                .and_then(Value::as_i64)
                .map(|c| c as i32);
            let reason = terminated
                .and_then(|t| t.get("reason"))
                .and_then(Value::as_str)
                .or_else(|| pod.pointer("/status/reason").and_then(Value::as_str))
                .unwrap_or("");
            let term_message = terminated
                .and_then(|t| t.get("message"))
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string);
            let pod_message = pod
                .pointer("/status/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut message = match exit {
                Some(c) => format!("exit code {c}"),
                None => "pod failed".to_string(),
            };
            if !reason.is_empty() {
                message.push_str(&format!(" ({reason})"));
            }
            if exit.is_none() && !pod_message.is_empty() {
                message.push_str(&format!(": {}", super::util::clip(pod_message, 200)));
            }
            Some(Err((exit, message, term_message)))
        }
        _ => None,
    }
}

/// The last `n` lines of `s`.
pub(crate) fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
