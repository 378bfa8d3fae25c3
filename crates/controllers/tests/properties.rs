//! Property tests: a Deployment rolled out step by step in a tiny cluster model (pods become
//! ready at once, or never) keeps the surge and availability bounds, Recreate never overlaps
//! old and new pods, rollouts complete, and the planners never panic on arbitrary input.

mod support;

use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use slipway_controllers::conditions::{self, PROGRESSING};
use slipway_controllers::deployment::{self, ObservedDeployment};
use slipway_controllers::fenceposts::{max_surge, max_unavailable};
use support::*;

fn int_or_percent() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        (0..5i32).prop_map(IntOrString::Int),
        (0..=100i32).prop_map(|p| IntOrString::String(format!("{p}%"))),
    ]
}

fn is_literal_zero(v: &IntOrString) -> bool {
    matches!(v, IntOrString::Int(0)) || matches!(v, IntOrString::String(s) if s == "0%")
}

fn start(replicas: i32, surge: IntOrString, unavailable: IntOrString, recreate: bool) -> Cluster {
    let mut d = deployment(replicas, Some(surge), Some(unavailable), recreate);
    if let Some(spec) = d.spec.as_mut() {
        spec.template = template("img:v1");
    }
    let mut cluster = Cluster::new(d, ts("2024-01-01T00:00:00Z"));
    cluster.seed_replica_set("web-v1", "img:v1", replicas, 1);
    for _ in 0..3 {
        cluster.step().expect("settle");
    }
    cluster
}

fn complete(cluster: &Cluster, replicas: i32) -> bool {
    let status = cluster.status();
    let d = &cluster.deployment;
    slipway_controllers::status::deployment_complete(d, &status)
        && conditions::get_deployment_condition(&status, PROGRESSING)
            .is_some_and(|c| conditions::reason(c) == conditions::NEW_REPLICA_SET_AVAILABLE)
        && cluster.active_pods() == usize::try_from(replicas).unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rolling_update_respects_bounds(
        replicas in 0..9i32,
        surge in int_or_percent(),
        unavailable in int_or_percent(),
        new_pods_ready in any::<bool>(),
    ) {
        prop_assume!(!(is_literal_zero(&surge) && is_literal_zero(&unavailable)));
        let mut cluster = start(replicas, surge, unavailable, false);
        let max_pods = usize::try_from(replicas + max_surge(&cluster.deployment)).unwrap_or(0);
        let min_available = usize::try_from(replicas - max_unavailable(&cluster.deployment)).unwrap_or(0);
        prop_assert_eq!(cluster.available_pods(), usize::try_from(replicas).unwrap_or(0));
        if !new_pods_ready {
            cluster.broken_images.push("img:v2".into());
        }
        cluster.set_image("img:v2");
        let mut done = false;
        for step in 0..(4 * replicas + 12) {
            cluster.step().map_err(TestCaseError::fail)?;
            prop_assert!(cluster.active_pods() <= max_pods,
                "step {}: {} pods > {} (sizes {:?})", step, cluster.active_pods(), max_pods, cluster.sizes());
            prop_assert!(cluster.available_pods() >= min_available,
                "step {}: {} available < {} (sizes {:?})", step, cluster.available_pods(), min_available, cluster.sizes());
            if complete(&cluster, replicas) {
                done = true;
                break;
            }
        }
        if new_pods_ready {
            prop_assert!(done, "rollout did not complete: sizes {:?}, status {:?}", cluster.sizes(), cluster.status());
            let sizes = cluster.sizes();
            prop_assert_eq!(sizes.get("v1").copied(), Some(0));
        }
    }

    #[test]
    fn recreate_never_overlaps_and_completes(replicas in 0..9i32) {
        let mut cluster = start(replicas, IntOrString::Int(0), IntOrString::Int(1), true);
        cluster.set_image("img:v2");
        let mut done = false;
        for step in 0..12 {
            let log = cluster.step().map_err(TestCaseError::fail)?;
            prop_assert!(!log.grew_new || log.old_pods_at_plan == 0,
                "step {}: new RS grew while {} old pods existed ({:?})", step, log.old_pods_at_plan, log.ops);
            if complete(&cluster, replicas) {
                done = true;
                break;
            }
        }
        prop_assert!(done, "recreate did not complete: {:?}", cluster.sizes());
    }

    #[test]
    fn deployment_plan_never_panics(
        replicas in -2..6i32,
        paused in any::<bool>(),
        recreate in any::<bool>(),
        deadline in prop::option::of(-1..700i32),
        history in prop::option::of(-1..3i32),
        rollback in prop::option::of("[0-9a-z-]{0,3}"),
        surge in prop::option::of(prop_oneof![int_or_percent(), "[a-z0-9%-]{0,4}".prop_map(IntOrString::String)]),
        rss in prop::collection::vec((
            -1..6i32, -1..6i32, -1..6i32, any::<bool>(),
            prop::option::of("[0-9x-]{0,4}"), prop::option::of("[0-9x-]{0,4}"), any::<bool>(), any::<bool>(),
        ), 0..5),
    ) {
        let mut d = deployment(replicas, surge, Some(IntOrString::Int(1)), recreate);
        if let Some(spec) = d.spec.as_mut() {
            spec.paused = Some(paused);
            spec.progress_deadline_seconds = deadline;
            spec.revision_history_limit = history;
        }
        if let Some(r) = rollback {
            d.metadata.annotations.get_or_insert_with(Default::default)
                .insert(slipway_controllers::annotations::ROLLBACK_TO.into(), r);
        }
        let base = ts("2024-01-01T00:00:00Z");
        let replica_sets = rss.into_iter().enumerate().map(|(k, (spec, status, available, same_template, rev, desired, orphan, deleting))| {
            let image = if same_template { "img:v2".to_string() } else { format!("img:{k}") };
            let mut rs = replica_set(&d, &format!("web-{k}"), &image, spec, secs(base, i64::try_from(k).unwrap_or(0)));
            rs.status = Some(ReplicaSetStatus { replicas: status, available_replicas: Some(available), ..Default::default() });
            let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
            if let Some(r) = rev { ann.insert("deployment.kubernetes.io/revision".into(), r); }
            if let Some(v) = desired {
                ann.insert("deployment.kubernetes.io/desired-replicas".into(), v.clone());
                ann.insert("deployment.kubernetes.io/max-replicas".into(), v);
            }
            if orphan { rs.metadata.owner_references = None; }
            if deleting { rs.metadata.deletion_timestamp = Some(Time(base)); }
            rs
        }).collect();
        let observed = ObservedDeployment { deployment: d, replica_sets, pods: Vec::new(), now: base };
        let _ = deployment::plan(&observed);
    }
}
