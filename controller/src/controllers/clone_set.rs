//! CloneSet (`apps.kruise.io/v1alpha1`), after OpenKruise v1.9.0's
//! `pkg/controller/cloneset`.
//!
//! Each pass over a set:
//! 1. **revisions** ([`super::revisions`]): the update revision of the current spec, byte-exact
//!    as OpenKruise names it, so a set OpenKruise managed keeps its revisions;
//! 2. **refresh**: pods in the middle of an in-place update are carried on by the shared
//!    engine ([`stevedore_proto::inplace`]): grace periods, the next priority batch,
//!    `InPlaceUpdateReady` set True when their containers report the new image;
//!    lifecycle hooks move pods between PreparingNormal, Normal and PreparingDelete;
//! 3. **scale or update** ([`plan`], never both in one pass): create pods (and their
//!    claims, reusing the ids of orphaned claims), delete pods (marked ones first, then
//!    old-revision ones, in OpenKruise's scale-in order), or move old pods to the update
//!    revision, in place when only images and labels/annotations change
//!    (`InPlaceIfPossible`, `InPlaceOnly`), else by marking them for deletion;
//! 4. **status**, then history beyond `revisionHistoryLimit` is deleted.
//!
//! The pods are read from a shared watch; a pass that created or deleted pods waits
//! until the watch shows them (expectations) before acting again.

pub mod plan;
pub mod pods;
pub mod predownload;
pub mod status;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::{
    api::{
        apps::v1::ControllerRevision,
        core::v1::{PersistentVolumeClaim, Pod},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{controller::Action, reflector::Store},
};
use serde_json::json;
use stevedore_proto::{
    crd::clone_set::{CloneSet, CloneSetUpdateStrategyType},
    inplace::{self, Eligibility},
    intstr::{self, Percent, Rounding},
    keys, pod_order, revision,
};
use tracing::{debug, info, instrument, warn};

use self::{plan::PodInfo, pods::state};
use super::{
    pod_readiness::{self, RefreshError, Refreshed},
    revisions,
};
use crate::runtime::shared::SharedStore;
use crate::runtime::{Events, Expectations, expectations::Seen};

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The revision could not be computed.
    #[error(transparent)]
    Revision(#[from] stevedore_proto::revision::RevisionError),
    /// An in-place update step failed.
    #[error(transparent)]
    InPlace(#[from] inplace::InPlaceError),
    /// The spec (or a revision) cannot be acted on.
    #[error("{0}")]
    Spec(String),
    /// The history could not be kept.
    #[error(transparent)]
    History(#[from] super::revisions::Error),
}

/// What passes share.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Events on the sets.
    pub events: Events,
    /// Every pod (a shared watch).
    pub pods: Store<Pod>,
    /// Every ControllerRevision (a shared watch).
    pub revisions: SharedStore<ControllerRevision>,
    /// Pods created or deleted that the watch has not shown yet.
    pub expectations: Expectations,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

impl Ctx {
    /// Passes reading pods from `pods` and revisions from `revisions`.
    pub fn new(
        client: Client,
        events: Events,
        pods: Store<Pod>,
        revisions: SharedStore<ControllerRevision>,
    ) -> Self {
        Self { client, events, pods, revisions, expectations: Expectations::default() }
    }
}

/// `updateStrategy.partition` scaled against `replicas` (rounded up, clamped).
pub fn partition(cs: &CloneSet) -> i64 {
    let replicas = i64::from(cs.spec.replicas.unwrap_or(1).max(0));
    cs.spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.partition.as_ref())
        .and_then(|p| intstr::scaled(p, Percent::Integer, replicas, Rounding::Up).ok())
        .unwrap_or(0)
        .clamp(0, replicas)
}

/// The numbers the plan needs, from the spec.
pub fn limits(cs: &CloneSet) -> Result<plan::Limits, Error> {
    let replicas = i64::from(cs.spec.replicas.unwrap_or(1).max(0));
    let u = cs.spec.update_strategy.clone().unwrap_or_default();
    let scaled =
        |field: &str, v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>, d: &str, r| {
            let v = v.cloned().unwrap_or_else(|| {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(d.into())
            });
            intstr::scaled(&v, Percent::Integer, replicas, r)
                .map_err(|e| Error::Spec(format!("{field}: {e}")))
        };
    let max_surge = scaled("spec.updateStrategy.maxSurge", u.max_surge.as_ref(), "0%", Rounding::Up)?;
    // maxUnavailable rounds up without surge, down with it (OpenKruise)
    let rounding = if max_surge > 0 { Rounding::Down } else { Rounding::Up };
    let mut max_unavailable =
        scaled("spec.updateStrategy.maxUnavailable", u.max_unavailable.as_ref(), "20%", rounding)?;
    if max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let scale_max_unavailable = cs
        .spec
        .scale_strategy
        .as_ref()
        .and_then(|s| s.max_unavailable.as_ref())
        .map(|v| scaled("spec.scaleStrategy.maxUnavailable", Some(v), "0", Rounding::Up))
        .transpose()?;
    let paused = u.paused.unwrap_or(false);
    Ok(plan::Limits {
        replicas,
        partition: partition(cs),
        max_surge: if paused { 0 } else { max_surge },
        max_unavailable,
        scale_max_unavailable,
        paused,
    })
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    pod.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Scale-in order (OpenKruise's CloneSet pod sorter): the first goes first.
fn deletion_order(active: &[&Pod], min_ready: i32, now: Timestamp) -> Vec<String> {
    let mut v: Vec<&Pod> = active.to_vec();
    pod_order::sort_for_deletion(&mut v, |p| pods::available(p, min_ready, now).0);
    v.into_iter().map(ResourceExt::name_any).collect()
}

/// Update order: `ActivePods`, then the priority and scatter strategies, pods
/// waiting in PreparingUpdate first.
fn update_order(cs: &CloneSet, active: &[&Pod]) -> Vec<String> {
    let u = cs.spec.update_strategy.as_ref();
    let mut v: Vec<&Pod> = active.to_vec();
    pod_order::sort_active(&mut v);
    pod_order::sort_for_update(
        &mut v,
        active,
        u.and_then(|u| u.priority_strategy.as_ref()),
        u.and_then(|u| u.scatter_strategy.as_deref()),
    );
    v.sort_by_key(|p| pods::lifecycle_state(p) != state::PREPARING_UPDATE);
    v.into_iter().map(ResourceExt::name_any).collect()
}

/// Pods one pass creates at most (in slow-start batches); a larger scale-up goes on in
/// the next pass, so the status follows it instead of jumping at the end of one pass
/// of minutes.
const CREATE_PER_PASS: usize = 1000;

/// Creates in flight at once within a slow-start batch: each is a connection of its
/// own to the API server (kube's client speaks HTTP/1.1), with its TLS buffers.
const CREATE_IN_FLIGHT: usize = 32;

/// One pass over one set.
///
/// # Errors
/// The API server refused, or the spec cannot be acted on.
#[instrument(skip_all, fields(cloneset = %format!("{}/{}", cs.namespace().unwrap_or_default(), cs.name_any())))]
pub async fn reconcile(cs: Arc<CloneSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if cs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cs.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", cs.name_any());
    let uid = cs.uid().unwrap_or_default();
    let now = Timestamp::now();
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns) && owned_by(p, &uid))
        .collect();
    let seen: HashMap<String, Seen> = owned
        .iter()
        .map(|p| {
            (
                p.name_any(),
                if p.metadata.deletion_timestamp.is_some() { Seen::Terminating } else { Seen::Live },
            )
        })
        .collect();
    ctx.expectations.observe(&key, |n| seen.get(n).copied().unwrap_or(Seen::Absent));
    if !ctx.expectations.satisfied(&key) {
        debug!("waiting for the watch to show this set's creations and deletions");
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let active: Vec<&Pod> = owned.iter().map(AsRef::as_ref).filter(|p| is_active(p)).collect();

    let revs_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let sets: Api<CloneSet> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = revisions::Owner {
        reference: revisions::owner(&*cs).ok_or_else(|| Error::Spec("the set has no uid yet".into()))?,
        namespace: ns.clone(),
        want: revision::clone_set_revision(&cs)?,
        current: cs.status.as_ref().and_then(|s| s.current_revision.as_deref()),
        matches: revision::clone_set_revision_matches,
    };
    if ctx.revisions.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let known = revisions::owned(&ctx.revisions, &owner.reference.uid);
    let revs = match revisions::sync(&revs_api, known, &owner).await {
        Ok(r) => r,
        Err(revisions::Error::Collision(name)) => {
            let count = cs.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
            warn!(revision = %name, collision_count = count, "revision name collision");
            sets.patch_status(
                &cs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"collisionCount": count}})),
            )
            .await?;
            return Ok(Action::requeue(Duration::ZERO));
        }
        Err(e) => return Err(e.into()),
    };
    let limits = limits(&cs)?;
    predownload::run(&ctx.client, &ctx.events, &cs, &revs, limits.partition, limits.max_unavailable).await?;
    let update_rev = revs.update.name_any();
    let current_rev = revs.current.name_any();
    let update_template = revisions::template(&revs.update)?;
    let lifecycle = cs.spec.lifecycle.clone().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut next: Option<Duration> = None;
    let mut soon = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));

    // Refresh: in-place updates, readiness gates, lifecycle.
    for pod in &active {
        let name = pod.name_any();
        match pod_readiness::refresh_in_place(&ctx.client, pod, now).await {
            Ok(Refreshed::Grace(d)) => soon(d),
            Ok(Refreshed::Updating) => soon(Duration::from_secs(2)),
            Ok(Refreshed::GraceFinished) => info!(pod = %name, "grace period over: images patched"),
            Ok(Refreshed::NextBatch) => info!(pod = %name, "next container batch patched"),
            Ok(Refreshed::MarkedReady) => {
                if pods::lifecycle_state(pod) == state::UPDATING {
                    let normal = pods::state_patch(state::NORMAL, now);
                    pod_api.patch(&name, &PatchParams::default(), &Patch::Merge(&normal)).await?;
                }
                if inplace::state(pod).ok().flatten().is_some() {
                    ctx.events
                        .publish(
                            &*cs,
                            false,
                            "SuccessfulUpdatePodInPlace",
                            format!("pod {name} updated in place"),
                        )
                        .await;
                }
            }
            Ok(Refreshed::Nothing) => {}
            Err(RefreshError::Api(e)) => return Err(e.into()),
            Err(RefreshError::InPlace(e)) => {
                warn!(pod = %name, error = %e, "cannot carry the pod's in-place update on");
            }
        }
        match pods::lifecycle_state(pod) {
            state::PREPARING_NORMAL if pods::all_hooked(pod, lifecycle.pre_normal.as_ref()) => {
                pod_api
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&pods::state_patch(state::NORMAL, now)),
                    )
                    .await?;
            }
            state::PREPARING_DELETE if !pods::hooked(pod, lifecycle.pre_delete.as_ref()) => {
                delete_pod(&ctx, &key, &pod_api, &cs, pod, true).await?;
            }
            _ => {}
        }
        if let (false, Some(d)) = pods::available(pod, cs.spec.min_ready_seconds.unwrap_or(0), now) {
            soon(d);
        }
    }

    // Scale or update.
    let to_delete: BTreeSet<&str> = cs
        .spec
        .scale_strategy
        .iter()
        .flat_map(|s| s.pods_to_delete.iter().flatten())
        .map(String::as_str)
        .collect();
    let min_ready = cs.spec.min_ready_seconds.unwrap_or(0);
    let infos: Vec<PodInfo> = active
        .iter()
        .map(|p| PodInfo {
            name: p.name_any(),
            updated: pods::on_revision(p, &update_rev),
            available: pods::available(p, min_ready, now).0,
            specified_delete: p.labels().contains_key(keys::SPECIFIED_DELETE)
                || to_delete.contains(p.name_any().as_str()),
            preparing_delete: pods::lifecycle_state(p) == state::PREPARING_DELETE,
        })
        .collect();
    let plan =
        plan::plan(&limits, &infos, &deletion_order(&active, min_ready, now), &update_order(&cs, &active));
    let mut failed_update = None;
    if !plan.is_empty() {
        debug!(?plan, "plan");
    }
    if !plan.delete.is_empty() {
        for name in &plan.delete {
            let Some(pod) = active.iter().find(|p| &p.name_any() == name) else { continue };
            let replaced = infos.iter().any(|i| &i.name == name && i.specified_delete);
            if pods::hooked(pod, lifecycle.pre_delete.as_ref()) {
                pod_api
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(&pods::state_patch(state::PREPARING_DELETE, now)),
                    )
                    .await?;
                continue;
            }
            delete_pod(&ctx, &key, &pod_api, &cs, pod, !replaced).await?;
        }
    }
    if plan.create_current + plan.create_update > 0 {
        let current_template = revisions::template(&revs.current)?;
        let mut wanted: Vec<(String, &k8s_openapi::api::core::v1::PodTemplateSpec)> = Vec::new();
        wanted.extend((0..plan.create_current).map(|_| (current_rev.clone(), &current_template)));
        wanted.extend((0..plan.create_update).map(|_| (update_rev.clone(), &update_template)));
        // the ids of pods deleted in this pass are free again (their claims stay)
        let remaining: Vec<&Pod> =
            active.iter().copied().filter(|p| !plan.delete.contains(&p.name_any())).collect();
        if wanted.len() > CREATE_PER_PASS {
            wanted.truncate(CREATE_PER_PASS);
            soon(Duration::ZERO);
        }
        create_pods(&ctx, &key, &cs, &remaining, &wanted).await?;
    }
    if !plan.update.is_empty() {
        let strategy = cs.spec.update_strategy.as_ref().and_then(|u| u.type_.clone()).unwrap_or_default();
        let grace = cs
            .spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.in_place_update_strategy.as_ref())
            .and_then(|s| s.grace_period_seconds)
            .unwrap_or(0);
        for name in &plan.update {
            let Some(pod) = active.iter().find(|p| &p.name_any() == name) else { continue };
            let from = pod.labels().get(keys::CONTROLLER_REVISION_HASH).and_then(|l| revs.of_label(l));
            let eligibility = match (&strategy, from) {
                (CloneSetUpdateStrategyType::ReCreate, _) => {
                    Eligibility::Recreate("updateStrategy.type is ReCreate".into())
                }
                (_, None) => Eligibility::Recreate("the pod's revision is gone from the history".into()),
                (_, Some(r)) => inplace::plan(&update_rev, &revisions::template(r)?, &update_template),
            };
            match eligibility {
                Eligibility::InPlace(spec) => {
                    if pods::hooked(pod, lifecycle.in_place_update.as_ref())
                        && pods::lifecycle_state(pod) != state::PREPARING_UPDATE
                    {
                        pod_api
                            .patch(
                                name,
                                &PatchParams::default(),
                                &Patch::Merge(&pods::state_patch(state::PREPARING_UPDATE, now)),
                            )
                            .await?;
                        continue;
                    }
                    if pods::lifecycle_state(pod) == state::PREPARING_UPDATE
                        && pods::hooked(pod, lifecycle.in_place_update.as_ref())
                    {
                        continue;
                    }
                    update_in_place(&pod_api, pod, &spec, &update_rev, grace).await?;
                    soon(Duration::from_secs(1));
                }
                Eligibility::Recreate(reason) if strategy == CloneSetUpdateStrategyType::InPlaceOnly => {
                    failed_update = Some(format!("InPlaceOnly cannot update pod {name}: {reason}"));
                    break;
                }
                Eligibility::Recreate(reason) => {
                    info!(pod = %name, %reason, "updating by recreation");
                    pod_api
                        .patch(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {"labels": {keys::SPECIFIED_DELETE: "true"}}})),
                        )
                        .await?;
                }
            }
        }
    }

    // Status.
    let mut st = status::compute(&cs, &active, &update_rev, &current_rev, now);
    status::set_condition(&mut st, "FailedUpdate", "InPlaceOnly", failed_update.clone(), now);
    if let Some(msg) = &failed_update {
        ctx.events.publish(&*cs, true, "FailedUpdate", msg.clone()).await;
    }
    if cs.status.as_ref() != Some(&st) {
        sets.patch_status(&cs.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": st})))
            .await?;
    }
    let in_use: BTreeSet<String> =
        owned.iter().filter_map(|p| p.labels().get(keys::CONTROLLER_REVISION_HASH).cloned()).collect();
    revisions::truncate(&revs_api, &owner, cs.spec.revision_history_limit, &revs, &in_use).await?;
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

async fn update_in_place(
    pod_api: &Api<Pod>,
    pod: &Pod,
    spec: &inplace::UpdateSpec,
    rev: &str,
    grace: i32,
) -> Result<(), Error> {
    let name = pod.name_any();
    let mut labels = BTreeMap::new();
    labels.insert(keys::CONTROLLER_REVISION_HASH.to_owned(), rev.to_owned());
    labels.insert(keys::POD_TEMPLATE_HASH.to_owned(), stevedore_proto::revision::short_hash(rev).to_owned());
    if spec.changes_containers() {
        labels.insert(keys::LIFECYCLE_STATE.to_owned(), state::UPDATING.to_owned());
    }
    // the pass read `pod` from the watch, which may lag: the step reads it as stored
    if stevedore_proto::pod_write::start_in_place::<Error>(pod_api, &name, spec, &labels, grace).await? {
        info!(pod = %name, images = ?spec.container_images, env = ?spec.env_from_metadata, "in-place update started");
    } else {
        debug!(pod = %name, revision = rev, "in-place update already started (or the pod is gone)");
    }
    Ok(())
}

async fn delete_pod(
    ctx: &Ctx,
    key: &str,
    pod_api: &Api<Pod>,
    cs: &CloneSet,
    pod: &Pod,
    claims_too: bool,
) -> Result<(), Error> {
    let name = pod.name_any();
    ctx.expectations.expect_delete(key, &name);
    match pod_api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => ctx.expectations.cancel(key, &name),
        Err(e) => {
            ctx.expectations.cancel(key, &name);
            return Err(e.into());
        }
    }
    info!(pod = %name, "pod deleted");
    ctx.events.publish(cs, false, "SuccessfulDelete", format!("succeed to delete pod {name}")).await;
    let disable_reuse = cs.spec.scale_strategy.as_ref().and_then(|s| s.disable_pvc_reuse).unwrap_or(false);
    if (claims_too || disable_reuse)
        && let Some(id) = pods::instance_id(pod)
    {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        for vct in cs.spec.volume_claim_templates.iter().flatten() {
            let claim =
                pods::claim_name(vct.metadata.name.as_deref().unwrap_or_default(), &cs.name_any(), id);
            match claims.delete(&claim, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Creates `wanted` pods (revision, template) in slow-start batches of 1, 2, 4, ...,
/// stopping at the first failure; ids of orphaned claims are reused first.
async fn create_pods(
    ctx: &Ctx,
    key: &str,
    cs: &CloneSet,
    active: &[&Pod],
    wanted: &[(String, &k8s_openapi::api::core::v1::PodTemplateSpec)],
) -> Result<(), Error> {
    let ns = cs.namespace().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let used = pods::ids(active);
    let has_claims = cs.spec.volume_claim_templates.as_ref().is_some_and(|v| !v.is_empty());
    let reuse = !cs.spec.scale_strategy.as_ref().and_then(|s| s.disable_pvc_reuse).unwrap_or(false);
    let mut free: Vec<String> = Vec::new();
    if has_claims && reuse {
        let uid = cs.uid().unwrap_or_default();
        let lp = ListParams::default().labels(keys::CLONESET_INSTANCE_ID);
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for c in claims_api.list(&lp).await?.items {
            if c.owner_references().iter().any(|o| o.uid == uid)
                && c.metadata.deletion_timestamp.is_none()
                && let Some(id) = c.labels().get(keys::CLONESET_INSTANCE_ID)
                && !used.contains_key(id)
            {
                ids.insert(id.clone());
            }
        }
        free.extend(ids);
    }
    let lifecycle = cs.spec.lifecycle.clone().unwrap_or_default();
    let initial = if lifecycle.pre_normal.is_some() { state::PREPARING_NORMAL } else { state::NORMAL };
    let mut queue: Vec<Pod> = Vec::new();
    let mut taken: BTreeSet<String> = used.keys().cloned().collect();
    for (rev, template) in wanted {
        let id = loop {
            let id = free.pop().unwrap_or_else(pods::random_id);
            if taken.insert(id.clone()) {
                break id;
            }
        };
        if has_claims {
            for claim in pods::new_claims(cs, &id) {
                match claims_api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        queue.push(pods::new_pod(cs, rev, template, &id, initial));
    }
    let mut batch = 1;
    let mut queue = queue.into_iter();
    loop {
        let chunk: Vec<Pod> = queue.by_ref().take(batch).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = chunk.iter().map(ResourceExt::name_any).collect();
        for n in &names {
            ctx.expectations.expect_create(key, n);
        }
        let results: Vec<Result<Pod, kube::Error>> = futures_util::stream::iter(chunk)
            .map(|p| {
                let api = pod_api.clone();
                async move { api.create(&PostParams::default(), &p).await }
            })
            .buffered(CREATE_IN_FLIGHT)
            .collect()
            .await;
        let mut first_error = None;
        for (name, r) in names.iter().zip(results) {
            match r {
                Ok(_) => {
                    ctx.events
                        .publish(cs, false, "SuccessfulCreate", format!("succeed to create pod {name}"))
                        .await;
                }
                Err(e) => {
                    ctx.expectations.cancel(key, name);
                    ctx.events
                        .publish(cs, true, "FailedCreate", format!("failed to create pod {name}: {e}"))
                        .await;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        info!(count = names.len(), "pods created");
        batch *= 2;
    }
}
