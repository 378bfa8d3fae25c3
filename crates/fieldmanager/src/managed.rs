//! `metadata.managedFields` entries: decoding, identity, ordering and encoding.

use crate::fieldset::FieldSet;
use serde_json::{Map, Value, json};

/// `operation` of an entry written by server-side apply.
pub const OPERATION_APPLY: &str = "Apply";
/// `operation` of an entry written by create, update or patch.
pub const OPERATION_UPDATE: &str = "Update";

/// One decoded `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    /// `manager`.
    pub manager: String,
    /// `operation`: `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` the fields were written through.
    pub api_version: String,
    /// `time` (RFC 3339), when recorded.
    pub time: Option<String>,
    /// `subresource`, empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether two entries belong to the same manager identity. As in Kubernetes, appliers
    /// are identified without their API version, updaters with it.
    pub fn same_identity(&self, other: &ManagedEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == OPERATION_APPLY || self.api_version == other.api_version)
    }

    /// The manager identity as Kubernetes serialises it (used to sort conflicts).
    pub fn identity_key(&self) -> String {
        let mut map = Map::new();
        map.insert("manager".into(), json!(self.manager));
        map.insert("operation".into(), json!(self.operation));
        if self.operation != OPERATION_APPLY && !self.api_version.is_empty() {
            map.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.subresource.is_empty() {
            map.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(map).to_string()
    }

    /// The manager as conflict messages print it: `"kubectl"`, or
    /// `"kubectl-client-side-apply" using apps/v1` for updaters.
    pub fn describe(&self) -> String {
        let mut s = Value::String(self.manager.clone()).to_string();
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                " with subresource {}",
                Value::String(self.subresource.clone())
            ));
        }
        if self.operation == OPERATION_UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    /// The entry as JSON; `fields_v1` is its `fieldsV1` when already known (as decoded, for
    /// an entry whose fields did not change), else it is encoded from `fields`.
    fn to_json(&self, fields_v1: Option<&Value>) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), json!(self.manager));
        map.insert("operation".into(), json!(self.operation));
        map.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            map.insert("time".into(), json!(t));
        }
        map.insert("fieldsType".into(), json!("FieldsV1"));
        map.insert(
            "fieldsV1".into(),
            fields_v1.map_or_else(|| self.fields.to_fields_v1(), Value::clone),
        );
        if !self.subresource.is_empty() {
            map.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(map)
    }
}

/// Decodes `metadata.managedFields` of `obj`. Entries that are not valid (not an object,
/// unknown `fieldsType`, unparsable `fieldsV1`) are skipped.
pub fn decode(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries.iter().filter_map(decode_entry).collect()
}

/// [`decode`], with each entry's `fieldsV1` as written, for [`encode_reusing`].
pub fn decode_with_fields_v1(obj: &Value) -> Vec<(ManagedEntry, Option<&Value>)> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| decode_entry(e).map(|decoded| (decoded, e.get("fieldsV1"))))
        .collect()
}

fn decode_entry(entry: &Value) -> Option<ManagedEntry> {
    let map = entry.as_object()?;
    let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if map.get("fieldsType").is_some_and(|t| t != "FieldsV1") {
        return None;
    }
    let fields = match map.get("fieldsV1") {
        Some(v) => FieldSet::from_fields_v1(v).ok()?,
        None => FieldSet::new(),
    };
    Some(ManagedEntry {
        manager: text("manager"),
        operation: text("operation"),
        api_version: text("apiVersion"),
        time: map.get("time").and_then(Value::as_str).map(str::to_string),
        subresource: text("subresource"),
        fields,
    })
}

/// Whether `obj` asks for its managed fields to be reset: `managedFields: [{}]`.
pub fn is_reset_request(obj: &Value) -> bool {
    matches!(
        obj.pointer("/metadata/managedFields").and_then(Value::as_array),
        Some(entries) if entries.len() == 1 && entries[0].as_object().is_some_and(Map::is_empty)
    )
}

/// Writes `entries` (dropping empty ones) into `obj`'s `metadata.managedFields`, sorted as
/// Kubernetes sorts them: appliers first, then by time, manager, API version, subresource.
/// With no entries left the field is removed.
pub fn encode(obj: &mut Value, entries: Vec<ManagedEntry>) {
    encode_reusing(obj, entries.into_iter().map(|e| (e, None)).collect());
}

/// [`encode`], where an entry paired with its `fieldsV1` (as decoded from a stored object,
/// which this crate wrote: the canonical form) keeps it instead of encoding its fields
/// again. Pair an entry with `None` whenever its fields changed.
pub fn encode_reusing(obj: &mut Value, mut entries: Vec<(ManagedEntry, Option<&Value>)>) {
    entries.retain(|(e, _)| !e.fields.is_empty());
    entries.sort_by(|(a, _), (b, _)| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| time_key(&a.time).cmp(&time_key(&b.time)))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = slipway_core::meta::metadata_mut(obj);
    meta.insert(
        "managedFields".into(),
        Value::Array(
            entries
                .iter()
                .map(|(e, fields_v1)| e.to_json(*fields_v1))
                .collect(),
        ),
    );
}

/// Times compare at second precision; entries without a time sort first.
fn time_key(time: &Option<String>) -> String {
    match time {
        Some(t) => t.chars().take(19).collect(),
        None => String::new(),
    }
}

/// Whether `obj` has a `metadata.managedFields` field.
pub fn has_managed_fields(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("managedFields"))
}

/// Removes `metadata.managedFields` from `obj`.
pub fn strip(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_entries() {
        let mut obj = json!({"metadata": {"name": "a", "managedFields": [
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-03T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}},
            "junk"
        ]}});
        let entries = decode(&obj);
        assert_eq!(entries.len(), 3);
        encode(&mut obj, entries);
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["kubectl", "a", "b"]);
        encode(&mut obj, Vec::new());
        assert!(obj["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn describes_managers_like_kubernetes() {
        let e = ManagedEntry {
            manager: "kubectl-client-side-apply".into(),
            operation: OPERATION_UPDATE.into(),
            api_version: "apps/v1".into(),
            time: Some("2024-01-01T00:00:00Z".into()),
            subresource: String::new(),
            fields: FieldSet::new(),
        };
        assert_eq!(e.describe(), "\"kubectl-client-side-apply\" using apps/v1");
        let s = ManagedEntry {
            subresource: "status".into(),
            ..e.clone()
        };
        assert_eq!(
            s.describe(),
            "\"kubectl-client-side-apply\" with subresource \"status\" using apps/v1"
        );
        assert!(is_reset_request(
            &json!({"metadata": {"managedFields": [{}]}})
        ));
        assert!(!is_reset_request(
            &json!({"metadata": {"managedFields": []}})
        ));
    }
}
