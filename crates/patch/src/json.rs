//! RFC 6902 JSON patch on top of the `json-patch` crate, with Kubernetes-style errors.

use crate::PatchError;
use json_patch::{Patch, PatchErrorKind, PatchOperation};
use serde_json::Value;

/// Applies `patch` (a JSON array of operations) to a copy of `doc`.
pub(crate) fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_array() {
        return Err(PatchError::Malformed(format!(
            "json patch must be a JSON array of operations, got {}",
            type_name(patch)
        )));
    }
    let operations: Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("invalid json patch: {e}")))?;
    let mut result = doc.clone();
    // The copy is discarded on error, so the crate's undo machinery is not needed.
    json_patch::patch_unsafe(&mut result, &operations.0).map_err(|e| {
        let operation = operations.0.get(e.operation);
        PatchError::CannotApply(describe_failure(e.operation, operation, &e.kind))
    })?;
    Ok(result)
}

fn describe_failure(
    index: usize,
    operation: Option<&PatchOperation>,
    kind: &PatchErrorKind,
) -> String {
    let Some(operation) = operation else {
        return format!("json patch operation {index} failed: {kind}");
    };
    let (name, path, from) = match operation {
        PatchOperation::Add(op) => ("add", op.path.as_str(), None),
        PatchOperation::Remove(op) => ("remove", op.path.as_str(), None),
        PatchOperation::Replace(op) => ("replace", op.path.as_str(), None),
        PatchOperation::Move(op) => ("move", op.path.as_str(), Some(op.from.as_str())),
        PatchOperation::Copy(op) => ("copy", op.path.as_str(), Some(op.from.as_str())),
        PatchOperation::Test(op) => ("test", op.path.as_str(), None),
    };
    match kind {
        PatchErrorKind::TestFailed => {
            format!(
                "json patch test operation {index} failed: the value at path \"{path}\" does not match"
            )
        }
        PatchErrorKind::InvalidFromPointer => format!(
            "json patch {name} operation {index} does not apply: doc is missing from path \"{}\"",
            from.unwrap_or("")
        ),
        PatchErrorKind::CannotMoveInsideItself => format!(
            "json patch move operation {index} does not apply: cannot move \"{}\" into its own child \"{path}\"",
            from.unwrap_or("")
        ),
        _ if name == "add" => format!(
            "json patch add operation {index} does not apply: the parent of path \"{path}\" does not exist or cannot hold it"
        ),
        _ => format!(
            "json patch {name} operation {index} does not apply: doc is missing path \"{path}\""
        ),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
