//! The strategic-merge schema of the served types: for each field path, how a list merges
//! (atomic, by merge key, or as a set of primitives) and whether a map retains only the keys a
//! patch lists (`$retainKeys`). Both the strategic merge patch and server-side apply read it.
//!
//! The data mirrors the `patchStrategy`/`patchMergeKey` struct tags of `k8s.io/api` for the
//! fields that the served kinds contain. A field the schema does not know merges as a plain
//! map (objects) or is replaced whole (lists), which is what Kubernetes does for fields
//! without tags.

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced as a whole (no `patchStrategy`).
    Atomic,
    /// Elements are objects merged element by element on the named key.
    MergeByKey(&'static str),
    /// Elements are primitives merged as a set (e.g. `finalizers`).
    Set,
}

/// A named node of the type graph; obtain one with [`root`] and walk with [`TypeRef::field`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeRef(&'static str);

/// What the schema knows about one field of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// The type of the field's value, or of each element when the field is a list.
    pub ty: Option<TypeRef>,
    /// How the field merges if it is a list.
    pub list: ListStrategy,
    /// Whether the field's map value honours `$retainKeys`.
    pub retain_keys: bool,
}

const PLAIN: FieldInfo = FieldInfo {
    ty: None,
    list: ListStrategy::Atomic,
    retain_keys: false,
};

const fn typed(name: &'static str) -> FieldInfo {
    FieldInfo {
        ty: Some(TypeRef(name)),
        list: ListStrategy::Atomic,
        retain_keys: false,
    }
}

const fn keyed(name: Option<&'static str>, key: &'static str) -> FieldInfo {
    FieldInfo {
        ty: match name {
            Some(n) => Some(TypeRef(n)),
            None => None,
        },
        list: ListStrategy::MergeByKey(key),
        retain_keys: false,
    }
}

/// The root type of objects of `kind`, or `None` for kinds without a strategic schema
/// (custom resources), for which strategic merge patch is refused as on Kubernetes.
pub fn root(kind: &str) -> Option<TypeRef> {
    let ty = match kind {
        "Deployment" => "Deployment",
        "ReplicaSet" => "ReplicaSet",
        "Pod" => "Pod",
        "Service" => "Service",
        "Namespace" => "Namespace",
        "Endpoints" | "Event" | "ConfigMap" | "Secret" | "EndpointSlice" | "Scale" => "Plain",
        _ => return None,
    };
    Some(TypeRef(ty))
}

impl TypeRef {
    /// The name of this type in the schema (for diagnostics).
    pub fn name(self) -> &'static str {
        self.0
    }

    /// What the schema knows about `field` of this type. Unknown fields are [`PLAIN`]:
    /// maps merge recursively, lists are atomic.
    pub fn field(self, field: &str) -> FieldInfo {
        match (self.0, field) {
            (_, "metadata") => typed("ObjectMeta"),
            ("ObjectMeta", "ownerReferences") => keyed(None, "uid"),
            ("ObjectMeta", "finalizers") => FieldInfo {
                list: ListStrategy::Set,
                ..PLAIN
            },
            ("Deployment", "spec") => typed("DeploymentSpec"),
            ("Deployment" | "ReplicaSet", "status") => typed("WorkloadStatus"),
            ("ReplicaSet", "spec") => typed("ReplicaSetSpec"),
            ("DeploymentSpec", "strategy") => FieldInfo {
                retain_keys: true,
                ..PLAIN
            },
            ("DeploymentSpec" | "ReplicaSetSpec", "template") => typed("PodTemplateSpec"),
            ("PodTemplateSpec" | "Pod", "spec") => typed("PodSpec"),
            ("Pod", "status") => typed("PodStatus"),
            ("PodSpec", "containers" | "initContainers" | "ephemeralContainers") => {
                keyed(Some("Container"), "name")
            }
            ("PodSpec", "volumes") => FieldInfo {
                ty: Some(TypeRef("Volume")),
                list: ListStrategy::MergeByKey("name"),
                retain_keys: false,
            },
            ("PodSpec", "imagePullSecrets") => keyed(None, "name"),
            ("PodSpec", "hostAliases") => keyed(None, "ip"),
            ("PodSpec", "topologySpreadConstraints") => keyed(None, "topologyKey"),
            ("PodSpec", "resourceClaims" | "schedulingGates") => keyed(None, "name"),
            ("Container", "ports") => keyed(None, "containerPort"),
            ("Container", "env") => keyed(None, "name"),
            ("Container", "volumeMounts") => keyed(None, "mountPath"),
            ("Container", "volumeDevices") => keyed(None, "devicePath"),
            (
                "WorkloadStatus" | "PodStatus" | "ServiceStatus" | "NamespaceStatus",
                "conditions",
            ) => keyed(None, "type"),
            ("PodStatus", "podIPs" | "hostIPs") => keyed(None, "ip"),
            ("Service", "spec") => typed("ServiceSpec"),
            ("Service", "status") => typed("ServiceStatus"),
            ("ServiceSpec", "ports") => keyed(None, "port"),
            ("Namespace", "status") => typed("NamespaceStatus"),
            _ => PLAIN,
        }
    }

    /// Whether maps of this type honour `$retainKeys`: volumes are
    /// `patchStrategy:"merge,retainKeys"`, so each volume element does.
    pub fn retains_keys(self) -> bool {
        self.0 == "Volume"
    }
}

/// Walks `path` (field names; list indices are skipped by the caller) from the root of `kind`.
pub fn field_at(kind: &str, path: &[&str]) -> Option<FieldInfo> {
    let mut ty = root(kind)?;
    let mut info = PLAIN;
    for (i, seg) in path.iter().enumerate() {
        info = ty.field(seg);
        if i + 1 < path.len() {
            ty = info.ty?;
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_on_name_inside_deployments_and_pods() {
        let d = field_at("Deployment", &["spec", "template", "spec", "containers"]).unwrap();
        assert_eq!(d.list, ListStrategy::MergeByKey("name"));
        let p = field_at("Pod", &["spec", "containers"]).unwrap();
        assert_eq!(p.list, ListStrategy::MergeByKey("name"));
        let env = field_at(
            "Deployment",
            &["spec", "template", "spec", "containers", "env"],
        )
        .unwrap();
        assert_eq!(env.list, ListStrategy::MergeByKey("name"));
        let args = field_at("Pod", &["spec", "containers", "args"]).unwrap();
        assert_eq!(args.list, ListStrategy::Atomic);
    }

    #[test]
    fn strategy_retains_keys_and_finalizers_are_a_set() {
        assert!(
            field_at("Deployment", &["spec", "strategy"])
                .unwrap()
                .retain_keys
        );
        assert_eq!(
            field_at("Service", &["metadata", "finalizers"])
                .unwrap()
                .list,
            ListStrategy::Set
        );
        assert_eq!(
            field_at("Service", &["spec", "ports"]).unwrap().list,
            ListStrategy::MergeByKey("port")
        );
        assert!(root("Rollout").is_none());
    }
}
