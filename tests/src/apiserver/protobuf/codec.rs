//! Messages ↔ JSON, field by field, by the layout table; the types whose JSON is not
//! their message's shape go through [`super::special`].

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{
    Index, Kind, Named, special,
    wire::{Malformed, Reader, WireType, put_key, put_len, put_varint},
};

/// Decodes message `id` to JSON.
///
/// # Errors
/// The bytes are not a message of that layout.
pub fn decode(index: &Index, id: &str, bytes: &[u8]) -> Result<Value, Malformed> {
    if let Some(v) = special::decode(index, id, bytes)? {
        return Ok(v);
    }
    let Some(fields) = index.messages.get(id) else {
        return Err(Malformed("unknown message"));
    };
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while !r.done() {
        let (tag, wt) = r.key()?;
        let Some(f) = fields.iter().find(|f| f.field.tag == tag) else {
            r.skip(wt)?;
            continue;
        };
        match (&f.field.kind, f.field.repeated) {
            (Kind::Map(k, v), _) => {
                let entry = r.len_delimited()?;
                let (key, value) = map_entry(index, k, v, entry)?;
                let m = out.entry(f.json.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(key, value);
                }
            }
            (kind, true) if wt == WireType::Len && is_varint(kind) => {
                // Packed repeated scalars (encoders may pack although k8s says not to).
                let mut packed = Reader::new(r.len_delimited()?);
                while !packed.done() {
                    let v = varint_value(kind, packed.varint()?);
                    push(&mut out, &f.json, v);
                }
            }
            (kind, true) => {
                let v = scalar_or_message(index, kind, wt, &mut r)?;
                push(&mut out, &f.json, v);
            }
            (kind, false) => {
                let v = scalar_or_message(index, kind, wt, &mut r)?;
                out.insert(f.json.clone(), v);
            }
        }
    }
    // Go leaves zero scalars of optional fields out of its JSON (omitempty).
    out.retain(|k, v| {
        let keep_zero = fields.iter().any(|f| &f.json == k && f.keep_zero);
        !v.is_null() && (keep_zero || !is_zero_scalar(v))
    });
    Ok(Value::Object(out))
}

fn is_varint(kind: &Kind) -> bool {
    matches!(kind, Kind::Bool | Kind::Int32 | Kind::Int64)
}

fn is_zero_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn push(out: &mut Map<String, Value>, key: &str, v: Value) {
    match out.entry(key.to_string()).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(a) => a.push(v),
        other => *other = Value::Array(vec![v]),
    }
}

fn varint_value(kind: &Kind, raw: u64) -> Value {
    match kind {
        Kind::Bool => Value::Bool(raw != 0),
        Kind::Int32 => Value::from(raw as i32),
        _ => Value::from(raw as i64),
    }
}

fn scalar_or_message(
    index: &Index,
    kind: &Kind,
    wt: WireType,
    r: &mut Reader<'_>,
) -> Result<Value, Malformed> {
    Ok(match kind {
        Kind::Bool | Kind::Int32 | Kind::Int64 => varint_value(kind, r.varint()?),
        Kind::Double => {
            let bits = r.fixed64()?;
            serde_json::Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number)
        }
        Kind::String => {
            let b = r.len_delimited()?;
            Value::String(String::from_utf8(b.to_vec()).map_err(|_| Malformed("string is not UTF-8"))?)
        }
        Kind::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(r.len_delimited()?)),
        Kind::Message(id) => {
            if wt != WireType::Len {
                return Err(Malformed("message field with a scalar wire type"));
            }
            decode(index, id, r.len_delimited()?)?
        }
        Kind::Map(..) => return Err(Malformed("nested map")),
    })
}

fn map_entry(index: &Index, k: &Kind, v: &Kind, bytes: &[u8]) -> Result<(String, Value), Malformed> {
    let mut r = Reader::new(bytes);
    let (mut key, mut value) = (String::new(), None);
    while !r.done() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => {
                key = match scalar_or_message(index, k, wt, &mut r)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            }
            2 => value = Some(scalar_or_message(index, v, wt, &mut r)?),
            _ => r.skip(wt)?,
        }
    }
    // An absent value is its type's zero (`""` for the empty label value).
    let value = value.unwrap_or_else(|| match v {
        Kind::String | Kind::Bytes => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        Kind::Int32 | Kind::Int64 | Kind::Double => Value::from(0),
        Kind::Message(_) | Kind::Map(..) => Value::Object(Map::new()),
    });
    Ok((key, value))
}

/// Encodes JSON as message `id`; values that do not fit a field are left out.
pub fn encode(index: &Index, id: &str, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if special::encode(index, id, v, &mut out) {
        return out;
    }
    let Some(fields) = index.messages.get(id) else { return out };
    let mut sorted: Vec<&Named> = fields.iter().collect();
    sorted.sort_by_key(|f| f.field.tag);
    for f in sorted {
        let Some(fv) = v.get(&f.json).filter(|x| !x.is_null()) else { continue };
        let tag = f.field.tag;
        match (&f.field.kind, fv) {
            (Kind::Map(k, val), Value::Object(m)) => {
                for (key, item) in m {
                    let mut entry = Vec::new();
                    encode_one(index, k, 1, &Value::String(key.clone()), &mut entry);
                    encode_one(index, val, 2, item, &mut entry);
                    put_len(&mut out, tag, &entry);
                }
            }
            (kind, Value::Array(items)) if f.field.repeated => {
                for item in items {
                    encode_one(index, kind, tag, item, &mut out);
                }
            }
            (kind, value) => encode_one(index, kind, tag, value, &mut out),
        }
    }
    out
}

fn encode_one(index: &Index, kind: &Kind, tag: u32, v: &Value, out: &mut Vec<u8>) {
    match kind {
        Kind::String => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            put_len(out, tag, s.as_bytes());
        }
        Kind::Bytes => {
            let b = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default();
            put_len(out, tag, &b);
        }
        Kind::Bool => {
            put_key(out, tag, WireType::Varint);
            put_varint(out, u64::from(v.as_bool().unwrap_or(false)));
        }
        Kind::Int32 | Kind::Int64 => {
            let n = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).unwrap_or(0);
            put_key(out, tag, WireType::Varint);
            put_varint(out, n as u64);
        }
        Kind::Double => {
            put_key(out, tag, WireType::Fixed64);
            out.extend_from_slice(&v.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
        }
        Kind::Message(id) => put_len(out, tag, &encode(index, id, v)),
        Kind::Map(..) => {}
    }
}
