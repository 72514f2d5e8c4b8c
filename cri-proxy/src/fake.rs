//! A fake CRI runtime for tests and benchmarks: it implements the generated
//! `RuntimeService` and `ImageService` servers on a unix socket. Tests script it
//! (`fail_next`, `set_images`, `set_delay`, `send_event`, `set_containers`,
//! `set_verbose_info`) and read what it received
//! (`calls`). Every answer carries the response header `x-fake-method`, so tests can
//! see response metadata cross the proxy.

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use stevedore_proto::cri::{
    self, image_service_server::ImageService, image_service_server::ImageServiceServer,
    runtime_service_server::RuntimeService, runtime_service_server::RuntimeServiceServer,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::{Stream, wrappers::UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, metadata::MetadataMap};

/// The fake's version answer.
pub const RUNTIME_NAME: &str = "fake-runtime";

/// One call the fake received.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// The method's name in snake case (`list_images`).
    pub method: &'static str,
    /// The caller's metadata as it arrived.
    pub metadata: MetadataMap,
}

#[derive(Debug, Default)]
struct State {
    calls: Mutex<Vec<RecordedCall>>,
    failures: Mutex<VecDeque<Status>>,
    images: Mutex<Arc<Vec<cri::Image>>>,
    delay: Mutex<Option<Duration>>,
    subscribers: Mutex<Vec<mpsc::Sender<Result<cri::ContainerEventResponse, Status>>>>,
    containers: Mutex<Vec<cri::Container>>,
    infos: Mutex<HashMap<String, String>>,
}

/// The fake runtime; clones share state.
#[derive(Clone, Debug, Default)]
pub struct FakeRuntime {
    state: Arc<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeRuntime {
    /// Every call received so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.state.calls).clone()
    }

    /// The next call (of any method) fails with `status`.
    pub fn fail_next(&self, status: Status) {
        lock(&self.state.failures).push_back(status);
    }

    /// What `ListImages` answers.
    pub fn set_images(&self, images: Vec<cri::Image>) {
        *lock(&self.state.images) = Arc::new(images);
    }

    /// Every call waits this long before answering.
    pub fn set_delay(&self, delay: Option<Duration>) {
        *lock(&self.state.delay) = delay;
    }

    /// Sends `event` to every open `GetContainerEvents` stream; returns how many
    /// streams took it.
    pub async fn send_event(&self, event: cri::ContainerEventResponse) -> usize {
        let subscribers: Vec<_> = lock(&self.state.subscribers).clone();
        let mut delivered = 0;
        for s in subscribers {
            if s.send(Ok(event.clone())).await.is_ok() {
                delivered += 1;
            }
        }
        lock(&self.state.subscribers).retain(|s| !s.is_closed());
        delivered
    }

    /// Ends every open event stream with `status`.
    pub async fn end_event_streams(&self, status: Status) {
        let subscribers: Vec<_> = std::mem::take(&mut *lock(&self.state.subscribers));
        for s in subscribers {
            let _ = s.send(Err(status.clone())).await;
        }
    }

    /// Open event streams.
    pub fn event_streams(&self) -> usize {
        let mut subs = lock(&self.state.subscribers);
        subs.retain(|s| !s.is_closed());
        subs.len()
    }

    /// Sets the containers `ListContainers` answers (unfiltered).
    pub fn set_containers(&self, containers: Vec<cri::Container>) {
        *lock(&self.state.containers) = containers;
    }

    /// Sets the verbose `info["info"]` that `ContainerStatus` of container `id`, or
    /// `PodSandboxStatus` of sandbox `id`, answers with `verbose: true`.
    pub fn set_verbose_info(&self, id: &str, info: &str) {
        lock(&self.state.infos).insert(id.to_owned(), info.to_owned());
    }

    fn verbose_info(&self, id: &str, verbose: bool) -> HashMap<String, String> {
        lock(&self.state.infos)
            .get(id)
            .filter(|_| verbose)
            .map(|i| HashMap::from([("info".to_owned(), i.clone())]))
            .unwrap_or_default()
    }

    /// Serves the fake on a unix socket at `path` until `shutdown`.
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub fn serve(&self, path: &Path, shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
        let listener = tokio::net::UnixListener::bind(path)?;
        let limit = 16 << 20;
        let runtime = RuntimeServiceServer::new(self.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let images = ImageServiceServer::new(self.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(32 << 20)
            .add_service(runtime)
            .add_service(images);
        Ok(tokio::spawn(async move {
            let incoming = UnixListenerStream::new(listener);
            if let Err(error) =
                server.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await
            {
                tracing::warn!(%error, "fake runtime stopped");
            }
        }))
    }

    async fn enter(&self, method: &'static str, metadata: &MetadataMap) -> Result<(), Status> {
        lock(&self.state.calls).push(RecordedCall { method, metadata: metadata.clone() });
        let delay = *lock(&self.state.delay);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        match lock(&self.state.failures).pop_front() {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    fn reply<T>(method: &'static str, message: T) -> Response<T> {
        let mut resp = Response::new(message);
        resp.metadata_mut().insert("x-fake-method", method.parse().expect("method names are ASCII"));
        resp
    }
}

/// Implements a service: the items given, plus methods whose fake answer is the empty
/// message. (`async_trait` must see the expanded methods, so it is applied here.)
macro_rules! fake_service {
    (impl $trait:ident { $($items:item)* } empty { $($name:ident($req:ident) -> $resp:ident;)* }) => {
        #[tonic::async_trait]
        impl $trait for FakeRuntime {
            $($items)*
            $(
                async fn $name(&self, request: Request<cri::$req>) -> Result<Response<cri::$resp>, Status> {
                    self.enter(stringify!($name), request.metadata()).await?;
                    Ok(Self::reply(stringify!($name), cri::$resp::default()))
                }
            )*
        }
    };
}

type EventStream = Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

fake_service! {
impl RuntimeService {
    type GetContainerEventsStream = EventStream;

    async fn version(&self, request: Request<cri::VersionRequest>) -> Result<Response<cri::VersionResponse>, Status> {
        self.enter("version", request.metadata()).await?;
        Ok(Self::reply("version", cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: "1.0.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn status(&self, request: Request<cri::StatusRequest>) -> Result<Response<cri::StatusResponse>, Status> {
        self.enter("status", request.metadata()).await?;
        let ready = |t: &str| cri::RuntimeCondition { r#type: t.into(), status: true, ..Default::default() };
        Ok(Self::reply("status", cri::StatusResponse {
            status: Some(cri::RuntimeStatus { conditions: vec![ready("RuntimeReady"), ready("NetworkReady")] }),
            ..Default::default()
        }))
    }

    async fn get_container_events(
        &self,
        request: Request<cri::GetEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.enter("get_container_events", request.metadata()).await?;
        let (tx, rx) = mpsc::channel(16);
        lock(&self.state.subscribers).push(tx);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Self::reply("get_container_events", Box::pin(stream) as EventStream))
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        self.enter("list_containers", request.metadata()).await?;
        let containers = lock(&self.state.containers).clone();
        Ok(Self::reply("list_containers", cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        self.enter("container_status", request.metadata()).await?;
        let req = request.into_inner();
        let info = self.verbose_info(&req.container_id, req.verbose);
        Ok(Self::reply("container_status", cri::ContainerStatusResponse { info, ..Default::default() }))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        self.enter("pod_sandbox_status", request.metadata()).await?;
        let req = request.into_inner();
        let info = self.verbose_info(&req.pod_sandbox_id, req.verbose);
        Ok(Self::reply("pod_sandbox_status", cri::PodSandboxStatusResponse { info, ..Default::default() }))
    }
}
empty {
        run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse;
        create_container(CreateContainerRequest) -> CreateContainerResponse;
        start_container(StartContainerRequest) -> StartContainerResponse;
        stop_container(StopContainerRequest) -> StopContainerResponse;
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse;
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse;
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
        exec_sync(ExecSyncRequest) -> ExecSyncResponse;
        exec(ExecRequest) -> ExecResponse;
        attach(AttachRequest) -> AttachResponse;
        port_forward(PortForwardRequest) -> PortForwardResponse;
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse;
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse;
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse;
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse;
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse;
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse;
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse;
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse;
        runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse;
}
}

fake_service! {
impl ImageService {
    async fn list_images(&self, request: Request<cri::ListImagesRequest>) -> Result<Response<cri::ListImagesResponse>, Status> {
        self.enter("list_images", request.metadata()).await?;
        let images = lock(&self.state.images).clone();
        Ok(Self::reply("list_images", cri::ListImagesResponse { images: images.as_ref().clone() }))
    }
    async fn pull_image(&self, request: Request<cri::PullImageRequest>) -> Result<Response<cri::PullImageResponse>, Status> {
        self.enter("pull_image", request.metadata()).await?;
        let image = request.into_inner().image.map(|i| i.image).unwrap_or_default();
        Ok(Self::reply("pull_image", cri::PullImageResponse { image_ref: format!("fake-id-of:{image}") }))
    }
}
empty {
    image_status(ImageStatusRequest) -> ImageStatusResponse;
    remove_image(RemoveImageRequest) -> RemoveImageResponse;
    image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse;
}
}

/// `n` realistic image records (tags, digests, sizes), for list benchmarks.
pub fn sample_images(n: usize) -> Vec<cri::Image> {
    (0..n)
        .map(|i| {
            let digest = format!(
                "sha256:{:064x}",
                (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
            );
            cri::Image {
                id: digest.clone(),
                repo_tags: vec![format!(
                    "registry.example.com/team-{}/service-{i}:v{}.{}.{}",
                    i % 40,
                    i % 7,
                    i % 13,
                    i % 3
                )],
                repo_digests: vec![format!("registry.example.com/team-{}/service-{i}@{digest}", i % 40)],
                size: 20_000_000 + (i as u64) * 4096,
                username: String::new(),
                pinned: i % 50 == 0,
                ..Default::default()
            }
        })
        .collect()
}
