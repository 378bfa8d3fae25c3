//! End-to-end tests of the API server with the real kubectl: every command of the user
//! session in the API server issue, and the bad-input cases.

mod common;

use common::{Server, eventually, write_file};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

const SEED: &str = include_str!("fixtures/seed-deployment.yaml");
const SEED_AS_WRITTEN: &str = include_str!("fixtures/seed-deployment-as-written.yaml");

fn global_revision(s: &Server) -> u64 {
    let (code, body) = s.http("GET", "/api/v1/namespaces", None, b"", true);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The revision of the newest write.
fn latest_revision(s: &Server) -> u64 {
    global_revision(s)
}

/// Waits until `kubectl get <what>` shows the same resourceVersion on three polls in a row.
fn quiesce(s: &Server, what: &[&str]) {
    let mut last = Value::Null;
    let mut same = 0;
    eventually(
        Duration::from_secs(20),
        "the object to stop changing",
        || {
            let rv = s.get_json(what)["metadata"]["resourceVersion"].clone();
            same = if rv == last { same + 1 } else { 0 };
            last = rv;
            (same >= 2).then_some(())
        },
    );
}

/// Waits until the controllers are done with the seed Deployment (its ReplicaSet and three
/// pods exist and both statuses are written; without a pod runtime nothing changes after).
fn settle(s: &Server, replicas: i64) {
    eventually(
        Duration::from_secs(20),
        "the controllers to settle on the seed Deployment",
        || {
            let d = s.get_json(&["deploy", "random-generator"]);
            let rs = s.get_json(&["rs", "-l", "app=random-generator"]);
            let settled = d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && d["status"]["replicas"] == replicas
                && rs["items"]
                    .as_array()
                    .is_some_and(|i| i.len() == 1 && i[0]["status"]["replicas"] == replicas);
            settled.then_some(())
        },
    );
}

#[test]
fn version_and_discovery() {
    let s = Server::start();
    let v = s.ok(&["version"]);
    assert!(v.contains("Server Version: v1.33"), "{v}");
    assert!(
        v.contains("Client Version: v1.33"),
        "the dispatcher must pick kubectl 1.33: {v}"
    );
    let r = s.ok(&["api-resources"]);
    for needle in [
        "deployments",
        "deploy",
        "apps/v1",
        "replicasets",
        "rs",
        "pods",
        "po",
        "services",
        "svc",
        "namespaces",
        "ns",
        "endpointslices",
        "configmaps",
        "secrets",
        "events",
    ] {
        assert!(r.contains(needle), "api-resources lacks {needle}:\n{r}");
    }
    let ns = s.ok(&["get", "namespaces"]);
    for builtin in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(builtin), "{ns}");
    }
    assert!(ns.contains("Active"), "{ns}");
    // Legacy discovery and OpenAPI v2 as the real server answers them.
    let (code, _) = s.http("GET", "/openapi/v2", None, b"", true);
    assert_eq!(code, 404);
    let (code, body) = s.http("GET", "/api/v1", None, b"", true);
    assert_eq!(code, 200);
    assert!(body.contains("\"APIResourceList\""), "{body}");
}

#[test]
fn the_user_session_of_the_api_server_issue() {
    let s = Server::start();
    let seed = write_file(s.dir.path(), "deployment.yaml", SEED);
    let seed = seed.to_str().unwrap();

    assert!(
        s.ok(&["apply", "-f", seed])
            .contains("deployment.apps/random-generator created")
    );
    assert!(
        s.ok(&["apply", "-f", seed])
            .contains("deployment.apps/random-generator unchanged")
    );
    let wide = s.ok(&["get", "deploy,rs,pods", "-o", "wide"]);
    assert!(
        wide.contains("random-generator") && wide.contains("k8spatterns/random-generator:1.0"),
        "{wide}"
    );
    assert!(
        wide.contains("app=random-generator"),
        "selector column: {wide}"
    );

    // Defaults as a 1.33 cluster fills them in.
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let probe = &pod["containers"][0]["readinessProbe"];
    assert_eq!(probe["periodSeconds"], 10);
    assert_eq!(probe["timeoutSeconds"], 1);
    assert_eq!(probe["successThreshold"], 1);
    assert_eq!(probe["failureThreshold"], 3);
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    let with_fields = s.get_json(&["deploy", "random-generator", "--show-managed-fields"]);
    assert!(
        with_fields["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{with_fields}"
    );
    let yaml = s.ok(&["get", "deploy", "random-generator", "-o", "yaml"]);
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );

    // Imperative generators send protobuf.
    assert!(
        s.ok(&[
            "create",
            "deployment",
            "web",
            "--image=k8spatterns/random-generator:1.0",
            "--replicas=2"
        ])
        .contains("deployment.apps/web created")
    );
    let web = s.get_json(&["deploy", "web"]);
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web");
    assert!(
        s.ok(&["create", "namespace", "team-a"])
            .contains("namespace/team-a created")
    );
    assert!(
        s.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
            .contains("service/web created")
    );
    let svc = s.ok(&["get", "svc", "web"]);
    assert!(
        svc.contains("ClusterIP") && svc.contains(" 127.") && svc.contains("80/TCP"),
        "{svc}"
    );
    assert!(
        s.ok(&["create", "configmap", "settings", "--from-literal=a=1"])
            .contains("configmap/settings created")
    );
    assert!(
        s.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=p=s3cret"
        ])
        .contains("secret/creds created")
    );
    let secret = s.get_json(&["secret", "creds"]);
    assert_eq!(secret["data"]["p"], "czNjcmV0");
    assert_eq!(secret["type"], "Opaque");

    // Scale through the scale subresource bumps the generation.
    assert!(
        s.ok(&["scale", "deploy/random-generator", "--replicas=5"])
            .contains("scaled")
    );
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);

    s.ok(&[
        "set",
        "image",
        "deploy/random-generator",
        "random-generator=k8spatterns/random-generator:2.0",
    ]);
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "k8spatterns/random-generator:2.0"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    s.ok(&[
        "patch",
        "deploy",
        "random-generator",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "random-generator",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"a":"b"}}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "random-generator",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["spec"]["minReadySeconds"], 5);
    assert_eq!(d["metadata"]["labels"]["a"], "b");
    assert_eq!(d["spec"]["replicas"], 2);
    // A no-op patch keeps the resourceVersion (checked on a ConfigMap: the controllers
    // write the Deployment's status concurrently, which kubectl would see as a change).
    s.ok(&["create", "configmap", "noop", "--from-literal=k=v"]);
    let before = s.get_json(&["configmap", "noop"])["metadata"]["resourceVersion"].clone();
    assert!(
        s.ok(&[
            "patch",
            "configmap",
            "noop",
            "--type=merge",
            "-p",
            r#"{"data":{"k":"v"}}"#
        ])
        .contains("(no change)")
    );
    assert_eq!(
        s.get_json(&["configmap", "noop"])["metadata"]["resourceVersion"],
        before,
        "a no-op patch keeps the resourceVersion"
    );

    // kubectl edit with a scripted editor.
    let editor = write_file(
        s.dir.path(),
        "editor.sh",
        "#!/bin/sh\nsed -i 's#random-generator:2.0#random-generator:3.0#' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = {
        let mut cmd = s.kubectl_cmd(&["edit", "deploy", "random-generator"]);
        cmd.env("KUBE_EDITOR", &editor);
        cmd.output().unwrap()
    };
    assert!(
        r.status.success(),
        "edit: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stdout).contains("edited"));
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "k8spatterns/random-generator:3.0"
    );

    // replace sends the resourceVersion it read: wait until the controllers stop writing
    // the Deployment's status, or the PUT races them (as it would on a cluster).
    quiesce(&s, &["deploy", "random-generator"]);
    assert!(s.ok(&["replace", "-f", seed]).contains("replaced"));
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "k8spatterns/random-generator:1.0"
    );

    // Server-side apply: the fields kubectl-client-side-apply owns conflict; force takes them.
    s.ok(&["scale", "deploy/random-generator", "--replicas=4"]);
    let err = s.fails(&["apply", "--server-side", "-f", seed]);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    assert!(
        s.ok(&["apply", "--server-side", "--force-conflicts", "-f", seed])
            .contains("serverside-applied")
    );
    let d = s.get_json(&["deploy", "random-generator", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    let desc = s.ok(&["describe", "deploy", "random-generator"]);
    for needle in [
        "Name:",
        "random-generator",
        "Replicas:",
        "StrategyType:",
        "RollingUpdate",
        "Pod Template:",
        "stat /random-generator-ready",
    ] {
        assert!(desc.contains(needle), "describe lacks {needle}:\n{desc}");
    }

    assert!(
        s.ok(&["delete", "deploy", "random-generator"])
            .contains("deleted")
    );
    let err = s.fails(&["get", "deploy", "random-generator"]);
    assert!(
        err.contains(
            "Error from server (NotFound): deployments.apps \"random-generator\" not found"
        ),
        "{err}"
    );
}

#[test]
fn get_watch_prints_every_change() {
    let s = Server::start();
    s.apply(SEED);
    let mut child = s
        .kubectl_cmd(&["get", "deploy", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the watch printed the header");
    assert!(first.contains("NAME"), "{first}");
    let added = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the initial row");
    assert!(
        added.contains("ADDED") && added.contains("random-generator"),
        "{added}"
    );
    s.ok(&["label", "deploy", "random-generator", "tier=web"]);
    let modified = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a MODIFIED row after the label");
    assert!(modified.contains("MODIFIED"), "{modified}");
    s.ok(&["delete", "deploy", "random-generator"]);
    // Status updates from the controllers may come first; every row is MODIFIED until the
    // DELETED one.
    loop {
        let row = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a DELETED row");
        if row.contains("DELETED") {
            break;
        }
        assert!(row.contains("MODIFIED"), "{row}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn namespaces_scope_and_cascade() {
    let s = Server::start();
    let err = s
        .kubectl_stdin(&["apply", "-n", "nope", "-f", "-"], SEED)
        .stderr;
    assert!(err.contains("namespaces \"nope\" not found"), "{err}");
    s.ok(&["create", "namespace", "team-a"]);
    s.kubectl_stdin(&["apply", "-n", "team-a", "-f", "-"], SEED);
    s.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "team-a",
        "--from-literal=a=b",
    ]);
    let all = s.ok(&["get", "deploy", "-A"]);
    assert!(
        all.contains("team-a") && all.contains("random-generator"),
        "{all}"
    );
    assert!(s.ok(&["delete", "namespace", "team-a"]).contains("deleted"));
    let r = s.kubectl(&["get", "namespace", "team-a"]);
    assert_ne!(
        r.code, 0,
        "the namespace is gone once `delete` returns: {}",
        r.stdout
    );
    let r = s.kubectl(&["get", "deploy,cm", "-n", "team-a", "-o", "name"]);
    assert!(
        r.stdout.trim().is_empty(),
        "content of the deleted namespace is gone: {}",
        r.stdout
    );
}

#[test]
fn seed_as_written_is_refused_with_field_paths() {
    let s = Server::start();
    let before = latest_revision(&s);
    let bad = write_file(s.dir.path(), "seed.yaml", SEED_AS_WRITTEN);
    let err = s.fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        err.contains("spec.strategy.selector") && err.contains("spec.strategy.template"),
        "{err}"
    );
    assert!(err.contains("unknown field"), "{err}");
    // Fix the indentation only: the misspelt key is reported by its path.
    let typo = SEED.replace("matchLabels", "matchLables");
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &typo).stderr;
    assert!(
        err.contains("unknown field \"spec.selector.matchLables\""),
        "{err}"
    );
    // And the missing space makes labels a string.
    let string_labels = SEED.replace(
        "        app: random-generator",
        "        app:random-generator",
    );
    let err = s
        .kubectl_stdin(&["apply", "-f", "-"], &string_labels)
        .stderr;
    assert!(err.contains("spec.template.metadata.labels"), "{err}");
    assert_eq!(latest_revision(&s), before, "refused writes change nothing");
    assert!(s.kubectl(&["get", "deploy", "random-generator"]).code != 0);
}

#[test]
fn bad_input_gets_kubernetes_errors_and_changes_nothing() {
    let s = Server::start();
    s.apply(SEED);
    settle(&s, 3);
    let before = latest_revision(&s);
    let path = "/apis/apps/v1/namespaces/default/deployments";

    let (code, body) = s.http("POST", path, Some("application/json"), b"{not json", true);
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.http(
        "POST",
        path,
        Some("application/yaml"),
        b"a: [1, 2\n b: {",
        true,
    );
    assert_eq!(code, 400, "{body}");
    let wrong_kind =
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"}})
            .to_string();
    let (code, body) = s.http(
        "POST",
        path,
        Some("application/json"),
        wrong_kind.as_bytes(),
        true,
    );
    assert_eq!(code, 400, "{body}");
    let wrong_version =
        json!({"apiVersion": "apps/v1beta9", "kind": "Deployment", "metadata": {"name": "x"}})
            .to_string();
    let (code, body) = s.http(
        "POST",
        path,
        Some("application/json"),
        wrong_version.as_bytes(),
        true,
    );
    assert_eq!(code, 400, "{body}");
    let huge = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, body) = s.http("POST", path, Some("application/json"), &huge, true);
    assert_eq!(code, 413, "{body}");
    let (code, body) = s.http("POST", path, Some("text/plain"), b"hello", true);
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("UnsupportedMediaType"), "{body}");
    let (code, _) = s.http(
        "GET",
        "/apis/apps/v1/namespaces/default/widgets",
        None,
        b"",
        true,
    );
    assert_eq!(code, 404);
    let (code, body) = s.http(
        "GET",
        &format!("{path}?labelSelector=a%20in%20(b"),
        None,
        b"",
        true,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.http(
        "GET",
        &format!("{path}?fieldSelector=spec.replicas%3D3"),
        None,
        b"",
        true,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("field label not supported: spec.replicas"),
        "{body}"
    );
    let (code, body) = s.http("GET", path, None, b"", false);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Unauthorized"));
    let obj = format!("{path}/random-generator");
    let (code, body) = s.http(
        "PATCH",
        &obj,
        Some("application/json-patch+json"),
        br#"{"op":"replace"}"#,
        true,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.http(
        "PATCH",
        &obj,
        Some("application/json-patch+json"),
        br#"[{"op":"replace","path":"/spec/nothing/here","value":1}]"#,
        true,
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = s.http(
        "PATCH",
        &obj,
        Some("application/merge-patch+json"),
        br#"{"spec":{"replicas":"many"}}"#,
        true,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.http(
        "PATCH",
        &obj,
        Some("application/strategic-merge-patch+json"),
        br#"{"spec":{"replicas":-1}}"#,
        true,
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("spec.replicas"), "{body}");
    let (code, body) = s.http(
        "PATCH",
        &obj,
        Some("application/merge-patch+json"),
        br#"{"spec":{"selector":{"matchLabels":{"app":"other"}}}}"#,
        true,
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("field is immutable"), "{body}");
    let both_zero = SEED
        .replace("maxSurge: 1", "maxSurge: 0")
        .replace("maxUnavailable: 1", "maxUnavailable: 0");
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &both_zero).stderr;
    assert!(err.contains("may not be 0 when `maxSurge` is 0"), "{err}");
    let bad_percent = SEED.replace("maxSurge: 1", "maxSurge: \"1.5%\"");
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &bad_percent).stderr;
    assert!(
        err.contains("spec.strategy.rollingUpdate.maxSurge"),
        "{err}"
    );
    let bad_name = SEED.replace(
        "name: random-generator\nspec",
        "name: Random_Generator\nspec",
    );
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &bad_name).stderr;
    assert!(
        err.contains("metadata.name") && err.contains("RFC 1123"),
        "{err}"
    );
    let no_match = SEED.replace(
        "      app: random-generator\n  template",
        "      app: other\n  template",
    );
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &no_match).stderr;
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let err = s.fails(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    assert_eq!(
        latest_revision(&s),
        before,
        "no refused request may change the store"
    );
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["spec"]["replicas"], 3);
}

#[test]
fn stale_updates_conflict_and_dry_runs_store_nothing() {
    let s = Server::start();
    s.apply(SEED);
    let d = s.get_json(&["deploy", "random-generator"]);
    let mut stale = d.clone();
    s.ok(&["scale", "deploy/random-generator", "--replicas=4"]);
    stale["spec"]["replicas"] = json!(7);
    settle(&s, 4);
    let r = s.kubectl_stdin(&["replace", "-f", "-"], &stale.to_string());
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("Operation cannot be fulfilled on deployments.apps \"random-generator\": the object has been modified"),
        "{}",
        r.stderr
    );
    let before = latest_revision(&s);
    let changed = SEED.replace("replicas: 3", "replicas: 9");
    let out = s.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &changed);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = s.kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &SEED.replace("random-generator\nspec", "other\nspec"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(latest_revision(&s), before);
    assert_eq!(
        s.get_json(&["deploy", "random-generator"])["spec"]["replicas"],
        4
    );
    assert!(s.kubectl(&["get", "deploy", "other"]).code != 0);
}

#[test]
fn lists_select_and_paginate() {
    let s = Server::start();
    for i in 0..7 {
        s.ok(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            "--from-literal=k=v",
        ]);
        s.ok(&[
            "label",
            "configmap",
            &format!("cm-{i}"),
            &format!("tier={}", if i % 2 == 0 { "even" } else { "odd" }),
        ]);
    }
    let (code, body) = s.http(
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=3",
        None,
        b"",
        true,
    );
    assert_eq!(code, 200);
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["metadata"]["remainingItemCount"], 4);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, body) = s.http(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?limit=3&continue={token}"),
        None,
        b"",
        true,
    );
    let page2: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page2["items"][0]["metadata"]["name"], "cm-3");
    let names = s.ok(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("configmap/cm-"))
            .count(),
        7,
        "{names}"
    );
    let even = s.ok(&["get", "cm", "-l", "tier in (even)", "-o", "name"]);
    assert_eq!(even.lines().count(), 4, "{even}");
    let odd = s.ok(&["get", "cm", "-l", "tier!=even,tier", "-o", "name"]);
    assert_eq!(odd.lines().count(), 3, "{odd}");
    let one = s.ok(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=cm-5",
        "-o",
        "name",
    ]);
    assert_eq!(one.trim(), "configmap/cm-5");
    let labels = s.ok(&["get", "cm", "--show-labels", "--sort-by=.metadata.name"]);
    assert!(labels.contains("tier=odd"), "{labels}");
    let col = s.ok(&["get", "cm", "-L", "tier"]);
    assert!(col.contains("TIER") && col.contains("even"), "{col}");
    assert!(
        s.ok(&["delete", "cm", "-l", "tier=odd"])
            .contains("deleted")
    );
    assert_eq!(
        s.ok(&["get", "cm", "-o", "name"])
            .lines()
            .filter(|l| l.contains("cm-"))
            .count(),
        4
    );
    s.ok(&["delete", "cm", "--all"]);
    assert_eq!(
        s.ok(&["get", "cm", "-o", "name"])
            .lines()
            .filter(|l| l.contains("cm-"))
            .count(),
        0
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let s = Server::start();
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata: {a: b}\n");
    s.ok(&["delete", "cm", "held", "--wait=false"]);
    let cm = s.get_json(&["cm", "held"]);
    assert!(cm["metadata"]["deletionTimestamp"].is_string(), "{cm}");
    s.ok(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(
        Duration::from_secs(10),
        "the configmap to be removed",
        || (s.kubectl(&["get", "cm", "held"]).code != 0).then_some(()),
    );
}

#[test]
fn events_show_in_describe() {
    let s = Server::start();
    s.apply(SEED);
    let d = s.get_json(&["deploy", "random-generator"]);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "random-generator.1", "namespace": "default"},
        "involvedObject": {"kind": "Deployment", "name": "random-generator", "namespace": "default", "uid": d["metadata"]["uid"], "apiVersion": "apps/v1"},
        "reason": "ScalingReplicaSet", "message": "Scaled up replica set random-generator-abc to 3",
        "type": "Normal", "source": {"component": "deployment-controller"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1
    });
    s.kubectl_stdin(&["create", "-f", "-"], &event.to_string());
    let desc = s.ok(&["describe", "deploy", "random-generator"]);
    assert!(
        desc.contains("ScalingReplicaSet")
            && desc.contains("Scaled up replica set random-generator-abc to 3"),
        "{desc}"
    );
    let ev = s.ok(&["get", "events"]);
    assert!(
        ev.contains("ScalingReplicaSet") && ev.contains("deployment/random-generator"),
        "{ev}"
    );
}

#[test]
fn restart_keeps_objects_and_revisions_increase() {
    let mut s = Server::start();
    s.apply(SEED);
    s.ok(&["create", "configmap", "gone", "--from-literal=a=b"]);
    s.ok(&["delete", "configmap", "gone"]);
    let before = latest_revision(&s);
    let status = s.terminate().expect("was running");
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    s.spawn(&[]);
    let d = s.get_json(&["deploy", "random-generator"]);
    assert_eq!(d["spec"]["replicas"], 3);
    s.ok(&["create", "configmap", "after", "--from-literal=a=b"]);
    let cm = s.get_json(&["cm", "after"]);
    let rv: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rv > before,
        "revision {rv} must exceed {before} after a restart"
    );
}

/// A pod that names another scheduler waits unbound. A `Binding` posted to its
/// `pods/<name>/binding` assigns it to the node as on a cluster (node name, the Binding's
/// annotations, `PodScheduled`, no managed-fields entry), and the node then runs it. Bad
/// Bindings and a second binding get Kubernetes' errors and change nothing.
#[test]
fn a_binding_assigns_a_waiting_pod_to_the_node() {
    let s = Server::start_with(&["--runtime", "simulated"]);
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: held\nspec:\n  schedulerName: my-scheduler\n  containers:\n  - name: app\n    image: example/app:1\n",
    );
    let unbound = s.get_json(&["pod", "held"]);
    assert!(unbound["spec"].get("nodeName").is_none(), "{unbound}");
    let binding_path = "/api/v1/namespaces/default/pods/held/binding";
    let post = |name: &str, body: Value| {
        let file = write_file(s.dir.path(), name, &body.to_string());
        s.kubectl(&[
            "create",
            "--raw",
            binding_path,
            "-f",
            &file.to_string_lossy(),
        ])
    };
    let binding = |pod: &str, target: Value| {
        json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod, "annotations": {"example.com/placed-by": "my-scheduler"}},
            "target": target})
    };

    let wrong_kind = post(
        "wrong-kind.json",
        binding("held", json!({"kind": "Pod", "name": "slipway"})),
    );
    assert_ne!(wrong_kind.code, 0);
    assert!(
        wrong_kind.stderr.contains(
            r#"target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>""#
        ),
        "{}",
        wrong_kind.stderr
    );
    let no_target = post("no-target.json", binding("held", json!({})));
    assert!(
        no_target.stderr.contains("target.name: Required value"),
        "{}",
        no_target.stderr
    );
    let other_name = post(
        "other-name.json",
        binding("other", json!({"kind": "Node", "name": "slipway"})),
    );
    assert!(
        other_name
            .stderr
            .contains("name in URL does not match name in Binding object"),
        "{}",
        other_name.stderr
    );
    let missing = s.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/nowhere/binding",
        "-f",
        &write_file(
            s.dir.path(),
            "nowhere.json",
            &binding("nowhere", json!({"name": "slipway"})).to_string(),
        )
        .to_string_lossy(),
    ]);
    assert!(
        missing.stderr.contains(r#"pods "nowhere" not found"#),
        "{}",
        missing.stderr
    );
    let still = s.get_json(&["pod", "held"]);
    assert_eq!(
        still["metadata"]["resourceVersion"], unbound["metadata"]["resourceVersion"],
        "refused bindings change nothing"
    );

    let bound = post(
        "binding.json",
        binding("held", json!({"kind": "Node", "name": "slipway"})),
    );
    assert_eq!(bound.code, 0, "{}", bound.stderr);
    let status: Value = serde_json::from_str(&bound.stdout).expect("a Status");
    assert_eq!(
        (&status["kind"], &status["status"], &status["code"]),
        (&json!("Status"), &json!("Success"), &json!(201))
    );
    let pod = s.get_json(&["pod", "held"]);
    assert_eq!(pod["spec"]["nodeName"], "slipway", "{pod}");
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/placed-by"],
        "my-scheduler"
    );
    let scheduled = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .unwrap_or_else(|| panic!("no PodScheduled condition: {pod}"));
    assert_eq!(scheduled["status"], "True");
    let managed = pod["metadata"]["managedFields"].to_string();
    assert!(
        !managed.contains("f:nodeName"),
        "a binding records no managed fields: {managed}"
    );
    assert_eq!(
        pod["metadata"]["managedFields"], unbound["metadata"]["managedFields"],
        "and keeps those recorded"
    );

    let again = post(
        "again.json",
        binding("held", json!({"kind": "Node", "name": "slipway"})),
    );
    assert!(
        again.stderr.contains(
            r#"Operation cannot be fulfilled on pods/binding "held": pod held is already assigned to node "slipway""#
        ),
        "{}",
        again.stderr
    );
    // The node runs what was bound to it.
    eventually(Duration::from_secs(20), "the bound pod to run", || {
        let pod = s.get_json(&["pod", "held"]);
        (pod["status"]["phase"] == "Running").then_some(())
    });
}
