//! The proxy in front of the fake runtime, over real unix sockets and real HTTP/2.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use http::uri::PathAndQuery;
use stevedore_cri_proxy::{
    Config,
    fake::{FakeRuntime, RUNTIME_NAME, sample_images},
    proxy::{Handler, HandlerFuture, Proxy},
    typed,
};
use stevedore_proto::cri::{
    self, image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, transport::Channel};

async fn channel(path: &Path) -> Channel {
    let path = path.to_owned();
    tonic::transport::Endpoint::try_from("http://[::]:50051").unwrap().connect_with_connector_lazy(
        tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }),
    )
}

fn runtime(ch: &Channel) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(ch.clone()).max_decoding_message_size(16 << 20)
}

fn images(ch: &Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(ch.clone()).max_decoding_message_size(16 << 20)
}

/// A fake runtime and the proxy in front of it, each on its own socket.
struct Bed {
    _dir: tempfile::TempDir,
    fake: FakeRuntime,
    fake_sock: PathBuf,
    fake_stop: CancellationToken,
    proxy_sock: PathBuf,
    control_sock: PathBuf,
    proxy_stop: CancellationToken,
    proxy_task: tokio::task::JoinHandle<stevedore_cri_proxy::Result<()>>,
    metrics_addr: std::net::SocketAddr,
}

impl Bed {
    async fn start(handlers: stevedore_cri_proxy::proxy::Handlers) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let fake_sock = dir.path().join("runtime.sock");
        let proxy_sock = dir.path().join("sub/proxy.sock");
        let fake = FakeRuntime::default();
        let fake_stop = CancellationToken::new();
        fake.serve(&fake_sock, fake_stop.clone()).unwrap();
        let config = Config {
            listen: proxy_sock.clone(),
            runtime_socket: fake_sock.clone(),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            shutdown_grace: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            control_socket: Some(dir.path().join("sub/control.sock")),
            pull_progress_interval: Duration::from_millis(50),
            forwarding: Default::default(),
            records: stevedore_cri_proxy::config::Records::Memory,
        };
        let bound = stevedore_cri_proxy::bind(config).await.unwrap().with_handlers(handlers);
        let metrics_addr = bound.metrics_addr().unwrap();
        let proxy_stop = CancellationToken::new();
        let proxy_task = tokio::spawn(bound.run(proxy_stop.clone()));
        let control_sock = dir.path().join("sub/control.sock");
        Bed {
            _dir: dir,
            fake,
            fake_sock,
            fake_stop,
            proxy_sock,
            control_sock,
            proxy_stop,
            proxy_task,
            metrics_addr,
        }
    }

    /// Stops the fake runtime and waits until its socket is gone.
    async fn stop_runtime(&self) {
        self.fake_stop.cancel();
        while self.fake_sock.exists() && tokio::net::UnixStream::connect(&self.fake_sock).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = std::fs::remove_file(&self.fake_sock);
    }

    /// Serves the fake runtime again on its socket, until the token returned is
    /// cancelled.
    fn restart_runtime(&self) -> CancellationToken {
        let again = CancellationToken::new();
        self.fake.serve(&self.fake_sock, again.clone()).unwrap();
        again
    }

    async fn direct(&self) -> Channel {
        channel(&self.fake_sock).await
    }

    async fn proxied(&self) -> Channel {
        channel(&self.proxy_sock).await
    }
}

/// Calls `path` with `msg` as the request, whatever the path: how kubelet reaches
/// methods newer than our proto.
async fn raw_call(
    ch: &Channel,
    path: &'static str,
    msg: cri::VersionRequest,
) -> Result<cri::VersionResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(Request::new(msg), PathAndQuery::from_static(path), tonic_prost::ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn unary_calls_carry_metadata_both_ways() {
    let bed = Bed::start(Default::default()).await;
    let mut req = Request::new(cri::VersionRequest { version: "v1".into() });
    req.metadata_mut().insert("x-request-id", "abc-123".parse().unwrap());
    let resp = runtime(&bed.proxied().await).version(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-fake-method").unwrap(), "version");
    assert_eq!(resp.get_ref().runtime_name, RUNTIME_NAME);
    let direct = runtime(&bed.direct().await).version(cri::VersionRequest::default()).await.unwrap();
    assert_eq!(direct.get_ref(), resp.get_ref());
    let seen = &bed.fake.calls()[0];
    assert_eq!(seen.method, "version");
    assert_eq!(seen.metadata.get("x-request-id").unwrap(), "abc-123");
}

#[tokio::test]
async fn runtime_errors_keep_their_code_and_message() {
    let bed = Bed::start(Default::default()).await;
    let ch = bed.proxied().await;
    for (code, msg) in [
        (Code::NotFound, "container \"abc\" not found"),
        (Code::InvalidArgument, "bad filter: état ≠ ok"),
        (Code::ResourceExhausted, "too many pulls"),
    ] {
        bed.fake.fail_next(tonic::Status::new(code, msg));
        let err = runtime(&ch)
            .container_status(cri::ContainerStatusRequest { container_id: "abc".into(), verbose: false })
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.message()), (code, msg));
    }
}

#[tokio::test]
async fn unknown_methods_and_services_pass_through_as_bytes() {
    let bed = Bed::start(Default::default()).await;
    let direct = bed.direct().await;
    let proxied = bed.proxied().await;
    for path in [
        "/runtime.v1.RuntimeService/UpdatePodSandboxResources",
        "/runtime.v1alpha2.RuntimeService/Version",
        "/grpc.health.v1.Health/Check",
    ] {
        let d = raw_call(&direct, path, Default::default()).await.unwrap_err();
        let p = raw_call(&proxied, path, Default::default()).await.unwrap_err();
        assert_eq!(d.code(), Code::Unimplemented, "{path}");
        assert_eq!((p.code(), p.message()), (d.code(), d.message()), "{path}");
    }
    // a known method reached by its raw path answers as usual
    let v = raw_call(&proxied, "/runtime.v1.RuntimeService/Version", Default::default()).await.unwrap();
    assert_eq!(v.runtime_name, RUNTIME_NAME);
}

#[tokio::test]
async fn large_lists_cross_the_proxy() {
    let bed = Bed::start(Default::default()).await;
    bed.fake.set_images(sample_images(30_000));
    let list = images(&bed.proxied().await).list_images(cri::ListImagesRequest::default()).await.unwrap();
    let encoded = prost::Message::encoded_len(list.get_ref());
    assert!(encoded > 4 << 20, "the answer should be over tonic's 4 MiB default: {encoded}");
    assert_eq!(list.get_ref().images, sample_images(30_000));
}

#[tokio::test]
async fn container_events_stream_through_and_end_with_the_runtime_status() {
    let bed = Bed::start(Default::default()).await;
    let mut stream = runtime(&bed.proxied().await)
        .get_container_events(cri::GetEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    while bed.fake.event_streams() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..3 {
        let event = cri::ContainerEventResponse {
            container_id: format!("c{i}"),
            container_event_type: cri::ContainerEventType::ContainerStartedEvent as i32,
            created_at: 1_700_000_000_000 + i,
            ..Default::default()
        };
        assert_eq!(bed.fake.send_event(event.clone()).await, 1);
        assert_eq!(stream.message().await.unwrap().unwrap(), event);
    }
    bed.fake.end_event_streams(tonic::Status::aborted("runtime shutting down")).await;
    let end = stream.message().await.unwrap_err();
    assert_eq!((end.code(), end.message()), (Code::Aborted, "runtime shutting down"));
}

#[tokio::test]
async fn a_runtime_that_never_answers_fails_at_the_callers_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // accepts connections and never speaks HTTP/2
    let hole = dir.path().join("hole.sock");
    let listener = tokio::net::UnixListener::bind(&hole).unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let listen = dir.path().join("proxy.sock");
    let config = Config {
        listen: listen.clone(),
        runtime_socket: hole,
        metrics_addr: None,
        shutdown_grace: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(30),
        control_socket: None,
        pull_progress_interval: Duration::from_millis(250),
        forwarding: Default::default(),
        records: stevedore_cri_proxy::config::Records::Memory,
    };
    let stop = CancellationToken::new();
    tokio::spawn(stevedore_cri_proxy::run(config, stop.clone()));
    while !listen.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // a bare HTTP/2 client that sends the deadline but does not enforce it itself,
    // so only the proxy can end the call
    let io = tokio::net::UnixStream::connect(&listen).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("http://localhost/runtime.v1.RuntimeService/Version")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(http_body_util::Full::new(stevedore_cri_proxy::grpc::encode_frame(
            &cri::VersionRequest::default(),
        )))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = tonic::Status::from_header_map(resp.headers()).expect("a trailers-only status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("before the runtime answered"), "{status:?}");
    stop.cancel();
}

#[tokio::test]
async fn runtime_restarts_give_unavailable_then_recover() {
    let bed = Bed::start(Default::default()).await;
    let ch = bed.proxied().await;
    runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    bed.stop_runtime().await;
    // The runtime's graceful stop may still answer a call on a connection it had
    // (as it would a direct caller), and a call sent as that connection closes is
    // refused for the caller to retry; after that, the proxy answers UNAVAILABLE.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match runtime(&ch).version(cri::VersionRequest::default()).await {
            Err(err) if err.message().contains("runtime unavailable") => {
                assert_eq!(err.code(), Code::Unavailable, "{err:?}");
                break;
            }
            Err(err) => assert_eq!(err.code(), Code::Unavailable, "{err:?}"),
            Ok(_) => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "the proxy never answered UNAVAILABLE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // the runtime comes back on the same socket
    let again = bed.restart_runtime();
    let v = runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    assert_eq!(v.get_ref().runtime_name, RUNTIME_NAME);
    again.cancel();
}

#[tokio::test]
async fn a_caller_that_connected_while_the_runtime_was_down_is_relayed_once_it_is_back() {
    let bed = Bed::start(Default::default()).await;
    bed.stop_runtime().await;
    // the runtime cannot be relayed to: this caller is served on the terminating path
    let ch = bed.proxied().await;
    let err = runtime(&ch).version(cri::VersionRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let again = bed.restart_runtime();
    let connects = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("stevedore_cri_proxy_runtime_connects_total{result=\"ok\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    // the terminating path answers at once, through the shared runtime connection
    runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    assert_eq!(connects(&http_get(bed.metrics_addr, "/metrics").await), 1);
    // within a check or two the caller is asked to reconnect, and its new connection
    // is relayed: a runtime connection of its own
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let _ = runtime(&ch).version(cri::VersionRequest::default()).await;
        if connects(&http_get(bed.metrics_addr, "/metrics").await) >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the caller was never moved to the relay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    assert_eq!(v.get_ref().runtime_name, RUNTIME_NAME);
    again.cancel();
}

#[tokio::test]
async fn metrics_count_calls_and_errors_by_code() {
    let bed = Bed::start(Default::default()).await;
    let ch = bed.proxied().await;
    runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    bed.fake.fail_next(tonic::Status::not_found("nope"));
    runtime(&ch).version(cri::VersionRequest::default()).await.unwrap_err();
    let text = http_get(bed.metrics_addr, "/metrics").await;
    assert!(
        text.contains("stevedore_cri_proxy_calls_total{method=\"runtime.v1.RuntimeService/Version\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("call_errors_total{method=\"runtime.v1.RuntimeService/Version\",code=\"NotFound\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("call_duration_seconds_count{method=\"runtime.v1.RuntimeService/Version\"} 2"),
        "{text}"
    );
    assert!(http_get(bed.metrics_addr, "/healthz").await.ends_with("ok\n"));
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

#[tokio::test]
async fn sigterm_drains_in_flight_calls_and_removes_the_socket() {
    let bed = Bed::start(Default::default()).await;
    let ch = bed.proxied().await;
    runtime(&ch).version(cri::VersionRequest::default()).await.unwrap();
    bed.fake.set_delay(Some(Duration::from_millis(300)));
    let slow = tokio::spawn({
        let ch = ch.clone();
        async move { runtime(&ch).list_containers(cri::ListContainersRequest::default()).await }
    });
    while bed.fake.calls().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bed.proxy_stop.cancel();
    assert!(slow.await.unwrap().is_ok(), "the in-flight call finishes during the drain");
    bed.proxy_task.await.unwrap().unwrap();
    assert!(!bed.proxy_sock.exists(), "the socket is removed on exit");
    bed.fake_stop.cancel();
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cri.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // stale: nobody listens
    let listener = stevedore_cri_proxy::server::bind(&path).await.unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let err = stevedore_cri_proxy::server::bind(&path).await.unwrap_err();
    assert!(matches!(err, stevedore_cri_proxy::Error::InUse(_)), "{err}");
    drop(listener);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "not a socket").unwrap();
    let err = stevedore_cri_proxy::server::bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
}

/// A typed handler that reads `Version` requests and answers through the runtime.
#[derive(Debug, Default)]
struct SeeVersions(Mutex<Vec<String>>);

impl Handler for SeeVersions {
    fn call<'a>(
        &'a self,
        proxy: &'a Proxy,
        req: http::Request<stevedore_cri_proxy::body::RequestBody>,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            let req = typed::read_request::<cri::VersionRequest>(req).await?;
            let body = match &req.message {
                Ok(m) => {
                    self.0.lock().unwrap().push(m.version.clone());
                    stevedore_cri_proxy::grpc::encode_frame(m)
                }
                Err(_) => req.raw.clone(),
            };
            let answer = typed::forward::<cri::VersionResponse>(proxy, req.parts, body).await?;
            Ok(answer.into_response())
        })
    }
}

#[tokio::test]
async fn typed_handlers_see_messages_and_pass_runtime_errors_through() {
    let seen = Arc::new(SeeVersions::default());
    let mut handlers = stevedore_cri_proxy::proxy::Handlers::new();
    handlers.insert("/runtime.v1.RuntimeService/Version", seen.clone());
    let bed = Bed::start(handlers).await;
    let ch = bed.proxied().await;
    let v = runtime(&ch).version(cri::VersionRequest { version: "0.1.0".into() }).await.unwrap();
    assert_eq!(v.get_ref().runtime_name, RUNTIME_NAME);
    assert_eq!(v.metadata().get("x-fake-method").unwrap(), "version");
    assert_eq!(*seen.0.lock().unwrap(), vec!["0.1.0".to_owned()]);
    bed.fake.fail_next(tonic::Status::permission_denied("no"));
    let err = runtime(&ch).version(cri::VersionRequest::default()).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::PermissionDenied, "no"));
    // other methods still pass as bytes
    runtime(&ch).status(cri::StatusRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_runtime_dying_mid_answer_gives_unavailable_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let dying = dir.path().join("dying.sock");
    let listener = tokio::net::UnixListener::bind(&dying).unwrap();
    // sends the response headers, then drops the connection
    tokio::spawn(async move {
        let (io, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(io).await.unwrap();
        let (_req, mut respond) = conn.accept().await.unwrap().unwrap();
        let head = http::Response::builder().header("content-type", "application/grpc").body(()).unwrap();
        let _stream = respond.send_response(head, false).unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(100), conn.accept()).await;
    });
    let listen = dir.path().join("proxy.sock");
    let config = Config {
        listen: listen.clone(),
        runtime_socket: dying,
        metrics_addr: None,
        shutdown_grace: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
        control_socket: None,
        pull_progress_interval: Duration::from_millis(250),
        forwarding: Default::default(),
        records: stevedore_cri_proxy::config::Records::Memory,
    };
    let stop = CancellationToken::new();
    tokio::spawn(stevedore_cri_proxy::run(config, stop.clone()));
    while !listen.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = runtime(&channel(&listen).await).version(cri::VersionRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().starts_with("runtime unavailable"), "{err:?}");
    stop.cancel();
}

fn pull_request(image: &str, user: &str) -> cri::PullImageRequest {
    cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        auth: (!user.is_empty()).then(|| cri::AuthConfig {
            username: user.into(),
            password: "pw".into(),
            ..Default::default()
        }),
        sandbox_config: None,
    }
}

fn pulls_seen(fake: &FakeRuntime) -> usize {
    fake.calls().iter().filter(|c| c.method == "pull_image").count()
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_with_the_same_credentials_are_one_pull() {
    let bed = Bed::start(Default::default()).await;
    bed.fake.set_delay(Some(Duration::from_millis(300)));
    let ch = bed.proxied().await;
    let control =
        stevedore_proto::control::control_client::ControlClient::new(channel(&bed.control_sock).await);
    // kubelet twice and the agent once for the same image and credentials; once
    // with other credentials, which must not share the others' pull.
    let kubelet = |user: &'static str| {
        let ch = ch.clone();
        async move { images(&ch).pull_image(pull_request("registry.test/app:1", user)).await }
    };
    let agent = async {
        let req = stevedore_proto::control::PullImageRequest {
            cri_request: prost::Message::encode_to_vec(&pull_request("registry.test/app:1", "alice")),
        };
        let mut stream = control.clone().pull_image(req).await.unwrap().into_inner();
        let mut seen = Vec::new();
        while let Some(msg) = stream.message().await.unwrap() {
            seen.push(msg);
        }
        seen
    };
    let (a, b, other, progress) = tokio::join!(kubelet("alice"), kubelet("alice"), kubelet("bob"), agent);
    assert_eq!(a.unwrap().get_ref().image_ref, "fake-id-of:registry.test/app:1");
    assert_eq!(b.unwrap().get_ref().image_ref, "fake-id-of:registry.test/app:1");
    assert_eq!(other.unwrap().get_ref().image_ref, "fake-id-of:registry.test/app:1");
    assert_eq!(pulls_seen(&bed.fake), 2, "alice's three pulls are one; bob's is his own");
    let last = progress.last().unwrap();
    assert_eq!((last.percent, last.image_ref.as_str()), (100, "fake-id-of:registry.test/app:1"));
    assert!(progress.iter().all(|m| m.joined == last.joined));
    let metrics = http_get(bed.metrics_addr, "/metrics").await;
    assert!(metrics.contains("stevedore_cri_proxy_image_pulls_total{result=\"started\"} 2"), "{metrics}");
    assert!(metrics.contains("stevedore_cri_proxy_image_pulls_total{result=\"joined\"} 2"), "{metrics}");
}

#[tokio::test]
async fn a_callers_deadline_ends_only_its_own_wait_and_errors_are_not_inherited() {
    let bed = Bed::start(Default::default()).await;
    bed.fake.set_delay(Some(Duration::from_millis(400)));
    let ch = bed.proxied().await;
    let mut hasty = Request::new(pull_request("registry.test/app:2", ""));
    hasty.set_timeout(Duration::from_millis(100));
    let (mut first, mut second) = (images(&ch), images(&ch));
    let (hasty, patient) =
        tokio::join!(first.pull_image(hasty), second.pull_image(pull_request("registry.test/app:2", "")));
    // tonic ends the call itself at the deadline (Cancelled), as may the proxy
    let hasty = hasty.unwrap_err().code();
    assert!(matches!(hasty, Code::DeadlineExceeded | Code::Cancelled), "{hasty:?}");
    assert_eq!(patient.unwrap().get_ref().image_ref, "fake-id-of:registry.test/app:2");
    assert_eq!(pulls_seen(&bed.fake), 1);

    // a failed pull answers everyone on it with the runtime's status, and the next
    // caller starts afresh
    bed.fake.fail_next(tonic::Status::new(Code::NotFound, "registry.test/app:3: not found"));
    let failed = images(&ch).pull_image(pull_request("registry.test/app:3", "")).await.unwrap_err();
    assert_eq!((failed.code(), failed.message()), (Code::NotFound, "registry.test/app:3: not found"));
    let again = images(&ch).pull_image(pull_request("registry.test/app:3", "")).await.unwrap();
    assert_eq!(again.get_ref().image_ref, "fake-id-of:registry.test/app:3");
    assert_eq!(pulls_seen(&bed.fake), 3);

    // a caller that joined a pull which fails runs its own instead of taking the
    // failure: one of the two gets the runtime's error, the other the image
    bed.fake.fail_next(tonic::Status::new(Code::Unavailable, "registry.test/app:4: registry hiccup"));
    let (mut first, mut second) = (images(&ch), images(&ch));
    let (a, b) = tokio::join!(
        first.pull_image(pull_request("registry.test/app:4", "")),
        second.pull_image(pull_request("registry.test/app:4", ""))
    );
    let (failed, pulled) = match (a, b) {
        (Err(failed), Ok(pulled)) | (Ok(pulled), Err(failed)) => (failed, pulled),
        other => panic!("expected one failure and one image: {other:?}"),
    };
    assert_eq!(failed.code(), Code::Unavailable);
    assert_eq!(pulled.get_ref().image_ref, "fake-id-of:registry.test/app:4");
    assert_eq!(pulls_seen(&bed.fake), 5);
}

#[tokio::test]
async fn the_control_api_refuses_what_is_not_a_pull() {
    let bed = Bed::start(Default::default()).await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bed.control_sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the control socket is root-only");
    let mut control =
        stevedore_proto::control::control_client::ControlClient::new(channel(&bed.control_sock).await);
    let garbage = stevedore_proto::control::PullImageRequest { cri_request: vec![0xff, 0xff, 0xff] };
    let err = control.pull_image(garbage).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("cri_request:"), "{}", err.message());
    let empty = stevedore_proto::control::PullImageRequest {
        cri_request: prost::Message::encode_to_vec(&pull_request("", "")),
    };
    let err = control.pull_image(empty).await.unwrap_err();
    assert_eq!(err.message(), "cri_request.image.image: must name an image");
    assert_eq!(pulls_seen(&bed.fake), 0);
}
