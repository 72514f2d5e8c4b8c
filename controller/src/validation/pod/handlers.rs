//! Probes and lifecycle handlers (`validateProbe`, `validateLivenessProbe`,
//! `validateReadinessProbe`, `validateStartupProbe`, `validateLifecycle`,
//! `validateHandler`).

use k8s_openapi::{
    api::core::v1::{
        Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, SleepAction,
        TCPSocketAction,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    super::{
        FieldError,
        field::{forbidden, invalid, not_supported, required},
        rules,
    },
    containers::{port_name, port_number},
};

/// The handler of a probe or of a lifecycle hook, one field per kind.
struct Handler<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<&'a SleepAction>,
}

impl<'a> From<&'a Probe> for Handler<'a> {
    fn from(p: &'a Probe) -> Self {
        Self {
            exec: p.exec.as_ref(),
            http_get: p.http_get.as_ref(),
            tcp_socket: p.tcp_socket.as_ref(),
            grpc: p.grpc.as_ref(),
            sleep: None,
        }
    }
}

impl<'a> From<&'a LifecycleHandler> for Handler<'a> {
    fn from(h: &'a LifecycleHandler) -> Self {
        Self {
            exec: h.exec.as_ref(),
            http_get: h.http_get.as_ref(),
            tcp_socket: h.tcp_socket.as_ref(),
            grpc: None,
            sleep: h.sleep.as_ref(),
        }
    }
}

/// A container's lifecycle hooks and its three probes.
pub fn lifecycle_and_probes(at: &str, c: &Container, grace: Option<i64>, errors: &mut Vec<FieldError>) {
    if let Some(l) = &c.lifecycle {
        for (name, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            if let Some(h) = hook {
                handler(&format!("{at}.lifecycle.{name}"), &h.into(), grace, errors);
            }
        }
    }
    for (name, probe_of) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(p) = probe_of else { continue };
        let pat = format!("{at}.{name}");
        probe(&pat, p, grace, errors);
        if name != "readinessProbe" && p.success_threshold.unwrap_or(1) != 1 {
            errors.push(invalid(&format!("{pat}.successThreshold"), p.success_threshold, "must be 1"));
        }
        if name == "readinessProbe" && p.termination_grace_period_seconds.is_some() {
            errors.push(invalid(
                &format!("{pat}.terminationGracePeriodSeconds"),
                p.termination_grace_period_seconds,
                "must not be set for readinessProbes",
            ));
        }
    }
}

/// `validateProbe`: one handler, non-negative timings, a positive
/// terminationGracePeriodSeconds.
fn probe(at: &str, p: &Probe, grace: Option<i64>, errors: &mut Vec<FieldError>) {
    handler(at, &p.into(), grace, errors);
    for (name, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = value {
            rules::non_negative(&format!("{at}.{name}"), v.into(), errors);
        }
    }
    if let Some(t) = p.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errors.push(invalid(&format!("{at}.terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
}

/// `validateHandler`: exactly one handler kind, each well-formed.
fn handler(at: &str, h: &Handler<'_>, grace: Option<i64>, errors: &mut Vec<FieldError>) {
    let mut handlers = 0;
    let mut one = |name: &str, set: bool, errors: &mut Vec<FieldError>| {
        if !set {
            return false;
        }
        if handlers > 0 {
            errors.push(forbidden(&format!("{at}.{name}"), "may not specify more than 1 handler type"));
            return false;
        }
        handlers += 1;
        true
    };
    if one("exec", h.exec.is_some(), errors)
        && h.exec.is_some_and(|e| e.command.as_ref().is_none_or(Vec::is_empty))
    {
        errors.push(required(&format!("{at}.exec.command"), ""));
    }
    if one("httpGet", h.http_get.is_some(), errors)
        && let Some(get) = h.http_get
    {
        http_get(&format!("{at}.httpGet"), get, errors);
    }
    if one("tcpSocket", h.tcp_socket.is_some(), errors)
        && let Some(tcp) = h.tcp_socket
    {
        port_num_or_name(&format!("{at}.tcpSocket.port"), &tcp.port, errors);
    }
    if one("grpc", h.grpc.is_some(), errors)
        && let Some(g) = h.grpc
        && let Some(reason) = port_number(g.port)
    {
        errors.push(invalid(&format!("{at}.grpc.port"), g.port, reason));
    }
    if one("sleep", h.sleep.is_some(), errors)
        && let Some(s) = h.sleep
    {
        let limit = grace.unwrap_or(30);
        if s.seconds < 0 || s.seconds > limit {
            errors.push(invalid(
                &format!("{at}.sleep.seconds"),
                s.seconds,
                format!(
                    "must be non-negative and not more than the pod's termination grace period ({limit}s)"
                ),
            ));
        }
    }
    if handlers == 0 {
        errors.push(required(at, "must specify a handler type"));
    }
}

/// `validateHTTPGetAction`: a path, a port by number or name, scheme HTTP or HTTPS.
fn http_get(at: &str, get: &HTTPGetAction, errors: &mut Vec<FieldError>) {
    if get.path.as_deref().unwrap_or_default().is_empty() {
        errors.push(required(&format!("{at}.path"), ""));
    }
    port_num_or_name(&format!("{at}.port"), &get.port, errors);
    let scheme = get.scheme.as_deref().unwrap_or_default();
    if !matches!(scheme, "HTTP" | "HTTPS") {
        errors.push(not_supported(&format!("{at}.scheme"), scheme, &["HTTP", "HTTPS"]));
    }
}

/// `ValidatePortNumOrName`.
fn port_num_or_name(at: &str, port: &IntOrString, errors: &mut Vec<FieldError>) {
    match port {
        IntOrString::Int(n) => {
            if let Some(reason) = port_number(*n) {
                errors.push(invalid(at, n, reason));
            }
        }
        IntOrString::String(name) => {
            if let Some(reason) = port_name(name) {
                errors.push(invalid(at, name, reason));
            }
        }
    }
}
