//! A container's environment as the kubelet builds it: `envFrom` sources first, then `env`
//! (a later name wins), with `valueFrom` field references and ConfigMap/Secret keys read
//! through the API, and `$(VAR)` references in values expanded against earlier entries.
//! Service environment variables ([`service_env`], Kubernetes' "service links") come first,
//! so `env` can refer to them and overrides them.

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Container, EnvVarSource, ObjectFieldSelector};
use serde_json::Value;
use slipway_client::Client;
use slipway_core::{meta, resources};
use std::collections::HashMap;
use std::sync::Arc;

/// Looks up ConfigMaps and Secrets of one namespace (each read at most once).
pub struct Sources<'a, C: Client> {
    client: &'a C,
    namespace: &'a str,
    config_maps: HashMap<String, Option<Arc<Value>>>,
    secrets: HashMap<String, Option<Arc<Value>>>,
}

impl<'a, C: Client> Sources<'a, C> {
    pub fn new(client: &'a C, namespace: &'a str) -> Self {
        Sources {
            client,
            namespace,
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    async fn object(&mut self, secret: bool, name: &str) -> Result<Option<Arc<Value>>, String> {
        let cache = if secret {
            &mut self.secrets
        } else {
            &mut self.config_maps
        };
        if let Some(v) = cache.get(name) {
            return Ok(v.clone());
        }
        let resource = if secret { "secrets" } else { "configmaps" };
        let info = resources::lookup("", "v1", resource).expect("core resources are served");
        let found = self
            .client
            .get(info, Some(self.namespace), name)
            .await
            .map_err(|e| format!("reading {resource} {name:?}: {}", e.message))?;
        cache.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// The string data of a ConfigMap or Secret (Secret values decoded), or `None` if it
    /// does not exist.
    async fn data(
        &mut self,
        secret: bool,
        name: &str,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let Some(obj) = self.object(secret, name).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        if let Some(map) = obj.get("data").and_then(Value::as_object) {
            for (k, v) in map {
                let Some(s) = v.as_str() else { continue };
                let value = if secret {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| format!("secret {name:?} key {k:?} is not base64: {e}"))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    s.to_string()
                };
                out.push((k.clone(), value));
            }
        }
        Ok(Some(out))
    }
}

/// The value of a `fieldRef` (the downward API fields the kubelet resolves for env).
pub fn field_value(pod: &Value, pod_ip: &str, sel: &ObjectFieldSelector) -> Result<String, String> {
    let path = sel.field_path.as_str();
    let bracketed = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    let value = match path {
        "metadata.name" => meta::name(pod).to_string(),
        "metadata.namespace" => meta::namespace(pod).to_string(),
        "metadata.uid" => meta::uid(pod).to_string(),
        "spec.nodeName" => crate::NODE_NAME.to_string(),
        "spec.serviceAccountName" => pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        "status.podIP" => pod_ip.to_string(),
        "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_string(),
        _ => {
            if let Some(k) = bracketed("metadata.labels['") {
                meta::labels(pod).get(&k).cloned().unwrap_or_default()
            } else if let Some(k) = bracketed("metadata.annotations['") {
                meta::annotations(pod).get(&k).cloned().unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldRef fieldPath {path:?}"));
            }
        }
    };
    Ok(value)
}

async fn source_value<C: Client>(
    src: &EnvVarSource,
    pod: &Value,
    pod_ip: &str,
    sources: &mut Sources<'_, C>,
) -> Result<Option<String>, String> {
    if let Some(f) = &src.field_ref {
        return field_value(pod, pod_ip, f).map(Some);
    }
    if src.resource_field_ref.is_some() {
        return Err("resourceFieldRef is not supported by the process runtime".into());
    }
    let (secret, name, key, optional) = match (&src.config_map_key_ref, &src.secret_key_ref) {
        (Some(r), _) => (false, &r.name, &r.key, r.optional.unwrap_or(false)),
        (None, Some(r)) => (true, &r.name, &r.key, r.optional.unwrap_or(false)),
        (None, None) => return Ok(None),
    };
    let kind = if secret { "secret" } else { "configmap" };
    match sources.data(secret, name).await? {
        None if optional => Ok(None),
        None => Err(format!("{kind} \"{name}\" not found")),
        Some(data) => match data.into_iter().find(|(k, _)| k == key) {
            Some((_, v)) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {key} in {kind} {}/{name}",
                sources.namespace
            )),
        },
    }
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    env.retain(|(k, _)| *k != name);
    env.push((name, value));
}

/// The container's environment (`services`, the [`service_env`] of the pod, then `envFrom`,
/// then `env`), in order, without the image's own variables. A name defined again replaces
/// the earlier definition, so the pod's own variables win over service variables. Errors are
/// the kubelet's `CreateContainerConfigError` messages.
pub async fn container_env<C: Client>(
    client: &C,
    pod: &Value,
    pod_ip: &str,
    container: &Container,
    services: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let namespace = meta::namespace(pod).to_string();
    let mut sources = Sources::new(client, &namespace);
    let mut env: Vec<(String, String)> = services.to_vec();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (false, &r.name, r.optional.unwrap_or(false)),
            (None, Some(r)) => (true, &r.name, r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        match sources.data(secret, name).await? {
            Some(data) => {
                for (k, v) in data {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => {
                return Err(format!(
                    "{} \"{name}\" not found",
                    if secret { "secret" } else { "configmap" }
                ));
            }
        }
    }
    // `env` values may refer to variables defined before them (envFrom included).
    let mut literal: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            Some(src) => match source_value(src, pod, pod_ip, &mut sources).await? {
                Some(v) => v,
                None => continue,
            },
            None => {
                let raw = var.value.clone().unwrap_or_default();
                let base: Vec<(String, String)> =
                    env.iter().chain(literal.iter()).cloned().collect();
                slipway_images::expand_env(&base, &[(var.name.clone(), raw)])
                    .pop()
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            }
        };
        set(&mut literal, var.name.clone(), value);
    }
    for (k, v) in literal {
        set(&mut env, k, v);
    }
    Ok(env)
}

/// A Service name as an environment variable prefix: upper case, `-` as `_`.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The ClusterIP of a Service, or `None` for a headless Service (`None`) or one without.
pub fn cluster_ip(svc: &Value) -> Option<&str> {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// `ip:port`, with brackets around an IPv6 address.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The variables of one Service, as the kubelet names them.
fn one_service_env(svc: &Value, ip: &str, out: &mut Vec<(String, String)>) {
    let prefix = env_name(meta::name(svc));
    let ports: Vec<&Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
    let number = |p: &Value| p.get("port").and_then(Value::as_i64).unwrap_or(0);
    if let Some(first) = ports.first() {
        out.push((format!("{prefix}_SERVICE_PORT"), number(first).to_string()));
    }
    for p in &ports {
        if let Some(name) = p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                number(p).to_string(),
            ));
        }
    }
    // Docker links: the first port also as `{SVC}_PORT`.
    for (i, p) in ports.iter().enumerate() {
        let protocol = p
            .get("protocol")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("TCP");
        let lower = protocol.to_ascii_lowercase();
        let url = format!("{lower}://{}", host_port(ip, number(p)));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!(
            "{prefix}_PORT_{}_{}",
            number(p),
            protocol.to_ascii_uppercase()
        );
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), number(p).to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
}

/// The Service environment variables of a pod (Kubernetes' "service links"), from the
/// Services of the cluster (any namespaces; the others are ignored):
///
/// * every Service of the pod's namespace that has a ClusterIP (headless ones are skipped),
///   unless the pod sets `enableServiceLinks: false`;
/// * the `kubernetes` Service of `default`, when it exists, whatever `enableServiceLinks`
///   says (as the kubelet); a Service of the pod's own namespace with the same name wins.
///
/// For a Service `my-svc` (prefix `MY_SVC`): `MY_SVC_SERVICE_HOST`, `MY_SVC_SERVICE_PORT`
/// (first port), `MY_SVC_SERVICE_PORT_<NAME>` per named port, `MY_SVC_PORT` (first port as
/// `tcp://ip:port`) and per port `MY_SVC_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`,
/// `_ADDR`. Services are taken in name order.
pub fn service_env(pod: &Value, services: &[Arc<Value>]) -> Vec<(String, String)> {
    let namespace = meta::namespace(pod);
    let links = pod
        .pointer("/spec/enableServiceLinks")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut chosen: std::collections::BTreeMap<&str, &Value> = std::collections::BTreeMap::new();
    for svc in services {
        if cluster_ip(svc).is_none() {
            continue;
        }
        let (ns, name) = (meta::namespace(svc), meta::name(svc));
        if ns == namespace && links {
            chosen.insert(name, svc);
        } else if ns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(svc);
        }
    }
    let mut out = Vec::new();
    for svc in chosen.values() {
        if let Some(ip) = cluster_ip(svc) {
            one_service_env(svc, ip, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_refs() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}}});
        let f = |p: &str| {
            field_value(
                &pod,
                "127.128.0.5",
                &ObjectFieldSelector {
                    field_path: p.into(),
                    api_version: None,
                },
            )
        };
        assert_eq!(f("metadata.name").unwrap(), "p");
        assert_eq!(f("metadata.namespace").unwrap(), "ns");
        assert_eq!(f("metadata.uid").unwrap(), "u");
        assert_eq!(f("status.podIP").unwrap(), "127.128.0.5");
        assert_eq!(f("spec.nodeName").unwrap(), "slipway");
        assert_eq!(f("metadata.labels['app']").unwrap(), "x");
        assert!(f("status.phase").is_err());
    }

    fn service(ns: &str, name: &str, ip: &str, ports: Value) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
    }

    fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn service_links_are_named_as_the_kubelet_names_them() {
        let pod = json!({"metadata": {"namespace": "shop", "name": "p"}, "spec": {}});
        let services = vec![service(
            "shop",
            "my-backend",
            "10.96.0.10",
            json!([
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            ]),
        )];
        let env = service_env(&pod, &services);
        let expected = [
            ("MY_BACKEND_SERVICE_HOST", "10.96.0.10"),
            ("MY_BACKEND_SERVICE_PORT", "80"),
            ("MY_BACKEND_SERVICE_PORT_HTTP", "80"),
            ("MY_BACKEND_SERVICE_PORT_DNS_UDP", "53"),
            ("MY_BACKEND_PORT", "tcp://10.96.0.10:80"),
            ("MY_BACKEND_PORT_80_TCP", "tcp://10.96.0.10:80"),
            ("MY_BACKEND_PORT_80_TCP_PROTO", "tcp"),
            ("MY_BACKEND_PORT_80_TCP_PORT", "80"),
            ("MY_BACKEND_PORT_80_TCP_ADDR", "10.96.0.10"),
            ("MY_BACKEND_PORT_53_UDP", "udp://10.96.0.10:53"),
            ("MY_BACKEND_PORT_53_UDP_PROTO", "udp"),
            ("MY_BACKEND_PORT_53_UDP_PORT", "53"),
            ("MY_BACKEND_PORT_53_UDP_ADDR", "10.96.0.10"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);

        // An unnamed single port: no `_SERVICE_PORT_<NAME>`; no protocol means TCP.
        let env = service_env(
            &pod,
            &[service(
                "shop",
                "cache",
                "10.96.0.11",
                json!([{"port": 6379}]),
            )],
        );
        assert_eq!(lookup(&env, "CACHE_SERVICE_PORT"), Some("6379"));
        assert_eq!(lookup(&env, "CACHE_PORT"), Some("tcp://10.96.0.11:6379"));
        assert!(
            !env.iter()
                .any(|(k, _)| k.starts_with("CACHE_SERVICE_PORT_"))
        );
    }

    #[test]
    fn only_the_pods_namespace_headless_skipped_and_kubernetes_only_when_it_exists() {
        let pod = json!({"metadata": {"namespace": "shop", "name": "p"}, "spec": {}});
        let port = json!([{"port": 80}]);
        let mut services = vec![
            service("shop", "b", "10.96.0.2", port.clone()),
            service("shop", "a", "10.96.0.1", port.clone()),
            service("shop", "headless", "None", port.clone()),
            service("shop", "no-ip", "", port.clone()),
            service("other", "elsewhere", "10.96.0.3", port.clone()),
        ];
        let env = service_env(&pod, &services);
        let hosts: Vec<&str> = env
            .iter()
            .filter(|(k, _)| k.ends_with("_SERVICE_HOST"))
            .map(|(k, _)| k.as_str())
            .collect();
        // Name order; no invented `kubernetes` Service.
        assert_eq!(hosts, vec!["A_SERVICE_HOST", "B_SERVICE_HOST"]);

        services.push(service(
            "default",
            "kubernetes",
            "10.96.0.9",
            json!([{"name": "https", "port": 443}]),
        ));
        let env = service_env(&pod, &services);
        assert_eq!(lookup(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.9"));
        assert_eq!(lookup(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(
            lookup(&env, "KUBERNETES_PORT_443_TCP"),
            Some("tcp://10.96.0.9:443")
        );

        // enableServiceLinks: false keeps only the `kubernetes` Service (as the kubelet).
        let no_links = json!({"metadata": {"namespace": "shop", "name": "p"}, "spec": {"enableServiceLinks": false}});
        let env = service_env(&no_links, &services);
        let prefixes: std::collections::BTreeSet<&str> = env
            .iter()
            .map(|(k, _)| k.split('_').next().unwrap())
            .collect();
        assert_eq!(prefixes.into_iter().collect::<Vec<_>>(), vec!["KUBERNETES"]);
        assert!(service_env(&no_links, &services[..5]).is_empty());

        // A `kubernetes` Service of the pod's own namespace wins over default's.
        services.push(service("shop", "kubernetes", "10.96.0.7", port));
        let env = service_env(&pod, &services);
        assert_eq!(lookup(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.7"));
    }

    #[tokio::test]
    async fn the_pods_env_wins_and_can_refer_to_service_variables() {
        let client = crate::process::testing::FakeClient::with(vec![(
            "configmaps",
            json!({"metadata": {"namespace": "shop", "name": "cm"}, "data": {"BACKEND_SERVICE_PORT": "9999"}}),
        )]);
        let pod = json!({"metadata": {"namespace": "shop", "name": "p"}, "spec": {}});
        let services = service_env(
            &pod,
            &[service(
                "shop",
                "backend",
                "10.96.0.10",
                json!([{"port": 80}]),
            )],
        );
        let container: Container = serde_json::from_value(json!({
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "cm"}}],
            "env": [
                {"name": "UPSTREAM", "value": "http://$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT)"},
                {"name": "BACKEND_SERVICE_HOST", "value": "override"},
            ]
        }))
        .unwrap();
        let env = container_env(&client, &pod, "127.128.0.2", &container, &services)
            .await
            .unwrap();
        assert_eq!(lookup(&env, "BACKEND_SERVICE_HOST"), Some("override"));
        assert_eq!(lookup(&env, "BACKEND_SERVICE_PORT"), Some("9999"));
        assert_eq!(lookup(&env, "UPSTREAM"), Some("http://10.96.0.10:9999"));
        assert_eq!(lookup(&env, "BACKEND_PORT"), Some("tcp://10.96.0.10:80"));
        // Each name once; service variables come before the pod's own.
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let pos = |n: &str| names.iter().position(|k| *k == n).unwrap();
        assert!(pos("BACKEND_PORT") < pos("UPSTREAM"));
    }
}
