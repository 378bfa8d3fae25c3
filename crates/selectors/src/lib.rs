//! Kubernetes label selectors (equality- and set-based) and field selectors: parsing from the
//! query-string syntax, conversion from `metav1.LabelSelector` objects, and matching.
//!
//! Everything here is pure. Parse errors are worded as the Kubernetes API server words them
//! (e.g. `unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt`),
//! so callers can return them in a 400 `Status`.

mod field;
mod label;
mod validation;

pub use field::{FieldSelector, FieldTerm, escape_value, unescape_value};
pub use label::{LabelSelector, Operator, Requirement};
pub use validation::{dns1123_subdomain_errors, label_value_errors, qualified_name_errors};

/// A parse error, worded so that it can be returned to the user in a 400 `Status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[cfg(test)]
mod tests;
