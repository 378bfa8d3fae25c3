//! Test support: an in-memory [`Client`] that serves a fixed set of objects and accepts
//! every write.

use parking_lot::Mutex;
use serde_json::Value;
use slipway_client::{Client, DeleteParams, PatchType, WatchStream};
use slipway_core::{ApiError, ResourceInfo, meta};
use std::sync::Arc;

/// Objects with their resource (`services`, `configmaps`...).
type Objects = Vec<(String, Arc<Value>)>;

#[derive(Clone, Default)]
pub(crate) struct FakeClient {
    pub objects: Arc<Mutex<Objects>>,
    /// Objects created (events), in order.
    pub created: Arc<Mutex<Vec<Value>>>,
}

impl FakeClient {
    pub fn with(objects: Vec<(&str, Value)>) -> FakeClient {
        let c = FakeClient::default();
        *c.objects.lock() = objects
            .into_iter()
            .map(|(r, v)| (r.to_string(), Arc::new(v)))
            .collect();
        c
    }

    fn matching(&self, info: &ResourceInfo, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.objects
            .lock()
            .iter()
            .filter(|(r, o)| {
                *r == info.plural && namespace.is_none_or(|ns| meta::namespace(o) == ns)
            })
            .map(|(_, o)| o.clone())
            .collect()
    }
}

impl Client for FakeClient {
    async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        Ok(self
            .matching(info, namespace)
            .into_iter()
            .find(|o| meta::name(o) == name))
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Arc<Value>>, String), ApiError> {
        Ok((self.matching(info, namespace), "1".into()))
    }

    async fn watch(
        &self,
        _info: &'static ResourceInfo,
        _namespace: Option<&str>,
        _resource_version: &str,
    ) -> Result<WatchStream, ApiError> {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        Ok(rx)
    }

    async fn create(&self, _info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        self.created.lock().push(obj.clone());
        Ok(obj)
    }

    async fn replace(&self, _info: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        Ok(obj)
    }

    async fn replace_status(
        &self,
        _info: &'static ResourceInfo,
        obj: Value,
    ) -> Result<Value, ApiError> {
        Ok(obj)
    }

    async fn patch(
        &self,
        _info: &'static ResourceInfo,
        _namespace: Option<&str>,
        _name: &str,
        _kind: PatchType,
        patch: Value,
    ) -> Result<Value, ApiError> {
        Ok(patch)
    }

    async fn delete(
        &self,
        _info: &'static ResourceInfo,
        _namespace: Option<&str>,
        _name: &str,
        _params: DeleteParams,
    ) -> Result<Option<Value>, ApiError> {
        Ok(None)
    }

    async fn bind(
        &self,
        _namespace: &str,
        _name: &str,
        _uid: &str,
        _node: &str,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    async fn pod_log(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: &str,
        _tail_lines: usize,
    ) -> Result<String, ApiError> {
        Ok(String::new())
    }
}
