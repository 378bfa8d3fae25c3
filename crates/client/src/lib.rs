//! What controllers need from the API, and nothing more: a [`Client`] trait (get, list, watch,
//! create, replace, patch, delete) over objects held as JSON, an [`Informer`] that keeps a
//! local cache of one resource from a list and a watch, and a [`WorkQueue`] of object keys
//! with de-duplication and delayed requeue.
//!
//! In `slipway serve` the client is served in-process by the API server's REST layer, so
//! controller writes go through the same admission as kubectl's. Nothing here depends on the
//! embedded store, so a second implementation over a real cluster's API is possible.

pub mod correlator;
pub mod events;
mod informer;
mod queue;
mod remote;

pub use events::{EventWriter, PendingEvent, write_event};
pub use informer::{Informer, InformerEvent};
pub use queue::WorkQueue;
pub use remote::{RemoteClient, RemoteError, binding_body};

use serde_json::Value;
use slipway_core::{ApiError, ResourceInfo};
use std::future::Future;
use std::sync::Arc;

/// How a patch body is to be interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// RFC 6902.
    Json,
}

/// Options of a delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteParams {
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation_policy: Option<String>,
    /// Grace period; `Some(0)` deletes at once.
    pub grace_period_seconds: Option<i64>,
    /// Only delete the object with this UID.
    pub precondition_uid: Option<String>,
    /// Only delete the object at this resourceVersion.
    pub precondition_resource_version: Option<String>,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// An object was created (or entered the watched set).
    Added(Arc<Value>),
    /// An object changed.
    Modified(Arc<Value>),
    /// An object was removed; the value is its last state.
    Deleted(Arc<Value>),
}

/// A watch: events in order. The sender closes the channel when the watch ends; the
/// consumer then lists and watches again.
pub type WatchStream = tokio::sync::mpsc::Receiver<WatchEvent>;

/// The API as controllers use it. Errors are Kubernetes `Status` errors (404, 409, 410, ...).
/// Namespaced calls pass `Some(namespace)`; `None` means cluster-scoped, or all namespaces
/// for `list` and `watch`.
pub trait Client: Clone + Send + Sync + 'static {
    /// One object, or `None` if it does not exist.
    fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<Value>>, ApiError>> + Send;

    /// Every object, with the list's resourceVersion.
    fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<Arc<Value>>, String), ApiError>> + Send;

    /// Changes after `resource_version`. Fails with 410 when that is too old.
    fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        resource_version: &str,
    ) -> impl Future<Output = Result<WatchStream, ApiError>> + Send;

    /// Creates an object; returns it as stored.
    fn create(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// Replaces an object; its `metadata.resourceVersion` is a precondition (409 if stale).
    fn replace(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// Replaces an object's status; `metadata.resourceVersion` is a precondition.
    fn replace_status(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// Patches an object.
    fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// Deletes an object. `Ok(None)` when it is gone, `Ok(Some(obj))` when deletion is
    /// pending (finalizers, grace period).
    fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        params: DeleteParams,
    ) -> impl Future<Output = Result<Option<Value>, ApiError>> + Send;

    /// Binds the pod `namespace/name` to `node` (POST `pods/<name>/binding`), as a scheduler
    /// does; `uid` is a precondition. The bound pod arrives on the watch. 409 when the pod
    /// is already bound or is being deleted.
    fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// The last `tail_lines` lines of the log of `container` in the pod `namespace/pod`
    /// (`pods/log` with `tailLines`), each ending in a newline. Empty when the runtime keeps
    /// no logs (the simulated one); a 400 when the container has not started.
    fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail_lines: usize,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
}

/// The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_key(obj: &Value) -> String {
    let ns = slipway_core::meta::namespace(obj);
    let name = slipway_core::meta::name(obj);
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// Splits a key made by [`object_key`].
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}
