//! UnitedDeployment (`apps.kruise.io/v1alpha1`).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use stevedore_proto::crd::united_deployment::{
    Subset, SubsetTemplate, UnitedDeployment, UnitedDeploymentScheduleStrategyType as Schedule,
};

use super::super::{
    FieldError,
    field::{forbidden, invalid, required},
    pod,
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
        errors.push(invalid(
            "spec.topology.scheduleStrategy",
            &schedule,
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
            errors.push(required(&format!("{at}.name"), ""));
        } else if let Some(reason) = rules::dns1123_label(&subset.name) {
            errors.push(invalid(&format!("{at}.name"), &subset.name, reason));
        }
        if !names.insert(subset.name.as_str()) {
            errors.push(invalid(&format!("{at}.name"), &subset.name, "duplicate subset name"));
        }
        if let Some(term) = &subset.node_selector_term {
            rules::node_selector_term(&format!("{at}.nodeSelectorTerm"), term, &mut errors);
        }
        if let Some(list) = &subset.tolerations {
            rules::tolerations(&format!("{at}.tolerations"), list, &mut errors);
        }
        if subset.replicas.is_some() && adaptive {
            errors.push(forbidden(
                &format!("{at}.replicas"),
                "the Adaptive strategy takes minReplicas/maxReplicas instead",
            ));
        }
    }
    let partitions =
        spec.update_strategy.as_ref().and_then(|u| u.manual_update.as_ref()?.partitions.as_ref());
    for subset in partitions.into_iter().flat_map(BTreeMap::keys) {
        if !names.contains(subset.as_str()) {
            errors.push(invalid(
                "spec.updateStrategy.manualUpdate.partitions",
                partitions,
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
                errors.push(forbidden(
                    &format!("spec.topology.subsets[{i}].nodeSelectorTerm"),
                    "may not change",
                ));
            }
            if was.tolerations != subset.tolerations {
                errors.push(forbidden(&format!("spec.topology.subsets[{i}].tolerations"), "may not change"));
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
        0 => errors.push(required("spec.template", format!("one of {KINDS} is required"))),
        1 => {}
        _ => errors.push(invalid("spec.template", t, format!("only one of {KINDS} may be set"))),
    }
    // The StatefulSet templates get `ValidatePodTemplateSpecForStatefulSet` (the
    // pod's metadata only); the Deployment template
    // `ValidatePodTemplateSpecForReplicaSet` (the whole template, restartPolicy
    // Always, no activeDeadlineSeconds); a CloneSet template nothing.
    let workload = |name: &str, labels, pods: &PodTemplateSpec, whole: bool, errors: &mut Vec<FieldError>| {
        let at = format!("spec.template.{name}");
        rules::selects_template(&at, selector, labels, errors);
        let pods_at = format!("{at}.spec.template");
        let pod_labels = pods.metadata.as_ref().and_then(|m| m.labels.as_ref());
        rules::selects_template(&pods_at, selector, pod_labels, errors);
        if whole {
            pod::workload_template(&pods_at, pods, &[], errors);
        } else {
            pod::metadata(&pods_at, pods, errors);
            pod::decoding::spec(&format!("{pods_at}.spec"), &pods.spec.clone().unwrap_or_default(), errors);
        }
    };
    let unused = |field: String, value: i64, what: &str, errors: &mut Vec<FieldError>| {
        errors.push(invalid(
            &field,
            value,
            format!("must not be set: the UnitedDeployment decides the {what}"),
        ));
    };
    if let Some(sts) = &t.stateful_set_template {
        let at = "spec.template.statefulSetTemplate.spec";
        let labels = sts.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("statefulSetTemplate", labels, &sts.spec.template, false, errors);
        let claim_specs = sts.spec.volume_claim_templates.iter().flatten().map(|c| c.spec.as_ref());
        pod::decoding::claims(&format!("{at}.volumeClaimTemplates"), claim_specs, errors);
        if let Some(r) = sts.spec.replicas {
            unused(format!("{at}.replicas"), r.into(), "replicas", errors);
        }
        let strategy = sts.spec.update_strategy.as_ref();
        let rolling = strategy.filter(|s| s.type_.as_deref() == Some("RollingUpdate"));
        if let Some(p) = rolling.and_then(|s| s.rolling_update.as_ref()?.partition) {
            unused(format!("{at}.updateStrategy.rollingUpdate.partition"), p.into(), "partition", errors);
        }
    } else if let Some(asts) = &t.advanced_stateful_set_template {
        let at = "spec.template.advancedStatefulSetTemplate.spec";
        let labels = asts.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("advancedStatefulSetTemplate", labels, &asts.spec.template, false, errors);
        let claim_specs = asts.spec.volume_claim_templates.iter().flatten().map(|c| c.spec.as_ref());
        pod::decoding::claims(&format!("{at}.volumeClaimTemplates"), claim_specs, errors);
        if let Some(r) = asts.spec.replicas {
            unused(format!("{at}.replicas"), r.into(), "replicas", errors);
        }
        use stevedore_proto::crd::stateful_set::StatefulSetUpdateStrategyType as T;
        let strategy = asts.spec.update_strategy.as_ref();
        let rolling = strategy.filter(|s| s.type_ == Some(T::RollingUpdate));
        if let Some(p) = rolling.and_then(|s| s.rolling_update.as_ref()?.partition) {
            unused(format!("{at}.updateStrategy.rollingUpdate.partition"), p.into(), "partition", errors);
        }
    } else if let Some(cs) = &t.clone_set_template {
        // not validated, only decoded
        let at = "spec.template.cloneSetTemplate.spec";
        let pods = cs.spec.template.spec.clone().unwrap_or_default();
        pod::decoding::spec(&format!("{at}.template.spec"), &pods, errors);
        let claim_specs = cs.spec.volume_claim_templates.iter().flatten().map(|t| t.spec.as_ref());
        pod::decoding::claims(&format!("{at}.volumeClaimTemplates"), claim_specs, errors);
    } else if let Some(deploy) = &t.deployment_template {
        let labels = deploy.metadata.as_ref().and_then(|m| m.labels.as_ref());
        workload("deploymentTemplate", labels, &deploy.spec.template, true, errors);
        if let Some(r) = deploy.spec.replicas {
            unused("spec.template.deploymentTemplate.spec.replicas".into(), r.into(), "replicas", errors);
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
            errors.push(forbidden("spec.template.statefulSetTemplate.spec", MAY));
        }
    } else if let (Some(new), Some(old)) =
        (&new.advanced_stateful_set_template, &old.advanced_stateful_set_template)
    {
        let mut frozen = new.spec.clone();
        frozen.replicas = old.spec.replicas;
        frozen.template = old.spec.template.clone();
        frozen.update_strategy = old.spec.update_strategy.clone();
        if frozen != old.spec {
            errors.push(forbidden("spec.template.advancedStatefulSetTemplate.spec", MAY));
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
                errors.push(invalid(&format!("{AT}[{i}].{field}"), v, reason));
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
            errors.push(invalid(
                &format!("{AT}[{i}].minReplicas"),
                &subset.min_replicas,
                "must not be greater than maxReplicas",
            ));
        }
    }
    if with_replicas > 0 && with_min_or_max > 0 {
        errors.push(forbidden(AT, "replicas and minReplicas/maxReplicas cannot be mixed"));
        return;
    }
    let n = subsets.len();
    if with_min_or_max > 0 {
        if ud_replicas.is_none() {
            errors.push(required("spec.replicas", "subset minReplicas/maxReplicas need it"));
        }
        if with_max >= n {
            errors.push(invalid(AT, with_max, "at least one subset must leave maxReplicas unset"));
        }
        if sum_min > sum_max {
            errors.push(invalid(
                AT,
                sum_min,
                format!("the minReplicas add up to more than the maxReplicas ({sum_max})"),
            ));
        }
    } else if let Some(total) = ud_replicas {
        let total = i64::from(total);
        if sum > total {
            errors.push(invalid(
                AT,
                sum,
                format!("the subset replicas add up to more than spec.replicas ({total})"),
            ));
        }
        if with_replicas > 0 && with_replicas == n && sum != total {
            errors.push(invalid(
                AT,
                sum,
                format!("when every subset sets replicas they must add up to spec.replicas ({total})"),
            ));
        }
    } else if with_replicas != n {
        errors.push(required(AT, "without spec.replicas every subset must set replicas"));
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
            [
                "spec.template: Required value: one of statefulSetTemplate, advancedStatefulSetTemplate, cloneSetTemplate or deploymentTemplate is required"
            ]
        );
        assert_eq!(
            check(|v| v["spec"]["template"]["deploymentTemplate"] =
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"template": template_json()}})),
            [
                "spec.template: Invalid value: {\"deploymentTemplate\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"selector\":{},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"image\":\"nginx:1.25\",\"name\":\"nginx\"}]}}}},\"statefulSetTemplate\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"serviceName\":\"web\",\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"image\":\"nginx:1.25\",\"name\":\"nginx\"}]}}}}}: only one of statefulSetTemplate, advancedStatefulSetTemplate, cloneSetTemplate or deploymentTemplate may be set"
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
                "spec.template.statefulSetTemplate.metadata.labels: Invalid value: {\"app\":\"db\"}: `selector` does not select these labels",
                "spec.template.statefulSetTemplate.spec.replicas: Invalid value: 3: must not be set: the UnitedDeployment decides the replicas",
                "spec.template.statefulSetTemplate.spec.updateStrategy.rollingUpdate.partition: Invalid value: 1: must not be set: the UnitedDeployment decides the partition",
            ]
        );
        // `ValidatePodTemplateSpecForStatefulSet` leaves the pod spec alone
        assert_eq!(
            check(
                |v| v["spec"]["template"]["statefulSetTemplate"]["spec"]["template"]["spec"]["containers"] =
                    json!([])
            ),
            Vec::<String>::new()
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
                "spec.replicas: Invalid value: -1: must not be negative",
                "spec.topology.subsets: Invalid value: 0: the subset replicas add up to more than spec.replicas (-1)"
            ]
        );
        assert_eq!(
            check(|v| v["spec"]["selector"] = json!({})),
            ["spec.selector: Invalid value: {}: an empty selector is invalid for a uniteddeployment"]
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
                "spec.template.deploymentTemplate.metadata.labels: Invalid value: {}: `selector` does not select these labels",
                "spec.template.deploymentTemplate.spec.replicas: Invalid value: 2: must not be set: the UnitedDeployment decides the replicas",
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
                "spec.template.advancedStatefulSetTemplate.spec.updateStrategy.rollingUpdate.partition: Invalid value: 2: must not be set: the UnitedDeployment decides the partition"
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
                "spec.topology.scheduleStrategy: Invalid value: {\"adaptive\":{\"reserveUnschedulablePods\":true},\"type\":\"Adaptive\"}: reserving unschedulable pods works only with a cloneSetTemplate or deploymentTemplate"
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
            ["spec.topology.subsets[1].name: Invalid value: \"zone-a\": duplicate subset name"]
        );
        assert_eq!(
            check(|v| v["spec"]["topology"]["subsets"][1]["name"] = json!("Zone_B")),
            [
                "spec.topology.subsets[1].name: Invalid value: \"Zone_B\": must consist of lower case alphanumeric characters or '-', and start and end with one"
            ]
        );
    }

    #[test]
    fn node_selector_terms_and_tolerations_are_well_formed() {
        assert_eq!(
            check(|v| {
                let s = &mut v["spec"]["topology"]["subsets"];
                s[0]["nodeSelectorTerm"] = json!({
                    "matchExpressions": [{"key": "zone", "operator": "In"}, {"key": "cpu", "operator": "Gt", "values": ["1"]}],
                    "matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]
                });
                s[1]["tolerations"] = json!([{"operator": "Equal", "value": "x"},
                                             {"key": "k", "operator": "Exists", "tolerationSeconds": 5}]);
            }),
            [
                "spec.topology.subsets[0].nodeSelectorTerm.matchExpressions[0].values: Required value: In and NotIn \
                 need values",
                "spec.topology.subsets[0].nodeSelectorTerm.matchFields[0].key: Unsupported value: \"spec.nodeName\": \
                 supported values: \"metadata.name\"",
                "spec.topology.subsets[1].tolerations[0].operator: Invalid value: \"Equal\": must be Exists when \
                 `key` is empty",
                "spec.topology.subsets[1].tolerations[1].effect: Invalid value: \"\": must be NoExecute when \
                 tolerationSeconds is set",
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
                "spec.topology.subsets[0].replicas: Invalid value: \"150%\": \"150%\" must be between 0% and 100%",
                "spec.topology.subsets[1].replicas: Invalid value: -1: -1 must not be negative",
                "spec.topology.subsets: Invalid value: 0: when every subset sets replicas they must add up to spec.replicas (6)",
            ]
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "replicas": 5}, {"name": "b", "replicas": 3}]))),
            [
                "spec.topology.subsets: Invalid value: 8: the subset replicas add up to more than spec.replicas (6)",
                "spec.topology.subsets: Invalid value: 8: when every subset sets replicas they must add up to spec.replicas (6)",
            ]
        );
        assert_eq!(
            check(|v| {
                v["spec"].as_object_mut().unwrap().remove("replicas");
                v["spec"]["topology"]["subsets"][1]["replicas"] = json!("10%");
            }),
            [
                "spec.topology.subsets[1].replicas: Invalid value: \"10%\": \"10%\": a percentage needs spec.replicas",
            ]
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
            ["spec.topology.subsets: Required value: without spec.replicas every subset must set replicas"]
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
            ["spec.topology.subsets: Forbidden: replicas and minReplicas/maxReplicas cannot be mixed"]
        );
        assert_eq!(
            check(subsets(json!([{"name": "a", "minReplicas": 4, "maxReplicas": 3},
                                 {"name": "b", "maxReplicas": 0}]))),
            [
                "spec.topology.subsets[0].minReplicas: Invalid value: 4: must not be greater than maxReplicas",
                "spec.topology.subsets: Invalid value: 2: at least one subset must leave maxReplicas unset",
                "spec.topology.subsets: Invalid value: 4: the minReplicas add up to more than the maxReplicas (3)",
            ]
        );
        assert_eq!(
            check(|v| {
                v["spec"].as_object_mut().unwrap().remove("replicas");
                v["spec"]["topology"]["subsets"] = json!([{"name": "a", "minReplicas": 1}]);
                v["spec"]["updateStrategy"] = json!({});
            }),
            ["spec.replicas: Required value: subset minReplicas/maxReplicas need it"]
        );
    }

    #[test]
    fn adaptive_takes_min_and_max() {
        assert_eq!(
            check(|v| v["spec"]["topology"]["scheduleStrategy"] = json!({"type": "Adaptive"})),
            [
                "spec.topology.subsets[0].replicas: Forbidden: the Adaptive strategy takes minReplicas/maxReplicas instead"
            ]
        );
    }

    #[test]
    fn partitions_name_existing_subsets() {
        assert_eq!(
            check(|v| v["spec"]["updateStrategy"]["manualUpdate"]["partitions"]["zone-c"] = json!(1)),
            [
                "spec.updateStrategy.manualUpdate.partitions: Invalid value: {\"zone-a\":1,\"zone-c\":1}: subset \"zone-c\" does not exist"
            ]
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
                "spec.template.statefulSetTemplate.spec: Forbidden: only replicas, template and updateStrategy may change",
                "spec.topology.subsets[0].nodeSelectorTerm: Forbidden: may not change",
                "spec.topology.subsets[1].tolerations: Forbidden: may not change",
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
            "spec.topology.subsets[1].name: Invalid value: \"zone-a\": duplicate subset name"
        );
    }
}
