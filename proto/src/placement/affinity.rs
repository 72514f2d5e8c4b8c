//! `spec.nodeSelector` and required node affinity against a node, with the rules of
//! `k8s.io/component-helpers/scheduling/corev1/nodeaffinity` and the label selector of
//! `k8s.io/apimachinery` (v0.32, as built into OpenKruise v1.9.0).
//!
//! Terms are ORed and the requirements in a term ANDed. A term without requirements
//! matches nothing. A term with a malformed requirement (unknown operator, wrong
//! number of values, `Gt`/`Lt` value that is not an integer, invalid label key or
//! value) matches nothing either, while the other terms are still tried; the parse
//! errors are reported only when no term matched, as Kubernetes' lazy-error selector
//! does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use super::Unfit;

const OPERATORS: &str = "In, NotIn, Exists, DoesNotExist, Gt, Lt";

/// The first `spec.nodeSelector` key (in key order) whose node label is missing or
/// different, as a mismatch.
pub(super) fn node_selector(spec: &PodSpec, node: &Node) -> Option<Unfit> {
    let labels = node.metadata.labels.as_ref();
    let selector = spec.node_selector.as_ref()?;
    selector.iter().find_map(|(key, want)| {
        let have = labels.and_then(|l| l.get(key));
        (have != Some(want)).then(|| Unfit::NodeSelectorMismatch { key: key.clone() })
    })
}

/// Whether `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`
/// (when set) lets the pod on `node`; `None` when it does.
pub(super) fn required_node_affinity(spec: &PodSpec, node: &Node) -> Option<Unfit> {
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    let mut errors = Vec::new();
    for (i, term) in required.node_selector_terms.iter().enumerate() {
        match term_matches(term, labels, name, i) {
            Ok(true) => return None,
            Ok(false) => {}
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    Some(if errors.is_empty() { Unfit::AffinityMismatch } else { Unfit::MalformedAffinity { errors } })
}

fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
    index: usize,
) -> Result<bool, Vec<String>> {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        // An empty term selects nothing.
        return Ok(false);
    }
    let path = format!("nodeSelectorTerms[{index}]");
    let mut errors = Vec::new();
    let mut label_requirements = Vec::new();
    for (j, req) in expressions.iter().enumerate() {
        match LabelRequirement::parse(req, &format!("{path}.matchExpressions[{j}]")) {
            Ok(r) => label_requirements.push(r),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    let mut field_requirements = Vec::new();
    for (j, req) in fields.iter().enumerate() {
        match FieldRequirement::parse(req, &format!("{path}.matchFields[{j}]")) {
            Ok(r) => field_requirements.push(r),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !label_requirements.iter().all(|r| r.matches(labels)) {
        return Ok(false);
    }
    // Kubernetes only knows `metadata.name` as a node field, and skips field
    // requirements for a node without a name.
    if !node_name.is_empty() && !field_requirements.iter().all(|r| r.matches(node_name)) {
        return Ok(false);
    }
    Ok(true)
}

enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

struct LabelRequirement<'a> {
    key: &'a str,
    op: Op,
    values: &'a [String],
}

impl<'a> LabelRequirement<'a> {
    fn parse(req: &'a NodeSelectorRequirement, path: &str) -> Result<Self, Vec<String>> {
        let values = req.values.as_deref().unwrap_or_default();
        let mut errors = Vec::new();
        if let Err(why) = qualified_name(&req.key) {
            errors.push(format!("{path}.key: invalid value {:?}: {why}", req.key));
        }
        let op = match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errors.push(format!("{path}.values: must not be empty for In and NotIn"));
                }
                if req.operator == "In" { Op::In } else { Op::NotIn }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errors.push(format!("{path}.values: must be empty for Exists and DoesNotExist"));
                }
                if req.operator == "Exists" { Op::Exists } else { Op::DoesNotExist }
            }
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    errors.push(format!("{path}.values: Gt and Lt need exactly one value"));
                }
                let mut bound = 0;
                for (i, v) in values.iter().enumerate() {
                    match v.parse::<i64>() {
                        Ok(n) => bound = n,
                        Err(_) => errors.push(format!(
                            "{path}.values[{i}]: invalid value {v:?}: Gt and Lt need an integer"
                        )),
                    }
                }
                if req.operator == "Gt" { Op::Gt(bound) } else { Op::Lt(bound) }
            }
            other => {
                // Kubernetes reports only this for an unknown operator.
                return Err(vec![format!(
                    "{path}.operator: unsupported value {other:?}: supported values are {OPERATORS}"
                )]);
            }
        };
        for (i, v) in values.iter().enumerate() {
            if let Err(why) = label_value(v) {
                errors.push(format!("{path}.values[{i}]: invalid value {v:?}: {why}"));
            }
        }
        if errors.is_empty() { Ok(Self { key: &req.key, op, values }) } else { Err(errors) }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let have = labels.get(self.key);
        match self.op {
            Op::In => have.is_some_and(|v| self.values.contains(v)),
            Op::NotIn => have.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => have.is_some(),
            Op::DoesNotExist => have.is_none(),
            // A label that is not an integer satisfies neither.
            Op::Gt(bound) => have.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n > bound),
            Op::Lt(bound) => have.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n < bound),
        }
    }
}

struct FieldRequirement<'a> {
    key: &'a str,
    equal: bool,
    value: &'a str,
}

impl<'a> FieldRequirement<'a> {
    fn parse(req: &'a NodeSelectorRequirement, path: &str) -> Result<Self, String> {
        let values = req.values.as_deref().unwrap_or_default();
        let equal = match req.operator.as_str() {
            "In" => true,
            "NotIn" => false,
            other => {
                return Err(format!(
                    "{path}.operator: unsupported value {other:?}: supported values are In, NotIn"
                ));
            }
        };
        match values {
            [value] => Ok(Self { key: &req.key, equal, value }),
            _ => Err(format!("{path}.values: must have one element")),
        }
    }

    /// A field other than `metadata.name` reads as empty, as in Kubernetes' field sets.
    fn matches(&self, node_name: &str) -> bool {
        let have = if self.key == "metadata.name" { node_name } else { "" };
        (have == self.value) == self.equal
    }
}

fn name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() && b.iter().all(inner),
        _ => false,
    }
}

fn dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => *f != b'-' && *l != b'-' && b.iter().all(ok),
                _ => false,
            }
        })
}

/// Kubernetes' qualified name (a label key): an optional DNS subdomain prefix and `/`,
/// then 1 to 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
pub(super) fn qualified_name(s: &str) -> Result<(), &'static str> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty");
        }
        if !dns1123_subdomain(prefix) {
            return Err("prefix part must be a lowercase DNS subdomain");
        }
    }
    if name.is_empty() {
        return Err("name part must be non-empty");
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters");
    }
    if !name_part(name) {
        return Err(
            "name part must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric",
        );
    }
    Ok(())
}

/// Kubernetes' label value: empty, or up to 63 alphanumerics, `-`, `_` or `.`,
/// starting and ending alphanumeric.
fn label_value(s: &str) -> Result<(), &'static str> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters");
    }
    if !s.is_empty() && !name_part(s) {
        return Err("must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric");
    }
    Ok(())
}
