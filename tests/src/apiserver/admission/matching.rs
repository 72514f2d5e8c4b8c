//! Which webhooks a request reaches: rules (groups, versions, resources with
//! subresources, operations, scope), `namespaceSelector` and `objectSelector`.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::{Attributes, Gvr, Hook};

fn listed(list: Option<&Vec<String>>, value: &str) -> bool {
    list.is_some_and(|l| l.iter().any(|x| x == "*" || x == value))
}

/// `pods`, `pods/status`, `*`, `*/*`, `pods/*`, `*/scale`.
fn resource_matches(patterns: Option<&Vec<String>>, resource: &str, sub: &str) -> bool {
    patterns.is_some_and(|ps| {
        ps.iter().any(|p| {
            if p == "*/*" {
                return true;
            }
            match p.split_once('/') {
                Some((r, s)) => (r == "*" || r == resource) && (s == "*" || s == sub),
                None => sub.is_empty() && (p == "*" || p == resource),
            }
        })
    })
}

fn rule_matches(rule: &RuleWithOperations, attrs: &Attributes, gvr: &Gvr, sub: &str) -> bool {
    let scope_ok = match rule.scope.as_deref().unwrap_or("*") {
        "Cluster" => attrs.namespace.is_empty(),
        "Namespaced" => !attrs.namespace.is_empty(),
        _ => true,
    };
    scope_ok
        && listed(rule.operations.as_ref(), attrs.operation().as_str())
        && listed(rule.api_groups.as_ref(), &gvr.group)
        && listed(rule.api_versions.as_ref(), &gvr.version)
        && resource_matches(rule.resources.as_ref(), &gvr.resource, sub)
}

fn labels_of(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// A label selector over `labels`; an absent or empty selector matches everything.
/// An unknown operator matches nothing.
pub(crate) fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector else { return true };
    let labels_ok = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let got = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => got.is_some_and(|g| values.contains(g)),
                "NotIn" => got.is_none_or(|g| !values.contains(g)),
                "Exists" => got.is_some(),
                "DoesNotExist" => got.is_none(),
                _ => false,
            }
        })
}

/// Whether `hook` is called for this request on `object`.
pub(super) fn matches(hook: &Hook<'_>, attrs: &Attributes, object: Option<&Value>) -> bool {
    // namespaceSelector: cluster-scoped objects other than Namespaces always match.
    let is_namespace = attrs.resource.group.is_empty() && attrs.resource.resource == "namespaces";
    let ns_ok = if is_namespace {
        let obj = labels_of(object.or(attrs.old_object.as_ref()));
        selector_matches(hook.namespace_selector, &obj)
    } else if attrs.namespace.is_empty() {
        true
    } else {
        selector_matches(hook.namespace_selector, &attrs.namespace_labels)
    };
    if !ns_ok {
        return false;
    }
    // objectSelector: the new or the old object's labels.
    let new_ok = object
        .filter(|o| !o.is_null())
        .is_some_and(|o| selector_matches(hook.object_selector, &labels_of(Some(o))));
    let old_ok = attrs
        .old_object
        .as_ref()
        .is_some_and(|o| selector_matches(hook.object_selector, &labels_of(Some(o))));
    let neither = object.is_none_or(Value::is_null) && attrs.old_object.is_none();
    if !(new_ok || old_ok || (neither && selector_matches(hook.object_selector, &BTreeMap::new()))) {
        return false;
    }
    let by_resource = hook.rules.iter().any(|r| rule_matches(r, attrs, &attrs.resource, &attrs.sub_resource));
    if by_resource || hook.match_policy == Some("Exact") {
        return by_resource;
    }
    // matchPolicy Equivalent (the default), simplified: also the original request's resource.
    attrs.request_resource.as_ref().is_some_and(|gvr| {
        let sub = attrs.request_sub_resource.as_deref().unwrap_or(&attrs.sub_resource);
        hook.rules.iter().any(|r| rule_matches(r, attrs, gvr, sub))
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn resources_with_subresources_and_wildcards() {
        let p = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(resource_matches(p(&["pods"]).as_ref(), "pods", ""));
        assert!(!resource_matches(p(&["pods"]).as_ref(), "pods", "status"));
        assert!(resource_matches(p(&["pods/status"]).as_ref(), "pods", "status"));
        assert!(resource_matches(p(&["pods/*"]).as_ref(), "pods", "exec"));
        assert!(resource_matches(p(&["*"]).as_ref(), "clonesets", ""));
        assert!(!resource_matches(p(&["*"]).as_ref(), "clonesets", "scale"));
        assert!(resource_matches(p(&["*/scale"]).as_ref(), "clonesets", "scale"));
        assert!(resource_matches(p(&["*/*"]).as_ref(), "clonesets", "status"));
        assert!(!resource_matches(p(&["deployments"]).as_ref(), "clonesets", ""));
    }

    #[test]
    fn label_selectors() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "skip".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert!(selector_matches(Some(&sel), &labels(&[("app", "web"), ("tier", "a")])));
        assert!(!selector_matches(Some(&sel), &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector_matches(Some(&sel), &labels(&[("app", "web"), ("tier", "a"), ("skip", "1")])));
        assert!(!selector_matches(Some(&sel), &labels(&[("tier", "a")])));
        assert!(selector_matches(Some(&LabelSelector::default()), &labels(&[])));
        assert!(selector_matches(None, &labels(&[])));
    }
}
