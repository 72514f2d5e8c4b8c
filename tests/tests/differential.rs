//! The differential suite: one CRI scenario run directly against the test bed's
//! containerd and again through the real `stevedore-cri-proxy` binary; the answers
//! (and errors) must match except for ids, timestamps and pod IPs. Plus raw
//! passthrough of methods the proto lacks, and a runtime restart under load.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::Context as _;
use serde_json::{Value, json};
use stevedore_proto::cri::{
    self, ContainerFilter, ContainerStateValue, ContainerStatusRequest, ExecSyncRequest, ImageFilter,
    ImageSpec, ImageStatusRequest, ListContainersRequest, ListImagesRequest, ListPodSandboxRequest,
    PodSandboxFilter, PodSandboxStatusRequest, PullImageRequest, RemoveContainerRequest, RemoveImageRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use stevedore_tests::{
    cri::{ImageClient, RuntimeClient, connect, image_client, runtime_client},
    pods::{self, Network},
    proxy_process::ProxyProcess,
    testbed::TestBed,
    transcript::{Transcript, normalize},
};
use tonic::Code;

fn answer<T: serde::Serialize>(r: Result<tonic::Response<T>, tonic::Status>) -> Value {
    match r {
        Ok(resp) => json!({ "ok": serde_json::to_value(resp.into_inner()).expect("CRI messages serialize") }),
        Err(status) => {
            json!({ "error": { "code": format!("{:?}", status.code()), "message": status.message() } })
        }
    }
}

fn image(name: &str) -> Option<ImageSpec> {
    Some(ImageSpec { image: name.to_owned(), ..Default::default() })
}

async fn scenario(socket: &Path, bed: &TestBed) -> anyhow::Result<Transcript> {
    let ch = connect(socket).await?;
    let (mut rt, mut img): (RuntimeClient, ImageClient) = (runtime_client(ch.clone()), image_client(ch));
    let mut t: Transcript = Vec::new();
    let app = bed.image("app:v1");
    let v2 = bed.image("app:v2");

    t.push(("Version".into(), answer(rt.version(VersionRequest { version: "v1".into() }).await)));
    t.push((
        "PullImage app:v1".into(),
        answer(img.pull_image(PullImageRequest { image: image(&app), ..Default::default() }).await),
    ));
    t.push((
        "ImageStatus app:v1".into(),
        answer(img.image_status(ImageStatusRequest { image: image(&app), verbose: false }).await),
    ));
    t.push((
        "ListImages filter app:v1".into(),
        answer(img.list_images(ListImagesRequest { filter: Some(ImageFilter { image: image(&app) }) }).await),
    ));

    for network in [Network::Host, Network::Pod] {
        let tag = format!("{network:?}").to_lowercase();
        let name = format!("diff-{tag}");
        let cfg = pods::sandbox(
            &name,
            &format!("uid-{name}"),
            network,
            &bed.log_dir().join(&name).display().to_string(),
        );
        let run = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await;
        let pod = run
            .as_ref()
            .map(|r| r.get_ref().pod_sandbox_id.clone())
            .map_err(Clone::clone)
            .context("RunPodSandbox")?;
        t.push((format!("RunPodSandbox {tag}"), answer(run)));
        t.push((
            format!("PodSandboxStatus {tag}"),
            answer(
                rt.pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: pod.clone(),
                    verbose: false,
                })
                .await,
            ),
        ));

        let create = rt.create_container(pods::container(&pod, &cfg, "app", &app, 0)).await;
        let ctr = create
            .as_ref()
            .map(|r| r.get_ref().container_id.clone())
            .map_err(Clone::clone)
            .context("CreateContainer")?;
        t.push((format!("CreateContainer {tag}"), answer(create)));
        t.push((
            format!("StartContainer {tag}"),
            answer(rt.start_container(StartContainerRequest { container_id: ctr.clone() }).await),
        ));
        t.push((
            format!("ContainerStatus running {tag}"),
            answer(
                rt.container_status(ContainerStatusRequest { container_id: ctr.clone(), verbose: false })
                    .await,
            ),
        ));
        t.push((
            format!("ExecSync {tag}"),
            answer(
                rt.exec_sync(ExecSyncRequest {
                    container_id: ctr.clone(),
                    cmd: vec!["cat".into(), "/etc/app-version".into()],
                    timeout: 10,
                })
                .await,
            ),
        ));
        let by_pod = ContainerFilter {
            pod_sandbox_id: pod.clone(),
            state: Some(ContainerStateValue { state: cri::ContainerState::ContainerRunning as i32 }),
            label_selector: HashMap::from([("io.kubernetes.container.name".into(), "app".into())]),
            ..Default::default()
        };
        t.push((
            format!("ListContainers by pod, state, label {tag}"),
            answer(rt.list_containers(ListContainersRequest { filter: Some(by_pod) }).await),
        ));
        t.push((
            format!("StopContainer {tag}"),
            answer(rt.stop_container(StopContainerRequest { container_id: ctr.clone(), timeout: 0 }).await),
        ));
        t.push((
            format!("ContainerStatus exited {tag}"),
            answer(
                rt.container_status(ContainerStatusRequest { container_id: ctr.clone(), verbose: false })
                    .await,
            ),
        ));
        t.push((
            format!("RemoveContainer {tag}"),
            answer(rt.remove_container(RemoveContainerRequest { container_id: ctr }).await),
        ));
        let pods_filter = PodSandboxFilter {
            label_selector: HashMap::from([("io.kubernetes.pod.name".into(), name.clone())]),
            ..Default::default()
        };
        t.push((
            format!("ListPodSandbox by label {tag}"),
            answer(rt.list_pod_sandbox(ListPodSandboxRequest { filter: Some(pods_filter) }).await),
        ));
        t.push((
            format!("StopPodSandbox {tag}"),
            answer(rt.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await),
        ));
        t.push((
            format!("RemovePodSandbox {tag}"),
            answer(rt.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await),
        ));
    }

    t.push((
        "PullImage app:v2".into(),
        answer(img.pull_image(PullImageRequest { image: image(&v2), ..Default::default() }).await),
    ));
    t.push((
        "RemoveImage app:v2".into(),
        answer(img.remove_image(RemoveImageRequest { image: image(&v2) }).await),
    ));
    t.push((
        "ImageStatus removed app:v2".into(),
        answer(img.image_status(ImageStatusRequest { image: image(&v2), verbose: false }).await),
    ));

    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned();
    t.push((
        "ContainerStatus unknown".into(),
        answer(
            rt.container_status(ContainerStatusRequest { container_id: unknown.clone(), verbose: false })
                .await,
        ),
    ));
    t.push((
        "PodSandboxStatus unknown".into(),
        answer(
            rt.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: unknown.clone(),
                verbose: false,
            })
            .await,
        ),
    ));
    t.push((
        "StopContainer unknown".into(),
        answer(rt.stop_container(StopContainerRequest { container_id: unknown.clone(), timeout: 0 }).await),
    ));
    t.push((
        "RemoveContainer unknown".into(),
        answer(rt.remove_container(RemoveContainerRequest { container_id: unknown.clone() }).await),
    ));
    t.push((
        "StopPodSandbox unknown".into(),
        answer(rt.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: unknown }).await),
    ));
    Ok(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_answers_the_same_directly_and_through_the_proxy() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let direct = normalize(&scenario(bed.containerd_socket(), &bed).await?);
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let proxied = normalize(&scenario(proxy.socket(), &bed).await?);
    assert_eq!(direct.len(), proxied.len());
    for ((step, d), (_, p)) in direct.iter().zip(&proxied) {
        assert_eq!(d, p, "step {step:?} differs:\n direct:  {d}\n proxied: {p}");
    }
    // the scenario exercised what it claims: real pods ran and the unknown ids failed
    let find = |name: &str| direct.iter().find(|(s, _)| s == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(find("ExecSync pod")["ok"]["stdout"], json!(b"v1\n".to_vec()));
    assert_eq!(find("ContainerStatus unknown")["error"]["code"], json!("NotFound"));
    assert_eq!(find("RemoveContainer unknown"), json!({ "ok": {} }));
    assert!(find("PodSandboxStatus pod")["ok"]["status"]["network"]["ip"] == json!("<pod-ip>"));
    Ok(())
}

/// Calls `path` with a raw, already-encoded message: how kubelet reaches RPCs newer
/// than the proxy's proto. Returns the status and the answer's bytes.
async fn raw(
    socket: &Path,
    path: &'static str,
    message: impl prost::Message + Default + 'static,
) -> (Code, String, Vec<u8>) {
    let ch = connect(socket).await.unwrap();
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<_, cri::VersionResponse>::default();
    match grpc.unary(tonic::Request::new(message), http::uri::PathAndQuery::from_static(path), codec).await {
        Ok(r) => (Code::Ok, String::new(), prost::Message::encode_to_vec(r.get_ref())),
        Err(s) => (s.code(), s.message().to_owned(), Vec::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_the_proto_lacks_and_other_versions_pass_through_unchanged() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    for path in [
        // newer than k8s-cri 0.11's proto; containerd 1.6 does not know it either
        "/runtime.v1.RuntimeService/UpdatePodSandboxResources",
        // in the proto, but containerd 1.6 answers UNIMPLEMENTED (no evented PLEG)
        "/runtime.v1.RuntimeService/GetContainerEvents",
        // the older CRI version that containerd 1.6 still serves
        "/runtime.v1alpha2.RuntimeService/Version",
    ] {
        let direct = raw(bed.containerd_socket(), path, VersionRequest { version: "0.1.0".into() }).await;
        let proxied = raw(proxy.socket(), path, VersionRequest { version: "0.1.0".into() }).await;
        assert_eq!(direct, proxied, "{path}");
        eprintln!("{path}: {:?} {:?}", direct.0, direct.1);
    }
    let (code, _, body) =
        raw(proxy.socket(), "/runtime.v1alpha2.RuntimeService/Version", VersionRequest::default()).await;
    assert_eq!(code, Code::Ok);
    let v: cri::VersionResponse = prost::Message::decode(body.as_slice())?;
    assert_eq!(v.runtime_name, "containerd");
    let (code, _, _) = raw(
        proxy.socket(),
        "/runtime.v1.RuntimeService/UpdatePodSandboxResources",
        VersionRequest::default(),
    )
    .await;
    assert_eq!(code, Code::Unimplemented);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_restart_under_load_gives_unavailable_never_hangs_and_recovers() -> anyhow::Result<()> {
    let mut bed = TestBed::start().await?;
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let pid = proxy.pid();
    let deadline = Duration::from_secs(2);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..4 {
        let rt = runtime_client(connect(proxy.socket()).await?);
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut codes: HashMap<Code, usize> = HashMap::new();
            while !stop.is_cancelled() {
                let mut rt = rt.clone();
                let call = async move {
                    if w % 2 == 0 {
                        let mut req = tonic::Request::new(VersionRequest::default());
                        req.set_timeout(deadline);
                        rt.version(req).await.map(drop)
                    } else {
                        let mut req = tonic::Request::new(ListContainersRequest::default());
                        req.set_timeout(deadline);
                        rt.list_containers(req).await.map(drop)
                    }
                };
                // a hang detector, far above the deadline: never a latency assertion
                // Ok stands for any answer of the runtime itself
                let code = match tokio::time::timeout(deadline * 5, call).await {
                    Ok(Ok(())) => Code::Ok,
                    // containerd's own answer while its CRI plugin starts up: the
                    // proxy passes it through, as a direct caller would see it
                    Ok(Err(status)) if status.message() == "server is not initialized yet" => Code::Ok,
                    // The proxy closes a caller's connection whose runtime connection
                    // ended (GOAWAY, then a ping, then the last stream, as HTTP/2
                    // servers close). A hyper client fails a call it had queued on
                    // that connection as the connection ended (grpc-go clients such
                    // as kubelet retry it): counted apart, at most once per client.
                    Ok(Err(status))
                        if status.code() == Code::Cancelled
                            && format!("{:?}", status).contains("connection closed") =>
                    {
                        Code::Aborted
                    }
                    Ok(Err(status)) => {
                        if status.code() != Code::Unavailable {
                            eprintln!("unexpected status during the restart: {status:?}");
                        }
                        status.code()
                    }
                    Err(_) => panic!("a call hung past five times its deadline"),
                };
                *codes.entry(code).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            codes
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.stop_containerd().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bed.start_containerd().await?;
    // calls succeed again through the same proxy process
    let mut rt = runtime_client(connect(proxy.socket()).await?);
    let mut recovered = false;
    for _ in 0..100 {
        if rt.version(VersionRequest::default()).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let mut total: HashMap<Code, usize> = HashMap::new();
    for w in workers {
        for (code, n) in w.await? {
            *total.entry(code).or_default() += n;
        }
    }
    eprintln!("calls by code across the restart: {total:?}");
    assert!(recovered, "the proxy never reached the restarted runtime");
    assert!(total.get(&Code::Ok).copied().unwrap_or(0) > 0);
    assert!(total.get(&Code::Unavailable).copied().unwrap_or(0) > 0, "the gap was not observed: {total:?}");
    assert!(
        total.get(&Code::Aborted).copied().unwrap_or(0) <= 4,
        "more than one call per client was cut as its connection closed: {total:?}"
    );
    let other: Vec<_> =
        total.keys().filter(|c| !matches!(c, Code::Ok | Code::Unavailable | Code::Aborted)).collect();
    assert!(other.is_empty(), "calls during the restart failed with codes other than UNAVAILABLE: {total:?}");
    assert_eq!(proxy.pid(), pid);
    assert!(std::fs::metadata(format!("/proc/{pid}")).is_ok(), "the proxy process died");
    Ok(())
}
