//! Server-side apply and `metadata.managedFields` bookkeeping, as the Kubernetes 1.33 API
//! server does it: every write records which manager owns which fields (`FieldsV1`), and an
//! apply merges the applied configuration into the live object, removes fields the manager
//! applied before but no longer applies, and reports conflicts with other managers.
//!
//! Differences from Kubernetes, by design: list elements are keyed by the single merge key of
//! `slipway_core::merge_schema` (Kubernetes keys container ports by `containerPort` and
//! `protocol`), and only one API version per kind exists, so no version conversion happens.

pub mod fieldset;
mod last_applied;
pub mod managed;
mod schema;
mod walk;

pub use fieldset::{FieldSet, Path, PathElement, render_path};
pub use managed::{ManagedEntry, OPERATION_APPLY, OPERATION_UPDATE};

use schema::NodeSchema;
use serde_json::{Value, json};

/// A field owned by another manager that an apply wants to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field path in Kubernetes' apply notation, e.g. `.spec.replicas`.
    pub field: String,
}

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Conflicts with other managers (409 Conflict unless `force`). The message is
    /// Kubernetes': `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply"
    /// using apps/v1: .spec.replicas`.
    #[error("{message}")]
    Conflicts {
        /// The rendered message.
        message: String,
        /// Each conflicting field.
        conflicts: Vec<Conflict>,
    },
    /// The applied configuration is not usable (400/422).
    #[error("{0}")]
    Invalid(String),
}

/// The manager name for which Kubernetes keeps the client-side apply annotation in step
/// with server-side applies, and lets applies take over fields from client-side apply.
const KUBECTL_MANAGER: &str = "kubectl";

/// Server-side apply of `applied` (the parsed `apply-patch+yaml` body) by `manager`.
/// `live` is the current object, or `None` to create it. Returns the new object with
/// `metadata.managedFields` updated (operation `Apply`, time `now` in RFC 3339).
///
/// Contract: maps merge, keyed lists merge by key, set lists union, everything else is
/// replaced; fields the manager applied last time and no longer applies are removed unless
/// another manager owns them; changing a field another manager owns is a conflict unless
/// `force`, which moves the field to this manager. When nothing changes, the object and the
/// entry's time stay as they were. `.status` of kinds with a status subresource is ignored.
pub fn apply(
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be an object".to_string(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".to_string(),
        ));
    }
    let schema = NodeSchema::root(kind);
    let api_version = match slipway_core::meta::api_version(applied) {
        "" => live.map(slipway_core::meta::api_version).unwrap_or(""),
        v => v,
    }
    .to_string();

    let mut config = applied.clone();
    if schema::status_is_reset(kind)
        && let Some(map) = config.as_object_mut()
    {
        map.shift_remove("status");
    }
    walk::validate_applied(&config, schema).map_err(|e| {
        ApplyError::Invalid(format!(
            "failed to create typed patch object ({api_version}, Kind={kind}): {e}"
        ))
    })?;

    let mut base = live.cloned().unwrap_or_else(|| json!({}));
    let mut managers = managed::decode(&base);
    managed::strip(&mut base);

    let mut applied_set = walk::field_set_of(&config, schema);
    strip_ignored(&mut applied_set, kind, "");
    let mut entry = ManagedEntry {
        manager: manager.to_string(),
        operation: OPERATION_APPLY.to_string(),
        api_version: api_version.clone(),
        time: None,
        subresource: String::new(),
        fields: applied_set,
    };
    let previous = managers
        .iter()
        .position(|e| e.same_identity(&entry))
        .map(|i| managers.remove(i));

    let mut merged = walk::merge(&base, &config, schema);
    if let Some(previous) = &previous {
        let mut keep = entry.fields.clone();
        for other in &managers {
            keep.union_in_place(&other.fields);
        }
        walk::prune(&mut merged, &previous.fields, &keep, schema);
    }

    let comparison = walk::compare(&base, &merged, schema);
    let changed = comparison.added.union(&comparison.modified);
    let conflicts: Vec<(usize, FieldSet)> = managers
        .iter()
        .enumerate()
        .map(|(i, other)| (i, other.fields.intersection(&changed)))
        .filter(|(_, owned)| !owned.is_empty())
        .collect();
    if !conflicts.is_empty() && !force {
        let allowed = if manager == KUBECTL_MANAGER {
            last_applied::fields_matching_live(&base, &api_version, schema)
        } else {
            None
        };
        let remaining: Vec<(&ManagedEntry, FieldSet)> = conflicts
            .iter()
            .map(|(i, owned)| {
                let rest = match &allowed {
                    Some(allowed) => owned.difference(allowed),
                    None => owned.clone(),
                };
                (&managers[*i], rest)
            })
            .filter(|(_, rest)| !rest.is_empty())
            .collect();
        if !remaining.is_empty() {
            return Err(conflict_error(&remaining));
        }
    }
    for (i, owned) in &conflicts {
        managers[*i].fields = managers[*i].fields.difference(owned);
    }
    for other in &mut managers {
        other.fields = other.fields.difference(&comparison.removed);
    }

    walk::drop_applied_nulls(&mut merged, &config, schema);
    let unchanged = merged == base;
    entry.time = if unchanged {
        previous.and_then(|p| p.time)
    } else {
        Some(now.to_string())
    };
    if manager == KUBECTL_MANAGER {
        last_applied::refresh(&mut merged, applied);
    }
    managers.push(entry);
    managed::encode(&mut merged, managers);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s managedFields:
/// the fields that changed from `old` (all set fields on create) become owned by `manager`
/// with operation `Update` and are removed from other managers' sets. `subresource` is
/// `Some("status")` / `Some("scale")` for subresource writes.
///
/// Contract: removed fields leave every manager's set; empty entries are dropped; the
/// manager's entry is updated in place and its time changes only when it gained fields.
/// `managedFields: [{}]` in `new` clears the managed fields. Never panics.
pub fn record_update(
    kind: &str,
    api_version: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    if managed::is_reset_request(new) {
        managed::strip(new);
        return;
    }
    let schema = NodeSchema::root(kind);
    let subresource = subresource.unwrap_or("");
    let from_new = managed::decode(new);
    // Entries read from the stored object keep their `fieldsV1` text unless their fields
    // change (`None` then): most updates leave most managers' fields alone.
    let (mut managers, mut fields_v1): (Vec<ManagedEntry>, Vec<Option<&Value>>) =
        if subresource.is_empty() && !from_new.is_empty() {
            let none = vec![None; from_new.len()];
            (from_new, none)
        } else {
            old.map(managed::decode_with_fields_v1)
                .unwrap_or_default()
                .into_iter()
                .unzip()
        };

    // Compared as if neither side had `managedFields`; copies are stripped only when that
    // cannot be done in place.
    let in_place = match old {
        Some(o) => walk::compare_without_managed_fields(o, new, schema),
        None if !managed::has_managed_fields(new) => {
            Some(walk::compare(&schema::empty_object(kind), new, schema))
        }
        None => None,
    };
    let comparison = in_place.unwrap_or_else(|| {
        let mut before = match old {
            Some(o) => o.clone(),
            None => schema::empty_object(kind),
        };
        managed::strip(&mut before);
        let mut after = new.clone();
        managed::strip(&mut after);
        walk::compare(&before, &after, schema)
    });
    let mut changed = comparison.added.union(&comparison.modified);
    strip_ignored(&mut changed, kind, subresource);
    let mut removed = comparison.removed;
    strip_ignored(&mut removed, kind, subresource);

    let me = ManagedEntry {
        manager: manager.to_string(),
        operation: OPERATION_UPDATE.to_string(),
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        subresource: subresource.to_string(),
        fields: changed.clone(),
    };
    for (entry, text) in managers.iter_mut().zip(fields_v1.iter_mut()) {
        let mut lost = entry.fields.subtract(&removed);
        if !entry.same_identity(&me) {
            lost |= entry.fields.subtract(&changed);
        }
        if lost {
            *text = None;
        }
    }
    if !changed.is_empty() {
        match managers.iter().position(|e| e.same_identity(&me)) {
            Some(i) => {
                if !managers[i].fields.contains_all(&changed) {
                    managers[i].fields.union_in_place(&changed);
                    fields_v1[i] = None;
                }
                managers[i].time = me.time;
            }
            None => {
                managers.push(me);
                fields_v1.push(None);
            }
        }
    }
    managed::encode_reusing(new, managers.into_iter().zip(fields_v1).collect());
}

/// The field set of `obj` as an applier setting exactly `obj` would own it (without the
/// identity and server-managed metadata, and without `.status` of kinds with a status
/// subresource).
pub fn object_field_set(kind: &str, obj: &Value) -> FieldSet {
    let mut set = walk::field_set_of(obj, NodeSchema::root(kind));
    strip_ignored(&mut set, kind, "");
    set
}

/// Removes what is never owned: identity and server-managed metadata, `.status` for writes
/// to the main resource of kinds that reset it, `.spec` for status writes.
fn strip_ignored(set: &mut FieldSet, kind: &str, subresource: &str) {
    let field = |name: &str| PathElement::Field(name.to_string());
    for top in ["apiVersion", "kind"] {
        set.remove_subtree(&[field(top)]);
    }
    for meta in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.remove_subtree(&[field("metadata"), field(meta)]);
    }
    set.remove_member(&[field("metadata")]);
    match subresource {
        "status" => set.remove_subtree(&[field("spec")]),
        _ if schema::status_is_reset(kind) => set.remove_subtree(&[field("status")]),
        _ => {}
    }
    set.normalize();
}

/// Renders conflicts grouped by manager (sorted by manager identity), as Kubernetes does.
fn conflict_error(conflicts: &[(&ManagedEntry, FieldSet)]) -> ApplyError {
    let mut groups: Vec<(String, &ManagedEntry, Vec<String>)> = conflicts
        .iter()
        .map(|(entry, owned)| {
            let paths = owned.paths().iter().map(|p| render_path(p)).collect();
            (entry.identity_key(), *entry, paths)
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let total: usize = groups.iter().map(|g| g.2.len()).sum();
    let message = if total == 1 {
        let (_, entry, paths) = &groups[0];
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entry.describe(),
            paths[0]
        )
    } else {
        let mut lines = Vec::new();
        for (_, entry, paths) in &groups {
            lines.push(format!("conflicts with {}:", entry.describe()));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
    };
    let conflicts = groups
        .iter()
        .flat_map(|(_, entry, paths)| {
            paths.iter().map(|p| Conflict {
                manager: entry.manager.clone(),
                field: p.clone(),
            })
        })
        .collect();
    ApplyError::Conflicts { message, conflicts }
}
