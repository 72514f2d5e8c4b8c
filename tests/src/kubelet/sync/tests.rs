use std::time::Duration;

use serde_json::json;

use super::*;
use crate::kubelet::Config;

fn pod(policy: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 5,
                 "containers": [{"name": "app", "image": "img:v2"}]}}))
    .unwrap()
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn inst(state: CtrState, rc: i32, exit: i32, image: &str) -> CtrObs {
    CtrObs {
        id: "c".into(),
        state,
        restart_count: rc,
        exit_code: exit,
        reason: String::new(),
        message: String::new(),
        started_at: Some(at(0)),
        finished_at: (state == CtrState::Exited).then(|| at(10)),
        image: image.into(),
        image_ref: String::new(),
        hash: hash::container_hash_annotation("app", image),
        ready: true,
    }
}

#[test]
fn backoff_doubles_from_the_second_exit() {
    let (i, m) = (Duration::from_secs(10), Duration::from_secs(300));
    assert_eq!(backoff(0, i, m), Duration::ZERO);
    assert_eq!(backoff(1, i, m), Duration::from_secs(10));
    assert_eq!(backoff(2, i, m), Duration::from_secs(20));
    assert_eq!(backoff(9, i, m), m);
}

#[test]
fn actions() {
    let p = pod("Always");
    let c = &p.spec.as_ref().unwrap().containers[0];
    let cfg = Config::hollow("n");
    assert_eq!(action(&p, c, None, at(0), &cfg), Action::Start(0));
    assert_eq!(action(&p, c, Some(&inst(CtrState::Running, 0, 0, "img:v2")), at(0), &cfg), Action::Keep);
    // The image changed (an in-place update): kill and recreate, restartCount+1.
    assert_eq!(
        action(&p, c, Some(&inst(CtrState::Running, 2, 0, "img:v1")), at(0), &cfg),
        Action::Replace(3)
    );
    // First exit restarts at once; the second waits 10 s after it finished.
    assert_eq!(action(&p, c, Some(&inst(CtrState::Exited, 0, 1, "img:v2")), at(11), &cfg), Action::Start(1));
    assert_eq!(
        action(&p, c, Some(&inst(CtrState::Exited, 1, 1, "img:v2")), at(14), &cfg),
        Action::BackOff(Duration::from_secs(6))
    );
    assert_eq!(action(&p, c, Some(&inst(CtrState::Exited, 1, 1, "img:v2")), at(21), &cfg), Action::Start(2));

    let never = pod("Never");
    let c = &never.spec.as_ref().unwrap().containers[0];
    assert_eq!(action(&never, c, Some(&inst(CtrState::Exited, 0, 1, "img:v2")), at(99), &cfg), Action::Keep);
    let on_failure = pod("OnFailure");
    let c = &on_failure.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        action(&on_failure, c, Some(&inst(CtrState::Exited, 0, 0, "img:v2")), at(99), &cfg),
        Action::Keep
    );
    assert_eq!(
        action(&on_failure, c, Some(&inst(CtrState::Exited, 0, 3, "img:v2")), at(99), &cfg),
        Action::Start(1)
    );
}

#[test]
fn grace_prefers_the_deletion() {
    let mut p = pod("Always");
    assert_eq!(grace_seconds(&p), 5);
    p.metadata.deletion_grace_period_seconds = Some(1);
    assert_eq!(grace_seconds(&p), 1);
}
