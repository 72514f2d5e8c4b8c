//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`), as kube-apiserver
//! decodes request bodies: fields the kind does not declare are dropped (built-in kinds
//! by their k8s-openapi schema, custom ones by their CRD's structural schema), and
//! duplicate keys keep their last value; `Strict` refuses both with 400 `strict decoding
//! error: unknown field "spec.foo"`, `Warn` (the default) lets the request through with
//! one `Warning` header per field, `Ignore` says nothing.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Status, openapi::builtin, resources::ResourceInfo};

/// What to do about unknown and duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Refuse the request.
    Strict,
    /// Drop them and warn (kube-apiserver's default).
    Warn,
    /// Drop them silently.
    Ignore,
}

impl Directive {
    /// From the `fieldValidation` parameter.
    ///
    /// # Errors
    /// 400 for any other value.
    pub fn parse(v: Option<&str>) -> Result<Self, Status> {
        match v {
            None | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(Status::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; valid values are Ignore, Warn, Strict"
            ))),
        }
    }
}

/// What decoding a body found: the problems, each as kube-apiserver words it
/// (`unknown field "spec.foo"`, `duplicate field "spec.replicas"`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings(pub Vec<String>);

impl Findings {
    /// Adds the unknown fields at `paths`.
    pub fn unknown(&mut self, paths: impl IntoIterator<Item = String>) {
        self.0.extend(paths.into_iter().map(|p| format!("unknown field {p:?}")));
    }

    /// Applies `directive`: the warnings to send, or the refusal. `prefix` starts the
    /// refusal's message (kube-apiserver's create and update say which kind could not
    /// be decoded; its patch does not).
    ///
    /// # Errors
    /// 400 under [`Directive::Strict`] when anything was found.
    pub fn outcome(self, directive: Directive, prefix: &str) -> Result<Vec<String>, Status> {
        match directive {
            _ if self.0.is_empty() => Ok(Vec::new()),
            Directive::Ignore => Ok(Vec::new()),
            Directive::Warn => Ok(self.0),
            Directive::Strict => {
                Err(Status::bad_request(format!("{prefix}strict decoding error: {}", self.0.join(", "))))
            }
        }
    }
}

/// The prefix kube-apiserver's create and update put before a decoding error.
pub fn decode_prefix(res: &ResourceInfo) -> String {
    format!("{} in version {:?} cannot be handled as a {}: ", res.kind, res.version, res.kind)
}

/// Parses a JSON body as kube-apiserver's decoder does: the last of duplicate keys wins,
/// and each duplicate is reported.
///
/// # Errors
/// 400 when the body is not JSON.
pub fn parse_json(body: &[u8], findings: &mut Findings) -> Result<Value, Status> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Seed { path: String::new(), dups: &dups }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    findings.0.extend(dups.into_inner().into_iter().map(|p| format!("duplicate field {p:?}")));
    Ok(v)
}

struct Seed<'a> {
    path: String,
    dups: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) =
            seq.next_element_seed(Seed { path: format!("{}[{}]", self.path, out.len()), dups: self.dups })?
        {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { k.clone() } else { format!("{}.{k}", self.path) };
            let v = map.next_value_seed(Seed { path: path.clone(), dups: self.dups })?;
            if out.insert(k, v).is_some() {
                self.dups.borrow_mut().push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Drops the fields a built-in kind does not declare, as decoding into its Go type
/// does; returns their paths. Kinds the catalog does not know are left alone.
pub fn prune_builtin(res: &ResourceInfo, obj: &mut Value) -> Vec<String> {
    let catalog = builtin::catalog();
    let Some(kind) = catalog.kind(&res.group, &res.version, &res.kind) else { return Vec::new() };
    let mut removed = Vec::new();
    let root = &catalog.definitions[&kind.definition];
    prune_value(&catalog.definitions, root, obj, "", &mut removed);
    removed
}

/// Follows `$ref` and single-element `allOf` wrappers to the schema that describes.
fn resolve<'a>(defs: &'a Map<String, Value>, mut s: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix("#/components/schemas/").and_then(|n| defs.get(n)) {
                Some(d) => s = d,
                None => return s,
            }
        } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = only;
        } else {
            return s;
        }
    }
    s
}

fn prune_value(
    defs: &Map<String, Value>,
    schema: &Value,
    v: &mut Value,
    at: &str,
    removed: &mut Vec<String>,
) {
    let s = resolve(defs, schema);
    match v {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                map.retain(|k, child| {
                    let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                    match props.get(k) {
                        Some(ps) => {
                            prune_value(defs, ps, child, &path, removed);
                            true
                        }
                        None => {
                            removed.push(path);
                            false
                        }
                    }
                });
            } else if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map.iter_mut() {
                    prune_value(defs, extra, child, &format!("{at}.{k}"), removed);
                }
            }
            // An object schema without properties (RawExtension, FieldsV1, JSON):
            // any content, as the Go types keep it.
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(defs, is, item, &format!("{at}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn duplicates_are_found_with_their_paths() {
        let mut f = Findings::default();
        let v = parse_json(br#"{"spec": {"replicas": 1, "replicas": 2, "l": [{"a": 1, "a": 3}]}}"#, &mut f)
            .unwrap();
        assert_eq!(v, json!({"spec": {"replicas": 2, "l": [{"a": 3}]}}));
        assert_eq!(f.0, ["duplicate field \"spec.replicas\"", "duplicate field \"spec.l[0].a\""]);
        assert!(parse_json(b"{", &mut f).is_err());
    }

    #[test]
    fn built_in_objects_lose_undeclared_fields() {
        let reg = Registry::new();
        let pods = reg.find("", "v1", "pods").unwrap();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always",
                                     "resources": {"limits": {"cpu": "1"}}}]},
        });
        let removed = prune_builtin(pods, &mut pod);
        assert_eq!(removed, ["metadata.bogus", "spec.containers[0].imagePullPolicyy"]);
        assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");
        assert_eq!(pod["metadata"]["labels"]["a"], "b");
        let revs = reg.find("apps", "v1", "controllerrevisions").unwrap();
        let mut rev = json!({"metadata": {"name": "r"}, "revision": 1, "data": {"any": {"thing": 1}}});
        assert!(prune_builtin(revs, &mut rev).is_empty(), "RawExtension keeps everything");
    }

    #[test]
    fn directives() {
        let mut f = Findings::default();
        f.unknown(["spec.foo".to_string()]);
        assert_eq!(f.clone().outcome(Directive::Warn, "").unwrap(), ["unknown field \"spec.foo\""]);
        assert!(f.clone().outcome(Directive::Ignore, "").unwrap().is_empty());
        let e =
            f.outcome(Directive::Strict, "Pod in version \"v1\" cannot be handled as a Pod: ").unwrap_err();
        assert_eq!(
            e.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\""
        );
        assert_eq!(Directive::parse(Some("x")).unwrap_err().code, 400);
    }
}
