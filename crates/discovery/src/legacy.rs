//! Legacy discovery: `APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`.

use crate::model::{
    group_version, named_groups, resources_of, subresource_kind, subresource_verbs, verbs,
    versions_of,
};
use serde_json::{Map, Value, json};
use slipway_core::ResourceInfo;

/// `/api`: the core versions, with one `serverAddressByClientCIDRs` entry for every client.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": versions_of(""),
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// The `APIGroup` body of `group` (without `kind`/`apiVersion`), or `None` if not served.
fn group_body(group: &str) -> Option<Map<String, Value>> {
    let versions = versions_of(group);
    let preferred = *versions.first()?;
    let gv = |v: &str| json!({"groupVersion": group_version(group, v), "version": v});
    let mut body = Map::new();
    body.insert("name".into(), json!(group));
    body.insert(
        "versions".into(),
        Value::Array(versions.iter().map(|v| gv(v)).collect()),
    );
    body.insert("preferredVersion".into(), gv(preferred));
    Some(body)
}

/// `/apis`: every named group with its versions.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups()
        .into_iter()
        .filter_map(group_body)
        .map(Value::Object)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`: one `APIGroup`, or `None` for the core group or an unserved one.
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let body = group_body(group)?;
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIGroup"));
    out.insert("apiVersion".into(), json!("v1"));
    out.extend(body);
    Some(Value::Object(out))
}

/// The `APIResource` entries of one resource: the resource itself, then `<plural>/<sub>` per
/// subresource (with `group`/`version` only when the subresource's kind lives elsewhere).
fn resource_entries(info: &ResourceInfo) -> Vec<Value> {
    let mut main = Map::new();
    main.insert("name".into(), json!(info.plural));
    main.insert("singularName".into(), json!(info.singular));
    main.insert("namespaced".into(), json!(info.namespaced));
    main.insert("kind".into(), json!(info.kind));
    main.insert("verbs".into(), json!(verbs(info)));
    if !info.short_names.is_empty() {
        main.insert("shortNames".into(), json!(info.short_names));
    }
    if !info.categories.is_empty() {
        main.insert("categories".into(), json!(info.categories));
    }
    let mut entries = vec![Value::Object(main)];
    for &sub in info.subresources {
        let kind = subresource_kind(info, sub);
        let mut entry = Map::new();
        entry.insert(
            "name".into(),
            json!(format!("{}/{}", info.plural, sub.name())),
        );
        entry.insert("singularName".into(), json!(""));
        entry.insert("namespaced".into(), json!(info.namespaced));
        if kind.group != info.group || kind.version != info.version {
            entry.insert("group".into(), json!(kind.group));
            entry.insert("version".into(), json!(kind.version));
        }
        entry.insert("kind".into(), json!(kind.kind));
        entry.insert("verbs".into(), json!(subresource_verbs(sub)));
        entries.push(Value::Object(entry));
    }
    entries
}

/// `/api/v1` or `/apis/<group>/<version>`: `APIResourceList`, or `None` if not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let resources = resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    let entries: Vec<Value> = resources.into_iter().flat_map(resource_entries).collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": entries,
    }))
}
