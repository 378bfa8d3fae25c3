//! Validation of the other core kinds: Namespace, Service, Endpoints, Event, ConfigMap,
//! Secret, and `discovery.k8s.io/v1` EndpointSlice.

use super::ErrorsExt;
use super::meta::{self, NameRule};
use super::pod::{port_num_or_name, protocol};
use super::{Errors, Path, immutable};
use crate::gofmt::{self, quote};
use crate::names;
use k8s_openapi::api::core::v1::{
    ConfigMap, EndpointAddress, Endpoints, Event, Namespace, Secret, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_core::FieldError;
use std::collections::HashSet;

/// Largest total size of ConfigMap or Secret data, in bytes.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

/// The NodePort range Slipway allocates from (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Namespace create and update.
pub fn namespace(new: &Namespace, old: Option<&Namespace>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        false,
        NameRule::Label,
        &mut errs,
    );
    let path = Path::new("spec").child("finalizers");
    for f in new.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        errs.invalid_each(&path, f, names::qualified_name(f));
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str())
        {
            errs.push(FieldError::invalid(
                &path,
                quote(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

fn service_port(
    p: &ServicePort,
    require_name: bool,
    names_seen: &mut HashSet<String>,
    path: &Path,
    errs: &mut Errors,
) {
    let name = opt(&p.name);
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.invalid_each(path.child("name"), name, names::dns1123_label(name));
        if !names_seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(path.child("name"), quote(name)));
        }
    }
    for msg in names::port_num(i64::from(p.port)) {
        errs.push(FieldError::invalid(
            path.child("port"),
            p.port.to_string(),
            msg,
        ));
    }
    protocol(&p.protocol, &path.child("protocol"), errs);
    let target = p.target_port.clone().unwrap_or(IntOrString::Int(0));
    port_num_or_name(&target, &path.child("targetPort"), errs);
    if let Some(app) = &p.app_protocol {
        errs.invalid_each(path.child("appProtocol"), app, names::qualified_name(app));
    }
}

/// Service create and update.
pub fn service(new: &Service, old: Option<&Service>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Dns1035,
        &mut errs,
    );
    let spec = new.spec.clone().unwrap_or_default();
    let path = Path::new("spec");
    let service_type = opt(&spec.type_).to_string();
    let cluster_ip = opt(&spec.cluster_ip).to_string();
    let headless = cluster_ip == "None";
    let ports = spec.ports.clone().unwrap_or_default();
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    match service_type.as_str() {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            path.child("clusterIPs").index(0),
            quote(&cluster_ip),
            format!("may not be set to 'None' for {service_type} services"),
        )),
        "ExternalName" => {
            if !cluster_ip.is_empty() || spec.cluster_ips.as_ref().is_some_and(|c| !c.is_empty()) {
                errs.push(FieldError::forbidden(
                    path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = opt(&spec.external_name).trim_end_matches('.');
            if cname.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                errs.invalid_each(
                    path.child("externalName"),
                    cname,
                    names::dns1123_subdomain(cname),
                );
            }
        }
        _ => {}
    }
    let mut port_names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        service_port(
            p,
            ports.len() > 1,
            &mut port_names,
            &path.child("ports").index(i),
            &mut errs,
        );
    }
    meta::labels(spec.selector.as_ref(), &path.child("selector"), &mut errs);
    match opt(&spec.session_affinity) {
        "" => errs.push(FieldError::required(path.child("sessionAffinity"), "")),
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => errs.push(FieldError::required(
                    path.child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    "",
                )),
                Some(t) if !(1..=86400).contains(&t) => errs.push(FieldError::invalid(
                    path.child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    t.to_string(),
                    "must be greater than 0 and less than 86400",
                )),
                Some(_) => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            path.child("sessionAffinity"),
            quote(other),
            &["ClientIP", "None"],
        )),
    }
    if !cluster_ip.is_empty() && !headless && !names::is_ip(&cluster_ip) {
        errs.push(FieldError::invalid(
            path.child("clusterIPs").index(0),
            quote(&cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        if !names::is_ip(ip) {
            errs.push(FieldError::invalid(
                path.child("externalIPs").index(i),
                quote(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    match service_type.as_str() {
        "" => errs.push(FieldError::required(path.child("type"), "")),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        other => errs.push(FieldError::not_supported(
            path.child("type"),
            quote(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    for (i, p) in ports.iter().enumerate() {
        let node_port = p.node_port.unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        let np_path = path.child("ports").index(i).child("nodePort");
        if service_type == "ClusterIP" {
            errs.push(FieldError::forbidden(
                np_path,
                "may not be used when `type` is 'ClusterIP'",
            ));
        } else if !NODE_PORT_RANGE.contains(&node_port) {
            errs.push(FieldError::invalid(
                np_path,
                node_port.to_string(),
                format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    NODE_PORT_RANGE.start(),
                    NODE_PORT_RANGE.end()
                ),
            ));
        }
    }
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let node_port = p.node_port.unwrap_or(0);
        if node_port != 0 && !node_ports.insert((opt(&p.protocol).to_string(), node_port)) {
            errs.push(FieldError::duplicate(
                path.child("ports").index(i).child("nodePort"),
                node_port.to_string(),
            ));
        }
    }
    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        if !seen_ports.insert((opt(&p.protocol).to_string(), p.port)) {
            errs.push(FieldError::duplicate(
                path.child("ports").index(i),
                render_duplicate_port(p),
            ));
        }
    }
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP"
            && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    let etp = opt(&spec.external_traffic_policy);
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                path.child("externalTrafficPolicy"),
                quote(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(
            path.child("externalTrafficPolicy"),
            "",
        ));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            path.child("externalTrafficPolicy"),
            quote(etp),
            &["Cluster", "Local"],
        ));
    }
    if service_type != "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_some() {
        errs.push(FieldError::forbidden(
            path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    match (&spec.internal_traffic_policy, service_type.as_str()) {
        (None, "ClusterIP" | "NodePort" | "LoadBalancer") => errs.push(FieldError::required(
            path.child("internalTrafficPolicy"),
            "must be specified when `type` is set to ClusterIP, NodePort, or LoadBalancer",
        )),
        (None, _) => {}
        (Some(p), _) if p != "Cluster" && p != "Local" => errs.push(FieldError::not_supported(
            path.child("internalTrafficPolicy"),
            quote(p),
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(old) = old {
        let old_spec = old.spec.clone().unwrap_or_default();
        let old_ip = opt(&old_spec.cluster_ip);
        let old_type = opt(&old_spec.type_);
        if old_type != "ExternalName"
            && service_type != "ExternalName"
            && !old_ip.is_empty()
            && !cluster_ip.is_empty()
            && old_ip != cluster_ip
        {
            // Kubernetes compares the plural field and prints it as Go does.
            let ips = match &spec.cluster_ips {
                Some(ips) if !ips.is_empty() => ips.clone(),
                _ => vec![cluster_ip.clone()],
            };
            errs.push(FieldError::invalid(
                path.child("clusterIPs").index(0),
                gofmt::string_slice(Some(&ips)),
                "may not change once set",
            ));
        }
    }
    errs
}

fn render_duplicate_port(p: &ServicePort) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:{}, NodePort:0}}",
        quote(opt(&p.protocol)),
        p.port,
        gofmt::opt_int_or_string(None)
    )
}

fn endpoint_address(a: &EndpointAddress, path: &Path, errs: &mut Errors) {
    if !names::is_ip(&a.ip) {
        errs.push(FieldError::invalid(
            path.child("ip"),
            quote(&a.ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    let host = opt(&a.hostname);
    if !host.is_empty() {
        errs.invalid_each(path.child("hostname"), host, names::dns1123_label(host));
    }
    let node = opt(&a.node_name);
    if !node.is_empty() {
        errs.invalid_each(path.child("nodeName"), node, names::dns1123_subdomain(node));
    }
}

/// Endpoints create and update. Loopback addresses are allowed: Slipway's pods live there.
pub fn endpoints(new: &Endpoints, old: Option<&Endpoints>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let path = Path::new("subsets");
    for (i, ss) in new.subsets.iter().flatten().enumerate() {
        let p = path.index(i);
        let addresses = ss.addresses.as_deref().unwrap_or(&[]);
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or(&[]);
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (ai, a) in addresses.iter().enumerate() {
            endpoint_address(a, &p.child("addresses").index(ai), &mut errs);
        }
        for (ai, a) in not_ready.iter().enumerate() {
            endpoint_address(a, &p.child("notReadyAddresses").index(ai), &mut errs);
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        for (pi, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(pi);
            let name = opt(&port.name);
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(pp.child("name"), ""));
            } else if !name.is_empty() {
                errs.invalid_each(pp.child("name"), name, names::dns1123_label(name));
            }
            for msg in names::port_num(i64::from(port.port)) {
                errs.push(FieldError::invalid(
                    pp.child("port"),
                    port.port.to_string(),
                    msg,
                ));
            }
            protocol(&port.protocol, &pp.child("protocol"), &mut errs);
        }
    }
    errs
}

/// EndpointSlice create and update.
pub fn endpoint_slice(new: &EndpointSlice, old: Option<&EndpointSlice>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let address_type = new.address_type.as_str();
    let path = Path::new("endpoints");
    if new.endpoints.len() > 1000 {
        errs.push(FieldError {
            kind: slipway_core::FieldErrorKind::TooLong,
            field: path.to_string(),
            value: None,
            detail: "must have at most 1000 items".to_string(),
        });
    }
    for (i, e) in new.endpoints.iter().enumerate() {
        let p = path.index(i);
        let ap = p.child("addresses");
        if e.addresses.is_empty() {
            errs.push(FieldError::required(&ap, "must contain at least 1 address"));
        }
        for (ai, a) in e.addresses.iter().enumerate() {
            let msg = match address_type {
                "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                    Some("must be a valid IPv4 address")
                }
                "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                    Some("must be a valid IPv6 address")
                }
                "FQDN" if !names::dns1123_subdomain(a).is_empty() => {
                    Some("must be a valid fully qualified domain name")
                }
                _ => None,
            };
            if let Some(msg) = msg {
                errs.push(FieldError::invalid(ap.index(ai), quote(a), msg));
            }
        }
        let host = opt(&e.hostname);
        if !host.is_empty() {
            errs.invalid_each(p.child("hostname"), host, names::dns1123_label(host));
        }
        let node = opt(&e.node_name);
        if !node.is_empty() {
            errs.invalid_each(p.child("nodeName"), node, names::dns1123_subdomain(node));
        }
    }
    match address_type {
        "" => errs.push(FieldError::required("addressType", "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(FieldError::not_supported(
            "addressType",
            quote(other),
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    let mut seen = HashSet::new();
    for (i, port) in new.ports.iter().flatten().enumerate() {
        let p = Path::new("ports").index(i);
        let name = opt(&port.name);
        if !name.is_empty() {
            errs.invalid_each(p.child("name"), name, names::dns1123_label(name));
        }
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(p.child("name"), quote(name)));
        }
        protocol(&port.protocol, &p.child("protocol"), &mut errs);
        if let Some(n) = port.port {
            for msg in names::port_num(i64::from(n)) {
                errs.push(FieldError::invalid(p.child("port"), n.to_string(), msg));
            }
        }
    }
    if let Some(old) = old {
        immutable(
            &new.address_type,
            &old.address_type,
            &Path::new("addressType"),
            |v| quote(v),
            &mut errs,
        );
    }
    errs
}

/// Event create and update (`core/v1` events get the legacy checks only).
pub fn event(new: &Event, old: Option<&Event>) -> Errors {
    let mut errs = Errors::new();
    let namespace = opt(&new.metadata.namespace);
    let involved_ns = opt(&new.involved_object.namespace);
    let ns_mismatch = if new.event_time.is_none() {
        if involved_ns.is_empty() {
            !namespace.is_empty() && namespace != "default"
        } else {
            namespace != involved_ns
        }
    } else {
        let mut mismatch =
            involved_ns.is_empty() && namespace != "default" && namespace != "kube-system";
        if !involved_ns.is_empty() {
            mismatch = false;
        }
        let controller = opt(&new.reporting_component);
        if controller.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        }
        for msg in names::qualified_name(controller) {
            if !controller.is_empty() {
                errs.push(FieldError::invalid(
                    "reportingComponent",
                    quote(controller),
                    msg,
                ));
            }
        }
        if opt(&new.reporting_instance).is_empty() {
            errs.push(FieldError::required("reportingInstance", ""));
        }
        if opt(&new.action).is_empty() {
            errs.push(FieldError::required("action", ""));
        }
        if opt(&new.reason).is_empty() {
            errs.push(FieldError::required("reason", ""));
        }
        mismatch
    };
    if ns_mismatch {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            quote(involved_ns),
            "does not match event.namespace",
        ));
    }
    errs.invalid_each("namespace", namespace, names::dns1123_subdomain(namespace));
    if errs.is_empty() {
        meta::metadata(
            &new.metadata,
            old.map(|o| &o.metadata),
            true,
            NameRule::PathSegment,
            &mut errs,
        );
    }
    errs
}

fn immutable_data_rules(
    new_immutable: Option<bool>,
    old_immutable: Option<bool>,
    data_changed: &[(&str, bool)],
    errs: &mut Errors,
) {
    if old_immutable != Some(true) {
        return;
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    if new_immutable != Some(true) {
        errs.push(FieldError::forbidden("immutable", MSG));
    }
    for (field, changed) in data_changed {
        if *changed {
            errs.push(FieldError::forbidden(*field, MSG));
        }
    }
}

/// ConfigMap create and update.
pub fn config_map(new: &ConfigMap, old: Option<&ConfigMap>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    if let Some(old) = old {
        immutable_data_rules(
            new.immutable,
            old.immutable,
            &[
                ("data", new.data != old.data),
                ("binaryData", new.binary_data != old.binary_data),
            ],
            &mut errs,
        );
    }
    let mut total = 0;
    for (k, v) in new.data.iter().flatten() {
        errs.invalid_each(Path::new("data").key(k), k, names::config_map_key(k));
        if new.binary_data.as_ref().is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid(
                Path::new("data").key(k),
                quote(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.len();
    }
    for (k, v) in new.binary_data.iter().flatten() {
        errs.invalid_each(Path::new("binaryData").key(k), k, names::config_map_key(k));
        total += v.0.len();
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errs
}

/// Secret create and update, including the keys each built-in type requires.
pub fn secret(new: &Secret, old: Option<&Secret>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let data_path = Path::new("data");
    let data = new.data.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &data {
        errs.invalid_each(data_path.key(k), k, names::config_map_key(k));
        total += v.0.len();
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_DATA_SIZE));
    }
    let has = |k: &str| data.contains_key(k);
    let required =
        |k: &str, errs: &mut Errors| errs.push(FieldError::required(data_path.key(k), ""));
    match opt(&new.type_) {
        "kubernetes.io/service-account-token" => {
            let named = new
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/service-account.name"));
            if !named {
                errs.push(FieldError::required(
                    Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => required(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            required(".dockerconfigjson", &mut errs)
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            required("username", &mut errs);
            required("password", &mut errs);
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => required("ssh-privatekey", &mut errs),
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                required("tls.crt", &mut errs);
            }
            if !has("tls.key") {
                required("tls.key", &mut errs);
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        immutable(
            &opt(&new.type_).to_string(),
            &opt(&old.type_).to_string(),
            &Path::new("type"),
            |v| quote(v),
            &mut errs,
        );
        immutable_data_rules(
            new.immutable,
            old.immutable,
            &[("data", new.data != old.data)],
            &mut errs,
        );
    }
    errs
}
