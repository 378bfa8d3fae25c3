//! Patch engines for the four patch types kubectl sends: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and Kubernetes' strategic merge patch. (Server-side apply lives in
//! `slipway-fieldmanager`.) All functions are pure: the input documents are not modified.

use serde_json::Value;

/// Why a patch could not be applied. The message is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not a valid patch of its type (400 BadRequest on Kubernetes).
    #[error("{0}")]
    Malformed(String),
    /// The patch is well-formed but cannot be applied to this document, e.g. a JSON patch
    /// `replace` of a missing path or a failed `test` (422 Invalid on Kubernetes).
    #[error("{0}")]
    CannotApply(String),
}

/// Applies an RFC 6902 JSON patch (`patch` is the parsed body, which must be an array).
pub fn json_patch(_doc: &Value, _patch: &Value) -> Result<Value, PatchError> {
    unimplemented!("helper fills in")
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(_doc: &Value, _patch: &Value) -> Result<Value, PatchError> {
    unimplemented!("helper fills in")
}

/// Applies a strategic merge patch to an object of `kind`, using
/// `slipway_core::merge_schema` for list merge keys and `$retainKeys`, and honouring the
/// directives `$patch` (replace/delete/merge), `$retainKeys`, `$setElementOrder/<field>` and
/// `$deleteFromPrimitiveList/<field>`. Kinds without a schema are refused with
/// [`PatchError::Malformed`]; callers answer 415 for them as Kubernetes does for custom
/// resources.
pub fn strategic_merge_patch(_kind: &str, _doc: &Value, _patch: &Value) -> Result<Value, PatchError> {
    unimplemented!("helper fills in")
}
