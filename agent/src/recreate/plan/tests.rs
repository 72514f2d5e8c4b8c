use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStateTerminated};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stevedore_proto::crd::container_recreate_request::{
    ContainerRecreateRequestContainerContext, ContainerRecreateRequestSpec, ContainerRecreateRequestStatus,
};

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn spec(id: &str, rc: i32) -> ContainerRecreateRequestContainer {
    ContainerRecreateRequestContainer {
        name: "app".into(),
        status_context: Some(ContainerRecreateRequestContainerContext {
            container_id: format!("containerd://{id}"),
            restart_count: rc,
        }),
        ..Default::default()
    }
}

fn running(id: &str, rc: i32, started: &str, ready: bool) -> ContainerStatus {
    ContainerStatus {
        name: "app".into(),
        container_id: Some(format!("containerd://{id}")),
        restart_count: rc,
        ready,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(ts(started))) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exited(id: &str) -> ContainerStatus {
    ContainerStatus {
        name: "app".into(),
        container_id: Some(format!("containerd://{id}")),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated { exit_code: 1, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inputs<'a>(
    spec: &'a ContainerRecreateRequestContainer,
    status: Option<&'a ContainerStatus>,
) -> Inputs<'a> {
    Inputs {
        spec,
        previous: None,
        killed: None,
        in_pod_spec: true,
        status,
        force: false,
        min_started: Duration::ZERO,
        created: Some(ts("2026-01-01T00:00:10Z")),
        now: ts("2026-01-01T00:01:00Z"),
    }
}

#[test]
fn the_same_running_container_is_due() {
    let s = spec("a", 0);
    let st = running("a", 0, "2026-01-01T00:00:00Z", true);
    let a = assess(&inputs(&s, Some(&st)));
    assert!(a.act);
    assert_eq!(a.state.phase, ContainerRecreatePhase::Pending);
}

#[test]
fn a_container_restarted_since_the_context_counts_as_done_unless_forced() {
    let s = spec("a", 0);
    let st = running("b", 1, "2026-01-01T00:00:00Z", true);
    let a = assess(&inputs(&s, Some(&st)));
    assert!(!a.act);
    assert_eq!(a.state.phase, ContainerRecreatePhase::Succeeded);
    // started after the request was created, same id: restarted in place
    let st = running("a", 0, "2026-01-01T00:00:20Z", true);
    assert_eq!(assess(&inputs(&s, Some(&st))).state.phase, ContainerRecreatePhase::Succeeded);
    let forced = Inputs { force: true, ..inputs(&s, Some(&st)) };
    assert!(assess(&forced).act);
}

#[test]
fn an_exited_container_is_left_to_kubelet_unless_forced() {
    let s = spec("a", 0);
    let st = exited("a");
    let a = assess(&inputs(&s, Some(&st)));
    assert!(!a.act);
    assert_eq!(a.state.phase, ContainerRecreatePhase::Recreating);
    let forced = Inputs { force: true, ..inputs(&s, Some(&st)) };
    assert!(assess(&forced).act);
}

#[test]
fn a_killed_container_succeeds_when_a_new_one_is_ready_and_started_long_enough() {
    let s = spec("a", 0);
    let killed = Killed { old_id: "a".into() };
    let old = running("a", 0, "2026-01-01T00:00:00Z", true);
    let i = Inputs { killed: Some(&killed), ..inputs(&s, Some(&old)) };
    let a = assess(&i);
    assert_eq!(
        (a.state.phase, a.state.is_killed, a.act),
        (ContainerRecreatePhase::Recreating, Some(true), false)
    );
    let unready = running("b", 1, "2026-01-01T00:00:55Z", false);
    assert_eq!(
        assess(&Inputs { status: Some(&unready), ..i }).state.phase,
        ContainerRecreatePhase::Recreating
    );
    let new = running("b", 1, "2026-01-01T00:00:55Z", true);
    let min = Inputs { status: Some(&new), min_started: Duration::from_secs(10), ..i };
    let a = assess(&min);
    assert_eq!(a.state.phase, ContainerRecreatePhase::Recreating);
    assert_eq!(a.recheck, Some(Duration::from_secs(5)));
    let a = assess(&Inputs { status: Some(&new), ..i });
    assert_eq!((a.state.phase, a.state.is_killed), (ContainerRecreatePhase::Succeeded, Some(true)));
}

#[test]
fn after_an_agent_restart_the_status_context_is_the_baseline() {
    let s = spec("a", 0);
    let prev = ContainerRecreateRequestContainerRecreateState {
        name: "app".into(),
        phase: ContainerRecreatePhase::Recreating,
        message: None,
        is_killed: Some(true),
    };
    let new = running("b", 1, "2026-01-01T00:00:30Z", true);
    let i = Inputs { previous: Some(&prev), ..inputs(&s, Some(&new)) };
    assert_eq!(assess(&i).state.phase, ContainerRecreatePhase::Succeeded);
}

#[test]
fn a_name_the_pod_lacks_fails_with_its_name() {
    let s = ContainerRecreateRequestContainer { name: "nope".into(), ..Default::default() };
    let a = assess(&Inputs { in_pod_spec: false, ..inputs(&s, None) });
    assert_eq!(a.state.phase, ContainerRecreatePhase::Failed);
    assert!(a.state.message.unwrap().contains("\"nope\" is not a container of the pod"));
}

#[test]
fn finished_states_stay() {
    let s = spec("a", 0);
    let prev = ContainerRecreateRequestContainerRecreateState {
        name: "app".into(),
        phase: ContainerRecreatePhase::Succeeded,
        message: None,
        is_killed: Some(true),
    };
    let st = running("a", 0, "2026-01-01T00:00:00Z", true);
    let a = assess(&Inputs { previous: Some(&prev), ..inputs(&s, Some(&st)) });
    assert_eq!(a.state, prev);
}

fn crr(name: &str, created: &str, phase: Option<ContainerRecreateRequestPhase>) -> ContainerRecreateRequest {
    let mut c = ContainerRecreateRequest::new(name, ContainerRecreateRequestSpec::default());
    c.metadata.creation_timestamp = Some(Time(ts(created)));
    c.status = phase.map(|phase| ContainerRecreateRequestStatus { phase, ..Default::default() });
    c
}

#[test]
fn the_oldest_goes_first_unless_another_is_recreating_and_completed_ones_drop_out() {
    let names = |v: Vec<ContainerRecreateRequest>| {
        v.into_iter().map(|c| c.metadata.name.unwrap()).collect::<Vec<_>>()
    };
    let a = crr("a", "2026-01-01T00:00:01Z", None);
    let b = crr("b", "2026-01-01T00:00:00Z", Some(ContainerRecreateRequestPhase::Pending));
    assert_eq!(names(in_order(vec![a.clone(), b.clone()])), ["b", "a"]);
    let a2 = crr("a", "2026-01-01T00:00:01Z", Some(ContainerRecreateRequestPhase::Recreating));
    assert_eq!(names(in_order(vec![b.clone(), a2])), ["a", "b"]);
    let done = crr("c", "2025-01-01T00:00:00Z", Some(ContainerRecreateRequestPhase::Completed));
    assert_eq!(names(in_order(vec![a, b, done])), ["b", "a"]);
}
