//! One sync of one pod against CRI, in kubelet's order (`SyncPod` after
//! `computePodActions`): a sandbox if there is no ready one; the init containers one
//! at a time, each to completion; then every container that is missing, exited and due
//! for a restart by `restartPolicy`, or running with a changed hash (killed and
//! recreated in the same sandbox with restartCount+1). The status is written at the
//! end from what the runtime then shows.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use stevedore_proto::cri::CreateContainerRequest;
use tracing::info;

use super::env::{self, EnvSources};
use super::runtime::{Runtime, Sandbox, Waiting};
use super::status::{CtrObs, CtrState, Observed};
use super::{NodeCtx, Result, api, hash, quantity, spec, volumes};

/// What a sync ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The pod runs (or waits) as it should.
    Synced,
    /// The pod was torn down and deleted: its worker is done.
    Deleted,
}

/// The pod's termination grace period (deletion's if set).
pub fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

/// kubelet's crash-loop back-off before restarting an instance that exited: none for
/// the first exit, then `initial * 2^(n-1)` up to `max`.
pub fn backoff(restart_count: i32, initial: Duration, max: Duration) -> Duration {
    if restart_count <= 0 {
        return Duration::ZERO;
    }
    let exp = (restart_count - 1).min(20) as u32;
    initial.saturating_mul(2u32.saturating_pow(exp)).min(max)
}

/// Should an exited container run again (`ShouldContainerBeRestarted`)?
pub fn should_restart(pod: &Pod, exit_code: i32) -> bool {
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always") {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// What the next step for one container is.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (running as wanted, or done for good).
    Keep,
    /// Create and start a first or next instance with this restart count.
    Start(u32),
    /// Kill the running instance (changed spec), then start this restart count.
    Replace(u32),
    /// Exited, due for a restart later: waiting in CrashLoopBackOff.
    BackOff(Duration),
}

/// The action for a container given its newest instance (pure; `now` for back-off).
pub fn action(
    pod: &Pod,
    c: &Container,
    latest: Option<&CtrObs>,
    now: Timestamp,
    cfg: &super::Config,
) -> Action {
    let Some(o) = latest else { return Action::Start(0) };
    let next = (o.restart_count + 1) as u32;
    match o.state {
        CtrState::Running => {
            let want = hash::container_hash_annotation(&c.name, c.image.as_deref().unwrap_or(""));
            if o.hash != want { Action::Replace(next) } else { Action::Keep }
        }
        CtrState::Exited if should_restart(pod, o.exit_code) => {
            let wait = backoff(o.restart_count, cfg.backoff_initial, cfg.backoff_max);
            let since = o.finished_at.map_or(Duration::ZERO, |f| {
                Duration::try_from(now.duration_since(f)).unwrap_or(Duration::ZERO)
            });
            if since >= wait { Action::Start(next) } else { Action::BackOff(wait - since) }
        }
        CtrState::Exited | CtrState::Created | CtrState::Unknown => Action::Keep,
    }
}

/// One sync; see the module docs.
pub async fn sync(ctx: &NodeCtx, rt: &Runtime, pod: &Pod) -> Result<Outcome> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        let grace = grace_seconds(pod);
        info!(pod.uid = %uid, grace, "pod deleted: stopping its containers");
        rt.teardown(&uid, grace).await?;
        volumes::remove(&ctx.cfg.root_dir, &uid)?;
        api::delete_pod(&ctx.client, pod).await?;
        return Ok(Outcome::Deleted);
    }
    let (sandbox, mut obs) = rt.observe(pod, &ctx.cfg.host_ip).await?;
    if super::status::is_terminal(pod) {
        // Done for good: kubelet kills what is left and keeps the status.
        if let Some(s) = sandbox.filter(|s| s.ready) {
            rt.stop_sandbox(&s.id).await?;
        }
        return Ok(Outcome::Synced);
    }

    let vols = volumes::prepare(&ctx.cfg.root_dir, pod)?;
    let log_dir = spec::log_dir(&ctx.cfg.log_dir, pod);
    std::fs::create_dir_all(&log_dir).map_err(|err| super::Error::Io { path: log_dir.clone(), err })?;
    let log_dir = log_dir.display().to_string();
    let sandbox = match sandbox {
        Some(s) if s.ready => s,
        old => {
            let attempt = old.as_ref().map_or(0, |s| s.attempt + 1);
            if let Some(old) = &old {
                rt.stop_sandbox(&old.id).await?;
            }
            let cfg = spec::sandbox(pod, &ctx.cfg.node_name, attempt, &log_dir, &vols.unmounted);
            let id = rt.run_sandbox(cfg).await?;
            info!(pod.uid = %uid, sandbox.id = %id, attempt, "sandbox started");
            let (_, fresh) = rt.observe(pod, &ctx.cfg.host_ip).await?;
            obs = fresh;
            Sandbox { id, ready: true, attempt, created_at: 0 }
        }
    };
    let sandbox_cfg = spec::sandbox(pod, &ctx.cfg.node_name, sandbox.attempt, &log_dir, &vols.unmounted);
    let step = Step { ctx, rt, pod, sandbox: &sandbox, sandbox_cfg: &sandbox_cfg, vols: &vols };

    let podspec = pod.spec.clone().unwrap_or_default();
    let mut changed = false;
    if !super::status::initialized(pod, &obs) {
        // The first init container not done yet: start, restart or wait for it.
        let pending =
            podspec.init_containers.iter().flatten().find(|c| {
                !obs.latest(&c.name).is_some_and(|o| o.state == CtrState::Exited && o.exit_code == 0)
            });
        if let Some(c) = pending {
            let latest = obs.latest(&c.name).cloned();
            changed |= step.apply(c, latest.as_ref(), &mut obs).await?;
        }
    } else {
        for c in &podspec.containers {
            let latest = obs.latest(&c.name).cloned();
            changed |= step.apply(c, latest.as_ref(), &mut obs).await?;
        }
    }
    if changed {
        let waiting = std::mem::take(&mut obs.waiting);
        let (_, fresh) = rt.observe(pod, &ctx.cfg.host_ip).await?;
        obs = fresh;
        obs.waiting = waiting;
    }
    api::write_status(&ctx.client, pod, &obs).await?;
    Ok(Outcome::Synced)
}

/// One sync's fixed inputs.
struct Step<'a> {
    ctx: &'a NodeCtx,
    rt: &'a Runtime,
    pod: &'a Pod,
    sandbox: &'a Sandbox,
    sandbox_cfg: &'a stevedore_proto::cri::PodSandboxConfig,
    vols: &'a volumes::PodVolumes,
}

impl Step<'_> {
    /// Does what [`action`] says for `c`; records waiting reasons in `obs`. True when
    /// the runtime changed.
    async fn apply(&self, c: &Container, latest: Option<&CtrObs>, obs: &mut Observed) -> Result<bool> {
        let instances = obs.containers.get(&c.name).cloned().unwrap_or_default();
        match action(self.pod, c, latest, Timestamp::now(), &self.ctx.cfg) {
            Action::Keep => Ok(false),
            Action::BackOff(left) => {
                let rc = latest.map_or(0, |o| o.restart_count);
                let total = backoff(rc, self.ctx.cfg.backoff_initial, self.ctx.cfg.backoff_max);
                let msg = format!(
                    "back-off {}s restarting failed container={} pod={} ({left:?} left)",
                    total.as_secs(),
                    c.name,
                    self.pod.metadata.name.as_deref().unwrap_or_default()
                );
                obs.waiting.insert(c.name.clone(), ("CrashLoopBackOff".to_owned(), msg));
                Ok(false)
            }
            Action::Replace(rc) => {
                let o = latest.expect("replace has a running instance");
                info!(container = %c.name, container.id = %o.id, "container spec changed: killing it");
                self.rt.stop_container(&o.id, grace_seconds(self.pod)).await?;
                self.start(c, rc, &instances, obs).await?;
                Ok(true)
            }
            Action::Start(rc) => {
                self.start(c, rc, &instances, obs).await?;
                Ok(true)
            }
        }
    }

    /// Pulls, resolves env, creates and starts instance `rc`; removes instances older
    /// than the previous one (kubelet keeps one dead instance per container).
    async fn start(&self, c: &Container, rc: u32, instances: &[CtrObs], obs: &mut Observed) -> Result<()> {
        for old in instances.iter().skip(1) {
            self.rt.remove_container(&old.id).await?;
        }
        match self.try_start(c, rc, obs).await? {
            Ok(id) => {
                info!(container = %c.name, container.id = %id, restart_count = rc, "container started");
                self.post_start(c, &id).await?;
            }
            Err(w) => {
                info!(container = %c.name, reason = %w.0, message = %w.1, "container not started");
                obs.waiting.insert(c.name.clone(), w);
            }
        }
        Ok(())
    }

    /// kubelet's postStart (exec only here): run in the new container right after it
    /// starts; on failure kubelet kills the container (`FailedPostStartHook`) and it
    /// restarts by the restart policy.
    async fn post_start(&self, c: &Container, id: &str) -> Result<()> {
        let Some(cmd) = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
        else {
            return Ok(());
        };
        if let Err(reason) = self.rt.exec(id, cmd, 60).await? {
            info!(container = %c.name, container.id = %id, %reason, "FailedPostStartHook: killing the container");
            self.rt.stop_container(id, grace_seconds(self.pod)).await?;
        }
        Ok(())
    }

    async fn try_start(&self, c: &Container, rc: u32, obs: &Observed) -> Result<Result<String, Waiting>> {
        let image_ref = match self.rt.ensure_image(c).await? {
            Ok(r) => r,
            Err(w) => return Ok(Err(w)),
        };
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let (cm_names, secret_names) = env::references(c);
        let (config_maps, secrets) =
            api::fetch_sources(&self.ctx.client, ns, &cm_names, &secret_names).await?;
        let sources = EnvSources {
            node_name: self.ctx.cfg.node_name.clone(),
            host_ip: self.ctx.cfg.host_ip.clone(),
            pod_ip: obs.pod_ip.clone(),
            node_cpu: quantity::parse(&self.ctx.cfg.cpu).unwrap_or(0.0),
            node_memory: quantity::parse(&self.ctx.cfg.memory).unwrap_or(0.0),
            config_maps,
            secrets,
        };
        let env = match env::resolve(self.pod, c, &sources) {
            Ok(e) => e,
            Err(e) => return Ok(Err(("CreateContainerConfigError".to_owned(), e.to_string()))),
        };
        let inputs =
            spec::ContainerInputs { image_ref: &image_ref, env: &env, volumes: self.vols, restart_count: rc };
        let req = CreateContainerRequest {
            pod_sandbox_id: self.sandbox.id.clone(),
            config: Some(spec::container(self.pod, c, &self.ctx.cfg.node_name, &inputs)),
            sandbox_config: Some(self.sandbox_cfg.clone()),
        };
        self.rt.create_and_start(req).await
    }
}

#[cfg(test)]
mod tests;
