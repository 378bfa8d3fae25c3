//! The garbage collector's decisions (pure): what to do with an object given the state of its
//! owners, and what an owner being deleted with the `orphan` or `foregroundDeletion`
//! finalizer must do to its dependents.
//!
//! Semantics (Kubernetes' garbage collector):
//! - A dependent whose owners are all gone is deleted (background propagation), or with
//!   foreground propagation if an owner went away in foreground mode.
//! - A dependent with some owners gone and some present loses only the dangling references.
//! - An owner with the `orphan` finalizer first removes its reference from every dependent,
//!   then drops the finalizer.
//! - An owner with the `foregroundDeletion` finalizer deletes its dependents (in foreground
//!   mode) and drops the finalizer once no dependent with `blockOwnerDeletion: true` remains.

use serde_json::{Value, json};

/// Finalizer of owners deleted with `propagationPolicy: Orphan`.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer of owners deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// One `metadata.ownerReferences` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// UID of the owner.
    pub uid: String,
    /// `blockOwnerDeletion`.
    pub block_owner_deletion: bool,
}

/// What the collector knows of one owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// No object with the reference's UID exists (verified against the API).
    Absent,
    /// The owner exists and is not being deleted in foreground mode.
    Present,
    /// The owner is being deleted with the `foregroundDeletion` finalizer.
    DeletingForeground,
}

/// What to do to a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependentAction {
    /// Nothing.
    Keep,
    /// Delete it, with this propagation policy.
    Delete {
        /// `Background` or `Foreground`.
        propagation: &'static str,
    },
    /// Remove the references to these owner UIDs (a JSON merge patch of `ownerReferences`
    /// is not enough for lists; the caller writes the remaining list).
    RemoveOwnerRefs(Vec<String>),
}

/// Reads `metadata.ownerReferences`.
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(OwnerRef {
                api_version: r.get("apiVersion")?.as_str()?.to_string(),
                kind: r.get("kind")?.as_str()?.to_string(),
                name: r.get("name")?.as_str()?.to_string(),
                uid: r.get("uid")?.as_str()?.to_string(),
                block_owner_deletion: r
                    .get("blockOwnerDeletion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect()
}

/// Decides the fate of a dependent from the states of its owners (same order as `refs`).
pub fn plan_dependent(refs: &[OwnerRef], states: &[OwnerState]) -> DependentAction {
    if refs.is_empty() || refs.len() != states.len() {
        return DependentAction::Keep;
    }
    let absent: Vec<String> = refs
        .iter()
        .zip(states)
        .filter(|(_, s)| **s == OwnerState::Absent)
        .map(|(r, _)| r.uid.clone())
        .collect();
    let foreground = refs
        .iter()
        .zip(states)
        .any(|(r, s)| *s == OwnerState::DeletingForeground && r.block_owner_deletion);
    if absent.len() == refs.len() {
        return DependentAction::Delete {
            propagation: "Background",
        };
    }
    let solid = states.contains(&OwnerState::Present);
    if !solid && foreground {
        // Every remaining owner waits for us in foreground mode.
        return DependentAction::Delete {
            propagation: "Foreground",
        };
    }
    if absent.is_empty() {
        DependentAction::Keep
    } else {
        DependentAction::RemoveOwnerRefs(absent)
    }
}

/// The remaining `ownerReferences` after removing `uids`, as the JSON to write back.
pub fn without_owner_refs(obj: &Value, uids: &[String]) -> Value {
    let remaining: Vec<Value> = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| {
            r.get("uid")
                .and_then(Value::as_str)
                .is_none_or(|u| !uids.iter().any(|x| x == u))
        })
        .cloned()
        .collect();
    if remaining.is_empty() {
        Value::Null
    } else {
        json!(remaining)
    }
}

/// What an owner under deletion must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerAction {
    /// Remove its reference from these dependents (keys), then come back.
    Orphan(Vec<String>),
    /// Delete these dependents in foreground mode, then come back.
    DeleteDependents(Vec<String>),
    /// Drop this finalizer: its work is done.
    RemoveFinalizer(&'static str),
    /// Wait for dependents that are already going away.
    Wait,
    /// Nothing to do.
    Nothing,
}

/// One dependent of an owner under deletion: its key, whether it blocks the owner's
/// deletion, and whether it is already being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependent {
    /// `namespace/name` with its resource.
    pub key: String,
    /// `blockOwnerDeletion` on the reference to this owner.
    pub blocks: bool,
    /// It has a `deletionTimestamp`.
    pub deleting: bool,
}

/// Decides the next step for an owner with a `deletionTimestamp`.
pub fn plan_owner(finalizers: &[String], dependents: &[Dependent]) -> OwnerAction {
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    if has(ORPHAN_FINALIZER) {
        if dependents.is_empty() {
            return OwnerAction::RemoveFinalizer(ORPHAN_FINALIZER);
        }
        return OwnerAction::Orphan(dependents.iter().map(|d| d.key.clone()).collect());
    }
    if has(FOREGROUND_FINALIZER) {
        let to_delete: Vec<String> = dependents
            .iter()
            .filter(|d| !d.deleting)
            .map(|d| d.key.clone())
            .collect();
        if !to_delete.is_empty() {
            return OwnerAction::DeleteDependents(to_delete);
        }
        if dependents.iter().any(|d| d.blocks) {
            return OwnerAction::Wait;
        }
        return OwnerAction::RemoveFinalizer(FOREGROUND_FINALIZER);
    }
    OwnerAction::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: uid.into(),
            uid: uid.into(),
            block_owner_deletion: block,
        }
    }

    #[test]
    fn dependents_follow_their_owners() {
        use OwnerState::*;
        let cases: Vec<(&str, Vec<OwnerRef>, Vec<OwnerState>, DependentAction)> = vec![
            ("no owners", vec![], vec![], DependentAction::Keep),
            (
                "owner present",
                vec![r("a", true)],
                vec![Present],
                DependentAction::Keep,
            ),
            (
                "owner gone",
                vec![r("a", true)],
                vec![Absent],
                DependentAction::Delete {
                    propagation: "Background",
                },
            ),
            (
                "one of two gone",
                vec![r("a", true), r("b", false)],
                vec![Absent, Present],
                DependentAction::RemoveOwnerRefs(vec!["a".into()]),
            ),
            (
                "owner deleting in foreground, blocking",
                vec![r("a", true)],
                vec![DeletingForeground],
                DependentAction::Delete {
                    propagation: "Foreground",
                },
            ),
            (
                "owner deleting in foreground, not blocking",
                vec![r("a", false)],
                vec![DeletingForeground],
                DependentAction::Keep,
            ),
            (
                "foreground and present",
                vec![r("a", true), r("b", false)],
                vec![DeletingForeground, Present],
                DependentAction::Keep,
            ),
        ];
        for (name, refs, states, want) in cases {
            assert_eq!(plan_dependent(&refs, &states), want, "case {name}");
        }
    }

    #[test]
    fn owners_orphan_or_wait_for_dependents() {
        let dep = |k: &str, blocks, deleting| Dependent {
            key: k.into(),
            blocks,
            deleting,
        };
        let f = |s: &str| vec![s.to_string()];
        assert_eq!(
            plan_owner(&f("orphan"), &[dep("a", true, false)]),
            OwnerAction::Orphan(vec!["a".into()])
        );
        assert_eq!(
            plan_owner(&f("orphan"), &[]),
            OwnerAction::RemoveFinalizer("orphan")
        );
        assert_eq!(
            plan_owner(&f("foregroundDeletion"), &[dep("a", true, false)]),
            OwnerAction::DeleteDependents(vec!["a".into()])
        );
        assert_eq!(
            plan_owner(&f("foregroundDeletion"), &[dep("a", true, true)]),
            OwnerAction::Wait
        );
        assert_eq!(
            plan_owner(&f("foregroundDeletion"), &[dep("a", false, true)]),
            OwnerAction::RemoveFinalizer("foregroundDeletion")
        );
        assert_eq!(plan_owner(&f("example.com/x"), &[]), OwnerAction::Nothing);
    }

    #[test]
    fn removing_owner_refs_keeps_the_rest() {
        let obj = json!({"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b"}]}});
        assert_eq!(
            without_owner_refs(&obj, &["a".into()]),
            json!([{"uid": "b"}])
        );
        assert_eq!(
            without_owner_refs(&obj, &["a".into(), "b".into()]),
            Value::Null
        );
    }
}
