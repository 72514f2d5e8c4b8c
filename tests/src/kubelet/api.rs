//! The kubelet's writes to the API server: pod status (kubelet's status manager),
//! the final delete, and the ConfigMaps/Secrets an environment reads.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tracing::debug;

use super::status::{Observed, pod_status};
use super::{Error, Result};

fn pods(client: &kube::Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"))
}

/// Writes the status computed from `obs`, if it differs from the pod's; on a conflict
/// re-reads the pod and computes again (up to 5 times). Returns the status written or
/// found to be current.
pub async fn write_status(client: &kube::Client, pod: &Pod, obs: &Observed) -> Result<()> {
    let api = pods(client, pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut pod = pod.clone();
    for _ in 0..5 {
        let want = pod_status(&pod, obs);
        if pod.status.as_ref() == Some(&want) {
            return Ok(());
        }
        let mut next = pod.clone();
        next.status = Some(want);
        match api.replace_status(&name, &PostParams::default(), &next).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!(pod = %name, "status conflict; re-reading");
                match api.get_opt(&name).await? {
                    Some(p) if p.metadata.uid == pod.metadata.uid => pod = p,
                    _ => return Ok(()),
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes the pod for good (grace 0, this uid only), as kubelet does once its
/// containers are gone. A pod already gone is fine.
pub async fn delete_pod(client: &kube::Client, pod: &Pod) -> Result<()> {
    let api = pods(client, pod);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The named ConfigMaps and Secrets of `namespace` that exist, as string maps.
pub async fn fetch_sources(
    client: &kube::Client,
    namespace: &str,
    config_maps: &[String],
    secrets: &[String],
) -> Result<(HashMap<String, BTreeMap<String, String>>, HashMap<String, BTreeMap<String, String>>)> {
    let (mut cms, mut secs) = (HashMap::new(), HashMap::new());
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in config_maps {
        if let Some(cm) = cm_api.get_opt(name).await? {
            let mut data = cm.data.unwrap_or_default();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            cms.insert(name.clone(), data);
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in secrets {
        if let Some(s) = secret_api.get_opt(name).await? {
            let mut data: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            data.extend(s.string_data.unwrap_or_default());
            secs.insert(name.clone(), data);
        }
    }
    Ok((cms, secs))
}
