//! BroadcastJob pods on this node. The agent watches the jobs cluster-wide, its own
//! Node, its own NodeState and the pods bound to its node ([`crate::node_local`]); it
//! decides locally whether each job targets the node
//! (`proto::placement::broadcast_job`, the function the controller counts with), and
//! creates its pod here once, or deletes it while it runs, as the controller's permit
//! in `NodeState.spec.broadcastJobs` allows ([`plan`]). It reports each job's pod
//! (phase, restarts) in `NodeState.status.broadcastJobs`, at most once per status
//! interval; the heartbeat is the DaemonSet runner's ([`crate::daemons`]).
//!
//! Pods are created as OpenKruise creates them: `generateName: <job>-`, the template's
//! labels plus `broadcastjob-name` and `broadcastjob-controller-uid`, its annotations
//! and finalizers, the job as controlling owner (blocking its deletion), and a
//! required node affinity naming this node; `spec.nodeName` names this node too
//! (the agent binds its own pods).

pub mod plan;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        broadcast_job::{self, v1beta1::BroadcastJob},
        node_state::{BroadcastJobNodeStatus, NodeState, WorkloadRef, workload_key},
    },
    keys, placement,
};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::node_local::{self, RESYNC, Stores, controlled_by};

/// How long a created pod may take to appear in the watch before it is created again.
const CREATE_EXPECTATION: Duration = Duration::from_secs(30);

/// How the agent runs the node's BroadcastJob pods.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node.
    pub node_name: String,
    /// The least time between two NodeState status writes.
    pub status_interval: Duration,
}

/// The node's BroadcastJob pods.
pub struct Broadcast {
    settings: Settings,
    client: Client,
    /// Per job uid: when a pod was created that the watch has not shown yet, and its
    /// name.
    creating: HashMap<String, (Instant, String)>,
    /// Per job uid: why the last create failed.
    failures: HashMap<String, String>,
    /// When the status was last written.
    written: Option<Instant>,
    /// The jobs read: a job found is kept (its pod template is what its pod here is
    /// made of; a new template is a new job for OpenKruise too), one found gone is
    /// read again after a resync.
    jobs: node_local::Workloads<BroadcastJob>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast").field("node", &self.settings.node_name).finish_non_exhaustive()
    }
}

/// Why the job's template cannot run: its `restartPolicy` must be `Never` or
/// `OnFailure` (the webhook refuses others; the agent checks in case it was off).
pub fn template_error(job: &BroadcastJob) -> Option<String> {
    let policy =
        job.spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    (!matches!(policy, "Never" | "OnFailure")).then(|| {
        format!("spec.template.spec.restartPolicy: Unsupported value: {policy:?}: must be Never or OnFailure")
    })
}

/// The pod the agent creates for `job` on `node`.
pub fn new_pod(job: &BroadcastJob, node: &str) -> Pod {
    let labels = [
        (keys::BROADCAST_JOB_NAME.to_owned(), job.name_any()),
        (keys::BROADCAST_JOB_CONTROLLER_UID.to_owned(), job.uid().unwrap_or_default()),
    ];
    // OpenKruise's controller kind is the v1alpha1 one
    let owner = node_local::owner_ref::<BroadcastJob>(
        Some("apps.kruise.io/v1alpha1"),
        &job.namespace().unwrap_or_default(),
        &job.name_any(),
        &job.uid().unwrap_or_default(),
    );
    node_local::owned_pod(owner, &job.spec.template, labels, node, |spec| {
        placement::pin_to_node(spec, node);
    })
}

/// The pod's container restarts, init containers included (as OpenKruise counts them
/// against `restartLimit`).
pub fn restarts(pod: &Pod) -> i32 {
    let Some(st) = pod.status.as_ref() else { return 0 };
    let all = st.init_container_statuses.iter().flatten().chain(st.container_statuses.iter().flatten());
    all.map(|c| c.restart_count).sum()
}

fn on_failure(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure")
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

impl Broadcast {
    /// The runner of `settings.node_name`'s BroadcastJob pods (the agent runs it beside
    /// the DaemonSet runner on one set of watches, see [`node_local::run`]).
    pub fn new(settings: Settings, client: Client) -> Self {
        info!(node = %settings.node_name, "running the node's BroadcastJob pods");
        Self {
            settings,
            client,
            creating: HashMap::new(),
            failures: HashMap::new(),
            written: None,
            jobs: node_local::Workloads::new(true),
        }
    }

    async fn pass_jobs(&mut self, stores: &Stores) -> Duration {
        let node_name = self.settings.node_name.clone();
        let Some(node) = stores.nodes.get(&ObjectRef::new(&node_name)) else {
            return RESYNC;
        };
        let state = stores.states.get(&ObjectRef::new(&node_name));
        let pods = stores.pods.state();
        // the jobs permitted here, and those whose pods are here
        let mut jobs: BTreeMap<String, (String, String)> = node_local::pod_owners::<BroadcastJob>(&pods);
        for (key, permit) in state.iter().flat_map(|s| &s.spec.broadcast_jobs) {
            if let Some((ns, name)) = key.split_once('/') {
                jobs.insert(permit.uid.clone(), (ns.to_owned(), name.to_owned()));
            }
        }
        self.jobs.retain(|uid| jobs.contains_key(uid));
        let mut jobs: Vec<(String, String, String)> =
            jobs.into_iter().map(|(uid, (ns, name))| (ns, name, uid)).collect();
        jobs.sort();
        let mut report = Vec::new();
        for (ns, name, uid) in jobs {
            let permitted = state
                .as_ref()
                .and_then(|s| s.spec.broadcast_jobs.get(&workload_key(&ns, &name)))
                .is_some_and(|p| p.uid == uid);
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(&ns) && controlled_by(p, &uid))
                .map(|p| &**p)
                .collect();
            if mine.is_empty() && !permitted {
                self.failures.remove(&uid);
                continue;
            }
            if let Some((at, pod)) = self.creating.get(&uid)
                && (mine.iter().any(|p| &p.name_any() == pod) || at.elapsed() > CREATE_EXPECTATION)
            {
                self.creating.remove(&uid);
            }
            // `None`: cannot tell now (nothing is done); `Some(None)`: gone
            let job = self.jobs.get(&self.client, &ns, &name, &uid).await;
            let place = job.as_ref().map(|j| match j {
                Some(j) => placement::broadcast_job(&node, &j.spec.template),
                None => node_local::GONE,
            });
            let invalid = job.as_ref().and_then(|j| j.as_deref().and_then(template_error));
            let restart_limit = job
                .as_ref()
                .and_then(|j| j.as_ref()?.spec.failure_policy.as_ref()?.restart_limit)
                .unwrap_or(0);
            let views: Vec<plan::PodView> = mine
                .iter()
                .map(|p| plan::PodView {
                    name: p.name_any(),
                    uid: p.uid().unwrap_or_default(),
                    terminating: p.metadata.deletion_timestamp.is_some(),
                    finished: matches!(phase(p), "Succeeded" | "Failed")
                        || broadcast_job::restarts_exceeded(on_failure(p), restarts(p), restart_limit),
                    created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                })
                .collect();
            if let Some(place) = &place {
                let input = plan::Input {
                    should_run: place.should_run,
                    should_continue: place.should_continue_running,
                    permitted,
                    valid: invalid.is_none(),
                    creating: self.creating.contains_key(&uid),
                };
                for step in plan::decide(&input, &views) {
                    match (step, job.as_ref().and_then(Option::as_ref)) {
                        (plan::Step::Create, Some(job)) => {
                            let job = Arc::clone(job);
                            self.create(&job, &uid, &node_name).await;
                        }
                        (plan::Step::Create, None) => {}
                        (plan::Step::Delete(pod, pod_uid, why), _) => {
                            node_local::delete_pod(&self.client, &ns, &pod, &pod_uid, why).await;
                        }
                    }
                }
            }
            // the report: the oldest live pod
            let oldest = mine
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .min_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.name_any()));
            let message = match (oldest, &invalid, &place) {
                (Some(_), _, _) => None,
                (None, Some(e), _) => Some(e.clone()),
                (None, None, Some(p)) if !p.should_run => p.reason.as_ref().map(ToString::to_string),
                (None, None, _) => self.failures.get(&uid).cloned(),
            };
            report.push(BroadcastJobNodeStatus {
                workload: WorkloadRef { namespace: ns, name, uid },
                phase: oldest.map_or("Pending", |p| phase(p)).to_owned(),
                message,
                pod: oldest.map(|p| p.name_any()),
                on_failure: oldest.is_some_and(|p| on_failure(p)),
                restarts: oldest.map_or(0, |p| restarts(p)),
            });
        }
        self.report(state.as_deref(), report).await.map_or(RESYNC, |w| w.min(RESYNC))
    }

    async fn create(&mut self, job: &BroadcastJob, uid: &str, node: &str) {
        let ns = job.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &new_pod(job, node)).await {
            Ok(p) => {
                info!(broadcastjob = %job.name_any(), pod = %p.name_any(), "broadcast job pod created");
                self.creating.insert(uid.to_owned(), (Instant::now(), p.name_any()));
                self.failures.remove(uid);
            }
            Err(error) => {
                warn!(broadcastjob = %job.name_any(), %error, "cannot create the broadcast job pod");
                self.failures.insert(uid.to_owned(), format!("cannot create the pod: {error}"));
            }
        }
    }

    /// Writes the report if it changed and the interval allows; otherwise returns when
    /// to try again.
    async fn report(
        &mut self,
        state: Option<&NodeState>,
        report: Vec<BroadcastJobNodeStatus>,
    ) -> Option<Duration> {
        let state = state?;
        let have = state.status.as_ref().map(|s| s.broadcast_jobs.as_slice()).unwrap_or_default();
        if have == report.as_slice() {
            return None;
        }
        if let Some(at) = self.written {
            let due = at + self.settings.status_interval;
            if due > Instant::now() {
                return Some(due - Instant::now());
            }
        }
        let body = json!({"status": {"broadcastJobs": &report}});
        let api: Api<NodeState> = Api::all(self.client.clone());
        match api.patch_status(&state.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {
                self.written = Some(Instant::now());
                None
            }
            Err(error) => {
                warn!(%error, "cannot write the NodeState status");
                Some(Duration::from_secs(1))
            }
        }
    }
}

impl node_local::Runner for Broadcast {
    async fn pass(&mut self, stores: &Stores) -> Duration {
        self.pass_jobs(stores).await
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus, PodTemplateSpec};
    use kube::api::ObjectMeta;

    use super::*;

    fn job(policy: Option<&str>) -> BroadcastJob {
        let mut job = BroadcastJob::new("warm", Default::default());
        job.metadata.namespace = Some("ns".into());
        job.metadata.uid = Some("u1".into());
        job.spec.template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_owned(), "warm".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec { restart_policy: policy.map(Into::into), ..PodSpec::default() }),
        };
        job
    }

    #[test]
    fn pods_are_shaped_as_openkruise_shapes_them() {
        let pod = new_pod(&job(Some("Never")), "node-a");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("warm-"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[keys::BROADCAST_JOB_NAME], "warm");
        assert_eq!(labels[keys::BROADCAST_JOB_CONTROLLER_UID], "u1");
        assert_eq!(labels[keys::NODE_LOCAL], "true", "left out of the controller's pod watch");
        assert_eq!(labels["app"], "warm");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.uid.as_str()),
            ("apps.kruise.io/v1alpha1", "BroadcastJob", "u1")
        );
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-a"));
        let terms =
            spec.affinity.unwrap().node_affinity.unwrap().required_during_scheduling_ignored_during_execution;
        let field = &terms.unwrap().node_selector_terms[0].match_fields.clone().unwrap()[0];
        assert_eq!(
            (field.key.as_str(), field.values.clone().unwrap()),
            ("metadata.name", vec!["node-a".to_owned()])
        );
    }

    #[test]
    fn only_never_and_on_failure_run() {
        assert!(template_error(&job(Some("Never"))).is_none());
        assert!(template_error(&job(Some("OnFailure"))).is_none());
        let e = template_error(&job(None)).unwrap();
        assert!(e.starts_with("spec.template.spec.restartPolicy") && e.contains("\"Always\""), "{e}");
    }

    #[test]
    fn restarts_add_up_every_container() {
        let status = |n| ContainerStatus { restart_count: n, ..ContainerStatus::default() };
        let pod = Pod {
            status: Some(PodStatus {
                init_container_statuses: Some(vec![status(1)]),
                container_statuses: Some(vec![status(2), status(3)]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        assert_eq!(restarts(&pod), 6);
        assert_eq!(restarts(&Pod::default()), 0);
    }
}
