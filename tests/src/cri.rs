//! CRI clients over a unix socket.

use std::path::Path;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use stevedore_proto::cri::image_service_client::ImageServiceClient;
use stevedore_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint};

/// The message size limit (both directions) of the clients made here, as kubelet's.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The CRI runtime service client type returned by [`runtime_client`].
pub type RuntimeClient = RuntimeServiceClient<Channel>;
/// The CRI image service client type returned by [`image_client`].
pub type ImageClient = ImageServiceClient<Channel>;

/// A tonic [`Channel`] to a CRI unix socket (a path, not a URI).
///
/// The channel connects at once, so a missing socket fails here.
pub async fn connect(path: &Path) -> anyhow::Result<Channel> {
    let path = path.to_path_buf();
    let shown = path.display().to_string();
    // The URI is a placeholder: the connector ignores it.
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let p = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
        }))
        .await
        .with_context(|| format!("connecting to CRI socket {shown}"))
}

/// A CRI runtime service client on `ch`, with 16 MiB message limits.
pub fn runtime_client(ch: Channel) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

/// A CRI image service client on `ch`, with 16 MiB message limits.
pub fn image_client(ch: Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}
