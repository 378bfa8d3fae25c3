//! Pod, pod template and pod spec validation (`ValidatePodSpec`, containers, probes,
//! resources, volumes), as in Kubernetes' `pkg/apis/core/validation`.

use super::ErrorsExt;
use super::meta::{self, NameRule};
use super::{Errors, Path, non_negative};
use crate::gofmt::quote;
use crate::names;
use crate::quantity::{FORMAT_ERROR, Quantity};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Pod, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SleepAction, TCPSocketAction, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_core::FieldError;
use std::collections::{BTreeMap, HashSet};

const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// A port given as number or IANA name (`ValidatePortNumOrName`).
pub fn port_num_or_name(port: &IntOrString, path: &Path, errs: &mut Errors) {
    match port {
        IntOrString::Int(p) => {
            for msg in names::port_num(i64::from(*p)) {
                errs.push(FieldError::invalid(path, p.to_string(), msg));
            }
        }
        IntOrString::String(s) => {
            errs.invalid_each(path, s, names::port_name(s));
        }
    }
}

/// A protocol: required, one of SCTP/TCP/UDP.
pub fn protocol(value: &Option<String>, path: &Path, errs: &mut Errors) {
    match value.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path, "")),
        p if !PORT_PROTOCOLS.contains(&p) => {
            errs.push(FieldError::not_supported(path, quote(p), PORT_PROTOCOLS))
        }
        _ => {}
    }
}

fn dns_label(value: &str, path: &Path, errs: &mut Errors) {
    errs.invalid_each(path, value, names::dns1123_label(value));
}

fn handler(
    exec: Option<&ExecAction>,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    grpc: Option<&GRPCAction>,
    sleep: Option<&SleepAction>,
    path: &Path,
    errs: &mut Errors,
) {
    let mut handlers = 0;
    let mut one = |name: &str, errs: &mut Errors| -> bool {
        if handlers > 0 {
            errs.push(FieldError::forbidden(
                path.child(name),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            handlers += 1;
            true
        }
    };
    if let Some(e) = exec
        && one("exec", errs)
        && e.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required(
            path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(h) = http_get
        && one("httpGet", errs)
    {
        let p = path.child("httpGet");
        if opt(&h.path).is_empty() {
            errs.push(FieldError::required(p.child("path"), ""));
        }
        port_num_or_name(&h.port, &p.child("port"), errs);
        let scheme = opt(&h.scheme);
        if scheme != "HTTP" && scheme != "HTTPS" {
            errs.push(FieldError::not_supported(
                p.child("scheme"),
                quote(scheme),
                &["HTTP", "HTTPS"],
            ));
        }
        for header in h.http_headers.iter().flatten() {
            errs.invalid_each(
                p.child("httpHeaders"),
                &header.name,
                names::http_header_name(&header.name),
            );
        }
    }
    if let Some(t) = tcp_socket
        && one("tcpSocket", errs)
    {
        port_num_or_name(&t.port, &path.child("tcpSocket").child("port"), errs);
    }
    if let Some(g) = grpc
        && one("grpc", errs)
    {
        for msg in names::port_num(i64::from(g.port)) {
            errs.push(FieldError::invalid(
                path.child("grpc").child("port"),
                g.port.to_string(),
                msg,
            ));
        }
    }
    if let Some(s) = sleep
        && one("sleep", errs)
    {
        non_negative(s.seconds, &path.child("sleep").child("seconds"), errs);
    }
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn probe(p: Option<&Probe>, kind: ProbeKind, path: &Path, errs: &mut Errors) {
    let Some(p) = p else { return };
    handler(
        p.exec.as_ref(),
        p.http_get.as_ref(),
        p.tcp_socket.as_ref(),
        p.grpc.as_ref(),
        None,
        path,
        errs,
    );
    for (name, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        non_negative(i64::from(value.unwrap_or(0)), &path.child(name), errs);
    }
    if let Some(t) = p.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(FieldError::invalid(
            path.child("terminationGracePeriodSeconds"),
            t.to_string(),
            "must be greater than 0",
        ));
    }
    match kind {
        ProbeKind::Readiness => {
            if let Some(t) = p.termination_grace_period_seconds {
                errs.push(FieldError::invalid(
                    path.child("terminationGracePeriodSeconds"),
                    t.to_string(),
                    "must not be set for readinessProbes",
                ));
            }
        }
        ProbeKind::Liveness | ProbeKind::Startup => {
            let success = p.success_threshold.unwrap_or(0);
            if success != 1 {
                errs.push(FieldError::invalid(
                    path.child("successThreshold"),
                    success.to_string(),
                    "must be 1",
                ));
            }
        }
    }
}

fn lifecycle_handler(h: Option<&LifecycleHandler>, path: &Path, errs: &mut Errors) {
    if let Some(h) = h {
        handler(
            h.exec.as_ref(),
            h.http_get.as_ref(),
            h.tcp_socket.as_ref(),
            None,
            h.sleep.as_ref(),
            path,
            errs,
        );
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn parse_quantity(q: &ApiQuantity, path: &Path, errs: &mut Errors) -> Option<Quantity> {
    match Quantity::parse(&q.0) {
        Ok(v) => Some(v),
        Err(_) => {
            errs.push(FieldError::invalid(path, quote(&q.0), FORMAT_ERROR));
            None
        }
    }
}

fn resource_entry(name: &str, q: &ApiQuantity, path: &Path, errs: &mut Errors) -> Option<Quantity> {
    errs.invalid_each(path, name, names::qualified_name(name));
    if !name.contains('/') && !is_standard_container_resource(name) {
        errs.push(FieldError::invalid(
            path,
            quote(name),
            "must be a standard resource for containers",
        ));
    }
    let value = parse_quantity(q, path, errs)?;
    if value.nanos < 0 {
        errs.push(FieldError::invalid(
            path,
            quote(&q.0),
            "must be greater than or equal to 0",
        ));
    }
    Some(value)
}

/// Resource names, non-negative quantities, and requests not above limits.
pub fn resources(r: Option<&ResourceRequirements>, path: &Path, errs: &mut Errors) {
    let Some(r) = r else { return };
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let mut limit_values = BTreeMap::new();
    for (name, q) in limits {
        if let Some(v) = resource_entry(name, q, &lim_path.key(name), errs) {
            limit_values.insert(name.clone(), v);
        }
    }
    for (name, q) in r.requests.iter().flatten() {
        let Some(request) = resource_entry(name, q, &req_path.key(name), errs) else {
            continue;
        };
        match (limits.get(name), limit_values.get(name)) {
            (Some(limit_text), Some(limit)) => {
                if request.nanos != limit.nanos && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        quote(&q.0),
                        format!("must be equal to {name} limit of {}", limit_text.0),
                    ));
                } else if request.nanos > limit.nanos {
                    errs.push(FieldError::invalid(
                        &req_path,
                        quote(&q.0),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            limit_text.0
                        ),
                    ));
                }
            }
            (Some(_), None) => {}
            (None, _) => {
                if !overcommit_allowed(name) {
                    errs.push(FieldError::required(
                        &lim_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
            }
        }
    }
}

fn container_ports(c: &Container, path: &Path, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = path.index(i);
        let name = opt(&port.name);
        if !name.is_empty() {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(p.child("name"), quote(name), msg));
                }
            } else if !seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(p.child("name"), quote(name)));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(p.child("containerPort"), ""));
        } else {
            for msg in names::port_num(i64::from(port.container_port)) {
                errs.push(FieldError::invalid(
                    p.child("containerPort"),
                    port.container_port.to_string(),
                    msg,
                ));
            }
        }
        let host_port = port.host_port.unwrap_or(0);
        if host_port != 0 {
            for msg in names::port_num(i64::from(host_port)) {
                errs.push(FieldError::invalid(
                    p.child("hostPort"),
                    host_port.to_string(),
                    msg,
                ));
            }
        }
        protocol(&port.protocol, &p.child("protocol"), errs);
    }
}

fn env(c: &Container, path: &Path, errs: &mut Errors) {
    for (i, e) in c.env.iter().flatten().enumerate() {
        let p = path.index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else {
            errs.invalid_each(p.child("name"), &e.name, names::env_var_name(&e.name));
        }
        let Some(from) = &e.value_from else { continue };
        let from_path = p.child("valueFrom");
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if let Some(f) = &from.field_ref
            && f.field_path.is_empty()
        {
            errs.push(FieldError::required(
                from_path.child("fieldRef").child("fieldPath"),
                "",
            ));
        }
        if let Some(k) = &from.config_map_key_ref
            && k.key.is_empty()
        {
            errs.push(FieldError::required(
                from_path.child("configMapKeyRef").child("key"),
                "",
            ));
        }
        if let Some(k) = &from.secret_key_ref
            && k.key.is_empty()
        {
            errs.push(FieldError::required(
                from_path.child("secretKeyRef").child("key"),
                "",
            ));
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &from_path,
                "\"\"",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &from_path,
                "\"\"",
                "may not have more than one field specified at a time",
            ));
        }
        if !opt(&e.value).is_empty() {
            errs.push(FieldError::invalid(
                &from_path,
                "\"\"",
                "may not be specified when `value` is not empty",
            ));
        }
    }
}

fn volume_mounts(c: &Container, volumes: &HashSet<String>, path: &Path, errs: &mut Errors) {
    let mut mount_points = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(p.child("name"), quote(&m.name)));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                quote(&m.mount_path),
                "must be unique",
            ));
        }
    }
}

fn container_common(
    c: &Container,
    volumes: &HashSet<String>,
    path: &Path,
    for_pod: bool,
    errs: &mut Errors,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        dns_label(&c.name, &path.child("name"), errs);
    }
    let image = opt(&c.image);
    if image.is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    } else if for_pod && image.trim() != image {
        errs.push(FieldError::invalid(
            path.child("image"),
            quote(image),
            "must not have leading or trailing whitespace",
        ));
    }
    match opt(&c.termination_message_policy) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            path.child("terminationMessagePolicy"),
            quote(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    container_ports(c, &path.child("ports"), errs);
    env(c, &path.child("env"), errs);
    volume_mounts(c, volumes, &path.child("volumeMounts"), errs);
    match opt(&c.image_pull_policy) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            quote(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    resources(c.resources.as_ref(), &path.child("resources"), errs);
}

fn lifecycle_and_probes(c: &Container, path: &Path, errs: &mut Errors) {
    if let Some(l) = &c.lifecycle {
        let p = path.child("lifecycle");
        lifecycle_handler(l.post_start.as_ref(), &p.child("postStart"), errs);
        lifecycle_handler(l.pre_stop.as_ref(), &p.child("preStop"), errs);
    }
    probe(
        c.liveness_probe.as_ref(),
        ProbeKind::Liveness,
        &path.child("livenessProbe"),
        errs,
    );
    probe(
        c.readiness_probe.as_ref(),
        ProbeKind::Readiness,
        &path.child("readinessProbe"),
        errs,
    );
    probe(
        c.startup_probe.as_ref(),
        ProbeKind::Startup,
        &path.child("startupProbe"),
        errs,
    );
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
    "flexVolume",
];

fn volume_source(v: &Volume, path: &Path, errs: &mut Errors) {
    let json = serde_json::to_value(v).unwrap_or_default();
    let mut count = 0;
    for source in VOLUME_SOURCES {
        if json.get(source).is_some_and(|s| !s.is_null()) {
            if count > 0 {
                errs.push(FieldError::forbidden(
                    path.child(source),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    if let Some(h) = &v.host_path
        && h.path.is_empty()
    {
        errs.push(FieldError::required(
            path.child("hostPath").child("path"),
            "",
        ));
    }
    if let Some(c) = &v.config_map
        && c.name.is_empty()
    {
        errs.push(FieldError::required(
            path.child("configMap").child("name"),
            "",
        ));
    }
    if let Some(s) = &v.secret
        && opt(&s.secret_name).is_empty()
    {
        errs.push(FieldError::required(
            path.child("secret").child("secretName"),
            "",
        ));
    }
    if let Some(c) = &v.persistent_volume_claim
        && c.claim_name.is_empty()
    {
        errs.push(FieldError::required(
            path.child("persistentVolumeClaim").child("claimName"),
            "",
        ));
    }
    for (name, mode) in [
        ("secret", v.secret.as_ref().and_then(|s| s.default_mode)),
        (
            "configMap",
            v.config_map.as_ref().and_then(|s| s.default_mode),
        ),
        (
            "downwardAPI",
            v.downward_api.as_ref().and_then(|s| s.default_mode),
        ),
        (
            "projected",
            v.projected.as_ref().and_then(|s| s.default_mode),
        ),
    ] {
        if let Some(mode) = mode
            && !(0..=0o777).contains(&mode)
        {
            errs.push(FieldError::invalid(
                path.child(name).child("defaultMode"),
                mode.to_string(),
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

fn volumes(spec: &PodSpec, path: &Path, errs: &mut Errors) -> HashSet<String> {
    let mut valid = HashSet::new();
    let mut all = HashSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut own = Errors::new();
        volume_source(v, &p, &mut own);
        if v.name.is_empty() {
            own.push(FieldError::required(&name_path, ""));
        } else {
            dns_label(&v.name, &name_path, &mut own);
        }
        if all.contains(&v.name) {
            own.push(FieldError::duplicate(&name_path, quote(&v.name)));
        }
        if own.is_empty() {
            all.insert(v.name.clone());
            valid.insert(v.name.clone());
        } else {
            errs.append(&mut own);
        }
    }
    valid
}

/// `ValidatePodSpec`; `for_pod` adds the checks Kubernetes makes only for pods.
pub fn pod_spec(spec: &PodSpec, path: &Path, for_pod: bool, errs: &mut Errors) {
    let vols = volumes(spec, &path.child("volumes"), errs);
    let containers_path = path.child("containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    let mut all_names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = containers_path.index(i);
        container_common(c, &vols, &p, for_pod, errs);
        if !all_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(p.child("name"), quote(&c.name)));
        }
        lifecycle_and_probes(c, &p, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let init_path = path.child("initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = init_path.index(i);
        container_common(c, &vols, &p, for_pod, errs);
        let mut restart_always = false;
        if let Some(policy) = &c.restart_policy {
            if policy != "Always" {
                errs.push(FieldError::not_supported(
                    p.child("restartPolicy"),
                    quote(policy),
                    &["Always"],
                ));
            }
            restart_always = policy == "Always";
        }
        if all_names.contains(&c.name) {
            errs.push(FieldError::duplicate(p.child("name"), quote(&c.name)));
        } else if !c.name.is_empty() {
            all_names.insert(c.name.clone());
        }
        if restart_always {
            lifecycle_and_probes(c, &p, errs);
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            if c.lifecycle.is_some() {
                errs.push(FieldError::forbidden(p.child("lifecycle"), msg));
            }
            if c.liveness_probe.is_some() {
                errs.push(FieldError::forbidden(p.child("livenessProbe"), msg));
            }
            if c.readiness_probe.is_some() {
                errs.push(FieldError::forbidden(p.child("readinessProbe"), msg));
            }
            if c.startup_probe.is_some() {
                errs.push(FieldError::forbidden(p.child("startupProbe"), msg));
            }
        }
    }
    match opt(&spec.restart_policy) {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("restartPolicy"),
            quote(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    match opt(&spec.dns_policy) {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" => {}
        "None" => {
            if spec.dns_config.is_none() {
                errs.push(FieldError::required(
                    path.child("dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
            }
        }
        "" => errs.push(FieldError::required(path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            quote(other),
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        )),
    }
    meta::labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
        errs,
    );
    let sa = opt(&spec.service_account_name);
    if !sa.is_empty() {
        errs.invalid_each(
            path.child("serviceAccountName"),
            sa,
            names::dns1123_subdomain(sa),
        );
    }
    let node = opt(&spec.node_name);
    if !node.is_empty() {
        errs.invalid_each(path.child("nodeName"), node, names::dns1123_subdomain(node));
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            ads.to_string(),
            names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        let v = opt(value);
        if !v.is_empty() {
            dns_label(v, &path.child(field), errs);
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let p = path.child("tolerations").index(i);
        let key = opt(&t.key);
        if !key.is_empty() {
            errs.invalid_each(p.child("key"), key, names::qualified_name(key));
        }
        match opt(&t.operator) {
            "" | "Equal" => {}
            "Exists" => {
                if !opt(&t.value).is_empty() {
                    errs.push(FieldError::invalid(
                        p.child("operator"),
                        quote(opt(&t.value)),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                p.child("operator"),
                quote(other),
                &["Equal", "Exists"],
            )),
        }
        let effect = opt(&t.effect);
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::not_supported(
                p.child("effect"),
                quote(effect),
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// `ValidatePodTemplateSpec`: template labels and annotations (at `<path>.labels`, as
/// Kubernetes names them) and the pod spec.
pub fn pod_template(t: &PodTemplateSpec, path: &Path, errs: &mut Errors) {
    let meta = t.metadata.clone().unwrap_or_default();
    meta::labels(meta.labels.as_ref(), &path.child("labels"), errs);
    meta::annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
    let spec = t.spec.clone().unwrap_or_default();
    pod_spec(&spec, &path.child("spec"), false, errs);
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The spec with the fields a pod update may change blanked out; `binding` also blanks
/// `nodeName` (binding an unscheduled pod to a node is allowed once).
fn munged(spec: &PodSpec, binding: bool) -> PodSpec {
    let mut s = spec.clone();
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        c.image = None;
    }
    s.active_deadline_seconds = None;
    s.tolerations = None;
    s.termination_grace_period_seconds = None;
    if binding {
        s.node_name = None;
    }
    s
}

/// Pod create and update.
pub fn pod(new: &Pod, old: Option<&Pod>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let spec = new.spec.clone().unwrap_or_default();
    let spec_path = Path::new("spec");
    pod_spec(&spec, &spec_path, true, &mut errs);
    if opt(&spec.service_account_name).is_empty() {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            for (si, s) in v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .enumerate()
            {
                if s.service_account_token.is_some() {
                    errs.push(FieldError::forbidden(
                        spec_path
                            .child("volumes")
                            .index(vi)
                            .child("projected")
                            .child("sources")
                            .index(si)
                            .child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    if let Some(old) = old {
        let old_spec = old.spec.clone().unwrap_or_default();
        let binding = opt(&old_spec.node_name).is_empty();
        if munged(&spec, binding) != munged(&old_spec, binding) {
            errs.push(FieldError::forbidden(
                &spec_path,
                format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}"),
            ));
        }
    }
    errs
}
