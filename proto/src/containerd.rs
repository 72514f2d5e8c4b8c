//! The subset of containerd's content service the CRI proxy reads for pull progress
//! (`proto/containerd/services/content/v1/content.proto`; generated code committed,
//! kept current by the `bootstrap` test).

/// `containerd.services.content.v1`: messages and the client.
pub mod content {
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    mod generated {
        include!("gen/containerd.services.content.v1.rs");
    }

    pub use generated::*;
}

/// The gRPC metadata key naming the containerd namespace of a call.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";

/// The namespace containerd's CRI plugin keeps Kubernetes' images and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";
