//! Deletion: finalizers, pod grace periods, propagation policies and the garbage collector.

use std::{collections::HashSet, sync::Arc};

use http::Response;
use serde_json::{Value, json};

use super::{
    Status,
    handlers::{Selectors, namespace, to_served},
    resources::ResourceInfo,
    server::{Body, Request, Shared, json as reply},
    status::success,
    store::{State, name_of, ns_of, rv_of, uid_of},
    write::admit_delete,
};

const FOREGROUND: &str = "foregroundDeletion";
const PODS: &str = "/pods";

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are collected after the owner is gone (the default).
    Background,
    /// Blocking dependents go first, then the owner.
    Foreground,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

/// `DeleteOptions`, from the query and the body.
#[derive(Debug, Clone)]
pub struct Options {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy`.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub rv: Option<String>,
    /// `dryRun: [All]` in the body (kube-rs sends it there) or `dryRun=All` in the query.
    pub dry_run: bool,
}

impl Options {
    fn from_request(req: &Request) -> Result<Self, Status> {
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            super::write::parse_body(req)
                .map_err(|e| Status::bad_request(format!("bad DeleteOptions: {}", e.message)))?
        };
        let grace = req
            .query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or(body["gracePeriodSeconds"].as_i64());
        let policy = req.query.get("propagationPolicy").or(body["propagationPolicy"].as_str());
        let propagation = match policy {
            None | Some("Background") => Propagation::Background,
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(other) => return Err(Status::bad_request(format!("unknown propagationPolicy {other:?}"))),
        };
        let propagation = if body["orphanDependents"] == true { Propagation::Orphan } else { propagation };
        let pre = &body["preconditions"];
        let dry_run = req.query.get("dryRun") == Some("All")
            || body["dryRun"].as_array().is_some_and(|d| d.contains(&json!("All")));
        Ok(Self {
            dry_run,
            grace,
            propagation,
            uid: pre["uid"].as_str().map(String::from),
            rv: pre["resourceVersion"].as_str().map(String::from),
        })
    }

    /// Default options.
    pub fn background() -> Self {
        Self { grace: None, propagation: Propagation::Background, uid: None, rv: None, dry_run: false }
    }
}

/// Whether a deletion may complete: deletionTimestamp set, no finalizers, no grace left.
pub fn finished(o: &Value) -> bool {
    let m = &o["metadata"];
    m.get("deletionTimestamp").is_some()
        && m["finalizers"].as_array().is_none_or(Vec::is_empty)
        && m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
}

/// What a delete did.
#[derive(Debug)]
pub enum Outcome {
    /// The object is gone.
    Removed(Value),
    /// The object stays, marked for deletion.
    Pending(Value),
}

fn dependents(state: &State, owner_uid: &str) -> Vec<(String, Value)> {
    state
        .everything()
        .filter(|(_, o)| owner_refs(o).iter().any(|r| r["uid"] == owner_uid))
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect()
}

fn owner_refs(o: &Value) -> Vec<Value> {
    o["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default()
}

fn mark(o: &mut Value, grace: i64) {
    if o["metadata"].get("deletionTimestamp").is_none() {
        let when = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(grace);
        o["metadata"]["deletionTimestamp"] = json!(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
}

/// Deletes one object under the lock.
///
/// # Errors
/// 404, or 409 for a failed precondition.
pub fn delete_object(
    state: &mut State,
    key: &str,
    ns: &str,
    name: &str,
    opts: &Options,
) -> Result<Outcome, Status> {
    let qualified =
        |s: &State| s.registry.by_key(key).map(|r| (r.group.clone(), r.plural.clone())).unwrap_or_default();
    let (group, plural) = qualified(state);
    let q = super::status::Qualified { group: &group, resource: &plural };
    let mut obj = state.get(key, ns, name).cloned().ok_or_else(|| Status::not_found(q, name))?;
    if let Some(uid) = &opts.uid
        && uid != uid_of(&obj)
    {
        return Err(Status::conflict(
            q,
            name,
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", uid_of(&obj)),
        ));
    }
    if let Some(rv) = &opts.rv
        && rv.parse::<u64>().ok() != Some(rv_of(&obj))
    {
        return Err(Status::conflict(
            q,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                rv_of(&obj)
            ),
        ));
    }
    let uid = uid_of(&obj).to_string();
    if opts.propagation == Propagation::Orphan {
        for (k, mut d) in dependents(state, &uid) {
            let refs: Vec<Value> = owner_refs(&d).into_iter().filter(|r| r["uid"] != uid.as_str()).collect();
            d["metadata"]["ownerReferences"] = json!(refs);
            state.put(&k, d);
        }
    }
    let mut grace = 0;
    if key == PODS {
        let bound = obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        let terminal = matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        let default = obj["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        grace = if bound && !terminal { opts.grace.unwrap_or(default).max(0) } else { 0 };
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if grace > 0 && current.is_some_and(|c| c <= grace) {
            return Ok(Outcome::Pending(obj));
        }
    }
    let foreground = opts.propagation == Propagation::Foreground && !dependents(state, &uid).is_empty();
    let finalizers = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if grace == 0 && !foreground && !finalizers {
        let gone = remove_now(state, key, ns, name).ok_or_else(|| Status::not_found(q, name))?;
        collect_garbage(state);
        return Ok(Outcome::Removed(gone));
    }
    mark(&mut obj, grace);
    if foreground {
        let mut f = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        if !f.contains(&json!(FOREGROUND)) {
            f.push(json!(FOREGROUND));
        }
        obj["metadata"]["finalizers"] = json!(f);
    }
    let stored = state.put(key, obj);
    collect_garbage(state);
    Ok(Outcome::Pending(stored))
}

/// Removes an object now, with what goes with it: a namespace's contents, a CRD's
/// resource and objects.
pub fn remove_now(state: &mut State, key: &str, ns: &str, name: &str) -> Option<Value> {
    let gone = state.remove(key, ns, name)?;
    if key == "/namespaces" {
        let inside: Vec<(String, String)> = state
            .everything()
            .filter(|(_, o)| ns_of(o) == name)
            .map(|(k, o)| (k.clone(), name_of(o).to_string()))
            .collect();
        for (k, n) in inside {
            state.remove(&k, name, &n);
        }
    }
    if key == "apiextensions.k8s.io/customresourcedefinitions"
        && let Some(rs) = state.registry.remove_custom(name)
        && let Some(r) = rs.first()
    {
        let k = r.key();
        let objs: Vec<(String, String)> =
            state.list(&k, None).map(|o| (ns_of(o).to_string(), name_of(o).to_string())).collect();
        for (n, o) in objs {
            state.remove(&k, &n, &o);
        }
        state.drop_resource(&k);
    }
    Some(gone)
}

enum Action {
    Delete(String, String, String, Propagation),
    StripRefs(String, String, String, HashSet<String>),
    Unblock(String, String, String),
}

/// The garbage collector, run to a fixed point after every removal: dependents whose
/// owners are all gone are deleted, dangling references beside live owners are removed,
/// and owners in foreground deletion lose their finalizer once no blocking dependent is left.
pub fn collect_garbage(state: &mut State) {
    for _ in 0..100 {
        let uids: HashSet<String> = state.everything().map(|(_, o)| uid_of(o).to_string()).collect();
        let mut actions = Vec::new();
        for (k, o) in state.everything() {
            let id = || (k.clone(), ns_of(o).to_string(), name_of(o).to_string());
            let refs = owner_refs(o);
            let dangling: HashSet<String> = refs
                .iter()
                .filter_map(|r| r["uid"].as_str())
                .filter(|u| !uids.contains(*u))
                .map(String::from)
                .collect();
            if !dangling.is_empty() {
                let (k, n, m) = id();
                if dangling.len() == refs.len() {
                    if o["metadata"].get("deletionTimestamp").is_none() {
                        actions.push(Action::Delete(k, n, m, Propagation::Background));
                    }
                } else {
                    actions.push(Action::StripRefs(k, n, m, dangling));
                }
            }
            let fin = o["metadata"]["finalizers"].as_array();
            if o["metadata"].get("deletionTimestamp").is_some()
                && fin.is_some_and(|f| f.contains(&json!(FOREGROUND)))
            {
                let uid = uid_of(o);
                let mut blocked = false;
                for (dk, d) in state.everything() {
                    let Some(r) = owner_refs(d).into_iter().find(|r| r["uid"] == uid) else { continue };
                    let blocking = r["blockOwnerDeletion"] == true;
                    blocked |= blocking;
                    if d["metadata"].get("deletionTimestamp").is_none() {
                        let p = if blocking { Propagation::Foreground } else { Propagation::Background };
                        actions.push(Action::Delete(dk.clone(), ns_of(d).into(), name_of(d).into(), p));
                    }
                }
                if !blocked {
                    let (k, n, m) = id();
                    actions.push(Action::Unblock(k, n, m));
                }
            }
        }
        if actions.is_empty() {
            return;
        }
        for a in actions {
            apply(state, a);
        }
    }
}

fn apply(state: &mut State, a: Action) {
    match a {
        Action::Delete(k, n, m, propagation) => {
            let opts = Options { propagation, ..Options::background() };
            // Already gone or changed meanwhile: the next round sees the new state.
            let _ = delete_object(state, &k, &n, &m, &opts);
        }
        Action::StripRefs(k, n, m, dangling) => {
            if let Some(mut o) = state.get(&k, &n, &m).cloned() {
                let refs: Vec<Value> = owner_refs(&o)
                    .into_iter()
                    .filter(|r| !r["uid"].as_str().is_some_and(|u| dangling.contains(u)))
                    .collect();
                o["metadata"]["ownerReferences"] = json!(refs);
                state.put(&k, o);
            }
        }
        Action::Unblock(k, n, m) => {
            if let Some(mut o) = state.get(&k, &n, &m).cloned() {
                let f: Vec<Value> = o["metadata"]["finalizers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| *f != FOREGROUND)
                    .cloned()
                    .collect();
                o["metadata"]["finalizers"] = json!(f);
                let o = state.put(&k, o);
                if finished(&o) {
                    remove_now(state, &k, &n, &m);
                }
            }
        }
    }
}

fn respond(res: &ResourceInfo, outcome: Outcome) -> (u16, Value, bool) {
    match outcome {
        Outcome::Pending(o) => (200, o, true),
        Outcome::Removed(o) if res.crd.is_some() || res.plural == "pods" => (200, o, true),
        Outcome::Removed(o) => (200, success(res.qualified(), name_of(&o), uid_of(&o)), false),
    }
}

/// DELETE of one object: admission (DELETE, with the object as `oldObject`), then the
/// deletion; with `dryRun=All` the object is only admitted and returned.
///
/// # Errors
/// 404, 409 for failed preconditions, 400 for bad options, or a hook's rejection.
pub async fn delete(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    req: Request,
) -> Result<Response<Body>, Status> {
    let opts = Options::from_request(&req)?;
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let current = shared.lock().get(&res.key(), &ns, &name).cloned();
    let current = current.ok_or_else(|| Status::not_found(res.qualified(), &name))?;
    let old = to_served(shared, res, vec![current]).await?.remove(0);
    admit_delete(shared, res, old.clone(), &req.user, opts.dry_run).await?;
    if opts.dry_run {
        return Ok(reply(200, &old));
    }
    let outcome = delete_object(&mut shared.lock(), &res.key(), &ns, &name, &opts)?;
    let (code, body, is_object) = respond(res, outcome);
    let body = if is_object { to_served(shared, res, vec![body]).await?.remove(0) } else { body };
    Ok(reply(code, &body))
}

/// DELETE of a collection (with selectors): each object admitted and deleted in turn;
/// answers the list of what was deleted.
///
/// # Errors
/// 400 for bad selectors or options, or the first admission rejection.
pub async fn delete_collection(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    req: Request,
) -> Result<Response<Body>, Status> {
    let opts = Options::from_request(&req)?;
    let sel = Selectors::parse(res, &req)?;
    let ns = req.target.namespace.clone().filter(|_| res.namespaced);
    let targets: Vec<Value> =
        shared.lock().list(&res.key(), ns.as_deref()).filter(|o| sel.matches(o)).cloned().collect();
    let mut items = Vec::new();
    for target in targets {
        let old = to_served(shared, res, vec![target]).await?.remove(0);
        admit_delete(shared, res, old.clone(), &req.user, opts.dry_run).await?;
        if opts.dry_run {
            items.push(old);
            continue;
        }
        // Gone or changed meanwhile: skipped, as by the real server.
        let outcome = delete_object(&mut shared.lock(), &res.key(), ns_of(&old), name_of(&old), &opts);
        if let Ok(Outcome::Pending(o) | Outcome::Removed(o)) = outcome {
            items.extend(to_served(shared, res, vec![o]).await?);
        }
    }
    let rv = shared.lock().rv();
    Ok(reply(
        200,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}
