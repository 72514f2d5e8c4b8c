//! The messages whose JSON is not their message's shape: times and durations as
//! strings, `IntOrString` and `Quantity` as plain values, raw JSON (`RawExtension`,
//! `FieldsV1`, apiextensions' `JSON`), the JSON-schema unions and `ExtraValue` lists.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{
    Index, codec,
    wire::{Malformed, Reader, WireType, put_key, put_len, put_varint},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Time,
    MicroTime,
    Duration,
    IntOrString,
    Quantity,
    Raw,
    OrBool,
    OrArray,
    OrStringArray,
    ExtraValue,
}

fn special(id: &str) -> Option<Special> {
    let (module, name) = id.rsplit_once('.')?;
    Some(match (module, name) {
        ("apimachinery.pkg.apis.meta.v1", "Time") => Special::Time,
        ("apimachinery.pkg.apis.meta.v1", "MicroTime") => Special::MicroTime,
        ("apimachinery.pkg.apis.meta.v1", "Duration") => Special::Duration,
        ("apimachinery.pkg.apis.meta.v1", "FieldsV1") | ("apimachinery.pkg.runtime", "RawExtension") => {
            Special::Raw
        }
        ("apimachinery.pkg.util.intstr", "IntOrString") => Special::IntOrString,
        ("apimachinery.pkg.api.resource", "Quantity") => Special::Quantity,
        (m, "Json") if m.starts_with("apiextensions_apiserver.") => Special::Raw,
        (m, "JsonSchemaPropsOrBool") if m.starts_with("apiextensions_apiserver.") => Special::OrBool,
        (m, "JsonSchemaPropsOrArray") if m.starts_with("apiextensions_apiserver.") => Special::OrArray,
        (m, "JsonSchemaPropsOrStringArray") if m.starts_with("apiextensions_apiserver.") => {
            Special::OrStringArray
        }
        (_, "ExtraValue") => Special::ExtraValue,
        _ => return None,
    })
}

/// The fields of a small message, by tag: varints and length-delimited payloads
/// (repeated ones in order).
#[derive(Default)]
struct Fields<'a> {
    varints: Vec<(u32, u64)>,
    lens: Vec<(u32, &'a [u8])>,
}

impl<'a> Fields<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut f = Self::default();
        let mut r = Reader::new(bytes);
        while !r.done() {
            match r.key()? {
                (tag, WireType::Varint) => f.varints.push((tag, r.varint()?)),
                (tag, WireType::Len) => f.lens.push((tag, r.len_delimited()?)),
                (_, wt) => r.skip(wt)?,
            }
        }
        Ok(f)
    }

    fn varint(&self, tag: u32) -> Option<u64> {
        self.varints.iter().rev().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }

    fn len(&self, tag: u32) -> Option<&'a [u8]> {
        self.lens.iter().rev().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }

    fn lens(&self, tag: u32) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.lens.iter().filter(move |(t, _)| *t == tag).map(|(_, v)| *v)
    }

    fn string(&self, tag: u32) -> String {
        self.len(tag).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
    }
}

fn schema_id(id: &str) -> String {
    format!("{}.JsonSchemaProps", id.rsplit_once('.').map_or("", |(m, _)| m))
}

/// Decodes `id` if it is special.
///
/// # Errors
/// Malformed bytes.
pub fn decode(index: &Index, id: &str, bytes: &[u8]) -> Result<Option<Value>, Malformed> {
    let Some(kind) = special(id) else { return Ok(None) };
    let f = Fields::read(bytes)?;
    Ok(Some(match kind {
        Special::Time | Special::MicroTime => {
            let (secs, nanos) = (f.varint(1).unwrap_or(0) as i64, f.varint(2).unwrap_or(0) as i32);
            if secs == 0 && nanos == 0 {
                return Ok(Some(Value::Null));
            }
            let t = Timestamp::new(secs, nanos).map_err(|_| Malformed("time out of range"))?;
            let fmt = if kind == Special::Time { "%Y-%m-%dT%H:%M:%SZ" } else { "%Y-%m-%dT%H:%M:%S%.6fZ" };
            Value::String(t.strftime(fmt).to_string())
        }
        Special::Duration => Value::String(go_duration(f.varint(1).unwrap_or(0) as i64)),
        Special::IntOrString => match f.varint(1) {
            Some(1) => Value::String(f.string(3)),
            _ => Value::from(f.varint(2).unwrap_or(0) as i32),
        },
        Special::Quantity => Value::String(f.string(1)),
        Special::Raw => match f.len(1) {
            Some(raw) if !raw.is_empty() => {
                serde_json::from_slice(raw).map_err(|_| Malformed("raw JSON does not parse"))?
            }
            _ => Value::Null,
        },
        Special::OrBool => match f.len(2) {
            Some(schema) => codec::decode(index, &schema_id(id), schema)?,
            None => Value::Bool(f.varint(1).unwrap_or(0) != 0),
        },
        Special::OrArray => {
            let list: Vec<&[u8]> = f.lens(2).collect();
            match f.len(1) {
                Some(schema) if list.is_empty() => codec::decode(index, &schema_id(id), schema)?,
                _ => Value::Array(
                    list.into_iter()
                        .map(|b| codec::decode(index, &schema_id(id), b))
                        .collect::<Result<_, _>>()?,
                ),
            }
        }
        Special::OrStringArray => match f.len(1) {
            Some(schema) => codec::decode(index, &schema_id(id), schema)?,
            None => Value::Array(
                f.lens(2).map(|b| Value::String(String::from_utf8_lossy(b).into_owned())).collect(),
            ),
        },
        Special::ExtraValue => {
            Value::Array(f.lens(1).map(|b| Value::String(String::from_utf8_lossy(b).into_owned())).collect())
        }
    }))
}

/// Encodes `v` as `id` into `out` if `id` is special; `false` otherwise.
pub fn encode(index: &Index, id: &str, v: &Value, out: &mut Vec<u8>) -> bool {
    let Some(kind) = special(id) else { return false };
    let varint = |out: &mut Vec<u8>, tag: u32, n: u64| {
        put_key(out, tag, WireType::Varint);
        put_varint(out, n);
    };
    match kind {
        Special::Time | Special::MicroTime => {
            if let Some(t) = v.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
                varint(out, 1, t.as_second() as u64);
                varint(out, 2, u64::from(t.subsec_nanosecond() as u32));
            }
        }
        Special::Duration => varint(out, 1, v.as_str().and_then(parse_go_duration).unwrap_or(0) as u64),
        Special::IntOrString => match v {
            Value::String(s) => {
                varint(out, 1, 1);
                put_len(out, 3, s.as_bytes());
            }
            other => {
                varint(out, 1, 0);
                varint(out, 2, other.as_i64().unwrap_or(0) as u64);
            }
        },
        Special::Quantity => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            put_len(out, 1, s.as_bytes());
        }
        Special::Raw => put_len(out, 1, &serde_json::to_vec(v).unwrap_or_default()),
        Special::OrBool => match v {
            Value::Bool(b) => varint(out, 1, u64::from(*b)),
            other => {
                varint(out, 1, 1);
                put_len(out, 2, &codec::encode(index, &schema_id(id), other));
            }
        },
        Special::OrArray => match v {
            Value::Array(items) => {
                for i in items {
                    put_len(out, 2, &codec::encode(index, &schema_id(id), i));
                }
            }
            other => put_len(out, 1, &codec::encode(index, &schema_id(id), other)),
        },
        Special::OrStringArray => match v {
            Value::Array(items) => {
                for i in items {
                    put_len(out, 2, i.as_str().unwrap_or_default().as_bytes());
                }
            }
            other => put_len(out, 1, &codec::encode(index, &schema_id(id), other)),
        },
        Special::ExtraValue => {
            for i in v.as_array().into_iter().flatten() {
                put_len(out, 1, i.as_str().unwrap_or_default().as_bytes());
            }
        }
    }
    true
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let s = format!("{whole}.{rest:0digits$}");
        s.trim_end_matches('0').to_string()
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 1_000_000));
    }
    let (h, rest) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let s = frac(rest, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// Parses Go's duration syntax (`1h2m3.5s`, `500ms`, `-1.5h`) to nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}
