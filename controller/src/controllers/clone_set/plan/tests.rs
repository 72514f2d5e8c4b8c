use super::*;

fn pod(name: &str, updated: bool, available: bool) -> PodInfo {
    PodInfo { name: name.into(), updated, available, ..PodInfo::default() }
}

fn names(pods: &[PodInfo]) -> Vec<String> {
    pods.iter().map(|p| p.name.clone()).collect()
}

fn limits(replicas: i64) -> Limits {
    Limits { replicas, max_unavailable: 1, ..Limits::default() }
}

#[test]
fn scales_up_on_the_update_revision() {
    let pods = vec![pod("a", true, true)];
    let p = plan(&limits(3), &pods, &names(&pods), &names(&pods));
    assert_eq!((p.create_current, p.create_update), (0, 2));
    assert!(p.delete.is_empty() && p.update.is_empty());
}

#[test]
fn scale_up_fills_the_partition_from_the_current_revision() {
    let l = Limits { partition: 2, ..limits(4) };
    let pods = vec![pod("a", true, true)];
    let p = plan(&l, &pods, &[], &[]);
    assert_eq!((p.create_current, p.create_update), (2, 1));
}

#[test]
fn scale_up_respects_scale_strategy_max_unavailable() {
    let l = Limits { scale_max_unavailable: Some(2), ..limits(5) };
    let pods = vec![pod("a", true, false)];
    let p = plan(&l, &pods, &[], &[]);
    assert_eq!(p.create_update, 1, "2 allowed unavailable, 1 already is");
}

#[test]
fn scales_down_old_revision_first_in_delete_order() {
    let pods =
        vec![pod("n1", true, true), pod("o1", false, true), pod("o2", false, true), pod("n2", true, true)];
    let l = Limits { max_unavailable: 5, ..limits(2) };
    let order: Vec<String> = ["n1", "o2", "n2", "o1"].map(String::from).to_vec();
    let p = plan(&l, &pods, &order, &[]);
    assert_eq!(p.delete, ["o2", "o1"]);
}

#[test]
fn ready_pod_deletes_are_capped_but_unready_ones_are_not() {
    let pods = vec![pod("a", true, true), pod("b", true, true), pod("c", true, false), pod("d", true, true)];
    // replicas 1: 3 to delete; budget = 1 + 4 - 1 - 1 = 3
    let p = plan(&limits(1), &pods, &names(&pods), &[]);
    assert_eq!(p.delete.len(), 3);
    let l = Limits { max_unavailable: 0, ..limits(3) };
    let pods = vec![pod("a", true, true), pod("b", true, true), pod("c", true, true), pod("d", true, true)];
    // replicas 3, budget = 0 + 4 - 3 - 0 = 1
    let p = plan(&l, &pods, &names(&pods), &[]);
    assert_eq!(p.delete, ["a"]);
}

#[test]
fn specified_delete_goes_first_and_is_replaced() {
    let mut pods = vec![pod("a", true, true), pod("b", true, true), pod("c", true, true)];
    pods[1].specified_delete = true;
    let p = plan(&limits(3), &pods, &names(&pods), &[]);
    assert_eq!(p.delete, ["b"]);
    assert_eq!(p.create_update, 1);
}

#[test]
fn a_preparing_delete_pod_waits_for_its_hooks() {
    let mut pods = vec![pod("a", true, true), pod("b", true, true)];
    pods[1].preparing_delete = true;
    let p = plan(&limits(1), &pods, &names(&pods), &[]);
    assert!(p.delete.is_empty());
    assert_eq!(p, Plan::default());
}

#[test]
fn updates_within_max_unavailable_and_partition() {
    let pods: Vec<PodInfo> = (0..5).map(|i| pod(&format!("p{i}"), false, true)).collect();
    let l = Limits { partition: 2, max_unavailable: 2, ..limits(5) };
    let p = plan(&l, &pods, &[], &names(&pods));
    assert_eq!(p.update, ["p0", "p1"], "2 unavailable at most");
    // two are updating (unavailable): no budget left
    let mut pods = pods;
    for x in &mut pods[..2] {
        x.updated = true;
        x.available = false;
    }
    assert!(plan(&l, &pods, &[], &names(&pods)).update.is_empty());
    // both done: one more to reach replicas - partition = 3
    for x in &mut pods[..2] {
        x.available = true;
    }
    assert_eq!(plan(&l, &pods, &[], &names(&pods)).update, ["p2"]);
}

#[test]
fn an_unavailable_old_pod_updates_without_budget() {
    let pods = vec![pod("a", false, false), pod("b", false, true)];
    let l = Limits { max_unavailable: 0, ..limits(2) };
    assert_eq!(plan(&l, &pods, &[], &names(&pods)).update, ["a"]);
}

#[test]
fn paused_neither_updates_nor_surges() {
    let pods = vec![pod("a", false, true)];
    let l = Limits { paused: true, max_surge: 1, ..limits(1) };
    assert_eq!(plan(&l, &pods, &[], &names(&pods)), Plan::default());
}

#[test]
fn surge_creates_first_then_deletes_the_extra_old_pod() {
    let l = Limits { max_surge: 1, max_unavailable: 0, ..limits(2) };
    let pods = vec![pod("o1", false, true), pod("o2", false, true)];
    let p = plan(&l, &pods, &[], &names(&pods));
    assert_eq!((p.create_update, p.update.len()), (1, 0), "one surge pod first");
    let pods = vec![pod("o1", false, true), pod("o2", false, true), pod("n1", true, false)];
    assert_eq!(plan(&l, &pods, &[], &names(&pods)), Plan::default(), "wait for it to be available");
    let pods = vec![pod("o1", false, true), pod("o2", false, true), pod("n1", true, true)];
    assert_eq!(plan(&l, &pods, &[], &names(&pods)).update, ["o1"], "then one old pod moves");
    let pods = vec![pod("o2", false, true), pod("n1", true, true), pod("n2", true, true)];
    let p = plan(&l, &pods, &names(&pods), &names(&pods));
    assert_eq!(p.delete, ["o2"], "enough new pods: the last old one goes");
    let pods = vec![pod("n1", true, true), pod("n2", true, true), pod("n3", true, true)];
    assert_eq!(plan(&l, &pods, &names(&pods), &[]).delete, ["n1"], "the surge is given back");
}
