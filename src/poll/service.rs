//! The poller service of one store: a sweep every `poll_interval` (with ±10 %
//! jitter so stores added together drift apart), one at a time.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use rand::RngExt;

use super::sweep::{Sweep, SweepError};
use crate::clock::{SharedClock, SystemClock};
use crate::daemon::{
    Service, ServiceContext, ServiceError, ServiceProvider, ServiceSpec, ServiceTask, State,
};
use crate::metrics::Metrics;
use crate::queue::{ErrorClass, SharedStore};

/// The first sweep of a store starts within this long (or within its poll
/// interval, if that is shorter) after the daemon starts, so stores started
/// together do not all poll at the same instant.
const START_SPREAD: Duration = Duration::from_secs(5);
/// Longest a poller may go without progress before the watchdog calls it stuck:
/// a page is one plugin call (≤ its call timeout) plus one commit.
const HEARTBEAT_SILENCE: Duration = Duration::from_secs(300);
/// Shortest wait between two sweeps of a failing store.
const MIN_ERROR_BACKOFF: SignedDuration = SignedDuration::from_secs(10);

/// Creates one poller per enabled store.
pub fn service_provider(clock: SharedClock) -> ServiceProvider {
    Arc::new(move |state: &Arc<State>| {
        state
            .stores
            .values()
            .filter(|store| store.config.enabled)
            .map(|store| {
                Box::new(PollService {
                    name: format!("poll/{}", store.config.id),
                    store: store.config.id.clone(),
                    clock: clock.clone(),
                }) as Box<dyn Service>
            })
            .collect()
    })
}

/// The poller of one store.
pub struct PollService {
    name: String,
    store: String,
    clock: SharedClock,
}

impl PollService {
    /// A poller for `store` on the system clock.
    pub fn new(store: &str) -> Self {
        Self {
            name: format!("poll/{store}"),
            store: store.to_owned(),
            clock: Arc::new(SystemClock),
        }
    }
}

#[async_trait::async_trait]
impl Service for PollService {
    fn name(&self) -> &str {
        &self.name
    }

    fn spec(&self) -> ServiceSpec {
        // Everything else (connector instance, interval, policy) is read live
        // from the state, so a reload applies without restarting the loop.
        ServiceSpec::new(self.store.clone())
    }

    async fn prepare(self: Box<Self>, ctx: ServiceContext) -> Result<ServiceTask, ServiceError> {
        let db = ctx
            .resource::<SharedStore>()
            .ok_or("the state database is not open")?;
        let metrics = ctx
            .resource::<Metrics>()
            .unwrap_or_else(|| Arc::new(Metrics::new()));
        Ok(Box::pin(run(ctx, self.store, db, metrics, self.clock)))
    }
}

async fn run(
    ctx: ServiceContext,
    store_id: String,
    db: Arc<SharedStore>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
) -> Result<(), ServiceError> {
    let mut generation = ctx.state.subscribe();
    let spread = ctx
        .state
        .load()
        .stores
        .get(&store_id)
        .map_or(START_SPREAD, |store| {
            START_SPREAD.min(store.config.poll_interval.unsigned_abs())
        });
    let first_delay = spread.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut next = tokio::time::Instant::now() + first_delay;
    let mut paused = false;
    // The watchdog's view of this loop: it beats while waiting and after every
    // committed page, so only a loop that is really stuck goes silent.
    let heartbeat = ctx.heartbeat(HEARTBEAT_SILENCE);
    let mut beat = tokio::time::interval(HEARTBEAT_SILENCE / 4);
    loop {
        heartbeat.beat();
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            _ = beat.tick() => continue,
            () = tokio::time::sleep_until(next), if !paused => {}
            changed = generation.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                if paused {
                    // A reload may carry the fixed credentials: try again now.
                    tracing::info!(store = %store_id, "configuration reloaded: polling again");
                    paused = false;
                    next = tokio::time::Instant::now();
                }
                continue;
            }
        }
        let state = ctx.state.load();
        let Some(store) = state.stores.get(&store_id).cloned() else {
            return Ok(());
        };
        let interval = store.config.poll_interval;
        let sweep = Sweep {
            store: &store,
            db: db.as_ref().as_ref(),
            metrics: &metrics,
            clock: clock.as_ref(),
            shutdown: &ctx.shutdown,
            heartbeat: Some(&heartbeat),
        };
        let started = tokio::time::Instant::now();
        // A sweep commits page by page, each page atomically (a page commit
        // already submitted completes even if its caller goes away), so an
        // unfinished sweep can be dropped on shutdown without losing
        // anything: the next start polls again from the last committed
        // cursor. Waiting instead would hold the whole daemon's stop for as
        // long as a hung Loja Integrada request takes (up to the call
        // timeout, often past the shutdown timeout).
        let outcome = tokio::select! {
            outcome = sweep.run() => outcome,
            () = ctx.shutdown.cancelled() => {
                tracing::info!(
                    store = %store_id,
                    "poll interrupted by shutdown; the next start polls again from the last committed page"
                );
                return Ok(());
            }
        };
        let wait = match outcome {
            Ok(report) => {
                tracing::info!(
                    store = %store_id,
                    pages = report.pages,
                    orders = report.orders,
                    queued = report.enqueued,
                    cancelled = report.cancelled,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "poll complete"
                );
                jittered(interval)
            }
            Err(error) => match error.class() {
                ErrorClass::Misconfigured => {
                    tracing::error!(
                        store = %store_id,
                        "poll failed, store paused until the configuration is fixed and reloaded: {error}"
                    );
                    paused = true;
                    jittered(interval)
                }
                _ => {
                    let wait = retry_wait(&error, interval);
                    tracing::warn!(
                        store = %store_id,
                        retry_in_s = wait.as_secs(),
                        "poll failed: {error}"
                    );
                    wait
                }
            },
        };
        next = tokio::time::Instant::now() + wait;
    }
}

/// `interval` ± 10 %.
fn jittered(interval: SignedDuration) -> Duration {
    let base = interval.unsigned_abs();
    base.mul_f64(rand::rng().random_range(0.9..1.1))
}

/// When to try again after a failed sweep. The platform's hint (a 429's
/// Retry-After) is honoured as given: polling sooner would only be refused
/// again. Without one, a fifth of the interval but at least
/// [`MIN_ERROR_BACKOFF`] — and never longer than the interval itself, so a
/// failing store is never polled less often than a healthy one.
fn retry_wait(error: &SweepError, interval: SignedDuration) -> Duration {
    let hint = match error {
        SweepError::Plugin(e) => e.retry_after(),
        SweepError::Store(_) => None,
    };
    let wait = match hint {
        Some(hint) => hint.max(SignedDuration::from_secs(1)),
        None => (interval / 5).max(MIN_ERROR_BACKOFF).min(interval),
    };
    wait.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginError;

    fn failure(retry_after: Option<SignedDuration>) -> SweepError {
        SweepError::Plugin(PluginError::Retryable {
            message: "HTTP 503".into(),
            retry_after,
        })
    }

    #[test]
    fn a_failed_sweep_is_retried_within_the_interval_unless_the_platform_asks_for_more() {
        let five_min = SignedDuration::from_mins(5);
        let one_sec = SignedDuration::from_secs(1);
        assert_eq!(
            retry_wait(&failure(None), five_min),
            Duration::from_secs(60)
        );
        assert_eq!(retry_wait(&failure(None), one_sec), Duration::from_secs(1));
        assert_eq!(
            retry_wait(&failure(None), SignedDuration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            retry_wait(&failure(Some(SignedDuration::from_secs(90))), five_min),
            Duration::from_secs(90)
        );
        assert_eq!(
            retry_wait(&failure(Some(SignedDuration::from_secs(20))), one_sec),
            Duration::from_secs(20),
            "a 429's Retry-After wins over a short interval"
        );
    }
}
