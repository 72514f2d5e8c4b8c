//! kubelet's `PullImage`, through the single-flight table: the caller's own request
//! starts a flight (the runtime sees it as sent) or joins one, and the caller gets the
//! runtime's answer to that flight (or to its own request, when the flight it joined
//! failed), within its own deadline.

use std::sync::Arc;

use http::Request;
use stevedore_proto::cri::{PullImageRequest, PullImageResponse};
use tonic::Status;

use crate::{
    proxy::{Handler, HandlerFuture, Proxy},
    pulls::{Key, Origin, Outcome, Pulls},
    typed,
};

/// The typed handler of `/runtime.v1.ImageService/PullImage`.
#[derive(Debug)]
pub struct PullImageHandler {
    pulls: Arc<Pulls>,
}

impl PullImageHandler {
    /// A handler putting pulls on `pulls`.
    pub fn new(pulls: Arc<Pulls>) -> Self {
        Self { pulls }
    }
}

impl Handler for PullImageHandler {
    fn call<'a>(&'a self, proxy: &'a Proxy, req: Request<crate::body::RequestBody>) -> HandlerFuture<'a> {
        Box::pin(async move {
            let typed::TypedRequest { parts, raw, message } =
                typed::read_request::<PullImageRequest>(req).await?;
            let Ok(decoded) = message else {
                // fail-open: what we cannot read goes to the runtime as it came
                return typed::forward::<PullImageResponse>(proxy, parts, raw)
                    .await
                    .map(typed::Answer::unchanged);
            };
            let deadline = crate::grpc::deadline(&parts.headers);
            let runtime = Arc::new(proxy.clone());
            let mut ticket = self.pulls.join(runtime, Key::of(&decoded), Origin::Cri(Box::new(parts), raw));
            let outcome = match deadline {
                Some(d) => match tokio::time::timeout(d, ticket.outcome()).await {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed(Status::deadline_exceeded(
                        "the pull did not finish within the caller's deadline",
                    )),
                },
                None => ticket.outcome().await,
            };
            Ok(match outcome {
                Outcome::Answer(answer) => answer.response(),
                Outcome::Failed(status) => status.into_http(),
            })
        })
    }
}
