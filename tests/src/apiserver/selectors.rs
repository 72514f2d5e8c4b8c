//! Label and field selectors, parsed and checked as the real server does.

use serde_json::Value;

use super::{
    Status,
    resources::{FieldLabels, ResourceInfo},
};

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn set(values: &str) -> Option<Vec<String>> {
    let inner = values.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    ///
    /// # Errors
    /// 400 BadRequest on a malformed selector.
    pub fn parse(s: &str) -> Result<Self, Status> {
        let bad =
            || Status::bad_request(format!("unable to parse requirement: found '{s}', expected: selector"));
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
            let req = if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().into())
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if words.len() == 2 {
                let rest = words[1].trim_start();
                if let Some(v) = rest.strip_prefix("notin") {
                    Req::NotIn(words[0].into(), set(v).ok_or_else(bad)?)
                } else if let Some(v) = rest.strip_prefix("in") {
                    Req::In(words[0].into(), set(v).ok_or_else(bad)?)
                } else {
                    return Err(bad());
                }
            } else {
                Req::Exists(part.into())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` object (matchLabels, matchExpressions).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Req::Eq(k.clone(), v.as_str().unwrap_or_default().into()));
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let vals: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            reqs.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => Req::In(key, vals),
                "NotIn" => Req::NotIn(key, vals),
                "Exists" => Req::Exists(key),
                _ => Req::NotExists(key),
            });
        }
        Self(reqs)
    }

    /// The selector as a string (the Scale subresource's `status.selector`).
    pub fn to_query(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Req::Eq(k, v) => format!("{k}={v}"),
                Req::Ne(k, v) => format!("{k}!={v}"),
                Req::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Req::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Req::Exists(k) => k.clone(),
                Req::NotExists(k) => format!("!{k}"),
            })
            .collect();
        parts.join(",")
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Req::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    /// Whether the selector is empty (selects everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A parsed field selector, checked against the resource's supported labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter and checks every label.
    ///
    /// # Errors
    /// 400 BadRequest on a malformed selector or an unsupported field label.
    pub fn parse(s: &str, r: &ResourceInfo) -> Result<Self, Status> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (label, eq, value) = if let Some((l, v)) = part.split_once("!=") {
                (l, false, v)
            } else if let Some((l, v)) = part.split_once("==") {
                (l, true, v)
            } else if let Some((l, v)) = part.split_once('=') {
                (l, true, v)
            } else {
                return Err(Status::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let label = label.trim();
            let path = field_path(r, label).ok_or_else(|| Status::bad_request(unsupported(r, label)))?;
            reqs.push((path, eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether an object's fields match.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| (field_value(obj, path) == *want) == *eq)
    }

    /// The value a field must equal, if a requirement says so.
    pub fn exact(&self, path: &str) -> Option<&str> {
        self.0.iter().find(|(p, eq, _)| *eq && p == path).map(|(_, _, v)| v.as_str())
    }
}

fn field_path(r: &ResourceInfo, label: &str) -> Option<String> {
    match label {
        "metadata.name" => Some(label.into()),
        // Nodes and namespaces have conversion functions of their own that leave it out.
        "metadata.namespace"
            if r.namespaced || (r.crd.is_none() && r.field_labels == FieldLabels::Default) =>
        {
            Some(label.into())
        }
        _ => r.fields.iter().find(|(l, _)| l == label).map(|(_, p)| p.clone()),
    }
}

fn unsupported(r: &ResourceInfo, label: &str) -> String {
    match r.field_labels {
        FieldLabels::Own => format!("field label not supported: {label}"),
        FieldLabels::Default => {
            format!(
                "\"{label}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )
        }
    }
}

/// The string value of a dotted path; booleans as `true`/`false`, missing as `""` (or
/// `false` for the boolean fields the real server reads from a Go bool).
fn field_value(obj: &Value, path: &str) -> String {
    let v = path.split('.').try_fold(obj, |v, k| v.get(k));
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if matches!(path, "spec.hostNetwork" | "spec.unschedulable") => "false".into(),
        _ if matches!(path, "status.replicas" | "status.successful") => "0".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web") && m("app==web") && m("app!=db") && m("app") && m("!missing"));
        assert!(m("app in (db, web),tier notin (be)") && m("") && m("missing!=x"));
        assert!(!m("app=db") && !m("!app") && !m("app notin (web)") && !m("missing in (x)"));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors() {
        let reg = Registry::new();
        let pods = reg.find("", "v1", "pods").unwrap();
        let p = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"nodeName": "n1"}});
        let m = |s: &str| FieldSelector::parse(s, pods).unwrap().matches(&p);
        assert!(m("spec.nodeName=n1") && m("spec.hostNetwork=false") && m("metadata.name!=b"));
        assert!(!m("spec.nodeName==n2") && !m("status.phase=Running"));
        let e = FieldSelector::parse("spec.foo=x", pods).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: spec.foo"));
        let nodes = reg.find("", "v1", "nodes").unwrap();
        let e = FieldSelector::parse("metadata.namespace=x", nodes).unwrap_err();
        assert_eq!(e.message, "field label not supported: metadata.namespace");
        assert!(FieldSelector::parse("metadata.name=n,spec.unschedulable=false", nodes).is_ok());
        let pvs = reg.find("", "v1", "persistentvolumes").unwrap();
        assert!(FieldSelector::parse("metadata.namespace=", pvs).is_ok());
        let cm = reg.find("", "v1", "configmaps").unwrap();
        let e = FieldSelector::parse("data.x=1", cm).unwrap_err();
        assert_eq!(
            e.message,
            r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
    }
}
