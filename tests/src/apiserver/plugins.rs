//! The simulated server's real plug-ins: CRD structural schemas ([`super::schema`]),
//! admission webhooks ([`super::admission`]) and conversion webhooks
//! ([`super::conversion`]) behind the server's [`Hooks`]. [`Hooks::webhooks`] wires
//! all three; a resolver says where a webhook Service is reached (there is no
//! cluster network: usually a process on loopback).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        authentication::v1::UserInfo as K8sUserInfo,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::Status as MetaStatus,
};
use serde_json::Value;

use super::{
    Admission, AdmissionPhase, AdmitRequest, Converter, HookFuture, Hooks, Operation, SchemaCheck, Status,
    admission::{self, Attributes, Dispatcher, Gvk, Gvr, client::ServiceResolver},
    conversion,
    endpoints::{Chain, StoredEndpoints},
    schema,
};

/// A `metav1.Status` from the plug-in modules as the server's [`Status`].
fn from_meta(status: MetaStatus) -> Status {
    let code = status.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
    Status {
        code,
        reason: status.reason.unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        details: status.details.and_then(|d| serde_json::to_value(d).ok()),
    }
}

fn crd_of(crd: &Value) -> Result<CustomResourceDefinition, Status> {
    serde_json::from_value(crd.clone())
        .map_err(|e| Status::new(500, "InternalError", format!("stored CRD does not parse: {e}")))
}

/// Stored CRDs, parsed once per uid and resourceVersion (which, within one
/// server, name one content): a CRD with full pod-template schemas takes tens of
/// milliseconds to parse in a debug build, and every write of its kind needs it.
#[derive(Debug, Default)]
struct ParsedCrds(Mutex<HashMap<(String, String), Arc<CustomResourceDefinition>>>);

impl ParsedCrds {
    fn get(&self, crd: &Value) -> Result<Arc<CustomResourceDefinition>, Status> {
        let meta = |field: &str| crd["metadata"][field].as_str().unwrap_or_default().to_owned();
        let key = (meta("uid"), meta("resourceVersion"));
        let cacheable = !key.0.is_empty() && !key.1.is_empty();
        if cacheable && let Some(parsed) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(parsed.clone());
        }
        let parsed = Arc::new(crd_of(crd)?);
        if cacheable {
            let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // a CRD's older versions are never asked for again
            cache.retain(|(uid, _), _| *uid != key.0);
            cache.insert(key, parsed.clone());
        }
        Ok(parsed)
    }
}

/// Prunes, defaults and validates custom resources against their CRD version's
/// `openAPIV3Schema`, as kube-apiserver does (see [`schema::NOT_ENFORCED`]).
#[derive(Debug, Default)]
pub struct StructuralSchema {
    crds: ParsedCrds,
}

impl SchemaCheck for StructuralSchema {
    fn check(&self, crd: &Value, version: &str, mut object: Value) -> Result<Value, Status> {
        let crd = self.crds.get(crd)?;
        let Some(props) = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            return Ok(object);
        };
        schema::prune(props, &mut object);
        schema::apply_defaults(props, &mut object);
        let errors = schema::validate(props, &object);
        if errors.is_empty() {
            return Ok(object);
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        Err(from_meta(schema::invalid_status(&crd.spec.group, &crd.spec.names.kind, name, &errors)))
    }
}

/// Calls the admission webhooks the stored webhook configurations name.
pub struct Webhooks {
    dispatcher: Dispatcher,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks reached through `resolver`.
    pub fn new(resolver: impl ServiceResolver + 'static) -> Self {
        Self { dispatcher: Dispatcher::new(resolver) }
    }
}

fn attributes(req: &AdmitRequest) -> Attributes {
    let operation = match req.operation {
        Operation::Create => admission::Operation::Create,
        Operation::Update => admission::Operation::Update,
        Operation::Delete => admission::Operation::Delete,
    };
    let user = &req.user;
    Attributes {
        operation: Some(operation),
        kind: Gvk { group: req.group.clone(), version: req.version.clone(), kind: req.kind.clone() },
        resource: Gvr {
            group: req.group.clone(),
            version: req.version.clone(),
            resource: req.resource.clone(),
        },
        sub_resource: req.sub_resource.clone(),
        name: req.name.clone(),
        namespace: req.namespace.clone(),
        old_object: req.old_object.clone(),
        user_info: K8sUserInfo {
            username: Some(user.username.clone()),
            uid: Some(user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: Some(user.extra.clone()),
        },
        dry_run: req.dry_run,
        namespace_labels: req.namespace_labels.clone(),
        ..Attributes::default()
    }
}

fn configs<T: serde::de::DeserializeOwned>(values: &[Value]) -> Result<Vec<T>, Status> {
    values.iter().map(|v| serde_json::from_value(v.clone())).collect::<Result<_, _>>().map_err(|e| {
        Status::new(500, "InternalError", format!("stored webhook configuration does not parse: {e}"))
    })
}

impl Admission for Webhooks {
    fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>> {
        Box::pin(async move {
            let attrs = attributes(&req);
            match req.phase {
                AdmissionPhase::Mutating => {
                    let configs: Vec<MutatingWebhookConfiguration> = configs(&req.webhook_configurations)?;
                    let object = req.object.unwrap_or(Value::Null);
                    self.dispatcher
                        .mutate(&configs, &attrs, object)
                        .await
                        .map_err(|r| from_meta(r.to_status()))
                }
                AdmissionPhase::Validating => {
                    let configs: Vec<ValidatingWebhookConfiguration> = configs(&req.webhook_configurations)?;
                    self.dispatcher
                        .validate(&configs, &attrs, req.object.as_ref())
                        .await
                        .map_err(|r| from_meta(r.to_status()))?;
                    Ok(req.object.unwrap_or(Value::Null))
                }
            }
        })
    }
}

/// Converts custom resources as their CRD's `spec.conversion` says: through its
/// webhook (ConversionReview v1), or by rewriting `apiVersion` for `None`.
pub struct ConversionWebhooks {
    converter: conversion::Converter,
    crds: ParsedCrds,
}

impl std::fmt::Debug for ConversionWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversionWebhooks").finish_non_exhaustive()
    }
}

impl ConversionWebhooks {
    /// Conversion webhooks reached through `resolver`.
    pub fn new(resolver: impl ServiceResolver + 'static) -> Self {
        Self { converter: conversion::Converter::new(resolver), crds: ParsedCrds::default() }
    }
}

impl Converter for ConversionWebhooks {
    fn convert<'a>(
        &'a self,
        crd: &'a Value,
        objects: Vec<Value>,
        desired_api_version: &'a str,
    ) -> HookFuture<'a, Result<Vec<Value>, Status>> {
        Box::pin(async move {
            let crd = self.crds.get(crd)?;
            self.converter
                .convert(&crd, objects, desired_api_version)
                .await
                .map_err(|e| Status::new(e.code(), "InternalError", e.to_string()))
        })
    }
}

impl Hooks {
    /// Schema checks, admission webhooks and conversion webhooks as kube-apiserver
    /// runs them. A webhook Service is reached through `resolver` first, then through
    /// the addresses its Endpoints or EndpointSlices in the server's store list.
    pub fn webhooks<R: ServiceResolver + Clone + 'static>(resolver: R) -> Self {
        let endpoints = StoredEndpoints::default();
        Self {
            admission: Arc::new(Webhooks::new(Chain(resolver.clone(), endpoints.clone()))),
            schema: Arc::new(StructuralSchema::default()),
            converter: Arc::new(ConversionWebhooks::new(Chain(resolver, endpoints.clone()))),
            endpoints,
        }
    }

    /// [`Hooks::webhooks`] with Services reached only through their stored Endpoints
    /// or EndpointSlices, as in a cluster: what the `stevedore-apiserver` binary runs.
    pub fn cluster() -> Self {
        Self::webhooks(|_: &str, _: &str, _: i32| None)
    }
}
