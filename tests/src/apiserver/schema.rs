//! CRD structural schema semantics on JSON values, as kube-apiserver applies them
//! to custom resources: [`validate`] (OpenAPI v3 validation plus list-type and
//! embedded-resource checks, with kube-apiserver's field error rendering),
//! [`prune`] (dropping unknown fields) and [`apply_defaults`].
//!
//! What is skipped is listed in [`NOT_ENFORCED`].

mod render;
mod structural;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;

pub use self::structural::{apply_defaults, prune};
pub use self::validate::validate;

/// Schema features this module does not enforce (kube-apiserver does).
pub const NOT_ENFORCED: &[&str] = &[
    "x-kubernetes-validations (CEL rules): ignored",
    "validation ratcheting on update (unchanged invalid fields are still reported)",
    "string formats other than date-time, date, byte, uuid, ipv4, ipv6, cidr, hostname \
     (uri, email, mac, duration, isbn, creditcard, ssn, hexcolor, rgbcolor, password, \
     bsonobjectid, uuid3/4/5 are accepted unchecked)",
    "patternProperties, dependencies, additionalItems, $ref (not allowed in structural schemas)",
    "oneOf/anyOf: the failing branch reported is the one with the fewest errors, not kube-openapi's best match",
    "x-kubernetes-map-type",
    "metadata validation of the root object (name format, generateName, ...): the core's job",
    "CRD schema validation itself (that the schema is structural)",
];

/// Why a field failed, as Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Invalid value`, for a value of the wrong JSON type.
    TypeInvalid,
    /// `Unsupported value` (not in the enum).
    NotSupported,
    /// `Duplicate value` (list-type set or map).
    Duplicate,
    /// `Too long` (maxLength).
    TooLong,
    /// `Too many` (maxItems, maxProperties).
    TooMany,
    /// `Forbidden`.
    Forbidden,
}

impl ErrorKind {
    /// The `StatusCause.reason` Kubernetes uses for this kind (`FieldValueRequired`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
        })
    }
}

/// One field error, rendered as kube-apiserver renders a `field.Error`:
/// `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    /// Dotted path with list indexes: `spec.containers[0].name` (empty at the root).
    pub field: String,
    /// The error type.
    pub kind: ErrorKind,
    /// The bad value shown after the type; `None` where Kubernetes omits it.
    pub value: Option<Value>,
    /// The detail after the value (may be empty).
    pub message: String,
}

impl SchemaError {
    pub(crate) fn new(
        field: &str,
        kind: ErrorKind,
        value: Option<Value>,
        message: impl Into<String>,
    ) -> Self {
        Self { field: field.to_owned(), kind, value, message: message.into() }
    }

    /// The message without the field, as in `StatusCause.message`: `Required value`,
    /// `Invalid value: 11: spec.replicas in body should be less than or equal to 10`.
    pub fn body(&self) -> String {
        let mut s = match (self.kind, &self.value) {
            (ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong, _) | (_, None) => {
                self.kind.to_string()
            }
            (_, Some(v)) => format!("{}: {}", self.kind, render::go_value(v)),
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The 422 `Invalid` status kube-apiserver answers with for `errors` on object
/// `name` of `kind` in `group`: message `CloneSet.apps.kruise.io "web" is invalid:
/// [spec.replicas: ..., spec.selector: Required value]`, one cause per error.
pub fn invalid_status(group: &str, kind: &str, name: &str, errors: &[SchemaError]) -> Status {
    let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
    let mut messages: Vec<String> = Vec::new();
    for e in errors {
        let m = e.to_string();
        if !messages.contains(&m) {
            messages.push(m);
        }
    }
    let aggregate = match messages.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    Status {
        status: Some("Failure".into()),
        code: Some(422),
        reason: Some("Invalid".into()),
        message: Some(format!("{qualified} {} is invalid: {aggregate}", render::go_quote(name))),
        details: Some(StatusDetails {
            name: Some(name.to_owned()),
            group: Some(group.to_owned()),
            kind: Some(kind.to_owned()),
            causes: Some(
                errors
                    .iter()
                    .map(|e| StatusCause {
                        reason: Some(e.kind.reason().into()),
                        message: Some(e.body()),
                        field: Some(e.field.clone()),
                    })
                    .collect(),
            ),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}
