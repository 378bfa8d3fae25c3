//! Behaviour of the planners beyond the reference tables: events, conditions, collisions,
//! adoption, pause, pod-template-hash, and the ReplicaSet controller.

mod support;

use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_controllers::annotations::{POD_TEMPLATE_HASH_LABEL, REVISION};
use slipway_controllers::conditions::{self, PROGRESSING};
use slipway_controllers::deployment::{self, CreateConflict, DeploymentAction, ObservedDeployment};
use slipway_controllers::hash::compute_hash;
use slipway_controllers::ownership::{OwnershipChange, controller_ref};
use slipway_controllers::replicaset::{self, Expectations, ObservedReplicaSet};
use slipway_controllers::{EventType, Requeue};
use std::sync::Arc;
use support::*;

fn observe(
    d: &k8s_openapi::api::apps::v1::Deployment,
    rss: Vec<k8s_openapi::api::apps::v1::ReplicaSet>,
) -> ObservedDeployment {
    ObservedDeployment {
        deployment: d.clone(),
        replica_sets: rss,
        pods: Vec::new(),
        now: ts("2024-01-01T00:00:00Z"),
    }
}

#[test]
fn hash_is_stable_label_safe_and_ignores_the_hash_label() {
    let t = template("img:v1");
    let h = compute_hash(&t, None);
    assert_eq!(h, compute_hash(&t, None));
    assert!(!h.is_empty() && h.len() <= 10);
    assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
    let mut labelled = t.clone();
    labelled
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .map(|l| l.insert(POD_TEMPLATE_HASH_LABEL.into(), "x".into()));
    assert_eq!(h, compute_hash(&labelled, None));
    assert_ne!(h, compute_hash(&template("img:v2"), None));
    assert_ne!(h, compute_hash(&t, Some(1)));
    assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
    assert_eq!(
        slipway_controllers::hash::safe_encode("0123456789"),
        "456789bcdf"
    );
}

#[test]
fn first_sync_creates_the_new_replica_set_with_events_and_conditions() {
    let d = deployment(
        3,
        Some(IntOrString::String("25%".into())),
        Some(IntOrString::String("25%".into())),
        false,
    );
    let plan = deployment::plan(&observe(&d, vec![])).expect("plan");
    let steps: Vec<_> = plan.steps.iter().collect();
    assert_eq!(steps.len(), 2);
    let DeploymentAction::CreateReplicaSet(rs) = &steps[0].action else {
        panic!("expected create")
    };
    let hash = compute_hash(&d.spec.clone().unwrap_or_default().template, None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let owner = &rs.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (
            owner.controller,
            owner.block_owner_deletion,
            owner.kind.as_str()
        ),
        (Some(true), Some(true), "Deployment")
    );
    let sel = rs
        .spec
        .as_ref()
        .map(|s| s.selector.match_labels.clone().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(sel.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    let ann = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(
        ann.get("deployment.kubernetes.io/desired-replicas")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        ann.get("deployment.kubernetes.io/max-replicas")
            .map(String::as_str),
        Some("4")
    );
    assert_eq!(
        steps[0].events[0].message,
        format!("Scaled up replica set web-{hash} to 3")
    );
    let DeploymentAction::UpdateDeploymentStatus(updated) = &steps[1].action else {
        panic!("expected status")
    };
    assert_eq!(
        updated
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get(REVISION)
            .map(String::as_str),
        Some("1")
    );
    let status = updated.status.clone().unwrap_or_default();
    let progressing =
        conditions::get_deployment_condition(&status, PROGRESSING).expect("progressing");
    assert_eq!(conditions::reason(progressing), "NewReplicaSetCreated");
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn scale_events_use_the_from_wording() {
    let mut cluster = Cluster::new(
        deployment(
            10,
            Some(IntOrString::Int(3)),
            Some(IntOrString::Int(2)),
            false,
        ),
        ts("2024-01-01T00:00:00Z"),
    );
    if let Some(spec) = cluster.deployment.spec.as_mut() {
        spec.template = template("img:v1");
    }
    cluster.seed_replica_set("web-v1", "img:v1", 10, 1);
    cluster.step().expect("settle");
    cluster.set_image("img:v2");
    let observed = ObservedDeployment {
        deployment: cluster.deployment.clone(),
        replica_sets: cluster.replica_sets.clone(),
        pods: vec![],
        now: cluster.now,
    };
    let plan = deployment::plan(&observed).expect("plan");
    let messages: Vec<String> = plan
        .all_events()
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert!(
        messages[0].starts_with("Scaled up replica set web-") && messages[0].ends_with(" to 3"),
        "{messages:?}"
    );
    assert_eq!(messages[1], "Scaled down replica set web-v1 to 8 from 10");
}

#[test]
fn name_collision_bumps_collision_count() {
    let d = deployment(
        1,
        Some(IntOrString::Int(1)),
        Some(IntOrString::Int(0)),
        false,
    );
    let hash = compute_hash(&d.spec.clone().unwrap_or_default().template, None);
    let taken = replica_set(
        &d,
        &format!("web-{hash}"),
        "img:other",
        0,
        ts("2024-01-01T00:00:00Z"),
    );
    let plan = deployment::plan(&observe(&d, vec![taken.clone()])).expect("plan");
    assert_eq!(plan.new_status().and_then(|s| s.collision_count), Some(1));
    assert!(
        !plan
            .actions()
            .any(|a| matches!(a, DeploymentAction::CreateReplicaSet(_)))
    );
    assert_eq!(plan.requeue, Some(Requeue::Now));
    match deployment::resolve_create_conflict(&d, &taken) {
        CreateConflict::Collision(updated) => {
            assert_eq!(updated.status.and_then(|s| s.collision_count), Some(1))
        }
        CreateConflict::Ours => panic!("not ours"),
    }
    let failure =
        deployment::create_failed(&d, "web-x", "quota exceeded", ts("2024-01-01T00:00:00Z"));
    assert_eq!(
        failure.event.message,
        "Failed to create new replica set \"web-x\": quota exceeded"
    );
    assert_eq!(failure.event.event_type, EventType::Warning);
    let status = failure
        .status_update
        .and_then(|d| d.status)
        .unwrap_or_default();
    assert_eq!(
        conditions::get_deployment_condition(&status, PROGRESSING).map(|c| c.status.clone()),
        Some("False".into())
    );
}

#[test]
fn orphans_are_adopted_and_mismatching_replica_sets_released() {
    let d = deployment(
        1,
        Some(IntOrString::Int(1)),
        Some(IntOrString::Int(0)),
        false,
    );
    let mut orphan = replica_set(&d, "orphan", "img:v1", 1, ts("2024-01-01T00:00:00Z"));
    orphan.metadata.owner_references = None;
    let mut stray = replica_set(&d, "stray", "img:v1", 1, ts("2024-01-01T00:00:00Z"));
    stray.metadata.labels = Some(labels(&[("app", "other")]));
    let mut foreign = replica_set(&d, "foreign", "img:v1", 1, ts("2024-01-01T00:00:00Z"));
    foreign
        .metadata
        .owner_references
        .iter_mut()
        .for_each(|r| r[0].uid = "someone-else".into());
    let plan = deployment::plan(&observe(&d, vec![orphan, stray, foreign])).expect("plan");
    let kinds: Vec<(String, bool)> = plan
        .actions()
        .map(|a| match a {
            DeploymentAction::AdoptReplicaSet(p) => (
                p.name.clone(),
                matches!(p.change, OwnershipChange::Adopt(_)),
            ),
            DeploymentAction::ReleaseReplicaSet(p) => (p.name.clone(), false),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("orphan".to_string(), true), ("stray".to_string(), false)]
    );
    assert_eq!(plan.requeue, Some(Requeue::Now));
}

#[test]
fn pausing_sets_the_paused_condition_and_resuming_the_resumed_one() {
    let mut d = deployment(
        2,
        Some(IntOrString::Int(1)),
        Some(IntOrString::Int(0)),
        false,
    );
    d.spec.iter_mut().for_each(|s| s.paused = Some(true));
    let plan = deployment::plan(&observe(&d, vec![])).expect("plan");
    assert!(
        !plan
            .actions()
            .any(|a| matches!(a, DeploymentAction::CreateReplicaSet(_))),
        "paused creates nothing"
    );
    let status = plan.new_status().cloned().unwrap_or_default();
    let c = conditions::get_deployment_condition(&status, PROGRESSING)
        .cloned()
        .expect("cond");
    assert_eq!(
        (
            c.status.as_str(),
            conditions::reason(&c),
            c.message.as_deref()
        ),
        ("Unknown", "DeploymentPaused", Some("Deployment is paused"))
    );
    d.spec.iter_mut().for_each(|s| s.paused = Some(false));
    d.status = Some(status);
    let plan = deployment::plan(&observe(&d, vec![])).expect("plan");
    let status = plan.new_status().cloned().unwrap_or_default();
    // The resumed pass goes on to create the new RS, which replaces the reason again.
    assert_eq!(
        conditions::get_deployment_condition(&status, PROGRESSING)
            .map(|c| conditions::reason(c).to_string()),
        Some("NewReplicaSetCreated".into())
    );
}

#[test]
fn a_stuck_rollout_times_out_and_requeues_before() {
    let base = ts("2024-01-01T00:00:00Z");
    let mut cluster = Cluster::new(
        deployment(
            2,
            Some(IntOrString::Int(1)),
            Some(IntOrString::Int(0)),
            false,
        ),
        base,
    );
    cluster.broken_images.push("img:v2".into());
    cluster
        .deployment
        .spec
        .iter_mut()
        .for_each(|s| s.progress_deadline_seconds = Some(30));
    cluster.step().expect("create");
    cluster.step().expect("pods appear: progress");
    let observed = ObservedDeployment {
        deployment: cluster.deployment.clone(),
        replica_sets: cluster.replica_sets.clone(),
        pods: vec![],
        now: cluster.now,
    };
    let plan = deployment::plan(&observed).expect("plan");
    assert!(
        matches!(plan.requeue, Some(Requeue::After(_))),
        "{:?}",
        plan.requeue
    );
    let late = ObservedDeployment {
        now: secs(base, 120),
        ..observed
    };
    let plan = deployment::plan(&late).expect("plan");
    let status = plan.new_status().cloned().unwrap_or_default();
    let c = conditions::get_deployment_condition(&status, PROGRESSING)
        .cloned()
        .expect("cond");
    assert_eq!(
        (c.status.as_str(), conditions::reason(&c)),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(
        c.message
            .unwrap_or_default()
            .ends_with("has timed out progressing.")
    );
}

fn pod(
    name: &str,
    node: &str,
    phase: &str,
    ready: Option<i64>,
    created: i64,
    restarts: i32,
) -> Pod {
    let base = ts("2024-01-01T00:00:00Z");
    let rs = replica_set(&deployment(1, None, None, false), "web-v1", "img", 1, base);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("{name}-uid")),
            namespace: Some("default".into()),
            labels: Some(labels(&[
                ("app", "web"),
                (POD_TEMPLATE_HASH_LABEL, "web-v1"),
            ])),
            creation_timestamp: Some(Time(secs(base, created))),
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.to_string()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready.is_some() {
                    "True".into()
                } else {
                    "False".into()
                },
                last_transition_time: ready.map(|t| Time(secs(base, t))),
                ..Default::default()
            }]),
            container_statuses: Some(vec![k8s_openapi::api::core::v1::ContainerStatus {
                name: "app".into(),
                restart_count: restarts,
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn rs_observed(replicas: i32, pods: Vec<Pod>, now_offset: i64) -> ObservedReplicaSet {
    let base = ts("2024-01-01T00:00:00Z");
    let mut rs = replica_set(
        &deployment(1, None, None, false),
        "web-v1",
        "img",
        replicas,
        base,
    );
    rs.metadata.generation = Some(2);
    ObservedReplicaSet {
        replica_set: rs,
        pods: pods.into_iter().map(Arc::new).collect(),
        related_pods: vec![],
        expectations: Expectations::default(),
        now: secs(base, now_offset),
    }
}

#[test]
fn replica_set_creates_in_slow_start_batches_up_to_the_burst() {
    let plan = replicaset::plan(&rs_observed(700, vec![], 0)).expect("plan");
    assert_eq!(plan.create.len(), 500);
    assert_eq!(plan.create_batches, vec![1, 2, 4, 8, 16, 32, 64, 128, 245]);
    let p = &plan.create[0];
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-v1-"));
    assert_eq!(
        p.metadata.owner_references.clone().unwrap_or_default()[0].kind,
        "ReplicaSet"
    );
    let mut waiting = rs_observed(3, vec![], 0);
    waiting.expectations = Expectations {
        pending_creations: 2,
        pending_deletions: 0,
    };
    let plan = replicaset::plan(&waiting).expect("plan");
    assert!(
        plan.create.is_empty(),
        "outstanding expectations block creation"
    );
}

#[test]
fn replica_set_deletes_in_kubernetes_order() {
    let pods = vec![
        pod("old-ready", "n1", "Running", Some(-1000), -2000, 0),
        pod("young-ready", "n1", "Running", Some(-10), -2000, 0),
        pod("not-ready", "n1", "Running", None, -2000, 0),
        pod("pending", "n1", "Pending", None, -2000, 0),
        pod("unscheduled", "", "Pending", None, -2000, 0),
        pod("restarts", "n1", "Running", Some(-1000), -2000, 5),
    ];
    let plan = replicaset::plan(&rs_observed(1, pods, 0)).expect("plan");
    let order: Vec<&str> = plan.delete.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        order,
        vec![
            "unscheduled",
            "pending",
            "not-ready",
            "young-ready",
            "restarts"
        ]
    );
}

#[test]
fn replica_set_status_honours_min_ready_seconds() {
    let pods = vec![
        pod("a", "n1", "Running", Some(-100), -200, 0),
        pod("b", "n1", "Running", Some(-5), -200, 0),
        pod("c", "n1", "Running", None, -200, 0),
    ];
    let mut observed = rs_observed(3, pods, 0);
    observed
        .replica_set
        .spec
        .iter_mut()
        .for_each(|s| s.min_ready_seconds = Some(10));
    observed.replica_set.status = Some(ReplicaSetStatus {
        replicas: 3,
        conditions: Some(vec![
            slipway_controllers::conditions::new_replica_set_condition(
                "ReplicaFailure",
                "True",
                "FailedCreate",
                "x",
                ts("2024-01-01T00:00:00Z"),
            ),
        ]),
        ..Default::default()
    });
    let plan = replicaset::plan(&observed).expect("plan");
    let status = plan.status.expect("status changes");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (3, Some(2), Some(1))
    );
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert!(
        status.conditions.is_none(),
        "ReplicaFailure removed after a clean pass"
    );
    assert_eq!(
        plan.requeue,
        Some(Requeue::After(std::time::Duration::from_millis(5001)))
    );
    let failed = replicaset::status_after_failure(
        &observed.replica_set,
        &ReplicaSetStatus::default(),
        1,
        "boom",
        observed.now,
    );
    assert!(failed.conditions.is_some());
}

#[test]
fn deleting_deployment_only_writes_status() {
    let mut d = deployment(
        3,
        Some(IntOrString::Int(1)),
        Some(IntOrString::Int(0)),
        false,
    );
    d.metadata.deletion_timestamp = Some(Time(ts("2024-01-01T00:00:00Z")));
    let mut rs = replica_set(&d, "web-v1", "img:v2", 3, ts("2024-01-01T00:00:00Z"));
    rs.status = Some(ReplicaSetStatus {
        replicas: 3,
        available_replicas: Some(3),
        ready_replicas: Some(3),
        ..Default::default()
    });
    let plan = deployment::plan(&observe(&d, vec![rs])).expect("plan");
    let kinds: Vec<bool> = plan
        .actions()
        .map(|a| {
            matches!(
                a,
                DeploymentAction::UpdateDeploymentStatus(_) | DeploymentAction::UpdateReplicaSet(_)
            )
        })
        .collect();
    assert!(kinds.iter().all(|k| *k));
    let status: DeploymentStatus = plan.new_status().cloned().unwrap_or_default();
    assert_eq!(
        (status.replicas, status.available_replicas),
        (Some(3), Some(3))
    );
}

#[test]
fn the_new_replica_set_waits_for_old_pods_still_being_removed() {
    use slipway_controllers::replicas::new_rs_new_replicas;
    // 10 replicas, maxSurge 3: at most 13 pods. The old ReplicaSet was just scaled from 5 to 4
    // but its controller has not yet removed the fifth pod; the new one has 9.
    let d = deployment(
        10,
        Some(IntOrString::Int(3)),
        Some(IntOrString::Int(2)),
        false,
    );
    let mut old = replica_set(&d, "old", "img:v1", 4, ts("2024-01-01T00:00:00Z"));
    set_rs_status(&mut old, 5, 5);
    let mut new = replica_set(&d, "new", "img:v2", 8, ts("2024-01-01T00:01:00Z"));
    set_rs_status(&mut new, 8, 6);
    // Counting sizes alone (Kubernetes) would allow 9 and a fourteenth pod.
    assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new).unwrap(), 8);
    // Once the pod is gone, the new ReplicaSet grows into the freed place.
    set_rs_status(&mut old, 4, 4);
    assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new).unwrap(), 9);
    // A status that lags behind a scale-up counts the size.
    set_rs_status(&mut new, 2, 2);
    assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new).unwrap(), 9);
}

/// A whole pod as the API server stores it: the planner's fields plus containers, states,
/// images, volumes and the rest, which [`slipway_controllers::pods::decode_for_replica_set`]
/// leaves out.
fn whole_pod_json(i: i64) -> serde_json::Value {
    let ready = i % 3 != 0;
    let phase =
        ["Pending", "Running", "Running", "Unknown"][usize::try_from(i % 4).expect("small")];
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-v1-{i}"),
            "namespace": "default",
            "uid": format!("uid-{i}"),
            "resourceVersion": format!("{}", 100 + i),
            "creationTimestamp": format!("2024-01-01T00:{:02}:00Z", i % 60),
            "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "web-v1"},
            "annotations": {"controller.kubernetes.io/pod-deletion-cost": format!("{}", i % 4)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-v1",
                "uid": "web-v1-uid", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "nodeName": if i % 5 == 0 { "" } else { "slipway" },
            "initContainers": [{"name": "sidecar", "image": "side:1", "restartPolicy": "Always"},
                {"name": "init", "image": "init:1"}],
            "containers": [{"name": "app", "image": "img", "ports": [{"containerPort": 8080}],
                "resources": {"limits": {"cpu": "1"}}, "terminationMessagePath": "/dev/termination-log"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": format!("2024-01-01T00:{:02}:30Z", i % 60)},
            ],
            "hostIP": "127.0.0.1",
            "podIP": format!("127.128.0.{}", i + 1),
            "containerStatuses": [{"name": "app", "image": "img", "imageID": "sim://img",
                "ready": ready, "restartCount": i % 3, "started": true,
                "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}],
            "initContainerStatuses": [{"name": "sidecar", "image": "side:1", "imageID": "x",
                "ready": true, "restartCount": i % 2, "state": {"running": {}}}],
        },
    });
    if i % 7 == 0 {
        pod["metadata"]["deletionTimestamp"] = serde_json::json!("2024-01-01T01:00:00Z");
    }
    pod
}

#[test]
fn replica_set_plans_the_same_from_slim_and_whole_pods() {
    let jsons: Vec<serde_json::Value> = (0..24).map(whole_pod_json).collect();
    let whole: Vec<Pod> = jsons
        .iter()
        .map(|p| serde_json::from_value(p.clone()).expect("whole pod"))
        .collect();
    let slim: Vec<Pod> = jsons
        .iter()
        .map(|p| slipway_controllers::pods::decode_for_replica_set(p).expect("slim pod"))
        .collect();
    for (w, s) in whole.iter().zip(&slim) {
        assert_eq!(w.metadata, s.metadata);
        assert_eq!(
            w.status.as_ref().map(|s| &s.conditions),
            s.status.as_ref().map(|s| &s.conditions)
        );
    }
    for replicas in [0, 3, 10, 17, 24, 30] {
        for min_ready in [0, 45] {
            let build = |pods: &[Pod]| {
                let mut observed = rs_observed(replicas, pods[..16].to_vec(), 3600);
                observed.replica_set.metadata.uid = Some("web-v1-uid".into());
                observed
                    .replica_set
                    .spec
                    .iter_mut()
                    .for_each(|s| s.min_ready_seconds = Some(min_ready));
                observed.related_pods = pods[16..].iter().cloned().map(Arc::new).collect();
                observed
            };
            let from_whole = replicaset::plan(&build(&whole)).expect("plan");
            let from_slim = replicaset::plan(&build(&slim)).expect("plan");
            assert_eq!(
                from_whole, from_slim,
                "replicas {replicas}, minReady {min_ready}"
            );
        }
    }
}

/// A Deployment mid-rollout: 10 replicas, surge 3, unavailable 2; `old` (img:v1) and `new`
/// (img:v2, 60 s younger) with the given spec sizes and available pods.
fn mid_rollout(
    old: (i32, i32),
    new: (i32, i32),
) -> (
    k8s_openapi::api::apps::v1::Deployment,
    Vec<k8s_openapi::api::apps::v1::ReplicaSet>,
) {
    let mut d = deployment(
        10,
        Some(IntOrString::Int(3)),
        Some(IntOrString::Int(2)),
        false,
    );
    if let Some(spec) = d.spec.as_mut() {
        spec.template = template("img:v2");
    }
    let base = ts("2024-01-01T00:00:00Z");
    let mut old_rs = replica_set(&d, "old", "img:v1", old.0, base);
    set_rs_status(&mut old_rs, old.1, old.1);
    let mut new_rs = replica_set(&d, "new", "img:v2", new.0, secs(base, 60));
    set_rs_status(&mut new_rs, new.1, new.1);
    for (rs, revision) in [(&mut old_rs, "1"), (&mut new_rs, "2")] {
        rs.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REVISION.into(), revision.into());
    }
    (d, vec![old_rs, new_rs])
}

#[test]
fn a_stale_old_replica_set_status_ends_the_scale_down_without_failing_the_pass() {
    // `old` was just scaled 10 → 4 and its status still counts 10 available: Kubernetes'
    // cleanup would "scale it down" to 10, refuses, and goes on with the status only.
    let (d, rss) = mid_rollout((4, 10), (9, 9));
    let plan = deployment::plan(&observe(&d, rss)).expect("the pass does not fail");
    let actions: Vec<_> = plan.actions().collect();
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, DeploymentAction::UpdateReplicaSet(_))),
        "nothing is scaled: {actions:?}"
    );
    assert!(plan.new_status().is_some(), "the status is still written");
    assert!(plan.failure_ignored.is_empty());
}

#[test]
fn the_old_replica_sets_scale_down_is_marked_as_failure_ignored() {
    let (d, rss) = mid_rollout((10, 10), (3, 3));
    let plan = deployment::plan(&observe(&d, rss)).expect("plan");
    let DeploymentAction::UpdateReplicaSet(old) = &plan.steps[0].action else {
        panic!(
            "expected the old ReplicaSet's scale-down first: {:?}",
            plan.steps
        );
    };
    assert_eq!(old.metadata.name.as_deref(), Some("old"));
    assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(
        plan.failure_ignored,
        std::collections::BTreeSet::from([0]),
        "only the old ReplicaSet's write: {:?}",
        plan.steps
    );
    assert!(matches!(
        plan.steps.last().map(|s| &s.action),
        Some(DeploymentAction::UpdateDeploymentStatus(_))
    ));
}
