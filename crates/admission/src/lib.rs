//! Admission of API objects, as Kubernetes 1.33 does it for the served kinds: decoding (with
//! strict, warn or ignore handling of unknown and duplicate fields), defaulting, and
//! validation (creates and updates), producing Kubernetes' exact error wording and field paths.
//!
//! Everything here is pure: no I/O, no clock, no randomness.

// `ApiError` is the shared error type of the public API; boxing it would change signatures.
#![allow(clippy::result_large_err)]

mod decode;
pub mod defaults;
pub mod gofmt;
pub mod names;
pub mod quantity;
pub mod validation;

use serde_json::Value;
use slipway_core::{ApiError, ResourceInfo};

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

impl FieldValidation {
    /// Parses the query parameter (`Ignore`, `Warn`, `Strict`); an empty value is `Warn`,
    /// as on the API server. Anything else is a 400 like Kubernetes'.
    pub fn parse(value: &str) -> Result<FieldValidation, ApiError> {
        match value {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}. Supported values: Ignore, Warn, Strict"
            ))),
        }
    }
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
/// Missing `apiVersion`/`kind` are taken from `info`, as the API server takes them from the
/// URL. For cluster-scoped kinds `metadata.namespace` is dropped. Quantities are accepted as
/// strings or numbers and stored in canonical form (`0.5` → `500m`). Create-time defaults
/// (pod service account and tolerations, the namespace finalizer) apply when the body has no
/// `metadata.resourceVersion`.
///
/// Errors: a wrong `apiVersion`/`kind` (400, `the API version in the data (x) does not match
/// the expected API version (y)`), a value of the wrong type (400, `<Kind> in version "v1"
/// cannot be handled as a <Kind>: ...` naming the field path), unknown fields under
/// `Strict` (400, `strict decoding error: unknown field "spec.foo"`).
pub fn decode(
    info: &ResourceInfo,
    body: Value,
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    decode::decode(info, body, validation)
}

/// Validates a decoded object for create (`old == None`) or update, as Kubernetes 1.33 does,
/// including metadata (names, labels, annotations) and immutable fields on update.
/// Errors are 422 `Invalid` with one cause per field.
pub fn validate(info: &ResourceInfo, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    validation::validate(info, new, old)
}

/// Validates a write to the `status` subresource, as Kubernetes' status strategies do: the
/// metadata update and the kind's status checks (Deployment and ReplicaSet counters), not
/// the spec, which the write cannot change. Errors are 422 `Invalid` as for [`validate`].
pub fn validate_status_update(
    info: &ResourceInfo,
    new: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    validation::validate_status_update(info, new, old)
}
