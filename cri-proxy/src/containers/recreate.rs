//! `RecreateContainer`: stop a container, then create and start its next attempt in
//! the same sandbox from the request kubelet sent for it.
//!
//! The new container carries the same labels and annotations (so kubelet's container
//! hash matches and kubelet adopts it), `attempt` and the restart-count annotation
//! plus one, the log path of the new attempt (the old log stays), and the caller's env
//! overrides. The intent is journaled (fsync'd) before the stop; after a crash
//! between stop and start, [`replay`] finishes the job at the next start, so a
//! container of a `restartPolicy: Never` pod is not lost.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use prost::Message as _;
use stevedore_proto::{
    control::{KeyValue, container_event::Kind},
    cri::{
        ContainerState, ContainerStatusRequest, CreateContainerRequest, ListContainersRequest,
        StartContainerRequest, StopContainerRequest,
    },
};
use tonic::Status;
use tracing::{info, warn};

use super::{Containers, Place, Produced, RESTART_COUNT_ANNOTATION, bare_id};
use crate::metrics::RecreateResult;

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The container (bare id or `containerd://id`).
    pub container_id: String,
    /// Seconds it gets to stop.
    pub grace_period_seconds: i64,
    /// Env to set in the new container.
    pub env_overrides: Vec<KeyValue>,
    /// Image of the new container, if not the recorded one.
    pub image: Option<String>,
}

/// What a recreate did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The new container's id (empty when not recorded).
    pub container_id: String,
    /// Whether the proxy recreated it (false: only stopped).
    pub recorded: bool,
    /// The new attempt.
    pub attempt: u32,
    /// Time of each step.
    pub stop: Duration,
    /// Time of each step.
    pub create: Duration,
    /// Time of each step.
    pub start: Duration,
}

/// A journaled intent: enough to finish a recreate after a crash.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Intent {
    /// The container being replaced.
    #[prost(string, tag = "1")]
    pub old_container_id: String,
    /// The request for its next attempt.
    #[prost(message, optional, tag = "2")]
    pub request: Option<CreateContainerRequest>,
    /// The stop's grace period, seconds.
    #[prost(int64, tag = "3")]
    pub grace_period_seconds: i64,
}

/// The next attempt's request from the recorded one.
pub fn next_request(
    recorded: &CreateContainerRequest,
    env: &[KeyValue],
    image: Option<&str>,
) -> CreateContainerRequest {
    let mut next = recorded.clone();
    let config = next.config.get_or_insert_default();
    let meta = config.metadata.get_or_insert_default();
    let old_attempt = meta.attempt;
    meta.attempt = old_attempt + 1;
    let attempt = meta.attempt;
    let name = meta.name.clone();
    let restarts = config
        .annotations
        .get(RESTART_COUNT_ANNOTATION)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(u64::from(attempt), |n| n + 1);
    config.annotations.insert(RESTART_COUNT_ANNOTATION.to_owned(), restarts.to_string());
    config.log_path = next_log_path(&config.log_path, &name, old_attempt, attempt);
    for kv in env {
        match config.envs.iter_mut().find(|e| e.key == kv.key) {
            Some(e) => e.value.clone_from(&kv.value),
            None => config
                .envs
                .push(stevedore_proto::cri::KeyValue { key: kv.key.clone(), value: kv.value.clone() }),
        }
    }
    if let Some(image) = image {
        config.image.get_or_insert_default().image = image.to_owned();
    }
    next
}

/// kubelet's log path is `<name>/<restartCount>.log` under the sandbox's log
/// directory; the new attempt gets its own file beside the old one.
fn next_log_path(old: &str, name: &str, old_attempt: u32, attempt: u32) -> String {
    if old.is_empty() {
        return String::new();
    }
    let path = Path::new(old);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let new_file = if file == format!("{old_attempt}.log") {
        format!("{attempt}.log")
    } else {
        format!("{attempt}-{file}")
    };
    dir.join(new_file).to_string_lossy().into_owned()
}

fn journal_path(dir: &Path, place: &Place) -> PathBuf {
    let safe = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect::<String>()
    };
    dir.join("journal").join(format!("{}_{}.pb", safe(&place.sandbox), safe(&place.name)))
}

fn status_of(step: &str, s: Status) -> Status {
    Status::new(s.code(), format!("{step}: {}", s.message()))
}

impl Containers {
    /// Recreates a container (see the module docs).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown container, `FAILED_PRECONDITION` while it is being
    /// recreated already, `INVALID_ARGUMENT` for a bad request, or the runtime's
    /// status of the step that failed, named in the message.
    pub async fn recreate(&self, req: Request) -> Result<Outcome, Status> {
        let result = self.recreate_inner(req).await;
        self.metrics.recreate(match &result {
            Ok(o) if o.recorded => RecreateResult::Recreated,
            Ok(_) => RecreateResult::Stopped,
            Err(_) => RecreateResult::Failed,
        });
        result
    }

    async fn recreate_inner(&self, req: Request) -> Result<Outcome, Status> {
        let id = bare_id(&req.container_id).to_owned();
        if id.is_empty() {
            return Err(Status::invalid_argument("container_id: must name a container"));
        }
        if req.grace_period_seconds < 0 {
            return Err(Status::invalid_argument("grace_period_seconds: must not be negative"));
        }
        if let Some(kv) = req.env_overrides.iter().find(|kv| kv.key.is_empty() || kv.key.contains('=')) {
            return Err(Status::invalid_argument(format!(
                "env_overrides: {:?} is not a variable name",
                kv.key
            )));
        }
        let mut runtime = self.runtime();
        let Some(record) = self.store().get(&id) else {
            // Not ours to recreate: stop it, kubelet restarts it as after a crash.
            runtime
                .container_status(ContainerStatusRequest { container_id: id.clone(), verbose: false })
                .await
                .map_err(|s| status_of("container status", s))?;
            let began = Instant::now();
            runtime
                .stop_container(StopContainerRequest {
                    container_id: id.clone(),
                    timeout: req.grace_period_seconds,
                })
                .await
                .map_err(|s| status_of("stop", s))?;
            self.publish(Kind::Stopped, &id, None, began.elapsed(), "recreate");
            info!(container.id = %id, "no record of the container: stopped it for kubelet to restart");
            return Ok(Outcome { recorded: false, stop: began.elapsed(), ..Default::default() });
        };
        let place = Place { sandbox: record.sandbox_id().to_owned(), name: record.name().to_owned() };
        let Some(done) = self.begin_recreate(&place) else {
            return Err(Status::failed_precondition(format!(
                "container {id} ({}) is being recreated already",
                place.name
            )));
        };
        let result = self.recreate_recorded(&id, &place, &record.request, &req).await;
        let produced =
            result.as_ref().ok().map(|o| Produced { id: o.container_id.clone(), attempt: o.attempt });
        self.end_recreate(&place, &done, produced);
        result
    }

    async fn recreate_recorded(
        &self,
        id: &str,
        place: &Place,
        recorded: &CreateContainerRequest,
        req: &Request,
    ) -> Result<Outcome, Status> {
        let next = next_request(recorded, &req.env_overrides, req.image.as_deref());
        let attempt = next.config.as_ref().and_then(|c| c.metadata.as_ref()).map_or(0, |m| m.attempt);
        let journal = self.store().dir().map(|d| journal_path(d, place));
        if let Some(path) = &journal {
            let intent = Intent {
                old_container_id: id.to_owned(),
                request: Some(next.clone()),
                grace_period_seconds: req.grace_period_seconds,
            };
            super::store::write_durably(path, &intent.encode_to_vec())
                .and_then(|()| super::store::sync_dir(path.parent().unwrap_or(Path::new("."))))
                .map_err(|e| {
                    Status::internal(format!("journaling the recreate in {}: {e}", path.display()))
                })?;
        }
        let result = self.run_steps(id, next, req.grace_period_seconds).await;
        if let Some(path) = &journal
            && let Err(error) = std::fs::remove_file(path)
        {
            warn!(%error, path = %path.display(), "removing a recreate's journal entry");
        }
        let mut outcome = result?;
        outcome.attempt = attempt;
        info!(
            old.id = %id,
            new.id = %outcome.container_id,
            container.name = %place.name,
            attempt,
            stop_ms = outcome.stop.as_secs_f64() * 1e3,
            create_ms = outcome.create.as_secs_f64() * 1e3,
            start_ms = outcome.start.as_secs_f64() * 1e3,
            "recreated"
        );
        Ok(outcome)
    }

    /// Stop, create, start. The stop is skipped for a container that has exited.
    async fn run_steps(&self, id: &str, next: CreateContainerRequest, grace: i64) -> Result<Outcome, Status> {
        let mut runtime = self.runtime();
        let old = self.store().get(id);
        let began = Instant::now();
        runtime
            .stop_container(StopContainerRequest { container_id: id.to_owned(), timeout: grace })
            .await
            .map_err(|s| status_of("stop", s))?;
        let stop = began.elapsed();
        self.publish(Kind::Stopped, id, old.as_deref(), stop, "recreate");
        let (new_id, create) = self.create_from(next).await?;
        let start = self.start(&new_id).await?;
        Ok(Outcome { container_id: new_id, recorded: true, attempt: 0, stop, create, start })
    }

    async fn create_from(&self, next: CreateContainerRequest) -> Result<(String, Duration), Status> {
        let began = Instant::now();
        let key = self.store().begin(&next);
        let new_id = match self.runtime().create_container(next.clone()).await {
            Ok(r) => r.into_inner().container_id,
            Err(s) => {
                self.store().abandon(key);
                return Err(status_of("create", s));
            }
        };
        let create = began.elapsed();
        let record = self.store().created(key, &new_id, next);
        self.publish(Kind::Created, &new_id, Some(&record), create, "recreate");
        Ok((new_id, create))
    }

    async fn start(&self, new_id: &str) -> Result<Duration, Status> {
        let began = Instant::now();
        self.runtime()
            .start_container(StartContainerRequest { container_id: new_id.to_owned() })
            .await
            .map_err(|s| status_of("start", s))?;
        let start = began.elapsed();
        self.mark_started(new_id);
        let record = self.store().get(new_id);
        self.publish(Kind::Started, new_id, record.as_deref(), start, "recreate");
        Ok(start)
    }
}

/// Finishes the recreates a crash interrupted (journal entries under `dir`): if the
/// next attempt exists it is started if it never was; otherwise, while the sandbox
/// lives, the old container is stopped (if it still runs) and the next attempt
/// created and started. A recreate the caller saw fail is thus done once, at the
/// next start. Returns how many recreates were finished.
///
/// # Errors
/// The runtime could not be listed (the caller retries).
pub async fn replay(containers: &Containers, dir: &Path) -> Result<usize, Status> {
    let journal = dir.join("journal");
    let Ok(entries) = std::fs::read_dir(&journal) else { return Ok(0) };
    let paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .collect();
    if paths.is_empty() {
        return Ok(0);
    }
    let listed = containers
        .runtime()
        .list_containers(ListContainersRequest { filter: None })
        .await?
        .into_inner()
        .containers;
    let mut finished = 0;
    for path in paths {
        let intent = match std::fs::read(&path).map(|b| Intent::decode(b.as_slice())) {
            Ok(Ok(i)) => i,
            _ => {
                warn!(path = %path.display(), "unreadable recreate journal entry; dropped");
                let _ = std::fs::remove_file(&path);
                continue;
            }
        };
        let Some(next) = intent.request else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let meta = next.config.as_ref().and_then(|c| c.metadata.clone()).unwrap_or_default();
        let sandbox = next.pod_sandbox_id.clone();
        let same_place = |c: &&stevedore_proto::cri::Container| {
            c.pod_sandbox_id == sandbox && c.metadata.as_ref().is_some_and(|m| m.name == meta.name)
        };
        let made = listed
            .iter()
            .filter(same_place)
            .find(|c| c.metadata.as_ref().is_some_and(|m| m.attempt >= meta.attempt));
        let old = listed.iter().find(|c| c.id == intent.old_container_id);
        let sandbox_ready = containers.sandbox_ready(&sandbox).await;
        let result = match made {
            Some(c) if c.state == ContainerState::ContainerCreated as i32 => {
                containers.start(&c.id).await.map(|_| true)
            }
            // kubelet made the next attempt itself meanwhile
            Some(_) => Ok(false),
            None if !sandbox_ready => Ok(false),
            None => {
                async {
                    if old.is_some_and(|o| o.state == ContainerState::ContainerRunning as i32) {
                        let stop = StopContainerRequest {
                            container_id: intent.old_container_id.clone(),
                            timeout: intent.grace_period_seconds,
                        };
                        containers.runtime().stop_container(stop).await.map_err(|s| status_of("stop", s))?;
                    }
                    let (id, _) = containers.create_from(next).await?;
                    containers.start(&id).await.map(|_| true)
                }
                .await
            }
        };
        match result {
            Ok(true) => {
                finished += 1;
                info!(container.name = %meta.name, attempt = meta.attempt, "finished a recreate interrupted by a restart");
            }
            Ok(false) => {}
            Err(status) => {
                warn!(%status, container.name = %meta.name, "could not finish an interrupted recreate")
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use stevedore_proto::cri::{ContainerConfig, ContainerMetadata, ImageSpec};

    use super::*;

    fn recorded() -> CreateContainerRequest {
        CreateContainerRequest {
            pod_sandbox_id: "sb".into(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata { name: "app".into(), attempt: 2 }),
                image: Some(ImageSpec { image: "busybox".into(), ..Default::default() }),
                envs: vec![stevedore_proto::cri::KeyValue { key: "ZONE".into(), value: "a".into() }],
                labels: HashMap::from([("io.kubernetes.container.name".into(), "app".into())]),
                annotations: HashMap::from([
                    (RESTART_COUNT_ANNOTATION.into(), "2".into()),
                    ("io.kubernetes.container.hash".into(), "abc".into()),
                ]),
                log_path: "app/2.log".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        }
    }

    #[test]
    fn the_next_attempt_keeps_identity_and_moves_count_and_log() {
        let env = [
            KeyValue { key: "ZONE".into(), value: "b".into() },
            KeyValue { key: "NEW".into(), value: "1".into() },
        ];
        let next = next_request(&recorded(), &env, None);
        let c = next.config.unwrap();
        assert_eq!(c.metadata.unwrap().attempt, 3);
        assert_eq!(c.annotations[RESTART_COUNT_ANNOTATION], "3");
        assert_eq!(c.annotations["io.kubernetes.container.hash"], "abc");
        assert_eq!(c.labels, recorded().config.unwrap().labels);
        assert_eq!(c.log_path, "app/3.log");
        let envs: Vec<_> = c.envs.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
        assert_eq!(envs, [("ZONE", "b"), ("NEW", "1")]);
        assert_eq!(c.image.unwrap().image, "busybox");
        assert_eq!(next.pod_sandbox_id, "sb");
    }

    #[test]
    fn an_image_override_and_odd_log_paths() {
        let next = next_request(&recorded(), &[], Some("busybox:2"));
        assert_eq!(next.config.unwrap().image.unwrap().image, "busybox:2");
        assert_eq!(next_log_path("logs/app.log", "app", 0, 1), "logs/1-app.log");
        assert_eq!(next_log_path("0.log", "app", 0, 1), "app/1.log");
        assert_eq!(next_log_path("", "app", 0, 1), "");
    }
}
