//! What the leader keeps current in the cluster for the webhook server: the
//! mutating and validating webhook configurations (one webhook per registered
//! endpoint and guard, generated from the [`Registry`] so they always match this binary) and
//! the conversion section of every CRD the registry has a converter for, each carrying the
//! CA bundle of the certificate the replicas serve.
//!
//! The same generator writes `deploy/webhooks.yaml` (with an empty CA bundle, which
//! the leader fills in), so what is installed and what is kept are one thing.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
        ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceConversion, CustomResourceDefinition, ServiceReference as CrdServiceReference,
        WebhookClientConfig as CrdClientConfig, WebhookConversion,
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, warn};

use crate::webhook::{CONVERT_PATH, Operation, Registry, Route};

/// Where the webhook server is reached and what its configurations are called.
#[derive(Clone, Debug)]
pub struct Target {
    /// The Service's namespace (the controller's).
    pub namespace: String,
    /// The Service in front of the replicas' webhook port.
    pub service: String,
    /// The Service's port.
    pub port: i32,
    /// The MutatingWebhookConfiguration's name.
    pub mutating: String,
    /// The ValidatingWebhookConfiguration's name.
    pub validating: String,
    /// How long the API server waits for one webhook call.
    pub timeout_seconds: i32,
}

/// The MutatingWebhookConfiguration's name.
pub const MUTATING_CONFIGURATION: &str = "stevedore-mutating-webhook-configuration";
/// The ValidatingWebhookConfiguration's name.
pub const VALIDATING_CONFIGURATION: &str = "stevedore-validating-webhook-configuration";

impl Default for Target {
    /// What `deploy/` installs: the Service `stevedore-webhook-service` on port 443
    /// in `stevedore-system`.
    fn default() -> Self {
        Self {
            namespace: "stevedore-system".to_owned(),
            service: "stevedore-webhook-service".to_owned(),
            port: 443,
            mutating: MUTATING_CONFIGURATION.to_owned(),
            validating: VALIDATING_CONFIGURATION.to_owned(),
            timeout_seconds: 10,
        }
    }
}

/// `deploy/webhooks.yaml`: both webhook configurations for the default [`Target`],
/// with no CA bundle yet (the leader fills it in).
///
/// # Errors
/// YAML serialisation failed.
pub fn manifest(registry: &Registry, crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    let (mutating, validating) = configurations(registry, crds, &Target::default(), b"");
    let typed = |kind: &str, value: serde_json::Value| {
        let mut value = value;
        value["apiVersion"] = "admissionregistration.k8s.io/v1".into();
        value["kind"] = kind.into();
        value
    };
    let mutating = typed("MutatingWebhookConfiguration", serde_json::to_value(&mutating).unwrap_or_default());
    let validating =
        typed("ValidatingWebhookConfiguration", serde_json::to_value(&validating).unwrap_or_default());
    Ok(format!(
        "# Generated from the controller's webhook registry by `cargo run -p stevedore-controller --bin crdgen`.\n\
         # The controller's leader fills in the caBundle and keeps these up to date.\n---\n{}---\n{}",
        serde_yaml::to_string(&mutating)?,
        serde_yaml::to_string(&validating)?
    ))
}

/// Upkeep failures.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {what}: {source}")]
pub struct Error {
    action: &'static str,
    what: String,
    #[source]
    source: kube::Error,
}

fn client_config(target: &Target, path: &str, ca: &[u8]) -> WebhookClientConfig {
    WebhookClientConfig {
        service: Some(ServiceReference {
            namespace: target.namespace.clone(),
            name: target.service.clone(),
            path: Some(path.to_owned()),
            port: Some(target.port),
        }),
        ca_bundle: (!ca.is_empty()).then(|| ByteString(ca.to_vec())),
        url: None,
    }
}

/// The same client config in apiextensions' type, for a CRD's conversion webhook.
fn crd_client_config(c: WebhookClientConfig) -> CrdClientConfig {
    CrdClientConfig {
        service: c.service.map(|s| CrdServiceReference {
            namespace: s.namespace,
            name: s.name,
            path: s.path,
            port: s.port,
        }),
        ca_bundle: c.ca_bundle,
        url: c.url,
    }
}

/// The rule of an endpoint: its kind's resource, from the CRDs the controller
/// installs, in the endpoint's version (every served version for an endpoint that
/// serves them all).
fn rule(crds: &[CustomResourceDefinition], route: &Route) -> RuleWithOperations {
    let crd =
        crds.iter().find(|c| c.spec.group == route.group && c.spec.names.kind == route.kind).unwrap_or_else(
            || panic!("a webhook is registered for {}/{}, which has no CRD", route.group, route.kind),
        );
    let versions = if route.version.is_empty() {
        crd.spec.versions.iter().filter(|v| v.served).map(|v| v.name.clone()).collect()
    } else {
        vec![route.version.clone()]
    };
    RuleWithOperations {
        api_groups: Some(vec![route.group.clone()]),
        api_versions: Some(versions),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(vec![crd.spec.names.plural.clone()]),
        scope: Some(if crd.spec.scope == "Namespaced" { "Namespaced" } else { "Cluster" }.to_owned()),
    }
}

/// A webhook's name: `m<kind>-<version>.kruise.io` or `v…`, unique per endpoint
/// (`m<kind>.kruise.io` for an endpoint serving every version).
fn webhook_name(route: &Route) -> String {
    let op = if route.op == Operation::Mutate { "m" } else { "v" };
    let kind = route.kind.to_lowercase();
    if route.version.is_empty() {
        format!("{op}{kind}.kruise.io")
    } else {
        format!("{op}{kind}-{}.kruise.io", route.version)
    }
}

/// The webhook configurations for every endpoint and guard in `registry`, trusting
/// `ca`. Every webhook fails closed (`failurePolicy: Fail`).
pub fn configurations(
    registry: &Registry,
    crds: &[CustomResourceDefinition],
    target: &Target,
    ca: &[u8],
) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let mut mutating = Vec::new();
    let mut validating = Vec::new();
    for route in registry.routes() {
        let common = (webhook_name(&route), client_config(target, &route.path, ca), rule(crds, &route));
        let fail = Some("Fail".to_owned());
        let none = "None".to_owned();
        let versions = vec!["v1".to_owned()];
        match route.op {
            Operation::Mutate => mutating.push(MutatingWebhook {
                name: common.0,
                client_config: common.1,
                rules: Some(vec![common.2]),
                failure_policy: fail,
                side_effects: none,
                admission_review_versions: versions,
                timeout_seconds: Some(target.timeout_seconds),
                reinvocation_policy: Some("Never".to_owned()),
                ..MutatingWebhook::default()
            }),
            Operation::Validate => validating.push(ValidatingWebhook {
                name: common.0,
                client_config: common.1,
                rules: Some(vec![common.2]),
                failure_policy: fail,
                side_effects: none,
                admission_review_versions: versions,
                timeout_seconds: Some(target.timeout_seconds),
                ..ValidatingWebhook::default()
            }),
        }
    }
    for guard in registry.guards() {
        validating.push(ValidatingWebhook {
            name: guard.name,
            client_config: client_config(target, &guard.path, ca),
            rules: Some(guard.rules),
            match_conditions: Some(guard.match_conditions),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            timeout_seconds: Some(target.timeout_seconds),
            ..ValidatingWebhook::default()
        });
    }
    let meta = |name: &str| ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() };
    (
        MutatingWebhookConfiguration { metadata: meta(&target.mutating), webhooks: Some(mutating) },
        ValidatingWebhookConfiguration { metadata: meta(&target.validating), webhooks: Some(validating) },
    )
}

/// The conversion section a CRD served in several versions needs.
pub fn conversion(target: &Target, ca: &[u8]) -> CustomResourceConversion {
    CustomResourceConversion {
        strategy: "Webhook".to_owned(),
        webhook: Some(WebhookConversion {
            client_config: Some(crd_client_config(client_config(target, CONVERT_PATH, ca))),
            conversion_review_versions: vec!["v1".to_owned()],
        }),
    }
}

/// Creates `desired`, or replaces what is there when it differs. `Ok(true)` when
/// something was written.
async fn put<K>(api: &Api<K>, desired: K, same: impl Fn(&K, &K) -> bool) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => api.create(&PostParams::default(), &desired).await.map(|_| true),
        Some(current) if same(&current, &desired) => Ok(false),
        Some(current) => {
            let mut next = desired;
            next.meta_mut().resource_version = current.meta().resource_version.clone();
            next.meta_mut().labels = current.meta().labels.clone();
            next.meta_mut().annotations = current.meta().annotations.clone();
            api.replace(&name, &PostParams::default(), &next).await.map(|_| true)
        }
    }
}

/// Brings the webhook configurations and the CRDs' conversion sections in line with
/// `registry` and `ca`. CRDs that are not installed are skipped with a warning (the
/// operator installs CRDs; the controller does not).
///
/// # Errors
/// The API server refused a read or a write (a conflict is returned too: the next
/// round retries).
pub async fn sync(
    client: &Client,
    registry: &Registry,
    crds: &[CustomResourceDefinition],
    target: &Target,
    ca: &[u8],
) -> Result<(), Error> {
    let (mutating, validating) = configurations(registry, crds, target, ca);
    let fail = |action, what: &str| {
        let what = what.to_owned();
        move |source| Error { action, what, source }
    };
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if put(&mwc, mutating, |a, b| a.webhooks == b.webhooks).await.map_err(fail("update", &target.mutating))? {
        info!(name = %target.mutating, "mutating webhook configuration updated");
    }
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    if put(&vwc, validating, |a, b| a.webhooks == b.webhooks)
        .await
        .map_err(fail("update", &target.validating))?
    {
        info!(name = %target.validating, "validating webhook configuration updated");
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wanted = conversion(target, ca);
    let converted = registry.converted_kinds();
    let has_converter = |c: &&CustomResourceDefinition| {
        converted.iter().any(|(group, kind)| *group == c.spec.group && *kind == c.spec.names.kind)
    };
    for crd in crds.iter().filter(has_converter) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let Some(mut current) = api.get_opt(&name).await.map_err(fail("read", &name))? else {
            warn!(crd = %name, "CRD not installed; its conversion webhook is not configured");
            continue;
        };
        if current.spec.conversion.as_ref() == Some(&wanted) {
            continue;
        }
        current.spec.conversion = Some(wanted.clone());
        api.replace(&name, &PostParams::default(), &current).await.map_err(fail("update", &name))?;
        info!(crd = %name, "CRD conversion webhook updated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::default()
    }

    #[test]
    fn every_registered_endpoint_gets_a_webhook_with_its_rule_and_the_ca() {
        let registry = crate::registry();
        let crds = stevedore_proto::crd::all();
        let (m, v) = configurations(&registry, &crds, &target(), b"CA");
        let webhooks = m.webhooks.iter().flatten().map(|w| (&w.name, &w.client_config, &w.rules));
        let validating = v.webhooks.iter().flatten().map(|w| (&w.name, &w.client_config, &w.rules));
        let all: Vec<_> = webhooks.chain(validating).collect();
        assert_eq!(all.len(), registry.routes().len() + registry.guards().len());
        let pub_ = all.iter().find(|w| w.0 == "vpodunavailablebudget.kruise.io").expect("PUB webhook");
        let service = pub_.1.service.as_ref().unwrap();
        assert_eq!(service.path.as_deref(), Some("/validate-policy-kruise-io-podunavailablebudget"));
        assert_eq!(pub_.1.ca_bundle.as_ref().unwrap().0, b"CA");
        let rule = &pub_.2.as_ref().unwrap()[0];
        assert_eq!(rule.resources.as_deref(), Some(&["podunavailablebudgets".to_owned()][..]));
        assert_eq!(rule.api_groups.as_deref(), Some(&["policy.kruise.io".to_owned()][..]));
        let names: std::collections::BTreeSet<_> = all.iter().map(|w| w.0).collect();
        assert_eq!(names.len(), all.len(), "webhook names are unique");
        let guard = v.webhooks.iter().flatten().find(|w| w.name == crate::node_guard::WEBHOOK_NAME).unwrap();
        assert_eq!(guard.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(
            guard.client_config.service.as_ref().unwrap().path.as_deref(),
            Some(crate::node_guard::PATH)
        );
        assert_eq!(guard.client_config.ca_bundle.as_ref().unwrap().0, b"CA");
        let conditions = guard.match_conditions.as_deref().unwrap_or_default();
        assert!(conditions[0].expression.contains("system:serviceaccount:stevedore-system:stevedore-agent"));
    }

    #[test]
    fn the_conversion_section_points_at_the_convert_endpoint() {
        let c = conversion(&target(), b"CA");
        assert_eq!(c.strategy, "Webhook");
        let config = c.webhook.unwrap().client_config.unwrap();
        assert_eq!(config.service.unwrap().path.as_deref(), Some(CONVERT_PATH));
        assert_eq!(config.ca_bundle.unwrap().0, b"CA");
        assert!(conversion(&target(), b"").webhook.unwrap().client_config.unwrap().ca_bundle.is_none());
    }
}
