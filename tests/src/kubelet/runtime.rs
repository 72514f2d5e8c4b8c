//! The CRI calls of one pod: observing its sandbox and containers (filtered by pod uid
//! and node label), pulling images per `imagePullPolicy`, starting, killing and tearing
//! down.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use stevedore_proto::cri::{
    ContainerFilter, ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    ImageStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandboxConfig, PodSandboxFilter,
    PodSandboxState, PodSandboxStatusRequest, PullImageRequest, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
use tracing::{debug, info};

use super::status::{CtrObs, CtrState, Observed};
use super::{Result, cri, spec};
use crate::cri::{ImageClient, RuntimeClient};

/// A sandbox of the pod.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Runtime id.
    pub id: String,
    /// Ready (running, network up).
    pub ready: bool,
    /// Its attempt.
    pub attempt: u32,
    /// Creation time (ns).
    pub created_at: i64,
}

/// The CRI side of one node.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Runtime service.
    pub rt: RuntimeClient,
    /// Image service.
    pub img: ImageClient,
    /// The node whose label filters everything.
    pub node: String,
}

fn ts(ns: i64) -> Option<Timestamp> {
    (ns > 0).then(|| Timestamp::from_nanosecond(i128::from(ns)).ok()).flatten()
}

/// Why a container could not be started: its waiting reason and message.
pub type Waiting = (String, String);

impl Runtime {
    /// The sandboxes carrying every label of `labels`.
    async fn list_sandboxes(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<stevedore_proto::cri::PodSandbox>> {
        let filter = PodSandboxFilter { label_selector: labels, ..Default::default() };
        Ok(self
            .rt
            .clone()
            .list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) })
            .await
            .map_err(cri("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    /// The pod's containers on this node, in every sandbox.
    async fn list_containers(&self, uid: &str) -> Result<Vec<stevedore_proto::cri::Container>> {
        let filter =
            ContainerFilter { label_selector: spec::owner_labels(uid, &self.node), ..Default::default() };
        Ok(self
            .rt
            .clone()
            .list_containers(ListContainersRequest { filter: Some(filter) })
            .await
            .map_err(cri("ListContainers"))?
            .into_inner()
            .containers)
    }

    /// The pod's sandboxes, newest first.
    pub async fn sandboxes(&self, uid: &str) -> Result<Vec<Sandbox>> {
        let items = self.list_sandboxes(spec::owner_labels(uid, &self.node)).await?;
        let mut out: Vec<Sandbox> = items
            .into_iter()
            .map(|s| Sandbox {
                ready: s.state == PodSandboxState::SandboxReady as i32,
                attempt: s.metadata.map_or(0, |m| m.attempt),
                created_at: s.created_at,
                id: s.id,
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    /// Every sandbox with this node's label: `(id, pod uid)`.
    pub async fn node_sandboxes(&self) -> Result<Vec<(String, String)>> {
        let items =
            self.list_sandboxes(HashMap::from([(super::NODE_LABEL.to_owned(), self.node.clone())])).await?;
        Ok(items
            .into_iter()
            .map(|s| {
                let uid = s.labels.get(spec::POD_UID).cloned().unwrap_or_default();
                (s.id, uid)
            })
            .collect())
    }

    /// The pod's IP in a sandbox.
    pub async fn sandbox_ip(&self, id: &str) -> Result<String> {
        let st = self
            .rt
            .clone()
            .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: false })
            .await
            .map_err(cri("PodSandboxStatus"))?
            .into_inner();
        Ok(st.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default())
    }

    /// The pod's containers (all sandboxes), per name, newest first; readiness probes
    /// (exec) of running ones are run.
    pub async fn containers(&self, pod: &Pod, uid: &str) -> Result<HashMap<String, Vec<CtrObs>>> {
        let list = self.list_containers(uid).await?;
        let spec = pod.spec.clone().unwrap_or_default();
        let mut out: HashMap<String, Vec<(i64, CtrObs)>> = HashMap::new();
        for c in list {
            let st = match self
                .rt
                .clone()
                .container_status(ContainerStatusRequest { container_id: c.id.clone(), verbose: false })
                .await
            {
                Ok(r) => r.into_inner().status.unwrap_or_default(),
                Err(s) if s.code() == tonic::Code::NotFound => continue,
                Err(s) => return Err(cri("ContainerStatus")(s)),
            };
            let name = c.labels.get(spec::CONTAINER_NAME).cloned().unwrap_or_default();
            let state = match st.state {
                0 => CtrState::Created,
                1 => CtrState::Running,
                2 => CtrState::Exited,
                _ => CtrState::Unknown,
            };
            let mut obs = CtrObs {
                id: c.id.clone(),
                state,
                restart_count: c
                    .annotations
                    .get(spec::RESTART_COUNT)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                exit_code: st.exit_code,
                reason: st.reason,
                message: st.message,
                started_at: ts(st.started_at),
                finished_at: ts(st.finished_at),
                image: st.image.map(|i| i.user_specified_image).filter(|i| !i.is_empty()).unwrap_or_default(),
                image_ref: st.image_ref,
                hash: c.annotations.get(spec::CONTAINER_HASH).cloned().unwrap_or_default(),
                ready: state == CtrState::Running,
            };
            let probe = spec
                .containers
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.readiness_probe.as_ref())
                .and_then(|p| Some((p.exec.as_ref()?.command.clone()?, p.timeout_seconds.unwrap_or(1))));
            if let (true, Some((cmd, timeout))) = (obs.ready, probe) {
                obs.ready = self.exec_ok(&c.id, cmd, timeout).await;
            }
            out.entry(name).or_default().push((c.created_at, obs));
        }
        Ok(out
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|(created, o)| std::cmp::Reverse((o.restart_count, *created)));
                (k, v.into_iter().map(|(_, o)| o).collect())
            })
            .collect())
    }

    /// ExecSync: `Ok(Err(reason))` when the command fails or exits non-zero.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<std::result::Result<(), String>> {
        let req = ExecSyncRequest { container_id: id.to_owned(), cmd, timeout };
        Ok(match self.rt.clone().exec_sync(req).await {
            Ok(r) if r.get_ref().exit_code == 0 => Ok(()),
            Ok(r) => Err(format!(
                "exit code {}: {}",
                r.get_ref().exit_code,
                String::from_utf8_lossy(&r.get_ref().stderr).trim()
            )),
            Err(s) => Err(s.message().to_owned()),
        })
    }

    async fn exec_ok(&self, id: &str, cmd: Vec<String>, timeout: i32) -> bool {
        let req = ExecSyncRequest { container_id: id.to_owned(), cmd, timeout: i64::from(timeout.max(1)) };
        matches!(self.rt.clone().exec_sync(req).await, Ok(r) if r.get_ref().exit_code == 0)
    }

    /// The image per the container's pull policy; its id, or why not.
    pub async fn ensure_image(&self, c: &Container) -> Result<Result<String, Waiting>> {
        let image = c.image.clone().unwrap_or_default();
        let spec = Some(ImageSpec { image: image.clone(), ..Default::default() });
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| stevedore_proto::image::default_pull_policy(&image).to_owned());
        if policy != "Always" {
            let present = self
                .img
                .clone()
                .image_status(ImageStatusRequest { image: spec.clone(), verbose: false })
                .await
                .map_err(cri("ImageStatus"))?
                .into_inner()
                .image;
            if let Some(i) = present {
                return Ok(Ok(i.id));
            }
            if policy == "Never" {
                let msg = format!("Container image \"{image}\" is not present with pull policy of Never");
                return Ok(Err(("ErrImageNeverPull".to_owned(), msg)));
            }
        }
        info!(%image, "pulling image");
        match self.img.clone().pull_image(PullImageRequest { image: spec, ..Default::default() }).await {
            Ok(r) => Ok(Ok(r.into_inner().image_ref)),
            Err(s) => Ok(Err(("ErrImagePull".to_owned(), s.message().to_owned()))),
        }
    }

    /// RunPodSandbox; the new sandbox's id.
    pub async fn run_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        let req = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        Ok(self
            .rt
            .clone()
            .run_pod_sandbox(req)
            .await
            .map_err(cri("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id)
    }

    /// Create + start; `Err(waiting)` with kubelet's reasons when the runtime refuses.
    pub async fn create_and_start(&self, req: CreateContainerRequest) -> Result<Result<String, Waiting>> {
        let id = match self.rt.clone().create_container(req).await {
            Ok(r) => r.into_inner().container_id,
            Err(s) => return Ok(Err(("CreateContainerError".to_owned(), s.message().to_owned()))),
        };
        if let Err(s) =
            self.rt.clone().start_container(StartContainerRequest { container_id: id.clone() }).await
        {
            return Ok(Err(("RunContainerError".to_owned(), s.message().to_owned())));
        }
        Ok(Ok(id))
    }

    /// StopContainer with a grace period (seconds).
    pub async fn stop_container(&self, id: &str, grace: i64) -> Result<()> {
        debug!(container.id = %id, grace, "stopping container");
        let req = StopContainerRequest { container_id: id.to_owned(), timeout: grace };
        match self.rt.clone().stop_container(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(cri("StopContainer")(s)),
        }
    }

    /// RemoveContainer (gone is fine).
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        match self.rt.clone().remove_container(RemoveContainerRequest { container_id: id.to_owned() }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(cri("RemoveContainer")(s)),
        }
    }

    /// StopPodSandbox (its containers die with it).
    pub async fn stop_sandbox(&self, id: &str) -> Result<()> {
        match self.rt.clone().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.to_owned() }).await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(cri("StopPodSandbox")(s)),
        }
    }

    /// Stops every container of the pod with `grace` seconds (in parallel), then stops
    /// and removes its sandboxes and containers.
    pub async fn teardown(&self, uid: &str, grace: i64) -> Result<()> {
        let ctrs = self.list_containers(uid).await?;
        let stops = ctrs.iter().filter(|c| c.state == 1).map(|c| self.stop_container(&c.id, grace));
        for r in futures_util::future::join_all(stops).await {
            r?;
        }
        // Only the pod's own worker makes sandboxes for its uid: the list stays true.
        let sandboxes = self.sandboxes(uid).await?;
        for s in &sandboxes {
            self.stop_sandbox(&s.id).await?;
        }
        for c in &ctrs {
            self.remove_container(&c.id).await?;
        }
        for s in sandboxes {
            match self.rt.clone().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: s.id }).await {
                Ok(_) => {}
                Err(st) if st.code() == tonic::Code::NotFound => {}
                Err(st) => return Err(cri("RemovePodSandbox")(st)),
            }
        }
        Ok(())
    }

    /// What the runtime shows of the pod, for [`super::status::pod_status`].
    pub async fn observe(&self, pod: &Pod, host_ip: &str) -> Result<(Option<Sandbox>, Observed)> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let sandbox = self.sandboxes(&uid).await?.into_iter().next();
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let pod_ip = match &sandbox {
            Some(s) if s.ready && host_network => host_ip.to_owned(),
            Some(s) if s.ready => self.sandbox_ip(&s.id).await?,
            _ => String::new(),
        };
        let obs = Observed {
            sandbox_ready: sandbox.as_ref().is_some_and(|s| s.ready),
            pod_ip,
            host_ip: host_ip.to_owned(),
            containers: self.containers(pod, &uid).await?,
            waiting: HashMap::new(),
            now: Timestamp::now(),
        };
        Ok((sandbox, obs))
    }
}
