//! Server-side printing: the `meta.k8s.io/v1` `Table` that kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the columns the real
//! kube-apiserver prints for each kind (priority 1 columns appear with `-o wide`).
//!
//! Like the real server, rows always carry the wide cells; kubectl hides priority-1 columns
//! unless asked for `-o wide`. Everything here is pure: ages are computed against the `now`
//! the caller passes, and objects of any shape print without panicking.

pub mod age;
pub mod columns;
mod fields;
mod kinds;
pub mod selector;

use chrono::{DateTime, Utc};
use columns::Column;
use kinds::RowCells;
use serde_json::{Map, Value, json};
use slipway_core::ResourceInfo;

pub use age::human_duration;

/// What goes into each row's `object` (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value (`None`, `Metadata`, `Object`); `None` for
    /// anything else, so the caller can answer 400.
    pub fn parse(value: &str) -> Option<IncludeObject> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// Fills the cells of one row of a kind.
type CellsFn = fn(&Value, DateTime<Utc>) -> RowCells;

/// The printer of one kind: its columns and how to fill a row.
struct Printer {
    columns: &'static [Column],
    cells: CellsFn,
}

/// The printer for `info`'s kind; kinds without their own rules get Name and Age.
fn printer(info: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], CellsFn) = match (info.group, info.kind) {
        ("apps", "Deployment") => (columns::DEPLOYMENT, kinds::deployment),
        ("apps", "ReplicaSet") => (columns::REPLICA_SET, kinds::replica_set),
        ("", "Pod") => (columns::POD, kinds::pod),
        ("", "Service") => (columns::SERVICE, kinds::service),
        ("", "Endpoints") => (columns::ENDPOINTS, kinds::endpoints),
        ("discovery.k8s.io", "EndpointSlice") => (columns::ENDPOINT_SLICE, kinds::endpoint_slice),
        ("", "Namespace") => (columns::NAMESPACE, kinds::namespace),
        ("", "ConfigMap") => (columns::CONFIG_MAP, kinds::config_map),
        ("", "Secret") => (columns::SECRET, kinds::secret),
        ("", "Event") => (columns::EVENT, kinds::event),
        _ => (columns::DEFAULT, kinds::default),
    };
    Printer { columns, cells }
}

/// The columns of `info`'s kind, in cell order.
pub fn columns(info: &ResourceInfo) -> &'static [Column] {
    printer(info).columns
}

/// The `columnDefinitions` for `info`'s kind.
pub fn column_definitions(info: &ResourceInfo) -> Value {
    Value::Array(
        columns(info)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.ty.name(),
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// The row's `object`: a `PartialObjectMetadata` with the object's whole `metadata`, the
/// object itself (with `kind` and `apiVersion` filled in when missing), or nothing.
fn row_object(info: &ResourceInfo, obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => {
            let metadata = obj
                .get("metadata")
                .filter(|m| m.is_object())
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            Some(json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            }))
        }
        IncludeObject::Object => {
            let mut full = obj.clone();
            if let Value::Object(map) = &mut full {
                if !map.get("kind").is_some_and(Value::is_string) {
                    map.insert("kind".into(), json!(info.kind));
                }
                if !map.get("apiVersion").is_some_and(Value::is_string) {
                    map.insert("apiVersion".into(), json!(info.api_version()));
                }
            }
            Some(full)
        }
    }
}

/// One row (`{"cells": [...], "object": ...}`) for `obj`. `now` is used for ages. The cells
/// match [`column_definitions`] one to one; `conditions` is present only for completed pods.
pub fn row(info: &ResourceInfo, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let RowCells { cells, conditions } = (printer(info).cells)(obj, now);
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    if !conditions.is_empty() {
        row.insert("conditions".into(), Value::Array(conditions));
    }
    if let Some(object) = row_object(info, obj, include) {
        row.insert("object".into(), object);
    }
    Value::Object(row)
}

/// A whole `Table` for `objects`. `resource_version` and `continue_token` go into the
/// table's list metadata (each only when non-empty); `with_columns = false` omits
/// `columnDefinitions` (watch events after the first).
pub fn table(
    info: &ResourceInfo,
    objects: &[&Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    resource_version: &str,
    continue_token: Option<&str>,
    with_columns: bool,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), json!(token));
    }
    let mut table = Map::new();
    table.insert("kind".into(), json!("Table"));
    table.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    table.insert("metadata".into(), Value::Object(metadata));
    if with_columns {
        table.insert("columnDefinitions".into(), column_definitions(info));
    }
    table.insert(
        "rows".into(),
        Value::Array(
            objects
                .iter()
                .map(|obj| row(info, obj, include, now))
                .collect(),
        ),
    );
    Value::Object(table)
}

#[cfg(test)]
mod tests;
