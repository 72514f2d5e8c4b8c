//! What the node-local controllers ([`super::daemon_set`], [`super::broadcast_job`])
//! share: an agent's report counts only while it is fresh, and a workload's permits
//! are written as one merge patch of its own key per node.

use std::time::Duration;

use futures_util::{StreamExt as _, stream};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use stevedore_proto::crd::node_state::{NodeState, NodeStateStatus};

/// Permit writes in flight at once.
const WRITES_IN_FLIGHT: usize = 32;

/// Reads agents' reports as of one instant, and remembers when the first of those
/// still fresh goes stale.
#[derive(Debug)]
pub struct Freshness {
    now: Timestamp,
    silence: Duration,
    next: Option<Duration>,
}

impl Freshness {
    /// Reports as of now; older than `silence`, a report is its silent agent's.
    pub fn new(silence: Duration) -> Self {
        Self { now: Timestamp::now(), silence, next: None }
    }

    /// The node's report, if its agent wrote it within the silence limit.
    pub fn report<'a>(&mut self, state: Option<&'a NodeState>) -> Option<&'a NodeStateStatus> {
        let st = state?.status.as_ref()?;
        // a heartbeat ahead of this clock is as young as can be
        let age = Duration::try_from(self.now.duration_since(st.heartbeat_time.as_ref()?.0))
            .unwrap_or(Duration::ZERO);
        let left = self.silence.checked_sub(age).filter(|l| !l.is_zero())?;
        self.next = Some(self.next.map_or(left, |n| n.min(left)));
        Some(st)
    }

    /// When the first fresh report read goes stale.
    pub fn next(&self) -> Option<Duration> {
        self.next
    }
}

/// Merge-patches each `(node, body)` into that node's NodeState; a NodeState gone
/// meanwhile is skipped.
///
/// # Errors
/// The first refusal other than not found.
pub async fn patch_specs(
    client: &Client,
    writes: Vec<(String, serde_json::Value)>,
) -> Result<(), kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    let results: Vec<Result<(), kube::Error>> = stream::iter(writes)
        .map(|(node, body)| {
            let api = api.clone();
            async move {
                match api.patch(&node, &PatchParams::default(), &Patch::Merge(&body)).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn state(age: Option<u64>) -> NodeState {
        let mut s = NodeState::new("n", Default::default());
        s.status = Some(NodeStateStatus {
            heartbeat_time: age.map(|a| Time(Timestamp::now() - Duration::from_secs(a))),
            ..Default::default()
        });
        s
    }

    #[test]
    fn only_fresh_reports_count() {
        let (young, old, none) = (state(Some(10)), state(Some(40)), state(None));
        let mut f = Freshness::new(Duration::from_secs(30));
        assert!(f.report(Some(&old)).is_none());
        assert!(f.report(Some(&none)).is_none(), "no heartbeat yet");
        assert!(f.report(None).is_none());
        assert_eq!(f.next(), None);
        assert!(f.report(Some(&young)).is_some());
        let left = f.next().unwrap();
        assert!(left <= Duration::from_secs(20) && left > Duration::from_secs(15), "{left:?}");
        let mut ahead = state(None);
        ahead.status.as_mut().unwrap().heartbeat_time = Some(Time(Timestamp::now() + Duration::from_secs(5)));
        assert!(f.report(Some(&ahead)).is_some(), "a clock ahead is fresh");
    }
}
