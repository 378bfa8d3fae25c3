//! Patch engines for the four patch types kubectl sends: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and Kubernetes' strategic merge patch. (Server-side apply lives in
//! `slipway-fieldmanager`.) All functions are pure: the input documents are not modified.

mod json;
mod strategic;

use serde_json::{Map, Value};

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
/// Operations apply in order to a copy of `doc`; the first one that fails aborts the patch
/// with [`PatchError::CannotApply`] naming the operation and its path. Values may contain
/// nulls.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    json::apply(doc, patch)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a key,
/// anything else (lists included) replaces. Key order of `doc` is kept; new keys are
/// appended. Never fails.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut result = doc.clone();
    merge_into(&mut result, patch);
    Ok(result)
}

fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.shift_remove(key);
        } else {
            merge_into(target_map.entry(key.as_str()).or_insert(Value::Null), value);
        }
    }
}

/// Applies a strategic merge patch to an object of `kind`, using
/// `slipway_core::merge_schema` for list merge keys and `$retainKeys`, and honouring the
/// directives `$patch` (replace/delete/merge), `$retainKeys`, `$setElementOrder/<field>` and
/// `$deleteFromPrimitiveList/<field>`. Kinds without a schema are refused with
/// [`PatchError::Malformed`]; callers answer 415 for them as Kubernetes does for custom
/// resources.
///
/// Directives never appear in the result; unknown `$`-keys are ignored (as servers ignore
/// directives they do not know). A patch whose shape does not fit the document (an object
/// where the document has a list or the other way round, a merge-key list element without
/// its key, a malformed directive) is [`PatchError::Malformed`] with the field path.
pub fn strategic_merge_patch(kind: &str, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    strategic::apply(kind, doc, patch)
}

#[cfg(test)]
mod tests;
