//! How far a pull is, read from containerd's content store (its `content` gRPC
//! service on the same socket as CRI, in the `k8s.io` namespace): the writes under way
//! tell how many bytes of each blob have arrived, and the image's manifest tells which
//! blobs the image has and their sizes.
//!
//! CRI does not say which manifest a pull resolved to, so the manifest is found as the
//! one containerd fetched for this repository (its `containerd.io/distribution.source.*`
//! label) that lists a blob being written now. Until it is found (the first blob write
//! shows it) progress stays at 0; blobs already on the node count as done. Two pulls of
//! images of the same repository sharing the blob being written may be taken for each
//! other. A runtime without this service (not containerd) reports only 0, then 100.

use std::{collections::HashMap, path::Path, time::Duration};

use serde::Deserialize;
use stevedore_proto::{
    containerd::{
        CRI_NAMESPACE, NAMESPACE_HEADER,
        content::{
            InfoRequest, ListContentRequest, ListStatusesRequest, ReadContentRequest,
            content_client::ContentClient,
        },
    },
    image, uds,
};
use tokio::sync::watch;
use tonic::{Code, Status, metadata::MetadataValue, transport::Channel};
use tracing::debug;

/// A pull's progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the image's blobs on the node.
    pub bytes_done: u64,
    /// Bytes of all the image's blobs; 0 until the manifest is known.
    pub bytes_total: u64,
    /// 0 to 99 while the pull runs (100 is the answer's, not the content store's).
    pub percent: u32,
}

impl Progress {
    /// The progress of `done` of `total` bytes.
    pub fn of(done: u64, total: u64) -> Self {
        let percent =
            if total == 0 { 0 } else { (u128::from(done.min(total)) * 100 / u128::from(total)) as u32 };
        Self { bytes_done: done, bytes_total: total, percent: percent.min(99) }
    }
}

/// containerd's content service, polled while a pull runs.
#[derive(Clone, Debug)]
pub struct ProgressSource {
    client: ContentClient<Channel>,
    interval: Duration,
}

const GC_LAYER_LABEL: &str = "containerd.io/gc.ref.content.l.";
const SOURCE_LABEL: &str = "containerd.io/distribution.source.";

impl ProgressSource {
    /// The content service on the runtime's socket, polled every `interval`.
    pub fn new(runtime_socket: &Path, interval: Duration) -> Self {
        let client = ContentClient::new(uds::connect_lazy(runtime_socket))
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE);
        Self { client, interval }
    }

    fn request<T>(message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.metadata_mut().insert(NAMESPACE_HEADER, MetadataValue::from_static(CRI_NAMESPACE));
        req
    }

    /// Publishes the progress of the pull of `image` on `tx` until the runtime says it
    /// cannot tell; the caller stops it when the pull ends.
    pub async fn watch(&self, image: &str, tx: &watch::Sender<Progress>) {
        let Ok(reference) = image::parse(image) else { return };
        let host = reference.domain.rsplit_once(':').map_or(reference.domain.as_str(), |(h, _)| h);
        let source_label = format!("{SOURCE_LABEL}{host}");
        let mut blobs: Option<Vec<(String, u64)>> = None;
        let mut seen = Seen::default();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let active = match self.active().await {
                Ok(active) => active,
                Err(status) if matches!(status.code(), Code::Unimplemented | Code::NotFound) => {
                    debug!(%status, "the runtime has no content service; progress only at the end");
                    return;
                }
                Err(status) => {
                    debug!(%status, "reading the writes under way");
                    continue;
                }
            };
            if blobs.is_none() && !active.is_empty() {
                match self.find_manifest(&source_label, &reference.path, &active).await {
                    Ok(found) => blobs = found,
                    Err(status) => debug!(%status, "looking for the pull's manifest"),
                }
            }
            let Some(blobs) = &blobs else { continue };
            let (mut done, mut total) = (0u64, 0u64);
            for (digest, size) in blobs {
                total += size;
                let now = if seen.finished(digest, *size) {
                    *size
                } else if let Some(offset) = active.get(digest) {
                    *offset
                } else if self.committed(digest).await {
                    *size
                } else {
                    0
                };
                done += seen.record(digest, *size, now);
            }
            let progress = Progress::of(done, total);
            tx.send_if_modified(|current| {
                let changed = *current != progress;
                *current = progress;
                changed
            });
        }
    }

    /// Bytes written so far, by the digest each write under way will have.
    async fn active(&self) -> Result<HashMap<String, u64>, Status> {
        let statuses =
            self.client.clone().list_statuses(Self::request(ListStatusesRequest::default())).await?;
        Ok(statuses
            .into_inner()
            .statuses
            .into_iter()
            .filter_map(|s| {
                let digest = if s.expected.is_empty() {
                    s.r#ref.rsplit('/').next()?.split_once('-')?.1.to_owned()
                } else {
                    s.expected
                };
                Some((digest, u64::try_from(s.offset).unwrap_or(0)))
            })
            .collect())
    }

    async fn committed(&self, digest: &str) -> bool {
        let req = Self::request(InfoRequest { digest: digest.to_owned() });
        self.client.clone().info(req).await.is_ok()
    }

    /// The blobs (config and layers, with sizes) of the manifest of `repository` that
    /// lists a blob being written now.
    async fn find_manifest(
        &self,
        source_label: &str,
        repository: &str,
        active: &HashMap<String, u64>,
    ) -> Result<Option<Vec<(String, u64)>>, Status> {
        let filter = format!("labels.\"{source_label}\"");
        let mut list = self
            .client
            .clone()
            .list(Self::request(ListContentRequest { filters: vec![filter] }))
            .await?
            .into_inner();
        let mut candidate = None;
        while let Some(chunk) = list.message().await? {
            for info in chunk.info {
                let of_repository = info
                    .labels
                    .get(source_label)
                    .is_some_and(|repos| repos.split(',').any(|r| r == repository));
                let lists_active =
                    info.labels.iter().any(|(k, v)| k.starts_with(GC_LAYER_LABEL) && active.contains_key(v));
                if of_repository && lists_active {
                    candidate = Some(info.digest);
                }
            }
        }
        let Some(digest) = candidate else { return Ok(None) };
        let bytes = self.read(&digest).await?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Status::internal(format!("manifest {digest} does not parse: {e}")))?;
        let mut blobs = vec![(manifest.config.digest, manifest.config.size)];
        blobs.extend(manifest.layers.into_iter().map(|l| (l.digest, l.size)));
        Ok(Some(blobs))
    }

    async fn read(&self, digest: &str) -> Result<Vec<u8>, Status> {
        let req = Self::request(ReadContentRequest { digest: digest.to_owned(), offset: 0, size: 0 });
        let mut stream = self.client.clone().read(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await? {
            out.extend_from_slice(&chunk.data);
            if out.len() > 4 << 20 {
                return Err(Status::out_of_range(format!("manifest {digest} is over 4 MiB")));
            }
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
}

/// The most of each blob seen written. A blob between the end of its write and its
/// commit shows in neither the writes under way nor the content store for a moment
/// (a pull's progress once fell from 82.9 MB to 43.0 MB of 85.0 MB there): counting
/// the most seen keeps progress from going back.
#[derive(Debug, Default)]
struct Seen(HashMap<String, u64>);

impl Seen {
    /// Whether all `size` bytes of `digest` were seen.
    fn finished(&self, digest: &str, size: u64) -> bool {
        self.0.get(digest).is_some_and(|s| *s >= size)
    }

    /// Records `now` bytes of `digest` (of `size`) seen; returns the most seen.
    fn record(&mut self, digest: &str, size: u64, now: u64) -> u64 {
        let most = self.0.entry(digest.to_owned()).or_default();
        *most = (*most).max(now.min(size));
        *most
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_between_write_and_commit_keeps_its_bytes() {
        let mut seen = Seen::default();
        assert_eq!(seen.record("sha256:a", 100, 40), 40);
        assert_eq!(seen.record("sha256:a", 100, 0), 40, "in neither list for a moment");
        assert!(!seen.finished("sha256:a", 100));
        assert_eq!(seen.record("sha256:a", 100, 250), 100, "never more than its size");
        assert!(seen.finished("sha256:a", 100));
        assert_eq!(seen.record("sha256:b", 10, 0), 0);
    }

    #[test]
    fn percent_stays_below_100_while_running() {
        assert_eq!(Progress::of(0, 0).percent, 0);
        assert_eq!(Progress::of(50, 200).percent, 25);
        assert_eq!(Progress::of(200, 200).percent, 99);
        assert_eq!(Progress::of(300, 200).percent, 99);
        assert_eq!(Progress::of(u64::MAX, u64::MAX).percent, 99);
    }
}
