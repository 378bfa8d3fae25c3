//! Schema-aware walks over objects: the field set of an applied configuration, the comparison
//! of two objects, the apply merge, and the removal of fields an applier gave up.

use crate::fieldset::{FieldSet, Path, PathElement, render_path};
use crate::schema::{NodeSchema, Shape};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The fields an applied configuration sets: every leaf (scalars, atomic lists and maps, empty
/// maps, nulls) and every element of a granular list (as a member, with its fields below).
/// A map field is not itself a member when it has fields, as in Kubernetes.
pub(crate) fn field_set_of(value: &Value, schema: NodeSchema) -> FieldSet {
    let mut set = FieldSet::new();
    collect_fields(value, schema, &mut Vec::new(), &mut set);
    set
}

fn collect_fields(value: &Value, schema: NodeSchema, path: &mut Path, set: &mut FieldSet) {
    match schema.shape(value) {
        Shape::Leaf => set.insert(path),
        Shape::Map(map) => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                collect_fields(child, schema.field(key), path, set);
                path.pop();
            }
        }
        Shape::List(items) => {
            let element = schema.element();
            for (i, item) in items.iter().enumerate() {
                path.push(schema.element_name(i, item));
                set.insert(path);
                if let Shape::Map(map) = element.shape(item) {
                    for (key, child) in map {
                        path.push(PathElement::Field(key.clone()));
                        collect_fields(child, element.field(key), path, set);
                        path.pop();
                    }
                }
                path.pop();
            }
        }
    }
}

/// The difference between two objects, as field paths.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Present only in the new object (every node of an added subtree).
    pub added: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
    /// Present only in the old object (every node of a removed subtree).
    pub removed: FieldSet,
}

/// Compares `old` with `new`. A `null` counts as an empty map or list when the other side is
/// one; maps and lists empty on both sides are compared as leaves.
pub(crate) fn compare(old: &Value, new: &Value, schema: NodeSchema) -> Comparison {
    let mut c = Comparison::default();
    compare_node(Some(old), Some(new), schema, &mut Vec::new(), &mut c, false);
    c
}

/// [`compare`] of `old` and `new` as if `metadata.managedFields` were removed from both,
/// without copying them; `None` when that could differ from comparing stripped copies (a side
/// without a `metadata` holding some other field), for the caller to strip copies instead.
pub(crate) fn compare_without_managed_fields(
    old: &Value,
    new: &Value,
    schema: NodeSchema,
) -> Option<Comparison> {
    let plain = |v: &Value| {
        v.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(|m| m.keys().any(|k| k != MANAGED_FIELDS))
    };
    if !plain(old) || !plain(new) {
        return None;
    }
    let mut c = Comparison::default();
    compare_node(Some(old), Some(new), schema, &mut Vec::new(), &mut c, true);
    Some(c)
}

const MANAGED_FIELDS: &str = "managedFields";

/// Whether `key` under `path` is `metadata.managedFields`.
fn is_managed_fields(path: &Path, key: &str) -> bool {
    key == MANAGED_FIELDS
        && path.len() == 1
        && matches!(&path[0], PathElement::Field(f) if f == "metadata")
}

fn is_empty_or_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// With `skip_managed_fields`, `metadata.managedFields` is left out of both sides (only
/// where both sides have a `metadata` map, see [`compare_without_managed_fields`]).
fn compare_node(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: NodeSchema,
    path: &mut Path,
    c: &mut Comparison,
    skip_managed_fields: bool,
) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (Some(o), None) => return mark_all(o, schema, path, &mut c.removed),
        (None, Some(n)) => return mark_all(n, schema, path, &mut c.added),
        (Some(o), Some(n)) => (o, n),
    };
    let both_empty = is_empty_or_null(old) && is_empty_or_null(new);
    let empty_map = Map::new();
    let map_like = |v: &Value| v.is_object() || v.is_null();
    let list_like = |v: &Value| v.is_array() || v.is_null();

    if !both_empty && schema.is_granular_map() && map_like(old) && map_like(new) {
        let om = old.as_object().unwrap_or(&empty_map);
        let nm = new.as_object().unwrap_or(&empty_map);
        let skip = |key: &str, path: &Path| skip_managed_fields && is_managed_fields(path, key);
        for (key, ov) in om {
            if skip(key, path) {
                continue;
            }
            path.push(PathElement::Field(key.clone()));
            let (child, pass) = (schema.field(key), skip_managed_fields);
            compare_node(Some(ov), nm.get(key), child, path, c, pass);
            path.pop();
        }
        for (key, nv) in nm {
            if !om.contains_key(key) && !skip(key, path) {
                path.push(PathElement::Field(key.clone()));
                compare_node(
                    None,
                    Some(nv),
                    schema.field(key),
                    path,
                    c,
                    skip_managed_fields,
                );
                path.pop();
            }
        }
        return;
    }
    if !both_empty && schema.is_granular_list() && list_like(old) && list_like(new) {
        let empty: Vec<Value> = Vec::new();
        let ol = old.as_array().unwrap_or(&empty);
        let nl = new.as_array().unwrap_or(&empty);
        let old_items = index_elements(ol, schema);
        let new_items = index_elements(nl, schema);
        let element = schema.element();
        for (pe, ov) in &old_items {
            path.push(pe.clone());
            compare_node(Some(ov), lookup(&new_items, pe), element, path, c, false);
            path.pop();
        }
        for (pe, nv) in &new_items {
            if lookup(&old_items, pe).is_none() {
                path.push(pe.clone());
                compare_node(None, Some(nv), element, path, c, false);
                path.pop();
            }
        }
        return;
    }
    if old != new {
        c.modified.insert(path);
        // A container replaced by something else: its former contents are gone.
        if !matches!(schema.shape(old), Shape::Leaf) {
            mark_children(old, schema, path, &mut c.removed);
        }
        if !matches!(schema.shape(new), Shape::Leaf) {
            mark_children(new, schema, path, &mut c.added);
        }
    }
}

fn lookup<'a>(items: &'a [(PathElement, &'a Value)], pe: &PathElement) -> Option<&'a Value> {
    items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
}

/// The elements of a list with their names, first occurrence winning on duplicates.
fn index_elements(items: &[Value], schema: NodeSchema) -> Vec<(PathElement, &Value)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pe = schema.element_name(i, item);
        if seen.insert(pe.clone()) {
            out.push((pe, item));
        }
    }
    out
}

/// Inserts `path` and every node below it.
fn mark_all(value: &Value, schema: NodeSchema, path: &mut Path, set: &mut FieldSet) {
    set.insert(path);
    mark_children(value, schema, path, set);
}

fn mark_children(value: &Value, schema: NodeSchema, path: &mut Path, set: &mut FieldSet) {
    match schema.shape(value) {
        Shape::Leaf => {}
        Shape::Map(map) => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                mark_all(child, schema.field(key), path, set);
                path.pop();
            }
        }
        Shape::List(items) => {
            let element = schema.element();
            for (pe, item) in index_elements(items, schema) {
                path.push(pe);
                mark_all(item, element, path, set);
                path.pop();
            }
        }
    }
}

/// Checks that every element of a keyed list in an applied configuration has its key and
/// that no key or set value repeats, as Kubernetes does before merging.
pub(crate) fn validate_applied(value: &Value, schema: NodeSchema) -> Result<(), String> {
    validate_node(value, schema, &mut Vec::new())
}

fn validate_node(value: &Value, schema: NodeSchema, path: &mut Path) -> Result<(), String> {
    match schema.shape(value) {
        Shape::Leaf => Ok(()),
        Shape::Map(map) => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                validate_node(child, schema.field(key), path)?;
                path.pop();
            }
            Ok(())
        }
        Shape::List(items) => {
            let element = schema.element();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let pe = schema.element_name(i, item);
                if let (
                    PathElement::Index(_),
                    slipway_core::merge_schema::ListStrategy::MergeByKey(key),
                ) = (&pe, schema.list)
                {
                    return Err(format!(
                        "{}: element {i}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)",
                        render_path(path)
                    ));
                }
                if !seen.insert(pe.clone()) {
                    return Err(format!(
                        "{}: duplicate entries for key {pe}",
                        render_path(path)
                    ));
                }
                path.push(pe);
                validate_node(item, element, path)?;
                path.pop();
            }
            Ok(())
        }
    }
}

/// Merges an applied configuration into the live object: maps merge field by field, keyed
/// and set lists merge element by element (the configuration's order wins for the elements
/// it names; live-only elements keep their place), everything else is replaced.
pub(crate) fn merge(live: &Value, applied: &Value, schema: NodeSchema) -> Value {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) if schema.is_granular_map() => {
            let mut out = lm.clone();
            for (key, av) in am {
                let merged = match lm.get(key) {
                    Some(lv) => merge(lv, av, schema.field(key)),
                    None => av.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(ll), Value::Array(al)) if schema.is_granular_list() => {
            Value::Array(merge_lists(ll, al, schema))
        }
        _ => applied.clone(),
    }
}

fn merge_lists(live: &[Value], applied: &[Value], schema: NodeSchema) -> Vec<Value> {
    let element = schema.element();
    let live_names: Vec<PathElement> = live
        .iter()
        .enumerate()
        .map(|(i, v)| schema.element_name(i, v))
        .collect();
    let applied_names: Vec<PathElement> = applied
        .iter()
        .enumerate()
        .map(|(i, v)| schema.element_name(i, v))
        .collect();
    let applied_set: BTreeSet<&PathElement> = applied_names.iter().collect();
    let mut live_pos: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in live_names.iter().enumerate() {
        live_pos.entry(pe).or_insert(i);
    }
    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let mut next_live = 0;
    let mut emitted: BTreeSet<&PathElement> = BTreeSet::new();
    for (item, pe) in applied.iter().zip(applied_names.iter()) {
        if !emitted.insert(pe) {
            continue;
        }
        match live_pos.get(pe) {
            Some(&li) => {
                while next_live < li {
                    if !applied_set.contains(&live_names[next_live]) {
                        out.push(live[next_live].clone());
                    }
                    next_live += 1;
                }
                out.push(merge(&live[li], item, element));
            }
            None => out.push(item.clone()),
        }
    }
    for i in next_live..live.len() {
        if !applied_set.contains(&live_names[i]) {
            out.push(live[i].clone());
        }
    }
    out
}

/// Removes from `value` what the applier owned last time (`last`) but nobody keeps now
/// (`keep`: the applier's new set and every other manager's). A list element goes when it was
/// a member of `last` and is not a member of `keep`; a map field goes when nothing at or below
/// it is kept.
pub(crate) fn prune(value: &mut Value, last: &FieldSet, keep: &FieldSet, schema: NodeSchema) {
    prune_node(value, last, Some(keep), schema);
}

fn prune_node(value: &mut Value, last: &FieldSet, keep: Option<&FieldSet>, schema: NodeSchema) {
    match value {
        Value::Object(map) if schema.is_granular_map() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let pe = PathElement::Field(key.clone());
                let Some(last_child) = last.child(&pe) else {
                    continue;
                };
                match keep.and_then(|k| k.child(&pe)) {
                    Some(keep_child) => {
                        if let Some(child) = map.get_mut(&key) {
                            prune_node(child, last_child, Some(keep_child), schema.field(&key));
                        }
                    }
                    None => {
                        map.shift_remove(&key);
                    }
                }
            }
        }
        Value::Array(items) if schema.is_granular_list() => {
            let element = schema.element();
            let names: Vec<PathElement> = items
                .iter()
                .enumerate()
                .map(|(i, v)| schema.element_name(i, v))
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for (mut item, pe) in std::mem::take(items).into_iter().zip(names) {
                let Some(last_child) = last.child(&pe) else {
                    out.push(item);
                    continue;
                };
                let keep_child = keep.and_then(|k| k.child(&pe));
                let kept = keep_child.is_some_and(FieldSet::is_member);
                if last_child.is_member() && !kept {
                    continue;
                }
                prune_node(&mut item, last_child, keep_child, element);
                out.push(item);
            }
            *items = out;
        }
        _ => {}
    }
}

/// Removes from `value` the map fields that `applied` sets to `null` (an applier owns them but
/// wants them unset).
pub(crate) fn drop_applied_nulls(value: &mut Value, applied: &Value, schema: NodeSchema) {
    match (value, applied) {
        (Value::Object(map), Value::Object(am)) if schema.is_granular_map() => {
            for (key, av) in am {
                if av.is_null() {
                    map.shift_remove(key);
                } else if let Some(child) = map.get_mut(key) {
                    drop_applied_nulls(child, av, schema.field(key));
                }
            }
        }
        (Value::Array(items), Value::Array(al)) if schema.is_granular_list() => {
            let element = schema.element();
            for (ai, av) in al.iter().enumerate() {
                let pe = schema.element_name(ai, av);
                let found = items
                    .iter_mut()
                    .enumerate()
                    .find(|(i, v)| schema.element_name(*i, v) == pe);
                if let Some((_, item)) = found {
                    drop_applied_nulls(item, av, element);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> NodeSchema {
        NodeSchema::root("Deployment")
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"spec": {"replicas": 1, "paused": true, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
        let c = compare(&old, &new, deploy());
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:spec": {"f:paused": {}}})
        );
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}}}}}}})
        );
    }

    #[test]
    fn comparing_without_managed_fields_matches_comparing_stripped_copies() {
        let mf = json!([{"manager": "m", "operation": "Update", "fieldsV1": {"f:spec": {}}}]);
        let objects = [
            json!({"metadata": {"name": "a", "managedFields": mf, "labels": {"x": "1"}}, "spec": {"replicas": 1}}),
            json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"replicas": 2, "paused": true}}),
            json!({"metadata": {"managedFields": mf, "name": "b"}, "status": {"replicas": 3}}),
            json!({"metadata": {"name": "a", "managedFields": []}, "spec": null}),
            json!({"metadata": {"managedFields": mf}, "spec": {"replicas": 1}}),
            json!({"metadata": {}, "spec": {}}),
            json!({"spec": {"replicas": 1}}),
        ];
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.shift_remove("managedFields");
            }
            v
        };
        let sets = |c: &Comparison| [&c.added, &c.modified, &c.removed].map(|s| s.to_fields_v1());
        for old in &objects {
            for new in &objects {
                let expected = compare(&strip(old), &strip(new), deploy());
                match compare_without_managed_fields(old, new, deploy()) {
                    Some(c) => assert_eq!(sets(&c), sets(&expected), "{old} -> {new}"),
                    None => assert!(
                        [old, new].iter().any(|v| v["metadata"]
                            .as_object()
                            .is_none_or(|m| m.keys().all(|k| k == MANAGED_FIELDS))),
                        "{old} -> {new}"
                    ),
                }
            }
        }
    }

    #[test]
    fn merge_keeps_live_only_elements_in_place() {
        let schema = deploy()
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        let live = json!([{"name": "c"}, {"name": "a", "image": "1"}, {"name": "b"}]);
        let applied = json!([{"name": "b", "image": "2"}, {"name": "a", "image": "3"}]);
        let merged = merge(&live, &applied, schema);
        assert_eq!(
            merged,
            json!([{"name": "c"}, {"name": "b", "image": "2"}, {"name": "a", "image": "3"}])
        );
        assert_eq!(merge(&merged, &applied, schema), merged);
    }

    #[test]
    fn validation_rejects_missing_and_duplicate_keys() {
        let missing = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert_eq!(
            validate_applied(&missing, deploy()).unwrap_err(),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        assert_eq!(
            validate_applied(&dup, deploy()).unwrap_err(),
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
        );
    }
}
