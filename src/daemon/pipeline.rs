//! Wiring of the notification pipeline into the [`Runtime`]: the state
//! database opened once the state directory is locked (never by `validate`),
//! the metrics registry, and the services — one poller per store, one
//! dispatcher per channel, housekeeping.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::runtime::Runtime;
use super::service::{
    Service, ServiceContext, ServiceError, ServiceProvider, ServiceSpec, ServiceTask,
};
use super::state::State;
use crate::clock::{SharedClock, SystemClock};
use crate::metrics::Metrics;
use crate::queue::SharedStore;
use crate::queue::redb::{RedbOptions, RedbStore};

/// How often finished jobs past `daemon.history_retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Jobs deleted per transaction while pruning (keeps other writers flowing).
const PRUNE_BATCH: usize = 500;

/// Add the pipeline to `runtime`: open the database at start, run the
/// pollers, dispatchers and housekeeping.
pub fn with_pipeline(mut runtime: Runtime) -> Runtime {
    runtime.on_start(|startup| {
        let daemon = &startup.state.config.daemon;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = RedbStore::open(
            &daemon.state_dir,
            RedbOptions {
                time_zone: daemon.timezone.clone(),
                clock: clock.clone(),
                ..RedbOptions::default()
            },
        )?;
        tracing::info!(path = %store.path().display(), "state database open");
        let shared: SharedStore = Arc::new(store);
        // Daily counters are keyed by local date in `daemon.timezone`; a
        // reload that moves it must move the counting too.
        let counting = shared.clone();
        startup
            .on_reload(move |state| counting.set_time_zone(state.config.daemon.timezone.clone()));
        startup.provide(shared);
        startup.provide(Metrics::new());
        startup.add_service_provider(crate::poll::service_provider(clock.clone()));
        startup.add_service_provider(crate::send::service_provider(clock));
        startup.add_service_provider(housekeeping_provider());
        Ok(())
    });
    runtime
}

fn housekeeping_provider() -> ServiceProvider {
    Arc::new(|_state: &Arc<State>| vec![Box::new(Housekeeping) as Box<dyn Service>])
}

/// Prunes delivery history past its retention, in small batches.
struct Housekeeping;

#[async_trait::async_trait]
impl Service for Housekeeping {
    fn name(&self) -> &str {
        "housekeeping"
    }

    fn spec(&self) -> ServiceSpec {
        ServiceSpec::new("housekeeping")
    }

    async fn prepare(self: Box<Self>, ctx: ServiceContext) -> Result<ServiceTask, ServiceError> {
        let db = ctx
            .resource::<SharedStore>()
            .ok_or("the state database is not open")?;
        Ok(Box::pin(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let retention = ctx.state.load().config.daemon.history_retention;
                let before = Timestamp::now()
                    .checked_sub(retention)
                    .unwrap_or(Timestamp::MIN);
                match db.prune(before, PRUNE_BATCH).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(jobs = n, "pruned delivery history older than {before}")
                    }
                    Err(error) => tracing::error!("pruning the delivery history failed: {error}"),
                }
            }
        }))
    }
}
