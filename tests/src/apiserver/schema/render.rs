//! Go's `fmt` renderings that Kubernetes error messages are made of.

use serde_json::{Number, Value};

/// `%q` of a string.
pub(crate) fn go_quote(s: &str) -> String {
    // JSON string escaping matches Go's %q for everything our messages carry.
    Value::String(s.to_owned()).to_string()
}

/// `%v` of a number decoded from JSON (int64 or float64).
pub(crate) fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or_default())
    }
}

/// `%v` of a float64: shortest representation, exponent form from 1e21.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.abs() >= 1e21 {
        let s = format!("{f:e}");
        // Rust: 1e21, Go: 1e+21
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        f.to_string()
    }
}

/// How `field.Error.ErrorBody` prints a bad value: simple types with `%v`,
/// strings with `%q`, null as `null`, anything else with `%#v`.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        other => go_sharp(other),
    }
}

/// `%#v` of a decoded JSON value (`[]interface {}{...}`, `map[string]interface {}{...}`).
pub(crate) fn go_sharp(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", go_quote(k), go_sharp(&map[*k]))).collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}
