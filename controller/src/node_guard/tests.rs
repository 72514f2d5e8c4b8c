use std::collections::BTreeMap;

use kube::core::admission::AdmissionReview;
use serde_json::json;

use super::*;

fn pod(name: &str, node: Option<&str>) -> DynamicObject {
    let mut spec = json!({"containers": [{"name": "app", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = node.into();
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec
    }))
    .unwrap()
}

fn crr(name: &str, node: Option<&str>) -> DynamicObject {
    let labels: BTreeMap<&str, &str> = node.map(|n| (CRR_NODE_NAME, n)).into_iter().collect();
    serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"podName": "x", "containers": [{"name": "app"}]}
    }))
    .unwrap()
}

fn named(kind: &str, name: &str) -> DynamicObject {
    let api_version = if kind == "NodeState" { "stevedore.dev/v1alpha1" } else { "apps.kruise.io/v1alpha1" };
    serde_json::from_value(json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}))
        .unwrap()
}

fn write<'a>(
    guarded: Guarded,
    operation: &'a Operation,
    sub_resource: &'a str,
    name: &'a str,
    object: Option<&'a DynamicObject>,
    old_object: Option<&'a DynamicObject>,
) -> Write<'a> {
    let namespace = match guarded {
        Guarded::Pod | Guarded::ContainerRecreateRequest => "default",
        Guarded::Lease => "stevedore-system",
        Guarded::NodeState | Guarded::NodeImage => "",
    };
    Write { guarded, operation, sub_resource, namespace, name, object, old_object }
}

#[test]
fn pods_are_created_only_on_the_agents_node() {
    let (ours, theirs, unbound) = (pod("x", Some("n1")), pod("x", Some("n2")), pod("x", None));
    let create = |obj| decide("n1", &write(Guarded::Pod, &Operation::Create, "", "x", Some(obj), None));
    assert_eq!(create(&ours), Ok(()));
    assert_eq!(
        create(&theirs),
        Err("agent of node n1 may not create pod default/x: it is bound to node n2".to_owned())
    );
    assert_eq!(
        create(&unbound),
        Err("agent of node n1 may not create pod default/x: it is bound to no node".to_owned())
    );
    let binding = write(Guarded::Pod, &Operation::Create, "binding", "x", Some(&ours), None);
    let err = decide("n1", &binding).unwrap_err();
    assert!(err.starts_with("agent of node n1 may not create the binding of pod default/x: "), "{err}");
    let nothing = write(Guarded::Pod, &Operation::Create, "", "x", None, None);
    assert!(decide("n1", &nothing).unwrap_err().contains("no object"));
}

#[test]
fn pod_updates_need_the_old_and_the_new_pod_on_the_agents_node() {
    let (ours, theirs, unbound) = (pod("x", Some("n1")), pod("x", Some("n2")), pod("x", None));
    for sub in ["", "status"] {
        let update =
            |new, old| decide("n1", &write(Guarded::Pod, &Operation::Update, sub, "x", Some(new), Some(old)));
        assert_eq!(update(&ours, &ours), Ok(()), "{sub}");
        let what = if sub.is_empty() {
            "update pod default/x".to_owned()
        } else {
            "update the status of pod default/x".to_owned()
        };
        assert_eq!(
            update(&theirs, &theirs),
            Err(format!("agent of node n1 may not {what}: it is bound to node n2"))
        );
        assert_eq!(
            update(&ours, &theirs),
            Err(format!("agent of node n1 may not {what}: it is bound to node n2"))
        );
        assert_eq!(
            update(&theirs, &ours),
            Err(format!("agent of node n1 may not {what}: it would be bound to node n2"))
        );
        assert_eq!(
            update(&ours, &unbound),
            Err(format!("agent of node n1 may not {what}: it is bound to no node"))
        );
    }
    let no_old = write(Guarded::Pod, &Operation::Update, "", "x", Some(&ours), None);
    assert!(decide("n1", &no_old).unwrap_err().contains("lacks the old or the new object"));
    let no_new = write(Guarded::Pod, &Operation::Update, "", "x", None, Some(&ours));
    assert!(decide("n1", &no_new).is_err());
}

#[test]
fn pods_are_deleted_only_on_the_agents_node() {
    let (ours, theirs) = (pod("x", Some("n1")), pod("x", Some("n2")));
    let delete = |old| decide("n1", &write(Guarded::Pod, &Operation::Delete, "", "x", None, old));
    assert_eq!(delete(Some(&ours)), Ok(()));
    assert_eq!(
        delete(Some(&theirs)),
        Err("agent of node n1 may not delete pod default/x: it is bound to node n2".to_owned())
    );
    assert!(delete(None).unwrap_err().contains("no old object"));
    let connect = write(Guarded::Pod, &Operation::Connect, "exec", "x", None, None);
    assert!(decide("n1", &connect).is_err());
}

#[test]
fn node_states_and_node_images_only_the_agents_own() {
    for (kind, guarded, noun) in
        [("NodeState", Guarded::NodeState, "nodestate"), ("NodeImage", Guarded::NodeImage, "nodeimage")]
    {
        let (n1, n2) = (named(kind, "n1"), named(kind, "n2"));
        for (op, verb) in
            [(Operation::Create, "create"), (Operation::Update, "update"), (Operation::Delete, "delete")]
        {
            for sub in ["", "status"] {
                let (new, old) = match op {
                    Operation::Create => (Some(&n1), None),
                    Operation::Update => (Some(&n1), Some(&n1)),
                    _ => (None, Some(&n1)),
                };
                assert_eq!(
                    decide("n1", &write(guarded, &op, sub, "n1", new, old)),
                    Ok(()),
                    "{kind} {verb} {sub}"
                );
                let (new, old) = (new.map(|_| &n2), old.map(|_| &n2));
                let what = if sub.is_empty() {
                    format!("{verb} {noun} n2")
                } else {
                    format!("{verb} the status of {noun} n2")
                };
                assert_eq!(
                    decide("n1", &write(guarded, &op, sub, "n2", new, old)),
                    Err(format!("agent of node n1 may not {what}: it is node n2's"))
                );
            }
        }
        // a create whose request has no name yet is judged by the object's
        let create = write(guarded, &Operation::Create, "", "", Some(&n1), None);
        assert_eq!(decide("n1", &create), Ok(()));
        let create = write(guarded, &Operation::Create, "", "", Some(&n2), None);
        assert!(decide("n1", &create).is_err());
    }
}

#[test]
fn container_recreate_requests_only_when_labelled_for_the_agents_node() {
    let (ours, theirs, unlabelled) = (crr("r", Some("n1")), crr("r", Some("n2")), crr("r", None));
    let status = |new, old| {
        decide(
            "n1",
            &write(
                Guarded::ContainerRecreateRequest,
                &Operation::Update,
                "status",
                "r",
                Some(new),
                Some(old),
            ),
        )
    };
    assert_eq!(status(&ours, &ours), Ok(()));
    assert_eq!(
        status(&theirs, &theirs),
        Err(format!(
            "agent of node n1 may not update the status of containerrecreaterequest default/r: it is labelled \
             {CRR_NODE_NAME}=n2"
        ))
    );
    assert_eq!(
        status(&unlabelled, &ours),
        Err(format!(
            "agent of node n1 may not update the status of containerrecreaterequest default/r: it would have \
             no {CRR_NODE_NAME} label"
        ))
    );
    let create = |obj| {
        decide("n1", &write(Guarded::ContainerRecreateRequest, &Operation::Create, "", "r", Some(obj), None))
    };
    assert_eq!(create(&ours), Ok(()));
    assert!(create(&unlabelled).unwrap_err().ends_with(&format!("it has no {CRR_NODE_NAME} label")));
    let delete = |old| {
        decide("n1", &write(Guarded::ContainerRecreateRequest, &Operation::Delete, "", "r", None, Some(old)))
    };
    assert_eq!(delete(&ours), Ok(()));
    assert!(delete(&theirs).unwrap_err().ends_with(&format!("it is labelled {CRR_NODE_NAME}=n2")));
}

fn user(name: &str, node: Option<&[&str]>) -> UserInfo {
    UserInfo {
        username: Some(name.to_owned()),
        extra: node.map(|n| {
            BTreeMap::from([(NODE_NAME_EXTRA.to_owned(), n.iter().map(|s| (*s).to_owned()).collect())])
        }),
        ..UserInfo::default()
    }
}

#[test]
fn agents_are_told_apart_by_their_user_name_and_node_extra() {
    let ids = Identities::new("stevedore-system");
    let sa = "system:serviceaccount:stevedore-system:stevedore-agent";
    let agent = |node: &str| Requester::Agent { node: node.to_owned() };
    assert_eq!(ids.identify(&user(sa, Some(&["n1"]))), agent("n1"));
    assert_eq!(ids.identify(&user("stevedore:agent:n7", None)), agent("n7"));
    // the systemd convention is the user name; an extra does not change the node
    assert_eq!(ids.identify(&user("stevedore:agent:n7", Some(&["n1"]))), agent("n7"));
    for nodeless in
        [user(sa, None), user(sa, Some(&[])), user(sa, Some(&[""])), user(sa, Some(&["n1", "n2"]))]
    {
        assert!(matches!(ids.identify(&nodeless), Requester::Nodeless { .. }), "{nodeless:?}");
    }
    assert!(matches!(ids.identify(&user("stevedore:agent:", None)), Requester::Nodeless { .. }));
    for other in [
        user("system:admin", None),
        user("system:node:n1", Some(&["n1"])),
        user("system:serviceaccount:other:stevedore-agent", Some(&["n1"])),
        user("system:serviceaccount:stevedore-system:stevedore-controller", Some(&["n1"])),
        UserInfo::default(),
    ] {
        assert_eq!(ids.identify(&other), Requester::Other, "{other:?}");
    }
    assert_eq!(Identities::new("agents").service_account(), "system:serviceaccount:agents:stevedore-agent");
}

fn request(
    user: UserInfo,
    operation: &str,
    resource: (&str, &str),
    sub: Option<&str>,
    object: Option<Value>,
    old: Option<Value>,
) -> AdmissionRequest<DynamicObject> {
    let name =
        object.as_ref().or(old.as_ref()).and_then(|o| o["metadata"]["name"].as_str()).unwrap_or_default();
    let namespace = object.as_ref().or(old.as_ref()).and_then(|o| o["metadata"]["namespace"].as_str());
    let mut req = json!({
        "uid": "u1", "kind": {"group": resource.0, "version": "v1", "kind": "X"},
        "resource": {"group": resource.0, "version": "v1", "resource": resource.1},
        "name": name, "operation": operation, "userInfo": user,
        "object": object, "oldObject": old,
    });
    if let Some(sub) = sub {
        req["subResource"] = sub.into();
    }
    if let Some(ns) = namespace {
        req["namespace"] = ns.into();
    }
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req
    }))
    .unwrap();
    review.try_into().unwrap()
}

#[test]
fn the_handler_restricts_agents_only_and_refuses_with_403() {
    let guard = NodeGuard::new("stevedore-system");
    let sa = "system:serviceaccount:stevedore-system:stevedore-agent";
    let theirs = serde_json::to_value(pod("x", Some("n2"))).unwrap();
    let delete = |user| guard.admit(&request(user, "DELETE", ("", "pods"), None, None, Some(theirs.clone())));
    let answer = delete(self::user(sa, Some(&["n1"])));
    assert!(!answer.allowed);
    assert_eq!(answer.result.code, 403);
    assert_eq!(answer.result.reason, "Forbidden");
    assert_eq!(
        answer.result.message,
        "agent of node n1 may not delete pod default/x: it is bound to node n2"
    );
    assert!(delete(user("system:admin", None)).allowed, "other users pass");
    assert!(delete(user("system:node:n1", None)).allowed);
    let nodeless = delete(user(sa, None));
    assert!(!nodeless.allowed);
    for part in [
        "may not delete pod default/x",
        NODE_NAME_EXTRA,
        "not bound to a pod",
        "older than 1.30",
        "stevedore:agent:<node>",
    ] {
        assert!(nodeless.result.message.contains(part), "{part}: {}", nodeless.result.message);
    }
    // a create whose request carries no name yet is named by its object
    let generated = serde_json::to_value(pod("web-7xk2q", Some("n2"))).unwrap();
    let mut create = request(user(sa, Some(&["n1"])), "CREATE", ("", "pods"), None, Some(generated), None);
    create.name = String::new();
    assert_eq!(
        guard.admit(&create).result.message,
        "agent of node n1 may not create pod default/web-7xk2q: it is bound to node n2"
    );
    // resources it does not guard pass, whoever asks
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}});
    assert!(
        guard.admit(&request(user(sa, None), "CREATE", ("", "configmaps"), None, Some(cm), None)).allowed
    );
    let image = serde_json::to_value(named("NodeImage", "n1")).unwrap();
    let status = |user| {
        guard.admit(&request(
            user,
            "UPDATE",
            ("apps.kruise.io", "nodeimages"),
            Some("status"),
            Some(image.clone()),
            Some(image.clone()),
        ))
    };
    assert!(status(user("stevedore:agent:n1", None)).allowed);
    let refused = status(user("stevedore:agent:n2", None));
    assert_eq!(
        refused.result.message,
        "agent of node n2 may not update the status of nodeimage n1: it is node n1's"
    );
}

#[test]
fn leases_only_the_agents_own_heartbeat() {
    let lease = |name: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "stevedore-system"}}))
        .unwrap()
    };
    let (mine, theirs, other) = (lease("agent-n1"), lease("agent-n2"), lease("stevedore-controller"));
    let create =
        |name, obj| decide("n1", &write(Guarded::Lease, &Operation::Create, "", name, Some(obj), None));
    let update =
        |name, obj| decide("n1", &write(Guarded::Lease, &Operation::Update, "", name, Some(obj), Some(obj)));
    assert_eq!(create("agent-n1", &mine), Ok(()));
    assert_eq!(update("agent-n1", &mine), Ok(()));
    assert_eq!(
        update("agent-n2", &theirs),
        Err("agent of node n1 may not update lease stevedore-system/agent-n2: it is node n2's heartbeat"
            .to_owned())
    );
    assert_eq!(
        create("stevedore-controller", &other),
        Err("agent of node n1 may not create lease stevedore-system/stevedore-controller: an agent writes only \
             its own heartbeat Lease, agent-n1"
            .to_owned())
    );
}

#[test]
fn the_guard_is_registered_with_its_rules_and_the_agents_match_condition() {
    let mut registry = Registry::default();
    register(&mut registry, "agents");
    let guards = registry.guards();
    assert_eq!(guards.len(), 1);
    let g = &guards[0];
    assert!(registry.admission_handler(PATH).is_some());
    assert_eq!(g.match_conditions.len(), 1);
    assert_eq!(
        g.match_conditions[0].expression,
        "request.userInfo.username == 'system:serviceaccount:agents:stevedore-agent' || \
         request.userInfo.username.startsWith('stevedore:agent:')"
    );
    let resources: Vec<String> =
        g.rules.iter().flat_map(|r| r.resources.clone().unwrap_or_default()).collect();
    for wanted in [
        "pods",
        "pods/status",
        "nodestates",
        "nodestates/*",
        "nodeimages",
        "nodeimages/*",
        "containerrecreaterequests/*",
        "leases",
    ] {
        assert!(resources.iter().any(|r| r == wanted), "{wanted} in {resources:?}");
    }
    for rule in &g.rules {
        assert_eq!(
            rule.operations.as_deref(),
            Some(&["CREATE".to_owned(), "UPDATE".to_owned(), "DELETE".to_owned()][..])
        );
    }
}
