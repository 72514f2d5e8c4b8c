//! The agent's heartbeat: a Lease in its namespace, `agent-<node>`, renewed every
//! `--heartbeat-seconds`. The controller lists these Leases every few seconds to tell
//! a silent agent; nobody watches them. The heartbeat used to be a NodeState status
//! write, and every such write reached the controller's watch of every NodeState and
//! the node's own agent as an event: with 1,000 idle nodes, fifty events a second.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use stevedore_proto::keys;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Whether the heartbeat Lease was renewed the last time it was due. While it is
/// not (the Lease cannot be written: RBAC or the node guard not yet upgraded, the
/// namespace missing), the DaemonSet runner beats through its NodeState report as it
/// used to, so that the controller never takes a live agent for a silent one.
#[derive(Clone, Debug, Default)]
pub struct Beating(Arc<AtomicBool>);

impl Beating {
    /// Whether the Lease is being renewed.
    pub fn renewing(&self) -> bool {
        self.0.load(Relaxed)
    }
}

/// Renews the Lease of `node`'s agent in `namespace` every `every` until `shutdown`,
/// telling `beating` whether it can.
pub async fn run(
    node: String,
    namespace: String,
    client: Client,
    every: Duration,
    beating: Beating,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let name = keys::agent_lease(&node);
    let mut failing = false;
    loop {
        let renewed = renew(&api, &name, &node, every).await;
        beating.0.store(renewed.is_ok(), Relaxed);
        match renewed {
            Ok(()) if failing => {
                info!(lease = %name, "heartbeat renewed again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                warn!(
                    lease = %name, %namespace, %error,
                    "cannot renew the heartbeat Lease; beating through the NodeState status meanwhile"
                );
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One renewal: a merge patch of the renew time, or the Lease created when missing.
async fn renew(api: &Api<Lease>, name: &str, node: &str, every: Duration) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    // a Lease lasts three beats, as the controller's default silence limit does
    let duration = i32::try_from(every.as_secs().saturating_mul(3)).unwrap_or(i32::MAX).max(1);
    let patch = json!({"spec": {"holderIdentity": node, "renewTime": now, "leaseDurationSeconds": duration}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some([(keys::AGENT_HEARTBEAT.to_owned(), "true".to_owned())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_owned()),
                    renew_time: Some(now),
                    lease_duration_seconds: Some(duration),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // another renewal created it meanwhile: the next one patches it
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
