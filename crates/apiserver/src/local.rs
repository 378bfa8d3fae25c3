//! The in-process [`Client`]: controllers call the REST layer directly, so their writes get
//! the same admission, defaulting, validation and watch events as kubectl's, without HTTP.

use crate::logs::{PodIds, choose_container, read_tail};
use crate::negotiate::BodyFormat;
use crate::podio::PodIo;
use crate::query::Query;
use crate::rest::{DeleteOptions, Deleted, Rest};
use crate::target::ResourceTarget;
use serde_json::Value;
use slipway_client::{Client, DeleteParams, PatchType, WatchEvent, WatchStream};
use slipway_core::{ApiError, ResourceInfo, Subresource, meta};
use slipway_store::{EventType, StoreError};
use std::sync::Arc;

/// The field manager (and user agent) of in-process controllers, as on Kubernetes.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// A client served by the REST layer of this process.
#[derive(Clone)]
pub struct LocalClient {
    rest: Rest,
    manager: String,
    pod_io: Option<Arc<dyn PodIo>>,
}

impl LocalClient {
    /// A client whose writes are recorded under `manager`. It reads no pod logs until given
    /// the runtime's [`PodIo`] ([`LocalClient::with_pod_io`]).
    pub fn new(rest: Rest, manager: &str) -> LocalClient {
        LocalClient {
            rest,
            manager: manager.to_string(),
            pod_io: None,
        }
    }

    /// The same client, reading pod logs through `pod_io` (`None`: logs are empty).
    pub fn with_pod_io(mut self, pod_io: Option<Arc<dyn PodIo>>) -> LocalClient {
        self.pod_io = pod_io;
        self
    }

    fn target(
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> ResourceTarget {
        ResourceTarget {
            info,
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            name: name.map(str::to_string),
            subresource: None,
        }
    }

    fn query(&self) -> Query {
        Query {
            field_manager: Some(self.manager.clone()),
            ..Query::default()
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Rest) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let rest = self.rest.clone();
        tokio::task::spawn_blocking(move || f(rest))
            .await
            .map_err(|e| ApiError::internal(format!("client call failed: {e}")))?
    }
}

/// The object behind `arc`, without a copy when no one else holds it (a written object
/// usually: the store keeps a lean copy of its own).
fn owned(arc: Arc<Value>) -> Value {
    Arc::try_unwrap(arc).unwrap_or_else(|shared| (*shared).clone())
}

impl Client for LocalClient {
    async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        match self
            .rest
            .get_lean(&Self::target(info, namespace, Some(name)))
        {
            Ok(obj) => Ok(Some(obj)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Value>>, String), ApiError> {
        let page = self
            .rest
            .list(&Self::target(info, namespace, None), &Query::default())?;
        Ok((page.items, page.revision.to_string()))
    }

    async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        resource_version: &str,
    ) -> Result<WatchStream, ApiError> {
        let after: u64 = resource_version.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {resource_version:?}"))
        })?;
        let mut watcher =
            match self
                .rest
                .store()
                .watch(Some(&info.storage_prefix()), namespace, after)
            {
                Ok(w) => w,
                Err(StoreError::Expired { requested, oldest }) => {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {requested} ({oldest})"
                    )));
                }
                Err(e) => return Err(ApiError::internal(e.to_string())),
            };
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(ev) = watcher.recv().await {
                let obj = ev.object;
                let event = match ev.kind {
                    EventType::Added => WatchEvent::Added(obj),
                    EventType::Modified => WatchEvent::Modified(obj),
                    EventType::Deleted => WatchEvent::Deleted(obj),
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn create(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let t = Self::target(info, Some(meta::namespace(&obj)), None);
        let (q, ua) = (self.query(), self.manager.clone());
        self.blocking(move |rest| rest.create(&t, &q, obj, &ua).map(|w| owned(w.object)))
            .await
    }

    async fn replace(&self, info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let t = Self::target(info, Some(meta::namespace(&obj)), Some(meta::name(&obj)));
        let (q, ua) = (self.query(), self.manager.clone());
        self.blocking(move |rest| rest.update(&t, &q, obj, &ua).map(|w| owned(w.object)))
            .await
    }

    async fn replace_status(
        &self,
        info: &'static ResourceInfo,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut t = Self::target(info, Some(meta::namespace(&obj)), Some(meta::name(&obj)));
        t.subresource = Some(Subresource::Status);
        let (q, ua) = (self.query(), self.manager.clone());
        self.blocking(move |rest| rest.update(&t, &q, obj, &ua).map(|w| owned(w.object)))
            .await
    }

    async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let t = Self::target(info, namespace, Some(name));
        let format = match kind {
            PatchType::Merge => BodyFormat::MergePatch,
            PatchType::Strategic => BodyFormat::StrategicMergePatch,
            PatchType::Json => BodyFormat::JsonPatch,
        };
        let raw = serde_json::to_vec(&patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let (q, ua) = (self.query(), self.manager.clone());
        self.blocking(move |rest| {
            rest.patch(&t, &q, format, &raw, &ua)
                .map(|w| owned(w.object))
        })
        .await
    }

    async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        params: DeleteParams,
    ) -> Result<Option<Value>, ApiError> {
        let t = Self::target(info, namespace, Some(name));
        let opts = DeleteOptions {
            propagation_policy: params.propagation_policy,
            grace_period_seconds: params.grace_period_seconds,
            precondition_uid: params.precondition_uid,
            precondition_resource_version: params.precondition_resource_version,
            dry_run: false,
        };
        self.blocking(move |rest| match rest.delete(&t, &opts)? {
            Deleted::Gone(_) => Ok(None),
            Deleted::Pending(w) => Ok(Some(owned(w.object))),
        })
        .await
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let pods = slipway_core::resources::lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let mut t = Self::target(pods, Some(namespace), Some(name));
        t.subresource = Some(Subresource::Binding);
        let binding = slipway_client::binding_body(namespace, name, uid, node);
        let q = self.query();
        self.blocking(move |rest| rest.bind(&t, &q, binding).map(|_| ()))
            .await
    }

    async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail_lines: usize,
    ) -> Result<String, ApiError> {
        let pods = slipway_core::resources::lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let t = Self::target(pods, Some(namespace), Some(pod));
        let obj = self.rest.get(&t)?;
        let container = choose_container(&obj, pod, Some(container))?.unwrap_or_default();
        let Some(pod_io) = self.pod_io.clone() else {
            return Ok(String::new());
        };
        let ids = PodIds::of(&t, &obj);
        tokio::task::spawn_blocking(move || {
            read_tail(pod_io.as_ref(), &ids, &container, tail_lines)
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading the log failed: {e}")))?
    }
}
