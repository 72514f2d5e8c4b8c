//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the
//! holder renews the Lease well within its duration; another replica takes it over
//! once it has seen the Lease unchanged for a whole duration by its own clock (never
//! by comparing timestamps written on other nodes, so clock skew cannot hand out two
//! leases). A leader that cannot renew steps down before its lease can have expired
//! for the others. Every replica serves webhooks; only the leader reconciles.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Where the Lease lives and how it is held.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and others retry.
    pub retry_period: Duration,
}

/// What a replica remembers of the Lease between attempts.
#[derive(Debug, Default)]
struct Observed {
    /// The Lease's resourceVersion when it was last seen to change, and when.
    record: Option<(String, Instant)>,
    /// When this replica last renewed successfully, while it leads.
    renewed: Option<Instant>,
}

/// What to do after reading the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// There is no Lease: create one held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else holds it and it has expired (or was released): take it.
    TakeOver,
    /// Someone else holds a live Lease: wait.
    Follow,
}

fn decide(
    lease: Option<&Lease>,
    me: &str,
    observed: &mut Observed,
    now: Instant,
    duration: Duration,
) -> Step {
    let Some(lease) = lease else { return Step::Create };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    let changed_at = match &observed.record {
        Some((seen, at)) if *seen == version => *at,
        _ => {
            observed.record = Some((version, now));
            now
        }
    };
    let held_for = spec.lease_duration_seconds.map_or(duration, |s| Duration::from_secs(s.max(1) as u64));
    if now.duration_since(changed_at) >= held_for { Step::TakeOver } else { Step::Follow }
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn held_by_us(settings: &Settings, previous: Option<&LeaseSpec>, take_over: bool) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.lease_duration.as_secs().max(1) as i32),
        acquire_time: if take_over || previous.is_none() {
            Some(now_micro())
        } else {
            previous.and_then(|p| p.acquire_time.clone())
        },
        renew_time: Some(now_micro()),
        lease_transitions: Some(if take_over { transitions + 1 } else { transitions }),
        ..LeaseSpec::default()
    }
}

/// One attempt: read the Lease and create, renew or take it over. `Ok(true)` when
/// we hold it afterwards.
async fn attempt(
    api: &Api<Lease>,
    settings: &Settings,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let lease = api.get_opt(&settings.name).await?;
    let step = decide(lease.as_ref(), &settings.identity, observed, Instant::now(), settings.lease_duration);
    debug!(?step, lease = %settings.name, "leader election");
    let written = match (step, lease) {
        (Step::Follow, _) => return Ok(false),
        (Step::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(held_by_us(settings, None, false)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (step, Some(mut lease)) => {
            lease.spec = Some(held_by_us(settings, lease.spec.as_ref(), step == Step::TakeOver));
            api.replace(&settings.name, &PostParams::default(), &lease).await
        }
        (_, None) => unreachable!("only Create is decided without a Lease"),
    };
    match written {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up on shutdown so another replica takes over at once.
async fn release(api: &Api<Lease>, settings: &Settings) {
    let Ok(Some(mut lease)) = api.get_opt(&settings.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now_micro());
    if let Err(error) = api.replace(&settings.name, &PostParams::default(), &lease).await {
        warn!(%error, "cannot release the leader Lease");
    }
}

/// Campaigns until `shutdown`, publishing whether this replica leads on `leading`.
/// Releases the Lease when it stops.
pub async fn run(
    client: Client,
    settings: Settings,
    leading: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut observed = Observed::default();
    loop {
        let now = Instant::now();
        let held = match attempt(&api, &settings, &mut observed).await {
            Ok(held) => held,
            Err(error) => {
                warn!(%error, lease = %settings.name, "leader election attempt failed");
                false
            }
        };
        if held {
            observed.renewed = Some(now);
        }
        // A leader keeps leading through failed renewals until the others could
        // think the lease expired: step down with a retry period to spare.
        let still = observed.renewed.is_some_and(|at| {
            held || now.duration_since(at) + settings.retry_period < settings.lease_duration
        });
        if !still {
            observed.renewed = None;
        }
        let was = *leading.borrow();
        if still != was {
            info!(identity = %settings.identity, lease = %settings.name, leading = still, "leadership changed");
            leading.send_replace(still);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(settings.retry_period) => {}
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        release(&api, &settings).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta { resource_version: Some(version.into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_is_followed_and_a_stale_one_taken_over() {
        let d = Duration::from_secs(15);
        let mut seen = Observed::default();
        let t0 = Instant::now();
        assert_eq!(decide(None, "b", &mut seen, t0, d), Step::Create);
        assert_eq!(decide(Some(&lease("b", "1")), "b", &mut seen, t0, d), Step::Renew);
        assert_eq!(decide(Some(&lease("a", "1")), "b", &mut seen, t0, d), Step::Follow);
        // The holder renews (new resourceVersion): the clock restarts.
        assert_eq!(
            decide(Some(&lease("a", "2")), "b", &mut seen, t0 + Duration::from_secs(14), d),
            Step::Follow
        );
        assert_eq!(
            decide(Some(&lease("a", "2")), "b", &mut seen, t0 + Duration::from_secs(28), d),
            Step::Follow
        );
        // Unchanged for a whole duration by our clock: expired.
        assert_eq!(
            decide(Some(&lease("a", "2")), "b", &mut seen, t0 + Duration::from_secs(29), d),
            Step::TakeOver
        );
        // A released Lease (no holder) is taken at once.
        let mut released = lease("", "3");
        released.spec.as_mut().unwrap().holder_identity = None;
        assert_eq!(decide(Some(&released), "b", &mut Observed::default(), t0, d), Step::TakeOver);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let s = Settings {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        let first = held_by_us(&s, None, false);
        assert_eq!((first.holder_identity.as_deref(), first.lease_transitions), (Some("me"), Some(0)));
        let renewed = held_by_us(&s, Some(&first), false);
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = held_by_us(&s, Some(&lease("other", "1").spec.unwrap()), true);
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.lease_duration_seconds, Some(15));
    }
}
