//! The typed-handler path, for the benchmark: handlers that read every message of the
//! methods the benchmark calls (decode the request, forward it, decode the answer,
//! hand it back as it came), served by the proxy library in a binary of its own
//! (`stevedore-bench-typed-proxy`), so that what the proxy costs with a typed handler
//! in the way is measured beside the plain forward.

use std::{marker::PhantomData, path::PathBuf, sync::Arc};

use stevedore_cri_proxy::{
    proxy::{Handler, HandlerFuture, Handlers, Proxy},
    typed,
};
use stevedore_proto::cri;

/// The binary, built next to the running benchmark.
///
/// # Errors
/// It has not been built.
pub fn binary() -> anyhow::Result<PathBuf> {
    crate::bins::binary("stevedore-bench-typed-proxy")
}

/// Reads the request as `Req` and the answer as `Resp`, changing nothing.
struct ReadOnly<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> std::fmt::Debug for ReadOnly<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOnly")
    }
}

impl<Req, Resp> Handler for ReadOnly<Req, Resp>
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + Default + 'static,
{
    fn call<'a>(
        &'a self,
        proxy: &'a Proxy,
        req: http::Request<stevedore_cri_proxy::body::RequestBody>,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            let req = typed::read_request::<Req>(req).await?;
            // a feature would look at the message here
            std::hint::black_box(&req.message);
            let answer = typed::forward::<Resp>(proxy, req.parts, req.raw).await?;
            Ok(answer.unchanged())
        })
    }
}

fn read_only<Req, Resp>() -> Arc<dyn Handler>
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + Default + 'static,
{
    Arc::new(ReadOnly::<Req, Resp>(PhantomData))
}

/// Read-only handlers for every method the benchmark calls.
pub fn handlers() -> Handlers {
    Handlers::from([
        ("/runtime.v1.RuntimeService/Version", read_only::<cri::VersionRequest, cri::VersionResponse>()),
        (
            "/runtime.v1.RuntimeService/ListContainers",
            read_only::<cri::ListContainersRequest, cri::ListContainersResponse>(),
        ),
        (
            "/runtime.v1.ImageService/ListImages",
            read_only::<cri::ListImagesRequest, cri::ListImagesResponse>(),
        ),
        ("/runtime.v1.ImageService/PullImage", read_only::<cri::PullImageRequest, cri::PullImageResponse>()),
        (
            "/runtime.v1.RuntimeService/CreateContainer",
            read_only::<cri::CreateContainerRequest, cri::CreateContainerResponse>(),
        ),
    ])
}
