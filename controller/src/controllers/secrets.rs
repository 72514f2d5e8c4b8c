//! Pull secrets of image pull jobs, copied into the agents' namespace (agents read
//! Secrets there only), as OpenKruise copies them into its daemon's: one copy per
//! source Secret, shared by every job that uses it, named after the source with a
//! hash of its namespace and name, annotated with its source and the jobs using it;
//! a copy is refreshed from its source on every pass and deleted when no job uses it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use stevedore_proto::crd::node_image::v1beta1::{ReferenceObject, ReferenceObjectMode};
use tracing::{info, warn};

/// The copy's source (`namespace/name`).
pub const SOURCE_KEY: &str = "imagepulljobs.kruise.io/source-key";
/// The jobs using the copy (`namespace/name`, sorted, comma-separated).
pub const REFERENCES: &str = "imagepulljobs.kruise.io/references";
/// `batch`: one copy shared by every job.
pub const MODE: &str = "imagepulljobs.kruise.io/mode";
/// Marks the copies, to list them.
pub const COPY_LABEL: &str = "stevedore.dev/pull-secret-copy";

/// The copy's name: the source's, with 8 hex digits of a hash of `namespace/name`.
pub fn copy_name(namespace: &str, name: &str) -> String {
    let h = stevedore_proto::hash::fnv32a(format!("{namespace}/{name}").as_bytes());
    let base: String = name.chars().take(240).collect();
    format!("{base}-{h:08x}")
}

fn references(s: &Secret) -> BTreeSet<String> {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REFERENCES))
        .map(|r| r.split(',').filter(|x| !x.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

fn set_references(s: &mut Secret, refs: &BTreeSet<String>) {
    let joined = refs.iter().cloned().collect::<Vec<_>>().join(",");
    s.metadata.annotations.get_or_insert_default().insert(REFERENCES.into(), joined);
}

/// Makes sure the copies of `sources` (Secrets in `job_ns`) exist in `agent_ns` with
/// the sources' data, used by `job` (`namespace/name`); returns the references a
/// NodeImage needs. A missing source is skipped with a warning.
///
/// # Errors
/// The API server refused a read or write.
pub async fn claim(
    client: &Client,
    agent_ns: &str,
    job_ns: &str,
    job: &str,
    sources: &[String],
) -> Result<Vec<ReferenceObject>, kube::Error> {
    if job_ns == agent_ns {
        return Ok(sources
            .iter()
            .map(|s| ReferenceObject { namespace: Some(job_ns.into()), name: Some(s.clone()), mode: None })
            .collect());
    }
    let src_api: Api<Secret> = Api::namespaced(client.clone(), job_ns);
    let copies: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let mut out = Vec::new();
    for src_name in sources {
        let Some(src) = src_api.get_opt(src_name).await? else {
            warn!(secret = %format!("{job_ns}/{src_name}"), job, "pull secret not found; pulling without it");
            continue;
        };
        let name = copy_name(job_ns, src_name);
        match copies.get_opt(&name).await? {
            None => {
                let mut annotations = src.metadata.annotations.clone().unwrap_or_default();
                annotations.insert(SOURCE_KEY.into(), format!("{job_ns}/{src_name}"));
                annotations.insert(REFERENCES.into(), job.into());
                annotations.insert(MODE.into(), "batch".into());
                let mut labels = src.metadata.labels.clone().unwrap_or_default();
                labels.insert(COPY_LABEL.into(), "true".into());
                let copy = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(agent_ns.into()),
                        labels: Some(labels),
                        annotations: Some(annotations),
                        ..ObjectMeta::default()
                    },
                    data: src.data.clone(),
                    type_: src.type_.clone(),
                    ..Secret::default()
                };
                copies.create(&PostParams::default(), &copy).await?;
                info!(copy = %name, source = %format!("{job_ns}/{src_name}"), "pull secret copied");
            }
            Some(mut copy) => {
                let mut refs = references(&copy);
                let changed =
                    refs.insert(job.to_string()) | (copy.data != src.data) | (copy.type_ != src.type_);
                if changed {
                    set_references(&mut copy, &refs);
                    copy.data = src.data.clone();
                    copy.type_ = src.type_.clone();
                    copies.replace(&name, &PostParams::default(), &copy).await?;
                }
            }
        }
        out.push(ReferenceObject {
            namespace: Some(agent_ns.into()),
            name: Some(name),
            mode: Some(ReferenceObjectMode::Batch),
        });
    }
    Ok(out)
}

/// `job` (`namespace/name`) no longer uses its copies: it leaves their references; a
/// copy nobody references is deleted.
///
/// # Errors
/// The API server refused a read or write.
pub async fn release(client: &Client, agent_ns: &str, job: &str) -> Result<(), kube::Error> {
    let copies: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let list = copies.list(&ListParams::default().labels(&format!("{COPY_LABEL}=true"))).await?;
    for mut copy in list.items {
        let mut refs = references(&copy);
        if !refs.remove(job) {
            continue;
        }
        let name = copy.metadata.name.clone().unwrap_or_default();
        if refs.is_empty() {
            copies.delete(&name, &DeleteParams::default()).await?;
            info!(copy = %name, "pull secret copy deleted: no job uses it");
        } else {
            set_references(&mut copy, &refs);
            copies.replace(&name, &PostParams::default(), &copy).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_named_after_their_source() {
        let a = copy_name("shop", "regcred");
        assert!(a.starts_with("regcred-") && a.len() == "regcred-".len() + 8, "{a}");
        assert_eq!(a, copy_name("shop", "regcred"), "stable");
        assert_ne!(a, copy_name("ops", "regcred"), "one copy per source");
        let mut s = Secret::default();
        set_references(&mut s, &["b/j".to_string(), "a/j".to_string()].into_iter().collect());
        assert_eq!(s.metadata.annotations.as_ref().unwrap()[REFERENCES], "a/j,b/j");
        assert_eq!(references(&s).len(), 2);
    }
}
