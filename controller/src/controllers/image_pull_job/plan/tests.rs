use std::collections::BTreeMap;

use serde_json::json;
use stevedore_proto::crd::common::CompletionPolicy;

use super::*;

fn job(uid: &str) -> Job {
    Job {
        key: "shop/pre".into(),
        owner: ObjectReference {
            api_version: Some("apps.kruise.io/v1beta1".into()),
            kind: Some("ImagePullJob".into()),
            name: Some("pre".into()),
            namespace: Some("shop".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        },
        image: "stevedore.test/app".into(),
        tag: "v1".into(),
        pull_policy: tag_pull_policy(600, 3, &CompletionPolicy::default()),
        image_pull_policy: None,
        sandbox_config: None,
        parallelism: 2,
        never: false,
        active_deadline: None,
        response_timeout: Duration::from_secs(600),
    }
}

fn node_image(name: &str) -> NodeImage {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}})).unwrap()
}

fn report(ni: &mut NodeImage, image: &str, tag: &str, version: i64, phase: &str, progress: i32) {
    ni.status = Some(
        serde_json::from_value(json!({"desired": 1, "imageStatuses": {image: {"tags": [
            {"tag": tag, "phase": phase, "version": version, "progress": progress}]}}}))
        .unwrap(),
    );
}

fn now() -> Timestamp {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

#[test]
fn tag_policies_follow_openkruise() {
    let p = tag_pull_policy(600, 3, &CompletionPolicy::default());
    assert_eq!((p.ttl_seconds_after_finished, p.active_deadline_seconds), (Some(1800 + 300), None));
    let ttl = CompletionPolicy { ttl_seconds_after_finished: Some(60), ..CompletionPolicy::default() };
    assert_eq!(tag_pull_policy(600, 3, &ttl).ttl_seconds_after_finished, Some(360));
    let never = CompletionPolicy { type_: Some(CompletionPolicyType::Never), ..CompletionPolicy::default() };
    let p = tag_pull_policy(60, 3, &never);
    assert_eq!((p.ttl_seconds_after_finished, p.active_deadline_seconds), (Some(86400), Some(1800)));
    assert_eq!(parallelism(None), 1);
    assert_eq!(parallelism(Some(&IntOrString::String("3".into()))), 3);
}

#[test]
fn owning_sharing_and_releasing_a_tag() {
    let (a, b) = (job("uid-a"), job("uid-b"));
    let mut ni = node_image("n1");
    assert_eq!(node_state(&ni, &a, now()), NodeState::NotSynced);
    let secret = ReferenceObject {
        namespace: Some("stevedore-system".into()),
        name: Some("reg-1".into()),
        mode: None,
    };
    assert!(add_owner(&mut ni, &a, std::slice::from_ref(&secret), now()));
    assert!(!add_owner(&mut ni, &a, std::slice::from_ref(&secret), now()), "idempotent");
    assert_eq!(node_state(&ni, &a, now()), NodeState::Pulling(0), "listed, not reported yet");
    report(&mut ni, "stevedore.test/app", "v1", 0, "Pulling", 40);
    assert_eq!(node_state(&ni, &a, now()), NodeState::Pulling(40));
    // A second job shares the running pull: no new version, nothing restarted.
    assert!(add_owner(&mut ni, &b, &[], now()));
    let tag = &ni.spec.images.as_ref().unwrap()["stevedore.test/app"].tags[0];
    assert_eq!((tag.version, tag.owner_references.as_ref().unwrap().len()), (Some(0), 2));
    report(&mut ni, "stevedore.test/app", "v1", 0, "Failed", 0);
    // A job arriving after a failed pull asks for it again.
    let c = job("uid-c");
    assert!(add_owner(&mut ni, &c, &[], now()));
    assert_eq!(ni.spec.images.as_ref().unwrap()["stevedore.test/app"].tags[0].version, Some(1));
    assert_eq!(node_state(&ni, &c, now()), NodeState::Pulling(0), "version 1 not reported yet");
    assert!(matches!(node_state(&ni, &a, now()), NodeState::Pulling(0)), "the owners share the new round");
    // Releasing: the tag goes with its last owner, and the image with its last tag.
    assert!(remove_owner(&mut ni, "uid-a") && remove_owner(&mut ni, "uid-b"));
    assert_eq!(ni.spec.images.as_ref().unwrap()["stevedore.test/app"].tags.len(), 1);
    assert!(remove_owner(&mut ni, "uid-c"));
    assert!(ni.spec.images.as_ref().unwrap().is_empty());
    assert!(!remove_owner(&mut ni, "uid-c"));
}

#[test]
fn a_silent_node_fails_after_the_response_timeout() {
    let a = job("uid-a");
    let mut ni = node_image("n1");
    add_owner(&mut ni, &a, &[], now());
    let later = now() + SignedDuration::from_secs(601);
    assert!(matches!(node_state(&ni, &a, later), NodeState::Failed(m) if m.contains("has not reported")));
}

#[test]
fn parallelism_and_status() {
    let mut a = job("uid-a");
    let states: BTreeMap<String, NodeState> = [
        ("n1", NodeState::Succeeded),
        ("n2", NodeState::Pulling(50)),
        ("n3", NodeState::NotSynced),
        ("n4", NodeState::NotSynced),
        ("n5", NodeState::Failed("x".into())),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(to_start(&states, 2), ["n3"], "one pulling, room for one more");
    assert_eq!(to_start(&states, 0), Vec::<String>::new(), "0 pauses");
    let s = status(&ImagePullJobStatus::default(), &states, &a, now());
    assert_eq!((s.desired, s.succeeded, s.failed, s.active), (5, Some(1), Some(1), Some(1)));
    assert_eq!(s.failed_nodes, Some(vec!["n5".to_string()]));
    assert_eq!(s.message.as_deref(), Some("job is running, progress 50.0%"), "(100 + 50 + 100) / 5");
    assert!(s.completion_time.is_none() && s.start_time.is_some());
    // The deadline: what is not done fails.
    a.active_deadline = Some(Duration::from_secs(60));
    let later = status(&s, &states, &a, now() + SignedDuration::from_secs(61));
    assert_eq!((later.succeeded, later.failed, later.active), (Some(1), Some(4), Some(0)));
    assert_eq!(later.failed_nodes.as_ref().unwrap().len(), 4);
    assert_eq!(later.message.as_deref(), Some("job exceeds activeDeadlineSeconds"));
    // All done: complete; no nodes at all: complete at once (as OpenKruise).
    let done: BTreeMap<String, NodeState> = [("n1".to_string(), NodeState::Succeeded)].into();
    assert!(status(&ImagePullJobStatus::default(), &done, &job("x"), now()).completion_time.is_some());
    assert!(
        status(&ImagePullJobStatus::default(), &BTreeMap::new(), &job("x"), now()).completion_time.is_some()
    );
    let mut never = job("x");
    never.never = true;
    assert!(status(&ImagePullJobStatus::default(), &done, &never, now()).completion_time.is_none());
}
