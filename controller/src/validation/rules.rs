//! Checks several kinds share: names, label selectors and whether they select a
//! template, the basics of a pod template, int-or-percent fields, update priority
//! and scatter strategies. Each pushes what is wrong, with its field path, onto
//! the caller's list.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::core::ObjectMeta;
use stevedore_proto::{
    crd::common::{UpdatePriorityStrategy, UpdateScatterTerm},
    intstr::{self, IntOrPercent, Percent},
};

use super::{FieldError, err};

/// Why `s` is not a DNS-1123 label (`web-0`), if it is not.
pub fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !s.is_empty()
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1]);
    (!ok).then(|| {
        "must consist of lower case alphanumeric characters or '-', and start and end with one".into()
    })
}

/// Why `s` is not a DNS-1123 subdomain (`web.shop`), if it is not.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty() && s.split('.').all(|l| dns1123_label(l).is_none());
    (!ok).then(|| {
        "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an \
         alphanumeric character"
            .into()
    })
}

/// Letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
fn label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a label key (`[prefix/]name`), if it is not.
pub fn qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(reason) = prefix.and_then(|p| dns1123_subdomain(p).map(|r| format!("prefix {r}"))) {
        return Some(reason);
    }
    if name.len() > 63 || !label_chars(name) {
        return Some(
            "name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and \
             ending with an alphanumeric character"
                .into(),
        );
    }
    None
}

/// Why `value` is not a label value, if it is not (empty is allowed).
pub fn label_value(value: &str) -> Option<String> {
    let ok = value.is_empty() || (value.len() <= 63 && label_chars(value));
    (!ok).then(|| {
        "must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending \
         with an alphanumeric character"
            .into()
    })
}

/// `metadata.name` is a DNS-1123 subdomain (or left to `generateName`).
pub fn object_name(meta: &ObjectMeta, errors: &mut Vec<FieldError>) {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => {
            if let Some(reason) = dns1123_subdomain(name) {
                errors.push(err("metadata.name", format!("{name:?} {reason}")));
            }
        }
        _ if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => {}
        _ => errors.push(err("metadata.name", "name or generateName is required")),
    }
}

/// `value` is >= 0.
pub fn non_negative(field: &str, value: i64, errors: &mut Vec<FieldError>) {
    if value < 0 {
        errors.push(err(field, format!("{value} must be greater than or equal to 0")));
    }
}

/// Whether a selector selects nothing in particular (no labels, no expressions).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// A well-formed label selector: valid keys and values, operators with the values
/// they need.
pub fn label_selector(field: &str, sel: &LabelSelector, errors: &mut Vec<FieldError>) {
    for (key, value) in sel.match_labels.iter().flatten() {
        if let Some(reason) = qualified_name(key) {
            errors.push(err(&format!("{field}.matchLabels"), format!("key {key:?}: {reason}")));
        }
        if let Some(reason) = label_value(value) {
            errors.push(err(&format!("{field}.matchLabels"), format!("value {value:?}: {reason}")));
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errors.push(err(&format!("{at}.values"), "must be specified for In and NotIn"));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errors.push(err(&format!("{at}.values"), "must be empty for Exists and DoesNotExist"));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(err(
                &format!("{at}.operator"),
                format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
            )),
        }
        if let Some(reason) = qualified_name(&req.key) {
            errors.push(err(&format!("{at}.key"), format!("{:?}: {reason}", req.key)));
        }
        for value in values {
            if let Some(reason) = label_value(value) {
                errors.push(err(&format!("{at}.values"), format!("{value:?}: {reason}")));
            }
        }
    }
}

/// A workload's selector: present, well-formed and not empty. `kind` names the
/// workload in the message (`cloneset`).
pub fn workload_selector(field: &str, sel: &LabelSelector, kind: &str, errors: &mut Vec<FieldError>) {
    label_selector(field, sel, errors);
    if selector_is_empty(sel) {
        errors.push(err(field, format!("an empty selector is invalid for a {kind}")));
    }
}

/// Whether `sel` selects an object with `labels` (as Kubernetes matches: a `NotIn`
/// or `DoesNotExist` on a missing key matches).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = sel.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let has = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}

/// A non-empty `sel` selects the labels of the template at `template_field`.
pub fn selects_template(
    template_field: &str,
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<FieldError>,
) {
    let empty = BTreeMap::new();
    if !selector_is_empty(sel) && !selector_matches(sel, labels.unwrap_or(&empty)) {
        errors.push(err(&format!("{template_field}.metadata.labels"), "the selector does not match them"));
    }
}

/// What matters of a pod template for a workload: at least one container; every
/// container (init ones too) named with a unique DNS-1123 label and given an image;
/// restartPolicy Always (or unset, which defaults to it); no activeDeadlineSeconds.
/// Not the whole of Kubernetes' pod validation: volumes, probes, resources, ports
/// and the rest are left to the API server when the pods are created.
pub fn workload_pod_template(field: &str, template: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    let Some(spec) = &template.spec else {
        errors.push(err(&format!("{field}.spec.containers"), "at least one container is required"));
        return;
    };
    if spec.containers.is_empty() {
        errors.push(err(&format!("{field}.spec.containers"), "at least one container is required"));
    }
    let mut names = HashSet::new();
    let init = spec.init_containers.iter().flatten().map(|c| ("initContainers", c));
    let indexed = init.enumerate().chain(spec.containers.iter().map(|c| ("containers", c)).enumerate());
    for (i, (list, c)) in indexed {
        let at = format!("{field}.spec.{list}[{i}]");
        if c.name.is_empty() {
            errors.push(err(&format!("{at}.name"), "is required"));
        } else if let Some(reason) = dns1123_label(&c.name) {
            errors.push(err(&format!("{at}.name"), format!("{:?} {reason}", c.name)));
        } else if !names.insert(c.name.as_str()) {
            errors.push(err(&format!("{at}.name"), format!("{:?} is a duplicate container name", c.name)));
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            errors.push(err(&format!("{at}.image"), "is required"));
        }
    }
    if let Some(policy) = spec.restart_policy.as_deref().filter(|p| *p != "Always") {
        errors.push(err(
            &format!("{field}.spec.restartPolicy"),
            format!("{policy:?} is not supported: only Always"),
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errors.push(err(&format!("{field}.spec.activeDeadlineSeconds"), "is not supported in a workload"));
    }
}

/// An int-or-percent that Kubernetes' helper checks: an int >= 0 or a whole
/// percentage, and, with `at_most_100`, not above 100%. Returns the parsed value.
pub fn whole_int_or_percent(
    field: &str,
    value: &IntOrString,
    at_most_100: bool,
    errors: &mut Vec<FieldError>,
) -> Option<IntOrPercent> {
    match intstr::parse(value, Percent::Integer) {
        Ok(IntOrPercent::Percent(p)) if at_most_100 && p > 100.0 => {
            errors.push(err(field, "must not be greater than 100%"));
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(err(field, e.to_string()));
            None
        }
    }
}

/// An OpenKruise int-or-percent (`"12.5%"` allowed) scaled against `base`,
/// rounding up; negative ints pass through (the caller decides).
pub fn scaled_up(field: &str, value: &IntOrString, base: i64, errors: &mut Vec<FieldError>) -> Option<i64> {
    if let IntOrString::Int(i) = value {
        return Some(i64::from(*i));
    }
    match intstr::scaled(value, Percent::Float, base, intstr::Rounding::Up) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(err(field, e.to_string()));
            None
        }
    }
}

/// An update priority strategy: one kind of priority only, weights 0 to 100 with
/// non-empty selectors, non-empty order keys.
pub fn priority_strategy(field: &str, p: &UpdatePriorityStrategy, errors: &mut Vec<FieldError>) {
    let weights = p.weight_priority.as_deref().unwrap_or_default();
    let orders = p.order_priority.as_deref().unwrap_or_default();
    if !weights.is_empty() && !orders.is_empty() {
        errors.push(err(field, "only one of weightPriority and orderPriority may be set"));
        return;
    }
    for (i, w) in weights.iter().enumerate() {
        let at = format!("{field}.weightPriority[{i}]");
        if !(0..=100).contains(&w.weight) {
            errors.push(err(&format!("{at}.weight"), format!("{} must be between 0 and 100", w.weight)));
        }
        if selector_is_empty(&w.match_selector) {
            errors.push(err(&format!("{at}.matchSelector"), "must not be empty"));
        } else {
            label_selector(&format!("{at}.matchSelector"), &w.match_selector, errors);
        }
    }
    for (i, o) in orders.iter().enumerate() {
        if o.ordered_key.is_empty() {
            errors.push(err(&format!("{field}.orderPriority[{i}].orderedKey"), "must not be empty"));
        }
    }
}

/// An update scatter strategy: keys non-empty, no key:value pair twice.
pub fn scatter_strategy(field: &str, terms: &[UpdateScatterTerm], errors: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, t) in terms.iter().enumerate() {
        if t.key.is_empty() {
            errors.push(err(&format!("{field}[{i}].key"), "must not be empty"));
        } else if !seen.insert((t.key.as_str(), t.value.as_str())) {
            errors.push(err(&format!("{field}[{i}]"), format!("{}={} is a duplicate", t.key, t.value)));
        }
    }
}

/// Whether the change from `old` to `new` pod template spec only replaces container
/// images, the one change an InPlaceOnly update allows. Returns the first other
/// change (`add /volumes/0`). Like OpenKruise, any replaced path containing
/// `/containers/<n>/image` counts as an image change.
pub fn only_images_changed(old: &PodTemplateSpec, new: &PodTemplateSpec) -> Result<(), String> {
    let to_json = |t: &PodTemplateSpec| serde_json::to_value(&t.spec).unwrap_or_default();
    let patch = json_patch::diff(&to_json(old), &to_json(new));
    for op in &patch.0 {
        let (name, path) = match op {
            json_patch::PatchOperation::Replace(r) => ("replace", r.path.to_string()),
            json_patch::PatchOperation::Add(a) => ("add", a.path.to_string()),
            json_patch::PatchOperation::Remove(r) => ("remove", r.path.to_string()),
            json_patch::PatchOperation::Move(m) => ("move", m.path.to_string()),
            json_patch::PatchOperation::Copy(c) => ("copy", c.path.to_string()),
            json_patch::PatchOperation::Test(t) => ("test", t.path.to_string()),
        };
        if name != "replace" || !is_image_path(&path) {
            return Err(format!("{name} {path}"));
        }
    }
    Ok(())
}

/// Whether `path` contains `/containers/<digits>/image`.
fn is_image_path(path: &str) -> bool {
    path.match_indices("/containers/").any(|(i, m)| {
        let rest = &path[i + m.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with("/image")
    })
}

/// A pod template with these labels and (name, image) containers; an empty image
/// is left unset.
#[cfg(test)]
pub(super) fn template(label: &[(&str, &str)], containers: &[(&str, &str)]) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(label.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }),
        spec: Some(k8s_openapi::api::core::v1::PodSpec {
            containers: containers
                .iter()
                .map(|(n, i)| k8s_openapi::api::core::v1::Container {
                    name: n.to_string(),
                    image: (!i.is_empty()).then(|| i.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::Container,
        apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta as Meta},
    };
    use stevedore_proto::crd::common::{UpdatePriorityOrderTerm, UpdatePriorityWeightTerm};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_are_dns_labels_and_subdomains() {
        for good in ["a", "web-0", "0a"] {
            assert_eq!(dns1123_label(good), None, "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_some(), "{bad}");
        }
        assert_eq!(dns1123_subdomain("web.shop-1"), None);
        for bad in ["", "a..b", ".a", "A.b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
        let mut errors = Vec::new();
        object_name(&Meta { name: Some("web".into()), ..Default::default() }, &mut errors);
        object_name(&Meta { generate_name: Some("web-".into()), ..Default::default() }, &mut errors);
        assert!(errors.is_empty());
        object_name(&Meta { name: Some("Web_1".into()), ..Default::default() }, &mut errors);
        object_name(&Meta::default(), &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "metadata.name: \"Web_1\" must consist of lower case alphanumeric characters, '-' or '.', \
                 and start and end with an alphanumeric character",
                "metadata.name: name or generateName is required"
            ]
        );
    }

    #[test]
    fn label_keys_and_values() {
        for good in ["app", "apps.kruise.io/name", "A_b.c-D"] {
            assert_eq!(qualified_name(good), None, "{good}");
        }
        for bad in ["", "/a", "a/", "Bad_/x", "-a", &"a".repeat(64)] {
            assert!(qualified_name(bad).is_some(), "{bad}");
        }
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2_x"), None);
        assert!(label_value("v!").is_some());
    }

    #[test]
    fn selectors_are_well_formed() {
        let good = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "In", &["a", "b"]), expr("x", "Exists", &[])]),
        };
        let mut errors = Vec::new();
        workload_selector("spec.selector", &good, "cloneset", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let bad = LabelSelector {
            match_labels: Some(labels(&[("bad key!", "v")])),
            match_expressions: Some(vec![
                expr("a", "In", &[]),
                expr("b", "Exists", &["x"]),
                expr("c", "Near", &[]),
            ]),
        };
        label_selector("spec.selector", &bad, &mut errors);
        workload_selector("spec.selector", &LabelSelector::default(), "cloneset", &mut errors);
        let got = fields(&errors);
        assert!(got[0].starts_with("spec.selector.matchLabels: key \"bad key!\""), "{got:?}");
        assert_eq!(
            got[1..],
            [
                "spec.selector.matchExpressions[0].values: must be specified for In and NotIn",
                "spec.selector.matchExpressions[1].values: must be empty for Exists and DoesNotExist",
                "spec.selector.matchExpressions[2].operator: \"Near\" is not one of In, NotIn, Exists, \
                 DoesNotExist",
                "spec.selector: an empty selector is invalid for a cloneset",
            ]
        );
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "a")]);
        let sel = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(exprs),
        };
        assert!(selector_matches(&sel(vec![expr("tier", "In", &["a", "b"])]), &l));
        assert!(selector_matches(&sel(vec![expr("zone", "NotIn", &["x"])]), &l), "NotIn on a missing key");
        assert!(selector_matches(&sel(vec![expr("zone", "DoesNotExist", &[])]), &l));
        assert!(!selector_matches(&sel(vec![expr("tier", "NotIn", &["a"])]), &l));
        assert!(!selector_matches(&sel(vec![expr("zone", "In", &["x"])]), &l));
        assert!(!selector_matches(&sel(vec![expr("zone", "Exists", &[])]), &l));
        let mut errors = Vec::new();
        selects_template("spec.template", &sel(vec![]), Some(&l), &mut errors);
        assert!(errors.is_empty());
        selects_template("spec.template", &sel(vec![]), None, &mut errors);
        assert_eq!(fields(&errors), ["spec.template.metadata.labels: the selector does not match them"]);
    }

    #[test]
    fn pod_template_basics() {
        let mut errors = Vec::new();
        workload_pod_template("spec.template", &template(&[], &[("app", "nginx")]), &mut errors);
        assert!(errors.is_empty());
        let mut bad = template(&[], &[("app", "nginx"), ("app", "x"), ("Bad", "x"), ("", "")]);
        let spec = bad.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![Container { name: "init".into(), ..Default::default() }]);
        spec.restart_policy = Some("Never".into());
        spec.active_deadline_seconds = Some(5);
        workload_pod_template("spec.template", &bad, &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "spec.template.spec.initContainers[0].image: is required",
                "spec.template.spec.containers[1].name: \"app\" is a duplicate container name",
                "spec.template.spec.containers[2].name: \"Bad\" must consist of lower case alphanumeric \
                 characters or '-', and start and end with one",
                "spec.template.spec.containers[3].name: is required",
                "spec.template.spec.containers[3].image: is required",
                "spec.template.spec.restartPolicy: \"Never\" is not supported: only Always",
                "spec.template.spec.activeDeadlineSeconds: is not supported in a workload",
            ]
        );
        errors.clear();
        workload_pod_template("spec.template", &template(&[], &[]), &mut errors);
        assert_eq!(fields(&errors), ["spec.template.spec.containers: at least one container is required"]);
    }

    #[test]
    fn int_or_percent_fields() {
        let mut errors = Vec::new();
        let s = |v: &str| IntOrString::String(v.into());
        assert_eq!(
            whole_int_or_percent("f", &s("100%"), true, &mut errors),
            Some(IntOrPercent::Percent(100.0))
        );
        assert_eq!(
            whole_int_or_percent("f", &IntOrString::Int(3), true, &mut errors),
            Some(IntOrPercent::Int(3))
        );
        assert_eq!(scaled_up("f", &s("12.5%"), 10, &mut errors), Some(2));
        assert_eq!(scaled_up("f", &IntOrString::Int(-1), 10, &mut errors), Some(-1));
        assert!(errors.is_empty());
        whole_int_or_percent("f", &s("101%"), true, &mut errors);
        whole_int_or_percent("f", &s("1.5%"), true, &mut errors);
        scaled_up("f", &s("5"), 10, &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "f: must not be greater than 100%",
                "f: \"1.5%\" must be a whole percentage like \"25%\"",
                "f: \"5\" is not an integer or a percentage like \"25%\""
            ]
        );
    }

    #[test]
    fn priority_and_scatter_strategies() {
        let weight = |w: i32, sel: LabelSelector| UpdatePriorityWeightTerm { weight: w, match_selector: sel };
        let app = LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() };
        let mut errors = Vec::new();
        let good = UpdatePriorityStrategy {
            weight_priority: Some(vec![weight(50, app.clone())]),
            ..Default::default()
        };
        priority_strategy("p", &good, &mut errors);
        scatter_strategy("s", &[UpdateScatterTerm { key: "k".into(), value: "v".into() }], &mut errors);
        assert!(errors.is_empty());
        let both = UpdatePriorityStrategy {
            weight_priority: Some(vec![weight(1, app.clone())]),
            order_priority: Some(vec![UpdatePriorityOrderTerm { ordered_key: "k".into() }]),
        };
        priority_strategy("p", &both, &mut errors);
        let bad = UpdatePriorityStrategy {
            weight_priority: Some(vec![weight(101, app), weight(1, LabelSelector::default())]),
            ..Default::default()
        };
        priority_strategy("p", &bad, &mut errors);
        let order = UpdatePriorityStrategy {
            order_priority: Some(vec![UpdatePriorityOrderTerm { ordered_key: String::new() }]),
            ..Default::default()
        };
        priority_strategy("p", &order, &mut errors);
        let term = |k: &str| UpdateScatterTerm { key: k.into(), value: "v".into() };
        scatter_strategy("s", &[term(""), term("k"), term("k")], &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "p: only one of weightPriority and orderPriority may be set",
                "p.weightPriority[0].weight: 101 must be between 0 and 100",
                "p.weightPriority[1].matchSelector: must not be empty",
                "p.orderPriority[0].orderedKey: must not be empty",
                "s[0].key: must not be empty",
                "s[2]: k=v is a duplicate",
            ]
        );
    }

    #[test]
    fn in_place_only_allows_image_changes() {
        let old = template(&[], &[("app", "nginx:1")]);
        let mut new = template(&[], &[("app", "nginx:2")]);
        assert_eq!(only_images_changed(&old, &new), Ok(()));
        new.spec.as_mut().unwrap().containers[0].command = Some(vec!["sh".into()]);
        assert_eq!(only_images_changed(&old, &new), Err("add /containers/0/command".into()));
        assert!(is_image_path("/containers/12/image"));
        assert!(!is_image_path("/initContainers/0/image"));
        assert!(!is_image_path("/containers/x/image"));
    }
}
