//! OpenKruise v1.9.0's ControllerRevision names, hashes and data, reproduced byte for
//! byte, so that Stevedore taking over a running install finds the revisions the Go
//! controller wrote and does not mark any pod outdated.
//!
//! # How OpenKruise names a revision
//!
//! - The **data** of a workload revision is a patch that replaces the pod template:
//!   `{"spec":{"template":{"$patch":"replace",...}}}`. It is the workload's template
//!   as Go's struct marshal writes it (see [`template`]), decoded into Go's generic
//!   map and encoded again (see [`gojson`]): keys sorted at every depth, numbers
//!   printed as float64, strings HTML-escaped. Revisions are matched by these bytes.
//! - The **hash** is FNV-1 (not FNV-1a) over the data followed by the decimal text of
//!   the collision count. OpenKruise always passes a counter, so at least `"0"` is
//!   appended. The 32-bit sum is printed in decimal and each digit is mapped onto a
//!   27-letter alphabet without vowels ([`safe_encode_string`]).
//! - The **name** is `<parent>-<hash>`, the parent name cut to 223 bytes first. The
//!   hash alphabet has no `-`, so the segment after the last `-` is always the hash
//!   ([`short_hash`]).
//! - On a name clash with different data the collision count goes up by one and the
//!   name is computed again from the same data ([`revision_name`] with the new count);
//!   the `controller.kubernetes.io/hash` label keeps the first attempt's hash.
//!
//! # What is here
//!
//! - [`clone_set_revision`], [`stateful_set_revision`] and [`sidecar_set_revision`]
//!   give a workload's candidate revision (name, hash, data, labels, annotations);
//!   [`daemon_set_patch`] gives an Advanced DaemonSet's data for matching.
//! - [`spew`]: the hash that names a new Advanced DaemonSet revision
//!   ([`spew::daemon_set_hash`]): Kubernetes' `ComputeHash`, FNV-1a over a go-spew
//!   dump of the decoded pod template, not over the data.
//! - [`vct`]: CloneSet's claim-template hash annotation.
//! - [`sidecar_hash`]: SidecarSet's `kruise.io/sidecarset-hash` annotations.
//! - [`gojson`] re-encodes any JSON value as Go does; applied to the data of a
//!   revision Go wrote, it gives back the same bytes, so revisions compare by bytes.
//!
//! # Known limits
//!
//! - Resource quantities are rewritten to Go's canonical text ([`quantity`]).
//! - Zero values on plain Go fields in a pod template (`stdin: false`, `""`) are
//!   kept; Go's `omitempty` would drop them. Webhook-normalised objects have none.
//! - UnitedDeployment revisions are not computed.
//! - The Advanced DaemonSet hash is checked against a derived vector only (no Go run
//!   confirmed it); its own limits are listed in [`spew`].

pub mod gojson;
pub mod quantity;
pub mod sidecar_hash;
pub mod spew;
pub mod template;
pub mod vct;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

use crate::crd::clone_set::CloneSet;
use crate::crd::daemon_set::v1beta1::DaemonSet;
use crate::crd::sidecar_set::v1beta1::SidecarSet;
use crate::crd::stateful_set::v1beta1::StatefulSet;
use crate::hash::Fnv32;
use crate::keys::SIDECARSET_CUSTOM_VERSION;

/// The label every ControllerRevision carries with the hash of its first name.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// CloneSet revisions: the hash of the volume claim templates (empty without any).
pub const CLONESET_VCT_HASH_ANNOTATION: &str = "kruise.io/cloneset-volumeclaimtemplate-hash";

/// SidecarSet revisions: the name of the set they belong to.
pub const SIDECARSET_NAME_LABEL: &str = "kruise.io/sidecarset-name";

/// The most bytes of the parent's name a revision name keeps.
const MAX_PREFIX_BYTES: usize = 223;

/// The letters Kubernetes maps characters onto for safe, vowel-free names.
const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Why a revision could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    /// The pod template did not serialise to a JSON object.
    #[error("spec.template: cannot serialise the pod template: {0}")]
    Template(#[from] serde_json::Error),
    /// A resource quantity in the spec is not valid.
    #[error("spec: {0}")]
    Quantity(#[from] quantity::QuantityError),
    /// The pod template is not what Go would decode into a `corev1.PodTemplateSpec`.
    #[error("spec.template: {0}")]
    Dump(#[from] spew::DumpError),
}

/// A ControllerRevision as OpenKruise would create it for a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// `<parent>-<hash>`.
    pub name: String,
    /// The hash part of the name.
    pub hash: String,
    /// The revision's `data`, byte-exact.
    pub data: String,
    /// The revision's labels: the template's plus [`CONTROLLER_REVISION_HASH_LABEL`].
    pub labels: BTreeMap<String, String>,
    /// The revision's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Maps each character onto Kubernetes' 27-letter alphabet (`rand.SafeEncodeString`).
pub fn safe_encode_string(s: &str) -> String {
    s.chars().map(|c| char::from(SAFE_ALPHABET[(u32::from(c) % 27) as usize])).collect()
}

/// `HashControllerRevision`: FNV-1 over `data`, then over the decimal text of
/// `probe` if given, safe-encoded.
pub fn hash_controller_revision(data: &[u8], probe: Option<i32>) -> String {
    let mut h = Fnv32::default().write(data);
    if let Some(p) = probe {
        h = h.write(p.to_string().as_bytes());
    }
    safe_encode_string(&h.sum32().to_string())
}

/// `ControllerRevisionName`: `prefix` (cut to 223 bytes) + `-` + `hash`.
pub fn controller_revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(MAX_PREFIX_BYTES);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// The name and hash OpenKruise gives revision `data` of `parent` at
/// `collision_count` (0 when the status has none).
pub fn revision_name(parent: &str, data: &str, collision_count: i32) -> (String, String) {
    let hash = hash_controller_revision(data.as_bytes(), Some(collision_count));
    (controller_revision_name(parent, &hash), hash)
}

/// `GetShortHash`: the segment after the last `-` (the whole string without one).
pub fn short_hash(revision: &str) -> &str {
    revision.rsplit('-').next().unwrap_or(revision)
}

/// Whether a pod's revision label matches `revision`, in full or short form (the
/// CloneSet rule; other workloads compare exactly).
pub fn clone_set_revision_matches(label: &str, revision: &str) -> bool {
    label == revision || short_hash(label) == short_hash(revision)
}

/// The revision data that replaces the pod template: `{"spec":{"template":{"$patch":
/// "replace",...}}}`, as CloneSet, Advanced StatefulSet and Advanced DaemonSet write it.
pub fn template_patch(template: &PodTemplateSpec) -> Result<String, RevisionError> {
    let mut t = serde_json::to_value(template)?;
    template::normalise_pod_template(&mut t)?;
    if let Value::Object(m) = &mut t {
        m.insert("$patch".to_owned(), Value::String("replace".to_owned()));
    }
    let mut spec = Map::new();
    spec.insert("template".to_owned(), t);
    let mut root = Map::new();
    root.insert("spec".to_owned(), Value::Object(spec));
    Ok(gojson::encode(&Value::Object(root)))
}

fn template_revision(
    parent: &str,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
    annotations: BTreeMap<String, String>,
) -> Result<Revision, RevisionError> {
    let data = template_patch(template)?;
    let (name, hash) = revision_name(parent, &data, collision_count.unwrap_or(0));
    let mut labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_owned(), hash.clone());
    Ok(Revision { name, hash, data, labels, annotations })
}

/// The revision a CloneSet's current spec gives, at its status's collision count,
/// with the CloneSet's annotations and the claim-template hash
/// ([`vct::volume_claim_templates_hash`]).
pub fn clone_set_revision(cs: &CloneSet) -> Result<Revision, RevisionError> {
    let mut annotations = cs.metadata.annotations.clone().unwrap_or_default();
    let vcts = cs.spec.volume_claim_templates.as_deref().unwrap_or_default();
    annotations.insert(CLONESET_VCT_HASH_ANNOTATION.to_owned(), vct::volume_claim_templates_hash(vcts)?);
    let cc = cs.status.as_ref().and_then(|s| s.collision_count);
    template_revision(cs.metadata.name.as_deref().unwrap_or_default(), &cs.spec.template, cc, annotations)
}

/// The revision an Advanced StatefulSet's current spec gives, at its status's
/// collision count.
pub fn stateful_set_revision(set: &StatefulSet) -> Result<Revision, RevisionError> {
    let annotations = set.metadata.annotations.clone().unwrap_or_default();
    let cc = set.status.as_ref().and_then(|s| s.collision_count);
    template_revision(set.metadata.name.as_deref().unwrap_or_default(), &set.spec.template, cc, annotations)
}

/// The data of an Advanced DaemonSet's revision, by which OpenKruise matches the
/// set against its existing revisions (byte equality).
///
/// The hash in a DaemonSet revision's name is not derived from this data: a new
/// revision is named `<set>-<hash>` (never cut) with
/// [`spew::daemon_set_hash`] of `spec.template` at the status's `collisionCount`, and
/// carries that hash in its `controller-revision-hash` label. Existing revisions are
/// found by this data and keep the hash their label holds.
pub fn daemon_set_patch(ds: &DaemonSet) -> Result<String, RevisionError> {
    template_patch(&ds.spec.template)
}

/// The pod template a workload revision's `data` holds (`{"spec":{"template":{…,
/// "$patch":"replace"}}}`), as the workload's pods were made from it.
///
/// # Errors
/// The data holds no pod template.
pub fn template_from_data(data: &Value) -> Result<PodTemplateSpec, serde_json::Error> {
    let mut t = data.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t)
}

/// The revision an Advanced DaemonSet's current spec gives when none of its existing
/// revisions has equal data ([`daemon_set_patch`]): named `<set>-<hash>` (never cut)
/// with the go-spew hash of `spec.template` at the status's `collisionCount`
/// ([`spew::daemon_set_hash`]), labelled with the template's labels plus
/// `controller-revision-hash: <hash>`, annotated with the set's annotations.
pub fn daemon_set_revision(ds: &DaemonSet) -> Result<Revision, RevisionError> {
    let data = daemon_set_patch(ds)?;
    let cc = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = spew::daemon_set_hash(&ds.spec.template, cc)?;
    let name = format!("{}-{hash}", ds.metadata.name.as_deref().unwrap_or_default());
    let mut labels = ds.spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(crate::keys::CONTROLLER_REVISION_HASH.to_owned(), hash.clone());
    let annotations = ds.metadata.annotations.clone().unwrap_or_default();
    Ok(Revision { name, hash, data, labels, annotations })
}

/// The spec keys a SidecarSet revision keeps, each `null` when the spec has none.
const SIDECARSET_REVISION_KEYS: &[&str] =
    &["volumes", "containers", "initContainers", "imagePullSecrets", "patchPodMetadata"];

/// The revision data of a SidecarSet as v1.9.0 writes it:
/// `{"spec":{"$patch":"replace","containers":...,"imagePullSecrets":...,
/// "initContainers":...,"patchPodMetadata":...,"volumes":...}}`.
pub fn sidecar_set_patch(set: &SidecarSet) -> Result<String, RevisionError> {
    let mut spec = serde_json::to_value(&set.spec)?;
    template::canonical_quantities(&mut spec)?;
    let mut copy = Map::new();
    copy.insert("$patch".to_owned(), Value::String("replace".to_owned()));
    for key in SIDECARSET_REVISION_KEYS {
        let mut v = spec.get(*key).cloned().unwrap_or(Value::Null);
        if let (true, Value::Array(items)) = (matches!(*key, "containers" | "initContainers"), &mut v) {
            for item in items {
                if let Value::Object(c) = item {
                    // Go never omits these struct-valued fields.
                    for field in ["resources", "upgradeStrategy", "shareVolumePolicy"] {
                        c.entry(field).or_insert_with(|| Value::Object(Map::new()));
                    }
                }
            }
        }
        template::drop_empty(&mut v);
        // An empty list is omitted by Go's struct marshal, so the copy reads null.
        if matches!(&v, Value::Array(a) if a.is_empty()) {
            v = Value::Null;
        }
        copy.insert((*key).to_owned(), v);
    }
    let mut root = Map::new();
    root.insert("spec".to_owned(), Value::Object(copy));
    Ok(gojson::encode(&Value::Object(root)))
}

/// The revision a SidecarSet's current spec gives, at its status's collision count:
/// the set's labels plus the hash, set-name and custom-version labels, and the set's
/// annotations.
pub fn sidecar_set_revision(set: &SidecarSet) -> Result<Revision, RevisionError> {
    let data = sidecar_set_patch(set)?;
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let cc = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let (rev_name, hash) = revision_name(name, &data, cc);
    let mut labels = set.metadata.labels.clone().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_owned(), hash.clone());
    labels.insert(SIDECARSET_NAME_LABEL.to_owned(), name.to_owned());
    if let Some(v) = set.spec.custom_version.as_ref().filter(|v| !v.is_empty()) {
        labels.insert(SIDECARSET_CUSTOM_VERSION.to_owned(), v.clone());
    }
    let annotations = set.metadata.annotations.clone().unwrap_or_default();
    Ok(Revision { name: rev_name, hash, data, labels, annotations })
}

#[cfg(test)]
mod tests;
