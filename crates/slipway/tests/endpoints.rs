//! The Endpoints/EndpointSlice controller end to end, with the real kubectl against
//! `slipway serve --runtime simulated`: a Deployment behind a Service gets Endpoints and an
//! EndpointSlice that follow scaling (the slice updated in place), a selector-less Service's
//! hand-written Endpoints are mirrored into a slice, and a LoadBalancer Service reports its
//! loopback ingress.

mod common;

use common::{Server, eventually};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn simulated() -> Server {
    Server::start_with(&["--runtime", "simulated"])
}

fn web(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: nginx
        ports:
        - {{name: http, containerPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {{tier: front}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: web, port: 80, targetPort: http}}
"#
    )
}

/// `kubectl get <args> -o json`, or `None` if kubectl fails (e.g. not found yet).
fn try_get(s: &Server, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let r = s.kubectl(&full);
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).expect("kubectl printed JSON"))
}

/// (ready, not ready) addresses of an Endpoints object.
fn endpoint_addresses(ep: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        ready.extend(
            subset["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        not_ready.extend(
            subset["notReadyAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    (ready, not_ready)
}

/// Every endpoint of every slice of a list.
fn slice_endpoints(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn slice_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn endpoints_and_slices_follow_a_deployment_and_mirroring_and_load_balancer_status() {
    let s = simulated();
    s.apply(&web(3));

    let ep = eventually(WAIT, "Endpoints web with 3 ready addresses", || {
        let ep = try_get(&s, &["endpoints", "web"])?;
        let (ready, not_ready) = endpoint_addresses(&ep);
        (ready.len() == 3 && not_ready.is_empty()).then_some(ep)
    });
    assert_eq!(ep["metadata"]["labels"]["tier"], "front", "{ep}");
    let subset = &ep["subsets"][0];
    assert_eq!(subset["ports"][0]["port"], 8080, "{ep}");
    assert_eq!(subset["ports"][0]["name"], "web", "{ep}");
    for a in subset["addresses"].as_array().expect("addresses") {
        assert_eq!(a["targetRef"]["kind"], "Pod", "{ep}");
        assert!(
            a["ip"].as_str().is_some_and(|ip| ip.starts_with("127.")),
            "{ep}"
        );
    }

    let selector = "kubernetes.io/service-name=web";
    let slices = eventually(WAIT, "slices of web with 3 ready endpoints", || {
        let list = try_get(&s, &["endpointslices", "-l", selector])?;
        let eps = slice_endpoints(&list);
        (eps.len() == 3 && eps.iter().all(|e| e["conditions"]["ready"] == true)).then_some(list)
    });
    let slice = &slices["items"][0];
    assert_eq!(
        slices["items"].as_array().map(Vec::len),
        Some(1),
        "{slices}"
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["labels"]["tier"], "front");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], 8080);
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Service", "{slice}");
    assert_eq!(owner["controller"], true, "{slice}");
    let name_before = slice_names(&slices);

    s.ok(&["scale", "deployment", "web", "--replicas=1"]);
    eventually(WAIT, "Endpoints web with 1 ready address", || {
        let ep = try_get(&s, &["endpoints", "web"])?;
        let (ready, not_ready) = endpoint_addresses(&ep);
        (ready.len() == 1 && not_ready.is_empty()).then_some(())
    });
    let slices = eventually(WAIT, "slices of web with 1 endpoint", || {
        let list = try_get(&s, &["endpointslices", "-l", selector])?;
        (slice_endpoints(&list).len() == 1).then_some(list)
    });
    assert_eq!(
        slice_names(&slices),
        name_before,
        "the slice is updated in place, not replaced"
    );

    // A selector-less Service with hand-written Endpoints is mirrored.
    s.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: external
spec:
  ports:
  - {name: db, port: 5432}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: external
subsets:
- addresses:
  - ip: 127.0.0.10
  notReadyAddresses:
  - ip: 127.0.0.11
  ports:
  - {name: db, port: 5432}
"#,
    );
    let mirrored = eventually(WAIT, "a mirrored slice for external", || {
        let list = try_get(
            &s,
            &[
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=external",
            ],
        )?;
        (slice_endpoints(&list).len() == 2).then_some(list)
    });
    let m = &mirrored["items"][0];
    assert_eq!(
        m["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io",
        "{m}"
    );
    let eps = slice_endpoints(&mirrored);
    let ready: Vec<&Value> = eps
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .collect();
    assert_eq!(ready.len(), 1, "{mirrored}");
    assert_eq!(ready[0]["addresses"][0], "127.0.0.10", "{mirrored}");
    // The user's Endpoints are left as written.
    let ep = s.get_json(&["endpoints", "external"]);
    assert!(
        ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"].is_null(),
        "{ep}"
    );

    // A LoadBalancer Service reports the loopback ingress.
    s.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: lb
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 8081, targetPort: 8080}
"#,
    );
    eventually(WAIT, "status.loadBalancer.ingress of lb", || {
        let svc = try_get(&s, &["service", "lb"])?;
        (svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1").then_some(())
    });

    // Deleting the Service deletes its Endpoints.
    s.ok(&["delete", "service", "web"]);
    eventually(WAIT, "Endpoints web deleted with its Service", || {
        let r = s.kubectl(&["get", "endpoints", "web"]);
        (r.code != 0 && r.stderr.contains("NotFound")).then_some(())
    });
}
