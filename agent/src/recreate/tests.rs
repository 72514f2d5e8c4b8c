use std::sync::Mutex;

use stevedore_proto::control::RecreateContainerResponse;
use tonic::{Code, Status};

use super::*;
use crate::images::worker::BoxFuture;
use crate::runtime::ExecOutput;

/// Scripted answers to `recreate`; records the calls.
#[derive(Default)]
struct FakeContainers {
    recreate: Mutex<Option<Result<RecreateContainerResponse, Status>>>,
    stop: Mutex<Option<Status>>,
    /// Stops answered UNAVAILABLE before the others.
    unreachable: Mutex<u32>,
    calls: Mutex<Vec<String>>,
}

impl FakeContainers {
    fn answering(r: Result<RecreateContainerResponse, Status>) -> Self {
        Self { recreate: Mutex::new(Some(r)), ..Self::default() }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Containers for FakeContainers {
    fn exec(&self, id: String, _cmd: Vec<String>, _t: Duration) -> BoxFuture<'_, Result<ExecOutput, Status>> {
        self.calls.lock().unwrap().push(format!("exec {id}"));
        Box::pin(async { Ok(ExecOutput::default()) })
    }
    fn stop(&self, id: String, grace: i64) -> BoxFuture<'_, Result<(), Status>> {
        self.calls.lock().unwrap().push(format!("stop {id} {grace}"));
        let mut down = self.unreachable.lock().unwrap();
        if *down > 0 {
            *down -= 1;
            return Box::pin(async {
                Err(Status::unavailable("connect: No such file or directory (os error 2)"))
            });
        }
        let r = self.stop.lock().unwrap().take();
        Box::pin(async move { r.map_or(Ok(()), Err) })
    }
    fn recreate(&self, id: String, grace: i64) -> BoxFuture<'_, Result<RecreateContainerResponse, Status>> {
        self.calls.lock().unwrap().push(format!("recreate {id} {grace}"));
        let r = self.recreate.lock().unwrap().take().unwrap_or_else(|| Err(Status::unavailable("none")));
        Box::pin(async move { r })
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn proxy_mode_uses_the_proxys_new_container() {
    let rt = FakeContainers::answering(Ok(RecreateContainerResponse {
        container_id: "new".into(),
        recorded: true,
        ..Default::default()
    }));
    let r = recreate_call(Mode::Proxy, &rt, "old", 5).await.unwrap();
    assert_eq!((r.path, r.new_id.as_deref(), r.fallback), (Mode::Proxy, Some("new"), None));
    assert_eq!(rt.calls(), ["recreate old 5"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn proxy_mode_falls_back_to_kubelet_when_the_proxy_cannot() {
    for code in [Code::Unimplemented, Code::Unavailable] {
        let rt = FakeContainers::answering(Err(Status::new(code, "no")));
        let r = recreate_call(Mode::Proxy, &rt, "old", 5).await.unwrap();
        assert_eq!((r.path, r.new_id), (Mode::Kubelet, None));
        assert!(r.fallback.unwrap().contains("cannot recreate"));
        assert_eq!(rt.calls(), ["recreate old 5", "stop old 5"]);
    }
    // Not recorded: the proxy stopped it already; kubelet restarts it.
    let rt = FakeContainers::answering(Ok(RecreateContainerResponse::default()));
    let r = recreate_call(Mode::Proxy, &rt, "old", 5).await.unwrap();
    assert_eq!((r.path, r.new_id), (Mode::Kubelet, None));
    assert_eq!(rt.calls(), ["recreate old 5"]);
    // Another error fails the container.
    let rt = FakeContainers::answering(Err(Status::failed_precondition("a recreate is under way")));
    let (path, e) = recreate_call(Mode::Proxy, &rt, "old", 5).await.unwrap_err();
    assert_eq!(path, Mode::Proxy);
    assert!(e.contains("under way"), "{e}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn kubelet_mode_only_stops() {
    let rt = FakeContainers::answering(Ok(RecreateContainerResponse::default()));
    let r = recreate_call(Mode::Kubelet, &rt, "old", 3).await.unwrap();
    assert_eq!((r.path, r.fallback), (Mode::Kubelet, None));
    assert_eq!(rt.calls(), ["stop old 3"]);
    // A container already gone counts as stopped; another error does not.
    *rt.stop.lock().unwrap() = Some(Status::not_found("gone"));
    assert!(recreate_call(Mode::Kubelet, &rt, "old", 3).await.is_ok());
    *rt.stop.lock().unwrap() = Some(Status::internal("boom"));
    let (path, e) = recreate_call(Mode::Kubelet, &rt, "old", 3).await.unwrap_err();
    assert_eq!(path, Mode::Kubelet);
    assert!(e.contains("StopContainer: boom"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unreachable_runtime_is_waited_for_then_given_up_on() {
    // the proxy restarting: control API and CRI both down for a while
    let rt = FakeContainers { unreachable: Mutex::new(3), ..FakeContainers::default() };
    let began = tokio::time::Instant::now();
    let r = recreate_call(Mode::Proxy, &rt, "old", 5).await.unwrap();
    assert_eq!((r.path, r.new_id), (Mode::Kubelet, None));
    assert_eq!(rt.calls().iter().filter(|c| c.starts_with("stop")).count(), 4);
    assert_eq!(began.elapsed(), Duration::from_millis(200 + 400 + 800));
    // down for good: the container fails after UNREACHABLE_FOR
    let rt = FakeContainers { unreachable: Mutex::new(u32::MAX), ..FakeContainers::default() };
    let began = tokio::time::Instant::now();
    let (path, e) = recreate_call(Mode::Kubelet, &rt, "old", 5).await.unwrap_err();
    assert_eq!(path, Mode::Kubelet);
    assert!(e.contains("No such file"), "{e}");
    assert!(began.elapsed() <= UNREACHABLE_FOR && began.elapsed() > UNREACHABLE_FOR - Duration::from_secs(6));
}

#[test]
fn modes_parse() {
    assert_eq!("proxy".parse::<Mode>().unwrap(), Mode::Proxy);
    assert_eq!("kubelet".parse::<Mode>().unwrap(), Mode::Kubelet);
    assert!("cri".parse::<Mode>().unwrap_err().contains("proxy or kubelet"));
}
