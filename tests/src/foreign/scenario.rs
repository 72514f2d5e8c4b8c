//! The transparency scenario, run through a [`Client`] of any stack: the differential
//! suite's steps (Version, pull, image status and filtered list, a sandbox with a
//! container created, started, exec'd, listed with filters, stopped and removed),
//! error statuses (an unknown container, a method nobody serves), and two server
//! streams: CRI's `GetContainerEvents` (containerd 1.6 refuses it with a
//! trailers-only answer) and containerd's own `Events/Subscribe` on the same socket,
//! which receives an event published through the same client and is then cancelled.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use prost::Message as _;
use serde_json::{Value, json};
use stevedore_proto::cri::{
    self, ContainerFilter, ContainerStateValue, ContainerStatusRequest, ContainerStatusResponse,
    CreateContainerResponse, ExecSyncRequest, ExecSyncResponse, GetEventsRequest, ImageFilter, ImageSpec,
    ImageStatusRequest, ImageStatusResponse, ListContainersRequest, ListContainersResponse,
    ListImagesRequest, ListImagesResponse, ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxFilter,
    PullImageRequest, PullImageResponse, RemoveContainerRequest, RemoveContainerResponse,
    RemovePodSandboxRequest, RemovePodSandboxResponse, RunPodSandboxRequest, RunPodSandboxResponse,
    StartContainerRequest, StartContainerResponse, StopContainerRequest, StopContainerResponse,
    StopPodSandboxRequest, StopPodSandboxResponse, VersionRequest, VersionResponse,
};

use super::{Client, StreamEvent};
use crate::{
    pods::{self, Network},
    testbed::TestBed,
    transcript::Transcript,
};

const RUNTIME: &str = "/runtime.v1.RuntimeService/";
const IMAGES: &str = "/runtime.v1.ImageService/";
/// Sent with every call: metadata must reach the runtime.
const METADATA: &[(&str, &str)] = &[("x-stevedore-suite", "foreign-clients")];
const EVENTS_NAMESPACE: &str = "stevedore-foreign";
const EVENTS_TOPIC: &str = "/stevedore/foreign";

/// containerd's `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `containerd.services.events.v1.PublishRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct PublishRequest {
    #[prost(string, tag = "1")]
    topic: String,
    #[prost(message, optional, tag = "2")]
    event: Option<Any>,
}

/// `containerd.services.events.v1.SubscribeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct SubscribeRequest {
    #[prost(string, repeated, tag = "1")]
    filters: Vec<String>,
}

/// `containerd.services.events.v1.Envelope` (the timestamp is not read).
#[derive(Clone, PartialEq, prost::Message)]
struct Envelope {
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(string, tag = "3")]
    topic: String,
    #[prost(message, optional, tag = "4")]
    event: Option<Any>,
}

fn image(name: &str) -> Option<ImageSpec> {
    Some(ImageSpec { image: name.to_owned(), ..Default::default() })
}

/// One unary step: the answer decoded as `M` (or the error status) goes into the
/// transcript under `name`.
async fn step<M>(
    c: &mut Client,
    t: &mut Transcript,
    name: &str,
    path: &str,
    req: impl prost::Message,
) -> anyhow::Result<Option<M>>
where
    M: prost::Message + Default + serde::Serialize,
{
    let r =
        c.unary(path, METADATA, req.encode_to_vec().into()).await.with_context(|| format!("step {name}"))?;
    let (v, m) = match r.resp {
        Some(resp) if r.code == 0 => {
            let m = M::decode(resp).with_context(|| format!("step {name}: decoding the answer"))?;
            (json!({ "ok": serde_json::to_value(&m)? }), Some(m))
        }
        _ => (json!({ "error": { "code": r.code, "message": r.message } }), None),
    };
    t.push((name.to_owned(), v));
    Ok(m)
}

/// Runs the scenario; `tag` names the pod (the same tag gives the same names, so two
/// runs compare equal once normalized).
///
/// # Errors
/// The client failed, or a step the next ones need did not succeed.
pub async fn run(c: &mut Client, bed: &TestBed, tag: &str) -> anyhow::Result<Transcript> {
    let mut t = Transcript::new();
    let app = bed.image("app:v1");
    let rt = |m: &str| format!("{RUNTIME}{m}");
    let im = |m: &str| format!("{IMAGES}{m}");

    step::<VersionResponse>(c, &mut t, "Version", &rt("Version"), VersionRequest { version: "v1".into() })
        .await?;
    let pull = PullImageRequest { image: image(&app), ..Default::default() };
    step::<PullImageResponse>(c, &mut t, "PullImage", &im("PullImage"), pull).await?;
    let status = ImageStatusRequest { image: image(&app), verbose: false };
    step::<ImageStatusResponse>(c, &mut t, "ImageStatus", &im("ImageStatus"), status).await?;
    let list = ListImagesRequest { filter: Some(ImageFilter { image: image(&app) }) };
    step::<ListImagesResponse>(c, &mut t, "ListImages filtered", &im("ListImages"), list).await?;

    let name = format!("foreign-{tag}");
    let cfg = pods::sandbox(
        &name,
        &format!("uid-{name}"),
        Network::Host,
        &bed.log_dir().join(&name).display().to_string(),
    );
    let run = RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: String::new() };
    let pod = step::<RunPodSandboxResponse>(c, &mut t, "RunPodSandbox", &rt("RunPodSandbox"), run)
        .await?
        .context("RunPodSandbox failed")?
        .pod_sandbox_id;
    let create = pods::container(&pod, &cfg, "app", &app, 0);
    let ctr = step::<CreateContainerResponse>(c, &mut t, "CreateContainer", &rt("CreateContainer"), create)
        .await?
        .context("CreateContainer failed")?
        .container_id;
    let id = || ctr.clone();
    let start = StartContainerRequest { container_id: id() };
    step::<StartContainerResponse>(c, &mut t, "StartContainer", &rt("StartContainer"), start).await?;
    let status = ContainerStatusRequest { container_id: id(), verbose: false };
    step::<ContainerStatusResponse>(
        c,
        &mut t,
        "ContainerStatus running",
        &rt("ContainerStatus"),
        status.clone(),
    )
    .await?;
    let exec = ExecSyncRequest {
        container_id: id(),
        cmd: vec!["cat".into(), "/etc/app-version".into()],
        timeout: 10,
    };
    step::<ExecSyncResponse>(c, &mut t, "ExecSync", &rt("ExecSync"), exec).await?;
    let filter = ContainerFilter {
        pod_sandbox_id: pod.clone(),
        state: Some(ContainerStateValue { state: cri::ContainerState::ContainerRunning as i32 }),
        label_selector: HashMap::from([("io.kubernetes.container.name".into(), "app".into())]),
        ..Default::default()
    };
    let list = ListContainersRequest { filter: Some(filter) };
    step::<ListContainersResponse>(c, &mut t, "ListContainers filtered", &rt("ListContainers"), list).await?;
    let stop = StopContainerRequest { container_id: id(), timeout: 0 };
    step::<StopContainerResponse>(c, &mut t, "StopContainer", &rt("StopContainer"), stop).await?;
    step::<ContainerStatusResponse>(c, &mut t, "ContainerStatus exited", &rt("ContainerStatus"), status)
        .await?;
    let remove = RemoveContainerRequest { container_id: id() };
    step::<RemoveContainerResponse>(c, &mut t, "RemoveContainer", &rt("RemoveContainer"), remove).await?;
    let pods_filter = PodSandboxFilter {
        label_selector: HashMap::from([("io.kubernetes.pod.name".into(), name.clone())]),
        ..Default::default()
    };
    let list = ListPodSandboxRequest { filter: Some(pods_filter) };
    step::<ListPodSandboxResponse>(c, &mut t, "ListPodSandbox filtered", &rt("ListPodSandbox"), list).await?;
    let stop = StopPodSandboxRequest { pod_sandbox_id: pod.clone() };
    step::<StopPodSandboxResponse>(c, &mut t, "StopPodSandbox", &rt("StopPodSandbox"), stop).await?;
    let remove = RemovePodSandboxRequest { pod_sandbox_id: pod };
    step::<RemovePodSandboxResponse>(c, &mut t, "RemovePodSandbox", &rt("RemovePodSandbox"), remove).await?;

    let unknown = ContainerStatusRequest { container_id: "0".repeat(64), verbose: false };
    step::<ContainerStatusResponse>(c, &mut t, "ContainerStatus unknown", &rt("ContainerStatus"), unknown)
        .await?;
    let nobody = VersionRequest::default();
    step::<VersionResponse>(c, &mut t, "a method nobody serves", &rt("NoSuchMethod"), nobody).await?;

    // a server stream the runtime refuses (trailers-only)
    c.open(1, &rt("GetContainerEvents"), METADATA, GetEventsRequest::default().encode_to_vec().into())
        .await?;
    let first = next_event(c, 1).await?;
    t.push(("GetContainerEvents".into(), event_json(&first, |b| Ok(json!(b.len())))?));

    t.push(("Events/Subscribe".into(), subscribed_event(c).await?));
    // the connection still serves after the cancelled stream
    step::<VersionResponse>(
        c,
        &mut t,
        "Version after the streams",
        &rt("Version"),
        VersionRequest::default(),
    )
    .await?;
    Ok(t)
}

/// Waits for stream `id`'s next event (at most 30 s).
async fn next_event(c: &mut Client, id: u32) -> anyhow::Result<StreamEvent> {
    for _ in 0..300 {
        match c.next(id, Duration::from_millis(100)).await? {
            StreamEvent::Nothing => continue,
            e => return Ok(e),
        }
    }
    bail!("stream {id} gave nothing for 30 s")
}

fn event_json(e: &StreamEvent, msg: impl Fn(&Bytes) -> anyhow::Result<Value>) -> anyhow::Result<Value> {
    Ok(match e {
        StreamEvent::Msg(b) => json!({ "msg": msg(b)? }),
        StreamEvent::End { code, message } => json!({ "end": { "code": code, "message": message } }),
        StreamEvent::Nothing => json!("nothing"),
    })
}

/// Subscribes to containerd's events, publishes on the test topic until an event
/// arrives (the subscription starts at some point after the call is sent), and
/// cancels the stream.
async fn subscribed_event(c: &mut Client) -> anyhow::Result<Value> {
    let md = [METADATA[0], ("containerd-namespace", EVENTS_NAMESPACE)];
    let sub = SubscribeRequest { filters: vec![format!("topic==\"{EVENTS_TOPIC}\"")] };
    c.open(2, "/containerd.services.events.v1.Events/Subscribe", &md, sub.encode_to_vec().into()).await?;
    let publish = PublishRequest {
        topic: EVENTS_TOPIC.into(),
        event: Some(Any { type_url: "stevedore.test/Ping".into(), value: b"ping".to_vec() }),
    };
    for _ in 0..100 {
        let r = c
            .unary("/containerd.services.events.v1.Events/Publish", &md, publish.encode_to_vec().into())
            .await?;
        anyhow::ensure!(r.code == 0, "Publish failed: {} {}", r.code, r.message);
        match c.next(2, Duration::from_millis(100)).await? {
            StreamEvent::Nothing => continue,
            e => {
                let v = event_json(&e, |b| {
                    let env = Envelope::decode(b.clone())?;
                    let event = env.event.unwrap_or_default();
                    Ok(json!({ "namespace": env.namespace, "topic": env.topic, "type_url": event.type_url,
                        "value": String::from_utf8_lossy(&event.value) }))
                })?;
                c.cancel(2).await?;
                return Ok(v);
            }
        }
    }
    bail!("no event arrived on the subscription in 100 publishes")
}
