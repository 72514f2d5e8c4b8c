use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, PodSpec, PodTemplateSpec, ResourceRequirements, Taint,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
}

/// The node of Kubernetes' `TestNodeShouldRunDaemonPod`: `test-node`, labelled
/// `name=simple-daemon,type=production`, 100M memory and 1 CPU allocatable (plus room
/// for pods, which a real kubelet always reports).
fn node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("test-node".into()),
            labels: Some(map(&[("name", "simple-daemon"), ("type", "production")])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(quantities(&[("memory", "100M"), ("cpu", "1"), ("pods", "110")])),
            ..NodeStatus::default()
        }),
    }
}

fn tainted(taints: &[(&str, &str, &str)]) -> Node {
    let mut n = node();
    n.spec.as_mut().unwrap().taints = Some(
        taints
            .iter()
            .map(|(key, value, effect)| Taint {
                key: key.to_string(),
                value: (!value.is_empty()).then(|| value.to_string()),
                effect: effect.to_string(),
                ..Taint::default()
            })
            .collect(),
    );
    n
}

fn cordoned() -> Node {
    let mut n = node();
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    n
}

fn template(spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(map(&[("name", "simple-daemon")])),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    }
}

fn container(requests: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then(|| quantities(requests)),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

/// Kubernetes' `resourcePodSpec(nodeName, memory, cpu)`.
fn resource_spec(node_name: &str, memory: &str, cpu: &str) -> PodSpec {
    PodSpec {
        node_name: (!node_name.is_empty()).then(|| node_name.to_string()),
        containers: vec![container(&[("memory", memory), ("cpu", cpu)])],
        ..PodSpec::default()
    }
}

fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn term(expressions: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: (!expressions.is_empty()).then_some(expressions),
        match_fields: (!fields.is_empty()).then_some(fields),
    }
}

fn with_affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
    PodSpec {
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        }),
        ..PodSpec::default()
    }
}

fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration {
        key: opt(key),
        operator: opt(op),
        value: opt(value),
        effect: opt(effect),
        ..Toleration::default()
    }
}

fn with_tolerations(tolerations: Vec<Toleration>) -> PodSpec {
    PodSpec { tolerations: Some(tolerations), ..PodSpec::default() }
}

fn outcome(p: &Placement) -> (bool, bool) {
    (p.should_run, p.should_continue_running)
}

fn taint_reason(key: &str, value: Option<&str>, effect: &str) -> Option<Unfit> {
    Some(Unfit::UntoleratedTaint { key: key.into(), value: value.map(str::to_owned), effect: effect.into() })
}

// ---------------------------------------------------------------- DaemonSet

/// The vectors of Kubernetes' `TestNodeShouldRunDaemonPod` (which OpenKruise's
/// `nodeShouldRunDaemonPod` follows): resources, host ports and other pods on the node
/// never matter, node name, selector and affinity do.
#[test]
fn daemon_set_matches_upstream_node_should_run_vectors() {
    let host_port = PodSpec {
        containers: vec![Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                host_port: Some(666),
                container_port: 666,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }],
        ..PodSpec::default()
    };
    let cases: Vec<(&str, Node, PodSpec, (bool, bool))> = vec![
        ("ShouldRunDaemonPod", node(), resource_spec("", "50M", "0.5"), (true, true)),
        ("InsufficientResourceError", node(), resource_spec("", "200M", "0.5"), (true, true)),
        ("ErrPodNotMatchHostName", node(), resource_spec("other-node", "50M", "0.5"), (false, false)),
        ("ErrPodNotFitsHostPorts", node(), host_port, (true, true)),
        (
            "ErrNodeSelectorNotMatch",
            node(),
            PodSpec {
                node_selector: Some(map(&[("name", "simple-daemon"), ("type", "test")])),
                ..PodSpec::default()
            },
            (false, false),
        ),
        (
            "ShouldRunDaemonPod (selector)",
            node(),
            PodSpec {
                node_selector: Some(map(&[("name", "simple-daemon"), ("type", "production")])),
                ..PodSpec::default()
            },
            (true, true),
        ),
        (
            "ErrPodAffinityNotMatch",
            node(),
            with_affinity(vec![term(vec![req("type", "In", &["test"])], vec![])]),
            (false, false),
        ),
        (
            "ShouldRunDaemonPod (affinity)",
            node(),
            with_affinity(vec![term(vec![req("type", "In", &["production"])], vec![])]),
            (true, true),
        ),
        ("ShouldRunDaemonPodOnUnschedulableNode", cordoned(), resource_spec("", "50M", "0.5"), (true, true)),
    ];
    for (name, node, spec, want) in cases {
        assert_eq!(outcome(&daemon_set(&node, &template(spec))), want, "{name}");
    }
}

#[test]
fn daemon_set_node_name_must_be_this_node() {
    let p = daemon_set(&node(), &template(resource_spec("other-node", "1", "1")));
    assert_eq!(p, Placement::never(Unfit::NodeNameMismatch { node_name: "other-node".into() }));
    assert_eq!(daemon_set(&node(), &template(resource_spec("test-node", "1", "1"))), Placement::fits());
}

#[test]
fn daemon_set_node_selector_names_the_key() {
    let spec = PodSpec { node_selector: Some(map(&[("disk", "ssd")])), ..PodSpec::default() };
    let p = daemon_set(&node(), &template(spec));
    assert_eq!(p, Placement::never(Unfit::NodeSelectorMismatch { key: "disk".into() }));
}

#[test]
fn daemon_set_affinity_mismatch_rules_out_running_pods() {
    let p =
        daemon_set(&node(), &template(with_affinity(vec![term(vec![req("zone", "Exists", &[])], vec![])])));
    assert_eq!(p, Placement::never(Unfit::AffinityMismatch));
}

#[test]
fn daemon_set_node_selector_and_affinity_are_anded() {
    let mut spec = with_affinity(vec![term(vec![req("type", "In", &["production"])], vec![])]);
    spec.node_selector = Some(map(&[("type", "test")]));
    assert_eq!(outcome(&daemon_set(&node(), &template(spec))), (false, false));
}

/// Kubernetes' daemon tests: a `NoSchedule` taint keeps new pods off but lets running
/// ones stay (`TestTaintedNodeDaemonDoesNotLaunchIntolerantPod`), a `NoExecute` one
/// removes them (`TestNodeDaemonDoesNotLaunchPodWithNoExecuteTaint`-style), a matching
/// toleration lets them on (`TestTaintedNodeDaemonLaunchesToleratePod`).
#[test]
fn daemon_set_taint_effects() {
    let plain = template(PodSpec::default());
    let p = daemon_set(&tainted(&[("dedicated", "user1", "NoSchedule")]), &plain);
    assert_eq!(outcome(&p), (false, true));
    assert_eq!(p.reason, taint_reason("dedicated", Some("user1"), "NoSchedule"));

    let p = daemon_set(&tainted(&[("dedicated", "user1", "NoExecute")]), &plain);
    assert_eq!(outcome(&p), (false, false));
    assert_eq!(p.reason, taint_reason("dedicated", Some("user1"), "NoExecute"));

    let p = daemon_set(&tainted(&[("dedicated", "user1", "PreferNoSchedule")]), &plain);
    assert_eq!(p, Placement::fits());

    let tolerant = template(with_tolerations(vec![toleration("dedicated", "Equal", "user1", "NoSchedule")]));
    assert_eq!(daemon_set(&tainted(&[("dedicated", "user1", "NoSchedule")]), &tolerant), Placement::fits());
}

#[test]
fn daemon_set_names_the_no_execute_taint_when_both_kinds_are_untolerated() {
    let node = tainted(&[("a", "", "NoSchedule"), ("b", "", "NoExecute")]);
    let p = daemon_set(&node, &template(PodSpec::default()));
    assert_eq!(outcome(&p), (false, false));
    assert_eq!(p.reason, taint_reason("b", None, "NoExecute"));
}

#[test]
fn daemon_set_tolerates_node_condition_taints_by_default() {
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        let p = daemon_set(&tainted(&[(key, "", effect)]), &template(PodSpec::default()));
        // not-ready:NoSchedule (which the node controller also sets) is not among the
        // defaults: no new pod while it is on, a running one stays.
        let want =
            if effect == "NoSchedule" && key.ends_with("not-ready") { (false, true) } else { (true, true) };
        assert_eq!(outcome(&p), want, "{key}:{effect}");
    }
}

/// Kubernetes' `TestNetworkUnavailableNodeDaemonLaunchesPod`: only host-network
/// daemon pods tolerate `network-unavailable`.
#[test]
fn daemon_set_network_unavailable_needs_host_network() {
    let node = tainted(&[("node.kubernetes.io/network-unavailable", "", "NoSchedule")]);
    assert_eq!(outcome(&daemon_set(&node, &template(PodSpec::default()))), (false, true));
    let host = PodSpec { host_network: Some(true), ..PodSpec::default() };
    assert_eq!(daemon_set(&node, &template(host)), Placement::fits());
}

#[test]
fn daemon_set_toleration_with_seconds_still_tolerates() {
    let mut t = toleration("dedicated", "Exists", "", "NoExecute");
    t.toleration_seconds = Some(0);
    let p = daemon_set(&tainted(&[("dedicated", "x", "NoExecute")]), &template(with_tolerations(vec![t])));
    assert_eq!(p, Placement::fits());
}

#[test]
fn daemon_set_without_template_spec_runs_everywhere_untainted() {
    let empty = PodTemplateSpec::default();
    assert_eq!(daemon_set(&node(), &empty), Placement::fits());
    assert_eq!(outcome(&daemon_set(&tainted(&[("k", "", "NoExecute")]), &empty)), (false, false));
}

// ---------------------------------------------------------------- default tolerations

#[test]
fn daemon_pod_tolerations_adds_the_defaults() {
    let mut spec = PodSpec::default();
    daemon_pod_tolerations(&mut spec);
    let got: Vec<(String, String)> = spec
        .tolerations
        .unwrap()
        .into_iter()
        .map(|t| {
            assert_eq!(t.operator.as_deref(), Some("Exists"));
            assert_eq!(t.toleration_seconds, None);
            (t.key.unwrap(), t.effect.unwrap())
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .iter()
    .map(|(k, e)| (k.to_string(), e.to_string()))
    .collect();
    assert_eq!(got, want);

    let mut host = PodSpec { host_network: Some(true), ..PodSpec::default() };
    daemon_pod_tolerations(&mut host);
    let last = host.tolerations.unwrap().pop().unwrap();
    assert_eq!(last, toleration("node.kubernetes.io/network-unavailable", "Exists", "", "NoSchedule"));
}

#[test]
fn daemon_pod_tolerations_is_idempotent_and_keeps_user_tolerations() {
    let mut spec = with_tolerations(vec![toleration("dedicated", "Equal", "user1", "NoSchedule")]);
    daemon_pod_tolerations(&mut spec);
    let once = spec.clone();
    daemon_pod_tolerations(&mut spec);
    assert_eq!(spec, once);
    let tolerations = spec.tolerations.unwrap();
    assert_eq!(tolerations.len(), 7);
    assert_eq!(tolerations[0], toleration("dedicated", "Equal", "user1", "NoSchedule"));
}

/// Kubernetes replaces a user's not-ready toleration that has a deadline by the
/// deadline-free default, in place, rather than adding a second one.
#[test]
fn daemon_pod_tolerations_replaces_a_deadline() {
    let mut timed = toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute");
    timed.toleration_seconds = Some(300);
    let mut spec = with_tolerations(vec![timed, toleration("x", "Exists", "", "")]);
    daemon_pod_tolerations(&mut spec);
    let tolerations = spec.tolerations.unwrap();
    assert_eq!(tolerations.len(), 7);
    assert_eq!(tolerations[0], toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"));
    assert_eq!(tolerations[1], toleration("x", "Exists", "", ""));
}

// ---------------------------------------------------------------- tolerations

/// The cases of Kubernetes' `TestTolerationToleratesTaint` (k8s.io/api v0.32).
#[test]
fn toleration_matching_follows_upstream() {
    let taint = |key: &str, value: &str, effect: &str| Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: effect.into(),
        ..Taint::default()
    };
    let cases = [
        (
            "empty toleration vs valued taint",
            toleration("", "", "", ""),
            taint("foo", "bar", "NoSchedule"),
            false,
        ),
        (
            "Exists, same key and effect, no value",
            toleration("foo", "Exists", "", "NoSchedule"),
            taint("foo", "", "NoSchedule"),
            true,
        ),
        (
            "Exists, same key and effect, some value",
            toleration("foo", "Exists", "", "NoSchedule"),
            taint("foo", "bar", "NoSchedule"),
            true,
        ),
        (
            "Equal, same key, value and effect",
            toleration("foo", "Equal", "bar", "NoSchedule"),
            taint("foo", "bar", "NoSchedule"),
            true,
        ),
        (
            "no operator means Equal",
            toleration("foo", "", "bar", "NoSchedule"),
            taint("foo", "bar", "NoSchedule"),
            true,
        ),
        (
            "Equal, different value",
            toleration("foo", "Equal", "value1", "NoSchedule"),
            taint("foo", "value2", "NoSchedule"),
            false,
        ),
        (
            "Exists, different effect",
            toleration("foo", "Exists", "", "NoExecute"),
            taint("foo", "bar", "NoSchedule"),
            false,
        ),
        (
            "empty key and Exists tolerates every key",
            toleration("", "Exists", "", "NoSchedule"),
            taint("foo", "bar", "NoSchedule"),
            true,
        ),
        (
            "empty effect tolerates every effect",
            toleration("foo", "Exists", "", ""),
            taint("foo", "bar", "NoExecute"),
            true,
        ),
        ("different key", toleration("baz", "Exists", "", ""), taint("foo", "bar", "NoExecute"), false),
        (
            "unknown operator tolerates nothing",
            toleration("foo", "Gt", "1", "NoSchedule"),
            taint("foo", "2", "NoSchedule"),
            false,
        ),
    ];
    for (name, t, taint, want) in cases {
        assert_eq!(taints::tolerates(&t, &taint), want, "{name}");
    }
}

// ---------------------------------------------------------------- node affinity

fn affinity_outcome(terms: Vec<NodeSelectorTerm>, node: &Node) -> Option<Unfit> {
    affinity::required_node_affinity(&with_affinity(terms), node)
}

fn labelled(labels: &[(&str, &str)]) -> Node {
    let mut n = node();
    n.metadata.labels = Some(map(labels));
    n
}

/// Operator cases in the style of Kubernetes' `TestRequiredNodeAffinity` and the label
/// selector's `TestRequirementMatches`.
#[test]
fn affinity_operators() {
    let n = labelled(&[("zone", "a"), ("gen", "10"), ("text", "ten")]);
    let cases: Vec<(&str, NodeSelectorRequirement, bool)> = vec![
        ("In hit", req("zone", "In", &["b", "a"]), true),
        ("In miss", req("zone", "In", &["b"]), false),
        ("In missing label", req("rack", "In", &["a"]), false),
        ("NotIn hit", req("zone", "NotIn", &["a"]), false),
        ("NotIn other value", req("zone", "NotIn", &["b"]), true),
        ("NotIn missing label", req("rack", "NotIn", &["a"]), true),
        ("Exists", req("zone", "Exists", &[]), true),
        ("Exists missing", req("rack", "Exists", &[]), false),
        ("DoesNotExist", req("rack", "DoesNotExist", &[]), true),
        ("DoesNotExist present", req("zone", "DoesNotExist", &[]), false),
        ("Gt below", req("gen", "Gt", &["5"]), true),
        ("Gt is strict", req("gen", "Gt", &["10"]), false),
        ("Lt above", req("gen", "Lt", &["11"]), true),
        ("Lt is strict", req("gen", "Lt", &["10"]), false),
        ("Gt missing label", req("rack", "Gt", &["1"]), false),
        ("Gt on a label that is not an integer", req("text", "Gt", &["1"]), false),
        ("Lt on a label that is not an integer", req("text", "Lt", &["1"]), false),
    ];
    for (name, r, want) in cases {
        let got = affinity_outcome(vec![term(vec![r], vec![])], &n);
        let want = if want { None } else { Some(Unfit::AffinityMismatch) };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn affinity_terms_are_ored_and_requirements_anded() {
    let n = labelled(&[("zone", "a"), ("disk", "ssd")]);
    let both = term(vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])], vec![]);
    assert_eq!(affinity_outcome(vec![both.clone()], &n), Some(Unfit::AffinityMismatch));
    let second = term(vec![req("disk", "In", &["ssd"])], vec![]);
    assert_eq!(affinity_outcome(vec![both, second], &n), None);
}

#[test]
fn affinity_empty_terms_match_nothing() {
    assert_eq!(affinity_outcome(vec![], &node()), Some(Unfit::AffinityMismatch));
    assert_eq!(affinity_outcome(vec![term(vec![], vec![])], &node()), Some(Unfit::AffinityMismatch));
    // Without a required selector there is nothing to match.
    assert_eq!(affinity::required_node_affinity(&PodSpec::default(), &node()), None);
}

#[test]
fn affinity_match_fields_on_metadata_name() {
    let n = node();
    let on = |op: &str, values: &[&str]| {
        affinity_outcome(vec![term(vec![], vec![req("metadata.name", op, values)])], &n)
    };
    assert_eq!(on("In", &["test-node"]), None);
    assert_eq!(on("In", &["other"]), Some(Unfit::AffinityMismatch));
    assert_eq!(on("NotIn", &["other"]), None);
    assert_eq!(on("NotIn", &["test-node"]), Some(Unfit::AffinityMismatch));
    // Fields and labels in one term are ANDed.
    let mixed = term(vec![req("type", "In", &["test"])], vec![req("metadata.name", "In", &["test-node"])]);
    assert_eq!(affinity_outcome(vec![mixed], &n), Some(Unfit::AffinityMismatch));
    // Another field reads as empty, as in Kubernetes' field sets.
    let uid = term(vec![], vec![req("metadata.uid", "In", &["x"])]);
    assert_eq!(affinity_outcome(vec![uid], &n), Some(Unfit::AffinityMismatch));
}

#[test]
fn affinity_on_a_node_without_labels_or_name() {
    let mut n = node();
    n.metadata.labels = None;
    let one = |r: NodeSelectorRequirement| affinity_outcome(vec![term(vec![r], vec![])], &n);
    assert_eq!(one(req("zone", "NotIn", &["a"])), None);
    assert_eq!(one(req("zone", "DoesNotExist", &[])), None);
    assert_eq!(one(req("zone", "In", &["a"])), Some(Unfit::AffinityMismatch));
    // Kubernetes skips field requirements for a node without a name.
    n.metadata.name = None;
    let fields = term(vec![], vec![req("metadata.name", "In", &["elsewhere"])]);
    assert_eq!(affinity_outcome(vec![fields], &n), None);
}

fn malformed(terms: Vec<NodeSelectorTerm>, needle: &str) {
    match affinity_outcome(terms, &node()) {
        Some(Unfit::MalformedAffinity { errors }) => {
            assert!(errors.iter().any(|e| e.contains(needle)), "{errors:?} should mention {needle:?}")
        }
        other => panic!("expected MalformedAffinity mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn malformed_affinity_matches_nothing_and_says_why() {
    malformed(
        vec![term(vec![req("type", "Foo", &["production"])], vec![])],
        "nodeSelectorTerms[0].matchExpressions[0].operator: unsupported value \"Foo\"",
    );
    malformed(vec![term(vec![req("gen", "Gt", &["abc"])], vec![])], "values[0]: invalid value \"abc\"");
    malformed(vec![term(vec![req("gen", "Lt", &["1", "2"])], vec![])], "exactly one value");
    malformed(vec![term(vec![req("gen", "Gt", &[])], vec![])], "exactly one value");
    // A negative bound is not a valid label value, which Kubernetes also checks.
    malformed(vec![term(vec![req("gen", "Gt", &["-1"])], vec![])], "values[0]: invalid value \"-1\"");
    malformed(vec![term(vec![req("type", "In", &[])], vec![])], "must not be empty");
    malformed(vec![term(vec![req("type", "Exists", &["production"])], vec![])], "must be empty");
    malformed(vec![term(vec![req("bad key", "Exists", &[])], vec![])], "key: invalid value");
    malformed(vec![term(vec![req("type", "In", &["not valid!"])], vec![])], "values[0]");
    malformed(vec![term(vec![], vec![req("metadata.name", "In", &["a", "b"])])], "must have one element");
    malformed(vec![term(vec![], vec![req("metadata.name", "Exists", &[])])], "matchFields[0].operator");
    // A malformed requirement spoils its whole term, even with valid ones beside it.
    malformed(
        vec![term(vec![req("type", "In", &["production"]), req("gen", "Gt", &["x"])], vec![])],
        "matchExpressions[1]",
    );
}

#[test]
fn a_valid_term_still_matches_beside_a_malformed_one() {
    let terms = vec![
        term(vec![req("type", "Foo", &["x"])], vec![]),
        term(vec![req("type", "In", &["production"])], vec![]),
    ];
    assert_eq!(affinity_outcome(terms, &node()), None);
}

#[test]
fn malformed_affinity_reaches_the_placement() {
    let spec = with_affinity(vec![term(vec![req("gen", "Gt", &["ten"])], vec![])]);
    for p in [daemon_set(&node(), &template(spec.clone())), broadcast_job(&node(), &template(spec))] {
        assert!(!p.should_run);
        assert!(matches!(p.reason, Some(Unfit::MalformedAffinity { .. })), "{p:?}");
        assert!(p.reason.unwrap().to_string().contains("invalid value \"ten\""));
    }
}

#[test]
fn qualified_names() {
    for ok in ["a", "kubernetes.io/hostname", "example.com/a_b.c-d", "A1"] {
        assert_eq!(affinity::qualified_name(ok), Ok(()), "{ok}");
    }
    for bad in ["", "/a", "a/", "-a", "a-", "Upper.com/a", "a b", &"x".repeat(64), "a/b/c"] {
        assert!(affinity::qualified_name(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------- BroadcastJob

#[test]
fn broadcast_job_fits_a_plain_node() {
    assert_eq!(broadcast_job(&node(), &template(resource_spec("", "50M", "0.5"))), Placement::fits());
}

/// OpenKruise's `TestPodsOnUnschedulableNodes`: no pod on a cordoned node, unless the
/// pod tolerates the unschedulable taint.
#[test]
fn broadcast_job_skips_cordoned_nodes() {
    let p = broadcast_job(&cordoned(), &template(PodSpec::default()));
    assert_eq!(p, Placement::never(Unfit::Unschedulable));
    let tolerant =
        with_tolerations(vec![toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule")]);
    assert_eq!(broadcast_job(&cordoned(), &template(tolerant)), Placement::fits());
}

#[test]
fn broadcast_job_has_no_default_tolerations() {
    let p = broadcast_job(
        &tainted(&[("node.kubernetes.io/not-ready", "", "NoExecute")]),
        &template(PodSpec::default()),
    );
    assert_eq!(
        p,
        Placement::never(Unfit::UntoleratedTaint {
            key: "node.kubernetes.io/not-ready".into(),
            value: None,
            effect: "NoExecute".into(),
        })
    );
    // An untolerated NoSchedule taint removes a running pod too.
    let p = broadcast_job(&tainted(&[("dedicated", "user1", "NoSchedule")]), &template(PodSpec::default()));
    assert_eq!(outcome(&p), (false, false));
    let p =
        broadcast_job(&tainted(&[("dedicated", "user1", "PreferNoSchedule")]), &template(PodSpec::default()));
    assert_eq!(p, Placement::fits());
    let tolerant = with_tolerations(vec![toleration("dedicated", "Equal", "user1", "")]);
    let p = broadcast_job(&tainted(&[("dedicated", "user1", "NoExecute")]), &template(tolerant));
    assert_eq!(p, Placement::fits());
}

#[test]
fn broadcast_job_ignores_the_template_node_name() {
    let p = broadcast_job(&node(), &template(resource_spec("other-node", "1", "1")));
    assert_eq!(p, Placement::fits());
}

#[test]
fn broadcast_job_node_selector_removes_running_pods() {
    let spec = PodSpec { node_selector: Some(map(&[("type", "test")])), ..PodSpec::default() };
    let p = broadcast_job(&node(), &template(spec));
    assert_eq!(p, Placement::never(Unfit::NodeSelectorMismatch { key: "type".into() }));
}

#[test]
fn broadcast_job_affinity_applies_to_new_pods_only() {
    let spec = with_affinity(vec![term(vec![req("type", "In", &["test"])], vec![])]);
    let p = broadcast_job(&node(), &template(spec.clone()));
    assert_eq!(p, Placement::keep_only(Unfit::AffinityMismatch));
    // A failure that also removes running pods wins the reason.
    let p = broadcast_job(&cordoned(), &template(spec));
    assert_eq!(p, Placement::never(Unfit::Unschedulable));
}

fn insufficient(resource: &str, requested: i64, allocatable: i64) -> Insufficient {
    Insufficient { resource: resource.into(), requested, allocatable }
}

#[test]
fn broadcast_job_compares_requests_with_allocatable() {
    let p = broadcast_job(&node(), &template(resource_spec("", "200M", "2")));
    assert_eq!(
        p,
        Placement::never(Unfit::InsufficientResources {
            resources: vec![
                insufficient("cpu", 2000, 1000),
                insufficient("memory", 200_000_000, 100_000_000)
            ],
        })
    );
    // Exactly the allocatable fits.
    assert_eq!(broadcast_job(&node(), &template(resource_spec("", "100M", "1000m"))), Placement::fits());
    // Fractions round up: 1000.5m of cpu is 1001m.
    let p = broadcast_job(&node(), &template(resource_spec("", "1", "1.0005")));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("cpu", 1001, 1000)] })
    );
}

#[test]
fn broadcast_job_needs_room_for_one_pod() {
    let mut n = node();
    n.status.as_mut().unwrap().allocatable = Some(quantities(&[("cpu", "1")]));
    let p = broadcast_job(&n, &template(PodSpec::default()));
    assert_eq!(p.reason, Some(Unfit::InsufficientResources { resources: vec![insufficient("pods", 1, 0)] }));
    n.status = None;
    assert!(!broadcast_job(&n, &template(PodSpec::default())).should_run);
}

#[test]
fn broadcast_job_init_containers_and_sidecars() {
    // An init container asks for more than the app: its request counts.
    let spec = PodSpec {
        init_containers: Some(vec![container(&[("cpu", "1500m")])]),
        containers: vec![container(&[("cpu", "500m")])],
        ..PodSpec::default()
    };
    let p = broadcast_job(&node(), &template(spec));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("cpu", 1500, 1000)] })
    );

    // A sidecar adds to the app containers: 600m + 500m.
    let mut sidecar = container(&[("cpu", "600m")]);
    sidecar.restart_policy = Some("Always".into());
    let spec = PodSpec {
        init_containers: Some(vec![sidecar.clone()]),
        containers: vec![container(&[("cpu", "500m")])],
        ..PodSpec::default()
    };
    let p = broadcast_job(&node(), &template(spec));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("cpu", 1100, 1000)] })
    );

    // An init container after a sidecar runs beside it: 600m + 500m again.
    let spec = PodSpec {
        init_containers: Some(vec![sidecar, container(&[("cpu", "500m")])]),
        containers: vec![container(&[("cpu", "100m")])],
        ..PodSpec::default()
    };
    let p = broadcast_job(&node(), &template(spec));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("cpu", 1100, 1000)] })
    );
}

#[test]
fn broadcast_job_counts_overhead() {
    let spec = PodSpec {
        containers: vec![container(&[("cpu", "900m")])],
        overhead: Some(quantities(&[("cpu", "200m")])),
        ..PodSpec::default()
    };
    let p = broadcast_job(&node(), &template(spec));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("cpu", 1100, 1000)] })
    );
}

#[test]
fn broadcast_job_extended_resources() {
    let spec = PodSpec { containers: vec![container(&[("example.com/gpu", "1")])], ..PodSpec::default() };
    let p = broadcast_job(&node(), &template(spec.clone()));
    assert_eq!(
        p.reason,
        Some(Unfit::InsufficientResources { resources: vec![insufficient("example.com/gpu", 1, 0)] })
    );
    let mut n = node();
    n.status
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .insert("example.com/gpu".into(), Quantity("1".into()));
    assert_eq!(broadcast_job(&n, &template(spec)), Placement::fits());
    // Hugepages count too; a name Kubernetes does not schedule on does not.
    let spec = PodSpec { containers: vec![container(&[("hugepages-2Mi", "2Mi")])], ..PodSpec::default() };
    assert!(!broadcast_job(&node(), &template(spec)).should_run);
    let spec = PodSpec { containers: vec![container(&[("foo", "5")])], ..PodSpec::default() };
    assert_eq!(broadcast_job(&node(), &template(spec)), Placement::fits());
}

#[test]
fn broadcast_job_malformed_quantity_does_not_fit() {
    let p = broadcast_job(&node(), &template(resource_spec("", "lots", "1")));
    assert_eq!(
        p,
        Placement::never(Unfit::MalformedQuantity {
            field: "spec.containers[0].resources.requests[memory]".into(),
            value: "lots".into(),
        })
    );
    let mut n = node();
    n.status.as_mut().unwrap().allocatable.as_mut().unwrap().insert("cpu".into(), Quantity("1 core".into()));
    let p = broadcast_job(&n, &template(resource_spec("", "1", "1")));
    assert_eq!(
        p.reason,
        Some(Unfit::MalformedQuantity { field: "status.allocatable[cpu]".into(), value: "1 core".into() })
    );
}

#[test]
fn quantities_read_in_nano_units() {
    let n = |s: &str| resources::nano(s);
    assert_eq!(n("500m"), Some(500_000_000));
    assert_eq!(n("0.5"), n("500m"));
    assert_eq!(n(".5"), n("500m"));
    assert_eq!(n("1Gi"), Some(1_073_741_824 * 1_000_000_000));
    assert_eq!(n("1e3"), n("1k"));
    assert_eq!(n("1E-3"), n("1m"));
    assert_eq!(n("100M"), Some(100_000_000 * 1_000_000_000));
    assert_eq!(n("1n"), Some(1));
    assert_eq!(n("0.1n"), Some(1), "below a nano-unit rounds up");
    assert_eq!(n("-2"), Some(-2_000_000_000));
    assert!(n("9999999999999999999999999999999999999999E").unwrap() > 0, "huge amounts saturate");
    assert_eq!(n("m"), Some(0), "Go reads a suffix without digits as zero");
    for bad in ["", "abc", "1Xi", "1.2.3", "1e", "1e1.5", "1 ", " 1", "--1", "1KI", "1e+"] {
        assert_eq!(n(bad), None, "{bad:?}");
    }
}

#[test]
fn reasons_read_well() {
    let r = taint_reason("dedicated", Some("user1"), "NoSchedule").unwrap();
    assert_eq!(r.to_string(), "node has taint dedicated=user1:NoSchedule that the pod doesn't tolerate");
    let r = Unfit::InsufficientResources { resources: vec![insufficient("cpu", 2000, 1000)] };
    assert_eq!(r.to_string(), "node has insufficient cpu (requested 2000, allocatable 1000)");
}

#[test]
fn pinned_pods_match_only_their_node() {
    let mut spec = PodSpec {
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "type".into(),
                            operator: "In".into(),
                            values: Some(vec!["production".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: Some(vec![]),
            }),
            ..Affinity::default()
        }),
        ..PodSpec::default()
    };
    pin_to_node(&mut spec, "test-node");
    let once = spec.clone();
    pin_to_node(&mut spec, "test-node");
    assert_eq!(spec, once, "idempotent");
    let na = spec.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    assert!(na.preferred_during_scheduling_ignored_during_execution.is_some(), "preferred terms stay");
    let terms = &na.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms;
    assert_eq!(terms.len(), 1);
    assert!(terms[0].match_expressions.is_none());
    let template = PodTemplateSpec { metadata: None, spec: Some(spec) };
    assert!(daemon_set(&node(), &template).should_run, "its own node matches");
    let mut other = node();
    other.metadata.name = Some("other".into());
    assert!(!daemon_set(&other, &template).should_run, "another node does not");
}
