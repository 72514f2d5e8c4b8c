//! The spec's test vectors (openkruise-revisions.md §5) and the building blocks' rules.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::crd::clone_set::{CloneSetSpec, CloneSetStatus};
use crate::hash::{fnv32, fnv32a};

/// R1: CloneSet `sample`, image `nginx:alpine` (OpenKruise's CloneSet user manual).
const R1: &str = r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"sample"}},"spec":{"containers":[{"image":"nginx:alpine","imagePullPolicy":"Always","name":"nginx","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;

/// R3: native StatefulSet `nginx-sts` (same code path as Advanced StatefulSet).
const R3: &str = r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"nginx-sts"}},"spec":{"containers":[{"image":"nginx","imagePullPolicy":"Always","name":"nginx","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;

/// The defaulted template of R1–R3: one `nginx` container with `image`, labelled `app`.
fn defaulted_template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_owned(), app.to_owned())].into()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".to_owned(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("Always".to_owned()),
                termination_message_path: Some("/dev/termination-log".to_owned()),
                termination_message_policy: Some("File".to_owned()),
                ..Container::default()
            }],
            dns_policy: Some("ClusterFirst".to_owned()),
            restart_policy: Some("Always".to_owned()),
            scheduler_name: Some("default-scheduler".to_owned()),
            security_context: Some(PodSecurityContext::default()),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
    }
}

fn clone_set(name: &str, template: PodTemplateSpec, cc: Option<i32>) -> CloneSet {
    let mut cs = CloneSet::new(name, CloneSetSpec { template, ..CloneSetSpec::default() });
    cs.metadata.annotations = Some([("owner".to_owned(), "team-a".to_owned())].into());
    cs.status = cc.map(|c| CloneSetStatus { collision_count: Some(c), ..CloneSetStatus::default() });
    cs
}

#[test]
fn safe_encode_maps_digits_and_hex() {
    assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
    assert_eq!(safe_encode_string("abcdef"), "vwxz24");
    assert_eq!(safe_encode_string("2354824878"), "6798d68dcd");
    assert_eq!(safe_encode_string(""), "");
}

#[test]
fn r3_stateful_set_hash_is_fnv1_with_the_probe() {
    // FNV-1 over the data and "0" (the collision count), as published.
    assert_eq!(Fnv32::default().write(R3.as_bytes()).write(b"0").sum32(), 2_354_824_878);
    assert_eq!(hash_controller_revision(R3.as_bytes(), Some(0)), "6798d68dcd");
    assert_eq!(revision_name("nginx-sts", R3, 0).0, "nginx-sts-6798d68dcd");
    // Without the probe, or with FNV-1a, the names are the spec's wrong ones.
    assert_eq!(hash_controller_revision(R3.as_bytes(), None), "88b7d489d");
    let mut with_probe = R3.as_bytes().to_vec();
    with_probe.push(b'0');
    assert_eq!(safe_encode_string(&fnv32a(&with_probe).to_string()), "58b47589b4");
    assert_eq!(fnv32(&with_probe), 2_354_824_878);
}

#[test]
fn r3_stateful_set_revision_from_typed_object() {
    let mut set = StatefulSet::new("nginx-sts", Default::default());
    set.spec.template = defaulted_template("nginx-sts", "nginx");
    let rev = stateful_set_revision(&set).expect("revision");
    assert_eq!(rev.data, R3);
    assert_eq!(rev.name, "nginx-sts-6798d68dcd");
    assert_eq!(rev.hash, "6798d68dcd");
    assert_eq!(rev.labels.get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str), Some("6798d68dcd"));
    assert_eq!(rev.labels.get("app").map(String::as_str), Some("nginx-sts"));
}

#[test]
fn daemon_set_data_is_the_template_patch() {
    // R9's DaemonSet `nginx-ds` has R3's template with label app=nginx.
    let mut ds = DaemonSet::new("nginx-ds", Default::default());
    ds.spec.template = defaulted_template("nginx", "nginx");
    let data = daemon_set_patch(&ds).expect("patch");
    assert_eq!(data, R3.replace("nginx-sts", "nginx"));
    let rev = daemon_set_revision(&ds).expect("revision");
    assert_eq!(rev.data, data);
    let hash = spew::daemon_set_hash(&ds.spec.template, None).expect("hash");
    assert_eq!((rev.name, rev.hash.as_str()), (format!("nginx-ds-{hash}"), hash.as_str()));
    assert_eq!(rev.labels.get("controller-revision-hash"), Some(&hash));
    assert_eq!(rev.labels.get("app").map(String::as_str), Some("nginx"));
}

#[test]
fn r1_r2_clone_set_names_from_literal_data() {
    assert_eq!(revision_name("sample", R1, 0).0, "sample-d4d4fb5bd");
    let r2 = R1.replace("nginx:alpine", "nginx:mainline");
    assert_eq!(revision_name("sample", &r2, 0).0, "sample-56dfb978d4");
}

#[test]
fn r1_r2_clone_set_revision_from_typed_object() {
    let rev = clone_set_revision(&clone_set("sample", defaulted_template("sample", "nginx:alpine"), None))
        .expect("revision");
    assert_eq!(rev.data, R1);
    assert_eq!(rev.name, "sample-d4d4fb5bd");
    assert_eq!(rev.hash, "d4d4fb5bd");
    assert_eq!(rev.labels.get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str), Some("d4d4fb5bd"));
    assert_eq!(rev.labels.get("app").map(String::as_str), Some("sample"));
    assert_eq!(rev.annotations.get("owner").map(String::as_str), Some("team-a"));
    assert_eq!(rev.annotations.get(CLONESET_VCT_HASH_ANNOTATION).map(String::as_str), Some(""));

    let rev =
        clone_set_revision(&clone_set("sample", defaulted_template("sample", "nginx:mainline"), Some(0)))
            .expect("revision");
    assert_eq!(rev.name, "sample-56dfb978d4");
    assert_eq!(short_hash(&rev.name), "56dfb978d4");
}

#[test]
fn collision_count_changes_the_name_not_the_data() {
    let cs0 = clone_set("sample", defaulted_template("sample", "nginx:alpine"), None);
    let cs1 = clone_set("sample", defaulted_template("sample", "nginx:alpine"), Some(1));
    let (r0, r1) = (clone_set_revision(&cs0).expect("rev"), clone_set_revision(&cs1).expect("rev"));
    assert_eq!(r0.data, r1.data);
    assert_ne!(r0.name, r1.name);
    let mut probed = R1.as_bytes().to_vec();
    probed.extend_from_slice(b"1");
    assert_eq!(r1.hash, safe_encode_string(&fnv32(&probed).to_string()));
    // Negative counts keep their sign in the probe.
    let mut neg = R1.as_bytes().to_vec();
    neg.extend_from_slice(b"-3");
    assert_eq!(
        hash_controller_revision(R1.as_bytes(), Some(-3)),
        safe_encode_string(&fnv32(&neg).to_string())
    );
}

#[test]
fn names_cut_the_prefix_to_223_bytes() {
    let long = "a".repeat(300);
    let name = controller_revision_name(&long, "xyz");
    assert_eq!(name.len(), 223 + 4);
    assert!(name.ends_with("a-xyz"));
    assert_eq!(controller_revision_name("web", "5d8"), "web-5d8");
}

#[test]
fn short_hash_and_matching() {
    assert_eq!(short_hash("sample-d4d4fb5bd"), "d4d4fb5bd");
    assert_eq!(short_hash("my-app-x-d4d4fb5bd"), "d4d4fb5bd");
    assert_eq!(short_hash("d4d4fb5bd"), "d4d4fb5bd");
    assert!(clone_set_revision_matches("d4d4fb5bd", "sample-d4d4fb5bd"));
    assert!(clone_set_revision_matches("sample-d4d4fb5bd", "sample-d4d4fb5bd"));
    assert!(!clone_set_revision_matches("sample-56dfb978d4", "sample-d4d4fb5bd"));
}

#[test]
fn shell_metacharacters_are_html_escaped_in_data() {
    let mut t = defaulted_template("sample", "nginx:alpine");
    if let Some(spec) = t.spec.as_mut() {
        spec.containers[0].command = Some(vec!["sh".into(), "-c".into(), "a && b > c".into()]);
    }
    let data = template_patch(&t).expect("patch");
    assert!(data.contains(r#""command":["sh","-c","a \u0026\u0026 b \u003e c"]"#), "{data}");
}

mod sidecar_set {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};

    use super::*;
    use crate::crd::sidecar_set::v1beta1::SidecarSetSpec;
    use crate::crd::sidecar_set::{
        PodInjectPolicy, ShareVolumePolicy, ShareVolumePolicyType, SidecarContainer,
        SidecarContainerUpgradeStrategy, SidecarContainerUpgradeType,
    };

    /// R7: the published revision data of `test-sidecarset` (written by a pre-v1.3
    /// release: no `$patch`, no `patchPodMetadata`), image `asd`.
    const R7: &str = r#"{"spec":{"containers":[{"command":["sleep","999d"],"image":"asd","imagePullPolicy":"Always","name":"sidecar1","podInjectPolicy":"BeforeAppContainer","resources":{},"shareVolumePolicy":{"type":"disabled"},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","upgradeStrategy":{"upgradeType":"ColdUpgrade"},"volumeMounts":[{"mountPath":"/var/log","name":"log-volume"}]}],"imagePullSecrets":null,"initContainers":null,"volumes":[{"emptyDir":{},"name":"log-volume"}]}}"#;

    /// R7's data in v1.9.0's key set.
    fn v1_9_data(image: &str) -> String {
        R7.replace(r#"{"spec":{"containers""#, r#"{"spec":{"$patch":"replace","containers""#)
            .replace(r#""initContainers":null,"#, r#""initContainers":null,"patchPodMetadata":null,"#)
            .replace(r#""image":"asd""#, &format!(r#""image":"{image}""#))
    }

    fn set(image: &str) -> SidecarSet {
        let container = SidecarContainer {
            container: Container {
                name: "sidecar1".to_owned(),
                image: Some(image.to_owned()),
                command: Some(vec!["sleep".to_owned(), "999d".to_owned()]),
                image_pull_policy: Some("Always".to_owned()),
                termination_message_path: Some("/dev/termination-log".to_owned()),
                termination_message_policy: Some("File".to_owned()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "log-volume".to_owned(),
                    mount_path: "/var/log".to_owned(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            },
            pod_inject_policy: Some(PodInjectPolicy::BeforeAppContainer),
            upgrade_strategy: Some(SidecarContainerUpgradeStrategy {
                upgrade_type: Some(SidecarContainerUpgradeType::ColdUpgrade),
                ..SidecarContainerUpgradeStrategy::default()
            }),
            share_volume_policy: Some(ShareVolumePolicy { type_: Some(ShareVolumePolicyType::Disabled) }),
            ..SidecarContainer::default()
        };
        let mut s = SidecarSet::new(
            "test-sidecarset",
            SidecarSetSpec {
                containers: Some(vec![container]),
                volumes: Some(vec![Volume {
                    name: "log-volume".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                }]),
                ..SidecarSetSpec::default()
            },
        );
        s.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        s
    }

    #[test]
    fn r7_r8_published_names_from_literal_data() {
        assert_eq!(revision_name("test-sidecarset", R7, 0).0, "test-sidecarset-647888bd78");
        let r8 = R7.replace(r#""image":"asd""#, r#""image":"nginx""#);
        assert_eq!(revision_name("test-sidecarset", &r8, 0).0, "test-sidecarset-7fffd8d6c8");
    }

    #[test]
    fn v1_9_data_and_derived_names_from_typed_object() {
        // The v1.9.0 names are derived vectors (the spec's model, not Go).
        let rev = sidecar_set_revision(&set("asd")).expect("revision");
        assert_eq!(rev.data, v1_9_data("asd"));
        assert_eq!(rev.name, "test-sidecarset-846c788df");
        assert_eq!(rev.labels.get(SIDECARSET_NAME_LABEL).map(String::as_str), Some("test-sidecarset"));
        assert_eq!(rev.labels.get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str), Some("846c788df"));
        assert_eq!(rev.annotations.get("a").map(String::as_str), Some("b"));
        let rev = sidecar_set_revision(&set("nginx")).expect("revision");
        assert_eq!(rev.data, v1_9_data("nginx"));
        assert_eq!(rev.name, "test-sidecarset-7dbd4f4485");
    }

    #[test]
    fn struct_fields_go_never_omits_are_present() {
        let mut s = set("x");
        if let Some(c) = s.spec.containers.as_mut() {
            c[0].upgrade_strategy = None;
            c[0].share_volume_policy = None;
        }
        s.spec.custom_version = Some("v2".to_owned());
        s.spec.volumes = Some(vec![]);
        let rev = sidecar_set_revision(&s).expect("revision");
        assert!(rev.data.contains(r#""shareVolumePolicy":{}"#), "{}", rev.data);
        assert!(rev.data.contains(r#""upgradeStrategy":{}"#), "{}", rev.data);
        assert!(rev.data.ends_with(r#""volumes":null}}"#), "{}", rev.data);
        assert_eq!(rev.labels.get(SIDECARSET_CUSTOM_VERSION).map(String::as_str), Some("v2"));
    }
}
