//! A workload's ControllerRevisions, as OpenKruise v1.9.0 keeps a CloneSet's and an
//! Advanced DaemonSet's: the update revision is the one whose data equals the current
//! spec's (an existing equal one is reused, renumbered if it is not the latest), else a
//! new one named by `proto::revision` (a name taken by other data is a collision: the
//! count goes up); the current revision is the status's, while it exists; history
//! beyond `revisionHistoryLimit` that no pod uses is deleted.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{apps::v1::ControllerRevision, core::v1::PodTemplateSpec},
    apimachinery::pkg::{apis::meta::v1::OwnerReference, runtime::RawExtension},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::reflector::Store,
};
use serde_json::{Value, json};
use stevedore_proto::revision::{self, Revision};

/// Why the history could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A revision's data is not a pod template.
    #[error("{0}")]
    Data(String),
    /// The revision name is taken by other data.
    #[error("controllerrevision {0}: the name is taken by another template")]
    Collision(String),
}

/// The workload whose history is kept.
#[derive(Clone, Debug)]
pub struct Owner<'a> {
    /// The owner reference its revisions carry (controller, blocking deletion).
    pub reference: OwnerReference,
    /// Its namespace.
    pub namespace: String,
    /// The revision its current spec gives.
    pub want: Revision,
    /// The revision its status names current, if any.
    pub current: Option<&'a str>,
    /// How a pod's revision label names a revision.
    pub matches: fn(label: &str, revision: &str) -> bool,
}

/// The revisions a reconcile works with.
#[derive(Clone, Debug)]
pub struct Revisions {
    /// The revision of the current spec.
    pub update: ControllerRevision,
    /// The revision the pods not yet updated keep.
    pub current: ControllerRevision,
    /// Every revision of the set, oldest first.
    pub all: Vec<ControllerRevision>,
}

impl Revisions {
    /// The revision a CloneSet pod's `controller-revision-hash` label names (full or
    /// short).
    pub fn of_label(&self, label: &str) -> Option<&ControllerRevision> {
        self.all.iter().find(|r| revision::clone_set_revision_matches(label, &r.name_any()))
    }
}

/// The owner reference a workload puts on what it owns.
pub fn owner<K: Resource<DynamicType = ()>>(k: &K) -> Option<OwnerReference> {
    let mut o = k.controller_owner_ref(&())?;
    o.block_owner_deletion = Some(true);
    Some(o)
}

fn owned_by(r: &ControllerRevision, uid: &str) -> bool {
    r.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The pod template a revision's data holds.
pub fn template(r: &ControllerRevision) -> Result<PodTemplateSpec, Error> {
    revision::template_from_data(r.data.as_ref().map_or(&Value::Null, |d| &d.0))
        .map_err(|e| Error::Data(format!("controllerrevision {}: data: {e}", r.name_any())))
}

/// The revisions in `cache` that the workload with `uid` controls.
pub fn owned(cache: &Store<ControllerRevision>, uid: &str) -> Vec<ControllerRevision> {
    cache.state().iter().filter(|r| owned_by(r, uid)).map(|r| (**r).clone()).collect()
}

/// Finds or creates the update revision among `known` (the owner's revisions, as
/// [`owned`] reads them from the watch: no request when nothing changes) and picks the
/// current one; a name taken by other data is [`Error::Collision`] (the caller raises
/// the collision count). A revision the watch has not shown yet is found by its name
/// when creating it.
pub async fn sync(
    api: &Api<ControllerRevision>,
    known: Vec<ControllerRevision>,
    owner: &Owner<'_>,
) -> Result<Revisions, Error> {
    let uid = owner.reference.uid.as_str();
    let mut all: Vec<ControllerRevision> = known.into_iter().filter(|r| owned_by(r, uid)).collect();
    all.sort_by_key(|r| (r.revision, r.name_any()));
    let want = owner.want.clone();
    let data: Value = serde_json::from_str(&want.data)
        .map_err(|e| Error::Data(format!("spec.template: revision data: {e}")))?;
    let max = all.last().map_or(0, |r| r.revision);

    let equal: Vec<usize> =
        (0..all.len()).filter(|&i| all[i].data.as_ref().map(|d| &d.0) == Some(&data)).collect();
    let update = if let Some(&i) = equal.last() {
        if i + 1 != all.len() {
            // an older revision comes back: it becomes the latest
            let name = all[i].name_any();
            let body = json!({"revision": max + 1});
            let r = api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await?;
            all.remove(i);
            all.push(r);
        }
        all.last().cloned().unwrap_or_default()
    } else if all.iter().any(|r| r.name_any() == want.name) {
        return Err(Error::Collision(want.name));
    } else {
        let r = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(want.name.clone()),
                namespace: Some(owner.namespace.clone()),
                labels: Some(want.labels.clone()),
                annotations: Some(want.annotations.clone()),
                owner_references: Some(vec![owner.reference.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data)),
            revision: max + 1,
        };
        let created = match api.create(&PostParams::default(), &r).await {
            Ok(c) => c,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = api.get(&want.name).await?;
                if existing.data == r.data && owned_by(&existing, uid) {
                    existing
                } else {
                    return Err(Error::Collision(want.name));
                }
            }
            Err(e) => return Err(e.into()),
        };
        all.push(created.clone());
        created
    };
    let current = owner
        .current
        .and_then(|c| all.iter().find(|r| r.name_any() == c))
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(Revisions { update, current, all })
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit` (default 10) that are
/// neither current nor update and that no pod in `in_use` (revision labels) names.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    owner: &Owner<'_>,
    history_limit: Option<i32>,
    revs: &Revisions,
    in_use: &BTreeSet<String>,
) -> Result<(), Error> {
    let limit = usize::try_from(history_limit.unwrap_or(10).max(0)).unwrap_or(0);
    let keep = [revs.update.name_any(), revs.current.name_any()];
    let live: Vec<&ControllerRevision> = revs
        .all
        .iter()
        .filter(|r| {
            let name = r.name_any();
            !keep.contains(&name) && !in_use.iter().any(|l| (owner.matches)(l, &name))
        })
        .collect();
    if live.len() <= limit {
        return Ok(());
    }
    for r in &live[..live.len() - limit] {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
