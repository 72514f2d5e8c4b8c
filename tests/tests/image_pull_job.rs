//! Image pre-download end to end: the real controller (ImagePullJob, NodeImage) and
//! the real agents of simulated nodes against the simulated API server, pulling
//! through the real proxy on a real containerd that the nodes share. Jobs complete
//! over two nodes; a missing image, a registry that is down, one that hangs and a
//! wrong secret are reported with their reason after `backoffLimit` retries (the
//! right secret, copied into the agents' namespace, pulls); an agent killed mid-pull
//! picks the pull up again; a spec edit and a node added later reach the nodes; a
//! node deleted mid-job takes its NodeImage along; a finished job goes after its TTL.
//! An ImageListPullJob makes one ImagePullJob per image and follows edits of its
//! list; `parallelism: 1` keeps one node pulling at a time; `podSelector` targets the
//! nodes of the matching pods only.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Node, Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use stevedore_proto::{
    crd::{
        image_list_pull_job::{ImageListPullJobStatus, v1beta1::ImageListPullJob},
        image_pull_job::{ImagePullJobStatus, v1beta1::ImagePullJob},
        node_image::{ImagePullPhase, ImageTagStatus, v1beta1::NodeImage},
    },
    cri::{ImageSpec, ImageStatusRequest},
    keys,
};
use stevedore_tests::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Options},
    controller_process::{ControllerProcess, free_addr, install},
    cri,
    proxy_process::ProxyProcess,
    registry_front::{RegistryFront, Settings},
    testbed::TestBed,
    wait::until,
};

/// The jobs' namespace.
const NS: &str = "shop";
/// The agents' (and the controller's) namespace.
const AGENT_NS: &str = "stevedore-system";
/// How long a job that pulls the small images gets.
const JOB_TIMEOUT: Duration = Duration::from_secs(40);

/// One bed, one API server, the controller, the proxy, and an agent per node.
struct Env {
    // processes first: dropped (killed) before the bed and the server
    agents: BTreeMap<String, AgentProcess>,
    controller: ControllerProcess,
    _proxy: ProxyProcess,
    client: Client,
    kubeconfig: PathBuf,
    socket: PathBuf,
    control: PathBuf,
    _server: ApiServer,
    bed: TestBed,
}

impl Env {
    /// A cluster with `nodes` (name, `pool` label), each Ready with its agent running
    /// and its NodeImage created by the controller.
    async fn start(nodes: &[(&str, &str)]) -> anyhow::Result<Env> {
        let bed = TestBed::start().await?;
        let server = ApiServer::start(Options::default()).await?;
        let client = server.client().await?;
        let kubeconfig = bed.dir().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
        install(&client, &[AGENT_NS, NS]).await?;
        let socket = bed.dir().join("proxy.sock");
        let proxy =
            ProxyProcess::start(&socket, bed.containerd_socket(), &["--pull-progress-interval-ms", "100"])
                .await?;
        let control = proxy.control_socket().expect("the real proxy").to_owned();
        let controller = ControllerProcess::start(
            bed.dir(),
            &kubeconfig,
            free_addr()?,
            "controller-0",
            &[
                "--resync-seconds",
                "1",
                "--lease-seconds",
                "3",
                "--agent-namespace",
                AGENT_NS,
                "--agent-response-timeout-seconds",
                "60",
            ],
        )
        .await?;
        let mut env = Env {
            agents: BTreeMap::new(),
            controller,
            _proxy: proxy,
            client,
            kubeconfig,
            socket,
            control,
            _server: server,
            bed,
        };
        for (name, pool) in nodes {
            env.add_node(name, pool).await?;
        }
        Ok(env)
    }

    fn node_images(&self) -> Api<NodeImage> {
        Api::all(self.client.clone())
    }

    fn jobs(&self) -> Api<ImagePullJob> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// A Ready node labelled `pool=<pool>`, its agent, and (from the controller) its
    /// NodeImage.
    async fn add_node(&mut self, name: &str, pool: &str) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([
                    ("pool".to_owned(), pool.to_owned()),
                    ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        nodes.create(&PostParams::default(), &node).await?;
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        self.start_agent(name).await?;
        let node_images = self.node_images();
        until(&format!("NodeImage {name} created"), Duration::from_secs(20), async || {
            Ok(node_images.get_opt(name).await?.map(|_| ()))
        })
        .await
        .map_err(|e| e.context(self.controller.log_tail(30)))
    }

    async fn start_agent(&mut self, name: &str) -> anyhow::Result<()> {
        let agent = AgentProcess::start(
            self.bed.dir(),
            &AgentOptions {
                node_name: name.into(),
                kubeconfig: self.kubeconfig.clone(),
                cri_socket: self.socket.clone(),
                control_socket: Some(self.control.clone()),
                namespace: AGENT_NS.into(),
                extra: vec![],
            },
        )
        .await?;
        self.agents.insert(name.to_owned(), agent);
        Ok(())
    }

    async fn create_job(&self, name: &str, spec: Value) -> anyhow::Result<ImagePullJob> {
        let job: ImagePullJob = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "ImagePullJob",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))?;
        Ok(self.jobs().create(&PostParams::default(), &job).await?)
    }

    /// The logs to show when a wait fails.
    fn logs(&self) -> String {
        let mut out = format!("controller:\n{}\n", self.controller.log_tail(30));
        for (name, agent) in &self.agents {
            out.push_str(&format!("agent {name}:\n{}\n", agent.log_tail(20)));
        }
        out
    }

    /// The job's status once it has a completion time.
    /// The job's status once it has a completion time, seen on a watch (a job with a
    /// short TTL may be deleted before a poll would see it finished).
    async fn finished(&self, name: &str, within: Duration) -> anyhow::Result<ImagePullJobStatus> {
        use futures_util::TryStreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};

        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let seen = async {
            let mut stream = std::pin::pin!(watcher(self.jobs(), cfg).applied_objects());
            while let Some(job) = stream.try_next().await? {
                if let Some(s) = job.status.filter(|s| s.completion_time.is_some()) {
                    return Ok(s);
                }
            }
            anyhow::bail!("the watch of job {name} ended")
        };
        match tokio::time::timeout(within, seen).await {
            Ok(r) => r.map_err(|e: anyhow::Error| e.context(self.logs())),
            Err(_) => {
                Err(anyhow::anyhow!("job {name} did not finish within {within:?}").context(self.logs()))
            }
        }
    }

    /// The NodeImage tag's status on `node` once it is `phase`.
    async fn tag_reaches(
        &self,
        node: &str,
        image: &str,
        phase: ImagePullPhase,
        within: Duration,
    ) -> anyhow::Result<ImageTagStatus> {
        let node_images = self.node_images();
        until(&format!("{image} {phase:?} on {node}"), within, async || {
            let ni = node_images.get(node).await?;
            let Some(status) = tag_status(&ni, image) else { return Ok(None) };
            Ok((status.phase == phase
                && status.completion_time.is_some() == (phase != ImagePullPhase::Pulling))
                .then_some(status))
        })
        .await
        .map_err(|e| e.context(self.logs()))
    }
}

impl Env {
    /// Every one of `images`' tag status on `node` once they have all finished, with
    /// the messages each reported on the way (polled together: the pulls run at once).
    async fn settle(
        &self,
        node: &str,
        images: &[&str],
    ) -> anyhow::Result<BTreeMap<String, (ImageTagStatus, Vec<String>)>> {
        let node_images = self.node_images();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let done = until(&format!("{images:?} finish on {node}"), JOB_TIMEOUT, async || {
            let ni = node_images.get(node).await?;
            let mut done = BTreeMap::new();
            for image in images {
                let Some(st) = tag_status(&ni, image) else { continue };
                let messages = seen.entry((*image).to_owned()).or_default();
                if let Some(m) = &st.message
                    && messages.last() != Some(m)
                {
                    messages.push(m.clone());
                }
                if st.completion_time.is_some() {
                    done.insert((*image).to_owned(), st);
                }
            }
            Ok((done.len() == images.len()).then_some(done))
        })
        .await
        .map_err(|e| e.context(self.logs()))?;
        Ok(done
            .into_iter()
            .map(|(i, st)| {
                let m = seen.remove(&i).unwrap_or_default();
                (i, (st, m))
            })
            .collect())
    }
}

/// `image`'s (`name:tag`) first tag status in the NodeImage's status.
fn tag_status(ni: &NodeImage, image: &str) -> Option<ImageTagStatus> {
    let (name, tag) = image.rsplit_once(':')?;
    ni.status.as_ref()?.image_statuses.as_ref()?.get(name)?.tags.iter().find(|t| t.tag == tag).cloned()
}

/// The names of the jobs owning `image`'s tag in the NodeImage's spec (`None`: the
/// tag is not listed).
fn tag_owners(ni: &NodeImage, image: &str) -> Option<Vec<String>> {
    let (name, tag) = image.rsplit_once(':')?;
    let spec = ni.spec.images.as_ref()?.get(name)?;
    let t = spec.tags.iter().find(|t| t.tag == tag)?;
    Some(t.owner_references.iter().flatten().filter_map(|o| o.name.clone()).collect())
}

/// Scenario 1 and 7: a job over two nodes sharing the real containerd completes, its
/// tag on both NodeImages owned by the job; a job with `ttlSecondsAfterFinished` is
/// deleted after it completes, and its tag leaves the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_two_nodes_completes_and_a_finished_job_goes_after_its_ttl() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x"), ("node-b", "x")]).await?;
    let image = env.bed.image("app:v1");
    let job = env
        .create_job(
            "warm-app",
            json!({"image": image, "parallelism": 2, "completionPolicy": {"type": "Always"}}),
        )
        .await?;
    let status = env.finished("warm-app", JOB_TIMEOUT).await?;
    assert_eq!(
        (status.desired, status.succeeded, status.failed, status.active),
        (2, Some(2), Some(0), Some(0)),
        "{status:?}"
    );
    assert!(status.start_time.is_some() && status.failed_nodes.is_none(), "{status:?}");
    for node in ["node-a", "node-b"] {
        let ni = env.node_images().get(node).await?;
        assert_eq!(tag_owners(&ni, &image), Some(vec!["warm-app".to_owned()]), "{node}: {:?}", ni.spec);
        let owner = &ni.spec.images.as_ref().unwrap()["stevedore.test/app"].tags[0].owner_references;
        assert_eq!(owner.as_ref().unwrap()[0].uid, job.uid(), "the job's uid, on {node}");
        let st = tag_status(&ni, &image).expect("status reported");
        assert_eq!(st.phase, ImagePullPhase::Succeeded, "{node}: {st:?}");
        assert!(st.image_id.as_deref().is_some_and(|i| i.starts_with("sha256:")), "{st:?}");
    }

    // TTL: deleted a second after it finished, its tag taken off the nodes (the
    // controller does both)
    let image2 = env.bed.image("app:v2");
    env.create_job(
        "warm-briefly",
        json!({"image": image2, "parallelism": 2,
               "completionPolicy": {"type": "Always", "ttlSecondsAfterFinished": 1}}),
    )
    .await?;
    let done = env.finished("warm-briefly", JOB_TIMEOUT).await?;
    assert_eq!(done.succeeded, Some(2), "{done:?}");
    let finished_at = Instant::now();
    let jobs = env.jobs();
    until("the finished job is deleted after its TTL", Duration::from_secs(20), async || {
        Ok(jobs.get_opt("warm-briefly").await?.is_none().then_some(()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    assert!(finished_at.elapsed() < Duration::from_secs(15), "deleted about a second after finishing");
    let node_images = env.node_images();
    until("the deleted job's tag leaves the nodes", Duration::from_secs(5), async || {
        for node in ["node-a", "node-b"] {
            if tag_owners(&node_images.get(node).await?, &image2).is_some() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    // the other job is untouched
    let ni = node_images.get("node-a").await?;
    assert_eq!(tag_owners(&ni, &image), Some(vec!["warm-app".to_owned()]));
    assert!(env.jobs().get_opt("warm-app").await?.is_some());
    Ok(())
}

/// A `kubernetes.io/dockerconfigjson` Secret in the jobs' namespace.
async fn docker_secret(
    client: &Client,
    name: &str,
    registry: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    let config = json!({"auths": {registry: {"username": user, "password": password}}});
    let secret = Secret {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            k8s_openapi::ByteString(serde_json::to_vec(&config)?),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), NS).create(&PostParams::default(), &secret).await?;
    Ok(())
}

/// A failed job's status: one node, failed, named.
fn assert_failed_on_node_a(name: &str, status: &ImagePullJobStatus) {
    assert_eq!(
        (status.desired, status.succeeded, status.failed, status.failed_nodes.as_deref()),
        (1, Some(0), Some(1), Some(&["node-a".to_owned()][..])),
        "{name}: {status:?}"
    );
}

/// Scenario 2: a missing image, a registry that is down, one that hangs and a wrong
/// secret each fail with their reason in the node's status after `backoffLimit + 1`
/// attempts (each attempt's message seen on the way), and the job counts the node
/// failed; the right secret, copied into the agents' namespace, pulls, and the copies
/// go once no job needs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_with_their_reason_after_the_retries() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x")]).await?;
    // down: a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    env.bed.serve_domain("down.test", &closed.to_string())?;
    let hanging = RegistryFront::start(env.bed.registry(), Settings::default()).await?;
    hanging.set_hang(true);
    env.bed.serve_domain("hang.test", &hanging.addr())?;
    // Two fronts demanding Basic auth, each named by its address: containerd gives a
    // request's credentials only to the host they name (not to a mirror the hosts
    // file points a name at), as kubelet's keyring names them. A NodeImage lists pull
    // secrets per image, so the wrong secret's image has a registry of its own.
    let auth = Settings { basic_auth: Some("puller:right".into()), ..Default::default() };
    let guarded = RegistryFront::start(env.bed.registry(), auth.clone()).await?;
    let misguided = RegistryFront::start(env.bed.registry(), auth).await?;
    for front in [&guarded, &misguided] {
        env.bed.serve_domain(&front.addr(), &front.addr())?;
    }
    docker_secret(&env.client, "wrong", &misguided.addr(), "puller", "nope").await?;
    docker_secret(&env.client, "right", &guarded.addr(), "puller", "right").await?;
    let wrong_image = format!("{}/app:v1", misguided.addr());
    let right_image = format!("{}/app:v2", guarded.addr());

    let on_a = |image: &str, timeout: i32, backoff: i32, secret: Option<&str>| {
        let mut spec = json!({
            "image": image,
            "selector": {"names": ["node-a"]},
            "pullPolicy": {"timeoutSeconds": timeout, "backoffLimit": backoff},
            "completionPolicy": {"type": "Always"},
        });
        if let Some(s) = secret {
            spec["pullSecrets"] = json!([s]);
        }
        spec
    };
    let missing = env.bed.image("missing:v1");
    env.create_job("missing", on_a(&missing, 20, 2, None)).await?;
    env.create_job("down", on_a("down.test/app:v1", 20, 1, None)).await?;
    env.create_job("hang", on_a("hang.test/app:v1", 2, 1, None)).await?;
    env.create_job("wrong-secret", on_a(&wrong_image, 20, 1, Some("wrong"))).await?;
    env.create_job("right-secret", on_a(&right_image, 20, 1, Some("right"))).await?;

    // the copies of both secrets, in the agents' namespace
    let copies: Api<Secret> = Api::namespaced(env.client.clone(), AGENT_NS);
    let copy_label = "stevedore.dev/pull-secret-copy";
    let listed = until("the pull secrets are copied", Duration::from_secs(20), async || {
        let list = copies.list(&kube::api::ListParams::default().labels(copy_label)).await?;
        Ok((list.items.len() == 2).then_some(list.items))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    assert!(listed.iter().all(|s| s.type_.as_deref() == Some("kubernetes.io/dockerconfigjson")));

    let images = [missing.as_str(), "down.test/app:v1", "hang.test/app:v1", &wrong_image, &right_image];
    let mut done = env.settle("node-a", &images).await?;
    let mut take = |image: &str| done.remove(image).unwrap();
    let (st, seen) = take(&missing);
    let reason = st.message.clone().unwrap_or_default();
    assert_eq!(st.phase, ImagePullPhase::Failed, "{st:?}");
    assert!(reason.starts_with("NotFound") && reason.contains("not found"), "{st:?}");
    for attempt in ["attempt 1 of 3: NotFound", "attempt 2 of 3: NotFound"] {
        assert!(seen.iter().any(|m| m.starts_with(attempt)), "{attempt:?} reported on the way: {seen:?}");
    }

    let (st, seen) = take("down.test/app:v1");
    assert_eq!(st.phase, ImagePullPhase::Failed, "{st:?}");
    assert!(st.message.as_deref().is_some_and(|m| m.contains("connection refused")), "{st:?}");
    assert!(seen.iter().any(|m| m.starts_with("attempt 1 of 2:")), "{seen:?}");

    let (st, seen) = take("hang.test/app:v1");
    assert_eq!(st.phase, ImagePullPhase::Failed, "{st:?}");
    assert_eq!(st.message.as_deref(), Some("pull timed out after 2s"), "{st:?}");
    assert!(seen.iter().any(|m| m == "attempt 1 of 2: pull timed out after 2s"), "{seen:?}");

    let (st, seen) = take(&wrong_image);
    assert_eq!(st.phase, ImagePullPhase::Failed, "{st:?}");
    assert!(st.message.as_deref().is_some_and(|m| m.contains("401 Unauthorized")), "{st:?}");
    assert!(seen.iter().any(|m| m.starts_with("attempt 1 of 2:")), "{seen:?}");
    assert!(misguided.counts().unauthorized.load(std::sync::atomic::Ordering::Relaxed) >= 2);

    let (st, _) = take(&right_image);
    assert_eq!(st.phase, ImagePullPhase::Succeeded, "{st:?}");
    assert!(st.image_id.is_some(), "{st:?}");

    for name in ["missing", "down", "hang", "wrong-secret"] {
        let status = env.finished(name, JOB_TIMEOUT).await?;
        assert_failed_on_node_a(name, &status);
    }
    let status = env.finished("right-secret", JOB_TIMEOUT).await?;
    assert_eq!((status.desired, status.succeeded, status.failed), (1, Some(1), Some(0)), "{status:?}");
    until("the secret copies go with the last job needing them", Duration::from_secs(20), async || {
        let list = copies.list(&kube::api::ListParams::default().labels(copy_label)).await?;
        Ok(list.items.is_empty().then_some(()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    Ok(())
}

/// A front serving the bed's registry at 16 MB/s as `slow.test`: `big:v1` (80 MB)
/// takes about five seconds.
async fn slow_front(env: &Env) -> anyhow::Result<RegistryFront> {
    let front = RegistryFront::start(
        env.bed.registry(),
        Settings { bytes_per_second: Some(16 << 20), ..Default::default() },
    )
    .await?;
    env.bed.serve_domain("slow.test", &front.addr())?;
    Ok(front)
}

/// Waits until `node` pulls `image` and has reported progress short of 100.
async fn pulling(env: &Env, node: &str, image: &str) -> anyhow::Result<i32> {
    let node_images = env.node_images();
    until(&format!("{node} pulling {image}"), Duration::from_secs(20), async || {
        let st = tag_status(&node_images.get(node).await?, image);
        Ok(st
            .filter(|s| s.phase == ImagePullPhase::Pulling)
            .and_then(|s| s.progress)
            .filter(|p| *p > 0 && *p < 100))
    })
    .await
    .map_err(|e| e.context(env.logs()))
}

/// Scenario 3: the agent killed mid-pull and started again picks the pull up; the
/// job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_mid_pull_finishes_the_job() -> anyhow::Result<()> {
    let mut env = Env::start(&[("node-a", "x")]).await?;
    let _front = slow_front(&env).await?;
    let image = "slow.test/big:v1";
    env.create_job(
        "big",
        json!({"image": image, "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 0},
               "completionPolicy": {"type": "Always"}}),
    )
    .await?;
    pulling(&env, "node-a", image).await?;
    env.agents.get_mut("node-a").unwrap().kill();
    let job = env.jobs().get("big").await?;
    assert!(job.status.as_ref().is_some_and(|s| s.completion_time.is_none()), "mid-job: {:?}", job.status);
    env.start_agent("node-a").await?;
    let status = env.finished("big", Duration::from_secs(45)).await?;
    assert_eq!((status.desired, status.succeeded, status.failed), (1, Some(1), Some(0)), "{status:?}");
    let st = tag_status(&env.node_images().get("node-a").await?, image).unwrap();
    assert_eq!((&st.phase, st.progress), (&ImagePullPhase::Succeeded, Some(100)), "{st:?}");
    assert!(st.image_id.as_deref().is_some_and(|i| i.starts_with("sha256:")), "{st:?}");
    Ok(())
}

/// Scenario 5: a node deleted while the job pulls on it: its NodeImage goes and the
/// job finishes over the node left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deleted_mid_job_leaves_the_job_to_finish_on_the_others() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x"), ("node-b", "x")]).await?;
    let _front = slow_front(&env).await?;
    let image = "slow.test/big:v1";
    env.create_job(
        "big",
        json!({"image": image, "parallelism": 2, "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 0},
               "completionPolicy": {"type": "Always"}}),
    )
    .await?;
    pulling(&env, "node-b", image).await?;
    Api::<Node>::all(env.client.clone()).delete("node-b", &DeleteParams::default()).await?;
    let job = env.jobs().get("big").await?;
    assert!(job.status.as_ref().is_some_and(|s| s.completion_time.is_none()), "mid-job: {:?}", job.status);
    let node_images = env.node_images();
    until("node-b's NodeImage goes with it", Duration::from_secs(20), async || {
        Ok(node_images.get_opt("node-b").await?.is_none().then_some(()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    let status = env.finished("big", Duration::from_secs(45)).await?;
    assert_eq!(
        (status.desired, status.succeeded, status.failed, status.failed_nodes.clone()),
        (1, Some(1), Some(0), None),
        "{status:?}"
    );
    Ok(())
}

/// Waits until a `Never` job's status shows `(desired, succeeded)`; it never completes.
async fn never_job_at(env: &Env, name: &str, want: (i32, i32)) -> anyhow::Result<()> {
    let jobs = env.jobs();
    until(&format!("job {name} at {want:?}"), JOB_TIMEOUT, async || {
        let s = jobs.get(name).await?.status.unwrap_or_default();
        anyhow::ensure!(s.completion_time.is_none(), "a Never job does not complete: {s:?}");
        Ok(((s.desired, s.succeeded.unwrap_or(0)) == want).then_some(()))
    })
    .await
    .map_err(|e| e.context(env.logs()))
}

/// Scenarios 4 and 6: a `Never` job follows its selector: edited to another pool, its
/// tag leaves the node no longer selected and reaches the newly selected one; a node
/// of that pool added later gets it too, and the job stays running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_job_follows_selector_edits_and_new_nodes() -> anyhow::Result<()> {
    let mut env = Env::start(&[("node-a", "x"), ("node-b", "y")]).await?;
    let image = env.bed.image("app:v1");
    env.create_job(
        "follow",
        json!({"image": image, "parallelism": 2, "selector": {"matchLabels": {"pool": "x"}},
               "completionPolicy": {"type": "Never"}}),
    )
    .await?;
    let jobs = env.jobs();
    let node_images = env.node_images();
    never_job_at(&env, "follow", (1, 1)).await?;
    assert_eq!(tag_owners(&node_images.get("node-a").await?, &image), Some(vec!["follow".to_owned()]));
    assert_eq!(tag_owners(&node_images.get("node-b").await?, &image), None, "pool y not selected yet");

    let edit = json!({"spec": {"selector": {"matchLabels": {"pool": "y"}}}});
    jobs.patch("follow", &PatchParams::default(), &Patch::Merge(&edit)).await?;
    let st = env.tag_reaches("node-b", &image, ImagePullPhase::Succeeded, JOB_TIMEOUT).await?;
    assert!(st.image_id.is_some(), "{st:?}");
    assert_eq!(tag_owners(&node_images.get("node-b").await?, &image), Some(vec!["follow".to_owned()]));
    until("the tag leaves node-a", JOB_TIMEOUT, async || {
        Ok(tag_owners(&node_images.get("node-a").await?, &image).is_none().then_some(()))
    })
    .await?;
    never_job_at(&env, "follow", (1, 1)).await?;

    env.add_node("node-c", "y").await?;
    let st = env.tag_reaches("node-c", &image, ImagePullPhase::Succeeded, JOB_TIMEOUT).await?;
    assert!(st.image_id.is_some(), "{st:?}");
    never_job_at(&env, "follow", (2, 2)).await?;
    assert_eq!(tag_owners(&node_images.get("node-a").await?, &image), None, "node-a stays untargeted");
    Ok(())
}

/// The label the ImageListPullJob controller puts on its children.
const LIST_LABEL: &str = "imagelistpulljobs.kruise.io/name";

impl Env {
    fn list_jobs(&self) -> Api<ImageListPullJob> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create_list_job(&self, name: &str, spec: Value) -> anyhow::Result<ImageListPullJob> {
        let job: ImageListPullJob = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1beta1",
            "kind": "ImageListPullJob",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))?;
        Ok(self.list_jobs().create(&PostParams::default(), &job).await?)
    }

    /// The ImagePullJobs `list` owns (by label and owner uid), by image.
    async fn children(&self, list: &ImageListPullJob) -> anyhow::Result<BTreeMap<String, ImagePullJob>> {
        let name = list.name_any();
        let all = self
            .jobs()
            .list(&kube::api::ListParams::default().labels(&format!("{LIST_LABEL}={name}")))
            .await?;
        Ok(all
            .items
            .into_iter()
            .filter(|c| {
                c.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == list.uid().as_ref() && o.kind == "ImageListPullJob")
            })
            .map(|c| (c.spec.image.clone(), c))
            .collect())
    }

    /// Whether the bed's containerd has `image`.
    async fn has_image(&self, image: &str) -> anyhow::Result<bool> {
        let mut images = cri::image_client(cri::connect(self.bed.containerd_socket()).await?);
        let spec = ImageSpec { image: image.to_owned(), ..Default::default() };
        let answer = images.image_status(ImageStatusRequest { image: Some(spec), verbose: false }).await?;
        Ok(answer.into_inner().image.is_some())
    }
}

/// An ImageListPullJob with two images makes two ImagePullJobs it owns and completes
/// with both images on both nodes; a running (`Never`) list job edited to drop an image
/// deletes that image's ImagePullJob and keeps the other one as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_list_pull_job_owns_a_job_per_image_and_follows_list_edits() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x"), ("node-b", "x")]).await?;
    let (v1, v2) = (env.bed.image("app:v1"), env.bed.image("app:v2"));
    let list = env
        .create_list_job(
            "warm-list",
            json!({"images": [v1, v2], "parallelism": 2, "completionPolicy": {"type": "Always"}}),
        )
        .await?;
    let lists = env.list_jobs();
    let status: ImageListPullJobStatus = until("the list job completes", JOB_TIMEOUT, async || {
        let s = lists.get("warm-list").await?.status;
        Ok(s.filter(|s| s.completion_time.is_some()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    assert_eq!(
        (status.desired, status.completed, status.succeeded, status.active),
        (2, Some(2), Some(2), Some(0)),
        "{status:?}"
    );
    assert!(status.failed_image_statuses.is_none(), "{status:?}");
    let children = env.children(&list).await?;
    assert_eq!(children.keys().collect::<Vec<_>>(), [&v1, &v2], "one child per image");
    for (image, child) in &children {
        let st = child.status.clone().unwrap_or_default();
        assert_eq!((st.desired, st.succeeded), (2, Some(2)), "{image}: {st:?}");
        for node in ["node-a", "node-b"] {
            let ni = env.node_images().get(node).await?;
            assert_eq!(tag_owners(&ni, image), Some(vec![child.name_any()]), "{node}: {:?}", ni.spec);
            let tag = tag_status(&ni, image).expect("status reported");
            assert_eq!(tag.phase, ImagePullPhase::Succeeded, "{node} {image}: {tag:?}");
        }
        assert!(env.has_image(image).await?, "{image} is in the nodes' containerd");
    }

    // a running list job: dropping an image from its list deletes that image's child
    let follow = env
        .create_list_job(
            "follow-list",
            json!({"images": [v1, v2], "parallelism": 2, "completionPolicy": {"type": "Never"}}),
        )
        .await?;
    let both = until("the running list job's children pull both images", JOB_TIMEOUT, async || {
        let s = lists.get("follow-list").await?.status.unwrap_or_default();
        let children = env.children(&follow).await?;
        Ok((s.succeeded == Some(2) && children.len() == 2).then_some(children))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    let edit = json!({"spec": {"images": [v1]}});
    lists.patch("follow-list", &PatchParams::default(), &Patch::Merge(&edit)).await?;
    let left = until("the dropped image's child is deleted", JOB_TIMEOUT, async || {
        let children = env.children(&follow).await?;
        Ok((children.len() == 1).then_some(children))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    assert_eq!(left.keys().collect::<Vec<_>>(), [&v1]);
    assert_eq!(left[&v1].uid(), both[&v1].uid(), "the kept image's child is the same object");
    assert!(env.jobs().get_opt(&both[&v2].name_any()).await?.is_none(), "the removed child is gone");
    until("the list job counts one image", JOB_TIMEOUT, async || {
        let s = lists.get("follow-list").await?.status.unwrap_or_default();
        anyhow::ensure!(s.completion_time.is_none(), "a Never list job does not complete: {s:?}");
        Ok((s.desired == 1 && s.succeeded == Some(1)).then_some(()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    // the completed list job is untouched
    assert_eq!(env.children(&list).await?.len(), 2);
    Ok(())
}

/// `parallelism: 1` over three nodes: polling every NodeImage, never more than one
/// node has the tag pulling (listed on the node and not finished, or reported
/// Pulling), and all three complete. The first pull is slowed (80 MB at 16 MB/s), so
/// a controller putting the tag on every node at once would be seen doing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_one_pulls_on_one_node_at_a_time() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x"), ("node-b", "x"), ("node-c", "x")]).await?;
    let _front = slow_front(&env).await?;
    let image = "slow.test/big:v1";
    env.create_job(
        "one-by-one",
        json!({"image": image, "parallelism": 1, "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 0},
               "completionPolicy": {"type": "Always"}}),
    )
    .await?;
    let (jobs, node_images) = (env.jobs(), env.node_images());
    let mut most = (0, 0);
    let mut started: Vec<String> = Vec::new();
    let status = until("the job finishes one node at a time", Duration::from_secs(60), async || {
        let list = node_images.list(&kube::api::ListParams::default()).await?;
        let (mut listed, mut pulling) = (0, 0);
        for ni in &list.items {
            if tag_owners(ni, image).is_none() {
                continue;
            }
            let node = ni.name_any();
            if !started.contains(&node) {
                started.push(node);
            }
            let st = tag_status(ni, image);
            if st.as_ref().is_none_or(|s| s.completion_time.is_none()) {
                listed += 1;
            }
            if st.is_some_and(|s| s.phase == ImagePullPhase::Pulling) {
                pulling += 1;
            }
        }
        let tags: Vec<_> = list
            .items
            .iter()
            .map(|ni| {
                (ni.name_any(), tag_owners(ni, image).is_some(), tag_status(ni, image).map(|s| s.phase))
            })
            .collect();
        anyhow::ensure!(
            listed <= 1 && pulling <= 1,
            "{listed} nodes listed, {pulling} pulling (node, listed, phase): {tags:?}"
        );
        most = (most.0.max(listed), most.1.max(pulling));
        Ok(jobs.get("one-by-one").await?.status.filter(|s| s.completion_time.is_some()))
    })
    .await
    .map_err(|e| e.context(env.logs()))?;
    assert_eq!(
        (status.desired, status.succeeded, status.failed, status.active),
        (3, Some(3), Some(0), Some(0)),
        "{status:?}"
    );
    assert_eq!(most, (1, 1), "the slow first pull was seen under way");
    assert_eq!(started, ["node-a", "node-b", "node-c"], "one node after the other, by name");
    for node in ["node-a", "node-b", "node-c"] {
        let st = tag_status(&node_images.get(node).await?, image).expect("reported");
        assert_eq!(st.phase, ImagePullPhase::Succeeded, "{node}: {st:?}");
    }
    Ok(())
}

/// A pod of the jobs' namespace labelled `app`, bound to `node`; `node_local`: one a
/// node agent runs (an Advanced DaemonSet's), which the controller's pod watch leaves
/// out.
async fn pod_on(env: &Env, name: &str, app: &str, node: &str, node_local: bool) -> anyhow::Result<()> {
    let mut labels = json!({"app": app});
    if node_local {
        labels[keys::NODE_LOCAL] = json!("true");
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": env.bed.image("app:v1")}]},
    }))?;
    Api::<Pod>::namespaced(env.client.clone(), NS).create(&PostParams::default(), &pod).await?;
    Ok(())
}

/// `podSelector`: the job targets only the nodes running a matching pod, a node
/// agent's pod too (listed: the controller does not watch those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_selector_targets_only_the_nodes_of_matching_pods() -> anyhow::Result<()> {
    let env = Env::start(&[("node-a", "x"), ("node-b", "x"), ("node-c", "x"), ("node-d", "x")]).await?;
    pod_on(&env, "web-0", "web", "node-b", false).await?;
    pod_on(&env, "db-0", "db", "node-c", false).await?;
    pod_on(&env, "web-agent-x", "web", "node-d", true).await?;
    pod_on(&env, "db-agent-x", "db", "node-a", true).await?;
    let image = env.bed.image("app:v2");
    env.create_job(
        "for-web",
        json!({"image": image, "parallelism": 3, "podSelector": {"matchLabels": {"app": "web"}},
               "completionPolicy": {"type": "Always"}}),
    )
    .await?;
    let status = env.finished("for-web", JOB_TIMEOUT).await?;
    assert_eq!(
        (status.desired, status.succeeded, status.failed, status.active),
        (2, Some(2), Some(0), Some(0)),
        "{status:?}"
    );
    let node_images = env.node_images();
    for node in ["node-b", "node-d"] {
        let ni = node_images.get(node).await?;
        assert_eq!(tag_owners(&ni, &image), Some(vec!["for-web".to_owned()]), "{node}: {:?}", ni.spec);
        assert_eq!(tag_status(&ni, &image).map(|s| s.phase), Some(ImagePullPhase::Succeeded), "{node}");
    }
    for node in ["node-a", "node-c"] {
        let ni = node_images.get(node).await?;
        assert_eq!(tag_owners(&ni, &image), None, "{node} runs no matching pod: {:?}", ni.spec);
        assert!(tag_status(&ni, &image).is_none(), "{node}: {:?}", ni.status);
    }
    Ok(())
}
