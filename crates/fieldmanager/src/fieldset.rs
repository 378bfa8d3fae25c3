//! Sets of field paths and their `FieldsV1` JSON form.
//!
//! A path is a sequence of [`PathElement`]s: a field of a map (`f:name`), an element of a
//! list merged by key (`k:{"name":"app"}`), a value of a set list (`v:"foo"`) or, for list
//! elements that have no key, a position (`i:0`). A [`FieldSet`] is a trie of such paths; a
//! node is a *member* when the path leading to it is in the set. `FieldsV1` writes a member
//! leaf as `{}` and a member with children with a `"."` entry.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a map: `f:<name>`.
    Field(String),
    /// An element of a list merged by key: `k:{"name":"app"}`. Entries are sorted by name.
    Key(Vec<(String, Value)>),
    /// An element of a set list, named by its value: `v:"foo"`.
    Value(Value),
    /// An element named by its position (lists whose elements lack their key): `i:0`.
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` key of this element, e.g. `f:replicas` or `k:{"name":"app"}`.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(entries) => {
                let mut map = Map::new();
                for (name, value) in entries {
                    map.insert(name.clone(), value.clone());
                }
                format!("k:{}", Value::Object(map))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key (not `.`).
    pub fn from_fields_v1_key(key: &str) -> Result<PathElement, String> {
        let (prefix, rest) = key
            .split_once(':')
            .ok_or_else(|| format!("unknown path element {key:?}"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => {
                    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(PathElement::Key(entries))
                }
                _ => Err(format!("invalid key path element {key:?}")),
            },
            "v" => serde_json::from_str::<Value>(rest)
                .map(PathElement::Value)
                .map_err(|_| format!("invalid value path element {key:?}")),
            "i" => rest
                .parse::<usize>()
                .map(PathElement::Index)
                .map_err(|_| format!("invalid index path element {key:?}")),
            _ => Err(format!("unknown path element {key:?}")),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

/// Renders as Kubernetes prints paths in conflicts: `.name`, `[name="app"]`, `[="foo"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(entries) => {
                let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={value}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Fields sort before keys, keys before values, values before indices (as Kubernetes sorts).
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b.iter()) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A total order on JSON values: numbers, strings, booleans, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x.cmp(&y);
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x.cmp(&y);
            }
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(ys.iter()) {
                let c = xk.cmp(yk).then_with(|| compare_values(xv, yv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A field path.
pub type Path = Vec<PathElement>;

/// Renders a path as Kubernetes does in conflict messages, e.g.
/// `.spec.template.spec.containers[name="app"].image`.
pub fn render_path(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, held as a trie. The empty path is never a member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` (the empty path is ignored).
    pub fn insert(&mut self, path: &[PathElement]) {
        if path.is_empty() {
            return;
        }
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether `path` itself is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        !path.is_empty() && self.node(path).is_some_and(|n| n.member)
    }

    /// The sub-trie at `path`, if any path of the set starts with it.
    pub fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        let mut node = self;
        for pe in path {
            node = node.children.get(pe)?;
        }
        (!node.is_empty()).then_some(node)
    }

    /// The sub-trie under one child element, if any path continues through it.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe).filter(|c| !c.is_empty())
    }

    /// Whether the path leading to this node is a member (for sub-tries from [`FieldSet::node`]).
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// Every path in the set or in `other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in_place(other);
        out
    }

    /// Adds every path of `other`.
    pub fn union_in_place(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, child) in &other.children {
            self.children
                .entry(pe.clone())
                .or_default()
                .union_in_place(child);
        }
    }

    /// The paths of this set that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(o) => child.difference(o),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// Removes the paths of `other` in place; whether any was in the set. Leaves the same
    /// paths as [`FieldSet::difference`], without copying what stays.
    pub fn subtract(&mut self, other: &FieldSet) -> bool {
        let mut removed = false;
        if self.member && other.member {
            self.member = false;
            removed = true;
        }
        for (pe, theirs) in &other.children {
            if let Some(child) = self.children.get_mut(pe)
                && child.subtract(theirs)
            {
                removed = true;
                if child.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
        removed
    }

    /// Whether every path of `other` is in the set.
    pub fn contains_all(&self, other: &FieldSet) -> bool {
        (!other.member || self.member)
            && other.children.iter().all(|(pe, theirs)| {
                theirs.is_empty()
                    || self
                        .children
                        .get(pe)
                        .is_some_and(|child| child.contains_all(theirs))
            })
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let both = child.intersection(o);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Removes `path` and everything below it.
    pub fn remove_subtree(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            match node.children.get_mut(pe) {
                Some(n) => node = n,
                None => return,
            }
        }
        node.children.remove(last);
    }

    /// Removes only `path` itself (its descendants stay).
    pub fn remove_member(&mut self, path: &[PathElement]) {
        let mut node = self;
        for pe in path {
            match node.children.get_mut(pe) {
                Some(n) => node = n,
                None => return,
            }
        }
        node.member = false;
    }

    /// Drops empty sub-tries so that equal sets compare equal.
    pub fn normalize(&mut self) {
        self.children.retain(|_, c| {
            c.normalize();
            c.member || !c.children.is_empty()
        });
    }

    /// Every path, in Kubernetes' iteration order: at each level the members first (sorted),
    /// then the paths below each child (sorted).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for (pe, child) in &self.children {
            if child.member {
                let mut p = prefix.clone();
                p.push(pe.clone());
                out.push(p);
            }
        }
        for (pe, child) in &self.children {
            if !child.children.is_empty() {
                prefix.push(pe.clone());
                child.collect_paths(prefix, out);
                prefix.pop();
            }
        }
    }

    /// The `FieldsV1` JSON form, e.g. `{"f:spec":{"f:replicas":{}}}`.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            map.insert(pe.to_fields_v1_key(), child.node_to_fields_v1());
        }
        Value::Object(map)
    }

    fn node_to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        let has_children = self.children.values().any(|c| !c.is_empty());
        if self.member && has_children {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            map.insert(pe.to_fields_v1_key(), child.node_to_fields_v1());
        }
        Value::Object(map)
    }

    /// Parses the `FieldsV1` JSON form.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let map = value
            .as_object()
            .ok_or_else(|| "FieldsV1 must be a JSON object".to_string())?;
        let mut set = FieldSet::new();
        for (key, child) in map {
            if key == "." {
                return Err("FieldsV1 root cannot contain \".\"".to_string());
            }
            let pe = PathElement::from_fields_v1_key(key)?;
            set.children
                .insert(pe, FieldSet::node_from_fields_v1(child)?);
        }
        Ok(set)
    }

    fn node_from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let map = value
            .as_object()
            .ok_or_else(|| "FieldsV1 entries must be JSON objects".to_string())?;
        let mut node = FieldSet {
            member: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (key, child) in map {
            if key == "." {
                node.member = true;
                continue;
            }
            let pe = PathElement::from_fields_v1_key(key)?;
            node.children
                .insert(pe, FieldSet::node_from_fields_v1(child)?);
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn fields_v1_writes_dot_for_members_with_children() {
        let mut s = FieldSet::new();
        let app = PathElement::Key(vec![("name".into(), json!("app"))]);
        s.insert(&[f("spec"), f("replicas")]);
        s.insert(&[f("spec"), f("containers"), app.clone()]);
        s.insert(&[f("spec"), f("containers"), app.clone(), f("image")]);
        assert_eq!(
            s.to_fields_v1(),
            json!({"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{}}},"f:replicas":{}}})
        );
        let back = FieldSet::from_fields_v1(&s.to_fields_v1()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn paths_iterate_members_before_children() {
        let mut s = FieldSet::new();
        s.insert(&[f("spec"), f("template"), f("x")]);
        s.insert(&[f("spec"), f("replicas")]);
        let rendered: Vec<String> = s.paths().iter().map(|p| render_path(p)).collect();
        assert_eq!(rendered, vec![".spec.replicas", ".spec.template.x"]);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("c")]);
        let mut b = FieldSet::new();
        b.insert(&[f("c")]);
        b.insert(&[f("d")]);
        let diff = a.difference(&b);
        assert!(diff.contains(&[f("a"), f("b")]));
        assert!(!diff.contains(&[f("c")]));
        let both = a.intersection(&b);
        assert_eq!(both.paths(), vec![vec![f("c")]]);
        assert!(a.union(&b).contains(&[f("d")]));
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn parses_every_element_kind_and_rejects_garbage() {
        let v = json!({"f:a":{"v:\"x\"":{},"i:3":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}});
        let s = FieldSet::from_fields_v1(&v).unwrap();
        assert_eq!(s.to_fields_v1(), v);
        assert!(FieldSet::from_fields_v1(&json!({"x:a":{}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a":1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert_eq!(
            render_path(&[
                f("spec"),
                PathElement::Key(vec![("name".into(), json!("app"))]),
                PathElement::Value(json!("x")),
                PathElement::Index(2)
            ]),
            ".spec[name=\"app\"][=\"x\"][2]"
        );
    }
}
