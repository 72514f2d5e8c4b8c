use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;

/// What the fake runtime does on one pull call.
#[derive(Debug, Clone)]
enum Step {
    /// Sends these percents, then succeeds with this id.
    Ok(Vec<u32>, &'static str),
    /// Fails with this code and message.
    Fail(tonic::Code, &'static str),
    /// Never answers.
    Hang,
}

/// A hand-written fake runtime: scripted pull outcomes, recorded calls.
#[derive(Default)]
struct FakeRuntime {
    present: Mutex<Option<String>>,
    steps: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<(String, String)>>,
}

impl FakeRuntime {
    fn with(steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self { steps: Mutex::new(steps.into()), ..Self::default() })
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Runtime for FakeRuntime {
    fn present(&self, _image: String) -> BoxFuture<'_, Result<Option<String>, tonic::Status>> {
        let p = self.present.lock().unwrap().clone();
        Box::pin(async move { Ok(p) })
    }

    fn pull(
        &self,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> BoxFuture<'_, Result<String, tonic::Status>> {
        let user = req.auth.map(|a| a.username).unwrap_or_default();
        self.calls.lock().unwrap().push((req.image.unwrap_or_default().image, user));
        let step =
            self.steps.lock().unwrap().pop_front().unwrap_or(Step::Fail(tonic::Code::Internal, "unscripted"));
        Box::pin(async move {
            match step {
                Step::Ok(percents, id) => {
                    for p in percents {
                        let _ = progress.send(p).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(id.to_string())
                }
                Step::Fail(code, msg) => Err(tonic::Status::new(code, msg)),
                Step::Hang => std::future::pending().await,
            }
        })
    }
}

#[derive(Default)]
struct Recorded(Mutex<Vec<ImageTagStatus>>);

impl Report for Recorded {
    fn update(&self, status: ImageTagStatus) {
        self.0.lock().unwrap().push(status);
    }
}

impl Recorded {
    fn phases(&self) -> Vec<(ImagePullPhase, Option<i32>)> {
        let mut out: Vec<(ImagePullPhase, Option<i32>)> = Vec::new();
        for s in self.0.lock().unwrap().iter() {
            let p = (s.phase.clone(), s.progress);
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
        out
    }
}

fn pull(backoff_limit: u32) -> Pull {
    Pull {
        reference: "stevedore.test/app:v1".into(),
        tag: "v1".into(),
        version: 2,
        always: true,
        timeout: Duration::from_secs(5),
        backoff_limit,
        deadline: None,
        auths: Vec::new(),
        sandbox: None,
    }
}

async fn go(p: Pull, rt: Arc<FakeRuntime>) -> (Option<ImageTagStatus>, Arc<Recorded>) {
    let report = Arc::new(Recorded::default());
    let out = run(p, rt, Arc::new(Semaphore::new(4)), report.clone(), CancellationToken::new()).await;
    (out, report)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn progress_then_success() {
    let rt = FakeRuntime::with(vec![Step::Ok(vec![10, 55, 100], "sha256:abc")]);
    let (out, report) = go(pull(3), rt.clone()).await;
    let out = out.unwrap();
    assert_eq!(
        (out.phase, out.progress, out.image_id.as_deref(), out.version),
        (ImagePullPhase::Succeeded, Some(100), Some("sha256:abc"), Some(2))
    );
    assert!(out.start_time.is_some() && out.completion_time.is_some());
    assert_eq!(
        report.phases(),
        [
            (ImagePullPhase::Waiting, Some(0)),
            (ImagePullPhase::Pulling, Some(0)),
            (ImagePullPhase::Pulling, Some(10)),
            (ImagePullPhase::Pulling, Some(55)),
            (ImagePullPhase::Pulling, Some(99)),
            (ImagePullPhase::Succeeded, Some(100)),
        ],
        "progress moves in steps, never 100 before the pull returned"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retries_with_backoff_then_fails_with_the_last_error() {
    let rt = FakeRuntime::with(vec![
        Step::Fail(tonic::Code::Unavailable, "registry down"),
        Step::Fail(tonic::Code::NotFound, "manifest unknown"),
        Step::Fail(tonic::Code::NotFound, "manifest unknown"),
    ]);
    let t0 = Instant::now();
    let (out, report) = go(pull(2), rt.clone()).await;
    let out = out.unwrap();
    assert_eq!(out.phase, ImagePullPhase::Failed);
    assert_eq!(out.message.as_deref(), Some("NotFound: manifest unknown"));
    assert_eq!(rt.calls().len(), 3, "backoffLimit 2: three attempts");
    assert_eq!(t0.elapsed(), Duration::from_secs(1 + 2), "1 s then 2 s between attempts");
    let messages: Vec<String> = report.0.lock().unwrap().iter().filter_map(|s| s.message.clone()).collect();
    assert!(messages.contains(&"attempt 1 of 3: Unavailable: registry down".to_string()), "{messages:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hanging_registry_times_out_and_the_deadline_ends_retries() {
    let rt = FakeRuntime::with(vec![Step::Hang, Step::Hang, Step::Hang]);
    let (out, _) = go(pull(0), rt.clone()).await;
    assert_eq!(out.unwrap().message.as_deref(), Some("pull timed out after 5s"));
    let mut p = pull(5);
    p.deadline = Some(Duration::from_secs(7));
    let rt = FakeRuntime::with(vec![Step::Hang, Step::Hang, Step::Hang]);
    let (out, _) = go(p, rt.clone()).await;
    assert_eq!(out.unwrap().message.as_deref(), Some("pulling exceeds the activeDeadlineSeconds"));
    assert_eq!(rt.calls().len(), 2, "5 s, 1 s backoff, 1 s left: no third attempt");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn present_images_are_not_pulled_unless_always() {
    let rt = FakeRuntime::with(vec![]);
    *rt.present.lock().unwrap() = Some("sha256:here".into());
    let mut p = pull(0);
    p.always = false;
    let (out, _) = go(p, rt.clone()).await;
    assert_eq!(out.unwrap().image_id.as_deref(), Some("sha256:here"));
    assert!(rt.calls().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn credentials_are_tried_in_turn() {
    let rt = FakeRuntime::with(vec![
        Step::Fail(tonic::Code::Unknown, "401 unauthorized"),
        Step::Ok(vec![], "sha256:x"),
    ]);
    let mut p = pull(0);
    p.auths = ["old", "new"].map(|u| AuthConfig { username: u.into(), ..AuthConfig::default() }).to_vec();
    let (out, _) = go(p, rt.clone()).await;
    assert_eq!(out.unwrap().phase, ImagePullPhase::Succeeded);
    assert_eq!(rt.calls().iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["old", "new"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slots_bound_concurrent_pulls_and_stop_ends_a_worker() {
    let slots = Arc::new(Semaphore::new(1));
    let rt = FakeRuntime::with(vec![Step::Hang, Step::Hang]);
    let (first, second) = (Arc::new(Recorded::default()), Arc::new(Recorded::default()));
    let (stop1, stop2) = (CancellationToken::new(), CancellationToken::new());
    let w1 = tokio::spawn(run(pull(0), rt.clone(), slots.clone(), first.clone(), stop1.clone()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let w2 = tokio::spawn(run(pull(0), rt.clone(), slots.clone(), second.clone(), stop2.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(second.phases(), [(ImagePullPhase::Waiting, Some(0))], "no slot: waiting");
    stop1.cancel();
    assert_eq!(w1.await.unwrap(), None, "a stopped worker reports nothing final");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(second.phases().last().unwrap().0, ImagePullPhase::Pulling, "the freed slot is taken");
    stop2.cancel();
    w2.await.unwrap();
}
