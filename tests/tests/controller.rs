//! The real controller binary against the simulated API server with its real
//! plug-ins: the project's CRDs applied, the webhook certificate shared through a
//! Secret, the leader keeping the webhook configurations and CRD conversion sections
//! current, every kind's example admitted (defaulted and validated by the
//! controller), an invalid object of every kind refused by the schema or by the
//! controller's webhooks, versions converted by the controller, and leadership
//! handed over when a replica stops.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{
    api::{
        admissionregistration::v1::ValidatingWebhookConfiguration,
        coordination::v1::Lease,
        core::v1::{Namespace, Secret},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, ObjectMeta, PostParams},
    core::GroupVersionKind,
};
use serde_json::{Value, json};
use stevedore_tests::{
    apiserver::{ApiServer, Hooks, Options},
    controller_process::{ControllerProcess, free_addr},
    wait::until,
};

const NAMESPACE: &str = "stevedore-system";
const SECRET: &str = "stevedore-webhook-certs";
const VALIDATING: &str = "stevedore-validating-webhook-configuration";

struct Cluster {
    server: ApiServer,
    client: Client,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    /// The port the webhook Service resolves to (the replica serving it).
    service_port: Arc<AtomicU16>,
}

async fn cluster() -> Cluster {
    let service_port = Arc::new(AtomicU16::new(0));
    let port = service_port.clone();
    let resolver = move |ns: &str, name: &str, svc_port: i32| {
        (ns == NAMESPACE && name == "stevedore-webhook-service" && svc_port == 443)
            .then(|| SocketAddr::from(([127, 0, 0, 1], port.load(Ordering::SeqCst))))
    };
    let server = ApiServer::start(Options { hooks: Hooks::webhooks(resolver), ..Options::default() })
        .await
        .expect("simulated API server");
    let client = server.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, stevedore_tests::apiserver::ADMIN_TOKEN).unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NAMESPACE, "shop", "ops", "monitoring", "cache"] {
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await.unwrap();
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        api.create(&PostParams::default(), crd).await.unwrap();
    }
    Cluster { server, client, kubeconfig, dir, service_port }
}

impl Cluster {
    async fn controller(&self, identity: &str) -> ControllerProcess {
        let addr = free_addr().unwrap();
        ControllerProcess::start(
            self.dir.path(),
            &self.kubeconfig,
            addr,
            identity,
            &["--resync-seconds", "1", "--lease-seconds", "3"],
        )
        .await
        .unwrap()
    }

    fn serve_through(&self, controller: &ControllerProcess) {
        self.service_port.store(controller.listen().port(), Ordering::SeqCst);
    }
}

async fn ca_bundle(client: &Client) -> Option<Vec<u8>> {
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE).get_opt(SECRET).await.ok()??;
    Some(secret.data?.get("ca.crt")?.0.clone())
}

/// The Secret's CA once the leader has written it into the configurations and
/// conversion sections, `None` before.
async fn published_ca(client: &Client) -> Option<Vec<u8>> {
    let ca = ca_bundle(client).await?;
    let vwc = Api::<ValidatingWebhookConfiguration>::all(client.clone()).get_opt(VALIDATING).await.ok()??;
    let all_hooks = vwc.webhooks.unwrap_or_default();
    if all_hooks.is_empty()
        || all_hooks.iter().any(|w| w.client_config.ca_bundle.as_ref().map(|b| &b.0) != Some(&ca))
    {
        return None;
    }
    let crd =
        Api::<CustomResourceDefinition>::all(client.clone()).get("statefulsets.apps.kruise.io").await.ok()?;
    let conversion = crd.spec.conversion?;
    let bundle = conversion.webhook?.client_config?.ca_bundle?;
    (conversion.strategy == "Webhook" && bundle.0 == ca).then_some(ca)
}

/// Waits until the leader has written the configurations and conversion sections
/// with the Secret's CA, and returns that CA.
async fn configured(client: &Client) -> Vec<u8> {
    until("the webhook configurations and CRD conversion", Duration::from_secs(30), async || {
        Ok(published_ca(client).await)
    })
    .await
    .unwrap()
}

fn example(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(file);
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The CRDs the controller installs, generated once (a debug build takes most of a
/// second).
fn crds() -> &'static [CustomResourceDefinition] {
    static CRDS: std::sync::LazyLock<Vec<CustomResourceDefinition>> =
        std::sync::LazyLock::new(stevedore_proto::crd::all);
    &CRDS
}

/// The API of `object`'s kind at `api_version`, from the installed CRDs.
fn api_for(client: &Client, object: &Value, api_version: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap();
    let kind = object["kind"].as_str().unwrap();
    let crd = crds().iter().find(|c| c.spec.group == group && c.spec.names.kind == kind).unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        &crd.spec.names.plural,
    );
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if crd.spec.scope == "Namespaced" => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

async fn create(client: &Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, object, object["apiVersion"].as_str().unwrap());
    api.create(&PostParams::default(), &serde_json::from_value(object.clone()).unwrap()).await
}

fn refusal(result: Result<DynamicObject, kube::Error>) -> (u16, String) {
    match result {
        Ok(obj) => panic!("accepted an invalid object: {}", serde_json::to_string(&obj).unwrap()),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(e) => panic!("not an API refusal: {e}"),
    }
}

const EXAMPLES: &[&str] = &[
    "advancedcronjob.yaml",
    "broadcastjob.yaml",
    "cloneset.yaml",
    "containerrecreaterequest.yaml",
    "daemonset.yaml",
    "imagelistpulljob.yaml",
    "imagepulljob.yaml",
    "nodeimage.yaml",
    "nodestate.yaml",
    "podunavailablebudget.yaml",
    "sidecarset.yaml",
    "statefulset.yaml",
    "uniteddeployment.yaml",
    "workloadspread.yaml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_admitted_when_valid_and_refused_when_not() {
    let c = cluster().await;
    let a = c.controller("a").await;
    c.serve_through(&a);
    configured(&c.client).await;
    // the pod the ContainerRecreateRequest example names (its webhook looks it up)
    let pod = stevedore_tests::pod_objects::running("shop", "web-0", "node-a", &["app", "log-shipper"]);
    stevedore_tests::pod_objects::create(&c.client, &pod).await.unwrap();

    // Every example goes in, defaulted by the controller where OpenKruise defaults.
    for file in EXAMPLES {
        let mut obj = example(file);
        if *file == "containerrecreaterequest.yaml" {
            // The example is a request as stored, with the fields the controller
            // copies from the pod; a user's request leaves them out (they are
            // read-only, as in OpenKruise).
            for c in obj["spec"]["containers"].as_array_mut().unwrap() {
                let c = c.as_object_mut().unwrap();
                c.retain(|k, _| k == "name");
            }
        }
        if let Err(e) = create(&c.client, &obj).await {
            panic!("{file} was refused: {e}\ncontroller log:\n{}", a.log_tail(20));
        }
    }
    let cloneset =
        api_for(&c.client, &example("cloneset.yaml"), "apps.kruise.io/v1alpha1").get("web").await.unwrap();
    assert_eq!(cloneset.data["spec"]["revisionHistoryLimit"], 10, "defaulted by the mutating webhook");

    // A spec of the wrong type is refused, naming the field: by the kind's mutating
    // webhook, which reads the object first, as sent (400, as OpenKruise's decoder
    // answers), or, for kinds without one, by the API server's schema check (422).
    for file in EXAMPLES {
        let mut obj = example(file);
        obj["metadata"]["name"] = json!("broken-schema");
        obj["spec"] = json!(42);
        let (code, message) = refusal(create(&c.client, &obj).await);
        if message.contains("admission webhook") {
            assert_eq!(code, 400, "{file}: {message}");
            assert!(message.contains("spec: invalid type"), "{file}: {message}");
        } else {
            assert_eq!(code, 422, "{file}: {message}");
            assert!(message.contains("spec: Invalid value"), "{file}: {message}");
        }
    }

    // A rule of every kind with a validating webhook is enforced by the controller,
    // answered with the HTTP code OpenKruise's handler gives (500 where it reports
    // field errors as its own failure).
    let broken: &[(&str, &str, Value, &str, u16)] = &[
        ("advancedcronjob.yaml", "/spec/schedule", json!("every tuesday"), "spec.schedule", 422),
        ("broadcastjob.yaml", "/spec/template/spec/restartPolicy", json!("Always"), "restartPolicy", 500),
        ("cloneset.yaml", "/spec/selector/matchLabels", json!({"app": "other"}), "selector", 422),
        ("containerrecreaterequest.yaml", "/spec/containers", json!([]), "spec.containers", 400),
        ("daemonset.yaml", "/spec/selector/matchLabels", json!({"app": "other"}), "selector", 500),
        ("imagelistpulljob.yaml", "/spec/images", json!([]), "spec.images", 400),
        ("imagepulljob.yaml", "/spec/image", json!(""), "spec.image", 400),
        (
            "nodeimage.yaml",
            "/spec/images/registry.example.com~1library~1nginx/tags/0/tag",
            json!(""),
            "tag",
            400,
        ),
        ("podunavailablebudget.yaml", "/spec/maxUnavailable", json!("150%"), "spec.maxUnavailable", 400),
        ("sidecarset.yaml", "/spec/containers/0/image", json!(""), "spec.containers[0].image", 500),
        ("statefulset.yaml", "/spec/selector/matchLabels", json!({"app": "other"}), "selector", 422),
        (
            "uniteddeployment.yaml",
            "/spec/topology/subsets/1/name",
            json!("zone-a"),
            "duplicate subset name",
            422,
        ),
        ("workloadspread.yaml", "/spec/subsets", json!([]), "spec.subsets", 400),
    ];
    for (file, pointer, value, field, want) in broken {
        let mut obj = example(file);
        obj["metadata"]["name"] = json!("broken-rule");
        *obj.pointer_mut(pointer).unwrap_or_else(|| panic!("{file} has no {pointer}")) = value.clone();
        let (code, message) = refusal(create(&c.client, &obj).await);
        assert!(message.contains("admission webhook"), "{file} refused by the controller: {message}");
        assert!(message.contains(field), "{file}: names {field}: {message}");
        assert_eq!(code, *want, "{file}: {message}");
    }
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_converted_by_the_controller() {
    let c = cluster().await;
    let a = c.controller("a").await;
    c.serve_through(&a);
    configured(&c.client).await;

    // A v1beta1 StatefulSet read as v1alpha1 and back.
    let sts = example("statefulset.yaml");
    create(&c.client, &sts).await.unwrap();
    let alpha = api_for(&c.client, &sts, "apps.kruise.io/v1alpha1").get("redis").await.unwrap();
    assert_eq!(alpha.types.as_ref().unwrap().api_version, "apps.kruise.io/v1alpha1");
    assert_eq!(alpha.data["spec"]["serviceName"], sts["spec"]["serviceName"]);

    // A v1alpha1 DaemonSet asking for progressive creation has it as
    // scaleStrategy.partitionedScaling in v1beta1 (OpenKruise's rule).
    let mut ds = example("daemonset.yaml");
    ds["metadata"]["annotations"] = json!({"daemonset.kruise.io/progressive-create-pod": "true"});
    create(&c.client, &ds).await.unwrap();
    let name = ds["metadata"]["name"].as_str().unwrap();
    let beta = api_for(&c.client, &ds, "apps.kruise.io/v1beta1").get(name).await.unwrap();
    assert_eq!(beta.data["spec"]["scaleStrategy"]["partitionedScaling"], true, "{:?}", beta.data["spec"]);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_certificate_and_hand_over_leadership() {
    let c = cluster().await;
    let mut a = c.controller("a").await;
    c.serve_through(&a);
    let ca = configured(&c.client).await;
    let b = c.controller("b").await;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), NAMESPACE);
    let version = secrets.get(SECRET).await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secrets.get(SECRET).await.unwrap().metadata.resource_version,
        version,
        "b kept a's certificate"
    );
    assert_eq!(ca_bundle(&c.client).await.unwrap(), ca);

    let leases: Api<Lease> = Api::namespaced(c.client.clone(), NAMESPACE);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder(leases.get("stevedore-controller").await.unwrap()).as_deref(), Some("a"));

    // a stops (and releases the Lease); b serves and leads.
    assert!(a.stop().await.unwrap().success(), "a exits cleanly");
    c.serve_through(&b);
    until("b to lead", Duration::from_secs(15), async || {
        let lease = leases.get("stevedore-controller").await?;
        Ok((holder(lease).as_deref() == Some("b")).then_some(()))
    })
    .await
    .unwrap();
    // The new leader puts back what someone deleted.
    Api::<ValidatingWebhookConfiguration>::all(c.client.clone())
        .delete(VALIDATING, &DeleteParams::default())
        .await
        .unwrap();
    configured(&c.client).await;
    // And b's webhooks answer: an invalid budget is refused.
    let mut bad = example("podunavailablebudget.yaml");
    bad["spec"]["maxUnavailable"] = json!("150%");
    let (_, message) = refusal(create(&c.client, &bad).await);
    assert!(message.contains("admission webhook"), "{message}");
    drop(c.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_certificate_is_replaced_and_the_new_ca_published() {
    let c = cluster().await;
    let a = c.controller("a").await;
    c.serve_through(&a);
    let old = configured(&c.client).await;
    // The Secret is lost: the replica makes a new CA and certificate, serves it, and
    // (leading) publishes the new CA to the webhook configurations and CRDs.
    Api::<Secret>::namespaced(c.client.clone(), NAMESPACE)
        .delete(SECRET, &DeleteParams::default())
        .await
        .unwrap();
    let new = until("a new CA published", Duration::from_secs(30), async || {
        Ok(published_ca(&c.client).await.filter(|ca| *ca != old))
    })
    .await
    .unwrap();
    assert!(String::from_utf8(new).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    // The API server reaches the webhook with the new CA: a broken object is refused
    // by the controller, a valid one admitted.
    let mut bad = example("podunavailablebudget.yaml");
    bad["spec"]["maxUnavailable"] = json!("150%");
    let (_, message) = refusal(create(&c.client, &bad).await);
    assert!(message.contains("admission webhook"), "{message}\n{}", a.log_tail(10));
    create(&c.client, &example("podunavailablebudget.yaml")).await.unwrap();
}
