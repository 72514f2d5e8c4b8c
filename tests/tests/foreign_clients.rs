//! Transparency for clients of other gRPC stacks: the same scenario (see
//! `stevedore_tests::foreign::scenario`) run by grpcio, grpc-go, tonic and a raw
//! HTTP/2 client, each directly against the test bed's containerd and through the
//! real `stevedore-cri-proxy` binary; the answers must match step by step.

use serde_json::json;
use stevedore_tests::{
    foreign::{Client, Stack, scenario},
    proxy_process::ProxyProcess,
    testbed::TestBed,
    transcript::{assert_same, normalize},
};

async fn same_answers_directly_and_through_the_proxy(stack: Stack) -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    // a socket path with slashes: grpcio's default authority is it, percent-encoded
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let tag = format!("{stack:?}").to_lowercase();
    let direct = {
        let mut c = Client::connect(stack, bed.containerd_socket()).await?;
        normalize(&scenario::run(&mut c, &bed, &tag).await?)
    };
    let proxied = {
        let mut c = Client::connect(stack, proxy.socket()).await?;
        normalize(&scenario::run(&mut c, &bed, &tag).await?)
    };
    assert_same(&direct, &proxied, &format!("{stack:?}: direct vs through the proxy"));
    // the scenario did what it claims, on both sides
    let find = |name: &str| proxied.iter().find(|(s, _)| s == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(find("Version")["ok"]["runtime_name"], json!("containerd"));
    assert_eq!(find("ExecSync")["ok"]["stdout"], json!(b"v1\n".to_vec()));
    assert_eq!(find("ContainerStatus unknown")["error"]["code"], json!(5), "NotFound");
    assert_eq!(find("a method nobody serves")["error"]["code"], json!(12), "Unimplemented");
    assert_eq!(find("GetContainerEvents")["end"]["code"], json!(12), "Unimplemented");
    assert_eq!(find("Events/Subscribe")["msg"]["value"], json!("ping"));
    assert_eq!(find("ListContainers filtered")["ok"]["containers"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_with_its_default_authority() -> anyhow::Result<()> {
    same_answers_directly_and_through_the_proxy(Stack::Grpcio).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_go_as_kubelet_dials() -> anyhow::Result<()> {
    same_answers_directly_and_through_the_proxy(Stack::GrpcGo).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic() -> anyhow::Result<()> {
    same_answers_directly_and_through_the_proxy(Stack::Tonic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http2_with_padding_continuation_large_headers_and_odd_authorities() -> anyhow::Result<()> {
    same_answers_directly_and_through_the_proxy(Stack::RawH2).await
}
