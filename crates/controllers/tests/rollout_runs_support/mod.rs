//! Fakes for the rollout run executor's tests: an in-memory API, a settable clock, scripted
//! proxy metrics and HTTP answers.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Value, json};
use slipway_client::{Client, DeleteParams, PatchType, WatchStream};
use slipway_controllers::rollout_runs::{
    GroupSample, HttpProbe, RunExecutor, RunRequest, TrafficMetrics,
};
use slipway_controllers::runtime::Clock;
use slipway_core::{ApiError, ResourceInfo, meta};
use slipway_rollout::{Rollout, RolloutStatus};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

type Key = (String, String, String);

/// An in-memory API server: objects by (resource, namespace, name).
#[derive(Clone, Default)]
pub struct FakeClient {
    pub objects: Arc<Mutex<BTreeMap<Key, Value>>>,
    /// Every create, in order (resource, object).
    pub created: Arc<Mutex<Vec<(String, Value)>>>,
    /// Every delete, in order (resource, name).
    pub deleted: Arc<Mutex<Vec<(String, String)>>>,
    /// Container output by pod name, served by `pod_log`.
    pub logs: Arc<Mutex<HashMap<String, String>>>,
}

fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> Key {
    (
        info.plural.to_string(),
        ns.unwrap_or("").to_string(),
        name.to_string(),
    )
}

impl FakeClient {
    pub fn put(&self, plural: &str, obj: Value) {
        let k = (
            plural.to_string(),
            meta::namespace(&obj).to_string(),
            meta::name(&obj).to_string(),
        );
        self.objects.lock().insert(k, obj);
    }

    pub fn pod(&self, name: &str) -> Option<Value> {
        self.objects
            .lock()
            .get(&("pods".into(), "default".into(), name.into()))
            .cloned()
    }

    pub fn pods_created(&self) -> Vec<Value> {
        self.created
            .lock()
            .iter()
            .filter(|(r, _)| r == "pods")
            .map(|(_, o)| o.clone())
            .collect()
    }

    pub fn pods_deleted(&self) -> Vec<String> {
        self.deleted
            .lock()
            .iter()
            .filter(|(r, _)| r == "pods")
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// `(reason, message)` of every Event recorded, in order of creation.
    pub fn events(&self) -> Vec<(String, String)> {
        self.created
            .lock()
            .iter()
            .filter(|(r, _)| r == "events")
            .map(|(_, e)| {
                (
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|(r, _)| r).collect()
    }

    /// Sets a pod's phase (and, when failed, its container's exit code).
    pub fn finish_pod(&self, name: &str, phase: &str, exit_code: Option<i32>) {
        let mut objects = self.objects.lock();
        let pod = objects
            .get_mut(&("pods".into(), "default".into(), name.into()))
            .unwrap_or_else(|| panic!("no pod {name}"));
        let mut status = json!({"phase": phase});
        if let Some(code) = exit_code {
            status["containerStatuses"] = json!([{
                "name": "app",
                "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}
            }]);
        }
        pod["status"] = status;
    }

    /// Sets what the pod `name`'s container has printed.
    pub fn set_log(&self, name: &str, output: &str) {
        self.logs
            .lock()
            .insert(name.to_string(), output.to_string());
    }

    pub fn set_pod_phase(&self, name: &str, phase: &str) {
        let mut objects = self.objects.lock();
        let pod = objects
            .get_mut(&("pods".into(), "default".into(), name.into()))
            .unwrap_or_else(|| panic!("no pod {name}"));
        pod["status"] = json!({"phase": phase});
    }
}

impl Client for FakeClient {
    async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        Ok(self
            .objects
            .lock()
            .get(&key(info, namespace, name))
            .cloned()
            .map(Arc::new))
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Value>>, String), ApiError> {
        let items = self
            .objects
            .lock()
            .iter()
            .filter(|((r, ns, _), _)| r == info.plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| Arc::new(v.clone()))
            .collect();
        Ok((items, "1".into()))
    }

    async fn watch(
        &self,
        _info: &'static ResourceInfo,
        _namespace: Option<&str>,
        _resource_version: &str,
    ) -> Result<WatchStream, ApiError> {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        Ok(rx)
    }

    async fn create(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let ns = meta::namespace(&obj).to_string();
        let k = key(info, Some(&ns), meta::name(&obj));
        let mut objects = self.objects.lock();
        if objects.contains_key(&k) {
            return Err(ApiError::already_exists(info, meta::name(&obj)));
        }
        self.created
            .lock()
            .push((info.plural.to_string(), obj.clone()));
        objects.insert(k, obj.clone());
        Ok(obj)
    }

    async fn replace(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        self.put(info.plural, obj.clone());
        Ok(obj)
    }

    async fn replace_status(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.put(info.plural, obj.clone());
        Ok(obj)
    }

    async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        _kind: PatchType,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let mut objects = self.objects.lock();
        let obj = objects
            .get_mut(&key(info, namespace, name))
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let (Some(o), Some(p)) = (obj.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                o.insert(k.clone(), v.clone());
            }
        }
        Ok(obj.clone())
    }

    async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        _params: DeleteParams,
    ) -> Result<Option<Value>, ApiError> {
        let removed = self.objects.lock().remove(&key(info, namespace, name));
        match removed {
            Some(_) => {
                self.deleted
                    .lock()
                    .push((info.plural.to_string(), name.to_string()));
                Ok(None)
            }
            None => Err(ApiError::not_found(info, name)),
        }
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        _uid: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let pods = slipway_core::resources::lookup("", "v1", "pods").expect("pods");
        let mut objects = self.objects.lock();
        let pod = objects
            .get_mut(&key(pods, Some(namespace), name))
            .ok_or_else(|| ApiError::not_found(pods, name))?;
        if pod.pointer("/spec/nodeName").is_some_and(|n| n != "") {
            return Err(ApiError::conflict(pods, name));
        }
        pod["spec"]["nodeName"] = json!(node);
        Ok(())
    }

    async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        _container: &str,
        tail_lines: usize,
    ) -> Result<String, ApiError> {
        if self.pod(pod).is_none() || namespace != "default" {
            return Err(ApiError::bad_request(format!("no pod {pod}")));
        }
        let output = self.logs.lock().get(pod).cloned().unwrap_or_default();
        let lines: Vec<&str> = output.lines().collect();
        let skip = lines.len().saturating_sub(tail_lines);
        Ok(lines[skip..].iter().map(|l| format!("{l}\n")).collect())
    }
}

/// A clock the test moves.
#[derive(Clone)]
pub struct TestClock(pub Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new() -> TestClock {
        TestClock(Arc::new(Mutex::new(
            "2025-06-01T12:00:00Z".parse().expect("a timestamp"),
        )))
    }

    pub fn clock(&self) -> Clock {
        let t = self.0.clone();
        Arc::new(move || *t.lock())
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock()
    }

    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock();
        *t += chrono::Duration::from_std(d).expect("a duration");
    }

    /// The time `d` from the start of the test, as status spells it.
    pub fn stamp_after(&self, start: DateTime<Utc>, d: Duration) -> String {
        (start + chrono::Duration::from_std(d).expect("a duration"))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

type Samples = Result<Vec<GroupSample>, String>;

/// Proxy metrics the test sets per Service; counts samples taken.
#[derive(Clone, Default)]
pub struct FakeMetrics {
    pub by_service: Arc<Mutex<HashMap<String, Samples>>>,
    pub samples: Arc<Mutex<Vec<String>>>,
}

impl FakeMetrics {
    pub fn set(&self, service: &str, groups: Vec<GroupSample>) {
        self.by_service
            .lock()
            .insert(service.to_string(), Ok(groups));
    }

    pub fn fail(&self, service: &str, error: &str) {
        self.by_service
            .lock()
            .insert(service.to_string(), Err(error.to_string()));
    }

    pub fn sample_count(&self) -> usize {
        self.samples.lock().len()
    }
}

impl TrafficMetrics for FakeMetrics {
    fn sample(
        &self,
        namespace: &str,
        service: &str,
    ) -> BoxFuture<'static, Result<Vec<GroupSample>, String>> {
        self.samples.lock().push(format!("{namespace}/{service}"));
        let r = self
            .by_service
            .lock()
            .get(service)
            .cloned()
            .unwrap_or_else(|| Ok(Vec::new()));
        Box::pin(async move { r })
    }
}

/// A group's cumulative counters (no latency).
pub fn group(hash: &str, requests: u64, errors: u64) -> GroupSample {
    GroupSample {
        pod_hash: hash.into(),
        requests,
        errors,
        ..Default::default()
    }
}

/// One HTTP call the executor made.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub method: String,
    pub url: String,
    pub body: Option<String>,
    pub timeout: Duration,
}

/// What the fake HTTP client answers.
#[derive(Clone, Debug)]
pub enum Answer {
    Reply(u16, String),
    Error(String),
    /// Never answers.
    Hang,
}

/// Scripted HTTP answers (the last one repeats); records every call.
#[derive(Clone)]
pub struct FakeHttp {
    pub answers: Arc<Mutex<VecDeque<Answer>>>,
    pub sent: Arc<Mutex<Vec<Sent>>>,
}

impl Default for FakeHttp {
    fn default() -> Self {
        FakeHttp {
            answers: Arc::new(Mutex::new(VecDeque::from([Answer::Reply(
                200,
                "{}".into(),
            )]))),
            sent: Arc::default(),
        }
    }
}

impl FakeHttp {
    pub fn answer(&self, answers: Vec<Answer>) {
        *self.answers.lock() = answers.into();
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().clone()
    }
}

impl HttpProbe for FakeHttp {
    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(u16, String), String>> {
        self.sent.lock().push(Sent {
            method: method.into(),
            url: url.into(),
            body,
            timeout,
        });
        let answer = {
            let mut a = self.answers.lock();
            if a.len() > 1 {
                a.pop_front().expect("an answer")
            } else {
                a.front().cloned().unwrap_or(Answer::Hang)
            }
        };
        match answer {
            Answer::Reply(code, body) => Box::pin(async move { Ok((code, body)) }),
            Answer::Error(e) => Box::pin(async move { Err(e) }),
            Answer::Hang => Box::pin(futures::future::pending()),
        }
    }
}

/// Everything a test needs.
pub struct World {
    pub client: FakeClient,
    pub clock: TestClock,
    pub metrics: FakeMetrics,
    pub http: FakeHttp,
    pub rollout: Rollout,
    pub status: RolloutStatus,
    pub exec: RunExecutor<FakeClient>,
}

impl World {
    pub fn new() -> World {
        let client = FakeClient::default();
        let clock = TestClock::new();
        let metrics = FakeMetrics::default();
        let http = FakeHttp::default();
        let exec = RunExecutor::new(
            client.clone(),
            clock.clock(),
            Arc::new(metrics.clone()),
            Arc::new(http.clone()),
        );
        World {
            client,
            clock,
            metrics,
            http,
            rollout: rollout(),
            status: RolloutStatus::default(),
            exec,
        }
    }

    /// A new executor over the same world and status: a restart of Slipway.
    pub fn restart(&mut self) {
        self.exec = RunExecutor::new(
            self.client.clone(),
            self.clock.clock(),
            Arc::new(self.metrics.clone()),
            Arc::new(self.http.clone()),
        );
    }

    pub async fn advance(&mut self, requests: &[RunRequest]) -> Option<Duration> {
        self.exec
            .advance(&self.rollout, requests, &mut self.status)
            .await
    }

    pub fn service(&self, name: &str, cluster_ip: &str) {
        self.client.put(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"clusterIP": cluster_ip, "ports": [{"port": 80}]}
            }),
        );
    }
}

/// The Rollout `default/web`: selector `app=web`, template labels `app=web, tier=frontend`,
/// containers `app` (ports, probes, env) and `sidecar`.
pub fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "rollout-uid"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"containers": [
                    {"name": "app", "image": "example/web:2", "command": ["web-server"],
                     "args": ["--port", "8080"],
                     "env": [{"name": "MODE", "value": "prod"}],
                     "ports": [{"containerPort": 8080}],
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                     "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}}},
                    {"name": "sidecar", "image": "example/sidecar:1", "command": ["sidecar"]}
                ]}
            },
            "strategy": {"canary": {"stableService": "web"}}
        }
    }))
    .expect("a Rollout")
}
