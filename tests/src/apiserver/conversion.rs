//! The CRD conversion client of kube-apiserver: `ConversionReview` v1 to the CRD's
//! `spec.conversion.webhook.clientConfig` over HTTPS (same `caBundle` checks and
//! Service resolution as admission), with the real server's checks of the answer:
//! matching `uid`, `result.status: Success`, as many objects as were sent, each of
//! the desired `apiVersion` and the original `kind`, and `metadata` restored from
//! the original except `labels` and `annotations` (validated). Strategy `None` only
//! rewrites `apiVersion`.

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use regex::Regex;
use serde_json::{Map, Value, json};

use super::admission::client::{ClientConfig, ServiceResolver, WebhookClient, new_uid};

/// kube-apiserver's fixed conversion webhook timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A conversion failure; kube-apiserver answers these with a 500 `InternalError`.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The desired version is not served by the CRD.
    #[error("request to convert CR to an invalid group/version: {0}")]
    InvalidVersion(String),
    /// Strategy `Webhook` without a webhook client config.
    #[error("conversion strategy Webhook of {crd} has no webhook client config")]
    NoWebhook {
        /// The CRD's name.
        crd: String,
    },
    /// An object without a string `apiVersion` or `kind`.
    #[error("object at index {index} has no apiVersion or kind")]
    Unidentified {
        /// Position in the input.
        index: usize,
    },
    /// Calling the webhook or reading its answer failed, or it reported a failure.
    #[error("conversion webhook for {gvk} failed: {reason}")]
    Failed {
        /// `group/version, Kind=Kind` of the objects sent.
        gvk: String,
        /// Why.
        reason: String,
    },
    /// The webhook returned another number of objects.
    #[error("conversion webhook for {gvk} returned {got} objects, expected {expected}")]
    Count {
        /// `group/version, Kind=Kind`.
        gvk: String,
        /// Objects returned.
        got: usize,
        /// Objects sent.
        expected: usize,
    },
    /// A converted object is unacceptable.
    #[error("conversion webhook for {gvk} returned invalid converted object at index {index}: {reason}")]
    InvalidObject {
        /// `group/version, Kind=Kind`.
        gvk: String,
        /// Index among the objects sent.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A converted object's labels or annotations are unacceptable.
    #[error("conversion webhook for {gvk} returned invalid metadata in object at index {index}: {reason}")]
    InvalidMetadata {
        /// `group/version, Kind=Kind`.
        gvk: String,
        /// Index among the objects sent.
        index: usize,
        /// Why.
        reason: String,
    },
}

impl ConversionError {
    /// The HTTP status the API answers with.
    pub fn code(&self) -> u16 {
        500
    }
}

/// Converts custom resources between the versions of their CRD.
#[derive(Clone)]
pub struct Converter {
    client: WebhookClient,
    timeout: Duration,
}

impl fmt::Debug for Converter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Converter").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

fn gvk_string(object: &Value) -> String {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    format!("{api_version}, Kind={kind}")
}

impl Converter {
    /// A converter reaching webhook Services through `resolver`.
    pub fn new(resolver: impl ServiceResolver + 'static) -> Self {
        Self { client: WebhookClient::new(Arc::new(resolver)), timeout: DEFAULT_TIMEOUT }
    }

    /// The same with another webhook timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Converts `objects` to `desired_api_version` (`group/version`). Objects already
    /// there are returned unchanged and not sent; the order is kept.
    ///
    /// # Errors
    /// See [`ConversionError`].
    pub async fn convert(
        &self,
        crd: &CustomResourceDefinition,
        objects: Vec<Value>,
        desired_api_version: &str,
    ) -> Result<Vec<Value>, ConversionError> {
        let group = &crd.spec.group;
        let served = crd.spec.versions.iter().any(|v| format!("{group}/{}", v.name) == desired_api_version);
        if !served {
            return Err(ConversionError::InvalidVersion(desired_api_version.to_owned()));
        }
        for (index, o) in objects.iter().enumerate() {
            if o.get("apiVersion").and_then(Value::as_str).is_none()
                || o.get("kind").and_then(Value::as_str).is_none()
            {
                return Err(ConversionError::Unidentified { index });
            }
        }
        let todo: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i].get("apiVersion").and_then(Value::as_str) != Some(desired_api_version))
            .collect();
        if todo.is_empty() {
            return Ok(objects);
        }
        let strategy = crd.spec.conversion.as_ref().map_or("None", |c| c.strategy.as_str());
        let mut out = objects;
        if strategy != "Webhook" {
            for &i in &todo {
                out[i]["apiVersion"] = desired_api_version.into();
            }
            return Ok(out);
        }
        let webhook = crd.spec.conversion.as_ref().and_then(|c| c.webhook.as_ref());
        let Some(cc) = webhook.and_then(|w| w.client_config.as_ref()) else {
            return Err(ConversionError::NoWebhook { crd: crd.metadata.name.clone().unwrap_or_default() });
        };
        let gvk = gvk_string(&out[todo[0]]);
        let failed = |reason: String| ConversionError::Failed { gvk: gvk.clone(), reason };
        let versions = webhook.map(|w| w.conversion_review_versions.as_slice()).unwrap_or_default();
        if !versions.iter().any(|v| v == "v1") {
            return Err(failed(
                "webhook does not accept known ConversionReview versions (v1, v1beta1)".into(),
            ));
        }
        let sent: Vec<Value> = todo.iter().map(|&i| out[i].clone()).collect();
        let uid = new_uid();
        let review = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired_api_version, "objects": sent}});
        tracing::debug!(
            crd = crd.metadata.name.as_deref().unwrap_or_default(),
            desired = desired_api_version,
            objects = sent.len(),
            "calling conversion webhook"
        );
        let answer = self
            .client
            .post_json(&ClientConfig::from(cc), &review, self.timeout)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let converted = check_response(&answer, &uid).map_err(failed)?;
        if converted.len() != sent.len() {
            return Err(ConversionError::Count { gvk, got: converted.len(), expected: sent.len() });
        }
        for (index, (original, mut c)) in sent.iter().zip(converted).enumerate() {
            let invalid = |reason: String| ConversionError::InvalidObject { gvk: gvk.clone(), index, reason };
            let got = c.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if got != desired_api_version {
                return Err(invalid(format!("invalid apiVersion {got:?}, expected {desired_api_version:?}")));
            }
            let (want, got) =
                (original["kind"].as_str().unwrap_or_default(), c["kind"].as_str().unwrap_or_default());
            if want != got {
                return Err(invalid(format!("invalid kind {got:?}, expected {want:?}")));
            }
            restore_object_meta(original, &mut c).map_err(|reason| ConversionError::InvalidMetadata {
                gvk: gvk.clone(),
                index,
                reason,
            })?;
            out[todo[index]] = c;
        }
        Ok(out)
    }
}

/// The answer's `convertedObjects`, after kube-apiserver's envelope checks.
fn check_response(answer: &Value, uid: &str) -> Result<Vec<Value>, String> {
    let api_version = answer.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = answer.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version != "apiextensions.k8s.io/v1" || kind != "ConversionReview" {
        return Err(format!(
            "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = answer.get("response").filter(|r| r.is_object()).ok_or("no response provided")?;
    let got = response.get("uid").and_then(Value::as_str).unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let result = response.get("result");
    if result.and_then(|r| r.get("status")).and_then(Value::as_str) != Some("Success") {
        let message = result.and_then(|r| r.get("message")).and_then(Value::as_str).unwrap_or_default();
        return Err(message.to_owned());
    }
    Ok(response.get("convertedObjects").and_then(Value::as_array).cloned().unwrap_or_default())
}

/// Puts the original `metadata` back, keeping only the converted `labels` and
/// `annotations` (which must be string maps and valid).
fn restore_object_meta(original: &Value, converted: &mut Value) -> Result<(), String> {
    let response_meta = match converted.get("metadata") {
        None => return Err("missing metadata in converted object".into()),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!("invalid metadata of type {} in converted object", type_name(other)));
        }
    };
    let mut meta = original.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    for field in ["labels", "annotations"] {
        match response_meta.get(field) {
            None | Some(Value::Null) => {
                meta.remove(field);
            }
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_string() {
                        return Err(format!(
                            "metadata.{field}[{k}] must be a string, but is {} in converted object",
                            type_name(v)
                        ));
                    }
                }
                if meta.get(field) != Some(&Value::Object(m.clone())) {
                    validate_map(field, m)?;
                }
                meta.insert(field.to_owned(), Value::Object(m.clone()));
            }
            Some(other) => {
                return Err(format!(
                    "invalid metadata.{field} of type {} in converted object",
                    type_name(other)
                ));
            }
        }
    }
    converted["metadata"] = Value::Object(meta);
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

static NAME_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("static regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("static regex")
});

fn qualified_name_ok(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(|p| p.len() <= 253 && DNS_SUBDOMAIN.is_match(p))
        && name.len() <= 63
        && NAME_CHARS.is_match(name)
}

fn validate_map(field: &str, m: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in m {
        if !qualified_name_ok(k) {
            return Err(format!(
                "metadata.{field}: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', \
                 and must start and end with an alphanumeric character"
            ));
        }
        let v = v.as_str().unwrap_or_default();
        if field == "labels" && !(v.is_empty() || (v.len() <= 63 && NAME_CHARS.is_match(v))) {
            return Err(format!(
                "metadata.labels: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric \
                 characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
    }
    if field == "annotations" {
        let size: usize = m.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
        if size > 256 * 1024 {
            return Err(format!("metadata.annotations: Too long: may not be more than {} bytes", 256 * 1024));
        }
    }
    Ok(())
}
