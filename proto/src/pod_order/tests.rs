use std::cmp::Ordering;

use k8s_openapi::{
    api::core::v1::{ContainerStatus, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta},
};

use super::*;

// ----- builders -----

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

/// A pod named `name` in `default`, built up by the methods below.
struct B(Pod);

fn pod(name: &str) -> B {
    B(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus::default()),
    })
}

impl B {
    fn node(mut self, node: &str) -> Self {
        self.0.spec.get_or_insert_default().node_name = Some(node.into());
        self
    }
    fn phase(mut self, phase: &str) -> Self {
        self.0.status.get_or_insert_default().phase = Some(phase.into());
        self
    }
    fn ready_cond(mut self, status: &str, since: Option<Timestamp>) -> Self {
        self.0.status.get_or_insert_default().conditions.get_or_insert_default().push(PodCondition {
            type_: "Ready".into(),
            status: status.into(),
            last_transition_time: since.map(Time),
            ..Default::default()
        });
        self
    }
    fn ready(self, since: Option<Timestamp>) -> Self {
        self.ready_cond("True", since)
    }
    fn restarts(mut self, n: i32) -> Self {
        self.0
            .status
            .get_or_insert_default()
            .container_statuses
            .get_or_insert_default()
            .push(ContainerStatus { name: format!("c{n}"), restart_count: n, ..Default::default() });
        self
    }
    fn created(mut self, at: Timestamp) -> Self {
        self.0.metadata.creation_timestamp = Some(Time(at));
        self
    }
    fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }
    fn annotation(mut self, k: &str, v: &str) -> Self {
        self.0.metadata.annotations.get_or_insert_default().insert(k.into(), v.into());
        self
    }
    fn cost(self, v: &str) -> Self {
        self.annotation(POD_DELETION_COST, v)
    }
    fn label(mut self, k: &str, v: &str) -> Self {
        self.0.metadata.labels.get_or_insert_default().insert(k.into(), v.into());
        self
    }
    /// `"a=1,b=2"`; parts without `=` are ignored, as OpenKruise's test parser does.
    fn labels(mut self, spec: &str) -> Self {
        for part in spec.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                self = self.label(k, v);
            }
        }
        self
    }
}

fn names<'a>(pods: &[&'a Pod]) -> Vec<&'a str> {
    pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
}

fn refs(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().collect()
}

fn deleted_in_order(pods: &[Pod], available: impl Fn(&Pod) -> bool) -> Vec<&str> {
    let mut r = refs(pods);
    sort_for_deletion(&mut r, available);
    names(&r)
}

fn always(_: &Pod) -> bool {
    true
}

/// The deletion order by the rules alone (names blanked), no rank and no
/// availability: Go's `ActivePodsWithRanks{Pods}` without Ranker or AvailableFunc.
fn rule_cmp(a: &Pod, b: &Pod) -> Ordering {
    fn blank(pod: &Pod) -> DeletionKey<'_> {
        let mut k = deletion_key(pod, true, 0);
        k.name = "";
        k.namespace = "";
        k
    }
    blank(a).cmp(&blank(b))
}

// ----- scale-in order -----

/// OpenKruise `pkg/controller/cloneset/utils/pod_sorter_test.go`, `TestSortingActivePods`:
/// its equality and inequality vectors.
#[test]
fn kruise_sorting_active_pods_vectors() {
    let now = t(0);
    let then = t(-30 * 86_400);
    let mk = |name: &str,
              node: &str,
              phase: &str,
              ready: bool,
              restarts: i32,
              since: Option<Timestamp>,
              created: Option<Timestamp>| {
        let mut b = pod(name).phase(phase);
        if !node.is_empty() {
            b = b.node(node);
        }
        if ready {
            b = b.ready(since).restarts(restarts);
        }
        if let Some(c) = created {
            b = b.created(c);
        }
        b.0
    };
    let unscheduled = mk("unscheduled", "", "Pending", false, 0, None, None);
    let pending = mk("pending", "node", "Pending", false, 0, None, None);
    let unknown = mk("unknown-phase", "node", "Unknown", false, 0, None, None);
    let not_ready = mk("not-ready", "node", "Running", false, 0, None, None);
    let ready_no_time = mk("ready-no-last-transition-time", "node", "Running", true, 0, None, None);
    let ready_now = mk("ready-now", "node", "Running", true, 0, Some(now), Some(now));
    let ready_then = mk("ready-then", "node", "Running", true, 0, Some(then), Some(then));
    let high_restarts = mk("ready-high-restarts", "node", "Running", true, 9001, Some(now), Some(now));
    let now_created_then = mk("ready-now-created-then", "node", "Running", true, 0, Some(now), Some(then));
    let low_cost =
        pod("low-deletion-cost").node("node").phase("Running").ready(Some(now)).restarts(0).created(then);
    let high_cost =
        pod("high-deletion-cost").node("node").phase("Running").ready(Some(now)).restarts(0).created(then);
    let (low_cost, high_cost) = (low_cost.cost("10").0, high_cost.cost("100").0);

    for p in [
        &unscheduled,
        &pending,
        &unknown,
        &not_ready,
        &now_created_then,
        &ready_now,
        &ready_then,
        &high_restarts,
    ] {
        assert_eq!(rule_cmp(p, p), Ordering::Equal, "{:?}", p.metadata.name);
    }
    let lesser_greater = [
        (&unscheduled, &pending),
        (&pending, &unknown),
        (&unknown, &not_ready),
        (&not_ready, &ready_no_time),
        (&ready_no_time, &ready_now),
        (&ready_now, &ready_then),
        (&high_restarts, &ready_now),
        (&ready_now, &now_created_then),
        (&low_cost, &high_cost),
    ];
    for (i, (lesser, greater)) in lesser_greater.into_iter().enumerate() {
        assert_eq!(rule_cmp(lesser, greater), Ordering::Less, "test{i}");
        assert_eq!(rule_cmp(greater, lesser), Ordering::Greater, "test{i}");
    }
}

// Each rule below: the pod that must go first is named so that the name tie-break
// alone would put it last, so a missing or reversed rule fails the test.

#[test]
fn unassigned_pods_go_first() {
    let pods = [pod("a").node("n1").0, pod("b").0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
}

#[test]
fn pending_then_unknown_then_running_and_other_phases_count_as_pending() {
    let pods = [
        pod("a").node("n").phase("Running").0,
        pod("b").node("n").phase("Unknown").0,
        pod("c").node("n").phase("Pending").0,
        pod("d").node("n").phase("Succeeded").0,
    ];
    // Succeeded maps to 0 like Pending; between the two the name decides.
    assert_eq!(deleted_in_order(&pods, always), ["c", "d", "b", "a"]);
}

#[test]
fn unavailable_then_not_ready_go_first() {
    let pods = [
        pod("a").node("n").phase("Running").ready(Some(t(0))).0,
        pod("b").node("n").phase("Running").ready_cond("False", Some(t(0))).0,
    ];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"], "not Ready first");
    // Availability is compared before readiness: an unavailable Ready pod goes before
    // an available one that is not Ready (only a caller's predicate can say so).
    let pods =
        [pod("a").node("n").phase("Running").0, pod("b").node("n").phase("Running").ready(Some(t(0))).0];
    let available = |p: &Pod| p.metadata.name.as_deref() == Some("a");
    assert_eq!(deleted_in_order(&pods, available), ["b", "a"]);
}

#[test]
fn lower_deletion_cost_goes_first_and_beats_rank() {
    let pods =
        [pod("a").node("n").cost("-5").0, pod("b").node("n").cost("-10").0, pod("c").node("m").cost("-20").0];
    // a and b share node n, so one of them outranks c; c's lower cost still wins.
    assert_eq!(deleted_in_order(&pods, always), ["c", "b", "a"]);
}

#[test]
fn deletion_cost_parses_like_kubernetes() {
    let cost = |v: &str| deletion_cost(&pod("p").cost(v).0);
    assert_eq!(cost("10"), 10);
    assert_eq!(cost("-10"), -10);
    assert_eq!(cost("0"), 0);
    assert_eq!(cost("-0012"), -12, "leading zeros after the sign are accepted by ParseInt");
    assert_eq!(cost("2147483647"), i32::MAX);
    for bad in ["+10", "010", "", " 1", "1.5", "abc", "-", "2147483648", "1_0"] {
        assert_eq!(cost(bad), 0, "{bad:?}");
    }
    assert_eq!(deletion_cost(&pod("p").0), 0);
}

/// OpenKruise `pod_sorter_test.go`, `TestSameNodeRanker`: node a holds 0, 4, 10; b
/// 3, 6; c 5; d 7, 8, 9; 1 and 2 are unassigned. All pods tie, so each node keeps its
/// input order and only the last pod of a node ranks 0.
#[test]
fn kruise_same_node_ranker_vector() {
    let nodes = ["a", "", "", "b", "a", "c", "b", "d", "d", "d", "a"];
    let pods: Vec<Pod> = nodes
        .iter()
        .map(|n| {
            let mut p = Pod::default();
            if !n.is_empty() {
                p.spec = Some(PodSpec { node_name: Some((*n).into()), ..Default::default() });
            }
            p
        })
        .collect();
    let ranks = same_node_ranks(&refs(&pods));
    assert_eq!(ranks, [2, 0, 0, 1, 1, 0, 0, 2, 1, 0, 0]);
}

#[test]
fn crowded_nodes_go_first_and_rank_beats_ready_time() {
    // n1 holds b, c, d (ranks 2, 1, 0 by name); n2 holds only a. a became Ready last,
    // which alone would put it first.
    let pods = [
        pod("a").node("n2").ready(Some(t(100))).0,
        pod("b").node("n1").ready(Some(t(0))).0,
        pod("c").node("n1").ready(Some(t(0))).0,
        pod("d").node("n1").ready(Some(t(0))).0,
    ];
    assert_eq!(deleted_in_order(&pods, always), ["b", "c", "a", "d"]);
}

#[test]
fn the_node_order_decides_the_rank() {
    // On n1, q is newer than p, so q goes first on its node and ranks 1, p 0; a is
    // alone on n2 and the newest of all. By name alone n1 would rank p first
    // (p, a, q); without ranks newest-first gives a, q, p.
    let pods = [
        pod("a").node("n2").created(t(100)).0,
        pod("p").node("n1").created(t(0)).0,
        pod("q").node("n1").created(t(50)).0,
    ];
    assert_eq!(deleted_in_order(&pods, always), ["q", "a", "p"]);
}

#[test]
fn ready_for_less_time_goes_first_and_a_missing_time_first_of_all() {
    let pods = [pod("a").node("n1").ready(Some(t(0))).0, pod("b").node("n2").ready(Some(t(10))).0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
    let pods = [pod("a").node("n1").ready(Some(t(0))).0, pod("b").node("n2").ready(None).0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
}

#[test]
fn ready_times_count_only_when_both_pods_are_ready() {
    // Neither is Ready; a's Ready=False is more recent, which must not matter: b's
    // restarts decide.
    let pods = [
        pod("a").node("n1").ready_cond("False", Some(t(100))).0,
        pod("b").node("n2").ready_cond("False", Some(t(0))).restarts(1).0,
    ];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
}

#[test]
fn more_restarts_go_first() {
    let pods = [pod("a").node("n1").restarts(3).0, pod("b").node("n2").restarts(1).restarts(7).0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
}

#[test]
fn newer_goes_first_and_a_missing_creation_time_first_of_all() {
    let pods = [pod("a").node("n1").created(t(0)).0, pod("b").node("n2").created(t(1)).0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
    let pods = [pod("a").node("n1").created(t(0)).0, pod("b").node("n2").0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
    // Go's zero time (what `null` decodes to in Go) counts as missing.
    let zero = Timestamp::from_second(-62_135_596_800).unwrap();
    let pods = [pod("a").node("n1").created(t(0)).0, pod("b").node("n2").created(zero).0];
    assert_eq!(deleted_in_order(&pods, always), ["b", "a"]);
}

#[test]
fn ties_go_by_name_then_namespace() {
    let pods = [pod("b").node("n1").0, pod("a").namespace("z").node("n2").0, pod("a").node("n3").0];
    let mut r = refs(&pods);
    sort_for_deletion(&mut r, always);
    let got: Vec<_> = r
        .iter()
        .map(|p| (p.metadata.namespace.as_deref().unwrap(), p.metadata.name.as_deref().unwrap()))
        .collect();
    assert_eq!(got, [("default", "a"), ("z", "a"), ("default", "b")]);
}

#[test]
fn available_means_ready_for_min_ready_seconds() {
    let now = t(100);
    assert!(!pod_available(&pod("p").0, 0, now), "no Ready condition");
    assert!(!pod_available(&pod("p").ready_cond("False", Some(t(0))).0, 0, now));
    assert!(pod_available(&pod("p").ready(None).0, 0, now), "minReadySeconds 0 needs no time");
    assert!(!pod_available(&pod("p").ready(None).0, 5, now), "no time: never long enough");
    assert!(!pod_available(&pod("p").ready(Some(t(90))).0, 10, now), "exactly 10s is not more");
    assert!(pod_available(&pod("p").ready(Some(t(89))).0, 10, now));
}

// ----- ActivePods (update base order) -----

#[test]
fn active_order_follows_kubernetes_and_ignores_cost_and_rank() {
    let pods = [
        pod("a").node("n").phase("Running").ready(Some(t(0))).created(t(0)).0,
        pod("b").node("n").phase("Running").ready(Some(t(0))).created(t(5)).0,
        pod("c").node("n").phase("Running").ready(Some(t(0))).restarts(2).0,
        pod("d").node("n").phase("Running").ready(Some(t(9))).0,
        pod("e").node("n").phase("Running").0,
        pod("f").node("n").phase("Unknown").0,
        pod("g").node("n").phase("Pending").cost("-100").0,
        pod("h").phase("Running").ready(Some(t(0))).0,
    ];
    let mut r = refs(&pods);
    r.reverse();
    sort_active(&mut r);
    assert_eq!(names(&r), ["h", "g", "f", "e", "d", "c", "b", "a"]);
    // Deletion cost plays no part: a cheap pod keeps its place among equals.
    let pods = [pod("a").node("n").0, pod("b").node("n").cost("-1").0];
    let mut r = refs(&pods);
    sort_active(&mut r);
    assert_eq!(names(&r), ["a", "b"]);
}

// ----- selectors -----

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn lbls(spec: &str) -> BTreeMap<String, String> {
    pod("p").labels(spec).0.metadata.labels.unwrap_or_default()
}

fn sel(match_labels: &str, exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_labels: (!match_labels.is_empty()).then(|| lbls(match_labels)),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    }
}

#[test]
fn selectors_match_like_kubernetes() {
    let l = lbls("app=web,tier=a");
    let m = |s: LabelSelector| label_selector_matches(&s, &l).unwrap();
    assert!(m(sel("", vec![])), "empty selects everything");
    assert!(m(sel("app=web", vec![])));
    assert!(!m(sel("app=db", vec![])));
    assert!(!m(sel("app=web,zone=x", vec![])));
    assert!(m(sel("", vec![expr("tier", "In", &["a", "b"])])));
    assert!(!m(sel("", vec![expr("tier", "In", &["b"])])));
    assert!(!m(sel("", vec![expr("zone", "In", &["a"])])));
    assert!(m(sel("", vec![expr("zone", "NotIn", &["a"])])), "NotIn matches a missing key");
    assert!(!m(sel("", vec![expr("tier", "NotIn", &["a"])])));
    assert!(m(sel("", vec![expr("tier", "Exists", &[])])));
    assert!(!m(sel("", vec![expr("zone", "Exists", &[])])));
    assert!(m(sel("", vec![expr("zone", "DoesNotExist", &[])])));
    assert!(!m(sel("", vec![expr("app", "DoesNotExist", &[])])));
    assert!(!m(sel("app=web", vec![expr("app", "DoesNotExist", &[])])), "all parts must match");
    // Unvalidated values, as ValidatedLabelSelectorAsSelector leaves them.
    assert!(!m(sel("", vec![expr("tier", "In", &[])])));
    assert!(m(sel("", vec![expr("tier", "NotIn", &[])])));
}

#[test]
fn an_unknown_operator_is_an_error_naming_the_field() {
    let s = sel("app=nomatch", vec![expr("a", "Exists", &[]), expr("b", "Near", &[])]);
    let err = label_selector_matches(&s, &lbls("app=web")).unwrap_err();
    assert_eq!(err, SelectorError::UnknownOperator { index: 1, operator: "Near".into() });
    let text = err.to_string();
    assert!(text.starts_with("matchExpressions[1].operator: Unsupported value: \"Near\""), "{text}");
}

// ----- priority -----

fn weights(terms: &[(i32, &str)]) -> UpdatePriorityStrategy {
    UpdatePriorityStrategy {
        weight_priority: Some(
            terms
                .iter()
                .map(|(w, l)| UpdatePriorityWeightTerm { weight: *w, match_selector: sel(l, vec![]) })
                .collect(),
        ),
        order_priority: None,
    }
}

fn orders(keys: &[&str]) -> UpdatePriorityStrategy {
    UpdatePriorityStrategy {
        weight_priority: None,
        order_priority: Some(
            keys.iter().map(|k| UpdatePriorityOrderTerm { ordered_key: (*k).into() }).collect(),
        ),
    }
}

/// Go's `compare(podI, podJ, true)`: true unless J must go strictly before I.
fn go_compare(s: &UpdatePriorityStrategy, i: &str, j: &str) -> bool {
    let pods = [pod("i").labels(i).0, pod("j").labels(j).0];
    let mut r = refs(&pods);
    r.reverse(); // j, i: i ends first unless j must stay before it
    sort_by_priority(&mut r, s);
    let after = names(&r);
    // If I and J tie, the stable sort keeps j first; tell ties apart explicitly.
    let mut r2 = refs(&pods);
    sort_by_priority(&mut r2, s);
    let tie = names(&r2) == ["i", "j"] && after == ["j", "i"];
    tie || after == ["i", "j"]
}

/// OpenKruise `pkg/util/updatesort/priority_sort_test.go`, `TestCompare`.
#[test]
fn kruise_priority_compare_vectors() {
    let w2 = weights(&[(20, "key=foo"), (10, "key=bar")]);
    let w3a = weights(&[(20, "key1=foo"), (10, "key2=bar"), (15, "key3=baz")]);
    let w3b = weights(&[(20, "key1=foo"), (10, "key2=bar"), (5, "key3=baz")]);
    let o = orders(&["key1", "key2"]);
    let cases: [(&UpdatePriorityStrategy, &str, &str, bool); 13] = [
        (&w2, "", "", true),
        (&w2, "key=foo", "key=foo", true),
        (&w2, "key=bar", "key=foo", false),
        (&w2, "", "key=bar", false),
        (&w2, "", "key=foo", false),
        (&w3a, "key1=foo", "key2=bar,key3=baz", false),
        (&w3b, "key2=bar,key3=baz", "key1=foo", false),
        (&o, "", "", true),
        (&o, "key1=o-10", "key1=o-5", true),
        (&o, "key1=o-10", "key1=o-10", true),
        (&o, "key1=o-10", "key1=o-20", false),
        (&o, "key2=o-20", "key1=o-10", false),
        (&o, "key2=o-20", "key2=o-10", true),
    ];
    for (n, (s, i, j, want)) in cases.into_iter().enumerate() {
        assert_eq!(go_compare(s, i, j), want, "case #{n}");
    }
}

fn update_order(
    pods: &[Pod],
    priority: Option<&UpdatePriorityStrategy>,
    scatter: Option<&[UpdateScatterTerm]>,
) -> Vec<String> {
    let mut r = refs(pods);
    let all = refs(pods);
    sort_for_update(&mut r, &all, priority, scatter);
    names(&r).into_iter().map(String::from).collect()
}

/// OpenKruise `priority_sort_test.go`, `Test_prioritySort_Sort`.
#[test]
fn kruise_priority_sort_vectors() {
    let plain = [pod("pod-0").0, pod("pod-1").0, pod("pod-2").0];
    assert_eq!(
        update_order(&plain, Some(&UpdatePriorityStrategy::default()), None),
        ["pod-0", "pod-1", "pod-2"]
    );

    let pods = [
        pod("pod-0").label("hello", "world").0,
        pod("pod-1").0,
        pod("pod-2").label("foo", "bar").0,
        pod("pod-3").0,
    ];
    let s = weights(&[(100, "foo=bar"), (90, "hello=world")]);
    assert_eq!(update_order(&pods, Some(&s), None), ["pod-2", "pod-0", "pod-1", "pod-3"]);
    let s = weights(&[(100, "not=match"), (90, "not1=match1")]);
    assert_eq!(update_order(&pods, Some(&s), None), ["pod-0", "pod-1", "pod-2", "pod-3"]);
}

#[test]
fn a_pod_without_any_ordered_key_goes_first() {
    // getPodOrderPriority returns level -1 for such a pod, and lower levels go first.
    let pods = [pod("p0").label("key1", "a-1").0, pod("p1").label("key2", "b-9").0, pod("p2").0];
    assert_eq!(update_order(&pods, Some(&orders(&["key1", "key2"])), None), ["p2", "p0", "p1"]);
}

#[test]
fn order_priority_sorts_by_level_then_higher_suffix_and_is_stable() {
    let pods = [
        pod("p0").label("k", "x-2").0,
        pod("p1").label("k", "x-10").0,
        pod("p2").label("k", "none").0,
        pod("p3").label("k", "x-10").0,
        pod("p4").label("k", "y-10").0,
    ];
    // 10, 10, 10 keep their order; then 2; "none" has no digits and counts as 0.
    assert_eq!(update_order(&pods, Some(&orders(&["k"])), None), ["p1", "p3", "p4", "p0", "p2"]);
}

#[test]
fn trailing_integers_parse_like_get_int_from_string_suffix() {
    assert_eq!(trailing_integer("o-10"), 10);
    assert_eq!(trailing_integer("x-007"), 7);
    assert_eq!(trailing_integer("42"), 42);
    assert_eq!(trailing_integer("12a"), 0);
    assert_eq!(trailing_integer(""), 0);
    assert_eq!(trailing_integer("v-99999999999999999999"), 0, "does not fit an i64");
    assert_eq!(trailing_integer("v-9223372036854775807"), i64::MAX);
}

#[test]
fn weight_priority_wins_over_order_priority_and_bad_selectors_add_nothing() {
    let pods = [pod("p0").label("k", "x-9").0, pod("p1").label("app", "a").0];
    let mut s = weights(&[(10, "app=a")]);
    s.order_priority = orders(&["k"]).order_priority;
    assert_eq!(update_order(&pods, Some(&s), None), ["p1", "p0"], "weights, not order keys");

    let mut bad = sel("app=a", vec![expr("app", "Near", &[])]);
    bad.match_labels = None;
    let s = UpdatePriorityStrategy {
        weight_priority: Some(vec![
            UpdatePriorityWeightTerm { weight: 100, match_selector: bad },
            UpdatePriorityWeightTerm { weight: 10, match_selector: sel("k=x-9", vec![]) },
        ]),
        order_priority: None,
    };
    assert_eq!(update_order(&pods, Some(&s), None), ["p0", "p1"]);
}

// ----- scatter -----

fn term(key: &str, value: &str) -> UpdateScatterTerm {
    UpdateScatterTerm { key: key.into(), value: value.into() }
}

/// OpenKruise `pkg/util/updatesort/scatter_sort_test.go`, `TestGenerateRules`.
#[test]
fn kruise_scatter_terms_vectors() {
    let cases: [(&[&str], Vec<UpdateScatterTerm>, Vec<UpdateScatterTerm>); 2] = [
        (
            &["", "", "", "", "labelA=AAA", "labelA=AAA"],
            vec![term("labelA", "AAA")],
            vec![term("labelA", "AAA")],
        ),
        (
            &["", "", "labelB=B", "labelB=BBB", "labelA=AAA", "labelA=AAA"],
            vec![term("labelA", "AAA"), term("labelB", "BBB")],
            vec![term("labelA", "AAA"), term("labelB", "BBB")],
        ),
    ];
    for (n, (labels, strategy, want)) in cases.into_iter().enumerate() {
        let pods: Vec<Pod> =
            labels.iter().enumerate().map(|(i, l)| pod(&i.to_string()).labels(l).0).collect();
        let got: Vec<UpdateScatterTerm> =
            scatter_terms(&refs(&pods), &strategy).into_iter().cloned().collect();
        assert_eq!(got, want, "case {n}");
    }
}

#[test]
fn scatter_terms_go_by_count_then_spec_order() {
    let pods: Vec<Pod> = ["b=1", "a=1", "b=1", "c=1,a=1", "b=1"]
        .iter()
        .enumerate()
        .map(|(i, l)| pod(&i.to_string()).labels(l).0)
        .collect();
    let strategy = [term("z", "1"), term("a", "1"), term("c", "1"), term("b", "1"), term("a", "1")];
    let got: Vec<_> = scatter_terms(&refs(&pods), &strategy).into_iter().map(|t| t.key.as_str()).collect();
    // b: 3; a: 2 + 2 (listed twice); c: 1; z: none, left out.
    assert_eq!(got, ["a", "b", "c"]);
}

/// OpenKruise `scatter_sort_test.go`, `TestScatterPodsByRule`: term labelA=AAA over
/// the first `expected.len()` pods, which are both the candidates and all the pods.
#[test]
fn kruise_scatter_pods_by_rule_vectors() {
    let cases: [(&[&str], &[usize]); 12] = [
        (&[""], &[0]),
        (&["labelA=AAA"], &[0]),
        (&["labelA=AAA", "bbb"], &[0, 1]),
        (&["", "", "", "", "labelA=AAA", "labelA=AAA"], &[4, 0, 1, 2, 3, 5]),
        (&["", "", "", "labelA=AAA", "labelA=AAA", "labelA=AAA"], &[3, 0, 1, 4, 2, 5]),
        (&["", "", "", "labelA=AAA", "", "", "labelA=AAA"], &[3, 0, 1, 2, 4, 5, 6]),
        (&["", "", "", "", "", "", "labelA=AAA", "labelA=AAA", "labelA=AAA"], &[6, 0, 1, 2, 7, 3, 4, 5, 8]),
        (&["", "", "labelA=AAA", "labelA=AAA", "labelA=AAA", "labelA=AAA"], &[2, 3, 0, 4, 1, 5]),
        (
            &["", "", "", "labelA=AAA", "labelA=AAA", "labelA=AAA", "labelA=AAA", "labelA=AAA"],
            &[3, 0, 1, 4, 2, 5],
        ),
        (
            &["", "", "labelA=AAA", "", "labelA=AAA", "labelA=AAA", "labelA=AAA", "labelA=AAA", "labelA=AAA"],
            &[2, 4, 0, 5, 6, 1, 7, 3, 8],
        ),
        (
            &["", "labelA=AAA", "", "labelA=AAA", "", "", "labelA=AAA", "labelA=AAA", "labelA=AAA"],
            &[1, 0, 3, 2, 6, 4, 7, 5, 8],
        ),
        (
            &["", "", "", "", "ee", "a", "", "labelA=AAA", "labelA=AAA", "labelA=AAA,labelB=BBB"],
            &[7, 0, 1, 2, 3, 8, 4, 5, 6, 9],
        ),
    ];
    let rule = term("labelA", "AAA");
    for (n, (labels, want)) in cases.into_iter().enumerate() {
        let pods: Vec<Pod> = labels[..want.len()].iter().map(|l| pod("p").labels(l).0).collect();
        let r = refs(&pods);
        let got = scatter_by_term(&rule, &r, &r, (0..r.len()).collect());
        assert_eq!(got, want, "case {n}");
    }
}

/// OpenKruise `scatter_sort_test.go`, `TestSort`. Entries past the candidates are pods
/// of the workload that are not candidates; `nil` is a hole in the pod list (reserved
/// ordinals), left out of both lists.
#[test]
fn kruise_scatter_sort_vectors() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [usize]);
    let a = ("labelA", "AAA");
    let b = ("labelB", "BBB");
    let c = ("labelC", "CCC");
    let cases: [Case; 21] = [
        (&["labelA=AAA,labelB=BBB"], &[a], &[0]),
        (&["", "", "", "", "", ""], &[], &[0, 1, 2, 3, 4, 5]),
        (&["", "", "", "", "labelA=AAA", "labelA=AAA"], &[a], &[4, 0, 1, 2, 3, 5]),
        (
            &[
                "",
                "",
                "",
                "",
                "sdfb=eee",
                "dsf=same",
                "labelB=BBB",
                "labelA=AAA",
                "labelA=AAA",
                "labelA=AAA,labelB=BBB",
            ],
            &[b],
            &[6, 0, 1, 2, 3, 4, 5, 7, 8, 9],
        ),
        (&["labelB=BBB", "labelB=BBB", "", "", "labelA=AAA", "labelA=AAA"], &[a, b], &[0, 4, 2, 3, 5, 1]),
        (&["", "", "", "labelB=BBB", "labelA=AAA,labelB=BBB", "labelA=AAA"], &[a, b], &[4, 0, 1, 2, 5, 3]),
        (
            &["", "", "", "", "sdfb=eee", "dsf=same", "labelB=BBB", "labelA=AAA", "labelA=AAA", "labelB=BBB"],
            &[b, a],
            &[7, 6, 0, 1, 2, 3, 4, 5, 9, 8],
        ),
        (
            &["", "", "", "", "sdfb=eee", "dsf=same", "labelB=BBB", "labelA=AAA", "labelA=AAA", "labelB=BBB"],
            &[a, b],
            &[6, 7, 0, 1, 2, 3, 4, 5, 8, 9],
        ),
        (
            &[
                "",
                "",
                "",
                "",
                "sdfb=eee",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[6, 0, 1, 2, 3, 4, 5, 7, 8, 9],
        ),
        (
            &["", "", "", "sdfb=eee", "dsf=same", "labelA=AAA,labelB=BBB", "", "", "labelB=BBB,labelA=AAA"],
            &[a, b],
            &[5, 0, 1, 2, 3, 4, 6, 7, 8],
        ),
        (
            &["", "", "", "labelA=AAA", "sdfb=eee", "dsf=same", "labelA=AAA,labelB=BBB", "", "", ""],
            &[a, b],
            &[3, 0, 1, 2, 4, 5, 7, 6],
        ),
        (
            &[
                "",
                "",
                "",
                "labelA=AAA",
                "",
                "",
                "sdfb=eee",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[0, 1, 2, 4, 3, 5, 6, 7, 9, 10, 8],
        ),
        (
            &[
                "",
                "",
                "",
                "labelA=AAA",
                "sdfb=eee,labelA=AAA",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[6, 3, 0, 1, 4, 2, 5, 7, 8, 9],
        ),
        (
            &[
                "",
                "labelA=AAA",
                "labelA=AAA",
                "sdfb=eee",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[5, 1, 0, 3, 2, 4, 6, 7, 8],
        ),
        (
            &[
                "labelA=AAA",
                "",
                "",
                "labelA=AAA",
                "sdfb=eee,labelA=AAA",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[1, 0, 2, 3, 5, 4, 7, 6],
        ),
        (
            &[
                "",
                "",
                "labelA=AAA",
                "labelA=AAA",
                "",
                "labelA=AAA",
                "sdfb=eee",
                "dsf=same",
                "labelA=AAA,labelB=BBB",
                "",
                "",
                "labelB=BBB,labelA=AAA",
            ],
            &[a, b],
            &[0, 2, 1, 4, 3, 6, 7, 5, 9, 10, 8],
        ),
        (
            &[
                "",
                "labelA=AAA",
                "labelA=AAA",
                "labelB=BBB",
                "labelB=BBB",
                "labelC=CCC",
                "labelC=CCC",
                "labelC=CCC",
                "labelC=CCC",
                "labelC=CCC",
            ],
            &[a, b, c],
            &[3, 1, 5, 0, 6, 7, 8, 9, 2, 4],
        ),
        (
            &[
                "",
                "labelA=AAA",
                "labelA=AAA,labelC=CCC",
                "labelB=BBB,labelC=CCC",
                "labelB=BBB",
                "",
                "",
                "labelC=CCC",
                "labelC=CCC",
                "labelC=CCC",
            ],
            &[a, b, c],
            &[3, 2, 0, 7, 8, 5, 6, 9, 1, 4],
        ),
        (&["", "", "", "", "labelA=AAA", "labelA=AAA", "labelA=AAA"], &[a], &[0, 1, 4, 2, 3, 5]),
        (
            &["labelA=AAA", "labelA=AAA", "", "", "", "", "", "", "", "labelA=AAA"],
            &[a],
            &[2, 0, 3, 4, 5, 6, 1],
        ),
        (
            &[
                "",
                "labelA=AAA",
                "labelA=AAA,labelC=CCC",
                "labelB=BBB,labelC=CCC",
                "labelB=BBB",
                "nil",
                "",
                "",
                "labelC=CCC",
                "labelC=CCC",
                "labelC=CCC",
            ],
            &[a, b, c],
            &[3, 2, 0, 8, 9, 6, 7, 10, 1, 4],
        ),
    ];
    for (n, (labels, terms, want)) in cases.into_iter().enumerate() {
        // Go's loop reads entries until it has made `want.len()` candidates.
        let (mut seen, mut candidates_end) = (0, 0);
        while seen < want.len() {
            if labels[candidates_end] != "nil" {
                seen += 1;
            }
            candidates_end += 1;
        }
        let pods: Vec<(usize, Pod)> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l != "nil")
            .map(|(i, l)| (i, pod(&i.to_string()).labels(l).0))
            .collect();
        let all: Vec<&Pod> = pods.iter().map(|(_, p)| p).collect();
        let mut candidates: Vec<&Pod> =
            pods.iter().filter(|(i, _)| *i < candidates_end).map(|(_, p)| p).collect();
        let terms: Vec<UpdateScatterTerm> = terms.iter().map(|(k, v)| term(k, v)).collect();
        sort_for_update(&mut candidates, &all, None, Some(&terms));
        let got: Vec<usize> = names(&candidates).iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(got, want, "case {n}");
    }
}

#[test]
fn scatter_runs_after_priority() {
    let pods = [
        pod("0").labels("labelA=AAA").0,
        pod("1").labels("w=1").0,
        pod("2").labels("w=1").0,
        pod("3").labels("labelA=AAA").0,
        pod("4").0,
        pod("5").labels("labelA=AAA").0,
    ];
    let s = weights(&[(5, "w=1")]);
    let got = update_order(&pods, Some(&s), Some(&[term("labelA", "AAA")]));
    // Priority: 1 2 0 3 4 5. Scatter: matched 0 3 (5 held back), unmatched 1 2 4;
    // 3/3 overall, so 2 groups of 1 matched and round(1.5) = 2 unmatched:
    // 0 | 1 2 | 3 | 4 | 5. Scattering first and then sorting by priority would give
    // 1 2 0 3 4 5.
    assert_eq!(got, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn a_single_empty_valued_term_matches_pods_without_the_label() {
    // Go reads a missing label as "", so {key: k, value: ""} matches unlabelled pods.
    let pods = [pod("0").labels("k=x").0, pod("1").labels("k=y").0, pod("2").0, pod("3").0];
    let got = update_order(&pods, None, Some(&[term("k", "")]));
    // matched 2 3 (3 held back), unmatched 0 1; groups min(1,2)=1 of 1 and 2.
    assert_eq!(got, ["2", "0", "1", "3"]);
}
