//! The hash that names a new Advanced DaemonSet revision: Kubernetes'
//! `controller.ComputeHash(&template, collisionCount)` as OpenKruise v1.9.0 calls it.
//!
//! Go hashes a debug dump of the decoded `corev1.PodTemplateSpec` (k8s.io/api
//! v0.32.10): go-spew's `%#v` with methods disabled and map keys sorted. The dump
//! names every Go type and prints every struct field in declaration order, zero and
//! unexported ones included, so the hash depends on Go's exact struct layout, not
//! only on the JSON. The text is fed to FNV-1a (32 bits); a non-nil collision count
//! adds 8 bytes (the count as a little-endian uint32, then four zero bytes); the sum's
//! decimal text is safe-encoded.
//!
//! [`dump_pod_template`] decodes the template's JSON the way Go's case-sensitive
//! decoder fills the struct, walking the Go type table of the `schema` module, and prints what
//! go-spew would print:
//!
//! - unknown keys are dropped; `null` and absent keys give nil pointers, slices and
//!   maps and zero values; `[]` and `{}` give empty, non-nil ones (the dump prints
//!   `<nil>`, `[]` and `map[]` differently);
//! - every value carries its Go type in parentheses (`(*int64)30`, `(v1.PullPolicy)
//!   Always`) except slice elements and map keys and values; strings are raw;
//! - quantities print Go's in-memory form ([`super::quantity::parse`]): the
//!   `int64Amount` or the `inf.Dec` (a `big.Int` of 64-bit words), the cached text
//!   when Go kept the input, and the format;
//! - `intstr.IntOrString` prints its type tag (0 for a number, 1 for a string) and
//!   both values; `metav1.Time` prints `time.Time`'s `wall`, `ext` and `loc`.
//!
//! # Known limits
//!
//! - A non-zero timestamp in the template (`creationTimestamp`, `deletionTimestamp`,
//!   managed fields) dumps Go's `time.Local`, which depends on the controller's time
//!   zone data. This port assumes OpenKruise's image: no `TZ`, no `/etc/localtime`,
//!   so Go falls back to a location named `UTC` with no zones. Templates normally
//!   have only the zero timestamp (`creationTimestamp: null`).
//! - A quantity given as a JSON number is read back from its parsed value
//!   (`1e3` becomes `1000.0`), not from the original text Go would see; quantities on
//!   Go's `inf.Dec` path must stay below 2^128 once scaled to nano units.
//! - `managedFields[].fieldsV1` dumps the compact re-serialisation of the JSON
//!   value, not the stored bytes.
//! - [`daemon_set_hash`] goes through k8s-openapi's `PodTemplateSpec`, which writes
//!   required lists (`containers`, `nodeSelectorTerms`, ...) as `[]` even when the
//!   stored object had none, where Go would have a nil slice; use
//!   [`daemon_set_template_hash`] on the stored JSON to keep that difference.

mod schema;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::RevisionError;
use super::quantity::{self, Amount, Parsed};
use crate::hash::Fnv32a;
use schema::{Def, TYPES};

/// Seconds from Go's internal epoch (1 January of year 1) to the Unix epoch.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

/// The dump of `time.Local` as OpenKruise's image has it (see the module's limits).
const LOCAL_LOCATION: &str = "{name:(string)UTC zone:([]time.zone)<nil> tx:([]time.zoneTrans)<nil> \
     extend:(string) cacheStart:(int64)0 cacheEnd:(int64)0 cacheZone:(*time.zone)<nil>}";

/// Why a pod template could not be dumped: the field (a JSON path inside the
/// template) and what Go's decoder would have rejected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DumpError {
    /// Where in the template, e.g. `spec.containers[0].resources.limits.cpu`.
    pub path: String,
    /// What is wrong with the value found there.
    pub reason: String,
}

/// The name hash of a new Advanced DaemonSet revision for `template` (typed), at
/// the set's `status.collisionCount` (`None` when the status has none, which adds
/// no bytes).
pub fn daemon_set_hash(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<String, RevisionError> {
    daemon_set_template_hash(&serde_json::to_value(template)?, collision_count)
}

/// The name hash of a new Advanced DaemonSet revision for the template's JSON, as
/// stored (`spec.template` of the set), at `collision_count`.
pub fn daemon_set_template_hash(
    template: &Value,
    collision_count: Option<i32>,
) -> Result<String, RevisionError> {
    let dump = dump_pod_template(template)?;
    Ok(compute_hash(dump.as_bytes(), collision_count))
}

/// `ComputeHash`'s arithmetic on an already dumped template: FNV-1a over `dump`,
/// then the collision count's 8 bytes if there is one, safe-encoded.
pub fn compute_hash(dump: &[u8], collision_count: Option<i32>) -> String {
    let mut h = Fnv32a::default().write(dump);
    if let Some(cc) = collision_count {
        let mut bytes = [0_u8; 8];
        bytes[..4].copy_from_slice(&(cc as u32).to_le_bytes());
        h = h.write(&bytes);
    }
    super::safe_encode_string(&h.sum32().to_string())
}

/// go-spew's `%#v` text of the `corev1.PodTemplateSpec` Go decodes from `template`.
pub fn dump_pod_template(template: &Value) -> Result<String, DumpError> {
    let mut d = Dumper::default();
    d.format("v1.PodTemplateSpec", Some(template))?;
    Ok(d.out)
}

/// What a Go type is, once named types are looked through.
enum Kind {
    String,
    Bool,
    Int { bits: u32 },
    Pointer(&'static str),
    Slice(&'static str),
    Map { key: &'static str, value: &'static str },
    Struct(&'static [(&'static str, &'static str, &'static str)]),
    Quantity,
    IntOrString,
    Time,
    FieldsV1,
}

/// The kind of Go type `ty` (a `reflect.Type.String()` from the schema).
fn kind(ty: &'static str) -> Kind {
    if let Some(elem) = ty.strip_prefix('*') {
        return Kind::Pointer(elem);
    }
    if let Some(elem) = ty.strip_prefix("[]") {
        return Kind::Slice(elem);
    }
    if let Some(rest) = ty.strip_prefix("map[") {
        let (key, value) = rest.split_once(']').unwrap_or((rest, ""));
        return Kind::Map { key, value };
    }
    match ty {
        "string" => Kind::String,
        "bool" => Kind::Bool,
        "int32" => Kind::Int { bits: 32 },
        "int64" => Kind::Int { bits: 64 },
        "uint8" => Kind::Int { bits: 8 },
        "resource.Quantity" => Kind::Quantity,
        "intstr.IntOrString" => Kind::IntOrString,
        "v1.Time" => Kind::Time,
        "v1.FieldsV1" => Kind::FieldsV1,
        _ => match lookup(ty) {
            Some(Def::Struct(fields)) => Kind::Struct(fields),
            Some(Def::Named(under)) => kind(under),
            // The schema test checks every type resolves; an unknown one dumps as an
            // empty struct rather than panicking.
            None => Kind::Struct(&[]),
        },
    }
}

fn lookup(ty: &str) -> Option<&'static Def> {
    TYPES.binary_search_by(|(name, _)| name.as_bytes().cmp(ty.as_bytes())).ok().map(|i| &TYPES[i].1)
}

/// go-spew's formatter state for `%#v`: the output and whether the next value's
/// type tag is suppressed (slice elements, map keys and values, pointees).
#[derive(Default)]
struct Dumper {
    out: String,
    ignore_next_type: bool,
    path: Vec<String>,
}

impl Dumper {
    fn error(&self, reason: impl Into<String>) -> DumpError {
        let mut path = String::new();
        for seg in &self.path {
            if !seg.starts_with('[') && !path.is_empty() {
                path.push('.');
            }
            path.push_str(seg);
        }
        if path.is_empty() {
            path.push_str("template");
        }
        DumpError { path, reason: reason.into() }
    }

    fn type_error(&self, want: &str, got: &Value) -> DumpError {
        let got = match got {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        };
        self.error(format!("expected {want}, found {got}"))
    }

    /// Writes `(ty)` unless suppressed, and clears the suppression (spew's `format`).
    fn tag(&mut self, ty: &str) {
        if !self.ignore_next_type {
            self.out.push('(');
            self.out.push_str(ty);
            self.out.push(')');
        }
        self.ignore_next_type = false;
    }

    /// Prints the Go value of type `ty` decoded from `v` (`None` or `null`: the zero
    /// value, nil for pointers, slices and maps).
    fn format(&mut self, ty: &'static str, v: Option<&Value>) -> Result<(), DumpError> {
        let v = v.filter(|v| !v.is_null());
        let k = kind(ty);
        if let Kind::Pointer(elem) = k {
            return self.pointer(ty, elem, v);
        }
        self.tag(ty);
        match k {
            Kind::Pointer(_) => Ok(()),
            Kind::String => {
                match v {
                    None => {}
                    Some(Value::String(s)) => self.out.push_str(s),
                    Some(other) => return Err(self.type_error("a string", other)),
                }
                Ok(())
            }
            Kind::Bool => {
                let b = match v {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => return Err(self.type_error("a boolean", other)),
                };
                self.out.push_str(if b { "true" } else { "false" });
                Ok(())
            }
            Kind::Int { bits } => {
                let n = match v {
                    None => 0,
                    Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                        let why = if n.is_u64() {
                            format!("does not fit in {ty}")
                        } else {
                            "is not an integer".to_owned()
                        };
                        self.error(format!("{n} {why}"))
                    })?,
                    Some(other) => return Err(self.type_error("an integer", other)),
                };
                let fits = match bits {
                    8 => u8::try_from(n).is_ok(),
                    32 => i32::try_from(n).is_ok(),
                    _ => true,
                };
                if !fits {
                    return Err(self.error(format!("{n} does not fit in {ty}")));
                }
                self.out.push_str(&n.to_string());
                Ok(())
            }
            Kind::Slice(elem) => match v {
                None => {
                    self.out.push_str("<nil>");
                    Ok(())
                }
                Some(Value::Array(items)) => {
                    self.out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            self.out.push(' ');
                        }
                        self.ignore_next_type = true;
                        self.path.push(format!("[{i}]"));
                        self.format(elem, Some(item))?;
                        self.path.pop();
                    }
                    self.out.push(']');
                    Ok(())
                }
                Some(other) => Err(self.type_error("a list", other)),
            },
            Kind::Map { key, value } => match v {
                None => {
                    self.out.push_str("<nil>");
                    Ok(())
                }
                Some(Value::Object(map)) => {
                    let mut entries: Vec<_> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                    self.out.push_str("map[");
                    for (i, (k, item)) in entries.into_iter().enumerate() {
                        if i > 0 {
                            self.out.push(' ');
                        }
                        self.path.push(k.clone());
                        self.ignore_next_type = true;
                        self.format(key, Some(&Value::String(k.clone())))?;
                        self.out.push(':');
                        self.ignore_next_type = true;
                        self.format(value, Some(item))?;
                        self.path.pop();
                    }
                    self.out.push(']');
                    Ok(())
                }
                Some(other) => Err(self.type_error("an object", other)),
            },
            Kind::Struct(fields) => {
                let obj = match v {
                    None => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(other) => return Err(self.type_error("an object", other)),
                };
                self.out.push('{');
                for (i, (name, json, fty)) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(' ');
                    }
                    self.out.push_str(name);
                    self.out.push(':');
                    if json.is_empty() {
                        // An embedded struct inlined into this object's keys.
                        self.format(fty, v)?;
                    } else {
                        self.path.push((*json).to_owned());
                        self.format(fty, obj.and_then(|m| m.get(*json)))?;
                        self.path.pop();
                    }
                }
                self.out.push('}');
                Ok(())
            }
            Kind::Quantity => {
                let q = match v {
                    None => Ok(Parsed::zero()),
                    Some(Value::String(s)) => quantity::parse(s.trim()),
                    Some(Value::Number(n)) => quantity::parse(&n.to_string()),
                    Some(other) => return Err(self.type_error("a quantity", other)),
                }
                .map_err(|e| self.error(e.to_string()))?;
                self.quantity(&q);
                Ok(())
            }
            Kind::IntOrString => {
                let (t, i, s) = match v {
                    None => (0, 0, ""),
                    Some(Value::String(s)) => (1, 0, s.as_str()),
                    Some(Value::Number(n)) => {
                        let i = n.as_i64().and_then(|i| i32::try_from(i).ok());
                        (0, i.ok_or_else(|| self.error(format!("{n} is not a 32-bit integer")))?, "")
                    }
                    Some(other) => return Err(self.type_error("an integer or a string", other)),
                };
                self.out.push_str(&format!("{{Type:(intstr.Type){t} IntVal:(int32){i} StrVal:(string){s}}}"));
                Ok(())
            }
            Kind::Time => {
                let (wall, ext, local) = match v {
                    None => (0, 0, false),
                    Some(Value::String(s)) => {
                        let t: jiff::Timestamp = s
                            .parse()
                            .map_err(|e| self.error(format!("{s:?} is not an RFC 3339 time: {e}")))?;
                        // Go keeps 0 <= nanoseconds < 1e9; jiff's share the seconds' sign.
                        let (mut secs, mut nanos) = (t.as_second(), t.subsec_nanosecond());
                        if nanos < 0 {
                            secs -= 1;
                            nanos += 1_000_000_000;
                        }
                        (nanos, secs + UNIX_TO_INTERNAL, true)
                    }
                    Some(other) => return Err(self.type_error("a timestamp", other)),
                };
                let loc = if local { LOCAL_LOCATION } else { "<nil>" };
                self.out.push_str(&format!(
                    "{{Time:(time.Time){{wall:(uint64){wall} ext:(int64){ext} loc:(*time.Location){loc}}}}}"
                ));
                Ok(())
            }
            Kind::FieldsV1 => {
                self.out.push_str("{Raw:([]uint8)");
                match v {
                    None => self.out.push_str("<nil>"),
                    Some(raw) => {
                        let bytes = raw.to_string().into_bytes();
                        let words: Vec<String> = bytes.iter().map(u8::to_string).collect();
                        self.out.push('[');
                        self.out.push_str(&words.join(" "));
                        self.out.push(']');
                    }
                }
                self.out.push('}');
                Ok(())
            }
        }
    }

    /// spew's `formatPtr` for a pointer of type `ty` to `elem`.
    fn pointer(&mut self, ty: &'static str, elem: &'static str, v: Option<&Value>) -> Result<(), DumpError> {
        match v {
            None if self.ignore_next_type => {
                // spew leaves the suppression set here; the next value decides.
                self.out.push_str("<nil>");
                Ok(())
            }
            None => {
                self.out.push('(');
                self.out.push_str(ty);
                self.out.push_str(")<nil>");
                Ok(())
            }
            Some(v) => {
                if self.ignore_next_type {
                    self.out.push_str("<*>");
                } else {
                    self.out.push('(');
                    self.out.push_str(ty);
                    self.out.push(')');
                }
                self.ignore_next_type = true;
                self.format(elem, Some(v))
            }
        }
    }

    /// A `resource.Quantity`'s body: `i`, `d`, `s`, `Format`.
    fn quantity(&mut self, q: &Parsed) {
        let (value, scale) = match q.amount {
            Amount::Int64 { value, scale } => (value, scale),
            Amount::InfDec { .. } => (0, 0),
        };
        self.out.push_str(&format!(
            "{{i:(resource.int64Amount){{value:(int64){value} scale:(resource.Scale){scale}}} "
        ));
        self.out.push_str("d:(resource.infDecAmount){Dec:(*inf.Dec)");
        match q.amount {
            Amount::Int64 { .. } => self.out.push_str("<nil>"),
            Amount::InfDec { negative, magnitude, scale } => {
                // big.nat: little-endian 64-bit words without leading zeros; nil for 0.
                let abs = if magnitude == 0 {
                    "<nil>".to_owned()
                } else if magnitude >> 64 == 0 {
                    format!("[{magnitude}]")
                } else {
                    format!("[{} {}]", magnitude as u64, (magnitude >> 64) as u64)
                };
                self.out.push_str(&format!(
                    "{{unscaled:(big.Int){{neg:(bool){negative} abs:(big.nat){abs}}} scale:(inf.Scale){scale}}}"
                ));
            }
        }
        self.out.push_str(&format!("}} s:(string){} Format:(resource.Format){}}}", q.cached, q.format));
    }
}

#[cfg(test)]
mod tests;
