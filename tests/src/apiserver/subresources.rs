//! `scale`, `pods/binding` and `pods/eviction`.

use std::sync::Arc;

use http::{Method, Response};
use serde_json::{Value, json};

use super::{
    Status, delete,
    handlers::{namespace, to_served},
    patch::{self, PatchType},
    resources::ResourceInfo,
    selectors::LabelSelector,
    server::{Body, Request, Shared, json as reply},
    status::{Cause, Qualified},
    store::{name_of, now, rv_of},
    write::{commit_update, parse_body},
};

fn get_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.').split('.').try_fold(o, |v, k| v.get(k))
}

fn set_path(o: &mut Value, path: &str, v: Value) {
    let mut cur = o;
    let keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    for k in &keys[..keys.len() - 1] {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[keys[keys.len() - 1]] = v;
}

fn to_scale(res: &ResourceInfo, o: &Value) -> Value {
    let paths = res.scale.clone().unwrap_or_else(|| super::resources::ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    });
    let selector = match &paths.label_selector {
        Some(p) => get_path(o, p).and_then(Value::as_str).unwrap_or_default().to_string(),
        None if res.crd.is_none() => LabelSelector::from_object(&o["spec"]["selector"]).to_query(),
        None => String::new(),
    };
    let m = &o["metadata"];
    let mut status = json!({"replicas": get_path(o, &paths.status_replicas).cloned().unwrap_or(json!(0))});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": get_path(o, &paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    })
}

/// GET, PUT and PATCH of `/scale` (autoscaling/v1 Scale).
///
/// # Errors
/// 404, 409 on a stale resourceVersion, 405 for other methods.
pub async fn scale(shared: &Arc<Shared>, res: &ResourceInfo, req: Request) -> Result<Response<Body>, Status> {
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let old = shared.lock().get(&res.key(), &ns, &name).cloned();
    let old = old.ok_or_else(|| Status::not_found(res.qualified(), &name))?;
    let old = to_served(shared, res, vec![old]).await?.remove(0);
    let current = to_scale(res, &old);
    let wanted = match req.method {
        Method::GET => return Ok(reply(200, &current)),
        Method::PUT => parse_body(&req)?,
        Method::PATCH => {
            let pt = PatchType::from_content_type(&req.content_type)?;
            patch::apply(pt, &current, &patch::parse_body(pt, &req.body)?)?
        }
        _ => return Err(Status::method_not_allowed()),
    };
    if let Some(rv) = wanted["metadata"]["resourceVersion"].as_str()
        && rv.parse::<u64>().ok() != Some(rv_of(&old))
    {
        return Err(Status::stale(res.qualified(), &name));
    }
    let Some(replicas) = wanted["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
        return Err(Status::invalid(
            "Scale",
            "autoscaling",
            &name,
            vec![Status::invalid_value(
                "spec.replicas",
                &wanted["spec"]["replicas"],
                "must be greater than or equal to 0",
            )],
        ));
    };
    let mut new = old.clone();
    let spec_path = res.scale.as_ref().map_or(".spec.replicas", |p| p.spec_replicas.as_str()).to_string();
    set_path(&mut new, &spec_path, json!(replicas));
    let out = commit_update(shared, res, &req.user, "scale", old.clone(), new, rv_of(&old), false).await?;
    Ok(reply(200, &to_scale(res, &out)))
}

fn created() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// POST `pods/{name}/binding`: assigns the pod to a node.
///
/// # Errors
/// 404, 409 when the pod is already bound, 400 without a target.
pub async fn bind(shared: &Arc<Shared>, res: &ResourceInfo, req: Request) -> Result<Response<Body>, Status> {
    let body = parse_body(&req)?;
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let node = body["target"]["name"].as_str().unwrap_or_default().to_string();
    let q = Qualified { group: "", resource: "pods/binding" };
    if node.is_empty() {
        return Err(Status::invalid("Binding", "", &name, vec![Status::required("target.name", "")]));
    }
    let mut state = shared.lock();
    let mut pod = state
        .get(&res.key(), &ns, &name)
        .cloned()
        .ok_or_else(|| Status::not_found(res.qualified(), &name))?;
    if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(Status::conflict(
            q,
            &name,
            &format!("pod {name} is already assigned to node \"{bound}\""),
        ));
    }
    if pod["metadata"].get("deletionTimestamp").is_some() {
        return Err(Status::conflict(
            q,
            &name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let mut conds: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "PodScheduled")
        .cloned()
        .collect();
    conds.push(json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}));
    pod["status"]["conditions"] = json!(conds);
    state.put(&res.key(), pod);
    Ok(reply(201, &created()))
}

/// POST `pods/{name}/eviction`: deletes the pod unless a PodDisruptionBudget forbids it.
///
/// # Errors
/// 404, 429 TooManyRequests when the budget allows no disruption, 500 for several budgets.
pub async fn evict(shared: &Arc<Shared>, res: &ResourceInfo, req: Request) -> Result<Response<Body>, Status> {
    let body = if req.body.is_empty() { json!({}) } else { parse_body(&req)? };
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let mut state = shared.lock();
    let pod = state
        .get(&res.key(), &ns, &name)
        .cloned()
        .ok_or_else(|| Status::not_found(res.qualified(), &name))?;
    let ignore_pdb =
        matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed" | "Pending") | None)
            || pod["metadata"].get("deletionTimestamp").is_some();
    if !ignore_pdb {
        let pdbs: Vec<Value> = state
            .list("policy/poddisruptionbudgets", Some(&ns))
            .filter(|p| {
                p["spec"].get("selector").is_some()
                    && LabelSelector::from_object(&p["spec"]["selector"]).matches(&pod)
            })
            .cloned()
            .collect();
        if pdbs.len() > 1 {
            return Err(Status::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(mut pdb) = pdbs.into_iter().next() {
            let allowed = pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
            if allowed <= 0 {
                let s = &pdb["status"];
                return Err(Status::too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    vec![Cause {
                        reason: "DisruptionBudget".into(),
                        message: format!(
                            "The disruption budget {} needs {} healthy pods and has {} currently",
                            name_of(&pdb),
                            s["desiredHealthy"].as_i64().unwrap_or(0),
                            s["currentHealthy"].as_i64().unwrap_or(0)
                        ),
                        field: String::new(),
                    }],
                ));
            }
            pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
            pdb["status"]["disruptedPods"][name.as_str()] = json!(now());
            state.put("policy/poddisruptionbudgets", pdb);
        }
    }
    let opts = delete::Options {
        grace: body["deleteOptions"]["gracePeriodSeconds"].as_i64(),
        ..delete::Options::background()
    };
    delete::delete_object(&mut state, &res.key(), &ns, &name, &opts)?;
    Ok(reply(201, &created()))
}
