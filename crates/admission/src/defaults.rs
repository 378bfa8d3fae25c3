//! Defaulting as Kubernetes 1.33 does it (`SetDefaults_*` of `core/v1`, `apps/v1`,
//! `discovery/v1`, the create-time parts of the registry strategies and of the default
//! admission plugins), applied to the typed objects, plus [`Shape`]: JSON fields that Go
//! always prints (`creationTimestamp: null` in templates, `status: {}`) but the typed
//! serializer omits.

use crate::quantity::Quantity;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, ConfigMap, Container, EmptyDirVolumeSource, Endpoints, EphemeralContainer,
    Event, LoadBalancerStatus, Namespace, NamespaceSpec, NamespaceStatus, Pod, PodSecurityContext,
    PodSpec, PodStatus, PodTemplateSpec, Probe, ResourceRequirements, Secret, Service,
    ServiceStatus, SessionAffinityConfig, Toleration, Volume,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// JSON fields to add after serialization when absent: `(JSON pointer, value)`. Each is
/// inserted only when its parent object exists and the key is missing.
#[derive(Debug, Default)]
pub struct Shape {
    ensure: Vec<(String, Value)>,
}

impl Shape {
    fn ensure(&mut self, pointer: impl Into<String>, value: Value) {
        self.ensure.push((pointer.into(), value));
    }

    /// Adds the recorded fields to `object`.
    pub fn apply(self, object: &mut Value) {
        for (pointer, value) in self.ensure {
            let Some((parent, key)) = pointer.rsplit_once('/') else {
                continue;
            };
            let parent = if parent.is_empty() {
                Some(&mut *object)
            } else {
                object.pointer_mut(parent)
            };
            if let Some(Value::Object(map)) = parent {
                map.entry(key.to_string()).or_insert(value);
            }
        }
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or("").is_empty() {
        *field = Some(value.to_string());
    }
}

fn set_if_zero(field: &mut Option<i32>, value: i32) {
    if field.unwrap_or(0) == 0 {
        *field = Some(value);
    }
}

/// The image tag as Kubernetes' `ParseImageName` finds it: `latest` when the reference has
/// neither tag nor digest, `""` for a digest-only or unparseable reference.
pub fn image_tag(image: &str) -> String {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return String::new();
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // path components (everything after a registry host) must be lower case
    let path = match repo.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repo,
    };
    if repo.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return String::new();
    }
    match (tag, digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => String::new(),
        (None, None) => "latest".to_string(),
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn probe(p: &mut Option<Probe>) {
    let Some(p) = p else { return };
    set_if_zero(&mut p.timeout_seconds, 1);
    set_if_zero(&mut p.period_seconds, 10);
    set_if_zero(&mut p.success_threshold, 1);
    set_if_zero(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        set_if_empty(&mut h.path, "/");
        set_if_empty(&mut h.scheme, "HTTP");
    }
    if let Some(g) = &mut p.grpc {
        g.service.get_or_insert_with(String::new);
    }
}

macro_rules! container_defaults {
    ($c:expr) => {{
        let c = $c;
        if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
            c.image_pull_policy =
                Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_string());
        }
        set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
        set_if_empty(&mut c.termination_message_policy, "File");
        c.resources
            .get_or_insert_with(ResourceRequirements::default);
        for port in c.ports.iter_mut().flatten() {
            set_if_empty(&mut port.protocol, "TCP");
        }
        probe(&mut c.liveness_probe);
        probe(&mut c.readiness_probe);
        probe(&mut c.startup_probe);
        if let Some(lifecycle) = &mut c.lifecycle {
            for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
                .into_iter()
                .flatten()
            {
                if let Some(h) = &mut handler.http_get {
                    set_if_empty(&mut h.path, "/");
                    set_if_empty(&mut h.scheme, "HTTP");
                }
            }
        }
        for env in c.env.iter_mut().flatten() {
            if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
                set_if_empty(&mut field_ref.api_version, "v1");
            }
        }
    }};
}

fn container(c: &mut Container) {
    container_defaults!(c);
}

fn ephemeral_container(c: &mut EphemeralContainer) {
    container_defaults!(c);
}

fn volume(v: &mut Volume) {
    let has_source = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|m| m.keys().any(|k| k != "name")))
        .unwrap_or(true);
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    const MODE: i32 = 0o644;
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(MODE);
    }
    if let Some(s) = &mut v.config_map {
        s.default_mode.get_or_insert(MODE);
    }
    if let Some(s) = &mut v.downward_api {
        s.default_mode.get_or_insert(MODE);
    }
    if let Some(s) = &mut v.projected {
        s.default_mode.get_or_insert(MODE);
        for source in s.sources.iter_mut().flatten() {
            if let Some(token) = &mut source.service_account_token {
                token.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(h) = &mut v.host_path {
        h.type_.get_or_insert_with(String::new);
    }
}

/// `SetDefaults_PodSpec` and what it implies for containers and volumes.
pub fn pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, "Always");
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    // v1 conversion keeps the deprecated serviceAccount in step with serviceAccountName
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.service_account_name = spec.service_account.clone().filter(|s| !s.is_empty());
    }
    spec.service_account = spec.service_account_name.clone();
    spec.containers.iter_mut().for_each(container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(container);
    spec.ephemeral_containers
        .iter_mut()
        .flatten()
        .for_each(ephemeral_container);
    spec.volumes.iter_mut().flatten().for_each(volume);
}

fn pod_template(template: &mut PodTemplateSpec, shape: &mut Shape, pointer: &str) {
    template.metadata.get_or_insert_with(Default::default);
    shape.ensure(format!("{pointer}/metadata/creationTimestamp"), Value::Null);
    pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// Deployment (`apps/v1`): replicas, strategy, history and deadline, pod template.
pub fn deployment(d: &mut Deployment, shape: &mut Shape, _create: bool) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    set_if_empty(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    pod_template(&mut spec.template, shape, "/spec/template");
    d.status.get_or_insert_with(DeploymentStatus::default);
}

/// Rollout (`slipway.dev/v1alpha1`): the Rollout's own defaults
/// ([`slipway_rollout::defaults`]), and the pod template as a Deployment's. The status is
/// left to the controller (a new Rollout has none, as a custom resource has none).
pub fn rollout(r: &mut slipway_rollout::Rollout, shape: &mut Shape, _create: bool) {
    slipway_rollout::defaults::rollout(r);
    pod_template(&mut r.spec.template, shape, "/spec/template");
}

/// ReplicaSet (`apps/v1`): replicas 1, pod template.
pub fn replica_set(rs: &mut ReplicaSet, shape: &mut Shape, _create: bool) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    pod_template(
        spec.template.get_or_insert_with(Default::default),
        shape,
        "/spec/template",
    );
    rs.status.get_or_insert_with(ReplicaSetStatus::default);
}

fn requests_from_limits(c: &mut Container) {
    let Some(resources) = &mut c.resources else {
        return;
    };
    let Some(limits) = &resources.limits else {
        return;
    };
    let requests = resources.requests.get_or_insert_with(Default::default);
    for (name, q) in limits {
        requests.entry(name.clone()).or_insert_with(|| q.clone());
    }
}

fn quantity_nanos(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.nanos)
}

/// The pod's QoS class, from its containers' CPU and memory requests and limits.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.as_ref();
        let limits = res.and_then(|r| r.limits.as_ref());
        let requests = res.and_then(|r| r.requests.as_ref());
        for name in ["cpu", "memory"] {
            let limit = quantity_nanos(limits.and_then(|l| l.get(name)));
            let request = quantity_nanos(requests.and_then(|r| r.get(name)));
            if limit != 0 || request != 0 {
                any = true;
            }
            if limit == 0 || (request != 0 && request != limit) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn tolerates(tolerations: &[Toleration], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let t_key = t.key.as_deref().unwrap_or("");
        let key_ok = t_key == key || (t_key.is_empty() && t.operator.as_deref() == Some("Exists"));
        let effect_ok = matches!(t.effect.as_deref(), None | Some("") | Some("NoExecute"));
        key_ok && effect_ok
    })
}

/// Pod: `SetDefaults_Pod`, the pod spec, and on create what the registry and the default
/// admission plugins add (service account, not-ready/unreachable tolerations, priority,
/// status `Pending` with the QoS class when no phase is set).
pub fn pod(p: &mut Pod, _shape: &mut Shape, create: bool) {
    let spec = p.spec.get_or_insert_with(Default::default);
    pod_spec(spec);
    spec.containers.iter_mut().for_each(requests_from_limits);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(requests_from_limits);
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    if !create {
        return;
    }
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.service_account_name = Some("default".into());
        spec.service_account = Some("default".into());
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerates(tolerations, key) {
            tolerations.push(Toleration {
                effect: Some("NoExecute".into()),
                key: Some(key.into()),
                operator: Some("Exists".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
    if spec.priority_class_name.as_deref().unwrap_or("").is_empty() {
        spec.priority.get_or_insert(0);
    }
    set_if_empty(&mut spec.preemption_policy, "PreemptLowerPriority");
    let qos = qos_class(spec);
    let status = p.status.get_or_insert_with(PodStatus::default);
    if status.phase.as_deref().unwrap_or("").is_empty() {
        status.phase = Some("Pending".into());
        status.qos_class = Some(qos.into());
    }
}

/// Service: type, session affinity, port protocol and target port, traffic policies.
pub fn service(s: &mut Service, _shape: &mut Shape, _create: bool) {
    let spec = s.spec.get_or_insert_with(Default::default);
    set_if_empty(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(10800),
                    }),
                });
            }
        }
        _ => {}
    }
    set_if_empty(&mut spec.type_, "ClusterIP");
    for port in spec.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let service_type = spec.type_.clone().unwrap_or_default();
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP"
            && spec
                .external_ips
                .as_ref()
                .is_some_and(|ips| !ips.is_empty()));
    if externally_accessible {
        set_if_empty(&mut spec.external_traffic_policy, "Cluster");
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(
            service_type.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer"
        )
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if service_type == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    let status = s.status.get_or_insert_with(ServiceStatus::default);
    status
        .load_balancer
        .get_or_insert_with(LoadBalancerStatus::default);
}

/// Namespace: the `kubernetes.io/metadata.name` label, phase `Active`, and on create the
/// `kubernetes` finalizer.
pub fn namespace(ns: &mut Namespace, _shape: &mut Shape, create: bool) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    if create {
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push("kubernetes".into());
        }
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_if_empty(&mut status.phase, "Active");
}

/// Secret: type `Opaque`; `stringData` merged into `data` (and dropped), as on write.
pub fn secret(s: &mut Secret, _shape: &mut Shape, _create: bool) {
    set_if_empty(&mut s.type_, "Opaque");
    if let Some(string_data) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// ConfigMap: no defaults.
pub fn config_map(_c: &mut ConfigMap, _shape: &mut Shape, _create: bool) {}

/// Endpoints: port protocol `TCP`.
pub fn endpoints(e: &mut Endpoints, _shape: &mut Shape, _create: bool) {
    for subset in e.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            set_if_empty(&mut port.protocol, "TCP");
        }
    }
}

/// EndpointSlice: port name `""` and protocol `TCP`.
pub fn endpoint_slice(e: &mut EndpointSlice, _shape: &mut Shape, _create: bool) {
    for port in e.ports.iter_mut().flatten() {
        port.name.get_or_insert_with(String::new);
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
}

/// Event: no defaults; the fields Go always prints are added.
pub fn event(_e: &mut Event, shape: &mut Shape, _create: bool) {
    shape.ensure("/eventTime", Value::Null);
    shape.ensure("/firstTimestamp", Value::Null);
    shape.ensure("/lastTimestamp", Value::Null);
    shape.ensure("/reportingComponent", Value::String(String::new()));
    shape.ensure("/reportingInstance", Value::String(String::new()));
    shape.ensure("/source", Value::Object(Default::default()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        let table = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("k8spatterns/random-generator:1.0", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:2", "IfNotPresent"),
            ("registry.example.com:443/team/app:latest", "Always"),
            ("nginx@sha256:0123456789abcdef", "IfNotPresent"),
            ("nginx:1@sha256:0123", "IfNotPresent"),
            ("", "IfNotPresent"),
            ("Nginx", "IfNotPresent"),
        ];
        for (image, want) in table {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn shape_inserts_only_missing_fields_under_existing_parents() {
        let mut v = serde_json::json!({"a": {"b": 1}});
        let mut s = Shape::default();
        s.ensure("/a/c", Value::Null);
        s.ensure("/a/b", Value::Null);
        s.ensure("/x/y", Value::Null);
        s.ensure("/top", Value::Bool(true));
        s.apply(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": {"b": 1, "c": null}, "top": true})
        );
    }
}
