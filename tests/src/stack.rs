//! A whole local cluster on the test bed, for workload suites, the demo and the
//! benchmarks: the bed's containerd behind the real proxy, the simulated API server
//! (with its real plug-ins, and kubectl's requests served as the admin's; each agent
//! authenticates with a token of the agent's service account bound to its node, so
//! the node guard holds it to its own node), the real
//! controller binary (its webhooks reached as a Service, CRDs installed), simulated
//! kubelets on the proxy socket, the scheduler, and optionally the real agent of each
//! node.

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio_util::sync::CancellationToken;

use crate::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Hooks, Options, Tokens, UserInfo},
    clients::Clients,
    cluster::Services,
    controller_process::{ControllerProcess, TEST_ARGS, serving_webhooks, start_serving},
    kubelet::{self, Kubelet},
    proxy_process::ProxyProcess,
    scheduler::Scheduler,
    testbed::TestBed,
};

/// The agents' namespace.
pub const AGENT_NAMESPACE: &str = "stevedore-system";

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Simulated nodes (each a kubelet on the one proxy socket).
    pub nodes: Vec<String>,
    /// Start the real agent of each node.
    pub agents: bool,
    /// Namespaces to create.
    pub namespaces: Vec<String>,
    /// The kubelets' status sync interval.
    pub sync_interval: Duration,
    /// Nodes that may join later ([`Stack::add_node`]): their agents' tokens are known
    /// to the API server from the start, as a node's credentials would be.
    pub spare_nodes: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            nodes: vec!["node-1".into()],
            agents: false,
            namespaces: vec!["default".into()],
            sync_interval: Duration::from_millis(300),
            spare_nodes: Vec::new(),
        }
    }
}

/// A running local cluster; [`Stack::stop`] tears it down.
pub struct Stack {
    /// Its kube client (the admin).
    pub client: Client,
    /// A kubeconfig for it (also for kubectl).
    pub kubeconfig: PathBuf,
    /// The controller.
    pub controller: ControllerProcess,
    /// The agents, one per node when asked for.
    pub agents: Vec<AgentProcess>,
    /// The proxy every node's kubelet uses.
    pub proxy: ProxyProcess,
    /// Per node: its kubelet and what stops it alone.
    kubelets: Vec<(Kubelet, CancellationToken)>,
    nodes: Vec<String>,
    opts: StackOptions,
    scheduler: Scheduler,
    stop: CancellationToken,
    services: Services,
    server: ApiServer,
    /// The test bed.
    pub bed: TestBed,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("api", &self.server.url()).finish_non_exhaustive()
    }
}

/// The bearer token of `node`'s agent.
fn agent_token(node: &str) -> String {
    format!("agent-{node}-token")
}

/// How the stack starts a node's agent: on the proxy, a heartbeat every 2 s.
fn agent_options(node: &str, kubeconfig: &std::path::Path, proxy: &ProxyProcess) -> AgentOptions {
    AgentOptions {
        node_name: node.to_owned(),
        kubeconfig: kubeconfig.to_owned(),
        cri_socket: proxy.socket().to_owned(),
        control_socket: proxy.control_socket().map(ToOwned::to_owned),
        namespace: AGENT_NAMESPACE.into(),
        extra: vec!["--heartbeat-seconds".into(), "2".into()],
    }
}

impl Stack {
    /// Starts everything.
    ///
    /// # Errors
    /// A part fails to start (named).
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        let bed = TestBed::start().await?;
        let services = Services::default();
        // each agent authenticates as the agent's service account bound to its node,
        // so the node guard holds it to its own node's objects
        let mut tokens = Tokens::default();
        tokens.insert(ADMIN_TOKEN, UserInfo::admin());
        for node in opts.nodes.iter().chain(&opts.spare_nodes) {
            tokens.insert(agent_token(node), UserInfo::agent_service_account(Some(node)));
        }
        let server = ApiServer::start(Options {
            hooks: Hooks::webhooks(services.clone()),
            anonymous: Some(UserInfo::admin()),
            tokens,
            ..Options::default()
        })
        .await?;
        let client = server.client().await?;
        let kubeconfig = bed.dir().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
        let controller = serving_webhooks(&client, &services, &kubeconfig, bed.dir()).await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for ns in &opts.namespaces {
            if namespaces.get_opt(ns).await?.is_none() {
                let n = Namespace {
                    metadata: ObjectMeta { name: Some(ns.clone()), ..ObjectMeta::default() },
                    ..Namespace::default()
                };
                namespaces.create(&PostParams::default(), &n).await?;
            }
        }
        let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
        let stop = CancellationToken::new();
        let scheduler = Scheduler::start(client.clone(), stop.clone());
        let mut stack = Stack {
            client,
            kubeconfig,
            controller,
            agents: Vec::new(),
            proxy,
            kubelets: Vec::new(),
            nodes: Vec::new(),
            opts: opts.clone(),
            scheduler,
            stop,
            services,
            server,
            bed,
        };
        for node in &opts.nodes {
            stack.start_node(node).await?;
        }
        Ok(stack)
    }

    /// Starts `node`'s kubelet (which registers the Node) and, when asked for, its
    /// agent.
    async fn start_node(&mut self, node: &str) -> anyhow::Result<()> {
        let mut cfg = kubelet::Config::new(
            node,
            Some(self.proxy.socket().to_owned()),
            self.bed.dir().join(format!("kubelet-{node}")),
        );
        cfg.sync_interval = self.opts.sync_interval;
        let stop = self.stop.child_token();
        self.kubelets.push((Kubelet::start(cfg, self.client.clone(), stop.clone()).await?, stop));
        self.nodes.push(node.to_owned());
        if self.opts.agents {
            let agent_config = self.bed.dir().join(format!("kubeconfig-agent-{node}"));
            self.server.write_kubeconfig(&agent_config, &agent_token(node))?;
            let agent_opts = agent_options(node, &agent_config, &self.proxy);
            self.agents.push(AgentProcess::start(self.bed.dir(), &agent_opts).await?);
        }
        Ok(())
    }

    /// A node joins: one of [`StackOptions::spare_nodes`] starts its kubelet, which
    /// registers the Node, and its agent.
    ///
    /// # Errors
    /// It is not a spare node, or does not start.
    pub async fn add_node(&mut self, node: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.opts.spare_nodes.iter().any(|n| n == node), "{node} is not a spare node");
        anyhow::ensure!(!self.nodes.iter().any(|n| n == node), "{node} runs already");
        self.start_node(node).await
    }

    /// A node goes away: its agent and kubelet stop (its containers are left, as on a
    /// machine that was switched off). Deleting its Node is the caller's step.
    ///
    /// # Errors
    /// No such node.
    pub async fn stop_node(&mut self, node: &str) -> anyhow::Result<()> {
        let i = self.nodes.iter().position(|n| n == node).ok_or_else(|| anyhow::anyhow!("no node {node}"))?;
        self.nodes.remove(i);
        if self.opts.agents {
            let _ = self.agents.remove(i).stop().await;
        }
        let (kubelet, stop) = self.kubelets.remove(i);
        stop.cancel();
        kubelet.join().await;
        Ok(())
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// kubectl and helm pointed at this cluster.
    ///
    /// # Errors
    /// The clients cannot be installed.
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        Clients::for_kubeconfig(&self.kubeconfig).await
    }

    /// Stops the controller (SIGTERM) and starts a new one, serving the webhooks again.
    ///
    /// # Errors
    /// It does not stop or start.
    pub async fn restart_controller(&mut self) -> anyhow::Result<()> {
        self.controller.stop().await?;
        self.controller =
            start_serving(&self.client, &self.services, &self.kubeconfig, self.bed.dir(), TEST_ARGS).await?;
        Ok(())
    }

    /// Starts agent `i` again (after [`AgentProcess::stop`] or [`AgentProcess::kill`]),
    /// with the flags it was first started with.
    ///
    /// # Errors
    /// It does not start.
    pub async fn restart_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get(i).cloned().ok_or_else(|| anyhow::anyhow!("no node {i}"))?;
        let _ = self.agents[i].stop().await;
        let agent_config = self.bed.dir().join(format!("kubeconfig-agent-{node}"));
        let opts = agent_options(&node, &agent_config, &self.proxy);
        self.agents[i] = AgentProcess::start(self.bed.dir(), &opts).await?;
        Ok(())
    }

    /// Tears everything down: agents, controller, kubelets, scheduler, API server,
    /// proxy, then the bed.
    pub async fn stop(mut self) {
        for a in &mut self.agents {
            let _ = a.stop().await;
        }
        let _ = self.controller.stop().await;
        self.stop.cancel();
        for (k, _) in self.kubelets {
            k.join().await;
        }
        self.scheduler.join().await;
        self.server.stop().await;
        let _ = self.proxy.stop().await;
        drop(self.bed);
    }
}
