//! A CloneSet's status from its pods (OpenKruise v1.9.0 `cloneset_status.go`).

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, Time},
    jiff::Timestamp,
};
use stevedore_proto::crd::clone_set::{CloneSet, CloneSetCondition, CloneSetStatus};

use super::pods;

/// A selector as `kubectl` and the scale subresource print it
/// (`metav1.LabelSelectorAsSelector(..).String()`): requirements sorted by key.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({})", e.key, values.join(",")),
        };
        reqs.push((e.key.clone(), text));
    }
    reqs.sort();
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

/// The counts of `active` pods; `update` is the update revision's name, `current` the
/// current one's (it becomes `update` once every pod is updated and there are as
/// many pods as replicas).
pub fn compute(
    cs: &CloneSet,
    active: &[&Pod],
    update: &str,
    current: &str,
    now: Timestamp,
) -> CloneSetStatus {
    let old = cs.status.clone().unwrap_or_default();
    let replicas = cs.spec.replicas.unwrap_or(1);
    let min_ready = cs.spec.min_ready_seconds.unwrap_or(0);
    let count =
        |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let is_updated = |p: &Pod| pods::on_revision(p, update);
    let is_available = |p: &Pod| pods::available(p, min_ready, now).0;
    let updated = count(&is_updated);
    let partition = super::partition(cs);
    let all_updated = updated == i32::try_from(active.len()).unwrap_or(i32::MAX) && updated == replicas;
    CloneSetStatus {
        observed_generation: cs.metadata.generation,
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        ready_replicas: count(&pods::is_ready),
        available_replicas: count(&is_available),
        updated_replicas: updated,
        updated_ready_replicas: count(&|p| is_updated(p) && pods::is_ready(p)),
        updated_available_replicas: Some(count(&|p| is_updated(p) && is_available(p))),
        expected_updated_replicas: Some(replicas - i32::try_from(partition).unwrap_or(0)),
        update_revision: Some(update.to_owned()),
        current_revision: Some(if all_updated { update.to_owned() } else { current.to_owned() }),
        collision_count: old.collision_count,
        label_selector: Some(selector_string(&cs.spec.selector)),
        conditions: old.conditions,
    }
}

/// Sets (or clears, with `message: None`) the condition `type_` in `status`.
pub fn set_condition(
    status: &mut CloneSetStatus,
    type_: &str,
    reason: &str,
    message: Option<String>,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let Some(message) = message else {
        conditions.retain(|c| c.type_ != type_);
        return;
    };
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.message.as_deref() != Some(&message) || c.reason.as_deref() != Some(reason) {
            c.reason = Some(reason.to_owned());
            c.message = Some(message);
            c.last_update_time = Some(Time(now));
        }
        return;
    }
    conditions.push(CloneSetCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
        reason: Some(reason.to_owned()),
        message: Some(message),
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_print_as_kubernetes_does() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"}
            ]
        }))
        .unwrap();
        assert_eq!(selector_string(&sel), "app=web,!canary,tier in (a,b),zone");
    }
}
