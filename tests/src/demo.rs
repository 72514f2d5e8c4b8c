//! The local demo: the test bed's containerd with the real proxy in front, one pod
//! run through the proxy the way kubelet runs it, each step timed, then everything
//! torn down.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use stevedore_proto::cri::{
    ContainerStatusRequest, ExecSyncRequest, ImageSpec, PullImageRequest, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};

use crate::{
    cri::{connect, image_client, runtime_client},
    pods::{self, Network},
    proxy_process::ProxyProcess,
    testbed::TestBed,
};

async fn step<T, F: Future<Output = anyhow::Result<T>>>(name: &str, f: F) -> anyhow::Result<T> {
    let t = Instant::now();
    let out = f.await.with_context(|| format!("step {name:?} failed"))?;
    println!("  {:>9.2} ms  {name}", ms(t.elapsed()));
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the demo, printing as it goes.
///
/// # Errors
/// Any step failing, named.
pub async fn run() -> anyhow::Result<()> {
    let total = Instant::now();
    println!("stevedore demo: kubelet -> stevedore-cri-proxy -> containerd (Debian's), on this machine\n");
    let bed = step("start the test bed: containerd + runc + local registry", TestBed::start()).await?;
    println!("             containerd socket {}", bed.containerd_socket().display());
    let sock = bed.dir().join("stevedore-cri.sock");
    let mut proxy = step(
        "start stevedore-cri-proxy in front of it",
        ProxyProcess::start(&sock, bed.containerd_socket(), &[]),
    )
    .await?;
    println!("             proxy socket {} (pid {})", proxy.socket().display(), proxy.pid());
    let ch = connect(proxy.socket()).await?;
    let (mut rt, mut img) = (runtime_client(ch.clone()), image_client(ch));

    let v = step("Version", async { Ok(rt.version(VersionRequest::default()).await?.into_inner()) }).await?;
    println!("             runtime {} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version);
    let image = bed.image("app:v1");
    let spec = || Some(ImageSpec { image: image.clone(), ..Default::default() });
    let r = step("PullImage app:v1", async {
        Ok(img.pull_image(PullImageRequest { image: spec(), ..Default::default() }).await?.into_inner())
    })
    .await?;
    println!("             {}", r.image_ref);
    let cfg =
        pods::sandbox("demo", "uid-demo", Network::Pod, &bed.log_dir().join("demo").display().to_string());
    let pod = step("RunPodSandbox (own network namespace, CNI bridge)", async {
        Ok(rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await?
            .into_inner()
            .pod_sandbox_id)
    })
    .await?;
    let ctr = step("CreateContainer app", async {
        Ok(rt
            .create_container(pods::container(&pod, &cfg, "app", &image, 0))
            .await?
            .into_inner()
            .container_id)
    })
    .await?;
    step("StartContainer app", async {
        Ok(rt.start_container(StartContainerRequest { container_id: ctr.clone() }).await?)
    })
    .await?;
    let status = step("ContainerStatus", async {
        Ok(rt
            .container_status(ContainerStatusRequest { container_id: ctr.clone(), verbose: false })
            .await?
            .into_inner())
    })
    .await?;
    let state = status.status.as_ref().map(|s| s.state).unwrap_or_default();
    println!(
        "             container {} is {:?}",
        &ctr[..12],
        stevedore_proto::cri::ContainerState::try_from(state).unwrap_or_default()
    );
    let out = step("ExecSync cat /etc/app-version", async {
        let req = ExecSyncRequest {
            container_id: ctr.clone(),
            cmd: vec!["cat".into(), "/etc/app-version".into()],
            timeout: 10,
        };
        Ok(rt.exec_sync(req).await?.into_inner())
    })
    .await?;
    println!(
        "             stdout: {:?}, exit code {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        out.exit_code
    );
    step("StopContainer (grace 2 s; the app exits on SIGTERM)", async {
        Ok(rt.stop_container(StopContainerRequest { container_id: ctr.clone(), timeout: 2 }).await?)
    })
    .await?;
    step("RemoveContainer", async {
        Ok(rt.remove_container(RemoveContainerRequest { container_id: ctr.clone() }).await?)
    })
    .await?;
    step("StopPodSandbox", async {
        Ok(rt.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await?)
    })
    .await?;
    step("RemovePodSandbox", async {
        Ok(rt.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await?)
    })
    .await?;
    let exit = step("stop the proxy (SIGTERM: drain, remove socket)", proxy.stop()).await?;
    println!("             proxy exited: {exit}; socket still there: {}", sock.exists());
    let dir = bed.dir().to_owned();
    step("tear down the test bed", async {
        drop(bed);
        Ok(())
    })
    .await?;
    anyhow::ensure!(!dir.exists(), "the test bed left {} behind", dir.display());
    println!("\nall done in {:.2} s; nothing left running", total.elapsed().as_secs_f64());
    Ok(())
}
