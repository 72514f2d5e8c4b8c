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
