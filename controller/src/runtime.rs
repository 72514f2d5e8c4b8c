//! The machinery every workload controller runs on, on top of kube-runtime's
//! `Controller` (its watches, reflector store and scheduler, which already never runs
//! one object's reconcile twice at once):
//!
//! - only the elected leader reconciles: [`while_leading`] starts the controllers when
//!   this replica takes the Lease and stops them when it loses it;
//! - bounded concurrency per controller ([`Settings::concurrency`]);
//! - failed reconciles requeued with per-object exponential [`backoff`];
//! - [`expectations`], so a watch that lags never causes a double create or delete;
//! - events on the objects, for what the user must see ([`Events`]), with client-go's
//!   per-object [`spam`] filter.

pub mod backoff;
pub mod expectations;
pub mod shared;
pub mod spam;

use std::{fmt::Debug, future::Future, hash::Hash, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client, Resource,
    runtime::{
        Controller,
        controller::{self, Action},
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use self::{backoff::Backoff, expectations::Expectations};

/// How a controller runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Objects reconciled at once.
    pub concurrency: u16,
    /// Re-reconcile every object at least this often (a resync).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self { concurrency: 4, resync: Duration::from_secs(300) }
    }
}

/// Runs `start(stop)` whenever this replica leads, until `shutdown`; `stop` fires when
/// leadership is lost (or on shutdown) and `start`'s future is awaited before the
/// replica campaigns on.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leading.changed() => if changed.is_err() { return },
            }
        }
        let stop = shutdown.child_token();
        info!("leading: controllers start");
        let run = start(stop.clone());
        tokio::pin!(run);
        let lost = async {
            loop {
                if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                    return;
                }
            }
        };
        tokio::select! {
            () = &mut run => {}
            () = lost => {
                info!("no longer leading: controllers stop");
                stop.cancel();
                run.await;
            }
            () = shutdown.cancelled() => {
                stop.cancel();
                run.await;
                return;
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Publishes events on objects as `stevedore-controller`.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    spam: Arc<std::sync::Mutex<spam::SpamFilter>>,
}

impl Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Events reported by `instance` (this replica).
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter =
            Reporter { controller: "stevedore-controller".into(), instance: Some(instance.into()) };
        Self { recorder: Recorder::new(client, reporter), spam: Arc::default() }
    }

    /// A `Normal` (or `Warning`) event `reason` with `note` on `obj`; failures to publish
    /// are logged, never returned: an event must not fail a reconcile. Past
    /// [`spam::BURST`] events of one type on one object, one per [`spam::REFILL`] goes
    /// out and the others are dropped, as client-go's recorder does.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let reference: ObjectReference = obj.object_ref(&());
        let key = format!(
            "{}/{}/{}/{}/{warning}",
            reference.kind.as_deref().unwrap_or_default(),
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default(),
            reference.uid.as_deref().unwrap_or_default(),
        );
        let allowed = self
            .spam
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow(&key, tokio::time::Instant::now());
        match allowed {
            None => return,
            Some(0) => {}
            Some(dropped) => debug!(object = %key, dropped, "events dropped as spam before this one"),
        }
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, &reference).await {
            debug!(%error, reason, "cannot publish an event");
        }
    }
}

/// The key of an object for backoff and expectations: `namespace/name`.
pub fn key<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    format!("{}/{}", m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default())
}

/// Drives `controller` until `stop`: at most [`Settings::concurrency`] reconciles at
/// once, each object requeued after [`Settings::resync`] at the latest, failures
/// retried with per-object exponential backoff, outcomes logged. `name` names it in
/// logs.
pub async fn drive<K, C, E, R, Fut>(
    name: &'static str,
    controller: Controller<K>,
    settings: Settings,
    reconcile: R,
    ctx: Arc<C>,
    stop: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
    C: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let backoff = Arc::new(Backoff::default());
    let (b1, b2) = (backoff.clone(), backoff);
    let resync = settings.resync;
    let reconcile = Arc::new(reconcile);
    let run = move |obj: Arc<K>, ctx: Arc<C>| {
        let (reconcile, backoff) = (reconcile.clone(), b1.clone());
        async move {
            let k = key(obj.as_ref());
            let out = reconcile(obj, ctx).await;
            if out.is_ok() {
                backoff.succeeded(&k);
            }
            out.map(|a| if a == Action::await_change() { Action::requeue(resync) } else { a })
        }
    };
    let error_policy = move |obj: Arc<K>, error: &E, _ctx: Arc<C>| {
        let k = key(obj.as_ref());
        let delay = b2.failed(&k);
        warn!(controller = name, object = %k, %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    };
    info!(controller = name, concurrency = settings.concurrency, "controller running");
    controller
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(run, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => debug!(controller = name, object = %ObjectRefDisplay(&obj), "reconciled"),
                Err(error) => debug!(controller = name, %error, "controller event"),
            }
        })
        .await;
    info!(controller = name, "controller stopped");
}

struct ObjectRefDisplay<'a, K: Resource>(&'a ObjectRef<K>);

impl<K: Resource> std::fmt::Display for ObjectRefDisplay<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.0.name),
            None => f.write_str(&self.0.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn controllers_run_only_while_leading() {
        let (tx, rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let starts = Arc::new(AtomicUsize::new(0));
        let stops = Arc::new(AtomicUsize::new(0));
        let (s1, s2) = (starts.clone(), stops.clone());
        let task = tokio::spawn(while_leading(rx, shutdown.clone(), move |stop| {
            let (starts, stops) = (s1.clone(), s2.clone());
            async move {
                starts.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
                stops.fetch_add(1, Ordering::SeqCst);
            }
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 0, "not leading yet");
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        tx.send(false).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stops.load(Ordering::SeqCst), 1, "stopped on losing the lease");
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "started again on winning it back");
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(stops.load(Ordering::SeqCst), 2);
    }
}
