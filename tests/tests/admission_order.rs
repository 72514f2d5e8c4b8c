//! The simulated API server orders a write as kube-apiserver does: mutating
//! admission sees the object as the client sent it (status included, no system
//! fields), then the strategy (PrepareForCreate/PrepareForUpdate: system fields,
//! status dropped or kept), the CRD schema (pruning, defaults, validation), and
//! validating admission sees the object as it will be stored.

use std::sync::{Arc, Mutex};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
};
use serde_json::{Value, json};
use stevedore_tests::apiserver::{
    Admission, AdmissionPhase, AdmitRequest, ApiServer, HookFuture, Hooks, NoConversionWebhookConfigured,
    Options, Status, plugins::StructuralSchema,
};

/// Records the object each admission pass saw.
#[derive(Default)]
struct Seen(Mutex<Vec<(AdmissionPhase, Value)>>);

impl Admission for Seen {
    fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>> {
        Box::pin(async move {
            let object = req.object.unwrap_or_default();
            self.0.lock().unwrap().push((req.phase, object.clone()));
            Ok(object)
        })
    }
}

impl Seen {
    fn take(&self) -> Vec<(AdmissionPhase, Value)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A namespaced kind with a status subresource whose status requires `replicas`,
/// and a spec field with a default.
fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.order.stevedore.test"},
        "spec": {
            "group": "order.stevedore.test", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "mode": {"type": "string", "default": "Fast"}
                    }},
                    "status": {"type": "object", "required": ["replicas"], "properties": {
                        "replicas": {"type": "integer"}
                    }}
                }}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn admission_and_the_strategy_run_in_kube_apiservers_order() {
    let seen = Arc::new(Seen::default());
    let hooks = Hooks {
        admission: seen.clone(),
        schema: Arc::new(StructuralSchema::default()),
        converter: Arc::new(NoConversionWebhookConfigured),
        ..Hooks::default()
    };
    let server = ApiServer::start(Options { hooks, ..Options::default() }).await.unwrap();
    let client = server.client().await.unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd())
        .await
        .unwrap();
    seen.take();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("order.stevedore.test", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);

    // `status: {}` (as `kubectl get -o yaml` writes it) lacks the required
    // `replicas`: the schema would refuse it, but the strategy drops it first.
    let sent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "order.stevedore.test/v1", "kind": "Gadget",
        "metadata": {"generateName": "g-"},
        "spec": {"replicas": 1, "typo": true}, "status": {}
    }))
    .unwrap();
    let created = gadgets.create(&PostParams::default(), &sent).await.unwrap();
    let passes = seen.take();
    let [(AdmissionPhase::Mutating, mutating), (AdmissionPhase::Validating, validating)] = &passes[..] else {
        panic!("one mutating then one validating pass: {passes:?}");
    };
    assert_eq!(mutating["status"], json!({}), "the mutating pass sees the status as sent");
    assert_eq!(mutating["spec"]["typo"], true, "and the object unpruned");
    assert!(mutating["metadata"].get("uid").is_none(), "before the system fields");
    assert!(mutating["metadata"].get("name").is_none(), "and before the name is generated");
    assert_eq!(mutating["metadata"]["namespace"], "default", "in the request's namespace");
    assert!(validating.get("status").is_none(), "the validating pass sees no status");
    assert!(validating["metadata"]["uid"].is_string() && validating["metadata"]["name"].is_string());
    assert_eq!(validating["spec"], json!({"replicas": 1, "mode": "Fast"}), "pruned and defaulted");
    assert!(created.data.get("status").is_none());
    let name = created.metadata.name.clone().unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // An update that changes nothing once pruned does not bump the generation; the
    // status the client sends is replaced by the stored one after mutating
    // admission saw it.
    let patch = json!({"spec": {"typo": false}, "status": {"replicas": 7}});
    let same = gadgets.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(same.metadata.generation, Some(1));
    let passes = seen.take();
    assert_eq!(passes[0].1["status"]["replicas"], 7, "mutating sees the status sent");
    assert!(passes[1].1.get("status").is_none(), "validating sees the stored one (none)");
    let patch = json!({"spec": {"replicas": 2}});
    let changed = gadgets.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(seen.take()[1].1["metadata"]["generation"], 2, "validating sees the new generation");
}
