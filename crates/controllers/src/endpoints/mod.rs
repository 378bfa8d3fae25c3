//! The planner of the Endpoints and EndpointSlice controllers (Kubernetes 1.33 semantics),
//! of the EndpointSlice mirroring controller, and of the Service status writer.
//!
//! Drive it like this: whenever a Service, a pod its selector matches (old or new labels),
//! its Endpoints or one of its EndpointSlices changes, observe the Service (or its absence),
//! the pods of its namespace, its Endpoints and the slices labelled
//! `kubernetes.io/service-name: <service>`, call [`plan`], and apply the result: slice
//! creations first (name them `<generateName><5 random chars>`), then updates, then
//! deletions; the Endpoints action; the status through `/status`; then record the events.
//! Every write carries the resourceVersion of the observed object, so a stale cache yields a
//! conflict and a retry, never a lost update.
//!
//! Planning does no I/O and reads no clock or randomness. An unchanged input plans no write:
//! desired objects are compared with the observed ones on the fields the controller owns
//! (labels, owner references, addresses, ports, conditions), never on server metadata.
//!
//! Mode by Service:
//! - selector set, type not `ExternalName`: Endpoints and EndpointSlices computed from pods;
//! - no selector: the Endpoints object is the user's and is never written; it is mirrored
//!   into slices managed by `endpointslicemirroring-controller.k8s.io`, which (as in
//!   Kubernetes) are controlled by the Endpoints object, so deleting it collects them;
//! - `ExternalName` with a selector: no endpoints; what this controller wrote is removed;
//! - Service absent: Endpoints labelled as written by this controller are deleted (slices go
//!   through the garbage collector, being owned by the Service), mirrored slices are deleted.

mod legacy;
mod mirror;
mod ports;
mod slices;
mod status;

pub use legacy::{MAX_ENDPOINTS_ADDRESSES, desired_subsets};
pub use ports::{PortResolution, resolve_port};
pub use slices::{MAX_ENDPOINTS_PER_SLICE, normalized_slice};
pub use status::{LOAD_BALANCER_IP, desired_load_balancer_status};

use crate::Event;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;

/// `kubernetes.io/service-name`: the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `endpointslice.kubernetes.io/managed-by`: which controller manages a slice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Manager of the slices computed from pods.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Manager of the slices mirrored from user-written Endpoints.
pub const MIRRORING_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
/// `endpoints.kubernetes.io/managed-by`: set (as Kubernetes 1.33 does) on Endpoints written by
/// the Endpoints controller; such Endpoints are deleted with their Service.
pub const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Value of [`ENDPOINTS_MANAGED_BY_LABEL`].
pub const ENDPOINTS_CONTROLLER: &str = "endpoint-controller";
/// `service.kubernetes.io/headless`: empty-valued label on Endpoints and slices of a Service
/// whose clusterIP is `None`.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// `endpointslice.kubernetes.io/skip-mirror`: `"true"` keeps Endpoints from being mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Annotation set on Endpoints truncated to [`MAX_ENDPOINTS_ADDRESSES`] addresses.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Reason of the Warning recorded when a named targetPort is missing from a selected pod.
pub const PORT_NOT_FOUND: &str = "PortNotFound";

/// What one pass observed for one Service key.
#[derive(Clone, Debug, Default)]
pub struct ObservedService {
    /// Namespace of the Service key.
    pub namespace: String,
    /// Name of the Service key (also the Endpoints' name).
    pub name: String,
    /// The Service, or `None` if it does not exist (deleted).
    pub service: Option<Service>,
    /// Pods of the namespace; the planner keeps those the selector matches (passing only
    /// those is fine and cheaper).
    pub pods: Vec<Pod>,
    /// The Endpoints object named like the Service, if any.
    pub endpoints: Option<Endpoints>,
    /// Slices of the namespace labelled `kubernetes.io/service-name: <name>` (any manager,
    /// any owner; the planner only touches its own).
    pub slices: Vec<EndpointSlice>,
}

/// A write to the Endpoints object.
#[derive(Clone, Debug, PartialEq)]
pub enum EndpointsAction {
    /// Create it.
    Create(Endpoints),
    /// Replace it (its resourceVersion is the observed one).
    Update(Endpoints),
    /// Delete it (uid precondition).
    Delete {
        /// Its name.
        name: String,
        /// Its uid, as a precondition.
        uid: String,
    },
}

/// A write to one EndpointSlice.
#[derive(Clone, Debug, PartialEq)]
pub enum SliceAction {
    /// Create it: `metadata.name` is unset and `metadata.generateName` is `<service>-`; the
    /// reconciler appends a random suffix.
    Create(EndpointSlice),
    /// Replace it in place (its resourceVersion is the observed one).
    Update(EndpointSlice),
    /// Delete it (uid precondition).
    Delete {
        /// Its name.
        name: String,
        /// Its uid, as a precondition.
        uid: String,
    },
}

/// The result of one pass. Empty when nothing differs from what was observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointsPlan {
    /// Slice writes, ordered: creations, updates, deletions.
    pub slices: Vec<SliceAction>,
    /// The Endpoints write, if any.
    pub endpoints: Option<EndpointsAction>,
    /// The Service with its new status, to write through `/status`, if it changes.
    pub status: Option<Service>,
    /// Events to record on the Service (the reconciler records each distinct one once).
    pub events: Vec<Event>,
}

impl EndpointsPlan {
    /// Whether the plan writes nothing.
    pub fn is_noop(&self) -> bool {
        self.slices.is_empty() && self.endpoints.is_none() && self.status.is_none()
    }
}

/// The Service's selector, when it selects pods for this controller (non-empty selector and
/// type other than `ExternalName`).
pub fn pod_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `labels` satisfy an equality selector (every pair present).
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

fn has_selector(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

fn endpoints_written_by_controller(ep: &Endpoints) -> bool {
    ep.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ENDPOINTS_MANAGED_BY_LABEL))
        .is_some_and(|v| v == ENDPOINTS_CONTROLLER)
}

fn delete_endpoints(ep: &Endpoints) -> EndpointsAction {
    EndpointsAction::Delete {
        name: ep.metadata.name.clone().unwrap_or_default(),
        uid: ep.metadata.uid.clone().unwrap_or_default(),
    }
}

/// One pass: see the module documentation.
pub fn plan(observed: &ObservedService) -> EndpointsPlan {
    let mut plan = EndpointsPlan::default();
    let Some(service) = &observed.service else {
        if let Some(ep) = observed
            .endpoints
            .as_ref()
            .filter(|e| endpoints_written_by_controller(e))
        {
            plan.endpoints = Some(delete_endpoints(ep));
        }
        plan.slices = slices::delete_all(&observed.slices, MIRRORING_CONTROLLER, None);
        return plan;
    };
    plan.status = status::plan_status(service);
    let service_uid = service.metadata.uid.as_deref().unwrap_or("");
    if let Some(selector) = pod_selector(service) {
        let pods: Vec<&Pod> = observed
            .pods
            .iter()
            .filter(|p| {
                p.metadata.namespace.as_deref().unwrap_or("") == observed.namespace
                    && selector_matches(
                        selector,
                        p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                    )
            })
            .collect();
        let resolved = ports::resolve_all(service, &pods);
        plan.events = resolved.events.clone();
        plan.endpoints = legacy::plan_endpoints(observed, service, &pods, &resolved);
        plan.slices = slices::plan_selector_slices(observed, service, &pods, &resolved);
        plan.slices.extend(slices::delete_all(
            &observed.slices,
            MIRRORING_CONTROLLER,
            None,
        ));
        return plan;
    }
    // Not selecting pods: what the slice controller wrote for this Service goes away.
    let mut actions = slices::delete_all(&observed.slices, SLICE_CONTROLLER, Some(service_uid));
    if has_selector(service) {
        // ExternalName with a selector: neither selected nor mirrored.
        if let Some(ep) = observed
            .endpoints
            .as_ref()
            .filter(|e| endpoints_written_by_controller(e))
        {
            plan.endpoints = Some(delete_endpoints(ep));
        }
        actions.extend(slices::delete_all(
            &observed.slices,
            MIRRORING_CONTROLLER,
            None,
        ));
    } else {
        let mut mirrored = mirror::plan_mirror(observed, service);
        // Creations first, then the rest, then the deletions of the other manager.
        mirrored.extend(actions);
        actions = mirrored;
    }
    plan.slices = slices::order(actions);
    plan
}
