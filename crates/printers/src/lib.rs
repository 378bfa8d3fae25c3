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
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
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
type CellsFn = for<'a> fn(&'a Value, DateTime<Utc>) -> RowCells<'a>;

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
        ("slipway.dev", "Rollout") => (columns::ROLLOUT, kinds::rollout),
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
    row.insert(
        "cells".into(),
        Value::Array(cells.into_iter().map(Value::from).collect()),
    );
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

/// The list metadata of a [`write_table`] Table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableMeta<'a> {
    /// `resourceVersion`, left out when empty.
    pub resource_version: &'a str,
    /// `continue`, left out when absent or empty.
    pub continue_token: Option<&'a str>,
    /// `remainingItemCount`, left out when absent.
    pub remaining_item_count: Option<usize>,
}

/// Appends to `out` the JSON text of the whole `Table` for `objects`: the same bytes as
/// serialising [`table`] (with `meta.remaining_item_count`, when set, added last to the
/// table's metadata), written row by row without building the table as a `Value` and
/// without copying the objects' metadata.
pub fn write_table(
    out: &mut Vec<u8>,
    info: &ResourceInfo,
    objects: &[&Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    meta: &TableMeta<'_>,
    with_columns: bool,
) -> serde_json::Result<()> {
    let table = TableJson {
        info,
        printer: printer(info),
        objects,
        include,
        now,
        meta,
        with_columns,
    };
    serde_json::to_writer(out, &table)
}

/// A Table, serialised as it is written (see [`write_table`]).
struct TableJson<'a> {
    info: &'a ResourceInfo,
    printer: Printer,
    objects: &'a [&'a Value],
    include: IncludeObject,
    now: DateTime<Utc>,
    meta: &'a TableMeta<'a>,
    with_columns: bool,
}

impl Serialize for TableJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut table = serializer.serialize_map(None)?;
        table.serialize_entry("kind", "Table")?;
        table.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        table.serialize_entry("metadata", &ListMetaJson(self.meta))?;
        if self.with_columns {
            table.serialize_entry("columnDefinitions", &ColumnsJson(self.printer.columns))?;
        }
        table.serialize_entry("rows", &RowsJson(self))?;
        table.end()
    }
}

struct ListMetaJson<'a>(&'a TableMeta<'a>);

impl Serialize for ListMetaJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let meta = self.0;
        let mut map = serializer.serialize_map(None)?;
        if !meta.resource_version.is_empty() {
            map.serialize_entry("resourceVersion", meta.resource_version)?;
        }
        if let Some(token) = meta.continue_token.filter(|t| !t.is_empty()) {
            map.serialize_entry("continue", token)?;
        }
        if let Some(n) = meta.remaining_item_count {
            map.serialize_entry("remainingItemCount", &n)?;
        }
        map.end()
    }
}

struct ColumnsJson(&'static [Column]);

impl Serialize for ColumnsJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&ColumnJson(c))?;
        }
        seq.end()
    }
}

struct ColumnJson<'a>(&'a Column);

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("name", c.name)?;
        map.serialize_entry("type", c.ty.name())?;
        map.serialize_entry("format", c.format)?;
        map.serialize_entry("description", c.description)?;
        map.serialize_entry("priority", &c.priority)?;
        map.end()
    }
}

struct RowsJson<'a>(&'a TableJson<'a>);

impl Serialize for RowsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut seq = serializer.serialize_seq(Some(t.objects.len()))?;
        for obj in t.objects {
            let RowCells { cells, conditions } = (t.printer.cells)(obj, t.now);
            seq.serialize_element(&RowJson {
                info: t.info,
                obj,
                cells: &cells,
                conditions: &conditions,
                include: t.include,
            })?;
        }
        seq.end()
    }
}

/// One row, as [`row`] builds it.
struct RowJson<'a> {
    info: &'a ResourceInfo,
    obj: &'a Value,
    cells: &'a [kinds::Cell<'a>],
    conditions: &'a [Value],
    include: IncludeObject,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("cells", self.cells)?;
        if !self.conditions.is_empty() {
            map.serialize_entry("conditions", self.conditions)?;
        }
        match self.include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                map.serialize_entry("object", &PartialObjectMetadataJson(self.obj))?
            }
            IncludeObject::Object => map.serialize_entry(
                "object",
                &FullObjectJson {
                    info: self.info,
                    obj: self.obj,
                },
            )?,
        }
        map.end()
    }
}

/// [`row_object`] with [`IncludeObject::Metadata`], serialised from the object itself.
struct PartialObjectMetadataJson<'a>(&'a Value);

impl Serialize for PartialObjectMetadataJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("kind", "PartialObjectMetadata")?;
        map.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        match fields::at(self.0, &["metadata"]).filter(|m| m.is_object()) {
            Some(metadata) => map.serialize_entry("metadata", metadata)?,
            None => map.serialize_entry("metadata", &EmptyMap)?,
        }
        map.end()
    }
}

struct EmptyMap;

impl Serialize for EmptyMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_map(Some(0))?.end()
    }
}

/// [`row_object`] with [`IncludeObject::Object`], serialised from the object itself: a
/// `kind` or `apiVersion` that is not a string is replaced in place, a missing one is
/// appended (as inserting into the object would).
struct FullObjectJson<'a> {
    info: &'a ResourceInfo,
    obj: &'a Value,
}

impl Serialize for FullObjectJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(fields) = self.obj else {
            return self.obj.serialize(serializer);
        };
        let api_version = self.info.api_version();
        let (mut has_kind, mut has_api_version) = (false, false);
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in fields {
            match key.as_str() {
                "kind" => {
                    has_kind = true;
                    if value.is_string() {
                        map.serialize_entry(key, value)?;
                    } else {
                        map.serialize_entry(key, self.info.kind)?;
                    }
                }
                "apiVersion" => {
                    has_api_version = true;
                    if value.is_string() {
                        map.serialize_entry(key, value)?;
                    } else {
                        map.serialize_entry(key, &api_version)?;
                    }
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        if !has_kind {
            map.serialize_entry("kind", self.info.kind)?;
        }
        if !has_api_version {
            map.serialize_entry("apiVersion", &api_version)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
