//! Advanced DaemonSet (`apps.kruise.io`, stored as `v1beta1`), the node-local way: the
//! controller never creates, updates or watches the daemon pods. Each node's agent
//! creates and updates its own node's pod; the controller tells each node, in its
//! `NodeState.spec.daemonSets`, which revision it may move to now, and adds the
//! agents' reports (`NodeState.status.daemonSets`) up into the set's status.
//!
//! Each pass over a set:
//! 1. **revisions** ([`super::revisions`]): the update revision, found among the set's
//!    ControllerRevisions by its data or created with OpenKruise's name
//!    (`<set>-<go-spew hash>`); its `controller-revision-hash` label is the hash the
//!    pods carry;
//! 2. **placement**: which nodes the set targets, by `proto::placement::daemon_set`,
//!    the function each agent runs for its own node, so the desired count here and
//!    the pods there never disagree;
//! 3. **permits** ([`plan`]): which nodes may run the update revision now, under
//!    `burstReplicas`, `partition`, `maxUnavailable` / `maxSurge`, the rolling update's
//!    node `selector` and `paused`; each changed permit is one merge patch of that
//!    set's key in the node's `NodeState`;
//! 4. **status**: the counts OpenKruise shows, from the reports. A node whose agent
//!    has not reported, or whose report is older than the agents' silence limit (they
//!    write one at least every heartbeat), counts as desired and unavailable.

pub mod plan;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use k8s_openapi::{api::apps::v1::ControllerRevision, apimachinery::pkg::util::intstr::IntOrString};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        daemon_set::{RollingUpdateDaemonSet, RollingUpdateType, v1beta1::DaemonSet},
        node_state::{DaemonSetPermit, workload_key},
    },
    intstr::{self, Percent, Rounding},
    keys, placement, revision,
};
use tracing::{debug, instrument, warn};

use super::{node_states, revisions};
use crate::runtime::shared::SharedStore;

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The revision could not be computed.
    #[error(transparent)]
    Revision(#[from] revision::RevisionError),
    /// The history could not be kept.
    #[error(transparent)]
    History(#[from] revisions::Error),
    /// The spec cannot be acted on.
    #[error("{0}")]
    Spec(String),
    /// A permit could not be written.
    #[error(transparent)]
    Write(#[from] node_states::WriteError),
}

/// What passes share.
pub struct Ctx {
    /// The nodes, their NodeStates and the API.
    pub fleet: node_states::Fleet,
    /// Every ControllerRevision (a shared watch).
    pub revisions: SharedStore<ControllerRevision>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// The set's rolling update, defaulted as the webhook defaults it.
fn rolling_update(ds: &DaemonSet) -> RollingUpdateDaemonSet {
    ds.spec.update_strategy.as_ref().and_then(|u| u.rolling_update.clone()).unwrap_or_default()
}

/// The budget, scaled against `desired`.
pub fn limits(ds: &DaemonSet, desired: i64) -> Result<plan::Limits, Error> {
    let ru = rolling_update(ds);
    let scaled = |field: &str, v: Option<&IntOrString>, d: i32| {
        let v = v.cloned().unwrap_or(IntOrString::Int(d));
        intstr::scaled(&v, Percent::Integer, desired, Rounding::Up)
            .map_err(|e| Error::Spec(format!("{field}: {e}")))
    };
    let field = "spec.updateStrategy.rollingUpdate";
    let max_surge = scaled(&format!("{field}.maxSurge"), ru.max_surge.as_ref(), 0)?;
    let mut max_unavailable = scaled(&format!("{field}.maxUnavailable"), ru.max_unavailable.as_ref(), 1)?;
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let partition = scaled(&format!("{field}.partition"), ru.partition.as_ref(), 0)?.clamp(0, desired);
    let burst = scaled("spec.burstReplicas", ds.spec.burst_replicas.as_ref(), 250)?.max(1);
    let progressive = ds.spec.scale_strategy.as_ref().and_then(|s| s.partitioned_scaling) == Some(true)
        || ds.annotations().get(keys::PROGRESSIVE_CREATE_POD).map(String::as_str) == Some("true");
    Ok(plan::Limits {
        max_unavailable,
        max_surge,
        partition,
        burst,
        paused: ru.paused.unwrap_or(false),
        progressive,
    })
}

/// The hash a revision gives its pods: its `controller-revision-hash` label, or, on a
/// revision without one (written before the label existed), its name.
fn revision_hash(r: &ControllerRevision) -> String {
    r.labels().get(keys::CONTROLLER_REVISION_HASH).cloned().unwrap_or_else(|| r.name_any())
}

/// Whether a pod's hash label names revision `name` (`<set>-<hash>`, or the name
/// itself on legacy revisions).
fn hash_names(label: &str, name: &str) -> bool {
    name == label || name.strip_suffix(label).is_some_and(|p| p.ends_with('-'))
}

/// One pass over a set.
///
/// # Errors
/// The API refuses a request, or the spec cannot be acted on.
#[instrument(skip_all, fields(daemonset = %kube::runtime::reflector::ObjectRef::from_obj(&*ds)))]
pub async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.fleet.listed().await || ctx.revisions.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().ok_or_else(|| Error::Spec("the set has no uid yet".into()))?;
    if let Some(wait) = ctx.fleet.passes.wait(&uid) {
        return Ok(Action::requeue(wait));
    }
    let sets: Api<DaemonSet> = Api::namespaced(ctx.fleet.client.clone(), &ns);
    let revs_api: Api<ControllerRevision> = Api::namespaced(ctx.fleet.client.clone(), &ns);
    let owner = revisions::Owner {
        reference: revisions::owner(&*ds).ok_or_else(|| Error::Spec("the set has no uid yet".into()))?,
        namespace: ns.clone(),
        want: revision::daemon_set_revision(&ds)?,
        current: None,
        matches: hash_names,
    };
    let known = revisions::owned(&ctx.revisions, &uid);
    let revs = match revisions::sync(&revs_api, known, &owner).await {
        Ok(r) => r,
        Err(revisions::Error::Collision(rev)) => {
            let count = ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
            warn!(revision = %rev, collision_count = count, "revision name collision");
            let body = json!({"status": {"collisionCount": count}});
            sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await?;
            return Ok(Action::requeue(Duration::ZERO));
        }
        Err(e) => return Err(e.into()),
    };
    let hash = revision_hash(&revs.update);
    let key = workload_key(&ns, &name);
    let selector = rolling_update(&ds).selector;

    let mut views = Vec::new();
    let mut in_use = BTreeSet::new();
    let mut keep = BTreeSet::new();
    let mut freshness = node_states::Freshness::new(ctx.fleet.agent_silence, &ctx.fleet.heartbeats);
    for node in ctx.fleet.nodes.state() {
        let node_name = node.name_any();
        let place = placement::daemon_set(&node, &ds.spec.template);
        let state = ctx.fleet.states.get(&kube::runtime::reflector::ObjectRef::new(&node_name));
        let fresh = freshness.report(state.as_deref());
        let report = fresh
            .and_then(|st| st.daemon_sets.iter().find(|d| d.workload.uid == uid && d.pod.is_some()).cloned());
        if let Some(r) = report.as_ref().and_then(|r| r.revision.clone()) {
            in_use.insert(r);
        }
        let have = state.as_ref().and_then(|s| s.spec.daemon_sets.get(&key)).filter(|p| p.uid == uid);
        let permitted = have.is_some_and(|p| p.revision == hash && !p.waiting);
        // a pod here, in any report (a silent agent's too), or an entry already: the
        // node keeps an entry while the set targets it
        if place.should_continue_running
            && (have.is_some()
                || state.as_ref().and_then(|s| s.status.as_ref()).is_some_and(|st| {
                    st.daemon_sets.iter().any(|d| d.workload.uid == uid && d.pod.is_some())
                }))
        {
            keep.insert(node_name.clone());
        }
        let empty = Default::default();
        let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
        let on_selector = selector
            .as_ref()
            .is_none_or(|s| stevedore_proto::pod_order::label_selector_matches(s, labels).unwrap_or(false));
        views.push(plan::NodeView {
            name: node_name,
            should_run: place.should_run,
            should_continue: place.should_continue_running,
            on_selector,
            permitted,
            pod: report.map(|r| plan::PodReport {
                updated: r.revision.as_deref() == Some(hash.as_str()),
                ready: r.ready,
                available: r.available,
            }),
        });
    }
    let counts = plan::counts(&views);
    let limits = limits(&ds, i64::from(counts.desired))?;
    let permits = plan::permits(&views, &limits);

    // Entries: one merge patch of this set's key per node that changes.
    let ru = rolling_update(&ds);
    let entry = |waiting| DaemonSetPermit {
        uid: uid.clone(),
        revision: hash.clone(),
        waiting,
        surge: limits.max_surge > 0,
        in_place: ru.type_ == Some(RollingUpdateType::InPlaceIfPossible),
        min_ready_seconds: ds.spec.min_ready_seconds.unwrap_or(0).max(0),
        pre_delete: ds.spec.lifecycle.as_ref().and_then(|l| l.pre_delete.clone()),
    };
    let mut writes = Vec::new();
    for state in ctx.fleet.states.state() {
        let node_name = state.name_any();
        let want = if permits.contains(&node_name) {
            Some(entry(false))
        } else {
            keep.contains(&node_name).then(|| entry(true))
        };
        let have = state.spec.daemon_sets.get(&key);
        if have == want.as_ref() {
            continue;
        }
        // the merge patch from the old entry to the new one, so that none of the old
        // one's fields (a hook's labels included) is left behind
        let to_value = |p: Option<&DaemonSetPermit>| serde_json::to_value(p).unwrap_or_default();
        let Some(value) = crate::defaulting::merge_diff(&to_value(have), &to_value(want.as_ref())) else {
            continue;
        };
        writes.push((node_name, json!({"spec": {"daemonSets": {&key: value}}})));
    }
    if !writes.is_empty() {
        debug!(writes = writes.len(), revision = %hash, "writing permits");
    }
    ctx.fleet.writer.write(writes).await?;

    // Status.
    let old = ds.status.clone().unwrap_or_default();
    let st = stevedore_proto::crd::daemon_set::v1beta1::DaemonSetStatus {
        current_number_scheduled: counts.current,
        number_misscheduled: counts.misscheduled,
        desired_number_scheduled: counts.desired,
        number_ready: counts.ready,
        observed_generation: ds.metadata.generation,
        updated_number_scheduled: counts.updated,
        number_available: Some(counts.available),
        number_unavailable: Some(counts.desired - counts.available),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        update_revision: Some(hash.clone()),
    };
    if st != old {
        sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": st}))).await?;
    }
    revisions::truncate(&revs_api, &owner, ds.spec.revision_history_limit, &revs, &in_use).await?;
    Ok(freshness.next().map_or_else(Action::await_change, Action::requeue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_rewritten_whole() {
        use stevedore_proto::crd::common::LifecycleHook;
        let hook = |labels: &[&str]| LifecycleHook {
            labels_handler: Some(labels.iter().map(|l| ((*l).to_owned(), "true".to_owned())).collect()),
            ..LifecycleHook::default()
        };
        let old = DaemonSetPermit {
            uid: "u".into(),
            revision: "h1".into(),
            waiting: true,
            pre_delete: Some(hook(&["a", "b"])),
            ..DaemonSetPermit::default()
        };
        let new = DaemonSetPermit {
            revision: "h2".into(),
            waiting: false,
            pre_delete: Some(hook(&["a"])),
            ..old.clone()
        };
        let value = |p: &DaemonSetPermit| serde_json::to_value(p).unwrap();
        let patch = crate::defaulting::merge_diff(&value(&old), &value(&new)).unwrap();
        let mut merged = value(&old);
        json_patch::merge(&mut merged, &patch);
        assert_eq!(serde_json::from_value::<DaemonSetPermit>(merged).unwrap(), new, "{patch}");
        assert_eq!(patch["preDelete"]["labelsHandler"]["b"], serde_json::Value::Null);
    }

    #[test]
    fn hash_labels_name_revisions() {
        assert!(hash_names("5869d7778c", "agent-5869d7778c"));
        assert!(hash_names("agent-5869d7778c", "agent-5869d7778c"), "legacy revisions: the name itself");
        assert!(!hash_names("69d7778c", "agent-5869d7778c"));
    }

    #[test]
    fn limits_default_and_scale() {
        let mut ds = DaemonSet::new("d", Default::default());
        let l = limits(&ds, 10).unwrap();
        assert_eq!(
            l,
            plan::Limits {
                max_unavailable: 1,
                max_surge: 0,
                partition: 0,
                burst: 250,
                paused: false,
                progressive: false
            }
        );
        ds.spec.update_strategy = Some(stevedore_proto::crd::daemon_set::DaemonSetUpdateStrategy {
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(IntOrString::String("25%".into())),
                partition: Some(IntOrString::String("50%".into())),
                paused: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        let l = limits(&ds, 10).unwrap();
        assert_eq!((l.max_unavailable, l.partition, l.paused), (3, 5, true));
        assert!(!l.progressive);
        ds.annotations_mut().insert(keys::PROGRESSIVE_CREATE_POD.into(), "true".into());
        assert!(limits(&ds, 10).unwrap().progressive, "v1alpha1's annotation");
        ds.annotations_mut().clear();
        ds.spec.scale_strategy = Some(stevedore_proto::crd::daemon_set::DaemonSetScaleStrategy {
            partitioned_scaling: Some(true),
        });
        assert!(limits(&ds, 10).unwrap().progressive, "v1beta1's scaleStrategy");
        ds.spec.burst_replicas = Some(IntOrString::String("x".into()));
        assert!(limits(&ds, 10).unwrap_err().to_string().contains("spec.burstReplicas"));
    }
}
