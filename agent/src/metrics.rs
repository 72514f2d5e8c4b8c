//! The agent's Prometheus metrics.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use stevedore_proto::crd::node_image::ImagePullPhase;

/// Pull duration buckets, seconds.
const BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Counters and a histogram, rendered as Prometheus text.
#[derive(Debug, Default)]
pub struct Metrics {
    succeeded: AtomicU64,
    failed: AtomicU64,
    stopped: AtomicU64,
    in_flight: AtomicI64,
    status_ok: AtomicU64,
    status_err: AtomicU64,
    durations: Mutex<(Vec<u64>, f64)>,
    metadata_env: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Container recreates by (mode, result).
    recreates: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    crr_completed: AtomicU64,
    crr_status_ok: AtomicU64,
    crr_status_err: AtomicU64,
}

impl Metrics {
    /// A worker started.
    pub fn pull_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker ended: succeeded, failed, or stopped (`None`).
    pub fn pull_finished(&self, phase: Option<ImagePullPhase>, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match phase {
            Some(ImagePullPhase::Succeeded) => &self.succeeded,
            Some(_) => &self.failed,
            None => &self.stopped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if phase.is_some() {
            let secs = took.as_secs_f64();
            let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
            if d.0.is_empty() {
                d.0 = vec![0; BOUNDS.len() + 1];
            }
            let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
            d.0[i] += 1;
            d.1 += secs;
        }
    }

    /// A container recreated (`mode` proxy or kubelet) for changed metadata env.
    pub fn metadata_env_recreate(&self, mode: &'static str, result: &'static str) {
        *self.metadata_env.lock().unwrap_or_else(|e| e.into_inner()).entry((mode, result)).or_default() += 1;
    }

    /// A NodeImage status write, successful or not.
    pub fn status_written(&self, ok: bool) {
        if ok { &self.status_ok } else { &self.status_err }.fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A container was recreated (or the attempt failed) along `mode`'s path.
    pub fn container_recreated(&self, mode: &'static str, ok: bool) {
        let result = if ok { "succeeded" } else { "failed" };
        *self.recreates.lock().unwrap_or_else(|e| e.into_inner()).entry((mode, result)).or_default() += 1;
    }

    /// The agent completed a ContainerRecreateRequest.
    pub fn crr_completed(&self) {
        self.crr_completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A ContainerRecreateRequest status write, successful or not.
    pub fn crr_status_written(&self, ok: bool) {
        if ok { &self.crr_status_ok } else { &self.crr_status_err }.fetch_add(1, Ordering::Relaxed);
    }
}

impl stevedore_proto::admin::Metrics for Metrics {
    fn render(&self) -> String {
        let mut out = String::new();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP stevedore_agent_image_pulls_total Image pulls finished, by result.");
        let _ = writeln!(out, "# TYPE stevedore_agent_image_pulls_total counter");
        for (r, c) in [("succeeded", &self.succeeded), ("failed", &self.failed), ("stopped", &self.stopped)] {
            let _ = writeln!(out, "stevedore_agent_image_pulls_total{{result=\"{r}\"}} {}", l(c));
        }
        let _ =
            writeln!(out, "# HELP stevedore_agent_image_pulls_in_flight Image pulls waiting or under way.");
        let _ = writeln!(out, "# TYPE stevedore_agent_image_pulls_in_flight gauge");
        let _ =
            writeln!(out, "stevedore_agent_image_pulls_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP stevedore_agent_image_pull_duration_seconds Time from a pull's start to its end."
        );
        let _ = writeln!(out, "# TYPE stevedore_agent_image_pull_duration_seconds histogram");
        let (counts, sum) = self.durations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let counts = if counts.is_empty() { vec![0; BOUNDS.len() + 1] } else { counts };
        stevedore_proto::admin::histogram_lines(
            "stevedore_agent_image_pull_duration_seconds",
            "",
            BOUNDS,
            &counts,
            sum,
            &mut out,
        );
        let _ =
            writeln!(out, "# HELP stevedore_agent_status_writes_total NodeImage status writes, by result.");
        let _ = writeln!(out, "# TYPE stevedore_agent_status_writes_total counter");
        let _ = writeln!(out, "stevedore_agent_status_writes_total{{result=\"ok\"}} {}", l(&self.status_ok));
        let _ =
            writeln!(out, "stevedore_agent_status_writes_total{{result=\"error\"}} {}", l(&self.status_err));
        let _ = writeln!(
            out,
            "# HELP stevedore_agent_metadata_env_recreates_total Containers recreated because a pod label or annotation their env reads changed."
        );
        let _ = writeln!(out, "# TYPE stevedore_agent_metadata_env_recreates_total counter");
        for ((mode, result), n) in self.metadata_env.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stevedore_agent_metadata_env_recreates_total{{mode=\"{mode}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stevedore_agent_container_recreates_total Containers recreated for ContainerRecreateRequests, by the path used (proxy or kubelet) and result."
        );
        let _ = writeln!(out, "# TYPE stevedore_agent_container_recreates_total counter");
        let recreates = self.recreates.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for mode in ["proxy", "kubelet"] {
            for result in ["succeeded", "failed"] {
                let n = recreates.get(&(mode, result)).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "stevedore_agent_container_recreates_total{{mode=\"{mode}\",result=\"{result}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP stevedore_agent_crr_completed_total ContainerRecreateRequests the agent completed."
        );
        let _ = writeln!(out, "# TYPE stevedore_agent_crr_completed_total counter");
        let _ = writeln!(out, "stevedore_agent_crr_completed_total {}", l(&self.crr_completed));
        let _ = writeln!(
            out,
            "# HELP stevedore_agent_crr_status_writes_total ContainerRecreateRequest status writes, by result (error includes conflicts)."
        );
        let _ = writeln!(out, "# TYPE stevedore_agent_crr_status_writes_total counter");
        let _ = writeln!(
            out,
            "stevedore_agent_crr_status_writes_total{{result=\"ok\"}} {}",
            l(&self.crr_status_ok)
        );
        let _ = writeln!(
            out,
            "stevedore_agent_crr_status_writes_total{{result=\"error\"}} {}",
            l(&self.crr_status_err)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use stevedore_proto::admin::Metrics as _;

    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.pull_started();
        m.pull_finished(Some(ImagePullPhase::Succeeded), Duration::from_millis(700));
        m.pull_started();
        m.status_written(true);
        let text = m.render();
        assert!(text.contains("stevedore_agent_image_pulls_total{result=\"succeeded\"} 1"), "{text}");
        assert!(text.contains("stevedore_agent_image_pulls_in_flight 1"), "{text}");
        assert!(text.contains("stevedore_agent_image_pull_duration_seconds_bucket{le=\"1\"} 1"), "{text}");
        assert!(text.contains("stevedore_agent_status_writes_total{result=\"ok\"} 1"), "{text}");
        m.container_recreated("kubelet", true);
        let text = m.render();
        assert!(
            text.contains(
                "stevedore_agent_container_recreates_total{mode=\"kubelet\",result=\"succeeded\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("stevedore_agent_container_recreates_total{mode=\"proxy\",result=\"failed\"} 0"),
            "{text}"
        );
    }
}
