//! The registry of resources the API server serves: names, scope, discovery data.
//!
//! Everything that needs to know "which kinds exist" (routing, discovery, OpenAPI, printing,
//! admission, storage keys) reads this one table, so adding a kind is one entry here plus its
//! admission and printing rules.

/// A subresource served under `/<resource>/<name>/<subresource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subresource {
    /// `status`: writes change only `.status`.
    Status,
    /// `scale`: an `autoscaling/v1` `Scale` view of `.spec.replicas`.
    Scale,
    /// `log` of a pod (text/plain).
    Log,
    /// `exec` into a pod (WebSocket upgrade).
    Exec,
    /// `attach` to a pod (WebSocket upgrade).
    Attach,
    /// `portforward` to a pod (WebSocket/SPDY upgrade).
    PortForward,
    /// `binding` of a pod: a scheduler's `Binding` (POST) assigns it to a node.
    Binding,
}

impl Subresource {
    /// The path segment of the subresource.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Binding => "binding",
        }
    }

    /// Parses a path segment.
    pub fn parse(segment: &str) -> Option<Subresource> {
        [
            Subresource::Status,
            Subresource::Scale,
            Subresource::Log,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
            Subresource::Binding,
        ]
        .into_iter()
        .find(|s| s.name() == segment)
    }
}

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace (`false` = cluster-scoped).
    pub namespaced: bool,
    /// kubectl short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Discovery categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Served subresources.
    pub subresources: &'static [Subresource],
    /// Whether the main resource carries a `.status` that only `/status` may change.
    pub has_status: bool,
    /// Whether `.metadata.generation` is bumped by spec changes (objects with a spec).
    pub tracks_generation: bool,
}

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group: the `apiVersion` of objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, or just `plural` for the core group, as Kubernetes error messages name
    /// resources (`deployments.apps "web" not found`).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group`, or just `Kind` for the core group, as validation messages name kinds
    /// (`Deployment.apps "web" is invalid`).
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The kind of a list of these objects, e.g. `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The storage prefix that identifies this resource type, e.g. `apps/deployments` or
    /// `core/pods`. Stable: it is part of the on-disk format.
    pub fn storage_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("{group}/{}", self.plural)
    }

    /// Whether the subresource is served for this resource.
    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The URL path of the collection in `namespace` (ignored for cluster-scoped resources).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{root}/namespaces/{ns}/{}", self.plural),
            _ => format!("{root}/{}", self.plural),
        }
    }
}

const ALL: &[&str] = &["all"];
const STATUS: &[Subresource] = &[Subresource::Status];
const STATUS_SCALE: &[Subresource] = &[Subresource::Status, Subresource::Scale];

/// Every served resource, in discovery order (which is also `kubectl get all` order).
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: STATUS,
        has_status: true,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        subresources: &[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Log,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
        ],
        has_status: true,
        tracks_generation: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        subresources: STATUS,
        has_status: true,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        subresources: STATUS_SCALE,
        has_status: true,
        tracks_generation: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        subresources: STATUS_SCALE,
        has_status: true,
        tracks_generation: true,
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
        tracks_generation: false,
    },
    // Slipway's own kind (blue-green and canary releases). Like Argo Rollouts' CRD it is in
    // no category, so `kubectl get all` lists what it lists on Kubernetes.
    ResourceInfo {
        group: "slipway.dev",
        version: "v1alpha1",
        kind: "Rollout",
        plural: "rollouts",
        singular: "rollout",
        namespaced: true,
        short_names: &["ro"],
        categories: &[],
        subresources: STATUS_SCALE,
        has_status: true,
        tracks_generation: true,
    },
];

/// Every served resource.
pub fn all() -> &'static [ResourceInfo] {
    RESOURCES
}

/// Finds a resource by group, version and plural name (as in a URL).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by `apiVersion` and `kind` (as in an object).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Finds a resource by its storage prefix (see [`ResourceInfo::storage_prefix`]).
pub fn by_storage_prefix(prefix: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.storage_prefix() == prefix)
}

/// The distinct `(group, version)` pairs served, core first, in registry order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_conventions() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.group_resource(), "deployments.apps");
        assert_eq!(d.group_kind(), "Deployment.apps");
        assert_eq!(
            d.collection_path(Some("default")),
            "/apis/apps/v1/namespaces/default/deployments"
        );
        let p = lookup("", "v1", "pods").unwrap();
        assert_eq!(p.group_resource(), "pods");
        assert_eq!(p.storage_prefix(), "core/pods");
        assert_eq!(by_kind("v1", "Namespace").unwrap().plural, "namespaces");
        assert_eq!(
            by_storage_prefix("apps/replicasets").unwrap().kind,
            "ReplicaSet"
        );
    }

    #[test]
    fn rollouts_are_served_like_a_workload() {
        let r = lookup("slipway.dev", "v1alpha1", "rollouts").unwrap();
        assert_eq!(r.kind, "Rollout");
        assert_eq!(r.api_version(), "slipway.dev/v1alpha1");
        assert_eq!(r.group_kind(), "Rollout.slipway.dev");
        assert_eq!(r.group_resource(), "rollouts.slipway.dev");
        assert_eq!(r.storage_prefix(), "slipway.dev/rollouts");
        assert_eq!(r.short_names, &["ro"]);
        assert!(r.categories.is_empty(), "not in `all`");
        assert!(r.has_subresource(Subresource::Status));
        assert!(r.has_subresource(Subresource::Scale));
        assert!(r.has_status && r.tracks_generation && r.namespaced);
        assert_eq!(
            by_kind("slipway.dev/v1alpha1", "Rollout").unwrap().plural,
            "rollouts"
        );
        assert_eq!(group_versions().last(), Some(&("slipway.dev", "v1alpha1")));
    }

    #[test]
    fn registry_has_no_duplicate_names() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
                for s in a.short_names {
                    assert!(!b.short_names.contains(s), "short name {s} twice");
                }
            }
        }
    }
}
