//! Kubernetes strategic merge patch on JSON values, driven by `slipway_core::merge_schema`.
//!
//! The merge walks the patch and the document together, carrying the schema type of the
//! current map so that each field knows how its list merges. Every patch value that lands in
//! the result goes through the same merge (against an empty map or list when the document
//! has nothing there), so nulls and directives in new subtrees never leak into the result.

use crate::PatchError;
use serde_json::{Map, Value};
use slipway_core::merge_schema::{self, FieldInfo, ListStrategy, TypeRef};

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// What the schema says about a field it does not know: maps merge, lists are atomic.
const PLAIN: FieldInfo = FieldInfo {
    ty: None,
    list: ListStrategy::Atomic,
    retain_keys: false,
};

type Result<T> = std::result::Result<T, PatchError>;

pub(crate) fn apply(kind: &str, doc: &Value, patch: &Value) -> Result<Value> {
    let Some(root) = merge_schema::root(kind) else {
        return Err(PatchError::Malformed(format!(
            "strategic merge patch is not supported for {kind}"
        )));
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(format!(
            "strategic merge patch must be a JSON object, got {}",
            short(patch)
        )));
    };
    let original = match doc {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(original, patch, Some(root), &Path::root())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// A field path for messages, in Kubernetes notation (`spec.containers[0].env`).
#[derive(Clone)]
struct Path(String);

impl Path {
    fn root() -> Path {
        Path(String::new())
    }

    fn field(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    fn malformed(&self, detail: impl std::fmt::Display) -> PatchError {
        let at = if self.0.is_empty() {
            "<root>"
        } else {
            self.0.as_str()
        };
        PatchError::Malformed(format!("invalid strategic merge patch at {at}: {detail}"))
    }
}

/// A compact rendering of a value for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn field_info(ty: Option<TypeRef>, field: &str) -> FieldInfo {
    ty.map(|t| t.field(field)).unwrap_or(PLAIN)
}

/// The `$patch` directive of a map, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

fn directive_of(map: &Map<String, Value>, path: &Path) -> Result<Option<Directive>> {
    match map.get(PATCH_DIRECTIVE) {
        None => Ok(None),
        Some(Value::String(s)) if s == "replace" => Ok(Some(Directive::Replace)),
        Some(Value::String(s)) if s == "delete" => Ok(Some(Directive::Delete)),
        Some(Value::String(s)) if s == "merge" => Ok(Some(Directive::Merge)),
        Some(other) => Err(path.malformed(format!(
            "unknown patch type {} (expected replace, delete or merge)",
            short(other)
        ))),
    }
}

/// Field directives of one map, gathered before merging.
#[derive(Default)]
struct FieldDirectives<'p> {
    orders: Vec<(&'p str, &'p [Value])>,
    deletions: Vec<(&'p str, &'p [Value])>,
}

fn directive_list<'p>(
    patch: &'p Map<String, Value>,
    key: &'p str,
    prefix: &str,
    path: &Path,
) -> Result<Option<(&'p str, &'p [Value])>> {
    let Some(field) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    if field.is_empty() {
        return Err(path.malformed(format!("directive {key:?} names no field")));
    }
    match patch.get(key) {
        Some(Value::Array(items)) => Ok(Some((field, items.as_slice()))),
        Some(other) => Err(path.malformed(format!(
            "the value of {key} must be a list, got {}",
            short(other)
        ))),
        None => Ok(None),
    }
}

/// Merges `patch` into `original` (a map of type `ty`). `Ok(None)` means the map is deleted
/// (`$patch: delete`).
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<TypeRef>,
    path: &Path,
) -> Result<Option<Map<String, Value>>> {
    match directive_of(patch, path)? {
        Some(Directive::Delete) => return Ok(None),
        Some(Directive::Replace) => original = Map::new(),
        Some(Directive::Merge) | None => {}
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    let mut directives = FieldDirectives::default();
    for key in patch.keys() {
        if let Some(order) = directive_list(patch, key, SET_ELEMENT_ORDER, path)? {
            directives.orders.push(order);
        } else if let Some(deletion) = directive_list(patch, key, DELETE_FROM_PRIMITIVE_LIST, path)?
        {
            directives.deletions.push(deletion);
        }
    }

    for (field, values) in &directives.deletions {
        let field_path = path.field(field);
        match original.get_mut(*field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => items.retain(|item| !values.contains(item)),
            Some(other) => {
                return Err(field_path.malformed(format!(
                    "$deleteFromPrimitiveList needs a list, the document has {}",
                    short(other)
                )));
            }
        }
    }

    for (key, patch_value) in patch {
        if key.starts_with('$') {
            continue;
        }
        let info = field_info(ty, key);
        let field_path = path.field(key);
        match patch_value {
            Value::Null => {
                original.shift_remove(key);
            }
            Value::Object(patch_map) => {
                let current = match original.get_mut(key) {
                    Some(Value::Object(existing)) => std::mem::take(existing),
                    Some(Value::Array(_)) => {
                        return Err(field_path
                            .malformed("the patch has a map where the document has a list"));
                    }
                    _ => Map::new(),
                };
                match merge_map(current, patch_map, info.ty, &field_path)? {
                    Some(merged) => set(&mut original, key, Value::Object(merged)),
                    None => {
                        original.shift_remove(key);
                    }
                }
            }
            Value::Array(patch_items) => {
                let current = match original.get_mut(key) {
                    Some(Value::Array(existing)) => std::mem::take(existing),
                    Some(Value::Object(_)) => {
                        return Err(field_path
                            .malformed("the patch has a list where the document has a map"));
                    }
                    _ => Vec::new(),
                };
                let merged = merge_list(current, patch_items, info, &field_path)?;
                set(&mut original, key, Value::Array(merged));
            }
            scalar => set(&mut original, key, scalar.clone()),
        }
    }

    for (field, order) in &directives.orders {
        let info = field_info(ty, field);
        let field_path = path.field(field);
        if let Some(Value::Array(items)) = original.get_mut(*field) {
            let current = std::mem::take(items);
            *items = apply_order(current, order, info.list, &field_path)?;
        }
    }

    Ok(Some(original))
}

/// Sets `key` in place when present (keeping the document's key order), else appends it.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// `$retainKeys`: every key of the document not listed is cleared. Every field the patch
/// sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &Path,
) -> Result<()> {
    let Value::Array(items) = retain else {
        return Err(path.malformed(format!(
            "the value of $retainKeys must be a list, got {}",
            short(retain)
        )));
    };
    let mut keep = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => keep.push(s.as_str()),
            other => {
                return Err(path.malformed(format!(
                    "$retainKeys must list field names, got {}",
                    short(other)
                )));
            }
        }
    }
    for (key, value) in patch {
        if !key.starts_with('$') && !value.is_null() && !keep.contains(&key.as_str()) {
            return Err(path.malformed(format!(
                "the patch sets {key:?}, which $retainKeys does not list"
            )));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// Merges a patch list into a document list according to the field's strategy.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    info: FieldInfo,
    path: &Path,
) -> Result<Vec<Value>> {
    match info.list {
        ListStrategy::Atomic => replace_list(patch, info.ty, path),
        ListStrategy::Set => merge_primitive_set(original, patch, path),
        ListStrategy::MergeByKey(key) => merge_by_key(original, patch, key, info.ty, path),
    }
}

/// An atomic list: the patch's elements, with directives and nulls inside them resolved.
/// Directive-only elements (`{"$patch": ...}`) are dropped.
fn replace_list(patch: &[Value], ty: Option<TypeRef>, path: &Path) -> Result<Vec<Value>> {
    let mut result = Vec::with_capacity(patch.len());
    for (i, item) in patch.iter().enumerate() {
        let item_path = path.index(i);
        match item {
            Value::Object(map) => {
                if directive_of(map, &item_path)?.is_some() {
                    continue;
                }
                if let Some(clean) = merge_map(Map::new(), map, ty, &item_path)? {
                    result.push(Value::Object(clean));
                }
            }
            Value::Array(inner) => {
                result.push(Value::Array(replace_list(inner, None, &item_path)?));
            }
            scalar => result.push(scalar.clone()),
        }
    }
    Ok(result)
}

/// A set of primitives: the document's values, then the patch's values not already present.
fn merge_primitive_set(original: Vec<Value>, patch: &[Value], path: &Path) -> Result<Vec<Value>> {
    let mut result: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    let mut additions = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (i, item) in patch.iter().enumerate() {
        let item_path = path.index(i);
        match item {
            Value::Object(map) => match directive_of(map, &item_path)? {
                Some(Directive::Replace) => replace = true,
                Some(Directive::Merge) => {}
                Some(Directive::Delete) => {
                    return Err(item_path.malformed(
                        "$patch: delete needs a merge key; use $deleteFromPrimitiveList for primitive lists",
                    ));
                }
                None => {
                    return Err(item_path.malformed(format!(
                        "expected a primitive value in a set list, got {}",
                        short(item)
                    )));
                }
            },
            Value::Array(_) => {
                return Err(item_path.malformed(format!(
                    "expected a primitive value in a set list, got {}",
                    short(item)
                )));
            }
            primitive => additions.push(primitive),
        }
    }
    if !replace {
        for item in original {
            if !result.contains(&item) {
                result.push(item);
            }
        }
    }
    for item in additions {
        if !result.contains(item) {
            result.push(item.clone());
        }
    }
    Ok(result)
}

/// A list of maps merged element by element on `key`. `{"$patch":"delete", key: v}` removes
/// the element; an element `{"$patch":"replace"}` makes the patch's elements the whole list.
fn merge_by_key(
    original: Vec<Value>,
    patch: &[Value],
    key: &str,
    ty: Option<TypeRef>,
    path: &Path,
) -> Result<Vec<Value>> {
    let mut result = original;
    let mut elements: Vec<(Path, std::borrow::Cow<'_, Map<String, Value>>)> = Vec::new();
    let mut replace = false;
    let mut deletions: Vec<&Value> = Vec::new();
    for (i, item) in patch.iter().enumerate() {
        let item_path = path.index(i);
        let Value::Object(map) = item else {
            return Err(item_path.malformed(format!(
                "expected a map with merge key {key:?}, got {}",
                short(item)
            )));
        };
        let missing_key = || {
            item_path.malformed(format!(
                "map {} does not contain declared merge key {key:?}",
                short(item)
            ))
        };
        match directive_of(map, &item_path)? {
            Some(Directive::Delete) => deletions.push(map.get(key).ok_or_else(missing_key)?),
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) => {
                if map.len() > 1 {
                    map.get(key).ok_or_else(missing_key)?;
                    let mut without = map.clone();
                    without.shift_remove(PATCH_DIRECTIVE);
                    elements.push((item_path, std::borrow::Cow::Owned(without)));
                }
            }
            None => {
                map.get(key).ok_or_else(missing_key)?;
                elements.push((item_path, std::borrow::Cow::Borrowed(map)));
            }
        }
    }
    if replace {
        result.clear();
    }
    result.retain(|existing| {
        existing
            .get(key)
            .is_none_or(|value| !deletions.contains(&value))
    });
    for (item_path, element) in elements {
        let Some(wanted) = element.get(key) else {
            continue;
        };
        let position = result
            .iter()
            .position(|existing| existing.is_object() && existing.get(key) == Some(wanted));
        match position {
            Some(pos) => {
                let current = match result.get_mut(pos) {
                    Some(Value::Object(existing)) => std::mem::take(existing),
                    _ => Map::new(),
                };
                match merge_map(current, &element, ty, &item_path)? {
                    Some(merged) => result[pos] = Value::Object(merged),
                    None => {
                        result.remove(pos);
                    }
                }
            }
            None => {
                if let Some(added) = merge_map(Map::new(), &element, ty, &item_path)? {
                    result.push(Value::Object(added));
                }
            }
        }
    }
    Ok(result)
}

/// `$setElementOrder/<field>`: the listed elements in the given order, then the unlisted
/// ones in their current relative order. Atomic lists are left alone.
fn apply_order(
    items: Vec<Value>,
    order: &[Value],
    strategy: ListStrategy,
    path: &Path,
) -> Result<Vec<Value>> {
    let merge_key = match strategy {
        ListStrategy::Atomic => return Ok(items),
        ListStrategy::Set => None,
        ListStrategy::MergeByKey(key) => {
            for (i, entry) in order.iter().enumerate() {
                if entry.get(key).is_none() {
                    return Err(path.index(i).malformed(format!(
                        "$setElementOrder entry {} does not contain declared merge key {key:?}",
                        short(entry)
                    )));
                }
            }
            Some(key)
        }
    };
    // Set elements match by value, keyed elements by their merge key.
    let matches_entry = |item: &Value, entry: &Value| match merge_key {
        None => item == entry,
        Some(key) => item.is_object() && item.get(key) == entry.get(key),
    };
    let mut slots: Vec<Option<Value>> = items.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(slots.len());
    for entry in order {
        let found = slots
            .iter_mut()
            .find(|slot| slot.as_ref().is_some_and(|item| matches_entry(item, entry)));
        if let Some(item) = found.and_then(Option::take) {
            ordered.push(item);
        }
    }
    ordered.extend(slots.into_iter().flatten());
    Ok(ordered)
}
