//! How server-side apply sees each node of an object: which maps are atomic, how lists merge,
//! and how list elements are named. Reads `slipway_core::merge_schema`.

use crate::fieldset::PathElement;
use serde_json::{Value, json};
use slipway_core::merge_schema::{self, FieldInfo, ListStrategy, TypeRef};

/// What the schema says about one node (a field value or a list element).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeSchema {
    /// The type of the node (maps) or of its elements (lists), when known.
    pub ty: Option<TypeRef>,
    /// How the node merges if it is a list.
    pub list: ListStrategy,
    /// Whether the node, if a map, is replaced whole (`structType=atomic` / `mapType=atomic`).
    pub atomic_map: bool,
}

/// The shape of a node for walking.
pub(crate) enum Shape<'a> {
    /// A scalar, null, empty container, atomic map or atomic list.
    Leaf,
    /// A map whose fields are walked one by one.
    Map(&'a serde_json::Map<String, Value>),
    /// A list merged by key or as a set, walked element by element.
    List(&'a [Value]),
}

impl NodeSchema {
    /// The schema of an object of `kind`. Kinds without a strategic schema (custom resources)
    /// still get `metadata` semantics; everything else in them is a plain map or atomic list.
    pub fn root(kind: &str) -> NodeSchema {
        NodeSchema {
            ty: merge_schema::root(kind).or_else(|| merge_schema::root("ConfigMap")),
            list: ListStrategy::Atomic,
            atomic_map: false,
        }
    }

    /// The schema of field `name` of this (map) node.
    pub fn field(self, name: &str) -> NodeSchema {
        let info = match self.ty {
            Some(ty) => ty.field(name),
            None => FieldInfo {
                ty: None,
                list: ListStrategy::Atomic,
                retain_keys: false,
            },
        };
        NodeSchema {
            ty: info.ty,
            list: info.list,
            atomic_map: is_atomic_map(self.ty, name),
        }
    }

    /// The schema of an element of this (list) node.
    pub fn element(self) -> NodeSchema {
        NodeSchema {
            ty: self.ty,
            list: ListStrategy::Atomic,
            atomic_map: false,
        }
    }

    /// How to walk `value` under this schema.
    pub fn shape(self, value: &Value) -> Shape<'_> {
        match value {
            Value::Object(map) if !self.atomic_map && !map.is_empty() => Shape::Map(map),
            Value::Array(items) if self.list != ListStrategy::Atomic && !items.is_empty() => {
                Shape::List(items)
            }
            _ => Shape::Leaf,
        }
    }

    /// Whether the node is walked as a map (when it holds an object).
    pub fn is_granular_map(self) -> bool {
        !self.atomic_map
    }

    /// Whether the node is walked as a list (when it holds an array).
    pub fn is_granular_list(self) -> bool {
        self.list != ListStrategy::Atomic
    }

    /// The path element naming `item` (at `index`) of this list node.
    pub fn element_name(self, index: usize, item: &Value) -> PathElement {
        match self.list {
            ListStrategy::MergeByKey(key) => match item.get(key) {
                Some(k) if !k.is_null() => PathElement::Key(vec![(key.to_string(), k.clone())]),
                _ => PathElement::Index(index),
            },
            ListStrategy::Set => PathElement::Value(item.clone()),
            ListStrategy::Atomic => PathElement::Index(index),
        }
    }
}

/// Maps that Kubernetes treats as atomic (replaced whole, owned as one field): label selectors
/// of workloads (`structType=atomic`), and the `mapType=atomic` selector maps.
fn is_atomic_map(parent: Option<TypeRef>, field: &str) -> bool {
    matches!(
        (parent.map(TypeRef::name), field),
        (
            Some("DeploymentSpec" | "ReplicaSetSpec" | "ServiceSpec"),
            "selector"
        ) | (Some("PodSpec"), "nodeSelector")
    )
}

/// Whether writes to the main resource of `kind` leave `.status` alone (the API server
/// resets it), so `.status` is never owned through the main resource. Unknown kinds (custom
/// resources) are assumed to have a status subresource.
pub(crate) fn status_is_reset(kind: &str) -> bool {
    match slipway_core::resources::all()
        .iter()
        .find(|r| r.kind == kind)
    {
        Some(info) => info.has_status,
        None => merge_schema::root(kind).is_none(),
    }
}

/// The object the API server compares a created object with: the empty object of the kind as
/// the Go types serialise it (non-pointer structs present as `{}`, non-`omitempty` fields as
/// `null`). Which nodes exist here decides which maps a creating manager owns with `"."`.
pub(crate) fn empty_object(kind: &str) -> Value {
    let meta = json!({"creationTimestamp": null});
    let pod_template = json!({"metadata": meta, "spec": {"containers": null}});
    match kind {
        "Deployment" => json!({
            "metadata": meta,
            "spec": {"selector": null, "template": pod_template, "strategy": {}},
            "status": {}
        }),
        "ReplicaSet" => json!({
            "metadata": meta,
            "spec": {"selector": null, "template": pod_template},
            "status": {"replicas": 0}
        }),
        "Pod" => json!({"metadata": meta, "spec": {"containers": null}, "status": {}}),
        "Service" => json!({"metadata": meta, "spec": {}, "status": {"loadBalancer": {}}}),
        "Namespace" => json!({"metadata": meta, "spec": {}, "status": {}}),
        "Event" => json!({
            "metadata": meta,
            "involvedObject": {},
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": ""
        }),
        "EndpointSlice" => json!({
            "metadata": meta,
            "addressType": "",
            "endpoints": null,
            "ports": null
        }),
        _ => json!({"metadata": meta}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_deployment_schema() {
        let root = NodeSchema::root("Deployment");
        let containers = root
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(containers.list, ListStrategy::MergeByKey("name"));
        let item = json!({"name": "app", "image": "x"});
        assert_eq!(
            containers.element_name(0, &item),
            PathElement::Key(vec![("name".into(), json!("app"))])
        );
        assert_eq!(
            containers.element_name(4, &json!({"image": "x"})),
            PathElement::Index(4)
        );
        assert!(root.field("spec").field("selector").atomic_map);
        assert!(!root.field("metadata").field("labels").atomic_map);
        let custom = NodeSchema::root("Rollout");
        assert_eq!(
            custom.field("metadata").field("finalizers").list,
            ListStrategy::Set
        );
        assert!(status_is_reset("Deployment"));
        assert!(!status_is_reset("ConfigMap"));
        assert!(status_is_reset("Rollout"));
    }
}
