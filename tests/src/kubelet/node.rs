//! The Node object and its Lease in `kube-node-lease`, as kubelet's node status
//! manager and lease controller keep them: the Lease renewed every
//! [`Config::lease_interval`], the Ready condition's heartbeat every
//! [`Config::node_status_interval`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Namespace, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Config, NodeCtx, Result};

/// The lease namespace.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// kubelet's lease duration.
pub const LEASE_SECONDS: i32 = 40;
/// The version this simulator reports.
pub const KUBELET_VERSION: &str = "v1.33.0-stevedore-sim";

fn condition(type_: &str, ok: bool, reason: &str, message: &str, now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The Node as kubelet registers it.
pub fn node_object(cfg: &Config, now: Timestamp) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), cfg.node_name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), "amd64".to_owned()),
    ]);
    labels.extend(cfg.labels.clone());
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cfg.cpu.clone())),
        ("memory".to_owned(), Quantity(cfg.memory.clone())),
        ("pods".to_owned(), Quantity(cfg.max_pods.to_string())),
        ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: Some(node_status(cfg, now, resources)),
    }
}

fn node_status(cfg: &Config, now: Timestamp, resources: BTreeMap<String, Quantity>) -> NodeStatus {
    let runtime = if cfg.cri_socket.is_some() { "containerd://1.6" } else { "hollow://0" };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            ),
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now),
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            ),
            condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now),
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".to_owned(), address: cfg.host_ip.clone() },
            NodeAddress { type_: "Hostname".to_owned(), address: cfg.node_name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(cfg.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_owned(),
            boot_id: String::new(),
            container_runtime_version: runtime.to_owned(),
            kernel_version: String::new(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id: String::new(),
            operating_system: "linux".to_owned(),
            os_image: "Stevedore simulated node".to_owned(),
            system_uuid: String::new(),
            swap: None,
        }),
        ..Default::default()
    }
}

fn lease_object(cfg: &Config, node_uid: Option<String>, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Node".to_owned(),
                    name: cfg.node_name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(cfg.node_name.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Creates (or takes over) the Node, writes its status, and creates the Lease.
pub async fn register(cfg: &Config, client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let want = node_object(cfg, Timestamp::now());
    let created = match nodes.create(&PostParams::default(), &want).await {
        Ok(n) => n,
        Err(e) if is_conflict(&e) => {
            // A restart: keep the object, refresh labels, taints and status.
            let mut n = nodes.get(&cfg.node_name).await?;
            n.metadata.labels = want.metadata.labels.clone();
            n.spec = want.spec.clone();
            nodes.replace(&cfg.node_name, &PostParams::default(), &n).await?
        }
        Err(e) => return Err(e.into()),
    };
    // Some API servers drop status on create: write it through the subresource.
    let mut n = created;
    n.status = want.status.clone();
    let node = nodes.replace_status(&cfg.node_name, &PostParams::default(), &n).await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(LEASE_NAMESPACE.to_owned()), ..Default::default() },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(e) if is_conflict(&e) => {}
        Err(e) => debug!(%e, "creating the lease namespace"),
    }
    renew_lease(cfg, client, node.metadata.uid).await
}

async fn renew_lease(cfg: &Config, client: &kube::Client, node_uid: Option<String>) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let want = lease_object(cfg, node_uid, Timestamp::now());
    match leases.get_opt(&cfg.node_name).await? {
        None => match leases.create(&PostParams::default(), &want).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(mut l) => {
            l.spec = want.spec;
            leases.replace(&cfg.node_name, &PostParams::default(), &l).await?;
            Ok(())
        }
    }
}

/// Refreshes the Ready heartbeat (and puts the node back to Ready if someone changed
/// it).
async fn refresh_status(cfg: &Config, client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut n = nodes.get(&cfg.node_name).await?;
    let now = Timestamp::now();
    let status = n.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) => {
            if c.status != "True" {
                *c = condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now);
            }
            c.last_heartbeat_time = Some(Time(now));
        }
        None => {
            conditions.push(condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now))
        }
    }
    nodes.replace_status(&cfg.node_name, &PostParams::default(), &n).await?;
    Ok(())
}

/// Runs the Lease and the node-status loops until `shutdown`.
pub(crate) async fn heartbeat(ctx: Arc<NodeCtx>, shutdown: CancellationToken) {
    let cfg = &ctx.cfg;
    let mut lease = tokio::time::interval(cfg.lease_interval);
    let mut status = tokio::time::interval(cfg.node_status_interval);
    lease.tick().await;
    status.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = lease.tick() => {
                if let Err(error) = renew_lease(cfg, &ctx.client, None).await {
                    warn!(%error, "renewing the node lease");
                }
            }
            _ = status.tick() => {
                if let Err(error) = refresh_status(cfg, &ctx.client).await {
                    warn!(%error, "refreshing node status");
                }
            }
        }
    }
}

/// The heartbeat of many hollow nodes, one request at a time each round.
pub async fn heartbeat_many(cfgs: Vec<Config>, client: kube::Client, shutdown: CancellationToken) {
    let Some(first) = cfgs.first() else { return };
    let mut lease = tokio::time::interval(first.lease_interval);
    let mut status = tokio::time::interval(first.node_status_interval);
    lease.tick().await;
    status.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = lease.tick() => for cfg in &cfgs {
                if let Err(error) = renew_lease(cfg, &client, None).await {
                    warn!(%error, node = %cfg.node_name, "renewing the node lease");
                }
            },
            _ = status.tick() => for cfg in &cfgs {
                if let Err(error) = refresh_status(cfg, &client).await {
                    warn!(%error, node = %cfg.node_name, "refreshing node status");
                }
            },
        }
    }
}
