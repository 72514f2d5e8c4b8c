//! The resource check OpenKruise v1.9.0's BroadcastJob runs (the scheduler's
//! `noderesources.Fits` of Kubernetes v1.32) against a node that it gives **no
//! existing pods**: the pod's requests against the node's `status.allocatable`, not
//! against what is left of it.
//!
//! The pod's requests are those of the API: the sum of its containers' requests, or
//! more if an init container asks for more (restartable init containers, "sidecars",
//! add to everything after them), plus `spec.overhead`. Limits are not read (the API
//! server copies limits to absent requests on pods, not on templates). Resources
//! checked: the pod count (`allocatable.pods` must be at least 1), `cpu` (in
//! millicores), `memory`, `ephemeral-storage`, and the scalar resources (extended
//! resources such as `example.com/gpu`, `hugepages-*`, `attachable-volumes-*` and
//! `*kubernetes.io/*` names); other names are ignored, as Kubernetes ignores them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Insufficient, Unfit, affinity};
use crate::revision::quantity::{self, QuantityError};

const NANO: i128 = 1_000_000_000;

/// The resources of `spec` that `node`'s allocatable cannot hold, or why they could
/// not be read.
pub(super) fn fits(spec: &PodSpec, node: &Node) -> Option<Unfit> {
    match check(spec, node) {
        Ok(missing) if missing.is_empty() => None,
        Ok(resources) => Some(Unfit::InsufficientResources { resources }),
        Err(unfit) => Some(unfit),
    }
}

fn check(spec: &PodSpec, node: &Node) -> Result<Vec<Insufficient>, Unfit> {
    let requests = pod_requests(spec)?;
    let empty = BTreeMap::new();
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref()).unwrap_or(&empty);
    let available = |name: &str| -> Result<i128, Unfit> {
        match allocatable.get(name) {
            Some(q) => nano(&q.0).ok_or_else(|| malformed(format!("status.allocatable[{name}]"), q)),
            None => Ok(0),
        }
    };

    let mut missing = Vec::new();
    let pods = whole(available("pods")?);
    if pods < 1 {
        missing.push(Insufficient { resource: "pods".to_owned(), requested: 1, allocatable: pods });
    }
    // Each request in its resource's unit (millicores for cpu), rounded up; the same
    // order as Kubernetes: cpu, memory, ephemeral-storage, then scalar resources.
    let mut wanted: Vec<(Kind, &str, i64)> = requests
        .iter()
        .filter_map(|(name, q)| {
            let kind = kind(name);
            (kind != Kind::Other).then(|| (kind, name.as_str(), kind.unit(*q)))
        })
        .collect();
    wanted.sort();
    for (kind, name, requested) in wanted {
        // Nothing requested (or a negative request, which validation forbids) cannot
        // be short of anything.
        if requested <= 0 {
            continue;
        }
        let have = kind.unit(available(name)?);
        if requested > have {
            missing.push(Insufficient { resource: name.to_owned(), requested, allocatable: have });
        }
    }
    Ok(missing)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Cpu,
    Memory,
    EphemeralStorage,
    Scalar,
    Other,
}

impl Kind {
    /// A nano-unit amount in this resource's unit, rounded up.
    fn unit(self, nanos: i128) -> i64 {
        match self {
            Kind::Cpu => milli(nanos),
            _ => whole(nanos),
        }
    }
}

/// How Kubernetes' scheduler counts a resource name (`schedutil.IsScalarResourceName`).
fn kind(name: &str) -> Kind {
    match name {
        "cpu" => Kind::Cpu,
        "memory" => Kind::Memory,
        "ephemeral-storage" => Kind::EphemeralStorage,
        // The pod count is the node's, not a request.
        "pods" => Kind::Other,
        n if n.starts_with("hugepages-") || n.starts_with("attachable-volumes-") => Kind::Scalar,
        // `*kubernetes.io/*`: prefixed native resources.
        n if n.contains("kubernetes.io/") => Kind::Scalar,
        // Extended resources: a domain-prefixed name outside kubernetes.io that is a
        // valid quota name.
        n if n.contains('/')
            && !n.starts_with("requests.")
            && affinity::qualified_name(&format!("requests.{n}")).is_ok() =>
        {
            Kind::Scalar
        }
        _ => Kind::Other,
    }
}

fn malformed(field: String, q: &Quantity) -> Unfit {
    Unfit::MalformedQuantity { field, value: q.0.clone() }
}

type Amounts = BTreeMap<String, i128>;

fn read(list: Option<&BTreeMap<String, Quantity>>, path: &str) -> Result<Amounts, Unfit> {
    let mut out = Amounts::new();
    for (name, q) in list.into_iter().flatten() {
        let amount = nano(&q.0).ok_or_else(|| malformed(format!("{path}[{name}]"), q))?;
        out.insert(name.clone(), amount);
    }
    Ok(out)
}

fn add(to: &mut Amounts, from: &Amounts) {
    for (name, amount) in from {
        let slot = to.entry(name.clone()).or_default();
        *slot = slot.saturating_add(*amount);
    }
}

fn max(to: &mut Amounts, from: &Amounts) {
    for (name, amount) in from {
        let slot = to.entry(name.clone()).or_insert(*amount);
        *slot = (*slot).max(*amount);
    }
}

/// The pod's effective requests in nano-units (Kubernetes' `resource.PodRequests`).
fn pod_requests(spec: &PodSpec) -> Result<Amounts, Unfit> {
    let mut total = Amounts::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        add(&mut total, &read(requests, &format!("spec.containers[{i}].resources.requests"))?);
    }
    let mut sidecars = Amounts::new();
    let mut init = Amounts::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let own = read(requests, &format!("spec.initContainers[{i}].resources.requests"))?;
        if c.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running next to everything after it.
            add(&mut total, &own);
            add(&mut sidecars, &own);
            max(&mut init, &sidecars);
        } else {
            let mut with_sidecars = own;
            add(&mut with_sidecars, &sidecars);
            max(&mut init, &with_sidecars);
        }
    }
    max(&mut total, &init);
    add(&mut total, &read(spec.overhead.as_ref(), "spec.overhead")?);
    Ok(total)
}

fn ceil_div(n: i128, d: i128) -> i64 {
    let q = n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// Thousandths, rounded up (`Quantity.MilliValue`).
fn milli(nanos: i128) -> i64 {
    ceil_div(nanos, NANO / 1000)
}

/// Whole units, rounded up (`Quantity.Value`).
fn whole(nanos: i128) -> i64 {
    ceil_div(nanos, NANO)
}

/// A quantity in nano-units, rounded up, as Go's `ParseQuantity` reads it
/// ([`quantity::parse`]); amounts too large for its 128 bits saturate. `None` when it
/// is not a quantity.
pub(super) fn nano(s: &str) -> Option<i128> {
    match quantity::parse(s) {
        Ok(q) => Some(q.nanos()),
        Err(QuantityError::Range(_)) if s.starts_with('-') => Some(i128::MIN + 1),
        Err(QuantityError::Range(_)) => Some(i128::MAX),
        Err(_) => None,
    }
}
