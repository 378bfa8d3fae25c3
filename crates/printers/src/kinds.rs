//! Cell values of each printer, following the kube-apiserver 1.33 printers. Every function
//! returns exactly one cell per column of the matching list in [`crate::columns`], wide
//! columns included (the server always prints wide; kubectl hides priority-1 columns).
//!
//! Cells borrow their text from the object where they can, so that printing a long list
//! allocates little; [`Cell`] serialises exactly as the `Value` it converts to.

use crate::age::{age_since, parse_time};
use crate::fields::{array_at, at, bool_at, int_at, int_opt, is_set, map_len, str_at, strings_at};
use crate::selector::{format_labels, label_selector_string};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// One cell: a string (borrowed from the object when possible) or an integer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    /// A string cell.
    Str(Cow<'a, str>),
    /// An integer cell.
    Int(i64),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Cell<'a> {
        Cell::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Cell<'_> {
    fn from(s: String) -> Self {
        Cell::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Cell<'a> {
    fn from(s: Cow<'a, str>) -> Cell<'a> {
        Cell::Str(s)
    }
}

impl From<i64> for Cell<'_> {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<usize> for Cell<'_> {
    fn from(n: usize) -> Self {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<Cell<'_>> for Value {
    fn from(cell: Cell<'_>) -> Value {
        match cell {
            Cell::Str(s) => Value::String(s.into_owned()),
            Cell::Int(n) => Value::from(n),
        }
    }
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Str(s) => serializer.serialize_str(s),
            Cell::Int(n) => serializer.serialize_i64(*n),
        }
    }
}

/// Cells of one row, plus the row conditions Kubernetes attaches (completed pods).
pub struct RowCells<'a> {
    /// One value per column.
    pub cells: Vec<Cell<'a>>,
    /// `TableRow.conditions`, empty when none.
    pub conditions: Vec<Value>,
}

impl<'a> From<Vec<Cell<'a>>> for RowCells<'a> {
    fn from(cells: Vec<Cell<'a>>) -> RowCells<'a> {
        RowCells {
            cells,
            conditions: Vec::new(),
        }
    }
}

fn name(obj: &Value) -> Cell<'_> {
    str_at(obj, &["metadata", "name"]).into()
}

fn age(obj: &Value, now: DateTime<Utc>) -> Cell<'static> {
    age_of(at(obj, &["metadata"]).unwrap_or(&Value::Null), now)
}

/// The Age cell of an object with `metadata`.
fn age_of(metadata: &Value, now: DateTime<Utc>) -> Cell<'static> {
    age_since(parse_time(at(metadata, &["creationTimestamp"])), now).into()
}

/// `layoutContainerCells`: container names and images, each comma-joined.
fn containers_and_images(obj: &Value) -> (Cell<'_>, Cell<'_>) {
    let containers = array_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(",").into(), images.join(",").into())
}

/// `spec.replicas`, defaulted to 1 as the API defaults it when unset.
fn desired_replicas(obj: &Value) -> i64 {
    int_opt(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// Name, Ready, Up-to-date, Available, Age, Containers, Images, Selector.
pub fn deployment(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let ready = int_at(obj, &["status", "readyReplicas"]);
    let (containers, images) = containers_and_images(obj);
    vec![
        name(obj),
        format!("{ready}/{}", desired_replicas(obj)).into(),
        int_at(obj, &["status", "updatedReplicas"]).into(),
        int_at(obj, &["status", "availableReplicas"]).into(),
        age(obj, now),
        containers,
        images,
        label_selector_string(at(obj, &["spec", "selector"])).into(),
    ]
    .into()
}

/// Name, Desired, Current, Ready, Age, Containers, Images, Selector.
pub fn replica_set(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let (containers, images) = containers_and_images(obj);
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        containers,
        images,
        label_selector_string(at(obj, &["spec", "selector"])).into(),
    ]
    .into()
}

/// The strategy of a Rollout, by its set member.
fn rollout_strategy(obj: &Value) -> &'static str {
    [
        ("canary", "Canary"),
        ("blueGreen", "BlueGreen"),
        ("rollingUpdate", "RollingUpdate"),
        ("recreate", "Recreate"),
    ]
    .into_iter()
    .find(|(key, _)| is_set(obj, &["spec", "strategy", key]))
    .map_or("", |(_, name)| name)
}

/// Name, Desired, Current, Up-to-date, Available, Status, Step, Weight, Age, Strategy,
/// Containers, Images, Selector. Step and Weight are `-` unless the strategy is a canary and
/// the controller reported them.
pub fn rollout(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let strategy = rollout_strategy(obj);
    let is_canary = strategy == "Canary";
    let steps = array_at(obj, &["spec", "strategy", "canary", "steps"]).len();
    let step: Cell<'_> = match int_opt(obj, &["status", "currentStepIndex"]) {
        Some(i) if is_canary => format!("{}/{steps}", i.min(steps as i64)).into(),
        _ => "-".into(),
    };
    let weight: Cell<'_> = match int_opt(obj, &["status", "weight"]) {
        Some(w) if is_canary => w.to_string().into(),
        _ => "-".into(),
    };
    let (containers, images) = containers_and_images(obj);
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "updatedReplicas"]).into(),
        int_at(obj, &["status", "availableReplicas"]).into(),
        str_at(obj, &["status", "phase"]).into(),
        step,
        weight,
        age(obj, now),
        strategy.into(),
        containers,
        images,
        label_selector_string(at(obj, &["spec", "selector"])).into(),
    ]
    .into()
}

/// A pod's `metadata`, `spec` and `status`, each looked up once (`null` when missing).
#[derive(Clone, Copy)]
struct PodParts<'a> {
    metadata: &'a Value,
    spec: &'a Value,
    status: &'a Value,
}

impl<'a> PodParts<'a> {
    fn of(pod: &'a Value) -> PodParts<'a> {
        let part = |key: &str| at(pod, &[key]).unwrap_or(&Value::Null);
        PodParts {
            metadata: part("metadata"),
            spec: part("spec"),
            status: part("status"),
        }
    }
}

/// Keeps the latest of the restart times seen so far.
fn note_restart(latest: &mut Option<DateTime<Utc>>, status: &Value) {
    if let Some(t) = parse_time(at(status, &["lastState", "terminated", "finishedAt"]))
        && latest.is_none_or(|cur| cur < t)
    {
        *latest = Some(t);
    }
}

/// A terminated state without a reason, as `Signal:N` / `ExitCode:N`.
fn exit_description(terminated: &Value) -> String {
    let signal = int_at(terminated, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int_at(terminated, &["exitCode"]))
    }
}

/// Whether the pod `status` has condition `ty` with `status`.
fn has_condition(pod_status: &Value, ty: &str, status: &str) -> bool {
    array_at(pod_status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == ty && str_at(c, &["status"]) == status)
}

/// The pod's Ready, Status and Restarts cells, following `printPod`: the phase, overridden by
/// `status.reason`, by the first unfinished init container (`Init:…`), then by the last
/// container with a waiting or terminated reason; `Terminating` while being deleted.
fn pod_state<'a>(
    pod: &PodParts<'a>,
    now: DateTime<Utc>,
) -> (String, Cow<'a, str>, Cow<'static, str>) {
    let PodParts {
        metadata,
        spec,
        status: pod_status,
    } = *pod;
    let init_specs = array_at(spec, &["initContainers"]);
    let restartable = |container_name: &str| {
        init_specs.iter().any(|c| {
            str_at(c, &["name"]) == container_name && str_at(c, &["restartPolicy"]) == "Always"
        })
    };
    let mut total = array_at(spec, &["containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = str_at(pod_status, &["phase"]);
    let pod_reason = str_at(pod_status, &["reason"]);
    let mut reason = Cow::Borrowed(if pod_reason.is_empty() {
        phase
    } else {
        pod_reason
    });
    if array_at(pod_status, &["conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = Cow::Borrowed("SchedulingGated");
    }

    let mut initializing = false;
    for (i, status) in array_at(pod_status, &["initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let container_name = str_at(status, &["name"]);
        restarts += int_at(status, &["restartCount"]);
        note_restart(&mut last_restart, status);
        let is_sidecar = restartable(container_name);
        if is_sidecar {
            sidecar_restarts += int_at(status, &["restartCount"]);
            note_restart(&mut last_sidecar_restart, status);
        }
        let terminated = at(status, &["state", "terminated"]).filter(|v| !v.is_null());
        let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && bool_at(status, &["started"]) {
            if bool_at(status, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = Cow::Owned(if let Some(t) = terminated {
            let why = str_at(t, &["reason"]);
            if why.is_empty() {
                format!("Init:{}", exit_description(t))
            } else {
                format!("Init:{why}")
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        });
        initializing = true;
        break;
    }

    if !initializing || has_condition(pod_status, "Initialized", "True") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in array_at(pod_status, &["containerStatuses"]).iter().rev() {
            restarts += int_at(status, &["restartCount"]);
            note_restart(&mut last_restart, status);
            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            let terminated = at(status, &["state", "terminated"]).filter(|v| !v.is_null());
            if !waiting_reason.is_empty() {
                reason = Cow::Borrowed(waiting_reason);
            } else if let Some(t) = terminated {
                let why = str_at(t, &["reason"]);
                reason = if why.is_empty() {
                    Cow::Owned(exit_description(t))
                } else {
                    Cow::Borrowed(why)
                };
            } else if bool_at(status, &["ready"]) && is_set(status, &["state", "running"]) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = Cow::Borrowed(if has_condition(pod_status, "Ready", "True") {
                "Running"
            } else {
                "NotReady"
            });
        }
    }

    if is_set(metadata, &["deletionTimestamp"]) {
        if pod_reason == "NodeLost" {
            reason = Cow::Borrowed("Unknown");
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = Cow::Borrowed("Terminating");
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => {
            Cow::Owned(format!("{restarts} ({} ago)", age_since(Some(t), now)))
        }
        _ if restarts == 0 => Cow::Borrowed("0"),
        _ => Cow::Owned(restarts.to_string()),
    };
    (format!("{ready}/{total}"), reason, restarts_cell)
}

fn or_none(s: &str) -> Cell<'_> {
    Cell::from(if s.is_empty() { "<none>" } else { s })
}

/// Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node, Readiness Gates.
pub fn pod(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let parts = PodParts::of(obj);
    let (ready, status, restarts) = pod_state(&parts, now);
    let PodParts {
        metadata,
        spec,
        status: pod_status,
    } = parts;
    let pod_ips = array_at(pod_status, &["podIPs"]);
    let ip = pod_ips
        .first()
        .map(|p| str_at(p, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| str_at(pod_status, &["podIP"]));
    let gates = array_at(spec, &["readinessGates"]);
    let readiness_gates: Cell<'_> = if gates.is_empty() {
        "<none>".into()
    } else {
        let conditions = array_at(pod_status, &["conditions"]);
        let met = gates
            .iter()
            .filter(|gate| {
                let ty = str_at(gate, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == ty)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{met}/{}", gates.len()).into()
    };
    let conditions = match str_at(pod_status, &["phase"]) {
        "Succeeded" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        })],
        "Failed" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed.",
        })],
        _ => Vec::new(),
    };
    RowCells {
        cells: vec![
            str_at(metadata, &["name"]).into(),
            ready.into(),
            status.into(),
            restarts.into(),
            age_of(metadata, now),
            or_none(ip),
            or_none(str_at(spec, &["nodeName"])),
            or_none(str_at(pod_status, &["nominatedNodeName"])),
            readiness_gates,
        ],
        conditions,
    }
}

/// Load-balancer ingress addresses: each entry's IP, else its hostname, deduplicated and
/// sorted, comma-joined.
fn load_balancer_addresses(svc: &Value) -> String {
    let set: BTreeSet<&str> = array_at(svc, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|ing| {
            let ip = str_at(ing, &["ip"]);
            let host = str_at(ing, &["hostname"]);
            [ip, host].into_iter().find(|s| !s.is_empty())
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn external_ip(svc: &Value, svc_type: &str) -> String {
    let external_ips = strings_at(svc, &["spec", "externalIPs"]);
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_addresses(svc);
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `80/TCP`, `80:30080/TCP` with a node port, comma-joined; `<none>` without ports.
fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = array_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = match str_at(p, &["protocol"]) {
                "" => "TCP",
                other => other,
            };
            match int_at(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    }
}

/// Name, Type, Cluster-IP, External-IP, Port(s), Age, Selector.
pub fn service(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let svc_type = match str_at(obj, &["spec", "type"]) {
        "" => "ClusterIP",
        other => other,
    };
    let cluster_ip = strings_at(obj, &["spec", "clusterIPs"])
        .first()
        .copied()
        .unwrap_or_else(|| str_at(obj, &["spec", "clusterIP"]));
    vec![
        name(obj),
        svc_type.into(),
        or_none(cluster_ip),
        external_ip(obj, svc_type).into(),
        service_ports(obj).into(),
        age(obj, now),
        format_labels(at(obj, &["spec", "selector"])).into(),
    ]
    .into()
}

/// How many entries the list columns show before ` + N more...`.
const MAX_LISTED: usize = 3;

/// `host:port`, with IPv6 hosts in brackets (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints`: ready addresses with each port, at most three, then ` + N more...`;
/// `<none>` without subsets.
fn endpoints_list(obj: &Value) -> String {
    let subsets = array_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut more = false;
    for subset in subsets {
        let addresses = array_at(subset, &["addresses"]);
        let ports = array_at(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX_LISTED {
                    more = true;
                    break;
                }
                list.push(str_at(addr, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX_LISTED {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(addr, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX_LISTED)
    } else {
        joined
    }
}

/// Name, Endpoints, Age.
pub fn endpoints(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    vec![name(obj), endpoints_list(obj).into(), age(obj, now)].into()
}

/// `listWithMoreString`: at most three entries, then ` + N more...`; `<unset>` when empty.
fn list_with_more(items: Vec<String>) -> String {
    let count = items.len();
    let joined = items
        .into_iter()
        .take(MAX_LISTED)
        .collect::<Vec<_>>()
        .join(",");
    if count > MAX_LISTED {
        format!("{joined} + {} more...", count - MAX_LISTED)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

/// Name, AddressType, Ports, Endpoints, Age.
pub fn endpoint_slice(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let ports = array_at(obj, &["ports"])
        .iter()
        .map(|p| {
            match (
                int_opt(p, &["port"]),
                at(p, &["name"]).and_then(Value::as_str),
            ) {
                (Some(port), _) => port.to_string(),
                (None, Some(port_name)) => port_name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addresses = array_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| strings_at(e, &["addresses"]))
        .map(str::to_string)
        .collect();
    vec![
        name(obj),
        str_at(obj, &["addressType"]).into(),
        list_with_more(ports).into(),
        list_with_more(addresses).into(),
        age(obj, now),
    ]
    .into()
}

/// Name, Status (phase, `Active` when unset), Age.
pub fn namespace(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let phase = match str_at(obj, &["status", "phase"]) {
        "" => "Active",
        other => other,
    };
    vec![name(obj), phase.into(), age(obj, now)].into()
}

/// Name, Data (keys of data and binaryData), Age.
pub fn config_map(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let keys = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![name(obj), keys.into(), age(obj, now)].into()
}

/// Name, Type (`Opaque` when unset), Data (keys of data, with stringData folded in as the
/// API does on write), Age.
pub fn secret(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let secret_type = match str_at(obj, &["type"]) {
        "" => "Opaque",
        other => other,
    };
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(map) = obj.get(field).and_then(Value::as_object) {
            keys.extend(map.keys().map(String::as_str));
        }
    }
    vec![
        name(obj),
        secret_type.into(),
        keys.len().into(),
        age(obj, now),
    ]
    .into()
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// Last Seen, Type, Reason, Object, Subobject, Source, Message, First Seen, Count, Name.
pub fn event(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    let first_time = parse_time(at(obj, &["firstTimestamp"]));
    let first_seen = match first_time {
        Some(t) => age_since(Some(t), now),
        None => age_since(parse_time(at(obj, &["eventTime"])), now),
    };
    let mut last_seen = match parse_time(at(obj, &["lastTimestamp"])) {
        Some(t) => age_since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(obj, &["count"]);
    if is_set(obj, &["series"]) {
        last_seen = age_since(parse_time(at(obj, &["series", "lastObservedTime"])), now);
        count = int_at(obj, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(obj, &["involvedObject", "kind"]).to_lowercase();
    let involved_name = str_at(obj, &["involvedObject", "name"]);
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let component = first_non_empty(
        str_at(obj, &["source", "component"]),
        str_at(obj, &["reportingComponent"]),
    );
    let instance = first_non_empty(
        str_at(obj, &["source", "host"]),
        str_at(obj, &["reportingInstance"]),
    );
    let source: Cell<'_> = if instance.is_empty() {
        component.into()
    } else {
        format!("{component}, {instance}").into()
    };
    vec![
        last_seen.into(),
        str_at(obj, &["type"]).into(),
        str_at(obj, &["reason"]).into(),
        target.into(),
        str_at(obj, &["involvedObject", "fieldPath"]).into(),
        source,
        str_at(obj, &["message"]).trim().into(),
        first_seen.into(),
        count.into(),
        name(obj),
    ]
    .into()
}

/// Name, Age.
pub fn default(obj: &Value, now: DateTime<Utc>) -> RowCells<'_> {
    vec![name(obj), age(obj, now)].into()
}
