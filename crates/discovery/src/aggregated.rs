//! Aggregated discovery (`apidiscovery.k8s.io` `APIGroupDiscoveryList`).

use crate::AggregatedVersion;
use crate::model::{
    Gvk, named_groups, resources_of, subresource_kind, subresource_verbs, verbs, versions_of,
};
use serde_json::{Map, Value, json};
use slipway_core::ResourceInfo;

impl AggregatedVersion {
    /// The `apiVersion` of the list, e.g. `apidiscovery.k8s.io/v2`.
    pub fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }

    /// The `v=` parameter of the media type (`v2` or `v2beta1`).
    pub fn media_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }

    /// The full `Content-Type` of a response in this version.
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.media_version()
        )
    }
}

/// One `APIResourceDiscovery`; empty `shortNames`, `categories` and `subresources` are
/// omitted, as Kubernetes omits them.
fn resource_entry(info: &ResourceInfo) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), json!(info.plural));
    entry.insert("responseKind".into(), Gvk::of(info).to_json());
    entry.insert(
        "scope".into(),
        json!(if info.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    entry.insert("singularResource".into(), json!(info.singular));
    entry.insert("verbs".into(), json!(verbs(info)));
    if !info.short_names.is_empty() {
        entry.insert("shortNames".into(), json!(info.short_names));
    }
    if !info.categories.is_empty() {
        entry.insert("categories".into(), json!(info.categories));
    }
    if !info.subresources.is_empty() {
        let subs: Vec<Value> = info
            .subresources
            .iter()
            .map(|&sub| {
                json!({
                    "subresource": sub.name(),
                    "responseKind": subresource_kind(info, sub).to_json(),
                    "verbs": subresource_verbs(sub),
                })
            })
            .collect();
        entry.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(entry)
}

/// One `APIGroupDiscovery` with every served version of `group`, preferred first.
fn group_entry(group: &str) -> Value {
    let versions: Vec<Value> = versions_of(group)
        .into_iter()
        .map(|version| {
            let resources: Vec<Value> = resources_of(group, version)
                .into_iter()
                .map(resource_entry)
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// The aggregated discovery list for `/api` (`core == true`: one item, the core group named
/// `""`) or `/apis` (every named group). v2 and v2beta1 differ only in `apiVersion`.
pub fn aggregated(core: bool, version: AggregatedVersion) -> Value {
    let items: Vec<Value> = if core {
        if versions_of("").is_empty() {
            Vec::new()
        } else {
            vec![group_entry("")]
        }
    } else {
        named_groups().into_iter().map(group_entry).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": version.api_version(),
        "metadata": {},
        "items": items,
    })
}
