//! The node agents' guard, with the real controller binary serving its webhooks
//! against the simulated API server and real bearer tokens: the agent's service
//! account with a pod-bound token of node n1 (`authentication.kubernetes.io/node-name`)
//! writes n1's pods, NodeState, NodeImage, ContainerRecreateRequests and heartbeat
//! Lease and is refused n2's; the same service account without the node extra is refused with a
//! message that says why; a systemd-installed agent (`stevedore:agent:<node>`) is
//! held to its node; the cluster admin is not restricted, and with the controller
//! down its writes still go through while the agent's fail closed (the webhook's
//! `matchConditions` and `failurePolicy: Fail`). One refusal goes through
//! kubectl (which sends no token over plain HTTP: the simulator's anonymous user is
//! the agent of n1 here).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::core::v1::{Node, Pod},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
};
use serde_json::{Value, json};
use stevedore_tests::{
    apiserver::{ADMIN_TOKEN, Hooks, Options, Tokens, UserInfo},
    clients::Clients,
    cluster::{Services, TestCluster},
    controller_process::serving_webhooks,
    pod_objects,
    wait::until,
};

const WAIT: Duration = Duration::from_secs(20);

const SERVICE_ACCOUNT: &str = "system:serviceaccount:stevedore-system:stevedore-agent";
const AGENT_N1: &str = "agent-n1-token";
const UNBOUND: &str = "agent-unbound-token";
const SYSTEMD_N2: &str = "agent-systemd-n2-token";

fn service_account(node: Option<&str>) -> UserInfo {
    let user = UserInfo::agent_service_account(node);
    assert_eq!(user.username, SERVICE_ACCOUNT);
    user
}

fn systemd_agent(node: &str) -> UserInfo {
    UserInfo {
        username: format!("stevedore:agent:{node}"),
        uid: format!("agent-{node}"),
        groups: vec!["system:authenticated".into()],
        extra: BTreeMap::new(),
    }
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", kind), plural)
}

fn node_states(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &resource("stevedore.dev", "NodeState", "nodestates"))
}

fn node_images(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &resource("apps.kruise.io", "NodeImage", "nodeimages"))
}

fn crrs(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &resource("apps.kruise.io", "ContainerRecreateRequest", "containerrecreaterequests"),
    )
}

/// Creates node `name` and reports it Ready, as its kubelet would.
async fn ready_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    nodes.create(&PostParams::default(), &serde_json::from_value(node).unwrap()).await.unwrap();
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

/// The API error of a refused write: its code and message.
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, message: &str) {
    let (code, got) = refusal(result);
    assert_eq!(code, 403, "{got}");
    assert!(got.contains("vnodeagent.stevedore.dev"), "names the webhook: {got}");
    assert!(got.contains(message), "{got}\nshould contain: {message}");
}

async fn status_patch(
    api: &Api<DynamicObject>,
    name: &str,
    status: Value,
) -> Result<DynamicObject, kube::Error> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_write_only_their_own_nodes_objects() {
    let services = Services::default();
    let mut tokens = Tokens::default();
    tokens.insert(ADMIN_TOKEN, UserInfo::admin());
    tokens.insert(AGENT_N1, service_account(Some("n1")));
    tokens.insert(UNBOUND, service_account(None));
    tokens.insert(SYSTEMD_N2, systemd_agent("n2"));
    let opts = Options {
        hooks: Hooks::webhooks(services.clone()),
        tokens,
        anonymous: Some(service_account(Some("n1"))),
        ..Options::default()
    };
    let Some(cluster) = TestCluster::simulator_only_with(
        "it installs the project's CRDs and webhooks and authenticates with the simulator's tokens",
        opts,
        services.clone(),
    )
    .await
    .unwrap() else {
        return;
    };
    let admin: Client = cluster.client();
    let server = cluster.simulator().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
    let mut controller = serving_webhooks(&admin, &services, &kubeconfig, dir.path()).await.unwrap();
    let log = || controller.log_tail(30);
    let ns = cluster.namespace().to_owned();
    let agent = server.client_as(AGENT_N1).await.unwrap();
    let unbound = server.client_as(UNBOUND).await.unwrap();
    let systemd = server.client_as(SYSTEMD_N2).await.unwrap();

    // The admin sets the scene, unrestricted: a pod on n2, both nodes' NodeState
    // and NodeImage, and a ContainerRecreateRequest for a pod on each node.
    let on_n2 = pod_objects::running(&ns, "on-n2", "n2", &["app"]);
    pod_objects::create(&admin, &on_n2).await.unwrap_or_else(|e| panic!("{e}\n{}", log()));
    pod_objects::create(&admin, &pod_objects::running(&ns, "web-n1", "n1", &["app"])).await.unwrap();
    for node in ["n1", "n2"] {
        ready_node(&admin, node).await;
        cluster.delete_at_end::<Node>(node);
        cluster.delete_at_end::<stevedore_proto::crd::node_state::NodeState>(node);
        // the controller keeps a NodeState per node and a NodeImage per Ready node
        until(&format!("NodeState {node}"), WAIT, async || Ok(node_states(&admin).get_opt(node).await?))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log()));
        until(&format!("NodeImage {node}"), WAIT, async || Ok(node_images(&admin).get_opt(node).await?))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    }
    for (name, pod) in [("crr-n1", "web-n1"), ("crr-n2", "on-n2")] {
        let crr = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
                         "metadata": {"name": name, "namespace": ns},
                         "spec": {"podName": pod, "containers": [{"name": "app"}]}});
        crrs(&admin, &ns)
            .create(&PostParams::default(), &serde_json::from_value(crr).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    }

    // The agent of n1: its own pods, created, updated (status too) and deleted.
    let pods: Api<Pod> = Api::namespaced(agent.clone(), &ns);
    let mine = pod_objects::running(&ns, "mine", "n1", &["app"]);
    pod_objects::create(&agent, &mine).await.unwrap_or_else(|e| panic!("{e}\n{}", log()));
    pods.patch(
        "mine",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await
    .unwrap();
    pods.delete("mine", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert!(pods.get_opt("mine").await.unwrap().is_none(), "deleted");

    // ... and n2's refused: create, update, status update and delete.
    let theirs = pod_objects::running(&ns, "theirs", "n2", &["app"]);
    assert_refused(
        pod_objects::create(&agent, &theirs).await.map_err(|e| e.downcast::<kube::Error>().unwrap()),
        &format!("agent of node n1 may not create pod {ns}/theirs: it is bound to node n2"),
    );
    assert_refused(
        pods.patch(
            "on-n2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await,
        &format!("agent of node n1 may not update pod {ns}/on-n2: it is bound to node n2"),
    );
    assert_refused(
        pods.patch_status(
            "on-n2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Failed"}})),
        )
        .await,
        &format!("agent of node n1 may not update the status of pod {ns}/on-n2: it is bound to node n2"),
    );
    assert_refused(
        pods.delete("on-n2", &DeleteParams::default()).await,
        &format!("agent of node n1 may not delete pod {ns}/on-n2: it is bound to node n2"),
    );

    // The same refusal as kubectl shows it (kubectl's user is the agent of n1 here).
    let kubectl_config = dir.path().join("kubectl-kubeconfig");
    server.write_kubeconfig(&kubectl_config, "").unwrap();
    let kubectl = Clients::for_kubeconfig(&kubectl_config).await.unwrap();
    let out = kubectl.kubectl(&["delete", "pod", "on-n2", "-n", &ns, "--wait=false"]).await;
    let stderr = out.err();
    assert!(stderr.contains("Error from server (Forbidden)"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "admission webhook \"vnodeagent.stevedore.dev\" denied the request: agent of node n1 may not delete \
             pod {ns}/on-n2: it is bound to node n2"
        )),
        "{stderr}"
    );
    let still = Api::<Pod>::namespaced(admin.clone(), &ns).get("on-n2").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_none(), "the refused deletes left it alone");

    // NodeState and NodeImage: n1's status, not n2's.
    status_patch(&node_states(&agent), "n1", json!({"daemonSetCount": 1})).await.unwrap();
    status_patch(&node_images(&agent), "n1", json!({"desired": 0})).await.unwrap();
    assert_refused(
        status_patch(&node_states(&agent), "n2", json!({"daemonSetCount": 1})).await,
        "agent of node n1 may not update the status of nodestate n2: it is node n2's",
    );
    assert_refused(
        status_patch(&node_images(&agent), "n2", json!({"desired": 0})).await,
        "agent of node n1 may not update the status of nodeimage n2: it is node n2's",
    );
    assert_refused(
        node_states(&agent).delete("n2", &DeleteParams::default()).await,
        "agent of node n1 may not delete nodestate n2: it is node n2's",
    );

    // Heartbeat Leases: agent-n1, not agent-n2 (nor any other Lease).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(agent.clone(), &ns);
    let lease = |name: &str| {
        serde_json::from_value::<k8s_openapi::api::coordination::v1::Lease>(json!({
            "metadata": {"name": name}, "spec": {"holderIdentity": "n1"}}))
        .unwrap()
    };
    leases.create(&Default::default(), &lease("agent-n1")).await.unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_refused(
        leases.create(&Default::default(), &lease("agent-n2")).await,
        &format!("agent of node n1 may not create lease {ns}/agent-n2: it is node n2's heartbeat"),
    );
    // and as kubectl shows it
    let manifest = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: agent-n2\n  namespace: {ns}\n\
         spec:\n  holderIdentity: n1\n"
    );
    let applied = kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest).await;
    let stderr = applied.err();
    assert!(
        stderr.contains(&format!(
            "admission webhook \"vnodeagent.stevedore.dev\" denied the request: agent of node n1 may not create \
             lease {ns}/agent-n2: it is node n2's heartbeat"
        )),
        "{stderr}"
    );
    assert_refused(
        leases.create(&Default::default(), &lease("leader")).await,
        &format!(
            "agent of node n1 may not create lease {ns}/leader: an agent writes only its own heartbeat Lease, \
             agent-n1"
        ),
    );

    // ContainerRecreateRequests: those labelled for n1 (by the controller's
    // mutating webhook, from the pod), not n2's.
    status_patch(&crrs(&agent, &ns), "crr-n1", json!({"phase": "Recreating"}))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_refused(
        status_patch(&crrs(&agent, &ns), "crr-n2", json!({"phase": "Recreating"})).await,
        &format!(
            "agent of node n1 may not update the status of containerrecreaterequest {ns}/crr-n2: it is labelled \
             crr.apps.kruise.io/node-name=n2"
        ),
    );

    // A systemd-installed agent of n2 is held to n2.
    status_patch(&node_states(&systemd), "n2", json!({"daemonSetCount": 2})).await.unwrap();
    assert_refused(
        status_patch(&node_states(&systemd), "n1", json!({"daemonSetCount": 2})).await,
        "agent of node n2 may not update the status of nodestate n1: it is node n1's",
    );

    // The service account with a token bound to no pod: refused, saying why.
    let (code, message) =
        refusal(status_patch(&node_states(&unbound), "n1", json!({"daemonSetCount": 3})).await);
    assert_eq!(code, 403, "{message}");
    for part in [
        "may not update the status of nodestate n1",
        "carries no authentication.kubernetes.io/node-name",
        "not bound to a pod",
        "older than 1.30",
        "stevedore:agent:<node>",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let stored = node_states(&admin).get("n1").await.unwrap();
    assert_eq!(stored.data["status"]["daemonSetCount"], 1, "the agent's write, not the refused one");

    // The admin is not restricted.
    status_patch(&node_states(&admin), "n2", json!({"daemonSetCount": 5})).await.unwrap();
    Api::<Pod>::namespaced(admin.clone(), &ns)
        .delete("on-n2", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .unwrap();

    // With the controller down, the match conditions keep the admin's pod writes
    // away from the webhook, while the agent's fail closed (failurePolicy: Fail).
    controller.stop().await.unwrap();
    let after = pod_objects::running(&ns, "after", "n1", &["app"]);
    pod_objects::create(&admin, &after).await.expect("the admin's write never reaches the webhook");
    let (code, message) = refusal(
        pods.patch(
            "after",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await,
    );
    assert_eq!(code, 500, "{message}");
    assert!(message.contains("failed calling webhook \"vnodeagent.stevedore.dev\""), "{message}");

    cluster.finish().await.unwrap();
}
