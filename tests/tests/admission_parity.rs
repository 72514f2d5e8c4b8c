//! The differential admission set: OpenKruise v1.9.0's answer to one manifest
//! fragment per admission rule, taken from reading its code (each case names the
//! Go function it follows), asked of the real controller's webhooks through the
//! simulated API server (kube-apiserver's order: mutating admission, the strategy,
//! the CRD schema with strict field validation when asked, validating admission).
//!
//! The cases are data: `tests/admission/<kind>.yaml`, each a deploy example and a
//! list of fragments set into it (JSON pointers), an optional update (values set
//! into and pointers removed from the stored object), and the
//! answer: `accepted` (then optionally fields the stored object must have or lack),
//! or the HTTP code and a piece of the message. A case marked `departure` holds a
//! deliberate difference (the README lists them) and says what OpenKruise answers.
//! Every failing case is reported, not only the first.

use std::{path::PathBuf, time::Instant};

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, PostParams},
    core::GroupVersionKind,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use stevedore_tests::{
    apiserver::{ADMIN_TOKEN, Hooks, Options},
    cluster::{Services, TestCluster},
    controller_process::serving_webhooks,
    pod_objects,
};

/// One file of cases: the example they start from.
#[derive(Deserialize)]
struct Suite {
    example: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case shows.
    case: String,
    /// The OpenKruise v1.9.0 (or Kubernetes) function whose answer this is.
    #[allow(dead_code, reason = "documentation for the reader of the case file")]
    go: String,
    /// Set when the answer is Stevedore's deliberate departure from OpenKruise's:
    /// what OpenKruise answers instead.
    #[serde(default)]
    departure: Option<String>,
    /// The object's name, when the rule is about names.
    #[serde(default)]
    name: Option<String>,
    /// JSON pointer → value set into the example (the example's status is left out).
    #[serde(default)]
    set: Map<String, Value>,
    /// JSON pointers removed from the example.
    #[serde(default)]
    remove: Vec<String>,
    /// `fieldValidation` of the create (or update).
    #[serde(default, rename = "fieldValidation")]
    field_validation: Option<String>,
    /// Set into the stored object after a create that must succeed; the answer is
    /// then the update's.
    #[serde(default)]
    update: Option<Map<String, Value>>,
    /// JSON pointers removed from the stored object before the update (with or
    /// without `update`).
    #[serde(default, rename = "updateRemove")]
    update_remove: Vec<String>,
    want: Want,
    /// Values the stored object has after an accepted write.
    #[serde(default)]
    expect: Map<String, Value>,
    /// Pointers the stored object lacks after an accepted write.
    #[serde(default)]
    absent: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Want {
    Accepted(Accepted),
    Refused { code: u16, message: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Accepted {
    Accepted,
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("admission")
}

fn example(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(file);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Sets `value` at `pointer`, adding the last key to an object (or appending to an
/// array for `-`); the parent must exist.
fn set(object: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let (parent, last) = pointer.rsplit_once('/').ok_or(format!("{pointer}: not a JSON pointer"))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    match object.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
        }
        Some(Value::Array(items)) if last == "-" => items.push(value),
        Some(Value::Array(items)) => {
            let i: usize = last.parse().map_err(|_| format!("{pointer}: not an index"))?;
            *items.get_mut(i).ok_or(format!("{pointer}: no such item"))? = value;
        }
        _ => return Err(format!("{pointer}: no object or array at {parent}")),
    }
    Ok(())
}

fn remove(object: &mut Value, pointer: &str) -> Result<(), String> {
    let (parent, last) = pointer.rsplit_once('/').ok_or(format!("{pointer}: not a JSON pointer"))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let removed = match object.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => {
            last.parse::<usize>().ok().filter(|i| *i < items.len()).map(|i| items.remove(i)).is_some()
        }
        _ => false,
    };
    removed.then_some(()).ok_or(format!("{pointer}: nothing to remove"))
}

/// The API of `object`'s kind, from the CRDs the controller installs.
fn api_for(client: &Client, object: &Value) -> Api<DynamicObject> {
    let (group, version) = object["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let kind = object["kind"].as_str().unwrap();
    let plural = format!("{}s", kind.to_lowercase());
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates or replaces `object` with `fieldValidation` (kube's PostParams has no
/// such field: the request is built here).
async fn write(
    client: &Client,
    object: &Value,
    validation: Option<&str>,
    replace: bool,
) -> Result<Value, (u16, String)> {
    let api = api_for(client, object);
    let name = object["metadata"]["name"].as_str().unwrap();
    let mut url =
        if replace { api.resource_url().to_owned() + "/" + name } else { api.resource_url().to_owned() };
    if let Some(v) = validation {
        url.push_str(&format!("?fieldValidation={v}"));
    }
    let body = serde_json::to_vec(object).unwrap();
    let request = if replace { http::Request::put(url) } else { http::Request::post(url) }
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    match client.request::<Value>(request).await {
        Ok(stored) => Ok(stored),
        Err(kube::Error::Api(status)) => Err((status.code, status.message)),
        Err(e) => Err((0, format!("not an API answer: {e}"))),
    }
}

/// Runs one case; `Err` says how the answer differs from OpenKruise's.
async fn run(client: &Client, base: &Value, name: &str, case: &Case) -> Result<(), String> {
    let mut object = base.clone();
    object.as_object_mut().unwrap().remove("status");
    object["metadata"]["name"] = Value::String(case.name.clone().unwrap_or_else(|| name.to_owned()));
    for (pointer, value) in &case.set {
        set(&mut object, pointer, value.clone())?;
    }
    for pointer in &case.remove {
        remove(&mut object, pointer)?;
    }
    let validation = case.field_validation.as_deref();
    let mut answer = write(client, &object, validation, false).await;
    if case.update.is_some() || !case.update_remove.is_empty() {
        let mut stored =
            answer.map_err(|(code, m)| format!("the create before the update was refused ({code}): {m}"))?;
        // The controller may write the object (finalizers, status) meanwhile: on a
        // conflict the update is made again on the object as now stored.
        let mut tries = 0;
        answer = loop {
            for (pointer, value) in case.update.iter().flatten() {
                set(&mut stored, pointer, value.clone())?;
            }
            for pointer in &case.update_remove {
                remove(&mut stored, pointer)?;
            }
            match write(client, &stored, validation, true).await {
                Err((409, _)) if tries < 10 => {
                    tries += 1;
                    let name = stored["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    let latest =
                        api_for(client, &stored).get(&name).await.map_err(|e| format!("read back: {e}"))?;
                    stored = serde_json::to_value(latest).map_err(|e| e.to_string())?;
                }
                other => break other,
            }
        };
    }
    match (&case.want, answer) {
        (Want::Accepted(_), Ok(stored)) => {
            for (pointer, want) in &case.expect {
                let got = stored.pointer(pointer);
                if got != Some(want) {
                    return Err(format!("stored {pointer} is {got:?}, expected {want}"));
                }
            }
            for pointer in &case.absent {
                if let Some(got) = stored.pointer(pointer) {
                    return Err(format!("stored {pointer} is {got}, expected none"));
                }
            }
            Ok(())
        }
        (Want::Accepted(_), Err((code, message))) => Err(format!("refused ({code}): {message}")),
        (Want::Refused { .. }, Ok(_)) => Err("accepted".into()),
        (Want::Refused { code, message }, Err((got_code, got))) => {
            if got_code != *code || !got.contains(message.as_str()) {
                Err(format!("refused ({got_code}): {got}; expected {code} with {message:?}"))
            } else {
                Ok(())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_answers_match_openkruise() {
    let started = Instant::now();
    let services = Services::default();
    let opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
    let Some(cluster) = TestCluster::simulator_only_with(
        "it installs the project's CRDs and webhooks, which would replace OpenKruise's",
        opts,
        services.clone(),
    )
    .await
    .unwrap() else {
        return;
    };
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.simulator().unwrap().write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
    let controller = serving_webhooks(&client, &services, &kubeconfig, dir.path()).await.unwrap();
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    for ns in ["shop", "ops", "monitoring", "cache"] {
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&PostParams::default(), &ns).await.unwrap();
    }
    // the pods the ContainerRecreateRequest cases name (its webhook looks them up)
    let web = pod_objects::running("shop", "web-0", "node-a", &["app", "log-shipper"]);
    let mut pending = pod_objects::running("shop", "web-pending", "", &["app"]);
    pending["spec"].as_object_mut().unwrap().remove("nodeName");
    pending["status"] = serde_json::json!({"phase": "Pending"});
    let mut done = pod_objects::running("shop", "web-done", "node-a", &["app"]);
    done["status"]["phase"] = "Succeeded".into();
    let mut starting = pod_objects::running("shop", "web-starting", "node-a", &["app"]);
    starting["status"]["containerStatuses"][0].as_object_mut().unwrap().remove("containerID");
    for pod in [web, pending, done, starting] {
        pod_objects::create(&client, &pod).await.unwrap();
    }
    let ready = started.elapsed();

    let mut files: Vec<PathBuf> =
        std::fs::read_dir(cases_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    // the files run side by side, each file's cases in turn
    let suites = files.iter().map(|file| {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let suite: Suite = serde_yaml::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let client = client.clone();
        async move {
            let base = example(&suite.example);
            let mut failures = Vec::new();
            for (i, case) in suite.cases.iter().enumerate() {
                if let Err(why) = run(&client, &base, &format!("{stem}-{i}"), case).await {
                    let whose = if case.departure.is_some() { "Stevedore's departure" } else { "OpenKruise" };
                    failures.push(format!("{stem}.yaml #{i} ({}, answer: {whose}): {why}", case.case));
                }
            }
            (suite.cases.len(), failures)
        }
    });
    let answers = futures_util::future::join_all(suites).await;
    let count: usize = answers.iter().map(|(n, _)| n).sum();
    let failures: Vec<String> = answers.into_iter().flat_map(|(_, f)| f).collect();
    eprintln!(
        "{count} cases in {} files: cluster and controller ready in {ready:?}, all answered in {:?}",
        files.len(),
        started.elapsed() - ready
    );
    assert!(count > 0, "no cases in {}", cases_dir().display());
    assert!(
        failures.is_empty(),
        "{} of {count} answers differ from the expected ones:\n{}\ncontroller log:\n{}",
        failures.len(),
        failures.join("\n"),
        controller.log_tail(20)
    );
}
