//! `metav1.Status` failures with the codes, reasons and messages of the real server.

use serde_json::{Value, json};

/// A failed request, answered as a `metav1.Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// HTTP status code.
    pub code: u16,
    /// `StatusReason`, such as `NotFound`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `StatusDetails`, when there are any.
    pub details: Option<Value>,
}

/// One `StatusCause` of an `Invalid` failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: String,
    /// The message, as in `Required value: name or generateName is required`.
    pub message: String,
    /// The field path, as in `metadata.name`.
    pub field: String,
}

/// A resource named as the real server names it in messages: `pods`, `deployments.apps`.
#[derive(Debug, Clone, Copy)]
pub struct Qualified<'a> {
    /// API group (empty for core).
    pub group: &'a str,
    /// Plural resource name, with a subresource as `pods/binding`.
    pub resource: &'a str,
}

impl std::fmt::Display for Qualified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl Status {
    /// A failure with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), message: message.into(), details: None }
    }

    fn with_details(mut self, r: Qualified<'_>, name: &str) -> Self {
        let mut d = json!({ "name": name, "kind": r.resource });
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        self.details = Some(d);
        self
    }

    /// 404 NotFound: `pods "x" not found`.
    pub fn not_found(r: Qualified<'_>, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{r} \"{name}\" not found")).with_details(r, name)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(r: Qualified<'_>, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{r} \"{name}\" already exists")).with_details(r, name)
    }

    /// 409 Conflict with the real server's wording around `why`.
    pub fn conflict(r: Qualified<'_>, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {r} \"{name}\": {why}"))
            .with_details(r, name)
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn stale(r: Qualified<'_>, name: &str) -> Self {
        Self::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `Pod "x" is invalid: field: message`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let summary =
            if summary.len() == 1 { summary[0].clone() } else { format!("[{}]", summary.join(", ")) };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        let mut details = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let mut s = Self::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {summary}"));
        s.details = Some(details);
        s
    }

    /// One `FieldValueRequired` cause.
    pub fn required(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired".into(),
            message: format!("Required value: {detail}"),
            field: field.into(),
        }
    }

    /// One `FieldValueInvalid` cause.
    pub fn invalid_value(field: &str, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(r: Qualified<'_>, name: &str, why: &str) -> Self {
        Self::new(403, "Forbidden", format!("{r} \"{name}\" is forbidden: {why}")).with_details(r, name)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    /// 410 Expired (a watch or continue from before the retained history).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType for a patch type the resource does not take.
    pub fn unsupported_patch(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 429 TooManyRequests.
    pub fn too_many_requests(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        let mut s = Self::new(429, "TooManyRequests", message);
        s.details = Some(json!({ "causes": causes }));
        s
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// The `metav1.Status` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// A `metav1.Status` of success, as answered for an immediate delete.
pub fn success(r: Qualified<'_>, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": r.resource, "uid": uid });
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}
