//! The configuration files of a bed: containerd, CNI, registry hosts and registry.

use std::path::Path;

/// The CRI sandbox image, imported into every bed's containerd (never pulled).
pub(crate) const PAUSE_IMAGE: &str = "stevedore.test/pause:1";
/// The registry host name every image is pulled under, whatever the registry port.
pub(crate) const IMAGE_DOMAIN: &str = "stevedore.test";

/// What a bed's containerd config depends on.
#[derive(Debug)]
pub(crate) struct ContainerdConfig<'a> {
    pub dir: &'a Path,
    pub snapshotter: &'a str,
    /// True when we lack CAP_SYS_RESOURCE: CRI gives sandboxes oom_score_adj -998,
    /// which then fails in runc ("can't get final child's PID from pipe").
    pub restrict_oom_score_adj: bool,
    pub log_level: &'a str,
}

/// containerd's config (version 2), everything under `dir`.
pub(crate) fn containerd_toml(c: &ContainerdConfig<'_>) -> String {
    let d = c.dir.display();
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  level = "{level}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = {oom}
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "{snap}"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d}/runc"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d}/cni/net.d"

[{cri}.registry]
  config_path = "{d}/certs.d"
"#,
        level = c.log_level,
        oom = c.restrict_oom_score_adj,
        snap = c.snapshotter,
    )
}

/// The bed's one CNI network: a bridge with host-local IPAM, no masquerade.
pub(crate) fn cni_conflist(dir: &Path, network: &str, bridge: &str, subnet: &str) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "{network}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}],
        "dataDir": "{ipam}"
      }}
    }}
  ]
}}
"#,
        ipam = dir.join("cni/ipam").display(),
    )
}

/// `certs.d/<IMAGE_DOMAIN>/hosts.toml`: the domain is served by the bed's registry
/// over plain http, with no fallback to the (nonexistent) real host.
pub(crate) fn hosts_toml(registry: &str) -> String {
    format!(
        r#"server = "http://{registry}"

[host."http://{registry}"]
  capabilities = ["pull", "resolve"]
"#
    )
}

/// A `docker-registry serve` config: plain http on `addr`, data in `root`.
pub(crate) fn registry_yml(root: &Path, addr: &str, read_only: bool) -> String {
    format!(
        r#"version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {read_only}
http:
  addr: {addr}
"#,
        root = root.display(),
    )
}
