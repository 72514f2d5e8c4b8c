//! Admission webhook dispatch as kube-apiserver does it: pick the webhooks of the
//! stored `MutatingWebhookConfiguration`s / `ValidatingWebhookConfiguration`s that
//! match a request (rules, scope, `namespaceSelector`, `objectSelector`,
//! `matchConditions`), call each
//! over HTTPS with an `AdmissionReview` v1, honour `timeoutSeconds`, `failurePolicy`,
//! `sideEffects` on dry run and `admissionReviewVersions`, apply the mutating
//! webhooks' JSON patches in order, and turn denials and failures into the API errors
//! the real server returns.
//!
//! Simplified (see [`NOT_ENFORCED`]): `matchPolicy: Equivalent` also matches the
//! request's original `requestResource` but never converts the object;
//! `reinvocationPolicy: IfNeeded` re-runs, once, the webhooks that ran before the
//! last change of the object.

pub mod client;
mod conditions;
mod matching;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Status};
use serde_json::{Value, json};

use self::client::{ClientConfig, ServiceResolver, WebhookClient, new_uid};

/// What admission dispatch does not do like kube-apiserver.
pub const NOT_ENFORCED: &[&str] = &[
    "matchConditions (CEL): no `authorizer` variable; expressions are not type-checked before they run",
    "matchPolicy Equivalent: no equivalent-resource table and no object conversion; \
     requestKind/requestResource are matched as well",
    "reinvocationPolicy IfNeeded: one extra pass over the webhooks that ran before the last change",
    "response warnings and auditAnnotations are dropped",
    "admissionReviewVersions v1beta1 (only v1 is spoken)",
];

/// The API operation being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

/// A group, version and kind (`""` group for the core API).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gvk {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// A group, version and resource (plural).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gvr {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource (plural, lower case).
    pub resource: String,
}

/// A request as admission sees it (kube-apiserver's `admission.Attributes`).
///
/// The object being admitted is passed to [`Dispatcher::mutate`] /
/// [`Dispatcher::validate`]; `objectSelector` is matched against its labels and the
/// old object's (either matching is enough), `namespaceSelector` against
/// `namespace_labels` (or, for a Namespace, its own labels).
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Option<Operation>,
    /// The object's kind.
    pub kind: Gvk,
    /// The resource.
    pub resource: Gvr,
    /// `status`, `scale`, ... or empty.
    pub sub_resource: String,
    /// The kind as originally requested, if different.
    pub request_kind: Option<Gvk>,
    /// The resource as originally requested, if different.
    pub request_resource: Option<Gvr>,
    /// The subresource as originally requested, if different.
    pub request_sub_resource: Option<String>,
    /// Object name (may be empty on CREATE with generateName).
    pub name: String,
    /// Namespace; empty for cluster-scoped resources.
    pub namespace: String,
    /// The stored object, for UPDATE and DELETE.
    pub old_object: Option<Value>,
    /// Who asks.
    pub user_info: UserInfo,
    /// Dry run.
    pub dry_run: bool,
    /// The operation's options (`CreateOptions`, ...), as JSON.
    pub options: Option<Value>,
    /// The labels of the request's namespace.
    pub namespace_labels: BTreeMap<String, String>,
}

impl Attributes {
    fn operation(&self) -> Operation {
        self.operation.unwrap_or(Operation::Create)
    }
}

/// An admission failure, as the API error (`metav1.Status`) it becomes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (may be empty when a webhook denies without one).
    pub reason: String,
    /// `Status.message`.
    pub message: String,
}

impl Rejection {
    fn internal(err: impl fmt::Display) -> Self {
        Self { code: 500, reason: "InternalError".into(), message: format!("Internal error occurred: {err}") }
    }

    /// The `Status` object kube-apiserver answers with.
    pub fn to_status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            code: Some(i32::from(self.code)),
            reason: (!self.reason.is_empty()).then(|| self.reason.clone()),
            message: Some(self.message.clone()),
            ..Status::default()
        }
    }
}

impl From<Rejection> for Status {
    fn from(r: Rejection) -> Self {
        r.to_status()
    }
}

/// One webhook, mutating or validating.
struct Hook<'a> {
    name: &'a str,
    client_config: &'a WebhookClientConfig,
    rules: &'a [RuleWithOperations],
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    side_effects: &'a str,
    timeout_seconds: Option<i32>,
    review_versions: &'a [String],
    reinvoke_if_needed: bool,
    match_conditions: &'a [MatchCondition],
}

impl<'a> From<&'a MutatingWebhook> for Hook<'a> {
    fn from(w: &'a MutatingWebhook) -> Self {
        Self {
            name: &w.name,
            client_config: &w.client_config,
            rules: w.rules.as_deref().unwrap_or_default(),
            failure_policy: w.failure_policy.as_deref(),
            match_policy: w.match_policy.as_deref(),
            namespace_selector: w.namespace_selector.as_ref(),
            object_selector: w.object_selector.as_ref(),
            side_effects: &w.side_effects,
            timeout_seconds: w.timeout_seconds,
            review_versions: &w.admission_review_versions,
            reinvoke_if_needed: w.reinvocation_policy.as_deref() == Some("IfNeeded"),
            match_conditions: w.match_conditions.as_deref().unwrap_or_default(),
        }
    }
}

impl<'a> From<&'a ValidatingWebhook> for Hook<'a> {
    fn from(w: &'a ValidatingWebhook) -> Self {
        Self {
            name: &w.name,
            client_config: &w.client_config,
            rules: w.rules.as_deref().unwrap_or_default(),
            failure_policy: w.failure_policy.as_deref(),
            match_policy: w.match_policy.as_deref(),
            namespace_selector: w.namespace_selector.as_ref(),
            object_selector: w.object_selector.as_ref(),
            side_effects: &w.side_effects,
            timeout_seconds: w.timeout_seconds,
            review_versions: &w.admission_review_versions,
            reinvoke_if_needed: false,
            match_conditions: w.match_conditions.as_deref().unwrap_or_default(),
        }
    }
}

impl Hook<'_> {
    fn ignores_failures(&self) -> bool {
        self.failure_policy == Some("Ignore")
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.map_or(10, |s| s.clamp(1, 30) as u64))
    }
}

/// What calling one webhook gave.
enum Outcome {
    /// Allowed, with the object after its patch (if any).
    Allowed(Option<Value>),
    /// A call failure the failure policy decides about.
    Failed(String),
}

/// Calls admission webhooks; see the module docs.
#[derive(Clone)]
pub struct Dispatcher {
    client: WebhookClient,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher that reaches webhook Services through `resolver`.
    pub fn new(resolver: impl ServiceResolver + 'static) -> Self {
        Self { client: WebhookClient::new(Arc::new(resolver)) }
    }

    /// Runs the matching mutating webhooks in order (configurations sorted by name,
    /// webhooks in their order) and returns the object with every patch applied.
    ///
    /// # Errors
    /// A webhook denied the request, or failed with `failurePolicy: Fail`.
    pub async fn mutate(
        &self,
        configs: &[MutatingWebhookConfiguration],
        attrs: &Attributes,
        mut object: Value,
    ) -> Result<Value, Rejection> {
        let mut sorted: Vec<&MutatingWebhookConfiguration> = configs.iter().collect();
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let hooks: Vec<Hook<'_>> =
            sorted.iter().flat_map(|c| c.webhooks.iter().flatten()).map(Hook::from).collect();
        let mut called: Vec<usize> = Vec::new();
        let mut last_change: Option<usize> = None;
        for (i, hook) in hooks.iter().enumerate() {
            if !matching::matches(hook, attrs, Some(&object)) {
                continue;
            }
            called.push(i);
            if self.call_one(hook, attrs, &mut object, true).await? {
                last_change = Some(called.len() - 1);
            }
        }
        // reinvocationPolicy IfNeeded: once more for those that ran before the last change.
        if let Some(last) = last_change {
            for &i in called[..last].iter().filter(|&&i| hooks[i].reinvoke_if_needed) {
                tracing::debug!(webhook.name = hooks[i].name, "reinvoking webhook");
                self.call_one(&hooks[i], attrs, &mut object, true).await?;
            }
        }
        Ok(object)
    }

    /// Runs the matching validating webhooks (concurrently, as kube-apiserver does)
    /// on `object` (`None` for DELETE, which sends only the old object).
    ///
    /// # Errors
    /// The first webhook (in configuration order) that denied the request or failed
    /// with `failurePolicy: Fail`.
    pub async fn validate(
        &self,
        configs: &[ValidatingWebhookConfiguration],
        attrs: &Attributes,
        object: Option<&Value>,
    ) -> Result<(), Rejection> {
        let mut sorted: Vec<&ValidatingWebhookConfiguration> = configs.iter().collect();
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let hooks: Vec<Hook<'_>> = sorted
            .iter()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(Hook::from)
            .filter(|h| matching::matches(h, attrs, object))
            .collect();
        let calls = hooks.iter().map(|hook| async move {
            let mut copy = object.cloned().unwrap_or(Value::Null);
            self.call_one(hook, attrs, &mut copy, false).await.map(|_| ())
        });
        futures_util::future::join_all(calls).await.into_iter().collect()
    }

    /// Calls one matching webhook; for a mutating one applies its patch to `object`.
    /// Returns whether the object changed.
    async fn call_one(
        &self,
        hook: &Hook<'_>,
        attrs: &Attributes,
        object: &mut Value,
        mutating: bool,
    ) -> Result<bool, Rejection> {
        let outcome = match match_verdict(hook, attrs, object) {
            conditions::Verdict::Skip => return Ok(false),
            conditions::Verdict::Error(reason) => {
                Outcome::Failed(format!("failed evaluating match conditions: {reason}"))
            }
            conditions::Verdict::Call => {
                if attrs.dry_run && !matches!(hook.side_effects, "None" | "NoneOnDryRun") {
                    return Err(Rejection {
                        code: 400,
                        reason: "BadRequest".into(),
                        message: format!("admission webhook {:?} does not support dry run", hook.name),
                    });
                }
                self.call(hook, attrs, object, mutating).await?
            }
        };
        match outcome {
            Outcome::Allowed(Some(patched)) => {
                let changed = patched != *object;
                *object = patched;
                Ok(changed)
            }
            Outcome::Allowed(None) => Ok(false),
            Outcome::Failed(reason) => {
                let err = format!("failed calling webhook {:?}: {reason}", hook.name);
                if hook.ignores_failures() {
                    tracing::warn!(webhook.name = hook.name, error = %err, "failed calling webhook, failing open");
                    Ok(false)
                } else {
                    tracing::warn!(webhook.name = hook.name, error = %err, "failed calling webhook, failing closed");
                    Err(Rejection::internal(err))
                }
            }
        }
    }

    async fn call(
        &self,
        hook: &Hook<'_>,
        attrs: &Attributes,
        object: &Value,
        mutating: bool,
    ) -> Result<Outcome, Rejection> {
        if !hook.review_versions.iter().any(|v| v == "v1") {
            return Ok(Outcome::Failed("webhook does not accept known AdmissionReview versions".into()));
        }
        let uid = new_uid();
        let review = review(&uid, attrs, object);
        let cfg = ClientConfig::from(hook.client_config);
        let answer = match self.client.post_json(&cfg, &review, hook.timeout()).await {
            Ok(a) => a,
            Err(e) => return Ok(Outcome::Failed(e.to_string())),
        };
        let (response, patch) = match verify_response(&answer, &uid, mutating) {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::Failed(format!("received invalid webhook response: {e}"))),
        };
        if response.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denial(hook.name, response.get("status")));
        }
        let Some(bytes) = patch else {
            return Ok(Outcome::Allowed(None));
        };
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| {
            Rejection::internal(format!("webhook {:?} returned an invalid JSON patch: {e}", hook.name))
        })?;
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch)
            .map_err(|e| Rejection::internal(format!("JSON patch of webhook {:?} failed: {e}", hook.name)))?;
        tracing::debug!(webhook.name = hook.name, "applied webhook patch");
        Ok(Outcome::Allowed(Some(patched)))
    }
}

/// `hook`'s match conditions on this request, with `object` as it is now.
fn match_verdict(hook: &Hook<'_>, attrs: &Attributes, object: &Value) -> conditions::Verdict {
    if hook.match_conditions.is_empty() {
        return conditions::Verdict::Call;
    }
    let mut review = review("", attrs, object);
    let mut request = review["request"].take();
    if let Some(map) = request.as_object_mut() {
        map.remove("object");
        map.remove("oldObject");
        map.remove("uid");
    }
    let old = attrs.old_object.clone().unwrap_or(Value::Null);
    conditions::evaluate(hook.match_conditions, &request, object, &old)
}

fn gvk_json(g: &Gvk) -> Value {
    json!({"group": g.group, "version": g.version, "kind": g.kind})
}

fn gvr_json(g: &Gvr) -> Value {
    json!({"group": g.group, "version": g.version, "resource": g.resource})
}

/// The `AdmissionReview` v1 request kube-apiserver sends.
fn review(uid: &str, attrs: &Attributes, object: &Value) -> Value {
    let mut req = json!({
        "uid": uid,
        "kind": gvk_json(&attrs.kind),
        "resource": gvr_json(&attrs.resource),
        "requestKind": gvk_json(attrs.request_kind.as_ref().unwrap_or(&attrs.kind)),
        "requestResource": gvr_json(attrs.request_resource.as_ref().unwrap_or(&attrs.resource)),
        "operation": attrs.operation().as_str(),
        "userInfo": serde_json::to_value(&attrs.user_info).unwrap_or_default(),
        "object": object,
        "oldObject": attrs.old_object.clone().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": attrs.options.clone().unwrap_or(Value::Null),
    });
    let map = req.as_object_mut().expect("object literal");
    if !attrs.sub_resource.is_empty() {
        map.insert("subResource".into(), attrs.sub_resource.clone().into());
    }
    let request_sub = attrs.request_sub_resource.as_ref().unwrap_or(&attrs.sub_resource);
    if !request_sub.is_empty() {
        map.insert("requestSubResource".into(), request_sub.clone().into());
    }
    if !attrs.name.is_empty() {
        map.insert("name".into(), attrs.name.clone().into());
    }
    if !attrs.namespace.is_empty() {
        map.insert("namespace".into(), attrs.namespace.clone().into());
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

/// The answer's `patch`: Go decodes a `[]byte` field from a base64 string (how Go
/// clients send it) or from an array of numbers (how kube-rs sends it); `None` when
/// absent or empty.
fn patch_bytes(response: &Value) -> Result<Option<Vec<u8>>, String> {
    let bytes = match response.get("patch") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => {
            base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| e.to_string())?
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("patch array holds something other than bytes")?,
        Some(other) => return Err(format!("patch is neither a base64 string nor a byte array: {other}")),
    };
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// kube-apiserver's checks of an `AdmissionReview` v1 answer; the response and its
/// decoded patch.
type Verified<'a> = (&'a Value, Option<Vec<u8>>);

fn verify_response<'a>(answer: &'a Value, uid: &str, mutating: bool) -> Result<Verified<'a>, String> {
    let api_version = answer.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = answer.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = answer.get("response").filter(|r| r.is_object()).ok_or("webhook response was absent")?;
    let got = response.get("uid").and_then(Value::as_str).unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let patch = patch_bytes(response)?;
    let patch_type = response.get("patchType").and_then(Value::as_str).unwrap_or_default();
    if patch.is_some() {
        if !mutating {
            return Err("validating webhooks may not return patches".into());
        }
        if patch_type != "JSONPatch" {
            return Err(format!("webhook returned invalid patchType: {patch_type:?}"));
        }
    } else if !patch_type.is_empty() {
        return Err("webhook returned patchType without a patch".into());
    }
    Ok((response, patch))
}

/// A denial as kube-apiserver reports it: the webhook's status, with at least 400
/// and the message prefixed `admission webhook "<name>" denied the request`.
fn denial(name: &str, status: Option<&Value>) -> Rejection {
    let empty = json!({});
    let status = status.unwrap_or(&empty);
    let code = status.get("code").and_then(Value::as_u64).unwrap_or(0);
    let code = if code < 400 { 400 } else { u16::try_from(code).unwrap_or(500) };
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or_default().to_owned();
    let message = status.get("message").and_then(Value::as_str).unwrap_or_default();
    let denied_by = format!("admission webhook {name:?} denied the request");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    Rejection { code, reason, message }
}
