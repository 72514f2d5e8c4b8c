//! The pods and claims a CloneSet creates, and how it reads its pods: OpenKruise
//! v1.9.0's names (`<set>-<id>`, claims `<template>-<set>-<id>`), labels (revision,
//! short hash, instance id, lifecycle state), the `InPlaceUpdateReady` readiness gate,
//! and its availability and lifecycle-hook rules.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher as _, Hasher as _},
};

use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume},
    jiff::{SignedDuration, Timestamp},
};
use kube::{ResourceExt, api::ObjectMeta};
use stevedore_proto::{crd::clone_set::CloneSet, inplace, keys, pod_order, revision};

use super::super::revisions::owner;

pub use stevedore_proto::lifecycle::{
    all_hooked, current_state as lifecycle_state, hooked, state, state_patch,
};

/// Kubernetes' alphabet for generated names (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A new 5-character instance id.
pub fn random_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_nanosecond().unsigned_abs());
    let mut v = h.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(v % ALPHABET.len() as u64) as usize];
            v /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// The name of a claim of `template` for instance `id` of `set`.
pub fn claim_name(template: &str, set: &str, id: &str) -> String {
    format!("{template}-{set}-{id}")
}

/// The pod of instance `id` on revision `rev` (name and template).
pub fn new_pod(cs: &CloneSet, rev: &str, template: &PodTemplateSpec, id: &str, lifecycle_state: &str) -> Pod {
    let set = cs.name_any();
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(keys::CONTROLLER_REVISION_HASH.to_owned(), rev.to_owned());
    labels.insert(keys::POD_TEMPLATE_HASH.to_owned(), revision::short_hash(rev).to_owned());
    labels.insert(keys::CLONESET_INSTANCE_ID.to_owned(), id.to_owned());
    labels.insert(keys::LIFECYCLE_STATE.to_owned(), lifecycle_state.to_owned());
    let mut spec = template.spec.clone().unwrap_or_default();
    inplace::add_readiness_gate(&mut spec.readiness_gates);
    for vct in cs.spec.volume_claim_templates.iter().flatten() {
        let name = vct.metadata.name.clone().unwrap_or_default();
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != name);
        volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&name, &set, id),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{set}-{id}")),
            namespace: cs.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: owner(cs).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The claims of instance `id`: one per claim template, labelled with the selector's
/// labels and the instance id.
pub fn new_claims(cs: &CloneSet, id: &str) -> Vec<PersistentVolumeClaim> {
    let set = cs.name_any();
    cs.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|vct| {
            let name = vct.metadata.name.clone().unwrap_or_default();
            let mut labels = vct.metadata.labels.clone().unwrap_or_default();
            labels.extend(cs.spec.selector.match_labels.clone().unwrap_or_default());
            labels.insert(keys::CLONESET_INSTANCE_ID.to_owned(), id.to_owned());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&name, &set, id)),
                    namespace: cs.namespace(),
                    labels: Some(labels),
                    annotations: vct.metadata.annotations.clone(),
                    owner_references: owner(cs).map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec: vct.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// The pod's instance id.
pub fn instance_id(pod: &Pod) -> Option<&str> {
    pod.labels().get(keys::CLONESET_INSTANCE_ID).map(String::as_str)
}

/// Whether the pod is on revision `rev`.
pub fn on_revision(pod: &Pod, rev: &str) -> bool {
    pod.labels()
        .get(keys::CONTROLLER_REVISION_HASH)
        .is_some_and(|l| revision::clone_set_revision_matches(l, rev))
}

/// When the pod became Ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// Whether the pod counts as available at `now`, and if it will once
/// `minReadySeconds` pass, how long that takes.
pub fn available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> (bool, Option<std::time::Duration>) {
    let state = lifecycle_state(pod);
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    if !(state.is_empty() || state == state::NORMAL) || !running || !inplace::is_in_place_ready(pod) {
        return (false, None);
    }
    if pod_order::pod_available(pod, min_ready_seconds, now) {
        return (true, None);
    }
    // ready but not yet for long enough: available a second after minReadySeconds
    let Some(since) = ready_since(pod) else { return (false, None) };
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds.max(0)) + 1);
    (false, (now < at).then(|| now.duration_until(at).unsigned_abs()))
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Pod names by instance id (to find which ids are free).
pub fn ids(pods: &[&Pod]) -> BTreeMap<String, String> {
    pods.iter().filter_map(|p| Some((instance_id(p)?.to_owned(), p.name_any()))).collect()
}
