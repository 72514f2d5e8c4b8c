//! Field errors in the form of Kubernetes' `field.Error` and `field.ErrorList`
//! (`k8s.io/apimachinery/pkg/util/validation/field`), which OpenKruise's webhooks
//! answer with: `spec.replicas: Invalid value: -1: must be greater than or equal
//! to 0`, several joined as `[first, second]`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Why a field is refused: `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// `Not found`: the value names something that does not exist.
    NotFound,
    /// `Required value`.
    Required,
    /// `Duplicate value`.
    Duplicate,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`: not one of the values the field takes.
    NotSupported,
    /// `Forbidden`: not allowed here or now.
    Forbidden,
    /// `Too long`.
    TooLong,
    /// `Too many`.
    TooMany,
    /// `Internal error`.
    Internal,
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        })
    }
}

/// One broken rule: the field's path, the error type, the value refused (where
/// Kubernetes shows it) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field's path, `spec.template.spec.containers[0].name`.
    pub field: String,
    /// The error type.
    pub kind: ErrorType,
    /// The value refused, shown after the type (not for Required, Forbidden and
    /// Too long, as Kubernetes prints them).
    pub value: Option<Value>,
    /// Why, after the value (and after the type for those that show none).
    pub detail: String,
    /// The value is one OpenKruise's Go decoder cannot read at all (a malformed
    /// quantity): it refuses the whole object with 400 before any rule runs.
    pub unreadable: bool,
}

impl FieldError {
    fn new(field: &str, kind: ErrorType, value: Option<Value>, detail: impl Into<String>) -> Self {
        Self { field: field.to_owned(), kind, value, detail: detail.into(), unreadable: false }
    }

    /// The message without the field, as `field.Error.ErrorBody` writes it.
    pub fn body(&self) -> String {
        let shown = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        );
        let mut s = match (&self.value, shown) {
            (Some(v), true) => format!("{}: {}", self.kind, go_value(v)),
            _ => self.kind.to_string(),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

fn json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `field.Required`: a value is missing.
pub fn required(field: &str, detail: impl Into<String>) -> FieldError {
    FieldError::new(field, ErrorType::Required, None, detail)
}

/// `field.Invalid`: `value` is not acceptable.
pub fn invalid(field: &str, value: impl Serialize, detail: impl Into<String>) -> FieldError {
    FieldError::new(field, ErrorType::Invalid, Some(json(value)), detail)
}

/// A value Go cannot even decode (reported as `Invalid`, refused with 400).
pub fn unreadable(field: &str, value: impl Serialize, detail: impl Into<String>) -> FieldError {
    FieldError { unreadable: true, ..invalid(field, value, detail) }
}

/// `field.NotSupported`: `value` is not one of `supported`.
pub fn not_supported(field: &str, value: impl Serialize, supported: &[&str]) -> FieldError {
    let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    FieldError::new(
        field,
        ErrorType::NotSupported,
        Some(json(value)),
        format!("supported values: {}", list.join(", ")),
    )
}

/// `field.Forbidden`: not allowed.
pub fn forbidden(field: &str, detail: impl Into<String>) -> FieldError {
    FieldError::new(field, ErrorType::Forbidden, None, detail)
}

/// `field.Duplicate`: `value` occurs twice.
pub fn duplicate(field: &str, value: impl Serialize) -> FieldError {
    FieldError::new(field, ErrorType::Duplicate, Some(json(value)), "")
}

/// `field.NotFound`: `value` names nothing that exists.
pub fn not_found(field: &str, value: impl Serialize) -> FieldError {
    FieldError::new(field, ErrorType::NotFound, Some(json(value)), "")
}

/// `field.TooLong`: longer than `max` (bytes or characters).
pub fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::new(field, ErrorType::TooLong, None, format!("may not be more than {max} bytes"))
}

/// `field.TooMany`: `actual` items where at most `max` are allowed.
pub fn too_many(field: &str, actual: usize, max: usize) -> FieldError {
    FieldError::new(field, ErrorType::TooMany, Some(json(actual)), format!("must have at most {max} items"))
}

/// `field.InternalError`: something the object carries cannot be used.
pub fn internal(field: &str, detail: impl Into<String>) -> FieldError {
    FieldError::new(field, ErrorType::Internal, None, detail)
}

/// `ErrorList.ToAggregate().Error()`: duplicates dropped, one message alone, several
/// as `[a, b]`.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut messages: Vec<String> = Vec::new();
    for e in errors {
        let m = e.to_string();
        if !messages.contains(&m) {
            messages.push(m);
        }
    }
    match messages.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `%q` of a string (JSON's escaping matches it for what messages carry).
pub fn go_quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// How `field.Error` prints a bad value: strings quoted, numbers, booleans and null
/// plain, anything else as JSON (Go prints its `%#v`, which has no JSON equal).
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_kubernetes_writes_them() {
        let e = [
            invalid("spec.replicas", -1, "must be greater than or equal to 0"),
            required("spec.selector", ""),
            not_supported("spec.template.spec.restartPolicy", "Never", &["Always"]),
            forbidden("spec", "may not change"),
            duplicate("spec.containers[1].name", "app"),
            not_found("spec.containers[0].volumeMounts[0].name", "data"),
            too_long("metadata.name", 63),
            too_many("spec.images", 300, 255),
        ];
        let rendered: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.selector: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec: Forbidden: may not change",
                "spec.containers[1].name: Duplicate value: \"app\"",
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
                "metadata.name: Too long: may not be more than 63 bytes",
                "spec.images: Too many: 300: must have at most 255 items",
            ]
        );
        assert_eq!(aggregate(&e[..1]), rendered[0]);
        assert_eq!(
            aggregate(&[e[1].clone(), e[1].clone(), e[3].clone()]),
            format!("[{}, {}]", rendered[1], rendered[3])
        );
    }
}
