//! Rollout validation (`slipway.dev/v1alpha1`): metadata as for any object, the selector and
//! pod template as a Deployment's, the selector immutable on update, and the Rollout's own
//! fields by [`slipway_rollout::validate::spec`].

use super::Errors;
use super::apps::{selector_and_template, selector_immutable};
use super::meta::{self, NameRule};
use crate::validation::Path;
use slipway_rollout::Rollout;

/// Rollout create and update.
pub fn rollout(new: &Rollout, old: Option<&Rollout>) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let spec = &new.spec;
    let own = slipway_rollout::validate::spec(spec);
    // `spec.replicas` comes first, as on a Deployment; then the selector and template.
    let (replicas, rest): (Vec<_>, Vec<_>) =
        own.into_iter().partition(|e| e.field == "spec.replicas");
    errs.extend(replicas);
    selector_and_template(
        spec.selector.as_ref(),
        &spec.template,
        &Path::new("spec"),
        &mut errs,
    );
    errs.extend(rest);
    if let Some(old) = old
        && let (Some(new_sel), Some(old_sel)) = (&spec.selector, &old.spec.selector)
    {
        selector_immutable(new_sel, old_sel, &mut errs);
    }
    errs
}
