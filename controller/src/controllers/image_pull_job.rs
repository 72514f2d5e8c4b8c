//! ImagePullJob: writes the job's image into the NodeImages of the nodes it targets,
//! `parallelism` nodes at a time, and sums their pulls up into its status.
//!
//! Compared with OpenKruise v1.9.0: a job's tag already being pulled for another job
//! is shared rather than pulled again (only a failed pull is retried); a running job
//! that stops targeting a node takes its tag off that node (spec edits reach the
//! nodes); progress counts the nodes' own progress, not only finished nodes; a node
//! whose agent stays silent counts as failed in the job's status instead of the
//! controller writing the NodeImage's status (the agent alone writes it); digests
//! are pulled by digest.

pub mod plan;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::{ObjectReference, Pod},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    core::{Expression, Selector, SelectorExt},
    runtime::{controller::Action, reflector::Store},
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        common::CompletionPolicyType,
        image_pull_job::v1beta1::ImagePullJob,
        node_image::v1beta1::{NodeImage, ReferenceObject},
    },
    image,
    keys::{self, DELETION_PROTECTION_FINALIZER},
};
use tokio::time::Instant;
use tracing::{debug, info};

use self::plan::{Job, NodeState};
use super::secrets;
use crate::runtime::Events;
use crate::runtime::shared::SharedStore;

/// What reconciles share.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Every NodeImage, kept by a shared watch.
    pub node_images: Store<NodeImage>,
    /// Every pod but the node agents' ([`keys::NODE_LOCAL`]), kept by the shared
    /// watch the CloneSet controller reads too: a `podSelector` is matched against it
    /// (and the node agents' pods it selects are listed).
    pub pods: SharedStore<Pod>,
    /// Events on the jobs.
    pub events: Events,
    /// The agents' namespace, where pull secrets are copied.
    pub agent_namespace: String,
    /// How long a node may not report a pull before it counts as failed.
    pub response_timeout: Duration,
    /// NodeImage resourceVersions this controller wrote and the shared watch may
    /// not have shown yet: until it has, the view is stale.
    written: Mutex<HashMap<String, u64>>,
    /// Per job uid: the nodes of the node agents' pods its `podSelector` selects, and
    /// when they were listed (listed again after [`LOCAL_PODS_TTL`]).
    local_pods: Mutex<HashMap<String, (Instant, BTreeSet<String>)>>,
}

/// How long the nodes of the node agents' pods a `podSelector` selects are kept before
/// they are listed again: a job's pass runs at every change of a NodeImage it
/// writes, and a DaemonSet over thousands of nodes is thousands of pods to list.
pub const LOCAL_PODS_TTL: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("agent_namespace", &self.agent_namespace).finish_non_exhaustive()
    }
}

impl Ctx {
    /// A context.
    pub fn new(
        client: Client,
        node_images: Store<NodeImage>,
        pods: SharedStore<Pod>,
        events: Events,
        agent_namespace: String,
        response_timeout: Duration,
    ) -> Self {
        Self {
            client,
            node_images,
            pods,
            events,
            agent_namespace,
            response_timeout,
            written: Mutex::default(),
            local_pods: Mutex::default(),
        }
    }

    /// The nodes of the node agents' active pods in `ns` that `selector` selects
    /// (they are not in the pod watch), listed at most once per [`LOCAL_PODS_TTL`]
    /// per job.
    async fn local_pod_nodes(
        &self,
        job: &str,
        ns: &str,
        selector: &Selector,
    ) -> Result<BTreeSet<String>, Error> {
        let now = Instant::now();
        {
            let mut cache = self.local_pods.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (at, _)| now.duration_since(*at) < LOCAL_PODS_TTL);
            if let Some((_, nodes)) = cache.get(job) {
                return Ok(nodes.clone());
            }
        }
        let mut local = selector.clone();
        local.extend([Expression::Exists(keys::NODE_LOCAL.to_owned())]);
        let listed = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels_from(&local))
            .await?;
        let nodes: BTreeSet<String> = listed.items.iter().filter_map(active_node).collect();
        self.local_pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_owned(), (now, nodes.clone()));
        Ok(nodes)
    }

    fn rv(ni: &NodeImage) -> u64 {
        ni.metadata.resource_version.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0)
    }

    /// Whether the shared watch shows every NodeImage write of this controller.
    fn fresh(&self) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.retain(|name, rv| {
            let seen = self
                .node_images
                .get(&kube::runtime::reflector::ObjectRef::new(name))
                .map_or(u64::MAX, |n| Self::rv(&n));
            seen < *rv
        });
        written.is_empty()
    }

    fn wrote(&self, ni: &NodeImage) {
        let name = ni.name_any();
        self.written.lock().unwrap_or_else(|e| e.into_inner()).insert(name, Self::rv(ni));
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The job's image does not parse (the webhook refuses such jobs).
    #[error("spec.image: {0}")]
    Image(String),
}

fn job_view(job: &ImagePullJob, ctx: &Ctx) -> Result<Job, Error> {
    let reference = image::parse(&job.spec.image).map_err(Error::Image)?;
    let t = &job.spec.template;
    let pull = t.pull_policy.clone().unwrap_or_default();
    let timeout = pull.timeout_seconds.unwrap_or(600);
    let backoff = pull.backoff_limit.unwrap_or(3);
    let never = matches!(t.completion_policy.type_, Some(CompletionPolicyType::Never));
    Ok(Job {
        key: format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any()),
        owner: ObjectReference {
            api_version: Some(ImagePullJob::api_version(&()).into_owned()),
            kind: Some(ImagePullJob::kind(&()).into_owned()),
            name: Some(job.name_any()),
            namespace: job.namespace(),
            uid: job.uid(),
            ..ObjectReference::default()
        },
        image: reference.familiar_name(),
        tag: reference.node_image_tag(),
        pull_policy: plan::tag_pull_policy(timeout, backoff, &t.completion_policy),
        image_pull_policy: t.image_pull_policy.clone(),
        sandbox_config: t.sandbox_config.clone(),
        parallelism: plan::parallelism(t.parallelism.as_ref()),
        never,
        active_deadline: t
            .completion_policy
            .active_deadline_seconds
            .and_then(|d| u64::try_from(d).ok())
            .map(Duration::from_secs),
        response_timeout: ctx.response_timeout,
    })
}

/// The node of `p` while it is active (bound, not being deleted, not finished).
fn active_node(p: &Pod) -> Option<String> {
    let done = matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
    (p.metadata.deletion_timestamp.is_none() && !done).then(|| p.spec.as_ref()?.node_name.clone()).flatten()
}

/// The NodeImages the job targets: named, labelled (their labels are their nodes'),
/// the nodes of the namespace's active pods its `podSelector` selects, or all.
async fn targets(job: &ImagePullJob, ctx: &Ctx) -> Result<Vec<Arc<NodeImage>>, Error> {
    let t = &job.spec.template;
    let all = ctx.node_images.state();
    if let Some(ps) = &t.pod_selector {
        let selector: Selector =
            ps.clone().try_into().map_err(|e| Error::Image(format!("podSelector: {e}")))?;
        // a store not yet filled would look like no pod at all
        ctx.pods.wait_until_ready().await.map_err(|e| Error::Image(format!("the pod watch: {e}")))?;
        let ns = job.namespace().unwrap_or_default();
        let mut nodes: BTreeSet<String> = ctx
            .pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| selector.matches(p.labels()))
            .filter_map(|p| active_node(p))
            .collect();
        // the pods node agents run (DaemonSets', BroadcastJobs') are not in the
        // watch: the selected ones are listed
        nodes.extend(ctx.local_pod_nodes(&job.uid().unwrap_or_default(), &ns, &selector).await?);
        return Ok(all.into_iter().filter(|n| nodes.contains(&n.name_any())).collect());
    }
    let Some(sel) = &t.selector else { return Ok(all) };
    if let Some(names) = &sel.names {
        return Ok(all.into_iter().filter(|n| names.contains(&n.name_any())).collect());
    }
    match sel.label_selector() {
        None => Ok(all),
        Some(ls) => {
            let selector: Selector = ls.try_into().map_err(|e| Error::Image(format!("selector: {e}")))?;
            Ok(all.into_iter().filter(|n| selector.matches(n.labels())).collect())
        }
    }
}

/// Writes `ni`'s spec (at the resourceVersion read: a stale copy gets a conflict and
/// the reconcile is retried).
async fn write(ctx: &Ctx, ni: &NodeImage) -> Result<(), Error> {
    let api: Api<NodeImage> = Api::all(ctx.client.clone());
    let stored = api.replace(&ni.name_any(), &PostParams::default(), ni).await?;
    ctx.wrote(&stored);
    Ok(())
}

/// Takes the job off every NodeImage `keep` does not name.
async fn release_nodes(ctx: &Ctx, uid: &str, keep: &[String]) -> Result<(), Error> {
    for ni in ctx.node_images.state() {
        if keep.contains(&ni.name_any()) {
            continue;
        }
        let mut copy = (*ni).clone();
        if plan::remove_owner(&mut copy, uid) {
            write(ctx, &copy).await?;
        }
    }
    Ok(())
}

async fn remove_finalizer(ctx: &Ctx, job: &ImagePullJob) -> Result<(), Error> {
    let Some(finalizers) = job.metadata.finalizers.as_ref() else { return Ok(()) };
    if !finalizers.iter().any(|f| f == DELETION_PROTECTION_FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != DELETION_PROTECTION_FINALIZER).collect();
    let api: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": job.resource_version()}});
    api.patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The job's enum fields holding a value OpenKruise's CRD lets through but no
/// version names (`(field, value)`): reported once, when the job starts, as a Warning
/// event; the controller and the agents then use the field's default.
pub fn unknown_values(job: &ImagePullJob) -> Vec<(&'static str, String)> {
    let t = &job.spec.template;
    let mut out = Vec::new();
    if let Some(p) = t.image_pull_policy.as_ref().filter(|p| !p.is_known()) {
        out.push(("spec.imagePullPolicy", p.as_str().to_owned()));
    }
    if let Some(c) = t.completion_policy.type_.as_ref().filter(|c| !c.is_known()) {
        out.push(("spec.completionPolicy.type", c.as_str().to_owned()));
    }
    out
}

/// One pass over one job.
///
/// # Errors
/// The API server refused a request (retried with backoff).
pub async fn reconcile(job: Arc<ImagePullJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", job.name_any());
    let uid = job.uid().unwrap_or_default();
    let api: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &ns);
    if job.metadata.deletion_timestamp.is_some() {
        release_nodes(&ctx, &uid, &[]).await?;
        secrets::release(&ctx.client, &ctx.agent_namespace, &key).await?;
        remove_finalizer(&ctx, &job).await?;
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let status = job.status.clone().unwrap_or_default();
    if let Some(done) = &status.completion_time {
        secrets::release(&ctx.client, &ctx.agent_namespace, &key).await?;
        remove_finalizer(&ctx, &job).await?;
        let Some(ttl) = job.spec.template.completion_policy.ttl_seconds_after_finished else {
            return Ok(Action::await_change());
        };
        let left = SignedDuration::from_secs(i64::from(ttl)) - now.duration_since(done.0);
        if left.is_positive() {
            return Ok(Action::requeue(left.unsigned_abs()));
        }
        info!(job = %key, "deleting the job: ttlSecondsAfterFinished passed");
        // Its finalizer is gone by now, so the deletion is not seen here: the job's
        // tags leave the nodes first (as the NodeImage keeper prunes a gone owner's).
        release_nodes(&ctx, &uid, &[]).await?;
        api.delete(&job.name_any(), &DeleteParams::background()).await?;
        return Ok(Action::await_change());
    }
    if !job.finalizers().iter().any(|f| f == DELETION_PROTECTION_FINALIZER) {
        let mut f = job.finalizers().to_vec();
        f.push(DELETION_PROTECTION_FINALIZER.into());
        let patch = json!({"metadata": {"finalizers": f, "resourceVersion": job.resource_version()}});
        api.patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        return Ok(Action::await_change());
    }
    if !ctx.fresh() {
        debug!(job = %key, "NodeImage watch behind this controller's writes; retrying shortly");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if status.start_time.is_none() {
        for (field, value) in unknown_values(&job) {
            ctx.events
                .publish(
                    &*job,
                    true,
                    "UnknownValue",
                    format!("{field}: unknown value {value:?}; the default is used"),
                )
                .await;
        }
    }
    let view = job_view(&job, &ctx)?;
    let sources = job.spec.template.pull_secrets.clone().unwrap_or_default();
    let refs: Vec<ReferenceObject> = if sources.is_empty() {
        Vec::new()
    } else {
        secrets::claim(&ctx.client, &ctx.agent_namespace, &ns, &key, &sources).await?
    };
    let targets = targets(&job, &ctx).await?;
    let names: Vec<String> = targets.iter().map(|n| n.name_any()).collect();
    release_nodes(&ctx, &uid, &names).await?;
    let mut states: BTreeMap<String, NodeState> =
        targets.iter().map(|n| (n.name_any(), plan::node_state(n, &view, now))).collect();
    // Owned nodes missing secrets get them; then new nodes, as parallelism allows.
    for ni in &targets {
        if states.get(&ni.name_any()) != Some(&NodeState::NotSynced) && !refs.is_empty() {
            let mut copy = (**ni).clone();
            if plan::add_owner(&mut copy, &view, &refs, now) {
                write(&ctx, &copy).await?;
            }
        }
    }
    for name in plan::to_start(&states, view.parallelism) {
        let Some(ni) = targets.iter().find(|n| n.name_any() == name) else { continue };
        let mut copy = (**ni).clone();
        plan::add_owner(&mut copy, &view, &refs, now);
        write(&ctx, &copy).await?;
        states.insert(name, NodeState::Pulling(0));
    }
    let next = plan::status(&status, &states, &view, now);
    if Some(&next) != job.status.as_ref() {
        if next.completion_time.is_some() {
            let failed = next.failed.unwrap_or(0);
            let note = format!(
                "{} of {} nodes pulled {}; {}",
                next.succeeded.unwrap_or(0),
                next.desired,
                job.spec.image,
                next.message.clone().unwrap_or_default()
            );
            ctx.events.publish(job.as_ref(), failed > 0, "Completed", note).await;
        }
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/status", "value": next}]))
                .map_err(|e| Error::Image(format!("status patch: {e}")))?;
        api.patch_status(&job.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await?;
    }
    // Running: look again before a silent node times out or the deadline passes.
    let mut wait = Duration::from_secs(30).min(ctx.response_timeout);
    if let (Some(d), Some(start)) = (view.active_deadline, next.start_time.as_ref()) {
        let left = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX) - now.duration_since(start.0);
        wait = wait.min(left.unsigned_abs().max(Duration::from_secs(1)));
    }
    if job.spec.template.pod_selector.is_some() {
        // Pod changes do not wake a job: podSelector jobs look at the pod store every
        // few seconds.
        wait = wait.min(Duration::from_secs(5));
    }
    Ok(Action::requeue(wait))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_enum_values_are_named_with_their_field() {
        let job: ImagePullJob = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1beta1", "kind": "ImagePullJob",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"image": "nginx:1", "imagePullPolicy": "Sometimes",
                "completionPolicy": {"type": "Eventually"}}
        }))
        .unwrap();
        assert_eq!(
            unknown_values(&job),
            [
                ("spec.imagePullPolicy", "Sometimes".to_owned()),
                ("spec.completionPolicy.type", "Eventually".to_owned())
            ]
        );
        let known: ImagePullJob = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1beta1", "kind": "ImagePullJob",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"image": "nginx:1", "imagePullPolicy": "Always", "completionPolicy": {"type": "Never"}}
        }))
        .unwrap();
        assert!(unknown_values(&known).is_empty());
    }
}
