//! kubectl v1.33 and helm v4 — clients nobody here wrote — against the simulated API
//! server (or, with `STEVEDORE_E2E_CLUSTER=kubeconfig`, a real cluster): every step is a
//! command a user would type.
//!
//! Safe on a shared cluster: each test works in a namespace of its own with a random
//! suffix (and any other namespace it makes has the suffix too), deleted at the end
//! (`TestCluster::finish`, or on drop after a failure). The steps that would change
//! what the cluster runs for everyone — replacing the CRDs with `deploy/crds/`,
//! installing `deploy/*.yaml` — are simulator-only: against a real cluster they say
//! so and are skipped (the whole test when nothing else is left), and the tests use
//! the CRDs the cluster has (Stevedore's or OpenKruise's, which must be installed).

use std::time::Duration;

use stevedore_tests::{
    apiserver::{Hooks, Options, UserInfo},
    clients::Clients,
    cluster::{Services, TestCluster},
    wait::until,
};

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds/");

/// A cluster kubectl can use, and the clients.
async fn start() -> (TestCluster, Clients) {
    let services = Services::default();
    let opts = Options {
        hooks: Hooks::webhooks(services.clone()),
        anonymous: Some(UserInfo::admin()),
        ..Options::default()
    };
    let cluster = TestCluster::start_with(opts, services).await.expect("start the test cluster");
    let cli = Clients::for_cluster(&cluster).await.expect("kubectl and helm");
    (cluster, cli)
}

/// `kubectl apply -f deploy/crds/` in the simulator; on a real cluster it would
/// replace the CRDs installed there, so the step is skipped with a note. Either way
/// the test then waits for the CloneSet CRD to be established.
async fn apply_crds(cluster: &TestCluster, k: &Clients) {
    if cluster.simulator_for("kubectl apply -f deploy/crds/ would replace the cluster's CRDs").is_some() {
        let out = k.kubectl(&["apply", "-f", CRDS]).await;
        assert!(
            out.ok().contains("customresourcedefinition.apiextensions.k8s.io/clonesets.apps.kruise.io"),
            "{}",
            out.stdout
        );
    }
    let established = k
        .kubectl(&["wait", "--for=condition=Established", "crd/clonesets.apps.kruise.io", "--timeout=30s"])
        .await;
    assert!(established.ok().contains("condition met"), "{}", established.stdout);
}

fn cloneset(ns: &str, name: &str, replicas: &str) -> String {
    format!(
        "apiVersion: apps.kruise.io/v1alpha1\nkind: CloneSet\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n\
         \x20   metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n\
         \x20       image: nginx:1.27\n"
    )
}

#[tokio::test]
async fn crds_apply_explain_and_printer_columns() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    // Default flags: kubectl downloads OpenAPI and validates on the server.
    apply_crds(&cluster, &k).await;
    let explain = k.kubectl(&["explain", "clonesets.spec.updateStrategy"]).await;
    assert!(
        explain.ok().contains("KIND:       CloneSet") && explain.stdout.contains("partition"),
        "{}",
        explain.stdout
    );

    k.kubectl_stdin(&["apply", "-f", "-"], &cloneset(ns, "web", "3")).await.ok();
    let table = k.kubectl(&["get", "clonesets", "-n", ns]).await;
    let header = table.ok().lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>();
    assert_eq!(header[..4], ["NAME", "DESIRED", "UPDATED", "UPDATED_READY"], "{}", table.stdout);
    assert!(table.stdout.lines().nth(1).unwrap_or_default().starts_with("web "), "{}", table.stdout);
    // `-o wide` adds the priority columns.
    let wide = k.kubectl(&["get", "clonesets", "web", "-n", ns, "-o", "wide"]).await;
    let wide_header = wide.ok().lines().next().unwrap_or_default().to_string();
    assert!(wide_header.split_whitespace().count() > header.len(), "{wide_header} vs {header:?}");

    // Both served versions of a two-version kind.
    let sts =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/statefulset.yaml"))
            .unwrap()
            .replace("namespace: cache", &format!("namespace: {ns}"));
    k.kubectl_stdin(&["apply", "-f", "-"], &sts).await.ok();
    for v in ["v1alpha1", "v1beta1"] {
        let got = k
            .kubectl(&[
                "get",
                &format!("statefulsets.{v}.apps.kruise.io"),
                "redis",
                "-n",
                ns,
                "-o",
                "jsonpath={.apiVersion}",
            ])
            .await;
        assert_eq!(got.ok(), format!("apps.kruise.io/{v}"));
    }
    let short = k.kubectl(&["get", "asts", "-n", ns, "-o", "name"]).await;
    assert_eq!(short.ok().trim(), "statefulset.apps.kruise.io/redis");
    k.kubectl(&["delete", "clonesets", "web", "-n", ns]).await.ok();
    cluster.finish().await.unwrap();
}

/// Everyday verbs on a custom resource: scale through the scale subresource, label,
/// annotate, merge patch, describe, and explain in a version the kind serves.
#[tokio::test]
async fn cloneset_everyday_verbs() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    apply_crds(&cluster, &k).await;
    k.kubectl_stdin(&["apply", "-f", "-"], &cloneset(ns, "web", "2")).await.ok();
    let get = async |path: &str| {
        k.kubectl(&["get", "clonesets/web", "-n", ns, "-o", &format!("jsonpath={path}")])
            .await
            .ok()
            .to_string()
    };

    let scaled = k.kubectl(&["scale", "clonesets/web", "--replicas=3", "-n", ns]).await;
    assert_eq!(scaled.ok().trim(), "cloneset.apps.kruise.io/web scaled");
    assert_eq!(get("{.spec.replicas}").await, "3");
    // the precondition kubectl checks against the scale subresource's spec.replicas
    let stale =
        k.kubectl(&["scale", "clonesets/web", "--current-replicas=2", "--replicas=5", "-n", ns]).await;
    assert!(stale.err().contains("Expected replicas to be 2, was 3"), "{}", stale.stderr);
    assert_eq!(get("{.spec.replicas}").await, "3");

    k.kubectl(&["label", "clonesets", "web", "tier=web", "-n", ns]).await.ok();
    let selected = k.kubectl(&["get", "clonesets", "-l", "tier=web", "-n", ns, "-o", "name"]).await;
    assert_eq!(selected.ok().trim(), "cloneset.apps.kruise.io/web");
    let relabel = k.kubectl(&["label", "clonesets", "web", "tier=db", "-n", ns]).await;
    assert!(relabel.err().contains("'tier' already has a value (web)"), "{}", relabel.stderr);
    k.kubectl(&["label", "clonesets", "web", "tier=db", "--overwrite", "-n", ns]).await.ok();
    assert_eq!(get("{.metadata.labels.tier}").await, "db");

    k.kubectl(&["annotate", "clonesets", "web", "example.com/owner=team-a", "-n", ns]).await.ok();
    assert_eq!(get("{.metadata.annotations.example\\.com/owner}").await, "team-a");

    let patch = r#"{"spec":{"minReadySeconds":5,"template":{"metadata":{"labels":{"tier":"db"}}}}}"#;
    let patched = k.kubectl(&["patch", "clonesets", "web", "-n", ns, "--type", "merge", "-p", patch]).await;
    assert_eq!(patched.ok().trim(), "cloneset.apps.kruise.io/web patched");
    assert_eq!(get("{.spec.minReadySeconds}").await, "5");
    assert_eq!(get("{.spec.template.metadata.labels.tier}").await, "db");
    // a strategic merge patch, kubectl's default, is refused for custom resources
    let strategic = k.kubectl(&["patch", "clonesets", "web", "-n", ns, "-p", patch]).await;
    assert!(
        strategic.err().contains("application/strategic-merge-patch+json is not supported"),
        "{}",
        strategic.stderr
    );

    // describe lists the object's events (found by a field selector on involvedObject)
    let uid = get("{.metadata.uid}").await;
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1, namespace: {ns}}}\n\
         involvedObject: {{apiVersion: apps.kruise.io/v1alpha1, kind: CloneSet, name: web, namespace: {ns}, uid: {uid}}}\n\
         reason: SuccessfulCreate\nmessage: succeed to create pod web-x1\ntype: Normal\ncount: 1\n\
         firstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\n\
         source: {{component: cloneset-controller}}\n"
    );
    k.kubectl_stdin(&["apply", "-f", "-"], &event).await.ok();
    let described = k.kubectl(&["describe", "clonesets", "web", "-n", ns]).await;
    let text = described.ok();
    // (compared with runs of blanks as one: kubectl aligns the values in columns)
    let lines: Vec<String> =
        text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for line in [
        "Name: web",
        &format!("Namespace: {ns}"),
        "Labels: tier=db",
        "Annotations: example.com/owner: team-a",
        "API Version: apps.kruise.io/v1alpha1",
        "Kind: CloneSet",
        "Min Ready Seconds: 5",
        "Replicas: 3",
    ] {
        assert!(lines.iter().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let events = text.split_once("\nEvents:").map(|(_, e)| e).unwrap_or_default();
    assert!(
        events.contains("SuccessfulCreate") && events.contains("cloneset-controller"),
        "no event in:\n{text}"
    );

    let explained = k.kubectl(&["explain", "clonesets", "--api-version=apps.kruise.io/v1alpha1"]).await;
    let text = explained.ok();
    assert!(
        text.contains("GROUP:      apps.kruise.io")
            && text.contains("KIND:       CloneSet")
            && text.contains("VERSION:    v1alpha1")
            && text.contains("spec\t<Object>"),
        "{text}"
    );
    for v in ["v1alpha1", "v1beta1"] {
        let explained = k
            .kubectl(&[
                "explain",
                "statefulsets.spec.updateStrategy.rollingUpdate",
                &format!("--api-version=apps.kruise.io/{v}"),
            ])
            .await;
        let text = explained.ok();
        assert!(
            text.contains("GROUP:      apps.kruise.io")
                && text.contains(&format!("VERSION:    {v}"))
                && text.contains("podUpdatePolicy"),
            "{v}: {text}"
        );
    }
    let unserved = k.kubectl(&["explain", "clonesets", "--api-version=apps.kruise.io/v1beta1"]).await;
    assert!(unserved.code != 0, "CloneSet is served as v1alpha1 only: {}", unserved.stdout);

    k.kubectl(&["delete", "clonesets", "web", "-n", ns]).await.ok();
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn builtins_everyday_verbs() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    let shop = cluster.unique("shop");
    // Generators send protobuf.
    k.kubectl(&["create", "namespace", &shop]).await.ok();
    cluster.delete_at_end::<k8s_openapi::api::core::v1::Namespace>(&shop);
    k.kubectl(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "-n", ns]).await.ok();
    k.kubectl(&["create", "configmap", "conf", "--from-literal=a=1", "-n", ns]).await.ok();
    k.kubectl(&["create", "secret", "generic", "pw", "--from-literal=p=s3cr3t", "-n", ns]).await.ok();
    let secret = k.kubectl(&["get", "secret", "pw", "-n", ns, "-o", "jsonpath={.data.p}"]).await;
    assert_eq!(secret.ok(), "czNjcjN0");

    let deploy = k.kubectl(&["get", "deploy", "web", "-n", ns, "-o", "wide"]).await;
    let mut lines = deploy.ok().lines();
    assert!(lines.next().unwrap().contains("CONTAINERS   IMAGES"), "{}", deploy.stdout);
    assert!(lines.next().unwrap().contains("nginx:1.27"), "{}", deploy.stdout);
    let ns_table = k.kubectl(&["get", "namespace", &shop]).await;
    assert!(ns_table.ok().contains("Active"), "{}", ns_table.stdout);

    k.kubectl(&["label", "configmap", "conf", "tier=web", "-n", ns]).await.ok();
    k.kubectl(&["annotate", "configmap", "conf", "owner=team-a", "-n", ns]).await.ok();
    k.kubectl(&["patch", "configmap", "conf", "-n", ns, "--type=merge", "-p", r#"{"data":{"b":"2"}}"#])
        .await
        .ok();
    k.kubectl(&[
        "patch",
        "configmap",
        "conf",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/a"}]"#,
    ])
    .await
    .ok();
    let cm =
        k.kubectl(&["get", "configmap", "-l", "tier=web", "-n", ns, "-o", "jsonpath={.items[0].data}"]).await;
    assert_eq!(cm.ok(), r#"{"b":"2"}"#);
    let described = k.kubectl(&["describe", "configmap", "conf", "-n", ns]).await;
    assert!(
        described.ok().contains("owner: team-a") || described.stdout.contains("owner=team-a"),
        "{}",
        described.stdout
    );

    // Strategic merge: a container added by name next to the existing one.
    let add = r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#;
    k.kubectl(&["patch", "deployment", "web", "-n", ns, "-p", add]).await.ok();
    let names = k
        .kubectl(&[
            "get",
            "deploy",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ])
        .await;
    assert_eq!(names.ok(), "nginx sidecar");
    k.kubectl(&["scale", "deployment", "web", "--replicas=4", "-n", ns]).await.ok();
    let replicas = k.kubectl(&["get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}"]).await;
    assert_eq!(replicas.ok(), "4");
    k.kubectl(&["delete", "deployment", "web", "-n", ns]).await.ok();
    let gone = k.kubectl(&["get", "deployment", "web", "-n", ns]).await;
    assert!(gone.err().contains("NotFound"), "{}", gone.stderr);
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn server_side_apply_conflicts_diff_and_dry_run() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  namespace: {ns}\ndata: {data}\n")
    };
    k.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("{a: '1', b: '2'}")).await.ok();
    let managed =
        k.kubectl(&["get", "configmap", "conf", "-n", ns, "-o", "yaml", "--show-managed-fields"]).await;
    assert!(
        managed.ok().contains("manager: kubectl") && managed.stdout.contains("operation: Apply"),
        "{}",
        managed.stdout
    );
    // Another manager changes a field the applier owns: the next apply conflicts.
    k.kubectl(&["patch", "configmap", "conf", "-n", ns, "--type=merge", "-p", r#"{"data":{"a":"9"}}"#])
        .await
        .ok();
    let conflict = k.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("{a: '1', b: '2'}")).await;
    assert!(
        conflict.err().contains(r#"Apply failed with 1 conflict: conflict with "kubectl-patch""#)
            && conflict.stderr.contains(".data.a"),
        "{}",
        conflict.stderr
    );
    k.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &cm("{a: '1', b: '2'}"))
        .await
        .ok();
    // A field left out of the applied configuration, owned by nobody else, goes.
    k.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("{a: '1'}")).await.ok();
    let data = k.kubectl(&["get", "configmap", "conf", "-n", ns, "-o", "jsonpath={.data}"]).await;
    assert_eq!(data.ok(), r#"{"a":"1"}"#);

    // diff: a dry run on the server; nothing changes.
    let diff = k.kubectl_stdin(&["diff", "--server-side", "-f", "-"], &cm("{a: '5'}")).await;
    assert_eq!(diff.code, 1, "diff exits 1 when there are differences: {}{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("-  a: \"1\"") && diff.stdout.contains("+  a: \"5\""), "{}", diff.stdout);
    let dry = k
        .kubectl_stdin(
            &["apply", "--server-side", "--dry-run=server", "-f", "-", "-o", "jsonpath={.data.a}"],
            &cm("{a: '7'}"),
        )
        .await;
    assert_eq!(dry.ok(), "7");
    let data = k.kubectl(&["get", "configmap", "conf", "-n", ns, "-o", "jsonpath={.data.a}"]).await;
    assert_eq!(data.ok(), "1", "a dry run stores nothing");
    let same = k.kubectl_stdin(&["diff", "--server-side", "-f", "-"], &cm("{a: '1'}")).await;
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn wait_for_conditions_and_values() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    k.kubectl(&["create", "configmap", "flag", "-n", ns]).await.ok();
    let mut waiter = k
        .kubectl_spawn(&[
            "wait",
            "--for=jsonpath={.data.ready}=yes",
            "configmap/flag",
            "-n",
            ns,
            "--timeout=60s",
        ])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(waiter.try_wait().unwrap().is_none(), "kubectl wait returned before the value was set");
    k.kubectl(&["patch", "configmap", "flag", "-n", ns, "--type=merge", "-p", r#"{"data":{"ready":"yes"}}"#])
        .await
        .ok();
    let status = tokio::time::timeout(Duration::from_secs(30), waiter.wait()).await.unwrap().unwrap();
    assert!(status.success());
    apply_crds(&cluster, &k).await;
    let timeout = k.kubectl(&["wait", "--for=delete", "configmap/flag", "-n", ns, "--timeout=1s"]).await;
    assert!(timeout.err().contains("timed out"), "{}", timeout.stderr);
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn invalid_objects_refused_with_the_field_named() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    apply_crds(&cluster, &k).await;
    // A field the schema does not know: refused by the server's strict validation.
    let typo = cloneset(ns, "web", "2")
        .replace("image: nginx:1.27", "image: nginx:1.27\n        imagePullPolicyy: Always");
    let out = k
        .kubectl_stdin(&["apply", "-f", "-"], &typo.replace("  replicas: 2", "  replicas: 2\n  replicaz: 3"))
        .await;
    assert!(out.err().contains(r#"unknown field "spec.replicaz""#), "{}", out.stderr);
    // A value of the wrong type: refused by the CRD schema with the field named.
    let out = k.kubectl_stdin(&["apply", "-f", "-"], &cloneset(ns, "web", "many")).await;
    assert!(out.err().contains("spec.replicas"), "{}", out.stderr);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: {ns}\nspec:\n  containers:\n  - name: c\n    image: x\n    imagePullPolicyy: Always\n"
    );
    let out = k.kubectl_stdin(&["apply", "-f", "-"], &pod).await;
    assert!(out.err().contains(r#"unknown field "spec.containers[0].imagePullPolicyy""#), "{}", out.stderr);
    // With --validate=warn the field is dropped and the user warned.
    let out = k.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], &pod).await;
    out.ok();
    assert!(out.stderr.contains("Warning: unknown field"), "{}", out.stderr);
    cluster.finish().await.unwrap();
}

/// What kube-apiserver's decoder does to a body: a container's empty
/// `imagePullPolicy` defaulted from its image (`SetDefaults_Container`); unknown
/// fields dropped silently under `fieldValidation=Ignore` (`--validate=false`);
/// duplicate fields refused under `Strict` and warned about (last value kept) under
/// `Warn`.
#[tokio::test]
async fn decoder_defaults_and_field_validation() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    let digest = "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31";
    // (a scheduler no cluster runs: on a real cluster the pod stays pending, untouched)
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pulls\n  namespace: {ns}\nspec:\n  \
         schedulerName: stevedore-e2e-unscheduled\n  initContainers:\n  - {{name: i, image: 'busybox@{digest}'}}\n  \
         containers:\n  - {{name: a, image: 'nginx:latest@{digest}'}}\n  - {{name: b, image: 'nginx:1.27'}}\n  \
         - {{name: c, image: nginx}}\n  - {{name: d, image: 'registry.example.com:5000/nginx'}}\n  \
         - {{name: e, image: 'nginx:latest', imagePullPolicy: Never}}\n"
    );
    k.kubectl_stdin(&["apply", "-f", "-"], &pod).await.ok();
    let policies = async |list: &str| {
        let path = format!("jsonpath={{.spec.{list}[*].imagePullPolicy}}");
        k.kubectl(&["get", "pod", "pulls", "-n", ns, "-o", &path]).await.ok().to_string()
    };
    assert_eq!(policies("containers").await, "Always IfNotPresent Always Always Never");
    assert_eq!(policies("initContainers").await, "IfNotPresent");

    // Ignore: the unknown fields go, without a word.
    let typo = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: quiet\n  namespace: {ns}\n  colour: red\n\
         data: {{a: '1'}}\nbogus: 1\n"
    );
    let quiet = k.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], &typo).await;
    assert_eq!(quiet.ok().trim(), "configmap/quiet created");
    assert!(!quiet.stderr.contains("Warning"), "{}", quiet.stderr);
    let stored = k.kubectl(&["get", "configmap", "quiet", "-n", ns, "-o", "json"]).await;
    let stored: serde_json::Value = serde_json::from_str(stored.ok()).unwrap();
    assert!(stored.get("bogus").is_none() && stored["metadata"].get("colour").is_none(), "{stored}");
    // the same under Warn (kubectl's --validate=warn) warns
    let warned = k
        .kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], &typo.replace("name: quiet", "name: loud"))
        .await;
    warned.ok();
    assert!(warned.stderr.contains(r#"Warning: unknown field "bogus""#), "{}", warned.stderr);

    // Duplicate fields, in a body sent as written (`create --raw`).
    let url = |query: &str| format!("/api/v1/namespaces/{ns}/configmaps{query}");
    let twice = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"a":"1"}},"data":{{"b":"2"}}}}"#
        )
    };
    let strict = k
        .kubectl_stdin(&["create", "--raw", &url("?fieldValidation=Strict"), "-f", "-"], &twice("strict"))
        .await;
    assert!(strict.err().contains(r#"strict decoding error: duplicate field "data""#), "{}", strict.stderr);
    let gone = k.kubectl(&["get", "configmap", "strict", "-n", ns]).await;
    assert!(gone.err().contains("NotFound"), "{}", gone.stderr);
    let warn =
        k.kubectl_stdin(&["create", "--raw", &url("?fieldValidation=Warn"), "-f", "-"], &twice("warn")).await;
    warn.ok();
    assert!(warn.stderr.contains(r#"duplicate field "data""#), "{}", warn.stderr);
    let data = k.kubectl(&["get", "configmap", "warn", "-n", ns, "-o", "jsonpath={.data}"]).await;
    assert_eq!(data.ok(), r#"{"b":"2"}"#, "the last of the duplicates is kept");
    let ignore = k
        .kubectl_stdin(&["create", "--raw", &url("?fieldValidation=Ignore"), "-f", "-"], &twice("ignore"))
        .await;
    ignore.ok();
    assert!(!ignore.stderr.contains("Warning"), "{}", ignore.stderr);
    cluster.finish().await.unwrap();
}

const CHART: &[(&str, &str)] = &[
    ("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n"),
    ("values.yaml", "greeting: hello\nreplicas: 2\n"),
    (
        "templates/conf.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-conf\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    ),
    (
        "templates/web.yaml",
        "apiVersion: apps.kruise.io/v1alpha1\nkind: CloneSet\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27\n",
    ),
];

#[tokio::test]
async fn helm_install_upgrade_rollback_uninstall() {
    let (cluster, k) = start().await;
    let ns = cluster.namespace();
    apply_crds(&cluster, &k).await;
    let chart = k.dir().join("chart");
    for (path, text) in CHART {
        let p = chart.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let chart = chart.to_string_lossy().into_owned();
    let get = async |what: &str, path: &str| {
        k.kubectl(&["get", what, "-n", ns, "-o", &format!("jsonpath={path}")]).await.ok().to_string()
    };
    k.helm(&["install", "shop", &chart, "-n", ns, "--wait=false"]).await.ok();
    assert_eq!(get("configmap/shop-conf", "{.data.greeting}").await, "hello");
    assert_eq!(get("clonesets/shop-web", "{.spec.replicas}").await, "2");
    let managed = get("configmap/shop-conf", "{.metadata.managedFields[*].manager}").await;
    assert!(managed.contains("helm"), "helm applies server-side: {managed}");

    k.helm(&["upgrade", "shop", &chart, "-n", ns, "--set", "greeting=bye", "--set", "replicas=3"]).await.ok();
    assert_eq!(get("configmap/shop-conf", "{.data.greeting}").await, "bye");
    assert_eq!(get("clonesets/shop-web", "{.spec.replicas}").await, "3");
    k.helm(&["rollback", "shop", "1", "-n", ns]).await.ok();
    assert_eq!(get("configmap/shop-conf", "{.data.greeting}").await, "hello");
    let history = k.helm(&["history", "shop", "-n", ns]).await;
    assert_eq!(history.ok().lines().count(), 4, "three revisions: {}", history.stdout);
    assert!(history.stdout.contains("Rollback to 1"), "{}", history.stdout);

    k.helm(&["uninstall", "shop", "-n", ns]).await.ok();
    let left = k.kubectl(&["get", "configmaps,clonesets,secrets", "-n", ns, "-o", "name"]).await;
    assert!(!left.ok().contains("shop"), "everything the release made is gone: {}", left.stdout);
    cluster.finish().await.unwrap();
}

/// `kubectl logs` of a pod a simulated kubelet runs on the test bed's containerd.
#[tokio::test]
async fn logs_of_a_pod_on_containerd() {
    use stevedore_tests::{kubelet, scheduler::Scheduler, testbed::TestBed};
    let services = Services::default();
    let opts = Options {
        hooks: Hooks::webhooks(services.clone()),
        anonymous: Some(UserInfo::admin()),
        ..Options::default()
    };
    let Some(cluster) =
        TestCluster::simulator_only_with("the pod runs on the test bed's containerd", opts, services)
            .await
            .unwrap()
    else {
        return;
    };
    let k = Clients::for_cluster(&cluster).await.unwrap();
    let ns = cluster.namespace();
    let bed = TestBed::start().await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let node = cluster.unique("node");
    let mut cfg =
        kubelet::Config::new(&node, Some(bed.containerd_socket().to_owned()), bed.dir().join("kubelet"));
    cfg.sync_interval = Duration::from_millis(300);
    let _kubelet = kubelet::Kubelet::start(cfg, cluster.client(), stop.clone()).await.unwrap();
    let _scheduler = Scheduler::start(cluster.client(), stop.clone());
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\n  namespace: {ns}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n    \
         imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo hello; echo world; sleep 2; echo later; sleep 3600']\n",
        image = bed.image("app:v1")
    );
    k.kubectl_stdin(&["apply", "-f", "-"], &pod).await.ok();
    k.kubectl(&["wait", "--for=condition=Ready", "pod/talker", "-n", ns, "--timeout=120s"]).await.ok();
    let logs = until("the first lines in the log", Duration::from_secs(30), async || {
        let out = k.kubectl(&["logs", "talker", "-n", ns]).await;
        Ok(out.stdout.starts_with("hello\nworld\n").then_some(out))
    })
    .await
    .unwrap();
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let tail = k.kubectl(&["logs", "talker", "-n", ns, "--tail=1", "--timestamps"]).await;
    assert!(tail.ok().lines().count() == 1 && tail.stdout.contains("Z "), "{}", tail.stdout);
    // Follow: the line written later arrives on the open stream.
    let mut follow = k.kubectl_spawn(&["logs", "-f", "talker", "-n", ns, "-c", "app"]).unwrap();
    let mut out = follow.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains("later") {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(&mut out, &mut buf))
            .await
            .expect("`later` followed within 30 s")
            .unwrap();
        assert!(n > 0, "the followed log ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(follow);
    let bad = k.kubectl(&["logs", "talker", "-n", ns, "-c", "nope"]).await;
    assert!(bad.err().contains("container nope is not valid for pod talker"), "{}", bad.stderr);
    k.kubectl(&["delete", "pod", "talker", "-n", ns, "--wait=true", "--timeout=60s"]).await.ok();
    stop.cancel();
    cluster.finish().await.unwrap();
}

/// The `stevedore-apiserver` binary as a user starts it, with the real plug-ins: the
/// real controller behind a Service whose Endpoints kubectl points at its port, as a
/// cluster's endpoints controller points a Service at pods; an invalid CloneSet is then
/// refused by the controller's webhook, a valid one defaulted by it.
#[tokio::test]
async fn the_binary_reaches_webhooks_through_endpoints() {
    use stevedore_tests::controller_process::{ControllerProcess, free_addr};
    if stevedore_tests::cluster::skipped_on_real_cluster("it tests the simulator's binary").unwrap() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_stevedore-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--anonymous-admin", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut url = String::new();
    let mut stdout = tokio::io::BufReader::new(server.stdout.take().unwrap());
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut url).await.unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let k = Clients::for_kubeconfig(&kubeconfig).await.unwrap();
    k.kubectl(&["apply", "-f", CRDS]).await.ok();
    k.kubectl(&["create", "namespace", "stevedore-system"]).await.ok();
    k.kubectl(&["create", "namespace", "shop"]).await.ok();
    let controller = ControllerProcess::start(
        dir.path(),
        &kubeconfig,
        free_addr().unwrap(),
        "c1",
        &["--resync-seconds", "1"],
    )
    .await
    .unwrap();
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: stevedore-webhook-service\n  namespace: stevedore-system\n\
         spec:\n  ports:\n  - {{name: https, port: 443, targetPort: 9443}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: stevedore-webhook-service\n  namespace: stevedore-system\n\
         subsets:\n- addresses: [{{ip: 127.0.0.1}}]\n  ports: [{{name: https, port: {}}}]\n",
        controller.listen().port()
    );
    k.kubectl_stdin(&["apply", "-f", "-"], &service).await.ok();
    until("the leader to publish its webhook configurations", Duration::from_secs(30), async || {
        let out = k
            .kubectl(&[
                "get",
                "validatingwebhookconfigurations",
                "-o",
                "jsonpath={.items[*].webhooks[0].clientConfig.caBundle}",
            ])
            .await;
        Ok((out.code == 0 && !out.stdout.trim().is_empty()).then_some(()))
    })
    .await
    .unwrap();
    let refused = k.kubectl_stdin(&["apply", "-f", "-"], &cloneset("shop", "web", "-1")).await;
    assert!(
        refused.err().contains("admission webhook") && refused.stderr.contains("spec.replicas"),
        "{}",
        refused.stderr
    );
    k.kubectl_stdin(&["apply", "-f", "-"], &cloneset("shop", "web", "2")).await.ok();
    let defaulted = k
        .kubectl(&["get", "cloneset", "web", "-n", "shop", "-o", "jsonpath={.spec.updateStrategy.type}"])
        .await;
    assert_eq!(defaulted.ok(), "ReCreate", "the controller's defaulting webhook ran");
    drop(controller);
    server.kill().await.unwrap();
}

/// The install manifests apply as a user applies them (kubectl's own validation
/// against the served OpenAPI, strict field validation on the server).
#[tokio::test]
async fn install_manifests_apply() {
    let services = Services::default();
    let opts = Options {
        hooks: Hooks::webhooks(services.clone()),
        anonymous: Some(UserInfo::admin()),
        ..Options::default()
    };
    let reason = "it installs deploy/controller.yaml and deploy/agent.yaml (cluster-wide RBAC, the \
                  stevedore-system namespace, a DaemonSet on every node)";
    let Some(cluster) = TestCluster::simulator_only_with(reason, opts, services).await.unwrap() else {
        return;
    };
    let k = Clients::for_cluster(&cluster).await.unwrap();
    k.kubectl(&["create", "namespace", "stevedore-system"]).await.ok();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/");
    for file in ["controller.yaml", "agent.yaml"] {
        let path = format!("{deploy}{file}");
        let out = k.kubectl(&["apply", "--validate=strict", "-f", &path]).await;
        assert!(out.ok().contains("created"), "{file}: {}", out.stdout);
    }
    let ds =
        k.kubectl(&["get", "daemonset", "stevedore-agent", "-n", "stevedore-system", "-o", "name"]).await;
    assert_eq!(ds.ok().trim(), "daemonset.apps/stevedore-agent");
    cluster.finish().await.unwrap();
}
