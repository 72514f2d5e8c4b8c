//! Prometheus metrics: calls per method, errors per method and code, a latency
//! histogram per method, in-flight calls and runtime connections. Counters are plain
//! atomics looked up by the call's path without allocating, so recording costs the
//! forwarding path a few nanoseconds.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::Code;

/// Upper bounds of the latency buckets, in seconds: from a cached `Version` (tens of
/// microseconds) to an image pull of minutes.
const BUCKETS: [f64; 20] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Distinct paths tracked before further unknown ones are counted together, so a
/// misbehaving client cannot grow the label set without bound.
const MAX_METHODS: usize = 512;
/// The label for paths past [`MAX_METHODS`].
const OVERFLOW: &str = "other";

/// Counters of one gRPC method.
#[derive(Debug)]
pub struct MethodStats {
    calls: AtomicU64,
    codes: [AtomicU64; 17],
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
}

impl MethodStats {
    fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one finished call.
    pub fn record(&self, code: Code, elapsed: Duration) {
        self.calls.fetch_add(1, Relaxed);
        let idx = usize::try_from(code as i32).unwrap_or(2).min(16);
        self.codes[idx].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&le| secs <= le) {
            self.buckets[b].fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Calls finished with `code`.
    pub fn count(&self, code: Code) -> u64 {
        self.codes[(code as i32).clamp(0, 16) as usize].load(Relaxed)
    }
}

/// All of the proxy's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    methods: RwLock<HashMap<Box<str>, Arc<MethodStats>>>,
    inflight: AtomicI64,
    connects_ok: AtomicU64,
    connects_failed: AtomicU64,
    pulls_started: AtomicU64,
    pulls_joined: AtomicU64,
    /// Recreates by outcome: recreated, stopped (no record), failed.
    recreates: [AtomicU64; 3],
}

/// How a `RecreateContainer` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecreateResult {
    /// Recreated from the record.
    Recreated = 0,
    /// No record: stopped for kubelet to restart.
    Stopped = 1,
    /// Refused or failed.
    Failed = 2,
}

impl Metrics {
    /// Records an image pull: started here, or joined to one under way.
    pub fn pull(&self, joined: bool) {
        if joined { &self.pulls_joined } else { &self.pulls_started }.fetch_add(1, Relaxed);
    }

    /// Records how a `RecreateContainer` ended.
    pub fn recreate(&self, result: RecreateResult) {
        self.recreates[result as usize].fetch_add(1, Relaxed);
    }

    /// Image pulls started and joined so far.
    pub fn pulls(&self) -> (u64, u64) {
        (self.pulls_started.load(Relaxed), self.pulls_joined.load(Relaxed))
    }

    /// The counters of the method at `path`, created on first use.
    pub fn method(&self, path: &str) -> Arc<MethodStats> {
        if let Some(s) = self.methods.read().unwrap_or_else(|e| e.into_inner()).get(path) {
            return s.clone();
        }
        let mut map = self.methods.write().unwrap_or_else(|e| e.into_inner());
        let key = if map.len() >= MAX_METHODS && !map.contains_key(path) { OVERFLOW } else { path };
        map.entry(key.into()).or_insert_with(|| Arc::new(MethodStats::new())).clone()
    }

    /// Calls in flight now.
    pub fn inflight(&self) -> i64 {
        self.inflight.load(Relaxed)
    }

    /// Records a connection attempt to the runtime.
    pub fn connect(&self, ok: bool) {
        if ok { &self.connects_ok } else { &self.connects_failed }.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let map = self.methods.read().unwrap_or_else(|e| e.into_inner());
        let mut methods: Vec<_> = map.iter().collect();
        methods.sort_by(|a, b| a.0.cmp(b.0));
        header(&mut out, "calls_total", "counter", "CRI calls proxied, by method.");
        for (m, s) in &methods {
            let _ = writeln!(
                out,
                "stevedore_cri_proxy_calls_total{{method=\"{}\"}} {}",
                label(m),
                s.calls.load(Relaxed)
            );
        }
        header(
            &mut out,
            "call_errors_total",
            "counter",
            "CRI calls that ended with a non-OK status, by method and code.",
        );
        for (m, s) in &methods {
            for (i, c) in s.codes.iter().enumerate().skip(1) {
                let n = c.load(Relaxed);
                if n > 0 {
                    let code = format!("{:?}", Code::from_i32(i as i32));
                    let _ = writeln!(
                        out,
                        "stevedore_cri_proxy_call_errors_total{{method=\"{}\",code=\"{code}\"}} {n}",
                        label(m)
                    );
                }
            }
        }
        header(
            &mut out,
            "call_duration_seconds",
            "histogram",
            "Time from receiving a call to its last byte, by method.",
        );
        for (m, s) in &methods {
            let m = label(m);
            let mut cumulative = 0;
            for (le, b) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += b.load(Relaxed);
                let _ = writeln!(
                    out,
                    "stevedore_cri_proxy_call_duration_seconds_bucket{{method=\"{m}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = s.calls.load(Relaxed);
            let sum = s.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "stevedore_cri_proxy_call_duration_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "stevedore_cri_proxy_call_duration_seconds_sum{{method=\"{m}\"}} {sum}");
            let _ =
                writeln!(out, "stevedore_cri_proxy_call_duration_seconds_count{{method=\"{m}\"}} {count}");
        }
        header(&mut out, "inflight_calls", "gauge", "CRI calls being proxied now.");
        let _ = writeln!(out, "stevedore_cri_proxy_inflight_calls {}", self.inflight());
        header(
            &mut out,
            "runtime_connects_total",
            "counter",
            "Connection attempts to the runtime socket, by result.",
        );
        let _ = writeln!(
            out,
            "stevedore_cri_proxy_runtime_connects_total{{result=\"ok\"}} {}",
            self.connects_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "stevedore_cri_proxy_runtime_connects_total{{result=\"error\"}} {}",
            self.connects_failed.load(Relaxed)
        );
        header(
            &mut out,
            "image_pulls_total",
            "counter",
            "Image pulls asked of the proxy (CRI and control API), by whether they started a pull or joined one under way.",
        );
        let _ = writeln!(
            out,
            "stevedore_cri_proxy_image_pulls_total{{result=\"started\"}} {}",
            self.pulls_started.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "stevedore_cri_proxy_image_pulls_total{{result=\"joined\"}} {}",
            self.pulls_joined.load(Relaxed)
        );
        header(
            &mut out,
            "container_recreates_total",
            "counter",
            "RecreateContainer calls on the control API, by result: recreated from the record, stopped for kubelet (no record), or failed.",
        );
        for (name, i) in [("recreated", 0), ("stopped", 1), ("failed", 2)] {
            let _ = writeln!(
                out,
                "stevedore_cri_proxy_container_recreates_total{{result=\"{name}\"}} {}",
                self.recreates[i].load(Relaxed)
            );
        }
        out
    }
}

impl stevedore_proto::admin::Metrics for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
}

/// One call being proxied: counted as in flight until finished or dropped; a call
/// dropped before its status was seen (the caller went away) counts as `Cancelled`.
#[derive(Debug)]
pub struct Call {
    metrics: Arc<Metrics>,
    stats: Arc<MethodStats>,
    start: Instant,
    finished: bool,
}

impl Call {
    /// Starts timing a call to `path`.
    pub fn begin(metrics: &Arc<Metrics>, path: &str) -> Self {
        metrics.inflight.fetch_add(1, Relaxed);
        Self { stats: metrics.method(path), metrics: metrics.clone(), start: Instant::now(), finished: false }
    }

    /// The call ended with `code`.
    pub fn finish(mut self, code: Code) {
        self.finished = true;
        self.stats.record(code, self.start.elapsed());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.record(Code::Cancelled, self.start.elapsed());
        }
        self.metrics.inflight.fetch_sub(1, Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP stevedore_cri_proxy_{name} {help}");
    let _ = writeln!(out, "# TYPE stevedore_cri_proxy_{name} {kind}");
}

/// A label value: the path without its leading slash, with `\`, `"` and newlines escaped.
fn label(path: &str) -> String {
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut s = String::with_capacity(path.len());
    for ch in path.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_latency_are_exposed() {
        let m = Metrics::default();
        let v = m.method("/runtime.v1.RuntimeService/Version");
        v.record(Code::Ok, Duration::from_micros(40));
        v.record(Code::Unavailable, Duration::from_millis(3));
        m.connect(true);
        let text = m.render();
        assert!(
            text.contains("stevedore_cri_proxy_calls_total{method=\"runtime.v1.RuntimeService/Version\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "call_errors_total{method=\"runtime.v1.RuntimeService/Version\",code=\"Unavailable\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.00005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("runtime_connects_total{result=\"ok\"} 1"), "{text}");
        assert_eq!(v.count(Code::Ok), 1);
    }

    #[test]
    fn unknown_paths_are_capped_and_escaped() {
        let m = Metrics::default();
        for i in 0..MAX_METHODS + 10 {
            m.method(&format!("/x.Svc/M{i}")).record(Code::Ok, Duration::ZERO);
        }
        assert_eq!(m.methods.read().unwrap().len(), MAX_METHODS + 1);
        assert_eq!(m.method("/y.Svc/New").calls.load(Relaxed), 10);
        assert_eq!(label("/a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn calls_are_in_flight_until_finished_and_dropped_calls_count_as_cancelled() {
        let m = Arc::new(Metrics::default());
        let path = "/runtime.v1.RuntimeService/ListContainers";
        let call = Call::begin(&m, path);
        assert_eq!(m.inflight(), 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        call.finish(Code::Ok);
        assert_eq!(m.inflight(), 0);
        drop(Call::begin(&m, path));
        let stats = m.method(path);
        assert_eq!((stats.count(Code::Ok), stats.count(Code::Cancelled)), (1, 1));
        // the paused clock moved exactly 30 ms during the first call; the second took 0
        let text = m.render();
        assert!(text.contains("le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2"), "{text}");
    }
}
