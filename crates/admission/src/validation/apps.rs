//! Deployment and ReplicaSet validation (`pkg/apis/apps/validation`) and the selector
//! immutability the `apps/v1` registry strategies add on update.

use super::ErrorsExt;
use super::meta::{self, NameRule};
use super::pod::pod_template;
use super::{Errors, Path, non_negative};
use crate::gofmt::{self, quote};
use crate::names;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_core::FieldError;
use std::collections::BTreeMap;

/// A label selector as Kubernetes evaluates it.
enum Selector<'a> {
    /// A missing selector matches nothing.
    Nothing,
    /// An empty selector matches everything.
    Everything,
    /// A selector with requirements.
    Requirements(&'a LabelSelector),
}

/// `LabelSelectorAsSelector`; `None` when the selector is invalid.
fn as_selector(sel: Option<&LabelSelector>) -> Option<Selector<'_>> {
    let Some(sel) = sel else {
        return Some(Selector::Nothing);
    };
    let labels = sel.match_labels.as_ref().map_or(0, BTreeMap::len);
    let exprs = sel.match_expressions.as_ref().map_or(0, Vec::len);
    if labels + exprs == 0 {
        return Some(Selector::Everything);
    }
    for (k, v) in sel.match_labels.iter().flatten() {
        if !names::qualified_name(k).is_empty() || !names::label_value(v).is_empty() {
            return None;
        }
    }
    for r in sel.match_expressions.iter().flatten() {
        if !names::qualified_name(&r.key).is_empty() {
            return None;
        }
        let values = r.values.as_deref().unwrap_or(&[]);
        match r.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => return None,
            "Exists" | "DoesNotExist" if !values.is_empty() => return None,
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => return None,
        }
        if values.iter().any(|v| !names::label_value(v).is_empty()) {
            return None;
        }
    }
    Some(Selector::Requirements(sel))
}

/// Whether `labels` satisfy the selector.
fn matches(selector: &Selector<'_>, labels: &BTreeMap<String, String>) -> bool {
    match selector {
        Selector::Nothing => false,
        Selector::Everything => true,
        Selector::Requirements(sel) => {
            sel.match_labels
                .iter()
                .flatten()
                .all(|(k, v)| labels.get(k) == Some(v))
                && sel.match_expressions.iter().flatten().all(|r| {
                    let values = r.values.as_deref().unwrap_or(&[]);
                    let actual = labels.get(&r.key);
                    match r.operator.as_str() {
                        "In" => actual.is_some_and(|a| values.contains(a)),
                        "NotIn" => actual.is_none_or(|a| !values.contains(a)),
                        "Exists" => actual.is_some(),
                        "DoesNotExist" => actual.is_none(),
                        _ => false,
                    }
                })
        }
    }
}

/// `ValidateLabelSelector` (strict: label values in expressions must be valid).
fn label_selector(sel: &LabelSelector, path: &Path, errs: &mut Errors) {
    meta::labels(sel.match_labels.as_ref(), &path.child("matchLabels"), errs);
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = r.values.as_deref().unwrap_or(&[]);
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                p.child("operator"),
                quote(other),
                "not a valid selector operator",
            )),
        }
        errs.invalid_each(p.child("key"), &r.key, names::qualified_name(&r.key));
        for (vi, v) in values.iter().enumerate() {
            errs.invalid_each(p.child("values").index(vi), v, names::label_value(v));
        }
    }
}

/// The selector checks and template checks shared by Deployment, ReplicaSet and Rollout
/// specs.
pub(super) fn selector_and_template(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    path: &Path,
    errs: &mut Errors,
) {
    let sel_path = path.child("selector");
    match selector {
        None => errs.push(FieldError::required(&sel_path, "")),
        Some(sel) => {
            label_selector(sel, &sel_path, errs);
            let n = sel.match_labels.as_ref().map_or(0, BTreeMap::len)
                + sel.match_expressions.as_ref().map_or(0, Vec::len);
            if n == 0 {
                errs.push(FieldError::invalid(
                    &sel_path,
                    gofmt::label_selector(sel),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let Some(parsed) = as_selector(selector) else {
        errs.push(FieldError::invalid(
            &sel_path,
            selector
                .map(gofmt::label_selector)
                .unwrap_or_else(|| "null".into()),
            "invalid label selector",
        ));
        return;
    };
    let template_path = path.child("template");
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if !matches!(parsed, Selector::Everything)
        && !matches(&parsed, labels.unwrap_or(&BTreeMap::new()))
    {
        errs.push(FieldError::invalid(
            template_path.child("metadata").child("labels"),
            gofmt::string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    pod_template(template, &template_path, errs);
    let spec = template.spec.as_ref();
    let restart = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            template_path.child("spec").child("restartPolicy"),
            quote(restart),
            &["Always"],
        ));
    }
    if spec.and_then(|s| s.active_deadline_seconds).is_some() {
        errs.push(FieldError::forbidden(
            template_path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// The value of an int-or-percent, as `getIntOrPercentValue` computes it.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) if names::is_percent(s) => {
            s.trim_end_matches('%').parse().unwrap_or(0)
        }
        IntOrString::String(s) => s.parse().unwrap_or(0),
    }
}

fn positive_int_or_percent(v: Option<&IntOrString>, path: &Path, errs: &mut Errors) {
    match v {
        Some(IntOrString::String(s)) => {
            for msg in names::percent(s) {
                errs.push(FieldError::invalid(
                    path,
                    gofmt::int_or_string(&IntOrString::String(s.clone())),
                    msg,
                ));
            }
        }
        Some(IntOrString::Int(i)) => non_negative(i64::from(*i), path, errs),
        None => {}
    }
}

fn strategy(s: Option<&DeploymentStrategy>, path: &Path, errs: &mut Errors) {
    let default = DeploymentStrategy::default();
    let s = s.unwrap_or(&default);
    match s.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if s.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &s.rolling_update {
            None => errs.push(FieldError::required(
                path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let p = path.child("rollingUpdate");
                let unavailable = ru.max_unavailable.as_ref();
                let surge = ru.max_surge.as_ref();
                positive_int_or_percent(unavailable, &p.child("maxUnavailable"), errs);
                positive_int_or_percent(surge, &p.child("maxSurge"), errs);
                let zero = IntOrString::Int(0);
                if int_or_percent_value(unavailable.unwrap_or(&zero)) == 0
                    && int_or_percent_value(surge.unwrap_or(&zero)) == 0
                {
                    errs.push(FieldError::invalid(
                        p.child("maxUnavailable"),
                        gofmt::opt_int_or_string(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(IntOrString::String(pct)) = unavailable
                    && names::is_percent(pct)
                    && int_or_percent_value(&IntOrString::String(pct.clone())) > 100
                {
                    errs.push(FieldError::invalid(
                        p.child("maxUnavailable"),
                        gofmt::int_or_string(&IntOrString::String(pct.clone())),
                        "must not be greater than 100%",
                    ));
                }
            }
        },
        other => {
            let rolling = if s.rolling_update.is_some() {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            errs.push(FieldError::not_supported(
                path,
                format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{rolling}}}",
                    quote(other)
                ),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

fn deployment_spec(spec: &DeploymentSpec, selector_present: bool, path: &Path, errs: &mut Errors) {
    non_negative(
        i64::from(spec.replicas.unwrap_or(1)),
        &path.child("replicas"),
        errs,
    );
    selector_and_template(
        selector_present.then_some(&spec.selector),
        &spec.template,
        path,
        errs,
    );
    strategy(spec.strategy.as_ref(), &path.child("strategy"), errs);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    non_negative(min_ready, &path.child("minReadySeconds"), errs);
    if let Some(limit) = spec.revision_history_limit {
        non_negative(i64::from(limit), &path.child("revisionHistoryLimit"), errs);
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        let deadline = i64::from(deadline);
        non_negative(deadline, &path.child("progressDeadlineSeconds"), errs);
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn counters(
    path: &Path,
    values: &[(&str, Option<i64>)],
    replicas: i64,
    ready: i64,
    not_above_replicas: &[(&str, i64)],
    available: i64,
    errs: &mut Errors,
) {
    for (name, v) in values {
        if let Some(v) = v {
            non_negative(*v, &path.child(name), errs);
        }
    }
    for (name, v) in not_above_replicas {
        if *v > replicas {
            errs.push(FieldError::invalid(
                path.child(name),
                v.to_string(),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if available > ready {
        errs.push(FieldError::invalid(
            path.child("availableReplicas"),
            available.to_string(),
            "cannot be greater than readyReplicas",
        ));
    }
}

pub(super) fn deployment_status(s: &DeploymentStatus, errs: &mut Errors) {
    let g = |v: Option<i32>| v.map(i64::from);
    let replicas = i64::from(s.replicas.unwrap_or(0));
    let updated = i64::from(s.updated_replicas.unwrap_or(0));
    let ready = i64::from(s.ready_replicas.unwrap_or(0));
    let available = i64::from(s.available_replicas.unwrap_or(0));
    counters(
        &Path::new("status"),
        &[
            ("observedGeneration", s.observed_generation),
            ("replicas", g(s.replicas)),
            ("updatedReplicas", g(s.updated_replicas)),
            ("readyReplicas", g(s.ready_replicas)),
            ("availableReplicas", g(s.available_replicas)),
            ("unavailableReplicas", g(s.unavailable_replicas)),
            ("terminatingReplicas", g(s.terminating_replicas)),
            ("collisionCount", g(s.collision_count)),
        ],
        replicas,
        ready,
        &[
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ],
        available,
        errs,
    );
}

pub(super) fn replica_set_status(s: &ReplicaSetStatus, errs: &mut Errors) {
    let g = |v: Option<i32>| v.map(i64::from);
    let replicas = i64::from(s.replicas);
    let ready = i64::from(s.ready_replicas.unwrap_or(0));
    let available = i64::from(s.available_replicas.unwrap_or(0));
    counters(
        &Path::new("status"),
        &[
            ("replicas", Some(replicas)),
            ("fullyLabeledReplicas", g(s.fully_labeled_replicas)),
            ("readyReplicas", g(s.ready_replicas)),
            ("availableReplicas", g(s.available_replicas)),
            ("observedGeneration", s.observed_generation),
            ("terminatingReplicas", g(s.terminating_replicas)),
        ],
        replicas,
        ready,
        &[
            (
                "fullyLabeledReplicas",
                i64::from(s.fully_labeled_replicas.unwrap_or(0)),
            ),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ],
        available,
        errs,
    );
}

pub(super) fn selector_immutable(new: &LabelSelector, old: &LabelSelector, errs: &mut Errors) {
    if new != old {
        errs.push(FieldError::invalid(
            "spec.selector",
            gofmt::label_selector(new),
            "field is immutable",
        ));
    }
}

/// Deployment create and update.
/// `selector_present` says whether the object's JSON has `spec.selector`.
pub fn deployment(new: &Deployment, old: Option<&Deployment>, selector_present: bool) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let spec = new.spec.clone().unwrap_or_default();
    deployment_spec(&spec, selector_present, &Path::new("spec"), &mut errs);
    if let Some(old) = old {
        let old_spec = old.spec.clone().unwrap_or_default();
        selector_immutable(&spec.selector, &old_spec.selector, &mut errs);
        if let Some(status) = &new.status {
            deployment_status(status, &mut errs);
        }
    }
    errs
}

/// ReplicaSet create and update.
/// `selector_present` says whether the object's JSON has `spec.selector`.
pub fn replica_set(new: &ReplicaSet, old: Option<&ReplicaSet>, selector_present: bool) -> Errors {
    let mut errs = Errors::new();
    meta::metadata(
        &new.metadata,
        old.map(|o| &o.metadata),
        true,
        NameRule::Subdomain,
        &mut errs,
    );
    let spec = new.spec.clone().unwrap_or_default();
    let path = Path::new("spec");
    non_negative(
        i64::from(spec.replicas.unwrap_or(1)),
        &path.child("replicas"),
        &mut errs,
    );
    non_negative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
        &mut errs,
    );
    let template = spec.template.clone().unwrap_or_default();
    selector_and_template(
        selector_present.then_some(&spec.selector),
        &template,
        &path,
        &mut errs,
    );
    if let Some(old) = old {
        let old_spec = old.spec.clone().unwrap_or_default();
        selector_immutable(&spec.selector, &old_spec.selector, &mut errs);
        if let Some(status) = &new.status {
            replica_set_status(status, &mut errs);
        }
    }
    errs
}
