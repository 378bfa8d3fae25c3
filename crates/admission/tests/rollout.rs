//! The Rollout kind (`slipway.dev/v1alpha1`) through admission's public API: strict, warn
//! and ignore decoding, defaults (the Rollout's own and the pod template's), and validation
//! answering 422 with field causes.

use serde_json::{Value, json};
use slipway_admission::{FieldValidation, decode, validate};
use slipway_core::ResourceInfo;
use slipway_core::resources::by_kind;

fn rollouts() -> &'static ResourceInfo {
    by_kind("slipway.dev/v1alpha1", "Rollout").expect("Rollout is served")
}

fn canary() -> Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "k8spatterns/random-generator:1.0",
                                         "resources": {"limits": {"cpu": 0.5}}}]}
            },
            "strategy": {"canary": {"stableService": "web", "steps": [
                {"setWeight": 20}, {"pause": {"duration": "30s"}},
                {"setHeaderRoute": {"name": "beta", "match": []}},
                {"hook": {"exec": {"command": ["true"]}, "failurePolicy": "Retry"}}
            ]}}
        }
    })
}

fn decoded(body: Value) -> Value {
    let d = decode(rollouts(), body, FieldValidation::Strict)
        .unwrap_or_else(|e| panic!("decode failed: {}", e.message));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    d.object
}

#[test]
fn a_canary_decodes_strictly_with_defaults() {
    let obj = decoded(canary());
    let spec = &obj["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["strategy"]["canary"]["maxSurge"], "25%");
    assert_eq!(spec["strategy"]["canary"]["maxUnavailable"], "25%");
    assert_eq!(
        spec["strategy"]["canary"]["steps"][3]["hook"],
        json!({"exec": {"command": ["true"]}, "timeoutSeconds": 300, "failurePolicy": "Retry",
               "retry": {"limit": 3, "backoffSeconds": 5}})
    );
    // The pod template is defaulted as a Deployment's.
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "500m");
    assert_eq!(
        spec["template"]["metadata"]["creationTimestamp"],
        Value::Null
    );
    assert!(
        spec["template"]["metadata"]
            .as_object()
            .unwrap()
            .contains_key("creationTimestamp")
    );
    assert!(
        obj.get("status").is_none(),
        "no status before the controller"
    );
    validate(rollouts(), &obj, None).expect("valid");
    // Defaulting again changes nothing.
    assert_eq!(decoded(obj.clone()), obj);
}

#[test]
fn an_empty_strategy_becomes_a_rolling_update() {
    let mut body = canary();
    body["spec"]["strategy"] = json!({});
    let obj = decoded(body);
    assert_eq!(
        obj["spec"]["strategy"],
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
}

#[test]
fn unknown_fields_follow_field_validation() {
    let mut body = canary();
    body["spec"]["strategy"]["canary"]["foo"] = json!(1);
    body["spec"]["strategy"]["canary"]["steps"][1]["pause"]["bar"] = json!("x");
    let strict = decode(rollouts(), body.clone(), FieldValidation::Strict).unwrap_err();
    assert_eq!(strict.code, 400);
    assert_eq!(
        strict.message,
        "Rollout in version \"v1alpha1\" cannot be handled as a Rollout: strict decoding error: unknown field \"spec.strategy.canary.steps[1].pause.bar\", unknown field \"spec.strategy.canary.foo\""
    );
    let warn = decode(rollouts(), body.clone(), FieldValidation::Warn).unwrap();
    assert_eq!(
        warn.warnings,
        vec![
            "unknown field \"spec.strategy.canary.steps[1].pause.bar\"",
            "unknown field \"spec.strategy.canary.foo\""
        ]
    );
    assert!(
        warn.object["spec"]["strategy"]["canary"]
            .get("foo")
            .is_none()
    );
    let ignore = decode(rollouts(), body, FieldValidation::Ignore).unwrap();
    assert!(ignore.warnings.is_empty());
    // Empty lists are known fields.
    let mut body = canary();
    body["spec"]["strategy"]["canary"]["steps"] = json!([]);
    body["spec"]["hooks"] = json!({"pre": {"exec": {"command": ["x"], "args": [], "env": []}}});
    decoded(body);
}

#[test]
fn wrong_types_are_bad_requests_naming_the_field() {
    let mut body = canary();
    body["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!("ten");
    let e = decode(rollouts(), body, FieldValidation::Strict).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(
        e.message.starts_with(
            "Rollout in version \"v1alpha1\" cannot be handled as a Rollout: spec.strategy.canary.steps[0].setWeight: invalid type"
        ),
        "{}",
        e.message
    );
}

fn invalid(mutate: impl FnOnce(&mut Value)) -> (String, Vec<(String, String)>) {
    let mut body = canary();
    mutate(&mut body);
    let obj = decoded(body);
    let e = validate(rollouts(), &obj, None).expect_err("invalid");
    assert_eq!(e.code, 422);
    assert_eq!(e.reason, "Invalid");
    let status = e.to_status();
    assert_eq!(status["details"]["kind"], "Rollout");
    assert_eq!(status["details"]["group"], "slipway.dev");
    let causes = e
        .causes
        .iter()
        .map(|c| (c.field.clone().unwrap_or_default(), c.reason.clone()))
        .collect();
    (e.message, causes)
}

#[test]
fn invalid_rollouts_are_422_with_causes() {
    let (msg, causes) =
        invalid(|b| b["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!(120));
    assert_eq!(
        msg,
        "Rollout.slipway.dev \"web\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 120: must be between 0 and 100"
    );
    assert_eq!(
        causes,
        vec![(
            "spec.strategy.canary.steps[0].setWeight".to_string(),
            "FieldValueInvalid".to_string()
        )]
    );
    let (msg, _) = invalid(|b| {
        b["spec"]["strategy"] =
            json!({"blueGreen": {"activeService": "web", "previewService": "web"}})
    });
    assert_eq!(
        msg,
        "Rollout.slipway.dev \"web\" is invalid: spec.strategy.blueGreen.previewService: Invalid value: \"web\": must differ from activeService"
    );
    let (msg, causes) = invalid(|b| b["spec"]["strategy"] = json!({"blueGreen": {}}));
    assert_eq!(
        msg,
        "Rollout.slipway.dev \"web\" is invalid: spec.strategy.blueGreen.activeService: Required value"
    );
    assert_eq!(causes[0].1, "FieldValueRequired");
    // Metadata, selector and template are checked as a Deployment's, in that order.
    let (msg, _) = invalid(|b| {
        b["metadata"]["name"] = json!("Web");
        b["spec"]["replicas"] = json!(-1);
        b["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        b["spec"]["template"]["spec"]["containers"][0]["name"] = json!("");
        b["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!(-5);
    });
    assert!(
        msg.starts_with("Rollout.slipway.dev \"Web\" is invalid: [metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"),
        "{msg}"
    );
    let order = [
        "metadata.name",
        "spec.replicas: Invalid value: -1",
        "spec.template.metadata.labels: Invalid value",
        "spec.template.spec.containers[0].name: Required value",
        "spec.strategy.canary.steps[0].setWeight: Invalid value: -5",
    ];
    let mut at = 0;
    for part in order {
        let i = msg[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part} after {at} in {msg}"));
        at += i;
    }
    let (msg, _) = invalid(|b| {
        b["spec"]
            .as_object_mut()
            .unwrap()
            .remove("selector")
            .map(|_| ())
            .unwrap()
    });
    assert!(msg.contains("spec.selector: Required value"), "{msg}");
    let (msg, _) = invalid(|b| b["spec"]["hooks"] = json!({"mid": {"exec": {"command": ["x"]}}}));
    assert_eq!(
        msg,
        "Rollout.slipway.dev \"web\" is invalid: spec.hooks.mid: Forbidden: only with the recreate strategy"
    );
}

#[test]
fn the_selector_is_immutable() {
    let old = decoded(canary());
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let e = validate(rollouts(), &new, Some(&old)).unwrap_err();
    assert!(
        e.message
            .ends_with("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"),
        "{}",
        e.message
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(4);
    validate(rollouts(), &scaled, Some(&old)).expect("valid update");
}
