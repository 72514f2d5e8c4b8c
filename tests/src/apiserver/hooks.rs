//! Plug points for schema checks, admission webhooks and conversion webhooks.
//!
//! The server calls these on every write of a custom resource (schema, conversion) and
//! of every resource (admission); the defaults pass everything through unchanged.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use serde_json::Value;

use super::{Status, UserInfo};

/// A boxed future, so that the traits stay object-safe.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which admission pass is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionPhase {
    /// Mutating webhooks: the returned object replaces the request's.
    Mutating,
    /// Validating webhooks: the returned object is ignored; an `Err` rejects.
    Validating,
}

/// `CREATE`, `UPDATE` or `DELETE`, as in `AdmissionRequest.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A create (or an apply that creates).
    Create,
    /// An update or patch, also of a subresource.
    Update,
    /// A delete.
    Delete,
}

/// What an admission pass is asked to admit.
#[derive(Debug, Clone)]
pub struct AdmitRequest {
    /// Mutating or validating.
    pub phase: AdmissionPhase,
    /// The operation.
    pub operation: Operation,
    /// Group, version, kind of the object as sent.
    pub group: String,
    /// Version as requested.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource.
    pub resource: String,
    /// `status`, `scale`, … or empty.
    pub sub_resource: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The labels of that namespace as stored (webhooks' `namespaceSelector`s match
    /// them); empty for cluster-scoped objects.
    pub namespace_labels: BTreeMap<String, String>,
    /// Object name (may be empty on create with generateName).
    pub name: String,
    /// The new object (`None` on delete).
    pub object: Option<Value>,
    /// The stored object (`None` on create).
    pub old_object: Option<Value>,
    /// The requesting user.
    pub user: UserInfo,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// The `MutatingWebhookConfiguration` (mutating pass) or
    /// `ValidatingWebhookConfiguration` (validating pass) objects in the store now.
    pub webhook_configurations: Vec<Value>,
}

/// Admission webhooks, driven by the webhook configuration objects handed over in
/// [`AdmitRequest::webhook_configurations`].
pub trait Admission: Send + Sync {
    /// Returns the admitted object (mutated on the mutating pass), or the rejection.
    fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>>;
}

/// Validation, pruning and defaulting of a custom resource against its CRD version's
/// `openAPIV3Schema`.
pub trait SchemaCheck: Send + Sync {
    /// Returns the pruned, defaulted object, or an `Invalid` status.
    ///
    /// # Errors
    /// The object breaks the schema.
    fn check(&self, crd: &Value, version: &str, object: Value) -> Result<Value, Status>;
}

/// Conversion of custom resources between the versions of their CRD.
pub trait Converter: Send + Sync {
    /// Converts `objects` to `desired_api_version` (`group/version`) as the CRD's
    /// `spec.conversion` says.
    fn convert<'a>(
        &'a self,
        crd: &'a Value,
        objects: Vec<Value>,
        desired_api_version: &'a str,
    ) -> HookFuture<'a, Result<Vec<Value>, Status>>;
}

/// No admission configured: every object is admitted unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAdmissionConfigured;

impl Admission for NoAdmissionConfigured {
    fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>> {
        Box::pin(async move { Ok(req.object.unwrap_or(Value::Null)) })
    }
}

/// No schema check configured: objects are stored as sent, unpruned and undefaulted.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchemaCheckConfigured;

impl SchemaCheck for NoSchemaCheckConfigured {
    fn check(&self, _crd: &Value, _version: &str, object: Value) -> Result<Value, Status> {
        Ok(object)
    }
}

/// No conversion webhook configured: conversion only rewrites `apiVersion`, which is
/// what the real server does for `strategy: None` (and here also for `Webhook`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConversionWebhookConfigured;

impl Converter for NoConversionWebhookConfigured {
    fn convert<'a>(
        &'a self,
        _crd: &'a Value,
        objects: Vec<Value>,
        desired_api_version: &'a str,
    ) -> HookFuture<'a, Result<Vec<Value>, Status>> {
        Box::pin(
            async move { Ok(objects.into_iter().map(|o| set_api_version(o, desired_api_version)).collect()) },
        )
    }
}

/// Rewrites `apiVersion`, the whole of `strategy: None` conversion.
pub fn set_api_version(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = Value::String(api_version.into());
    object
}

/// The three plug points together.
#[derive(Clone)]
pub struct Hooks {
    /// Admission webhooks.
    pub admission: Arc<dyn Admission>,
    /// CRD schema check.
    pub schema: Arc<dyn SchemaCheck>,
    /// CRD conversion.
    pub converter: Arc<dyn Converter>,
    /// The store the server binds when it starts, for plug-ins that resolve webhook
    /// Services through stored Endpoints ([`Hooks::webhooks`]).
    pub endpoints: super::endpoints::StoredEndpoints,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            admission: Arc::new(NoAdmissionConfigured),
            schema: Arc::new(NoSchemaCheckConfigured),
            converter: Arc::new(NoConversionWebhookConfigured),
            endpoints: super::endpoints::StoredEndpoints::default(),
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}
