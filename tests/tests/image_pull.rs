//! Image pulls on a real containerd through the real `stevedore-cri-proxy` binary:
//! kubelet's CRI pulls and the agent's control API pulls of one image are one pull
//! (the registry front counts one resolve), the control API reports progress read
//! from containerd's content store, and failures reach every caller.

use std::time::Duration;

use prost::Message as _;
use stevedore_proto::{
    control::{PullImageProgress, PullImageRequest as ControlPull, control_client::ControlClient},
    cri::{ImageSpec, PullImageRequest},
};
use stevedore_tests::{
    cri::{connect, image_client},
    proxy_process::ProxyProcess,
    registry_front::{RegistryFront, Settings},
    testbed::TestBed,
};
use tonic::Code;

fn pull(image: &str) -> PullImageRequest {
    PullImageRequest {
        image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

async fn control_pull(
    control: &mut ControlClient<tonic::transport::Channel>,
    image: &str,
) -> Result<Vec<PullImageProgress>, tonic::Status> {
    let mut stream =
        control.pull_image(ControlPull { cri_request: pull(image).encode_to_vec() }).await?.into_inner();
    let mut seen = Vec::new();
    while let Some(msg) = stream.message().await? {
        seen.push(msg);
    }
    Ok(seen)
}

/// The config and layers of `name` in the bed's registry, read past the front.
fn blob_count(bed: &TestBed, name: &str) -> anyhow::Result<u64> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{name}", bed.registry()))
        .output()?;
    anyhow::ensure!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(1 + manifest["layers"].as_array().map_or(0, Vec::len) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_and_agent_pulls_are_one_pull_with_progress() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    // 80 MB at 16 MB/s: about five seconds, long enough to see progress
    let front = RegistryFront::start(
        bed.registry(),
        Settings { bytes_per_second: Some(16 << 20), ..Default::default() },
    )
    .await?;
    bed.serve_domain("slow.test", &front.addr())?;
    let socket = bed.dir().join("proxy.sock");
    let mut proxy =
        ProxyProcess::start(&socket, bed.containerd_socket(), &["--pull-progress-interval-ms", "100"])
            .await?;
    let control_socket = proxy.control_socket().expect("the real proxy").to_owned();
    let image = "slow.test/big:v1";
    let ch = connect(&socket).await?;
    let mut control = ControlClient::new(connect(&control_socket).await?);

    // the agent first, then kubelet twice while it runs
    let agent = tokio::spawn({
        let mut control = control.clone();
        async move { control_pull(&mut control, image).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut first, mut second) = (image_client(ch.clone()), image_client(ch));
    let (a, b) = tokio::join!(first.pull_image(pull(image)), second.pull_image(pull(image)));
    let progress = agent.await??;
    let id = a?.into_inner().image_ref;
    assert_eq!(b?.into_inner().image_ref, id);
    let last = progress.last().expect("at least the final message");
    assert_eq!((last.percent, &last.image_ref), (100, &id));
    assert!(!last.joined, "the agent started the pull");
    let between: Vec<_> = progress.iter().filter(|m| m.percent > 0 && m.percent < 100).collect();
    assert!(!between.is_empty(), "progress between 0 and 100 was reported: {progress:?}");
    assert!(between.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done), "{progress:?}");
    assert!(last.bytes_total > 80_000_000, "{last:?}");
    let (heads, gets, blobs, _, _) = front.counts().snapshot();
    assert_eq!(heads, 1, "one resolve for three callers");
    assert_eq!((gets, blobs), (1, blob_count(&bed, "big:v1")?), "each blob fetched once");

    // a pull that fails reaches each caller with the runtime's status
    let err = control_pull(&mut control, "slow.test/missing:v1").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    proxy.stop().await?;
    Ok(())
}

/// The real agent, for one node of the simulated API server, pulls what its NodeImage
/// asks through the real proxy on a real containerd, and reports it in the NodeImage's
/// status: progress on the way, the image id at the end, the runtime's reason when a
/// pull fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_pulls_what_its_node_image_asks_and_reports_progress() -> anyhow::Result<()> {
    use kube::api::{Api, ObjectMeta, PostParams};
    use stevedore_proto::crd::node_image::v1beta1::{NodeImage, NodeImageSpec};
    use stevedore_tests::{
        agent_process::{AgentOptions, AgentProcess},
        apiserver::{ADMIN_TOKEN, ApiServer, Options},
        controller_process::install,
        wait::until,
    };

    let bed = TestBed::start().await?;
    let front = RegistryFront::start(
        bed.registry(),
        Settings { bytes_per_second: Some(16 << 20), ..Default::default() },
    )
    .await?;
    bed.serve_domain("slow.test", &front.addr())?;
    let server = ApiServer::start(Options::default()).await?;
    let client = server.client().await?;
    let kubeconfig = bed.dir().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
    install(&client, &["stevedore-system"]).await?;

    let socket = bed.dir().join("proxy.sock");
    let mut proxy =
        ProxyProcess::start(&socket, bed.containerd_socket(), &["--pull-progress-interval-ms", "100"])
            .await?;
    let control_socket = proxy.control_socket().expect("the real proxy").to_owned();
    let node_images: Api<NodeImage> = Api::all(client.clone());
    let spec: NodeImageSpec = serde_json::from_value(serde_json::json!({
        "images": {
            "slow.test/big": { "tags": [{ "tag": "v1", "version": 1 }] },
            "slow.test/missing": { "tags": [{ "tag": "v1", "version": 1, "pullPolicy": { "backoffLimit": 0 } }] },
        }
    }))?;
    let node_image = NodeImage {
        metadata: ObjectMeta { name: Some("node-a".into()), ..Default::default() },
        spec,
        status: None,
    };
    node_images.create(&PostParams::default(), &node_image).await?;
    let mut agent = AgentProcess::start(
        bed.dir(),
        &AgentOptions {
            node_name: "node-a".into(),
            kubeconfig,
            cri_socket: socket.clone(),
            control_socket: Some(control_socket.clone()),
            namespace: "stevedore-system".into(),
            extra: vec![],
        },
    )
    .await?;

    let mut progress_seen = Vec::new();
    let tag_status = |ni: &NodeImage, name: &str| {
        ni.status
            .as_ref()
            .and_then(|s| s.image_statuses.as_ref())
            .and_then(|m| m.get(name))
            .and_then(|s| s.tags.first())
            .cloned()
    };
    let (big, missing) = until("both pulls finish", Duration::from_secs(60), async || {
        let ni = node_images.get("node-a").await?;
        let big = tag_status(&ni, "slow.test/big");
        let missing = tag_status(&ni, "slow.test/missing");
        if let Some(p) = big.as_ref().and_then(|t| t.progress) {
            progress_seen.push(p);
        }
        let done = |t: &Option<stevedore_proto::crd::node_image::ImageTagStatus>| {
            t.as_ref().is_some_and(|t| t.completion_time.is_some())
        };
        Ok((done(&big) && done(&missing)).then(|| (big.unwrap(), missing.unwrap())))
    })
    .await
    .map_err(|e| e.context(agent.log_tail(40)))?;
    assert_eq!(format!("{:?}", big.phase), "Succeeded", "{big:?}");
    assert_eq!(big.progress, Some(100));
    assert!(big.image_id.as_deref().is_some_and(|id| id.starts_with("sha256:")), "{big:?}");
    assert!(progress_seen.iter().any(|p| *p > 0 && *p < 100), "progress on the way: {progress_seen:?}");
    assert_eq!(format!("{:?}", missing.phase), "Failed", "{missing:?}");
    assert!(missing.message.as_deref().is_some_and(|m| m.contains("not found")), "{missing:?}");
    agent.stop().await?;
    proxy.stop().await?;
    Ok(())
}
