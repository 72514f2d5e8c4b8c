use serde_json::json;

use super::*;

fn template(v: Value) -> PodTemplateSpec {
    serde_json::from_value(v).unwrap()
}

fn base() -> Value {
    json!({
        "metadata": {"labels": {"app": "web", "tier": "a"}, "annotations": {"note": "x"}},
        "spec": {"containers": [
            {"name": "main", "image": "reg/app:v1",
             "env": [{"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}}]},
            {"name": "side", "image": "reg/side:v1"}
        ]}
    })
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap() {
        Value::Object(m) => {
            m.insert(key.to_owned(), new);
        }
        other => panic!("{parent} is {other}"),
    }
    v
}

#[test]
fn an_image_change_is_in_place() {
    let new = with(base(), "/spec/containers/1/image", json!("reg/side:v2"));
    let Eligibility::InPlace(spec) = plan("r2", &template(base()), &template(new)) else {
        panic!("not in place")
    };
    assert_eq!(spec.container_images, BTreeMap::from([("side".to_owned(), "reg/side:v2".to_owned())]));
    assert!(spec.env_from_metadata.is_empty());
    assert!(spec.labels.is_empty() && spec.annotations.is_empty());
}

#[test]
fn a_label_read_as_env_restarts_that_container_only() {
    let new = with(base(), "/metadata/labels/tier", json!("b"));
    let Eligibility::InPlace(spec) = plan("r2", &template(base()), &template(new)) else {
        panic!("not in place")
    };
    assert_eq!(spec.env_from_metadata, BTreeSet::from(["main".to_owned()]));
    assert_eq!(spec.labels, BTreeMap::from([("tier".to_owned(), Some("b".to_owned()))]));
    assert!(spec.changes_containers());
}

#[test]
fn a_plain_annotation_change_touches_no_container() {
    let new = with(base(), "/metadata/annotations", json!({"other": "y"}));
    let Eligibility::InPlace(spec) = plan("r2", &template(base()), &template(new)) else {
        panic!("not in place")
    };
    assert_eq!(
        spec.annotations,
        BTreeMap::from([("note".to_owned(), None), ("other".to_owned(), Some("y".to_owned()))])
    );
    assert!(!spec.changes_containers());
}

#[test]
fn anything_else_recreates_and_names_the_field() {
    let args = with(base(), "/spec/containers/0/args", json!(["--x"]));
    assert_eq!(
        plan("r2", &template(base()), &template(args)),
        Eligibility::Recreate("spec.template.spec.containers[0].args: changed".into())
    );
    let res = with(base(), "/spec/containers/0/resources", json!({"limits": {"cpu": "1"}}));
    assert!(
        matches!(plan("r2", &template(base()), &template(res)), Eligibility::Recreate(_)),
        "no pod resize here"
    );
    let node = with(base(), "/spec/nodeSelector", json!({"zone": "a"}));
    assert_eq!(
        plan("r2", &template(base()), &template(node)),
        Eligibility::Recreate("spec.template.spec.nodeSelector: changed".into())
    );
    let mut renamed = base();
    renamed["spec"]["containers"][1]["name"] = json!("other");
    assert!(
        matches!(plan("r2", &template(base()), &template(renamed)), Eligibility::Recreate(r) if r.contains("renamed"))
    );
}

fn pod(extra: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": "p", "labels": {"app": "web", "tier": "a"}, "annotations": {"note": "x"}},
        "spec": {"containers": [
            {"name": "main", "image": "reg/app:v1", "env": [{"name": "KRUISE_CONTAINER_PRIORITY", "value": "10"}]},
            {"name": "side", "image": "reg/side:v1"}
        ]},
        "status": {"containerStatuses": [
            {"name": "main", "image": "reg/app:v1", "imageID": "sha256:a1", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-12-03T10:00:00Z"}}},
            {"name": "side", "image": "reg/side:v1", "imageID": "sha256:s1", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-12-03T10:00:00Z"}}}
        ]}
    });
    json_merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn json_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                json_merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn both_images() -> UpdateSpec {
    UpdateSpec {
        revision: "web-r2".into(),
        container_images: BTreeMap::from([
            ("main".to_owned(), "reg/app:v2".to_owned()),
            ("side".to_owned(), "reg/side:v2".to_owned()),
        ]),
        ..UpdateSpec::default()
    }
}

fn set_status(p: &mut Pod, name: &str, image: &str, image_id: &str, started: &str) {
    let s = p.status.as_mut().unwrap().container_statuses.as_mut().unwrap();
    let c = s.iter_mut().find(|c| c.name == name).unwrap();
    c.image = image.into();
    c.image_id = image_id.into();
    c.state = Some(serde_json::from_value(json!({"running": {"startedAt": started}})).unwrap());
}

#[test]
fn containers_update_in_priority_batches_judged_by_image_id() {
    let mut p = pod(json!({}));
    let labels = BTreeMap::from([("controller-revision-hash".to_owned(), "web-r2".to_owned())]);
    start(&mut p, &both_images(), &labels, 0, t("2026-12-03T11:00:00Z")).unwrap();
    let images: Vec<_> =
        p.spec.as_ref().unwrap().containers.iter().map(|c| c.image.clone().unwrap()).collect();
    assert_eq!(images, ["reg/app:v2", "reg/side:v1"], "the higher priority goes first");
    assert_eq!(p.metadata.labels.as_ref().unwrap()["controller-revision-hash"], "web-r2");
    let st = state(&p).unwrap().unwrap();
    assert_eq!(st.next_container_images, BTreeMap::from([("side".to_owned(), "reg/side:v2".to_owned())]));
    assert_eq!(st.container_batches_record[0].containers, ["main"]);

    let now = t("2026-12-03T11:00:05Z");
    assert_eq!(progress(&p, now).unwrap(), Progress::Updating, "imageID unchanged yet");
    set_status(&mut p, "main", "reg/app:v2", "sha256:a2", "2026-12-03T11:00:03Z");
    assert_eq!(progress(&p, now).unwrap(), Progress::NextBatch);
    next_batch(&mut p, now).unwrap();
    assert_eq!(p.spec.as_ref().unwrap().containers[1].image.as_deref(), Some("reg/side:v2"));
    assert_eq!(progress(&p, now).unwrap(), Progress::Updating);
    set_status(&mut p, "side", "reg/side:v2", "sha256:s2", "2026-12-03T11:00:06Z");
    assert_eq!(progress(&p, now).unwrap(), Progress::Done);
    assert_eq!(state(&p).unwrap().unwrap().container_batches_record.len(), 2);
}

#[test]
fn the_state_annotation_has_openkruise_shape() {
    let mut p = pod(json!({}));
    start(&mut p, &both_images(), &BTreeMap::new(), 0, t("2026-12-03T11:00:00Z")).unwrap();
    let raw: Value =
        serde_json::from_str(&p.metadata.annotations.as_ref().unwrap()[STATE_ANNOTATION]).unwrap();
    assert_eq!(
        raw,
        json!({
            "revision": "web-r2",
            "updateTimestamp": "2026-12-03T11:00:00Z",
            "lastContainerStatuses": {"main": {"imageID": "sha256:a1", "resources": {}}},
            "updateImages": true,
            "nextContainerImages": {"side": "reg/side:v2"},
            "containerBatchesRecord": [{"timestamp": "2026-12-03T11:00:00Z", "containers": ["main"]}]
        })
    );
}

#[test]
fn a_state_written_by_openkruise_reads() {
    let ann = r#"{"revision":"demo-7b8c9","updateTimestamp":"2026-01-02T03:04:05Z","lastContainerStatuses":{"main":{"imageID":"docker.io/library/nginx@sha256:aa"}},"updateImages":true}"#;
    let mut p = pod(json!({"metadata": {"annotations": {"apps.kruise.io/inplace-update-state": ann}}}));
    let st = state(&p).unwrap().unwrap();
    assert_eq!(st.revision, "demo-7b8c9");
    assert!(st.update_images);
    set_status(&mut p, "main", "reg/app:v2", "docker.io/library/nginx@sha256:aa", "2026-01-02T03:04:06Z");
    assert_eq!(progress(&p, t("2026-01-02T03:05:00Z")).unwrap(), Progress::Updating);
    set_status(&mut p, "main", "reg/app:v2", "docker.io/library/nginx@sha256:bb", "2026-01-02T03:04:06Z");
    assert_eq!(progress(&p, t("2026-01-02T03:05:00Z")).unwrap(), Progress::Done);
    let legacy = pod(json!({"metadata": {"annotations": {"inplace-update-state": ann}}}));
    assert_eq!(state(&legacy).unwrap().unwrap().revision, "demo-7b8c9");
    let broken = pod(json!({"metadata": {"annotations": {"apps.kruise.io/inplace-update-state": "{"}}}));
    let e = state(&broken).unwrap_err().to_string();
    assert!(e.starts_with("metadata.annotations[apps.kruise.io/inplace-update-state]"), "{e}");
}

#[test]
fn an_env_only_update_is_done_when_the_container_started_again() {
    let mut p = pod(json!({}));
    let spec = UpdateSpec {
        revision: "web-r3".into(),
        env_from_metadata: BTreeSet::from(["main".to_owned()]),
        labels: BTreeMap::from([("tier".to_owned(), Some("b".to_owned()))]),
        ..UpdateSpec::default()
    };
    start(&mut p, &spec, &BTreeMap::new(), 0, t("2026-12-03T11:00:00Z")).unwrap();
    assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "b");
    assert!(state(&p).unwrap().unwrap().update_env_from_metadata);
    assert_eq!(progress(&p, t("2026-12-03T11:00:01Z")).unwrap(), Progress::Updating);
    set_status(&mut p, "main", "reg/app:v1", "sha256:a1", "2026-12-03T11:00:01Z");
    assert_eq!(progress(&p, t("2026-12-03T11:00:02Z")).unwrap(), Progress::Done);
}

#[test]
fn a_grace_period_holds_the_images_until_it_has_passed() {
    let mut p = pod(json!({}));
    start(&mut p, &both_images(), &BTreeMap::new(), 30, t("2026-12-03T11:00:00Z")).unwrap();
    assert_eq!(p.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("reg/app:v1"), "not yet");
    assert_eq!(
        progress(&p, t("2026-12-03T11:00:10Z")).unwrap(),
        Progress::Grace(std::time::Duration::from_secs(20))
    );
    assert_eq!(progress(&p, t("2026-12-03T11:00:30Z")).unwrap(), Progress::GraceOver);
    finish_grace(&mut p, t("2026-12-03T11:00:30Z")).unwrap();
    assert!(grace(&p).unwrap().is_none());
    assert_eq!(p.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("reg/app:v2"));
    assert_eq!(progress(&p, t("2026-12-03T11:00:31Z")).unwrap(), Progress::Updating);
}

#[test]
fn the_ready_condition_goes_false_then_true() {
    let mut p = pod(json!({}));
    assert!(is_in_place_ready(&p), "no condition yet");
    assert!(set_ready_condition(&mut p, false, t("2026-12-03T11:00:00Z")));
    assert!(!is_in_place_ready(&p));
    assert_eq!(ready_condition(&p).unwrap().reason.as_deref(), Some(START_REASON));
    assert!(!set_ready_condition(&mut p, false, t("2026-12-03T11:00:01Z")), "no change");
    assert!(set_ready_condition(&mut p, true, t("2026-12-03T11:00:02Z")));
    assert!(is_in_place_ready(&p));
    let mut gates = None;
    add_readiness_gate(&mut gates);
    add_readiness_gate(&mut gates);
    assert_eq!(gates.unwrap().len(), 1);
}

#[test]
fn a_missing_container_is_an_error_naming_it() {
    let mut p = pod(json!({}));
    let spec = UpdateSpec {
        revision: "r".into(),
        container_images: BTreeMap::from([("ghost".to_owned(), "x".to_owned())]),
        ..UpdateSpec::default()
    };
    let e = start(&mut p, &spec, &BTreeMap::new(), 0, t("2026-12-03T11:00:00Z")).unwrap_err();
    assert_eq!(e.to_string(), "spec.containers: the pod has no container \"ghost\"");
}
