//! The real-containerd test bed itself: two beds in parallel, a pod through CRI, a
//! containerd restart under a running pod, and the teardown.

use std::path::PathBuf;
use std::time::Instant;

use stevedore_proto::cri::{
    ContainerState, ContainerStatusRequest, ExecSyncRequest, ExecSyncResponse, ImageSpec, PodSandboxConfig,
    PodSandboxStatusRequest, PullImageRequest, RunPodSandboxRequest, StartContainerRequest,
};
use stevedore_tests::cri;
use stevedore_tests::pods::{self, Network};
use stevedore_tests::testbed::TestBed;

fn pod_config(bed: &TestBed, name: &str, network: Network) -> PodSandboxConfig {
    pods::sandbox(name, &format!("uid-{name}"), network, &bed.log_dir().join(name).display().to_string())
}

async fn app_version(rt: &mut cri::RuntimeClient, container_id: &str) -> anyhow::Result<ExecSyncResponse> {
    let req = ExecSyncRequest {
        container_id: container_id.to_owned(),
        cmd: vec!["cat".to_owned(), "/etc/app-version".to_owned()],
        timeout: 10,
    };
    Ok(rt.exec_sync(req).await?.into_inner())
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains("zombie")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bed_runs_a_pod_survives_a_restart_and_cleans_up() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let (a, b) = tokio::join!(TestBed::start(), TestBed::start());
    let (mut bed, other) = (a?, b?);
    eprintln!("two beds started in {:.2}s", t0.elapsed().as_secs_f64());
    assert_ne!(bed.dir(), other.dir());
    assert_ne!(bed.containerd_socket(), other.containerd_socket());
    assert_ne!(bed.registry(), other.registry());
    assert_eq!(bed.image("app:v1"), "stevedore.test/app:v1");
    assert_eq!(bed.pause_image(), "stevedore.test/pause:1");
    let other_dir = other.dir().to_path_buf();
    drop(other);
    assert!(!other_dir.exists(), "{} left behind", other_dir.display());

    let t0 = Instant::now();
    let third = TestBed::start().await?;
    eprintln!("a third bed (warm cache) started in {:.2}s", t0.elapsed().as_secs_f64());
    drop(third);

    let ch = cri::connect(bed.containerd_socket()).await?;
    let (mut rt, mut img) = (cri::runtime_client(ch.clone()), cri::image_client(ch));
    let image = ImageSpec { image: bed.image("app:v1"), ..Default::default() };
    let pulled = img
        .pull_image(PullImageRequest { image: Some(image.clone()), ..Default::default() })
        .await?
        .into_inner();
    assert!(!pulled.image_ref.is_empty());

    let pod = pod_config(&bed, "pod1", Network::Host);
    let pod_id = rt
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(pod.clone()), ..Default::default() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let ctr_id = rt
        .create_container(pods::container(&pod_id, &pod, "app", &pulled.image_ref, 0))
        .await?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest { container_id: ctr_id.clone() }).await?;

    let out = app_version(&mut rt, &ctr_id).await?;
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");

    // The other images, and a pod on the bed's CNI network.
    for name in ["app:v2", "big:v1"] {
        let t0 = Instant::now();
        let image = ImageSpec { image: bed.image(name), ..Default::default() };
        img.pull_image(PullImageRequest { image: Some(image), ..Default::default() }).await?;
        eprintln!("pulled {name} in {:.2}s", t0.elapsed().as_secs_f64());
    }
    let net_pod = pod_config(&bed, "pod2", Network::Pod);
    let net_pod_id = rt
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(net_pod), ..Default::default() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let ip = rt
        .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: net_pod_id, verbose: false })
        .await?
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    assert!(ip.starts_with(&format!("10.234.{}.", bed.slot())), "pod IP {ip:?}");

    // A containerd restart leaves the pod running.
    let t0 = Instant::now();
    bed.stop_containerd().await?;
    bed.start_containerd().await?;
    eprintln!("containerd restarted in {:.2}s", t0.elapsed().as_secs_f64());
    let mut rt = cri::runtime_client(cri::connect(bed.containerd_socket()).await?);
    let status = rt
        .container_status(ContainerStatusRequest { container_id: ctr_id.clone(), verbose: false })
        .await?
        .into_inner()
        .status
        .expect("a container status");
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    let out = app_version(&mut rt, &ctr_id).await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");

    // The teardown removes everything, the running pod included.
    let dir: PathBuf = bed.dir().to_path_buf();
    let pid: u32 = std::fs::read_to_string(dir.join("containerd.pid"))?.trim().parse()?;
    assert!(pid_alive(pid));
    let t0 = Instant::now();
    drop(bed);
    eprintln!("bed torn down in {:.2}s", t0.elapsed().as_secs_f64());
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!pid_alive(pid), "containerd {pid} still running");
    Ok(())
}

/// A test that panics still tears its bed down (and shows containerd's log tail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_still_tears_its_bed_down() -> anyhow::Result<()> {
    let dir = std::sync::Arc::new(std::sync::Mutex::new(None::<PathBuf>));
    let seen = dir.clone();
    let task = tokio::spawn(async move {
        let bed = TestBed::start().await.expect("bed starts");
        *seen.lock().expect("not poisoned") = Some(bed.dir().to_path_buf());
        panic!("deliberate panic with a running bed");
    });
    let err = task.await.expect_err("the task panics");
    assert!(err.is_panic());
    let dir = dir.lock().expect("not poisoned").clone().expect("the bed started");
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}
