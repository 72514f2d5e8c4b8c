//! The CloneSet rollout benchmark on one real-containerd node (the whole local
//! [`Stack`]: the real proxy, the real controller, the simulated kubelet and
//! scheduler): a CloneSet of N replicas of `app:v1` rolled to a new image with
//! `updateStrategy.type: InPlaceIfPossible` against a second CloneSet rolled with
//! `ReCreate`, same run, timed from the patch until the status shows every replica
//! updated and ready (`observedGeneration` current, `replicas`, `readyReplicas`,
//! `updatedReplicas` and `updatedReadyReplicas` all N).
//!
//! Each image is measured four ways: ReCreate with the image absent (removed from
//! containerd first, so every new pod pulls it), in place with the image absent, in
//! place with the image pre-downloaded (pulled through CRI before the patch, as the
//! CloneSet's image pre-download leaves it), and ReCreate with the image present. Both
//! sets use the same `maxUnavailable` (100% by default, so the strategy, not the
//! budget, is what is compared; OpenKruise's default of 20% too when asked).

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use stevedore_proto::{
    crd::clone_set::CloneSet,
    cri::{ImageSpec, ImageStatusRequest, PullImageRequest, RemoveImageRequest},
};
use tokio::time::Instant;

use crate::{
    cri::{ImageClient, connect, image_client},
    stack::{Stack, StackOptions},
};

const NS: &str = "bench";
/// How long one rollout may take before the benchmark gives up.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(300);
/// How often the status is read while a rollout runs.
const POLL: Duration = Duration::from_millis(25);

/// How much the CloneSet benchmark does.
#[derive(Clone, Debug)]
pub struct CloneSetCounts {
    /// Replicas of each CloneSet.
    pub replicas: usize,
    /// The `maxUnavailable` budgets to measure, each a full round.
    pub budgets: Vec<String>,
    /// Also roll to the ~80 MB `big:v1` (else only to the small `app:v2`).
    pub big: bool,
}

impl CloneSetCounts {
    /// The figures for the closing note.
    pub fn full(replicas: usize) -> Self {
        Self { replicas, budgets: vec!["100%".into(), "20%".into()], big: true }
    }

    /// Two replicas, the small image, one budget, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { replicas: 2, budgets: vec!["100%".into()], big: false }
    }
}

/// How a rollout was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `ReCreate`, the new image absent from the node: the baseline.
    ReCreateAbsent,
    /// `InPlaceIfPossible`, the new image absent from the node.
    InPlaceAbsent,
    /// `InPlaceIfPossible`, the new image pulled before the patch.
    InPlacePreDownloaded,
    /// `ReCreate`, the new image already on the node.
    ReCreatePresent,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::ReCreateAbsent => "ReCreate, image absent (baseline)",
            Variant::InPlaceAbsent => "in place, image absent",
            Variant::InPlacePreDownloaded => "in place, image pre-downloaded",
            Variant::ReCreatePresent => "ReCreate, image present",
        }
    }
}

/// One timed rollout.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// The image rolled to (its short name).
    pub image: String,
    /// The sets' `maxUnavailable`.
    pub budget: String,
    /// How.
    pub variant: Variant,
    /// From the patch to all replicas updated and ready.
    pub took: Duration,
    /// The CRI pull made before the patch, for a pre-downloaded variant.
    pub pre_pull: Option<Duration>,
}

/// What the run measured.
#[derive(Clone, Debug, Default)]
pub struct CloneSetFigures {
    /// Replicas of each set.
    pub replicas: usize,
    /// Every rollout, in the order run.
    pub rollouts: Vec<Rollout>,
}

fn clone_set(
    name: &str,
    image: &str,
    replicas: usize,
    strategy: &str,
    budget: &str,
) -> anyhow::Result<CloneSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]}
            },
            "updateStrategy": {"type": strategy, "maxUnavailable": budget}
        }
    }))?)
}

/// Whether the set's status shows `replicas` replicas, all of the current
/// generation's revision and ready.
pub fn settled(cs: &CloneSet, replicas: usize) -> bool {
    let Some(s) = cs.status.as_ref() else { return false };
    let n = i32::try_from(replicas).unwrap_or(i32::MAX);
    s.observed_generation.is_some()
        && s.observed_generation == cs.metadata.generation
        && s.replicas == n
        && s.ready_replicas == n
        && s.updated_replicas == n
        && s.updated_ready_replicas == n
}

/// Polls the set every 25 ms until [`settled`]; returns when it was seen so.
async fn wait_settled(
    sets: &Api<CloneSet>,
    name: &str,
    replicas: usize,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        let cs = sets.get(name).await?;
        if settled(&cs, replicas) {
            return Ok(Instant::now());
        }
        if start.elapsed() > limit {
            anyhow::bail!(
                "{name}: not {replicas} updated and ready within {limit:?}; status: {}",
                serde_json::to_string(&cs.status)?
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Replaces the set's container image (a JSON patch, so nothing else of the template
/// changes) and times the rollout.
async fn roll(sets: &Api<CloneSet>, name: &str, image: &str, replicas: usize) -> anyhow::Result<Duration> {
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}
    ]))?;
    let t = Instant::now();
    sets.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    let done = wait_settled(sets, name, replicas, ROLLOUT_LIMIT).await?;
    Ok(done.saturating_duration_since(t))
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec { image: image.to_owned(), ..Default::default() })
}

/// Removes `image` from containerd (straight on its socket), and checks it is gone.
async fn remove_image(img: &mut ImageClient, image: &str) -> anyhow::Result<()> {
    img.remove_image(RemoveImageRequest { image: spec(image) })
        .await
        .with_context(|| format!("RemoveImage {image}"))?;
    let left =
        img.image_status(ImageStatusRequest { image: spec(image), ..Default::default() }).await?.into_inner();
    anyhow::ensure!(left.image.is_none(), "{image} still present after RemoveImage");
    Ok(())
}

/// Pulls `image` straight on containerd; returns how long it took.
async fn pull_image(img: &mut ImageClient, image: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    img.pull_image(PullImageRequest { image: spec(image), ..Default::default() })
        .await
        .with_context(|| format!("PullImage {image}"))?;
    Ok(t.elapsed())
}

/// Scales the set to 0, waits for its pods to go, and deletes it.
async fn remove_set(stack: &Stack, sets: &Api<CloneSet>, name: &str) -> anyhow::Result<()> {
    sets.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 0}}))).await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(stack.client.clone(), NS);
    let lp = ListParams::default().labels(&format!("app={name}"));
    crate::wait::until(&format!("{name}'s pods gone"), ROLLOUT_LIMIT, async || {
        Ok(pods.list_metadata(&lp).await?.items.is_empty().then_some(()))
    })
    .await?;
    sets.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// Runs the benchmark on a stack of its own (one node).
///
/// # Errors
/// A part fails to start, an image cannot be removed or pulled, or a rollout does not
/// finish within five minutes.
pub async fn run(counts: CloneSetCounts) -> anyhow::Result<CloneSetFigures> {
    let stack = Stack::start(StackOptions { namespaces: vec![NS.into()], ..StackOptions::default() }).await?;
    let result = rounds(&stack, &counts).await;
    let result = match result {
        Ok(f) => Ok(f),
        Err(e) => Err(e.context(format!("controller log:\n{}", stack.controller.log_tail(30)))),
    };
    stack.stop().await;
    result
}

async fn rounds(stack: &Stack, counts: &CloneSetCounts) -> anyhow::Result<CloneSetFigures> {
    let sets: Api<CloneSet> = Api::namespaced(stack.client.clone(), NS);
    let mut img = image_client(connect(stack.bed.containerd_socket()).await?);
    let v1 = stack.bed.image("app:v1");
    let n = counts.replicas;
    let mut images = Vec::new();
    if counts.big {
        images.push("big:v1");
    }
    images.push("app:v2");
    let mut figures = CloneSetFigures { replicas: n, rollouts: Vec::new() };
    for (k, budget) in counts.budgets.iter().enumerate() {
        for (j, short) in images.iter().enumerate() {
            let image = stack.bed.image(short);
            let (inplace, recreate) = (format!("inplace-{k}-{j}"), format!("recreate-{k}-{j}"));
            for (name, strategy) in [(&inplace, "InPlaceIfPossible"), (&recreate, "ReCreate")] {
                sets.create(&PostParams::default(), &clone_set(name, &v1, n, strategy, budget)?).await?;
            }
            for name in [&inplace, &recreate] {
                wait_settled(&sets, name, n, ROLLOUT_LIMIT).await?;
            }
            let mut push = |variant, took, pre_pull| {
                figures.rollouts.push(Rollout {
                    image: (*short).to_owned(),
                    budget: budget.clone(),
                    variant,
                    took,
                    pre_pull,
                });
            };
            // ReCreate, the image absent; then back to v1 (not timed).
            remove_image(&mut img, &image).await?;
            push(Variant::ReCreateAbsent, roll(&sets, &recreate, &image, n).await?, None);
            roll(&sets, &recreate, &v1, n).await?;
            // in place, the image absent; then back to v1.
            remove_image(&mut img, &image).await?;
            push(Variant::InPlaceAbsent, roll(&sets, &inplace, &image, n).await?, None);
            roll(&sets, &inplace, &v1, n).await?;
            // in place, the image pulled first.
            remove_image(&mut img, &image).await?;
            let pulled = pull_image(&mut img, &image).await?;
            push(Variant::InPlacePreDownloaded, roll(&sets, &inplace, &image, n).await?, Some(pulled));
            // ReCreate with the image present.
            push(Variant::ReCreatePresent, roll(&sets, &recreate, &image, n).await?, None);
            for name in [&inplace, &recreate] {
                remove_set(stack, &sets, name).await?;
            }
        }
    }
    Ok(figures)
}

/// The figures side by side, per image and budget, with each variant's speed-up over
/// the ReCreate baseline and the target's verdict.
pub fn report(f: &CloneSetFigures) -> String {
    let mut out = format!(
        "\n== CloneSet rollout, {} replicas on one real-containerd node (patch -> all updated and ready)\n",
        f.replicas
    );
    let _ = writeln!(
        out,
        "  both sets get the same maxUnavailable, so the update strategy, not the budget, is compared;\n  \
         terminationGracePeriodSeconds 1; the kubelet simulator reports status every 300 ms"
    );
    let mut groups: Vec<(String, String)> = Vec::new();
    for r in &f.rollouts {
        let key = (r.image.clone(), r.budget.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (image, budget) in groups {
        let rows: Vec<&Rollout> =
            f.rollouts.iter().filter(|r| r.image == image && r.budget == budget).collect();
        let get = |v: Variant| rows.iter().find(|r| r.variant == v).map(|r| r.took);
        let base = get(Variant::ReCreateAbsent).unwrap_or_default().as_secs_f64();
        let _ = writeln!(out, "  -- to {image}, maxUnavailable {budget}");
        let _ = writeln!(out, "  {:<36} {:>9} {:>18}", "variant", "time", "ReCreate / this");
        for r in &rows {
            let pre = r.pre_pull.map(|p| format!("   (pre-download pull took {:.2} s)", p.as_secs_f64()));
            let _ = writeln!(
                out,
                "  {:<36} {:>7.2} s {:>17.2}x{}",
                r.variant.label(),
                r.took.as_secs_f64(),
                base / r.took.as_secs_f64().max(1e-9),
                pre.unwrap_or_default()
            );
        }
        if let (Some(ours), Some(present)) =
            (get(Variant::InPlacePreDownloaded), get(Variant::ReCreatePresent))
        {
            let ratio = base / ours.as_secs_f64().max(1e-9);
            let verdict = if ratio >= 5.0 { "met" } else { "MISSED" };
            let _ = writeln!(
                out,
                "  in place (pre-downloaded) vs ReCreate (image absent): x{ratio:.2} (target >= 5: {verdict}); \
                 vs ReCreate with the image present: x{:.2}",
                present.as_secs_f64() / ours.as_secs_f64().max(1e-9)
            );
        }
        if let Some(cold) = get(Variant::InPlaceAbsent) {
            let ratio = base / cold.as_secs_f64().max(1e-9);
            let verdict = if ratio >= 5.0 { "met" } else { "MISSED" };
            let _ = writeln!(
                out,
                "  in place vs ReCreate, both pulling the image: x{ratio:.2} (target >= 5: {verdict})"
            );
        }
    }
    out
}
