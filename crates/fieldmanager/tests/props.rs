//! Property tests: apply is idempotent; the bookkeeping never panics on arbitrary JSON.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use slipway_fieldmanager::{FieldSet, apply, object_field_set, record_update};

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";
const T3: &str = "2024-05-01T12:00:00Z";

fn container() -> impl Strategy<Value = (String, Value)> {
    (
        prop::sample::select(vec!["app", "sidecar", "init", "log"]),
        prop::sample::select(vec!["nginx:1", "nginx:2", "envoy:1"]),
        prop::collection::btree_set(prop::sample::select(vec![80i64, 443, 8080]), 0..3),
        prop::collection::btree_map(
            prop::sample::select(vec!["A", "B", "C"]),
            prop::option::of("[a-z]{0,2}"),
            0..3,
        ),
        prop::option::of(prop::collection::vec("[a-z]{1,2}", 0..3)),
    )
        .prop_map(|(name, image, ports, env, args)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!(image));
            if !ports.is_empty() {
                let ports: Vec<Value> = ports.iter().map(|p| json!({"containerPort": p})).collect();
                c.insert("ports".into(), Value::Array(ports));
            }
            if !env.is_empty() {
                let env: Vec<Value> = env
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => json!({"name": k, "value": v}),
                        None => json!({"name": k}),
                    })
                    .collect();
                c.insert("env".into(), Value::Array(env));
            }
            if let Some(args) = args {
                c.insert("args".into(), json!(args));
            }
            (name.to_string(), Value::Object(c))
        })
}

/// Deployment configurations with unique container names.
fn deployment_config() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0i64..5),
        prop::collection::btree_map(
            prop::sample::select(vec!["app", "tier", "team"]),
            prop::option::of("[a-z]{1,3}"),
            0..3,
        ),
        prop::collection::vec(container(), 0..4),
        prop::collection::btree_set(prop::sample::select(vec!["a/x", "b/y"]), 0..2),
        prop::option::of(prop::sample::select(vec!["Recreate", "RollingUpdate"])),
    )
        .prop_map(|(replicas, labels, containers, finalizers, strategy)| {
            let mut seen = std::collections::BTreeSet::new();
            let containers: Vec<Value> = containers
                .into_iter()
                .filter(|(name, _)| seen.insert(name.clone()))
                .map(|(_, c)| c)
                .collect();
            let labels: Map<String, Value> = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, Value::from)))
                .collect();
            let mut spec = Map::new();
            if let Some(r) = replicas {
                spec.insert("replicas".into(), json!(r));
            }
            spec.insert("selector".into(), json!({"matchLabels": {"app": "web"}}));
            if let Some(s) = strategy {
                spec.insert("strategy".into(), json!({"type": s}));
            }
            spec.insert(
                "template".into(),
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}),
            );
            let mut metadata = json!({"name": "web", "namespace": "default", "labels": labels});
            if !finalizers.is_empty() {
                metadata["finalizers"] = json!(finalizers);
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec})
        })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z:.{}\"]{0,4}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        "[a-z]{1,2}",
        prop::sample::select(vec![
            "metadata",
            "spec",
            "status",
            "template",
            "containers",
            "name",
            "ports",
            "containerPort",
            "labels",
            "finalizers",
            "managedFields",
            "fieldsV1",
            "manager",
            "operation",
            "f:spec",
            "k:{\"name\":1}",
            ".",
            "selector",
            "env",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(5, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn kind() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "Deployment",
        "Pod",
        "Service",
        "ConfigMap",
        "Rollout",
        "Event",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Applying a configuration twice gives the same object and managedFields as once.
    #[test]
    fn apply_twice_is_idempotent(x in deployment_config()) {
        let once = apply("Deployment", None, &x, "kubectl", false, T1).unwrap();
        let twice = apply("Deployment", Some(&once), &x, "kubectl", false, T2).unwrap();
        prop_assert_eq!(&twice, &once);
    }

    /// After any earlier state (another manager's apply, then this manager's), re-applying
    /// the same configuration changes nothing.
    #[test]
    fn apply_is_idempotent_after_any_history(
        x in deployment_config(),
        y in deployment_config(),
        z in deployment_config(),
    ) {
        let first = apply("Deployment", None, &x, "a", false, T1).unwrap();
        let second = apply("Deployment", Some(&first), &y, "b", true, T2).unwrap();
        let third = apply("Deployment", Some(&second), &z, "b", true, T2).unwrap();
        let again = apply("Deployment", Some(&third), &z, "b", false, T3).unwrap();
        prop_assert_eq!(&again, &third);
    }

    /// The field set of an object survives a FieldsV1 round trip.
    #[test]
    fn fields_v1_round_trips(x in deployment_config()) {
        let set = object_field_set("Deployment", &x);
        let back = FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap();
        prop_assert_eq!(back, set);
    }

    /// record_update never panics, whatever the objects look like.
    #[test]
    fn record_update_never_panics(
        kind in kind(),
        old in prop::option::of(arb_json()),
        new in arb_json(),
        sub in prop::option::of(prop::sample::select(vec!["status", "scale"])),
    ) {
        let mut new = new;
        record_update(kind, "v1", old.as_ref(), &mut new, "m", sub, T1);
        let mut again = new.clone();
        record_update(kind, "v1", Some(&new), &mut again, "m", sub, T2);
    }

    /// apply never panics either: it returns an object or an error.
    #[test]
    fn apply_never_panics(kind in kind(), live in prop::option::of(arb_json()), cfg in arb_json(), force in any::<bool>()) {
        let _ = apply(kind, live.as_ref(), &cfg, "kubectl", force, T1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// In-place subtraction leaves what the difference has, and says whether it removed
    /// anything; `contains_all` is "nothing left of the other set".
    #[test]
    fn subtract_and_contains_all_agree_with_difference(x in deployment_config(), y in deployment_config()) {
        let a = object_field_set("Deployment", &x);
        let b = object_field_set("Deployment", &y);
        let difference = a.difference(&b);
        let mut in_place = a.clone();
        let removed = in_place.subtract(&b);
        prop_assert_eq!(in_place.paths(), difference.paths());
        prop_assert_eq!(removed, difference.paths() != a.paths());
        prop_assert_eq!(a.contains_all(&b), b.difference(&a).is_empty());
        prop_assert!(a.contains_all(&a) && a.contains_all(&difference));
    }

    /// Over a history of updates by several managers (main resource and status), every
    /// recorded entry's `fieldsV1` is exactly its field set encoded afresh: entries that
    /// keep their text are never stale, and a manager that loses fields loses them in the
    /// text too.
    #[test]
    fn recorded_fields_v1_are_always_the_encoded_sets(
        steps in prop::collection::vec((deployment_config(), 0usize..3, prop::option::of(0i64..4)), 1..6),
    ) {
        let mut current: Option<Value> = None;
        for (i, (config, who, ready)) in steps.into_iter().enumerate() {
            let (manager, sub) = [("kubectl-edit", None), ("kube-controller-manager", None), ("kube-controller-manager", Some("status"))][who];
            let mut new = match (&current, sub) {
                (Some(c), Some(_)) => {
                    let mut s = c.clone();
                    s["status"] = json!({"replicas": ready, "readyReplicas": ready});
                    s
                }
                _ => config,
            };
            let time = [T1, T2, T3][i % 3];
            // The same update with the stored entries sent in the body: they are then
            // read from the body and all encoded afresh, so no text is reused.
            let mut fresh = new.clone();
            if let Some(managed) = current.as_ref().and_then(|c| c.pointer("/metadata/managedFields"))
                && sub.is_none()
            {
                fresh["metadata"]["managedFields"] = managed.clone();
            }
            record_update("Deployment", "apps/v1", current.as_ref(), &mut new, manager, sub, time);
            record_update("Deployment", "apps/v1", current.as_ref(), &mut fresh, manager, sub, time);
            prop_assert_eq!(&new["metadata"]["managedFields"], &fresh["metadata"]["managedFields"]);
            for entry in new.pointer("/metadata/managedFields").and_then(Value::as_array).into_iter().flatten() {
                let fields = FieldSet::from_fields_v1(&entry["fieldsV1"]).unwrap();
                prop_assert_eq!(&fields.to_fields_v1(), &entry["fieldsV1"]);
            }
            current = Some(new);
        }
    }
}
