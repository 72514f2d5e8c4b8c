//! Taints against tolerations, with the matching rules of `k8s.io/api` v0.32 (the
//! version OpenKruise v1.9.0 builds with: no numeric toleration operators yet).

use k8s_openapi::api::core::v1::{PodSpec, Taint, Toleration};

/// `NoSchedule`: new pods that do not tolerate the taint are not placed.
pub(super) const NO_SCHEDULE: &str = "NoSchedule";
/// `NoExecute`: pods that do not tolerate the taint are not placed, and running ones go.
pub(super) const NO_EXECUTE: &str = "NoExecute";

/// The taint the node controller puts on a node whose Ready condition is False.
pub(super) const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint the node controller puts on a node whose Ready condition is Unknown.
pub(super) const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint for the DiskPressure condition.
pub(super) const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The taint for the MemoryPressure condition.
pub(super) const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The taint for the PIDPressure condition.
pub(super) const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The taint for `spec.unschedulable: true`.
pub(super) const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint for the NetworkUnavailable condition.
pub(super) const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Whether `toleration` tolerates `taint`: an empty effect matches every effect, an
/// empty key every key; operator `Exists` matches any value, `Equal` (or no operator)
/// the same value, and any other operator nothing.
pub(super) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = text(&toleration.effect);
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = text(&toleration.key);
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match text(&toleration.operator) {
        "" | "Equal" => text(&toleration.value) == text(&taint.value),
        "Exists" => true,
        _ => false,
    }
}

/// The first taint (in the node's order) whose effect `include` accepts and that no
/// toleration tolerates.
pub(super) fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    include: impl Fn(&str) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|taint| include(&taint.effect))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some(effect.to_owned()),
        ..Toleration::default()
    }
}

/// The tolerations every DaemonSet pod gets, in the order Kubernetes adds them.
pub(super) fn daemon_defaults(host_network: bool) -> Vec<Toleration> {
    let mut defaults = vec![
        exists(NOT_READY, NO_EXECUTE),
        exists(UNREACHABLE, NO_EXECUTE),
        exists(DISK_PRESSURE, NO_SCHEDULE),
        exists(MEMORY_PRESSURE, NO_SCHEDULE),
        exists(PID_PRESSURE, NO_SCHEDULE),
        exists(UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if host_network {
        defaults.push(exists(NETWORK_UNAVAILABLE, NO_SCHEDULE));
    }
    defaults
}

/// Same key, effect, operator and value (`tolerationSeconds` aside); an absent field
/// equals an empty one.
fn same_match(a: &Toleration, b: &Toleration) -> bool {
    text(&a.key) == text(&b.key)
        && text(&a.effect) == text(&b.effect)
        && text(&a.operator) == text(&b.operator)
        && text(&a.value) == text(&b.value)
}

/// Adds `toleration` to `spec` the way Kubernetes' `AddOrUpdateTolerationInPodSpec`
/// does: nothing changes if an identical toleration is there; otherwise every
/// toleration that matches the same taints (whatever its `tolerationSeconds`) is
/// replaced by it, and it is appended if there was none.
pub(super) fn add_or_update(spec: &mut PodSpec, toleration: Toleration) {
    let existing = spec.tolerations.get_or_insert_with(Vec::new);
    if existing
        .iter()
        .any(|t| same_match(t, &toleration) && t.toleration_seconds == toleration.toleration_seconds)
    {
        return;
    }
    let mut replaced = false;
    for t in existing.iter_mut() {
        if same_match(t, &toleration) {
            *t = toleration.clone();
            replaced = true;
        }
    }
    if !replaced {
        existing.push(toleration);
    }
}
