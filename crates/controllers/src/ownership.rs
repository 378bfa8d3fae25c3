//! ControllerRef claiming (§3.1): adopt matching orphans, release owned objects whose labels
//! no longer match, ignore objects controlled by someone else.

use crate::error::PlanError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use slipway_selectors::LabelSelector as Selector;
use std::collections::BTreeMap;

/// A change of an object's controller reference, applied as a strategic-merge patch with the
/// object's UID as precondition (see [`OwnershipPatch::strategic_merge_patch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnershipPatch {
    /// The object's name.
    pub name: String,
    /// The object's UID (the patch's precondition).
    pub uid: String,
    /// What to change.
    pub change: OwnershipChange,
}

/// Adopt or release.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnershipChange {
    /// Add this controller reference.
    Adopt(OwnerReference),
    /// Remove the owner reference with this UID.
    Release {
        /// UID of the controller letting go.
        owner_uid: String,
    },
}

impl OwnershipPatch {
    /// The strategic-merge patch body Kubernetes' controllers send for this change.
    pub fn strategic_merge_patch(&self) -> Value {
        match &self.change {
            OwnershipChange::Adopt(owner) => json!({
                "metadata": {"ownerReferences": [owner], "uid": self.uid}
            }),
            OwnershipChange::Release { owner_uid } => json!({
                "metadata": {
                    "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                    "uid": self.uid
                }
            }),
        }
    }
}

/// The outcome of claiming: indices of the objects the owner keeps, and the patches to send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// Indices (into the input) of objects controlled by the owner whose labels match.
    pub owned: Vec<usize>,
    /// Adoptions (orphans that match) and releases (owned ones that no longer match).
    pub patches: Vec<OwnershipPatch>,
}

/// The controller reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controller reference (`controller: true`, `blockOwnerDeletion: true`).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Converts a typed selector into a matcher. A selector with neither `matchLabels` nor
/// `matchExpressions` matches everything.
pub fn selector_matcher(selector: &LabelSelector, object: &str) -> Result<Selector, PlanError> {
    let value = serde_json::to_value(selector).unwrap_or_else(|_| json!({}));
    Selector::from_object(Some(&value)).map_err(|e| PlanError::InvalidSelector {
        object: object.to_string(),
        message: e.0,
    })
}

/// Whether the selector selects everything (no requirements at all).
pub fn selects_everything(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// ClaimObjects: decides ownership of `objects` for the controller `owner_ref`. While the owner
/// is being deleted nothing is adopted or released; objects being deleted are not adopted.
pub fn claim(
    owner_ref: &OwnerReference,
    owner_deleting: bool,
    selector: &Selector,
    objects: &[&ObjectMeta],
) -> Claims {
    let mut claims = Claims::default();
    for (i, meta) in objects.iter().enumerate() {
        let empty = BTreeMap::new();
        let labels = meta.labels.as_ref().unwrap_or(&empty);
        let matches = selector.matches(labels);
        let uid = meta.uid.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(r) if r.uid != owner_ref.uid => {}
            Some(_) if matches => claims.owned.push(i),
            Some(_) => {
                if !owner_deleting {
                    claims.patches.push(OwnershipPatch {
                        name,
                        uid,
                        change: OwnershipChange::Release {
                            owner_uid: owner_ref.uid.clone(),
                        },
                    });
                }
            }
            None => {
                if owner_deleting || !matches || meta.deletion_timestamp.is_some() {
                    continue;
                }
                claims.patches.push(OwnershipPatch {
                    name,
                    uid,
                    change: OwnershipChange::Adopt(owner_ref.clone()),
                });
            }
        }
    }
    claims
}
