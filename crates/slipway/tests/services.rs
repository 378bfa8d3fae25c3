//! Services end to end: real `slipway serve` with the process runtime, the real kubectl, real
//! pods, the service proxy process and real loopback sockets. The zero-downtime cases run a
//! bounded load client (at least 5,000 requests each) and require 0 failed requests.

mod common;

use common::load::{Load, Tally};
use common::{
    ProcessServer, cluster_addr, eventually, http_get, ready_endpoints, wait_ready_endpoints,
};
use serde_json::Value;
use std::net::TcpStream;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);
/// Requests per zero-downtime case (the benchmark runs the long version).
const BUDGET: u64 = 200_000;
/// Requests each case spans at least (the load runs through the case, then this many more).
const MIN_REQUESTS: u64 = 5_000;

/// A Deployment of the sample (quiet, ready at once, 1 s readiness period) with extra labels.
fn deployment(name: &str, replicas: u32, image: &str, labels: &[(&str, &str)]) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("\n        {k}: {v}"))
        .collect();
    let selector: String = labels.replace("\n        ", "\n      ");
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  strategy:
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 1
  selector:
    matchLabels:{selector}
  template:
    metadata:
      labels:{labels}
    spec:
      containers:
      - name: random-generator
        image: {image}
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: QUIET
          value: "1"
        - name: READY_DELAY_SECONDS
          value: "0"
        readinessProbe:
          exec:
            command: ["stat", "/random-generator-ready"]
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

fn service(name: &str, kind: &str, port: u16, selector: &[(&str, &str)]) -> String {
    let selector: String = selector
        .iter()
        .map(|(k, v)| format!("\n    {k}: {v}"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: {kind}
  selector:{selector}
  ports:
  - port: {port}
    targetPort: 8080
"#
    )
}

fn rollout(s: &ProcessServer, deploy: &str) {
    let out = s.ok(&[
        "rollout",
        "status",
        &format!("deploy/{deploy}"),
        "--timeout=90s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

/// A `GET /` on a new connection: the body's `id` and `version`.
fn one_get(addr: &str) -> Option<(String, String)> {
    let (code, body) = http_get(addr, "/").ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (code == 200).then(|| {
        (
            v["id"].as_str().unwrap_or("").to_string(),
            v["version"].as_str().unwrap_or("").to_string(),
        )
    })
}

fn assert_no_failures(case: &str, t: &Tally) {
    assert_eq!(
        t.failed,
        0,
        "{case}: {} of {} requests failed; first failures: {:#?}",
        t.failed,
        t.ok + t.failed,
        t.failures
    );
    assert!(
        t.ok >= MIN_REQUESTS,
        "{case}: only {} requests went through",
        t.ok
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn isolated(pod: &Value) -> bool {
    !pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "slipway.dev/Isolated" && c["status"] == "False")
}

#[test]
fn cluster_ip_node_port_and_load_balancer_reach_ready_pods() {
    let s = ProcessServer::start();
    let lb_port = free_port();
    // The Services first: the pods' hosts files and environment are taken at their start.
    s.apply(&service("web", "ClusterIP", 8080, &[("app", "web")]));
    s.apply(&service("web-np", "NodePort", 8081, &[("app", "web")]));
    s.apply(&service(
        "web-lb",
        "LoadBalancer",
        lb_port,
        &[("app", "web")],
    ));
    s.apply(&deployment(
        "web",
        3,
        "k8spatterns/random-generator:1.0",
        &[("app", "web")],
    ));
    rollout(&s, "web");
    wait_ready_endpoints(&s, "web", 3);

    let listing = s.ok(&["get", "svc,endpoints,endpointslices"]);
    for name in [
        "service/web ",
        "endpoints/web ",
        "endpointslice.discovery.k8s.io/web-",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    let svc = s.get_json(&["svc", "web"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("127."), "ClusterIP {ip} is not on loopback");

    // ClusterIP from the host: round robin over the three ready pods.
    let addr = cluster_addr(&s, "web").to_string();
    let pods: std::collections::BTreeSet<String> = (0..30)
        .map(|_| one_get(&addr).expect("a GET through the ClusterIP").0)
        .collect();
    assert_eq!(pods.len(), 3, "requests reached {pods:?}");

    // Per-endpoint metrics on the API server's /metrics, beside its own and the controllers'.
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    for family in [
        "apiserver_request_total{",
        "slipway_controller_syncs_total{",
        "slipway_proxy_request_duration_seconds_bucket{namespace=\"default\",service=\"web\"",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics");
    }
    let ok_2xx: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("slipway_proxy_requests_total{namespace=\"default\",service=\"web\",")
                && l.contains("code=\"2xx\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        ok_2xx >= 30,
        "the proxy counted {ok_2xx} 2xx responses for 30 requests"
    );

    // NodePort and LoadBalancer listen on 127.0.0.1.
    let np = s.get_json(&["svc", "web-np"]);
    let node_port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert!(one_get(&format!("127.0.0.1:{node_port}")).is_some());
    let lb = eventually(WAIT, "the LoadBalancer's ingress", || {
        let v = s.get_json(&["svc", "web-lb"]);
        (v["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1").then_some(v)
    });
    assert!(one_get(&format!("127.0.0.1:{lb_port}")).is_some(), "{lb}");

    // From inside a pod, by name: the hosts file and a listener in the pod's namespace.
    let pod = s.get_json(&["pods", "-l", "app=web"])["items"][0].clone();
    if isolated(&pod) {
        let name = pod["metadata"]["name"].as_str().unwrap();
        for host in ["web", "web.default", "web.default.svc.cluster.local"] {
            let script = format!(
                "exec 3<>/dev/tcp/{host}/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
            );
            let out = s.ok(&["exec", name, "--", "bash", "-c", &script]);
            assert!(
                out.contains("\"random\""),
                "GET http://{host}:8080/ in the pod: {out}"
            );
        }
    }

    // Readiness lost: the pod leaves the endpoints and gets no more requests.
    let victim = s.get_json(&["pods", "-l", "app=web"])["items"][1]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    s.ok(&["exec", &victim, "--", "rm", "/random-generator-ready"]);
    wait_ready_endpoints(&s, "web", 2);
    for _ in 0..20 {
        let (id, _) = one_get(&addr).expect("GET");
        assert_ne!(id, victim, "a not-ready pod got a new connection");
    }

    // Deleting a Service closes its listeners at once.
    s.ok(&["delete", "svc", "web"]);
    eventually(
        Duration::from_secs(5),
        "the ClusterIP listener to close",
        || {
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200))
                .is_err()
                .then_some(())
        },
    );
}

#[test]
fn rolling_update_and_restart_drop_no_request() {
    let s = ProcessServer::start();
    s.apply(&deployment(
        "rg",
        3,
        "k8spatterns/random-generator:1.0",
        &[("app", "rg")],
    ));
    s.apply(&service("rg", "ClusterIP", 8080, &[("app", "rg")]));
    rollout(&s, "rg");
    wait_ready_endpoints(&s, "rg", 3);
    let load = Load::start(cluster_addr(&s, "rg"), 8, BUDGET);
    load.wait_for_more(500, WAIT);

    s.ok(&[
        "set",
        "image",
        "deploy/rg",
        "random-generator=k8spatterns/random-generator:2.0",
    ]);
    rollout(&s, "rg");
    load.wait_for_more(MIN_REQUESTS, WAIT);
    s.ok(&["rollout", "restart", "deploy/rg"]);
    rollout(&s, "rg");
    load.wait_for_more(MIN_REQUESTS, WAIT);
    let t = load.stop();
    assert_no_failures("rolling update + rollout restart", &t);
    assert!(
        t.versions.contains_key("1.0") && t.versions.contains_key("2.0"),
        "versions seen: {:?}",
        t.versions
    );
}

#[test]
fn blue_green_switch_and_canary_drop_no_request() {
    let s = ProcessServer::start();
    s.apply(&deployment(
        "blue",
        2,
        "k8spatterns/random-generator:1.0",
        &[("app", "rg"), ("version", "blue")],
    ));
    s.apply(&deployment(
        "green",
        2,
        "k8spatterns/random-generator:2.0",
        &[("app", "rg"), ("version", "green")],
    ));
    s.apply(&service(
        "rg",
        "ClusterIP",
        8080,
        &[("app", "rg"), ("version", "blue")],
    ));
    rollout(&s, "blue");
    rollout(&s, "green");
    wait_ready_endpoints(&s, "rg", 2);
    let addr = cluster_addr(&s, "rg");
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(1_000, WAIT);

    // Blue-green: the selector moves new connections to green at once.
    s.ok(&[
        "patch",
        "svc",
        "rg",
        "-p",
        r#"{"spec":{"selector":{"app":"rg","version":"green"}}}"#,
    ]);
    eventually(WAIT, "new connections to reach green only", || {
        (0..10)
            .all(|_| one_get(&addr.to_string()).is_some_and(|(_, v)| v == "2.0"))
            .then_some(())
    });
    load.wait_for_more(MIN_REQUESTS, WAIT);

    // Canary: a second, one-replica Deployment whose pods the selector also matches.
    s.ok(&[
        "patch",
        "svc",
        "rg",
        "-p",
        r#"{"spec":{"selector":{"version":null}}}"#,
    ]);
    s.apply(&deployment(
        "canary",
        1,
        "k8spatterns/random-generator:2.0",
        &[("app", "rg"), ("version", "canary")],
    ));
    rollout(&s, "canary");
    wait_ready_endpoints(&s, "rg", 5);
    load.wait_for_more(MIN_REQUESTS, WAIT);
    s.ok(&["delete", "deploy", "canary"]);
    wait_ready_endpoints(&s, "rg", 4);
    load.wait_for_more(MIN_REQUESTS, WAIT);
    let t = load.stop();
    assert_no_failures("blue-green switch + canary", &t);
    assert!(
        t.ids.keys().any(|id| id.starts_with("canary-")),
        "the canary got no request: {:?}",
        t.ids
    );
}

#[test]
fn service_traffic_survives_a_control_plane_crash() {
    let mut s = ProcessServer::start();
    s.apply(&deployment(
        "rg",
        2,
        "k8spatterns/random-generator:1.0",
        &[("app", "rg")],
    ));
    s.apply(&service("rg", "ClusterIP", 8080, &[("app", "rg")]));
    rollout(&s, "rg");
    wait_ready_endpoints(&s, "rg", 2);
    let addr = cluster_addr(&s, "rg");
    let pod_ip = s.get_json(&["pods", "-l", "app=rg"])["items"][0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let load = Load::start(addr, 8, BUDGET);
    load.wait_for_more(1_000, WAIT);

    s.kill9();
    // In flight and new (every tenth request opens a new connection) while serve is down.
    load.wait_for_more(MIN_REQUESTS, WAIT);
    assert!(
        one_get(&format!("{pod_ip}:8080")).is_some(),
        "the pod IP stopped answering while the control plane was down"
    );
    s.spawn(&[]);
    load.wait_for_more(MIN_REQUESTS, WAIT);
    // The restarted control plane drives the same proxy: a scale-up reaches it.
    s.ok(&["scale", "deploy/rg", "--replicas=3"]);
    wait_ready_endpoints(&s, "rg", 3);
    load.wait_for_more(MIN_REQUESTS, WAIT);
    let t = load.stop();
    assert_no_failures("kill -9 of slipway serve", &t);
    assert_eq!(t.ids.len(), 3, "requests reached {:?}", t.ids);
}

#[test]
fn bad_service_input_gets_events_and_conditions() {
    let s = ProcessServer::start();
    s.apply(&deployment(
        "rg",
        1,
        "k8spatterns/random-generator:1.0",
        &[("app", "rg")],
    ));
    rollout(&s, "rg");

    // A named targetPort no pod has: an Event, no endpoints, nothing crashes.
    s.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: misnamed
spec:
  selector:
    app: rg
  ports:
  - port: 9000
    targetPort: metrics
"#,
    );
    eventually(WAIT, "an Event about the missing port", || {
        let out = s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=misnamed",
            "-o",
            "json",
        ]);
        out.contains("metrics").then_some(())
    });
    assert_eq!(ready_endpoints(&s, "misnamed"), 0);

    // A port already taken on the host: an Event and a condition on the Service.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    s.apply(&service("clash", "LoadBalancer", port, &[("app", "rg")]));
    let svc = eventually(WAIT, "the Listening=False condition", || {
        let v = s.get_json(&["svc", "clash"]);
        v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "slipway.dev/Listening" && c["status"] == "False")
            .then_some(v)
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=clash",
    ]);
    assert!(events.contains("FailedToListen"), "{events}\n{svc}");
    // Freed: the proxy listens and clears the condition.
    drop(taken);
    eventually(WAIT, "the condition to clear once the port is free", || {
        let v = s.get_json(&["svc", "clash"]);
        (!v["status"]["conditions"]
            .to_string()
            .contains("slipway.dev/Listening"))
        .then_some(())
    });
    assert!(one_get(&format!("127.0.0.1:{port}")).is_some());

    // A selector-less Service with manual Endpoints (the pod's IP) works.
    let pod_ip = s.get_json(&["pods", "-l", "app=rg"])["items"][0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    s.apply(&format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: manual
spec:
  ports:
  - port: 8085
    targetPort: 8080
---
apiVersion: v1
kind: Endpoints
metadata:
  name: manual
subsets:
- addresses:
  - ip: {pod_ip}
  ports:
  - port: 8080
"#
    ));
    let addr = cluster_addr(&s, "manual").to_string();
    eventually(WAIT, "the selector-less Service to answer", || {
        one_get(&addr)
    });
}

#[test]
fn a_killed_proxy_is_started_again_and_catches_up() {
    let s = ProcessServer::start();
    s.apply(&service("rg", "ClusterIP", 8080, &[("app", "rg")]));
    s.apply(&deployment(
        "rg",
        1,
        "k8spatterns/random-generator:1.0",
        &[("app", "rg")],
    ));
    rollout(&s, "rg");
    wait_ready_endpoints(&s, "rg", 1);
    let addr = cluster_addr(&s, "rg").to_string();
    assert!(one_get(&addr).is_some());
    let (pid, start) = common::recorded_proxy(&s.data_dir).expect("a recorded proxy");
    assert_eq!(common::process_start_time(pid), Some(start));
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    // serve notices within a second, starts a new proxy, which lists the state afresh.
    eventually(WAIT, "a new proxy to serve the ClusterIP", || {
        let (new_pid, _) = common::recorded_proxy(&s.data_dir)?;
        (new_pid != pid).then(|| one_get(&addr)).flatten()
    });
    s.ok(&["scale", "deploy/rg", "--replicas=2"]);
    wait_ready_endpoints(&s, "rg", 2);
    eventually(WAIT, "both pods behind the new proxy", || {
        let ids: std::collections::BTreeSet<String> = (0..10)
            .filter_map(|_| one_get(&addr))
            .map(|(id, _)| id)
            .collect();
        (ids.len() == 2).then_some(())
    });
}
