//! Routing of resource requests to verbs, reads, and conversion between versions.

use std::sync::Arc;

use http::{Method, Response};
use serde_json::{Value, json};

use super::{
    Status, delete,
    negotiate::{self, Format},
    resources::ResourceInfo,
    selectors::{FieldSelector, LabelSelector},
    server::{Body, Request, Shared, json as reply},
    store::State,
    subresources, table, watch, write,
};

const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";

fn no_resource() -> Status {
    Status::new(404, "NotFound", "the server could not find the requested resource")
}

/// Serves one resource request.
///
/// # Errors
/// The request's failure as a `metav1.Status`.
pub async fn dispatch(shared: &Arc<Shared>, req: Request) -> Result<Response<Body>, Status> {
    let t = &req.target;
    let res =
        shared.lock().registry.find(&t.group, &t.version, &t.plural).cloned().ok_or_else(no_resource)?;
    if (!res.namespaced && t.namespace.is_some())
        || (res.namespaced && t.name.is_some() && t.namespace.is_none())
    {
        return Err(no_resource());
    }
    let read = req.method == Method::GET && t.sub.is_none();
    let format = negotiate::choose(&req.accept, Some(&res), read)?;
    let sub = t.sub.clone();
    if req.method == Method::GET && req.query.flag("watch") && t.name.is_none() && sub.is_none() {
        return watch::watch(shared, res, req, format).await;
    }
    let resp = serve(shared, &res, req, format).await?;
    Ok(negotiate::encode(resp, format).await)
}

async fn serve(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    req: Request,
    format: Format,
) -> Result<Response<Body>, Status> {
    let res = res.clone();
    let t = &req.target;
    let sub = t.sub.clone();
    match (&req.method, t.name.is_some(), sub.as_deref()) {
        (&Method::GET, false, None) => {
            let list = list(shared, &res, &req).await?;
            Ok(match format {
                Format::Table { beta } => reply(200, &table::of_list(shared, &res, &req, list, beta)),
                _ => reply(200, &list),
            })
        }
        (&Method::POST, false, None) => write::create(shared, &res, req).await,
        (&Method::DELETE, false, None) => delete::delete_collection(shared, &res, req).await,
        (&Method::GET, true, None | Some("status")) if sub.as_deref().is_none_or(|s| res.has(s)) => {
            let obj = get(shared, &res, &req).await?;
            Ok(match format {
                Format::Table { beta } => reply(200, &table::of_object(shared, &res, &req, obj, beta)),
                _ => reply(200, &obj),
            })
        }
        (&Method::PUT, true, None | Some("status")) if sub.as_deref().is_none_or(|s| res.has(s)) => {
            write::update(shared, &res, req).await
        }
        (&Method::PATCH, true, None | Some("status")) if sub.as_deref().is_none_or(|s| res.has(s)) => {
            write::patch(shared, &res, req).await
        }
        (&Method::DELETE, true, None) => delete::delete(shared, &res, req).await,
        (_, true, Some("scale")) if res.has("scale") => subresources::scale(shared, &res, req).await,
        (&Method::POST, true, Some("binding")) if res.has("binding") => {
            subresources::bind(shared, &res, req).await
        }
        (&Method::GET, true, Some("log")) if res.has("log") => super::logs::pod_log(shared, &res, req).await,
        (&Method::POST, true, Some("eviction")) if res.has("eviction") => {
            subresources::evict(shared, &res, req).await
        }
        (_, _, Some(s)) if !res.has(s) => Err(no_resource()),
        _ => Err(Status::method_not_allowed()),
    }
}

/// The namespace an object of `res` lives in for this request.
pub fn namespace(res: &ResourceInfo, req: &Request) -> String {
    if res.namespaced { req.target.namespace.clone().unwrap_or_default() } else { String::new() }
}

/// The CRD object behind a custom resource.
pub fn crd_of(state: &State, res: &ResourceInfo) -> Option<Value> {
    state.get(CRD_KEY, "", res.crd.as_deref()?).cloned()
}

/// Converts stored objects to the version `res` serves.
///
/// # Errors
/// The converter's failure.
pub async fn to_served(
    shared: &Shared,
    res: &ResourceInfo,
    objects: Vec<Value>,
) -> Result<Vec<Value>, Status> {
    convert(shared, res, objects, &res.api_version()).await
}

/// Converts an object of the served version to the storage version.
///
/// # Errors
/// The converter's failure.
pub async fn to_storage(shared: &Shared, res: &ResourceInfo, object: Value) -> Result<Value, Status> {
    let want = super::resources::api_version(&res.group, &res.storage_version);
    let mut out = convert(shared, res, vec![object], &want).await?;
    out.pop().ok_or_else(|| Status::internal("conversion returned no object"))
}

/// Whether `object` of `res` is already at version `want` (`group/version`): built-in
/// resources have one, a custom resource's object says which it holds.
pub fn at_version(res: &ResourceInfo, object: &Value, want: &str) -> bool {
    res.crd.is_none() || object["apiVersion"] == want
}

async fn convert(
    shared: &Shared,
    res: &ResourceInfo,
    objects: Vec<Value>,
    want: &str,
) -> Result<Vec<Value>, Status> {
    if objects.iter().all(|o| at_version(res, o, want)) {
        return Ok(objects);
    }
    let Some(crd) = crd_of(&shared.lock(), res) else { return Ok(objects) };
    let n = objects.len();
    let out = shared.hooks.converter.convert(&crd, objects, want).await?;
    if out.len() != n {
        return Err(Status::internal(format!("conversion returned {} objects for {n}", out.len())));
    }
    Ok(out)
}

/// GET of one object (also `/status`).
///
/// # Errors
/// 404 NotFound.
pub async fn get(shared: &Shared, res: &ResourceInfo, req: &Request) -> Result<Value, Status> {
    let name = req.target.name.as_deref().unwrap_or_default();
    let obj = shared.lock().get(&res.key(), &namespace(res, req), name).cloned();
    let obj = obj.ok_or_else(|| Status::not_found(res.qualified(), name))?;
    Ok(to_served(shared, res, vec![obj]).await?.remove(0))
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    /// From the `labelSelector` and `fieldSelector` parameters.
    ///
    /// # Errors
    /// 400 on a malformed selector or an unsupported field.
    pub fn parse(res: &ResourceInfo, req: &Request) -> Result<Self, Status> {
        Ok(Self {
            labels: LabelSelector::parse(req.query.get("labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(req.query.get("fieldSelector").unwrap_or_default(), res)?,
        })
    }

    /// Whether an object is selected.
    pub fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// The value every selected object has at a field, if the field selector requires one.
    pub fn exact_field(&self, path: &str) -> Option<&str> {
        self.fields.exact(path)
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields == FieldSelector::default()
    }
}

fn parse_continue(token: &str) -> Option<(u64, String, String)> {
    let (rv, rest) = token.split_once(':')?;
    let (ns, name) = rest.split_once('/')?;
    Some((rv.parse().ok()?, ns.to_string(), name.to_string()))
}

/// LIST with `limit`, `continue`, selectors.
///
/// # Errors
/// 400 on bad selectors or tokens, 410 on an expired continue token.
pub async fn list(shared: &Shared, res: &ResourceInfo, req: &Request) -> Result<Value, Status> {
    let sel = Selectors::parse(res, req)?;
    let limit: usize =
        req.query.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let after = match req.query.get("continue") {
        None => None,
        Some(t) => Some(parse_continue(t).ok_or_else(|| Status::bad_request("continue key is not valid"))?),
    };
    let ns = req.target.namespace.clone().filter(|_| res.namespaced);
    let (items, list_rv, more, remaining) = {
        let state = shared.lock();
        let list_rv = match &after {
            Some((rv, _, _)) if *rv < state.compacted(&res.key()) => {
                return Err(Status::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            Some((rv, _, _)) => *rv,
            None => state.rv(),
        };
        let from = after.as_ref().map(|(_, n, m)| (n.as_str(), m.as_str()));
        // one object by name, in one namespace or cluster-scoped, is looked up, not
        // found by walking them all (each of 5,000 node agents lists its Node and its
        // NodeState so)
        let named = match (sel.exact_field("metadata.name"), res.namespaced, ns.as_deref(), &after) {
            (Some(name), false, _, None) => Some(("", name)),
            (Some(name), true, Some(n), None) => Some((n, name)),
            _ => None,
        };
        let candidates: Box<dyn Iterator<Item = &Value>> = match named {
            Some((n, name)) => Box::new(state.get(&res.key(), n, name).into_iter()),
            None => Box::new(state.list_after(&res.key(), ns.as_deref(), from)),
        };
        let mut matching = candidates.filter(|o| sel.matches(o));
        let items: Vec<Value> = matching.by_ref().take(limit).cloned().collect();
        // counted only where it is told (remainingItemCount, without selectors)
        let rest = if sel.is_empty() { matching.count() } else { usize::from(matching.next().is_some()) };
        (items, list_rv, rest > 0, rest)
    };
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if more && let Some(last) = items.last() {
        let token = format!("{list_rv}:{}/{}", super::store::ns_of(last), super::store::name_of(last));
        metadata["continue"] = json!(token);
        if sel.is_empty() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let items = to_served(shared, res, items).await?;
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}
