//! The working state of one sync pass: copies of the Deployment and its ReplicaSets that the
//! steps change, plus a log from which the plan's ordered actions are built.

use crate::annotations::{
    POD_TEMPLATE_HASH_LABEL, REVISION, REVISION_HISTORY_MAX_CHARS, max_revision,
    replicas_annotations_need_update, set_deployment_revision, set_new_replica_set_annotations,
    set_replicas_annotations,
};
use crate::conditions::{
    FOUND_NEW_REPLICA_SET, NEW_REPLICA_SET_CREATED, PROGRESSING, TRUE, get_deployment_condition,
    new_deployment_condition, set_deployment_condition,
};
use crate::error::PlanError;
use crate::fenceposts::max_surge;
use crate::hash::compute_hash;
use crate::ownership::controller_ref;
use crate::replicas::new_rs_new_replicas;
use crate::spec::{
    desired_replicas, has_progress_deadline, min_ready_seconds, name, rs_min_ready_seconds,
    rs_spec_replicas, set_rs_spec_replicas,
};
use crate::status::{requeue_stuck_deployment, rollout_status, status_equal};
use crate::template::{find_new_replica_set, rs_template};
use crate::{Event, Requeue};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeSet;

/// Direction word of a `ScalingReplicaSet` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleDirection {
    /// "up".
    Up,
    /// "down".
    Down,
    /// No direction (a proportional pass that adds nothing; no size changes then).
    Unspecified,
}

impl ScaleDirection {
    fn word(self) -> &'static str {
        match self {
            ScaleDirection::Up => "up",
            ScaleDirection::Down => "down",
            ScaleDirection::Unspecified => "",
        }
    }
}

/// A change to one ReplicaSet, in the order it was first made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RsChange {
    Create(usize),
    Update(usize),
    Delete(usize),
}

/// A ReplicaSet write that a pass ends with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RsWrite {
    Create(ReplicaSet),
    Update(ReplicaSet),
    Delete(super::ObjectKey),
}

/// The working state of one pass. Indices are stable: observed ReplicaSets keep their input
/// index, a created one is appended.
#[derive(Clone, Debug)]
pub struct Pass {
    /// The Deployment as this pass has changed it (annotations, status, and spec on rollback).
    pub deployment: Deployment,
    /// The Deployment as observed.
    pub observed: Deployment,
    /// Working copies of the Deployment's ReplicaSets.
    pub replica_sets: Vec<ReplicaSet>,
    /// The ReplicaSets as observed (same indices; a created one has no entry).
    pub observed_replica_sets: Vec<ReplicaSet>,
    /// Index of the new ReplicaSet, once resolved.
    pub new_index: Option<usize>,
    /// The clock reading of this pass.
    pub now: Timestamp,
    resolved: bool,
    pub(crate) changes: Vec<RsChange>,
    pub(crate) rs_events: Vec<(usize, Event)>,
    pub(crate) requeue: Option<Requeue>,
    /// ReplicaSets whose first write in this pass may fail without failing the pass.
    pub(crate) failure_ignored: BTreeSet<usize>,
}

impl Pass {
    /// The ReplicaSet writes of this pass in the order they were first made (updates that
    /// change nothing left out), each with the Events of its ReplicaSet on its first write
    /// and whether its failure is ignored.
    pub(crate) fn replica_set_writes(&self) -> Vec<(RsWrite, Vec<Event>, bool)> {
        let mut emitted: BTreeSet<usize> = BTreeSet::new();
        let mut out = Vec::new();
        for change in &self.changes {
            let (index, write) = match *change {
                RsChange::Create(i) => (i, RsWrite::Create(self.replica_sets[i].clone())),
                RsChange::Update(i) => {
                    if self.observed_replica_sets.get(i) == Some(&self.replica_sets[i]) {
                        continue;
                    }
                    (i, RsWrite::Update(self.replica_sets[i].clone()))
                }
                RsChange::Delete(i) => {
                    let meta = &self.replica_sets[i].metadata;
                    let key = super::ObjectKey {
                        namespace: meta.namespace.clone().unwrap_or_default(),
                        name: meta.name.clone().unwrap_or_default(),
                        uid: meta.uid.clone().unwrap_or_default(),
                        resource_version: meta.resource_version.clone().unwrap_or_default(),
                    };
                    (i, RsWrite::Delete(key))
                }
            };
            let events = if emitted.insert(index) {
                self.rs_events
                    .iter()
                    .filter(|(i, _)| *i == index)
                    .map(|(_, e)| e.clone())
                    .collect()
            } else {
                Vec::new()
            };
            out.push((write, events, self.failure_ignored.contains(&index)));
        }
        out
    }

    /// Starts a pass over a Deployment and the ReplicaSets it owns.
    pub fn new(deployment: Deployment, replica_sets: Vec<ReplicaSet>, now: Timestamp) -> Pass {
        Pass {
            observed: deployment.clone(),
            deployment,
            observed_replica_sets: replica_sets.clone(),
            replica_sets,
            new_index: None,
            now,
            resolved: false,
            changes: Vec::new(),
            rs_events: Vec::new(),
            requeue: None,
            failure_ignored: BTreeSet::new(),
        }
    }

    /// Indices of every ReplicaSet other than the new one.
    pub fn old_indices(&self) -> Vec<usize> {
        (0..self.replica_sets.len())
            .filter(|i| Some(*i) != self.new_index)
            .collect()
    }

    /// Indices of every ReplicaSet (old ones first, the new one last, as `append(old, new)`).
    pub fn all_indices(&self) -> Vec<usize> {
        let mut all = self.old_indices();
        all.extend(self.new_index);
        all
    }

    /// The new ReplicaSet's working copy.
    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new_index.map(|i| &self.replica_sets[i])
    }

    /// The current working copies at `indices`.
    pub fn refs(&self, indices: &[usize]) -> Vec<&ReplicaSet> {
        indices.iter().map(|&i| &self.replica_sets[i]).collect()
    }

    fn touch(&mut self, index: usize) {
        let known = self
            .changes
            .iter()
            .any(|c| matches!(c, RsChange::Create(i) | RsChange::Update(i) if *i == index));
        if !known {
            self.changes.push(RsChange::Update(index));
        }
    }

    /// Marks the ReplicaSets at `indices` whose first write is still to come in this pass:
    /// a failure of that write is ignored, as Kubernetes ignores the errors of its old
    /// ReplicaSets' scale-down.
    pub(crate) fn ignore_write_failures(&mut self, indices: &[usize]) {
        for &index in indices {
            if !self.is_touched(index) {
                self.failure_ignored.insert(index);
            }
        }
    }

    /// Whether this pass changed (or created) the ReplicaSet at `index`.
    pub fn is_touched(&self, index: usize) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c, RsChange::Create(i) | RsChange::Update(i) if *i == index))
    }

    /// Marks the ReplicaSet at `index` for deletion.
    pub fn delete(&mut self, index: usize) {
        self.changes.push(RsChange::Delete(index));
    }

    /// Indices marked for deletion, in order.
    pub fn deletions(&self) -> Vec<usize> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                RsChange::Delete(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    /// scaleReplicaSet: sets the size and fresh desired/max annotations when either differs.
    /// Records a `ScalingReplicaSet` event and returns true when the size changed.
    pub fn scale_replica_set(
        &mut self,
        index: usize,
        new_scale: i32,
        direction: ScaleDirection,
    ) -> bool {
        let replicas = desired_replicas(&self.deployment);
        let max = replicas.saturating_add(max_surge(&self.deployment));
        let rs = &mut self.replica_sets[index];
        let old_scale = rs_spec_replicas(rs);
        let size_changes = old_scale != new_scale;
        if !size_changes && !replicas_annotations_need_update(rs, replicas, max) {
            return false;
        }
        set_rs_spec_replicas(rs, new_scale);
        set_replicas_annotations(rs, replicas, max);
        let rs_name = name(&rs.metadata).to_string();
        self.touch(index);
        if size_changes {
            let message = format!(
                "Scaled {} replica set {rs_name} to {new_scale} from {old_scale}",
                direction.word()
            );
            self.rs_events
                .push((index, Event::normal("ScalingReplicaSet", message)));
        }
        size_changes
    }

    /// scaleReplicaSetAndRecordEvent: no-op when the size is already `new_scale`.
    pub fn scale_and_record(&mut self, index: usize, new_scale: i32) -> bool {
        let current = rs_spec_replicas(&self.replica_sets[index]);
        if current == new_scale {
            return false;
        }
        let direction = if current < new_scale {
            ScaleDirection::Up
        } else {
            ScaleDirection::Down
        };
        self.scale_replica_set(index, new_scale, direction)
    }

    /// getNewReplicaSet: finds the new ReplicaSet (once per pass) and syncs its annotations and
    /// `minReadySeconds`, or the Deployment's revision and FoundNewReplicaSet condition when
    /// nothing on it had to change. With `create`, creates it when missing; a name clash with
    /// another owned ReplicaSet instead bumps `collisionCount` and returns
    /// [`NewReplicaSet::Collision`].
    pub fn ensure_new_replica_set(&mut self, create: bool) -> Result<NewReplicaSet, PlanError> {
        if !self.resolved {
            self.resolved = true;
            self.new_index = find_new_replica_set(&self.deployment, &self.replica_sets);
            if let Some(index) = self.new_index {
                self.sync_existing_new_replica_set(index);
            }
        }
        if self.new_index.is_some() || !create {
            return Ok(NewReplicaSet::Ready);
        }
        self.create_new_replica_set()
    }

    fn new_revision(&self) -> i64 {
        let old = self.old_indices();
        max_revision(self.refs(&old)).saturating_add(1)
    }

    fn sync_existing_new_replica_set(&mut self, index: usize) {
        let new_revision = self.new_revision();
        let mut copy = self.replica_sets[index].clone();
        let annotations_changed = set_new_replica_set_annotations(
            &self.deployment,
            &mut copy,
            new_revision,
            true,
            REVISION_HISTORY_MAX_CHARS,
        );
        let min_ready = min_ready_seconds(&self.deployment);
        if annotations_changed || rs_min_ready_seconds(&copy) != min_ready {
            copy.spec
                .get_or_insert_with(Default::default)
                .min_ready_seconds = Some(min_ready);
            self.replica_sets[index] = copy;
            self.touch(index);
            return;
        }
        let revision = crate::annotations::get(&copy.metadata, REVISION).unwrap_or_default();
        set_deployment_revision(&mut self.deployment, &revision);
        let status = self.deployment.status.get_or_insert_with(Default::default);
        if has_progress_deadline(&self.observed)
            && get_deployment_condition(status, PROGRESSING).is_none()
        {
            let message = format!("Found new replica set \"{}\"", name(&copy.metadata));
            let c = new_deployment_condition(
                PROGRESSING,
                TRUE,
                FOUND_NEW_REPLICA_SET,
                message,
                self.now,
            );
            set_deployment_condition(status, c);
        }
    }

    fn create_new_replica_set(&mut self) -> Result<NewReplicaSet, PlanError> {
        let d = &self.deployment;
        let spec = d.spec.clone().unwrap_or_default();
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision_count);
        let rs_name = format!("{}-{hash}", name(&d.metadata));
        let clash = self
            .replica_sets
            .iter()
            .any(|rs| name(&rs.metadata) == rs_name);
        if clash {
            let status = self.deployment.status.get_or_insert_with(Default::default);
            status.collision_count = Some(collision_count.unwrap_or(0).saturating_add(1));
            self.requeue = Some(Requeue::Now);
            return Ok(NewReplicaSet::Collision);
        }
        let mut template: PodTemplateSpec = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash);
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let new_revision = self.new_revision();
        let old = self.old_indices();
        let mut all = self.refs(&old);
        all.push(&rs);
        let replicas = new_rs_new_replicas(d, all, &rs)?;
        set_rs_spec_replicas(&mut rs, replicas);
        set_new_replica_set_annotations(
            d,
            &mut rs,
            new_revision,
            false,
            REVISION_HISTORY_MAX_CHARS,
        );
        let has_deadline = has_progress_deadline(&self.observed);
        self.replica_sets.push(rs);
        let index = self.replica_sets.len() - 1;
        self.new_index = Some(index);
        self.changes.push(RsChange::Create(index));
        if replicas > 0 {
            let message = format!("Scaled up replica set {rs_name} to {replicas}");
            self.rs_events
                .push((index, Event::normal("ScalingReplicaSet", message)));
        }
        set_deployment_revision(&mut self.deployment, &new_revision.to_string());
        if has_deadline {
            let c = new_deployment_condition(
                PROGRESSING,
                TRUE,
                NEW_REPLICA_SET_CREATED,
                format!("Created new replica set \"{rs_name}\""),
                self.now,
            );
            let status = self.deployment.status.get_or_insert_with(Default::default);
            set_deployment_condition(status, c);
        }
        Ok(NewReplicaSet::Ready)
    }

    /// The ReplicaSets as they stand now, for status calculation. Kubernetes computes status
    /// from the objects it held right after getNewReplicaSet, before any scaling of the pass.
    pub fn status_basis(&self) -> Vec<ReplicaSet> {
        self.all_indices()
            .into_iter()
            .map(|i| self.replica_sets[i].clone())
            .collect()
    }

    /// syncDeploymentStatus: counters and Available only.
    pub fn sync_deployment_status(&mut self, basis: &[ReplicaSet]) {
        let refs: Vec<&ReplicaSet> = basis.iter().collect();
        let new_rs = self.basis_new(basis);
        let status = crate::status::calculate_status(&self.deployment, &refs, new_rs, self.now);
        self.deployment.status = Some(status);
    }

    /// syncRolloutStatus: counters, Available, Progressing and ReplicaFailure; when nothing
    /// changed, schedules the progress-deadline re-check.
    pub fn sync_rollout_status(&mut self, basis: &[ReplicaSet]) {
        let refs: Vec<&ReplicaSet> = basis.iter().collect();
        let new_rs = self.basis_new(basis);
        let status = rollout_status(&self.deployment, &refs, new_rs, self.now);
        let current = self.deployment.status.clone().unwrap_or_default();
        if status_equal(&current, &status) {
            if self.requeue.is_none() {
                self.requeue = requeue_stuck_deployment(&self.deployment, &status, self.now);
            }
            return;
        }
        self.deployment.status = Some(status);
    }

    fn basis_new<'a>(&self, basis: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
        let new = self.new_rs()?;
        basis
            .iter()
            .find(|rs| rs.metadata.name == new.metadata.name)
    }

    /// The template of the ReplicaSet at `index`.
    pub fn template_of(&self, index: usize) -> Option<&PodTemplateSpec> {
        rs_template(&self.replica_sets[index])
    }
}

/// Outcome of [`Pass::ensure_new_replica_set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewReplicaSet {
    /// The new ReplicaSet is resolved (or absent when creation was not requested).
    Ready,
    /// Its name is taken by another ReplicaSet: `collisionCount` was bumped; end the pass.
    Collision,
}
