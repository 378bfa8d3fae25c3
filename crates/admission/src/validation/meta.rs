//! `metadata` validation (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`), labels,
//! annotations, owner references and finalizers.

use super::ErrorsExt;
use super::{Errors, Path, immutable, non_negative};
use crate::gofmt::quote;
use crate::names;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use slipway_core::FieldError;
use std::collections::BTreeMap;

/// Kubernetes' total annotation size limit, in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Which name format a kind requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Subdomain,
    /// RFC 1123 label: Namespace.
    Label,
    /// RFC 1035 label: Service.
    Dns1035,
    /// Only URL-path safety: Event and kinds without their own rule.
    PathSegment,
}

impl NameRule {
    /// The messages for `name`; `prefix` is true for `generateName`.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Label => names::dns1123_label(name),
            NameRule::Dns1035 => names::dns1035_label(name),
            NameRule::PathSegment => names::path_segment_name(name, prefix),
        }
    }
}

/// Label keys and values (`ValidateLabels`); the path names the map, not the key.
pub fn labels(labels: Option<&BTreeMap<String, String>>, path: &Path, errs: &mut Errors) {
    for (k, v) in labels.into_iter().flatten() {
        errs.invalid_each(path, k, names::qualified_name(k));
        errs.invalid_each(path, v, names::label_value(v));
    }
}

/// Annotation keys (qualified names, case-insensitive) and total size.
pub fn annotations(annotations: Option<&BTreeMap<String, String>>, path: &Path, errs: &mut Errors) {
    let Some(map) = annotations else { return };
    for k in map.keys() {
        errs.invalid_each(path, k, names::qualified_name(&k.to_lowercase()));
    }
    let size: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn owner_references(meta: &ObjectMeta, path: &Path, errs: &mut Errors) {
    let Some(refs) = &meta.owner_references else {
        return;
    };
    let mut controllers = Vec::new();
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                path.child("apiVersion"),
                quote(&r.api_version),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                path.child("kind"),
                "\"\"",
                "must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                path.child("name"),
                "\"\"",
                "must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                path.child("uid"),
                "\"\"",
                "must not be empty",
            ));
        }
        if r.controller == Some(true) {
            controllers.push(r.name.clone());
        }
    }
    if controllers.len() > 1 {
        let rendered = refs
            .iter()
            .map(|r| {
                format!(
                    "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}}}",
                    quote(&r.api_version),
                    quote(&r.kind),
                    quote(&r.name),
                    quote(&r.uid)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        errs.push(FieldError::invalid(
            path,
            format!("[]v1.OwnerReference{{{rendered}}}"),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn finalizers(meta: &ObjectMeta, path: &Path, errs: &mut Errors) {
    let Some(list) = &meta.finalizers else { return };
    for f in list {
        errs.invalid_each(path, f, names::qualified_name(f));
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            crate::gofmt::string_slice(Some(list)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    for f in list {
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                path,
                quote(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// `ValidateObjectMeta` for create.
pub fn object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    rule: NameRule,
    path: &Path,
    errs: &mut Errors,
) {
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                path.child("generateName"),
                quote(generate_name),
                msg,
            ));
        }
    }
    if name.is_empty() {
        // the server generates the name from generateName before it is stored
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid(path.child("name"), quote(name), msg));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            errs.invalid_each(
                path.child("namespace"),
                namespace,
                names::dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    non_negative(
        meta.generation.unwrap_or(0),
        &path.child("generation"),
        errs,
    );
    labels(meta.labels.as_ref(), &path.child("labels"), errs);
    annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
    owner_references(meta, &path.child("ownerReferences"), errs);
    finalizers(meta, &path.child("finalizers"), errs);
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable; labels, annotations, owner
/// references and finalizers are checked again.
/// Metadata of a create (`old == None`) or an update, at `metadata`.
pub fn metadata(
    new: &ObjectMeta,
    old: Option<&ObjectMeta>,
    namespaced: bool,
    rule: NameRule,
    errs: &mut Errors,
) {
    let path = Path::new("metadata");
    match old {
        None => object_meta(new, namespaced, rule, &path, errs),
        Some(o) => object_meta_update(new, o, &path, errs),
    }
}

/// Metadata of an update: identity fields are immutable.
pub fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path, errs: &mut Errors) {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    immutable(
        &s(&new.name),
        &s(&old.name),
        &path.child("name"),
        |v| quote(v),
        errs,
    );
    immutable(
        &s(&new.namespace),
        &s(&old.namespace),
        &path.child("namespace"),
        |v| quote(v),
        errs,
    );
    // the server copies uid and creationTimestamp from the stored object when absent
    if !s(&new.uid).is_empty() {
        immutable(
            &s(&new.uid),
            &s(&old.uid),
            &path.child("uid"),
            |v| quote(v),
            errs,
        );
    }
    if let (Some(n), Some(o)) = (&new.creation_timestamp, &old.creation_timestamp)
        && n != o
    {
        errs.push(FieldError::invalid(
            path.child("creationTimestamp"),
            n.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
            "field is immutable",
        ));
    }
    labels(new.labels.as_ref(), &path.child("labels"), errs);
    annotations(new.annotations.as_ref(), &path.child("annotations"), errs);
    owner_references(new, &path.child("ownerReferences"), errs);
    finalizers(new, &path.child("finalizers"), errs);
}
