//! A tiny in-memory world for the Rollout planner: ReplicaSets whose pods become available
//! when the test (or the simulation) says so, Services, a fake clock, and a fake executor
//! of hooks and analyses whose outcomes the test chooses.

#![allow(dead_code)]

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use slipway_controllers::rollout::{ObservedRollout, RolloutAction, RolloutPlan, plan, util};
use slipway_controllers::rollout_runs::RunRequest;
use slipway_rollout::{AnalysisStatus, HookStatus, Rollout, RolloutStatus};
use std::collections::BTreeMap;

pub fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

/// A Rollout manifest with `strategy` (JSON) and image `image`.
pub fn rollout(replicas: i32, strategy: Value, image: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "rollout-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": strategy
        }
    }))
    .unwrap()
}

pub fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

pub fn hash_of(rs: &ReplicaSet) -> String {
    util::rs_hash(rs).unwrap_or("").to_string()
}

/// The world.
pub struct World {
    pub rollout: Rollout,
    pub rss: Vec<ReplicaSet>,
    pub services: Vec<Service>,
    pub now: Timestamp,
    /// Hash → whether its pods become available.
    pub ready: BTreeMap<String, bool>,
    /// Default readiness of a hash not in `ready`.
    pub ready_default: bool,
    /// Run name → phase the fake executor reports (default `Running`).
    pub outcomes: BTreeMap<String, String>,
    /// Every run requested so far (name, kind/analysis, hash).
    pub requested: Vec<(String, String, String)>,
    pub last: RolloutPlan,
    /// Service → the hash its EndpointSlice keeps listing whatever its selector says (an
    /// endpoints controller that lags behind a switch).
    pub frozen_endpoints: BTreeMap<String, String>,
    uid: u64,
}

impl World {
    pub fn new(rollout: Rollout, services: &[&str]) -> World {
        World {
            rollout,
            rss: Vec::new(),
            services: services.iter().map(|s| service(s)).collect(),
            now: t0(),
            ready: BTreeMap::new(),
            ready_default: true,
            outcomes: BTreeMap::new(),
            requested: Vec::new(),
            last: RolloutPlan::default(),
            frozen_endpoints: BTreeMap::new(),
            uid: 0,
        }
    }

    pub fn status(&self) -> RolloutStatus {
        self.rollout.status.clone().unwrap_or_default()
    }

    pub fn status_mut(&mut self) -> &mut RolloutStatus {
        self.rollout.status.get_or_insert_with(Default::default)
    }

    pub fn set_image(&mut self, image: &str) {
        self.rollout.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.rollout.metadata.generation = Some(self.rollout.metadata.generation.unwrap_or(1) + 1);
    }

    pub fn observed(&self) -> ObservedRollout {
        let (pods, endpoint_slices) = if self.rollout.spec.strategy.blue_green.is_some() {
            self.pods_and_slices()
        } else {
            (Vec::new(), Vec::new())
        };
        ObservedRollout {
            rollout: self.rollout.clone(),
            replica_sets: self.rss.clone(),
            pods,
            services: self.services.clone(),
            endpoint_slices,
            now: self.now,
        }
    }

    /// The pods of the ReplicaSets as their status counts them (`<rs>-<i>`, ready while
    /// available), and one EndpointSlice per Service listing the pods its selector's
    /// `pod-template-hash` picks: an endpoints controller that is always up to date.
    fn pods_and_slices(&self) -> (Vec<Pod>, Vec<EndpointSlice>) {
        let mut pods = Vec::new();
        for rs in &self.rss {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let hash = util::rs_hash(rs).unwrap_or("").to_string();
            let st = rs.status.clone().unwrap_or_default();
            let available = st.available_replicas.unwrap_or(0);
            for i in 0..st.replicas {
                pods.push((format!("{name}-{i}"), hash.clone(), i < available));
            }
        }
        let slices = self
            .services
            .iter()
            .map(|svc| {
                let name = svc.metadata.name.clone().unwrap_or_default();
                let selected = self.frozen_endpoints.get(&name).cloned().or_else(|| {
                    svc.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .and_then(|s| s.get("pod-template-hash"))
                        .cloned()
                });
                let endpoints: Vec<Value> = pods
                    .iter()
                    .filter(|(_, h, _)| selected.as_deref().is_none_or(|s| s == h))
                    .map(|(pod, _, ready)| {
                        json!({"addresses": ["127.128.0.1"], "conditions": {"ready": ready},
                               "targetRef": {"kind": "Pod", "name": pod}})
                    })
                    .collect();
                serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-abcde"), "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4", "endpoints": endpoints
                }))
                .expect("a slice")
            })
            .collect();
        let pods = pods
            .into_iter()
            .map(|(name, hash, _)| {
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default",
                                 "labels": {"app": "web", "pod-template-hash": hash}}
                }))
                .expect("a pod")
            })
            .collect();
        (pods, slices)
    }

    /// One pass: plan, apply the actions, let the fake executor advance, store the status.
    pub fn sync(&mut self) -> RolloutPlan {
        let p = plan(&self.observed()).expect("plan");
        self.apply_actions(&p);
        let mut status = p.status.clone();
        self.advance_runs(&p.runs, &mut status);
        self.rollout.status = Some(status);
        self.last = p.clone();
        p
    }

    pub fn apply_actions(&mut self, p: &RolloutPlan) {
        for a in p.actions() {
            match a {
                RolloutAction::CreateReplicaSet(rs) => {
                    let mut rs = rs.clone();
                    self.uid += 1;
                    rs.metadata.uid = Some(format!("rs-{}", self.uid));
                    rs.metadata.creation_timestamp = Some(Time(
                        Timestamp::from_second(
                            self.now.as_second() + i64::try_from(self.uid).unwrap(),
                        )
                        .unwrap(),
                    ));
                    rs.metadata.generation = Some(1);
                    rs.metadata.resource_version = Some("1".into());
                    assert!(
                        !self.rss.iter().any(|o| o.metadata.name == rs.metadata.name),
                        "created twice"
                    );
                    self.rss.push(rs);
                }
                RolloutAction::UpdateReplicaSet(rs) => {
                    let i = self
                        .rss
                        .iter()
                        .position(|o| o.metadata.name == rs.metadata.name)
                        .expect("updated RS exists");
                    let mut rs = rs.clone();
                    rs.metadata.generation = Some(rs.metadata.generation.unwrap_or(1) + 1);
                    self.rss[i] = rs;
                }
                RolloutAction::DeleteReplicaSet(k) => {
                    self.rss
                        .retain(|o| o.metadata.name.as_deref() != Some(&k.name));
                }
                RolloutAction::PatchService { name, patch } => {
                    let svc = self
                        .services
                        .iter_mut()
                        .find(|s| s.metadata.name.as_deref() == Some(name))
                        .expect("patched Service exists");
                    let mut v = serde_json::to_value(&*svc).unwrap();
                    merge(&mut v, patch);
                    *svc = serde_json::from_value(v).unwrap();
                }
                RolloutAction::AdoptReplicaSet(_) | RolloutAction::ReleaseReplicaSet(_) => {}
            }
        }
    }

    pub fn advance_runs(&mut self, runs: &[RunRequest], status: &mut RolloutStatus) {
        for r in runs {
            match r {
                RunRequest::Hook { key, .. } => {
                    self.requested
                        .push((key.name.clone(), key.kind.clone(), key.pod_hash.clone()));
                    let phase = self
                        .outcomes
                        .get(&key.name)
                        .cloned()
                        .unwrap_or_else(|| "Running".into());
                    match status.hooks.iter_mut().find(|h| {
                        h.kind == key.kind && h.name == key.name && h.pod_hash == key.pod_hash
                    }) {
                        Some(h) => h.phase = phase,
                        None => status.hooks.push(HookStatus {
                            name: key.name.clone(),
                            kind: key.kind.clone(),
                            pod_hash: key.pod_hash.clone(),
                            phase,
                            attempts: 1,
                            ..Default::default()
                        }),
                    }
                }
                RunRequest::Analysis { name, pod_hash, .. } => {
                    self.requested
                        .push((name.clone(), "analysis".into(), pod_hash.clone()));
                    let phase = self
                        .outcomes
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| "Running".into());
                    match status
                        .analysis
                        .iter_mut()
                        .find(|a| &a.name == name && &a.pod_hash == pod_hash)
                    {
                        Some(a) => a.phase = phase,
                        None => status.analysis.push(AnalysisStatus {
                            name: name.clone(),
                            pod_hash: pod_hash.clone(),
                            phase,
                            ..Default::default()
                        }),
                    }
                }
            }
        }
    }

    /// The ReplicaSet controller and the pods: every ReplicaSet runs its `spec.replicas`
    /// pods, available when its hash is ready.
    pub fn settle(&mut self) {
        for rs in &mut self.rss {
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let hash = util::rs_hash(rs).unwrap_or("").to_string();
            let ready = *self.ready.get(&hash).unwrap_or(&self.ready_default);
            let avail = if ready { spec } else { 0 };
            rs.status = Some(ReplicaSetStatus {
                replicas: spec,
                ready_replicas: Some(avail),
                available_replicas: Some(avail),
                observed_generation: rs.metadata.generation,
                fully_labeled_replicas: Some(spec),
                terminating_replicas: Some(0),
                conditions: None,
            });
        }
    }

    /// `sync` then `settle`, `n` times.
    pub fn cycle(&mut self, n: usize) {
        for _ in 0..n {
            self.sync();
            self.settle();
        }
    }

    pub fn rs(&self, hash: &str) -> Option<&ReplicaSet> {
        self.rss.iter().find(|rs| util::rs_hash(rs) == Some(hash))
    }

    pub fn spec_of(&self, hash: &str) -> i32 {
        self.rs(hash)
            .and_then(|r| r.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    }

    pub fn svc(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    pub fn selector_hash(&self, name: &str) -> Option<String> {
        util::service_selector(self.svc(name))
            .get("pod-template-hash")
            .cloned()
    }

    pub fn split(&self, name: &str) -> Option<Value> {
        self.svc(name)
            .metadata
            .annotations
            .as_ref()?
            .get(util::TRAFFIC_SPLIT)
            .map(|s| serde_json::from_str(s).unwrap())
    }

    pub fn phase(&self) -> String {
        self.status().phase.unwrap_or_default()
    }

    pub fn current(&self) -> String {
        self.status().current_pod_hash.unwrap_or_default()
    }

    pub fn stable(&self) -> String {
        self.status().stable_pod_hash.unwrap_or_default()
    }

    pub fn advance(&mut self, secs: i64) {
        self.now = Timestamp::from_second(self.now.as_second() + secs).unwrap();
    }

    pub fn reasons(&self) -> Vec<String> {
        self.last
            .all_events()
            .iter()
            .map(|e| e.reason.clone())
            .collect()
    }
}

/// RFC 7386 merge.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
