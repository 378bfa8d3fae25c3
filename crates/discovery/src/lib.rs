//! Discovery and OpenAPI documents, computed from the resource registry in `slipway-core`:
//! `/version`, aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1), legacy discovery
//! (`APIVersions`, `APIGroupList`, `APIResourceList`), and the OpenAPI v3 index and
//! per-group-version documents that kubectl's field validation needs.

use serde_json::Value;

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
    unimplemented!("helper fills in")
}

/// The aggregated discovery list for `/api` (`core == true`) or `/apis`.
pub fn aggregated(_core: bool, _version: AggregatedVersion) -> Value {
    unimplemented!("helper fills in")
}

/// Legacy `/api`: `APIVersions`.
pub fn api_versions(_server_address: &str) -> Value {
    unimplemented!("helper fills in")
}

/// Legacy `/apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    unimplemented!("helper fills in")
}

/// Legacy `/apis/<group>`: one `APIGroup`, or `None` if the group is not served.
pub fn api_group(_group: &str) -> Option<Value> {
    unimplemented!("helper fills in")
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`: `APIResourceList`, or `None`.
pub fn api_resource_list(_group: &str, _version: &str) -> Option<Value> {
    unimplemented!("helper fills in")
}

/// `/openapi/v3`: the index of per-group-version documents, with `serverRelativeURL`s that
/// carry a content hash.
pub fn openapi_v3_index() -> Value {
    unimplemented!("helper fills in")
}

/// `/openapi/v3/<path>` where `path` is `api/v1` or `apis/<group>/<version>`, or `None`.
pub fn openapi_v3_document(_path: &str) -> Option<Value> {
    unimplemented!("helper fills in")
}
