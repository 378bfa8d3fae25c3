//! Kubernetes label selectors (equality- and set-based) and field selectors: parsing from the
//! query-string syntax, conversion from `metav1.LabelSelector` objects, and matching.

use serde_json::Value;
use std::collections::BTreeMap;

/// A parse error, worded so that it can be returned to the user in a 400 `Status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// A parsed label selector: a conjunction of requirements. The empty selector matches
/// everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    _todo: (),
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(_s: &str) -> Result<LabelSelector, SelectorError> {
        unimplemented!("helper fills in")
    }

    /// Converts a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    /// `None`/null selects nothing (as Kubernetes treats a nil selector); `{}` selects everything.
    pub fn from_object(_selector: Option<&Value>) -> Result<LabelSelector, SelectorError> {
        unimplemented!("helper fills in")
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, _labels: &BTreeMap<String, String>) -> bool {
        unimplemented!("helper fills in")
    }

    /// Whether this selector selects every object.
    pub fn is_everything(&self) -> bool {
        unimplemented!("helper fills in")
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical query syntax (as `metav1.FormatLabelSelector` prints it, e.g. `app=web`).
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        unimplemented!("helper fills in")
    }
}

/// A parsed field selector: `a=b,c!=d` (also `==`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    _todo: (),
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax.
    pub fn parse(_s: &str) -> Result<FieldSelector, SelectorError> {
        unimplemented!("helper fills in")
    }

    /// The field names used, to check them against what the resource supports.
    pub fn fields(&self) -> Vec<&str> {
        unimplemented!("helper fills in")
    }

    /// Whether the selector matches, given a lookup from field name to the object's value.
    /// A field the lookup does not know (`None`) compares as the empty string.
    pub fn matches(&self, _lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        unimplemented!("helper fills in")
    }

    /// If the selector pins `metadata.name` with `=`, the name (used to serve it by key).
    pub fn exact_name(&self) -> Option<&str> {
        unimplemented!("helper fills in")
    }
}
