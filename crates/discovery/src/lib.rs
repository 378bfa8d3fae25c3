//! Discovery and OpenAPI documents, computed from the resource registry in `slipway-core`:
//! `/version`, aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1), legacy discovery
//! (`APIVersions`, `APIGroupList`, `APIResourceList`), and the OpenAPI v3 index and
//! per-group-version documents that kubectl's field validation needs.
//!
//! Every function is pure and deterministic: the same registry gives byte-identical
//! documents, so the OpenAPI hashes are stable across restarts.

mod aggregated;
mod legacy;
pub mod model;
mod openapi;
mod rollout_schema;
mod version;

use serde_json::Value;

pub use model::{subresource_kind, subresource_verbs, verbs};
pub use openapi::{ADVERTISED_PATCH_TYPES, content_hash, document_path};
pub use version::GIT_VERSION;

/// Which aggregated discovery version a client negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2`.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`.
    V2Beta1,
}

/// The `/version` body (major "1", minor "33").
pub fn version_info() -> Value {
    version::version_info()
}

/// The aggregated discovery list for `/api` (`core == true`) or `/apis`.
pub fn aggregated(core: bool, version: AggregatedVersion) -> Value {
    aggregated::aggregated(core, version)
}

/// Legacy `/api`: `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    legacy::api_versions(server_address)
}

/// Legacy `/apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    legacy::api_group_list()
}

/// Legacy `/apis/<group>`: one `APIGroup`, or `None` if the group is not served.
pub fn api_group(group: &str) -> Option<Value> {
    legacy::api_group(group)
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`: `APIResourceList`, or `None`.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    legacy::api_resource_list(group, version)
}

/// `/openapi/v3`: the index of per-group-version documents, with `serverRelativeURL`s that
/// carry a content hash.
pub fn openapi_v3_index() -> Value {
    openapi::openapi_v3_index()
}

/// `/openapi/v3/<path>` where `path` is `api/v1` or `apis/<group>/<version>`, or `None`.
pub fn openapi_v3_document(path: &str) -> Option<Value> {
    openapi::openapi_v3_document(path)
}

#[cfg(test)]
mod tests;
