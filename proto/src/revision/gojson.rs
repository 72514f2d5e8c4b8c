//! Go `encoding/json` output for a decoded JSON value.
//!
//! OpenKruise builds revision data by decoding JSON into Go's `interface{}` and
//! encoding it again. That pass fixes the bytes completely: object keys come out
//! sorted by their bytes, every number has become a float64 and is printed the way
//! Go prints floats, and strings are escaped with Go's HTML-safe rules. [`encode`]
//! repeats that pass on a [`serde_json::Value`], so the result equals what the Go
//! controller stores, and re-encoding a Go-written revision reproduces its bytes.

use serde_json::{Number, Value};

/// The bytes Go's `json.Marshal` gives for `value` after a round trip through
/// `interface{}`: sorted keys, no whitespace, no trailing newline.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Every JSON number became a float64 in Go; integers beyond 2^53 lose precision
/// exactly as they do there.
fn write_number(out: &mut String, n: &Number) {
    let f = if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(0.0)
    };
    out.push_str(&format_float(f));
}

/// Go's float64 JSON form: shortest digits, plain notation, except exponent
/// notation below 1e-6 and from 1e21 up (with a signed, unpadded exponent).
pub fn format_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// Go 1.23's string escaping with HTML escaping on.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_by_bytes_and_nothing_is_added() {
        let v = json!({"b": 1, "a": {"z": [], "$patch": "replace", "Z": {}}, "c": null});
        assert_eq!(encode(&v), r#"{"a":{"$patch":"replace","Z":{},"z":[]},"b":1,"c":null}"#);
    }

    #[test]
    fn numbers_print_like_go_float64() {
        assert_eq!(encode(&json!(30)), "30");
        assert_eq!(encode(&json!(-7)), "-7");
        assert_eq!(encode(&json!(0.5)), "0.5");
        assert_eq!(encode(&json!(1e20)), "100000000000000000000");
        assert_eq!(encode(&json!(1e21)), "1e+21");
        assert_eq!(encode(&json!(1.5e22)), "1.5e+22");
        assert_eq!(encode(&json!(1e-7)), "1e-7");
        assert_eq!(encode(&json!(0.000001)), "0.000001");
        assert_eq!(encode(&json!(9_007_199_254_740_993_u64)), "9007199254740992");
        assert_eq!(encode(&json!(0)), "0");
    }

    #[test]
    fn strings_escape_like_go_1_23() {
        let v = json!("a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i<j>k&l\u{2028}m\u{2029}n\u{7f}é");
        assert_eq!(
            encode(&v),
            r#""a\"b\\c\nd\re\tf\bg\fh\u0001i\u003cj\u003ek\u0026l\u2028m\u2029n"#.to_owned() + "\u{7f}é\""
        );
        assert_eq!(encode(&json!("\u{1f}")), r#""\u001f""#);
    }

    #[test]
    fn encoding_is_a_fixed_point() {
        let raw = r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null},"spec":{"containers":[{"args":["a \u0026\u0026 b"],"name":"x"}]}}}}"#;
        let v: Value = serde_json::from_str(raw).expect("valid JSON");
        assert_eq!(encode(&v), raw);
    }
}
