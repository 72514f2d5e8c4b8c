//! kube-apiserver's default columns for built-in kinds (`pkg/printers/internalversion`
//! in Kubernetes), for the kinds the simulator serves; ages as `HumanDuration` prints
//! them.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::Column;

/// The columns of `group/plural` after Name, or `None` for the defaults.
pub(super) fn columns(group: &str, plural: &str) -> Option<Vec<Column>> {
    let s = "string";
    let i = "integer";
    let cols: Vec<Column> = match (group, plural) {
        ("", "pods") => vec![
            Column::new("Ready", s, 0, pod_ready),
            Column::new("Status", s, 0, pod_status),
            Column::new("Restarts", s, 0, pod_restarts),
            Column::new("Age", s, 0, age),
            Column::new("IP", s, 1, |o| none_if_empty(&o["status"]["podIP"])),
            Column::new("Node", s, 1, |o| none_if_empty(&o["spec"]["nodeName"])),
            Column::new("Nominated Node", s, 1, |o| none_if_empty(&o["status"]["nominatedNodeName"])),
            Column::new("Readiness Gates", s, 1, pod_gates),
        ],
        ("", "namespaces") => {
            vec![Column::new("Status", s, 0, |o| o["status"]["phase"].clone()), Column::new("Age", s, 0, age)]
        }
        ("", "nodes") => vec![
            Column::new("Status", s, 0, node_status),
            Column::new("Roles", s, 0, node_roles),
            Column::new("Age", s, 0, age),
            Column::new("Version", s, 0, |o| o["status"]["nodeInfo"]["kubeletVersion"].clone()),
            Column::new("Internal-IP", s, 1, |o| node_address(o, "InternalIP")),
            Column::new("External-IP", s, 1, |o| node_address(o, "ExternalIP")),
            Column::new("OS-Image", s, 1, |o| o["status"]["nodeInfo"]["osImage"].clone()),
            Column::new("Kernel-Version", s, 1, |o| o["status"]["nodeInfo"]["kernelVersion"].clone()),
            Column::new("Container-Runtime", s, 1, |o| {
                o["status"]["nodeInfo"]["containerRuntimeVersion"].clone()
            }),
        ],
        ("", "configmaps") => vec![
            Column::new("Data", i, 0, |o| json!(count(&o["data"]) + count(&o["binaryData"]))),
            Column::new("Age", s, 0, age),
        ],
        ("", "secrets") => vec![
            Column::new("Type", s, 0, |o| o["type"].clone()),
            Column::new("Data", i, 0, |o| json!(count(&o["data"]))),
            Column::new("Age", s, 0, age),
        ],
        ("", "serviceaccounts") => {
            vec![Column::new("Secrets", i, 0, |o| json!(count(&o["secrets"]))), Column::new("Age", s, 0, age)]
        }
        ("", "services") => vec![
            Column::new("Type", s, 0, |o| o["spec"]["type"].clone()),
            Column::new("Cluster-IP", s, 0, |o| none_if_empty(&o["spec"]["clusterIP"])),
            Column::new("External-IP", s, 0, |o| {
                none_if_empty(&Value::String(strings(&o["spec"]["externalIPs"]).join(",")))
            }),
            Column::new("Port(s)", s, 0, service_ports),
            Column::new("Age", s, 0, age),
            Column::new("Selector", s, 1, |o| none_if_empty(&Value::String(pairs(&o["spec"]["selector"])))),
        ],
        ("", "endpoints") => vec![Column::new("Endpoints", s, 0, endpoints), Column::new("Age", s, 0, age)],
        ("", "events") => vec![
            Column::new("Last Seen", s, 0, |o| {
                age_of(o["lastTimestamp"].as_str().or(o["eventTime"].as_str()))
            }),
            Column::new("Type", s, 0, |o| o["type"].clone()),
            Column::new("Reason", s, 0, |o| o["reason"].clone()),
            Column::new("Object", s, 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["involvedObject"]["kind"].as_str().unwrap_or_default().to_lowercase(),
                    o["involvedObject"]["name"].as_str().unwrap_or_default()
                ))
            }),
            Column::new("Message", s, 0, |o| o["message"].clone()),
        ],
        ("", "persistentvolumeclaims") => vec![
            Column::new("Status", s, 0, |o| o["status"]["phase"].clone()),
            Column::new("Volume", s, 0, |o| o["spec"]["volumeName"].clone()),
            Column::new("Capacity", s, 0, |o| o["status"]["capacity"]["storage"].clone()),
            Column::new("Access Modes", s, 0, |o| json!(strings(&o["status"]["accessModes"]).join(","))),
            Column::new("StorageClass", s, 0, |o| o["spec"]["storageClassName"].clone()),
            Column::new("Age", s, 0, age),
        ],
        ("apps", "deployments") => vec![
            Column::new("Ready", s, 0, |o| ratio(&o["status"]["readyReplicas"], &o["spec"]["replicas"])),
            Column::new("Up-to-date", i, 0, |o| num(&o["status"]["updatedReplicas"])),
            Column::new("Available", i, 0, |o| num(&o["status"]["availableReplicas"])),
            Column::new("Age", s, 0, age),
            Column::new("Containers", s, 1, |o| containers(o, "name")),
            Column::new("Images", s, 1, |o| containers(o, "image")),
            Column::new("Selector", s, 1, selector),
        ],
        ("apps", "replicasets") => vec![
            Column::new("Desired", i, 0, |o| num(&o["spec"]["replicas"])),
            Column::new("Current", i, 0, |o| num(&o["status"]["replicas"])),
            Column::new("Ready", i, 0, |o| num(&o["status"]["readyReplicas"])),
            Column::new("Age", s, 0, age),
            Column::new("Containers", s, 1, |o| containers(o, "name")),
            Column::new("Images", s, 1, |o| containers(o, "image")),
            Column::new("Selector", s, 1, selector),
        ],
        ("apps", "statefulsets") => vec![
            Column::new("Ready", s, 0, |o| ratio(&o["status"]["readyReplicas"], &o["spec"]["replicas"])),
            Column::new("Age", s, 0, age),
            Column::new("Containers", s, 1, |o| containers(o, "name")),
            Column::new("Images", s, 1, |o| containers(o, "image")),
        ],
        ("apps", "daemonsets") => vec![
            Column::new("Desired", i, 0, |o| num(&o["status"]["desiredNumberScheduled"])),
            Column::new("Current", i, 0, |o| num(&o["status"]["currentNumberScheduled"])),
            Column::new("Ready", i, 0, |o| num(&o["status"]["numberReady"])),
            Column::new("Up-to-date", i, 0, |o| num(&o["status"]["updatedNumberScheduled"])),
            Column::new("Available", i, 0, |o| num(&o["status"]["numberAvailable"])),
            Column::new("Node Selector", s, 0, |o| {
                none_if_empty(&Value::String(pairs(&o["spec"]["template"]["spec"]["nodeSelector"])))
            }),
            Column::new("Age", s, 0, age),
            Column::new("Containers", s, 1, |o| containers(o, "name")),
            Column::new("Images", s, 1, |o| containers(o, "image")),
            Column::new("Selector", s, 1, selector),
        ],
        ("apps", "controllerrevisions") => vec![
            Column::new("Controller", s, 0, |o| {
                let owner = o["metadata"]["ownerReferences"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["controller"] == true));
                owner.map_or(json!("<none>"), |r| {
                    let group =
                        r["apiVersion"].as_str().unwrap_or_default().split('/').next().unwrap_or_default();
                    let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
                    let kind = if r["apiVersion"].as_str().unwrap_or_default().contains('/') {
                        format!("{kind}.{group}")
                    } else {
                        kind
                    };
                    json!(format!("{kind}/{}", r["name"].as_str().unwrap_or_default()))
                })
            }),
            Column::new("Revision", i, 0, |o| num(&o["revision"])),
            Column::new("Age", s, 0, age),
        ],
        ("batch", "jobs") => vec![
            Column::new("Status", s, 0, job_status),
            Column::new("Completions", s, 0, |o| ratio(&o["status"]["succeeded"], &o["spec"]["completions"])),
            Column::new("Duration", s, 0, job_duration),
            Column::new("Age", s, 0, age),
            Column::new("Containers", s, 1, |o| containers(o, "name")),
            Column::new("Images", s, 1, |o| containers(o, "image")),
            Column::new("Selector", s, 1, selector),
        ],
        ("batch", "cronjobs") => vec![
            Column::new("Schedule", s, 0, |o| o["spec"]["schedule"].clone()),
            Column::new("Timezone", s, 0, |o| none_if_empty(&o["spec"]["timeZone"])),
            Column::new("Suspend", s, 0, |o| json!(plain(&o["spec"]["suspend"], "False"))),
            Column::new("Active", i, 0, |o| json!(count(&o["status"]["active"]))),
            Column::new("Last Schedule", s, 0, |o| age_of(o["status"]["lastScheduleTime"].as_str())),
            Column::new("Age", s, 0, age),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![
                Column::new("Holder", s, 0, |o| o["spec"]["holderIdentity"].clone()),
                Column::new("Age", s, 0, age),
            ]
        }
        ("policy", "poddisruptionbudgets") => vec![
            Column::new("Min Available", s, 0, |o| na(&o["spec"]["minAvailable"])),
            Column::new("Max Unavailable", s, 0, |o| na(&o["spec"]["maxUnavailable"])),
            Column::new("Allowed Disruptions", i, 0, |o| num(&o["status"]["disruptionsAllowed"])),
            Column::new("Age", s, 0, age),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![Column::new("Created At", "date", 0, |o| o["metadata"]["creationTimestamp"].clone())]
        }
        ("", "persistentvolumes")
        | ("events.k8s.io", _)
        | ("rbac.authorization.k8s.io", _)
        | ("scheduling.k8s.io", _)
        | ("storage.k8s.io", _)
        | ("discovery.k8s.io", _)
        | ("admissionregistration.k8s.io", _) => vec![Column::new("Age", s, 0, age)],
        _ => return None,
    };
    Some(std::iter::once(Column::name_column()).chain(cols).collect())
}

fn plain(v: &Value, default: &str) -> String {
    match v {
        Value::Null => default.into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn none_if_empty(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if !s.is_empty() => Value::String(s.into()),
        _ => json!("<none>"),
    }
}

fn na(v: &Value) -> Value {
    if v.is_null() { json!("N/A") } else { json!(plain(v, "N/A")) }
}

fn num(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn count(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).or_else(|| v.as_array().map(Vec::len)).unwrap_or(0)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

fn pairs(v: &Value) -> String {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn ratio(have: &Value, want: &Value) -> Value {
    json!(format!("{}/{}", have.as_i64().unwrap_or(0), want.as_i64().unwrap_or(1)))
}

fn containers(o: &Value, field: &str) -> Value {
    let list = o["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
    json!(list.iter().filter_map(|c| c[field].as_str()).collect::<Vec<_>>().join(","))
}

fn selector(o: &Value) -> Value {
    let sel = &o["spec"]["selector"];
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let (k, op) = (e["key"].as_str().unwrap_or_default(), e["operator"].as_str().unwrap_or_default());
        let vals = strings(&e["values"]).join(",");
        parts.push(match op {
            "In" => format!("{k} in ({vals})"),
            "NotIn" => format!("{k} notin ({vals})"),
            "Exists" => k.to_string(),
            _ => format!("!{k}"),
        });
    }
    none_if_empty(&Value::String(parts.join(",")))
}

fn age(o: &Value) -> Value {
    age_of(o["metadata"]["creationTimestamp"].as_str())
}

pub(super) fn age_of(t: Option<&str>) -> Value {
    let Some(t) = t.and_then(|t| t.parse::<Timestamp>().ok()) else { return json!("<unknown>") };
    json!(human_duration(Timestamp::now().as_second() - t.as_second()))
}

/// Kubernetes' `HumanDuration` of a number of seconds.
pub(super) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return if secs % 60 == 0 { format!("{minutes}m") } else { format!("{minutes}m{}s", secs % 60) };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return if minutes % 60 == 0 { format!("{hours}h") } else { format!("{hours}h{}m", minutes % 60) };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return if hours % 24 == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, hours % 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let (years, days) = (hours / 24 / 365, (hours / 24) % 365);
    if hours < 24 * 365 * 8 && days != 0 { format!("{years}y{days}d") } else { format!("{years}y") }
}

fn pod_ready(o: &Value) -> Value {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ready"] == true)
        .count();
    json!(format!("{ready}/{total}"))
}

fn pod_restarts(o: &Value) -> Value {
    let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let n: i64 = statuses.iter().filter_map(|c| c["restartCount"].as_i64()).sum();
    let last = statuses.iter().filter_map(|c| c["lastState"]["terminated"]["finishedAt"].as_str()).max();
    match last {
        Some(t) if n > 0 => json!(format!("{n} ({} ago)", age_of(Some(t)).as_str().unwrap_or_default())),
        _ => json!(n.to_string()),
    }
}

/// The pod's STATUS column, as kubectl's printer derives it.
fn pod_status(o: &Value) -> Value {
    let st = &o["status"];
    let mut reason = st["reason"].as_str().or(st["phase"].as_str()).unwrap_or_default().to_string();
    let inits = st["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    let n_init = o["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let term = &c["state"]["terminated"];
        if term["exitCode"] == 0 && term.is_object() {
            continue;
        }
        initializing = true;
        reason = if let Some(r) = term["reason"].as_str() {
            format!("Init:{r}")
        } else if let Some(r) = c["state"]["waiting"]["reason"].as_str().filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{n_init}")
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in st["containerStatuses"].as_array().into_iter().flatten().rev() {
            if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
                reason = r.into();
            } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
                reason = r.into();
            } else if c["state"]["running"].is_object() && c["ready"] == true {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if o["metadata"]["deletionTimestamp"].is_string() {
        reason = if st["reason"] == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    json!(reason)
}

fn pod_gates(o: &Value) -> Value {
    let gates = o["spec"]["readinessGates"].as_array().cloned().unwrap_or_default();
    if gates.is_empty() {
        return json!("<none>");
    }
    let conds = o["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let ok = gates
        .iter()
        .filter(|g| conds.iter().any(|c| c["type"] == g["conditionType"] && c["status"] == "True"))
        .count();
    json!(format!("{ok}/{}", gates.len()))
}

fn node_status(o: &Value) -> Value {
    let ready = o["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
    let mut s = match ready.map(|c| &c["status"]) {
        Some(v) if v == "True" => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if o["spec"]["unschedulable"] == true {
        s.push_str(",SchedulingDisabled");
    }
    json!(s)
}

fn node_roles(o: &Value) -> Value {
    let roles: Vec<&str> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    if roles.is_empty() { json!("<none>") } else { json!(roles.join(",")) }
}

fn node_address(o: &Value, ty: &str) -> Value {
    let a = o["status"]["addresses"].as_array().into_iter().flatten().find(|a| a["type"] == ty);
    none_if_empty(&a.map_or(Value::Null, |a| a["address"].clone()))
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    none_if_empty(&Value::String(ports.join(",")))
}

fn endpoints(o: &Value) -> Value {
    let mut out = Vec::new();
    for s in o["subsets"].as_array().into_iter().flatten() {
        for a in s["addresses"].as_array().into_iter().flatten() {
            for p in s["ports"].as_array().into_iter().flatten() {
                out.push(format!("{}:{}", a["ip"].as_str().unwrap_or_default(), p["port"]));
            }
        }
    }
    none_if_empty(&Value::String(out.join(",")))
}

fn job_status(o: &Value) -> Value {
    let conds = o["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    })
}

fn job_duration(o: &Value) -> Value {
    let start = o["status"]["startTime"].as_str().and_then(|t| t.parse::<Timestamp>().ok());
    let Some(start) = start else { return json!("") };
    let end = o["status"]["completionTime"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .unwrap_or_else(Timestamp::now);
    json!(human_duration(end.as_second() - start.as_second()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn pod_columns() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
                         "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                             {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                             {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let cols = columns("", "pods").unwrap();
        let cells: Vec<Value> = cols.iter().map(|c| c.cell(&pod)).collect();
        assert_eq!(cells[..4], [json!("p"), json!("1/2"), json!("CrashLoopBackOff"), json!("0")]);
        assert_eq!(cells[5..7], [json!("10.0.0.1"), json!("n1")]);
    }
}
