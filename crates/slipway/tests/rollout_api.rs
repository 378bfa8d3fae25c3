//! The Rollout kind (`slipway.dev/v1alpha1`) served like a built-in kind, driven by the real
//! kubectl against `slipway serve --runtime simulated`: discovery (`api-resources`,
//! `api-versions`, not in `all`), `kubectl explain` from the OpenAPI v3 schema, apply with
//! defaults, the table columns, the `scale` and `status` subresources, generation, and 422s
//! naming the field for every kind of bad input, with nothing written on refusal.
//!
//! Nothing here depends on a Rollout controller filling the status.

mod common;

use common::Server;
use serde_json::{Value, json};

fn simulated() -> Server {
    Server::start_with(&["--runtime", "simulated"])
}

const ROLLOUTS: &str = "/apis/slipway.dev/v1alpha1/namespaces/default/rollouts";

/// A Rollout manifest named `name` with `strategy` (YAML, indented under `strategy:`) and
/// extra spec lines.
fn manifest(name: &str, strategy: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: k8spatterns/random-generator:1.0
  strategy:
{strategy}
{extra}"#
    )
}

const CANARY: &str = r#"    canary:
      stableService: web
      steps:
      - setWeight: 20
      - pause: {duration: 30s}
      - analysis:
          checks:
          - name: errors
            proxy: {metric: errorRate, max: 0.05}
      - hook:
          http: {url: "http://127.0.0.1:9/ready"}
      - setWeight: 60
      - pause: {}"#;

const BLUE_GREEN: &str = r#"    blueGreen:
      activeService: bg
      previewService: bg-preview
      prePromotionHook:
        exec: {command: [sh, -c, "true"]}
        failurePolicy: Retry"#;

fn get(s: &Server, name: &str) -> Value {
    s.get_json(&["rollout", name])
}

/// Applies `yaml` (expecting a refusal), and returns kubectl's stderr; the object named
/// `name` must not exist afterwards.
fn refused(s: &Server, yaml: &str, name: &str) -> String {
    let r = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert_ne!(
        r.code, 0,
        "apply should fail:\n{yaml}\nprinted: {}",
        r.stdout
    );
    let gone = s.kubectl(&["get", "rollout", name]);
    assert_ne!(gone.code, 0, "{name} was written despite the refusal");
    assert!(
        gone.stderr
            .contains(&format!("rollouts.slipway.dev \"{name}\" not found")),
        "{}",
        gone.stderr
    );
    r.stderr
}

#[test]
fn discovery_and_explain() {
    let s = simulated();
    let resources = s.ok(&["api-resources"]);
    let line: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("rollouts "))
        .unwrap_or_else(|| panic!("no rollouts in:\n{resources}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        line,
        ["rollouts", "ro", "slipway.dev/v1alpha1", "true", "Rollout"]
    );
    let by_group = s.ok(&["api-resources", "--api-group=slipway.dev", "-o", "name"]);
    assert_eq!(by_group.trim(), "rollouts.slipway.dev");
    let versions = s.ok(&["api-versions"]);
    assert!(
        versions.lines().any(|l| l == "slipway.dev/v1alpha1"),
        "{versions}"
    );

    let explain = s.ok(&["explain", "rollout.spec.strategy.blueGreen.activeService"]);
    assert!(explain.contains("GROUP:      slipway.dev"), "{explain}");
    assert!(explain.contains("KIND:       Rollout"), "{explain}");
    assert!(explain.contains("VERSION:    v1alpha1"), "{explain}");
    assert!(
        explain.contains("FIELD: activeService <string>"),
        "{explain}"
    );
    assert!(
        explain.contains("The Service that carries production traffic"),
        "{explain}"
    );
    let canary = s.ok(&["explain", "rollout.spec.strategy.canary"]);
    for field in [
        "stableService\t<string>",
        "maxSurge\t<",
        "maxUnavailable\t<",
        "steps\t<[]Object>",
        "analysis\t<Object>",
    ] {
        assert!(canary.contains(field), "{field} in:\n{canary}");
    }
    let step = s.ok(&["explain", "ro.spec.strategy.canary.steps.setWeight"]);
    assert!(
        step.contains("Percent of new connections and HTTP requests to the canary, 0-100."),
        "{step}"
    );
    let recursive = s.ok(&["explain", "rollout.spec.hooks", "--recursive"]);
    for field in [
        "pre\t<Object>",
        "onAbort\t<Object>",
        "failurePolicy\t<string>",
    ] {
        assert!(recursive.contains(field), "{field} in:\n{recursive}");
    }
    let missing = s.fails(&["explain", "rollout.spec.strategy.canary.nope"]);
    assert!(missing.contains("nope"), "{missing}");
}

#[test]
fn apply_get_scale_and_subresources() {
    let s = simulated();
    let out = s.apply(&manifest("web", CANARY, "  replicas: 2"));
    assert_eq!(out.trim(), "rollout.slipway.dev/web created");
    let out = s.apply(&manifest("bg", BLUE_GREEN, ""));
    assert_eq!(out.trim(), "rollout.slipway.dev/bg created");
    let out = s.apply(&manifest("plain", "    {}", ""));
    assert_eq!(out.trim(), "rollout.slipway.dev/plain created");
    // Applying the same manifest again writes nothing. (kubectl sends a JSON merge patch
    // for a Rollout, as for a custom resource; lists are replaced whole, so the defaulted
    // containers and steps make kubectl print `configured`, as it does for CRDs.)
    for (name, yaml) in [
        ("web", manifest("web", CANARY, "  replicas: 2")),
        ("bg", manifest("bg", BLUE_GREEN, "")),
    ] {
        let rv = get(&s, name)["metadata"]["resourceVersion"].clone();
        s.apply(&yaml);
        assert_eq!(get(&s, name)["metadata"]["resourceVersion"], rv, "{name}");
    }

    // Defaults, as stored.
    let web = get(&s, "web");
    assert_eq!(web["metadata"]["generation"], 1);
    let spec = &web["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let canary = &spec["strategy"]["canary"];
    assert_eq!(canary["maxSurge"], "25%");
    assert_eq!(canary["maxUnavailable"], "25%");
    assert_eq!(
        canary["steps"][2]["analysis"]["checks"][0],
        json!({"name": "errors", "interval": "10s", "count": 1, "failureLimit": 0,
               "inconclusiveLimit": 0, "proxy": {"metric": "errorRate", "max": 0.05}})
    );
    assert_eq!(
        canary["steps"][3]["hook"],
        json!({"http": {"url": "http://127.0.0.1:9/ready"}, "timeoutSeconds": 300,
               "failurePolicy": "Abort"})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        pod["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    let bg = get(&s, "bg");
    let blue_green = &bg["spec"]["strategy"]["blueGreen"];
    assert_eq!(blue_green["autoPromotionEnabled"], true);
    assert_eq!(blue_green["scaleDownDelaySeconds"], 30);
    assert_eq!(
        blue_green["prePromotionHook"]["retry"],
        json!({"limit": 3, "backoffSeconds": 5})
    );
    assert_eq!(bg["spec"]["replicas"], 1);
    let plain = get(&s, "plain");
    assert_eq!(
        plain["spec"]["strategy"],
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let yaml = s.ok(&["get", "rollout", "web", "-o", "yaml"]);
    assert!(yaml.contains("revisionHistoryLimit: 10"), "{yaml}");
    assert!(yaml.contains("progressDeadlineSeconds: 600"), "{yaml}");

    // The table.
    let table = s.ok(&["get", "rollouts"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "UP-TO-DATE",
            "AVAILABLE",
            "STATUS",
            "STEP",
            "WEIGHT",
            "AGE"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, ["bg", "plain", "web"]);
    let web_row = &rows[2];
    assert_eq!(web_row[1], "2", "{table}");
    let wide = s.ok(&["get", "ro", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    for col in ["STRATEGY", "CONTAINERS", "IMAGES", "SELECTOR"] {
        assert!(header.contains(col), "{wide}");
    }
    let row_of = |name: &str| {
        wide.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .to_string()
    };
    assert!(row_of("web").contains(" Canary "), "{wide}");
    assert!(row_of("bg").contains(" BlueGreen "), "{wide}");
    assert!(row_of("plain").contains(" RollingUpdate "), "{wide}");
    assert!(
        row_of("web").contains("k8spatterns/random-generator:1.0   app=web"),
        "{wide}"
    );
    // Not part of `all`, as on Kubernetes with Argo's CRD.
    let all = s.ok(&["get", "all"]);
    assert!(!all.contains("rollout"), "{all}");

    // The scale subresource.
    let out = s.ok(&["scale", "rollout/web", "--replicas=4"]);
    assert_eq!(out.trim(), "rollout.slipway.dev/web scaled");
    let web = get(&s, "web");
    assert_eq!(web["spec"]["replicas"], 4);
    assert_eq!(web["metadata"]["generation"], 2);
    let (code, body) = s.http("GET", &format!("{ROLLOUTS}/web/scale"), None, b"", true);
    assert_eq!(code, 200, "{body}");
    let scale: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, body) = s.http(
        "PUT",
        &format!("{ROLLOUTS}/web/scale"),
        Some("application/json"),
        br#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":3}}"#,
        true,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(&s, "web")["spec"]["replicas"], 3);
    assert_eq!(get(&s, "web")["metadata"]["generation"], 3);
    let refused_scale = s.fails(&["scale", "rollout/web", "--replicas=-1"]);
    assert!(refused_scale.contains("replicas"), "{refused_scale}");

    // The main resource ignores status; metadata-only changes keep the generation.
    let rv_before = get(&s, "web")["metadata"]["resourceVersion"].clone();
    let patched = s.ok(&[
        "patch",
        "rollout",
        "web",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bogus"},"metadata":{"labels":{"team":"a"}}}"#,
        "-o",
        "json",
    ]);
    let patched: Value = serde_json::from_str(&patched).unwrap();
    assert_ne!(patched["status"]["phase"], "Bogus");
    assert_eq!(patched["metadata"]["labels"]["team"], "a");
    assert_eq!(patched["metadata"]["generation"], 3);
    assert_ne!(patched["metadata"]["resourceVersion"], rv_before);

    // The status subresource changes only the status.
    let (code, body) = s.http(
        "PATCH",
        &format!("{ROLLOUTS}/web/status"),
        Some("application/merge-patch+json"),
        br#"{"spec":{"replicas":9},"status":{"phase":"Paused","selector":"app=web,x=y"}}"#,
        true,
    );
    assert_eq!(code, 200, "{body}");
    let after: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(after["status"]["phase"], "Paused");
    assert_eq!(after["spec"]["replicas"], 3);
    assert_eq!(after["metadata"]["generation"], 3);
    let status_patch = s.ok(&[
        "patch",
        "rollout",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"abort":true}}"#,
        "-o",
        "json",
    ]);
    let status_patch: Value = serde_json::from_str(&status_patch).unwrap();
    assert_eq!(status_patch["status"]["abort"], true);

    // A spec change bumps the generation.
    s.apply(&manifest(
        "web",
        CANARY,
        "  replicas: 3\n  minReadySeconds: 5",
    ));
    assert_eq!(get(&s, "web")["metadata"]["generation"], 4);

    // An invalid update is refused and nothing changes.
    let before = get(&s, "web");
    let bad = manifest(
        "web",
        "    canary:\n      steps:\n      - setWeight: 150",
        "  replicas: 3",
    );
    let r = s.kubectl_stdin(&["apply", "-f", "-"], &bad);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "The Rollout \"web\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 150: must be between 0 and 100"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        get(&s, "web")["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    s.ok(&["delete", "rollout", "web", "bg", "plain"]);
    let empty = s.kubectl(&["get", "rollouts"]);
    assert!(
        empty.stderr.contains("No resources found"),
        "{}",
        empty.stderr
    );
}

#[test]
fn bad_rollouts_are_refused_naming_the_field() {
    let s = simulated();
    let cases: Vec<(String, &str)> = vec![
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - setWeight: 120",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 120: must be between 0 and 100",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - setWeight: 10\n      - pause: {}\n      - {setWeight: 20, pause: {}}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[2]: Invalid value: {\"setWeight\":20,\"pause\":{}}: a step must have exactly one of setWeight, pause, setCanaryScale, analysis, hook, setHeaderRoute",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - setWeight: 10\n      - pause: {}\n      - analysis: {checks: []}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[2].analysis.checks: Required value: an analysis needs at least one check",
        ),
        (
            manifest("bad", "    blueGreen: {previewService: p}", ""),
            "The Rollout \"bad\" is invalid: spec.strategy.blueGreen.activeService: Required value",
        ),
        (
            manifest(
                "bad",
                "    blueGreen: {activeService: web, previewService: web}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.blueGreen.previewService: Invalid value: \"web\": must differ from activeService",
        ),
        (
            manifest("bad", "    canary: {}\n    recreate: {}", ""),
            "The Rollout \"bad\" is invalid: spec.strategy: Forbidden: may not specify more than 1 strategy",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - pause: {duration: soon}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].pause.duration: Invalid value: \"soon\": must be a duration",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - hook: {http: {url: \"http://10.0.0.1/x\"}}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].hook.http.url: Invalid value: \"http://10.0.0.1/x\": must be on loopback (127.0.0.0/8)",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - hook: {timeoutSeconds: 5}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].hook: Required value: a hook needs exec.command or http.url",
        ),
        (
            manifest(
                "bad",
                "    canary: {}",
                "  hooks:\n    pre: {exec: {command: [\"true\"]}, failurePolicy: Sometimes}",
            ),
            "The Rollout \"bad\" is invalid: spec.hooks.pre.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Abort\", \"Retry\", \"Ignore\"",
        ),
        (
            manifest(
                "bad",
                "    canary: {}",
                "  hooks:\n    mid: {exec: {command: [\"true\"]}}",
            ),
            "The Rollout \"bad\" is invalid: spec.hooks.mid: Forbidden: only with the recreate strategy",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - analysis: {checks: [{name: a, proxy: {metric: cpu, max: 1}}]}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].analysis.checks[0].proxy.metric: Unsupported value: \"cpu\": supported values: \"errorRate\", \"latencyP50\", \"latencyP99\"",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - analysis: {checks: [{name: a, web: {url: \"http://127.0.0.1/x\"}}]}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].analysis.checks[0].web.jsonPath: Required value",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - setCanaryScale: {replicas: 1, weight: 10}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].setCanaryScale: Invalid value: {\"replicas\":1,\"weight\":10}: must have exactly one of replicas, weight, matchTrafficWeight",
        ),
        (
            manifest(
                "bad",
                "    canary:\n      steps:\n      - setHeaderRoute: {name: beta, match: [{headerName: X-Canary}]}",
                "",
            ),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.exact: Required value",
        ),
        (
            manifest("bad", "    canary: {maxSurge: 0, maxUnavailable: 0}", ""),
            "The Rollout \"bad\" is invalid: spec.strategy.canary.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ),
        (
            manifest("bad", "    recreate: {}", "  replicas: -2"),
            "The Rollout \"bad\" is invalid: spec.replicas: Invalid value: -2: must be greater than or equal to 0",
        ),
        (
            manifest("bad", "    recreate: {}", "")
                .replace("matchLabels: {app: bad}", "matchLabels: {app: other}"),
            "The Rollout \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"bad\"}: `selector` does not match template `labels`",
        ),
    ];
    for (yaml, want) in &cases {
        let stderr = refused(&s, yaml, "bad");
        assert!(
            stderr.contains(want),
            "want {want:?}\ngot {stderr}\nfor\n{yaml}"
        );
    }

    // Several errors at once: kubectl lists each cause.
    let many = manifest(
        "bad",
        "    blueGreen: {activeService: web, previewService: web, scaleDownDelaySeconds: -1}",
        "  replicas: -1",
    );
    let stderr = refused(&s, &many, "bad");
    assert!(
        stderr.contains("The Rollout \"bad\" is invalid: \n"),
        "{stderr}"
    );
    for line in [
        "* spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "* spec.strategy.blueGreen.previewService: Invalid value: \"web\": must differ from activeService",
        "* spec.strategy.blueGreen.scaleDownDelaySeconds: Invalid value: -1: must be greater than or equal to 0",
    ] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }

    // The raw 422 carries the causes with field paths.
    let body = json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "app", "image": "x:1"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 120}]}}}
    });
    let (code, text) = s.http(
        "POST",
        ROLLOUTS,
        Some("application/json"),
        body.to_string().as_bytes(),
        true,
    );
    assert_eq!(code, 422, "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "Rollout.slipway.dev \"bad\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 120: must be between 0 and 100"
    );
    assert_eq!(status["details"]["group"], "slipway.dev");
    assert_eq!(status["details"]["kind"], "Rollout");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldValueInvalid",
               "message": "Invalid value: 120: must be between 0 and 100",
               "field": "spec.strategy.canary.steps[0].setWeight"})
    );
}

#[test]
fn unknown_fields_follow_validate() {
    let s = simulated();
    let yaml = manifest("strict", "    canary:\n      foo: 1\n      steps: []", "");
    // kubectl's default is --validate=strict: the server rejects, naming the field.
    for flags in [vec![], vec!["--validate=strict"]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend(flags);
        let r = s.kubectl_stdin(&args, &yaml);
        assert_ne!(r.code, 0, "{}", r.stdout);
        assert!(
            r.stderr.contains(
                "Rollout in version \"v1alpha1\" cannot be handled as a Rollout: strict decoding error: unknown field \"spec.strategy.canary.foo\""
            ),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("Error from server (BadRequest)"),
            "{}",
            r.stderr
        );
        assert_ne!(s.kubectl(&["get", "rollout", "strict"]).code, 0);
    }
    // Warn: created, with the warning; the field is dropped.
    let r = s.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], &yaml);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Warning: unknown field \"spec.strategy.canary.foo\""),
        "{}",
        r.stderr
    );
    let obj = get(&s, "strict");
    assert!(obj["spec"]["strategy"]["canary"].get("foo").is_none());
    // Ignore: no warning.
    let r = s.kubectl_stdin(
        &["apply", "--validate=false", "-f", "-"],
        &yaml.replace("foo: 1", "foo: 2"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("unknown field"), "{}", r.stderr);
    // A valid manifest passes strict validation.
    let r = s.kubectl_stdin(
        &["apply", "--validate=strict", "-f", "-"],
        &manifest("ok", CANARY, ""),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}
