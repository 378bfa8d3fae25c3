//! Decoding: type checks against `info`, a typed round trip through the k8s-openapi struct of
//! the kind (which drops unknown fields as Kubernetes does), unknown-field reporting, quantity
//! canonicalisation, and defaulting.

use crate::defaults;
use crate::quantity::{self, QuantityError};
use crate::{Decoded, FieldValidation};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use slipway_core::{ApiError, ResourceInfo};
use slipway_rollout::Rollout;

/// What the request says it is: `apiVersion` and `kind` after filling gaps from the URL.
struct DataKind {
    api_version: String,
    kind: String,
}

impl DataKind {
    /// The version part of `apiVersion` (`v1` for `apps/v1`).
    fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, v)| v)
    }
}

fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads `apiVersion`/`kind`, filling missing ones from `info` as the API server's decoder
/// does with the URL's group/version/kind, and checks them against `info`.
fn check_type(info: &ResourceInfo, body: &Map<String, Value>) -> Result<DataKind, ApiError> {
    let field = |name: &str| -> Result<String, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{name} of type string",
                go_json_type(other)
            ))),
        }
    };
    let mut api_version = field("apiVersion")?;
    let mut kind = field("kind")?;
    if kind.is_empty() {
        kind = info.kind.to_string();
    }
    if api_version.is_empty() {
        api_version = info.api_version();
    }
    let expected = info.api_version();
    if api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    let data = DataKind { api_version, kind };
    if data.kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the kind in the data ({}) does not match the expected kind ({})",
            data.kind,
            data.version(),
            info.kind,
            data.kind,
            info.kind
        )));
    }
    Ok(data)
}

fn cannot_handle(info: &ResourceInfo, data: &DataKind, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: {detail}",
        data.kind,
        data.version(),
        info.kind
    ))
}

/// Decodes `body` as `info`'s kind; see [`crate::decode`].
pub fn decode(
    info: &ResourceInfo,
    body: Value,
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            go_json_type(&body)
        )));
    };
    let data = check_type(info, &map)?;
    map.insert("apiVersion".into(), Value::String(data.api_version.clone()));
    map.insert("kind".into(), Value::String(data.kind.clone()));
    if !info.namespaced
        && let Some(Value::Object(meta)) = map.get_mut("metadata")
    {
        meta.remove("namespace");
    }
    let mut body = Value::Object(map);
    normalize_quantities(info.kind, &mut body)
        .map_err(|e| cannot_handle(info, &data, &e.to_string()))?;
    let is_create = slipway_core::meta::resource_version(&body).is_empty();
    let ctx = Context {
        info,
        data: &data,
        validation,
        is_create,
    };
    match info.kind {
        "Namespace" => ctx.typed::<Namespace>(body, defaults::namespace),
        "Pod" => ctx.typed::<Pod>(body, defaults::pod),
        "Service" => ctx.typed::<Service>(body, defaults::service),
        "Endpoints" => ctx.typed::<Endpoints>(body, defaults::endpoints),
        "Event" => ctx.typed::<Event>(body, defaults::event),
        "ConfigMap" => ctx.typed::<ConfigMap>(body, defaults::config_map),
        "Secret" => ctx.typed::<Secret>(body, defaults::secret),
        "Deployment" => ctx.typed::<Deployment>(body, defaults::deployment),
        "ReplicaSet" => ctx.typed::<ReplicaSet>(body, defaults::replica_set),
        "EndpointSlice" => ctx.typed::<EndpointSlice>(body, defaults::endpoint_slice),
        "Rollout" => ctx.typed::<Rollout>(body, defaults::rollout),
        // A kind without a typed schema here passes through unchanged.
        _ => Ok(Decoded {
            object: body,
            warnings: Vec::new(),
        }),
    }
}

struct Context<'a> {
    info: &'a ResourceInfo,
    data: &'a DataKind,
    validation: FieldValidation,
    is_create: bool,
}

/// Defaulting for one kind: mutates the typed object, then fixes up its JSON form.
pub type Defaulter<T> = fn(&mut T, &mut defaults::Shape, bool);

impl Context<'_> {
    fn typed<T: DeserializeOwned + Serialize>(
        &self,
        body: Value,
        default: Defaulter<T>,
    ) -> Result<Decoded, ApiError> {
        let absent_required: Vec<&str> = NULL_WHEN_ABSENT
            .iter()
            .filter(|(kind, pointer)| {
                *kind == self.info.kind && body.pointer(pointer).is_none_or(Value::is_null)
            })
            .map(|(_, pointer)| *pointer)
            .collect();
        // Decoding without tracking the path is much cheaper; only a body that fails is
        // decoded again with the path, for the error message.
        let mut typed: T = match T::deserialize(&body) {
            Ok(typed) => typed,
            Err(_) => serde_path_to_error::deserialize::<_, T>(&body).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.inner().to_string();
                let detail = if path.is_empty() || path == "." {
                    inner
                } else {
                    format!("{path}: {inner}")
                };
                cannot_handle(self.info, self.data, &detail)
            })?,
        };
        // One encoding serves both the unknown-field check and the result: the defaulted
        // object is compared with the body first. Defaulting only adds fields to most kinds;
        // where it found a field missing (a default may remove one, as a Service's
        // `sessionAffinityConfig`), the check is made again, exactly, against the body's own
        // round trip.
        let mut shape = defaults::Shape::default();
        default(&mut typed, &mut shape, self.is_create);
        let mut object = serde_json::to_value(&typed)
            .map_err(|e| ApiError::internal(format!("encoding {}: {e}", self.info.kind)))?;
        // The Rollout types leave empty lists out when they serialise (k8s-openapi keeps
        // them), so an empty list the round trip dropped is a known field there.
        let empty_lists_known = self.info.kind == "Rollout";
        let mut unknown = Vec::new();
        unknown_fields(
            &body,
            &object,
            empty_lists_known,
            &mut String::new(),
            &mut unknown,
        );
        if !unknown.is_empty() {
            let undefaulted: T = T::deserialize(&body)
                .map_err(|e| cannot_handle(self.info, self.data, &e.to_string()))?;
            let round_trip = serde_json::to_value(&undefaulted)
                .map_err(|e| ApiError::internal(format!("encoding {}: {e}", self.info.kind)))?;
            unknown.clear();
            unknown_fields(
                &body,
                &round_trip,
                empty_lists_known,
                &mut String::new(),
                &mut unknown,
            );
        }
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            let messages: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect();
            match self.validation {
                FieldValidation::Strict => {
                    return Err(cannot_handle(
                        self.info,
                        self.data,
                        &format!("strict decoding error: {}", messages.join(", ")),
                    ));
                }
                FieldValidation::Warn => warnings = messages,
                FieldValidation::Ignore => {}
            }
        }
        shape.apply(&mut object);
        for pointer in absent_required {
            remove_pointer(&mut object, pointer);
        }
        Ok(Decoded { object, warnings })
    }
}

/// Fields the typed structs treat as required (and so fill with an empty value when
/// absent) but Kubernetes leaves unset, so validation can tell "missing" from "empty".
const NULL_WHEN_ABSENT: &[(&str, &str)] = &[
    ("Deployment", "/spec/selector"),
    ("ReplicaSet", "/spec/selector"),
];

fn remove_pointer(object: &mut Value, pointer: &str) {
    if let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(Value::Object(map)) = object.pointer_mut(parent)
    {
        map.remove(key);
    }
}

/// Appends to `out` every path present (non-null) in `input` but absent from `known`;
/// with `empty_lists_known`, an empty list absent from `known` does not count.
fn unknown_fields(
    input: &Value,
    known: &Value,
    empty_lists_known: bool,
    path: &mut String,
    out: &mut Vec<String>,
) {
    match (input, known) {
        (Value::Object(fields), Value::Object(known_fields)) => {
            for (key, value) in fields {
                if value.is_null() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match known_fields.get(key) {
                    Some(k) if !k.is_null() => {
                        unknown_fields(value, k, empty_lists_known, path, out)
                    }
                    _ if empty_lists_known && value.as_array().is_some_and(Vec::is_empty) => {}
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(items), Value::Array(known_items)) => {
            for (i, (item, k)) in items.iter().zip(known_items).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                unknown_fields(item, k, empty_lists_known, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn for_each_in_array(
    parent: Option<&mut Value>,
    mut f: impl FnMut(&mut Value) -> QResult,
) -> QResult {
    if let Some(Value::Array(items)) = parent {
        for item in items {
            f(item)?;
        }
    }
    Ok(())
}

type QResult = Result<(), QuantityError>;

fn resource_list(list: Option<&mut Value>) -> QResult {
    if let Some(Value::Object(m)) = list {
        for q in m.values_mut() {
            quantity::canonicalize_json(q)?;
        }
    }
    Ok(())
}

fn requirements(req: Option<&mut Value>) -> QResult {
    if let Some(Value::Object(m)) = req {
        resource_list(m.get_mut("limits"))?;
        resource_list(m.get_mut("requests"))?;
    }
    Ok(())
}

fn divisor(holder: &mut Value) -> QResult {
    if let Some(d) = holder.pointer_mut("/resourceFieldRef/divisor") {
        quantity::canonicalize_json(d)?;
    }
    Ok(())
}

fn pod_spec_quantities(spec: Option<&mut Value>) -> QResult {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return Ok(());
    };
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for_each_in_array(spec.get_mut(key), |c| {
            requirements(c.get_mut("resources"))?;
            for_each_in_array(c.get_mut("env"), |e| match e.get_mut("valueFrom") {
                Some(v) => divisor(v),
                None => Ok(()),
            })
        })?;
    }
    requirements(spec.get_mut("resources"))?;
    resource_list(spec.get_mut("overhead"))?;
    for_each_in_array(spec.get_mut("volumes"), |v| {
        if let Some(q) = v.pointer_mut("/emptyDir/sizeLimit") {
            quantity::canonicalize_json(q)?;
        }
        requirements(v.pointer_mut("/ephemeral/volumeClaimTemplate/spec/resources"))?;
        for_each_in_array(v.pointer_mut("/downwardAPI/items"), divisor)?;
        for_each_in_array(v.pointer_mut("/projected/sources"), |s| {
            for_each_in_array(s.pointer_mut("/downwardAPI/items"), divisor)
        })
    })
}

fn pod_status_quantities(status: Option<&mut Value>) -> QResult {
    let Some(status) = status.filter(|s| s.is_object()) else {
        return Ok(());
    };
    for key in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        for_each_in_array(status.get_mut(key), |c| {
            resource_list(c.get_mut("allocatedResources"))?;
            requirements(c.get_mut("resources"))
        })?;
    }
    Ok(())
}

/// Turns every quantity of the kind into its canonical string (numbers are accepted, as
/// Kubernetes does), failing on malformed ones.
fn normalize_quantities(kind: &str, body: &mut Value) -> QResult {
    match kind {
        "Pod" => {
            pod_spec_quantities(body.get_mut("spec"))?;
            pod_status_quantities(body.get_mut("status"))
        }
        "Deployment" | "ReplicaSet" | "Rollout" => {
            pod_spec_quantities(body.pointer_mut("/spec/template/spec"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_field_paths_are_rendered_as_kubernetes() {
        let input =
            json!({"a": {"b": 1, "x": 2, "n": null}, "l": [{"k": 1}, {"k": 1, "z": {}}], "top": 1});
        let known = json!({"a": {"b": 1}, "l": [{"k": 1}, {"k": 1}]});
        let mut out = Vec::new();
        unknown_fields(&input, &known, false, &mut String::new(), &mut out);
        assert_eq!(out, vec!["a.x", "l[1].z", "top"]);
        let mut out = Vec::new();
        let input = json!({"steps": [], "x": [], "a": {"b": []}});
        unknown_fields(
            &input,
            &json!({"a": {}}),
            true,
            &mut String::new(),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        unknown_fields(
            &input,
            &json!({"a": {}}),
            false,
            &mut String::new(),
            &mut out,
        );
        assert_eq!(out, vec!["steps", "x", "a.b"]);
    }
}
