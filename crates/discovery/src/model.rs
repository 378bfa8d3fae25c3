//! What discovery and OpenAPI say about each registry resource: verbs, and the kind and verbs
//! of each subresource. Shared by the aggregated, legacy and OpenAPI documents so they agree.

use slipway_core::{ResourceInfo, Subresource};

/// A `group`/`version`/`kind` triple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gvk {
    /// API group, `""` for core.
    pub group: String,
    /// Version within the group.
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl Gvk {
    /// The kind of `info`'s objects.
    pub fn of(info: &ResourceInfo) -> Gvk {
        Gvk {
            group: info.group.to_string(),
            version: info.version.to_string(),
            kind: info.kind.to_string(),
        }
    }

    /// `{"group":..,"version":..,"kind":..}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"group": self.group, "version": self.version, "kind": self.kind})
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Kubernetes serves no `deletecollection` on namespaces.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The verbs of the main resource, sorted as Kubernetes lists them. Every resource supports
/// all eight, except cluster-scoped `namespaces`, which (as in Kubernetes) has no
/// `deletecollection`.
pub fn verbs(info: &ResourceInfo) -> &'static [&'static str] {
    if info.group.is_empty() && info.plural == "namespaces" {
        NAMESPACE_VERBS
    } else {
        ALL_VERBS
    }
}

/// The verbs of a subresource: `get`/`patch`/`update` for status and scale, `get` for log,
/// `create` for binding, `create`/`get` for the connect subresources (exec, attach,
/// portforward).
pub fn subresource_verbs(sub: Subresource) -> &'static [&'static str] {
    match sub {
        Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
        Subresource::Log => &["get"],
        Subresource::Binding => &["create"],
        Subresource::Exec | Subresource::Attach | Subresource::PortForward => &["create", "get"],
    }
}

/// The kind a subresource answers with: the resource's own kind for status and log,
/// `autoscaling/v1` `Scale` for scale, `Binding` (in the resource's group version) for binding,
/// and the `<Kind>ExecOptions`-style option kinds of the
/// connect subresources (in the resource's group version).
pub fn subresource_kind(info: &ResourceInfo, sub: Subresource) -> Gvk {
    let own = |kind: String| Gvk {
        group: info.group.to_string(),
        version: info.version.to_string(),
        kind,
    };
    match sub {
        Subresource::Status | Subresource::Log => Gvk::of(info),
        Subresource::Scale => Gvk {
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale".into(),
        },
        Subresource::Binding => own("Binding".to_string()),
        Subresource::Exec => own(format!("{}ExecOptions", info.kind)),
        Subresource::Attach => own(format!("{}AttachOptions", info.kind)),
        Subresource::PortForward => own(format!("{}PortForwardOptions", info.kind)),
    }
}

/// The served resources of one group version, in registry order.
pub fn resources_of(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    slipway_core::resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// The served versions of `group`, preferred first (registry order).
pub fn versions_of(group: &str) -> Vec<&'static str> {
    slipway_core::resources::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

/// The named groups (not core), in registry order.
pub fn named_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for (group, _) in slipway_core::resources::group_versions() {
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// `group/version`, or `version` for the core group.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}
