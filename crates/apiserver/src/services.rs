//! What the Kubernetes service registry does to a Service beyond generic REST: allocating
//! ClusterIPs and NodePorts, keeping allocated values when a client resubmits an object
//! without them (`patchAllocatedValues`), and dropping values that a type change made
//! meaningless (`dropTypeDependentFields`).
//!
//! There is no allocation table: the values in use are those of the stored Services, so
//! deleting a Service (or changing it so it no longer needs a value) releases its values. The
//! REST layer serialises Service writes (see `Rest::service_write_lock`) so that two writes
//! cannot pick the same free value.

use serde_json::{Map, Value, json};
use slipway_core::resources::{self, ResourceInfo};
use slipway_core::{ApiError, FieldError, meta};
use slipway_store::Store;
use std::collections::{HashMap, HashSet};

/// The NodePort range (Kubernetes' default `--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// The values held by stored Services.
#[derive(Debug, Default)]
pub(crate) struct InUse {
    cluster_ips: HashSet<String>,
    node_ports: HashSet<i64>,
}

fn services_info() -> &'static ResourceInfo {
    resources::lookup("", "v1", "services").expect("services are served")
}

/// The ClusterIPs and NodePorts of every stored Service (all namespaces), except the one at
/// `except` (`(namespace, name)`: the Service being updated holds its own values).
pub(crate) fn in_use(store: &Store, except: Option<(&str, &str)>) -> InUse {
    let (services, _) = store.list(&services_info().storage_prefix(), None);
    let mut used = InUse::default();
    for svc in services {
        if except.is_some_and(|(ns, name)| meta::namespace(&svc) == ns && meta::name(&svc) == name)
        {
            continue;
        }
        let spec = svc.get("spec");
        for ip in cluster_ips(spec) {
            if ip != "None" {
                used.cluster_ips.insert(ip);
            }
        }
        for port in ports(spec) {
            if let Some(np) = node_port(port) {
                used.node_ports.insert(np);
            }
        }
        if let Some(hc) = spec
            .and_then(|s| s.get("healthCheckNodePort"))
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            used.node_ports.insert(hc);
        }
    }
    used
}

fn str_field<'a>(spec: Option<&'a Value>, field: &str) -> &'a str {
    spec.and_then(|s| s.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn service_type(spec: Option<&Value>) -> &str {
    match str_field(spec, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn cluster_ips(spec: Option<&Value>) -> Vec<String> {
    spec.and_then(|s| s.get("clusterIPs"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn ports(spec: Option<&Value>) -> impl Iterator<Item = &Value> {
    spec.and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn node_port(port: &Value) -> Option<i64> {
    port.get("nodePort")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
}

fn node_port_set(spec: Option<&Value>) -> HashSet<i64> {
    ports(spec).filter_map(node_port).collect()
}

/// Every type but ExternalName has a ClusterIP (or is headless).
fn needs_cluster_ip(spec: Option<&Value>) -> bool {
    service_type(spec) != "ExternalName"
}

/// NodePort and LoadBalancer Services may hold NodePorts.
fn needs_node_port(spec: Option<&Value>) -> bool {
    matches!(service_type(spec), "NodePort" | "LoadBalancer")
}

/// Whether ports without a `nodePort` get one: NodePort Services, and LoadBalancers unless
/// `allocateLoadBalancerNodePorts` is false.
fn allocates_node_ports(spec: Option<&Value>) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => {
            spec.and_then(|s| s.get("allocateLoadBalancerNodePorts"))
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// LoadBalancers with `externalTrafficPolicy: Local` have a health-check NodePort.
fn needs_health_check_node_port(spec: Option<&Value>) -> bool {
    service_type(spec) == "LoadBalancer" && str_field(spec, "externalTrafficPolicy") == "Local"
}

/// Services for which `externalTrafficPolicy` means something (as validation sees them).
fn externally_accessible(spec: Option<&Value>) -> bool {
    match service_type(spec) {
        "NodePort" | "LoadBalancer" => true,
        "ClusterIP" => spec
            .and_then(|s| s.get("externalIPs"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
        _ => false,
    }
}

fn spec_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let root = meta::object_mut(obj);
    let spec = root.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    spec.as_object_mut().expect("spec is an object")
}

fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Fields of an update that the registry fills in or clears before validation, as the
/// Kubernetes service strategy does (`NormalizeClusterIPs`, `patchAllocatedValues`,
/// `dropTypeDependentFields`). `new` is the object a client sent (merged with server-managed
/// metadata); `old` the stored one.
pub(crate) fn prepare_update(new: &mut Value, old: &Value) {
    let old_spec = old.get("spec");
    normalize_cluster_ips(new, old_spec);
    patch_allocated_values(new, old_spec);
    drop_type_dependent_fields(new, old_spec);
}

/// Keeps `clusterIPs` consistent with `clusterIP` for clients that only send the singular
/// field.
fn normalize_cluster_ips(new: &mut Value, old_spec: Option<&Value>) {
    let old_ip = str_field(old_spec, "clusterIP").to_string();
    let old_ips = cluster_ips(old_spec);
    let spec = spec_mut(new);
    let new_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let new_ips = cluster_ips(Some(&Value::Object(spec.clone())));
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        // An old client that does not know the plural field.
        spec.insert("clusterIPs".into(), json!(old_ips));
    }
    if old_ip != new_ip {
        let same_plural = cluster_ips(Some(&Value::Object(spec.clone()))) == old_ips;
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same_plural {
                spec.remove("clusterIPs");
            }
        } else if same_plural {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// Values the server allocated are kept when the new object leaves them out, so a client
/// can resubmit the YAML it created a Service from. NodePorts are matched by port name, as
/// Kubernetes matches them.
fn patch_allocated_values(new: &mut Value, old_spec: Option<&Value>) {
    let new_spec_view = new.get("spec").cloned();
    let new_spec_view = new_spec_view.as_ref();
    if needs_cluster_ip(old_spec) && needs_cluster_ip(new_spec_view) {
        let spec = spec_mut(new);
        if is_empty_value(spec.get("clusterIP"))
            && let Some(ip) = old_spec.and_then(|s| s.get("clusterIP"))
        {
            spec.insert("clusterIP".into(), ip.clone());
        }
        if is_empty_value(spec.get("clusterIPs"))
            && let Some(ips) = old_spec
                .and_then(|s| s.get("clusterIPs"))
                .filter(|v| !is_empty_value(Some(v)))
        {
            spec.insert("clusterIPs".into(), ips.clone());
        }
        // Kubernetes infers these again on update; the result is what the Service had.
        for field in ["ipFamilies", "ipFamilyPolicy"] {
            if is_empty_value(spec.get(field))
                && let Some(v) = old_spec
                    .and_then(|s| s.get(field))
                    .filter(|v| !is_empty_value(Some(v)))
            {
                spec.insert(field.into(), v.clone());
            }
        }
    }
    if needs_node_port(old_spec) && needs_node_port(new_spec_view) {
        // Values both objects use cannot be given to another port.
        let kept: HashSet<i64> = node_port_set(old_spec)
            .intersection(&node_port_set(new_spec_view))
            .copied()
            .collect();
        let by_name: HashMap<&str, i64> = ports(old_spec)
            .map(|p| {
                (
                    p.get("name").and_then(Value::as_str).unwrap_or(""),
                    node_port(p).unwrap_or(0),
                )
            })
            .collect();
        let spec = spec_mut(new);
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if node_port(port).is_some() {
                continue;
            }
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            let old_value = by_name.get(name).copied().unwrap_or(0);
            if old_value != 0
                && !kept.contains(&old_value)
                && let Some(p) = port.as_object_mut()
            {
                p.insert("nodePort".into(), json!(old_value));
            }
        }
    }
    if needs_health_check_node_port(old_spec) && needs_health_check_node_port(new_spec_view) {
        let spec = spec_mut(new);
        let unset = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
        if unset && let Some(hc) = old_spec.and_then(|s| s.get("healthCheckNodePort")) {
            spec.insert("healthCheckNodePort".into(), hc.clone());
        }
    }
}

/// A Service is a union discriminated by `type`: when the type changes, the fields that no
/// longer apply are dropped, provided the client did not also change them (then validation
/// reports them).
fn drop_type_dependent_fields(new: &mut Value, old_spec: Option<&Value>) {
    let new_spec_view = new.get("spec").cloned();
    let new_spec_view = new_spec_view.as_ref();
    let same = |field: &str| {
        let a = old_spec.and_then(|s| s.get(field)).filter(|v| !v.is_null());
        let b = new_spec_view
            .and_then(|s| s.get(field))
            .filter(|v| !v.is_null());
        a == b
    };
    let old_type = service_type(old_spec);
    let new_type = service_type(new_spec_view);
    let mut remove = Vec::new();
    if needs_cluster_ip(old_spec) && !needs_cluster_ip(new_spec_view) {
        let same_ips = str_field(old_spec, "clusterIP") == str_field(new_spec_view, "clusterIP")
            && cluster_ips(old_spec) == cluster_ips(new_spec_view);
        if same_ips {
            remove.extend(["clusterIP", "clusterIPs"]);
        }
        if same("ipFamilies") {
            remove.push("ipFamilies");
        }
        if same("ipFamilyPolicy") {
            remove.push("ipFamilyPolicy");
        }
    }
    let clear_node_ports = needs_node_port(old_spec)
        && !needs_node_port(new_spec_view)
        && node_port_set(old_spec).is_superset(&node_port_set(new_spec_view));
    if needs_health_check_node_port(old_spec)
        && !needs_health_check_node_port(new_spec_view)
        && same("healthCheckNodePort")
    {
        remove.push("healthCheckNodePort");
    }
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        let old_alloc = old_spec.and_then(|s| s.get("allocateLoadBalancerNodePorts"));
        let new_alloc = new_spec_view.and_then(|s| s.get("allocateLoadBalancerNodePorts"));
        if old_alloc.is_some_and(Value::is_boolean) && old_alloc == new_alloc {
            remove.push("allocateLoadBalancerNodePorts");
        }
        if same("loadBalancerClass") {
            remove.push("loadBalancerClass");
        }
    }
    if externally_accessible(old_spec)
        && !externally_accessible(new_spec_view)
        && same("externalTrafficPolicy")
    {
        remove.push("externalTrafficPolicy");
    }
    let spec = spec_mut(new);
    for field in remove {
        spec.remove(field);
    }
    if clear_node_ports {
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            port.remove("nodePort");
        }
    }
    if new_type != "LoadBalancer"
        && let Some(status) = meta::object_mut(new)
            .get_mut("status")
            .and_then(Value::as_object_mut)
    {
        status.insert("loadBalancer".into(), json!({}));
    }
}

fn invalid(svc: &Value, field: String, value: String, message: String) -> ApiError {
    ApiError::invalid(
        services_info(),
        meta::name(svc),
        &[FieldError::invalid(field, value, message)],
    )
}

/// Allocates what a Service needs and does not have: a ClusterIP from `candidates` (unless
/// it is headless or ExternalName, or `old` already holds one), and a NodePort for each port
/// without one (NodePort Services, and LoadBalancers that allocate NodePorts). Requested
/// values held by another Service are refused with Kubernetes' 422.
pub(crate) fn allocate(
    obj: &mut Value,
    old: Option<&Value>,
    used: &InUse,
    candidates: impl Iterator<Item = String>,
) -> Result<(), ApiError> {
    let old_spec = old.and_then(|o| o.get("spec"));
    allocate_cluster_ip(obj, old_spec, used, candidates)?;
    allocate_node_ports(obj, used)
}

fn allocate_cluster_ip(
    obj: &mut Value,
    old_spec: Option<&Value>,
    used: &InUse,
    mut candidates: impl Iterator<Item = String>,
) -> Result<(), ApiError> {
    let name_view = obj.clone();
    let spec = spec_mut(obj);
    let spec_view = Value::Object(spec.clone());
    if !needs_cluster_ip(Some(&spec_view)) {
        return Ok(());
    }
    let requested = str_field(Some(&spec_view), "clusterIP").to_string();
    if requested == "None" {
        if is_empty_value(spec.get("clusterIPs")) {
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        return Ok(());
    }
    let held = old_spec
        .is_some_and(|s| needs_cluster_ip(Some(s)) && !str_field(Some(s), "clusterIP").is_empty());
    if held {
        // The Service keeps its address; a different one is refused by validation.
        return Ok(());
    }
    let ip = if !requested.is_empty() {
        if used.cluster_ips.contains(&requested) {
            return Err(invalid(
                &name_view,
                "spec.clusterIPs".into(),
                format!("[]string{{{}}}", slipway_core::field::quoted(&requested)),
                format!("failed to allocate IP {requested}: provided IP is already allocated"),
            ));
        }
        requested
    } else {
        candidates
            .find(|ip| !used.cluster_ips.contains(ip))
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if is_empty_value(spec.get("ipFamilies")) {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
    if is_empty_value(spec.get("ipFamilyPolicy")) {
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }
    Ok(())
}

fn allocate_node_ports(obj: &mut Value, used: &InUse) -> Result<(), ApiError> {
    let view = obj.clone();
    let spec_view = view.get("spec");
    if !needs_node_port(spec_view) {
        return Ok(());
    }
    // Requested values must be free; one Service may use a value for several ports (of
    // different protocols, which validation checks).
    for (i, port) in ports(spec_view).enumerate() {
        if let Some(np) = node_port(port)
            && used.node_ports.contains(&np)
        {
            return Err(invalid(
                &view,
                format!("spec.ports[{i}].nodePort"),
                np.to_string(),
                "provided port is already allocated".into(),
            ));
        }
    }
    if !allocates_node_ports(spec_view) {
        return Ok(());
    }
    let mut taken: HashSet<i64> = node_port_set(spec_view);
    // Ports with the same number (TCP and UDP 53) share one NodePort, as on Kubernetes.
    let mut by_port_number: HashMap<i64, i64> = HashMap::new();
    for port in ports(spec_view) {
        if let (Some(n), Some(np)) = (port.get("port").and_then(Value::as_i64), node_port(port)) {
            by_port_number.entry(n).or_insert(np);
        }
    }
    let spec = spec_mut(obj);
    let Some(list) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for port in list.iter_mut() {
        if node_port(port).is_some() {
            continue;
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        let np = match by_port_number.get(&number) {
            Some(np) => *np,
            None => {
                let np = free_node_port(used, &taken).ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
                taken.insert(np);
                by_port_number.insert(number, np);
                np
            }
        };
        if let Some(p) = port.as_object_mut() {
            p.insert("nodePort".into(), json!(np));
        }
    }
    Ok(())
}

/// A random free NodePort: a random start in the range, then the next free value.
fn free_node_port(used: &InUse, taken: &HashSet<i64>) -> Option<i64> {
    use rand::Rng;
    let (lo, hi) = (*NODE_PORT_RANGE.start(), *NODE_PORT_RANGE.end());
    let size = hi - lo + 1;
    let start = rand::rng().random_range(0..size);
    (0..size)
        .map(|i| lo + (start + i) % size)
        .find(|p| !used.node_ports.contains(p) && !taken.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn ips() -> impl Iterator<Item = String> {
        (1..).map(|n| format!("127.96.0.{n}"))
    }

    #[test]
    fn node_ports_are_allocated_in_range_and_shared_by_port_number() {
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}
        ]}));
        allocate(&mut s, None, &InUse::default(), ips()).unwrap();
        let nps: Vec<i64> = ports(s.get("spec"))
            .map(|p| node_port(p).unwrap())
            .collect();
        assert!(nps.iter().all(|n| NODE_PORT_RANGE.contains(n)));
        assert_eq!(nps[0], nps[1]);
        assert_ne!(nps[0], nps[2]);
        assert_eq!(s["spec"]["clusterIP"], "127.96.0.1");
    }

    #[test]
    fn free_values_skip_used_ones() {
        let used = InUse {
            cluster_ips: HashSet::new(),
            node_ports: NODE_PORT_RANGE.filter(|p| *p != 31000).collect(),
        };
        assert_eq!(free_node_port(&used, &HashSet::new()), Some(31000));
        assert_eq!(free_node_port(&used, &HashSet::from([31000])), None);
    }

    #[test]
    fn allocated_values_are_patched_by_port_name() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"],
            "ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30002}]}),
        );
        let mut new = svc(json!({"type": "NodePort",
            "ports": [{"name": "b", "port": 8081}, {"name": "a", "port": 80}]}));
        prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "127.96.0.9");
        assert_eq!(new["spec"]["clusterIPs"], json!(["127.96.0.9"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30002);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30001);
    }

    #[test]
    fn a_type_change_drops_what_no_longer_applies_unless_the_client_changed_it() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"],
            "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30001}]}),
        );
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["ports"][0].get("nodePort"), None);
        assert_eq!(new["spec"].get("externalTrafficPolicy"), None);
        assert_eq!(new["spec"]["clusterIP"], "127.96.0.9");

        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30005);
        prepare_update(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30005);

        let mut external = old.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("example.com");
        prepare_update(&mut external, &old);
        assert_eq!(external["spec"].get("clusterIP"), None);
        assert_eq!(external["spec"].get("clusterIPs"), None);
    }

    #[test]
    fn the_singular_cluster_ip_drives_the_plural_one() {
        let old = svc(json!({"clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("127.96.0.10");
        prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIPs"], json!(["127.96.0.10"]));
    }
}
