//! Validation of decoded objects for create and update, as Kubernetes 1.33's
//! `pkg/apis/*/validation` and registry strategies do it, with the same field paths, order
//! and messages.

mod apps;
mod core_kinds;
pub mod meta;
mod pod;
mod rollout;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slipway_core::{ApiError, FieldError, ResourceInfo};
use std::fmt;

/// A field path in Kubernetes notation (`spec.template.spec.containers[0].name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A top-level field.
    pub fn new(name: &str) -> Path {
        Path(name.to_string())
    }

    /// `<self>.<name>`.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// `<self>[i]`.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// `<self>[key]` (map keys are not quoted).
    pub fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Path> for String {
    fn from(p: Path) -> String {
        p.0
    }
}

impl From<&Path> for String {
    fn from(p: &Path) -> String {
        p.0.clone()
    }
}

/// The errors found so far.
pub type Errors = Vec<FieldError>;

/// Recording name-check results.
pub trait ErrorsExt {
    /// One `Invalid value: "<value>": <message>` error at `path` for each message.
    fn invalid_each<P: Into<String> + Clone>(
        &mut self,
        path: P,
        value: &str,
        messages: Vec<String>,
    );
}

impl ErrorsExt for Errors {
    fn invalid_each<P: Into<String> + Clone>(
        &mut self,
        path: P,
        value: &str,
        messages: Vec<String>,
    ) {
        for msg in messages {
            self.push(FieldError::invalid(
                path.clone(),
                crate::gofmt::quote(value),
                msg,
            ));
        }
    }
}

/// `must be greater than or equal to 0` for negative values.
pub fn non_negative(value: i64, path: &Path, errs: &mut Errors) {
    if value < 0 {
        errs.push(FieldError::invalid(
            path,
            value.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// `field is immutable` when `new != old`; `render` prints the new value.
pub fn immutable<T: PartialEq>(
    new: &T,
    old: &T,
    path: &Path,
    render: impl Fn(&T) -> String,
    errs: &mut Errors,
) {
    if new != old {
        errs.push(FieldError::invalid(path, render(new), "field is immutable"));
    }
}

fn parse<T: DeserializeOwned>(info: &ResourceInfo, v: &Value) -> Result<T, ApiError> {
    // Straight from the tree (no copy of it first), without `metadata.managedFields`.
    T::deserialize(WithoutManagedFields::root(v)).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
    })
}

/// An object as a deserializer that leaves out `metadata.managedFields`: no validation reads
/// them, and decoding a stored object's entries was most of the cost of its typed parse.
/// Everything else deserializes exactly as from the tree itself.
struct WithoutManagedFields<'a> {
    value: &'a Value,
    /// Whether `value` is the object's `metadata`.
    metadata: bool,
}

impl<'a> WithoutManagedFields<'a> {
    fn root(value: &'a Value) -> Self {
        WithoutManagedFields {
            value,
            metadata: false,
        }
    }
}

impl<'de> serde::Deserializer<'de> for WithoutManagedFields<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => visitor.visit_map(FilteredEntries {
                entries: map.iter(),
                value: None,
                metadata: self.metadata,
            }),
            other => serde::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            other => serde::Deserializer::deserialize_struct(other, name, fields, visitor),
        }
    }

    fn deserialize_map<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            other => serde::Deserializer::deserialize_map(other, visitor),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // The root and its metadata are structs; anything else is read as the tree reads it.
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

/// The entries of an object, without `managedFields` when it is the metadata; the root's
/// `metadata` is itself filtered.
struct FilteredEntries<'a> {
    entries: serde_json::map::Iter<'a>,
    /// The value of the key just read, and whether it is the root's `metadata`.
    value: Option<(&'a Value, bool)>,
    metadata: bool,
}

impl<'de> serde::de::MapAccess<'de> for FilteredEntries<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        for (key, value) in self.entries.by_ref() {
            if self.metadata && key == "managedFields" {
                continue;
            }
            self.value = Some((value, !self.metadata && key == "metadata"));
            let key = serde::de::value::BorrowedStrDeserializer::<serde_json::Error>::new(key);
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match self.value.take() {
            Some((value, true)) => seed.deserialize(WithoutManagedFields {
                value,
                metadata: true,
            }),
            Some((value, false)) => seed.deserialize(value),
            None => Err(serde::de::Error::custom("a value was read before its key")),
        }
    }
}

fn run<T: DeserializeOwned>(
    info: &ResourceInfo,
    new: &Value,
    old: Option<&Value>,
    check: impl Fn(&T, Option<&T>) -> Errors,
) -> Result<Errors, ApiError> {
    let new_typed: T = parse(info, new)?;
    let old_typed: Option<T> = old.map(|o| parse(info, o)).transpose()?;
    Ok(check(&new_typed, old_typed.as_ref()))
}

/// See [`crate::validate`].
pub fn validate(info: &ResourceInfo, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let errs = match info.kind {
        "Namespace" => run::<Namespace>(info, new, old, core_kinds::namespace)?,
        "Pod" => run::<Pod>(info, new, old, pod::pod)?,
        "Service" => run::<Service>(info, new, old, core_kinds::service)?,
        "Endpoints" => run::<Endpoints>(info, new, old, core_kinds::endpoints)?,
        "Event" => run::<Event>(info, new, old, core_kinds::event)?,
        "ConfigMap" => run::<ConfigMap>(info, new, old, core_kinds::config_map)?,
        "Secret" => run::<Secret>(info, new, old, core_kinds::secret)?,
        "Deployment" => run::<Deployment>(info, new, old, |n, o| {
            apps::deployment(n, o, has_selector(new))
        })?,
        "ReplicaSet" => run::<ReplicaSet>(info, new, old, |n, o| {
            apps::replica_set(n, o, has_selector(new))
        })?,
        "EndpointSlice" => run::<EndpointSlice>(info, new, old, core_kinds::endpoint_slice)?,
        "Rollout" => run::<slipway_rollout::Rollout>(info, new, old, rollout::rollout)?,
        _ => generic(info, new, old)?,
    };
    into_result(info, new, &errs)
}

/// 422 `Invalid` naming `new` with one cause per error, or `Ok` when there is none.
fn into_result(info: &ResourceInfo, new: &Value, errs: &Errors) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info, slipway_core::meta::name(new), errs))
    }
}

/// What a write to the `status` subresource is validated on: the metadata and the status.
/// The rest of the object is the stored one (the status strategies keep it), so it is not
/// even parsed.
#[derive(serde::Deserialize)]
struct StatusWrite<S> {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    status: Option<S>,
}

/// See [`crate::validate_status_update`].
pub fn validate_status_update(
    info: &ResourceInfo,
    new: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSetStatus};
    /// The metadata update checks, then the kind's status checks.
    fn check<S>(
        new: &StatusWrite<S>,
        old: Option<&StatusWrite<S>>,
        status: impl Fn(&S, &mut Errors),
    ) -> Errors {
        let mut errs = Errors::new();
        if let Some(old) = old {
            meta::object_meta_update(
                &new.metadata,
                &old.metadata,
                &Path::new("metadata"),
                &mut errs,
            );
        }
        if let Some(s) = &new.status {
            status(s, &mut errs);
        }
        errs
    }
    let errs = match info.kind {
        "Deployment" => run::<StatusWrite<DeploymentStatus>>(info, new, Some(old), |n, o| {
            check(n, o, apps::deployment_status)
        })?,
        "ReplicaSet" => run::<StatusWrite<ReplicaSetStatus>>(info, new, Some(old), |n, o| {
            check(n, o, apps::replica_set_status)
        })?,
        // The other kinds' status strategies check the metadata only (here: their status
        // has no checks of its own yet).
        _ => run::<StatusWrite<serde::de::IgnoredAny>>(info, new, Some(old), |n, o| {
            check(n, o, |_, _| {})
        })?,
    };
    into_result(info, new, &errs)
}

/// Whether the object carries `spec.selector`. The typed form cannot tell a missing selector
/// from an empty one, and Kubernetes reports them differently.
fn has_selector(obj: &Value) -> bool {
    obj.pointer("/spec/selector").is_some_and(|s| !s.is_null())
}

/// Kinds without a schema here: the API server's common metadata checks only.
fn generic(info: &ResourceInfo, new: &Value, old: Option<&Value>) -> Result<Errors, ApiError> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let meta_of = |v: &Value| -> Result<ObjectMeta, ApiError> {
        let m = v
            .get("metadata")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        serde_json::from_value(m).map_err(|e| ApiError::bad_request(format!("metadata: {e}")))
    };
    let new_meta = meta_of(new)?;
    let path = Path::new("metadata");
    let mut errs = Errors::new();
    match old {
        None => meta::object_meta(
            &new_meta,
            info.namespaced,
            meta::NameRule::PathSegment,
            &path,
            &mut errs,
        ),
        Some(old) => meta::object_meta_update(&new_meta, &meta_of(old)?, &path, &mut errs),
    }
    Ok(errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn pod_info() -> &'static ResourceInfo {
        slipway_core::resources::lookup("", "v1", "pods").expect("pods")
    }

    #[test]
    fn the_typed_parse_is_the_tree_s_own_without_managed_fields() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"},
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "r", "uid": "u", "controller": true}],
                "deletionGracePeriodSeconds": null},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
                     "nodeName": null},
            "status": {"phase": "Running", "managedFields": "kept: not metadata"}
        });
        let filtered: Pod = parse(pod_info(), &pod).expect("parses");
        let mut expected = Pod::deserialize(&pod).expect("parses");
        assert!(expected.metadata.managed_fields.take().is_some());
        assert_eq!(filtered, expected);
    }

    #[test]
    fn odd_shapes_and_type_errors_read_as_from_the_tree() {
        for bad in [
            json!({"metadata": {"name": 1}}),
            json!({"metadata": null, "spec": {"containers": []}}),
            json!({"metadata": {"name": "p"}, "spec": {"containers": "x"}}),
            json!({"metadata": [], "spec": {}}),
            json!("not an object"),
        ] {
            match (parse::<Pod>(pod_info(), &bad), Pod::deserialize(&bad)) {
                (Ok(filtered), Ok(direct)) => assert_eq!(filtered, direct, "{bad}"),
                (Err(filtered), Err(direct)) => assert!(
                    filtered.message.ends_with(&direct.to_string()),
                    "{bad}: {} vs {direct}",
                    filtered.message
                ),
                (filtered, direct) => panic!("{bad}: {filtered:?} vs {direct:?}"),
            }
        }
    }
}
