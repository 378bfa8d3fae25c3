//! Property tests over the whole write path: arbitrary bodies and patches, of every type,
//! against every kind, never panic, and a refused write never changes the store.

use proptest::prelude::*;
use serde_json::{Value, json};
use slipway_apiserver::negotiate::BodyFormat;
use slipway_apiserver::query::Query;
use slipway_apiserver::rest::Rest;
use slipway_apiserver::target::ResourceTarget;
use slipway_core::resources;
use slipway_store::Store;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z$/%0-9.:-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("apiVersion".to_string()),
                    Just("kind".to_string()),
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("name".to_string()),
                    Just("containers".to_string()),
                    Just("replicas".to_string()),
                    Just("$patch".to_string()),
                    Just("$retainKeys".to_string()),
                    "[a-z]{1,6}".prop_map(String::from),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn seeded() -> Rest {
    let rest = Rest::new(Store::in_memory().expect("store"));
    slipway_apiserver::housekeeping::ensure_builtin_namespaces(&rest).expect("namespaces");
    let info = resources::lookup("apps", "v1", "deployments").unwrap();
    let t = ResourceTarget {
        info,
        namespace: Some("default".into()),
        name: None,
        subresource: None,
    };
    let seed = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
    });
    rest.create(&t, &Query::default(), seed, "test")
        .expect("seed deployment");
    rest
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_creates_never_panic_or_half_write(body in arb_json(), kind_index in 0usize..10) {
        let rest = seeded();
        let info = &resources::all()[kind_index % resources::all().len()];
        let before = rest.store().revision();
        let t = ResourceTarget { info, namespace: info.namespaced.then(|| "default".to_string()), name: None, subresource: None };
        match rest.create(&t, &Query::default(), body, "test") {
            Ok(w) => prop_assert!(rest.store().revision() == before + 1 && !w.object.is_null()),
            Err(e) => {
                prop_assert!(e.code >= 400 && e.code < 500, "{e:?}");
                prop_assert_eq!(rest.store().revision(), before);
            }
        }
    }

    #[test]
    fn arbitrary_patches_never_panic_or_half_write(patch in arb_json(), format_index in 0usize..4) {
        let rest = seeded();
        let info = resources::lookup("apps", "v1", "deployments").unwrap();
        let t = ResourceTarget { info, namespace: Some("default".into()), name: Some("web".into()), subresource: None };
        let format = [BodyFormat::JsonPatch, BodyFormat::MergePatch, BodyFormat::StrategicMergePatch, BodyFormat::ApplyPatch][format_index];
        let before = rest.get(&t).expect("seeded");
        let q = Query { field_manager: Some("fuzz".into()), ..Query::default() };
        let raw = serde_json::to_vec(&patch).unwrap();
        match rest.patch(&t, &q, format, &raw, "test") {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(e.code >= 400 && e.code < 500, "{e:?}");
                prop_assert_eq!(rest.get(&t).expect("still there"), before);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_as_bodies_are_refused_cleanly(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let rest = seeded();
        let info = resources::lookup("apps", "v1", "deployments").unwrap();
        let t = ResourceTarget { info, namespace: Some("default".into()), name: Some("web".into()), subresource: None };
        let before = rest.store().revision();
        for format in [BodyFormat::JsonPatch, BodyFormat::MergePatch, BodyFormat::StrategicMergePatch, BodyFormat::ApplyPatch] {
            let q = Query { field_manager: Some("fuzz".into()), ..Query::default() };
            let _ = rest.patch(&t, &q, format, &raw, "test");
        }
        let _ = slipway_codec::decode_protobuf(&raw);
        let _ = slipway_apiserver::rest::parse_object_body(&raw);
        prop_assert!(rest.store().revision() >= before);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary Binding bodies never panic; a refused one changes nothing.
    #[test]
    fn arbitrary_bindings_never_panic_or_half_write(body in arb_json()) {
        let rest = seeded();
        let pods = resources::lookup("", "v1", "pods").unwrap();
        let create = ResourceTarget { info: pods, namespace: Some("default".into()), name: None, subresource: None };
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        rest.create(&create, &Query::default(), pod, "test").expect("pod");
        let t = ResourceTarget { name: Some("p".into()), subresource: Some(slipway_core::Subresource::Binding), ..create };
        let before = rest.store().revision();
        match rest.bind(&t, &Query::default(), body) {
            Ok(bound) => prop_assert!(bound["spec"]["nodeName"].is_string()),
            Err(e) => {
                prop_assert!(e.code >= 400, "{e:?}");
                prop_assert_eq!(rest.store().revision(), before);
            }
        }
    }
}

/// A status write carries the whole object. The parts it cannot change are decoded only
/// when they differ from the stored ones, with the outcome decoding them would have.
#[test]
fn status_writes_decode_what_differs_from_the_stored_object() {
    let rest = seeded();
    let info = resources::lookup("apps", "v1", "deployments").unwrap();
    let t = ResourceTarget {
        info,
        namespace: Some("default".into()),
        name: Some("web".into()),
        subresource: Some(slipway_core::Subresource::Status),
    };
    let q = Query::default();
    let stored = rest.get(&t).expect("seeded");
    let mut body = (*stored).clone();
    body["status"] = json!({"replicas": 2, "observedGeneration": 1});
    let w = rest.update(&t, &q, body, "test").expect("status write");
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    let after = rest.get(&t).expect("still there");
    assert_eq!(after["status"]["replicas"], 2);
    assert_eq!(
        after["spec"], stored["spec"],
        "a status write keeps the spec"
    );

    // A spec that differs is decoded: its unknown fields warn, its type errors fail.
    let mut odd = (*after).clone();
    odd["spec"]["bogus"] = json!(1);
    odd["status"]["replicas"] = json!(1);
    let w = rest.update(&t, &q, odd, "test").expect("status write");
    assert_eq!(w.warnings, vec!["unknown field \"spec.bogus\"".to_string()]);
    let after = rest.get(&t).expect("still there");
    assert_eq!(after["status"]["replicas"], 1);
    assert_eq!(after["spec"], stored["spec"]);
    let mut wrong = (*after).clone();
    wrong["spec"]["replicas"] = json!("two");
    let e = rest
        .update(&t, &q, wrong, "test")
        .expect_err("a type error");
    assert_eq!(e.code, 400, "{e:?}");
    assert_eq!(rest.get(&t).expect("still there"), after);
}
