//! UnitedDeployment (`apps.kruise.io/v1alpha1`).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::{
    api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodTemplateSpec, Toleration},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use stevedore_proto::crd::united_deployment::{
    Subset, SubsetTemplate, UnitedDeployment, UnitedDeploymentScheduleStrategyType as Schedule,
};

use super::super::{
    FieldError, err,
    rules::{self, non_negative},
};

/// What an unset maxReplicas counts as in the sum of maxima.
const UNBOUNDED: i64 = 1_000_000;

/// UnitedDeployment: a DNS-subdomain name; replicas >= 0; a well-formed, non-empty
/// selector; exactly one subset template, and for the StatefulSet, Advanced
/// StatefulSet and Deployment templates: workload labels and pod labels the selector
/// selects, the pod template's basics, no replicas and no partition of their own
/// (a partition only under an explicit RollingUpdate type; v1.9.0 checks nothing of
/// a CloneSet template); reserving unschedulable pods
/// only with a CloneSet or Deployment template; subset names unique DNS-1123
/// labels; valid node selector terms and tolerations; subset replicas, minReplicas
/// and maxReplicas ints >= 0 or whole percentages up to 100% (which need
/// spec.replicas); replicas and min/max not mixed, and no subset replicas under the
/// Adaptive strategy; in min/max mode spec.replicas set, at least one subset
/// without maxReplicas, every min <= its max and the minima's sum <= the maxima's;
/// otherwise subset replicas summing to at most spec.replicas (exactly, when every
/// subset sets them) or, without spec.replicas, set on every subset; partitions
/// only for existing subsets. On update a subset keeps its nodeSelectorTerm and
/// tolerations, and a StatefulSet or Advanced StatefulSet template may change only
/// its replicas, pod template and updateStrategy.
pub fn united_deployment(new: &UnitedDeployment, old: Option<&UnitedDeployment>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &new.spec;
    rules::object_name(&new.metadata, &mut errors);
    if let Some(replicas) = spec.replicas {
        non_negative("spec.replicas", replicas.into(), &mut errors);
    }
    rules::workload_selector("spec.selector", &spec.selector, "uniteddeployment", &mut errors);
    let template = spec.template.clone().unwrap_or_default();
    let topology = spec.topology.clone().unwrap_or_default();
    let schedule = topology.schedule_strategy.clone().unwrap_or_default();
    let adaptive = schedule.type_ == Some(Schedule::Adaptive);
    let reserve =
        adaptive && schedule.adaptive.as_ref().and_then(|a| a.reserve_unschedulable_pods) == Some(true);
    if reserve
        && (template.stateful_set_template.is_some() || template.advanced_stateful_set_template.is_some())
    {
        errors.push(err(
            "spec.topology.scheduleStrategy",
            "reserving unschedulable pods works only with a cloneSetTemplate or deploymentTemplate",
        ));
    }
    subset_template(&template, &spec.selector, &mut errors);
    let subsets = topology.subsets.as_deref().unwrap_or_default();
    subset_replicas(spec.replicas, subsets, &mut errors);
    let mut names = HashSet::new();
    for (i, subset) in subsets.iter().enumerate() {
        let at = format!("spec.topology.subsets[{i}]");
        if subset.name.is_empty() {
            errors.push(err(&format!("{at}.name"), "is required"));
        } else if let Some(reason) = rules::dns1123_label(&subset.name) {
            errors.push(err(&format!("{at}.name"), format!("{:?} {reason}", subset.name)));
        }
        if !names.insert(subset.name.as_str()) {
            errors.push(err(&format!("{at}.name"), format!("{:?} is a duplicate subset name", subset.name)));
        }
        if let Some(term) = &subset.node_selector_term {
            node_selector_term(&format!("{at}.nodeSelectorTerm"), term, &mut errors);
        }
        for (j, t) in subset.tolerations.iter().flatten().enumerate() {
            toleration(&format!("{at}.tolerations[{j}]"), t, &mut errors);
        }
        if subset.replicas.is_some() && adaptive {
            errors.push(err(
                &format!("{at}.replicas"),
                "the Adaptive strategy takes minReplicas/maxReplicas instead",
            ));
        }
    }
    let partitions =
        spec.update_strategy.as_ref().and_then(|u| u.manual_update.as_ref()?.partitions.as_ref());
    for subset in partitions.into_iter().flat_map(BTreeMap::keys) {
        if !names.contains(subset.as_str()) {
            errors.push(err(
                "spec.updateStrategy.manualUpdate.partitions",
                format!("subset {subset:?} does not exist"),
            ));
        }
    }
    if let Some(old) = old {
        template_update(&template, &old.spec.template.clone().unwrap_or_default(), &mut errors);
        let old_subsets = old.spec.topology.as_ref().and_then(|t| t.subsets.as_deref()).unwrap_or_default();
        let by_name: HashMap<_, _> = old_subsets.iter().map(|s| (s.name.as_str(), s)).collect();
        for (i, subset) in subsets.iter().enumerate() {
            let Some(was) = by_name.get(subset.name.as_str()) else { continue };
            if was.node_selector_term != subset.node_selector_term {
                errors.push(err(&format!("spec.topology.subsets[{i}].nodeSelectorTerm"), "may not change"));
            }
            if was.tolerations != subset.tolerations {
                errors.push(err(&format!("spec.topology.subsets[{i}].tolerations"), "may not change"));
            }
        }
    }
    errors
}

/// The one subset workload template, its labels and its pod template.
fn subset_template(t: &SubsetTemplate, selector: &LabelSelector, errors: &mut Vec<FieldError>) {
    let count = [
        t.stateful_set_template.is_some(),
        t.advanced_stateful_set_template.is_some(),
        t.clone_set_template.is_some(),
        t.deployment_template.is_some(),
    ]
    .into_iter()
    .filter(|x| *x)
    .count();
    const KINDS: &str =
        "statefulSetTemplate, advancedStatefulSetTemplate, cloneSetTemplate or deploymentTemplate";
    match count {
        0 => errors.push(err("spec.template", format!("one of {KINDS} is required"))),
        1 => {}
        _ => errors.push(err("spec.template", format!("only one of {KINDS} may be set"))),
    }
    let workload = |name: &str, labels, pods: &PodTemplateSpec, errors: &mut Vec<FieldError>| {
        let at = format!("spec.template.{name}");
        rules::selects_template(&at, selector, labels, errors);
        let pods_at = format!("{at}.spec.template");
        let pod_labels = pods.metadata.as_ref().and_then(|m| m.labels.as_ref());
        rules::selects_template(&pods_at, selector, pod_labels, errors);
        rules::workload_pod_template(&pods_at, pods, errors);
    };
    let unused = |field: String, what: &str, errors: &mut Vec<FieldError>| {
        errors.push(err(&field, format!("must not be set: the UnitedDeployment decides the {what}")));
    };
    if let Some(sts) = &t.stateful_set_template {
        let at = "spec.template.statefulSetTemplate.spec";
        let labels = sts.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("statefulSetTemplate", labels, &sts.spec.template, errors);
        if sts.spec.replicas.is_some() {
            unused(format!("{at}.replicas"), "replicas", errors);
        }
        let strategy = sts.spec.update_strategy.as_ref();
        let rolling = strategy.filter(|s| s.type_.as_deref() == Some("RollingUpdate"));
        if rolling.and_then(|s| s.rolling_update.as_ref()?.partition).is_some() {
            unused(format!("{at}.updateStrategy.rollingUpdate.partition"), "partition", errors);
        }
    } else if let Some(asts) = &t.advanced_stateful_set_template {
        let at = "spec.template.advancedStatefulSetTemplate.spec";
        let labels = asts.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("advancedStatefulSetTemplate", labels, &asts.spec.template, errors);
        if asts.spec.replicas.is_some() {
            unused(format!("{at}.replicas"), "replicas", errors);
        }
        use stevedore_proto::crd::stateful_set::StatefulSetUpdateStrategyType as T;
        let strategy = asts.spec.update_strategy.as_ref();
        let rolling = strategy.filter(|s| s.type_ == Some(T::RollingUpdate));
        if rolling.and_then(|s| s.rolling_update.as_ref()?.partition).is_some() {
            unused(format!("{at}.updateStrategy.rollingUpdate.partition"), "partition", errors);
        }
    } else if let Some(deploy) = &t.deployment_template {
        let labels = deploy.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("deploymentTemplate", labels, &deploy.spec.template, errors);
        if deploy.spec.replicas.is_some() {
            unused("spec.template.deploymentTemplate.spec.replicas".into(), "replicas", errors);
        }
    }
}

/// A StatefulSet or Advanced StatefulSet template may change only replicas, its
/// pod template and updateStrategy.
fn template_update(new: &SubsetTemplate, old: &SubsetTemplate, errors: &mut Vec<FieldError>) {
    const MAY: &str = "only replicas, template and updateStrategy may change";
    if let (Some(new), Some(old)) = (&new.stateful_set_template, &old.stateful_set_template) {
        let mut frozen = new.spec.clone();
        frozen.replicas = old.spec.replicas;
        frozen.template = old.spec.template.clone();
        frozen.update_strategy = old.spec.update_strategy.clone();
        if frozen != old.spec {
            errors.push(err("spec.template.statefulSetTemplate.spec", MAY));
        }
    } else if let (Some(new), Some(old)) =
        (&new.advanced_stateful_set_template, &old.advanced_stateful_set_template)
    {
        let mut frozen = new.spec.clone();
        frozen.replicas = old.spec.replicas;
        frozen.template = old.spec.template.clone();
        frozen.update_strategy = old.spec.update_strategy.clone();
        if frozen != old.spec {
            errors.push(err("spec.template.advancedStatefulSetTemplate.spec", MAY));
        }
    }
}

/// A subset's share: an int >= 0, or a whole percentage from 0 to 100 of
/// `ud_replicas` (rounded half up), which must then be set.
fn subset_share(v: &IntOrString, ud_replicas: Option<i32>) -> Result<i64, String> {
    let s = match v {
        IntOrString::Int(i) if *i < 0 => return Err(format!("{i} must not be negative")),
        IntOrString::Int(i) => return Ok((*i).into()),
        IntOrString::String(s) => s,
    };
    let Some(total) = ud_replicas else {
        return Err(format!("{s:?}: a percentage needs spec.replicas"));
    };
    let percent = s
        .strip_suffix('%')
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| format!("{s:?} is not an integer or a whole percentage like \"25%\""))?;
    if !(0..=100).contains(&percent) {
        return Err(format!("{s:?} must be between 0% and 100%"));
    }
    Ok((f64::from(total) * f64::from(percent) / 100.0 + 0.5).floor() as i64)
}

fn subset_replicas(ud_replicas: Option<i32>, subsets: &[Subset], errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.topology.subsets";
    let (mut sum, mut sum_min, mut sum_max) = (0, 0, 0);
    let (mut with_replicas, mut with_max, mut with_min_or_max) = (0, 0, 0);
    for (i, subset) in subsets.iter().enumerate() {
        let mut share = |field: &str, v: Option<&IntOrString>, unset: i64| match v {
            None => unset,
            Some(v) => subset_share(v, ud_replicas).unwrap_or_else(|reason| {
                errors.push(err(&format!("{AT}[{i}].{field}"), reason));
                0
            }),
        };
        sum += share("replicas", subset.replicas.as_ref(), 0);
        let min = share("minReplicas", subset.min_replicas.as_ref(), 0);
        let max = share("maxReplicas", subset.max_replicas.as_ref(), UNBOUNDED);
        (sum_min, sum_max) = (sum_min + min, sum_max + max);
        with_replicas += usize::from(subset.replicas.is_some());
        with_max += usize::from(subset.max_replicas.is_some());
        with_min_or_max += usize::from(subset.min_replicas.is_some() || subset.max_replicas.is_some());
        if min > max {
            errors.push(err(&format!("{AT}[{i}].minReplicas"), "must not be greater than maxReplicas"));
        }
    }
    if with_replicas > 0 && with_min_or_max > 0 {
        errors.push(err(AT, "replicas and minReplicas/maxReplicas cannot be mixed"));
        return;
    }
    let n = subsets.len();
    if with_min_or_max > 0 {
        if ud_replicas.is_none() {
            errors.push(err("spec.replicas", "is required with subset minReplicas/maxReplicas"));
        }
        if with_max >= n {
            errors.push(err(AT, "at least one subset must leave maxReplicas unset"));
        }
        if sum_min > sum_max {
            errors.push(err(
                AT,
                format!("the minReplicas add up to {sum_min}, more than the maxReplicas ({sum_max})"),
            ));
        }
    } else if let Some(total) = ud_replicas {
        let total = i64::from(total);
        if sum > total {
            errors.push(err(
                AT,
                format!("the subset replicas add up to {sum}, more than spec.replicas ({total})"),
            ));
        }
        if with_replicas > 0 && with_replicas == n && sum != total {
            errors.push(err(
                AT,
                format!(
                    "when every subset sets replicas they must add up to spec.replicas ({total}), not {sum}"
                ),
            ));
        }
    } else if with_replicas != n {
        errors.push(err(AT, "without spec.replicas every subset must set replicas"));
    }
}

fn node_selector_requirement(
    at: &str,
    r: &NodeSelectorRequirement,
    field: bool,
    errors: &mut Vec<FieldError>,
) {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            errors.push(err(&format!("{at}.values"), "must be specified for In and NotIn"))
        }
        "In" | "NotIn" if field && values.len() != 1 => {
            errors.push(err(&format!("{at}.values"), "must have exactly one value"))
        }
        "In" | "NotIn" => {}
        "Exists" | "DoesNotExist" if !field && !values.is_empty() => {
            errors.push(err(&format!("{at}.values"), "must be empty for Exists and DoesNotExist"))
        }
        "Gt" | "Lt" if !field && (values.len() != 1 || values[0].parse::<i64>().is_err()) => {
            errors.push(err(&format!("{at}.values"), "must be one integer for Gt and Lt"))
        }
        "Exists" | "DoesNotExist" | "Gt" | "Lt" if !field => {}
        other => {
            errors.push(err(&format!("{at}.operator"), format!("{other:?} is not a valid operator here")))
        }
    }
    if field {
        if r.key != "metadata.name" {
            errors.push(err(&format!("{at}.key"), format!("{:?}: only metadata.name is supported", r.key)));
        }
    } else if let Some(reason) = rules::qualified_name(&r.key) {
        errors.push(err(&format!("{at}.key"), format!("{:?}: {reason}", r.key)));
    }
}

fn node_selector_term(at: &str, term: &NodeSelectorTerm, errors: &mut Vec<FieldError>) {
    for (i, r) in term.match_expressions.iter().flatten().enumerate() {
        node_selector_requirement(&format!("{at}.matchExpressions[{i}]"), r, false, errors);
    }
    for (i, r) in term.match_fields.iter().flatten().enumerate() {
        node_selector_requirement(&format!("{at}.matchFields[{i}]"), r, true, errors);
    }
}

fn toleration(at: &str, t: &Toleration, errors: &mut Vec<FieldError>) {
    let key = t.key.as_deref().unwrap_or_default();
    let value = t.value.as_deref().unwrap_or_default();
    if !key.is_empty()
        && let Some(reason) = rules::qualified_name(key)
    {
        errors.push(err(&format!("{at}.key"), format!("{key:?}: {reason}")));
    }
    match t.operator.as_deref().unwrap_or_default() {
        "" | "Equal" if key.is_empty() => {
            errors.push(err(&format!("{at}.operator"), "must be Exists when the key is empty"))
        }
        "" | "Equal" => {
            if let Some(reason) = rules::label_value(value) {
                errors.push(err(&format!("{at}.value"), format!("{value:?}: {reason}")));
            }
        }
        "Exists" if !value.is_empty() => {
            errors.push(err(&format!("{at}.value"), "must be empty when the operator is Exists"))
        }
        "Exists" => {}
        other => errors.push(err(&format!("{at}.operator"), format!("{other:?} is not Equal or Exists"))),
    }
    let effect = t.effect.as_deref().unwrap_or_default();
    if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        errors.push(err(
            &format!("{at}.effect"),
            format!("{effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
        ));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        errors.push(err(&format!("{at}.effect"), "must be NoExecute when tolerationSeconds is set"));
    }
}

#[cfg(test)]
mod tests {
    use super::{super::fixtures::*, *};
    use crate::{validation::register, webhook::Registry};
    use serde_json::{Value, json};

    const NONE: [&str; 0] = [];

    fn ud_json() -> Value {
        json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "UnitedDeployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 6, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"statefulSetTemplate": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
                             "template": template_json()}
                }},
                "topology": {"subsets": [
                    {"name": "zone-a", "replicas": 2,
                     "nodeSelectorTerm": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                    {"name": "zone-b",
                     "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "b", "effect": "NoSchedule"}]}
                ]},
                "updateStrategy": {"type": "Manual", "manualUpdate": {"partitions": {"zone-a": 1}}}
            }
        })
    }

    fn ud() -> UnitedDeployment {
        serde_json::from_value(ud_json()).unwrap()
    }

    fn check(f: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut v = ud_json();
        f(&mut v);
        fields(&united_deployment(&serde_json::from_value(v).unwrap(), None))
    }

    #[test]
    fn a_valid_united_deployment_is_accepted() {
        assert_eq!(check(|_| {}), NONE);
    }

    #[test]
    fn exactly_one_template() {
        assert_eq!(
            check(|v| v["spec"]["template"] = json!({})),
            ["spec.template: one of statefulSetTemplate, advancedStatefulSetTemplate, cloneSetTemplate or \
              deploymentTemplate is required"]
        );
        assert_eq!(
            check(|v| v["spec"]["template"]["deploymentTemplate"] =
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"template": template_json()}})),
            [
                "spec.template: only one of statefulSetTemplate, advancedStatefulSetTemplate, cloneSetTemplate or \
              deploymentTemplate may be set"
            ]
        );
    }

    #[test]
    fn template_labels_match_and_replicas_and_partition_are_left_to_the_ud() {
        assert_eq!(
            check(|v| {
                let sts = &mut v["spec"]["template"]["statefulSetTemplate"];
                sts["metadata"]["labels"]["app"] = json!("db");
                sts["spec"]["replicas"] = json!(3);
                sts["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
            }),
            [
                "spec.template.statefulSetTemplate.metadata.labels: the selector does not match them",
                "spec.template.statefulSetTemplate.spec.replicas: must not be set: the UnitedDeployment decides \
                 the replicas",
                "spec.template.statefulSetTemplate.spec.updateStrategy.rollingUpdate.partition: must not be set: \
                 the UnitedDeployment decides the partition",
            ]
        );
        assert_eq!(
            check(
                |v| v["spec"]["template"]["statefulSetTemplate"]["spec"]["template"]["spec"]["containers"] =
                    json!([])
            ),
            [
                "spec.template.statefulSetTemplate.spec.template.spec.containers: at least one container is required"
            ]
        );
    }

    #[test]
    fn replicas_and_selector() {
        assert_eq!(
            check(|v| {
                v["spec"]["replicas"] = json!(-1);
                v["spec"]["topology"]["subsets"] = json!([{"name": "zone-a"}]);
            }),
            [
                "spec.replicas: -1 must be greater than or equal to 0",
                "spec.topology.subsets: the subset replicas add up to 0, more than spec.replicas (-1)"
            ]
        );
        assert_eq!(
            check(|v| v["spec"]["selector"] = json!({})),
            ["spec.selector: an empty selector is invalid for a uniteddeployment"]
        );
    }

    #[test]
    fn deployment_and_advanced_stateful_set_templates() {
        let deploy = |labels: Value, replicas: Value| {
            move |v: &mut Value| {
                v["spec"]["template"] = json!({"deploymentTemplate": {"metadata": {"labels": labels},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                             "template": template_json()}}});
            }
        };
        assert_eq!(check(deploy(json!({"app": "web"}), Value::Null)), NONE);
        assert_eq!(
            check(deploy(json!({}), json!(2))),
            [
                "spec.template.deploymentTemplate.metadata.labels: the selector does not match them",
                "spec.template.deploymentTemplate.spec.replicas: must not be set: the UnitedDeployment decides \
                 the replicas",
            ]
        );
        let asts = |strategy: Value| {
            move |v: &mut Value| {
                v["spec"]["template"] = json!({"advancedStatefulSetTemplate": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template_json(),
                             "updateStrategy": strategy}}});
            }
        };
        assert_eq!(
            check(asts(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))),
            NONE
        );
        assert_eq!(
            check(asts(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))),
            [
                "spec.template.advancedStatefulSetTemplate.spec.updateStrategy.rollingUpdate.partition: must not be \
              set: the UnitedDeployment decides the partition"
            ]
        );
    }

    #[test]
    fn reserving_needs_a_stateless_template() {
        let reserve = json!({"type": "Adaptive", "adaptive": {"reserveUnschedulablePods": true}});
        let set = |v: &mut Value| {
            v["spec"]["topology"]["scheduleStrategy"] = reserve.clone();
            v["spec"]["topology"]["subsets"] = json!([{"name": "a", "minReplicas": 1}, {"name": "b"}]);
            v["spec"]["updateStrategy"] = json!({});
        };
        assert_eq!(
            check(set),
            [
                "spec.topology.scheduleStrategy: reserving unschedulable pods works only with a cloneSetTemplate or \
              deploymentTemplate"
            ]
        );
        assert_eq!(
            check(|v| {
                set(v);
                v["spec"]["template"] = json!({"cloneSetTemplate": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "selector": {"matchLabels": {"app": "web"}}, "template": template_json()}}});
            }),
            NONE
        );
    }

    #[test]
    fn subset_names_are_unique_dns_labels() {
        assert_eq!(
            check(|v| {
                v["spec"]["topology"]["subsets"][1]["name"] = json!("zone-a");
                v["spec"]["topology"]["subsets"][0]["name"] = json!("zone-a");
            }),
            ["spec.topology.subsets[1].name: \"zone-a\" is a duplicate subset name"]
        );
        assert_eq!(
            check(|v| v["spec"]["topology"]["subsets"][1]["name"] = json!("Zone_B")),
            [
                "spec.topology.subsets[1].name: \"Zone_B\" must consist of lower case alphanumeric characters or \
              '-', and start and end with one"
            ]
        );
    }

    #[test]
    fn node_selector_terms_and_tolerations_are_well_formed() {
        assert_eq!(
            check(|v| {
                let s = &mut v["spec"]["topology"]["subsets"];
                s[0]["nodeSelectorTerm"] = json!({
                    "matchExpressions": [{"key": "zone", "operator": "In"}, {"key": "cpu", "operator": "Gt", "values": ["x"]}],
                    "matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]
                });
                s[1]["tolerations"] = json!([{"operator": "Equal", "value": "x"},
                                             {"key": "k", "operator": "Exists", "tolerationSeconds": 5}]);
            }),
            [
                "spec.topology.subsets[0].nodeSelectorTerm.matchExpressions[0].values: must be specified for In and \
                 NotIn",
                "spec.topology.subsets[0].nodeSelectorTerm.matchExpressions[1].values: must be one integer for Gt \
                 and Lt",
                "spec.topology.subsets[0].nodeSelectorTerm.matchFields[0].key: \"spec.nodeName\": only \
                 metadata.name is supported",
                "spec.topology.subsets[1].tolerations[0].operator: must be Exists when the key is empty",
                "spec.topology.subsets[1].tolerations[1].effect: must be NoExecute when tolerationSeconds is set",
            ]
        );
    }

    #[test]
    fn subset_replicas_are_ints_or_whole_percentages_within_spec_replicas() {
        let subsets = |s: Value| {
            move |v: &mut Value| {
                (v["spec"]["topology"]["subsets"], v["spec"]["updateStrategy"]) = (s, json!({}))
            }
        };
        assert_eq!(
            check(subsets(json!([{"name": "a", "replicas": "50%"}, {"name": "b", "replicas": 3}]))),
            NONE
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "replicas": "150%"}, {"name": "b", "replicas": -1}]))),
            [
                "spec.topology.subsets[0].replicas: \"150%\" must be between 0% and 100%",
                "spec.topology.subsets[1].replicas: -1 must not be negative",
                "spec.topology.subsets: when every subset sets replicas they must add up to spec.replicas (6), not 0",
            ]
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "replicas": 5}, {"name": "b", "replicas": 3}]))),
            [
                "spec.topology.subsets: the subset replicas add up to 8, more than spec.replicas (6)",
                "spec.topology.subsets: when every subset sets replicas they must add up to spec.replicas (6), not 8",
            ]
        );
        assert_eq!(
            check(|v| {
                v["spec"].as_object_mut().unwrap().remove("replicas");
                v["spec"]["topology"]["subsets"][1]["replicas"] = json!("10%");
            }),
            ["spec.topology.subsets[1].replicas: \"10%\": a percentage needs spec.replicas",]
        );
    }

    #[test]
    fn without_spec_replicas_every_subset_sets_replicas() {
        let set = |b: Value| {
            move |v: &mut Value| {
                v["spec"].as_object_mut().unwrap().remove("replicas");
                v["spec"]["topology"]["subsets"][1]["replicas"] = b;
            }
        };
        assert_eq!(check(set(json!(4))), NONE);
        assert_eq!(
            check(set(Value::Null)),
            ["spec.topology.subsets: without spec.replicas every subset must set replicas"]
        );
    }

    #[test]
    fn min_and_max_replicas() {
        let subsets = |s: Value| {
            move |v: &mut Value| {
                (v["spec"]["topology"]["subsets"], v["spec"]["updateStrategy"]) = (s, json!({}))
            }
        };
        assert_eq!(
            check(subsets(json!([{"name": "a", "minReplicas": 1, "maxReplicas": 3}, {"name": "b"}]))),
            NONE
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "replicas": 1}, {"name": "b", "minReplicas": 1}]))),
            ["spec.topology.subsets: replicas and minReplicas/maxReplicas cannot be mixed"]
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "minReplicas": 4, "maxReplicas": 3},
                                 {"name": "b", "maxReplicas": 0}]))),
            [
                "spec.topology.subsets[0].minReplicas: must not be greater than maxReplicas",
                "spec.topology.subsets: at least one subset must leave maxReplicas unset",
                "spec.topology.subsets: the minReplicas add up to 4, more than the maxReplicas (3)",
            ]
        );
        assert_eq!(
            check(|v| {
                v["spec"].as_object_mut().unwrap().remove("replicas");
                v["spec"]["topology"]["subsets"] = json!([{"name": "a", "minReplicas": 1}]);
                v["spec"]["updateStrategy"] = json!({});
            }),
            ["spec.replicas: is required with subset minReplicas/maxReplicas"]
        );
    }

    #[test]
    fn adaptive_takes_min_and_max() {
        assert_eq!(
            check(|v| v["spec"]["topology"]["scheduleStrategy"] = json!({"type": "Adaptive"})),
            [
                "spec.topology.subsets[0].replicas: the Adaptive strategy takes minReplicas/maxReplicas instead"
            ]
        );
    }

    #[test]
    fn partitions_name_existing_subsets() {
        assert_eq!(
            check(|v| v["spec"]["updateStrategy"]["manualUpdate"]["partitions"]["zone-c"] = json!(1)),
            ["spec.updateStrategy.manualUpdate.partitions: subset \"zone-c\" does not exist"]
        );
    }

    #[test]
    fn subset_placement_and_the_stateful_set_spec_are_fixed() {
        let old = ud();
        let mut new = old.clone();
        new.spec.replicas = Some(8);
        fn subsets(u: &mut UnitedDeployment) -> &mut Vec<Subset> {
            u.spec.topology.as_mut().unwrap().subsets.as_mut().unwrap()
        }
        subsets(&mut new).push(Subset { name: "zone-c".into(), ..Default::default() });
        assert_eq!(fields(&united_deployment(&new, Some(&old))), NONE);
        let subsets = subsets(&mut new);
        subsets[0].node_selector_term = None;
        subsets[1].tolerations = None;
        let sts = new.spec.template.as_mut().unwrap().stateful_set_template.as_mut().unwrap();
        sts.spec.service_name = Some("other".into());
        assert_eq!(
            fields(&united_deployment(&new, Some(&old))),
            [
                "spec.template.statefulSetTemplate.spec: only replicas, template and updateStrategy may change",
                "spec.topology.subsets[0].nodeSelectorTerm: may not change",
                "spec.topology.subsets[1].tolerations: may not change",
            ]
        );
    }

    #[test]
    fn the_registry_judges_united_deployment_reviews() {
        let mut registry = Registry::default();
        register(&mut registry);
        let handler =
            registry.admission_handler("/validate-apps-kruise-io-v1alpha1-uniteddeployment").unwrap();
        let good = ud_json();
        let allowed =
            handler.admit(&review("v1alpha1", "UnitedDeployment", "CREATE", good.clone(), json!(null)));
        assert!(allowed.allowed, "{}", allowed.result.message);
        let mut bad = good;
        bad["spec"]["topology"]["subsets"][1]["name"] = json!("zone-a");
        let denied = handler.admit(&review("v1alpha1", "UnitedDeployment", "CREATE", bad, json!(null)));
        assert_eq!(
            denied.result.message,
            "spec.topology.subsets[1].name: \"zone-a\" is a duplicate subset name"
        );
    }
}
