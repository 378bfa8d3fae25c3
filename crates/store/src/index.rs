//! The in-memory index of current objects: what every read is served from.

use crate::Key;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One current object and the revision it was last written at.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The revision of the last write (equals the object's `resourceVersion`).
    pub revision: u64,
    /// The stored object, lean: without `metadata.managedFields` (see [`crate::lean`]);
    /// `None` under a text-only prefix, where it is parsed from `json` when asked for.
    pub object: Option<Arc<Value>>,
    /// The whole object's JSON text, as committed: what is served (lists copy it instead of
    /// serialising the object again) and what the whole object is rebuilt from.
    pub json: Arc<str>,
}

impl Entry {
    /// The whole object: the lean one copied, with `managedFields` read from the text (see
    /// [`whole_from`]); parsed from the text under a text-only prefix.
    pub fn whole(&self) -> Value {
        match &self.object {
            Some(lean) => whole_from(lean, &self.json),
            None => parse(&self.json),
        }
    }

    /// The lean object: the shared one, or one parsed from the text under a text-only prefix.
    pub fn lean(&self) -> Arc<Value> {
        match &self.object {
            Some(object) => Arc::clone(object),
            None => {
                let mut object = parse(&self.json);
                crate::make_lean(&mut object);
                Arc::new(object)
            }
        }
    }
}

/// The whole object of `lean` (a stored object without `metadata.managedFields`) and `json`
/// (its committed text, with them): a copy of the tree with `managedFields` parsed from their
/// slice of the text and put back at their place among the metadata's keys. The same value
/// as parsing `json`, for less work: copying a tree hashes no keys, and the rest of the text
/// is only scanned ([`crate::scan`]).
pub(crate) fn whole_from(lean: &Value, json: &str) -> Value {
    let (position, span) = match crate::scan::managed_fields(json) {
        Ok(Some(found)) => found,
        Ok(None) => return lean.clone(),
        Err(()) => return parse(json),
    };
    let Ok(managed) = serde_json::from_str::<Value>(&json[span]) else {
        return parse(json);
    };
    let mut whole = lean.clone();
    match whole.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(metadata) => {
            let position = position.min(metadata.len());
            metadata.shift_insert(position, crate::MANAGED_FIELDS.to_string(), managed);
            whole
        }
        None => parse(json),
    }
}

/// Parses committed JSON text. The text was written by `serde_json` from an object, so this
/// cannot fail; if it somehow did, an empty object stands in (never a panic).
pub(crate) fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored JSON text does not parse");
        Value::Object(serde_json::Map::new())
    })
}

/// A listed entry: its lean object if the index holds one, and its JSON text.
pub(crate) type Listed = (Option<Arc<Value>>, Arc<str>);

/// Listed entries with every lean object present (parsed from the text where the index holds
/// none); call it without the index lock held.
pub(crate) fn materialize(listed: Vec<Listed>) -> Vec<crate::WithJson> {
    listed
        .into_iter()
        .map(|(object, json)| {
            let object = object.unwrap_or_else(|| {
                let mut object = parse(&json);
                crate::make_lean(&mut object);
                Arc::new(object)
            });
            (object, json)
        })
        .collect()
}

/// Current objects grouped by prefix, each group ordered by (namespace, name), plus the
/// latest committed revision. Mutated only by the writer thread, after a commit.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// The latest committed revision.
    pub revision: u64,
    /// prefix → namespace → name → entry; nested so lookups borrow `&str` without allocating.
    by_prefix: HashMap<String, BTreeMap<String, BTreeMap<String, Entry>>>,
    count: usize,
}

impl Index {
    /// The entry at `key`, if any.
    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.by_prefix
            .get(&key.prefix)?
            .get(&key.namespace)?
            .get(&key.name)
    }

    /// Inserts or replaces the entry at `key`.
    pub fn put(&mut self, key: &Key, entry: Entry) {
        let names = self
            .by_prefix
            .entry(key.prefix.clone())
            .or_default()
            .entry(key.namespace.clone())
            .or_default();
        if names.insert(key.name.clone(), entry).is_none() {
            self.count += 1;
        }
    }

    /// Removes the entry at `key`; drops groups that become empty.
    pub fn remove(&mut self, key: &Key) {
        let Some(namespaces) = self.by_prefix.get_mut(&key.prefix) else {
            return;
        };
        let Some(names) = namespaces.get_mut(&key.namespace) else {
            return;
        };
        if names.remove(&key.name).is_some() {
            self.count -= 1;
        }
        if names.is_empty() {
            namespaces.remove(&key.namespace);
        }
        if namespaces.is_empty() {
            self.by_prefix.remove(&key.prefix);
        }
    }

    /// Entries under `prefix` (optionally one namespace) in (namespace, name) order, as
    /// (lean object if held, JSON text): cheap to take under the lock; see [`materialize`].
    pub fn list(&self, prefix: &str, namespace: Option<&str>) -> Vec<Listed> {
        let Some(namespaces) = self.by_prefix.get(prefix) else {
            return Vec::new();
        };
        let pair = |e: &Entry| (e.object.clone(), Arc::clone(&e.json));
        match namespace {
            None => namespaces
                .values()
                .flat_map(BTreeMap::values)
                .map(pair)
                .collect(),
            Some(ns) => namespaces
                .get(ns)
                .map(|names| names.values().map(pair).collect())
                .unwrap_or_default(),
        }
    }

    /// The prefixes that hold at least one object, sorted.
    pub fn prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.by_prefix.keys().cloned().collect();
        out.sort();
        out
    }

    /// Number of current objects.
    pub fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(prefix: &str, ns: &str, name: &str) -> Key {
        Key {
            prefix: prefix.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn entry(rev: u64) -> Entry {
        let object = json!({ "rev": rev });
        Entry {
            revision: rev,
            json: Arc::from(object.to_string()),
            object: Some(Arc::new(object)),
        }
    }

    #[test]
    fn namespace_listing_does_not_leak_into_neighbouring_namespaces() {
        let mut index = Index::default();
        index.put(&key("p", "a", "x"), entry(1));
        index.put(&key("p", "ab", "x"), entry(2));
        index.put(&key("p", "a", "y"), entry(3));
        index.put(&key("p", "", "z"), entry(4));
        let revs = |v: Vec<Listed>| {
            materialize(v)
                .iter()
                .map(|(o, _)| o["rev"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(revs(index.list("p", Some("a"))), vec![json!(1), json!(3)]);
        assert_eq!(revs(index.list("p", Some(""))), vec![json!(4)]);
        assert_eq!(revs(index.list("p", None)).len(), 4);
        assert!(index.list("q", None).is_empty());
    }

    #[test]
    fn count_tracks_inserts_replacements_and_removals() {
        let mut index = Index::default();
        index.put(&key("p", "a", "x"), entry(1));
        index.put(&key("p", "a", "x"), entry(2));
        assert_eq!(index.len(), 1);
        index.remove(&key("p", "a", "missing"));
        assert_eq!(index.len(), 1);
        index.remove(&key("p", "a", "x"));
        assert_eq!(index.len(), 0);
        assert!(index.prefixes().is_empty());
    }
}

#[cfg(test)]
mod whole_tests {
    use super::*;
    use serde_json::json;

    /// `whole_from` gives what parsing the text gives, keys in the same order.
    fn check(object: Value) {
        let json = serde_json::to_string(&object).unwrap();
        let mut lean = object.clone();
        crate::make_lean(&mut lean);
        let whole = whole_from(&lean, &json);
        assert_eq!(whole, parse(&json));
        assert_eq!(
            serde_json::to_string(&whole).unwrap(),
            json,
            "same key order"
        );
    }

    #[test]
    fn a_whole_object_rebuilt_from_its_lean_tree_equals_its_parsed_text() {
        let managed = json!([{"manager": "kubectl", "operation": "Update",
                              "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        check(json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "a", "managedFields": managed, "uid": "u"},
                     "spec": {"x": [1, 2, {"y": "z\"q"}]}}));
        check(json!({"metadata": {"managedFields": managed}}));
        check(
            json!({"kind": "X", "metadata": {"name": "a", "labels": {"k": "v"},
                     "managedFields": managed}, "status": {"metadata": {"managedFields": 1}}}),
        );
        check(json!({"metadata": {"name": "no managed fields"}, "data": {"a\nb": "c"}}));
        check(json!({"kind": "no metadata"}));
    }
}
