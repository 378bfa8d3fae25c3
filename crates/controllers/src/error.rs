//! Typed errors of the planners. A planner returns an error instead of guessing when the
//! observed objects are malformed in a way Kubernetes itself refuses to act on.

/// Why a plan could not be computed. The reconciler should log it and retry with back-off
/// (the observed state is expected to be fixed by validation or by a later observation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An int-or-percent value (`maxSurge`, `maxUnavailable`) is neither an integer nor `"N%"`.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage: {value:?}")]
    InvalidIntOrPercent {
        /// The offending value.
        value: String,
    },
    /// A `deployment.kubernetes.io/revision` annotation is not a decimal int64.
    #[error("invalid revision annotation {value:?} on {object}")]
    InvalidRevision {
        /// Name of the object carrying it.
        object: String,
        /// The offending value.
        value: String,
    },
    /// A scale-down step computed a size above the current one (inconsistent RS status).
    #[error("when {step}, got invalid request to scale down {name} {from} -> {to}")]
    InvalidScaleDown {
        /// Which step detected it.
        step: &'static str,
        /// The ReplicaSet.
        name: String,
        /// Current size.
        from: i32,
        /// Computed size.
        to: i32,
    },
    /// The object lacks a field the controller needs (e.g. a ReplicaSet without a template).
    #[error("{object} has no {field}")]
    MissingField {
        /// Name of the object.
        object: String,
        /// The missing field path.
        field: &'static str,
    },
    /// A label selector could not be converted.
    #[error("invalid selector on {object}: {message}")]
    InvalidSelector {
        /// Name of the object.
        object: String,
        /// The converter's message.
        message: String,
    },
    /// No Deployment selects a ReplicaSet (event routing of an orphan).
    #[error(
        "could not find deployments set for ReplicaSet {name} in namespace {namespace} with labels: map[{labels}]"
    )]
    NoDeploymentForReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Its labels as Go prints a map (`k:v` pairs, sorted, space separated).
        labels: String,
    },
}
