//! Replays every table of `tests/data/k8s-deployment-cases.yaml` (a copy of the shared
//! reference cases) against the planners. Each case is printed by name; a failure names the
//! table, the case and the field that differs.

mod support;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_yaml::Value;
use slipway_controllers::annotations::{
    self, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, REVISION_HISTORY,
};
use slipway_controllers::conditions;
use slipway_controllers::deployment::{
    self, DeploymentAction, ObservedDeployment, Pass, recreate, rolling, scale,
};
use slipway_controllers::{Requeue, fenceposts, replicas, status, template};
use std::collections::BTreeMap;
use std::fmt::Debug;
use support::*;

type Outcome = Result<(), String>;

/// Collects per-case outcomes and prints them.
struct Harness {
    failures: Vec<String>,
    passed: usize,
    skipped: Vec<String>,
}

impl Harness {
    fn case(&mut self, table: &str, case: &str, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {table} / {case}");
            }
            Err(why) => {
                println!("FAIL {table} / {case}: {why}");
                self.failures.push(format!("{table} / {case}: {why}"));
            }
        }
    }

    fn skip(&mut self, table: &str, why: &str) {
        println!("skip {table}: {why}");
        self.skipped.push(format!("{table}: {why}"));
    }
}

fn check<T: PartialEq + Debug>(field: &str, got: T, want: T) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("{field}: expected {want:?}, got {got:?}"))
    }
}

fn i(v: &Value) -> i32 {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or_else(|| panic!("not an int32: {v:?}"))
}

fn int_or(v: &Value, key: &str, default: i32) -> i32 {
    v.get(key).filter(|x| !x.is_null()).map_or(default, i)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn name_of(v: &Value) -> String {
    v.get("name").map(s).unwrap_or_else(|| {
        serde_yaml::to_string(v)
            .unwrap_or_default()
            .trim()
            .replace('\n', ", ")
    })
}

fn intstr(v: Option<&Value>) -> Option<IntOrString> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(IntOrString::Int(
            i32::try_from(n.as_i64().unwrap_or(0)).unwrap_or(0),
        )),
        Some(Value::String(s)) => Some(IntOrString::String(s.clone())),
        Some(other) => panic!("not int-or-string: {other:?}"),
    }
}

fn cases(table: &Value) -> Vec<&Value> {
    table
        .get("cases")
        .and_then(Value::as_sequence)
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn seq<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_sequence)
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn base() -> Timestamp {
    ts("2017-02-15T18:49:00Z")
}

/// A deployment with explicit fenceposts (int 0/0 fixture unless given).
fn dep(replicas: i32, surge: Option<IntOrString>, unavailable: Option<IntOrString>) -> Deployment {
    deployment(replicas, surge, unavailable, false)
}

fn rs_named(d: &Deployment, name: &str, image: &str, spec: i32, created: Timestamp) -> ReplicaSet {
    replica_set(d, name, image, spec, created)
}

fn pass_of(d: &Deployment, rss: Vec<ReplicaSet>) -> Pass {
    let mut pass = Pass::new(d.clone(), rss, base());
    pass.ensure_new_replica_set(false).expect("resolve new RS");
    pass
}

fn spec_of(pass: &Pass, name: &str) -> i32 {
    pass.replica_sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(name))
        .and_then(|rs| rs.spec.as_ref().and_then(|s| s.replicas))
        .unwrap_or(-1)
}

#[test]
fn replay_reference_cases() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/k8s-deployment-cases.yaml"
    ))
    .expect("read cases");
    let doc: Value = serde_yaml::from_str(&text).expect("parse cases");
    let mut h = Harness {
        failures: Vec::new(),
        passed: 0,
        skipped: Vec::new(),
    };
    let tables = doc.as_mapping().expect("mapping");
    for (key, table) in tables {
        let name = s(key);
        match name.as_str() {
            "schema_version" => {}
            "resolve_fenceposts" => resolve_fenceposts(&mut h, table),
            "max_unavailable" | "min_available" => max_min_available(&mut h, &name, table),
            "new_rs_new_replicas" => new_rs_new_replicas(&mut h, table),
            "reconcile_new_replica_set" => reconcile_new(&mut h, table),
            "reconcile_old_replica_sets" => reconcile_old(&mut h, table),
            "cleanup_unhealthy_replicas" => cleanup_unhealthy(&mut h, table),
            "scale_down_old_replica_sets_for_rolling_update" => scale_down_old_rolling(&mut h, table),
            "proportional_scale" => proportional_scale(&mut h, table),
            "get_replica_set_fraction" => replica_set_fraction(&mut h, table),
            "get_proportion" => get_proportion(&mut h, table),
            "deployment_complete" => deployment_complete(&mut h, table),
            "deployment_progressing" => deployment_progressing(&mut h, table),
            "deployment_timed_out" => deployment_timed_out(&mut h, table),
            "requeue_stuck_deployment" => requeue_stuck(&mut h, table),
            "sync_rollout_status" => sync_rollout_status(&mut h, table),
            "cleanup_deployment" => cleanup_deployment(&mut h, table),
            "cleanup_deployment_order" => cleanup_deployment_order(&mut h, table),
            "recreate_scale_down_old" => recreate_scale_down_old(&mut h, table),
            "old_pods_running" => old_pods_running(&mut h, table),
            "equal_ignore_hash" => equal_ignore_hash(&mut h, table),
            "find_new_replica_set" => find_new(&mut h, table),
            "find_old_replica_sets" => find_old(&mut h, table),
            "replica_counts" => replica_counts(&mut h, table),
            "revision_history_annotation" => revision_history(&mut h, table),
            "replicas_annotations" => replicas_annotations(&mut h, table),
            "non_negative_int32_annotation" => non_negative_int32(&mut h, table),
            "conditions" => condition_helpers(&mut h, table),
            "get_deployments_for_replica_set" => deployments_for_replica_set(&mut h, table),
            "controller_sync" => controller_sync(&mut h, table),
            "rollout_status" => h.skip(&name, "kubectl client behaviour (rollout status printer); the controller side is covered by sync_rollout_status and the sequences"),
            "rollout_history" => rollout_history(&mut h, table),
            "rollback_patch" => rollback_patch(&mut h, table),
            "rollout_sequences" => rollout_sequences(&mut h, table),
            other => h.case(other, "-", Err("table not replayed by this harness".into())),
        }
    }
    println!(
        "\n{} cases passed, {} failed, {} tables skipped",
        h.passed,
        h.failures.len(),
        h.skipped.len()
    );
    assert!(
        h.failures.is_empty(),
        "failing cases:\n{}",
        h.failures.join("\n")
    );
    assert!(h.passed >= 239, "too few cases replayed: {}", h.passed);
}

fn resolve_fenceposts(h: &mut Harness, table: &Value) {
    for (kind, list) in [
        ("cases", seq(table, "cases")),
        ("derived_cases", seq(table, "derived_cases")),
    ] {
        for c in list {
            let name = format!(
                "{kind}: surge {:?} unavailable {:?} desired {}",
                c.get("maxSurge"),
                c.get("maxUnavailable"),
                i(&c["desired"])
            );
            let got = fenceposts::resolve_fenceposts(
                intstr(c.get("maxSurge")).as_ref(),
                intstr(c.get("maxUnavailable")).as_ref(),
                i(&c["desired"]),
            );
            let expect = &c["expect"];
            let outcome = if expect.get("error").is_some() {
                check("error", got.is_err(), true)
            } else {
                check(
                    "(surge, unavailable)",
                    got.map_err(|e| e.to_string()),
                    Ok((i(&expect["surge"]), i(&expect["unavailable"]))),
                )
            };
            h.case("resolve_fenceposts", &name, outcome);
        }
    }
}

fn max_min_available(h: &mut Harness, table_name: &str, table: &Value) {
    for c in cases(table) {
        let recreate = c.get("strategy").map(s).as_deref() == Some("Recreate");
        let d = deployment(
            int_or(c, "replicas", 1),
            Some(IntOrString::Int(1)),
            intstr(c.get("maxUnavailable")),
            recreate,
        );
        let got = if table_name == "max_unavailable" {
            fenceposts::max_unavailable(&d)
        } else {
            fenceposts::min_available(&d)
        };
        h.case(
            table_name,
            &name_of(c),
            check("value", got, i(&c["expect"])),
        );
    }
}

fn new_rs_new_replicas(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let recreate = s(&c["strategy"]) == "Recreate";
        let d = deployment(
            i(&c["depReplicas"]),
            intstr(c.get("maxSurge")),
            Some(IntOrString::Int(1)),
            recreate,
        );
        let other = rs_named(&d, "other", "img:v1", 5, base());
        let new = rs_named(&d, "new", "img:v2", i(&c["newRSReplicas"]), base());
        let got = replicas::new_rs_new_replicas(&d, [&other], &new).map_err(|e| e.to_string());
        h.case(
            "new_rs_new_replicas",
            &name_of(c),
            check("replicas", got, Ok(i(&c["expect"]))),
        );
    }
}

fn reconcile_new(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = dep(
            i(&c["deploymentReplicas"]),
            intstr(c.get("maxSurge")),
            Some(IntOrString::Int(0)),
        );
        let old = rs_named(&d, "old", "img:v1", i(&c["oldReplicas"]), base());
        let new = rs_named(&d, "new", "img:v2", i(&c["newReplicas"]), secs(base(), 60));
        let mut pass = pass_of(&d, vec![old, new]);
        let outcome = rolling::reconcile_new_replica_set(&mut pass)
            .map_err(|e| e.to_string())
            .and_then(|scaled| {
                let expect = &c["expect"];
                check(
                    "scaled",
                    scaled,
                    expect["scaled"].as_bool().unwrap_or(false),
                )?;
                if let Some(n) = expect.get("newReplicas") {
                    check("newReplicas", spec_of(&pass, "new"), i(n))?;
                }
                Ok(())
            });
        h.case("reconcile_new_replica_set", &name_of(c), outcome);
    }
}

fn reconcile_old(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = dep(
            i(&c["deploymentReplicas"]),
            Some(IntOrString::Int(0)),
            intstr(c.get("maxUnavailable")),
        );
        let mut old = rs_named(&d, "old", "img:v1", i(&c["oldReplicas"]), base());
        set_rs_status(&mut old, i(&c["oldReplicas"]), i(&c["availableOld"]));
        let mut new = rs_named(&d, "new", "img:v2", i(&c["newReplicas"]), secs(base(), 60));
        set_rs_status(&mut new, i(&c["newReplicas"]), i(&c["availableNew"]));
        let mut pass = pass_of(&d, vec![old, new]);
        let outcome = rolling::reconcile_old_replica_sets_detailed(&mut pass)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let expect = &c["expect"];
                check(
                    "scaled",
                    r.cleaned_up + r.scaled_down > 0,
                    expect["scaled"].as_bool().unwrap_or(false),
                )?;
                check(
                    "oldReplicas",
                    spec_of(&pass, "old"),
                    i(&expect["oldReplicas"]),
                )?;
                if let Some(v) = expect.get("cleanedUp") {
                    check("cleanedUp", r.cleaned_up, i(v))?;
                }
                if let Some(v) = expect.get("scaledDown") {
                    check("scaledDown", r.scaled_down, i(v))?;
                }
                Ok(())
            });
        h.case("reconcile_old_replica_sets", &name_of(c), outcome);
    }
}

fn cleanup_unhealthy(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = dep(10, Some(IntOrString::Int(2)), Some(IntOrString::Int(2)));
        let mut old = rs_named(&d, "old", "img:v1", i(&c["oldReplicas"]), base());
        set_rs_status(&mut old, i(&c["oldReplicas"]), i(&c["availablePods"]));
        let mut pass = pass_of(&d, vec![old]);
        let outcome =
            rolling::cleanup_unhealthy_replicas(&mut pass, &[0], i(&c["maxCleanupCount"]))
                .map_err(|e| e.to_string())
                .and_then(|n| {
                    check("cleanupCount", n, i(&c["expect"]["cleanupCount"]))?;
                    check(
                        "oldReplicasAfter",
                        spec_of(&pass, "old"),
                        i(&c["expect"]["oldReplicasAfter"]),
                    )
                });
        h.case("cleanup_unhealthy_replicas", &name_of(c), outcome);
    }
}

fn scale_down_old_rolling(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = dep(
            i(&c["deploymentReplicas"]),
            Some(IntOrString::Int(0)),
            intstr(c.get("maxUnavailable")),
        );
        let mut old = rs_named(&d, "old", "img:v1", i(&c["oldReplicas"]), base());
        set_rs_status(&mut old, i(&c["oldReplicas"]), i(&c["availablePods"]));
        let mut pass = pass_of(&d, vec![old]);
        let outcome =
            rolling::scale_down_old_replica_sets_for_rolling_update(&mut pass, &[0], &[0])
                .map_err(|e| e.to_string())
                .and_then(|n| {
                    let expect = &c["expect"];
                    check("scaled", n > 0, expect["scaled"].as_bool().unwrap_or(false))?;
                    if let Some(v) = expect.get("oldReplicas") {
                        check("oldReplicas", spec_of(&pass, "old"), i(v))?;
                    }
                    Ok(())
                });
        h.case(
            "scale_down_old_replica_sets_for_rolling_update",
            &name_of(c),
            outcome,
        );
    }
}

fn created_at(label: &str) -> Timestamp {
    match label {
        "older" => base(),
        "old" => secs(base(), 3600),
        _ => secs(base(), 7200),
    }
}

fn proportional_scale(h: &mut Harness, table: &Value) {
    for c in seq(table, "cases")
        .into_iter()
        .chain(seq(table, "extra_cases"))
    {
        let dv = &c["deployment"];
        let ov = &c["oldDeployment"];
        let fence = |v: &Value, key: &str| intstr(v.get(key)).or(Some(IntOrString::Int(0)));
        let d = dep(
            i(&dv["replicas"]),
            fence(dv, "maxSurge"),
            fence(dv, "maxUnavailable"),
        );
        let old_d = dep(
            i(&ov["replicas"]),
            fence(ov, "maxSurge"),
            fence(ov, "maxUnavailable"),
        );
        let overrides = c.get("desiredReplicasAnnotationOverride");
        let mut rss = Vec::new();
        let entries: Vec<(&Value, &str)> = c
            .get("newRS")
            .filter(|v| !v.is_null())
            .map(|v| (v, "img:v2"))
            .into_iter()
            .chain(seq(c, "oldRSs").into_iter().map(|v| (v, "img:old")))
            .collect();
        for (k, (v, image)) in entries.into_iter().enumerate() {
            let name = s(&v["name"]);
            let image = if image == "img:old" {
                format!("img:old-{k}")
            } else {
                image.to_string()
            };
            let mut rs = rs_named(
                &d,
                &name,
                &image,
                i(&v["replicas"]),
                created_at(&s(&v["created"])),
            );
            let desired = overrides
                .and_then(|o| o.get(&name))
                .map_or(i(&ov["replicas"]), i);
            let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
            ann.insert(DESIRED_REPLICAS.into(), desired.to_string());
            ann.insert(
                MAX_REPLICAS.into(),
                (desired + fenceposts::max_surge(&old_d)).to_string(),
            );
            if let Some(a) = v.get("availableReplicas") {
                rs.status
                    .get_or_insert_with(Default::default)
                    .available_replicas = Some(i(a));
            }
            rss.push(rs);
        }
        let mut pass = pass_of(&d, rss);
        scale::scale(&mut pass);
        let mut outcome = Ok(());
        if let Some(expect) = c["expect"].as_mapping() {
            for (k, v) in expect {
                let name = s(k);
                if let Err(e) = check(
                    &format!("{name}.spec.replicas"),
                    spec_of(&pass, &name),
                    i(v),
                ) {
                    outcome = Err(e);
                    break;
                }
            }
        }
        for n in seq(c, "notUpdated") {
            let name = s(n);
            let index = pass
                .replica_sets
                .iter()
                .position(|rs| rs.metadata.name.as_deref() == Some(name.as_str()));
            if outcome.is_ok() && index.is_some_and(|ix| pass.is_touched(ix)) {
                outcome = Err(format!("{name}: expected no update"));
            }
        }
        h.case("proportional_scale", &name_of(c), outcome);
    }
}

fn replica_set_fraction(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let mut d = dep(
            i(&c["deploymentReplicas"]),
            intstr(c.get("maxSurge")),
            Some(IntOrString::Int(1)),
        );
        d.status = Some(DeploymentStatus {
            replicas: Some(int_or(c, "statusReplicas", 0)),
            ..Default::default()
        });
        let mut rs = rs_named(&d, "rs", "img:v2", i(&c["rsReplicas"]), base());
        if let Some(v) = c.get("maxReplicasAnnotation").filter(|v| !v.is_null()) {
            rs.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(MAX_REPLICAS.into(), s(v));
        }
        h.case(
            "get_replica_set_fraction",
            &name_of(c),
            check(
                "fraction",
                replicas::replica_set_fraction(&d, &rs),
                i(&c["expect"]),
            ),
        );
    }
}

fn get_proportion(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = dep(
            i(&c["deploymentReplicas"]),
            intstr(c.get("maxSurge")),
            Some(IntOrString::Int(1)),
        );
        let mut rs = rs_named(&d, "rs", "img:v2", i(&c["rsReplicas"]), base());
        rs.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(MAX_REPLICAS.into(), s(&c["maxReplicasAnnotation"]));
        let got = replicas::proportion(&d, Some(&rs), i(&c["toAdd"]), i(&c["added"]));
        h.case(
            "get_proportion",
            &name_of(c),
            check("proportion", got, i(&c["expect"])),
        );
    }
}

fn counts_status(replicas: i32, updated: i32, ready: i32, available: i32) -> DeploymentStatus {
    DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        ..Default::default()
    }
}

fn deployment_complete(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let mut d = dep(
            i(&c["desired"]),
            intstr(c.get("maxSurge")),
            intstr(c.get("maxUnavailable")),
        );
        d.metadata.generation = None;
        let st = counts_status(i(&c["replicas"]), i(&c["updated"]), 0, i(&c["available"]));
        h.case(
            "deployment_complete",
            &name_of(c),
            check(
                "complete",
                status::deployment_complete(&d, &st),
                c["expect"].as_bool().unwrap_or(false),
            ),
        );
    }
}

fn tuple(v: &Value) -> Vec<i32> {
    v.as_sequence()
        .map(|s| s.iter().map(i).collect())
        .unwrap_or_default()
}

fn deployment_progressing(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let (o, n) = (tuple(&c["old"]), tuple(&c["new"]));
        let mut d = dep(10, Some(IntOrString::Int(1)), Some(IntOrString::Int(1)));
        d.status = Some(counts_status(o[0], o[1], o[2], o[3]));
        let got = status::deployment_progressing(&d, &counts_status(n[0], n[1], n[2], n[3]));
        h.case(
            "deployment_progressing",
            &name_of(c),
            check("progressing", got, c["expect"].as_bool().unwrap_or(false)),
        );
    }
}

fn at_2016(v: &Value) -> Option<Timestamp> {
    let t = s(v);
    if t == "zero" {
        None
    } else {
        Some(ts(&format!("2016-01-01T{t}Z")))
    }
}

fn condition(
    type_: &str,
    status_: &str,
    reason: &str,
    update: Option<Timestamp>,
    transition: Option<Timestamp>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status_.into(),
        reason: Some(reason.into()),
        message: Some(String::new()),
        last_update_time: update.map(Time),
        last_transition_time: transition.map(Time),
    }
}

fn deployment_timed_out(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(1)));
        d.spec.iter_mut().for_each(|s| {
            s.progress_deadline_seconds = c
                .get("progressDeadlineSeconds")
                .filter(|v| !v.is_null())
                .map(i)
        });
        let cv = &c["condition"];
        let update = at_2016(&cv["lastUpdateTime"]);
        let st = DeploymentStatus {
            conditions: Some(vec![condition(
                &s(&cv["type"]),
                &s(&cv["status"]),
                &s(&cv["reason"]),
                update,
                update,
            )]),
            ..Default::default()
        };
        let now = c
            .get("now")
            .and_then(at_2016)
            .unwrap_or_else(|| ts("2016-01-01T00:01:20Z"));
        h.case(
            "deployment_timed_out",
            &name_of(c),
            check(
                "timedOut",
                status::deployment_timed_out(&d, &st, now),
                c["expect"].as_bool().unwrap_or(false),
            ),
        );
    }
}

fn requeue_stuck(h: &mut Harness, table: &Value) {
    let at = ts("2017-02-15T18:49:00Z");
    for c in cases(table) {
        let dv = &c["d"];
        let t = dv.as_sequence().cloned().unwrap_or_default();
        let mut d = deployment(i(&t[1]), None, None, true);
        d.metadata.generation = None;
        d.spec.iter_mut().for_each(|s| {
            s.progress_deadline_seconds = if t[0].is_null() { None } else { Some(i(&t[0])) }
        });
        let conds = match s(&c["conditions"]).as_str() {
            "timedOut" => vec![condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                Some(at),
                Some(at),
            )],
            "stuck" => vec![condition("Progressing", "True", "", Some(at), Some(at))],
            _ => vec![],
        };
        let mut stored = counts_status(i(&t[2]), i(&t[3]), 0, i(&t[4]));
        stored.conditions = Some(conds);
        d.status = Some(stored);
        let nt = tuple(&c["status"]);
        let new_status = counts_status(nt[0], nt[1], 0, nt[2]);
        let now = c.get("now").map(|v| ts(&s(v))).unwrap_or(at);
        let got = status::requeue_stuck_deployment(&d, &new_status, now);
        let want = match &c["expect"] {
            Value::Number(n) if n.as_i64() == Some(-1) => None,
            Value::Number(n) if n.as_i64() == Some(0) => Some(Requeue::Now),
            other => {
                let secs: u64 = s(other).trim_end_matches('s').parse().expect("duration");
                Some(Requeue::After(std::time::Duration::from_secs(secs + 1)))
            }
        };
        h.case(
            "requeue_stuck_deployment",
            &name_of(c),
            check("requeue (After = remaining + 1s)", got, want),
        );
    }
}

fn parse_condition(v: &Value, test_time: Timestamp) -> DeploymentCondition {
    let text = s(v);
    if let Some(reason) = text.strip_suffix("(False)") {
        return condition(
            "Progressing",
            "False",
            reason,
            Some(test_time),
            Some(test_time),
        );
    }
    let reason = text.split('@').next().unwrap_or_default();
    condition(
        "Progressing",
        "True",
        reason,
        Some(test_time),
        Some(test_time),
    )
}

fn sync_rollout_status(h: &mut Harness, table: &Value) {
    let test_time = ts("2017-02-15T18:49:00Z");
    let now = secs(test_time, 3600);
    for c in cases(table) {
        let t = c["d"].as_sequence().cloned().unwrap_or_default();
        let mut d = dep(
            i(&t[1]),
            Some(IntOrString::Int(1)),
            Some(IntOrString::Int(0)),
        );
        d.metadata.name = Some("progress-test".into());
        d.metadata.generation = None;
        d.spec.iter_mut().for_each(|s| {
            s.progress_deadline_seconds = if t[0].is_null() { None } else { Some(i(&t[0])) }
        });
        let mut stored = counts_status(i(&t[2]), i(&t[3]), 0, i(&t[4]));
        stored.conditions = Some(
            seq(c, "conditions")
                .into_iter()
                .map(|v| parse_condition(v, test_time))
                .collect(),
        );
        d.status = Some(stored);
        let mut rss = Vec::new();
        let mut new_name = None;
        let add = |map: &Value, image: &str, rss: &mut Vec<ReplicaSet>| -> Option<String> {
            let mut last = None;
            for (k, v) in map.as_mapping().into_iter().flatten() {
                let tv = tuple(v);
                let mut rs = rs_named(&d, &s(k), image, tv[0], test_time);
                rs.status = Some(ReplicaSetStatus {
                    replicas: tv[1],
                    available_replicas: Some(tv[2]),
                    ..Default::default()
                });
                rss.push(rs);
                last = Some(s(k));
            }
            last
        };
        add(&c["oldRSs"], "img:v1", &mut rss);
        if !c["newRS"].is_null() {
            new_name = add(&c["newRS"], "img:v2", &mut rss);
        }
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        let new_rs = rss.iter().find(|rs| rs.metadata.name == new_name);
        let got = status::rollout_status(&d, &refs, new_rs, now);
        let outcome = (|| {
            let cond = conditions::get_deployment_condition(&got, conditions::PROGRESSING);
            let expect = &c["expect"]["progressing"];
            if expect.as_str() == Some("absent") {
                return check("progressing", cond.is_some(), false);
            }
            let cond = cond.ok_or("progressing: expected a condition, got none")?;
            check("status", cond.status.clone(), s(&expect["status"]))?;
            check(
                "reason",
                conditions::reason(cond).to_string(),
                s(&expect["reason"]),
            )?;
            if let Some(m) = expect.get("message") {
                check("message", cond.message.clone().unwrap_or_default(), s(m))?;
            }
            let time_of = |v: &Value| {
                if s(v) == "testTime" {
                    test_time
                } else {
                    Timestamp::from_second(now.as_second()).expect("ts")
                }
            };
            if let Some(v) = expect.get("lastTransitionTime") {
                check(
                    "lastTransitionTime",
                    cond.last_transition_time.as_ref().map(|t| t.0),
                    Some(time_of(v)),
                )?;
            }
            if let Some(v) = expect.get("lastUpdateTime") {
                check(
                    "lastUpdateTime",
                    cond.last_update_time.as_ref().map(|t| t.0),
                    Some(time_of(v)),
                )?;
            }
            Ok(())
        })();
        h.case("sync_rollout_status", &name_of(c), outcome);
    }
}

fn cleanup_deployment(h: &mut Harness, table: &Value) {
    for (n, c) in cases(table).into_iter().enumerate() {
        let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
        d.spec
            .iter_mut()
            .for_each(|s| s.revision_history_limit = Some(i(&c["revisionHistoryLimit"])));
        let mut rss = Vec::new();
        for (k, (name, v)) in c["oldRSs"].as_mapping().into_iter().flatten().enumerate() {
            let items = v.as_sequence().cloned().unwrap_or_default();
            let mut rs = rs_named(
                &d,
                &s(name),
                &format!("img:old-{k}"),
                i(&items[0]),
                secs(base(), i64::try_from(k).unwrap_or(0)),
            );
            rs.status = Some(ReplicaSetStatus {
                replicas: i(&items[1]),
                ..Default::default()
            });
            if items.len() > 2 {
                rs.metadata.deletion_timestamp = Some(Time(base()));
            }
            rss.push(rs);
        }
        let mut pass = pass_of(&d, rss.clone());
        let old = pass.old_indices();
        deployment::cleanup_deployment(&mut pass, &old, &rss);
        h.case(
            "cleanup_deployment",
            &format!("#{n} limit {}", i(&c["revisionHistoryLimit"])),
            check(
                "deletions",
                pass.deletions().len(),
                usize::try_from(i(&c["expectDeletions"])).unwrap_or(0),
            ),
        );
    }
}

fn cleanup_deployment_order(h: &mut Harness, table: &Value) {
    for (n, c) in cases(table).into_iter().enumerate() {
        let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
        d.spec
            .iter_mut()
            .for_each(|s| s.revision_history_limit = Some(i(&c["revisionHistoryLimit"])));
        let mut rss = Vec::new();
        for (k, (name, v)) in c["rs"].as_mapping().into_iter().flatten().enumerate() {
            let replicas = i(&v["replicas"]);
            let mut rs = rs_named(
                &d,
                &s(name),
                &format!("img:old-{k}"),
                replicas,
                secs(base(), i64::try_from(k).unwrap_or(0)),
            );
            rs.status = Some(ReplicaSetStatus {
                replicas,
                ..Default::default()
            });
            let revision = s(&v["revision"]);
            if !revision.is_empty() {
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(REVISION.into(), revision);
            }
            rss.push(rs);
        }
        let mut pass = pass_of(&d, rss.clone());
        let old = pass.old_indices();
        deployment::cleanup_deployment(&mut pass, &old, &rss);
        let deleted: Vec<String> = pass
            .deletions()
            .into_iter()
            .map(|ix| {
                pass.replica_sets[ix]
                    .metadata
                    .name
                    .clone()
                    .unwrap_or_default()
            })
            .collect();
        let want: Vec<String> = seq(c, "expectDeleted").into_iter().map(s).collect();
        h.case(
            "cleanup_deployment_order",
            &format!("#{n}"),
            check("deleted", deleted, want),
        );
    }
}

fn recreate_scale_down_old(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = deployment(i(&c["deploymentReplicas"]), None, None, true);
        let rss: Vec<ReplicaSet> = seq(c, "oldRSSizes")
            .into_iter()
            .enumerate()
            .map(|(k, v)| {
                rs_named(
                    &d,
                    &format!("old-{k}"),
                    &format!("img:old-{k}"),
                    i(v),
                    base(),
                )
            })
            .collect();
        let mut pass = pass_of(&d, rss);
        let old = pass.old_indices();
        recreate::scale_down_old_replica_sets(&mut pass, &old);
        let sizes: Vec<i32> = old
            .iter()
            .map(|&ix| {
                pass.replica_sets[ix]
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(-1)
            })
            .collect();
        let want: Vec<i32> = seq(c, "expectOldRSSizes").into_iter().map(i).collect();
        h.case(
            "recreate_scale_down_old",
            &name_of(c),
            check("sizes", sizes, want),
        );
    }
}

fn old_pods_running(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let d = deployment(1, None, None, true);
        let rss: Vec<ReplicaSet> = seq(c, "oldRSs")
            .into_iter()
            .enumerate()
            .map(|(k, v)| {
                let mut rs = rs_named(&d, &format!("old-{k}"), "img:v1", i(&v["spec"]), base());
                rs.metadata.uid = v.get("uid").map(s).or(Some(format!("uid-{k}")));
                rs.status = Some(ReplicaSetStatus {
                    replicas: i(&v["status"]),
                    ..Default::default()
                });
                rs
            })
            .collect();
        let mut pods = recreate::PodPhaseMap::new();
        for (uid, phases) in c["pods"].as_mapping().into_iter().flatten() {
            pods.insert(
                s(uid),
                phases.as_sequence().into_iter().flatten().map(s).collect(),
            );
        }
        let refs: Vec<&ReplicaSet> = rss.iter().collect();
        let got = recreate::old_pods_running(None, &refs, &pods);
        h.case(
            "old_pods_running",
            &name_of(c),
            check("running", got, c["expect"].as_bool().unwrap_or(false)),
        );
    }
}

fn template_from(v: &Value) -> PodTemplateSpec {
    let mut t = template("img");
    let meta = t.metadata.get_or_insert_with(Default::default);
    meta.labels = Some(
        v.get("labels")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let key = s(k);
                (
                    if key == "pth" {
                        annotations::POD_TEMPLATE_HASH_LABEL.to_string()
                    } else {
                        key
                    },
                    s(v),
                )
            })
            .collect(),
    );
    meta.annotations = v
        .get("annotations")
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (s(k), s(v))).collect());
    meta.name = v.get("name").map(s);
    if let Some(node) = v.get("nodeName") {
        t.spec
            .iter_mut()
            .for_each(|s| s.node_name = Some(node.as_str().unwrap_or_default().to_string()));
    }
    t
}

fn equal_ignore_hash(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let (a, b) = (template_from(&c["a"]), template_from(&c["b"]));
        let want = c["expect"].as_bool().unwrap_or(false);
        let outcome = check("a==b", template::equal_ignore_hash(&a, &b), want)
            .and_then(|()| check("b==a", template::equal_ignore_hash(&b, &a), want));
        h.case("equal_ignore_hash", &name_of(c), outcome);
    }
}

fn find_fixture(d: &Deployment) -> BTreeMap<String, ReplicaSet> {
    let now = base();
    let mut new = rs_named(d, "newRS", "img:v2", 1, secs(now, 60));
    let mut dup = rs_named(d, "newRSDup", "img:v2", 0, now);
    let old = rs_named(d, "oldRS", "img:v1", 0, secs(now, -60));
    for (rs, hash) in [(&mut new, "hash"), (&mut dup, "different-hash")] {
        rs.spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.metadata.as_mut())
            .and_then(|m| m.labels.as_mut())
            .map(|l| l.insert(annotations::POD_TEMPLATE_HASH_LABEL.into(), hash.into()));
    }
    [new, dup, old]
        .into_iter()
        .map(|rs| (rs.metadata.name.clone().unwrap_or_default(), rs))
        .collect()
}

fn find_new(h: &mut Harness, table: &Value) {
    let d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    let fixture = find_fixture(&d);
    for c in cases(table) {
        let list: Vec<ReplicaSet> = seq(c, "rsList")
            .into_iter()
            .map(|n| fixture[&s(n)].clone())
            .collect();
        let got = template::find_new_replica_set(&d, &list)
            .map(|ix| list[ix].metadata.name.clone().unwrap_or_default());
        let want = if c["expect"].is_null() {
            None
        } else {
            Some(s(&c["expect"]))
        };
        h.case(
            "find_new_replica_set",
            &format!(
                "{:?}",
                seq(c, "rsList").into_iter().map(s).collect::<Vec<_>>()
            ),
            check("new", got, want),
        );
    }
}

fn find_old(h: &mut Harness, table: &Value) {
    let d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    let fixture = find_fixture(&d);
    for c in cases(table) {
        let list: Vec<ReplicaSet> = seq(c, "rsList")
            .into_iter()
            .map(|n| fixture[&s(n)].clone())
            .collect();
        let (required, all) = template::find_old_replica_sets(&d, &list);
        let names = |ix: Vec<usize>| {
            ix.into_iter()
                .map(|i| list[i].metadata.name.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let want = |k: &str| seq(c, k).into_iter().map(s).collect::<Vec<_>>();
        let outcome = check("allOld", names(all), want("expectAllOld"))
            .and_then(|()| check("required", names(required), want("expectRequired")));
        h.case(
            "find_old_replica_sets",
            &format!("{:?}", want("rsList")),
            outcome,
        );
    }
}

fn replica_counts(h: &mut Harness, table: &Value) {
    let d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    let mk = |name: &str, spec: i32, status_: i32, terminating: Option<i32>, observed: i64| {
        let mut rs = rs_named(&d, name, "img", spec, base());
        rs.status = Some(ReplicaSetStatus {
            replicas: status_,
            terminating_replicas: terminating,
            observed_generation: Some(observed),
            ..Default::default()
        });
        rs
    };
    let v128: BTreeMap<String, ReplicaSet> = [mk("rs1", 1, 2, None, 0), mk("rs2", 2, 3, None, 0)]
        .into_iter()
        .map(|r| (r.metadata.name.clone().unwrap_or_default(), r))
        .collect();
    for c in seq(table, "v1_28_cases") {
        let sets: Vec<&ReplicaSet> = seq(c, "sets").into_iter().map(|n| &v128[&s(n)]).collect();
        let outcome = check(
            "specSum",
            replicas::spec_replicas_sum(sets.iter().copied()),
            i(&c["expectSpecSum"]),
        )
        .and_then(|()| {
            check(
                "statusSum",
                replicas::status_replicas_sum(sets.iter().copied()),
                i(&c["expectStatusSum"]),
            )
        });
        h.case(
            "replica_counts",
            &format!(
                "v1_28 {:?}",
                seq(c, "sets").into_iter().map(s).collect::<Vec<_>>()
            ),
            outcome,
        );
    }
    let term = &table["terminating_cases"];
    let fixture: BTreeMap<String, ReplicaSet> = term["fixture"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let t = v.as_sequence().cloned().unwrap_or_default();
            let terminating = if t[2].is_null() { None } else { Some(i(&t[2])) };
            (
                s(k),
                mk(&s(k), i(&t[0]), i(&t[1]), terminating, i64::from(i(&t[3]))),
            )
        })
        .collect();
    for c in cases(term) {
        let sets: Vec<&ReplicaSet> = seq(c, "sets")
            .into_iter()
            .map(|n| &fixture[&s(n)])
            .collect();
        let want_term = if c["expectTerminating"].is_null() {
            None
        } else {
            Some(i(&c["expectTerminating"]))
        };
        let outcome = check(
            "specSum",
            replicas::spec_replicas_sum(sets.iter().copied()),
            i(&c["expectSpecSum"]),
        )
        .and_then(|()| {
            check(
                "statusSum",
                replicas::status_replicas_sum(sets.iter().copied()),
                i(&c["expectStatusSum"]),
            )
        })
        .and_then(|()| {
            check(
                "terminating",
                replicas::terminating_replicas_sum(sets.iter().copied()),
                want_term,
            )
        });
        h.case(
            "replica_counts",
            &format!(
                "terminating {:?}",
                seq(c, "sets").into_iter().map(s).collect::<Vec<_>>()
            ),
            outcome,
        );
    }
}

fn revision_history(h: &mut Harness, table: &Value) {
    let d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    let mut rs = rs_named(&d, "rs", "img", 1, base());
    for step in seq(table, "steps") {
        let rev: i64 = s(&step["newRevision"]).parse().expect("revision");
        annotations::set_new_replica_set_annotations(&d, &mut rs, rev, true, 5);
        let got_rev = annotations::get(&rs.metadata, REVISION);
        let got_hist = annotations::get(&rs.metadata, REVISION_HISTORY);
        let want_hist = if step["expectHistory"].is_null() {
            None
        } else {
            Some(s(&step["expectHistory"]))
        };
        let outcome = check("revision", got_rev, Some(s(&step["expectRevision"])))
            .and_then(|()| check("revision-history", got_hist, want_hist));
        h.case(
            "revision_history_annotation",
            &format!("newRevision {rev}"),
            outcome,
        );
    }
}

fn replicas_annotations(h: &mut Harness, table: &Value) {
    let d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    for c in seq(table, "set_replicas_annotations") {
        let mut rs = rs_named(&d, "rs", "img", 1, base());
        let updated = annotations::set_replicas_annotations(
            &mut rs,
            i(&c["call"]["desired"]),
            i(&c["call"]["max"]),
        );
        let e = &c["expect"];
        let outcome = check("updated", updated, e["updated"].as_bool().unwrap_or(false))
            .and_then(|()| {
                check(
                    DESIRED_REPLICAS,
                    annotations::get(&rs.metadata, DESIRED_REPLICAS),
                    Some(s(&e[DESIRED_REPLICAS])),
                )
            })
            .and_then(|()| {
                check(
                    MAX_REPLICAS,
                    annotations::get(&rs.metadata, MAX_REPLICAS),
                    Some(s(&e[MAX_REPLICAS])),
                )
            });
        h.case("replicas_annotations", "set_replicas_annotations", outcome);
    }
    for c in seq(table, "is_saturated") {
        let d = dep(
            i(&c["deploymentReplicas"]),
            Some(IntOrString::Int(1)),
            Some(IntOrString::Int(0)),
        );
        let r = &c["rs"];
        let mut rs = rs_named(&d, "rs", "img", i(&r["spec"]), base());
        rs.status = Some(ReplicaSetStatus {
            available_replicas: Some(i(&r["availableReplicas"])),
            ..Default::default()
        });
        rs.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DESIRED_REPLICAS.into(), s(&r["desiredReplicasAnnotation"]));
        h.case(
            "replicas_annotations",
            "is_saturated",
            check(
                "saturated",
                replicas::is_saturated(&d, Some(&rs)),
                c["expect"].as_bool().unwrap_or(false),
            ),
        );
    }
    for (n, c) in seq(table, "need_update").into_iter().enumerate() {
        let mut rs = rs_named(&d, "rs", "img", 1, base());
        if let Some(m) = c["annotations"].as_mapping() {
            let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
            for (k, v) in m {
                ann.insert(format!("deployment.kubernetes.io/{}", s(k)), s(v));
            }
        }
        h.case(
            "replicas_annotations",
            &format!("need_update #{n}"),
            check(
                "needUpdate",
                annotations::replicas_annotations_need_update(&rs, 10, 20),
                c["expect"].as_bool().unwrap_or(false),
            ),
        );
    }
}

fn non_negative_int32(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let raw = s(&c["value"]);
        let mut meta = ObjectMeta::default();
        if raw != "absent" {
            meta.annotations = Some(
                [(DESIRED_REPLICAS.to_string(), raw.clone())]
                    .into_iter()
                    .collect(),
            );
        }
        let got = annotations::non_negative_int32_annotation(&meta, DESIRED_REPLICAS);
        let e = &c["expect"];
        let (value, valid, error) = match got {
            Ok(Some(v)) => (v, true, "none".to_string()),
            Ok(None) => (0, false, "none".to_string()),
            Err(annotations::AnnotationValueError::InvalidSyntax) => {
                (0, false, "invalid syntax".to_string())
            }
            Err(annotations::AnnotationValueError::OutOfRange) => {
                (0, false, "out of range".to_string())
            }
        };
        let want_err = e.get("error").map_or("none".to_string(), s);
        let outcome = check("value", value, i(&e["value"]))
            .and_then(|()| check("valid", valid, e["valid"].as_bool().unwrap_or(false)))
            .and_then(|()| check("error", error, want_err));
        h.case("non_negative_int32_annotation", &raw, outcome);
    }
}

fn condition_helpers(h: &mut Harness, table: &Value) {
    let legend: BTreeMap<String, DeploymentCondition> = table["legend"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                s(k),
                condition(
                    &s(&v["type"]),
                    &s(&v["status"]),
                    &s(&v["reason"]),
                    None,
                    None,
                ),
            )
        })
        .collect();
    let list = |v: &Value| -> Vec<DeploymentCondition> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .map(|n| legend[&s(n)].clone())
            .collect()
    };
    let types = |st: &DeploymentStatus| -> Vec<(String, String, String)> {
        st.conditions
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    conditions::reason(c).to_string(),
                )
            })
            .collect()
    };
    for c in seq(table, "get") {
        let st = DeploymentStatus {
            conditions: Some(list(&c["conditions"])),
            ..Default::default()
        };
        let found = conditions::get_deployment_condition(&st, &s(&c["type"])).is_some();
        h.case(
            "conditions",
            &format!("get {}", s(&c["type"])),
            check("found", found, c["expectFound"].as_bool().unwrap_or(false)),
        );
    }
    for c in seq(table, "set") {
        let mut st = DeploymentStatus {
            conditions: Some(list(&c["before"])),
            ..Default::default()
        };
        conditions::set_deployment_condition(&mut st, legend[&s(&c["set"])].clone());
        let want = DeploymentStatus {
            conditions: Some(list(&c["after"])),
            ..Default::default()
        };
        h.case(
            "conditions",
            &format!("set {} on {:?}", s(&c["set"]), c["before"]),
            check("after", types(&st), types(&want)),
        );
    }
    for c in seq(table, "remove") {
        let mut st = DeploymentStatus {
            conditions: Some(list(&c["before"])),
            ..Default::default()
        };
        conditions::remove_deployment_condition(&mut st, &s(&c["type"]));
        let want = DeploymentStatus {
            conditions: Some(list(&c["after"])),
            ..Default::default()
        };
        h.case(
            "conditions",
            &format!("remove {} from {:?}", s(&c["type"]), c["before"]),
            check("after", types(&st), types(&want)),
        );
    }
}

fn deployments_for_replica_set(h: &mut Harness, table: &Value) {
    let deployments: Vec<Deployment> = (0..3)
        .map(|k| {
            let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
            d.metadata.name = Some(format!("deployment-{k}"));
            d.metadata.namespace = Some("test".into());
            d.spec.iter_mut().for_each(|s| {
                s.selector.match_labels = Some(labels(&[("app", &format!("test-{k}"))]))
            });
            d
        })
        .collect();
    for c in cases(table) {
        let name = s(&c["rs"]);
        let j = name.rsplit('-').next().unwrap_or("0").to_string();
        let d0 = &deployments[0];
        let mut rs = rs_named(d0, &name, "img", 1, base());
        rs.metadata.namespace = Some("test".into());
        rs.metadata.owner_references = None;
        rs.metadata.labels = Some(labels(&[
            ("app", &format!("test-{j}")),
            ("label", &format!("label-{j}")),
        ]));
        let got = deployment::deployments_for_replica_set(&rs, &deployments)
            .map(|ds| {
                ds.into_iter()
                    .map(|d| d.metadata.name.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string());
        let want = match c.get("expectError") {
            Some(e) => Err(s(e)),
            None => Ok(seq(c, "expect").into_iter().map(s).collect()),
        };
        h.case(
            "get_deployments_for_replica_set",
            &name,
            check("deployments", got, want),
        );
    }
}

fn action_kinds(plan: &deployment::DeploymentPlan) -> Vec<String> {
    plan.actions()
        .map(|a| match a {
            DeploymentAction::AdoptReplicaSet(_) => "adopt replicaset".to_string(),
            DeploymentAction::ReleaseReplicaSet(_) => "release replicaset".to_string(),
            DeploymentAction::CreateReplicaSet(rs) => format!(
                "create replicaset (replicas {})",
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
            ),
            DeploymentAction::UpdateReplicaSet(_) => "update replicaset".to_string(),
            DeploymentAction::DeleteReplicaSet(_) => "delete replicaset".to_string(),
            DeploymentAction::UpdateDeployment(_) => "update deployment".to_string(),
            DeploymentAction::UpdateDeploymentStatus(_) => "update deployments/status".to_string(),
        })
        .collect()
}

fn observe(d: &Deployment, rss: Vec<ReplicaSet>) -> ObservedDeployment {
    ObservedDeployment {
        deployment: d.clone(),
        replica_sets: rss,
        pods: Vec::new(),
        now: base(),
    }
}

fn controller_sync(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let name = s(&c["name"]);
        let outcome = match name.as_str() {
            "TestSyncDeploymentCreatesReplicaSet" => {
                let d = dep(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(0)));
                deployment::plan(&observe(&d, vec![]))
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        // Kubernetes writes the status twice (revision/condition, then counters); the
                        // plan folds both writes into one.
                        check(
                            "actions",
                            action_kinds(&p),
                            vec![
                                "create replicaset (replicas 1)".to_string(),
                                "update deployments/status".to_string(),
                            ],
                        )
                    })
            }
            "TestSyncDeploymentDontDoAnythingDuringDeletion" => {
                let mut d = dep(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(0)));
                d.metadata.deletion_timestamp = Some(Time(base()));
                deployment::plan(&observe(&d, vec![]))
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        check(
                            "actions",
                            action_kinds(&p),
                            vec!["update deployments/status".to_string()],
                        )
                    })
            }
            "TestSyncDeploymentDeletionRace" => {
                // The API re-check before adopting is the reconciler's; the planner's part: a
                // Deployment being deleted never adopts.
                let mut d = dep(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(0)));
                d.metadata.deletion_timestamp = Some(Time(base()));
                let mut orphan = rs_named(&d, "orphan", "img:v2", 1, base());
                orphan.metadata.owner_references = None;
                deployment::plan(&observe(&d, vec![orphan]))
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        check(
                            "adopts",
                            action_kinds(&p).iter().any(|a| a.starts_with("adopt")),
                            false,
                        )
                    })
            }
            "TestDontSyncDeploymentsWithEmptyPodSelector" => {
                let mut d = dep(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(0)));
                d.spec
                    .iter_mut()
                    .for_each(|s| s.selector = Default::default());
                d.status = Some(DeploymentStatus {
                    observed_generation: Some(1),
                    ..Default::default()
                });
                let p = deployment::plan(&observe(&d, vec![])).map_err(|e| e.to_string());
                p.and_then(|p| {
                    check("actions", action_kinds(&p), Vec::<String>::new())?;
                    check(
                        "events",
                        p.events
                            .iter()
                            .map(|e| (e.event_type.as_str(), e.reason.clone()))
                            .collect::<Vec<_>>(),
                        vec![("Warning", "SelectingAll".to_string())],
                    )?;
                    let mut newer = d.clone();
                    newer.metadata.generation = Some(2);
                    let p2 =
                        deployment::plan(&observe(&newer, vec![])).map_err(|e| e.to_string())?;
                    check(
                        "observedGeneration bump",
                        p2.new_status().and_then(|s| s.observed_generation),
                        Some(2),
                    )
                })
            }
            "TestReentrantRollback" => {
                let mut d = dep(1, Some(IntOrString::Int(0)), Some(IntOrString::Int(0)));
                let ann = d.metadata.annotations.get_or_insert_with(Default::default);
                ann.insert(REVISION.into(), "2".into());
                ann.insert(annotations::ROLLBACK_TO.into(), "0".into());
                let mut rs1 = rs_named(&d, "rs1", "img:v1", 0, base());
                rs1.metadata.annotations = Some(
                    [(REVISION.to_string(), "1".to_string())]
                        .into_iter()
                        .collect(),
                );
                let mut rs2 = rs_named(&d, "rs2", "img:v2", 1, secs(base(), 60));
                rs2.metadata.annotations = Some(
                    [(REVISION.to_string(), "2".to_string())]
                        .into_iter()
                        .collect(),
                );
                deployment::plan(&observe(&d, vec![rs1, rs2]))
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        check(
                            "actions",
                            action_kinds(&p),
                            vec!["update deployment".to_string()],
                        )?;
                        let Some(DeploymentAction::UpdateDeployment(updated)) = p.actions().next()
                        else {
                            return Err("no update".into());
                        };
                        check(
                            "template image",
                            image_of(&updated.spec.clone().unwrap_or_default().template),
                            "img:v1".to_string(),
                        )?;
                        check(
                            "rollback annotation cleared",
                            annotations::rollback_to(updated),
                            None,
                        )
                    })
            }
            "TestPodDeletionEnqueuesRecreateDeployment" => {
                let d = deployment(1, None, None, true);
                check(
                    "enqueued",
                    deployment::should_sync_on_pod_deletion(&d, 0),
                    true,
                )
            }
            "TestPodDeletionDoesntEnqueueRecreateDeployment" => {
                let d = deployment(1, None, None, true);
                check(
                    "enqueued",
                    deployment::should_sync_on_pod_deletion(&d, 1),
                    false,
                )
            }
            other => Err(format!("unknown controller_sync case {other}")),
        };
        h.case("controller_sync", &name, outcome);
    }
}

fn rollout_history(h: &mut Harness, _table: &Value) {
    // kubectl prints the table; the controller's part is that the Deployment's change-cause is
    // copied onto the new ReplicaSet (which kubectl reads) and revisions ascend.
    let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
    d.metadata.annotations = Some(
        [(
            annotations::CHANGE_CAUSE.to_string(),
            "bar change cause".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let outcome = deployment::plan(&observe(&d, vec![]))
        .map_err(|e| e.to_string())
        .and_then(|p| {
            let Some(DeploymentAction::CreateReplicaSet(rs)) = p.actions().next() else {
                return Err("no create".into());
            };
            check(
                "change-cause",
                annotations::get(&rs.metadata, annotations::CHANGE_CAUSE),
                Some("bar change cause".to_string()),
            )?;
            check(
                "revision",
                annotations::get(&rs.metadata, REVISION),
                Some("1".to_string()),
            )
        });
    h.case(
        "rollout_history",
        "controller side: change-cause copied, revision 1",
        outcome,
    );
    h.skip(
        "rollout_history",
        "the printed table is kubectl client behaviour",
    );
}

fn rollback_patch(h: &mut Harness, table: &Value) {
    // The JSON patch is built by kubectl; the annotation rule it applies (skip-listed keys of
    // the Deployment ∪ non-skip-listed keys of the target RS) is the controller's too.
    for c in cases(table) {
        let mut d = dep(1, Some(IntOrString::Int(1)), Some(IntOrString::Int(0)));
        d.metadata.annotations = Some(
            [
                (REVISION.to_string(), "3".to_string()),
                ("stale".to_string(), "x".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        let mut rs = rs_named(&d, "target", "foo", 1, base());
        rs.metadata.annotations = Some(
            c["input"]["annotations"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| (s(k), s(v)))
                .chain([(REVISION.to_string(), "1".to_string())])
                .collect(),
        );
        annotations::set_deployment_annotations_to(&mut d, &rs);
        let want: BTreeMap<String, String> = [
            ("a".to_string(), "true".to_string()),
            (REVISION.to_string(), "3".to_string()),
        ]
        .into_iter()
        .collect();
        h.case(
            "rollback_patch",
            "annotations",
            check(
                "annotations",
                d.metadata.annotations.clone().unwrap_or_default(),
                want,
            ),
        );
    }
    h.skip(
        "rollback_patch",
        "the JSON patch body is kubectl client behaviour",
    );
}

fn rollout_sequences(h: &mut Harness, table: &Value) {
    for c in cases(table) {
        let name = s(&c["name"]);
        let outcome = run_sequence(c, &name);
        h.case("rollout_sequences", &name, outcome);
    }
}

fn run_sequence(c: &Value, name: &str) -> Outcome {
    let start = i(&c["start"]["v1"]);
    let recreate = name.starts_with("Recreate");
    let (surge, unavailable) = if recreate {
        (None, None)
    } else if name.contains("25%/25%") || name.contains("maxSurge 25%") {
        (
            Some(IntOrString::String("25%".into())),
            Some(IntOrString::String("25%".into())),
        )
    } else if name.contains("maxSurge 3, maxUnavailable 2") {
        (Some(IntOrString::Int(3)), Some(IntOrString::Int(2)))
    } else if name.contains("maxSurge 0, maxUnavailable 1") {
        (Some(IntOrString::Int(0)), Some(IntOrString::Int(1)))
    } else if name.contains("maxSurge 100%, maxUnavailable 0") {
        (
            Some(IntOrString::String("100%".into())),
            Some(IntOrString::Int(0)),
        )
    } else {
        return Err(format!("no parameters known for sequence {name:?}"));
    };
    let mut d = deployment(start, surge, unavailable, recreate);
    d.spec
        .iter_mut()
        .for_each(|s| s.template = template("img:v1"));
    let mut cluster = Cluster::new(d, base());
    cluster.seed_replica_set("web-v1", "img:v1", start, 1);
    // Let the first template settle (status written), then roll out v2.
    for _ in 0..3 {
        cluster.step()?;
    }
    if name.contains("never become available") {
        cluster.broken_images.push("img:v2".into());
    }
    cluster.set_image("img:v2");
    for (n, sync) in seq(c, "syncs").into_iter().enumerate() {
        let log = cluster.step().map_err(|e| format!("sync {}: {e}", n + 1))?;
        let want_ops: Vec<String> = seq(sync, "ops").into_iter().map(s).collect();
        check(&format!("sync {} ops", n + 1), log.ops.clone(), want_ops)?;
        if let Some(after) = sync.get("after").and_then(Value::as_mapping) {
            let want: BTreeMap<String, i32> = after.iter().map(|(k, v)| (s(k), i(v))).collect();
            check(&format!("sync {} sizes", n + 1), cluster.sizes(), want)?;
        }
    }
    Ok(())
}
