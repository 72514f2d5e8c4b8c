//! Validation as kube-apiserver's CRD handler does it: the OpenAPI v3 validator
//! (kube-openapi, messages `<path> in body ...`) mapped to field errors, then the
//! embedded-resource and list-type (set/map) checks.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
    sync::{LazyLock, Mutex},
};

use base64::Engine as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use regex::Regex;
use serde_json::{Map, Value};

use super::render::{go_float, go_quote};
use super::{ErrorKind, SchemaError};

/// The compiled `pattern`s (one CRD's few, asked for at every write of its objects:
/// compiling them each time took a twentieth of a busy server's time). A pattern that
/// does not compile is kept as its error.
fn pattern(pattern: &str) -> Result<Regex, String> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Result<Regex, String>>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = compiled.entry(pattern.to_owned());
    entry.or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string())).clone()
}

static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
        .expect("static regex")
});
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$").expect("static regex"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
        .expect("static regex")
});

/// Validates `value` against `schema` and returns every error, in kube-apiserver's
/// order (OpenAPI errors, then embedded resources, then list sets and maps).
pub fn validate(schema: &JSONSchemaProps, value: &Value) -> Vec<SchemaError> {
    let mut errs = Vec::new();
    node(schema, "", value, &mut errs);
    structural(schema, "", value, &mut errs);
    errs
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

pub(crate) fn items_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn additional_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

fn types_of(s: &JSONSchemaProps) -> Vec<&str> {
    if s.x_kubernetes_int_or_string == Some(true) {
        vec!["integer", "string"]
    } else {
        s.type_.as_deref().filter(|t| !t.is_empty()).into_iter().collect()
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn invalid(path: &str, value: Value, message: String) -> SchemaError {
    SchemaError::new(path, ErrorKind::Invalid, Some(value), message)
}

/// A kube-openapi error that is not a `*errors.Validation` (composite and range
/// errors): kube-apiserver reports it with an empty field and an empty value.
fn unnamed(message: String) -> SchemaError {
    invalid("", Value::String(String::new()), message)
}

fn enum_text(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => go_quote(&other.to_string()),
    }
}

fn enum_matches(data: &Value, candidate: &Value) -> bool {
    match (data, candidate) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn check_enum(s: &JSONSchemaProps, path: &str, v: &Value, errs: &mut Vec<SchemaError>) {
    let Some(values) = s.enum_.as_ref().filter(|e| !e.is_empty()) else { return };
    if values.iter().any(|e| enum_matches(v, &e.0)) {
        return;
    }
    let supported: Vec<String> = values.iter().map(|e| enum_text(&e.0)).collect();
    errs.push(SchemaError::new(
        path,
        ErrorKind::NotSupported,
        Some(v.clone()),
        format!("supported values: {}", supported.join(", ")),
    ));
}

fn node(s: &JSONSchemaProps, path: &str, v: &Value, errs: &mut Vec<SchemaError>) {
    let types = types_of(s);
    if v.is_null() {
        if !types.is_empty() && s.nullable != Some(true) {
            errs.push(type_error(path, &types.join(","), "null"));
        }
        check_enum(s, path, v, errs);
        return;
    }
    let actual = json_type(v);
    if !types.is_empty() {
        let float_int =
            actual == "number" && v.as_f64().is_some_and(|f| f.fract() == 0.0) && types.contains(&"integer");
        let int_float = actual == "integer" && types.contains(&"number");
        if !(types.contains(&actual) || float_int || int_float) {
            errs.push(type_error(path, &types.join(","), actual));
        }
    }
    composite(s, path, v, errs);
    match v {
        Value::String(text) => {
            string(s, path, text, errs);
            format(s, path, text, errs);
        }
        Value::Number(_) => number(s, path, v, errs),
        Value::Array(items) => array(s, path, items, errs),
        _ => {}
    }
    check_enum(s, path, v, errs);
    if let Value::Object(map) = v {
        object(s, path, map, errs);
    }
}

fn type_error(path: &str, expected: &str, actual: &str) -> SchemaError {
    SchemaError::new(
        path,
        ErrorKind::TypeInvalid,
        Some(Value::String(actual.to_owned())),
        format!("{path} in body must be of type {expected}: {}", go_quote(actual)),
    )
}

fn sub(s: &JSONSchemaProps, path: &str, v: &Value) -> Vec<SchemaError> {
    let mut e = Vec::new();
    node(s, path, v, &mut e);
    e
}

fn composite(s: &JSONSchemaProps, path: &str, v: &Value, errs: &mut Vec<SchemaError>) {
    if let Some(any_of) = s.any_of.as_ref().filter(|a| !a.is_empty()) {
        let results: Vec<_> = any_of.iter().map(|b| sub(b, path, v)).collect();
        if !results.iter().any(Vec::is_empty) {
            errs.push(unnamed(format!("{path} must validate at least one schema (anyOf)")));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    if let Some(one_of) = s.one_of.as_ref().filter(|a| !a.is_empty()) {
        let results: Vec<_> = one_of.iter().map(|b| sub(b, path, v)).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let detail = if valid == 0 {
                "Found none valid".to_owned()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(unnamed(format!("{path} must validate one and only one schema (oneOf). {detail}")));
            if valid == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                errs.extend(best);
            }
        }
    }
    if let Some(all_of) = s.all_of.as_ref().filter(|a| !a.is_empty()) {
        let mut failed = 0;
        for b in all_of {
            let r = sub(b, path, v);
            if !r.is_empty() {
                failed += 1;
            }
            errs.extend(r);
        }
        if failed > 0 {
            let none = if failed == all_of.len() { ". None validated" } else { "" };
            errs.push(unnamed(format!("{path} must validate all the schemas (allOf){none}")));
        }
    }
    if let Some(not) = &s.not
        && sub(not, path, v).is_empty()
    {
        errs.push(unnamed(format!("{path} must not validate the schema (not)")));
    }
}

fn string(s: &JSONSchemaProps, path: &str, text: &str, errs: &mut Vec<SchemaError>) {
    let len = text.chars().count() as i64;
    if let Some(max) = s.max_length
        && len > max
    {
        let e = SchemaError::new(path, ErrorKind::TooLong, None, format!("may not be longer than {max}"));
        errs.push(e);
        return;
    }
    if let Some(min) = s.min_length
        && len < min
    {
        errs.push(invalid(path, text.into(), format!("{path} in body should be at least {min} chars long")));
        return;
    }
    if let Some(pattern) = s.pattern.as_deref() {
        match self::pattern(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => {
                errs.push(invalid(path, text.into(), format!("{path} in body should match '{pattern}'")))
            }
            Err(e) => errs.push(invalid(
                path,
                text.into(),
                format!("{path} in body should match '{pattern}, but pattern is invalid: {e}'"),
            )),
        }
    }
}

/// The string formats checked; kube-apiserver knows more (see [`super::NOT_ENFORCED`]).
fn format_ok(format: &str, text: &str) -> Option<bool> {
    Some(match format {
        "date-time" | "datetime" => DATE_TIME.is_match(text),
        "date" => DATE.is_match(text),
        "byte" => base64::engine::general_purpose::STANDARD.decode(text).is_ok(),
        "uuid" => UUID.is_match(text),
        "ipv4" => text.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<Ipv6Addr>().is_ok(),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.parse::<Ipv4Addr>().is_ok() {
                32
            } else if ip.parse::<Ipv6Addr>().is_ok() {
                128
            } else {
                return false;
            };
            bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "hostname" => {
            text.len() <= 255
                && text.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
        _ => return None,
    })
}

fn format(s: &JSONSchemaProps, path: &str, text: &str, errs: &mut Vec<SchemaError>) {
    let Some(f) = s.format.as_deref() else { return };
    if format_ok(f, text) == Some(false) {
        errs.push(SchemaError::new(
            path,
            ErrorKind::TypeInvalid,
            Some(text.into()),
            format!("{path} in body must be of type {f}: {}", go_quote(text)),
        ));
    }
}

fn number(s: &JSONSchemaProps, path: &str, v: &Value, errs: &mut Vec<SchemaError>) {
    let Value::Number(n) = v else { return };
    let data = n.as_f64().unwrap_or_default();
    let as_int = n.as_i64();
    // Does the value fit the declared type and format (kube-openapi's range check)?
    let ty = s.type_.as_deref().unwrap_or("");
    let fmt = s.format.as_deref().unwrap_or("");
    let fits = match (ty, fmt) {
        ("integer", "int32") => integral(n).is_some_and(|i| i32::try_from(i).is_ok()),
        ("integer", "uint32" | "uint64") => true,
        ("integer", _) => integral(n).is_some(),
        (_, "float" | "float32") => data.abs() <= f64::from(f32::MAX),
        _ => true,
    };
    if !fits {
        let shape =
            if fmt.is_empty() { format!("{ty} (default format)") } else { format!("{ty} with format {fmt}") };
        errs.push(unnamed(format!("Checked value must be of type {shape} in {path}")));
    }
    if let Some(factor) = s.multiple_of {
        let ok = match as_int {
            Some(i) if factor.fract() == 0.0 && factor >= 1.0 => i % (factor as i64) == 0,
            _ => {
                let m = if factor < 1.0 { 1.0 / factor * data } else { data / factor };
                m.fract() == 0.0
            }
        };
        if !ok {
            errs.push(invalid(
                path,
                v.clone(),
                format!("{path} in body should be a multiple of {}", go_float(factor)),
            ));
        }
    }
    if let Some(max) = s.maximum {
        let excl = s.exclusive_maximum == Some(true);
        let over = match as_int {
            Some(i) => (!excl && i > max as i64) || (excl && i >= max as i64),
            None => (!excl && data > max) || (excl && data >= max),
        };
        if over {
            let how = if excl { "less than" } else { "less than or equal to" };
            errs.push(invalid(
                path,
                v.clone(),
                format!("{path} in body should be {how} {}", bound(as_int, max)),
            ));
        }
    }
    if let Some(min) = s.minimum {
        let excl = s.exclusive_minimum == Some(true);
        let under = match as_int {
            Some(i) => (!excl && i < min as i64) || (excl && i <= min as i64),
            None => (!excl && data < min) || (excl && data <= min),
        };
        if under {
            let how = if excl { "greater than" } else { "greater than or equal to" };
            errs.push(invalid(
                path,
                v.clone(),
                format!("{path} in body should be {how} {}", bound(as_int, min)),
            ));
        }
    }
}

/// A bound as kube-openapi prints it: truncated to an integer for integer data.
fn bound(as_int: Option<i64>, b: f64) -> String {
    match as_int {
        Some(_) => (b as i64).to_string(),
        None => go_float(b),
    }
}

fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    })
}

fn array(s: &JSONSchemaProps, path: &str, items: &[Value], errs: &mut Vec<SchemaError>) {
    if let Some(item_schema) = items_schema(s) {
        for (i, item) in items.iter().enumerate() {
            node(item_schema, &format!("{path}[{i}]"), item, errs);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = s.min_items
        && size < min
    {
        errs.push(invalid(path, size.into(), format!("{path} in body should have at least {min} items")));
    }
    if let Some(max) = s.max_items
        && size > max
    {
        errs.push(SchemaError::new(
            path,
            ErrorKind::TooMany,
            Some(size.into()),
            format!("must have at most {max} items"),
        ));
    }
    if s.unique_items == Some(true) && has_duplicates(items) {
        errs.push(invalid(path, "".into(), format!("{path} in body shouldn't contain duplicates")));
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items.iter().enumerate().any(|(i, a)| items[..i].contains(a))
}

fn object(s: &JSONSchemaProps, path: &str, map: &Map<String, Value>, errs: &mut Vec<SchemaError>) {
    let count = map.len() as i64;
    if let Some(min) = s.min_properties
        && count < min
    {
        errs.push(invalid(
            path,
            count.into(),
            format!("{path} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = s.max_properties
        && count > max
    {
        errs.push(SchemaError::new(
            path,
            ErrorKind::TooMany,
            Some(count.into()),
            format!("must have at most {max} items"),
        ));
        return;
    }
    let props = s.properties.as_ref();
    let known = |k: &str| props.is_some_and(|p| p.contains_key(k));
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Bool(false)) => {
            for k in map.keys().filter(|k| !known(k)) {
                errs.push(invalid(
                    path,
                    k.as_str().into(),
                    format!("{path}.{k} in body is a forbidden property"),
                ));
            }
        }
        Some(JSONSchemaPropsOrBool::Schema(extra)) => {
            for (k, v) in map.iter().filter(|(k, _)| !known(k)) {
                node(extra, &join(path, k), v, errs);
            }
        }
        _ => {}
    }
    if let Some(props) = props {
        for (k, ps) in props {
            if let Some(v) = map.get(k) {
                node(ps, &join(path, k), v, errs);
            }
        }
    }
    for k in s.required.iter().flatten() {
        if !map.contains_key(k) {
            errs.push(SchemaError::new(&join(path, k), ErrorKind::Required, None, ""));
        }
    }
}

/// The checks kube-apiserver runs besides the OpenAPI validator: embedded
/// resources need `apiVersion` and `kind`, list sets and maps have no duplicates.
fn structural(s: &JSONSchemaProps, path: &str, v: &Value, errs: &mut Vec<SchemaError>) {
    match v {
        Value::Object(map) => {
            if s.x_kubernetes_embedded_resource == Some(true) {
                for key in ["apiVersion", "kind"] {
                    if map.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                        errs.push(SchemaError::new(
                            &join(path, key),
                            ErrorKind::Required,
                            None,
                            "must not be empty",
                        ));
                    }
                }
            }
            for (k, child) in map {
                let cs = s.properties.as_ref().and_then(|p| p.get(k)).or_else(|| additional_schema(s));
                if let Some(cs) = cs {
                    structural(cs, &join(path, k), child, errs);
                }
            }
        }
        Value::Array(items) => {
            match s.x_kubernetes_list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            errs.push(SchemaError::new(
                                &format!("{path}[{i}]"),
                                ErrorKind::Duplicate,
                                Some(item.clone()),
                                "",
                            ));
                        }
                    }
                }
                Some("map") => list_map(s, path, items, errs),
                _ => {}
            }
            if let Some(is) = items_schema(s) {
                for (i, item) in items.iter().enumerate() {
                    structural(is, &format!("{path}[{i}]"), item, errs);
                }
            }
        }
        _ => {}
    }
}

fn list_map(s: &JSONSchemaProps, path: &str, items: &[Value], errs: &mut Vec<SchemaError>) {
    let keys = s.x_kubernetes_list_map_keys.as_deref().unwrap_or_default();
    let item_props = items_schema(s).and_then(|is| is.properties.as_ref());
    let mut seen: Vec<Map<String, Value>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else { continue };
        let mut key = Map::new();
        let mut complete = true;
        for k in keys {
            let default = item_props.and_then(|p| p.get(k)).and_then(|p| p.default.as_ref()).map(|d| &d.0);
            match obj.get(k).or(default) {
                Some(v) => {
                    key.insert(k.clone(), v.clone());
                }
                None => {
                    complete = false;
                    errs.push(SchemaError::new(&format!("{path}[{i}].{k}"), ErrorKind::Required, None, ""));
                }
            }
        }
        if !complete {
            continue;
        }
        if seen.contains(&key) {
            errs.push(SchemaError::new(
                &format!("{path}[{i}]"),
                ErrorKind::Duplicate,
                Some(Value::Object(key)),
                "",
            ));
        } else {
            seen.push(key);
        }
    }
}
