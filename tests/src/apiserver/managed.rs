//! Field management and server-side apply, after structured-merge-diff as
//! kube-apiserver runs it: `metadata.managedFields` records, per manager and
//! operation (`Apply` or `Update`), the fields it set; an apply merges the applied
//! configuration into the object (lists by their keys), refuses to change fields other
//! managers own (409 with each conflict) unless forced, and removes fields the manager
//! applied before and no longer applies, when nobody else owns them.
//!
//! List semantics come from the CRD schema (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`; lists are atomic by default) and, for built-in kinds,
//! from the merge keys of their Go types (the same table as strategic merge).

mod fieldset;

use serde_json::{Map, Value, json};

pub use self::fieldset::FieldSet;
use super::{
    Status,
    patch::merge_key,
    status::{Cause, Qualified},
    store::now,
};

/// Where a value sits: its schema node (a CRD's, or a built-in kind's OpenAPI
/// definition, `$ref`s followed), and for built-in kinds the field name that picks
/// its lists' merge keys.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    node: &'a Value,
    defs: &'a Map<String, Value>,
    /// Built-in kinds: lists merge by their Go types' merge keys (named by field).
    builtin: Option<&'a str>,
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListKind {
    Map(Vec<String>),
    Set,
    Atomic,
}

const NULL: &Value = &Value::Null;

impl<'a> Shape<'a> {
    /// A built-in kind's object, from its OpenAPI definition (`None`: unknown kind).
    pub fn builtin(definition: Option<&'a Value>, defs: &'a Map<String, Value>) -> Self {
        Self { node: definition.unwrap_or(NULL), defs, builtin: Some("") }
    }

    /// A custom resource, from its CRD version's `openAPIV3Schema`.
    pub fn custom(schema: &'a Value, defs: &'a Map<String, Value>) -> Self {
        Self { node: schema, defs, builtin: None }
    }

    fn resolved(self) -> &'a Value {
        let mut s = self.node;
        for _ in 0..8 {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                match r.rsplit('/').next().and_then(|n| self.defs.get(n)) {
                    Some(d) => s = d,
                    None => return NULL,
                }
            } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                s = only;
            } else {
                break;
            }
        }
        s
    }

    fn child(self, key: &'a str) -> Shape<'a> {
        if key == "metadata" && self.builtin.is_none() {
            // Custom resources' metadata is ObjectMeta, with its built-in lists.
            let meta = self.defs.get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
            return Shape { node: meta.unwrap_or(NULL), defs: self.defs, builtin: Some("metadata") };
        }
        let s = self.resolved();
        let node = match s["properties"].get(key) {
            Some(p) => p,
            None if s["additionalProperties"].is_object() => &s["additionalProperties"],
            None => NULL,
        };
        Shape { node, defs: self.defs, builtin: self.builtin.map(|_| key) }
    }

    fn item(self) -> Shape<'a> {
        Shape { node: &self.resolved()["items"], ..self }
    }

    /// A map (keys of its own, made by whoever adds the first one), not a struct.
    fn is_map(self) -> bool {
        let s = self.resolved();
        !s["properties"].is_object()
    }

    fn list(self, sample: Option<&Value>) -> ListKind {
        match self.builtin {
            Some("finalizers") => ListKind::Set,
            Some(f) => match sample.and_then(|s| merge_key(f, s)).or_else(|| merge_key(f, NULL)) {
                Some(k) => ListKind::Map(vec![k.to_string()]),
                None => ListKind::Atomic,
            },
            None => {
                let s = self.resolved();
                match s["x-kubernetes-list-type"].as_str() {
                    Some("map") => ListKind::Map(
                        s["x-kubernetes-list-map-keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect(),
                    ),
                    Some("set") => ListKind::Set,
                    _ => ListKind::Atomic,
                }
            }
        }
    }
}

/// The path element of a list item: `k:{"name":"c"}` for map lists (keys sorted),
/// `v:"x"` for sets.
fn element(kind: &ListKind, item: &Value) -> String {
    match kind {
        ListKind::Map(keys) => {
            let mut sorted = keys.clone();
            sorted.sort();
            let parts: Vec<String> =
                sorted.iter().filter_map(|k| item.get(k).map(|v| format!("{}:{}", json!(k), v))).collect();
            format!("k:{{{}}}", parts.join(","))
        }
        _ => format!("v:{item}"),
    }
}

/// The index of the item of `list` whose element is `el`.
fn find_item(list: &[Value], kind: &ListKind, el: &str) -> Option<usize> {
    list.iter().position(|i| element(kind, i) == el)
}

/// Metadata fields the server owns; never part of a manager's set.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The object without what no manager owns (`apiVersion`, `kind`, system metadata).
fn owned_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| !SYSTEM_METADATA.contains(&k.as_str()));
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    v
}

/// The fields set in `v`.
pub fn fields_of(v: &Value, shape: Shape<'_>) -> FieldSet {
    let mut out = FieldSet::default();
    collect(&owned_part(v), shape, &mut Vec::new(), &mut out);
    out
}

fn mark(set: &mut FieldSet, path: &[String]) {
    set.insert(path);
    let mut node = set;
    for p in path {
        node = node.kids.entry(p.clone()).or_default();
    }
    node.me = true;
}

fn collect(v: &Value, shape: Shape<'_>, at: &mut Vec<String>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                at.push(format!("f:{k}"));
                collect(c, shape.child(k), at, out);
                at.pop();
            }
        }
        Value::Array(items) if !matches!(shape.list(items.first()), ListKind::Atomic) => {
            let kind = shape.list(items.first());
            for item in items {
                at.push(element(&kind, item));
                match &kind {
                    ListKind::Map(_) => {
                        mark(out, at);
                        if let Value::Object(m) = item {
                            for (k, c) in m {
                                at.push(format!("f:{k}"));
                                collect(c, shape.item().child(k), at, out);
                                at.pop();
                            }
                        }
                    }
                    _ => out.insert(at),
                }
                at.pop();
            }
        }
        _ if !at.is_empty() => out.insert(at),
        _ => {}
    }
}

/// The fields that differ from `old` to `new`: what an update's manager takes over.
fn changed(old: Option<&Value>, new: &Value, shape: Shape<'_>, at: &mut Vec<String>, out: &mut FieldSet) {
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(m) if !m.is_empty() => {
            let old = old.and_then(Value::as_object);
            if old.is_none() && !at.is_empty() && shape.is_map() {
                mark(out, at);
            }
            for (k, c) in m {
                at.push(format!("f:{k}"));
                changed(old.and_then(|o| o.get(k)), c, shape.child(k), at, out);
                at.pop();
            }
        }
        Value::Array(items) if !matches!(shape.list(items.first()), ListKind::Atomic) => {
            let kind = shape.list(items.first());
            let old_items = old.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            for item in items {
                let el = element(&kind, item);
                at.push(el.clone());
                match (find_item(old_items, &kind, &el), &kind) {
                    (Some(i), ListKind::Map(_)) => {
                        let old_item = old_items[i].as_object();
                        for (k, c) in item.as_object().into_iter().flatten() {
                            at.push(format!("f:{k}"));
                            changed(old_item.and_then(|o| o.get(k)), c, shape.item().child(k), at, out);
                            at.pop();
                        }
                    }
                    (Some(_), _) => {}
                    (None, ListKind::Map(_)) => {
                        mark(out, at);
                        for (k, c) in item.as_object().into_iter().flatten() {
                            at.push(format!("f:{k}"));
                            collect(c, shape.item().child(k), at, out);
                            at.pop();
                        }
                    }
                    (None, _) => out.insert(at),
                }
                at.pop();
            }
        }
        _ if !at.is_empty() => out.insert(at),
        _ => {}
    }
}

/// The value at a field-set path.
fn value_at<'v>(v: &'v Value, path: &[String], shape: Shape<'_>) -> Option<&'v Value> {
    let Some((head, rest)) = path.split_first() else { return Some(v) };
    if let Some(k) = head.strip_prefix("f:") {
        return value_at(v.get(k)?, rest, shape.child(k));
    }
    let items = v.as_array()?;
    let kind = shape.list(items.first());
    let i = find_item(items, &kind, head)?;
    value_at(&items[i], rest, shape.item())
}

/// Removes the value at a field-set path.
fn remove_at(v: &mut Value, path: &[String], shape: Shape<'_>) {
    let Some((head, rest)) = path.split_first() else { return };
    if let Some(k) = head.strip_prefix("f:") {
        match (rest.is_empty(), v.as_object_mut()) {
            (true, Some(m)) => {
                m.remove(k);
            }
            (false, Some(m)) => {
                if let Some(c) = m.get_mut(k) {
                    remove_at(c, rest, shape.child(k));
                }
            }
            _ => {}
        }
        return;
    }
    let Some(items) = v.as_array_mut() else { return };
    let kind = shape.list(items.first());
    let Some(i) = find_item(items, &kind, head) else { return };
    if rest.is_empty() {
        items.remove(i);
    } else {
        remove_at(&mut items[i], rest, shape.item());
    }
}

/// Keeps only the members of `set` that exist in `v`.
fn prune_to(set: &mut FieldSet, v: &Value, shape: Shape<'_>) {
    set.kids.retain(|k, child| {
        let sub = value_at(v, std::slice::from_ref(k), shape);
        let Some(sub) = sub else { return false };
        let child_shape = match k.strip_prefix("f:") {
            Some(name) => shape.child(name),
            None => shape.item(),
        };
        prune_to(child, sub, child_shape);
        true
    });
}

/// Merges an applied configuration into the live object: fields replaced, objects
/// merged, lists by their kind (map lists by key, sets as unions, others replaced).
fn merge(live: &Value, cfg: &Value, shape: Shape<'_>) -> Value {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, cv, shape.child(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let kind = shape.list(c.first().or(l.first()));
            match kind {
                ListKind::Atomic => cfg.clone(),
                _ => {
                    let mut out = l.clone();
                    for item in c {
                        let el = element(&kind, item);
                        match find_item(&out, &kind, &el) {
                            Some(i) if matches!(kind, ListKind::Map(_)) => {
                                out[i] = merge(&out[i], item, shape.item())
                            }
                            Some(_) => {}
                            None => out.push(item.clone()),
                        }
                    }
                    Value::Array(out)
                }
            }
        }
        _ => cfg.clone(),
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: String,
    set: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["manager"].is_string() || e["operation"].is_string())
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            set: FieldSet::from_json(&e["fieldsV1"]),
        })
        .collect()
}

fn store_entries(obj: &mut Value, mut list: Vec<Entry>, shape: Shape<'_>) {
    let owned = owned_part(obj);
    for e in &mut list {
        prune_to(&mut e.set, &owned, shape);
    }
    list.retain(|e| !e.set.is_empty());
    let json: Vec<Value> = list
        .into_iter()
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                               "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": e.set.to_json()});
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if json.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(json);
    }
}

/// Who writes: the manager's name, the request's API version and subresource.
#[derive(Debug, Clone)]
pub struct Manager {
    /// `fieldManager`, or the user agent's first word.
    pub name: String,
    /// `v1`, `apps/v1`.
    pub api_version: String,
    /// `status`, `scale` or empty.
    pub subresource: String,
}

impl Manager {
    fn entry<'e>(&self, list: &'e mut Vec<Entry>, operation: &str) -> &'e mut Entry {
        let pos = list.iter().position(|e| {
            e.manager == self.name && e.operation == operation && e.subresource == self.subresource
        });
        let i = match pos {
            Some(i) => i,
            None => {
                list.push(Entry {
                    manager: self.name.clone(),
                    operation: operation.into(),
                    api_version: self.api_version.clone(),
                    subresource: self.subresource.clone(),
                    time: String::new(),
                    set: FieldSet::default(),
                });
                list.len() - 1
            }
        };
        let e = &mut list[i];
        e.api_version = self.api_version.clone();
        e.time = now();
        e
    }
}

/// Records a create or an update (also a non-apply patch): `manager` takes the fields
/// that differ from `old` (every field on create); other managers lose them. What the
/// client sent in `managedFields` replaces the record (an empty entry clears it).
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &Manager, shape: Shape<'_>) {
    let sent = new["metadata"].get("managedFields").cloned();
    let mut list = match (&sent, old) {
        (Some(Value::Array(_)), _) => entries(new),
        (_, Some(o)) => entries(o),
        _ => Vec::new(),
    };
    if sent.is_some() && sent != old.map(|o| o["metadata"]["managedFields"].clone()) {
        // The client set managedFields itself: taken as sent, not recomputed.
        store_entries(new, list, shape);
        return;
    }
    let mut diff = FieldSet::default();
    let old_owned = old.map(owned_part);
    changed(old_owned.as_ref(), &owned_part(new), shape, &mut Vec::new(), &mut diff);
    if !diff.is_empty() {
        // The changed values (not the maps and items around them) change hands.
        let taken = diff.leaves();
        for e in list.iter_mut() {
            if e.manager != manager.name || e.operation != "Update" || e.subresource != manager.subresource {
                for p in &taken {
                    e.set.remove(p);
                }
            }
        }
        manager.entry(&mut list, "Update").set.union(&diff);
    }
    store_entries(new, list, shape);
}

fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Server-side apply of `config` by `manager` onto `live` (`None`: the object is
/// created). Returns the object to store, `managedFields` updated.
///
/// # Errors
/// 409 Conflict naming each field another manager owns with a different value,
/// unless `force`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager,
    force: bool,
    shape: Shape<'_>,
    what: Qualified<'_>,
    name: &str,
) -> Result<Value, Status> {
    let applied = fields_of(config, shape);
    let mut list = live.map(entries).unwrap_or_default();
    let live_owned = live.map(owned_part);
    let cfg_owned = owned_part(config);
    let mut conflicts: Vec<(Vec<String>, String)> = Vec::new();
    if let Some(lo) = &live_owned {
        for p in applied.paths() {
            let (Some(have), Some(want)) = (value_at(lo, &p, shape), value_at(&cfg_owned, &p, shape)) else {
                continue;
            };
            let node_only = want.is_object() || want.is_array();
            if have == want || node_only {
                continue;
            }
            for e in &list {
                let mine = e.manager == manager.name
                    && e.operation == "Apply"
                    && e.subresource == manager.subresource;
                if !mine && e.set.has(&p) {
                    conflicts.push((p.clone(), e.manager.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict(&conflicts, &list, what, name));
    }
    for (p, owner) in &conflicts {
        for e in list.iter_mut().filter(|e| &e.manager == owner) {
            e.set.remove(p);
        }
    }
    let mut out = match live {
        Some(l) => merge(l, config, shape),
        None => config.clone(),
    };
    let previous = list
        .iter()
        .find(|e| e.manager == manager.name && e.operation == "Apply" && e.subresource == manager.subresource)
        .map(|e| e.set.clone())
        .unwrap_or_default();
    for p in previous.paths() {
        if applied.touches(&p) {
            continue;
        }
        let others = list.iter().any(|e| {
            !(e.manager == manager.name && e.operation == "Apply" && e.subresource == manager.subresource)
                && e.set.touches(&p)
        });
        if !others {
            remove_at(&mut out, &p, shape);
        }
    }
    manager.entry(&mut list, "Apply").set = applied;
    store_entries(&mut out, list, shape);
    Ok(out)
}

fn conflict(conflicts: &[(Vec<String>, String)], list: &[Entry], what: Qualified<'_>, name: &str) -> Status {
    let version =
        |m: &str| list.iter().find(|e| e.manager == m).map(|e| e.api_version.clone()).unwrap_or_default();
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(p, m)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {m:?} using {}", version(m)),
            field: path_string(p),
        })
        .collect();
    let message = match causes.as_slice() {
        [one] => format!("Apply failed with 1 conflict: {}: {}", one.message, one.field),
        many => {
            let mut m = format!("Apply failed with {} conflicts: ", many.len());
            let mut by_owner: Vec<(String, Vec<String>)> = Vec::new();
            for c in many {
                match by_owner.iter_mut().find(|(o, _)| *o == c.message) {
                    Some((_, fields)) => fields.push(c.field.clone()),
                    None => by_owner.push((c.message.clone(), vec![c.field.clone()])),
                }
            }
            let parts: Vec<String> = by_owner
                .iter()
                .map(|(o, fields)| {
                    let o = o.replacen("conflict with", "conflicts with", 1);
                    format!("{o}:\n- {}", fields.join("\n- "))
                })
                .collect();
            m.push_str(&parts.join("\n"));
            m
        }
    };
    let mut s = Status::new(409, "Conflict", message);
    s.details = Some(json!({
        "name": name, "group": what.group, "kind": what.resource,
        "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect::<Vec<_>>(),
    }));
    s
}

#[cfg(test)]
mod tests;
