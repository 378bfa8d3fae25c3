//! Admission of API objects, as Kubernetes 1.33 does it for the served kinds: decoding (with
//! strict, warn or ignore handling of unknown and duplicate fields), defaulting, and
//! validation (creates and updates), producing Kubernetes' exact error wording and field paths.

use slipway_core::{ApiError, ResourceInfo};
use serde_json::Value;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown or duplicate fields are dropped silently.
    Ignore,
    /// They are dropped, and reported as warnings (`Warning: 299` headers).
    #[default]
    Warn,
    /// They fail the request with 400 `strict decoding error: unknown field "spec.foo"`.
    Strict,
}

/// A decoded and defaulted object, with the warnings to return.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The canonical object: only known fields, defaults applied, `apiVersion`/`kind` set.
    pub object: Value,
    /// Warnings for the client (unknown fields under `Warn`, deprecations).
    pub warnings: Vec<String>,
}

/// Decodes `body` as an object of `info`'s kind and applies Kubernetes' defaults.
///
/// Errors: a wrong `apiVersion`/`kind` (400, `the API version in the data (x) does not match
/// the expected API version (y)`), a value of the wrong type (400, `<Kind> in version "v1"
/// cannot be handled as a <Kind>: ...` naming the field path), unknown fields under
/// `Strict` (400, `strict decoding error: unknown field "spec.foo"`).
pub fn decode(
    _info: &ResourceInfo,
    _body: Value,
    _validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    unimplemented!("helper fills in")
}

/// Validates a decoded object for create (`old == None`) or update, as Kubernetes 1.33 does,
/// including metadata (names, labels, annotations) and immutable fields on update.
/// Errors are 422 `Invalid` with one cause per field.
pub fn validate(_info: &ResourceInfo, _new: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
    unimplemented!("helper fills in")
}
