//! Create, update and patch: system fields, status rules, generation, hooks, commit.

use std::{collections::BTreeMap, sync::Arc};

use http::Response;
use serde_json::{Value, json};

use super::{
    Status, UserInfo, crd, delete,
    handlers::{crd_of, namespace, to_served, to_storage},
    hooks::{AdmissionPhase, AdmitRequest, Operation},
    patch::{self, CUSTOM_PATCH_TYPES, PatchType},
    prepare,
    resources::ResourceInfo,
    server::{Body, Request, Shared, json as reply},
    store::{rv_of, uid_of},
};

/// Parses a JSON request body.
///
/// # Errors
/// 400 BadRequest.
pub fn parse_json(body: &[u8]) -> Result<Value, Status> {
    serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn dry_run(req: &Request) -> bool {
    req.query.get("dryRun") == Some("All")
}

/// POST to a collection.
///
/// # Errors
/// 400, 404 (namespace), 409 AlreadyExists, 422 Invalid, or a hook's rejection.
pub async fn create(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    req: Request,
) -> Result<Response<Body>, Status> {
    let obj = parse_json(&req.body)?;
    let ns = namespace(res, &req);
    let out = create_object(shared, res, &req.user, &ns, obj, dry_run(&req)).await?;
    Ok(reply(201, &out))
}

/// Creates one object given in the served version; returns it as stored, in the served version.
///
/// # Errors
/// As [`create`].
pub async fn create_object(
    shared: &Shared,
    res: &ResourceInfo,
    user: &UserInfo,
    ns: &str,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, Status> {
    if !obj.is_object() {
        return Err(Status::bad_request("the request body must be an object"));
    }
    let body_ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    if res.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    {
        let state = shared.lock();
        if res.namespaced {
            let Some(nso) = state.get("/namespaces", "", ns) else {
                return Err(Status::not_found(
                    super::status::Qualified { group: "", resource: "namespaces" },
                    ns,
                ));
            };
            if nso["metadata"].get("deletionTimestamp").is_some() {
                let name = super::store::name_of(&obj).to_string();
                return Err(Status::forbidden(
                    res.qualified(),
                    &name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                ));
            }
        }
    }
    // kube-apiserver's order: mutating admission sees the object as sent (status
    // included), then the strategy (system fields, status dropped), the schema, and
    // validating admission.
    prepare::for_admission(res, &mut obj, ns);
    let mut obj = mutate(shared, res, Operation::Create, "", obj, None, user, dry_run).await?;
    let uid = shared.lock().next_uid();
    prepare::for_create(res, &mut obj, ns, &uid)?;
    if res.key() == "apiextensions.k8s.io/customresourcedefinitions" {
        crd::resources_of(&obj)?;
        crd::set_status(&mut obj, None);
    }
    let obj = check_schema(shared, res, "", obj)?;
    validate(shared, res, Operation::Create, "", &obj, None, user, dry_run).await?;
    let stored = to_storage(shared, res, obj).await?;
    if dry_run {
        return Ok(to_served(shared, res, vec![stored]).await?.remove(0));
    }
    let stored = {
        let mut state = shared.lock();
        let name = super::store::name_of(&stored).to_string();
        if state.get(&res.key(), ns, &name).is_some() {
            return Err(Status::already_exists(res.qualified(), &name));
        }
        let s = state.put(&res.key(), stored);
        register_crd(&mut state, res, &s);
        s
    };
    Ok(to_served(shared, res, vec![stored]).await?.remove(0))
}

fn register_crd(state: &mut super::store::State, res: &ResourceInfo, stored: &Value) {
    if res.key() == "apiextensions.k8s.io/customresourcedefinitions"
        && let Ok(rs) = crd::resources_of(stored)
    {
        state.registry.set_custom(super::store::name_of(stored), rs);
    }
}

/// Mutating admission of `obj` as the client sent it (before the strategy).
#[allow(clippy::too_many_arguments)]
async fn mutate(
    shared: &Shared,
    res: &ResourceInfo,
    operation: Operation,
    sub: &str,
    obj: Value,
    old: Option<Value>,
    user: &UserInfo,
    dry_run: bool,
) -> Result<Value, Status> {
    let mut req = admit_request(shared, res, operation, sub, &obj, old, user, dry_run);
    req.object = Some(obj.clone());
    let mutated = shared.hooks.admission.admit(req).await?;
    Ok(if mutated.is_object() { mutated } else { obj })
}

/// The schema of a custom resource (pruning, defaults, validation), after the strategy.
fn check_schema(shared: &Shared, res: &ResourceInfo, sub: &str, obj: Value) -> Result<Value, Status> {
    if res.crd.is_none() || sub == "scale" {
        return Ok(obj);
    }
    match crd_of(&shared.lock(), res) {
        Some(crd) => shared.hooks.schema.check(&crd, &res.version, obj),
        None => Ok(obj),
    }
}

/// Validating admission of `obj` as it will be stored.
#[allow(clippy::too_many_arguments)]
async fn validate(
    shared: &Shared,
    res: &ResourceInfo,
    operation: Operation,
    sub: &str,
    obj: &Value,
    old: Option<Value>,
    user: &UserInfo,
    dry_run: bool,
) -> Result<(), Status> {
    let mut req = admit_request(shared, res, operation, sub, obj, old, user, dry_run);
    req.phase = AdmissionPhase::Validating;
    req.object = Some(obj.clone());
    req.webhook_configurations = configurations(shared, AdmissionPhase::Validating);
    shared.hooks.admission.admit(req).await?;
    Ok(())
}

/// Runs mutating then validating admission for the DELETE of `old` (in the served
/// version), as kube-apiserver does before it deletes: no object, only `oldObject`;
/// what a mutating webhook returns is dropped.
///
/// # Errors
/// A hook's rejection.
pub async fn admit_delete(
    shared: &Shared,
    res: &ResourceInfo,
    old: Value,
    user: &UserInfo,
    dry_run: bool,
) -> Result<(), Status> {
    let mut req = admit_request(shared, res, Operation::Delete, "", &old, Some(old.clone()), user, dry_run);
    shared.hooks.admission.admit(req.clone()).await?;
    req.phase = AdmissionPhase::Validating;
    req.webhook_configurations = configurations(shared, AdmissionPhase::Validating);
    shared.hooks.admission.admit(req).await?;
    Ok(())
}

fn configurations(shared: &Shared, phase: AdmissionPhase) -> Vec<Value> {
    let key = match phase {
        AdmissionPhase::Mutating => "admissionregistration.k8s.io/mutatingwebhookconfigurations",
        AdmissionPhase::Validating => "admissionregistration.k8s.io/validatingwebhookconfigurations",
    };
    shared.lock().list(key, None).cloned().collect()
}

/// The mutating pass's request about `obj` (without `object`, which the caller sets).
#[allow(clippy::too_many_arguments)]
fn admit_request(
    shared: &Shared,
    res: &ResourceInfo,
    operation: Operation,
    sub: &str,
    obj: &Value,
    old: Option<Value>,
    user: &UserInfo,
    dry_run: bool,
) -> AdmitRequest {
    let namespace = super::store::ns_of(obj).to_string();
    let namespace_labels = if namespace.is_empty() {
        BTreeMap::new()
    } else {
        let state = shared.lock();
        let labels =
            state.get("/namespaces", "", &namespace).and_then(|n| n["metadata"]["labels"].as_object());
        labels.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
    };
    AdmitRequest {
        phase: AdmissionPhase::Mutating,
        operation,
        group: res.group.clone(),
        version: res.version.clone(),
        kind: res.kind.clone(),
        resource: res.plural.clone(),
        sub_resource: sub.into(),
        name: super::store::name_of(obj).into(),
        namespace,
        namespace_labels,
        object: None,
        old_object: old,
        user: user.clone(),
        dry_run,
        webhook_configurations: configurations(shared, AdmissionPhase::Mutating),
    }
}

/// PUT of an object or its status.
///
/// # Errors
/// 404, 409 Conflict on a stale resourceVersion, 422, or a hook's rejection.
pub async fn update(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    req: Request,
) -> Result<Response<Body>, Status> {
    let new = parse_json(&req.body)?;
    let name = req.target.name.clone().unwrap_or_default();
    let body_name = super::store::name_of(&new);
    if !body_name.is_empty() && body_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let ns = namespace(res, &req);
    let old = shared.lock().get(&res.key(), &ns, &name).cloned();
    let old = old.ok_or_else(|| Status::not_found(res.qualified(), &name))?;
    let old = to_served(shared, res, vec![old]).await?.remove(0);
    let expect = match new["metadata"]["resourceVersion"].as_str() {
        Some(rv) if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() => {
            return Err(Status::stale(res.qualified(), &name));
        }
        Some(_) => rv_of(&old),
        None if res.crd.is_some() => {
            return Err(Status::invalid(
                &res.kind,
                &res.group,
                &name,
                vec![Status::invalid_value(
                    "metadata.resourceVersion",
                    &json!("0x0"),
                    "must be specified for an update",
                )],
            ));
        }
        None => rv_of(&old),
    };
    let sub = req.target.sub.clone().unwrap_or_default();
    let out = commit_update(shared, res, &req.user, &sub, old, new, expect, dry_run(&req)).await?;
    Ok(reply(200, &out))
}

/// Finishes an update given the old and new objects in the served version.
///
/// # Errors
/// 404 or 409 when the stored object changed meanwhile, 422, or a hook's rejection.
#[allow(clippy::too_many_arguments)]
pub async fn commit_update(
    shared: &Shared,
    res: &ResourceInfo,
    user: &UserInfo,
    sub: &str,
    old: Value,
    new: Value,
    expect: u64,
    dry_run: bool,
) -> Result<Value, Status> {
    // As on create: mutating admission, the strategy, the schema, validating admission.
    let new = mutate(shared, res, Operation::Update, sub, new, Some(old.clone()), user, dry_run).await?;
    let mut new = prepare::for_update(res, &old, new, sub)?;
    if res.key() == "apiextensions.k8s.io/customresourcedefinitions" {
        crd::resources_of(&new)?;
        crd::set_status(&mut new, old.get("status"));
    }
    let mut new = check_schema(shared, res, sub, new)?;
    if sub.is_empty() {
        prepare::generation(res, &old, &mut new);
    }
    validate(shared, res, Operation::Update, sub, &new, Some(old.clone()), user, dry_run).await?;
    if prepare::same(&old, &new) || dry_run {
        return Ok(if dry_run { new } else { old });
    }
    let stored = to_storage(shared, res, new).await?;
    let (ns, name) = (super::store::ns_of(&old).to_string(), super::store::name_of(&old).to_string());
    let stored = {
        let mut state = shared.lock();
        let current =
            state.get(&res.key(), &ns, &name).ok_or_else(|| Status::not_found(res.qualified(), &name))?;
        if rv_of(current) != expect || uid_of(current) != uid_of(&old) {
            return Err(Status::stale(res.qualified(), &name));
        }
        let s = state.put(&res.key(), stored);
        register_crd(&mut state, res, &s);
        if delete::finished(&s) {
            delete::remove_now(&mut state, &res.key(), &ns, &name);
            delete::collect_garbage(&mut state);
        }
        s
    };
    Ok(to_served(shared, res, vec![stored]).await?.remove(0))
}

/// PATCH of an object or its status, with the four patch types.
///
/// # Errors
/// 415 for strategic merge on custom resources, 404, 409, 422, or a hook's rejection.
pub async fn patch(shared: &Arc<Shared>, res: &ResourceInfo, req: Request) -> Result<Response<Body>, Status> {
    let pt = PatchType::from_content_type(&req.content_type)?;
    if pt == PatchType::Strategic && res.crd.is_some() {
        return Err(Status::unsupported_patch(&CUSTOM_PATCH_TYPES));
    }
    let body = patch::parse_body(pt, &req.body)?;
    if pt == PatchType::Apply && req.query.get("fieldManager").is_none() {
        return Err(Status::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![Status::required("fieldManager", "is required for apply patch")],
        ));
    }
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let sub = req.target.sub.clone().unwrap_or_default();
    for attempt in 0.. {
        let old = shared.lock().get(&res.key(), &ns, &name).cloned();
        let Some(old) = old else {
            if pt == PatchType::Apply && sub.is_empty() {
                let mut obj = body.clone();
                obj["metadata"]["name"] = json!(name);
                let out = create_object(shared, res, &req.user, &ns, obj, dry_run(&req)).await?;
                return Ok(reply(201, &out));
            }
            return Err(Status::not_found(res.qualified(), &name));
        };
        let old = to_served(shared, res, vec![old]).await?.remove(0);
        let mut new = patch::apply(pt, &old, &body)?;
        let explicit_rv = new["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"];
        if explicit_rv && !new["metadata"]["resourceVersion"].is_null() {
            return Err(Status::stale(res.qualified(), &name));
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        match commit_update(shared, res, &req.user, &sub, old.clone(), new, rv_of(&old), dry_run(&req)).await
        {
            Err(s) if s.reason == "Conflict" && attempt < 5 => continue,
            r => return r.map(|v| reply(200, &v)),
        }
    }
    unreachable_loop()
}

fn unreachable_loop() -> Result<Response<Body>, Status> {
    Err(Status::internal("patch retries exhausted"))
}
