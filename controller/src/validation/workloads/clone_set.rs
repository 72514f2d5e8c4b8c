//! CloneSet (`apps.kruise.io/v1alpha1`).

use stevedore_proto::crd::clone_set::{
    CloneSet, CloneSetScaleStrategy, CloneSetUpdateStrategy, CloneSetUpdateStrategyType as Type,
};

use super::super::{
    FieldError,
    field::{forbidden, invalid},
    pod,
    rules::{self, non_negative},
};

/// CloneSet: a DNS-subdomain name; replicas >= 0; a well-formed, non-empty selector
/// that selects the template; the pod template's basics; no duplicate
/// `podsToDelete`; an update type of ReCreate, InPlaceIfPossible or InPlaceOnly
/// (v1alpha1 refuses OnDelete); partition, maxUnavailable and maxSurge as ints or
/// percentages (of replicas, rounded up), the partition >= 0, maxSurge 0 under
/// InPlaceOnly, and not both maxUnavailable and maxSurge below 1 when replicas > 0;
/// valid priority and scatter strategies; progressDeadlineSeconds >= 0 and above
/// minReadySeconds unless it is 2147483647. On update only replicas, template,
/// volumeClaimTemplates, scaleStrategy, updateStrategy, revisionHistoryLimit,
/// minReadySeconds, lifecycle and progressDeadlineSeconds may change (so the
/// selector is fixed), and under InPlaceOnly the template may change only images.
pub fn clone_set(new: &CloneSet, old: Option<&CloneSet>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &new.spec;
    rules::object_name(&new.metadata, &mut errors);
    let replicas = spec.replicas.unwrap_or(1);
    non_negative("spec.replicas", replicas.into(), &mut errors);
    rules::workload_selector("spec.selector", &spec.selector, "cloneset", &mut errors);
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    rules::selects_template("spec.template", &spec.selector, labels, &mut errors);
    // with a PVC volume per claim template, as OpenKruise mocks them in
    let claims: Vec<String> = spec
        .volume_claim_templates
        .iter()
        .flat_map(|t| t.iter())
        .map(|t| t.metadata.name.clone().unwrap_or_default())
        .collect();
    pod::workload_template("spec.template", &spec.template, &claims, &mut errors);
    let claim_specs = spec.volume_claim_templates.iter().flatten().map(|t| t.spec.as_ref());
    pod::decoding::claims("spec.volumeClaimTemplates", claim_specs, &mut errors);
    scale_strategy(spec.scale_strategy.as_ref(), &mut errors);
    update_strategy(&spec.update_strategy.clone().unwrap_or_default(), replicas.into(), &mut errors);
    if let Some(deadline) = spec.progress_deadline_seconds {
        non_negative("spec.progressDeadlineSeconds", deadline.into(), &mut errors);
        if deadline != i32::MAX && deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errors.push(invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        let mut frozen = spec.clone();
        let was = old.spec.clone();
        frozen.replicas = was.replicas;
        frozen.template = was.template;
        frozen.volume_claim_templates = was.volume_claim_templates;
        frozen.scale_strategy = was.scale_strategy;
        frozen.update_strategy = was.update_strategy;
        frozen.revision_history_limit = was.revision_history_limit;
        frozen.min_ready_seconds = was.min_ready_seconds;
        frozen.lifecycle = was.lifecycle;
        frozen.progress_deadline_seconds = was.progress_deadline_seconds;
        if frozen != old.spec {
            errors.push(forbidden(
                "spec",
                "only replicas, template, volumeClaimTemplates, scaleStrategy, updateStrategy, \
                 revisionHistoryLimit, minReadySeconds, lifecycle and progressDeadlineSeconds may change",
            ));
        }
        let in_place_only =
            spec.update_strategy.as_ref().and_then(|s| s.type_.as_ref()) == Some(&Type::InPlaceOnly);
        // CloneSet's rule: only `replace /containers/<n>/image` (not imagePullPolicy)
        let images = rules::only_images_changed(&old.spec.template, &spec.template, rules::ImagePaths::Exact);
        if in_place_only && let Err(change) = images {
            errors.push(forbidden("spec", format!("InPlaceOnly may change only images, not {change}")));
        }
    }
    errors
}

fn scale_strategy(strategy: Option<&CloneSetScaleStrategy>, errors: &mut Vec<FieldError>) {
    let names = strategy.and_then(|s| s.pods_to_delete.as_deref()).unwrap_or_default();
    let twice = rules::duplicates(names.iter().map(String::as_str));
    if !twice.is_empty() {
        errors.push(invalid("spec.scaleStrategy.podsToDelete", names, format!("listed twice: {twice:?}")));
    }
}

fn update_strategy(strategy: &CloneSetUpdateStrategy, replicas: i64, errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.updateStrategy";
    match &strategy.type_ {
        Some(Type::ReCreate | Type::InPlaceIfPossible | Type::InPlaceOnly) => {}
        other => errors.push(invalid(
            &format!("{AT}.type"),
            other.as_ref().map_or("", Type::as_str),
            "must be ReCreate, InPlaceIfPossible or InPlaceOnly",
        )),
    }
    let zero = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0);
    let partition_field = format!("{AT}.partition");
    let partition = strategy.partition.as_ref().unwrap_or(&zero);
    if let Some(p) = rules::scaled_up(&partition_field, partition, replicas, errors) {
        non_negative(&partition_field, p, errors);
    }
    if let Some(p) = &strategy.priority_strategy {
        rules::priority_strategy(&format!("{AT}.priorityStrategy"), p, errors);
    }
    if let Some(s) = &strategy.scatter_strategy {
        rules::scatter_strategy(&format!("{AT}.scatterStrategy"), s, errors);
    }
    let scaled = |field: &str, v: Option<_>, errors: &mut Vec<FieldError>| {
        v.and_then(|v| rules::scaled_up(&format!("{AT}.{field}"), v, replicas, errors)).unwrap_or(0)
    };
    let max_unavailable = scaled("maxUnavailable", strategy.max_unavailable.as_ref(), errors);
    let max_surge = scaled("maxSurge", strategy.max_surge.as_ref(), errors);
    if strategy.type_ == Some(Type::InPlaceOnly) && max_surge > 0 {
        errors.push(invalid(&format!("{AT}.maxSurge"), &strategy.max_surge, "must be 0 with InPlaceOnly"));
    }
    if replicas > 0 && max_unavailable < 1 && max_surge < 1 {
        errors.push(invalid(
            &format!("{AT}.maxUnavailable"),
            &strategy.max_unavailable,
            "maxUnavailable and maxSurge must not both be less than 1",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::{super::fixtures::*, *};
    use crate::{validation::register, webhook::Registry};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    /// A CloneSet as the defaulting webhook leaves it.
    fn cs() -> CloneSet {
        serde_json::from_value(cs_json()).unwrap()
    }

    fn cs_json() -> serde_json::Value {
        json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 4, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json(),
                "updateStrategy": {"type": "ReCreate", "partition": 0, "maxUnavailable": "20%", "maxSurge": 0}
            }
        })
    }

    fn check(f: impl FnOnce(&mut CloneSet)) -> Vec<String> {
        let mut c = cs();
        f(&mut c);
        fields(&clone_set(&c, None))
    }

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn a_defaulted_clone_set_is_accepted() {
        assert_eq!(check(|_| {}), Vec::<String>::new());
        assert_eq!(check(|c| c.spec.replicas = Some(0)), Vec::<String>::new());
    }

    #[test]
    fn replicas_must_not_be_negative() {
        assert_eq!(
            check(|c| c.spec.replicas = Some(-1)),
            ["spec.replicas: Invalid value: -1: must not be negative"]
        );
    }

    #[test]
    fn the_selector_must_be_non_empty_and_select_the_template() {
        assert_eq!(
            check(|c| c.spec.selector = Default::default()),
            ["spec.selector: Invalid value: {}: an empty selector is invalid for a cloneset"]
        );
        assert_eq!(
            check(|c| c.spec.selector.match_labels = Some([("app".into(), "db".into())].into())),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not select these labels"
            ]
        );
    }

    #[test]
    fn the_pod_template_needs_containers() {
        assert_eq!(
            check(|c| c.spec.template.spec.as_mut().unwrap().containers.clear()),
            ["spec.template.spec.containers: Required value"]
        );
    }

    #[test]
    fn pods_to_delete_has_no_duplicates() {
        let names = |n: &[&str]| {
            Some(CloneSetScaleStrategy {
                pods_to_delete: Some(n.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            })
        };
        assert_eq!(check(|c| c.spec.scale_strategy = names(&["a", "b"])), Vec::<String>::new());
        assert_eq!(
            check(|c| c.spec.scale_strategy = names(&["a", "a"])),
            ["spec.scaleStrategy.podsToDelete: Invalid value: [\"a\",\"a\"]: listed twice: [\"a\"]"]
        );
    }

    #[test]
    fn the_update_type_is_one_of_three() {
        let set =
            |t: Option<Type>| move |c: &mut CloneSet| c.spec.update_strategy.as_mut().unwrap().type_ = t;
        assert_eq!(check(set(Some(Type::InPlaceIfPossible))), Vec::<String>::new());
        assert_eq!(
            check(set(Some(Type::OnDelete))),
            [
                "spec.updateStrategy.type: Invalid value: \"OnDelete\": must be ReCreate, InPlaceIfPossible or InPlaceOnly"
            ]
        );
        assert_eq!(
            check(set(Some(Type::from("Sideways")))),
            [
                "spec.updateStrategy.type: Invalid value: \"Sideways\": must be ReCreate, InPlaceIfPossible or InPlaceOnly"
            ]
        );
        assert_eq!(
            check(set(None)),
            [
                "spec.updateStrategy.type: Invalid value: \"\": must be ReCreate, InPlaceIfPossible or InPlaceOnly"
            ]
        );
    }

    #[test]
    fn partition_is_a_non_negative_int_or_percent() {
        let set = |p: IntOrString| {
            move |c: &mut CloneSet| c.spec.update_strategy.as_mut().unwrap().partition = Some(p)
        };
        assert_eq!(check(set(s("12.5%"))), Vec::<String>::new());
        assert_eq!(check(set(IntOrString::Int(10))), Vec::<String>::new(), "above replicas is allowed");
        assert_eq!(
            check(set(IntOrString::Int(-1))),
            ["spec.updateStrategy.partition: Invalid value: -1: must not be negative"]
        );
        assert_eq!(
            check(set(s("half"))),
            [
                "spec.updateStrategy.partition: Invalid value: \"half\": \"half\" is not an integer or a percentage like \"25%\""
            ]
        );
    }

    #[test]
    fn max_unavailable_and_max_surge_are_not_both_below_one() {
        let set = |mu: IntOrString, ms: IntOrString| {
            move |c: &mut CloneSet| {
                let u = c.spec.update_strategy.as_mut().unwrap();
                (u.max_unavailable, u.max_surge) = (Some(mu), Some(ms));
            }
        };
        assert_eq!(check(set(IntOrString::Int(0), s("1%"))), Vec::<String>::new(), "1% of 4 rounds up to 1");
        assert_eq!(
            check(set(IntOrString::Int(0), IntOrString::Int(0))),
            [
                "spec.updateStrategy.maxUnavailable: Invalid value: 0: maxUnavailable and maxSurge must not both be less than 1"
            ]
        );
        assert_eq!(
            check(|c| {
                set(IntOrString::Int(0), IntOrString::Int(0))(c);
                c.spec.replicas = Some(0);
            }),
            Vec::<String>::new(),
            "no pods, nothing to update"
        );
        assert_eq!(
            check(set(s("20"), IntOrString::Int(1))),
            [
                "spec.updateStrategy.maxUnavailable: Invalid value: \"20\": \"20\" is not an integer or a percentage like \"25%\""
            ]
        );
    }

    #[test]
    fn in_place_only_forbids_surge() {
        let set = |ms: i32| {
            move |c: &mut CloneSet| {
                let u = c.spec.update_strategy.as_mut().unwrap();
                (u.type_, u.max_surge) = (Some(Type::InPlaceOnly), Some(IntOrString::Int(ms)));
            }
        };
        assert_eq!(check(set(0)), Vec::<String>::new());
        assert_eq!(
            check(set(1)),
            ["spec.updateStrategy.maxSurge: Invalid value: 1: must be 0 with InPlaceOnly"]
        );
    }

    #[test]
    fn priority_and_scatter_are_checked() {
        let term =
            || stevedore_proto::crd::common::UpdateScatterTerm { key: "zone".into(), value: "a".into() };
        let set = |n: usize| {
            move |c: &mut CloneSet| {
                c.spec.update_strategy.as_mut().unwrap().scatter_strategy = Some(vec![term(); n])
            }
        };
        assert_eq!(check(set(1)), Vec::<String>::new());
        assert_eq!(
            check(set(2)),
            ["spec.updateStrategy.scatterStrategy: Required value: [1]: zone=a is listed twice"]
        );
    }

    #[test]
    fn progress_deadline_exceeds_min_ready_seconds() {
        let set = |d: i32, m: i32| {
            move |c: &mut CloneSet| {
                (c.spec.progress_deadline_seconds, c.spec.min_ready_seconds) = (Some(d), Some(m))
            }
        };
        assert_eq!(check(set(60, 10)), Vec::<String>::new());
        assert_eq!(check(set(i32::MAX, i32::MAX)), Vec::<String>::new(), "MaxInt32 turns the check off");
        assert_eq!(
            check(set(10, 10)),
            ["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]
        );
        assert_eq!(
            check(set(-1, 0)),
            [
                "spec.progressDeadlineSeconds: Invalid value: -1: must not be negative",
                "spec.progressDeadlineSeconds: Invalid value: -1: must be greater than minReadySeconds"
            ]
        );
    }

    #[test]
    fn the_name_is_a_dns_subdomain() {
        assert_eq!(
            check(|c| c.metadata.name = Some("Web".into())),
            [
                "metadata.name: Invalid value: \"Web\": must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character"
            ]
        );
    }

    #[test]
    fn only_some_fields_may_change() {
        let old = cs();
        let mut new = old.clone();
        new.spec.replicas = Some(9);
        new.spec.min_ready_seconds = Some(5);
        new.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.26".into());
        assert_eq!(fields(&clone_set(&new, Some(&old))), Vec::<String>::new());
        new.spec.selector.match_expressions =
            Some(vec![serde_json::from_value(json!({"key": "app", "operator": "Exists"})).unwrap()]);
        assert_eq!(
            fields(&clone_set(&new, Some(&old))),
            [
                "spec: Forbidden: only replicas, template, volumeClaimTemplates, scaleStrategy, updateStrategy, revisionHistoryLimit, minReadySeconds, lifecycle and progressDeadlineSeconds may change"
            ]
        );
    }

    #[test]
    fn in_place_only_updates_change_only_images() {
        let mut old = cs();
        old.spec.update_strategy.as_mut().unwrap().type_ = Some(Type::InPlaceOnly);
        let mut new = old.clone();
        new.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.26".into());
        assert_eq!(fields(&clone_set(&new, Some(&old))), Vec::<String>::new());
        new.spec.template.spec.as_mut().unwrap().containers[0].args = Some(vec!["-v".into()]);
        assert_eq!(
            fields(&clone_set(&new, Some(&old))),
            ["spec: Forbidden: InPlaceOnly may change only images, not add /containers/0/args"]
        );
    }

    #[test]
    fn the_registry_judges_clone_set_reviews() {
        let mut registry = Registry::default();
        register(&mut registry);
        let handler = registry.admission_handler("/validate-apps-kruise-io-v1alpha1-cloneset").unwrap();
        let good = cs_json();
        let allowed = handler.admit(&review("v1alpha1", "CloneSet", "CREATE", good.clone(), json!(null)));
        assert!(allowed.allowed, "{}", allowed.result.message);
        let mut bad = good.clone();
        bad["spec"]["selector"]["matchLabels"]["app"] = json!("db");
        bad["spec"]["replicas"] = json!(-2);
        let denied = handler.admit(&review("v1alpha1", "CloneSet", "UPDATE", bad, good));
        assert!(!denied.allowed);
        assert_eq!(
            denied.result.message,
            "[spec.replicas: Invalid value: -2: must not be negative, spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not select these labels, spec: Forbidden: only replicas, template, volumeClaimTemplates, scaleStrategy, updateStrategy, revisionHistoryLimit, minReadySeconds, lifecycle and progressDeadlineSeconds may change]"
        );
    }
}
