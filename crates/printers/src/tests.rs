//! Tables per kind with realistic objects, cells asserted.

use super::*;
use chrono::TimeZone;
use serde_json::json;
use slipway_core::resources::lookup;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap()
}

/// RFC 3339 time `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - chrono::TimeDelta::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    lookup(group, "v1", plural).unwrap()
}

fn cells(group: &str, plural: &str, obj: &Value) -> Vec<Value> {
    let r = row(info(group, plural), obj, IncludeObject::None, now());
    r["cells"].as_array().unwrap().clone()
}

fn names(group: &str, plural: &str) -> Vec<(String, u64)> {
    column_definitions(info(group, plural))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "resourceVersion": "1009", "creationTimestamp": ago(8),
                     "labels": {"app": "web"}},
        "spec": {"replicas": 3,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "nginx", "image": "nginx:1.25"},
                                  {"name": "sidecar", "image": "busybox:1.36"}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 2}
    })
}

#[test]
fn deployment_table_matches_kubernetes() {
    assert_eq!(
        names("apps", "deployments"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let defs = column_definitions(info("apps", "deployments"));
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[0]["type"], "string");
    assert_eq!(defs[2]["type"], "integer");
    assert_eq!(defs[1]["format"], "");
    assert!(!defs[1]["description"].as_str().unwrap().is_empty());

    assert_eq!(
        cells("apps", "deployments", &deployment()),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("8s"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,busybox:1.36"),
            json!("app=web")
        ]
    );
    // A fresh deployment without status.
    let fresh = json!({"metadata": {"name": "api", "creationTimestamp": ago(150)},
                       "spec": {"replicas": 0}});
    assert_eq!(
        cells("apps", "deployments", &fresh),
        vec![
            json!("api"),
            json!("0/0"),
            json!(0),
            json!(0),
            json!("2m30s"),
            json!(""),
            json!(""),
            json!("")
        ]
    );
}

#[test]
fn replicaset_table_matches_kubernetes() {
    assert_eq!(
        names("apps", "replicasets")
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let rs = json!({
        "metadata": {"name": "web-5d4f8b7c9", "creationTimestamp": ago(3 * 3600 + 600)},
        "spec": {"replicas": 3,
                 "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f8b7c9"}},
                 "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}
    });
    assert_eq!(
        cells("apps", "replicasets", &rs),
        vec![
            json!("web-5d4f8b7c9"),
            json!(3),
            json!(3),
            json!(1),
            json!("3h10m"),
            json!("nginx"),
            json!("nginx:1.25"),
            json!("app=web,pod-template-hash=5d4f8b7c9")
        ]
    );
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": ago(600)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
        "status": status
    })
}

fn pod_status_cells(p: &Value) -> (String, String, String) {
    let c = cells("", "pods", p);
    (
        c[1].as_str().unwrap().to_string(),
        c[2].as_str().unwrap().to_string(),
        c[3].as_str().unwrap().to_string(),
    )
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[test]
fn pod_running_row_has_wide_placeholders() {
    assert_eq!(
        names("", "pods"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let running = pod(json!({
        "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                               "state": {"running": {"startedAt": ago(590)}}}]
    }));
    assert_eq!(
        cells("", "pods", &running),
        vec![
            json!("web-abc"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("10m"),
            json!("10.0.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    let mut unscheduled = pod(json!({"phase": "Pending"}));
    unscheduled["spec"]["nodeName"] = Value::Null;
    unscheduled["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
    let c = cells("", "pods", &unscheduled);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "Pending");
    assert_eq!(c[5], "<none>");
    assert_eq!(c[6], "<none>");
    assert_eq!(c[8], "0/1");
}

#[test]
fn pod_status_reasons() {
    let waiting = |reason: &str| {
        pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": reason}}}]}))
    };
    for reason in [
        "ContainerCreating",
        "ErrImagePull",
        "ImagePullBackOff",
        "CrashLoopBackOff",
    ] {
        assert_eq!(pod_status_cells(&waiting(reason)).1, reason);
    }
    let completed = pod(json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "app", "ready": false, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
    assert_eq!(pod_status_cells(&completed), s("0/1", "Completed", "0"));
    let r = row(info("", "pods"), &completed, IncludeObject::None, now());
    assert_eq!(r["conditions"][0]["type"], "Completed");
    assert_eq!(r["conditions"][0]["reason"], "Succeeded");

    let error = pod(json!({"phase": "Failed", "containerStatuses": [
        {"name": "app", "restartCount": 0,
         "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
    assert_eq!(pod_status_cells(&error).1, "Error");
    let signalled = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}));
    assert_eq!(pod_status_cells(&signalled).1, "Signal:9");
    let exit_code = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 3}}}]}));
    assert_eq!(pod_status_cells(&exit_code).1, "ExitCode:3");

    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(pod_status_cells(&evicted).1, "Evicted");

    let gated = pod(json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}));
    assert_eq!(pod_status_cells(&gated).1, "SchedulingGated");
}

#[test]
fn pod_terminating_and_not_ready() {
    let mut terminating = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": true, "state": {"running": {}}}]}));
    terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(pod_status_cells(&terminating).1, "Terminating");
    let mut done = pod(json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(pod_status_cells(&done).1, "Succeeded");
    let mut lost = pod(json!({"phase": "Running", "reason": "NodeLost"}));
    lost["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(pod_status_cells(&lost).1, "Unknown");

    // One container completed, the other still running: Running if the pod is ready,
    // NotReady otherwise.
    let mut two = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": true, "state": {"running": {}}},
        {"name": "job", "ready": false,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
    two["spec"]["containers"] = json!([{"name": "app"}, {"name": "job"}]);
    assert_eq!(pod_status_cells(&two), s("1/2", "NotReady", "0"));
    two["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert_eq!(pod_status_cells(&two), s("1/2", "Running", "0"));
}

#[test]
fn pod_init_containers() {
    let mut p = pod(json!({"phase": "Pending",
        "initContainerStatuses": [
            {"name": "migrate", "restartCount": 0,
             "state": {"waiting": {"reason": "PodInitializing"}}}],
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]}));
    p["spec"]["initContainers"] = json!([{"name": "migrate"}]);
    assert_eq!(pod_status_cells(&p), s("0/1", "Init:0/1", "0"));

    p["status"]["initContainerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    p["status"]["initContainerStatuses"][0]["restartCount"] = json!(2);
    assert_eq!(pod_status_cells(&p).1, "Init:CrashLoopBackOff");
    assert_eq!(pod_status_cells(&p).2, "2");

    p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
    assert_eq!(pod_status_cells(&p).1, "Init:ExitCode:2");
    p["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    assert_eq!(pod_status_cells(&p).1, "Init:Error");

    // Init done: main container state decides.
    p["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    p["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "ContainerCreating"}});
    assert_eq!(pod_status_cells(&p), s("0/1", "ContainerCreating", "0"));

    // A started sidecar (restartable init container) counts as a container.
    let mut sidecar = pod(json!({"phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
            "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}],
        "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}));
    sidecar["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
    assert_eq!(
        pod_status_cells(&sidecar),
        s("2/2", "Running", "1 (5m ago)")
    );
}

#[test]
fn pod_restarts_show_time_of_last_restart() {
    let p = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": false, "restartCount": 5,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                      "finishedAt": ago(300)}}},
        {"name": "other", "ready": true, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(4000)}}}]}));
    let mut p = p;
    p["spec"]["containers"] = json!([{"name": "app"}, {"name": "other"}]);
    assert_eq!(
        pod_status_cells(&p),
        s("1/2", "CrashLoopBackOff", "7 (5m ago)")
    );
    // Restarts without a known time print the bare count.
    let no_time = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": true, "restartCount": 3, "state": {"running": {}}}]}));
    assert_eq!(pod_status_cells(&no_time).2, "3");
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web", "creationTimestamp": ago(3 * 86400)},
           "spec": spec, "status": status})
}

#[test]
fn service_tables() {
    assert_eq!(
        names("", "services")
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    let cluster_ip = service(
        json!({"type": "ClusterIP", "clusterIP": "127.0.100.7", "clusterIPs": ["127.0.100.7"],
               "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                         {"port": 53, "protocol": "UDP"}],
               "selector": {"tier": "front", "app": "web"}}),
        json!({}),
    );
    assert_eq!(
        cells("", "services", &cluster_ip),
        vec![
            json!("web"),
            json!("ClusterIP"),
            json!("127.0.100.7"),
            json!("<none>"),
            json!("80/TCP,53/UDP"),
            json!("3d"),
            json!("app=web,tier=front")
        ]
    );
    let node_port = service(
        json!({"type": "NodePort", "clusterIPs": ["127.0.100.8"],
               "externalIPs": ["192.0.2.1"],
               "ports": [{"port": 80, "nodePort": 30080}]}),
        json!({}),
    );
    let c = cells("", "services", &node_port);
    assert_eq!(c[3], "192.0.2.1");
    assert_eq!(c[4], "80:30080/TCP");
    assert_eq!(c[6], "<none>");

    let pending = service(
        json!({"type": "LoadBalancer", "ports": [{"port": 443}]}),
        json!({}),
    );
    let c = cells("", "services", &pending);
    assert_eq!(c[2], "<none>");
    assert_eq!(c[3], "<pending>");
    let lb = service(
        json!({"type": "LoadBalancer", "clusterIP": "127.0.100.9", "externalIPs": ["192.0.2.9"]}),
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.example.com"},
                                            {"ip": "203.0.113.5"}]}}),
    );
    let c = cells("", "services", &lb);
    assert_eq!(c[2], "127.0.100.9");
    assert_eq!(c[3], "203.0.113.5,lb.example.com,192.0.2.9");
    assert_eq!(c[4], "<none>");

    let headless = service(
        json!({"clusterIP": "None", "clusterIPs": ["None"]}),
        json!({}),
    );
    let c = cells("", "services", &headless);
    assert_eq!(c[1], "ClusterIP");
    assert_eq!(c[2], "None");
    let external = service(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(cells("", "services", &external)[3], "db.example.com");
}

#[test]
fn endpoints_tables() {
    assert_eq!(
        names("", "endpoints")
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["Name", "Endpoints", "Age"]
    );
    let two = json!({"metadata": {"name": "web", "creationTimestamp": ago(30)},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                     "notReadyAddresses": [{"ip": "10.0.0.3"}],
                     "ports": [{"port": 8080, "protocol": "TCP"}]}]});
    assert_eq!(
        cells("", "endpoints", &two),
        vec![
            json!("web"),
            json!("10.0.0.1:8080,10.0.0.2:8080"),
            json!("30s")
        ]
    );
    let five = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"},
                                   {"ip": "10.0.0.4"}, {"ip": "fd00::5"}],
                     "ports": [{"port": 80}]}]});
    assert_eq!(
        cells("", "endpoints", &five),
        vec![
            json!("web"),
            json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."),
            json!("<unknown>")
        ]
    );
    let none = json!({"metadata": {"name": "web"}});
    assert_eq!(cells("", "endpoints", &none)[1], "<none>");
    let not_ready_only = json!({"metadata": {"name": "web"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}],
               "ports": [{"port": 80}]}]});
    assert_eq!(cells("", "endpoints", &not_ready_only)[1], "");
    let headless = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
    assert_eq!(cells("", "endpoints", &headless)[1], "fd00::1");
    let ipv6 = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("", "endpoints", &ipv6)[1], "[fd00::1]:80");
}

#[test]
fn endpoint_slice_table() {
    let es = json!({"metadata": {"name": "web-x7k2p", "creationTimestamp": ago(90)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                      {"addresses": ["10.0.0.4"]}]});
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", &es),
        vec![
            json!("web-x7k2p"),
            json!("IPv4"),
            json!("8080,metrics,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
            json!("90s")
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
    let c = cells("discovery.k8s.io", "endpointslices", &empty);
    assert_eq!(c[2], "<unset>");
    assert_eq!(c[3], "<unset>");
}

#[test]
fn namespace_configmap_secret_tables() {
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(40 * 86400)},
                    "status": {"phase": "Active"}});
    assert_eq!(
        cells("", "namespaces", &ns),
        vec![json!("default"), json!("Active"), json!("40d")]
    );
    let terminating = json!({"metadata": {"name": "old"}, "status": {"phase": "Terminating"}});
    assert_eq!(cells("", "namespaces", &terminating)[1], "Terminating");
    assert_eq!(cells("", "namespaces", &json!({}))[1], "Active");

    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(7200)},
                    "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "configmaps", &cm),
        vec![json!("cfg"), json!(3), json!("120m")]
    );
    let defs = column_definitions(info("", "configmaps"));
    assert_eq!(defs[1]["name"], "Data");
    assert_eq!(defs[1]["type"], "integer");

    let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(5 * 3600)},
                        "type": "kubernetes.io/tls",
                        "data": {"tls.crt": "AA==", "tls.key": "AA=="}});
    assert_eq!(
        cells("", "secrets", &secret),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("5h")
        ]
    );
    let opaque =
        json!({"metadata": {"name": "s"}, "stringData": {"x": "1"}, "data": {"x": "MQ=="}});
    let c = cells("", "secrets", &opaque);
    assert_eq!(c[1], "Opaque");
    assert_eq!(c[2], 1);
}

#[test]
fn event_table() {
    assert_eq!(
        names("", "events"),
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let ev = json!({"metadata": {"name": "web.17a9c", "namespace": "default"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "ScalingReplicaSet",
        "message": "Scaled up replica set web-5d4f8b7c9 from 0 to 3\n",
        "source": {"component": "deployment-controller"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 2, "type": "Normal"});
    assert_eq!(
        cells("", "events", &ev),
        vec![
            json!("65s"),
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/web"),
            json!(""),
            json!("deployment-controller"),
            json!("Scaled up replica set web-5d4f8b7c9 from 0 to 3"),
            json!("10m"),
            json!(2),
            json!("web.17a9c")
        ]
    );
    // New-style event: eventTime, series, reporting fields, no involved name.
    let new_style = json!({"metadata": {"name": "n.1"},
        "involvedObject": {"kind": "Node", "fieldPath": "spec.containers{app}"},
        "eventTime": "2025-05-01T11:50:00.000000Z",
        "series": {"count": 4, "lastObservedTime": "2025-05-01T11:59:00.500000Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-1",
        "type": "Warning", "reason": "BackOff", "message": "Back-off"});
    let c = cells("", "events", &new_style);
    assert_eq!(c[0], "59s");
    assert_eq!(c[3], "node");
    assert_eq!(c[4], "spec.containers{app}");
    assert_eq!(c[5], "kubelet, node-1");
    assert_eq!(c[7], "10m");
    assert_eq!(c[8], 4);
    // No times at all, no count.
    let bare = json!({"metadata": {"name": "b"}});
    let c = cells("", "events", &bare);
    assert_eq!(c[0], "<unknown>");
    assert_eq!(c[7], "<unknown>");
    assert_eq!(c[8], 1);
}

#[test]
fn include_object_policies() {
    let d = deployment();
    let deployments = info("apps", "deployments");
    let meta = row(deployments, &d, IncludeObject::Metadata, now());
    assert_eq!(
        meta["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": d["metadata"].clone()})
    );
    let full = row(deployments, &d, IncludeObject::Object, now());
    assert_eq!(full["object"], d);
    let none = row(deployments, &d, IncludeObject::None, now());
    assert!(none.get("object").is_none());

    // List items may lack kind and apiVersion; the full object gets them back.
    let mut bare = d.clone();
    bare.as_object_mut().unwrap().remove("kind");
    bare.as_object_mut().unwrap().remove("apiVersion");
    let full = row(deployments, &bare, IncludeObject::Object, now());
    assert_eq!(full["object"]["kind"], "Deployment");
    assert_eq!(full["object"]["apiVersion"], "apps/v1");
    let partial = row(deployments, &json!({}), IncludeObject::Metadata, now());
    assert_eq!(partial["object"]["metadata"], json!({}));

    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("object"), None);
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn whole_table_metadata_and_columns() {
    let d = deployment();
    let deployments = info("apps", "deployments");
    let t = table(
        deployments,
        &[&d, &d],
        IncludeObject::Metadata,
        now(),
        "1017",
        Some("tok"),
        true,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "1017", "continue": "tok"})
    );
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 8);
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    assert_eq!(t["rows"][1]["cells"][1], "2/3");

    let watch = table(
        deployments,
        &[&d],
        IncludeObject::Metadata,
        now(),
        "",
        None,
        false,
    );
    assert!(watch.get("columnDefinitions").is_none());
    assert_eq!(watch["metadata"], json!({}));
    let empty = table(
        deployments,
        &[],
        IncludeObject::None,
        now(),
        "5",
        Some(""),
        true,
    );
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["metadata"], json!({"resourceVersion": "5"}));
}

#[test]
fn every_registry_kind_has_matching_cells_and_columns() {
    let shapes = [
        json!({}),
        json!(null),
        json!("string"),
        json!([1, 2]),
        json!({"metadata": "x", "spec": 7, "status": []}),
        json!({"spec": {"containers": "no", "template": {"spec": {"containers": [1]}}},
               "status": {"containerStatuses": [null, {"state": 3}],
                          "initContainerStatuses": [{"state": {"terminated": null}}]}}),
        json!({"subsets": [{"addresses": [null], "ports": [null]}], "endpoints": [5],
               "ports": ["x"], "series": {}, "involvedObject": 1}),
    ];
    for info in slipway_core::resources::all() {
        let width = column_definitions(info).as_array().unwrap().len();
        for shape in &shapes {
            for include in [
                IncludeObject::None,
                IncludeObject::Metadata,
                IncludeObject::Object,
            ] {
                let r = row(info, shape, include, now());
                assert_eq!(r["cells"].as_array().unwrap().len(), width, "{}", info.kind);
            }
        }
    }
}

fn rollout(strategy: Value, status: Value) -> Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(90)},
        "spec": {"replicas": 5,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "web:2"}]}},
                 "strategy": strategy},
        "status": status
    })
}

#[test]
fn rollout_table() {
    let info = lookup("slipway.dev", "v1alpha1", "rollouts").unwrap();
    let defs = column_definitions(info);
    let cols: Vec<(String, u64)> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("Name", 0),
        ("Desired", 0),
        ("Current", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Status", 0),
        ("Step", 0),
        ("Weight", 0),
        ("Age", 0),
        ("Strategy", 1),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    .iter()
    .map(|(n, p)| (n.to_string(), *p))
    .collect();
    assert_eq!(cols, want);
    assert_eq!(defs[0]["format"], "name");

    let canary = rollout(
        json!({"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]}}),
        json!({"phase": "Paused", "replicas": 6, "updatedReplicas": 1, "availableReplicas": 5,
               "currentStepIndex": 1, "weight": 20}),
    );
    assert_eq!(
        row(info, &canary, IncludeObject::None, now())["cells"],
        json!([
            "web", 5, 6, 1, 5, "Paused", "1/3", "20", "90s", "Canary", "app", "web:2", "app=web"
        ])
    );
    // Before the controller reports anything.
    let fresh = rollout(
        json!({"canary": {"steps": [{"setWeight": 20}]}}),
        json!(null),
    );
    assert_eq!(
        row(info, &fresh, IncludeObject::None, now())["cells"],
        json!([
            "web", 5, 0, 0, 0, "", "-", "-", "90s", "Canary", "app", "web:2", "app=web"
        ])
    );
    // Step and weight are canary-only.
    for (strategy, name) in [
        (json!({"blueGreen": {"activeService": "web"}}), "BlueGreen"),
        (json!({"rollingUpdate": {}}), "RollingUpdate"),
        (json!({"recreate": {}}), "Recreate"),
    ] {
        let obj = rollout(
            strategy,
            json!({"phase": "Healthy", "replicas": 5, "updatedReplicas": 5,
                   "availableReplicas": 5, "currentStepIndex": 0, "weight": 100}),
        );
        let cells = row(info, &obj, IncludeObject::None, now())["cells"].clone();
        assert_eq!(cells[5], "Healthy");
        assert_eq!(cells[6], "-", "{name}");
        assert_eq!(cells[7], "-", "{name}");
        assert_eq!(cells[9], name);
    }
    // A step index past the end is clamped (done: steps.len()).
    let done = rollout(
        json!({"canary": {"steps": [{"setWeight": 20}]}}),
        json!({"currentStepIndex": 4, "weight": 100}),
    );
    assert_eq!(
        row(info, &done, IncludeObject::None, now())["cells"][6],
        "1/1"
    );
}

#[test]
fn unknown_kinds_print_name_and_age() {
    let custom = ResourceInfo {
        group: "slipway.dev",
        version: "v1alpha1",
        kind: "Widget",
        plural: "widgets",
        singular: "widget",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    };
    let defs = column_definitions(&custom);
    assert_eq!(defs.as_array().unwrap().len(), 2);
    assert_eq!(defs[1]["name"], "Age");
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(86400 * 3 + 3600 * 5)}});
    assert_eq!(
        row(&custom, &obj, IncludeObject::None, now())["cells"],
        json!(["w", "3d5h"])
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary JSON, biased toward the field names the printers read.
    fn any_json() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "metadata",
            "name",
            "creationTimestamp",
            "deletionTimestamp",
            "spec",
            "status",
            "replicas",
            "readyReplicas",
            "containers",
            "initContainers",
            "containerStatuses",
            "initContainerStatuses",
            "state",
            "waiting",
            "terminated",
            "running",
            "reason",
            "lastState",
            "finishedAt",
            "restartCount",
            "ports",
            "port",
            "nodePort",
            "subsets",
            "addresses",
            "ip",
            "endpoints",
            "series",
            "count",
            "selector",
            "matchLabels",
            "matchExpressions",
            "type",
            "data",
            "phase",
            "conditions",
            "restartPolicy",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!("2025-05-01T11:59:00Z")),
            Just(json!("Always")),
            "[a-z:./]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn rows_never_panic_and_match_columns(obj in any_json()) {
            for info in slipway_core::resources::all() {
                let width = columns(info).len();
                let r = row(info, &obj, IncludeObject::Object, now());
                prop_assert_eq!(r["cells"].as_array().map(Vec::len), Some(width));
            }
        }
    }
}

/// 10,000 pods as the API server stores them (defaulted, with managedFields), for the
/// timing harness and the fast-path equivalence test.
fn realistic_pods(n: usize) -> Vec<Value> {
    let template: Value = serde_json::from_str(include_str!("../tests/data/pod.json")).unwrap();
    (0..n)
        .map(|i| {
            let mut p = template.clone();
            p["metadata"]["name"] = json!(format!("pod-{i:05}"));
            p["metadata"]["uid"] = json!(format!("fdedb924-65cd-4f23-a761-{i:012}"));
            p["metadata"]["resourceVersion"] = json!((i + 5).to_string());
            p["metadata"]["creationTimestamp"] = json!(ago((i % 5000) as i64 * 7));
            p
        })
        .collect()
}

/// Prints how long building and encoding a Table of 10,000 pods takes:
/// `cargo test --release -p slipway-printers table_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn table_timing() {
    let pods = realistic_pods(10_000);
    let refs: Vec<&Value> = pods.iter().collect();
    let pods_info = info("", "pods");
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let v = table(
            pods_info,
            &refs,
            IncludeObject::Metadata,
            now(),
            "1",
            None,
            true,
        );
        let built = t.elapsed();
        let bytes = serde_json::to_vec(&v).unwrap();
        let total = t.elapsed();
        drop(v);
        let dropped = t.elapsed();
        let t = std::time::Instant::now();
        let v = table(
            pods_info,
            &refs,
            IncludeObject::None,
            now(),
            "1",
            None,
            true,
        );
        let cells_only = t.elapsed();
        drop(v);
        println!(
            "Value path: build {built:?}, +encode {total:?}, +drop {dropped:?} ({} bytes); cells only {cells_only:?}",
            bytes.len()
        );
        let meta = TableMeta {
            resource_version: "1",
            ..TableMeta::default()
        };
        for include in [IncludeObject::Metadata, IncludeObject::None] {
            let t = std::time::Instant::now();
            let mut out = Vec::new();
            write_table(&mut out, pods_info, &refs, include, now(), &meta, true).unwrap();
            println!(
                "write_table {include:?}: {:?} ({} bytes)",
                t.elapsed(),
                out.len()
            );
        }
    }
}

/// Objects of every printed kind and of odd shapes, for the fast-path equivalence tests.
fn corpus() -> Vec<Value> {
    let mut objects = vec![
        json!({}),
        json!(null),
        json!("string"),
        json!([1, 2]),
        json!({"metadata": "x", "spec": 7, "status": []}),
        json!({"kind": 3, "metadata": {"name": "k"}, "apiVersion": null}),
        json!({"apiVersion": "v9", "metadata": {"name": "k", "labels": {"a": "é\"\\\n"}}}),
        json!({"spec": {"containers": "no", "template": {"spec": {"containers": [1]}}},
               "status": {"containerStatuses": [null, {"state": 3}],
                          "initContainerStatuses": [{"state": {"terminated": null}}]}}),
        json!({"subsets": [{"addresses": [null], "ports": [null]}], "endpoints": [5],
               "ports": ["x"], "series": {}, "involvedObject": 1}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2025-05-01T11:59:59.5Z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2025-05-01T13:59:59+02:00"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2025-05-01T12:00:01Z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2025-05-01T12:00:05Z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2025-02-30T12:00:05Z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "2016-12-31T23:59:60Z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": "1969-07-20T20:17:40z"}}),
        json!({"metadata": {"name": "t", "creationTimestamp": 17}}),
        deployment(),
        realistic_pods(1).remove(0),
    ];
    for secs in [0, 59, 119, 3600, 86400 * 400, 86400 * 365 * 9] {
        objects.push(json!({"metadata": {"name": "a", "creationTimestamp": ago(secs)}}));
    }
    let statuses = [
        json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                      "state": {"running": {"startedAt": ago(590)}}}]}),
        json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        json!({"phase": "Failed", "reason": "Evicted"}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": ago(300)}}},
            {"name": "other", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(4000)}}}]}),
        json!({"phase": "Pending",
            "initContainerStatuses": [
                {"name": "migrate", "restartCount": 1,
                 "state": {"terminated": {"exitCode": 2}}}],
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "x", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                "restartCount": 1, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}],
            "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
    ];
    for status in statuses {
        let mut p = pod(status);
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"},
                                             {"name": "migrate"}]);
        objects.push(p.clone());
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        p["spec"]["readinessGates"] = json!([{"conditionType": "x"}, {"conditionType": "y"}]);
        objects.push(p);
    }
    objects.extend([
        service(
            json!({"type": "ClusterIP", "clusterIP": "127.0.100.7", "clusterIPs": ["127.0.100.7"],
                   "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                             {"port": 53, "protocol": "UDP", "nodePort": 30053}],
                   "selector": {"tier": "front", "app": "web"}}),
            json!({}),
        ),
        service(
            json!({"type": "LoadBalancer", "clusterIP": "127.0.100.9", "externalIPs": ["192.0.2.9"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.example.com"}]}}),
        ),
        service(json!({"type": "LoadBalancer"}), json!({})),
        service(json!({"type": "ExternalName", "externalName": "db.example.com"}), json!({})),
        service(json!({"type": "Weird"}), json!({})),
        json!({"metadata": {"name": "web", "creationTimestamp": ago(30)},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}, {"ip": "10.0.0.3"},
                                       {"ip": "10.0.0.4"}],
                         "ports": [{"port": 8080, "protocol": "TCP"}]},
                        {"addresses": [{"ip": "10.0.0.9"}]}]}),
        json!({"metadata": {"name": "web-x7k2p", "creationTimestamp": ago(90)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                          {"addresses": ["10.0.0.4"]}]}),
        json!({"metadata": {"name": "default", "creationTimestamp": ago(40 * 86400)},
               "status": {"phase": "Terminating"}}),
        json!({"metadata": {"name": "cfg", "creationTimestamp": ago(7200)},
               "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": "AA==", "tls.key": "AA=="}, "stringData": {"x": "1"}}),
        json!({"metadata": {"name": "web.17a9c", "namespace": "default"},
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
            "reason": "ScalingReplicaSet", "message": "Scaled up\n",
            "source": {"component": "deployment-controller", "host": "h"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 2, "type": "Normal"}),
        json!({"metadata": {"name": "n.1"},
            "involvedObject": {"kind": "Node", "fieldPath": "spec.containers{app}"},
            "eventTime": "2025-05-01T11:50:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2025-05-01T11:59:00.500000Z"},
            "reportingComponent": "kubelet", "reportingInstance": "node-1",
            "type": "Warning", "reason": "BackOff", "message": "Back-off"}),
        json!({"metadata": {"name": "rs"}, "spec": {"replicas": 0,
               "selector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]},
                                                 {"key": "b", "operator": "DoesNotExist"}]}},
               "status": {"replicas": 2, "readyReplicas": 1}}),
    ]);
    objects
}

/// Writes, for every kind and include policy, the Table of the whole corpus, then the Table
/// of 10,000 realistic pods; `table_of` encodes one Table.
fn corpus_tables(
    mut table_of: impl FnMut(&ResourceInfo, &[&Value], IncludeObject, Option<usize>) -> Vec<u8>,
) -> Vec<u8> {
    let objects = corpus();
    let refs: Vec<&Value> = objects.iter().collect();
    let mut out = Vec::new();
    for info in slipway_core::resources::all() {
        for include in [
            IncludeObject::None,
            IncludeObject::Metadata,
            IncludeObject::Object,
        ] {
            out.extend(table_of(info, &refs, include, None));
            out.push(b'\n');
        }
    }
    let pods = realistic_pods(10_000);
    let refs: Vec<&Value> = pods.iter().collect();
    out.extend(table_of(
        info("", "pods"),
        &refs,
        IncludeObject::Metadata,
        Some(42),
    ));
    out
}

fn value_table(
    info: &ResourceInfo,
    refs: &[&Value],
    include: IncludeObject,
    remaining: Option<usize>,
) -> Vec<u8> {
    let mut t = table(info, refs, include, now(), "12345", Some("tok"), true);
    if let Some(n) = remaining {
        t["metadata"]["remainingItemCount"] = json!(n);
    }
    serde_json::to_vec(&t).unwrap()
}

fn streamed_table(
    info: &ResourceInfo,
    refs: &[&Value],
    include: IncludeObject,
    remaining: Option<usize>,
) -> Vec<u8> {
    let meta = TableMeta {
        resource_version: "12345",
        continue_token: Some("tok"),
        remaining_item_count: remaining,
    };
    let mut out = b"unchanged".to_vec();
    write_table(&mut out, info, refs, include, now(), &meta, true).unwrap();
    out.split_off(b"unchanged".len())
}

#[test]
fn written_tables_are_the_serialised_tables_byte_for_byte() {
    let written = corpus_tables(streamed_table);
    assert!(written == corpus_tables(value_table));
    // Spot checks that the corpus exercises what it should.
    let text = String::from_utf8(written).unwrap();
    for needle in [
        r#""object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{}}"#,
        r#""metadata":{"resourceVersion":"12345","continue":"tok","remainingItemCount":42}"#,
        r#""conditions":[{"type":"Completed""#,
        r#""managedFields":[{"manager":"kubectl-client-side-apply""#,
        r#"{"kind":"Pod","metadata":{"name":"k"},"apiVersion":"v1"}"#,
    ] {
        assert!(text.contains(needle), "{needle}");
    }

    // Watch tables: no column definitions, no list metadata.
    let d = deployment();
    let mut out = Vec::new();
    let deployments = info("apps", "deployments");
    let meta = TableMeta::default();
    write_table(
        &mut out,
        deployments,
        &[&d],
        IncludeObject::Metadata,
        now(),
        &meta,
        false,
    )
    .unwrap();
    let watch = table(
        deployments,
        &[&d],
        IncludeObject::Metadata,
        now(),
        "",
        None,
        false,
    );
    assert_eq!(out, serde_json::to_vec(&watch).unwrap());
}
