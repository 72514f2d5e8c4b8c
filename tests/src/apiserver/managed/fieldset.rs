//! Sets of field paths in the `FieldsV1` form of `metadata.managedFields`:
//! `{"f:spec": {"f:replicas": {}}, "f:containers": {"k:{\"name\":\"c\"}": {".": {}, ...}}}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One node of a field set: whether the node itself is a member (`.`), and its children
/// by path element (`f:name`, `k:{...}`, `v:...`). A child without members or children
/// is a leaf: the field it names is in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// `.`: the node itself (a list item, a map made by this manager).
    pub me: bool,
    /// The children.
    pub kids: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Nothing in it.
    pub fn is_empty(&self) -> bool {
        !self.me && self.kids.is_empty()
    }

    /// Reads `FieldsV1`.
    pub fn from_json(v: &Value) -> Self {
        let mut s = Self::default();
        for (k, child) in v.as_object().into_iter().flatten() {
            if k == "." {
                s.me = true;
            } else {
                s.kids.insert(k.clone(), Self::from_json(child));
            }
        }
        s
    }

    /// Writes `FieldsV1`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.me {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.kids {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    /// Every member path: leaves, and nodes marked `.`.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.me && !at.is_empty() {
            out.push(at.clone());
        }
        for (k, c) in &self.kids {
            at.push(k.clone());
            if c.is_empty() {
                out.push(at.clone());
            } else {
                c.collect(at, out);
            }
            at.pop();
        }
    }

    /// The member paths without children: the values themselves.
    pub fn leaves(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out.retain(|p| self.node(p).is_some_and(|n| n.kids.is_empty()));
        out
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        path.iter().try_fold(self, |n, p| n.kids.get(p))
    }

    /// Whether `path` is a member, or a member lies below it.
    pub fn touches(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => true,
            Some((head, rest)) => self.kids.get(head).is_some_and(|c| c.touches(rest)),
        }
    }

    /// Whether exactly `path` is a member.
    pub fn has(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => false,
            Some((head, [])) => self.kids.get(head).is_some_and(|c| c.is_empty() || c.me),
            Some((head, rest)) => self.kids.get(head).is_some_and(|c| c.has(rest)),
        }
    }

    /// Adds a member path.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for (i, p) in path.iter().enumerate() {
            let had_kids = !node.kids.is_empty();
            node = node.kids.entry(p.clone()).or_default();
            // A node that gets children but was a leaf member stays a member.
            if i + 1 == path.len() && had_kids && !node.kids.is_empty() {
                node.me = true;
            }
        }
    }

    /// Removes a member path (and what lies below it).
    pub fn remove(&mut self, path: &[String]) {
        let Some((head, rest)) = path.split_first() else { return };
        if rest.is_empty() {
            self.kids.remove(head);
            return;
        }
        if let Some(c) = self.kids.get_mut(head) {
            c.remove(rest);
            if c.is_empty() {
                self.kids.remove(head);
            }
        }
    }

    /// The union.
    pub fn union(&mut self, other: &FieldSet) {
        self.me |= other.me;
        for (k, c) in &other.kids {
            self.kids.entry(k.clone()).or_default().union(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_v1_round_trip_and_paths() {
        let v = json!({"f:data": {".": {}, "f:a": {}}, "f:spec": {"f:c": {"k:{\"name\":\"x\"}": {".": {}, "f:image": {}}}}});
        let s = FieldSet::from_json(&v);
        assert_eq!(s.to_json(), v);
        let p = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            s.paths(),
            [
                p(&["f:data"]),
                p(&["f:data", "f:a"]),
                p(&["f:spec", "f:c", "k:{\"name\":\"x\"}"]),
                p(&["f:spec", "f:c", "k:{\"name\":\"x\"}", "f:image"])
            ]
        );
        assert!(s.has(&p(&["f:data", "f:a"])) && s.has(&p(&["f:data"])) && !s.has(&p(&["f:spec"])));
        assert!(s.touches(&p(&["f:spec"])));
        let mut t = s.clone();
        t.remove(&p(&["f:spec", "f:c", "k:{\"name\":\"x\"}", "f:image"]));
        assert!(t.has(&p(&["f:spec", "f:c", "k:{\"name\":\"x\"}"])));
        t.remove(&p(&["f:spec", "f:c", "k:{\"name\":\"x\"}"]));
        assert!(!t.touches(&p(&["f:spec"])));
    }
}
