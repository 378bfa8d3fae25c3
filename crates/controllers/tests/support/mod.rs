//! Builders and a tiny cluster model shared by the case replay and the property tests.
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use slipway_controllers::annotations::{POD_TEMPLATE_HASH_LABEL, REVISION};
use slipway_controllers::deployment::{self, DeploymentAction, ObservedDeployment};
use slipway_controllers::ownership::controller_of;
use slipway_controllers::replicaset::{self, Expectations, ObservedReplicaSet};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

pub fn secs(base: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_second(base.as_second() + seconds).expect("timestamp in range")
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pod template with one container running `image`.
pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A RollingUpdate (or Recreate) Deployment named `web` selecting `app=web`.
pub fn deployment(
    replicas: i32,
    surge: Option<IntOrString>,
    unavailable: Option<IntOrString>,
    recreate: bool,
) -> Deployment {
    let strategy = if recreate {
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: surge,
                max_unavailable: unavailable,
            }),
        }
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("deploy-uid".into()),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            },
            strategy: Some(strategy),
            template: template("img:v2"),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

/// A ReplicaSet owned by `d` with the given template, size and creation time.
pub fn replica_set(
    d: &Deployment,
    name: &str,
    image: &str,
    spec: i32,
    created: Timestamp,
) -> ReplicaSet {
    let mut t = template(image);
    t.metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .map(|l| l.insert(POD_TEMPLATE_HASH_LABEL.into(), name.into()));
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            resource_version: Some("1".into()),
            creation_timestamp: Some(Time(created)),
            labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, name)])),
            owner_references: Some(vec![slipway_controllers::ownership::controller_ref(
                "apps/v1",
                "Deployment",
                &d.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(spec),
            min_ready_seconds: None,
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH_LABEL, name)])),
                match_expressions: None,
            },
            template: Some(t),
        }),
        status: Some(ReplicaSetStatus::default()),
    }
}

pub fn set_rs_status(rs: &mut ReplicaSet, replicas: i32, available: i32) {
    let s = rs.status.get_or_insert_with(Default::default);
    s.replicas = replicas;
    s.available_replicas = Some(available);
    s.ready_replicas = Some(available);
}

pub fn image_of(t: &PodTemplateSpec) -> String {
    t.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The tiny cluster model: one Deployment, its ReplicaSets and pods. Pods of images listed in
/// `broken_images` never become ready; others are Ready from creation. Deleted pods stay one
/// step as terminating, then vanish.
pub struct Cluster {
    pub deployment: Deployment,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub now: Timestamp,
    pub broken_images: Vec<String>,
    next_id: u64,
    next_rv: u64,
}

/// One step's record.
#[derive(Debug, Default)]
pub struct StepLog {
    /// "create v2 with 3", "scale v1 10->8", "delete v1".
    pub ops: Vec<String>,
    /// Active pods of RSs other than the new one at the time the Deployment was planned.
    pub old_pods_at_plan: usize,
    /// Whether the plan grew the new RS (created with > 0 or scaled up).
    pub grew_new: bool,
}

impl Cluster {
    pub fn new(deployment: Deployment, now: Timestamp) -> Cluster {
        Cluster {
            deployment,
            replica_sets: Vec::new(),
            pods: Vec::new(),
            now,
            broken_images: Vec::new(),
            next_id: 1,
            next_rv: 100,
        }
    }

    fn rv(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    /// Adds a fully available ReplicaSet `name` with `replicas` ready pods of `image`.
    pub fn seed_replica_set(&mut self, name: &str, image: &str, replicas: i32, revision: i64) {
        let mut rs = replica_set(
            &self.deployment,
            name,
            image,
            replicas,
            secs(self.now, -3600),
        );
        let d_replicas = replicas;
        let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
        ann.insert(REVISION.into(), revision.to_string());
        ann.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            d_replicas.to_string(),
        );
        let max = d_replicas + slipway_controllers::fenceposts::max_surge(&self.deployment);
        ann.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            max.to_string(),
        );
        rs.metadata.generation = Some(1);
        self.replica_sets.push(rs);
        self.run_replica_set_controllers();
    }

    /// Short label for an RS: the part after the last '-' for seeded ones, else "v<k>".
    pub fn label_of(&self, name: &str) -> String {
        if let Some(rest) = name.strip_prefix("web-")
            && rest.starts_with('v')
        {
            return rest.to_string();
        }
        let position = self
            .replica_sets
            .iter()
            .position(|rs| rs.metadata.name.as_deref() == Some(name))
            .unwrap_or(self.replica_sets.len());
        format!("v{}", position + 1)
    }

    /// One Deployment sync followed by the ReplicaSet controllers.
    pub fn step(&mut self) -> Result<StepLog, String> {
        let observed = ObservedDeployment {
            deployment: self.deployment.clone(),
            replica_sets: self.replica_sets.clone(),
            pods: self.pods.clone(),
            now: self.now,
        };
        let plan = deployment::plan(&observed).map_err(|e| e.to_string())?;
        let template = self
            .deployment
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let new_uid = self
            .replica_sets
            .iter()
            .find(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| slipway_controllers::template::equal_ignore_hash(t, &template))
            })
            .and_then(|rs| rs.metadata.uid.clone());
        let mut log = StepLog {
            old_pods_at_plan: self
                .pods
                .iter()
                .filter(|p| {
                    controller_of(&p.metadata).map(|r| Some(r.uid.clone())) != Some(new_uid.clone())
                })
                .count(),
            ..Default::default()
        };
        for action in plan.actions() {
            self.apply(action, &mut log, new_uid.as_deref())?;
        }
        self.run_replica_set_controllers();
        self.now = secs(self.now, 1);
        Ok(log)
    }

    fn apply(
        &mut self,
        action: &DeploymentAction,
        log: &mut StepLog,
        new_uid: Option<&str>,
    ) -> Result<(), String> {
        match action {
            DeploymentAction::CreateReplicaSet(rs) => {
                let mut rs = rs.clone();
                let name = rs.metadata.name.clone().unwrap_or_default();
                if self
                    .replica_sets
                    .iter()
                    .any(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                {
                    return Err(format!("create of existing {name}"));
                }
                rs.metadata.uid = Some(format!("rs-{}", self.next_id));
                self.next_id += 1;
                rs.metadata.creation_timestamp = Some(Time(self.now));
                rs.metadata.generation = Some(1);
                rs.metadata.resource_version = Some(self.rv());
                let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                self.replica_sets.push(rs);
                log.ops
                    .push(format!("create {} with {replicas}", self.label_of(&name)));
                if replicas > 0 {
                    log.grew_new = true;
                }
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                let name = rs.metadata.name.clone().unwrap_or_default();
                let label = self.label_of(&name);
                let rv = self.rv();
                let stored = self
                    .replica_sets
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                    .ok_or(format!("update of missing {name}"))?;
                if stored.metadata.resource_version != rs.metadata.resource_version {
                    return Err(format!("conflict updating {name}"));
                }
                let before = stored.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let after = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if stored.spec != rs.spec {
                    stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
                }
                stored.spec = rs.spec.clone();
                stored.metadata.annotations = rs.metadata.annotations.clone();
                stored.metadata.resource_version = Some(rv);
                if before != after {
                    log.ops.push(format!("scale {label} {before}->{after}"));
                    if after > before && stored.metadata.uid.as_deref() == new_uid {
                        log.grew_new = true;
                    }
                }
            }
            DeploymentAction::DeleteReplicaSet(key) => {
                log.ops.push(format!("delete {}", self.label_of(&key.name)));
                self.replica_sets
                    .retain(|r| r.metadata.name.as_deref() != Some(key.name.as_str()));
            }
            DeploymentAction::UpdateDeploymentStatus(d) => {
                if d.metadata.resource_version != self.deployment.metadata.resource_version {
                    return Err("conflict updating deployment status".into());
                }
                self.deployment.status = d.status.clone();
                self.deployment.metadata.annotations = d.metadata.annotations.clone();
                self.deployment.metadata.resource_version = Some(self.rv());
            }
            DeploymentAction::UpdateDeployment(d) => {
                self.deployment.spec = d.spec.clone();
                self.deployment.metadata.annotations = d.metadata.annotations.clone();
                self.deployment.metadata.generation =
                    Some(self.deployment.metadata.generation.unwrap_or(0) + 1);
                self.deployment.metadata.resource_version = Some(self.rv());
            }
            DeploymentAction::AdoptReplicaSet(_) | DeploymentAction::ReleaseReplicaSet(_) => {
                return Err("unexpected ownership change".into());
            }
        }
        Ok(())
    }

    /// Runs every ReplicaSet's planner: terminating pods vanish, then create/delete, then a
    /// second pass refreshes status from the resulting pods.
    pub fn run_replica_set_controllers(&mut self) {
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
        for round in 0..2 {
            for i in 0..self.replica_sets.len() {
                let rs = self.replica_sets[i].clone();
                let uid = rs.metadata.uid.clone().unwrap_or_default();
                let observed = ObservedReplicaSet {
                    pods: self
                        .pods
                        .iter()
                        .filter(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
                        .map(|p| Arc::new(p.clone()))
                        .collect(),
                    replica_set: rs.clone(),
                    related_pods: Vec::new(),
                    expectations: Expectations::default(),
                    now: self.now,
                };
                let plan = replicaset::plan(&observed).expect("replica set plan");
                if round == 0 {
                    for pod in &plan.create {
                        let mut pod = pod.clone();
                        let id = self.next_id;
                        self.next_id += 1;
                        pod.metadata.name = Some(format!(
                            "{}{id}",
                            pod.metadata.generate_name.clone().unwrap_or_default()
                        ));
                        pod.metadata.uid = Some(format!("pod-{id}"));
                        pod.metadata.creation_timestamp = Some(Time(self.now));
                        let image = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.first())
                            .and_then(|c| c.image.clone())
                            .unwrap_or_default();
                        let ready = !self.broken_images.contains(&image);
                        pod.status = Some(PodStatus {
                            phase: Some("Running".into()),
                            conditions: Some(vec![PodCondition {
                                type_: "Ready".into(),
                                status: if ready { "True".into() } else { "False".into() },
                                last_transition_time: Some(Time(secs(self.now, -1))),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        });
                        self.pods.push(pod);
                    }
                    for key in &plan.delete {
                        if let Some(p) = self
                            .pods
                            .iter_mut()
                            .find(|p| p.metadata.uid.as_deref() == Some(key.uid.as_str()))
                        {
                            p.metadata.deletion_timestamp = Some(Time(self.now));
                        }
                    }
                }
                if let Some(status) = plan.status {
                    self.replica_sets[i].status = Some(status);
                }
            }
        }
    }

    /// Sizes by short label.
    pub fn sizes(&self) -> BTreeMap<String, i32> {
        self.replica_sets
            .iter()
            .map(|rs| {
                let name = rs.metadata.name.clone().unwrap_or_default();
                (
                    self.label_of(&name),
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            })
            .collect()
    }

    /// Active pods (not terminating).
    pub fn active_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
    }

    /// Active pods that are Ready.
    pub fn available_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none() && slipway_controllers::pods::is_ready(p)
            })
            .count()
    }

    /// Changes the template image (a new rollout), bumping generation.
    pub fn set_image(&mut self, image: &str) {
        if let Some(spec) = self.deployment.spec.as_mut() {
            spec.template = template(image);
        }
        self.deployment.metadata.generation =
            Some(self.deployment.metadata.generation.unwrap_or(0) + 1);
    }

    pub fn status(&self) -> DeploymentStatus {
        self.deployment.status.clone().unwrap_or_default()
    }
}
