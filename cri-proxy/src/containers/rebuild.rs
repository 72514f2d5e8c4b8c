//! Records rebuilt from the runtime, for containers created before the proxy recorded
//! them (the proxy installed on a running node, a record lost).
//!
//! containerd's CRI plugin answers `ContainerStatus` with `verbose: true` with
//! `info["info"]`: a JSON document (Go's `encoding/json` of its internal container
//! info) whose `config` is the whole `ContainerConfig` kubelet sent and whose
//! `sandboxID` names the sandbox; `PodSandboxStatus` with `verbose: true` likewise
//! holds the sandbox's `PodSandboxConfig`. The Go JSON uses the proto field names,
//! enums as integers and leaves out zero values.
//!
//! The conversion is exact: every field of the messages is read, and a key it does
//! not know, a value of the wrong type or out of range, or an unknown enum value
//! fails the whole rebuild. A partial record is never produced: a container recreated
//! from one could lose its security context.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use stevedore_proto::cri::{
    Capability, CdiDevice, ContainerConfig, ContainerMetadata, CreateContainerRequest, Device, DnsConfig,
    HugepageLimit, IdMapping, ImageSpec, Int64Value, KeyValue, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount,
    MountPropagation, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PortMapping,
    Protocol, SeLinuxOption, SecurityProfile, SupplementalGroupsPolicy, UserNamespace,
    WindowsContainerConfig, WindowsContainerResources, WindowsContainerSecurityContext,
    WindowsCpuGroupAffinity, WindowsNamespaceOption, WindowsPodSandboxConfig, WindowsSandboxSecurityContext,
    security_profile::ProfileType,
};

/// Why a record could not be rebuilt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebuildError {
    /// The runtime's answer has no verbose info (not containerd's CRI plugin, or an
    /// older one).
    #[error("the runtime's verbose status has no info[\"info\"]")]
    NoInfo,
    /// The info is not JSON.
    #[error("the verbose info is not JSON: {0}")]
    NotJson(String),
    /// A field is missing, unknown or malformed.
    #[error("{path}: {reason}")]
    Field {
        /// Where, as a dotted path from the info document.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn field(path: &str, reason: impl Into<String>) -> RebuildError {
    RebuildError::Field { path: path.to_owned(), reason: reason.into() }
}

type Result<T> = std::result::Result<T, RebuildError>;

/// A JSON object being read: every key must be read before [`Obj::done`].
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    read: HashSet<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: &str) -> Result<Self> {
        let map = value.as_object().ok_or_else(|| field(path, "expected an object"))?;
        Ok(Self { path: path.to_owned(), map, read: HashSet::new() })
    }

    fn at(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_owned() } else { format!("{}.{name}", self.path) }
    }

    /// The value of `name`; `None` if absent or null (Go's zero value).
    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.read.insert(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &'static str) -> Result<String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(field(&self.at(name), "expected a string")),
        }
    }

    fn bool(&mut self, name: &'static str) -> Result<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(field(&self.at(name), "expected a boolean")),
        }
    }

    fn int<T: TryFrom<i64> + TryFrom<u64> + Default>(&mut self, name: &'static str) -> Result<T> {
        let path = self.at(name);
        self.get(name).map_or(Ok(T::default()), |v| int_of(v, &path))
    }

    fn enumeration(&mut self, name: &'static str, known: impl Fn(i32) -> bool) -> Result<i32> {
        let v: i32 = self.int(name)?;
        if known(v) { Ok(v) } else { Err(field(&self.at(name), format!("unknown enum value {v}"))) }
    }

    fn strings(&mut self, name: &'static str) -> Result<Vec<String>> {
        self.list(name, |v, path| {
            v.as_str().map(str::to_owned).ok_or_else(|| field(path, "expected a string"))
        })
    }

    fn ints<T: TryFrom<i64> + TryFrom<u64> + Default>(&mut self, name: &'static str) -> Result<Vec<T>> {
        self.list(name, int_of)
    }

    fn map(&mut self, name: &'static str) -> Result<HashMap<String, String>> {
        let path = self.at(name);
        let Some(v) = self.get(name) else { return Ok(HashMap::new()) };
        let m = v.as_object().ok_or_else(|| field(&path, "expected an object"))?;
        m.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(field(&format!("{path}.{k}"), "expected a string")),
            })
            .collect()
    }

    fn message<T>(&mut self, name: &'static str, f: impl FnOnce(Obj<'a>) -> Result<T>) -> Result<Option<T>> {
        let path = self.at(name);
        self.get(name).map(|v| Obj::new(v, &path).and_then(f)).transpose()
    }

    fn list<T>(&mut self, name: &'static str, f: impl Fn(&'a Value, &str) -> Result<T>) -> Result<Vec<T>> {
        let path = self.at(name);
        let Some(v) = self.get(name) else { return Ok(Vec::new()) };
        let items = v.as_array().ok_or_else(|| field(&path, "expected an array"))?;
        items.iter().enumerate().map(|(i, v)| f(v, &format!("{path}[{i}]"))).collect()
    }

    fn messages<T>(&mut self, name: &'static str, f: impl Fn(Obj<'a>) -> Result<T>) -> Result<Vec<T>> {
        self.list(name, |v, path| Obj::new(v, path).and_then(&f))
    }

    /// Fails on a key that was not read: a field this proxy does not know.
    fn done(self) -> Result<()> {
        let mut unknown: Vec<&String> = self.map.keys().filter(|k| !self.read.contains(k.as_str())).collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(field(&self.at(k), "unknown field")),
        }
    }
}

fn int_of<T: TryFrom<i64> + TryFrom<u64>>(v: &Value, path: &str) -> Result<T> {
    let Value::Number(n) = v else { return Err(field(path, "expected an integer")) };
    let out = if let Some(i) = n.as_i64() {
        T::try_from(i).ok()
    } else if let Some(u) = n.as_u64() {
        T::try_from(u).ok()
    } else {
        return Err(field(path, format!("expected an integer, got {n}")));
    };
    out.ok_or_else(|| field(path, format!("{n} is out of range")))
}

/// Parses a verbose info document.
fn parse(info: &str) -> Result<Value> {
    serde_json::from_str(info).map_err(|e| RebuildError::NotJson(e.to_string()))
}

/// The `ContainerConfig` in containerd's verbose container info (`info["info"]`).
///
/// # Errors
/// The document is not JSON, has no `config`, or the config has an unknown or
/// malformed field.
pub fn container_config_of(info: &str) -> Result<ContainerConfig> {
    let doc = parse(info)?;
    let mut top = Obj::new(&doc, "")?;
    top.message("config", container_config)?.ok_or_else(|| field("config", "missing"))
}

/// The sandbox id in containerd's verbose container info.
///
/// # Errors
/// The document is not JSON or has no `sandboxID` string.
pub fn sandbox_id_of(info: &str) -> Result<String> {
    let doc = parse(info)?;
    let mut top = Obj::new(&doc, "")?;
    let id = top.string("sandboxID")?;
    if id.is_empty() { Err(field("sandboxID", "missing")) } else { Ok(id) }
}

/// The `PodSandboxConfig` in containerd's verbose sandbox info (`info["info"]`).
///
/// # Errors
/// The document is not JSON, has no `config`, or the config has an unknown or
/// malformed field.
pub fn sandbox_config_of(info: &str) -> Result<PodSandboxConfig> {
    let doc = parse(info)?;
    let mut top = Obj::new(&doc, "")?;
    top.message("config", pod_sandbox_config)?.ok_or_else(|| field("config", "missing"))
}

/// The request that made a container, from the verbose infos of the container and
/// of its sandbox.
///
/// # Errors
/// Either document fails as in [`container_config_of`] and [`sandbox_config_of`].
pub fn request_of(container_info: &str, sandbox_info: &str) -> Result<CreateContainerRequest> {
    Ok(CreateContainerRequest {
        pod_sandbox_id: sandbox_id_of(container_info)?,
        config: Some(container_config_of(container_info)?),
        sandbox_config: Some(sandbox_config_of(sandbox_info)?),
    })
}

fn container_config(mut o: Obj<'_>) -> Result<ContainerConfig> {
    let c = ContainerConfig {
        metadata: o.message("metadata", |mut o| {
            let m = ContainerMetadata { name: o.string("name")?, attempt: o.int("attempt")? };
            o.done().map(|()| m)
        })?,
        image: o.message("image", image_spec)?,
        command: o.strings("command")?,
        args: o.strings("args")?,
        working_dir: o.string("working_dir")?,
        envs: o.messages("envs", |mut o| {
            let kv = KeyValue { key: o.string("key")?, value: o.string("value")? };
            o.done().map(|()| kv)
        })?,
        mounts: o.messages("mounts", mount)?,
        devices: o.messages("devices", |mut o| {
            let d = Device {
                container_path: o.string("container_path")?,
                host_path: o.string("host_path")?,
                permissions: o.string("permissions")?,
            };
            o.done().map(|()| d)
        })?,
        labels: o.map("labels")?,
        annotations: o.map("annotations")?,
        log_path: o.string("log_path")?,
        stdin: o.bool("stdin")?,
        stdin_once: o.bool("stdin_once")?,
        tty: o.bool("tty")?,
        linux: o.message("linux", |mut o| {
            let l = LinuxContainerConfig {
                resources: o.message("resources", linux_resources)?,
                security_context: o.message("security_context", linux_container_security)?,
            };
            o.done().map(|()| l)
        })?,
        // The proto field is `CDI_devices`, and so is the Go JSON tag.
        cdi_devices: o.messages("CDI_devices", |mut o| {
            let d = CdiDevice { name: o.string("name")? };
            o.done().map(|()| d)
        })?,
        windows: o.message("windows", |mut o| {
            let w = WindowsContainerConfig {
                resources: o.message("resources", |mut o| {
                    let r = WindowsContainerResources {
                        cpu_shares: o.int("cpu_shares")?,
                        cpu_count: o.int("cpu_count")?,
                        cpu_maximum: o.int("cpu_maximum")?,
                        memory_limit_in_bytes: o.int("memory_limit_in_bytes")?,
                        rootfs_size_in_bytes: o.int("rootfs_size_in_bytes")?,
                        affinity_cpus: o.messages("affinity_cpus", |mut o| {
                            let a = WindowsCpuGroupAffinity {
                                cpu_mask: o.int("cpu_mask")?,
                                cpu_group: o.int("cpu_group")?,
                            };
                            o.done().map(|()| a)
                        })?,
                    };
                    o.done().map(|()| r)
                })?,
                security_context: o.message("security_context", |mut o| {
                    let s = WindowsContainerSecurityContext {
                        run_as_username: o.string("run_as_username")?,
                        credential_spec: o.string("credential_spec")?,
                        host_process: o.bool("host_process")?,
                    };
                    o.done().map(|()| s)
                })?,
            };
            o.done().map(|()| w)
        })?,
    };
    o.done().map(|()| c)
}

fn image_spec(mut o: Obj<'_>) -> Result<ImageSpec> {
    let i = ImageSpec {
        image: o.string("image")?,
        annotations: o.map("annotations")?,
        user_specified_image: o.string("user_specified_image")?,
        runtime_handler: o.string("runtime_handler")?,
    };
    o.done().map(|()| i)
}

fn mount(mut o: Obj<'_>) -> Result<Mount> {
    let m = Mount {
        container_path: o.string("container_path")?,
        host_path: o.string("host_path")?,
        readonly: o.bool("readonly")?,
        selinux_relabel: o.bool("selinux_relabel")?,
        propagation: o.enumeration("propagation", |v| MountPropagation::try_from(v).is_ok())?,
        // The proto fields are camelCase, and so are the Go JSON tags.
        uid_mappings: o.messages("uidMappings", id_mapping)?,
        gid_mappings: o.messages("gidMappings", id_mapping)?,
        recursive_read_only: o.bool("recursive_read_only")?,
        image: o.message("image", image_spec)?,
    };
    o.done().map(|()| m)
}

fn linux_resources(mut o: Obj<'_>) -> Result<LinuxContainerResources> {
    let r = LinuxContainerResources {
        cpu_period: o.int("cpu_period")?,
        cpu_quota: o.int("cpu_quota")?,
        cpu_shares: o.int("cpu_shares")?,
        memory_limit_in_bytes: o.int("memory_limit_in_bytes")?,
        oom_score_adj: o.int("oom_score_adj")?,
        cpuset_cpus: o.string("cpuset_cpus")?,
        cpuset_mems: o.string("cpuset_mems")?,
        hugepage_limits: o.messages("hugepage_limits", |mut o| {
            let h = HugepageLimit { page_size: o.string("page_size")?, limit: o.int("limit")? };
            o.done().map(|()| h)
        })?,
        unified: o.map("unified")?,
        memory_swap_limit_in_bytes: o.int("memory_swap_limit_in_bytes")?,
    };
    o.done().map(|()| r)
}

fn int64_value(mut o: Obj<'_>) -> Result<Int64Value> {
    let v = Int64Value { value: o.int("value")? };
    o.done().map(|()| v)
}

fn selinux(mut o: Obj<'_>) -> Result<SeLinuxOption> {
    let s = SeLinuxOption {
        user: o.string("user")?,
        role: o.string("role")?,
        r#type: o.string("type")?,
        level: o.string("level")?,
    };
    o.done().map(|()| s)
}

fn security_profile(mut o: Obj<'_>) -> Result<SecurityProfile> {
    let p = SecurityProfile {
        profile_type: o.enumeration("profile_type", |v| ProfileType::try_from(v).is_ok())?,
        localhost_ref: o.string("localhost_ref")?,
    };
    o.done().map(|()| p)
}

fn namespace_mode(o: &mut Obj<'_>, name: &'static str) -> Result<i32> {
    o.enumeration(name, |v| NamespaceMode::try_from(v).is_ok())
}

fn namespace_options(mut o: Obj<'_>) -> Result<NamespaceOption> {
    let n = NamespaceOption {
        network: namespace_mode(&mut o, "network")?,
        pid: namespace_mode(&mut o, "pid")?,
        ipc: namespace_mode(&mut o, "ipc")?,
        target_id: o.string("target_id")?,
        userns_options: o.message("userns_options", |mut o| {
            let mapping = |mut o: Obj<'_>| {
                let m = IdMapping {
                    host_id: o.int("host_id")?,
                    container_id: o.int("container_id")?,
                    length: o.int("length")?,
                };
                o.done().map(|()| m)
            };
            let u = UserNamespace {
                mode: namespace_mode(&mut o, "mode")?,
                uids: o.messages("uids", mapping)?,
                gids: o.messages("gids", mapping)?,
            };
            o.done().map(|()| u)
        })?,
    };
    o.done().map(|()| n)
}

fn id_mapping(mut o: Obj<'_>) -> Result<IdMapping> {
    let m = IdMapping {
        host_id: o.int("host_id")?,
        container_id: o.int("container_id")?,
        length: o.int("length")?,
    };
    o.done().map(|()| m)
}

fn supplemental_groups_policy(o: &mut Obj<'_>) -> Result<i32> {
    o.enumeration("supplemental_groups_policy", |v| SupplementalGroupsPolicy::try_from(v).is_ok())
}

#[allow(deprecated)] // every field, the deprecated ones too
fn linux_container_security(mut o: Obj<'_>) -> Result<LinuxContainerSecurityContext> {
    let s = LinuxContainerSecurityContext {
        capabilities: o.message("capabilities", |mut o| {
            let c = Capability {
                add_capabilities: o.strings("add_capabilities")?,
                drop_capabilities: o.strings("drop_capabilities")?,
                add_ambient_capabilities: o.strings("add_ambient_capabilities")?,
            };
            o.done().map(|()| c)
        })?,
        privileged: o.bool("privileged")?,
        namespace_options: o.message("namespace_options", namespace_options)?,
        selinux_options: o.message("selinux_options", selinux)?,
        run_as_user: o.message("run_as_user", int64_value)?,
        run_as_group: o.message("run_as_group", int64_value)?,
        run_as_username: o.string("run_as_username")?,
        readonly_rootfs: o.bool("readonly_rootfs")?,
        supplemental_groups: o.ints("supplemental_groups")?,
        supplemental_groups_policy: supplemental_groups_policy(&mut o)?,
        no_new_privs: o.bool("no_new_privs")?,
        masked_paths: o.strings("masked_paths")?,
        readonly_paths: o.strings("readonly_paths")?,
        seccomp: o.message("seccomp", security_profile)?,
        apparmor: o.message("apparmor", security_profile)?,
        apparmor_profile: o.string("apparmor_profile")?,
        seccomp_profile_path: o.string("seccomp_profile_path")?,
    };
    o.done().map(|()| s)
}

fn pod_sandbox_config(mut o: Obj<'_>) -> Result<PodSandboxConfig> {
    let c = PodSandboxConfig {
        metadata: o.message("metadata", |mut o| {
            let m = PodSandboxMetadata {
                name: o.string("name")?,
                uid: o.string("uid")?,
                namespace: o.string("namespace")?,
                attempt: o.int("attempt")?,
            };
            o.done().map(|()| m)
        })?,
        hostname: o.string("hostname")?,
        log_directory: o.string("log_directory")?,
        dns_config: o.message("dns_config", |mut o| {
            let d = DnsConfig {
                servers: o.strings("servers")?,
                searches: o.strings("searches")?,
                options: o.strings("options")?,
            };
            o.done().map(|()| d)
        })?,
        port_mappings: o.messages("port_mappings", |mut o| {
            let p = PortMapping {
                protocol: o.enumeration("protocol", |v| Protocol::try_from(v).is_ok())?,
                container_port: o.int("container_port")?,
                host_port: o.int("host_port")?,
                host_ip: o.string("host_ip")?,
            };
            o.done().map(|()| p)
        })?,
        labels: o.map("labels")?,
        annotations: o.map("annotations")?,
        linux: o.message("linux", |mut o| {
            let l = LinuxPodSandboxConfig {
                cgroup_parent: o.string("cgroup_parent")?,
                security_context: o.message("security_context", linux_sandbox_security)?,
                sysctls: o.map("sysctls")?,
                overhead: o.message("overhead", linux_resources)?,
                resources: o.message("resources", linux_resources)?,
            };
            o.done().map(|()| l)
        })?,
        windows: o.message("windows", |mut o| {
            let w = WindowsPodSandboxConfig {
                security_context: o.message("security_context", |mut o| {
                    let s = WindowsSandboxSecurityContext {
                        run_as_username: o.string("run_as_username")?,
                        credential_spec: o.string("credential_spec")?,
                        host_process: o.bool("host_process")?,
                        namespace_options: o.message("namespace_options", |mut o| {
                            let n = WindowsNamespaceOption { network: namespace_mode(&mut o, "network")? };
                            o.done().map(|()| n)
                        })?,
                    };
                    o.done().map(|()| s)
                })?,
            };
            o.done().map(|()| w)
        })?,
    };
    o.done().map(|()| c)
}

#[allow(deprecated)] // every field, the deprecated ones too
fn linux_sandbox_security(mut o: Obj<'_>) -> Result<LinuxSandboxSecurityContext> {
    let s = LinuxSandboxSecurityContext {
        namespace_options: o.message("namespace_options", namespace_options)?,
        selinux_options: o.message("selinux_options", selinux)?,
        run_as_user: o.message("run_as_user", int64_value)?,
        run_as_group: o.message("run_as_group", int64_value)?,
        readonly_rootfs: o.bool("readonly_rootfs")?,
        supplemental_groups: o.ints("supplemental_groups")?,
        supplemental_groups_policy: supplemental_groups_policy(&mut o)?,
        privileged: o.bool("privileged")?,
        seccomp: o.message("seccomp", security_profile)?,
        apparmor: o.message("apparmor", security_profile)?,
        seccomp_profile_path: o.string("seccomp_profile_path")?,
    };
    o.done().map(|()| s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stevedore_proto::cri::Capability;

    use super::*;

    /// Captured from containerd 1.6.20 (Debian 12) on the test bed by
    /// `tests/tests/records_rebuild.rs` (`STEVEDORE_REBUILD_FIXTURES`).
    const CONTAINER_INFO: &str = include_str!("../../tests/fixtures/container-info.json");
    const SANDBOX_INFO: &str = include_str!("../../tests/fixtures/sandbox-info.json");
    const SANDBOX_ID: &str = "63c2bb39e6b4cf001134552448efda93af9378a28181bd6a1be3beb797a16767";

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn map(v: &[(&str, &str)]) -> HashMap<String, String> {
        v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// What the integration test sent (see `tests/tests/records_rebuild.rs`).
    fn captured_container() -> ContainerConfig {
        let namespace_options = Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ..Default::default()
        });
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: "app".into(), attempt: 0 }),
            image: Some(ImageSpec { image: "stevedore.test/app:v1".into(), ..Default::default() }),
            command: strings(&["/bin/sh", "-c"]),
            args: strings(&["echo started; exec sleep 3600"]),
            working_dir: "/data".into(),
            envs: vec![
                KeyValue { key: "STEVEDORE_TEST".into(), value: "1".into() },
                KeyValue { key: "ZONE".into(), value: "a".into() },
                KeyValue { key: "EMPTY".into(), value: String::new() },
            ],
            mounts: vec![Mount {
                container_path: "/data".into(),
                host_path: "/run/stevedore-testbed/0/rich-data".into(),
                readonly: true,
                ..Default::default()
            }],
            labels: map(&[
                ("io.kubernetes.container.name", "app"),
                ("io.kubernetes.pod.name", "rich"),
                ("io.kubernetes.pod.namespace", "default"),
                ("io.kubernetes.pod.uid", "uid-rich"),
            ]),
            annotations: map(&[
                ("io.kubernetes.container.hash", "1a2b3c"),
                ("io.kubernetes.container.restartCount", "0"),
                ("io.kubernetes.container.terminationMessagePath", "/dev/termination-log"),
            ]),
            log_path: "app/0.log".into(),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: 64 << 20,
                    oom_score_adj: 900,
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: strings(&["NET_BIND_SERVICE"]),
                        drop_capabilities: strings(&["ALL"]),
                        add_ambient_capabilities: vec![],
                    }),
                    namespace_options,
                    run_as_user: Some(Int64Value { value: 1000 }),
                    run_as_group: Some(Int64Value { value: 1000 }),
                    readonly_rootfs: true,
                    supplemental_groups: vec![3000, 4000],
                    no_new_privs: true,
                    masked_paths: strings(&["/proc/kcore", "/proc/keys"]),
                    readonly_paths: strings(&["/proc/sys"]),
                    seccomp: Some(SecurityProfile::default()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn captured_sandbox() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "rich".into(),
                uid: "uid-rich".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: "/run/stevedore-testbed/0/logs/rich".into(),
            dns_config: Some(DnsConfig {
                servers: strings(&["10.96.0.10"]),
                searches: strings(&["default.svc.cluster.local", "svc.cluster.local"]),
                options: strings(&["ndots:5"]),
            }),
            port_mappings: vec![PortMapping { container_port: 8080, ..Default::default() }],
            labels: map(&[
                ("app", "stevedore-test"),
                ("io.kubernetes.pod.name", "rich"),
                ("io.kubernetes.pod.namespace", "default"),
                ("io.kubernetes.pod.uid", "uid-rich"),
            ]),
            annotations: map(&[("kubernetes.io/config.source", "api")]),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    supplemental_groups: vec![3000],
                    seccomp: Some(SecurityProfile::default()),
                    ..Default::default()
                }),
                sysctls: map(&[("kernel.shm_rmid_forced", "1")]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_captures_convert_to_what_was_sent() {
        assert_eq!(container_config_of(CONTAINER_INFO), Ok(captured_container()));
        assert_eq!(sandbox_config_of(SANDBOX_INFO), Ok(captured_sandbox()));
        assert_eq!(sandbox_id_of(CONTAINER_INFO).as_deref(), Ok(SANDBOX_ID));
        let request = request_of(CONTAINER_INFO, SANDBOX_INFO).unwrap();
        assert_eq!(request.pod_sandbox_id, SANDBOX_ID);
        assert_eq!(request.config, Some(captured_container()));
        assert_eq!(request.sandbox_config, Some(captured_sandbox()));
    }

    /// Every field of every message set, in Go's JSON (proto field names as keys).
    fn every_container_field() -> (Value, ContainerConfig) {
        let resources = json!({"cpu_period": 1, "cpu_quota": 2, "cpu_shares": 3, "memory_limit_in_bytes": 4,
            "oom_score_adj": -5, "cpuset_cpus": "0-1", "cpuset_mems": "0",
            "hugepage_limits": [{"page_size": "2MB", "limit": 18_446_744_073_709_551_615_u64}],
            "unified": {"memory.high": "1"}, "memory_swap_limit_in_bytes": 6});
        let mapping = json!({"host_id": 100_000, "container_id": 0, "length": 65536});
        let profile = json!({"profile_type": 2, "localhost_ref": "profiles/p.json"});
        let doc = json!({
            "metadata": {"name": "app", "attempt": 4_294_967_295_u32},
            "image": {"image": "img", "annotations": {"a": "b"}, "user_specified_image": "img:1",
                "runtime_handler": "runc"},
            "command": ["c"], "args": ["a"], "working_dir": "/w",
            "envs": [{"key": "K", "value": "V"}],
            "mounts": [{"container_path": "/c", "host_path": "/h", "readonly": true, "selinux_relabel": true,
                "propagation": 2, "uidMappings": [mapping], "gidMappings": [mapping],
                "recursive_read_only": true, "image": {"image": "vol"}}],
            "devices": [{"container_path": "/dev/c", "host_path": "/dev/h", "permissions": "rwm"}],
            "labels": {"l": "1"}, "annotations": {"n": "2"},
            "log_path": "app/0.log", "stdin": true, "stdin_once": true, "tty": true,
            "linux": {"resources": resources, "security_context": {
                "capabilities": {"add_capabilities": ["A"], "drop_capabilities": ["D"],
                    "add_ambient_capabilities": ["M"]},
                "privileged": true,
                "namespace_options": {"network": 1, "pid": 3, "ipc": 2, "target_id": "t",
                    "userns_options": {"mode": 0, "uids": [mapping], "gids": [mapping]}},
                "selinux_options": {"user": "u", "role": "r", "type": "t", "level": "s0"},
                "run_as_user": {"value": 1000}, "run_as_group": {},
                "run_as_username": "nobody", "readonly_rootfs": true,
                "supplemental_groups": [-1, 9_223_372_036_854_775_807_i64], "supplemental_groups_policy": 1,
                "no_new_privs": true, "masked_paths": ["/m"], "readonly_paths": ["/r"],
                "seccomp": profile, "apparmor": {"profile_type": 1},
                "apparmor_profile": "old-aa", "seccomp_profile_path": "old-sc"}},
            "CDI_devices": [{"name": "vendor.com/gpu=0"}],
            "windows": {"resources": {"cpu_shares": 1, "cpu_count": 2, "cpu_maximum": 3,
                "memory_limit_in_bytes": 4, "rootfs_size_in_bytes": 5,
                "affinity_cpus": [{"cpu_mask": 255, "cpu_group": 1}]},
                "security_context": {"run_as_username": "w", "credential_spec": "cs", "host_process": true}},
        });
        let mapping = IdMapping { host_id: 100_000, container_id: 0, length: 65536 };
        let profile = SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "profiles/p.json".into(),
        };
        #[allow(deprecated)]
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: "app".into(), attempt: u32::MAX }),
            image: Some(ImageSpec {
                image: "img".into(),
                annotations: map(&[("a", "b")]),
                user_specified_image: "img:1".into(),
                runtime_handler: "runc".into(),
            }),
            command: strings(&["c"]),
            args: strings(&["a"]),
            working_dir: "/w".into(),
            envs: vec![KeyValue { key: "K".into(), value: "V".into() }],
            mounts: vec![Mount {
                container_path: "/c".into(),
                host_path: "/h".into(),
                readonly: true,
                selinux_relabel: true,
                propagation: MountPropagation::PropagationBidirectional as i32,
                uid_mappings: vec![mapping],
                gid_mappings: vec![mapping],
                recursive_read_only: true,
                image: Some(ImageSpec { image: "vol".into(), ..Default::default() }),
            }],
            devices: vec![Device {
                container_path: "/dev/c".into(),
                host_path: "/dev/h".into(),
                permissions: "rwm".into(),
            }],
            labels: map(&[("l", "1")]),
            annotations: map(&[("n", "2")]),
            log_path: "app/0.log".into(),
            stdin: true,
            stdin_once: true,
            tty: true,
            linux: Some(LinuxContainerConfig {
                resources: Some(every_resource()),
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: strings(&["A"]),
                        drop_capabilities: strings(&["D"]),
                        add_ambient_capabilities: strings(&["M"]),
                    }),
                    privileged: true,
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Container as i32,
                        pid: NamespaceMode::Target as i32,
                        ipc: NamespaceMode::Node as i32,
                        target_id: "t".into(),
                        userns_options: Some(UserNamespace {
                            mode: NamespaceMode::Pod as i32,
                            uids: vec![mapping],
                            gids: vec![mapping],
                        }),
                    }),
                    selinux_options: Some(SeLinuxOption {
                        user: "u".into(),
                        role: "r".into(),
                        r#type: "t".into(),
                        level: "s0".into(),
                    }),
                    run_as_user: Some(Int64Value { value: 1000 }),
                    run_as_group: Some(Int64Value { value: 0 }),
                    run_as_username: "nobody".into(),
                    readonly_rootfs: true,
                    supplemental_groups: vec![-1, i64::MAX],
                    supplemental_groups_policy: SupplementalGroupsPolicy::Strict as i32,
                    no_new_privs: true,
                    masked_paths: strings(&["/m"]),
                    readonly_paths: strings(&["/r"]),
                    seccomp: Some(profile),
                    apparmor: Some(SecurityProfile {
                        profile_type: ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    apparmor_profile: "old-aa".into(),
                    seccomp_profile_path: "old-sc".into(),
                }),
            }),
            cdi_devices: vec![CdiDevice { name: "vendor.com/gpu=0".into() }],
            windows: Some(WindowsContainerConfig {
                resources: Some(WindowsContainerResources {
                    cpu_shares: 1,
                    cpu_count: 2,
                    cpu_maximum: 3,
                    memory_limit_in_bytes: 4,
                    rootfs_size_in_bytes: 5,
                    affinity_cpus: vec![WindowsCpuGroupAffinity { cpu_mask: 255, cpu_group: 1 }],
                }),
                security_context: Some(WindowsContainerSecurityContext {
                    run_as_username: "w".into(),
                    credential_spec: "cs".into(),
                    host_process: true,
                }),
            }),
        };
        (doc, config)
    }

    fn every_resource() -> LinuxContainerResources {
        LinuxContainerResources {
            cpu_period: 1,
            cpu_quota: 2,
            cpu_shares: 3,
            memory_limit_in_bytes: 4,
            oom_score_adj: -5,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            hugepage_limits: vec![HugepageLimit { page_size: "2MB".into(), limit: u64::MAX }],
            unified: map(&[("memory.high", "1")]),
            memory_swap_limit_in_bytes: 6,
        }
    }

    fn every_sandbox_field() -> (Value, PodSandboxConfig) {
        let resources = json!({"cpu_period": 1, "cpu_quota": 2, "cpu_shares": 3, "memory_limit_in_bytes": 4,
            "oom_score_adj": -5, "cpuset_cpus": "0-1", "cpuset_mems": "0",
            "hugepage_limits": [{"page_size": "2MB", "limit": 18_446_744_073_709_551_615_u64}],
            "unified": {"memory.high": "1"}, "memory_swap_limit_in_bytes": 6});
        let doc = json!({
            "metadata": {"name": "p", "uid": "u", "namespace": "ns", "attempt": 2},
            "hostname": "h", "log_directory": "/logs",
            "dns_config": {"servers": ["1.1.1.1"], "searches": ["s"], "options": ["o"]},
            "port_mappings": [{"protocol": 2, "container_port": 80, "host_port": -1, "host_ip": "0.0.0.0"}],
            "labels": {"l": "1"}, "annotations": {"a": "2"},
            "linux": {"cgroup_parent": "/kubepods", "security_context": {
                "namespace_options": {"network": 2, "pid": 0, "ipc": 1},
                "selinux_options": {"user": "u", "role": "r", "type": "t", "level": "l"},
                "run_as_user": {"value": 0}, "run_as_group": {"value": 7}, "readonly_rootfs": true,
                "supplemental_groups": [5], "supplemental_groups_policy": 0, "privileged": true,
                "seccomp": {"profile_type": 1}, "apparmor": {"profile_type": 2, "localhost_ref": "aa"},
                "seccomp_profile_path": "old"},
                "sysctls": {"net.ipv4.ip_forward": "1"}, "overhead": resources, "resources": resources},
            "windows": {"security_context": {"run_as_username": "w", "credential_spec": "c", "host_process": true,
                "namespace_options": {"network": 2}}},
        });
        #[allow(deprecated)]
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "ns".into(),
                attempt: 2,
            }),
            hostname: "h".into(),
            log_directory: "/logs".into(),
            dns_config: Some(DnsConfig {
                servers: strings(&["1.1.1.1"]),
                searches: strings(&["s"]),
                options: strings(&["o"]),
            }),
            port_mappings: vec![PortMapping {
                protocol: Protocol::Sctp as i32,
                container_port: 80,
                host_port: -1,
                host_ip: "0.0.0.0".into(),
            }],
            labels: map(&[("l", "1")]),
            annotations: map(&[("a", "2")]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods".into(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Pod as i32,
                        ipc: NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    selinux_options: Some(SeLinuxOption {
                        user: "u".into(),
                        role: "r".into(),
                        r#type: "t".into(),
                        level: "l".into(),
                    }),
                    run_as_user: Some(Int64Value { value: 0 }),
                    run_as_group: Some(Int64Value { value: 7 }),
                    readonly_rootfs: true,
                    supplemental_groups: vec![5],
                    supplemental_groups_policy: SupplementalGroupsPolicy::Merge as i32,
                    privileged: true,
                    seccomp: Some(SecurityProfile {
                        profile_type: ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    apparmor: Some(SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "aa".into(),
                    }),
                    seccomp_profile_path: "old".into(),
                }),
                sysctls: map(&[("net.ipv4.ip_forward", "1")]),
                overhead: Some(every_resource()),
                resources: Some(every_resource()),
            }),
            windows: Some(WindowsPodSandboxConfig {
                security_context: Some(WindowsSandboxSecurityContext {
                    run_as_username: "w".into(),
                    credential_spec: "c".into(),
                    host_process: true,
                    namespace_options: Some(WindowsNamespaceOption { network: NamespaceMode::Node as i32 }),
                }),
            }),
        };
        (doc, config)
    }

    fn info(config: &Value) -> String {
        json!({"sandboxID": "sb", "pid": 1, "runtimeSpec": {"ociVersion": "1.0.2"}, "config": config})
            .to_string()
    }

    #[test]
    fn every_field_of_every_message_converts() {
        let (doc, want) = every_container_field();
        assert_eq!(container_config_of(&info(&doc)), Ok(want));
        let (doc, want) = every_sandbox_field();
        assert_eq!(sandbox_config_of(&info(&doc)), Ok(want));
    }

    /// Every object in `v` (with its path), for mutations.
    fn objects(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                out.push(path.to_owned());
                for (k, v) in m {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    objects(v, &p, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    objects(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    fn pointer(path: &str) -> String {
        path.split('.').flat_map(|p| p.split('[')).map(|p| format!("/{}", p.trim_end_matches(']'))).collect()
    }

    #[test]
    fn an_unknown_field_anywhere_fails_with_its_path() {
        for (doc, sandbox) in [(every_container_field().0, false), (every_sandbox_field().0, true)] {
            let mut paths = Vec::new();
            objects(&doc, "", &mut paths);
            // Maps (labels, annotations, unified, sysctls) take any key.
            paths.retain(|p| !["labels", "annotations", "unified", "sysctls"].iter().any(|m| p.ends_with(m)));
            assert!(paths.len() >= 19, "{}", paths.len());
            for path in paths {
                let mut bad = doc.clone();
                let target =
                    if path.is_empty() { &mut bad } else { bad.pointer_mut(&pointer(&path)).unwrap() };
                target.as_object_mut().unwrap().insert("fresh_field".into(), json!(1));
                let got = if sandbox {
                    sandbox_config_of(&info(&bad)).map(|_| ())
                } else {
                    container_config_of(&info(&bad)).map(|_| ())
                };
                let at = if path.is_empty() { "config".to_owned() } else { format!("config.{path}") };
                assert_eq!(got, Err(field(&format!("{at}.fresh_field"), "unknown field")), "{path}");
            }
        }
    }

    fn container_error(patch: impl FnOnce(&mut Value)) -> RebuildError {
        let mut doc = every_container_field().0;
        patch(&mut doc);
        container_config_of(&info(&doc)).unwrap_err()
    }

    #[test]
    fn malformed_values_fail_with_their_path_and_reason() {
        type Patch = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Patch, &str, &str)> = vec![
            (
                Box::new(|d| d["metadata"]["attempt"] = json!(-1)),
                "config.metadata.attempt",
                "-1 is out of range",
            ),
            (
                Box::new(|d| d["metadata"]["attempt"] = json!(4_294_967_296_u64)),
                "config.metadata.attempt",
                "4294967296 is out of range",
            ),
            (
                Box::new(|d| d["metadata"]["attempt"] = json!(1.5)),
                "config.metadata.attempt",
                "expected an integer, got 1.5",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["run_as_user"]["value"] = json!("1000")),
                "config.linux.security_context.run_as_user.value",
                "expected an integer",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["run_as_user"] = json!(1000)),
                "config.linux.security_context.run_as_user",
                "expected an object",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["readonly_rootfs"] = json!("true")),
                "config.linux.security_context.readonly_rootfs",
                "expected a boolean",
            ),
            (
                Box::new(|d| {
                    d["linux"]["security_context"]["capabilities"]["drop_capabilities"] = json!("ALL")
                }),
                "config.linux.security_context.capabilities.drop_capabilities",
                "expected an array",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["masked_paths"] = json!(["/a", 3])),
                "config.linux.security_context.masked_paths[1]",
                "expected a string",
            ),
            (
                Box::new(|d| d["mounts"][0]["propagation"] = json!(3)),
                "config.mounts[0].propagation",
                "unknown enum value 3",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["seccomp"]["profile_type"] = json!(9)),
                "config.linux.security_context.seccomp.profile_type",
                "unknown enum value 9",
            ),
            (
                Box::new(|d| d["linux"]["security_context"]["namespace_options"]["pid"] = json!(4)),
                "config.linux.security_context.namespace_options.pid",
                "unknown enum value 4",
            ),
            (Box::new(|d| d["labels"]["l"] = json!(1)), "config.labels.l", "expected a string"),
            (Box::new(|d| d["envs"] = json!({"K": "V"})), "config.envs", "expected an array"),
            (Box::new(|d| d["log_path"] = json!(null)), "", ""),
        ];
        for (patch, path, reason) in cases {
            let got = container_error(|d| {
                patch(d);
                if path.is_empty() {
                    // null is Go's zero value: accepted; break something known instead.
                    d["tty"] = json!(0);
                }
            });
            let (path, reason) =
                if path.is_empty() { ("config.tty", "expected a boolean") } else { (path, reason) };
            assert_eq!(got, field(path, reason));
        }
        let sandbox = |patch: &dyn Fn(&mut Value)| {
            let mut doc = every_sandbox_field().0;
            patch(&mut doc);
            sandbox_config_of(&info(&doc)).unwrap_err()
        };
        assert_eq!(
            sandbox(&|d| d["port_mappings"][0]["protocol"] = json!(3)),
            field("config.port_mappings[0].protocol", "unknown enum value 3")
        );
        assert_eq!(
            sandbox(&|d| d["port_mappings"][0]["container_port"] = json!(2_147_483_648_u64)),
            field("config.port_mappings[0].container_port", "2147483648 is out of range")
        );
    }

    #[test]
    fn null_is_the_zero_value_and_documents_must_hold_a_config() {
        let config =
            json!({"metadata": null, "command": null, "labels": null, "log_path": null, "tty": null});
        assert_eq!(container_config_of(&info(&config)), Ok(ContainerConfig::default()));
        assert_eq!(container_config_of("{}"), Err(field("config", "missing")));
        assert_eq!(sandbox_config_of(r#"{"config": null}"#), Err(field("config", "missing")));
        assert_eq!(container_config_of(r#"{"config": []}"#), Err(field("config", "expected an object")));
        assert!(matches!(container_config_of("not json"), Err(RebuildError::NotJson(_))));
        assert_eq!(container_config_of("[]"), Err(field("", "expected an object")));
        assert_eq!(sandbox_id_of(r#"{"config": {}}"#), Err(field("sandboxID", "missing")));
        assert_eq!(sandbox_id_of(r#"{"sandboxID": 7}"#), Err(field("sandboxID", "expected a string")));
        // Keys beside `config` (pid, runtimeSpec, ...) are the runtime's own and not read.
        assert_eq!(container_config_of(&info(&json!({}))), Ok(ContainerConfig::default()));
    }
}
