//! `stevedore-apiserver`: the simulated Kubernetes API server as a process, for the
//! real binaries, the demo, kubectl and helm. It runs the real plug-ins (CRD schemas,
//! admission and conversion webhooks), webhook Services reached through their stored
//! Endpoints or EndpointSlices.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::Parser;
use stevedore_tests::apiserver::{ADMIN_TOKEN, ApiServer, Hooks, Options, Tokens};

#[derive(Debug, Parser)]
#[command(about = "A simulated Kubernetes API server (plain HTTP, loopback)")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "STEVEDORE_APISERVER_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write an admin kubeconfig here once listening.
    #[arg(long, env = "STEVEDORE_APISERVER_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// JSON file of extra tokens: `{"TOKEN": {"username": …, "groups": […], "extra": {…}}}`.
    #[arg(long, env = "STEVEDORE_APISERVER_TOKENS")]
    tokens: Option<PathBuf>,
    /// Serve requests without a token as the admin: kubectl sends no token over plain HTTP.
    #[arg(long, env = "STEVEDORE_APISERVER_ANONYMOUS_ADMIN")]
    anonymous_admin: bool,
    /// The admin's bearer token.
    #[arg(long, env = "STEVEDORE_APISERVER_ADMIN_TOKEN", default_value = ADMIN_TOKEN)]
    admin_token: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut opts = Options {
        listen: args.listen,
        admin_token: args.admin_token.clone(),
        hooks: Hooks::cluster(),
        ..Options::default()
    };
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut tokens = Tokens::from_json(&text).with_context(|| format!("parsing {}", path.display()))?;
        tokens.insert(args.admin_token.clone(), stevedore_tests::apiserver::UserInfo::admin());
        opts.tokens = tokens;
    } else {
        opts.tokens.insert(args.admin_token.clone(), stevedore_tests::apiserver::UserInfo::admin());
    }
    if args.anonymous_admin {
        opts.anonymous = Some(stevedore_tests::apiserver::UserInfo::admin());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let server = ApiServer::start(opts).await?;
        if let Some(path) = &args.kubeconfig_out {
            server.write_kubeconfig(path, &args.admin_token)?;
        }
        println!("{}", server.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.stop().await;
        Ok(())
    })
}
