//! OpenKruise's pod lifecycle (`lifecycle.apps.kruise.io/state`) and its hooks, as
//! CloneSet, Advanced StatefulSet and Advanced DaemonSet use them: a hook holds a pod
//! at a point of its life while any of its labels (with their values) or finalizers
//! is on it. Shared by the CloneSet controller and the agent (DaemonSet `preDelete`).

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::ResourceExt as _;

use crate::{crd::common::LifecycleHook, keys};

/// Lifecycle states.
pub mod state {
    /// Created, waiting for its preNormal hooks.
    pub const PREPARING_NORMAL: &str = "PreparingNormal";
    /// Serving.
    pub const NORMAL: &str = "Normal";
    /// Waiting for its inPlaceUpdate hooks to let go before an update.
    pub const PREPARING_UPDATE: &str = "PreparingUpdate";
    /// Being updated in place.
    pub const UPDATING: &str = "Updating";
    /// Updated, waiting for its inPlaceUpdate hooks to come back.
    pub const UPDATED: &str = "Updated";
    /// Waiting for its preDelete hooks to let go.
    pub const PREPARING_DELETE: &str = "PreparingDelete";
}

/// The pod's lifecycle state label, `""` when it has none.
pub fn current_state(pod: &Pod) -> &str {
    pod.labels().get(keys::LIFECYCLE_STATE).map_or("", String::as_str)
}

/// Whether `hook` holds the pod: any of its labels (with value) or finalizers present.
pub fn hooked(pod: &Pod, hook: Option<&LifecycleHook>) -> bool {
    let Some(h) = hook else { return false };
    let labels = pod.labels();
    h.labels_handler.iter().flatten().any(|(k, v)| labels.get(k) == Some(v))
        || h.finalizers_handler.iter().flatten().any(|f| pod.finalizers().contains(f))
}

/// Whether every label and finalizer of `hook` is on the pod (a hook with none never
/// holds).
pub fn all_hooked(pod: &Pod, hook: Option<&LifecycleHook>) -> bool {
    let Some(h) = hook else { return true };
    let labels = pod.labels();
    h.labels_handler.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        && h.finalizers_handler.iter().flatten().all(|f| pod.finalizers().contains(f))
}

/// A merge patch setting the lifecycle state label and its timestamp annotation.
pub fn state_patch(state: &str, now: Timestamp) -> serde_json::Value {
    serde_json::json!({"metadata": {
        "labels": {keys::LIFECYCLE_STATE: state},
        "annotations": {keys::LIFECYCLE_TIMESTAMP: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
    }})
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;

    #[test]
    fn any_label_or_finalizer_holds_and_all_of_them_hook() {
        let hook = LifecycleHook {
            labels_handler: Some([("hold".to_owned(), "true".to_owned())].into()),
            finalizers_handler: Some(vec!["example.com/drain".into()]),
            ..LifecycleHook::default()
        };
        let pod = |labels: &[(&str, &str)], finalizers: &[&str]| Pod {
            metadata: ObjectMeta {
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                finalizers: Some(finalizers.iter().map(|f| (*f).to_owned()).collect()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let none = pod(&[], &[]);
        let label = pod(&[("hold", "true")], &[]);
        let other_value = pod(&[("hold", "false")], &[]);
        let both = pod(&[("hold", "true")], &["example.com/drain"]);
        assert!(!hooked(&none, Some(&hook)) && !hooked(&other_value, Some(&hook)));
        assert!(hooked(&label, Some(&hook)) && hooked(&both, Some(&hook)));
        assert!(!hooked(&both, None), "no hook holds nothing");
        assert!(!all_hooked(&label, Some(&hook)) && all_hooked(&both, Some(&hook)));
        assert!(all_hooked(&none, None));
        let patch = state_patch(state::PREPARING_DELETE, Timestamp::UNIX_EPOCH);
        assert_eq!(patch["metadata"]["labels"][keys::LIFECYCLE_STATE], "PreparingDelete");
        assert_eq!(patch["metadata"]["annotations"][keys::LIFECYCLE_TIMESTAMP], "1970-01-01T00:00:00Z");
        assert_eq!(current_state(&pod(&[(keys::LIFECYCLE_STATE, "Normal")], &[])), "Normal");
        assert_eq!(current_state(&none), "");
    }
}
