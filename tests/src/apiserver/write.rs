//! Create, update and patch: system fields, status rules, generation, hooks, commit.

use std::{collections::BTreeMap, sync::Arc};

use http::Response;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use super::{
    Status, UserInfo, crd, delete,
    fields::{self, Directive, Findings},
    handlers::{crd_of, namespace, to_served, to_storage},
    hooks::{AdmissionPhase, AdmitRequest, Operation},
    managed,
    negotiate::decode_body,
    patch::{self, CUSTOM_PATCH_TYPES, PatchType},
    prepare,
    resources::ResourceInfo,
    server::{Body, Request, Shared, json as reply, with_warnings},
    store::{rv_of, uid_of},
};

/// Parses the body of a subresource request (a built-in kind: Scale, Binding,
/// Eviction) in any of the media types the server reads.
///
/// # Errors
/// 400 or 415.
pub fn parse_body(req: &Request) -> Result<Value, Status> {
    decode_body(&req.content_type, &req.body, true, &mut Findings::default())
}

/// Decodes a create or update body as kube-apiserver does, with its field validation:
/// the object without the fields its kind does not declare, and the warnings to send.
///
/// # Errors
/// 400 for a body that does not decode, or for unknown or duplicate fields under
/// `fieldValidation=Strict`.
async fn decode(shared: &Shared, res: &ResourceInfo, req: &Request) -> Result<(Value, Vec<String>), Status> {
    let directive = Directive::parse(req.query.get("fieldValidation"))?;
    let mut findings = Findings::default();
    let mut obj = decode_body(&req.content_type, &req.body, res.crd.is_none(), &mut findings)?;
    undeclared(shared, res, &mut obj, &mut findings);
    let warnings = findings.outcome(directive, &fields::decode_prefix(res))?;
    Ok((obj, warnings))
}

/// The schema of `res` for field management: its CRD version's, or the built-in
/// kind's OpenAPI definition.
fn schema_of(shared: &Shared, res: &ResourceInfo) -> Option<Value> {
    match res.crd {
        Some(_) => crd_of(&shared.lock(), res).map(|c| super::openapi::crd_version_schema(&c, &res.version)),
        None => None,
    }
}

/// The shape field management walks for `res`, given [`schema_of`]'s result.
fn shape<'a>(res: &ResourceInfo, schema: &'a Option<Value>) -> managed::Shape<'a> {
    let catalog = super::openapi::builtin::catalog();
    match schema {
        Some(s) => managed::Shape::custom(s, &catalog.definitions),
        None => {
            let def = catalog
                .kind(&res.group, &res.version, &res.kind)
                .and_then(|k| catalog.definitions.get(&k.definition));
            managed::Shape::builtin(def, &catalog.definitions)
        }
    }
}

/// The request's field manager: `fieldManager`, or the user agent's first word as
/// kube-apiserver takes it.
fn manager(req: &Request, res: &ResourceInfo) -> managed::Manager {
    let name = match req.query.get("fieldManager") {
        Some(m) => m.to_string(),
        None => req.user_agent.split('/').next().unwrap_or_default().to_string(),
    };
    managed::Manager {
        name,
        api_version: res.api_version(),
        subresource: req.target.sub.clone().unwrap_or_default(),
    }
}

/// Finds the fields of `obj` its kind does not declare: built-in kinds lose them here,
/// custom resources when their schema prunes them (admission's schema check).
fn undeclared(shared: &Shared, res: &ResourceInfo, obj: &mut Value, findings: &mut Findings) {
    if res.crd.is_none() {
        findings.unknown(fields::prune_builtin(res, obj));
        return;
    }
    let crd = crd_of(&shared.lock(), res);
    let Some(crd) = crd else { return };
    let schema = super::openapi::crd_version_schema(&crd, &res.version);
    let Ok(schema) = serde_json::from_value::<JSONSchemaProps>(schema) else { return };
    let mut copy = obj.clone();
    findings.unknown(super::schema::prune(&schema, &mut copy));
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
    let (mut obj, warnings) = decode(shared, res, &req).await?;
    let schema = schema_of(shared, res);
    managed::record_update(None, &mut obj, &manager(&req, res), shape(res, &schema));
    let ns = namespace(res, &req);
    let out = create_object(shared, res, &req.user, &ns, obj, dry_run(&req)).await?;
    Ok(with_warnings(reply(201, &out), &warnings))
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
    prepare::decode_defaults(res, &mut obj);
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
    let (mut new, warnings) = decode(shared, res, &req).await?;
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
    let schema = schema_of(shared, res);
    managed::record_update(Some(&old), &mut new, &manager(&req, res), shape(res, &schema));
    let out = commit_update(shared, res, &req.user, &sub, old, new, expect, dry_run(&req)).await?;
    Ok(with_warnings(reply(200, &out), &warnings))
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
    mut new: Value,
    expect: u64,
    dry_run: bool,
) -> Result<Value, Status> {
    // As on create: the decoder's defaults, mutating admission, the strategy, the
    // schema, validating admission.
    prepare::decode_defaults(res, &mut new);
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
    let directive = Directive::parse(req.query.get("fieldValidation"))?;
    let name = req.target.name.clone().unwrap_or_default();
    let ns = namespace(res, &req);
    let sub = req.target.sub.clone().unwrap_or_default();
    if pt == PatchType::Apply {
        check_apply_body(res, &name, &body)?;
    }
    let schema = schema_of(shared, res);
    let shape = shape(res, &schema);
    let mgr = manager(&req, res);
    let force = req.query.flag("force");
    for attempt in 0.. {
        let old = shared.lock().get(&res.key(), &ns, &name).cloned();
        let Some(old) = old else {
            if pt == PatchType::Apply && sub.is_empty() {
                let mut obj = body.clone();
                obj["metadata"]["name"] = json!(name);
                let mut findings = Findings::default();
                undeclared(shared, res, &mut obj, &mut findings);
                let warnings = findings.outcome(directive, "")?;
                let obj = managed::apply(None, &obj, &mgr, force, shape, res.qualified(), &name)?;
                let out = create_object(shared, res, &req.user, &ns, obj, dry_run(&req)).await?;
                return Ok(with_warnings(reply(201, &out), &warnings));
            }
            return Err(Status::not_found(res.qualified(), &name));
        };
        let old = to_served(shared, res, vec![old]).await?.remove(0);
        let (mut new, warnings) = if pt == PatchType::Apply {
            let mut cfg = body.clone();
            let mut findings = Findings::default();
            undeclared(shared, res, &mut cfg, &mut findings);
            let warnings = findings.outcome(directive, "")?;
            (managed::apply(Some(&old), &cfg, &mgr, force, shape, res.qualified(), &name)?, warnings)
        } else {
            let mut new = patch::apply(pt, &old, &body)?;
            let mut findings = Findings::default();
            undeclared(shared, res, &mut new, &mut findings);
            let warnings = findings.outcome(directive, "")?;
            managed::record_update(Some(&old), &mut new, &mgr, shape);
            (new, warnings)
        };
        let explicit_rv = new["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"];
        if explicit_rv && !new["metadata"]["resourceVersion"].is_null() {
            return Err(Status::stale(res.qualified(), &name));
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        match commit_update(shared, res, &req.user, &sub, old.clone(), new, rv_of(&old), dry_run(&req)).await
        {
            // kube-apiserver's GuaranteedUpdate applies the patch again to the object
            // that won for as long as writes race it: a patch without a
            // resourceVersion does not fail for a concurrent write (five tries here
            // failed a user's image patch of a set whose status the controller was
            // writing every few milliseconds)
            Err(s) if s.reason == "Conflict" && attempt < MAX_PATCH_RETRIES => continue,
            r => return r.map(|v| with_warnings(reply(200, &v), &warnings)),
        }
    }
    unreachable_loop()
}

/// How often a patch is applied again after losing a race, before the server gives
/// up (kube-apiserver does not; this bounds a write that can never win).
const MAX_PATCH_RETRIES: u32 = 1000;

/// What kube-apiserver requires of an apply body: its own `apiVersion`, `kind` and
/// `name`, and no `managedFields`.
fn check_apply_body(res: &ResourceInfo, name: &str, body: &Value) -> Result<(), Status> {
    let av = body["apiVersion"].as_str().unwrap_or_default();
    if av != res.api_version() {
        return Err(Status::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    let kind = body["kind"].as_str().unwrap_or_default();
    if kind != res.kind {
        return Err(Status::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.kind
        )));
    }
    let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
    if !body_name.is_empty() && body_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if body["metadata"]["managedFields"].as_array().is_some_and(|m| !m.is_empty()) {
        return Err(Status::bad_request("metadata.managedFields must be nil"));
    }
    Ok(())
}

fn unreachable_loop() -> Result<Response<Body>, Status> {
    Err(Status::internal("patch retries exhausted"))
}
