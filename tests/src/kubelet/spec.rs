//! CRI configs built from the pod the way kubelet's `kuberuntime` builds them
//! (`generatePodSandboxConfig`, `generateContainerConfig`, `labels.go`), plus the
//! simulator's [`NODE_LABEL`](super::NODE_LABEL).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use stevedore_proto::cri::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};

use super::{NODE_LABEL, hash, volumes};

/// kubelet's label keys.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// See [`POD_NAME`].
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// See [`POD_NAME`].
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// See [`POD_NAME`].
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// kubelet's annotation keys.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// See [`CONTAINER_HASH`].
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

fn meta(pod: &Pod) -> (String, String, String) {
    let m = &pod.metadata;
    (
        m.name.clone().unwrap_or_default(),
        m.namespace.clone().unwrap_or_else(|| "default".to_owned()),
        m.uid.clone().unwrap_or_default(),
    )
}

/// The labels every sandbox/container of this pod carries (the filter for listing).
pub fn owner_labels(pod_uid: &str, node: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID.to_owned(), pod_uid.to_owned()), (NODE_LABEL.to_owned(), node.to_owned())])
}

fn namespaces(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>, otherwise: NamespaceMode| {
        if host == Some(true) { NamespaceMode::Node } else { otherwise }
    };
    let pid_default = if spec.share_process_namespace == Some(true) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    NamespaceOption {
        network: mode(spec.host_network, NamespaceMode::Pod) as i32,
        pid: mode(spec.host_pid, pid_default) as i32,
        ipc: mode(spec.host_ipc, NamespaceMode::Pod) as i32,
        ..Default::default()
    }
}

/// The pod's log dir under `log_root`: `<ns>_<name>_<uid>`, as kubelet names it.
pub fn log_dir(log_root: &std::path::Path, pod: &Pod) -> std::path::PathBuf {
    let (name, ns, uid) = meta(pod);
    log_root.join(format!("{ns}_{name}_{uid}"))
}

/// The sandbox config; `unmounted` volumes are recorded in an annotation.
pub fn sandbox(pod: &Pod, node: &str, attempt: u32, log_dir: &str, unmounted: &[String]) -> PodSandboxConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut labels: HashMap<String, String> =
        pod.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    labels.insert(POD_NAME.to_owned(), name.clone());
    labels.insert(POD_NAMESPACE.to_owned(), ns.clone());
    labels.extend(owner_labels(&uid, node));
    let mut annotations: HashMap<String, String> =
        pod.metadata.annotations.clone().unwrap_or_default().into_iter().collect();
    annotations.insert("kubernetes.io/config.source".to_owned(), "api".to_owned());
    if !unmounted.is_empty() {
        annotations.insert("stevedore.test/unmounted-volumes".to_owned(), unmounted.join(","));
    }
    let hostname = if host_network {
        String::new()
    } else {
        let h = spec.hostname.clone().unwrap_or_else(|| name.clone());
        h.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_owned()
    };
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name, uid, namespace: ns, attempt }),
        hostname,
        log_directory: log_dir.to_owned(),
        labels,
        annotations,
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(pod)),
                privileged: false,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Inputs of a container config that sync resolved.
#[derive(Debug)]
pub struct ContainerInputs<'a> {
    /// The image id the pull or image status returned.
    pub image_ref: &'a str,
    /// The resolved environment.
    pub env: &'a [(String, String)],
    /// The pod's volumes.
    pub volumes: &'a volumes::PodVolumes,
    /// kubelet's restart count for the new instance.
    pub restart_count: u32,
}

/// The container config.
pub fn container(pod: &Pod, c: &Container, node: &str, inp: &ContainerInputs<'_>) -> ContainerConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let image = c.image.clone().unwrap_or_default();
    let vars: HashMap<&str, &str> = inp.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| super::env::expand(s, &vars)).collect()
    };
    let mut labels = owner_labels(&uid, node);
    labels.insert(POD_NAME.to_owned(), name);
    labels.insert(POD_NAMESPACE.to_owned(), ns);
    labels.insert(CONTAINER_NAME.to_owned(), c.name.clone());
    let mut annotations = HashMap::from([
        (CONTAINER_HASH.to_owned(), hash::container_hash_annotation(&c.name, &image)),
        (RESTART_COUNT.to_owned(), inp.restart_count.to_string()),
        (
            "io.kubernetes.container.terminationMessagePath".to_owned(),
            c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".to_owned()),
        ),
        (
            "io.kubernetes.container.terminationMessagePolicy".to_owned(),
            c.termination_message_policy.clone().unwrap_or_else(|| "File".to_owned()),
        ),
        (
            "io.kubernetes.pod.terminationGracePeriod".to_owned(),
            spec.termination_grace_period_seconds.unwrap_or(30).to_string(),
        ),
    ]);
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
        annotations.insert(
            "io.kubernetes.container.ports".to_owned(),
            serde_json::to_string(ports).unwrap_or_default(),
        );
    }
    let sc = c.security_context.clone().unwrap_or_default();
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: c.name.clone(), attempt: inp.restart_count }),
        image: Some(ImageSpec {
            image: inp.image_ref.to_owned(),
            user_specified_image: image,
            ..Default::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inp.env.iter().map(|(k, v)| KeyValue { key: k.clone(), value: v.clone() }).collect(),
        mounts: volumes::mounts(c, inp.volumes),
        log_path: format!("{}/{}.log", c.name, inp.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        labels,
        annotations,
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces(pod)),
                privileged: sc.privileged.unwrap_or(false),
                run_as_user: sc.run_as_user.map(|value| stevedore_proto::cri::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
