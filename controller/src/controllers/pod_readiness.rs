//! Not-ready keys on a pod's `KruisePodReady` condition, as OpenKruise's
//! `pkg/util/podreadiness` keeps them: the condition's message is a JSON list
//! `[{userAgent, key}]` sorted by user agent then key, and the condition is False
//! while the list is not empty. Only pods with the `KruisePodReady` readiness gate
//! are touched. Adding a key also recomputes the pod's Ready condition (False when a
//! readiness gate is not True), as OpenKruise does; removing one leaves Ready to the
//! kubelet, which recomputes it from the gates.

use k8s_openapi::{
    api::core::v1::{Pod, PodCondition},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::Client;
use serde::{Deserialize, Serialize};
pub use stevedore_proto::pod_write::{
    RefreshError, Refreshed, edit_pod, edit_status, mark_in_place_ready, recompute_ready, refresh_in_place,
};
use stevedore_proto::{keys::KRUISE_POD_READY, pod_write::condition};

/// One entry of the list: who holds the pod not ready, and under which key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The writer (`ContainerRecreateRequest`, `Lifecycle`).
    pub user_agent: String,
    /// Its key (`<namespace>/<name>` for a ContainerRecreateRequest).
    pub key: String,
}

/// Whether `pod` has the `KruisePodReady` readiness gate.
pub fn has_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|gs| gs.iter().any(|g| g.condition_type == KRUISE_POD_READY))
}

fn parse(message: &str) -> Vec<Message> {
    // an unreadable message counts as empty, as OpenKruise reads it
    if message.is_empty() { Vec::new() } else { serde_json::from_str(message).unwrap_or_default() }
}

fn dump(mut list: Vec<Message>) -> String {
    list.sort();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

/// `message` with `msg` added, or `None` when it is there already.
pub fn with_key(message: &str, msg: &Message) -> Option<String> {
    let mut list = parse(message);
    if list.contains(msg) {
        return None;
    }
    list.push(msg.clone());
    Some(dump(list))
}

/// `message` without `msg` and whether the list is now empty, or `None` when it was
/// not there.
pub fn without_key(message: &str, msg: &Message) -> Option<(String, bool)> {
    let list = parse(message);
    let kept: Vec<Message> = list.iter().filter(|m| *m != msg).cloned().collect();
    if kept.len() == list.len() {
        return None;
    }
    let empty = kept.is_empty();
    Some((dump(kept), empty))
}

/// Adds `msg` to `pod`'s `KruisePodReady` condition (creating it, False) and
/// recomputes Ready; `false` when nothing changed (no gate, or the key is held).
pub fn add_to_pod(pod: &mut Pod, msg: &Message, now: Timestamp) -> bool {
    if !has_gate(pod) {
        return false;
    }
    match condition(pod, KRUISE_POD_READY) {
        Some(c) => {
            let base = c.message.clone().unwrap_or_default();
            let message = match with_key(&base, msg) {
                Some(message) => message,
                // held already: only a condition left True (by a stale writer) changes
                None if c.status != "False" => base,
                None => return false,
            };
            c.status = "False".into();
            c.message = Some(message);
            c.last_transition_time = Some(Time(now));
        }
        None => {
            let conditions = pod.status.get_or_insert_default().conditions.get_or_insert_default();
            conditions.push(PodCondition {
                type_: KRUISE_POD_READY.into(),
                status: "False".into(),
                message: with_key("", msg),
                last_transition_time: Some(Time(now)),
                ..PodCondition::default()
            });
        }
    }
    recompute_ready(pod, now);
    true
}

/// Removes `msg` from `pod`'s `KruisePodReady` condition, which turns True when no
/// key is left; `false` when nothing changed.
pub fn remove_from_pod(pod: &mut Pod, msg: &Message, now: Timestamp) -> bool {
    if !has_gate(pod) {
        return false;
    }
    let Some(c) = condition(pod, KRUISE_POD_READY) else { return false };
    let Some((message, empty)) = without_key(c.message.as_deref().unwrap_or_default(), msg) else {
        return false;
    };
    if empty {
        c.status = "True".into();
    }
    c.message = Some(message);
    c.last_transition_time = Some(Time(now));
    true
}

/// Adds `msg` to the pod's not-ready keys (a pod without the gate is left alone).
///
/// # Errors
/// The API server refused.
pub async fn add_not_ready_key(
    client: &Client,
    namespace: &str,
    name: &str,
    msg: &Message,
) -> Result<(), kube::Error> {
    edit_status(client, namespace, name, |pod| add_to_pod(pod, msg, Timestamp::now())).await
}

/// Removes `msg` from the pod's not-ready keys.
///
/// # Errors
/// The API server refused.
pub async fn remove_not_ready_key(
    client: &Client,
    namespace: &str,
    name: &str,
    msg: &Message,
) -> Result<(), kube::Error> {
    edit_status(client, namespace, name, |pod| remove_from_pod(pod, msg, Timestamp::now())).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(agent: &str, key: &str) -> Message {
        Message { user_agent: agent.into(), key: key.into() }
    }

    fn now() -> Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    fn pod(conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [], "readinessGates": [{"conditionType": "KruisePodReady"}]},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    fn cond(pod: &Pod, type_: &str) -> PodCondition {
        pod.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
            .clone()
    }

    #[test]
    fn keys_are_added_once_sorted_and_removed() {
        let crr = msg("ContainerRecreateRequest", "shop/b");
        let one = with_key("", &crr).unwrap();
        assert_eq!(one, r#"[{"userAgent":"ContainerRecreateRequest","key":"shop/b"}]"#);
        assert_eq!(with_key(&one, &crr), None, "already held");
        let two = with_key(&one, &msg("ContainerRecreateRequest", "shop/a")).unwrap();
        let three = with_key(&two, &msg("Lifecycle", "preDeleteHook")).unwrap();
        assert_eq!(
            three,
            r#"[{"userAgent":"ContainerRecreateRequest","key":"shop/a"},{"userAgent":"ContainerRecreateRequest","key":"shop/b"},{"userAgent":"Lifecycle","key":"preDeleteHook"}]"#
        );
        let (left, empty) = without_key(&three, &crr).unwrap();
        assert!(!empty);
        assert!(!left.contains("shop/b"));
        assert_eq!(without_key(&left, &crr), None, "not there");
        let (_, empty) = without_key(&one, &crr).unwrap();
        assert!(empty);
        assert_eq!(with_key("not json", &crr).unwrap(), one, "an unreadable list counts as empty");
    }

    #[test]
    fn adding_makes_the_pod_not_ready_and_removing_the_last_key_turns_the_condition_true() {
        let mut p = pod(json!([
            {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"},
            {"type": "KruisePodReady", "status": "True", "message": "[]"}
        ]));
        let crr = msg("ContainerRecreateRequest", "shop/r");
        assert!(add_to_pod(&mut p, &crr, now()));
        let kpr = cond(&p, "KruisePodReady");
        assert_eq!((kpr.status.as_str(), kpr.message.as_deref()), ("False", with_key("", &crr).as_deref()));
        let ready = cond(&p, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ReadinessGatesNotReady"))
        );
        assert!(!add_to_pod(&mut p, &crr, now()), "held already");
        assert!(remove_from_pod(&mut p, &crr, now()));
        let kpr = cond(&p, "KruisePodReady");
        assert_eq!((kpr.status.as_str(), kpr.message.as_deref()), ("True", Some("[]")));
        assert!(!remove_from_pod(&mut p, &crr, now()), "released already");
    }

    #[test]
    fn a_missing_condition_is_created_and_a_pod_without_the_gate_left_alone() {
        let mut p = pod(json!([]));
        let crr = msg("ContainerRecreateRequest", "shop/r");
        assert!(add_to_pod(&mut p, &crr, now()));
        assert_eq!(cond(&p, "KruisePodReady").status, "False");
        let mut ungated = pod(json!([]));
        ungated.spec.as_mut().unwrap().readiness_gates = None;
        assert!(!add_to_pod(&mut ungated, &crr, now()));
        assert!(ungated.status.unwrap().conditions.unwrap().is_empty());
    }

    #[test]
    fn another_writers_key_keeps_the_condition_false() {
        let lifecycle = msg("Lifecycle", "preDeleteHook");
        let crr = msg("ContainerRecreateRequest", "shop/r");
        let both = with_key(&with_key("", &lifecycle).unwrap(), &crr).unwrap();
        let mut p = pod(json!([{"type": "KruisePodReady", "status": "False", "message": both}]));
        assert!(remove_from_pod(&mut p, &crr, now()));
        let kpr = cond(&p, "KruisePodReady");
        assert_eq!((kpr.status.as_str(), kpr.message), ("False", with_key("", &lifecycle)));
    }
}
