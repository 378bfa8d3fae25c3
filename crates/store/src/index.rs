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
    /// The stored object.
    pub object: Arc<Value>,
    /// The object's JSON text, as committed (serving lists copies it instead of
    /// serialising the object again).
    pub json: Arc<str>,
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

    /// Objects under `prefix` (optionally one namespace) in (namespace, name) order.
    pub fn list(&self, prefix: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(namespaces) = self.by_prefix.get(prefix) else {
            return Vec::new();
        };
        let clone_object = |e: &Entry| Arc::clone(&e.object);
        match namespace {
            None => namespaces
                .values()
                .flat_map(BTreeMap::values)
                .map(clone_object)
                .collect(),
            Some(ns) => namespaces
                .get(ns)
                .map(|names| names.values().map(clone_object).collect())
                .unwrap_or_default(),
        }
    }

    /// Like [`Index::list`], with each object's JSON text.
    pub fn list_json(&self, prefix: &str, namespace: Option<&str>) -> Vec<crate::WithJson> {
        let Some(namespaces) = self.by_prefix.get(prefix) else {
            return Vec::new();
        };
        let pair = |e: &Entry| (Arc::clone(&e.object), Arc::clone(&e.json));
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
            object: Arc::new(object),
        }
    }

    #[test]
    fn namespace_listing_does_not_leak_into_neighbouring_namespaces() {
        let mut index = Index::default();
        index.put(&key("p", "a", "x"), entry(1));
        index.put(&key("p", "ab", "x"), entry(2));
        index.put(&key("p", "a", "y"), entry(3));
        index.put(&key("p", "", "z"), entry(4));
        let revs = |v: Vec<Arc<Value>>| v.iter().map(|o| o["rev"].clone()).collect::<Vec<_>>();
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
