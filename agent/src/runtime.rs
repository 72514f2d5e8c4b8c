//! The node's runtime as the agent reaches it: CRI through the proxy's socket, and the
//! proxy's control API for pulls with progress (its single-flight pulls, shared with
//! kubelet's). Without a control API (no proxy, or an older one) pulls go through
//! CRI `PullImage`, whose progress goes from 0 to 100. Container recreation uses CRI
//! `ExecSync` and `StopContainer`, and the control API's `RecreateContainer`.

use std::{path::Path, time::Duration};

use prost::Message as _;
use stevedore_proto::{
    control::{
        PullImageRequest as ControlPullRequest, RecreateContainerRequest, RecreateContainerResponse,
        control_client::ControlClient,
    },
    cri::{
        ExecSyncRequest, ImageSpec, ImageStatusRequest, PullImageRequest, StopContainerRequest,
        image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
    },
    uds,
};
use tokio::sync::mpsc;
use tonic::{Code, transport::Channel};
use tracing::debug;

use crate::images::worker::{BoxFuture, Runtime};

/// What a hook's command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code.
    pub exit_code: i32,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// What container recreation needs from the node's runtime.
pub trait Containers: Send + Sync + 'static {
    /// Runs `cmd` in container `id` (CRI `ExecSync`), for at most `timeout`.
    fn exec(
        &self,
        id: String,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ExecOutput, tonic::Status>>;
    /// Stops container `id` with `grace` seconds (CRI `StopContainer`).
    fn stop(&self, id: String, grace: i64) -> BoxFuture<'_, Result<(), tonic::Status>>;
    /// Recreates container `id` through the proxy's control API; `UNAVAILABLE` when
    /// there is no control socket.
    fn recreate(
        &self,
        id: String,
        grace: i64,
    ) -> BoxFuture<'_, Result<RecreateContainerResponse, tonic::Status>>;
}

/// CRI (and the control API, when there is one) over unix sockets.
#[derive(Debug, Clone)]
pub struct CriRuntime {
    images: ImageServiceClient<Channel>,
    runtime: RuntimeServiceClient<Channel>,
    control: Option<ControlClient<Channel>>,
}

impl CriRuntime {
    /// Channels to `cri_socket` and, if given, `control_socket`; both connect on first
    /// use and reconnect after the proxy restarts.
    pub fn new(cri_socket: &Path, control_socket: Option<&Path>) -> Self {
        let channel = uds::connect_lazy(cri_socket);
        let images = ImageServiceClient::new(channel.clone())
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(uds::MAX_MESSAGE_SIZE);
        let runtime = RuntimeServiceClient::new(channel)
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(uds::MAX_MESSAGE_SIZE);
        let control = control_socket.map(|p| ControlClient::new(uds::connect_lazy(p)));
        Self { images, runtime, control }
    }

    async fn cri_pull(
        &self,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> Result<String, tonic::Status> {
        let _ = progress.send(0).await;
        let id = self.images.clone().pull_image(req).await?.into_inner().image_ref;
        Ok(id)
    }

    async fn control_pull(
        &self,
        mut control: ControlClient<Channel>,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> Result<String, tonic::Status> {
        let call = ControlPullRequest { cri_request: req.encode_to_vec() };
        let mut stream = match control.pull_image(call).await {
            Ok(s) => s.into_inner(),
            // No control API on the other end: plain CRI.
            Err(s) if matches!(s.code(), Code::Unimplemented | Code::Unavailable) => {
                debug!(status = %s, "no control API; pulling through CRI");
                return self.cri_pull(req, progress).await;
            }
            Err(s) => return Err(s),
        };
        while let Some(msg) = stream.message().await? {
            let _ = progress.send(msg.percent).await;
            if !msg.image_ref.is_empty() {
                return Ok(msg.image_ref);
            }
        }
        Err(tonic::Status::internal("the control API ended the pull without an image id"))
    }
}

impl Runtime for CriRuntime {
    fn present(&self, image: String) -> BoxFuture<'_, Result<Option<String>, tonic::Status>> {
        Box::pin(async move {
            let req =
                ImageStatusRequest { image: Some(ImageSpec { image, ..Default::default() }), verbose: false };
            let status = self.images.clone().image_status(req).await?.into_inner();
            Ok(status.image.map(|i| i.id))
        })
    }

    fn pull(
        &self,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> BoxFuture<'_, Result<String, tonic::Status>> {
        Box::pin(async move {
            match self.control.clone() {
                Some(control) => self.control_pull(control, req, progress).await,
                None => self.cri_pull(req, progress).await,
            }
        })
    }
}

impl Containers for CriRuntime {
    fn exec(
        &self,
        id: String,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ExecOutput, tonic::Status>> {
        Box::pin(async move {
            let secs = i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX);
            let req = ExecSyncRequest { container_id: id, cmd, timeout: secs };
            // The runtime enforces the timeout; the margin covers the call itself.
            let mut client = self.runtime.clone();
            let call = client.exec_sync(req);
            let r = tokio::time::timeout(timeout + Duration::from_secs(5), call)
                .await
                .map_err(|_| tonic::Status::deadline_exceeded("ExecSync did not return in time"))??
                .into_inner();
            Ok(ExecOutput { exit_code: r.exit_code, stdout: r.stdout, stderr: r.stderr })
        })
    }

    fn stop(&self, id: String, grace: i64) -> BoxFuture<'_, Result<(), tonic::Status>> {
        Box::pin(async move {
            let req = StopContainerRequest { container_id: id, timeout: grace };
            self.runtime.clone().stop_container(req).await.map(|_| ())
        })
    }

    fn recreate(
        &self,
        id: String,
        grace: i64,
    ) -> BoxFuture<'_, Result<RecreateContainerResponse, tonic::Status>> {
        Box::pin(async move {
            let Some(mut control) = self.control.clone() else {
                return Err(tonic::Status::unavailable("no control socket configured"));
            };
            let req = RecreateContainerRequest {
                container_id: id,
                grace_period_seconds: grace,
                ..Default::default()
            };
            control.recreate_container(req).await.map(tonic::Response::into_inner)
        })
    }
}
