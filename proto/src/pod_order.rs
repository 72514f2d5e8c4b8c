//! The orders in which OpenKruise v1.9.0's workloads pick pods: which to delete first
//! when scaling in, and which to update first in a rolling update.
//!
//! # Scale-in ([`sort_for_deletion`])
//!
//! CloneSet does not use Kubernetes' `ActivePodsWithRanks` but its own copy in
//! `pkg/controller/cloneset/utils/pod_sorter.go`, which differs in three ways, all
//! reproduced here: it compares availability (a predicate the caller passes;
//! CloneSet's is "lifecycle state empty or Normal, Running, Ready for
//! minReadySeconds, InPlaceUpdateReady not False") before readiness; its rank is the
//! *same-node rank* described at [`sort_for_deletion`], not the count of colocated
//! pods; and it has no `now` (no logarithmic scale-down buckets: ready and creation
//! times are compared exactly). Time enters only through the availability
//! predicate, see [`pod_available`].
//!
//! # Rolling update ([`sort_for_update`])
//!
//! The caller gives the candidates in the base order ([`sort_active`] for CloneSet
//! and SidecarSet, ordinals for Advanced StatefulSet). Then:
//!
//! 1. **Priority**, a stable sort. With `weightPriority` set (it wins over
//!    `orderPriority` when both are), a pod's score is the sum of the weights of the
//!    selectors it matches, higher first; a selector with an unknown operator adds
//!    nothing. With `orderPriority`, a pod's level is the index of the first ordered
//!    key among its labels, lower first, and within a level the integer that ends the
//!    label value goes higher first (`o-10` before `o-5`; no trailing digits, or more
//!    than fit an i64, count as 0). **Quirk**: a pod with none of the keys gets level
//!    −1 and so goes *before* every pod that has one (`getPodOrderPriority` returns
//!    `-1, 0`, and the comparison is "lower level first"). The Go less-function
//!    falls back to `i < j` on ties, but `sort.SliceStable` only ever calls it with
//!    the later element first, so ties keep their order: it is a plain stable sort.
//! 2. **Scatter** (`scatter_sort.go`). With more than one term, only terms that some
//!    candidate carries (key present with that value) are used, ordered by how many
//!    candidates carry them, most first, ties in spec order; a single term is used
//!    as is. For each term in turn: candidates *match* when the label value equals
//!    the term's (a missing label reads as `""`). With fewer than two matching or
//!    two non-matching candidates nothing moves. Otherwise the last matching
//!    candidate is set aside for the very end; the rest are laid out as
//!    `[leading non-matching] ([m matching] [u non-matching]) × groups [leftovers]`,
//!    where `m` and `u` are the candidates' own proportions, or, when matching pods
//!    are denser among *all* pods of the workload than among the candidates, all
//!    pods' proportions, with the non-matching candidates they leave over leading
//!    (`calculateGroupByDensity`: Go's float32 ratio comparison, group sizes rounded
//!    half away from zero).
//!
//! CloneSet then moves PreparingUpdate pods to the front (a stable partition); that
//! step is CloneSet's own and left to its controller.
//!
//! # Known differences from OpenKruise
//!
//! - Exact ties. Go's `sort.Sort`/`sort.Slice` is not stable: for up to 12 pods it
//!   happens to keep the input order, beyond that the order of tied pods is an
//!   artefact of pdqsort. Here tied pods are ordered by name, then namespace, then
//!   input order, so the result does not depend on the order of the informer list.
//! - The same-node ranker keys its ranks by pod UID, so pods sharing a UID (only
//!   possible for objects never stored by an API server) share a rank in Go. Here
//!   ranks belong to positions.
//! - CloneSet's topology-spread ranker (pod spread constraints with node labels) is
//!   not implemented; only the same-node ranker.
//! - A scatter term counter is keyed `key:value` in Go, so two terms whose joined
//!   texts collide would merge. Label keys and values cannot contain `:`, so this
//!   cannot happen for valid terms; here terms are compared field by field.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap},
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::core::v1::{Pod, PodCondition},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, Time},
};

use crate::{
    crd::common::{
        UpdatePriorityOrderTerm, UpdatePriorityStrategy, UpdatePriorityWeightTerm, UpdateScatterTerm,
    },
    keys::POD_DELETION_COST,
};

/// A label selector that cannot be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A requirement's operator is none of the four Kubernetes knows.
    #[error(
        "matchExpressions[{index}].operator: Unsupported value: {operator:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
    )]
    UnknownOperator {
        /// Position of the requirement in `matchExpressions`.
        index: usize,
        /// The operator found.
        operator: String,
    },
}

/// Whether `sel` selects an object with `labels`, as OpenKruise's
/// `ValidatedLabelSelectorAsSelector` evaluates it: an empty selector selects
/// everything; `matchLabels` need equal values; `In` needs the label with one of the
/// values, `NotIn` its absence or another value, `Exists` and `DoesNotExist` its
/// presence or absence. Values are not validated (the webhook did that): `In` with no
/// values selects nothing, `NotIn` with none selects everything. An unknown operator
/// is an error whatever the labels.
pub fn label_selector_matches(
    sel: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let exprs = sel.match_expressions.as_deref().unwrap_or_default();
    if let Some((index, req)) = exprs
        .iter()
        .enumerate()
        .find(|(_, r)| !matches!(r.operator.as_str(), "In" | "NotIn" | "Exists" | "DoesNotExist"))
    {
        return Err(SelectorError::UnknownOperator { index, operator: req.operator.clone() });
    }
    let by_labels = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = exprs.iter().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let has = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            _ => has.is_none(),
        }
    });
    Ok(by_labels && by_exprs)
}

/// Kubernetes' `IsPodAvailable`: the pod is Ready, and either `min_ready_seconds` is 0
/// or its Ready condition turned True more than `min_ready_seconds` before `now`.
pub fn pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(cond) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    go_time(cond.last_transition_time.as_ref()).is_some_and(|since| {
        since.checked_add(SignedDuration::from_secs(min_ready_seconds.into())).is_ok_and(|at| at < now)
    })
}

/// Sorts `pods` so that the ones to delete first come first, as CloneSet's scale-in
/// orders the pods of one revision (`ActivePodsWithRanks` in OpenKruise's
/// `cloneset/utils/pod_sorter.go`):
///
/// 1. unassigned (no `spec.nodeName`) before assigned;
/// 2. phase Pending (and any phase but Unknown and Running) < Unknown < Running;
/// 3. not `available` before available, then not Ready before Ready;
/// 4. lower `controller.kubernetes.io/pod-deletion-cost` first (an int32 written
///    without `+` or leading zeros; anything else counts as 0);
/// 5. higher same-node rank first: the pods on one node are put in this same order
///    (without steps 3's availability and 5) and the k-th of n gets rank n−1−k, so
///    the last, most valuable pod of a node ranks 0 like a pod alone on its node;
/// 6. when both are Ready, Ready for less time first (a missing transition time
///    counts as the least);
/// 7. more restarts of the most restarted container first;
/// 8. newer first (a missing creation time first);
/// 9. ties: by name, then namespace, then input order.
pub fn sort_for_deletion(pods: &mut [&Pod], available: impl Fn(&Pod) -> bool) {
    let ranks = same_node_ranks(pods);
    let mut keyed: Vec<_> =
        pods.iter().zip(ranks).map(|(pod, rank)| (deletion_key(pod, available(pod), rank), *pod)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (slot, (_, pod)) in pods.iter_mut().zip(keyed) {
        *slot = pod;
    }
}

/// Sorts `pods` by Kubernetes' `ActivePods` order, the base order of CloneSet's and
/// SidecarSet's updates: unassigned first; Pending < Unknown < Running; not Ready
/// first; when both are Ready, Ready for less time first; more restarts first; newer
/// first. Ties by name, then namespace, then input order.
pub fn sort_active(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| active_key(a).cmp(&active_key(b)));
}

/// Reorders `pods`, the update candidates already in their base order, the way
/// OpenKruise's `SortUpdateIndexes` does: the stable `priority` sort, then the
/// `scatter` sort (see the module docs for both). `all_pods` are all the pods of the
/// workload, candidates included; the scatter sort weighs how dense each term's pods
/// are among them. Should the caller leave candidates out of `all_pods`, the counts
/// are raised to at least the candidates'.
pub fn sort_for_update(
    pods: &mut [&Pod],
    all_pods: &[&Pod],
    priority: Option<&UpdatePriorityStrategy>,
    scatter: Option<&[UpdateScatterTerm]>,
) {
    if let Some(strategy) = priority {
        sort_by_priority(pods, strategy);
    }
    if let Some(terms) = scatter {
        sort_by_scatter(pods, all_pods, terms);
    }
}

// ----- pod facts -----

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn conditions(pod: &Pod) -> &[PodCondition] {
    pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default()
}

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    conditions(pod).iter().find(|c| c.type_ == "Ready")
}

fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) is what a missing time decodes to.
fn go_time(t: Option<&Time>) -> Option<Timestamp> {
    const GO_ZERO_SECONDS: i64 = -62_135_596_800;
    t.map(|t| t.0).filter(|ts| ts.as_second() != GO_ZERO_SECONDS || ts.subsec_nanosecond() != 0)
}

/// When a Ready pod became Ready; `None` when it is not Ready or the time is missing.
fn ready_since(pod: &Pod) -> Option<Timestamp> {
    if !is_ready(pod) {
        return None;
    }
    conditions(pod)
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| go_time(c.last_transition_time.as_ref()))
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .fold(0, i32::max)
}

/// `getDeletionCostFromPodAnnotations`: an int32, no `+`, no leading zeros; else 0.
fn deletion_cost(pod: &Pod) -> i32 {
    let Some(value) = pod.metadata.annotations.as_ref().and_then(|a| a.get(POD_DELETION_COST)) else {
        return 0;
    };
    let first_ok = match value.as_bytes().first() {
        Some(b'-' | b'1'..=b'9') => true,
        Some(b'0') => value == "0",
        _ => false,
    };
    if first_ok { value.parse().unwrap_or(0) } else { 0 }
}

// ----- Kubernetes-style orders -----

/// The facts both orders compare, in `ActivePods`' order; smaller goes first.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ActiveKey<'a> {
    assigned: bool,
    phase: u8,
    ready: bool,
    /// Compared only between two Ready pods (readiness differs otherwise, and that
    /// decided): a missing time (`None`) first, then the most recent. Not-Ready pods
    /// all have `None` and tie.
    ready_since: Option<Reverse<Timestamp>>,
    restarts: Reverse<i32>,
    /// A missing creation time first, then the newest.
    created: Option<Reverse<Timestamp>>,
    name: &'a str,
    namespace: &'a str,
}

fn active_key(pod: &Pod) -> ActiveKey<'_> {
    let ready = is_ready(pod);
    ActiveKey {
        assigned: !node_name(pod).is_empty(),
        phase: phase_rank(pod),
        ready,
        ready_since: ready_since(pod).map(Reverse),
        restarts: Reverse(max_restarts(pod)),
        created: go_time(pod.metadata.creation_timestamp.as_ref()).map(Reverse),
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        namespace: pod.metadata.namespace.as_deref().unwrap_or_default(),
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct DeletionKey<'a> {
    assigned: bool,
    phase: u8,
    available: bool,
    ready: bool,
    cost: i32,
    rank: Reverse<usize>,
    ready_since: Option<Reverse<Timestamp>>,
    restarts: Reverse<i32>,
    created: Option<Reverse<Timestamp>>,
    name: &'a str,
    namespace: &'a str,
}

fn deletion_key(pod: &Pod, available: bool, rank: usize) -> DeletionKey<'_> {
    let a = active_key(pod);
    DeletionKey {
        assigned: a.assigned,
        phase: a.phase,
        available,
        ready: a.ready,
        cost: deletion_cost(pod),
        rank: Reverse(rank),
        ready_since: a.ready_since,
        restarts: a.restarts,
        created: a.created,
        name: a.name,
        namespace: a.namespace,
    }
}

/// `NewSameNodeRanker`: per node with more than one pod, the pods in deletion order
/// (no availability, no rank) get ranks n−1, n−2, …, 0.
fn same_node_ranks(pods: &[&Pod]) -> Vec<usize> {
    let mut by_node: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, pod) in pods.iter().enumerate() {
        let node = node_name(pod);
        if !node.is_empty() {
            by_node.entry(node).or_default().push(i);
        }
    }
    let mut ranks = vec![0; pods.len()];
    for mut on_node in by_node.into_values().filter(|v| v.len() > 1) {
        on_node.sort_by(|&a, &b| deletion_key(pods[a], true, 0).cmp(&deletion_key(pods[b], true, 0)));
        let n = on_node.len();
        for (k, i) in on_node.into_iter().enumerate() {
            ranks[i] = n - 1 - k;
        }
    }
    ranks
}

// ----- priority -----

fn sort_by_priority(pods: &mut [&Pod], strategy: &UpdatePriorityStrategy) {
    let weights = strategy.weight_priority.as_deref().unwrap_or_default();
    let orders = strategy.order_priority.as_deref().unwrap_or_default();
    if !weights.is_empty() {
        pods.sort_by_cached_key(|pod| Reverse(weight_score(weights, labels(pod))));
    } else if !orders.is_empty() {
        pods.sort_by_cached_key(|pod| order_level(orders, labels(pod)));
    }
}

/// `getPodWeightPriority`: the sum of the weights of the terms whose selector
/// matches; a selector that cannot be evaluated adds nothing.
fn weight_score(terms: &[UpdatePriorityWeightTerm], labels: &BTreeMap<String, String>) -> i64 {
    terms
        .iter()
        .filter(|t| label_selector_matches(&t.match_selector, labels) == Ok(true))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// `getPodOrderPriority` as a sort key: (level, higher trailing integer first).
fn order_level(terms: &[UpdatePriorityOrderTerm], labels: &BTreeMap<String, String>) -> (i64, Reverse<i64>) {
    terms
        .iter()
        .zip(0_i64..)
        .find_map(|(t, level)| labels.get(&t.ordered_key).map(|v| (level, Reverse(trailing_integer(v)))))
        .unwrap_or((-1, Reverse(0)))
}

/// `getIntFromStringSuffix`: the run of ASCII digits that ends `v`, or 0 when there
/// is none or it does not fit an i64.
fn trailing_integer(v: &str) -> i64 {
    let digits = v.len() - v.bytes().rev().take_while(u8::is_ascii_digit).count();
    v[digits..].parse().unwrap_or(0)
}

// ----- scatter -----

fn sort_by_scatter(pods: &mut [&Pod], all_pods: &[&Pod], terms: &[UpdateScatterTerm]) {
    if terms.is_empty() || pods.len() <= 1 {
        return;
    }
    let mut order: Vec<usize> = (0..pods.len()).collect();
    for term in scatter_terms(pods, terms) {
        order = scatter_by_term(term, pods, all_pods, order);
    }
    let reordered: Vec<&Pod> = order.iter().map(|&i| pods[i]).collect();
    pods.copy_from_slice(&reordered);
}

/// `getScatterTerms`: one term as given; several: those some candidate carries,
/// most carried first, ties in spec order.
fn scatter_terms<'t>(pods: &[&Pod], terms: &'t [UpdateScatterTerm]) -> Vec<&'t UpdateScatterTerm> {
    if let [only] = terms {
        return vec![only];
    }
    let mut found: Vec<(&UpdateScatterTerm, usize)> = Vec::new();
    for term in terms {
        for pod in pods {
            if labels(pod).get(&term.key) != Some(&term.value) {
                continue;
            }
            match found.iter_mut().find(|(t, _)| t.key == term.key && t.value == term.value) {
                Some((_, count)) => *count += 1,
                None => found.push((term, 1)),
            }
        }
    }
    found.sort_by_key(|&(_, count)| Reverse(count));
    found.into_iter().map(|(t, _)| t).collect()
}

/// `scatterPodsByRule`: `order` holds positions in `pods`.
fn scatter_by_term(
    term: &UpdateScatterTerm,
    pods: &[&Pod],
    all_pods: &[&Pod],
    order: Vec<usize>,
) -> Vec<usize> {
    let matches = |pod: &Pod| labels(pod).get(&term.key).map_or("", String::as_str) == term.value;
    let (mut matched, unmatched): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| matches(pods[i]));
    if matched.len() <= 1 || unmatched.len() <= 1 {
        return order;
    }
    let all_matched = all_pods.iter().filter(|pod| matches(pod)).count();
    let total_unmatched = (all_pods.len() - all_matched).max(unmatched.len());
    let total_matched = all_matched.max(matched.len());
    let Some(last) = matched.pop() else {
        return order;
    };
    let group = group_by_density(total_matched - 1, total_unmatched, matched.len(), unmatched.len());

    let mut out = Vec::with_capacity(order.len());
    let (mut m, mut u) = (matched.as_slice(), unmatched.as_slice());
    let lead = group.unmatched_remainder.min(u.len());
    out.extend_from_slice(&u[..lead]);
    u = &u[lead..];
    for _ in 0..group.groups {
        take(&mut m, &mut out, group.matched_size);
        take(&mut u, &mut out, group.unmatched_size);
    }
    out.extend_from_slice(m);
    out.extend_from_slice(u);
    out.push(last);
    out
}

fn take(src: &mut &[usize], out: &mut Vec<usize>, size: usize) {
    let n = size.min(src.len());
    out.extend_from_slice(&src[..n]);
    *src = &src[n..];
}

#[derive(Debug, PartialEq, Eq)]
struct ScatterGroup {
    groups: usize,
    matched_size: usize,
    unmatched_size: usize,
    unmatched_remainder: usize,
}

/// `newScatterGroup`: as many groups as the smaller side; sizes rounded half away
/// from zero. Both sides are at least 1 where it is called (`max(1)` only keeps a
/// misuse from dividing by zero).
fn scatter_group(matched: usize, unmatched: usize) -> ScatterGroup {
    let groups = matched.min(unmatched);
    let per = groups.max(1) as f64;
    ScatterGroup {
        groups,
        matched_size: (matched as f64 / per).round() as usize,
        unmatched_size: (unmatched as f64 / per).round() as usize,
        unmatched_remainder: 0,
    }
}

/// `calculateGroupByDensity`: the candidates' own grouping, unless matching pods
/// are denser among all pods than among the candidates (fewer non-matching per
/// matching one); then all pods' group sizes, as many groups as the candidates fill,
/// with the non-matching candidates left over leading.
fn group_by_density(
    total_matched: usize,
    total_unmatched: usize,
    update_matched: usize,
    update_unmatched: usize,
) -> ScatterGroup {
    let total = scatter_group(total_matched, total_unmatched);
    let update = scatter_group(update_matched, update_unmatched);
    // Go compares float32 ratios.
    if total_unmatched as f32 / total_matched as f32 >= update_unmatched as f32 / update_matched as f32 {
        return update;
    }
    let (m, u) = (total.matched_size.max(1), total.unmatched_size.max(1));
    let groups = (update_matched / m).min(update_unmatched / u);
    ScatterGroup {
        groups,
        matched_size: m,
        unmatched_size: u,
        unmatched_remainder: update_unmatched - groups * u,
    }
}

#[cfg(test)]
mod tests;
