//! Watch edge cases (410 Gone after compaction, freed resources on disconnect, bookmarks,
//! timeouts), graceful pod deletion, and Event expiry, against a real `slipway serve`.

mod common;

use common::{Server, eventually, list_revision};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// The `/metrics` text.
fn metrics(s: &Server) -> String {
    let (code, body) = s.http("GET", "/metrics", None, b"", true);
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the unlabelled sample `name` in `/metrics` text.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn open_watches(s: &Server) -> u64 {
    sample(&metrics(s), "apiserver_watches_open")
}

#[test]
fn a_watch_from_a_compacted_revision_gets_410_and_kubectl_relists() {
    let mut s = Server::start();
    s.ok(&["create", "configmap", "a", "--from-literal=k=v"]);
    s.terminate();
    s.spawn(&[]);
    // History does not survive a restart: revision 1 is too old now.
    let (code, body) = s.http(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=5",
        None,
        b"",
        true,
    );
    assert_eq!(code, 200, "{body}");
    let ev: Value = serde_json::from_str(body.lines().next().expect("one event")).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // kubectl's informer machinery handles it: wait works across the restart.
    s.ok(&[
        "wait",
        "--for=delete",
        "configmap/none-such",
        "--timeout=5s",
    ]);
}

#[test]
fn watches_end_at_their_timeout_with_a_bookmark_replay_state_and_follow_selectors() {
    let s = Server::start();
    let rv = list_revision(&s, "/api/v1/namespaces/default/configmaps");
    let (code, body) = s.http(
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ),
        None,
        b"",
        true,
    );
    assert_eq!(code, 200);
    assert!(body.trim().is_empty(), "no changes, no events: {body}");
    // With bookmarks allowed, the watch ends with one that carries where it stopped.
    let (_, body) = s.http(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1&allowWatchBookmarks=true"),
        None,
        b"",
        true,
    );
    let last: Value = serde_json::from_str(body.lines().last().expect("a bookmark")).unwrap();
    assert_eq!(last["type"], "BOOKMARK", "{body}");
    assert_eq!(last["object"]["kind"], "ConfigMap");
    assert!(
        last["object"]["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| v.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap())
    );
    // A watch from "0" starts with the current state.
    s.ok(&["create", "configmap", "x", "--from-literal=k=v"]);
    let (_, body) = s.http(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=1",
        None,
        b"",
        true,
    );
    let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "x");
    // Label selectors turn objects leaving the selection into DELETED events.
    let rv = list_revision(&s, "/api/v1/namespaces/default/configmaps");
    s.ok(&["label", "configmap", "x", "sel=yes"]);
    s.ok(&["label", "configmap", "x", "sel=no", "--overwrite"]);
    let (_, body) = s.http(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1&labelSelector=sel%3Dyes"),
        None,
        b"",
        true,
    );
    let types: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["ADDED", "DELETED"], "{body}");
}

#[test]
fn a_client_that_disconnects_mid_watch_frees_its_watch() {
    // The simulated runtime: no service proxy, whose own watches would be counted too.
    let s = Server::start_with(&["--runtime", "simulated"]);
    assert_eq!(open_watches(&s), 0);
    let mut child = s
        .kubectl_cmd(&["get", "configmaps", "-w"])
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
    s.ok(&["create", "configmap", "seen", "--from-literal=k=v"]);
    eventually(
        Duration::from_secs(20),
        "kubectl get -w to print the new configmap",
        || {
            rx.try_recv()
                .ok()
                .filter(|l| l.contains("seen"))
                .map(|_| ())
        },
    );
    assert_eq!(open_watches(&s), 1);
    let _ = child.kill();
    let _ = child.wait();
    // The server notices the closed connection; a write makes sure the stream is exercised.
    s.ok(&["create", "configmap", "after", "--from-literal=k=v"]);
    eventually(
        Duration::from_secs(20),
        "the watch to be released after the client left",
        || (open_watches(&s) == 0).then_some(()),
    );
}

#[test]
fn scheduled_pods_terminate_gracefully_and_unscheduled_ones_at_once() {
    let s = Server::start();
    // Neither pod is ever run here: one waits for a scheduler that does not exist, the other
    // is bound to a node whose agent is not this one (as if that node were down), so only the
    // API server's rules decide what a delete does.
    let pod = |name: &str, node: Option<&str>| {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "k8spatterns/random-generator:1.0"}],
                     "terminationGracePeriodSeconds": 45, "schedulerName": "elsewhere-scheduler"}
        });
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p.to_string()
    };
    s.kubectl_stdin(&["create", "-f", "-"], &pod("unscheduled", None));
    s.kubectl_stdin(&["create", "-f", "-"], &pod("running", Some("other-node")));
    let p = s.get_json(&["pod", "running"]);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");

    assert!(s.ok(&["delete", "pod", "unscheduled"]).contains("deleted"));
    assert_ne!(s.kubectl(&["get", "pod", "unscheduled"]).code, 0);

    s.ok(&["delete", "pod", "running", "--wait=false"]);
    let p = s.get_json(&["pod", "running"]);
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 45);
    let table = s.ok(&["get", "pod", "running"]);
    assert!(table.contains("Terminating"), "{table}");
    // The runtime (or a force delete) confirms termination with grace period 0.
    s.ok(&["delete", "pod", "running", "--grace-period=0", "--force"]);
    assert_ne!(s.kubectl(&["get", "pod", "running"]).code, 0);
}

#[test]
fn delete_preconditions_are_checked() {
    let s = Server::start();
    s.ok(&["create", "configmap", "c", "--from-literal=k=v"]);
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}).to_string();
    let (code, resp) = s.http(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        Some("application/json"),
        body.as_bytes(),
        true,
    );
    assert_eq!(code, 409, "{resp}");
    assert!(
        resp.contains("Precondition failed: UID in precondition: not-the-uid"),
        "{resp}"
    );
    let body = json!({"propagationPolicy": "Sideways"}).to_string();
    let (code, resp) = s.http(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        Some("application/json"),
        body.as_bytes(),
        true,
    );
    assert_eq!(code, 422, "{resp}");
    s.ok(&["get", "configmap", "c"]);
    let uid = s.get_json(&["configmap", "c"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"preconditions": {"uid": uid}, "dryRun": ["All"]}).to_string();
    let (code, _) = s.http(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        Some("application/json"),
        body.as_bytes(),
        true,
    );
    assert_eq!(code, 200);
    s.ok(&["get", "configmap", "c"]);
}

#[test]
fn events_expire_after_their_time_to_live() {
    let s = Server::start_with(&["--event-ttl-seconds", "2"]);
    let old = json!({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "old.1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Test", "message": "from long ago", "type": "Normal",
        "firstTimestamp": "2020-01-01T00:00:00Z", "lastTimestamp": "2020-01-01T00:00:00Z", "count": 1
    });
    s.kubectl_stdin(&["create", "-f", "-"], &old.to_string());
    eventually(
        Duration::from_secs(20),
        "the expired event to be removed",
        || (s.kubectl(&["get", "event", "old.1"]).code != 0).then_some(()),
    );
}

fn heap_allocated(s: &Server) -> u64 {
    let body = metrics(s);
    assert!(
        body.contains("# TYPE slipway_heap_free_bytes gauge"),
        "no heap gauges in /metrics"
    );
    sample(&body, "slipway_heap_allocated_bytes")
}

/// `/metrics` reports the live heap (the benchmarks read memory per pod from it): it grows by
/// at least the text of what is stored.
#[test]
fn the_live_heap_gauge_grows_with_what_is_stored() {
    let s = Server::start();
    let before = heap_allocated(&s);
    assert!(before > 0);
    let value = "x".repeat(10_000);
    for i in 0..100 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("big-{i}")}, "data": {"v": value}});
        let (code, out) = s.http(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            body.to_string().as_bytes(),
            true,
        );
        assert_eq!(code, 201, "{out}");
    }
    let after = heap_allocated(&s);
    assert!(
        after >= before + 1_000_000,
        "100 ConfigMaps of 10 kB each took {} bytes of live heap ({before} -> {after})",
        after.saturating_sub(before)
    );
}
