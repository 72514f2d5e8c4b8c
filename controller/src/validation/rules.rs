//! Checks several kinds share: names, label selectors and whether they select a
//! template, the basics of a pod template, image references, int-or-percent fields,
//! update priority and scatter strategies. Each pushes what is wrong, with its field
//! path, onto the caller's list.

use std::collections::HashSet;

use k8s_openapi::{api::core::v1::PodTemplateSpec, apimachinery::pkg::util::intstr::IntOrString};
use stevedore_proto::{
    crd::common::{UpdatePriorityStrategy, UpdateScatterTerm},
    intstr::{self, IntOrPercent, Percent},
};

use super::{
    FieldError,
    field::{invalid, required},
};

mod image;
mod names;
mod scheduling;
mod selectors;

pub use image::image_reference;
pub use names::{
    dns1123_label, dns1123_subdomain, object_name, object_name_by, qualified_name, short_object_name,
};
pub use scheduling::{node_selector_term, preferred_terms, tolerations};
pub use selectors::{label_selector, labels, selector_is_empty, selects_template, workload_selector};

/// `value` is >= 0 (`ValidateNonnegativeField`).
pub fn non_negative(field: &str, value: i64, errors: &mut Vec<FieldError>) {
    if value < 0 {
        errors.push(invalid(field, value, "must not be negative"));
    }
}

/// An int-or-percent that Kubernetes' helpers check (`ValidatePositiveIntOrPercent`
/// and, with `at_most_100`, `IsNotMoreThan100Percent`): an int >= 0 or a whole
/// percentage, not above 100%. Returns the parsed value.
pub fn whole_int_or_percent(
    field: &str,
    value: &IntOrString,
    at_most_100: bool,
    errors: &mut Vec<FieldError>,
) -> Option<IntOrPercent> {
    match intstr::parse(value, Percent::Integer) {
        Ok(IntOrPercent::Percent(p)) if at_most_100 && p > 100.0 => {
            errors.push(invalid(field, value, "must not be more than 100%"));
            None
        }
        Ok(IntOrPercent::Int(i)) if i < 0 => {
            errors.push(invalid(field, i, "must not be negative"));
            None
        }
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(invalid(field, value, "must be an integer or a whole percentage like \"25%\""));
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
            errors.push(invalid(field, value, e.to_string()));
            None
        }
    }
}

/// An update priority strategy (`UpdatePriorityStrategy.FieldsValidation`): one
/// kind of priority only, weights 0 to 100 with well-formed, non-empty selectors,
/// non-empty order keys. The first problem, as one `Required` error on `field`.
pub fn priority_strategy(field: &str, p: &UpdatePriorityStrategy, errors: &mut Vec<FieldError>) {
    let weights = p.weight_priority.as_deref().unwrap_or_default();
    let orders = p.order_priority.as_deref().unwrap_or_default();
    let problem = if !weights.is_empty() && !orders.is_empty() {
        Some("only one of weightPriority and orderPriority may be set".to_owned())
    } else {
        weights
            .iter()
            .enumerate()
            .find_map(|(i, w)| {
                let mut bad = Vec::new();
                label_selector(&format!("weightPriority[{i}].matchSelector"), &w.match_selector, &mut bad);
                if !(0..=100).contains(&w.weight) {
                    Some(format!("weightPriority[{i}].weight: {} is not between 0 and 100", w.weight))
                } else if selector_is_empty(&w.match_selector) {
                    Some(format!("weightPriority[{i}].matchSelector: must not be empty"))
                } else {
                    bad.first().map(ToString::to_string)
                }
            })
            .or_else(|| {
                orders
                    .iter()
                    .position(|o| o.ordered_key.is_empty())
                    .map(|i| format!("orderPriority[{i}].orderedKey: must not be empty"))
            })
    };
    if let Some(problem) = problem {
        errors.push(required(field, problem));
    }
}

/// An update scatter strategy (`UpdateScatterStrategy.FieldsValidation`): keys
/// non-empty, no key=value pair twice. The first problem, as one `Required` error on
/// `field`.
pub fn scatter_strategy(field: &str, terms: &[UpdateScatterTerm], errors: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, t) in terms.iter().enumerate() {
        let problem = if t.key.is_empty() {
            format!("[{i}].key: must not be empty")
        } else if !seen.insert((t.key.as_str(), t.value.as_str())) {
            format!("[{i}]: {}={} is listed twice", t.key, t.value)
        } else {
            continue;
        };
        errors.push(required(field, problem));
        return;
    }
}

/// Names that occur more than once, in order of their second occurrence.
pub fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    names.into_iter().filter(|n| !seen.insert(*n)).collect()
}

/// Which JSON patch paths count as an image change for InPlaceOnly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePaths {
    /// Exactly `/containers/<n>/image` (CloneSet).
    Exact,
    /// Any path containing `/containers/<n>/image`, such as
    /// `/containers/0/imagePullPolicy` (Advanced StatefulSet's unanchored pattern).
    Containing,
}

/// Whether the change from `old` to `new` pod template spec only replaces container
/// images, the one change an InPlaceOnly update allows. Returns the first other
/// change (`add /volumes/0`).
pub fn only_images_changed(
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
    paths: ImagePaths,
) -> Result<(), String> {
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
        if name != "replace" || !is_image_path(&path, paths) {
            return Err(format!("{name} {path}"));
        }
    }
    Ok(())
}

/// Whether `path` is (or, for [`ImagePaths::Containing`], contains)
/// `/containers/<digits>/image`.
fn is_image_path(path: &str, paths: ImagePaths) -> bool {
    let image_at = |i: usize, m: &str| {
        let rest = &path[i + m.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && rest[digits..].starts_with("/image")).then(|| &rest[digits + "/image".len()..])
    };
    match paths {
        ImagePaths::Exact => path.starts_with("/containers/") && image_at(0, "/containers/") == Some(""),
        ImagePaths::Containing => path.match_indices("/containers/").any(|(i, m)| image_at(i, m).is_some()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use stevedore_proto::crd::common::{UpdatePriorityOrderTerm, UpdatePriorityWeightTerm};

    use super::*;

    /// A label map of these pairs.
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The errors as `field: reason` strings.
    pub(crate) fn fields(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn duplicate_names() {
        assert_eq!(duplicates(["a", "b", "a", "c", "b", "a"]), ["a", "b", "a"]);
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
                "f: Invalid value: \"101%\": must not be more than 100%",
                "f: Invalid value: \"1.5%\": must be an integer or a whole percentage like \"25%\"",
                "f: Invalid value: \"5\": \"5\" is not an integer or a percentage like \"25%\""
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
            weight_priority: Some(vec![weight(101, app.clone()), weight(1, LabelSelector::default())]),
            ..Default::default()
        };
        priority_strategy("p", &bad, &mut errors);
        let empty = UpdatePriorityStrategy {
            weight_priority: Some(vec![weight(1, app), weight(1, LabelSelector::default())]),
            ..Default::default()
        };
        priority_strategy("p", &empty, &mut errors);
        let order = UpdatePriorityStrategy {
            order_priority: Some(vec![UpdatePriorityOrderTerm { ordered_key: String::new() }]),
            ..Default::default()
        };
        priority_strategy("p", &order, &mut errors);
        let term = |k: &str| UpdateScatterTerm { key: k.into(), value: "v".into() };
        scatter_strategy("s", &[term(""), term("k"), term("k")], &mut errors);
        scatter_strategy("s", &[term("k"), term("k")], &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "p: Required value: only one of weightPriority and orderPriority may be set",
                "p: Required value: weightPriority[0].weight: 101 is not between 0 and 100",
                "p: Required value: weightPriority[1].matchSelector: must not be empty",
                "p: Required value: orderPriority[0].orderedKey: must not be empty",
                "s: Required value: [0].key: must not be empty",
                "s: Required value: [1]: k=v is listed twice",
            ]
        );
    }

    #[test]
    fn in_place_only_allows_image_changes() {
        let old = crate::validation::pod::test_template(&[], &[("app", "nginx:1")]);
        let mut new = crate::validation::pod::test_template(&[], &[("app", "nginx:2")]);
        assert_eq!(only_images_changed(&old, &new, ImagePaths::Exact), Ok(()));
        new.spec.as_mut().unwrap().containers[0].command = Some(vec!["sh".into()]);
        assert_eq!(
            only_images_changed(&old, &new, ImagePaths::Exact),
            Err("add /containers/0/command".into())
        );
        for paths in [ImagePaths::Exact, ImagePaths::Containing] {
            assert!(is_image_path("/containers/12/image", paths));
            assert!(!is_image_path("/initContainers/0/image", paths));
            assert!(!is_image_path("/containers/x/image", paths));
        }
        assert!(!is_image_path("/containers/0/imagePullPolicy", ImagePaths::Exact));
        assert!(is_image_path("/containers/0/imagePullPolicy", ImagePaths::Containing));
    }
}
