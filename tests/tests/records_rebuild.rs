//! Records rebuilt from the runtime on a real containerd: a sandbox and a container
//! with a rich config are created straight on containerd (no proxy, so no record),
//! then a proxy starts; its reconciliation rebuilds the container's
//! `CreateContainerRequest` from containerd's verbose statuses and writes the record,
//! which must equal the request sent field for field (less what containerd drops,
//! below). A `RecreateContainer` of it then
//! makes a container with the same config (attempt, restart count and log path
//! aside).
//!
//! With `STEVEDORE_REBUILD_FIXTURES=<dir>` the verbose infos are written there (how
//! the converter's fixtures in `cri-proxy/tests/fixtures/` were captured).

use std::{collections::HashMap, time::Duration};

use prost::Message as _;
use stevedore_proto::{
    control::{RecreateContainerRequest, control_client::ControlClient},
    cri::{
        Capability, ContainerConfig, ContainerState, ContainerStatusRequest, CreateContainerRequest, Device,
        DnsConfig, Int64Value, KeyValue, LinuxContainerResources, LinuxContainerSecurityContext, Mount,
        MountPropagation, PodSandboxStatusRequest, PortMapping, Protocol, PullImageRequest,
        RunPodSandboxRequest, SecurityProfile, StartContainerRequest, security_profile::ProfileType,
    },
};
use stevedore_tests::{
    cri,
    pods::{self, Network},
    proxy_process::ProxyProcess,
    testbed::TestBed,
};

/// The `config` of containerd's verbose info of container `id`.
async fn container_config(
    rt: &mut cri::RuntimeClient,
    id: &str,
) -> anyhow::Result<(ContainerConfig, String)> {
    let resp = rt.container_status(ContainerStatusRequest { container_id: id.into(), verbose: true }).await?;
    let info = resp.into_inner().info.remove("info").ok_or_else(|| anyhow::anyhow!("no verbose info"))?;
    let config = stevedore_cri_proxy::containers::rebuild::container_config_of(&info)?;
    Ok((config, info))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_created_before_the_proxy_gets_its_record_rebuilt_and_recreates_alike()
-> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let ch = cri::connect(bed.containerd_socket()).await?;
    let (mut rt, mut img) = (cri::runtime_client(ch.clone()), cri::image_client(ch));
    let image = bed.image("app:v1");
    img.pull_image(PullImageRequest {
        image: Some(stevedore_proto::cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    })
    .await?;

    // A sandbox richer than the suites' usual one.
    let mut sandbox =
        pods::sandbox("rich", "uid-rich", Network::Host, &bed.log_dir().join("rich").display().to_string());
    sandbox.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    sandbox.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: 0,
        host_ip: String::new(),
    }];
    {
        let linux = sandbox.linux.get_or_insert_default();
        linux.sysctls = HashMap::from([("kernel.shm_rmid_forced".into(), "1".into())]);
        let sc = linux.security_context.get_or_insert_default();
        sc.supplemental_groups = vec![3000];
        sc.seccomp =
            Some(SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, ..Default::default() });
    }
    let sandbox_id = rt
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox.clone()), ..Default::default() })
        .await?
        .into_inner()
        .pod_sandbox_id;

    // A container with envs, mounts, labels, annotations, a security context,
    // resources, command and args, a working dir and a log path.
    let data = bed.dir().join("rich-data");
    std::fs::create_dir_all(&data)?;
    let mut request = pods::container(&sandbox_id, &sandbox, "app", &image, 0);
    {
        let c = request.config.get_or_insert_default();
        c.command = vec!["/bin/sh".into(), "-c".into()];
        c.args = vec!["echo started; exec sleep 3600".into()];
        c.working_dir = "/data".into();
        // A field newer than containerd 1.6's CRI API: it drops it on receipt.
        c.image.get_or_insert_default().user_specified_image = "app:v1".into();
        c.log_path = "app/0.log".into();
        c.envs.extend([
            KeyValue { key: "ZONE".into(), value: "a".into() },
            KeyValue { key: "EMPTY".into(), value: String::new() },
        ]);
        c.mounts = vec![Mount {
            container_path: "/data".into(),
            host_path: data.display().to_string(),
            readonly: true,
            selinux_relabel: false,
            propagation: MountPropagation::PropagationPrivate as i32,
            ..Default::default()
        }];
        c.devices = vec![Device {
            container_path: "/dev/xnull".into(),
            host_path: "/dev/null".into(),
            permissions: "rwm".into(),
        }];
        c.labels.insert("io.kubernetes.pod.name".into(), "rich".into());
        c.labels.insert("io.kubernetes.pod.namespace".into(), "default".into());
        c.labels.insert("io.kubernetes.pod.uid".into(), "uid-rich".into());
        c.annotations.insert("io.kubernetes.container.hash".into(), "1a2b3c".into());
        c.annotations
            .insert("io.kubernetes.container.terminationMessagePath".into(), "/dev/termination-log".into());
        let linux = c.linux.get_or_insert_default();
        linux.resources = Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            oom_score_adj: 900,
            ..Default::default()
        });
        let sc: &mut LinuxContainerSecurityContext = linux.security_context.get_or_insert_default();
        sc.run_as_user = Some(Int64Value { value: 1000 });
        sc.run_as_group = Some(Int64Value { value: 1000 });
        sc.supplemental_groups = vec![3000, 4000];
        sc.readonly_rootfs = true;
        sc.no_new_privs = true;
        sc.capabilities = Some(Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
            add_ambient_capabilities: vec![],
        });
        sc.masked_paths = vec!["/proc/kcore".into(), "/proc/keys".into()];
        sc.readonly_paths = vec!["/proc/sys".into()];
        sc.seccomp =
            Some(SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, ..Default::default() });
    }
    let old = rt.create_container(request.clone()).await?.into_inner().container_id;
    rt.start_container(StartContainerRequest { container_id: old.clone() }).await?;

    let (stored, info) = container_config(&mut rt, &old).await?;
    if let Ok(dir) = std::env::var("STEVEDORE_REBUILD_FIXTURES") {
        std::fs::write(format!("{dir}/container-info.json"), &info)?;
        let s = rt
            .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: sandbox_id.clone(), verbose: true })
            .await?
            .into_inner();
        std::fs::write(format!("{dir}/sandbox-info.json"), s.info.get("info").cloned().unwrap_or_default())?;
    }
    // What containerd keeps is what it was sent, except the fields its CRI API
    // version does not know: containerd 1.6 (Debian 12) decodes the request with a
    // cri-api older than `ImageSpec.user_specified_image` (and user namespaces,
    // image volumes, CDI devices, ...), so the field is gone before it is stored.
    let mut kept = request.clone();
    kept.config.get_or_insert_default().image.get_or_insert_default().user_specified_image.clear();
    assert_eq!(Some(&stored), kept.config.as_ref(), "containerd keeps the config kubelet sent");

    // A proxy on this node: it has no record of the container, and rebuilds it.
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let record = proxy.socket().with_extension("state").join("containers").join(format!("{old}.pb"));
    let bytes = stevedore_tests::wait::until("the rebuilt record", Duration::from_secs(30), async || {
        Ok(std::fs::read(&record).ok())
    })
    .await?;
    let rebuilt = CreateContainerRequest::decode(bytes.as_slice())?;
    assert_eq!(rebuilt.pod_sandbox_id, kept.pod_sandbox_id);
    assert_eq!(rebuilt.config, kept.config, "the container config, field for field");
    assert_eq!(rebuilt.sandbox_config, kept.sandbox_config, "the sandbox config, field for field");
    assert_eq!(rebuilt, kept);
    // (The suites' proxies log warnings only: no rebuild was refused.)
    assert!(!proxy.log_tail(200).contains("cannot rebuild"), "{}", proxy.log_tail(30));

    // Recreated from the rebuilt record: the same config, at the next attempt.
    let mut control = ControlClient::new(cri::connect(proxy.control_socket().expect("our proxy")).await?);
    let done = control
        .recreate_container(RecreateContainerRequest {
            container_id: old.clone(),
            grace_period_seconds: 0,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(done.recorded, "recreated from the rebuilt record, not the kubelet way");
    assert_eq!(done.attempt, 1);
    let new = done.container_id;
    let status = rt
        .container_status(ContainerStatusRequest { container_id: new.clone(), verbose: false })
        .await?
        .into_inner()
        .status
        .expect("a status");
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    let (new_config, _) = container_config(&mut rt, &new).await?;
    let mut expected = kept.config.clone().expect("a config");
    expected.metadata.get_or_insert_default().attempt = 1;
    expected.annotations.insert("io.kubernetes.container.restartCount".into(), "1".into());
    expected.log_path = "app/1.log".into();
    assert_eq!(new_config, expected);
    let out = rt
        .exec_sync(stevedore_proto::cri::ExecSyncRequest {
            container_id: new.clone(),
            cmd: vec!["id".into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(id.contains("uid=1000") && id.contains("gid=1000"), "{id}");
    Ok(())
}
