use std::collections::HashMap;

use serde_json::json;

use super::*;

fn pod(extra_spec: serde_json::Value, status: serde_json::Value) -> Pod {
    let mut spec = json!({
        "restartPolicy": "Always",
        "initContainers": [{"name": "init", "image": "img:1"}],
        "containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}],
    });
    spec.as_object_mut().unwrap().extend(extra_spec.as_object().unwrap().clone());
    serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec, "status": status}))
        .unwrap()
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn ctr(id: &str, state: CtrState, restarts: i32, exit: i32) -> CtrObs {
    CtrObs {
        id: id.into(),
        state,
        restart_count: restarts,
        exit_code: exit,
        reason: String::new(),
        message: String::new(),
        started_at: Some(t(1)),
        finished_at: (state == CtrState::Exited).then(|| t(2)),
        image: String::new(),
        image_ref: format!("sha256:{id}"),
        hash: String::new(),
        ready: state == CtrState::Running,
    }
}

fn obs(containers: &[(&str, Vec<CtrObs>)]) -> Observed {
    Observed {
        sandbox_ready: true,
        pod_ip: "10.234.0.5".into(),
        host_ip: "10.0.0.1".into(),
        containers: containers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
        waiting: HashMap::new(),
        now: t(10),
    }
}

fn cond<'a>(s: &'a PodStatus, type_: &str) -> &'a PodCondition {
    s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn nothing_running_yet_is_pending_and_initializing() {
    let p = pod(json!({}), json!({}));
    let mut o = obs(&[]);
    o.sandbox_ready = false;
    o.pod_ip.clear();
    let s = pod_status(&p, &o);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&s, "Initialized").status, "False");
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(s.pod_ip, None);
    assert_eq!(s.start_time, Some(Time(t(10))));
}

#[test]
fn all_running_is_running_and_ready() {
    let p = pod(json!({}), json!({}));
    let o = obs(&[
        ("init", vec![ctr("i1", CtrState::Exited, 0, 0)]),
        ("a", vec![ctr("a1", CtrState::Running, 0, 0)]),
        ("b", vec![ctr("b2", CtrState::Running, 1, 0), ctr("b1", CtrState::Exited, 0, 137)]),
    ]);
    let s = pod_status(&p, &o);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    for c in ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        assert_eq!(cond(&s, c).status, "True", "{c}");
    }
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    assert!(init.ready);
    assert_eq!(
        init.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(),
        Some("Completed")
    );
    let b = &s.container_statuses.as_ref().unwrap()[1];
    assert_eq!(b.restart_count, 1);
    assert_eq!(b.container_id.as_deref(), Some("containerd://b2"));
    assert_eq!(b.image_id, "sha256:b2");
    let last = b.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (137, Some("Error")));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.234.0.5");
}

#[test]
fn readiness_gates_hold_ready_but_not_containers_ready() {
    let running = [
        ("init", vec![ctr("i", CtrState::Exited, 0, 0)]),
        ("a", vec![ctr("a", CtrState::Running, 0, 0)]),
        ("b", vec![ctr("b", CtrState::Running, 0, 0)]),
    ];
    let gates = json!({"readinessGates": [{"conditionType": "InPlaceUpdateReady"}]});
    let s = pod_status(&pod(gates.clone(), json!({})), &obs(&running));
    assert_eq!(cond(&s, "ContainersReady").status, "True");
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("ReadinessGatesNotReady"));

    let when = "2023-01-01T00:00:00Z";
    let status =
        json!({"conditions": [{"type": "InPlaceUpdateReady", "status": "True", "lastTransitionTime": when}]});
    let s = pod_status(&pod(gates, status), &obs(&running));
    assert_eq!(cond(&s, "Ready").status, "True");
    // Conditions kubelet does not own are kept as they were.
    assert_eq!(cond(&s, "InPlaceUpdateReady").last_transition_time.as_ref().unwrap().0.to_string(), when);
}

#[test]
fn keeps_transition_times_while_status_holds() {
    let when = "2023-01-01T00:00:00Z";
    let status = json!({"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": when},
                                       {"type": "Ready", "status": "True", "lastTransitionTime": when}]});
    let s = pod_status(&pod(json!({}), status), &obs(&[]));
    assert_eq!(cond(&s, "PodScheduled").last_transition_time.as_ref().unwrap().0.to_string(), when);
    // Ready flipped to False: a new transition time.
    assert_eq!(cond(&s, "Ready").last_transition_time, Some(Time(t(10))));
}

#[test]
fn phases_follow_restart_policy() {
    let exited = |a: i32, b: i32| {
        obs(&[
            ("init", vec![ctr("i", CtrState::Exited, 0, 0)]),
            ("a", vec![ctr("a", CtrState::Exited, 0, a)]),
            ("b", vec![ctr("b", CtrState::Exited, 0, b)]),
        ])
    };
    let phase = |policy: &str, o: &Observed| {
        pod_status(&pod(json!({"restartPolicy": policy}), json!({})), o).phase.unwrap()
    };
    assert_eq!(phase("Never", &exited(0, 0)), "Succeeded");
    assert_eq!(phase("Never", &exited(0, 1)), "Failed");
    assert_eq!(phase("OnFailure", &exited(0, 0)), "Succeeded");
    assert_eq!(phase("OnFailure", &exited(0, 1)), "Running");
    assert_eq!(phase("Always", &exited(0, 0)), "Running");

    let failed_init = obs(&[("init", vec![ctr("i", CtrState::Exited, 0, 2)])]);
    assert_eq!(phase("Never", &failed_init), "Failed");
    assert_eq!(phase("Always", &failed_init), "Pending");

    // A terminal phase sticks.
    let p = pod(json!({"restartPolicy": "Never"}), json!({"phase": "Succeeded"}));
    assert_eq!(pod_status(&p, &obs(&[])).phase.as_deref(), Some("Succeeded"));
}

#[test]
fn waiting_reasons_from_sync() {
    let mut o = obs(&[
        ("init", vec![ctr("i", CtrState::Exited, 0, 0)]),
        ("a", vec![ctr("a", CtrState::Exited, 3, 1)]),
    ]);
    o.waiting.insert("a".into(), ("CrashLoopBackOff".into(), "back-off 40s".into()));
    o.waiting.insert("b".into(), ("ErrImageNeverPull".into(), "never pull".into()));
    let s = pod_status(&pod(json!({}), json!({})), &o);
    let cs = s.container_statuses.unwrap();
    let w = |i: usize| cs[i].state.as_ref().unwrap().waiting.as_ref().unwrap().reason.clone().unwrap();
    assert_eq!(w(0), "CrashLoopBackOff");
    assert_eq!(cs[0].restart_count, 3);
    assert!(cs[0].last_state.as_ref().unwrap().terminated.is_some());
    assert_eq!(w(1), "ErrImageNeverPull");
    assert_eq!(s.phase.as_deref(), Some("Pending"));
}
