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
