//! The dump and hash against the derived vector D1 (R9's DaemonSet template under
//! k8s.io/api v0.32.10) and against go-spew's grammar on small pieces.

use serde_json::{Value, json};

use super::*;
use crate::hash::fnv32a;

/// R9's template: the pod template of a native DaemonSet after API defaults.
fn r9_template() -> Value {
    json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
        "spec": {
            "containers": [{
                "image": "nginx",
                "imagePullPolicy": "Always",
                "name": "nginx",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30
        }
    })
}

/// D1: the dump of [`r9_template`] under the v0.32.10 struct set (R9's published
/// 2,870-byte v0.22 dump with the fields added and removed since), 3,310 bytes.
/// Derived, not confirmed by a Go run.
const D1_DUMP: &str = "(v1.PodTemplateSpec){ObjectMeta:(v1.ObjectMeta){Name:(string) GenerateName:(string) \
    Namespace:(string) SelfLink:(string) UID:(types.UID) ResourceVersion:(string) \
    Generation:(int64)0 CreationTimestamp:(v1.Time){Time:(time.Time){wall:(uint64)0 ext:(int64)0 \
    loc:(*time.Location)<nil>}} DeletionTimestamp:(*v1.Time)<nil> \
    DeletionGracePeriodSeconds:(*int64)<nil> Labels:(map[string]string)map[app:nginx] \
    Annotations:(map[string]string)<nil> OwnerReferences:([]v1.OwnerReference)<nil> \
    Finalizers:([]string)<nil> ManagedFields:([]v1.ManagedFieldsEntry)<nil>} \
    Spec:(v1.PodSpec){Volumes:([]v1.Volume)<nil> InitContainers:([]v1.Container)<nil> \
    Containers:([]v1.Container)[{Name:(string)nginx Image:(string)nginx Command:([]string)<nil> \
    Args:([]string)<nil> WorkingDir:(string) Ports:([]v1.ContainerPort)<nil> \
    EnvFrom:([]v1.EnvFromSource)<nil> Env:([]v1.EnvVar)<nil> \
    Resources:(v1.ResourceRequirements){Limits:(v1.ResourceList)<nil> \
    Requests:(v1.ResourceList)<nil> Claims:([]v1.ResourceClaim)<nil>} \
    ResizePolicy:([]v1.ContainerResizePolicy)<nil> RestartPolicy:(*v1.ContainerRestartPolicy)<nil> \
    VolumeMounts:([]v1.VolumeMount)<nil> VolumeDevices:([]v1.VolumeDevice)<nil> \
    LivenessProbe:(*v1.Probe)<nil> ReadinessProbe:(*v1.Probe)<nil> StartupProbe:(*v1.Probe)<nil> \
    Lifecycle:(*v1.Lifecycle)<nil> TerminationMessagePath:(string)/dev/termination-log \
    TerminationMessagePolicy:(v1.TerminationMessagePolicy)File \
    ImagePullPolicy:(v1.PullPolicy)Always SecurityContext:(*v1.SecurityContext)<nil> \
    Stdin:(bool)false StdinOnce:(bool)false TTY:(bool)false}] \
    EphemeralContainers:([]v1.EphemeralContainer)<nil> RestartPolicy:(v1.RestartPolicy)Always \
    TerminationGracePeriodSeconds:(*int64)30 ActiveDeadlineSeconds:(*int64)<nil> \
    DNSPolicy:(v1.DNSPolicy)ClusterFirst NodeSelector:(map[string]string)<nil> \
    ServiceAccountName:(string) DeprecatedServiceAccount:(string) \
    AutomountServiceAccountToken:(*bool)<nil> NodeName:(string) HostNetwork:(bool)false \
    HostPID:(bool)false HostIPC:(bool)false ShareProcessNamespace:(*bool)<nil> \
    SecurityContext:(*v1.PodSecurityContext){SELinuxOptions:(*v1.SELinuxOptions)<nil> \
    WindowsOptions:(*v1.WindowsSecurityContextOptions)<nil> RunAsUser:(*int64)<nil> \
    RunAsGroup:(*int64)<nil> RunAsNonRoot:(*bool)<nil> SupplementalGroups:([]int64)<nil> \
    SupplementalGroupsPolicy:(*v1.SupplementalGroupsPolicy)<nil> FSGroup:(*int64)<nil> \
    Sysctls:([]v1.Sysctl)<nil> FSGroupChangePolicy:(*v1.PodFSGroupChangePolicy)<nil> \
    SeccompProfile:(*v1.SeccompProfile)<nil> AppArmorProfile:(*v1.AppArmorProfile)<nil> \
    SELinuxChangePolicy:(*v1.PodSELinuxChangePolicy)<nil>} \
    ImagePullSecrets:([]v1.LocalObjectReference)<nil> Hostname:(string) Subdomain:(string) \
    Affinity:(*v1.Affinity)<nil> SchedulerName:(string)default-scheduler \
    Tolerations:([]v1.Toleration)<nil> HostAliases:([]v1.HostAlias)<nil> PriorityClassName:(string) \
    Priority:(*int32)<nil> DNSConfig:(*v1.PodDNSConfig)<nil> \
    ReadinessGates:([]v1.PodReadinessGate)<nil> RuntimeClassName:(*string)<nil> \
    EnableServiceLinks:(*bool)<nil> PreemptionPolicy:(*v1.PreemptionPolicy)<nil> \
    Overhead:(v1.ResourceList)<nil> TopologySpreadConstraints:([]v1.TopologySpreadConstraint)<nil> \
    SetHostnameAsFQDN:(*bool)<nil> OS:(*v1.PodOS)<nil> HostUsers:(*bool)<nil> \
    SchedulingGates:([]v1.PodSchedulingGate)<nil> ResourceClaims:([]v1.PodResourceClaim)<nil> \
    Resources:(*v1.ResourceRequirements)<nil>}}";

/// Dumps the Go value of type `ty` decoded from `v`, tagged as a struct field is.
fn dump(ty: &'static str, v: Value) -> String {
    let mut d = Dumper::default();
    d.format(ty, Some(&v)).expect("dumps");
    d.out
}

fn dump_err(ty: &'static str, v: Value) -> DumpError {
    let mut d = Dumper::default();
    d.format(ty, Some(&v)).expect_err("rejected")
}

#[test]
fn d1_dump_and_hash_match() {
    let dump = dump_pod_template(&r9_template()).expect("dumps");
    assert_eq!(dump.len(), 3310);
    assert_eq!(dump, D1_DUMP);
    assert_eq!(fnv32a(dump.as_bytes()), 1_425_833_347);
    assert_eq!(daemon_set_template_hash(&r9_template(), None).expect("hash"), "5869d7778c");
}

#[test]
fn d2_collision_count_appends_eight_bytes() {
    assert_eq!(daemon_set_template_hash(&r9_template(), Some(0)).expect("hash"), "787975cfdc");
    assert_eq!(daemon_set_template_hash(&r9_template(), Some(1)).expect("hash"), "5dbdb99998");
    let mut with = b"abc".to_vec();
    with.extend_from_slice(&[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
    let want = crate::revision::safe_encode_string(&fnv32a(&with).to_string());
    assert_eq!(compute_hash(b"abc", Some(258)), want);
    let mut neg = b"abc".to_vec();
    neg.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let want = crate::revision::safe_encode_string(&fnv32a(&neg).to_string());
    assert_eq!(compute_hash(b"abc", Some(-1)), want);
}

#[test]
fn typed_template_gives_the_same_hash() {
    let typed: PodTemplateSpec = serde_json::from_value(r9_template()).expect("valid template");
    assert_eq!(daemon_set_hash(&typed, None).expect("hash"), "5869d7778c");
}

#[test]
fn unknown_keys_are_dropped_and_case_matters() {
    let mut t = r9_template();
    t["spec"]["bogus"] = json!({"x": 1});
    t["spec"]["containers"][0]["Image"] = json!("other");
    t["metadata"]["clusterName"] = json!("old-field");
    t["apiVersion"] = json!("v1");
    assert_eq!(dump_pod_template(&t).expect("dumps"), D1_DUMP);
}

#[test]
fn nil_and_empty_lists_and_maps_differ() {
    assert_eq!(dump("[]string", json!(null)).as_str(), "([]string)<nil>");
    assert_eq!(dump("[]string", json!([])).as_str(), "([]string)[]");
    assert_eq!(dump("[]string", json!(["a", "b c"])).as_str(), "([]string)[a b c]");
    assert_eq!(dump("map[string]string", json!(null)).as_str(), "(map[string]string)<nil>");
    assert_eq!(dump("map[string]string", json!({})).as_str(), "(map[string]string)map[]");
    assert_eq!(
        dump("map[string]string", json!({"b": "2", "B": "1", "a": ""})).as_str(),
        "(map[string]string)map[B:1 a: b:2]"
    );
    let sc =
        dump("v1.PodSecurityContext", json!({"supplementalGroups": [], "sysctls": [{"name": "n"}, null]}));
    assert!(sc.contains(" SupplementalGroups:([]int64)[] "), "{sc}");
    assert!(
        sc.contains(
            " Sysctls:([]v1.Sysctl)[{Name:(string)n Value:(string)} {Name:(string) Value:(string)}] "
        ),
        "{sc}"
    );
}

#[test]
fn pointers_print_their_type_once() {
    assert_eq!(dump("*int64", json!(30)), "(*int64)30");
    assert_eq!(dump("*int64", json!(null)), "(*int64)<nil>");
    assert_eq!(
        dump("*v1.SELinuxOptions", json!({})),
        "(*v1.SELinuxOptions){User:(string) Role:(string) Type:(string) Level:(string)}"
    );
    assert_eq!(dump("*v1.PullPolicy", json!("Never")), "(*v1.PullPolicy)Never");
    // In an untagged position (slice element, map value) spew writes <*> and <nil>.
    let mut d = Dumper { ignore_next_type: true, ..Dumper::default() };
    d.format("*int64", Some(&json!(5))).expect("dumps");
    assert_eq!(d.out, "<*>5");
    let mut d = Dumper { ignore_next_type: true, ..Dumper::default() };
    d.format("*int64", None).expect("dumps");
    assert_eq!(d.out, "<nil>");
    // spew leaves the suppression on after an untagged nil pointer.
    assert!(d.ignore_next_type);
}

#[test]
fn embedded_structs_take_their_keys_from_the_parent() {
    let probe = dump("v1.Probe", json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5}));
    assert_eq!(
        probe,
        "(v1.Probe){ProbeHandler:(v1.ProbeHandler){Exec:(*v1.ExecAction)<nil> HTTPGet:(*v1.HTTPGetAction){Path:(string)/ \
         Port:(intstr.IntOrString){Type:(intstr.Type)0 IntVal:(int32)8080 StrVal:(string)} Host:(string) \
         Scheme:(v1.URIScheme) HTTPHeaders:([]v1.HTTPHeader)<nil>} TCPSocket:(*v1.TCPSocketAction)<nil> \
         GRPC:(*v1.GRPCAction)<nil>} InitialDelaySeconds:(int32)0 TimeoutSeconds:(int32)0 PeriodSeconds:(int32)5 \
         SuccessThreshold:(int32)0 FailureThreshold:(int32)0 TerminationGracePeriodSeconds:(*int64)<nil>}"
    );
}

#[test]
fn int_or_string() {
    assert_eq!(
        dump("intstr.IntOrString", json!(8080)),
        "(intstr.IntOrString){Type:(intstr.Type)0 IntVal:(int32)8080 StrVal:(string)}"
    );
    assert_eq!(
        dump("intstr.IntOrString", json!("http")),
        "(intstr.IntOrString){Type:(intstr.Type)1 IntVal:(int32)0 StrVal:(string)http}"
    );
    assert_eq!(
        dump("intstr.IntOrString", json!(null)),
        "(intstr.IntOrString){Type:(intstr.Type)0 IntVal:(int32)0 StrVal:(string)}"
    );
    assert!(dump_err("intstr.IntOrString", json!(1.5)).reason.contains("32-bit"));
}

#[test]
fn times() {
    assert_eq!(
        dump("v1.Time", json!(null)),
        "(v1.Time){Time:(time.Time){wall:(uint64)0 ext:(int64)0 loc:(*time.Location)<nil>}}"
    );
    assert_eq!(dump("*v1.Time", json!(null)), "(*v1.Time)<nil>");
    assert_eq!(
        dump("v1.Time", json!("2024-01-02T03:04:05Z")),
        "(v1.Time){Time:(time.Time){wall:(uint64)0 ext:(int64)63839761445 loc:(*time.Location){name:(string)UTC \
         zone:([]time.zone)<nil> tx:([]time.zoneTrans)<nil> extend:(string) cacheStart:(int64)0 cacheEnd:(int64)0 \
         cacheZone:(*time.zone)<nil>}}}"
    );
    // The same instant with an offset and a fraction.
    assert!(
        dump("v1.Time", json!("2024-01-02T05:04:05.25+02:00"))
            .contains("{wall:(uint64)250000000 ext:(int64)63839761445 ")
    );
    // Before 1970: Go's nanoseconds are never negative.
    assert!(
        dump("v1.Time", json!("1969-12-31T23:59:59.5Z"))
            .contains("{wall:(uint64)500000000 ext:(int64)62135596799 ")
    );
    assert_eq!(dump_err("v1.Time", json!("yesterday")).path, "template");
}

/// The quantity body spew prints for the fast path.
fn fast(value: i64, scale: i32, cached: &str, format: &str) -> String {
    format!(
        "{{i:(resource.int64Amount){{value:(int64){value} scale:(resource.Scale){scale}}} \
         d:(resource.infDecAmount){{Dec:(*inf.Dec)<nil>}} s:(string){cached} Format:(resource.Format){format}}}"
    )
}

/// The quantity body spew prints for the inf.Dec path.
fn slow(neg: bool, abs: &str, scale: i32, format: &str) -> String {
    format!(
        "{{i:(resource.int64Amount){{value:(int64)0 scale:(resource.Scale)0}} \
         d:(resource.infDecAmount){{Dec:(*inf.Dec){{unscaled:(big.Int){{neg:(bool){neg} abs:(big.nat){abs}}} \
         scale:(inf.Scale){scale}}}}} s:(string) Format:(resource.Format){format}}}"
    )
}

#[test]
fn quantities_print_go_internals() {
    let q = |s: &str| dump("resource.Quantity", json!(s));
    let tagged = |body: String| format!("(resource.Quantity){body}");
    assert_eq!(q("100m"), tagged(fast(100, -3, "100m", "DecimalSI")));
    assert_eq!(q("1000m"), tagged(fast(1000, -3, "", "DecimalSI")));
    assert_eq!(q("0"), tagged(fast(0, 0, "0", "DecimalSI")));
    assert_eq!(q("00"), tagged(fast(0, 0, "", "DecimalSI")));
    assert_eq!(q("0.5"), tagged(fast(5, -1, "", "DecimalSI")));
    assert_eq!(q("2"), tagged(fast(2, 0, "2", "DecimalSI")));
    assert_eq!(q("+2"), tagged(fast(2, 0, "+2", "DecimalSI")));
    assert_eq!(q("-100m"), tagged(fast(-100, -3, "-100m", "DecimalSI")));
    assert_eq!(q("1k"), tagged(fast(1, 3, "1k", "DecimalSI")));
    assert_eq!(q("1e3"), tagged(fast(1, 3, "1e3", "DecimalExponent")));
    assert_eq!(q("1Gi"), tagged(fast(1 << 30, 0, "1Gi", "BinarySI")));
    assert_eq!(q("8Gi"), tagged(fast(8 << 30, 0, "", "BinarySI")));
    assert_eq!(q("1.5Gi"), tagged(slow(false, "[1610612736000000000]", 9, "BinarySI")));
    assert_eq!(q("-1.5Gi"), tagged(slow(true, "[1610612736000000000]", 9, "BinarySI")));
    assert_eq!(q("0.5Ki"), tagged(slow(false, "[512000000000]", 9, "BinarySI")));
    assert_eq!(q("0.0005Ki"), tagged(slow(false, "[512000000]", 9, "DecimalSI")));
    assert_eq!(q("1Ei"), tagged(slow(false, "[0 62500000]", 9, "BinarySI")));
    assert_eq!(
        q("12345678901234567890"),
        tagged(slow(false, "[5097733592002180096 669260594]", 9, "DecimalSI"))
    );
    assert_eq!(q("0.0000000001"), tagged(slow(false, "[1]", 9, "DecimalSI")));
    assert_eq!(q("0.0000000000"), tagged(slow(false, "<nil>", 10, "DecimalSI")));
    // A JSON number is parsed from its text like a string.
    assert_eq!(dump("resource.Quantity", json!(2)), tagged(fast(2, 0, "2", "DecimalSI")));
    // null is the zero Quantity; a nil pointer stays nil.
    assert_eq!(dump("resource.Quantity", json!(null)), tagged(fast(0, 0, "", "")));
    assert_eq!(dump("*resource.Quantity", json!(null)), "(*resource.Quantity)<nil>");
    assert_eq!(
        dump("*resource.Quantity", json!("1Gi")),
        format!("(*resource.Quantity){}", fast(1 << 30, 0, "1Gi", "BinarySI"))
    );
}

#[test]
fn resource_lists_omit_value_tags() {
    let r =
        dump("v1.ResourceRequirements", json!({"limits": {"memory": "1Gi", "cpu": "100m"}, "requests": {}}));
    assert_eq!(
        r,
        format!(
            "(v1.ResourceRequirements){{Limits:(v1.ResourceList)map[cpu:{} memory:{}] Requests:(v1.ResourceList)map[] \
             Claims:([]v1.ResourceClaim)<nil>}}",
            fast(100, -3, "100m", "DecimalSI"),
            fast(1 << 30, 0, "1Gi", "BinarySI")
        )
    );
}

#[test]
fn bad_values_are_named() {
    let mut t = r9_template();
    t["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "lots"}});
    let err = dump_pod_template(&t).expect_err("bad quantity");
    assert_eq!(err.path, "spec.containers[0].resources.limits.cpu");
    assert!(err.reason.contains("lots"), "{err}");

    let mut t = r9_template();
    t["spec"]["terminationGracePeriodSeconds"] = json!("30");
    let err = dump_pod_template(&t).expect_err("string for an integer");
    assert_eq!(err.to_string(), "spec.terminationGracePeriodSeconds: expected an integer, found a string");

    let mut t = r9_template();
    t["spec"]["containers"][0]["ports"] = json!([{"containerPort": 4_294_967_296_i64}]);
    let err = dump_pod_template(&t).expect_err("out of range");
    assert_eq!(err.path, "spec.containers[0].ports[0].containerPort");

    assert_eq!(dump_err("int64", json!(u64::MAX)).reason, "18446744073709551615 does not fit in int64");
    assert_eq!(dump_err("int32", json!(1.5)).reason, "1.5 is not an integer");

    let err = dump_pod_template(&json!([])).expect_err("not an object");
    assert_eq!(err.path, "template");
    let err = daemon_set_template_hash(&json!({"spec": {"containers": "x"}}), None).expect_err("not a list");
    assert!(matches!(err, RevisionError::Dump(_)));
    assert_eq!(err.to_string(), "spec.template: spec.containers: expected a list, found a string");
}

#[test]
fn schema_is_sorted_and_closed() {
    for pair in TYPES.windows(2) {
        assert!(pair[0].0.as_bytes() < pair[1].0.as_bytes(), "{} before {}", pair[0].0, pair[1].0);
    }
    fn resolves(ty: &str) -> bool {
        let base = ty.trim_start_matches('*').trim_start_matches("[]");
        if let Some(rest) = base.strip_prefix("map[") {
            let (k, v) = rest.split_once(']').expect("map type");
            return resolves(k) && resolves(v);
        }
        if base != ty {
            return resolves(base);
        }
        matches!(base, "string" | "bool" | "int32" | "int64" | "uint8")
            || matches!(base, "resource.Quantity" | "intstr.IntOrString" | "v1.Time" | "v1.FieldsV1")
            || lookup(base).is_some()
    }
    for (name, def) in TYPES {
        match def {
            Def::Struct(fields) => {
                for (go, _, ty) in *fields {
                    assert!(resolves(ty), "{name}.{go}: {ty}");
                }
            }
            Def::Named(under) => assert!(resolves(under), "{name}: {under}"),
        }
    }
    assert!(lookup("v1.PodTemplateSpec").is_some());
}
