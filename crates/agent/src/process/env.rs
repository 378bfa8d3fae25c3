//! A container's environment as the kubelet builds it: `envFrom` sources first, then `env`
//! (a later name wins), with `valueFrom` field references and ConfigMap/Secret keys read
//! through the API, and `$(VAR)` references in values expanded against earlier entries.
//! Service environment variables are not injected (see docs/runtime.md).

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

/// The container's environment (`envFrom`, then `env`), in order, without the image's own
/// variables. Errors are the kubelet's `CreateContainerConfigError` messages.
pub async fn container_env<C: Client>(
    client: &C,
    pod: &Value,
    pod_ip: &str,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    let namespace = meta::namespace(pod).to_string();
    let mut sources = Sources::new(client, &namespace);
    let mut env: Vec<(String, String)> = Vec::new();
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
}
