//! CRI requests shaped the way kubelet sends them, for the suites, the demo and the
//! benchmark.

use std::collections::HashMap;

use stevedore_proto::cri::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};

/// Where a pod's network lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// The node's network namespace (`hostNetwork: true`).
    Host,
    /// Its own namespace, wired by the CNI bridge of the test bed.
    Pod,
}

/// A pod sandbox config. Host-network pods get an empty hostname, as kubelet sends
/// them (runc refuses a hostname without a private UTS namespace).
pub fn sandbox(name: &str, uid: &str, network: Network, log_dir: &str) -> PodSandboxConfig {
    let namespace_options = NamespaceOption {
        network: match network {
            Network::Host => NamespaceMode::Node,
            Network::Pod => NamespaceMode::Pod,
        } as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    };
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: "default".to_owned(),
            attempt: 0,
        }),
        hostname: if network == Network::Host { String::new() } else { name.to_owned() },
        log_directory: log_dir.to_owned(),
        labels: HashMap::from([
            ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
            ("io.kubernetes.pod.namespace".to_owned(), "default".to_owned()),
            ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
            ("app".to_owned(), "stevedore-test".to_owned()),
        ]),
        annotations: HashMap::from([("kubernetes.io/config.source".to_owned(), "api".to_owned())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A CreateContainer request for `image` in the sandbox `pod_id`.
pub fn container(
    pod_id: &str,
    sandbox: &PodSandboxConfig,
    name: &str,
    image: &str,
    attempt: u32,
) -> CreateContainerRequest {
    CreateContainerRequest {
        pod_sandbox_id: pod_id.to_owned(),
        config: Some(ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt }),
            image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
            log_path: format!("{name}_{attempt}.log"),
            labels: HashMap::from([("io.kubernetes.container.name".to_owned(), name.to_owned())]),
            annotations: HashMap::from([(
                "io.kubernetes.container.restartCount".to_owned(),
                attempt.to_string(),
            )]),
            envs: vec![stevedore_proto::cri::KeyValue { key: "STEVEDORE_TEST".into(), value: "1".into() }],
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: sandbox
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sandbox_config: Some(sandbox.clone()),
    }
}
