//! NodeImages, one per node: created for a node once it is Ready, named after it and
//! labelled like it (ImagePullJobs select nodes by these labels), deleted with it;
//! their tags pruned when no ImagePullJob owns them any more or their lifetime after
//! the pull (`ttlSecondsAfterFinished`) has passed. The controller never writes a
//! NodeImage's status: that is the node's agent's.
//!
//! The same pass gives every node (ready or not: daemon pods run on nodes that are
//! not) its `NodeState`, owned by the node so that it goes with it.

use std::{sync::Arc, time::Duration};

use crate::runtime::shared::SharedStore;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::{
    api::core::v1::Node,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, PostParams},
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use stevedore_proto::crd::{
    image_pull_job::v1beta1::ImagePullJob,
    node_image::v1beta1::{NodeImage, NodeImageSpec},
    node_state::{NodeState, NodeStateSpec},
};
use tracing::info;

/// What reconciles share.
#[derive(Clone)]
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Every Node.
    pub nodes: SharedStore<Node>,
    /// Every NodeImage.
    pub node_images: Store<NodeImage>,
    /// Every ImagePullJob.
    pub jobs: SharedStore<ImagePullJob>,
    /// Every NodeState.
    pub states: Store<NodeState>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Node: its NodeImage exists once it is Ready, with its labels.
///
/// # Errors
/// The API server refused a write.
pub async fn reconcile_node(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let name = node.name_any();
    let api: Api<NodeImage> = Api::all(ctx.client.clone());
    let existing = ctx.node_images.get(&ObjectRef::new(&name));
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if ctx.states.get(&ObjectRef::new(&name)).is_none() {
        create_node_state(&ctx.client, &node).await?;
    }
    match existing {
        None if ready(&node) => {
            let ni = NodeImage {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: node.metadata.labels.clone(),
                    ..ObjectMeta::default()
                },
                spec: NodeImageSpec::default(),
                status: None,
            };
            match api.create(&PostParams::default(), &ni).await {
                Ok(_) => info!(node = %name, "NodeImage created"),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        None => {}
        Some(ni) if ni.metadata.labels != node.metadata.labels => {
            let mut copy = (*ni).clone();
            copy.metadata.labels = node.metadata.labels.clone();
            api.replace(&name, &PostParams::default(), &copy).await?;
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}

/// A NodeImage: deleted when its node is gone; tags without a live owner, or past
/// their lifetime, pruned.
///
/// # Errors
/// The API server refused a write.
/// Creates the node's NodeState, owned by the node (it goes with it).
async fn create_node_state(client: &Client, node: &Node) -> Result<(), kube::Error> {
    let name = node.name_any();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.clone(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let state = NodeState {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: node.metadata.uid.is_some().then(|| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: NodeStateSpec::default(),
        status: None,
    };
    match Api::<NodeState>::all(client.clone()).create(&PostParams::default(), &state).await {
        Ok(_) => info!(node = %name, "NodeState created"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

pub async fn reconcile_node_image(ni: Arc<NodeImage>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let name = ni.name_any();
    let api: Api<NodeImage> = Api::all(ctx.client.clone());
    let node = ctx.nodes.get(&ObjectRef::new(&name));
    if node.is_none_or(|n| n.metadata.deletion_timestamp.is_some()) {
        // Only once the Node watch has listed: before that every node looks gone.
        if ctx.nodes.wait_until_ready().await.is_ok() && ctx.nodes.get(&ObjectRef::new(&name)).is_none() {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => info!(node = %name, "NodeImage deleted with its node"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Action::await_change());
    }
    if ctx.jobs.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let now = Timestamp::now();
    let (copy, next) = prune(&ni, &ctx.jobs, now);
    if let Some(copy) = copy {
        api.replace(&name, &PostParams::default(), &copy).await?;
    }
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

/// `ni` without the tags nobody owns or whose lifetime has passed (`None`: nothing
/// to prune), and when to look again for a lifetime still running.
fn prune(
    ni: &NodeImage,
    jobs: &Store<ImagePullJob>,
    now: Timestamp,
) -> (Option<NodeImage>, Option<Duration>) {
    let live = |ns: &Option<String>, name: &Option<String>, uid: &Option<String>| {
        let (Some(ns), Some(name)) = (ns, name) else { return true };
        jobs.get(&ObjectRef::new(name).within(ns)).is_some_and(|j| j.metadata.uid == *uid)
    };
    let mut copy = ni.clone();
    let mut changed = false;
    let mut next: Option<Duration> = None;
    let statuses = ni.status.as_ref().and_then(|s| s.image_statuses.clone()).unwrap_or_default();
    for (image, spec) in copy.spec.images.iter_mut().flatten() {
        spec.tags.retain_mut(|t| {
            if let Some(owners) = t.owner_references.as_mut() {
                let before = owners.len();
                owners.retain(|o| {
                    o.kind.as_deref() != Some("ImagePullJob") || live(&o.namespace, &o.name, &o.uid)
                });
                if owners.len() != before {
                    changed = true;
                    if owners.is_empty() {
                        return false;
                    }
                }
            }
            let ttl = t.pull_policy.as_ref().and_then(|p| p.ttl_seconds_after_finished);
            let done = statuses
                .get(image)
                .and_then(|s| s.tags.iter().find(|s| s.tag == t.tag))
                .filter(|s| s.version == t.version || (s.version.is_none() && t.version == Some(0)))
                .and_then(|s| s.completion_time.clone());
            if let (Some(ttl), Some(done)) = (ttl, done) {
                let left = SignedDuration::from_secs(i64::from(ttl)) - now.duration_since(done.0);
                if !left.is_positive() {
                    changed = true;
                    return false;
                }
                let left = left.unsigned_abs();
                next = Some(next.map_or(left, |n| n.min(left)));
            }
            true
        });
    }
    if let Some(images) = copy.spec.images.as_mut() {
        let before = images.len();
        images.retain(|_, i| !i.tags.is_empty());
        changed |= images.len() != before;
    }
    (changed.then_some(copy), next)
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::*;

    fn job_store(jobs: Vec<ImagePullJob>) -> Store<ImagePullJob> {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for j in jobs {
            writer.apply_watcher_event(&watcher::Event::InitApply(j));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        reader
    }

    #[test]
    fn orphaned_and_expired_tags_are_pruned() {
        let job: ImagePullJob = serde_json::from_value(json!({
            "metadata": {"name": "live", "namespace": "shop", "uid": "u1"},
            "spec": {"image": "nginx", "completionPolicy": {}}}))
        .unwrap();
        let jobs = job_store(vec![job]);
        let owner = |name: &str, uid: &str| json!({"kind": "ImagePullJob", "name": name, "namespace": "shop", "uid": uid});
        let ni: NodeImage = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"images": {
                "nginx": {"tags": [
                    {"tag": "a", "version": 0, "ownerReferences": [owner("live", "u1"), owner("gone", "u2")], "pullPolicy": {"ttlSecondsAfterFinished": 100}},
                    {"tag": "b", "version": 0, "ownerReferences": [owner("gone", "u2")]},
                    {"tag": "c", "version": 1, "ownerReferences": [owner("live", "u1")], "pullPolicy": {"ttlSecondsAfterFinished": 10}}]},
                "redis": {"tags": [{"tag": "x", "ownerReferences": [owner("live", "other-uid")]}]}}},
            "status": {"desired": 3, "imageStatuses": {"nginx": {"tags": [
                {"tag": "a", "phase": "Succeeded", "version": 0, "completionTime": "2026-12-01T10:00:00Z"},
                {"tag": "c", "phase": "Succeeded", "version": 1, "completionTime": "2026-12-01T10:00:00Z"}]}}}
        }))
        .unwrap();
        let now: Timestamp = "2026-12-01T10:00:30Z".parse().unwrap();
        let (pruned, next) = prune(&ni, &jobs, now);
        let images = pruned.unwrap().spec.images.unwrap();
        let tags: Vec<&str> = images["nginx"].tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["a"], "b lost its only owner, c's lifetime passed");
        assert_eq!(images["nginx"].tags[0].owner_references.as_ref().unwrap().len(), 1);
        assert!(!images.contains_key("redis"), "a job of that name with another uid is another job");
        assert_eq!(next, Some(Duration::from_secs(70)), "a's lifetime ends in 70 s");
    }
}
