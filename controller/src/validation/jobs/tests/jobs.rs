//! BroadcastJob, AdvancedCronJob, ImagePullJob and ImageListPullJob rules.

use serde_json::{Value, json};

use super::*;

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
                "spec.template.spec.restartPolicy: Invalid value: \"Always\": must be Never or OnFailure",
            ),
            (
                |v| v["metadata"]["name"] = json!("warm_up"),
                "metadata.name: Invalid value: \"warm_up\": must consist of alphanumeric characters or '-'",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "ttlSecondsAfterFinished": 1}),
                "spec.completionPolicy.ttlSecondsAfterFinished: Invalid value: 1: works only with the Always type",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "activeDeadlineSeconds": 1}),
                "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 1: works only with the Always type",
            ),
            (
                |v| v["spec"]["template"]["metadata"]["labels"]["broadcastjob-controller-uid"] = json!("u"),
                "spec.template.metadata.labels: Invalid value: {\"app\":\"x\",\"broadcastjob-controller-uid\":\"u\"}: \"broadcastjob-controller-uid\" is set by the controller",
            ),
            (
                |v| v["spec"]["template"]["spec"]["containers"] = json!([]),
                "spec.template.spec.containers: Required value",
            ),
            (
                |v| v["spec"]["parallelism"] = json!("half"),
                "spec.parallelism: Invalid value: \"half\": \"half\" is not an integer or a percentage like \"25%\"",
            ),
        ],
    );
}

pub(super) fn acj() -> Value {
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
            (|v| v["spec"]["schedule"] = json!(""), "spec.schedule: Invalid value: \"\": must not be empty"),
            (
                |v| v["spec"]["schedule"] = json!("0 3 * *"),
                "spec.schedule: Invalid value: \"0 3 * *\": expected exactly 5 fields, found 4: \"0 3 * *\"",
            ),
            (
                |v| v["spec"]["schedule"] = json!("TZ=UTC 0 3 * * *"),
                "spec.schedule: Invalid value: \"TZ=UTC 0 3 * * *\": cannot use both timeZone and TZ or CRON_TZ",
            ),
            (
                |v| v["spec"]["timeZone"] = json!(""),
                "spec.timeZone: Invalid value: \"\": must be unset or a non-empty time zone",
            ),
            (
                |v| v["spec"]["timeZone"] = json!("Local"),
                "spec.timeZone: Invalid value: \"Local\": must be an explicit IANA time zone, not Local",
            ),
            (
                |v| v["spec"]["timeZone"] = json!("Mars/Olympus Mons"),
                "spec.timeZone: Invalid value: \"Mars/Olympus Mons\": unknown time zone",
            ),
            (
                |v| v["spec"]["startingDeadlineSeconds"] = json!(-1),
                "spec.startingDeadlineSeconds: Invalid value: -1: must not be negative",
            ),
            (
                |v| v["spec"]["successfulJobsHistoryLimit"] = json!(-1),
                "spec.successfulJobsHistoryLimit: Invalid value: -1: must not be negative",
            ),
            (
                |v| v["spec"]["failedJobsHistoryLimit"] = json!(-1),
                "spec.failedJobsHistoryLimit: Invalid value: -1: must not be negative",
            ),
            (
                |v| v["spec"]["template"] = json!({}),
                "spec.template: Forbidden: one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate is required",
            ),
            (
                |v| v["spec"]["template"]["jobTemplate"] = json!({"spec": {"template": pod_template()}}),
                "spec.template: Forbidden: only one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate may be set",
            ),
            (
                |v| {
                    let mut template = pod_template();
                    template["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
                    v["spec"]["template"] = json!({"jobTemplate": {"spec": {"template": template}}})
                },
                "spec.template.jobTemplate.spec.template.spec.containers[0].image: Required value",
            ),
            (
                |v| {
                    v["spec"]["template"]["broadcastJobTemplate"]["spec"]["template"]["spec"]["containers"]
                        [0]["name"] = json!("Bad")
                },
                "spec.template.broadcastJobTemplate.spec.template.spec.containers[0].name: Invalid value: \"Bad\": must consist of lower case alphanumeric characters or '-', and start and end with one",
            ),
            (
                |v| v["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()}),
                "spec.concurrencyPolicy: Invalid value: null: must be Replace or Forbid with an imageListPullJobTemplate",
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
            format!("{p}.completionPolicy.type: Invalid value: \"Never\": must be Always"),
        ),
        (
            |s| s["completionPolicy"]["ttlSecondsAfterFinished"] = json!(5),
            format!(
                "{p}.completionPolicy.ttlSecondsAfterFinished: Invalid value: 5: is not supported in an AdvancedCronJob"
            ),
        ),
        (
            |s| s["completionPolicy"]["activeDeadlineSeconds"] = json!(86_401),
            format!(
                "{p}.completionPolicy.activeDeadlineSeconds: Invalid value: 86401: must not be greater than 86400"
            ),
        ),
        (
            |s| s["completionPolicy"]["activeDeadlineSeconds"] = json!(100),
            format!(
                "{p}.completionPolicy.activeDeadlineSeconds: Invalid value: 100: must be greater than \
                 pullPolicy.timeoutSeconds (300)"
            ),
        ),
        (|s| s["images"] = json!([]), format!("{p}.images: Required value: at least one image")),
        (|s| s["images"] = json!(["a", "a"]), format!("{p}.images: Duplicate value: \"a\"")),
        (
            |s| s["images"] = json!(["UPPER"]),
            format!("{p}.images[0]: Invalid value: \"UPPER\": repository name must be lowercase"),
        ),
        (
            |s| s["selector"] = json!({"names": ["n1"], "matchLabels": {"a": "b"}}),
            format!(
                "{p}.selector: Invalid value: {{\"matchLabels\":{{\"a\":\"b\"}},\"names\":[\"n1\"]}}: names and \
                 labels are mutually exclusive"
            ),
        ),
        (
            |s| {
                s["selector"] = json!({"names": ["n1"]});
                s["podSelector"] = json!({"matchLabels": {"a": "b"}});
            },
            format!("{p}: Forbidden: selector and podSelector are mutually exclusive"),
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
        [
            "spec: Forbidden: only schedule, concurrencyPolicy, successfulJobsHistoryLimit, failedJobsHistoryLimit, startingDeadlineSeconds, paused, timeZone and imageListPullJobTemplate may change"
        ]
    );
    // an existing image-list template may change
    let mut old = acj();
    old["spec"]["template"] = json!({"imageListPullJobTemplate": ilpj_template()});
    old["spec"]["concurrencyPolicy"] = json!("Replace");
    let mut new = old.clone();
    new["spec"]["template"]["imageListPullJobTemplate"]["spec"]["images"] = json!(["nginx:1.28"]);
    assert_eq!(check(advanced_cron_job, &new, Some(&old)), Vec::<String>::new());
}

pub(super) fn ipj() -> Value {
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
            (|v| v["spec"]["image"] = json!(""), "spec.image: Required value"),
            (
                |v| v["spec"]["image"] = json!("web:"),
                "spec.image: Invalid value: \"web:\": invalid reference format",
            ),
            (
                |v| v["spec"]["parallelism"] = json!("50%"),
                "spec.parallelism: Invalid value: \"50%\": must not be a percentage",
            ),
            (
                |v| v["spec"]["parallelism"] = json!("x"),
                "spec.parallelism: Invalid value: \"x\": must be an integer",
            ),
            (
                |v| v["spec"]["parallelism"] = json!(-1),
                "spec.parallelism: Invalid value: -1: must not be negative",
            ),
            (
                |v| v["spec"]["parallelism"] = json!("-2"),
                "spec.parallelism: Invalid value: \"-2\": must not be negative",
            ),
            (
                |v| v["spec"]["selector"]["matchLabels"] = json!({"a": "b"}),
                "spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"},\"names\":[\"node-a\",\"node-b\"]}: names and labels are mutually exclusive",
            ),
            (
                |v| v["spec"]["selector"] = json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "spec.selector.matchExpressions[0].values: Required value: In and NotIn need values",
            ),
            (
                |v| v["spec"]["selector"]["names"] = json!(["n", "n"]),
                "spec.selector.names: Duplicate value: \"n\"",
            ),
            (
                |v| v["spec"]["podSelector"] = json!({"matchLabels": {"a": "b"}}),
                "spec: Forbidden: selector and podSelector are mutually exclusive",
            ),
            (
                |v| v["spec"]["completionPolicy"]["activeDeadlineSeconds"] = json!(200),
                "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 200: must be greater than pullPolicy.timeoutSeconds (300)",
            ),
            (
                |v| {
                    v["spec"]["completionPolicy"]["activeDeadlineSeconds"] = json!(599);
                    v["spec"].as_object_mut().unwrap().remove("pullPolicy");
                },
                "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 599: must be greater than pullPolicy.timeoutSeconds (600)",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "activeDeadlineSeconds": 1}),
                "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 1: works only with the Always type",
            ),
            (|v| v["spec"]["completionPolicy"] = json!({}), "spec.completionPolicy.type: Required value"),
        ],
    );
    let old = ipj();
    let mut new = old.clone();
    new["spec"]["parallelism"] = json!(5);
    assert_eq!(check(image_pull_job, &new, Some(&old)), Vec::<String>::new());
    new["spec"]["pullSecrets"] = json!(["other"]);
    assert_eq!(check(image_pull_job, &new, Some(&old)), ["spec.pullSecrets: Forbidden: is immutable"]);
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
            (|v| v["spec"]["images"] = json!([]), "spec.images: Required value: at least one image"),
            (
                |v| {
                    let many: Vec<String> = (0..256).map(|i| format!("img{i}")).collect();
                    v["spec"]["images"] = json!(many);
                },
                "spec.images: Too many: 256: must have at most 255 items",
            ),
            (|v| v["spec"]["images"] = json!(["a", "b", "a"]), "spec.images: Duplicate value: \"a\""),
            (
                |v| v["spec"]["images"] = json!(["ok", "a@sha256:zz"]),
                "spec.images[1]: Invalid value: \"a@sha256:zz\": invalid digest format",
            ),
            (
                |v| v["spec"]["podSelector"] = json!({"matchLabels": {"a": "b"}}),
                "spec: Forbidden: selector and podSelector are mutually exclusive",
            ),
            (
                |v| v["spec"]["completionPolicy"] = json!({"type": "Never", "ttlSecondsAfterFinished": 5}),
                "spec.completionPolicy.ttlSecondsAfterFinished: Invalid value: 5: works only with the Always type",
            ),
            (|v| v["spec"]["completionPolicy"] = json!({}), "spec.completionPolicy.type: Required value"),
        ],
    );
}
