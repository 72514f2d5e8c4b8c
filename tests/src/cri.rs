//! CRI clients over a unix socket.

use std::path::Path;

use anyhow::Context as _;
use stevedore_proto::cri::image_service_client::ImageServiceClient;
use stevedore_proto::cri::runtime_service_client::RuntimeServiceClient;
pub use stevedore_proto::uds::MAX_MESSAGE_SIZE;
use tonic::transport::Channel;

/// The CRI runtime service client type returned by [`runtime_client`].
pub type RuntimeClient = RuntimeServiceClient<Channel>;
/// The CRI image service client type returned by [`image_client`].
pub type ImageClient = ImageServiceClient<Channel>;

/// A tonic [`Channel`] to a CRI unix socket (a path, not a URI).
///
/// The channel connects at once, so a missing socket fails here.
pub async fn connect(path: &Path) -> anyhow::Result<Channel> {
    stevedore_proto::uds::connect(path)
        .await
        .with_context(|| format!("connecting to CRI socket {}", path.display()))
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
