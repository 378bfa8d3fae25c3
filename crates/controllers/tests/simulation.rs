//! Deterministic simulation of the Deployment and ReplicaSet planners running together.
//!
//! An in-memory API server (one Deployment, its ReplicaSets, their pods) and a fake clock are
//! driven by a seeded splitmix64 PRNG. Every step:
//!
//! 1. the Deployment planner runs on the stored objects and its actions are applied in order
//!    (stopping at the first failed write, as the reconciler does);
//! 2. the ReplicaSet planner runs for every ReplicaSet and its creations (pods with generated
//!    names, a node, phase Pending) and deletions (pods become terminating) are applied; the
//!    expectations it raised stay pending until the next observation, and a second pass on the
//!    same (stale) pod list with those expectations must not create or delete anything;
//! 3. the invariants are checked (see [`Sim::check`]);
//! 4. random events happen (only during the first `event_steps` steps): template changes (new
//!    images, some broken), roll-backs to an earlier image, scaling, pause/resume, pods
//!    crashing; scheduled events always happen: pods start, become Ready after their delay or
//!    never, crashed pods recover, terminating pods vanish after their grace delay;
//! 5. the informers catch up (expectations are lowered by what is now observed) and every
//!    ReplicaSet is synced again, which writes its fresh status;
//! 6. the clock advances (1–2 s, sometimes 10–30 s).
//!
//! Once the random events stop the Deployment is resumed and the run continues until the
//! rollout settles, within a bound (invariant 4).
//!
//! `SIM_SEED=<n>` runs one seed verbosely; `SIM_SEEDS=<count>` (and `SIM_FIRST=<n>`) change
//! which seeds run. A scaling-event deadlock (the upstream one of kubernetes/kubernetes#138840,
//! fixed in our planner) fails invariant 4. A failing seed prints its whole history (random events and planner actions per step) and the command
//! that reproduces it.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use slipway_controllers::Requeue;
use slipway_controllers::conditions::{
    NEW_REPLICA_SET_AVAILABLE, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING, get_deployment_condition,
    reason,
};
use slipway_controllers::deployment::{self, CreateConflict, DeploymentAction, ObservedDeployment};
use slipway_controllers::fenceposts::{max_surge, max_unavailable};
use slipway_controllers::ownership::controller_of;
use slipway_controllers::pods::{is_available, is_ready};
use slipway_controllers::replicaset::{self, Expectations, ObservedReplicaSet, ReplicaSetPlan};
use slipway_controllers::status::deployment_complete;
use slipway_controllers::template::equal_ignore_hash;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;
use support::{deployment, secs, template, ts};

/// Seeds run by default, and the step budget of the random phase.
const DEFAULT_SEEDS: u64 = 2_000;
const MAX_EVENT_STEPS: u32 = 80;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

// ---------------------------------------------------------------------------------------------
// PRNG

/// splitmix64: tiny, fast, and good enough to drive a simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.next() % items.len() as u64).unwrap_or(0);
        &items[i]
    }
}

fn int_or_percent(rng: &mut Rng) -> IntOrString {
    if rng.chance(50) {
        IntOrString::Int(i32::try_from(rng.range(0, 3)).unwrap_or(0))
    } else {
        let p = *rng.pick(&[0, 10, 20, 25, 33, 50, 75, 100]);
        IntOrString::String(format!("{p}%"))
    }
}

fn is_zero(v: &IntOrString) -> bool {
    matches!(v, IntOrString::Int(0)) || matches!(v, IntOrString::String(s) if s == "0%")
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// World

/// What happens to a pod, decided when it is created.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Starts and turns Ready at this step.
    ReadyAt(u32),
    /// Starts (Running) at this step but never turns Ready.
    NeverReady(u32),
}

#[derive(Clone, Debug)]
struct PodSim {
    fate: Fate,
    /// A crashed pod turns Ready again at this step.
    recover_at: Option<u32>,
    /// A terminating pod vanishes at this step.
    gone_at: Option<u32>,
}

#[derive(Clone, Debug)]
struct Config {
    recreate: bool,
    surge: IntOrString,
    unavailable: IntOrString,
    min_ready: i32,
    deadline: i32,
    history: i32,
    replicas: i32,
    event_steps: u32,
}

impl Config {
    fn random(rng: &mut Rng) -> Config {
        let recreate = rng.chance(25);
        let (surge, unavailable) = loop {
            let s = int_or_percent(rng);
            let u = int_or_percent(rng);
            if !(is_zero(&s) && is_zero(&u)) {
                break (s, u);
            }
        };
        let min_ready = if rng.chance(50) {
            0
        } else {
            i32::try_from(rng.range(1, 5)).unwrap_or(1)
        };
        let deadline = min_ready + i32::try_from(rng.range(1, 40)).unwrap_or(1);
        Config {
            recreate,
            surge,
            unavailable,
            min_ready,
            deadline,
            history: *rng.pick(&[0, 1, 2, 10]),
            replicas: i32::try_from(rng.range(0, 8)).unwrap_or(1),
            event_steps: u32::try_from(rng.range(10, i64::from(MAX_EVENT_STEPS))).unwrap_or(10),
        }
    }

    fn describe(&self) -> String {
        if self.recreate {
            format!(
                "Recreate replicas={} minReadySeconds={} progressDeadlineSeconds={} revisionHistoryLimit={} eventSteps={}",
                self.replicas, self.min_ready, self.deadline, self.history, self.event_steps
            )
        } else {
            format!(
                "RollingUpdate maxSurge={} maxUnavailable={} replicas={} minReadySeconds={} progressDeadlineSeconds={} revisionHistoryLimit={} eventSteps={}",
                show(&self.surge),
                show(&self.unavailable),
                self.replicas,
                self.min_ready,
                self.deadline,
                self.history,
                self.event_steps
            )
        }
    }

    /// Steps allowed for the rollout to settle once the random events stopped (invariant 4).
    /// Each step advances the clock by at least 1 s, so the deadline (plus minReadySeconds)
    /// fits in `deadline + min_ready` steps after the last progress; progress itself is bounded
    /// by the pods to replace (each needs a few steps to be created, start, turn ready and be
    /// counted).
    fn settle_bound(&self, replicas: i32) -> u32 {
        u32::try_from(3 * (self.deadline + self.min_ready) + 12 * replicas.max(self.replicas) + 60)
            .unwrap_or(400)
    }
}

/// Invariant-tracking state (see [`Sim::check`]).
#[derive(Clone, Debug, Default)]
struct Tracking {
    /// Invariant 2 is armed: the world was fully available since the last crash or change of
    /// `spec.replicas`.
    availability_armed: bool,
    /// Invariant 1 scale transient: the pod cap in force before the last change of
    /// `spec.replicas`, kept until the pods fit the current cap again.
    surge_transient_cap: Option<usize>,
    /// Non-terminating pods at the previous check (during a transient they must not grow).
    last_pods: usize,
    transient_steps: u32,
    /// A paused sync pass grew a Recreate ReplicaSet while other pods existed (exempt from
    /// invariant 3 until the pods belong to one ReplicaSet again).
    recreate_paused_overlap: bool,
    /// A violation noticed while applying a write, reported by the next check.
    violation: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    steps: u64,
    complete: u64,
    deadline_exceeded: u64,
    completed_earlier: u64,
    settle_steps_max: u32,
    transient_steps: u64,
    availability_checks: u64,
    crashes: u64,
    template_changes: u64,
    undos: u64,
    scales: u64,
    pauses: u64,
    rs_created: u64,
    rs_deleted: u64,
    pods_created: u64,
    expectation_resyncs: u64,
    recreate_seeds: u64,
    recreate_paused_overlaps: u64,
    availability_disarmed_min_ready: u64,
    /// Digest of the full event history (XOR over seeds when summed).
    history_digest: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.complete += o.complete;
        self.deadline_exceeded += o.deadline_exceeded;
        self.completed_earlier += o.completed_earlier;
        self.settle_steps_max = self.settle_steps_max.max(o.settle_steps_max);
        self.transient_steps += o.transient_steps;
        self.availability_checks += o.availability_checks;
        self.crashes += o.crashes;
        self.template_changes += o.template_changes;
        self.undos += o.undos;
        self.scales += o.scales;
        self.pauses += o.pauses;
        self.rs_created += o.rs_created;
        self.rs_deleted += o.rs_deleted;
        self.pods_created += o.pods_created;
        self.expectation_resyncs += o.expectation_resyncs;
        self.recreate_seeds += o.recreate_seeds;
        self.recreate_paused_overlaps += o.recreate_paused_overlaps;
        self.availability_disarmed_min_ready += o.availability_disarmed_min_ready;
        self.history_digest ^= o.history_digest;
    }
}

struct Sim {
    seed: u64,
    verbose: bool,
    rng: Rng,
    cfg: Config,
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    pod_sim: BTreeMap<String, PodSim>,
    expectations: BTreeMap<String, Expectations>,
    /// Per ReplicaSet: (generation, pods fingerprint) at its last sync.
    last_sync: BTreeMap<String, (i64, u64)>,
    /// Per ReplicaSet: when its availability re-queue comes due.
    requeue_at: BTreeMap<String, Timestamp>,
    now: Timestamp,
    step: u32,
    /// Step index at which the random events stop (after the warm-up).
    quiet_from: u32,
    next_id: u64,
    next_rv: u64,
    images: Vec<String>,
    broken: BTreeSet<String>,
    history: Vec<String>,
    log: Vec<String>,
    track: Tracking,
    stats: Stats,
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn uid_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn image_of_template(t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> String {
    t.and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn owner_uid(p: &Pod) -> String {
    controller_of(&p.metadata)
        .map(|r| r.uid.clone())
        .unwrap_or_default()
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// A digest of what the ReplicaSet controller reads from the pods of ReplicaSet `uid`.
fn pods_fingerprint(uid: &str, pods: &[Pod]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in pods.iter().filter(|p| owner_uid(p) == uid) {
        p.metadata.uid.hash(&mut h);
        terminating(p).hash(&mut h);
        is_ready(p).hash(&mut h);
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .hash(&mut h);
    }
    h.finish()
}

fn progressing_reason(status: &DeploymentStatus) -> String {
    get_deployment_condition(status, PROGRESSING)
        .map(|c| reason(c).to_string())
        .unwrap_or_else(|| "-".into())
}

impl Sim {
    fn new(seed: u64, verbose: bool) -> Sim {
        let mut rng = Rng(seed ^ 0x5EED_0F5E_ED5E_ED00);
        let cfg = Config::random(&mut rng);
        let mut d = deployment(
            cfg.replicas,
            Some(cfg.surge.clone()),
            Some(cfg.unavailable.clone()),
            cfg.recreate,
        );
        if let Some(spec) = d.spec.as_mut() {
            spec.template = template("img:v1");
            spec.min_ready_seconds = Some(cfg.min_ready);
            spec.progress_deadline_seconds = Some(cfg.deadline);
            spec.revision_history_limit = Some(cfg.history);
        }
        let mut stats = Stats::default();
        if cfg.recreate {
            stats.recreate_seeds = 1;
        }
        Sim {
            seed,
            verbose,
            rng,
            cfg,
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            pod_sim: BTreeMap::new(),
            expectations: BTreeMap::new(),
            last_sync: BTreeMap::new(),
            requeue_at: BTreeMap::new(),
            now: ts("2025-01-01T00:00:00Z"),
            step: 0,
            quiet_from: 0,
            next_id: 1,
            next_rv: 10,
            images: vec!["img:v1".into()],
            broken: BTreeSet::new(),
            history: Vec::new(),
            log: Vec::new(),
            track: Tracking::default(),
            stats,
        }
    }

    fn rv(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    fn note(&mut self, s: String) {
        self.log.push(s);
    }

    fn replicas(&self) -> i32 {
        self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }

    fn current_image(&self) -> String {
        image_of_template(self.d.spec.as_ref().map(|s| &s.template))
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    fn rs_label(&self, uid: &str) -> String {
        self.rss
            .iter()
            .find(|r| r.metadata.uid.as_deref() == Some(uid))
            .map(|r| {
                format!(
                    "{}({})",
                    name_of(&r.metadata),
                    image_of_template(r.spec.as_ref().and_then(|s| s.template.as_ref()))
                )
            })
            .unwrap_or_else(|| format!("<deleted {uid}>"))
    }

    /// The ReplicaSet whose template equals the Deployment's (ignoring the hash), if any.
    fn new_rs_uid(&self) -> Option<String> {
        let t = &self.d.spec.as_ref()?.template;
        let mut candidates: Vec<&ReplicaSet> = self
            .rss
            .iter()
            .filter(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|rt| equal_ignore_hash(rt, t))
            })
            .collect();
        candidates.sort_by_key(|rs| {
            (
                rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                name_of(&rs.metadata),
            )
        });
        candidates.first().map(|rs| uid_of(&rs.metadata))
    }

    fn bump_generation(&mut self) {
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
        self.d.metadata.resource_version = Some(self.rv());
    }

    // -- Deployment controller ----------------------------------------------------------------

    fn run_deployment(&mut self) -> Result<(), String> {
        let paused = self.paused();
        let observed = ObservedDeployment {
            deployment: self.d.clone(),
            replica_sets: self.rss.clone(),
            pods: self.pods.clone(),
            now: self.now,
        };
        let plan = deployment::plan(&observed).map_err(|e| format!("deployment plan: {e}"))?;
        for action in plan.actions() {
            if self.cfg.recreate {
                self.check_recreate_growth(action, paused);
            }
            self.note_scale_down_of_unavailable(action);
            if let Err(e) = self.apply_deployment_action(action) {
                self.note(format!("  D: write failed ({e}); rest of the plan dropped"));
                break;
            }
        }
        Ok(())
    }

    /// Invariant 2 exemption: with minReadySeconds > 0, a ReplicaSet scaled down while it has
    /// pods that are Ready but not yet available may lose an available pod instead: the
    /// ReplicaSet controller's deletion order (§13.2) ranks not-ready before ready, then
    /// co-location, then ready time on a log scale, but never looks at availability, while the
    /// Deployment's unhealthy cleanup (§6.3 phase 1) counts those pods as unavailable. Upstream
    /// behaves the same, so invariant 2 is disarmed until the world is fully available again.
    fn note_scale_down_of_unavailable(&mut self, action: &DeploymentAction) {
        let DeploymentAction::UpdateReplicaSet(rs) = action else {
            return;
        };
        if self.cfg.min_ready <= 0 || !self.track.availability_armed {
            return;
        }
        let Some(stored) = self
            .rss
            .iter()
            .find(|r| r.metadata.name == rs.metadata.name)
        else {
            return;
        };
        if rs_replicas(rs) >= rs_replicas(stored) {
            return;
        }
        let uid = uid_of(&stored.metadata);
        let at_risk = self.pods.iter().any(|p| {
            owner_uid(p) == uid
                && !terminating(p)
                && is_ready(p)
                && !is_available(p, self.cfg.min_ready, self.now)
        });
        if at_risk {
            self.track.availability_armed = false;
            self.stats.availability_disarmed_min_ready += 1;
            self.note(format!(
                "  NOTE {} scaled down with Ready-but-not-yet-available pods: invariant 2 disarmed",
                name_of(&rs.metadata)
            ));
        }
    }

    /// The upstream scaling-event deadlock (kubernetes/kubernetes PR #138840): exactly one
    /// active ReplicaSet, already at `spec.replicas`, whose `desired-replicas` annotation
    /// differs. Every pass is then a scaling event (§8.1) whose single-target scale
    /// (§8.2, step 1) changes nothing, so the annotation is never refreshed, the rollout never proceeds and
    /// Progressing is never evaluated.
    fn scaling_event_deadlock(&self) -> bool {
        let replicas = self.replicas();
        let active: Vec<&ReplicaSet> = self.rss.iter().filter(|r| rs_replicas(r) > 0).collect();
        let [only] = active.as_slice() else {
            return false;
        };
        let desired = only
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/desired-replicas"))
            .and_then(|v| v.parse::<i32>().ok());
        rs_replicas(only) == replicas && desired.is_some_and(|d| d != replicas)
    }

    /// Invariant 3, at the source: a Recreate pass must not create or grow a ReplicaSet while
    /// pods (terminating ones included) of another ReplicaSet exist. The paused `sync` pass is
    /// exempt: it runs proportional scaling (§9), whose single-target rule (§8.2 step 1) scales
    /// the new ReplicaSet — or, without one, the newest old one — to `spec.replicas` when no
    /// ReplicaSet is active, without looking at pods (upstream does the same).
    fn check_recreate_growth(&mut self, action: &DeploymentAction, paused: bool) {
        let (uid, name, grows) = match action {
            DeploymentAction::CreateReplicaSet(rs) => {
                (None, name_of(&rs.metadata), rs_replicas(rs) > 0)
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                let stored = self
                    .rss
                    .iter()
                    .find(|r| r.metadata.name == rs.metadata.name);
                let grows = stored.is_some_and(|s| rs_replicas(rs) > rs_replicas(s));
                (Some(uid_of(&rs.metadata)), name_of(&rs.metadata), grows)
            }
            _ => return,
        };
        if !grows {
            return;
        }
        let others: BTreeSet<String> = self
            .pods
            .iter()
            .map(owner_uid)
            .filter(|o| Some(o) != uid.as_ref())
            .collect();
        if others.is_empty() {
            return;
        }
        let labels: Vec<String> = others.iter().map(|u| self.rs_label(u)).collect();
        if paused {
            self.track.recreate_paused_overlap = true;
            self.stats.recreate_paused_overlaps += 1;
            self.note(format!(
                "  NOTE paused sync pass grows {name} while pods of {} exist (documented, exempt from invariant 3)",
                labels.join(", ")
            ));
        } else {
            self.track.violation = Some(format!(
                "invariant 3 (Recreate): the Deployment pass grows {name} while pods of {} exist",
                labels.join(", ")
            ));
        }
    }

    fn apply_deployment_action(&mut self, action: &DeploymentAction) -> Result<(), String> {
        match action {
            DeploymentAction::CreateReplicaSet(rs) => {
                let name = name_of(&rs.metadata);
                if let Some(existing) = self
                    .rss
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                {
                    match deployment::resolve_create_conflict(&self.d, existing) {
                        CreateConflict::Ours => {
                            self.note(format!("  D: create {name}: AlreadyExists (ours)"));
                        }
                        CreateConflict::Collision(updated) => {
                            self.note(format!("  D: create {name}: hash collision"));
                            self.d.status = updated.status.clone();
                            self.d.metadata.resource_version = Some(self.rv());
                        }
                    }
                    return Err("AlreadyExists".into());
                }
                let mut rs = rs.clone();
                rs.metadata.uid = Some(format!("rs-{}", self.next_id));
                self.next_id += 1;
                rs.metadata.creation_timestamp = Some(Time(self.now));
                rs.metadata.generation = Some(1);
                rs.metadata.resource_version = Some(self.rv());
                let replicas = rs_replicas(&rs);
                let image = image_of_template(rs.spec.as_ref().and_then(|s| s.template.as_ref()));
                self.note(format!(
                    "  D: create RS {name} ({image}) with {replicas} (rev {})",
                    rs.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                        .cloned()
                        .unwrap_or_default()
                ));
                self.stats.rs_created += 1;
                self.rss.push(rs);
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                let name = name_of(&rs.metadata);
                let rv = self.rv();
                let stored = self
                    .rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                    .ok_or(format!("update of missing RS {name}"))?;
                if stored.metadata.resource_version != rs.metadata.resource_version {
                    return Err(format!("conflict updating RS {name}"));
                }
                let before = rs_replicas(stored);
                let after = rs_replicas(rs);
                if stored.spec != rs.spec {
                    stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
                }
                stored.spec = rs.spec.clone();
                stored.metadata.annotations = rs.metadata.annotations.clone();
                stored.metadata.labels = rs.metadata.labels.clone();
                stored.metadata.resource_version = Some(rv);
                if before == after {
                    self.note(format!("  D: update RS {name} (annotations)"));
                } else {
                    self.note(format!("  D: scale RS {name} {before}->{after}"));
                }
            }
            DeploymentAction::DeleteReplicaSet(key) => {
                let Some(pos) = self
                    .rss
                    .iter()
                    .position(|r| r.metadata.name.as_deref() == Some(key.name.as_str()))
                else {
                    return Err(format!("delete of missing RS {}", key.name));
                };
                let rs = self.rss.remove(pos);
                let uid = uid_of(&rs.metadata);
                self.expectations.remove(&uid);
                // Garbage collection: the ReplicaSet's remaining pods are deleted.
                let mut orphans = 0;
                for i in 0..self.pods.len() {
                    if owner_uid(&self.pods[i]) == uid && !terminating(&self.pods[i]) {
                        self.start_termination(i);
                        orphans += 1;
                    }
                }
                self.stats.rs_deleted += 1;
                self.note(format!(
                    "  D: delete RS {} (history cleanup; GC deletes {orphans} live pods)",
                    key.name
                ));
            }
            DeploymentAction::UpdateDeploymentStatus(d) => {
                if d.metadata.resource_version != self.d.metadata.resource_version {
                    return Err("conflict updating deployment status".into());
                }
                let before = self.status();
                self.d.status = d.status.clone();
                self.d.metadata.annotations = d.metadata.annotations.clone();
                self.d.metadata.resource_version = Some(self.rv());
                let after = self.status();
                let (rb, ra) = (progressing_reason(&before), progressing_reason(&after));
                if rb != ra {
                    self.note(format!("  D: status Progressing {rb} -> {ra}"));
                    if ra == NEW_REPLICA_SET_AVAILABLE && !deployment_complete(&self.d, &after) {
                        self.track.violation = Some(format!(
                            "invariant 5: Progressing NewReplicaSetAvailable written with an incomplete status {after:?}"
                        ));
                    }
                }
            }
            DeploymentAction::UpdateDeployment(_) => {
                return Err(
                    "unexpected Deployment spec update (no rollback annotation is used)".into(),
                );
            }
            DeploymentAction::AdoptReplicaSet(_) | DeploymentAction::ReleaseReplicaSet(_) => {
                return Err("unexpected ownership change".into());
            }
        }
        Ok(())
    }

    // -- ReplicaSet controller ----------------------------------------------------------------

    fn observe_rs(&self, index: usize, pods: &[Pod]) -> ObservedReplicaSet {
        let rs = &self.rss[index];
        let uid = uid_of(&rs.metadata);
        let mut own = Vec::new();
        let mut related = Vec::new();
        for p in pods {
            if owner_uid(p) == uid {
                own.push(Arc::new(p.clone()));
            } else if !terminating(p) {
                related.push(Arc::new(p.clone()));
            }
        }
        ObservedReplicaSet {
            replica_set: rs.clone(),
            pods: own,
            related_pods: related,
            expectations: self.expectations.get(&uid).copied().unwrap_or_default(),
            now: self.now,
        }
    }

    /// One round of ReplicaSet syncs. With `resync`, each ReplicaSet that just created or
    /// deleted is synced a second time on the same (stale) pod list with its pending
    /// expectations, which must plan nothing.
    fn run_replica_sets(&mut self, resync: bool) -> Result<(), String> {
        let snapshot = self.pods.clone();
        let uids: Vec<String> = self.rss.iter().map(|r| uid_of(&r.metadata)).collect();
        for uid in uids {
            let Some(index) = self.rss.iter().position(|r| uid_of(&r.metadata) == uid) else {
                continue;
            };
            // Event-driven, as the reconciler: a ReplicaSet is synced only when its spec
            // (generation) or one of its pods changed since its last sync, or when the
            // availability re-queue the planner asked for has come due.
            let key = (
                self.rss[index].metadata.generation.unwrap_or(0),
                pods_fingerprint(&uid, &snapshot),
            );
            let due = self.requeue_at.get(&uid).is_some_and(|t| *t <= self.now);
            if !due && self.last_sync.get(&uid) == Some(&key) {
                continue;
            }
            self.last_sync.insert(uid.clone(), key);
            let observed = self.observe_rs(index, &snapshot);
            let plan = replicaset::plan(&observed).map_err(|e| format!("replicaset plan: {e}"))?;
            match plan.requeue {
                Some(Requeue::After(d)) => {
                    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                    let at = self
                        .now
                        .checked_add(k8s_openapi::jiff::SignedDuration::from_nanos(nanos))
                        .unwrap_or(self.now);
                    self.requeue_at.insert(uid.clone(), at);
                }
                Some(Requeue::Now) => {
                    self.requeue_at.insert(uid.clone(), self.now);
                }
                None => {
                    self.requeue_at.remove(&uid);
                }
            }
            let acted = !plan.create.is_empty() || !plan.delete.is_empty();
            self.apply_rs_plan(index, &plan)?;
            if resync && acted {
                self.stats.expectation_resyncs += 1;
                let Some(index) = self.rss.iter().position(|r| uid_of(&r.metadata) == uid) else {
                    continue;
                };
                let again = self.observe_rs(index, &snapshot);
                let plan2 =
                    replicaset::plan(&again).map_err(|e| format!("replicaset plan: {e}"))?;
                if !plan2.create.is_empty() || !plan2.delete.is_empty() {
                    return Err(format!(
                        "RS {} planned {} creations / {} deletions with pending expectations {:?}",
                        self.rs_label(&uid),
                        plan2.create.len(),
                        plan2.delete.len(),
                        again.expectations
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply_rs_plan(&mut self, index: usize, plan: &ReplicaSetPlan) -> Result<(), String> {
        let uid = uid_of(&self.rss[index].metadata);
        if !plan.ownership.is_empty() {
            return Err(format!(
                "unexpected pod ownership change for {}",
                self.rs_label(&uid)
            ));
        }
        if !plan.create.is_empty() {
            self.expectations.insert(
                uid.clone(),
                Expectations {
                    pending_creations: i32::try_from(plan.create.len()).unwrap_or(i32::MAX),
                    pending_deletions: 0,
                },
            );
            let mut names = Vec::new();
            for pod in &plan.create {
                let mut pod = pod.clone();
                let id = self.next_id;
                self.next_id += 1;
                let name = format!(
                    "{}{id}",
                    pod.metadata.generate_name.clone().unwrap_or_default()
                );
                pod.metadata.name = Some(name.clone());
                pod.metadata.uid = Some(format!("pod-{id}"));
                pod.metadata.creation_timestamp = Some(Time(self.now));
                pod.metadata.resource_version = Some(self.rv());
                if let Some(spec) = pod.spec.as_mut() {
                    spec.node_name = Some((*self.rng.pick(&NODES)).to_string());
                }
                pod.status = Some(PodStatus {
                    phase: Some("Pending".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "False".into(),
                        last_transition_time: Some(Time(self.now)),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                let image = image_of_template(Some(&k8s_openapi::api::core::v1::PodTemplateSpec {
                    metadata: None,
                    spec: pod.spec.clone(),
                }));
                let quiet = self.step >= self.quiet_from;
                let start = self.step + u32::try_from(self.rng.range(0, 1)).unwrap_or(0);
                let fate = if self.broken.contains(&image) || (!quiet && self.rng.chance(8)) {
                    Fate::NeverReady(start)
                } else {
                    Fate::ReadyAt(start + u32::try_from(self.rng.range(0, 4)).unwrap_or(0))
                };
                self.pod_sim.insert(
                    format!("pod-{id}"),
                    PodSim {
                        fate,
                        recover_at: None,
                        gone_at: None,
                    },
                );
                names.push(format!("{name}[{fate:?}]"));
                self.pods.push(pod);
                self.stats.pods_created += 1;
            }
            self.note(format!(
                "  RS {}: create {} pods {}",
                self.rs_label(&uid),
                names.len(),
                names.join(" ")
            ));
        }
        if !plan.delete.is_empty() {
            self.expectations.insert(
                uid.clone(),
                Expectations {
                    pending_creations: 0,
                    pending_deletions: i32::try_from(plan.delete.len()).unwrap_or(i32::MAX),
                },
            );
            let mut names = Vec::new();
            for key in &plan.delete {
                match self
                    .pods
                    .iter()
                    .position(|p| p.metadata.uid.as_deref() == Some(key.uid.as_str()))
                {
                    Some(i) if !terminating(&self.pods[i]) => {
                        let ready = is_ready(&self.pods[i]);
                        self.start_termination(i);
                        names.push(format!(
                            "{}{}",
                            key.name,
                            if ready { "" } else { "(unready)" }
                        ));
                    }
                    _ => {
                        // NotFound / already terminating: the reconciler lowers the expectation.
                        if let Some(e) = self.expectations.get_mut(&uid) {
                            e.pending_deletions -= 1;
                        }
                        names.push(format!("{}(not found)", key.name));
                    }
                }
            }
            self.note(format!(
                "  RS {}: delete {}",
                self.rs_label(&uid),
                names.join(" ")
            ));
        }
        if let Some(status) = &plan.status {
            let rv = self.rv();
            let rs = &mut self.rss[index];
            rs.status = Some(status.clone());
            rs.metadata.resource_version = Some(rv);
        }
        Ok(())
    }

    fn start_termination(&mut self, i: usize) {
        self.pods[i].metadata.deletion_timestamp = Some(Time(self.now));
        let uid = uid_of(&self.pods[i].metadata);
        let delay = u32::try_from(self.rng.range(0, 3)).unwrap_or(0);
        let gone = self.step + 1 + delay;
        if let Some(s) = self.pod_sim.get_mut(&uid) {
            s.gone_at = Some(gone);
        }
    }

    /// The informers catch up: every creation and deletion sent so far is observed.
    fn observe_all(&mut self) {
        self.expectations.clear();
    }

    // -- Random and scheduled events ----------------------------------------------------------

    fn scheduled_events(&mut self) {
        let step = self.step;
        let now = self.now;
        let mut notes = Vec::new();
        let mut gone = Vec::new();
        for p in &mut self.pods {
            let uid = uid_of(&p.metadata);
            let Some(sim) = self.pod_sim.get_mut(&uid) else {
                continue;
            };
            if sim.gone_at.is_some_and(|g| g <= step) {
                gone.push(uid.clone());
                continue;
            }
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let status = p.status.get_or_insert_with(Default::default);
            let phase = status.phase.clone().unwrap_or_default();
            let ready_cond = status
                .conditions
                .get_or_insert_with(Vec::new)
                .iter_mut()
                .find(|c| c.type_ == "Ready");
            let Some(cond) = ready_cond else { continue };
            let name = p.metadata.name.clone().unwrap_or_default();
            match sim.fate {
                Fate::ReadyAt(at) if at <= step && phase == "Pending" => {
                    status.phase = Some("Running".into());
                    cond.status = "True".into();
                    cond.last_transition_time = Some(Time(now));
                    notes.push(format!("{name} ready"));
                }
                Fate::NeverReady(at) if at <= step && phase == "Pending" => {
                    status.phase = Some("Running".into());
                    notes.push(format!("{name} running, not ready"));
                }
                _ => {}
            }
            if sim.recover_at.is_some_and(|r| r <= step) && cond.status == "False" {
                sim.recover_at = None;
                cond.status = "True".into();
                cond.last_transition_time = Some(Time(now));
                notes.push(format!("{name} recovered"));
            }
        }
        if !gone.is_empty() {
            self.pods
                .retain(|p| !gone.contains(p.metadata.uid.as_ref().unwrap_or(&String::new())));
            for g in &gone {
                self.pod_sim.remove(g);
            }
            notes.push(format!("{} terminating pods gone", gone.len()));
        }
        if !notes.is_empty() {
            self.note(format!("  pods: {}", notes.join(", ")));
        }
    }

    fn random_events(&mut self) {
        // A pod crashes: Ready -> not Ready; most recover after a while.
        if self.rng.chance(4) {
            let candidates: Vec<usize> = (0..self.pods.len())
                .filter(|&i| !terminating(&self.pods[i]) && is_ready(&self.pods[i]))
                .collect();
            if !candidates.is_empty() {
                let i = *self.rng.pick(&candidates);
                let recover = if self.rng.chance(70) {
                    Some(self.step + 1 + u32::try_from(self.rng.range(0, 5)).unwrap_or(0))
                } else {
                    None
                };
                let now = self.now;
                let uid = uid_of(&self.pods[i].metadata);
                if let Some(c) = self.pods[i]
                    .status
                    .as_mut()
                    .and_then(|s| s.conditions.as_mut())
                    .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
                {
                    c.status = "False".into();
                    c.last_transition_time = Some(Time(now));
                }
                if let Some(s) = self.pod_sim.get_mut(&uid) {
                    s.recover_at = recover;
                }
                self.track.availability_armed = false;
                self.stats.crashes += 1;
                let name = name_of(&self.pods[i].metadata);
                self.note(format!("  EVENT crash {name} (recovers at {recover:?})"));
            }
        }
        // The template changes: a new image (a quarter of them broken), or back to an earlier
        // one (kubectl rollout undo).
        if self.rng.chance(5) {
            let image = if self.images.len() > 1 && self.rng.chance(20) {
                self.stats.undos += 1;
                let current = self.current_image();
                let earlier: Vec<String> = self
                    .images
                    .iter()
                    .filter(|i| **i != current)
                    .cloned()
                    .collect();
                self.rng.pick(&earlier).clone()
            } else {
                self.stats.template_changes += 1;
                let image = format!("img:v{}", self.images.len() + 1);
                if self.rng.chance(25) {
                    self.broken.insert(image.clone());
                }
                self.images.push(image.clone());
                image
            };
            if let Some(spec) = self.d.spec.as_mut() {
                spec.template = template(&image);
            }
            self.bump_generation();
            let broken = if self.broken.contains(&image) {
                " (broken)"
            } else {
                ""
            };
            self.note(format!("  EVENT template -> {image}{broken}"));
        }
        // Scaling.
        if self.rng.chance(5) {
            let before = self.replicas();
            let after = if self.rng.chance(50) {
                i32::try_from(self.rng.range(0, 10)).unwrap_or(0)
            } else {
                (before + i32::try_from(self.rng.range(-2, 2)).unwrap_or(0)).max(0)
            };
            if after != before {
                self.scale_to(after);
            }
        }
        // Pause / resume.
        if self.rng.chance(3) {
            let paused = !self.paused();
            self.set_paused(paused);
        }
    }

    fn scale_to(&mut self, replicas: i32) {
        let before = self.replicas();
        let old_cap = self.pod_cap();
        if let Some(spec) = self.d.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        self.bump_generation();
        self.stats.scales += 1;
        self.track.availability_armed = false;
        let cap = self.track.surge_transient_cap.unwrap_or(0).max(old_cap);
        self.track.surge_transient_cap = Some(cap);
        self.note(format!("  EVENT scale {before} -> {replicas}"));
    }

    fn set_paused(&mut self, paused: bool) {
        if let Some(spec) = self.d.spec.as_mut() {
            spec.paused = Some(paused);
        }
        self.bump_generation();
        self.stats.pauses += 1;
        self.note(format!(
            "  EVENT {}",
            if paused { "pause" } else { "resume" }
        ));
    }

    // -- Invariants ---------------------------------------------------------------------------

    /// `spec.replicas + MaxSurge(d)` for the current spec (MaxSurge is 0 for Recreate; the
    /// percent is rounded up against the current `spec.replicas`).
    fn pod_cap(&self) -> usize {
        usize::try_from(self.replicas() + max_surge(&self.d)).unwrap_or(0)
    }

    fn live_pods(&self) -> usize {
        self.pods.iter().filter(|p| !terminating(p)).count()
    }

    fn available_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| !terminating(p) && is_available(p, self.cfg.min_ready, self.now))
            .count()
    }

    /// Invariants checked after the controllers acted in a step (before the random events).
    ///
    /// 1. Surge: non-terminating pods ≤ `spec.replicas + MaxSurge` resolved for the current
    ///    spec. Transient: after a change of `spec.replicas`, pods may exceed the new cap but
    ///    never the cap in force before the change (the larger of both if several changes
    ///    overlap), and their number may not grow, until they fit the new cap again. That is
    ///    the documented behaviour of proportional scaling (§8.2): it distributes
    ///    `replicas + maxSurge` over the active ReplicaSets, but the leftover clamp at 0 and
    ///    the fact that a RollingUpdate pass only removes old pods within the availability
    ///    budget (§6.3) can leave more pods than the new cap for a few steps.
    /// 2. Availability (RollingUpdate only): available pods (non-terminating, Ready for more
    ///    than minReadySeconds at `now`) ≥ `spec.replicas − MaxUnavailable`, checked while
    ///    armed. Armed after the warm-up (the first ReplicaSet fully available) and re-armed
    ///    whenever available pods ≥ `spec.replicas`; disarmed by any pod crash (Ready → not
    ///    Ready: the controller cannot prevent it) and by any change of `spec.replicas` (a
    ///    scale-down shrinks old ReplicaSets proportionally without looking at availability; a
    ///    scale-up raises the bar before new pods can exist).
    /// 3. Recreate: all pods that exist (terminating ones included) belong to one ReplicaSet,
    ///    except after a paused sync pass grew a ReplicaSet (see `check_recreate_growth`) until
    ///    the pods belong to one ReplicaSet again; unpaused passes are checked at the source.
    /// 5. The Progressing reason NewReplicaSetAvailable is only written (on a transition to
    ///    it) together with a status that is DeploymentComplete.
    fn check(&mut self) -> Result<(), String> {
        let live = self.live_pods();
        let cap = self.pod_cap();
        // (1)
        if let Some(old_cap) = self.track.surge_transient_cap {
            if live <= cap {
                self.track.surge_transient_cap = None;
            } else {
                self.track.transient_steps += 1;
                self.stats.transient_steps += 1;
                if live > old_cap.max(cap) {
                    return Err(format!(
                        "invariant 1 (surge, scale transient): {live} non-terminating pods > pre-scale cap {old_cap} (current cap {cap})"
                    ));
                }
                if live > self.track.last_pods {
                    return Err(format!(
                        "invariant 1 (surge, scale transient): pods grew {} -> {live} while above the cap {cap}",
                        self.track.last_pods
                    ));
                }
            }
        }
        if self.track.surge_transient_cap.is_none() && live > cap {
            return Err(format!(
                "invariant 1 (surge): {live} non-terminating pods > spec.replicas {} + maxSurge {} = {cap}",
                self.replicas(),
                max_surge(&self.d)
            ));
        }
        self.track.last_pods = live;
        // (2)
        if !self.cfg.recreate {
            let available = self.available_pods();
            let replicas = usize::try_from(self.replicas()).unwrap_or(0);
            if self.track.availability_armed {
                self.stats.availability_checks += 1;
                let min = usize::try_from(self.replicas() - max_unavailable(&self.d)).unwrap_or(0);
                if available < min {
                    return Err(format!(
                        "invariant 2 (availability): {available} available pods < spec.replicas {} - maxUnavailable {} = {min}",
                        self.replicas(),
                        max_unavailable(&self.d)
                    ));
                }
            } else if available >= replicas {
                self.track.availability_armed = true;
            }
        }
        // (3)
        if self.cfg.recreate {
            let owners: BTreeSet<String> = self.pods.iter().map(owner_uid).collect();
            if owners.len() <= 1 {
                self.track.recreate_paused_overlap = false;
            } else if !self.track.recreate_paused_overlap {
                let labels: Vec<String> = owners.iter().map(|u| self.rs_label(u)).collect();
                return Err(format!(
                    "invariant 3 (Recreate): pods of several ReplicaSets exist at once: {}",
                    labels.join(", ")
                ));
            }
        }
        // (5)
        if let Some(e) = self.track.violation.take() {
            return Err(e);
        }
        Ok(())
    }

    /// Invariant 4, evaluated on the stored status after each step of the quiet phase:
    /// settled when DeploymentComplete holds, when Progressing is ProgressDeadlineExceeded, or
    /// when Progressing is NewReplicaSetAvailable with `replicas == updatedReplicas` and the
    /// generation observed (the rollout of this template completed earlier; per §12.4 step 3 a
    /// later pod failure or scale-up is then reported only through Available).
    fn settled(&self) -> Option<&'static str> {
        let status = self.status();
        let observed =
            status.observed_generation.unwrap_or(0) >= self.d.metadata.generation.unwrap_or(0);
        if deployment_complete(&self.d, &status) {
            // The status must describe the world: every live pod runs the current template.
            return Some("complete");
        }
        match progressing_reason(&status).as_str() {
            PROGRESS_DEADLINE_EXCEEDED => Some("deadline"),
            NEW_REPLICA_SET_AVAILABLE if observed && status.replicas == status.updated_replicas => {
                Some("completed-earlier")
            }
            _ => None,
        }
    }

    fn world_summary(&self) -> String {
        let mut s = String::new();
        let status = self.status();
        let _ = write!(
            s,
            "    world: replicas={} paused={} image={} gen={} | status r={} upd={} ready={} avail={} obsGen={} Progressing={} | live pods={} available={} cap={}",
            self.replicas(),
            self.paused(),
            self.current_image(),
            self.d.metadata.generation.unwrap_or(0),
            status.replicas.unwrap_or(0),
            status.updated_replicas.unwrap_or(0),
            status.ready_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
            status.observed_generation.unwrap_or(0),
            progressing_reason(&status),
            self.live_pods(),
            self.available_pods(),
            self.pod_cap(),
        );
        for rs in &self.rss {
            let uid = uid_of(&rs.metadata);
            let live = self
                .pods
                .iter()
                .filter(|p| owner_uid(p) == uid && !terminating(p))
                .count();
            let term = self
                .pods
                .iter()
                .filter(|p| owner_uid(p) == uid && terminating(p))
                .count();
            let st = rs.status.clone().unwrap_or_default();
            let _ = write!(
                s,
                "\n      {} spec={} status(r={} avail={}) pods live={live} terminating={term}",
                self.rs_label(&uid),
                rs_replicas(rs),
                st.replicas,
                st.available_replicas.unwrap_or(0),
            );
        }
        s
    }

    fn flush_step(&mut self, header: String) {
        let mut text = header;
        for l in self.log.drain(..) {
            text.push('\n');
            text.push_str(&l);
        }
        if self.verbose {
            text.push('\n');
            text.push_str(&self.world_summary());
            println!("{text}");
        }
        self.history.push(text);
    }

    /// One simulation step (see the module documentation).
    fn one_step(&mut self, random: bool) -> Result<(), String> {
        self.run_deployment()?;
        self.run_replica_sets(true)?;
        self.check()?;
        if random {
            self.random_events();
        }
        self.scheduled_events();
        self.observe_all();
        self.run_replica_sets(false)?;
        let dt = if self.rng.chance(5) {
            self.rng.range(10, 30)
        } else {
            self.rng.range(1, 2)
        };
        self.now = secs(self.now, dt);
        self.step += 1;
        self.stats.steps += 1;
        Ok(())
    }

    fn fail(&mut self, message: String) -> String {
        let header = format!(
            "seed {} step {} (t=+{}s): {message}",
            self.seed,
            self.step,
            self.now.as_second() - ts("2025-01-01T00:00:00Z").as_second()
        );
        self.log.push(self.world_summary());
        self.flush_step(format!("step {} FAILED", self.step));
        format!(
            "{header}\nconfig: {}\nhistory:\n{}\nreproduce: SIM_SEED={} cargo test -p slipway-controllers --test simulation -- --nocapture",
            self.cfg.describe(),
            self.history.join("\n"),
            self.seed
        )
    }

    fn run(self) -> Result<Stats, String> {
        self.run_inner().map(|(mut stats, history)| {
            let mut h = DefaultHasher::new();
            history.hash(&mut h);
            stats.history_digest = h.finish();
            stats
        })
    }

    fn run_inner(mut self) -> Result<(Stats, Vec<String>), String> {
        if self.verbose {
            println!("seed {}: {}", self.seed, self.cfg.describe());
        }
        // Warm-up: the first ReplicaSet rolls out and becomes fully available, no events.
        let mut warm = 0;
        loop {
            let t = self.now.as_second() - ts("2025-01-01T00:00:00Z").as_second();
            if let Err(e) = self.one_step(false) {
                return Err(self.fail(e));
            }
            self.flush_step(format!("step {} (warm-up, t=+{t}s)", self.step - 1));
            warm += 1;
            let full = self.available_pods() == usize::try_from(self.replicas()).unwrap_or(0)
                && self.live_pods() == self.available_pods();
            if full && deployment_complete(&self.d, &self.status()) {
                break;
            }
            if warm > 40 {
                let msg = "warm-up did not complete within 40 steps".to_string();
                return Err(self.fail(msg));
            }
        }
        self.track.availability_armed = true;
        self.quiet_from = self.step + self.cfg.event_steps;
        while self.step < self.quiet_from {
            let t = self.now.as_second() - ts("2025-01-01T00:00:00Z").as_second();
            if let Err(e) = self.one_step(true) {
                return Err(self.fail(e));
            }
            self.flush_step(format!("step {} (t=+{t}s)", self.step - 1));
        }
        // Quiet phase: resume, then no more random events.
        if self.paused() {
            self.set_paused(false);
        }
        let bound = self.cfg.settle_bound(self.replicas());
        let start = self.step;
        let mut deadlocked = 0;
        loop {
            let t = self.now.as_second() - ts("2025-01-01T00:00:00Z").as_second();
            if let Err(e) = self.one_step(false) {
                return Err(self.fail(e));
            }
            self.flush_step(format!("step {} (quiet, t=+{t}s)", self.step - 1));
            let elapsed = self.step - start;
            if let Some(how) = self.settled() {
                if how == "complete" {
                    let live = self.live_pods();
                    let new_uid = self.new_rs_uid().unwrap_or_default();
                    let current = self
                        .pods
                        .iter()
                        .filter(|p| !terminating(p) && owner_uid(p) == new_uid)
                        .count();
                    let replicas = usize::try_from(self.replicas()).unwrap_or(0);
                    if live != replicas || current != replicas {
                        let msg = format!(
                            "DeploymentComplete but the world has {live} live pods, {current} of the current template, spec.replicas {replicas}"
                        );
                        return Err(self.fail(msg));
                    }
                }
                match how {
                    "complete" => self.stats.complete += 1,
                    "deadline" => self.stats.deadline_exceeded += 1,
                    _ => self.stats.completed_earlier += 1,
                }
                self.stats.settle_steps_max = self.stats.settle_steps_max.max(elapsed);
                if self.verbose {
                    println!(
                        "seed {}: settled ({how}) {elapsed} steps after the events stopped",
                        self.seed
                    );
                }
                return Ok((self.stats, self.history));
            }
            if self.scaling_event_deadlock() {
                deadlocked += 1;
            } else {
                deadlocked = 0;
            }
            if deadlocked >= 3 {
                let msg = format!(
                    "invariant 4: scaling-event deadlock (kubernetes/kubernetes PR #138840): the only active ReplicaSet is at spec.replicas {} but its desired-replicas annotation differs, so every pass is a no-op scaling event and the rollout never completes nor times out",
                    self.replicas()
                );
                return Err(self.fail(msg));
            }
            if elapsed >= bound {
                let msg = format!(
                    "invariant 4: rollout neither complete nor ProgressDeadlineExceeded {elapsed} steps after the random events stopped (bound {bound})"
                );
                return Err(self.fail(msg));
            }
        }
    }
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn simulate_deployment_rollouts() {
    if let Some(seed) = env_u64("SIM_SEED") {
        match Sim::new(seed, true).run() {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(e) => panic!("{e}"),
        }
        return;
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let started = Instant::now();
    let mut total = Stats::default();
    let mut failures: Vec<(u64, String)> = Vec::new();
    for seed in first..first + count {
        match Sim::new(seed, false).run() {
            Ok(stats) => total.add(&stats),
            Err(e) => failures.push((seed, e)),
        }
    }
    println!(
        "simulated {count} seeds, {} steps in {:.1?}: {total:?}",
        total.steps,
        started.elapsed()
    );
    if let Some((_, first)) = failures.first() {
        let seeds: Vec<String> = failures.iter().map(|(s, _)| s.to_string()).collect();
        panic!(
            "{} of {count} seeds failed: {}\n\nfirst failure:\n{first}",
            failures.len(),
            seeds.join(" ")
        );
    }
}

#[test]
fn simulation_is_deterministic() {
    for seed in [3, 694, 1234] {
        let a = Sim::new(seed, false).run();
        let b = Sim::new(seed, false).run();
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(
                (a.history_digest, a.steps),
                (b.history_digest, b.steps),
                "seed {seed} did not reproduce"
            ),
            (Err(a), Err(b)) => assert_eq!(a, b, "seed {seed} did not reproduce"),
            _ => panic!("seed {seed} did not reproduce"),
        }
    }
}
