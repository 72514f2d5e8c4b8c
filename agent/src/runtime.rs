//! The node's runtime as the agent reaches it: CRI through the proxy's socket, and the
//! proxy's control API for pulls with progress (its single-flight pulls, shared with
//! kubelet's). Without a control API (no proxy, or an older one) pulls go through
//! CRI `PullImage`, whose progress goes from 0 to 100.

use std::path::Path;

use prost::Message as _;
use stevedore_proto::{
    control::{PullImageRequest as ControlPullRequest, control_client::ControlClient},
    cri::{ImageSpec, ImageStatusRequest, PullImageRequest, image_service_client::ImageServiceClient},
    uds,
};
use tokio::sync::mpsc;
use tonic::{Code, transport::Channel};
use tracing::debug;

use crate::images::worker::{BoxFuture, Runtime};

/// CRI (and the control API, when there is one) over unix sockets.
#[derive(Debug, Clone)]
pub struct CriRuntime {
    images: ImageServiceClient<Channel>,
    control: Option<ControlClient<Channel>>,
}

impl CriRuntime {
    /// Channels to `cri_socket` and, if given, `control_socket`; both connect on first
    /// use and reconnect after the proxy restarts.
    pub fn new(cri_socket: &Path, control_socket: Option<&Path>) -> Self {
        let images = ImageServiceClient::new(uds::connect_lazy(cri_socket))
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(uds::MAX_MESSAGE_SIZE);
        let control = control_socket.map(|p| ControlClient::new(uds::connect_lazy(p)));
        Self { images, control }
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
