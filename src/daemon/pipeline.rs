//! [`Pipeline`]: the handles opened once per daemon run and shared by every
//! service — the state database, the metrics registry, the clock, the
//! plugin host, the stores' push inboxes, the sweep gate and the fence (whether this node
//! may still act for a store or channel: always on one node, its leases in
//! a cluster).

use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::metrics::Metrics;
use crate::plugin::PluginHost;
use crate::poll::gate::SweepGate;
use crate::poll::idle::{IdlePolls, LiveStatusStore, WriteIdle};
use crate::poll::inbox::PushInboxes;
use crate::queue::redb::{RedbOptions, RedbStore};
use crate::queue::{Fence, SharedStore, Unfenced};
use crate::state::State;

/// What the services of one daemon run share. Opened after the state
/// directory is locked (never by `validate`), kept across reloads.
#[derive(Clone)]
pub struct Pipeline {
    /// The queue and state database, with the polls that found nothing new
    /// laid over it ([`LiveStatusStore`]).
    pub db: SharedStore,
    /// Polls that found nothing new, kept in memory instead of written.
    pub idle: Arc<IdlePolls>,
    /// Counters and gauges the stages record and `/metrics` exports.
    pub metrics: Arc<Metrics>,
    /// "Now" for every stage.
    pub clock: SharedClock,
    /// The plugin host every state's instances run in.
    pub host: PluginHost,
    /// What the webhook listener hands each store's poller; kept across
    /// reloads so a push is never lost to one.
    pub pushes: PushInboxes,
    /// Asked before every send (and by the cluster backend before every
    /// write): [`Unfenced`] on one node, the node's leases in a cluster.
    pub fence: Arc<dyn Fence>,
    /// How many sweeps of all stores may be under way at once.
    pub sweeps: SweepGate,
}

impl Pipeline {
    /// Open the state database in `state`'s `daemon.state_dir`.
    pub fn open(state: &State, host: PluginHost) -> Result<Self, crate::queue::Error> {
        let daemon = &state.config.daemon;
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
        let idle = Arc::new(IdlePolls::new(WriteIdle::Hourly));
        Ok(Self {
            db: Arc::new(LiveStatusStore::new(Arc::new(store), idle.clone())),
            idle,
            metrics: Arc::new(Metrics::new()),
            clock,
            host,
            pushes: PushInboxes::new(),
            fence: Arc::new(Unfenced),
            sweeps: SweepGate::default(),
        })
    }

    /// A cluster node's pipeline: the JetStream state `db` (already open,
    /// fenced by `fence`, the node's leases).
    pub fn cluster(
        state: &State,
        db: SharedStore,
        fence: Arc<dyn Fence>,
        host: PluginHost,
    ) -> Self {
        db.set_time_zone(state.config.daemon.timezone.clone());
        let idle = Arc::new(IdlePolls::new(WriteIdle::EveryInterval));
        Self {
            db: Arc::new(LiveStatusStore::new(db, idle.clone())),
            idle,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(SystemClock),
            host,
            pushes: PushInboxes::new(),
            fence,
            sweeps: SweepGate::default(),
        }
    }

    /// Apply what a reload changes in the shared handles: daily counters are
    /// keyed by local date in `daemon.timezone`, so a reload that moves it
    /// must move the counting too.
    pub fn reconfigure(&self, state: &State) {
        self.db.set_time_zone(state.config.daemon.timezone.clone());
    }
}
