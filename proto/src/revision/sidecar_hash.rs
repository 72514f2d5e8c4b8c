//! The SidecarSet hash annotations `kruise.io/sidecarset-hash` and
//! `kruise.io/sidecarset-hash-without-image`.
//!
//! OpenKruise marshals `{"containers": [...]}` (plus `"initContainers"`, all of them,
//! when any init container is a native sidecar with `restartPolicy: Always`) with
//! Go's struct marshal: the top-level keys sorted (a Go map), each container's fields
//! in Go declaration order with `omitempty` applied. It takes the SHA-256 of those
//! bytes and maps the 64 hex digits onto Kubernetes' safe alphabet. The
//! without-image variant blanks every `image` first, so the key disappears.
//!
//! The field order comes from the tables below (k8s.io/api v0.32 `Container` and
//! the types under it, then OpenKruise's sidecar fields). A field the tables do not
//! know is an error, never a guess: a wrong hash would mark every injected pod for a
//! sidecar upgrade.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::gojson::encode;
use super::safe_encode_string;
use crate::crd::sidecar_set::SidecarContainer;

/// Why a SidecarSet hash could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum SidecarHashError {
    /// A container did not serialise.
    #[error("spec.containers: cannot serialise: {0}")]
    Serialise(#[from] serde_json::Error),
    /// A resource quantity is not valid.
    #[error("spec.containers: {0}")]
    Quantity(#[from] super::quantity::QuantityError),
    /// A field whose Go position is not known.
    #[error("{path}: field not known to the hash's Go field order")]
    UnknownField {
        /// Where the field is.
        path: String,
    },
}

/// How a field is left out.
#[derive(Clone, Copy)]
enum Omit {
    /// `omitempty` on a plain value: left out when absent or zero.
    Zero,
    /// A pointer (or struct with `omitempty` ignored): left out only when absent.
    Absent,
    /// Never left out: written as the given text when absent.
    Never(&'static str),
}

/// The Go shape of a value.
enum Shape {
    /// A scalar or a list of scalars.
    Leaf,
    /// A Go map: keys sorted.
    Map,
    /// A Go struct: fields in this order.
    Struct(&'static [(&'static str, Omit, &'static Shape)]),
    /// A Go slice of structs.
    List(&'static Shape),
}

use Omit::{Absent, Never, Zero};
use Shape::{Leaf, List, Map, Struct};

static OPT_REF: Shape = Struct(&[("name", Zero, &Leaf), ("optional", Absent, &Leaf)]);
static KEY_REF: Shape =
    Struct(&[("name", Zero, &Leaf), ("key", Never("\"\""), &Leaf), ("optional", Absent, &Leaf)]);
static ENV_SOURCE: Shape = Struct(&[
    ("fieldRef", Absent, &Struct(&[("apiVersion", Zero, &Leaf), ("fieldPath", Never("\"\""), &Leaf)])),
    (
        "resourceFieldRef",
        Absent,
        &Struct(&[
            ("containerName", Zero, &Leaf),
            ("resource", Never("\"\""), &Leaf),
            ("divisor", Never("\"0\""), &Leaf),
        ]),
    ),
    ("configMapKeyRef", Absent, &KEY_REF),
    ("secretKeyRef", Absent, &KEY_REF),
]);
static ENV: Shape =
    Struct(&[("name", Never("\"\""), &Leaf), ("value", Zero, &Leaf), ("valueFrom", Absent, &ENV_SOURCE)]);
static ENV_FROM: Shape =
    Struct(&[("prefix", Zero, &Leaf), ("configMapRef", Absent, &OPT_REF), ("secretRef", Absent, &OPT_REF)]);
static PORT: Shape = Struct(&[
    ("name", Zero, &Leaf),
    ("hostPort", Zero, &Leaf),
    ("containerPort", Never("0"), &Leaf),
    ("protocol", Zero, &Leaf),
    ("hostIP", Zero, &Leaf),
]);
static RESOURCES: Shape = Struct(&[
    ("limits", Zero, &Map),
    ("requests", Zero, &Map),
    ("claims", Zero, &List(&Struct(&[("name", Never("\"\""), &Leaf), ("request", Zero, &Leaf)]))),
]);
static VOLUME_MOUNT: Shape = Struct(&[
    ("name", Never("\"\""), &Leaf),
    ("readOnly", Zero, &Leaf),
    ("recursiveReadOnly", Absent, &Leaf),
    ("mountPath", Never("\"\""), &Leaf),
    ("subPath", Zero, &Leaf),
    ("mountPropagation", Absent, &Leaf),
    ("subPathExpr", Zero, &Leaf),
]);
static EXEC: Shape = Struct(&[("command", Zero, &Leaf)]);
static HTTP_GET: Shape = Struct(&[
    ("path", Zero, &Leaf),
    ("port", Never("0"), &Leaf),
    ("host", Zero, &Leaf),
    ("scheme", Zero, &Leaf),
    ("httpHeaders", Zero, &List(&Struct(&[("name", Never("\"\""), &Leaf), ("value", Never("\"\""), &Leaf)]))),
]);
static TCP: Shape = Struct(&[("port", Never("0"), &Leaf), ("host", Zero, &Leaf)]);
static PROBE: Shape = Struct(&[
    ("exec", Absent, &EXEC),
    ("httpGet", Absent, &HTTP_GET),
    ("tcpSocket", Absent, &TCP),
    ("grpc", Absent, &Struct(&[("port", Never("0"), &Leaf), ("service", Never("null"), &Leaf)])),
    ("initialDelaySeconds", Zero, &Leaf),
    ("timeoutSeconds", Zero, &Leaf),
    ("periodSeconds", Zero, &Leaf),
    ("successThreshold", Zero, &Leaf),
    ("failureThreshold", Zero, &Leaf),
    ("terminationGracePeriodSeconds", Absent, &Leaf),
]);
static HANDLER: Shape = Struct(&[
    ("exec", Absent, &EXEC),
    ("httpGet", Absent, &HTTP_GET),
    ("tcpSocket", Absent, &TCP),
    ("sleep", Absent, &Struct(&[("seconds", Never("0"), &Leaf)])),
]);
static PROFILE: Shape = Struct(&[("type", Never("\"\""), &Leaf), ("localhostProfile", Absent, &Leaf)]);
static SECURITY_CONTEXT: Shape = Struct(&[
    ("capabilities", Absent, &Struct(&[("add", Zero, &Leaf), ("drop", Zero, &Leaf)])),
    ("privileged", Absent, &Leaf),
    (
        "seLinuxOptions",
        Absent,
        &Struct(&[
            ("user", Zero, &Leaf),
            ("role", Zero, &Leaf),
            ("type", Zero, &Leaf),
            ("level", Zero, &Leaf),
        ]),
    ),
    (
        "windowsOptions",
        Absent,
        &Struct(&[
            ("gmsaCredentialSpecName", Absent, &Leaf),
            ("gmsaCredentialSpec", Absent, &Leaf),
            ("runAsUserName", Absent, &Leaf),
            ("hostProcess", Absent, &Leaf),
        ]),
    ),
    ("runAsUser", Absent, &Leaf),
    ("runAsGroup", Absent, &Leaf),
    ("runAsNonRoot", Absent, &Leaf),
    ("readOnlyRootFilesystem", Absent, &Leaf),
    ("allowPrivilegeEscalation", Absent, &Leaf),
    ("procMount", Absent, &Leaf),
    ("seccompProfile", Absent, &PROFILE),
    ("appArmorProfile", Absent, &PROFILE),
]);

/// OpenKruise's `SidecarContainer`: the embedded core container's fields, then its own.
static SIDECAR_CONTAINER: Shape = Struct(&[
    ("name", Never("\"\""), &Leaf),
    ("image", Zero, &Leaf),
    ("command", Zero, &Leaf),
    ("args", Zero, &Leaf),
    ("workingDir", Zero, &Leaf),
    ("ports", Zero, &List(&PORT)),
    ("envFrom", Zero, &List(&ENV_FROM)),
    ("env", Zero, &List(&ENV)),
    ("resources", Never("{}"), &RESOURCES),
    (
        "resizePolicy",
        Zero,
        &List(&Struct(&[("resourceName", Never("\"\""), &Leaf), ("restartPolicy", Never("\"\""), &Leaf)])),
    ),
    ("restartPolicy", Absent, &Leaf),
    ("volumeMounts", Zero, &List(&VOLUME_MOUNT)),
    (
        "volumeDevices",
        Zero,
        &List(&Struct(&[("name", Never("\"\""), &Leaf), ("devicePath", Never("\"\""), &Leaf)])),
    ),
    ("livenessProbe", Absent, &PROBE),
    ("readinessProbe", Absent, &PROBE),
    ("startupProbe", Absent, &PROBE),
    ("lifecycle", Absent, &Struct(&[("postStart", Absent, &HANDLER), ("preStop", Absent, &HANDLER)])),
    ("terminationMessagePath", Zero, &Leaf),
    ("terminationMessagePolicy", Zero, &Leaf),
    ("imagePullPolicy", Zero, &Leaf),
    ("securityContext", Absent, &SECURITY_CONTEXT),
    ("stdin", Zero, &Leaf),
    ("stdinOnce", Zero, &Leaf),
    ("tty", Zero, &Leaf),
    ("podInjectPolicy", Zero, &Leaf),
    (
        "upgradeStrategy",
        Never("{}"),
        &Struct(&[("upgradeType", Zero, &Leaf), ("hotUpgradeEmptyImage", Zero, &Leaf)]),
    ),
    ("shareVolumePolicy", Never("{}"), &Struct(&[("type", Zero, &Leaf)])),
    ("shareVolumeDevicePolicy", Absent, &Struct(&[("type", Zero, &Leaf)])),
    (
        "transferEnv",
        Zero,
        &List(&Struct(&[
            ("sourceContainerName", Zero, &Leaf),
            ("sourceContainerNameFrom", Absent, &Struct(&[("fieldRef", Absent, &Leaf)])),
            ("envName", Zero, &Leaf),
            ("envNames", Zero, &Leaf),
        ])),
    ),
    ("resourcesPolicy", Absent, &Leaf),
]);

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn write(out: &mut String, v: &Value, shape: &Shape, path: &str) -> Result<(), SidecarHashError> {
    match (shape, v) {
        // A struct this table does not describe would come out in the wrong order.
        (Leaf, Value::Object(_)) => return Err(SidecarHashError::UnknownField { path: path.to_owned() }),
        (Leaf | Map, _) | (_, Value::Null) => out.push_str(&encode(v)),
        (List(item), Value::Array(items)) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, it, item, &format!("{path}[{i}]"))?;
            }
            out.push(']');
        }
        (Struct(fields), Value::Object(map)) => {
            if let Some(k) = map.keys().find(|k| !fields.iter().any(|(f, _, _)| f == k)) {
                return Err(SidecarHashError::UnknownField { path: format!("{path}.{k}") });
            }
            out.push('{');
            let mut first = true;
            for (name, omit, sub) in *fields {
                let value = map.get(*name);
                let text = match (value, omit) {
                    (None, Never(lit)) => (*lit).to_owned(),
                    (None, _) => continue,
                    (Some(v), Zero) if is_zero(v) => continue,
                    (Some(v), _) => {
                        let mut s = String::new();
                        write(&mut s, v, sub, &format!("{path}.{name}"))?;
                        s
                    }
                };
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&encode(&Value::String((*name).to_owned())));
                out.push(':');
                out.push_str(&text);
            }
            out.push('}');
        }
        _ => return Err(SidecarHashError::UnknownField { path: path.to_owned() }),
    }
    Ok(())
}

/// The bytes OpenKruise hashes for these sidecars.
pub fn hash_input(
    containers: Option<&[SidecarContainer]>,
    init_containers: Option<&[SidecarContainer]>,
    without_image: bool,
) -> Result<String, SidecarHashError> {
    let list = |cs: Option<&[SidecarContainer]>, key: &str| -> Result<String, SidecarHashError> {
        let Some(cs) = cs else { return Ok("null".to_owned()) };
        let mut out = String::from("[");
        for (i, c) in cs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut v = serde_json::to_value(c)?;
            super::template::canonical_quantities(&mut v)?;
            if let (true, Value::Object(m)) = (without_image, &mut v) {
                m.remove("image");
            }
            write(&mut out, &v, &SIDECAR_CONTAINER, &format!("spec.{key}[{i}]"))?;
        }
        out.push(']');
        Ok(out)
    };
    let mut out = format!("{{\"containers\":{}", list(containers, "containers")?);
    let native_sidecar = init_containers
        .unwrap_or_default()
        .iter()
        .any(|c| c.container.restart_policy.as_deref() == Some("Always"));
    if native_sidecar {
        out.push_str(&format!(",\"initContainers\":{}", list(init_containers, "initContainers")?));
    }
    out.push('}');
    Ok(out)
}

/// `kruise.io/sidecarset-hash` (or, with `without_image`, the
/// `-without-image` twin) of a SidecarSet's containers and init containers.
pub fn sidecar_set_hash(
    containers: Option<&[SidecarContainer]>,
    init_containers: Option<&[SidecarContainer]>,
    without_image: bool,
) -> Result<String, SidecarHashError> {
    let input = hash_input(containers, init_containers, without_image)?;
    let digest = Sha256::digest(input.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(safe_encode_string(&hex))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, VolumeMount};

    use super::*;
    use crate::crd::sidecar_set::{
        PodInjectPolicy, ShareVolumePolicy, ShareVolumePolicyType, SidecarContainerUpgradeStrategy,
        SidecarContainerUpgradeType,
    };

    fn bare(name: &str, image: &str) -> SidecarContainer {
        SidecarContainer {
            container: Container {
                name: name.to_owned(),
                image: Some(image.to_owned()),
                ..Container::default()
            },
            ..SidecarContainer::default()
        }
    }

    fn native(mut c: SidecarContainer) -> SidecarContainer {
        c.container.restart_policy = Some("Always".to_owned());
        c
    }

    /// With the defaults OpenKruise's webhook sets before hashing.
    fn defaulted(mut c: SidecarContainer, pull: &str) -> SidecarContainer {
        c.container.termination_message_path = Some("/dev/termination-log".to_owned());
        c.container.termination_message_policy = Some("File".to_owned());
        c.container.image_pull_policy = Some(pull.to_owned());
        c.pod_inject_policy = Some(PodInjectPolicy::BeforeAppContainer);
        c.upgrade_strategy = Some(SidecarContainerUpgradeStrategy {
            upgrade_type: Some(SidecarContainerUpgradeType::ColdUpgrade),
            ..SidecarContainerUpgradeStrategy::default()
        });
        c.share_volume_policy = Some(ShareVolumePolicy { type_: Some(ShareVolumePolicyType::Disabled) });
        c
    }

    fn hash(cs: &[SidecarContainer], init: &[SidecarContainer], without_image: bool) -> String {
        sidecar_set_hash(Some(cs), Some(init), without_image).expect("hash")
    }

    const U1: &str = "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78";

    #[test]
    fn u1_u2_containers_only() {
        let cs = [bare("container1", "test-image")];
        assert_eq!(
            hash_input(Some(&cs), None, false).expect("input"),
            r#"{"containers":[{"name":"container1","image":"test-image","resources":{},"upgradeStrategy":{},"shareVolumePolicy":{}}]}"#
        );
        assert_eq!(hash(&cs, &[], false), U1);
        // A plain init container leaves the hash alone.
        assert_eq!(hash(&cs, &[bare("container1", "test-image")], false), U1);
    }

    #[test]
    fn u3_native_sidecar_init_container() {
        let cs = [bare("container1", "test-image")];
        let init = [native(bare("container1", "test-image"))];
        assert_eq!(
            hash_input(Some(&cs), Some(&init), false).expect("input"),
            r#"{"containers":[{"name":"container1","image":"test-image","resources":{},"upgradeStrategy":{},"shareVolumePolicy":{}}],"initContainers":[{"name":"container1","image":"test-image","resources":{},"restartPolicy":"Always","upgradeStrategy":{},"shareVolumePolicy":{}}]}"#
        );
        assert_eq!(
            hash(&cs, &init, false),
            "4xwx4d4844vd4v9x79wb4xbxf4xb29475cc4446v8cz2c2f2f5c5bw448vd42z8w"
        );
    }

    #[test]
    fn u4_u5_without_image() {
        let cs = [bare("container1", "test-image")];
        assert_eq!(
            hash(&cs, &[bare("container1", "test-image")], true),
            "8wzddb4dvv9c6x8zdc77z4z75987424f457dfv6724ddw6zbdx467wz5x24fc759"
        );
        assert_eq!(
            hash(&cs, &[native(bare("container1", "test-image"))], true),
            "5725fw8bwbx249bw57v5892c847dzf48bww9zb7c86xb95264fdz26654847b2c8"
        );
    }

    #[test]
    fn u6_u7_defaulted_webhook_case() {
        let cs = [defaulted(bare("dns-f", "dns:1.0"), "IfNotPresent")];
        assert_eq!(
            hash_input(Some(&cs), None, false).expect("input"),
            r#"{"containers":[{"name":"dns-f","image":"dns:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","podInjectPolicy":"BeforeAppContainer","upgradeStrategy":{"upgradeType":"ColdUpgrade"},"shareVolumePolicy":{"type":"disabled"}}]}"#
        );
        assert_eq!(hash(&cs, &[], false), "6wbd76bd7984x24fb4f44fv9222cw9v9bcf85x766744wddd4zwx927zzz2zb684");
        assert_eq!(hash(&cs, &[], true), "82684vwf9d4cb4wz4vffx4ddfbb47ww4z4wwxdbwb8w2zbb7zvf4524cdd49bv94");
    }

    fn r4_container(image: &str) -> SidecarContainer {
        let mut c = defaulted(bare("sidecar1", image), "Always");
        c.container.command = Some(vec!["sleep".to_owned(), "999d".to_owned()]);
        c.container.volume_mounts = Some(vec![VolumeMount {
            name: "log-volume".to_owned(),
            mount_path: "/var/log".to_owned(),
            ..VolumeMount::default()
        }]);
        c
    }

    #[test]
    fn r4_r5_r6_published_set_hashes() {
        assert_eq!(
            hash(&[r4_container("asd")], &[], false),
            "f5f27fzv7d49f4745d4xbcf6v78d42wfvw4xxd8w5f89f6444b6bfdv84xbvbcx8"
        );
        assert_eq!(
            hash(&[r4_container("asd")], &[], true),
            "49b4cbbdzf8v7b2z6wwcdzd4252cd7b8zv9cbf66wxxxzw444bbbfw82b54f8246"
        );
        assert_eq!(
            hash(&[r4_container("nginx")], &[], false),
            "xvwzb9v5d8cdz567x2x9w2dz4wd9c6xb82v46xc8f4wb4c88xzd5bbwzbdd84wc7"
        );
    }

    #[test]
    fn zero_plain_fields_are_left_out_and_unknown_structs_refused() {
        let mut c = bare("a", "i");
        c.container.stdin = Some(false);
        c.container.working_dir = Some(String::new());
        let input = hash_input(Some(&[c]), None, false).expect("input");
        assert!(!input.contains("stdin") && !input.contains("workingDir"), "{input}");

        let mut c = bare("a", "i");
        c.container.lifecycle = Some(k8s_openapi::api::core::v1::Lifecycle {
            stop_signal: Some("SIGTERM".to_owned()),
            ..Default::default()
        });
        let err = hash_input(Some(&[c]), None, false).expect_err("unknown field");
        assert!(err.to_string().contains("spec.containers[0].lifecycle.stopSignal"), "{err}");
    }
}
