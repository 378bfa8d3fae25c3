//! `pods/log`. Pod processes are run by the node agent; until a pod has run, its log is empty.

use crate::http::AppState;
use crate::query::Query;
use crate::target::ResourceTarget;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, header};
use serde_json::Value;
use slipway_core::ApiError;
use std::sync::Arc;

/// The names of a pod's containers (init containers first).
pub fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Serves a pod's log, checking the container name as the API server does.
pub fn serve(state: &Arc<AppState>, t: &ResourceTarget, q: &Query) -> Result<Response, ApiError> {
    let pod = state.rest.get(t)?;
    let pod_name = t.name.as_deref().unwrap_or("");
    let names = container_names(&pod);
    match &q.container {
        Some(c) if !names.contains(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        None if names.len() > 1 => {
            let regular: Vec<String> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                regular.join(" ")
            )));
        }
        _ => {}
    }
    let mut resp = Response::new(Body::from(Bytes::new()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
