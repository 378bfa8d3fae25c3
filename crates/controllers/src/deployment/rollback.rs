//! Legacy server-side rollback through `deprecated.deployment.rollback.to` (§10.1).

use super::pass::{NewReplicaSet, Pass};
use crate::Event;
use crate::annotations::{
    POD_TEMPLATE_HASH_LABEL, ROLLBACK_TO, last_revision, revision, set_deployment_annotations_to,
};
use crate::error::PlanError;
use crate::spec::name;
use crate::template::{equal_ignore_hash, rs_template};

/// Reason of the rollback warning events when the target revision does not exist.
pub const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
/// Reason of the rollback warning event when the target template is the current one.
pub const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
/// Reason of the rollback event.
pub const ROLLBACK_DONE: &str = "DeploymentRollback";

/// What a rollback pass decided: warnings to record at once, and events to record once the
/// Deployment update (always planned) succeeded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollbackOutcome {
    /// Warnings recorded regardless of the update's outcome.
    pub warnings: Vec<Event>,
    /// Events recorded after the Deployment update succeeded.
    pub on_update: Vec<Event>,
    /// Whether the pass ended on a hash collision instead.
    pub collision: bool,
}

/// rollback: resolves the target revision (0 = the previous one), copies its template and
/// annotations into `pass.deployment`, and clears the rollback annotation. The caller plans a
/// Deployment update with `pass.deployment`.
pub fn rollback(pass: &mut Pass, target: i64) -> Result<RollbackOutcome, PlanError> {
    let mut outcome = RollbackOutcome::default();
    if pass.ensure_new_replica_set(true)? == NewReplicaSet::Collision {
        outcome.collision = true;
        return Ok(outcome);
    }
    let all = pass.all_indices();
    let mut target = target;
    if target == 0 {
        target = last_revision(pass.refs(&all));
        if target == 0 {
            outcome.warnings.push(Event::warning(
                ROLLBACK_REVISION_NOT_FOUND,
                "Unable to find last revision.",
            ));
            clear_rollback_to(pass);
            return Ok(outcome);
        }
    }
    let found = all
        .iter()
        .copied()
        .find(|&i| revision(&pass.replica_sets[i].metadata).ok() == Some(target));
    let Some(index) = found else {
        outcome.warnings.push(Event::warning(
            ROLLBACK_REVISION_NOT_FOUND,
            "Unable to find the revision to rollback to.",
        ));
        clear_rollback_to(pass);
        return Ok(outcome);
    };
    let rs = pass.replica_sets[index].clone();
    let deployment_name = name(&pass.deployment.metadata).to_string();
    let current = pass.deployment.spec.as_ref().map(|s| s.template.clone());
    let target_template = rs_template(&rs).cloned().unwrap_or_default();
    if current
        .as_ref()
        .is_some_and(|t| equal_ignore_hash(t, &target_template))
    {
        outcome.warnings.push(Event::warning(
            ROLLBACK_TEMPLATE_UNCHANGED,
            format!(
                "The rollback revision contains the same template as current deployment \"{deployment_name}\""
            ),
        ));
    } else {
        let mut template = target_template;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        pass.deployment
            .spec
            .get_or_insert_with(Default::default)
            .template = template;
        set_deployment_annotations_to(&mut pass.deployment, &rs);
        outcome.on_update.push(Event::normal(
            ROLLBACK_DONE,
            format!("Rolled back deployment \"{deployment_name}\" to revision {target}"),
        ));
    }
    clear_rollback_to(pass);
    Ok(outcome)
}

fn clear_rollback_to(pass: &mut Pass) {
    if let Some(a) = pass.deployment.metadata.annotations.as_mut() {
        a.remove(ROLLBACK_TO);
    }
}
