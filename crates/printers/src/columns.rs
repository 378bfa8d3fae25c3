//! Column definitions of each printer, in the order of the cells.

/// The type of a column's cells, as `TableColumnDefinition.type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `date`.
    Date,
}

impl ColumnType {
    /// The OpenAPI type name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Date => "date",
        }
    }
}

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header text; kubectl upper-cases it.
    pub name: &'static str,
    /// Cell type.
    pub ty: ColumnType,
    /// `name` for the column holding the object name, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for default output, 1 for columns only `-o wide` shows.
    pub priority: u8,
}

const fn col(name: &'static str, ty: ColumnType, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, ty: ColumnType, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, ty, description)
    }
}

use ColumnType::{Integer, String as Text};

const NAME_DESCRIPTION: &str =
    "Name of the object, unique within its namespace (or the cluster for cluster-scoped kinds).";
const AGE_DESCRIPTION: &str = "Time since the server created the object (creationTimestamp).";

/// The `Name` column (format `name`).
pub const NAME: Column = Column {
    format: "name",
    ..col("Name", Text, NAME_DESCRIPTION)
};
/// The `Age` column.
pub const AGE: Column = col("Age", Text, AGE_DESCRIPTION);

const CONTAINERS: Column = wide(
    "Containers",
    Text,
    "Names of the containers in the pod template, comma-separated.",
);
const IMAGES: Column = wide(
    "Images",
    Text,
    "Images of the containers in the pod template, comma-separated.",
);
const SELECTOR: Column = wide(
    "Selector",
    Text,
    "Label query over pods that the controller manages.",
);

/// Deployment columns.
pub const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", Text, "Ready pods out of the desired replicas."),
    col(
        "Up-to-date",
        Integer,
        "Pods that run the current pod template.",
    ),
    col(
        "Available",
        Integer,
        "Pods that have been ready for at least minReadySeconds.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// ReplicaSet columns.
pub const REPLICA_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        Integer,
        "Number of pods the ReplicaSet wants (spec.replicas).",
    ),
    col(
        "Current",
        Integer,
        "Number of pods the ReplicaSet currently has.",
    ),
    col("Ready", Integer, "Number of its pods that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// Rollout columns (`slipway.dev`): replica counts as a Deployment's, the phase, the canary
/// step and weight; `-o wide` adds the strategy and the Deployment's wide columns.
pub const ROLLOUT: &[Column] = &[
    NAME,
    col(
        "Desired",
        Integer,
        "Number of pods the Rollout wants (spec.replicas).",
    ),
    col(
        "Current",
        Integer,
        "Number of pods of the Rollout, old and new (status.replicas).",
    ),
    col(
        "Up-to-date",
        Integer,
        "Pods that run the current pod template.",
    ),
    col(
        "Available",
        Integer,
        "Pods that have been ready for at least minReadySeconds.",
    ),
    col(
        "Status",
        Text,
        "Phase of the rollout: Progressing, Paused, Healthy, Degraded or Aborted.",
    ),
    col(
        "Step",
        Text,
        "Canary: the step in progress out of all steps (status.currentStepIndex).",
    ),
    col(
        "Weight",
        Text,
        "Canary: the percentage of traffic the canary receives now (status.weight).",
    ),
    AGE,
    wide(
        "Strategy",
        Text,
        "Canary, BlueGreen, RollingUpdate or Recreate.",
    ),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// Pod columns.
pub const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        Text,
        "Ready containers out of all containers of the pod.",
    ),
    col(
        "Status",
        Text,
        "Summary of the pod's phase and container states.",
    ),
    col(
        "Restarts",
        Text,
        "Container restarts in total, and how long ago the last one happened.",
    ),
    AGE,
    wide("IP", Text, "The pod's primary IP address."),
    wide("Node", Text, "The node the pod is bound to."),
    wide(
        "Nominated Node",
        Text,
        "The node the scheduler nominated for the pod after preemption.",
    ),
    wide(
        "Readiness Gates",
        Text,
        "Extra readiness conditions that are true, out of those the pod declares.",
    ),
];

/// Service columns.
pub const SERVICE: &[Column] = &[
    NAME,
    col(
        "Type",
        Text,
        "How the service is exposed (ClusterIP, NodePort, ...).",
    ),
    col(
        "Cluster-IP",
        Text,
        "The virtual IP of the service inside the cluster.",
    ),
    col(
        "External-IP",
        Text,
        "Addresses the service is reachable at from outside the cluster.",
    ),
    col(
        "Port(s)",
        Text,
        "Ports the service exposes, with node ports.",
    ),
    AGE,
    wide(
        "Selector",
        Text,
        "Labels of the pods the service sends traffic to.",
    ),
];

/// Endpoints columns.
pub const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        Text,
        "Ready addresses and ports behind the service.",
    ),
    AGE,
];

/// EndpointSlice columns.
pub const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col(
        "AddressType",
        Text,
        "The kind of addresses in the slice (IPv4, IPv6, FQDN).",
    ),
    col("Ports", Text, "Ports of the endpoints in the slice."),
    col(
        "Endpoints",
        Text,
        "Addresses of the endpoints in the slice.",
    ),
    AGE,
];

/// Namespace columns.
pub const NAMESPACE: &[Column] = &[
    NAME,
    col(
        "Status",
        Text,
        "The lifecycle phase of the namespace (Active or Terminating).",
    ),
    AGE,
];

/// ConfigMap columns.
pub const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", Integer, "Number of keys in data and binaryData."),
    AGE,
];

/// Secret columns.
pub const SECRET: &[Column] = &[
    NAME,
    col("Type", Text, "The secret type, e.g. Opaque."),
    col("Data", Integer, "Number of keys in data."),
    AGE,
];

/// Event columns.
pub const EVENT: &[Column] = &[
    col("Last Seen", Text, "Time since the event was last observed."),
    col("Type", Text, "Normal or Warning."),
    col(
        "Reason",
        Text,
        "Short machine-readable reason for the event.",
    ),
    col(
        "Object",
        Text,
        "The object the event is about, as kind/name.",
    ),
    wide(
        "Subobject",
        Text,
        "The part of the object the event is about (involvedObject.fieldPath).",
    ),
    wide(
        "Source",
        Text,
        "The component (and host) that reported the event.",
    ),
    col("Message", Text, "Human-readable description of the event."),
    wide(
        "First Seen",
        Text,
        "Time since the event was first observed.",
    ),
    wide("Count", Text, "How many times the event occurred."),
    Column {
        format: "name",
        ..wide("Name", Text, NAME_DESCRIPTION)
    },
];

/// Columns of kinds without their own printer.
pub const DEFAULT: &[Column] = &[NAME, AGE];
