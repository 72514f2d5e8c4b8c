//! Every rule accepting and rejecting, and each kind through the registry.

use kube::core::{DynamicObject, admission::AdmissionRequest};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::validation::Rules;

/// The broken rules of `new` (and `old`), as `field: reason`.
fn check<K: DeserializeOwned>(rules: Rules<K>, new: &Value, old: Option<&Value>) -> Vec<String> {
    let new: K = serde_json::from_value(new.clone()).unwrap();
    let old: Option<K> = old.map(|o| serde_json::from_value(o.clone()).unwrap());
    rules(&new, old.as_ref()).iter().map(ToString::to_string).collect()
}

/// An edit of an object's JSON.
type Change = fn(&mut Value);

/// Asserts `good` passes, each variant passes, and each breakage yields exactly its error.
fn table<K: DeserializeOwned>(
    rules: Rules<K>,
    good: &Value,
    accepted: Vec<Change>,
    rejected: Vec<(Change, &str)>,
) {
    assert_eq!(check(rules, good, None), Vec::<String>::new(), "the good object");
    for (i, change) in accepted.into_iter().enumerate() {
        let mut v = good.clone();
        change(&mut v);
        assert_eq!(check(rules, &v, None), Vec::<String>::new(), "accepted variant {i}: {v}");
    }
    for (change, want) in rejected {
        let mut v = good.clone();
        change(&mut v);
        assert_eq!(check(rules, &v, None), [want], "{v}");
    }
}

fn push(list: &mut Value, item: Value) {
    list.as_array_mut().unwrap().push(item);
}

fn pod_template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]}})
}

fn bcj() -> Value {
    json!({"metadata": {"name": "warm-up"}, "spec": {
        "parallelism": "50%", "template": pod_template(),
        "completionPolicy": {"type": "Always", "ttlSecondsAfterFinished": 60, "activeDeadlineSeconds": 600}}})
}

#[test]
fn broadcast_job_rules() {
    table(
        broadcast_job,
        &bcj(),
        vec![
            |v| v["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure"),
            |v| v["spec"]["parallelism"] = json!(3),
            |v| v["spec"]["completionPolicy"] = json!({"type": "Never"}),
            |v| v["spec"]["template"]["metadata"]["labels"]["broadcastjob-name"] = json!(""),
        ],
        vec![
            (
                |v| v["spec"]["template"]["spec"]["restartPolicy"] = json!("Always"),
                "spec.template.spec.restartPolicy: \"Always\" must be Never or OnFailure",
            ),
            (
                |v| v["metadata"]["name"] = json!("warm_up"),
                "metadata.name: \"warm_up\" must consist of alphanumeric characters or '-'",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "ttlSecondsAfterFinished": 1}),
                "spec.completionPolicy.ttlSecondsAfterFinished: works only with the Always type",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "activeDeadlineSeconds": 1}),
                "spec.completionPolicy.activeDeadlineSeconds: works only with the Always type",
            ),
            (
                |v| v["spec"]["template"]["metadata"]["labels"]["broadcastjob-controller-uid"] = json!("u"),
                "spec.template.metadata.labels: \"broadcastjob-controller-uid\" is set by the controller",
            ),
            (
                |v| v["spec"]["template"]["spec"]["containers"] = json!([]),
                "spec.template.spec.containers: is required",
            ),
            (
                |v| v["spec"]["parallelism"] = json!("half"),
                "spec.parallelism: \"half\" is not an integer or a percentage like \"25%\"",
            ),
        ],
    );
}

fn acj() -> Value {
    json!({"metadata": {"name": "nightly"}, "spec": {
        "schedule": "0 3 * * *", "timeZone": "Asia/Shanghai", "startingDeadlineSeconds": 30,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "template": {"broadcastJobTemplate": {"spec": {"template": pod_template(), "completionPolicy": {}}}}}})
}

fn ilpj_template() -> Value {
    json!({"spec": {"images": ["nginx:1.27", "redis:7"], "completionPolicy": {"type": "Always",
           "activeDeadlineSeconds": 1200}, "pullPolicy": {"timeoutSeconds": 300}}})
}

#[test]
fn advanced_cron_job_rules() {
    table(
        advanced_cron_job,
        &acj(),
        vec![
            |v| v["spec"]["schedule"] = json!("@hourly"),
            |v| {
                v["spec"]["schedule"] = json!("CRON_TZ=UTC */5 * * * *");
                v["spec"].as_object_mut().unwrap().remove("timeZone");
            },
            |v| {
                v["spec"]["template"] = json!({"jobTemplate": {"spec": {"template": pod_template()}}});
            },
            |v| {
                v["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()});
                v["spec"]["concurrencyPolicy"] = json!("Forbid");
            },
        ],
        vec![
            (|v| v["spec"]["schedule"] = json!(""), "spec.schedule: must not be empty"),
            (
                |v| v["spec"]["schedule"] = json!("0 3 * *"),
                "spec.schedule: \"0 3 * *\" is not a cron schedule: expected exactly 5 fields, found 4: \"0 3 * *\"",
            ),
            (
                |v| v["spec"]["schedule"] = json!("TZ=UTC 0 3 * * *"),
                "spec.schedule: cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ),
            (|v| v["spec"]["timeZone"] = json!(""), "spec.timeZone: must be unset or a non-empty time zone"),
            (
                |v| v["spec"]["timeZone"] = json!("Local"),
                "spec.timeZone: must be an explicit IANA time zone, not Local",
            ),
            (
                |v| v["spec"]["timeZone"] = json!("Mars/Olympus Mons"),
                "spec.timeZone: \"Mars/Olympus Mons\" is not an IANA time zone name",
            ),
            (
                |v| v["spec"]["startingDeadlineSeconds"] = json!(-1),
                "spec.startingDeadlineSeconds: must be greater than or equal to 0",
            ),
            (
                |v| v["spec"]["successfulJobsHistoryLimit"] = json!(-1),
                "spec.successfulJobsHistoryLimit: must be greater than or equal to 0",
            ),
            (
                |v| v["spec"]["failedJobsHistoryLimit"] = json!(-1),
                "spec.failedJobsHistoryLimit: must be greater than or equal to 0",
            ),
            (
                |v| v["spec"]["template"] = json!({}),
                "spec.template: one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate is required",
            ),
            (
                |v| v["spec"]["template"]["jobTemplate"] = json!({"spec": {"template": pod_template()}}),
                "spec.template: only one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate may be set",
            ),
            (
                |v| {
                    v["spec"]["template"] = json!({"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}})
                },
                "spec.template.jobTemplate.spec.template.spec.containers[0].image: is required",
            ),
            (
                |v| {
                    v["spec"]["template"]["broadcastJobTemplate"]["spec"]["template"]["spec"]["containers"]
                        [0]["name"] = json!("Bad")
                },
                "spec.template.broadcastJobTemplate.spec.template.spec.containers[0].name: \"Bad\" must be a DNS label",
            ),
            (
                |v| v["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()}),
                "spec.concurrencyPolicy: must be Replace or Forbid with an imageListPullJobTemplate",
            ),
        ],
    );
    // the image-list template's own rules
    let ilpj = |change: fn(&mut Value)| {
        let mut v = acj();
        v["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()});
        v["spec"]["concurrencyPolicy"] = json!("Replace");
        change(&mut v["spec"]["template"]["imageListPullJobTemplate"]["spec"]);
        check(advanced_cron_job, &v, None)
    };
    assert_eq!(ilpj(|_| {}), Vec::<String>::new());
    let p = "spec.template.imageListPullJobTemplate.spec";
    for (change, want) in [
        (
            (|s| s["completionPolicy"] = json!({"type": "Never"})) as fn(&mut Value),
            format!("{p}.completionPolicy.type: must be Always"),
        ),
        (
            |s| s["completionPolicy"]["ttlSecondsAfterFinished"] = json!(5),
            format!("{p}.completionPolicy.ttlSecondsAfterFinished: is not supported in an AdvancedCronJob"),
        ),
        (
            |s| s["completionPolicy"]["activeDeadlineSeconds"] = json!(86_401),
            format!("{p}.completionPolicy.activeDeadlineSeconds: must not be greater than 86400"),
        ),
        (
            |s| s["completionPolicy"]["activeDeadlineSeconds"] = json!(100),
            format!(
                "{p}.completionPolicy.activeDeadlineSeconds: must be greater than pullPolicy.timeoutSeconds (300)"
            ),
        ),
        (|s| s["images"] = json!([]), format!("{p}.images: must not be empty")),
        (|s| s["images"] = json!(["a", "a"]), format!("{p}.images: duplicate image \"a\"")),
        (
            |s| s["images"] = json!(["UPPER"]),
            format!("{p}.images[0]: invalid image \"UPPER\": repository name must be lowercase"),
        ),
        (
            |s| s["selector"] = json!({"names": ["n1"], "matchLabels": {"a": "b"}}),
            format!("{p}.selector: names and labels are mutually exclusive"),
        ),
        (
            |s| {
                s["selector"] = json!({"names": ["n1"]});
                s["podSelector"] = json!({"matchLabels": {"a": "b"}});
            },
            format!("{p}: selector and podSelector are mutually exclusive"),
        ),
    ] {
        assert_eq!(ilpj(change), [want]);
    }
}

#[test]
fn advanced_cron_job_updates_touch_only_the_schedule_fields() {
    let old = acj();
    let mut new = old.clone();
    new["spec"]["schedule"] = json!("@daily");
    new["spec"]["paused"] = json!(true);
    new["spec"]["concurrencyPolicy"] = json!("Forbid");
    new["spec"]["timeZone"] = json!("UTC");
    assert_eq!(check(advanced_cron_job, &new, Some(&old)), Vec::<String>::new());
    new["spec"]["template"]["broadcastJobTemplate"]["spec"]["parallelism"] = json!(2);
    assert_eq!(
        check(advanced_cron_job, &new, Some(&old)),
        ["spec: only schedule, concurrencyPolicy, successfulJobsHistoryLimit, failedJobsHistoryLimit, \
          startingDeadlineSeconds, paused, timeZone and imageListPullJobTemplate may change"]
    );
    // an existing image-list template may change
    let mut old = acj();
    old["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()});
    old["spec"]["concurrencyPolicy"] = json!("Replace");
    let mut new = old.clone();
    new["spec"]["template"]["imageListPullJobTemplate"]["spec"]["images"] = json!(["nginx:1.28"]);
    assert_eq!(check(advanced_cron_job, &new, Some(&old)), Vec::<String>::new());
}

fn ipj() -> Value {
    json!({"metadata": {"name": "pull"}, "spec": {
        "image": "registry.example.com/shop/web:1.8", "parallelism": 2, "pullSecrets": ["reg"],
        "selector": {"names": ["node-a", "node-b"]}, "pullPolicy": {"timeoutSeconds": 300, "backoffLimit": 2},
        "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}}})
}

#[test]
fn image_pull_job_rules() {
    table(
        image_pull_job,
        &ipj(),
        vec![
            |v| v["spec"]["parallelism"] = json!("4"),
            |v| v["spec"]["selector"] = json!({"matchLabels": {"pool": "web"}}),
            |v| {
                v["spec"].as_object_mut().unwrap().remove("selector");
                v["spec"]["podSelector"] = json!({"matchLabels": {"app": "web"}});
            },
            |v| v["spec"]["completionPolicy"] = json!({"type": "Never"}),
        ],
        vec![
            (|v| v["spec"]["image"] = json!(""), "spec.image: must not be empty"),
            (
                |v| v["spec"]["image"] = json!("web:"),
                "spec.image: invalid image \"web:\": invalid reference format",
            ),
            (|v| v["spec"]["parallelism"] = json!("50%"), "spec.parallelism: must not be a percentage"),
            (|v| v["spec"]["parallelism"] = json!("x"), "spec.parallelism: \"x\" is not an integer"),
            (|v| v["spec"]["parallelism"] = json!(-1), "spec.parallelism: must not be negative"),
            (|v| v["spec"]["parallelism"] = json!("-2"), "spec.parallelism: must not be negative"),
            (
                |v| v["spec"]["selector"]["matchLabels"] = json!({"a": "b"}),
                "spec.selector: names and labels are mutually exclusive",
            ),
            (
                |v| v["spec"]["selector"] = json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "spec.selector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            (
                |v| v["spec"]["selector"]["names"] = json!(["n", "n"]),
                "spec.selector.names: duplicate name \"n\"",
            ),
            (
                |v| v["spec"]["podSelector"] = json!({"matchLabels": {"a": "b"}}),
                "spec: selector and podSelector are mutually exclusive",
            ),
            (
                |v| v["spec"]["completionPolicy"]["activeDeadlineSeconds"] = json!(200),
                "spec.completionPolicy.activeDeadlineSeconds: must be greater than pullPolicy.timeoutSeconds (300)",
            ),
            (
                |v| {
                    v["spec"]["completionPolicy"]["activeDeadlineSeconds"] = json!(599);
                    v["spec"].as_object_mut().unwrap().remove("pullPolicy");
                },
                "spec.completionPolicy.activeDeadlineSeconds: must be greater than pullPolicy.timeoutSeconds (600)",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "activeDeadlineSeconds": 1}),
                "spec.completionPolicy.activeDeadlineSeconds: works only with the Always type",
            ),
            (|v| v["spec"]["completionPolicy"] = json!({}), "spec.completionPolicy.type: is required"),
        ],
    );
    let old = ipj();
    let mut new = old.clone();
    new["spec"]["parallelism"] = json!(5);
    assert_eq!(check(image_pull_job, &new, Some(&old)), Vec::<String>::new());
    new["spec"]["pullSecrets"] = json!(["other"]);
    assert_eq!(check(image_pull_job, &new, Some(&old)), ["spec.pullSecrets: is immutable"]);
}

#[test]
fn image_list_pull_job_rules() {
    let good = json!({"metadata": {"name": "pull"}, "spec": {
        "images": ["nginx:1.27", "docker.io/library/redis@sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07"],
        "selector": {"matchLabels": {"pool": "web"}}, "completionPolicy": {"type": "Always"}}});
    table(
        image_list_pull_job,
        &good,
        vec![|v| v["spec"]["completionPolicy"] = json!({"type": "Never"}), |v| {
            v["spec"]["images"] = json!(vec!["busybox"; 1])
        }],
        vec![
            (|v| v["spec"]["images"] = json!([]), "spec.images: must not be empty"),
            (
                |v| {
                    let many: Vec<String> = (0..256).map(|i| format!("img{i}")).collect();
                    v["spec"]["images"] = json!(many);
                },
                "spec.images: must not hold more than 255 images",
            ),
            (|v| v["spec"]["images"] = json!(["a", "b", "a"]), "spec.images: duplicate image \"a\""),
            (
                |v| v["spec"]["images"] = json!(["ok", "a@sha256:zz"]),
                "spec.images[1]: invalid image \"a@sha256:zz\": invalid digest format",
            ),
            (
                |v| v["spec"]["podSelector"] = json!({"matchLabels": {"a": "b"}}),
                "spec: selector and podSelector are mutually exclusive",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "ttlSecondsAfterFinished": 5}),
                "spec.completionPolicy.ttlSecondsAfterFinished: works only with the Always type",
            ),
            (|v| v["spec"]["completionPolicy"] = json!({}), "spec.completionPolicy.type: is required"),
        ],
    );
}

#[test]
fn node_image_rules() {
    let tag = json!({"tag": "1.27", "createdAt": "2025-01-01T00:00:00Z", "version": 1,
                     "pullPolicy": {"ttlSecondsAfterFinished": 300}});
    let good = json!({"metadata": {"name": "node-a"}, "spec": {"images": {"nginx": {"tags": [tag]}}}});
    table(
        node_image,
        &good,
        vec![
            |v| {
                push(
                    &mut v["spec"]["images"]["nginx"]["tags"],
                    json!({"tag": "1.28", "createdAt": "2025-01-01T00:00:00Z",
            "pullPolicy": {"ttlSecondsAfterFinished": 1}}),
                )
            },
            |v| v["spec"] = json!({}),
        ],
        vec![
            (
                |v| {
                    let images: serde_json::Map<String, Value> =
                        (0..257).map(|i| (format!("img{i}"), json!({"tags": []}))).collect();
                    v["spec"]["images"] = Value::Object(images);
                },
                "spec.images: 257 images, more than 256",
            ),
            (
                |v| v["spec"]["images"][""] = json!({"tags": []}),
                "spec.images: an image name must not be empty",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["tag"] = json!(""),
                "spec.images[nginx].tags[0].tag: must not be empty",
            ),
            (
                |v| {
                    let t = v["spec"]["images"]["nginx"]["tags"][0].clone();
                    push(&mut v["spec"]["images"]["nginx"]["tags"], t);
                },
                "spec.images[nginx].tags[1].tag: duplicate tag \"1.27\"",
            ),
            (
                |v| {
                    v["spec"]["images"]["nginx"]["tags"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("createdAt")
                        .map(drop)
                        .unwrap()
                },
                "spec.images[nginx].tags[0].createdAt: is required",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["version"] = json!(-1),
                "spec.images[nginx].tags[0].version: must not be negative",
            ),
            (
                |v| {
                    v["spec"]["images"]["nginx"]["tags"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("pullPolicy")
                        .map(drop)
                        .unwrap()
                },
                "spec.images[nginx].tags[0].pullPolicy: is required",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["pullPolicy"] = json!({"backoffLimit": 3}),
                "spec.images[nginx].tags[0].pullPolicy.ttlSecondsAfterFinished: is required",
            ),
        ],
    );
}

fn crr() -> Value {
    json!({"metadata": {"name": "restart", "namespace": "shop", "labels": {"crr.apps.kruise.io/pod-uid": "u1"}},
           "spec": {"podName": "web-0", "containers": [{"name": "app"}, {"name": "sidecar"}],
                    "activeDeadlineSeconds": 3, "strategy": {"failurePolicy": "Ignore", "terminationGracePeriodSeconds": 0}}})
}

#[test]
fn container_recreate_request_rules() {
    table(
        container_recreate_request,
        &crr(),
        vec![|v| v["spec"].as_object_mut().unwrap().remove("strategy").map(drop).unwrap()],
        vec![
            (|v| v["spec"]["podName"] = json!(""), "spec.podName: must not be empty"),
            (|v| v["spec"]["containers"] = json!([]), "spec.containers: must not be empty"),
            (
                |v| v["spec"]["containers"][1]["name"] = json!("app"),
                "spec.containers: container \"app\" is listed more than once",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["statusContext"] =
                        json!({"containerID": "x", "restartCount": 0})
                },
                "spec.containers[0]: preStop, ports and statusContext are read-only",
            ),
            (
                |v| v["spec"]["activeDeadlineSeconds"] = json!(2),
                "spec.activeDeadlineSeconds: must be at least 3",
            ),
            (
                |v| v["spec"]["strategy"]["terminationGracePeriodSeconds"] = json!(-1),
                "spec.strategy.terminationGracePeriodSeconds: must not be negative",
            ),
            (
                |v| v["spec"]["strategy"]["unreadyGracePeriodSeconds"] = json!(-5),
                "spec.strategy.unreadyGracePeriodSeconds: must not be negative",
            ),
        ],
    );
    let old = crr();
    let mut new = old.clone();
    new["metadata"]["labels"]["crr.apps.kruise.io/active"] = json!("false");
    new["metadata"]["annotations"] = json!({"crr.apps.kruise.io/unready-acquired": "2025-01-01T00:00:00Z"});
    assert_eq!(check(container_recreate_request, &new, Some(&old)), Vec::<String>::new());
    let old = new.clone();
    new["spec"]["podName"] = json!("web-1");
    new["metadata"]["labels"]["crr.apps.kruise.io/pod-uid"] = json!("u2");
    new["metadata"]["annotations"]["crr.apps.kruise.io/unready-acquired"] = json!("later");
    assert_eq!(
        check(container_recreate_request, &new, Some(&old)),
        [
            "spec: is immutable",
            "metadata.labels[crr.apps.kruise.io/pod-uid]: is immutable",
            "metadata.annotations[crr.apps.kruise.io/unready-acquired]: is immutable"
        ]
    );
}

fn ws() -> Value {
    json!({"metadata": {"name": "spread", "namespace": "shop"}, "spec": {
    "targetRef": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "web"},
    "targetFilter": {"selector": {"matchLabels": {"tier": "front"}}},
    "subsets": [
        {"name": "zone-a", "maxReplicas": "40%",
         "requiredNodeSelectorTerm": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
         "preferredNodeSelectorTerms": [{"weight": 10, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}],
         "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]},
        {"name": "zone-b", "maxReplicas": "60%"}
    ]}})
}

#[test]
fn workload_spread_rules() {
    table(
        workload_spread,
        &ws(),
        vec![
            |v| {
                v["spec"]["targetRef"] = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
            },
            |v| v["spec"]["targetRef"] = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "web"}),
            |v| {
                v["spec"]["targetRef"] =
                    json!({"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet", "name": "w"});
                v["spec"]["subsets"][0]["maxReplicas"] = json!(2);
                v["spec"]["subsets"][1]["maxReplicas"] = json!(2);
            },
            |v| {
                v["spec"]["subsets"][0]["maxReplicas"] = json!(3);
                v["spec"]["subsets"][1]["maxReplicas"] = json!(5);
            },
            |v| {
                v["spec"]["subsets"][0]["maxReplicas"] = json!("30%");
                v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                v["spec"]["scheduleStrategy"] =
                    json!({"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 295}});
            },
        ],
        vec![
            (
                |v| v["spec"]["targetRef"]["name"] = json!(""),
                "spec.targetRef: apiVersion, kind and name are required",
            ),
            (
                |v| v["spec"]["targetRef"]["kind"] = json!("DaemonSet"),
                "spec.targetRef: kind \"DaemonSet\" is not supported",
            ),
            (
                |v| v["spec"]["targetRef"]["apiVersion"] = json!("apps/v1"),
                "spec.targetRef: \"apps/v1\" is not an API of CloneSet",
            ),
            (|v| v["spec"]["subsets"] = json!([]), "spec.subsets: at least one subset is required"),
            (|v| v["spec"]["subsets"][1]["name"] = json!(""), "spec.subsets[1].name: must not be empty"),
            (
                |v| v["spec"]["subsets"][1]["name"] = json!("zone-a"),
                "spec.subsets[1].name: duplicate subset name \"zone-a\"",
            ),
            (
                |v| {
                    v["spec"]["subsets"][0]["requiredNodeSelectorTerm"]["matchExpressions"][0]["operator"] =
                        json!("Gt")
                },
                "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values: must be one integer when `operator` is 'Lt' or 'Gt'",
            ),
            (
                |v| v["spec"]["subsets"][0]["preferredNodeSelectorTerms"][0]["weight"] = json!(0),
                "spec.subsets[0].preferredNodeSelectorTerms[0].weight: must be in the range 1-100",
            ),
            (
                |v| v["spec"]["subsets"][0]["tolerations"][0]["operator"] = json!("Exists"),
                "spec.subsets[0].tolerations[0].value: must be empty when `operator` is 'Exists'",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!(6),
                "spec.subsets[1].maxReplicas: all subsets' maxReplicas must be of the same type",
            ),
            (
                |v| {
                    v["spec"]["targetRef"] =
                        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "w"})
                },
                "spec.subsets[0].maxReplicas: must be an integer for a StatefulSet",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("61%"),
                "spec.subsets[1].maxReplicas: the subsets' maxReplicas add up to more than 100%",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("50%"),
                "spec.subsets[0].maxReplicas: percentages must add up to 100% when the last subset sets one",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("12.5%"),
                "spec.subsets[1].maxReplicas: \"12.5%\" must be a whole percentage like \"25%\"",
            ),
            (
                |v| {
                    v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                    v["spec"]["scheduleStrategy"] = json!({"type": "Fixed", "adaptive": {}});
                },
                "spec.scheduleStrategy.type: must be Adaptive to use an adaptive strategy",
            ),
            (
                |v| v["spec"]["scheduleStrategy"] = json!({"type": "Adaptive", "adaptive": {}}),
                "spec.scheduleStrategy.adaptive: the last subset must not set maxReplicas under an adaptive strategy",
            ),
            (
                |v| {
                    v["spec"]["subsets"][0]["maxReplicas"] = json!("30%");
                    v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                    v["spec"]["scheduleStrategy"] =
                        json!({"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 296}});
                },
                "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds: must be within 0..=295",
            ),
            (
                |v| v["spec"]["targetFilter"]["selector"] = json!({"matchLabels": {"bad key": "x"}}),
                "spec.targetFilter.selector.matchLabels: \"bad key\" is not a valid label key",
            ),
        ],
    );
    let old = ws();
    let mut new = old.clone();
    new["spec"]["targetRef"]["apiVersion"] = json!("apps.kruise.io/v1beta1");
    assert_eq!(
        check(workload_spread, &new, Some(&old)),
        Vec::<String>::new(),
        "a version change keeps the group"
    );
    new["spec"]["targetRef"]["name"] = json!("api");
    assert_eq!(check(workload_spread, &new, Some(&old)), ["spec.targetRef: is immutable"]);
}

fn sidecar(name: &str) -> Value {
    json!({"name": name, "image": "proxy:1.0", "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
           "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
           "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}}, "envName": "X"}]})
}

fn sidecar_set_object() -> Value {
    json!({"metadata": {"name": "mesh"}, "spec": {
        "selector": {"matchLabels": {"mesh": "on"}},
        "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ops"]}]},
        "initContainers": [{"name": "init-mesh", "image": "init:1.0"}],
        "containers": [sidecar("proxy")],
        "volumes": [{"name": "certs", "secret": {"secretName": "c"}}],
        "updateStrategy": {"type": "RollingUpdate", "partition": "10%", "maxUnavailable": 2,
                           "priorityStrategy": {"weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"a": "b"}}}]},
                           "scatterStrategy": [{"key": "zone", "value": "a"}]},
        "injectionStrategy": {"revision": {"customVersion": "v1", "policy": "Partial"}},
        "patchPodMetadata": [{"annotations": {"mesh.io/inject": "true"}, "patchPolicy": "Retain"}]}})
}

#[test]
fn sidecar_set_rules() {
    table(
        sidecar_set,
        &sidecar_set_object(),
        vec![
            |v| v["spec"].as_object_mut().unwrap().remove("containers").map(drop).unwrap(),
            |v| v["spec"]["initContainers"] = json!([]),
            |v| {
                v["spec"]["updateStrategy"] = json!({"type": "NotUpdate"});
                v["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
            },
            |v| {
                v["spec"]["updateStrategy"]["partition"] = json!(0);
                v["spec"]["updateStrategy"]["selector"] = json!({"matchLabels": {"canary": "true"}});
            },
            |v| {
                v["spec"]["containers"][0]["resourcesPolicy"] = json!({"targetContainersMode": "sum",
                    "resourcesExpr": {"limits": {"cpu": "cpu*50%"}}});
            },
            |v| {
                v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                    json!("metadata.name")
            },
        ],
        vec![
            (
                |v| v["metadata"]["name"] = json!("mesh.v2"),
                "metadata.name: \"mesh.v2\" must consist of alphanumeric characters or '-'",
            ),
            (
                |v| v["spec"].as_object_mut().unwrap().remove("selector").map(drop).unwrap(),
                "spec.selector: is required",
            ),
            (
                |v| v["spec"]["selector"] = json!({}),
                "spec.selector: an empty selector is not valid for a SidecarSet",
            ),
            (
                |v| v["spec"]["namespaceSelector"]["matchExpressions"][0]["operator"] = json!("Exists"),
                "spec.namespaceSelector.matchExpressions[0].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            (
                |v| {
                    v["spec"]["containers"] = json!([]);
                    v["spec"]["initContainers"] = json!([]);
                },
                "spec: at least one container or init container is required",
            ),
            (
                |v| v["spec"]["containers"][0]["name"] = json!("init-mesh"),
                "spec.containers[0].name: duplicate name \"init-mesh\" (init containers and containers share one namespace)",
            ),
            (
                |v| push(&mut v["spec"]["containers"], sidecar("proxy")),
                "spec.containers[1].name: duplicate name \"proxy\" (init containers and containers share one namespace)",
            ),
            (
                |v| v["spec"]["volumes"][0]["name"] = json!("keys"),
                "spec.containers[0].volumeMounts[0].name: volume \"certs\" not found",
            ),
            (
                |v| v["spec"]["initContainers"][0]["restartPolicy"] = json!("Always"),
                "spec.updateStrategy: init containers with restartPolicy Always cannot be updated in place",
            ),
            (
                |v| {
                    v["spec"]["initContainers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "max", "resourcesExpr": {"requests": {}}})
                },
                "spec.initContainers[0].resourcesPolicy: is only supported on init containers with restartPolicy Always",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "sum", "resourcesExpr": {"limits": {}}});
                    v["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
                },
                "spec.containers[0].resourcesPolicy: resourcesPolicy and resources cannot be configured together",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "sum", "resourcesExpr": {}})
                },
                "spec.containers[0].resourcesPolicy.resourcesExpr: at least one of limits or requests must be configured",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                        json!("spec.nodeName")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath: \"spec.nodeName\" is not supported (metadata.annotations, metadata.labels, metadata.name)",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                        json!("metadata.labels['bad key']")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef: \"bad key\" is not a valid label key",
            ),
            (
                |v| v["spec"]["injectionStrategy"]["revision"] = json!({"policy": "Always"}),
                "spec.injectionStrategy.revision: one of revisionName and customVersion is required",
            ),
            (
                |v| v["spec"]["updateStrategy"]["selector"] = json!({"matchLabels": {"canary": "true"}}),
                "spec.updateStrategy: partition and selector cannot be used together",
            ),
            (
                |v| v["spec"]["updateStrategy"]["maxUnavailable"] = json!("12.5%"),
                "spec.updateStrategy.maxUnavailable: \"12.5%\" must be a whole percentage like \"25%\"",
            ),
            (
                |v| v["spec"]["updateStrategy"]["partition"] = json!(-1),
                "spec.updateStrategy.partition: -1 must not be negative",
            ),
            (
                |v| {
                    v["spec"]["updateStrategy"]["priorityStrategy"]["orderPriority"] =
                        json!([{"orderedKey": "k"}])
                },
                "spec.updateStrategy.priorityStrategy: only one of weightPriority and orderPriority can be used",
            ),
            (
                |v| {
                    v["spec"]["updateStrategy"]["priorityStrategy"]["weightPriority"][0]["weight"] =
                        json!(101)
                },
                "spec.updateStrategy.priorityStrategy.weightPriority[0].weight: must be in the range 0-100",
            ),
            (
                |v| {
                    push(
                        &mut v["spec"]["updateStrategy"]["scatterStrategy"],
                        json!({"key": "zone", "value": "a"}),
                    )
                },
                "spec.updateStrategy.scatterStrategy[1]: duplicate term zone=a",
            ),
            (
                |v| v["spec"]["patchPodMetadata"][0]["annotations"] = json!({}),
                "spec.patchPodMetadata[0].annotations: must not be empty",
            ),
            (
                |v| {
                    v["spec"]["patchPodMetadata"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("patchPolicy")
                        .map(drop)
                        .unwrap()
                },
                "spec.patchPodMetadata[0].patchPolicy: is required",
            ),
            (
                |v| {
                    push(
                        &mut v["spec"]["patchPodMetadata"],
                        json!({"annotations": {"mesh.io/inject": "false"}, "patchPolicy": "Overwrite"}),
                    )
                },
                "spec.patchPodMetadata[1].annotations: annotation \"mesh.io/inject\" is patched twice",
            ),
        ],
    );
    // NotUpdate skips the rolling-update rules
    let mut v = sidecar_set_object();
    v["spec"]["updateStrategy"] = json!({"type": "NotUpdate", "partition": "12.5%"});
    assert_eq!(check(sidecar_set, &v, None), Vec::<String>::new());
}

#[test]
fn sidecar_set_updates_keep_containers_and_upgrade_types() {
    let old = sidecar_set_object();
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("proxy:2.0");
    assert_eq!(check(sidecar_set, &new, Some(&old)), Vec::<String>::new());
    new["spec"]["containers"][0]["upgradeStrategy"]["upgradeType"] = json!("HotUpgrade");
    let mut extra = sidecar("logger");
    extra["volumeMounts"] = json!([]);
    push(&mut new["spec"]["containers"], extra);
    assert_eq!(
        check(sidecar_set, &new, Some(&old)),
        [
            "spec.containers[0].upgradeStrategy.upgradeType: container \"proxy\": upgradeType is immutable",
            "spec.containers[1].name: container \"logger\" is new: containers cannot be added"
        ]
    );
}

/// An AdmissionRequest for `kind` at `version`.
pub(crate) fn review(
    kind: &str,
    version: &str,
    operation: &str,
    object: Value,
    old: Value,
) -> AdmissionRequest<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "1", "operation": operation, "name": "x", "namespace": "shop",
            "kind": {"group": APPS_GROUP, "version": version, "kind": kind},
            "resource": {"group": APPS_GROUP, "version": version, "resource": plural},
            "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
        }
    }))
    .unwrap();
    review.try_into().unwrap()
}

/// Each kind through the registry at OpenKruise's path, at every version it serves:
/// a good object is allowed, a broken one denied with its rule.
#[test]
fn every_kind_is_served_at_openkruises_paths() {
    let mut registry = Registry::default();
    crate::validation::register(&mut registry);
    let mut bad_bcj = bcj();
    bad_bcj["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let mut bad_acj = acj();
    bad_acj["spec"]["schedule"] = json!("every day");
    let mut bad_ipj = ipj();
    bad_ipj["spec"]["parallelism"] = json!("10%");
    let ilpj = json!({"metadata": {"name": "p"}, "spec": {"images": ["nginx"], "completionPolicy": {"type": "Always"}}});
    let mut bad_ilpj = ilpj.clone();
    bad_ilpj["spec"]["images"] = json!([]);
    let ni = json!({"metadata": {"name": "node-a"}, "spec": {"images": {"nginx": {"tags": [
        {"tag": "1", "createdAt": "2025-01-01T00:00:00Z", "pullPolicy": {"ttlSecondsAfterFinished": 1}}]}}}});
    let mut bad_ni = ni.clone();
    bad_ni["spec"]["images"]["nginx"]["tags"][0]["version"] = json!(-1);
    let mut bad_ws = ws();
    bad_ws["spec"]["subsets"] = json!([]);
    let mut bad_ss = sidecar_set_object();
    bad_ss["spec"]["selector"] = json!({});
    for (path, kind, versions, good, bad, reason) in [
        (
            "/validate-apps-kruise-io-sidecarset",
            "SidecarSet",
            &["v1alpha1", "v1beta1"][..],
            sidecar_set_object(),
            bad_ss,
            "spec.selector: an empty selector is not valid for a SidecarSet",
        ),
        (
            "/validate-apps-kruise-io-broadcastjob",
            "BroadcastJob",
            &["v1alpha1", "v1beta1"],
            bcj(),
            bad_bcj,
            "spec.template.spec.restartPolicy: \"Always\" must be Never or OnFailure",
        ),
        (
            "/validate-apps-kruise-io-advancedcronjob",
            "AdvancedCronJob",
            &["v1alpha1", "v1beta1"],
            acj(),
            bad_acj,
            "spec.schedule: \"every day\" is not a cron schedule: expected exactly 5 fields, found 2: \"every day\"",
        ),
        (
            "/validate-apps-kruise-io-imagepulljob",
            "ImagePullJob",
            &["v1alpha1", "v1beta1"],
            ipj(),
            bad_ipj,
            "spec.parallelism: must not be a percentage",
        ),
        (
            "/validate-apps-kruise-io-imagelistpulljob",
            "ImageListPullJob",
            &["v1alpha1", "v1beta1"],
            ilpj,
            bad_ilpj,
            "spec.images: must not be empty",
        ),
        (
            "/validate-apps-kruise-io-nodeimage",
            "NodeImage",
            &["v1alpha1", "v1beta1"],
            ni,
            bad_ni,
            "spec.images[nginx].tags[0].version: must not be negative",
        ),
        (
            "/validate-apps-kruise-io-v1alpha1-workloadspread",
            "WorkloadSpread",
            &["v1alpha1"],
            ws(),
            bad_ws,
            "spec.subsets: at least one subset is required",
        ),
    ] {
        let handler = registry.admission_handler(path).unwrap_or_else(|| panic!("nothing at {path}"));
        for version in versions {
            let with_version = |mut v: Value| {
                v["apiVersion"] = json!(format!("{APPS_GROUP}/{version}"));
                v["kind"] = json!(kind);
                v
            };
            let allowed =
                handler.admit(&review(kind, version, "CREATE", with_version(good.clone()), Value::Null));
            assert!(allowed.allowed, "{kind} {version}: {}", allowed.result.message);
            let denied =
                handler.admit(&review(kind, version, "CREATE", with_version(bad.clone()), Value::Null));
            assert!(!denied.allowed, "{kind} {version}");
            assert_eq!(denied.result.message, reason, "{kind} {version}");
        }
    }
}
