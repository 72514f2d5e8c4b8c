//! The workload controllers the leader runs, on the machinery in [`crate::runtime`].
//! Watches are shared: one of every Node, one of every NodeImage and one of every
//! ImagePullJob feed every controller that needs them.

pub mod broadcast_job;
pub mod clone_set;
pub mod container_recreate_request;
pub mod daemon_set;
pub mod image_list_pull_job;
pub mod image_pull_job;
pub mod node_image;
pub mod node_states;
pub mod pod_readiness;
pub mod revisions;
pub mod secrets;

use std::{sync::Arc, time::Duration};

use futures_util::TryStreamExt as _;
use k8s_openapi::api::{
    apps::v1::ControllerRevision,
    core::v1::{Node, Pod},
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt as _,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use stevedore_proto::crd::{
    broadcast_job::v1beta1::BroadcastJob, clone_set::CloneSet, daemon_set::v1beta1::DaemonSet,
    image_list_pull_job::v1beta1::ImageListPullJob, image_pull_job::v1beta1::ImagePullJob,
    node_image::v1beta1::NodeImage, node_state::NodeState,
};
use stevedore_proto::keys;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::runtime::{self, Events, Expectations, shared};

/// How the controllers run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Objects each controller reconciles at once.
    pub concurrency: u16,
    /// The agents' namespace (pull secrets are copied there).
    pub agent_namespace: String,
    /// How long a node may not report an image pull before it counts as failed.
    pub agent_response_timeout: Duration,
    /// How old an agent's NodeState report may be before the agent counts as silent.
    pub agent_silence: Duration,
    /// This replica, for events.
    pub identity: String,
}

/// What the Node store keeps: no managed fields, and of the status only what the
/// controllers read (conditions, addresses); a node's image list alone can be tens of
/// kilobytes, times every node.
fn slim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    if let Some(st) = node.status.as_mut() {
        st.images = None;
        st.volumes_attached = None;
        st.volumes_in_use = None;
    }
}

/// The controller's one watch of pods: every pod but those the node agents run for
/// Advanced DaemonSets and BroadcastJobs (labelled [`keys::NODE_LOCAL`]), which it
/// coordinates through NodeStates instead. A CloneSet never owns one; a `podSelector`
/// ImagePullJob lists the ones it selects; a ContainerRecreateRequest reads its pod
/// by name.
fn pod_watch_config() -> watcher::Config {
    watcher::Config::default().labels(&format!("!{}", keys::NODE_LOCAL))
}

/// What the Pod store keeps: everything but the managed fields. No controller reads
/// them, and a replace that leaves them out keeps them on the server.
fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
}

/// What wakes `gone` at each deletion a watch sees.
fn on_delete<K>(gone: Arc<Notify>) -> impl Fn(&watcher::Event<K>) {
    move |e| {
        if matches!(e, watcher::Event::Delete(_)) {
            gone.notify_one();
        }
    }
}

/// Runs every controller until `stop`.
pub async fn run(client: Client, settings: Settings, stop: CancellationToken) {
    let rs = runtime::Settings { concurrency: settings.concurrency, ..runtime::Settings::default() };
    let events = Events::new(client.clone(), &settings.identity);

    // Shared watches of Nodes and NodeImages.
    let (nodes, node_writer, nodes_listed) = shared::store::<Node>(1024);
    let node_subs =
        (node_writer.subscribe(), node_writer.subscribe(), node_writer.subscribe(), node_writer.subscribe());
    let node_watch = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).modify(slim_node),
    )
    .default_backoff();
    let (node_images, ni_writer, ni_listed) = shared::store::<NodeImage>(1024);
    let ni_subs = (ni_writer.subscribe(), ni_writer.subscribe());
    let ni_watch = reflector::reflector(
        ni_writer,
        watcher(Api::<NodeImage>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    let (Some(node_for_creator), Some(node_for_keeper), Some(node_for_daemons), Some(node_for_broadcast)) =
        node_subs
    else {
        return;
    };
    // the DaemonSets and BroadcastJobs hear of a node only when what their placement
    // reads changes (or its uid: a node recreated under its name), not at each heartbeat
    let placement_print = |n: &Node| {
        let spec = n.spec.as_ref();
        shared::fingerprint_of(&(
            &n.metadata.uid,
            &n.metadata.labels,
            spec.and_then(|s| s.taints.as_ref()),
            spec.and_then(|s| s.unschedulable),
            n.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        ))
    };
    let node_for_daemons = shared::changes(node_for_daemons, placement_print);
    let node_for_broadcast = shared::changes(node_for_broadcast, placement_print);
    // Every NodeState: the agents' reports and the permits given.
    let (states, states_writer, states_listed) = shared::store::<NodeState>(1024);
    let (Some(states_for_daemons), Some(states_for_broadcast)) =
        (states_writer.subscribe(), states_writer.subscribe())
    else {
        return;
    };
    let states_watch = reflector::reflector(
        states_writer,
        watcher(Api::<NodeState>::all(client.clone()), watcher::Config::default())
            .modify(|s: &mut NodeState| s.metadata.managed_fields = None),
    )
    .default_backoff();
    let (Some(ni_for_jobs), Some(ni_for_keeper)) = ni_subs else { return };

    // One watch of ImagePullJobs: it drives their controller and, as owned children,
    // their ImageListPullJobs' (whose expectations read its store).
    let (jobs, jobs_writer, jobs_listed) = shared::store::<ImagePullJob>(1024);
    let jobs_subs = (jobs_writer.subscribe(), jobs_writer.subscribe());
    let jobs_watch = reflector::reflector(
        jobs_writer,
        watcher(Api::<ImagePullJob>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    let (Some(jobs_for_jobs), Some(jobs_for_lists)) = jobs_subs else { return };
    let jobs_controller = Controller::for_shared_stream(jobs_for_jobs, jobs.store());
    let jobs_store = jobs.store();
    let jobs_controller = jobs_controller.watches_shared_stream(ni_for_jobs, move |ni: Arc<NodeImage>| {
        // The jobs owning its tags, and every running job (a new or relabelled node
        // may be one a job targets).
        let mut refs: Vec<ObjectRef<ImagePullJob>> = ni
            .spec
            .images
            .iter()
            .flatten()
            .flat_map(|(_, i)| i.tags.iter())
            .flat_map(|t| t.owner_references.iter().flatten())
            .filter_map(|o| Some(ObjectRef::new(o.name.as_deref()?).within(o.namespace.as_deref()?)))
            .collect();
        refs.extend(
            jobs_store
                .state()
                .iter()
                .filter(|j| j.status.as_ref().is_none_or(|s| s.completion_time.is_none()))
                .map(|j| ObjectRef::from_obj(j.as_ref())),
        );
        refs
    });
    // Every pod but the node agents', watched once for the CloneSet controller,
    // podSelector jobs and the ContainerRecreateRequests.
    let (pods, pod_writer, pods_listed) = shared::store::<Pod>(1024);
    let Some(pods_for_sets) = pod_writer.subscribe() else { return };
    let Some(pods_for_crrs) = pod_writer.subscribe() else { return };
    // a shared stream carries applied objects only: deleted pods reach the CRR
    // controller on a channel of their own (a request whose pod is gone completes)
    let (pod_deleted, pods_deleted) = tokio::sync::mpsc::unbounded_channel::<Arc<Pod>>();
    let pod_watch = reflector::reflector(
        pod_writer,
        watcher(Api::<Pod>::all(client.clone()), pod_watch_config()).modify(slim_pod),
    )
    .default_backoff()
    .inspect_ok(move |e| {
        if let watcher::Event::Delete(pod) = e {
            let _ = pod_deleted.send(Arc::new(pod.clone()));
        }
    });
    let pods_for_crrs = futures_util::stream::select(
        pods_for_crrs,
        futures_util::stream::unfold(pods_deleted, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) }),
    );
    let job_ctx = Arc::new(image_pull_job::Ctx::new(
        client.clone(),
        node_images.store(),
        pods.clone(),
        events.clone(),
        settings.agent_namespace.clone(),
        settings.agent_response_timeout,
    ));

    let ni_ctx = Arc::new(node_image::Ctx {
        client: client.clone(),
        nodes: nodes.clone(),
        node_images: node_images.store(),
        jobs: jobs.clone(),
        states: states.store(),
    });
    let jobs_store_for_lists = jobs.store();
    let creator = Controller::for_shared_stream(node_for_creator, nodes.store());
    let keeper = Controller::for_shared_stream(ni_for_keeper, node_images.store())
        .watches_shared_stream(node_for_keeper, |n: Arc<Node>| {
            Some(ObjectRef::<NodeImage>::new(&n.name_any()))
        });

    let lists = Controller::new(Api::<ImageListPullJob>::all(client.clone()), watcher::Config::default())
        .owns_shared_stream(jobs_for_lists);
    let list_ctx = Arc::new(image_list_pull_job::Ctx {
        client: client.clone(),
        events: events.clone(),
        children: jobs_store_for_lists,
        expectations: Expectations::default(),
    });
    let sets = Controller::new(Api::<CloneSet>::all(client.clone()), watcher::Config::default())
        .owns_shared_stream(pods_for_sets);
    // Every ControllerRevision, read by the CloneSet and DaemonSet passes.
    let (revisions, rev_writer, rev_listed) = shared::cache::<ControllerRevision>();
    let rev_watch = reflector::reflector(
        rev_writer,
        watcher(Api::<ControllerRevision>::all(client.clone()), watcher::Config::default())
            .modify(|r: &mut ControllerRevision| r.metadata.managed_fields = None),
    )
    .default_backoff();
    let set_ctx =
        Arc::new(clone_set::Ctx::new(client.clone(), events.clone(), pods.store(), revisions.clone()));
    // DaemonSets and BroadcastJobs: each one shared watch, whose deletions wake the
    // sweep of their permits.
    let workloads_gone = Arc::new(Notify::new());
    let (daemon_sets, ds_writer, ds_listed) = shared::store::<DaemonSet>(1024);
    let Some(ds_for_daemons) = ds_writer.subscribe() else { return };
    let ds_watch = reflector::reflector(
        ds_writer,
        watcher(Api::<DaemonSet>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .inspect_ok(on_delete(workloads_gone.clone()));
    let (broadcast_jobs, bj_writer, bj_listed) = shared::store::<BroadcastJob>(1024);
    let Some(bj_for_broadcast) = bj_writer.subscribe() else { return };
    let bj_watch = reflector::reflector(
        bj_writer,
        watcher(Api::<BroadcastJob>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .inspect_ok(on_delete(workloads_gone.clone()));
    let permits_sweep = node_states::sweep_permits(
        client.clone(),
        states.clone(),
        daemon_sets.clone(),
        broadcast_jobs.clone(),
        workloads_gone,
        stop.clone(),
    );

    // the agents' heartbeat Leases, listed every few seconds; an agent alive again
    // starts every node-local pass
    let heartbeats = node_states::Heartbeats::default();
    let (revived, revived_rx) = tokio::sync::watch::channel(0u64);
    let heartbeat_poll = node_states::poll_heartbeats(
        client.clone(),
        settings.agent_namespace.clone(),
        heartbeats.clone(),
        settings.agent_silence,
        revived,
        stop.clone(),
    );
    let revivals = || {
        futures_util::stream::unfold(revived_rx.clone(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    };
    let daemon_store = daemon_sets.store();
    let daemons = Controller::for_shared_stream(ds_for_daemons, daemon_sets.store())
        .reconcile_all_on(revivals())
        .watches_shared_stream(states_for_daemons, |s: Arc<NodeState>| {
            // the sets it holds permits or reports for
            let permits = s.spec.daemon_sets.keys().filter_map(|k| {
                let (ns, name) = k.split_once('/')?;
                Some(ObjectRef::<DaemonSet>::new(name).within(ns))
            });
            let reports = s
                .status
                .iter()
                .flat_map(|st| st.daemon_sets.iter())
                .map(|d| ObjectRef::<DaemonSet>::new(&d.workload.name).within(&d.workload.namespace));
            permits.chain(reports).collect::<Vec<_>>()
        })
        .watches_shared_stream(node_for_daemons, move |_: Arc<Node>| {
            // a node's labels, taints or existence may change any set's placement
            daemon_store.state().iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect::<Vec<_>>()
        });
    let (spec_writer, spec_writes) = node_states::SpecWriter::new(client.clone());
    let fleet = node_states::Fleet {
        client: client.clone(),
        nodes: nodes.clone(),
        states: states.clone(),
        agent_silence: settings.agent_silence,
        writer: spec_writer,
        passes: Arc::default(),
        heartbeats: heartbeats.clone(),
    };
    let daemon_ctx = Arc::new(daemon_set::Ctx { fleet: fleet.clone(), revisions });
    let broadcast_store = broadcast_jobs.store();
    let broadcast = Controller::for_shared_stream(bj_for_broadcast, broadcast_jobs.store())
        .reconcile_all_on(revivals())
        .watches_shared_stream(states_for_broadcast, |s: Arc<NodeState>| {
            // the jobs it holds permits or reports for
            let permits = s.spec.broadcast_jobs.keys().filter_map(|k| {
                let (ns, name) = k.split_once('/')?;
                Some(ObjectRef::<BroadcastJob>::new(name).within(ns))
            });
            let reports = s
                .status
                .iter()
                .flat_map(|st| st.broadcast_jobs.iter())
                .map(|b| ObjectRef::<BroadcastJob>::new(&b.workload.name).within(&b.workload.namespace));
            permits.chain(reports).collect::<Vec<_>>()
        })
        .watches_shared_stream(node_for_broadcast, move |_: Arc<Node>| {
            // a node's labels, taints or existence may change any running job's targets
            broadcast_store
                .state()
                .iter()
                .filter(|j| !broadcast_job::finished(j))
                .map(|j| ObjectRef::from_obj(j.as_ref()))
                .collect::<Vec<_>>()
        });
    let broadcast_ctx = Arc::new(fleet);
    let crrs = container_recreate_request::controller(&client, pods_for_crrs);
    let crr_ctx = Arc::new(container_recreate_request::Ctx { client: client.clone(), events });

    tokio::join!(
        shared::drive("Node", node_watch, nodes_listed, &stop),
        shared::drive("NodeImage", ni_watch, ni_listed, &stop),
        shared::drive("Pod", pod_watch, pods_listed, &stop),
        runtime::drive("cloneset", sets, rs, clone_set::reconcile, set_ctx, stop.clone()),
        shared::drive("NodeState", states_watch, states_listed, &stop),
        shared::drive("DaemonSet", ds_watch, ds_listed, &stop),
        shared::drive("ControllerRevision", rev_watch, rev_listed, &stop),
        shared::drive("BroadcastJob", bj_watch, bj_listed, &stop),
        permits_sweep,
        spec_writes.drive(stop.clone()),
        heartbeat_poll,
        runtime::drive("daemonset", daemons, rs, daemon_set::reconcile, daemon_ctx, stop.clone()),
        runtime::drive("broadcastjob", broadcast, rs, broadcast_job::reconcile, broadcast_ctx, stop.clone()),
        shared::drive("ImagePullJob", jobs_watch, jobs_listed, &stop),
        runtime::drive("imagepulljob", jobs_controller, rs, image_pull_job::reconcile, job_ctx, stop.clone()),
        runtime::drive(
            "nodeimage-creator",
            creator,
            rs,
            node_image::reconcile_node,
            ni_ctx.clone(),
            stop.clone()
        ),
        runtime::drive("nodeimage", keeper, rs, node_image::reconcile_node_image, ni_ctx, stop.clone()),
        runtime::drive("imagelistpulljob", lists, rs, image_list_pull_job::reconcile, list_ctx, stop.clone()),
        runtime::drive(
            "containerrecreaterequest",
            crrs,
            rs,
            container_recreate_request::reconcile,
            crr_ctx,
            stop.clone()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_watch_leaves_out_the_pods_node_agents_run() {
        assert_eq!(pod_watch_config().label_selector.as_deref(), Some("!stevedore.dev/node-local"));
    }
}
