//! The glue between decide and the queue, in process: a real poll sweep
//! (`poll::sweep::Sweep`) and a real dispatcher (`send::dispatch::Dispatcher`)
//! on a real redb file in a temporary directory, with the real Loja Integrada
//! connector and webhook sender plugins against fakes on 127.0.0.1.
//!
//! What the full-daemon tests only see from outside is checked here step by
//! step: a newer status supersedes pending news, a cancellation withdraws
//! it, a job record that cannot be read stays visible and is dead-lettered
//! with its reason, a job whose order moved on while it was claimed is
//! dropped before sending, and a poll that finds nothing new writes nothing.

// All test code: with this, clippy's allow-unwrap/expect-in-tests covers the
// helper functions too, not only the #[test] ones (see clippy.toml).
#![cfg(test)]

use crate::support;

use std::sync::Arc;

use arauto::clock::{SharedClock, SystemClock};
use arauto::metrics::Metrics;
use arauto::poll::idle::{IdlePolls, LiveStatusStore, WriteIdle};
use arauto::poll::sweep::{Sweep, SweepReport};
use arauto::queue::redb::{FILE_NAME, RedbOptions, RedbStore};
use arauto::queue::{Job, JobBody, JobState, SharedStore, StateStore};
use arauto::send::dispatch::{Dispatcher, Turn};
use arauto::state::{BuildOptions, State, build};
use arauto_sim::channels::{FakeProvider, Provider};
use arauto_sim::li::Numero;
use jiff::SignedDuration;
use redb::{ReadableTable, TableDefinition};
use support::daemon::daemon_section;
use support::system::{ChannelKnobs, Shop, StoreKnobs, World, order_for, plugin_cache};
use tokio_util::sync::CancellationToken;

/// The queue's job table: the one place this test reaches under the trait,
/// to damage a record the way a newer arauto or a bad disk would.
const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");

/// One store (`loja`, on the fake LI) notifying through one webhook channel
/// (`hook`), built and opened exactly as the daemon does, minus the loops.
struct Stages {
    world: World,
    shop: Shop,
    hook: FakeProvider,
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    state: Arc<State>,
    db: Option<Arc<RedbStore>>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
}

impl Stages {
    fn new() -> Self {
        Self::with_channel(ChannelKnobs::default())
    }

    /// [`Stages::new`] with the channel's knobs (`min_interval`…).
    fn with_channel(knobs: ChannelKnobs) -> Self {
        let world = World::new();
        let shop = world.shop("loja");
        let hook = world.channel(Provider::Webhook);
        let tables = format!(
            "{}{}",
            world.store_toml(&shop, &["hook"], StoreKnobs::default()),
            world.channel_toml("hook", &hook, knobs)
        );
        let dir = tempfile::tempdir().unwrap();
        let plugins = support::plugins::first_party_plugins();
        let text = format!(
            "{}{}",
            daemon_section(
                dir.path(),
                &format!("plugin_dir = {:?}", plugins.display().to_string())
            ),
            World::body(&tables)
        );
        let path = dir.path().join("arauto.toml");
        std::fs::write(&path, text).unwrap();
        let config = arauto::config::load(Some(&path)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host = arauto::plugin::PluginHost::new(arauto::plugin::HostConfig::with_cache_dir(
            plugin_cache(),
        ))
        .unwrap();
        let state = Arc::new(
            runtime
                .block_on(build(config, &BuildOptions::default(), &host))
                .unwrap(),
        );
        let clock: SharedClock = Arc::new(SystemClock);
        let mut stages = Self {
            world,
            shop,
            hook,
            dir,
            runtime,
            state,
            db: None,
            metrics: Arc::new(Metrics::new()),
            clock,
        };
        stages.open();
        stages
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn open(&mut self) {
        let options = RedbOptions {
            time_zone: self.state.config.daemon.timezone.clone(),
            clock: self.clock.clone(),
            ..RedbOptions::default()
        };
        let store = self
            .runtime
            .block_on(async { RedbStore::open(&self.state_dir(), options) })
            .unwrap();
        self.db = Some(Arc::new(store));
    }

    /// Close the database (redb allows one handle per file), run `edit` on
    /// the file itself, open it again.
    fn with_closed_database(&mut self, edit: impl FnOnce(&redb::Database)) {
        let db = self.db.take().unwrap();
        self.runtime.block_on(async move { drop(db) });
        let file = redb::Database::open(self.state_dir().join(FILE_NAME)).unwrap();
        edit(&file);
        drop(file);
        self.open();
    }

    fn db(&self) -> &Arc<RedbStore> {
        self.db.as_ref().unwrap()
    }

    /// A new order on the fake shop, a second after everything before it.
    fn create(&self, serial: u32, status: &str) -> Numero {
        self.world.li.advance(SignedDuration::from_secs(1));
        self.shop.li.create_order(order_for("Ana", serial, status))
    }

    /// The order moves to `status`, a second later.
    fn set_status(&self, numero: Numero, status: &str) {
        self.world.li.advance(SignedDuration::from_secs(1));
        self.shop.li.set_status(numero, status).unwrap();
    }

    /// One poll of the store, as its poller runs it.
    fn sweep(&self) -> SweepReport {
        self.sweep_keeping_idle(None)
    }

    /// [`Self::sweep`], keeping a poll that finds nothing new in `idle`
    /// instead of writing it, as the daemon's pollers do.
    fn sweep_keeping_idle(&self, idle: Option<&IdlePolls>) -> SweepReport {
        let store = &self.state.stores["loja"];
        let db: &dyn StateStore = self.db().as_ref();
        let shutdown = CancellationToken::new();
        self.runtime
            .block_on(
                Sweep {
                    store,
                    db,
                    metrics: &self.metrics,
                    clock: self.clock.as_ref(),
                    shutdown: &shutdown,
                    heartbeat: None,
                    idle,
                }
                .run(),
            )
            .unwrap()
    }

    /// The channel's dispatcher, turned until nothing is due.
    fn dispatch(&self) {
        let db: SharedStore = self.db().clone();
        let dispatcher =
            Dispatcher::new("hook".into(), db, self.metrics.clone(), self.clock.clone());
        self.runtime.block_on(async {
            while dispatcher.turn_once(&self.state).await.unwrap() == Turn::Again {}
        });
    }

    /// The order's jobs as (kind, state), oldest first.
    fn jobs(&self, numero: Numero) -> Vec<(String, JobState)> {
        self.order_jobs(numero)
            .iter()
            .map(|job| (job.kind_name().to_owned(), job.state))
            .collect()
    }

    fn order_jobs(&self, numero: Numero) -> Vec<Job> {
        let mut jobs = self
            .runtime
            .block_on(self.db().jobs_for_order("loja", &numero.to_string()))
            .unwrap();
        jobs.sort_by_key(|job| job.id);
        jobs
    }
}

fn owned(jobs: &[(&str, JobState)]) -> Vec<(String, JobState)> {
    jobs.iter()
        .map(|(kind, state)| ((*kind).to_owned(), *state))
        .collect()
}

#[test]
fn a_newer_status_supersedes_the_pending_notification() {
    let stages = Stages::new();
    let order = stages.create(1, "aguardando_pagamento");
    let first = stages.sweep();
    assert_eq!(first.enqueued, 1, "{first:?}");
    assert_eq!(
        stages.jobs(order),
        owned(&[("waiting-payment", JobState::Pending)])
    );

    // Paid before the channel sent the first: the older news is withdrawn
    // in the same commit that plans the newer.
    stages.set_status(order, "pedido_pago");
    let second = stages.sweep();
    assert_eq!((second.enqueued, second.cancelled), (1, 1), "{second:?}");
    assert_eq!(
        stages.jobs(order),
        owned(&[
            ("waiting-payment", JobState::Cancelled),
            ("order-paid", JobState::Pending),
        ])
    );

    // Polling again without a change plans nothing twice.
    let third = stages.sweep();
    assert_eq!((third.enqueued, third.cancelled), (0, 0), "{third:?}");

    stages.dispatch();
    let received = stages.world.wait_received(&stages.hook, 1);
    assert!(received[0].text.contains("order-paid"), "{}", received[0]);
    assert_eq!(
        stages.jobs(order),
        owned(&[
            ("waiting-payment", JobState::Cancelled),
            ("order-paid", JobState::Sent),
        ])
    );
}

#[test]
fn a_cancellation_withdraws_the_pending_news_and_is_sent_instead() {
    let stages = Stages::new();
    let order = stages.create(2, "pedido_pago");
    stages.sweep();
    stages.set_status(order, "pedido_cancelado");
    let report = stages.sweep();
    assert_eq!((report.enqueued, report.cancelled), (1, 1), "{report:?}");
    assert_eq!(
        stages.jobs(order),
        owned(&[
            ("order-paid", JobState::Cancelled),
            ("order-canceled", JobState::Pending),
        ])
    );
    stages.dispatch();
    let received = stages.world.wait_received(&stages.hook, 1);
    assert!(
        received[0].text.contains("order-canceled"),
        "{}",
        received[0]
    );
    assert_eq!(stages.hook.received().len(), 1);
}

#[test]
fn a_job_record_that_cannot_be_read_stays_visible_and_is_dead_lettered_with_its_reason() {
    let mut stages = Stages::new();
    let order = stages.create(3, "aguardando_pagamento");
    stages.sweep();
    let [job] = stages.order_jobs(order).try_into().unwrap();

    // A newer arauto (or a bad disk) wrote a kind this one does not know.
    stages.with_closed_database(|file| {
        let txn = file.begin_write().unwrap();
        {
            let mut table = txn.open_table(JOBS).unwrap();
            let bytes = table
                .get(job.id.as_u128())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            // A format tag byte, then JSON.
            let (&tag, json) = bytes.split_first().unwrap();
            let mut record: serde_json::Value = serde_json::from_slice(json).unwrap();
            record["kind"] = "order-teleported".into();
            let mut bytes = vec![tag];
            serde_json::to_writer(&mut bytes, &record).unwrap();
            table.insert(job.id.as_u128(), bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    });

    // The sweep still decides the order (paid now) and leaves the
    // unreadable job alone rather than dropping it silently.
    stages.set_status(order, "pedido_pago");
    let report = stages.sweep();
    assert_eq!((report.enqueued, report.cancelled), (1, 0), "{report:?}");
    let jobs = stages.order_jobs(order);
    assert_eq!(jobs.len(), 2);
    match &jobs[0].body {
        JobBody::Unreadable {
            kind, unreadable, ..
        } => {
            assert_eq!(kind, "order-teleported");
            assert!(unreadable.contains("order-teleported"), "{unreadable}");
        }
        JobBody::Readable { .. } => panic!("an unknown kind was read: {:?}", jobs[0]),
    }
    assert_eq!(jobs[0].state, JobState::Pending);

    // The dispatcher sends the readable one and dead-letters the other,
    // saying why.
    stages.dispatch();
    stages.world.wait_received(&stages.hook, 1);
    let jobs = stages.order_jobs(order);
    assert_eq!(jobs[0].state, JobState::Dead);
    let reason = jobs[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("unreadable job record"), "{reason}");
    assert_eq!(jobs[1].state, JobState::Sent);
}

#[test]
fn a_job_whose_order_moved_on_while_it_was_claimed_is_dropped_before_sending() {
    let stages = Stages::new();
    let order = stages.create(4, "pedido_pago");
    stages.sweep();

    // A dispatcher claims the order-paid job and dies holding it: the job
    // is running, out of decide's reach.
    let db = stages.db().clone();
    let now = stages.clock.now();
    let claimed = stages
        .runtime
        .block_on(db.claim("hook", now, 1, SignedDuration::from_millis(1)))
        .unwrap();
    assert_eq!(claimed.len(), 1);

    // Meanwhile the order is cancelled and polled: decide cannot withdraw a
    // running job, so only the cancellation is planned.
    stages.set_status(order, "pedido_cancelado");
    let report = stages.sweep();
    assert_eq!((report.enqueued, report.cancelled), (1, 0), "{report:?}");

    // The lease ran out; the job is due again. The dispatcher checks it
    // against the order's latest record before sending, and drops it.
    let recovered = stages
        .runtime
        .block_on(db.recover_expired_leases(stages.clock.now()))
        .unwrap();
    assert_eq!(recovered, 1);
    stages.dispatch();
    let received = stages.world.wait_received(&stages.hook, 1);
    assert!(
        received[0].text.contains("order-canceled"),
        "{}",
        received[0]
    );
    let jobs = stages.order_jobs(order);
    assert_eq!(
        jobs.iter()
            .map(|job| (job.kind_name(), job.state))
            .collect::<Vec<_>>(),
        [
            ("order-paid", JobState::Cancelled),
            ("order-canceled", JobState::Sent),
        ]
    );
    assert_eq!(stages.hook.received().len(), 1, "the paid news was sent");
}

/// A poll that finds nothing new writes nothing: the stored cursor and store
/// status stay as the last commit left them, while the daemon's view of the
/// state (what `check`, `report` and `/metrics` read) shows the new poll
/// time. The next commit, or the poller's stop, writes what was kept.
#[test]
fn a_poll_that_finds_nothing_new_writes_nothing_and_the_daemons_view_still_shows_it() {
    let stages = Stages::new();
    let idle = Arc::new(IdlePolls::new(WriteIdle::Hourly));
    let raw = stages.db().clone();
    let live = LiveStatusStore::new(raw.clone(), idle.clone());
    let stored = || {
        stages.runtime.block_on(async {
            (
                raw.cursor("loja").await.unwrap(),
                raw.store_status("loja").await.unwrap().unwrap(),
            )
        })
    };
    let order = stages.create(1, "aguardando_pagamento");
    let first = stages.sweep_keeping_idle(Some(&idle));
    assert_eq!(first.enqueued, 1, "{first:?}");
    // The connector may settle in a sweep or two; then nothing is new.
    for _ in 0..3 {
        if idle.is_empty() {
            stages.sweep_keeping_idle(Some(&idle));
        }
    }
    assert_eq!(idle.len(), 1, "an idle poll is kept in memory");
    let (cursor, status) = stored();

    let quiet = stages.sweep_keeping_idle(Some(&idle));
    assert_eq!((quiet.pages, quiet.orders), (1, 0), "{quiet:?}");
    assert_eq!(
        stored(),
        (cursor.clone(), status.clone()),
        "nothing written"
    );
    let seen = stages
        .runtime
        .block_on(live.store_status("loja"))
        .unwrap()
        .unwrap();
    assert!(
        seen.last_poll_ok_at > status.last_poll_ok_at,
        "the daemon shows the idle poll: {:?} vs stored {:?}",
        seen.last_poll_ok_at,
        status.last_poll_ok_at
    );
    let kept_cursor = stages.runtime.block_on(live.cursor("loja")).unwrap();

    // A change commits, and carries the kept poll times with it.
    stages.set_status(order, "pedido_pago");
    let paid = stages.sweep_keeping_idle(Some(&idle));
    assert_eq!(paid.enqueued, 1, "{paid:?}");
    assert!(idle.is_empty(), "the commit wrote what was kept");
    let (after_change, status_after) = stored();
    assert_ne!(after_change, cursor);
    assert!(status_after.last_poll_ok_at > seen.last_poll_ok_at);

    // The poller's stop writes the idle polls since.
    stages.sweep_keeping_idle(Some(&idle));
    assert_eq!(idle.len(), 1);
    let kept = stages.runtime.block_on(live.cursor("loja")).unwrap();
    assert_ne!(kept, kept_cursor);
    stages.runtime.block_on(idle.flush("loja", &live));
    assert!(idle.is_empty());
    let (flushed, flushed_status) = stored();
    assert_eq!(flushed, kept, "the stop wrote the newest cursor");
    assert!(flushed_status.last_poll_ok_at > status_after.last_poll_ok_at);
}

/// An unpaced channel sending one message at a time records each send and
/// claims the next due job in one commit (issue 16): three messages cost
/// four commits (the first claim, then one per send) instead of six, and
/// every job ends sent, in due order.
#[test]
fn one_at_a_time_sends_chain_each_completion_with_the_next_claim() {
    // Unpaced: no minimum interval (the webhook sender has no default one).
    let stages = Stages::with_channel(ChannelKnobs {
        min_interval: "0s".into(),
        ..ChannelKnobs::default()
    });
    let orders: Vec<Numero> = (1..=3).map(|n| stages.create(n, "pedido_pago")).collect();
    let swept = stages.sweep();
    assert_eq!(swept.enqueued, 3, "{swept:?}");

    let commits_before = stages.db().stats().commits;
    stages.dispatch();
    let commits = stages.db().stats().commits - commits_before;
    let received = stages.world.wait_received(&stages.hook, 3);
    assert_eq!(received.len(), 3);
    for order in &orders {
        assert_eq!(
            stages.jobs(*order),
            owned(&[("order-paid", JobState::Sent)])
        );
    }
    assert_eq!(commits, 4, "one commit per send plus the first claim");
}
