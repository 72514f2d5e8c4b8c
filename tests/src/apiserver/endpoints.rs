//! Webhook Services reached the way a cluster reaches them: through the Service's
//! ports and the addresses its `Endpoints` or `EndpointSlice`s list, as stored in the
//! server. A test or user points a Service at a webhook server on loopback by writing
//! an `Endpoints` (or an `EndpointSlice` labelled `kubernetes.io/service-name`) with
//! `127.0.0.1` and its port, as a real cluster's endpoints controller would list pods.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock, Weak},
};

use serde_json::Value;

use super::{admission::client::ServiceResolver, server::Shared, store::State};

/// Resolves Services through the Endpoints and EndpointSlices of the server it is
/// bound to (when [`super::ApiServer::start`] starts it); before that, or once the server is gone,
/// nothing resolves.
#[derive(Debug, Clone, Default)]
pub struct StoredEndpoints(Arc<RwLock<Weak<Shared>>>);

impl StoredEndpoints {
    /// Resolves through `shared`'s store from now on.
    pub(crate) fn bind(&self, shared: &Arc<Shared>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(shared);
    }
}

impl ServiceResolver for StoredEndpoints {
    fn resolve(&self, namespace: &str, name: &str, port: i32) -> Option<SocketAddr> {
        let shared = self.0.read().unwrap_or_else(|e| e.into_inner()).upgrade()?;
        let state = shared.lock();
        resolve(&state, namespace, name, port)
    }
}

/// Tries the caller's resolver first, then the stored endpoints.
pub(crate) struct Chain<A>(pub A, pub StoredEndpoints);

impl<A: ServiceResolver> ServiceResolver for Chain<A> {
    fn resolve(&self, namespace: &str, name: &str, port: i32) -> Option<SocketAddr> {
        self.0.resolve(namespace, name, port).or_else(|| self.1.resolve(namespace, name, port))
    }
}

/// The Service port `port` of `namespace/name`: its name and target port (a number, or
/// a port name the endpoints carry).
fn service_port(state: &State, namespace: &str, name: &str, port: i32) -> Option<(String, Value)> {
    let svc = state.get("/services", namespace, name)?;
    let ports = svc["spec"]["ports"].as_array()?;
    let p = ports.iter().find(|p| p["port"].as_i64() == Some(i64::from(port)))?;
    let target = match &p["targetPort"] {
        Value::Null => Value::from(port),
        t => t.clone(),
    };
    Some((p["name"].as_str().unwrap_or_default().to_string(), target))
}

/// The endpoint port for a Service port: matched by name (a single unnamed port
/// matches an unnamed Service port).
fn endpoint_port(ports: &[Value], port_name: &str, target: &Value) -> Option<u16> {
    let by_name = ports.iter().find(|p| p["name"].as_str().unwrap_or_default() == port_name);
    let p = by_name
        .or_else(|| target.as_i64().and_then(|t| ports.iter().find(|p| p["port"].as_i64() == Some(t))))?;
    u16::try_from(p["port"].as_i64()?).ok()
}

/// The first ready address serving `namespace/name:port`.
pub(crate) fn resolve(state: &State, namespace: &str, name: &str, port: i32) -> Option<SocketAddr> {
    let (port_name, target) = service_port(state, namespace, name, port)?;
    if let Some(ep) = state.get("/endpoints", namespace, name) {
        for subset in ep["subsets"].as_array().into_iter().flatten() {
            let ports = subset["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
            let Some(p) = endpoint_port(ports, &port_name, &target) else { continue };
            let ip = subset["addresses"].as_array().into_iter().flatten().find_map(|a| ip_of(&a["ip"]));
            if let Some(ip) = ip {
                return Some(SocketAddr::new(ip, p));
            }
        }
    }
    for slice in state.list("discovery.k8s.io/endpointslices", Some(namespace)) {
        if slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(name) {
            continue;
        }
        let ports = slice["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
        let Some(p) = endpoint_port(ports, &port_name, &target) else { continue };
        let ready = |e: &&Value| e["conditions"]["ready"].as_bool() != Some(false);
        let ip = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(ready)
            .find_map(|e| e["addresses"].as_array()?.iter().find_map(ip_of));
        if let Some(ip) = ip {
            return Some(SocketAddr::new(ip, p));
        }
    }
    None
}

fn ip_of(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state() -> State {
        let mut s = State::new(10);
        s.put(
            "/services",
            json!({"metadata": {"name": "hook", "namespace": "sys"},
                   "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 9443},
                                      {"name": "metrics", "port": 80, "targetPort": "m"}]}}),
        );
        s
    }

    #[test]
    fn endpoints_by_port_name() {
        let mut s = state();
        assert_eq!(resolve(&s, "sys", "hook", 443), None, "no endpoints yet");
        s.put(
            "/endpoints",
            json!({"metadata": {"name": "hook", "namespace": "sys"},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                                "ports": [{"name": "https", "port": 40001}, {"name": "metrics", "port": 40002}]}]}),
        );
        assert_eq!(resolve(&s, "sys", "hook", 443), Some("127.0.0.1:40001".parse().unwrap()));
        assert_eq!(resolve(&s, "sys", "hook", 80), Some("127.0.0.1:40002".parse().unwrap()));
        assert_eq!(resolve(&s, "sys", "hook", 8443), None, "not a port of the Service");
        assert_eq!(resolve(&s, "other", "hook", 443), None);
    }

    #[test]
    fn endpoint_slices_skip_unready() {
        let mut s = state();
        s.put(
            "discovery.k8s.io/endpointslices",
            json!({"metadata": {"name": "hook-x1", "namespace": "sys",
                                "labels": {"kubernetes.io/service-name": "hook"}},
                   "addressType": "IPv4",
                   "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": false}},
                                 {"addresses": ["127.0.0.3"], "conditions": {"ready": true}}],
                   "ports": [{"name": "https", "port": 40003}]}),
        );
        assert_eq!(resolve(&s, "sys", "hook", 443), Some("127.0.0.3:40003".parse().unwrap()));
    }
}
