//! Durable records of the `CreateContainerRequest`s kubelet sent, one file per
//! container under `<state-dir>/containers/<id>.pb`.
//!
//! A record is written ahead, off the forwarded call's critical path: when kubelet's
//! request arrives it is queued for a writer thread under a pending name
//! (`pending/<sandbox>_<name>_<attempt>.pb`, fsync'd) while the call goes to the
//! runtime; when the runtime answers with the container's id the pending file is
//! renamed to the id. kubelet's call waits for neither. After a crash, pending files
//! are matched to the runtime's containers by sandbox, name and attempt, so a record
//! is lost only if the proxy dies before the runtime even created the container.
//! Records of removed containers are deleted; the directory holds one small file per
//! container on the node.

use std::{
    collections::HashMap,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc as std_mpsc},
};

use prost::Message as _;
use stevedore_proto::cri::CreateContainerRequest;
use tokio::sync::oneshot;
use tracing::{debug, warn};

/// A container's recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What kubelet sent (or what a recreate sent, or what was rebuilt).
    pub request: CreateContainerRequest,
}

impl Record {
    /// The sandbox the container lives in.
    pub fn sandbox_id(&self) -> &str {
        &self.request.pod_sandbox_id
    }

    /// The container's name in its pod.
    pub fn name(&self) -> &str {
        self.request.config.as_ref().and_then(|c| c.metadata.as_ref()).map_or("", |m| m.name.as_str())
    }

    /// The container's attempt (kubelet's restart count).
    pub fn attempt(&self) -> u32 {
        self.request.config.as_ref().and_then(|c| c.metadata.as_ref()).map_or(0, |m| m.attempt)
    }
}

/// The key of a request not answered yet: sandbox, name and attempt, which the
/// runtime's container list also carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingKey {
    /// The sandbox id.
    pub sandbox: String,
    /// The container's name.
    pub name: String,
    /// Its attempt.
    pub attempt: u32,
}

impl PendingKey {
    /// The key of `request`.
    pub fn of(request: &CreateContainerRequest) -> Self {
        let meta = request.config.as_ref().and_then(|c| c.metadata.as_ref());
        Self {
            sandbox: request.pod_sandbox_id.clone(),
            name: meta.map_or_else(String::new, |m| m.name.clone()),
            attempt: meta.map_or(0, |m| m.attempt),
        }
    }

    fn file_name(&self) -> String {
        format!("{}_{}_{}.pb", safe(&self.sandbox), safe(&self.name), self.attempt)
    }
}

/// Keeps file names to one path component of plain characters.
fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

enum Op {
    Pending(PendingKey, Vec<u8>),
    Link(PendingKey, String),
    Put(String, Vec<u8>),
    DropPending(PendingKey),
    Remove(String),
    Flush(oneshot::Sender<()>),
}

/// The records, in memory and on disk.
#[derive(Debug)]
pub struct Store {
    dir: Option<PathBuf>,
    records: Mutex<HashMap<String, Arc<Record>>>,
    writer: Option<Mutex<std_mpsc::Sender<Op>>>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Pending(..) => "Pending",
            Op::Link(..) => "Link",
            Op::Put(..) => "Put",
            Op::DropPending(..) => "DropPending",
            Op::Remove(..) => "Remove",
            Op::Flush(..) => "Flush",
        })
    }
}

/// What was found on disk at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Requests written ahead whose answer was never linked.
    pub pending: Vec<(PendingKey, CreateContainerRequest)>,
    /// Files that could not be read or decoded (left in place, logged).
    pub unreadable: usize,
}

impl Store {
    /// Records in memory only (no state dir): lost with the process.
    pub fn in_memory() -> Self {
        Self { dir: None, records: Mutex::new(HashMap::new()), writer: None }
    }

    /// Opens (creating) `dir`, loads its records and starts the writer thread.
    ///
    /// # Errors
    /// The directories cannot be created or read.
    pub fn open(dir: &Path) -> io::Result<(Self, Loaded)> {
        for sub in ["containers", "pending", "journal"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mut loaded = Loaded::default();
        let mut records = HashMap::new();
        for entry in fs::read_dir(dir.join("containers"))? {
            let path = entry?.path();
            let Some(id) = record_id(&path) else { continue };
            match read_request(&path) {
                Ok(request) => {
                    records.insert(id, Arc::new(Record { request }));
                }
                Err(error) => {
                    warn!(path = %path.display(), %error, "unreadable container record; ignored");
                    loaded.unreadable += 1;
                }
            }
        }
        for entry in fs::read_dir(dir.join("pending"))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "pb") {
                continue;
            }
            match read_request(&path) {
                Ok(request) => loaded.pending.push((PendingKey::of(&request), request)),
                Err(error) => {
                    warn!(path = %path.display(), %error, "unreadable pending record; removed");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let (tx, rx) = std_mpsc::channel();
        let root = dir.to_path_buf();
        std::thread::Builder::new().name("record-writer".into()).spawn(move || writer(&root, &rx))?;
        let store =
            Self { dir: Some(dir.to_path_buf()), records: Mutex::new(records), writer: Some(Mutex::new(tx)) };
        Ok((store, loaded))
    }

    /// The state directory, if records are durable.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn send(&self, op: Op) {
        if let Some(w) = &self.writer
            && w.lock().unwrap_or_else(std::sync::PoisonError::into_inner).send(op).is_err()
        {
            warn!("the record writer has stopped; a record is not durable");
        }
    }

    /// Writes `request` ahead of the runtime's answer; returns its pending key.
    pub fn begin(&self, request: &CreateContainerRequest) -> PendingKey {
        self.begin_encoded(request, request.encode_to_vec())
    }

    /// As [`Store::begin`], with `encoded` the request's protobuf bytes as they came
    /// (no encoding again on the caller's path).
    pub fn begin_encoded(&self, request: &CreateContainerRequest, encoded: Vec<u8>) -> PendingKey {
        let key = PendingKey::of(request);
        self.send(Op::Pending(key.clone(), encoded));
        key
    }

    /// The runtime created the container `id` for the request written under `key`.
    pub fn created(&self, key: PendingKey, id: &str, request: CreateContainerRequest) -> Arc<Record> {
        let record = Arc::new(Record { request });
        if valid_id(id) {
            self.lock().insert(id.to_owned(), record.clone());
            self.send(Op::Link(key, id.to_owned()));
        } else {
            warn!(
                container.id = id,
                "the runtime answered with an id not usable as a file name; not recorded"
            );
            self.send(Op::DropPending(key));
        }
        record
    }

    /// The runtime refused the request written under `key`.
    pub fn abandon(&self, key: PendingKey) {
        self.send(Op::DropPending(key));
    }

    /// Records `request` for `id` (a recreate's or a rebuilt one), durably.
    pub fn put(&self, id: &str, request: CreateContainerRequest) -> Arc<Record> {
        let record = Arc::new(Record { request });
        if valid_id(id) {
            self.lock().insert(id.to_owned(), record.clone());
            self.send(Op::Put(id.to_owned(), record.request.encode_to_vec()));
        }
        record
    }

    /// The record of container `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Record>> {
        self.lock().get(id).cloned()
    }

    /// Forgets container `id` (removed from the runtime).
    pub fn remove(&self, id: &str) -> Option<Arc<Record>> {
        let removed = self.lock().remove(id);
        if removed.is_some() {
            self.send(Op::Remove(id.to_owned()));
        }
        removed
    }

    /// The ids recorded.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until everything queued so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Flush(tx));
        if self.writer.is_some() {
            let _ = rx.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Record>>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn record_id(path: &Path) -> Option<String> {
    if path.extension()? != "pb" {
        return None;
    }
    let id = path.file_stem()?.to_str()?;
    valid_id(id).then(|| id.to_owned())
}

fn read_request(path: &Path) -> io::Result<CreateContainerRequest> {
    let bytes = fs::read(path)?;
    CreateContainerRequest::decode(bytes.as_slice())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// fsyncs a directory, so renames and removals in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The writer thread: applies queued operations in order, and fsyncs the directories
/// once per batch.
fn writer(root: &Path, rx: &std_mpsc::Receiver<Op>) {
    let containers = root.join("containers");
    let pending = root.join("pending");
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut flushes = Vec::new();
        // the directories whose entries changed: only they need an fsync
        let (mut sync_containers, mut sync_pending) = (false, false);
        for op in batch {
            let result = match op {
                Op::Pending(key, bytes) => {
                    sync_pending = true;
                    write_durably(&pending.join(key.file_name()), &bytes)
                }
                Op::Link(key, id) => {
                    // the pending name left behind after a crash is harmless: it is
                    // matched to a container already recorded and dropped
                    sync_containers = true;
                    fs::rename(pending.join(key.file_name()), containers.join(format!("{id}.pb")))
                }
                Op::Put(id, bytes) => {
                    sync_containers = true;
                    write_durably(&containers.join(format!("{id}.pb")), &bytes)
                }
                Op::DropPending(key) => remove_if_present(&pending.join(key.file_name())),
                Op::Remove(id) => {
                    sync_containers = true;
                    remove_if_present(&containers.join(format!("{id}.pb")))
                }
                Op::Flush(done) => {
                    flushes.push(done);
                    Ok(())
                }
            };
            if let Err(error) = result {
                warn!(%error, dir = %root.display(), "writing a container record failed");
            }
        }
        for (dir, changed) in [(&containers, sync_containers), (&pending, sync_pending)] {
            if changed && let Err(error) = sync_dir(dir) {
                warn!(%error, dir = %dir.display(), "fsync of the records directory failed");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
    debug!("record writer stopped");
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use stevedore_proto::cri::{ContainerConfig, ContainerMetadata};

    use super::*;

    fn request(sandbox: &str, name: &str, attempt: u32) -> CreateContainerRequest {
        CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata { name: name.into(), attempt }),
                ..Default::default()
            }),
            sandbox_config: None,
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_removals_do_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, loaded) = Store::open(dir.path()).unwrap();
            assert!(loaded.pending.is_empty());
            let key = store.begin(&request("sb1", "app", 0));
            store.created(key, "c1", request("sb1", "app", 0));
            let key = store.begin(&request("sb1", "side", 0));
            store.created(key, "c2", request("sb1", "side", 0));
            let key = store.begin(&request("sb1", "bad", 0));
            store.abandon(key);
            store.remove("c2");
            store.flush().await;
        }
        let (store, loaded) = Store::open(dir.path()).unwrap();
        assert!(loaded.pending.is_empty());
        assert_eq!(store.ids(), vec!["c1".to_owned()]);
        assert_eq!(store.get("c1").unwrap().name(), "app");
        assert_eq!(fs::read_dir(dir.path().join("pending")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_request_never_answered_is_found_pending() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            store.begin(&request("sb1", "app", 3));
            store.flush().await;
        }
        let (_, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.pending.len(), 1);
        assert_eq!(loaded.pending[0].0, PendingKey { sandbox: "sb1".into(), name: "app".into(), attempt: 3 });
    }

    #[test]
    fn odd_ids_and_names_never_escape_the_directory() {
        assert!(!valid_id("../x"));
        assert!(!valid_id(""));
        assert!(valid_id("0123abcdef"));
        assert_eq!(safe("../a/b"), "..-a-b");
        let key = PendingKey { sandbox: "s/../x".into(), name: "a b".into(), attempt: 1 };
        assert!(!key.file_name().contains('/'));
    }

    #[tokio::test]
    async fn an_unreadable_record_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("containers")).unwrap();
        fs::write(dir.path().join("containers/abc.pb"), b"\xff\xff\xff").unwrap();
        let (store, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.unreadable, 1);
        assert!(store.is_empty());
    }
}
