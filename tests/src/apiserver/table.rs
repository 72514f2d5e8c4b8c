//! `meta.k8s.io` Tables, what `kubectl get` prints: custom resources get their CRD
//! version's `additionalPrinterColumns` (JSONPath cells, `priority` columns shown with
//! `-o wide`), or Name and Created At without any; built-in kinds get kube-apiserver's
//! default columns ([`builtin`]). Rows carry the object as `includeObject` asks
//! (`Metadata`, the default: a `PartialObjectMetadata`; `Object`; `None`).

mod builtin;
mod jsonpath;

use serde_json::{Value, json};

use super::{
    handlers::crd_of,
    resources::ResourceInfo,
    server::{Request, Shared},
};

/// How a cell is computed.
#[derive(Debug, Clone)]
enum Cell {
    /// The object's name.
    Name,
    /// A JSONPath into the object (CRD printer columns).
    Path(String),
    /// A built-in printer's function.
    Fn(fn(&Value) -> Value),
}

/// One column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    name: String,
    ty: String,
    format: String,
    description: String,
    priority: i64,
    cell: Cell,
}

impl Column {
    fn new(name: &str, ty: &str, priority: i64, cell: fn(&Value) -> Value) -> Self {
        Self {
            name: name.into(),
            ty: ty.into(),
            format: String::new(),
            description: String::new(),
            priority,
            cell: Cell::Fn(cell),
        }
    }

    fn name_column() -> Self {
        Self {
            name: "Name".into(),
            ty: "string".into(),
            format: "name".into(),
            description: "Name must be unique within a namespace. It is required when creating resources, \
                          although some resources may allow a client to request the generation of an \
                          appropriate name automatically."
                .into(),
            priority: 0,
            cell: Cell::Name,
        }
    }

    fn definition(&self) -> Value {
        json!({"name": self.name, "type": self.ty, "format": self.format,
               "description": self.description, "priority": self.priority})
    }

    fn cell(&self, o: &Value) -> Value {
        match &self.cell {
            Cell::Name => o["metadata"]["name"].clone(),
            Cell::Fn(f) => f(o),
            Cell::Path(p) => {
                let found = jsonpath::find(o, p);
                let v = match found.as_slice() {
                    [] => return Value::Null,
                    [one] => (*one).clone(),
                    many => Value::String(many.iter().map(|v| plain(v)).collect::<Vec<_>>().join(",")),
                };
                match (self.ty.as_str(), &v) {
                    ("string", Value::Number(_) | Value::Bool(_)) => Value::String(plain(&v)),
                    // Dates print as ages, as kube-apiserver's CRD table convertor does.
                    ("date", Value::String(t)) => builtin::age_of(Some(t)),
                    _ => v,
                }
            }
        }
    }
}

/// A value as `fmt.Sprint` would print it.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Include {
    None,
    Metadata,
    Object,
}

/// The columns and row contents for one request.
#[derive(Debug, Clone)]
pub struct Printer {
    columns: Vec<Column>,
    include: Include,
}

impl Printer {
    /// The printer for `res` (custom resources: their CRD's printer columns).
    pub fn for_request(shared: &Shared, res: &ResourceInfo, req: &Request) -> Self {
        let include = match req.query.get("includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        };
        let columns = match res.crd {
            Some(_) => {
                let crd = crd_of(&shared.lock(), res);
                custom_columns(&crd.unwrap_or_default(), &res.version)
            }
            None => builtin::columns(&res.group, &res.plural).unwrap_or_else(default_columns),
        };
        Self { columns, include }
    }

    /// A Table of `objects`, with `metadata` (the list's resourceVersion and continue).
    pub fn table(&self, objects: &[Value], metadata: Value, beta: bool) -> Value {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let cells: Vec<Value> = self.columns.iter().map(|c| c.cell(o)).collect();
                let mut row = json!({"cells": cells});
                match self.include {
                    Include::None => {}
                    Include::Object => row["object"] = o.clone(),
                    Include::Metadata => {
                        row["object"] = json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
                            "metadata": o["metadata"],
                        });
                    }
                }
                row
            })
            .collect();
        json!({
            "kind": "Table",
            "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
            "metadata": metadata,
            "columnDefinitions": self.columns.iter().map(Column::definition).collect::<Vec<_>>(),
            "rows": rows,
        })
    }
}

/// The Table of a list response.
pub fn of_list(shared: &Shared, res: &ResourceInfo, req: &Request, list: Value, beta: bool) -> Value {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Printer::for_request(shared, res, req).table(&items, list["metadata"].clone(), beta)
}

/// The Table of one object.
pub fn of_object(shared: &Shared, res: &ResourceInfo, req: &Request, obj: Value, beta: bool) -> Value {
    let rv = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
    Printer::for_request(shared, res, req).table(&[obj], rv, beta)
}

/// Name and Created At (RFC 3339): kube-apiserver's default table convertor.
fn default_columns() -> Vec<Column> {
    vec![Column::name_column(), {
        let mut c = Column::new("Created At", "date", 0, |o| o["metadata"]["creationTimestamp"].clone());
        c.description =
            "CreationTimestamp is a timestamp representing the server time when this object was created."
                .into();
        c
    }]
}

/// A CRD version's `additionalPrinterColumns` after Name; a CRD without any gets the
/// Age column kube-apiserver's CRD defaulting adds.
fn custom_columns(crd: &Value, version: &str) -> Vec<Column> {
    let v = crd["spec"]["versions"].as_array().into_iter().flatten().find(|v| v["name"] == version);
    let age = json!([{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]);
    let cols = v.and_then(|v| v["additionalPrinterColumns"].as_array()).filter(|c| !c.is_empty());
    let cols = cols.unwrap_or_else(|| age.as_array().expect("a list"));
    let mut out = vec![Column::name_column()];
    for c in cols {
        out.push(Column {
            name: c["name"].as_str().unwrap_or_default().into(),
            ty: c["type"].as_str().unwrap_or("string").into(),
            format: c["format"].as_str().unwrap_or_default().into(),
            description: c["description"].as_str().unwrap_or_default().into(),
            priority: c["priority"].as_i64().unwrap_or(0),
            cell: Cell::Path(c["jsonPath"].as_str().unwrap_or_default().into()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_printer_columns() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
            {"name": "DESIRED", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "READY", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "IMAGE", "type": "string", "priority": 1, "jsonPath": ".spec.template.spec.containers[*].image"},
            {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}});
        let p = Printer { columns: custom_columns(&crd, "v1"), include: Include::Object };
        let o = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
                       "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}},
                       "status": {"conditions": [{"type": "X", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let t = p.table(std::slice::from_ref(&o), json!({"resourceVersion": "5"}), false);
        let age = t["rows"][0]["cells"][4].as_str().unwrap().to_string();
        assert!(age.ends_with('d') || age.ends_with('y'), "a date column prints as an age: {age}");
        assert_eq!(t["rows"][0]["cells"], json!(["web", 3, "True", "a,b", age]));
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
        assert_eq!(t["rows"][0]["object"], o);
        let none = Printer { columns: custom_columns(&json!({}), "v1"), include: Include::Metadata };
        let t = none.table(&[o], json!({}), true);
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    }
}
