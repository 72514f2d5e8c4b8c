//! What admission handlers may read from the cluster: a [`Cluster`] the
//! [`Registry`](super::Registry) hands to the handlers it registers. Handlers run on
//! blocking threads, so reads block: [`ApiServer`] waits for the API server on the
//! runtime it was made on, under a timeout. [`NoCluster`] (tools that only list the
//! endpoints) refuses every read; [`Objects`] answers from a fixed set, for tests.

use std::{collections::HashMap, time::Duration};

use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject},
};
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The webhook server runs without an API server client.
    #[error("the webhook server has no API server client")]
    NoClient,
    /// The API server refused or failed.
    #[error("cannot read {what}: {source}")]
    Api {
        /// The object (`pod shop/web-0`).
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("reading {what} took longer than {timeout:?}")]
    Timeout {
        /// The object.
        what: String,
        /// How long the read waited.
        timeout: Duration,
    },
    /// The object does not read as its type.
    #[error("{what} cannot be read: {source}")]
    Decode {
        /// The object.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads objects for admission handlers. Called from a handler's blocking thread.
pub trait Cluster: Send + Sync + 'static {
    /// The object `name` of `resource` (in `namespace` for namespaced kinds), or
    /// `None` when there is none.
    ///
    /// # Errors
    /// The object could not be read.
    fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, LookupError>;
}

/// `namespace/name` (or `name`) of a `K`, as messages name it: `pod shop/web-0`.
fn describe<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
    let kind = K::kind(&()).to_lowercase();
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The `K` named `name` (in `namespace`), read through `cluster`.
///
/// # Errors
/// It could not be read, or not as a `K`.
pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
    cluster: &dyn Cluster,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<K>, LookupError> {
    let resource = ApiResource::erase::<K>(&());
    let Some(value) = cluster.get(&resource, namespace, name)? else { return Ok(None) };
    serde_json::from_value(value)
        .map(Some)
        .map_err(|source| LookupError::Decode { what: describe::<K>(namespace, name), source })
}

/// Reads through the API server.
#[derive(Clone)]
pub struct ApiServer {
    client: Client,
    runtime: Handle,
    timeout: Duration,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Reads with `client` on the current runtime, each read waiting at most
    /// `timeout`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, runtime: Handle::current(), timeout }
    }
}

impl Cluster for ApiServer {
    fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, LookupError> {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let what = || match namespace {
            Some(ns) => format!("{} {ns}/{name}", resource.kind.to_lowercase()),
            None => format!("{} {name}", resource.kind.to_lowercase()),
        };
        let read = tokio::time::timeout(self.timeout, api.get_opt(name));
        match self.runtime.block_on(read) {
            Err(_) => Err(LookupError::Timeout { what: what(), timeout: self.timeout }),
            Ok(Err(source)) => Err(LookupError::Api { what: what(), source }),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(obj))) => serde_json::to_value(obj)
                .map(Some)
                .map_err(|source| LookupError::Decode { what: what(), source }),
        }
    }
}

/// No cluster: every read fails with [`LookupError::NoClient`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCluster;

impl Cluster for NoCluster {
    fn get(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
    ) -> Result<Option<serde_json::Value>, LookupError> {
        Err(LookupError::NoClient)
    }
}

/// A fixed set of objects, for tests and tools that run handlers without an API
/// server.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    objects: HashMap<(String, String, String), serde_json::Value>,
}

impl Objects {
    /// Adds `obj` (replacing one of the same kind, namespace and name).
    ///
    /// # Panics
    /// When `obj` does not serialize (a bug in its type).
    #[must_use]
    pub fn with<K: Resource<DynamicType = ()> + serde::Serialize>(mut self, obj: &K) -> Self {
        let meta = obj.meta();
        let key = (
            K::plural(&()).into_owned(),
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let value = serde_json::to_value(obj).expect("an API object serializes");
        self.objects.insert(key, value);
        self
    }
}

impl Cluster for Objects {
    fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, LookupError> {
        let key = (resource.plural.clone(), namespace.unwrap_or_default().to_owned(), name.to_owned());
        Ok(self.objects.get(&key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(ns: &str, name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"namespace": ns, "name": name, "uid": "u1"}}))
            .unwrap()
    }

    #[test]
    fn objects_answer_by_kind_namespace_and_name() {
        let objects = Objects::default().with(&pod("shop", "web-0"));
        let found: Option<Pod> = get(&objects, Some("shop"), "web-0").unwrap();
        assert_eq!(found.unwrap().metadata.uid.as_deref(), Some("u1"));
        assert!(get::<Pod>(&objects, Some("ops"), "web-0").unwrap().is_none());
        assert!(get::<Pod>(&objects, Some("shop"), "web-1").unwrap().is_none());
    }

    #[test]
    fn no_cluster_refuses_every_read() {
        let err = get::<Pod>(&NoCluster, Some("shop"), "web-0").unwrap_err();
        assert_eq!(err.to_string(), "the webhook server has no API server client");
    }

    /// A kube client whose every request is answered by `answer`.
    fn client(answer: fn(&http::Request<kube::client::Body>) -> (u16, serde_json::Value)) -> Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| async move {
            let (code, body) = answer(&req);
            let resp = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            Ok::<_, std::convert::Infallible>(resp)
        });
        Client::new(service, "default")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_server_is_asked_from_a_blocking_thread() {
        let client = client(|req| {
            if req.uri().path() == "/api/v1/namespaces/shop/pods/web-0" {
                (
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"namespace": "shop", "name": "web-0", "uid": "u1"}}),
                )
            } else {
                (
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not found"}),
                )
            }
        });
        let api = ApiServer::new(client, Duration::from_secs(5));
        let (found, missing) = tokio::task::spawn_blocking(move || {
            (get::<Pod>(&api, Some("shop"), "web-0"), get::<Pod>(&api, Some("shop"), "web-1"))
        })
        .await
        .unwrap();
        assert_eq!(found.unwrap().unwrap().metadata.uid.as_deref(), Some("u1"));
        assert!(missing.unwrap().is_none());
    }
}
