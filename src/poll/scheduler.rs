//! [`PollScheduler`]: the pollers of every store of a daemon in one place —
//! a small record per store and one heap of due times, instead of a task per
//! store.
//!
//! A task per store cost about 3.2 KiB each (its loop's future with a
//! six-way `select!`, the task cell, a cancellation token, a store watch, a
//! heartbeat and its timer): about 30 MiB at 10,000 stores, for loops that
//! sleep nearly all the time. Here a store is a [`Record`] of its schedule
//! (next turn, earliest push-triggered sweep, the credentials pause and its
//! back-off) and one entry in a due-time heap. One driver task sleeps until
//! the earliest due time, takes a permit of the [`SweepGate`] and only then
//! spawns the store's turn ([`super::service::Turn`]: a sweep, or a
//! credentials check while paused), so at most the gate's permits of turns
//! exist at once. Everything else is an event on the record:
//!
//! * a push ([`PollScheduler::wake`]) brings the next turn forward, never
//!   before [`super::service::MIN_PUSH_GAP`] after the last sweep nor before
//!   a Retry-After, and not while paused; during a turn it waits in the
//!   store's inbox (a sweep that takes the pushed orders consumes it) and
//!   applies when the turn ends;
//! * a reload (a new state generation) and an operator's resume (the
//!   store's watch, subscribed only while the store is paused) end a pause
//!   at once — heard during a turn, they apply when it ends;
//! * [`PollScheduler::add`] and [`PollScheduler::remove`] are the keyed
//!   start and stop of a store's poller (reloads and cluster ownership go
//!   through the supervisor, as before); a stop cancels the store's turn,
//!   waits for it and writes what its idle polls left unwritten.
//!
//! Schedules are the per-store loop's: the first sweep within
//! [`super::service::START_SPREAD`] of the start, each next one set from the
//! end of the last, with its jitter, back-off, Retry-After and pause.
//! Due stores are started in due-time order as gate permits free up, where
//! the loops queued on the gate in the order they woke.
//!
//! A store's poller ends on its own when its store is no longer configured,
//! or when its turn panics; the supervisor is told through the exit report,
//! as a task's end was reported.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::SweepGate;
use super::idle::IdlePolls;
use super::inbox::{PushInbox, PushInboxes};
use super::service::{self, HEARTBEAT_SILENCE, Pace, Turn, TurnEnd};
use crate::clock::SharedClock;
use crate::heartbeat::Heartbeats;
use crate::metrics::Metrics;
use crate::queue::{ChannelWatch, SharedStore};
use crate::state::StateHandle;

/// Told when a store's poller ends on its own: the store, the start it
/// was added with, and the panic's payload if its turn panicked.
pub type PollExitReport = Arc<dyn Fn(&str, u64, Option<Box<dyn Any + Send>>) + Send + Sync>;

/// What the pollers of a daemon share.
#[derive(Clone)]
pub struct PollEnv {
    /// The current configuration.
    pub state: StateHandle,
    /// The state database.
    pub db: SharedStore,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// "Now".
    pub clock: SharedClock,
    /// Polls that found nothing new.
    pub idle: Arc<IdlePolls>,
    /// How many turns may be under way at once.
    pub gate: SweepGate,
    /// Every store's pushed orders.
    pub pushes: PushInboxes,
    /// Where a turn registers its heartbeat for the watchdog.
    pub heartbeats: Heartbeats,
}

/// The pollers of a daemon. Cheap to clone.
#[derive(Clone)]
pub struct PollScheduler(Arc<Shared>);

struct Shared {
    env: PollEnv,
    table: Mutex<Table>,
    /// Rings when the earliest due time may have moved.
    nudge: Notify,
    exits: PollExitReport,
    /// The turns under way.
    turns: TaskTracker,
    /// Cancelled at shutdown: the driver and every turn end.
    stop: CancellationToken,
}

/// The records and their due times.
#[derive(Default)]
struct Table {
    stores: HashMap<Arc<str>, Record>,
    /// (due, ticket, store); an entry whose ticket is not its record's
    /// current one is stale and skipped (records are rescheduled by pushing
    /// a new entry, not by finding the old one).
    due: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    tickets: u64,
    turn_ids: u64,
}

/// One store's poller.
struct Record {
    /// The supervisor's start number (for its exit report).
    start: u64,
    inbox: Arc<PushInbox>,
    /// The ticket of its live heap entry; 0 during a turn (no entry).
    ticket: u64,
    /// When the next turn is due (meaningless during a turn).
    due: Instant,
    /// The earliest a push may start a sweep: after the minimum gap, or
    /// after the wait a failed sweep set (a Retry-After holds for pushes too).
    push_ready: Instant,
    /// The next turn was brought forward by a push.
    pushed: bool,
    /// No turn yet: the first reads the Retry-After left by a previous run.
    first: bool,
    pace: Pace,
    turn: Option<TurnHandle>,
    /// Events heard during the turn, applied when it ends.
    heard: Heard,
    /// While paused: the task telling [`PollScheduler::resumed`] about an
    /// operator's resume.
    resume_watch: Option<AbortHandle>,
}

struct TurnHandle {
    id: u64,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy, Default)]
struct Heard {
    reloaded: bool,
    resumed: bool,
}

impl Table {
    /// Make `store`'s next turn due at `at`. True when that is now the
    /// earliest due time (the driver, asleep until a later one, must hear of
    /// it; any other change it finds when it wakes).
    fn schedule(&mut self, store: &Arc<str>, at: Instant) -> bool {
        let earliest = self.next_due().is_none_or(|head| at < head);
        let Some(record) = self.stores.get_mut(store) else {
            return false;
        };
        self.tickets += 1;
        record.ticket = self.tickets;
        record.due = at;
        self.due.push(Reverse((at, self.tickets, store.clone())));
        // Stale entries pile up when pushes move due times forward: drop
        // them before they outnumber the live ones.
        if self.due.len() > 2 * self.stores.len() + 1024 {
            let stores = &self.stores;
            self.due.retain(|Reverse((_, ticket, store))| {
                stores.get(store).is_some_and(|r| r.ticket == *ticket)
            });
        }
        earliest
    }

    fn is_live(&self, ticket: u64, store: &Arc<str>) -> bool {
        self.stores
            .get(store)
            .is_some_and(|record| record.ticket == ticket)
    }

    /// The earliest due time (stale entries on top are dropped).
    fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, ticket, store))) = self.due.peek() {
            if self.is_live(*ticket, store) {
                return Some(*at);
            }
            self.due.pop();
        }
        None
    }

    /// The store whose turn is due first, if one is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Arc<str>> {
        let at = self.next_due()?;
        if at > now {
            return None;
        }
        self.due.pop().map(|Reverse((_, _, store))| store)
    }
}

impl PollScheduler {
    /// The scheduler of a daemon, its driver running until
    /// [`Self::shutdown`]. `exits` hears of pollers that end on their own.
    pub fn start(env: PollEnv, exits: PollExitReport) -> Self {
        let shared = Arc::new(Shared {
            env,
            table: Mutex::new(Table::default()),
            nudge: Notify::new(),
            exits,
            turns: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(shared.clone().drive());
        Self(shared)
    }

    /// Start polling `store` (the supervisor's `start` number): its first
    /// turn is due within [`service::START_SPREAD`].
    pub fn add(&self, store: &str, start: u64) {
        let shared = &self.0;
        let interval = shared
            .env
            .state
            .load()
            .stores
            .get(store)
            .map(|runtime| runtime.config.poll_interval);
        let now = Instant::now();
        let key: Arc<str> = Arc::from(store);
        let record = Record::new(start, shared.env.pushes.get(store), now);
        let at = now + service::first_delay(interval);
        let mut table = shared.table();
        if let Some(old) = table.stores.insert(key.clone(), record) {
            // The supervisor stops a key before it starts it again; should
            // it not, the old poller must not go on beside the new one.
            old.end();
        }
        // Only a new earliest due time concerns the driver: adding 10,000
        // stores at start-up wakes it a handful of times, not 10,000.
        let earliest = table.schedule(&key, at);
        drop(table);
        if earliest {
            shared.nudge.notify_one();
        }
    }

    /// Stop polling `store`: cancel its turn, wait for it to end, then write
    /// what its idle polls left unwritten — all within `timeout`, after
    /// which the turn is aborted.
    pub async fn remove(&self, store: &str, timeout: Duration) {
        let shared = &self.0;
        let Some(record) = shared.table().stores.remove(store) else {
            return;
        };
        if let Some(watch) = &record.resume_watch {
            watch.abort();
        }
        let mut task = record.turn.map(|turn| {
            turn.cancel.cancel();
            turn.task
        });
        let stopped = tokio::time::timeout(timeout, async {
            if let Some(task) = &mut task {
                // A panic was the turn's; the store is stopping anyway.
                let _ = task.await;
            }
            shared.env.idle.flush(store, shared.env.db.as_ref()).await;
        })
        .await;
        if stopped.is_err() {
            tracing::error!(service = %format!("poll/{store}"), "service did not stop within {timeout:?}; aborting it");
            if let Some(task) = task {
                task.abort();
            }
        }
    }

    /// A verified push for `store` landed in its inbox: sweep sooner.
    pub fn wake(&self, store: &str) {
        let shared = &self.0;
        let mut table = shared.table();
        let Some(key) = table
            .stores
            .get_key_value(store)
            .map(|(key, _)| key.clone())
        else {
            return;
        };
        let Some(record) = table.stores.get_mut(&key) else {
            return;
        };
        // During a turn the wake-up waits in the inbox (a sweep that takes
        // the pushed orders consumes it), and so it does while paused.
        if record.turn.is_some() || record.pace.paused.is_some() {
            return;
        }
        let at = record.push_ready.max(Instant::now());
        if at < record.due {
            record.pushed = true;
            if table.schedule(&key, at) {
                drop(table);
                shared.nudge.notify_one();
            }
        }
    }

    /// Whether `store`'s turn is still under way (a stop that timed out).
    pub fn busy(&self, store: &str) -> bool {
        self.0
            .table()
            .stores
            .get(store)
            .and_then(|record| record.turn.as_ref())
            .is_some_and(|turn| !turn.task.is_finished())
    }

    /// Abort every turn still under way (after the shutdown timeout).
    pub fn abort(&self) {
        for record in self.0.table().stores.values() {
            if let Some(turn) = &record.turn {
                turn.task.abort();
            }
        }
    }

    /// Stop every poller: cancel the turns under way, wait for them, then
    /// write what idle polls left unwritten, every store at once (so their
    /// commits share writes).
    pub async fn shutdown(self) {
        let shared = &self.0;
        shared.stop.cancel();
        shared.turns.close();
        shared.turns.wait().await;
        let stores: Vec<Arc<str>> = {
            let table = shared.table();
            for record in table.stores.values() {
                if let Some(watch) = &record.resume_watch {
                    watch.abort();
                }
            }
            table.stores.keys().cloned().collect()
        };
        futures::stream::iter(stores)
            .for_each_concurrent(None, |store| async move {
                shared.env.idle.flush(&store, shared.env.db.as_ref()).await;
            })
            .await;
    }
}

impl Record {
    /// A store just added (start number `start`), not yet swept: due at
    /// `now` until the scheduler sets its first turn.
    fn new(start: u64, inbox: Arc<PushInbox>, now: Instant) -> Self {
        Self {
            start,
            inbox,
            ticket: 0,
            due: now,
            push_ready: now,
            pushed: false,
            first: true,
            pace: Pace::default(),
            turn: None,
            heard: Heard::default(),
            resume_watch: None,
        }
    }

    /// Stop what runs for this record (it is being replaced).
    fn end(self) {
        if let Some(watch) = self.resume_watch {
            watch.abort();
        }
        if let Some(turn) = self.turn {
            turn.cancel.cancel();
        }
    }

    /// End the pause now (a reload, an operator's resume).
    fn unpause(&mut self) {
        self.pace.paused = None;
        if let Some(watch) = self.resume_watch.take() {
            watch.abort();
        }
    }
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleep until the earliest due time, take a gate permit, start that
    /// store's turn; hear reloads in between.
    async fn drive(self: Arc<Self>) {
        let mut generation = self.env.state.subscribe();
        loop {
            let next = self.table().next_due();
            let due = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.nudge.notified() => continue,
                changed = generation.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.reloaded();
                    continue;
                }
                () = due => {}
            }
            // Before anything of the turn exists (see `super::gate`).
            let permit = tokio::select! {
                permit = self.env.gate.enter() => permit,
                () = self.stop.cancelled() => return,
            };
            self.begin_turn(permit);
        }
    }

    /// Start the turn of the store due first, if one is still due (it may
    /// have been removed while the permit was awaited).
    fn begin_turn(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) {
        let mut table = self.table();
        let Some(store) = table.pop_due(Instant::now()) else {
            return;
        };
        table.turn_ids += 1;
        let id = table.turn_ids;
        let Some(record) = table.stores.get_mut(&store) else {
            return;
        };
        record.ticket = 0;
        record.heard = Heard::default();
        let cancel = self.stop.child_token();
        let turn = self.clone().turn(
            store.clone(),
            id,
            record.inbox.clone(),
            cancel.clone(),
            record.pace,
            std::mem::take(&mut record.pushed),
            std::mem::take(&mut record.first),
            permit,
        );
        // The turn's end takes this lock, so it cannot run before the
        // handle is in place.
        let task = self.turns.spawn(turn);
        record.turn = Some(TurnHandle { id, cancel, task });
    }

    /// One turn of `store`, then its next due time.
    #[allow(clippy::too_many_arguments)]
    async fn turn(
        self: Arc<Self>,
        store: Arc<str>,
        id: u64,
        inbox: Arc<PushInbox>,
        cancel: CancellationToken,
        mut pace: Pace,
        pushed: bool,
        first: bool,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let env = &self.env;
        let heartbeat = env
            .heartbeats
            .register(&format!("poll/{store}"), HEARTBEAT_SILENCE);
        let turn = Turn {
            store_id: &store,
            inbox: &inbox,
            state: &env.state,
            db: &env.db,
            metrics: &env.metrics,
            clock: env.clock.as_ref(),
            heartbeat: &heartbeat,
            stop: &cancel,
            idle: Some(&env.idle),
        };
        let ended = AssertUnwindSafe(turn.run(&mut pace, pushed, first))
            .catch_unwind()
            .await;
        drop(permit);
        match ended {
            Ok(TurnEnd::Next {
                wait,
                push_ready,
                resume,
            }) => self.turn_ended(&store, id, pace, wait, push_ready, resume),
            // Whoever stopped it writes the idle polls.
            Ok(TurnEnd::Stopped) => {}
            Ok(TurnEnd::Gone) => {
                if let Some(start) = self.forget(&store, id) {
                    env.idle.flush(&store, env.db.as_ref()).await;
                    (self.exits)(&store, start, None);
                }
            }
            Err(panic) => {
                if let Some(start) = self.forget(&store, id) {
                    (self.exits)(&store, start, Some(panic));
                }
            }
        }
    }

    /// Remove `store`'s record if turn `id` is still its turn; its start.
    fn forget(&self, store: &str, id: u64) -> Option<u64> {
        let mut table = self.table();
        let current = table
            .stores
            .get(store)
            .and_then(|record| record.turn.as_ref())
            .is_some_and(|turn| turn.id == id);
        if !current {
            return None;
        }
        let record = table.stores.remove(store)?;
        let start = record.start;
        record.end();
        Some(start)
    }

    /// Turn `id` of `store` ended: set the next one, and apply what was
    /// heard meanwhile.
    fn turn_ended(
        self: &Arc<Self>,
        store: &Arc<str>,
        id: u64,
        pace: Pace,
        wait: Duration,
        push_ready: Option<Duration>,
        resume: Option<ChannelWatch>,
    ) {
        let mut table = self.table();
        let Some(record) = table.stores.get_mut(store) else {
            return;
        };
        if record.turn.as_ref().is_none_or(|turn| turn.id != id) {
            return;
        }
        record.turn = None;
        record.pace = pace;
        let now = Instant::now();
        if let Some(gap) = push_ready {
            record.push_ready = now + gap;
        }
        let mut due = now + wait;
        let heard = std::mem::take(&mut record.heard);
        if let Some(resume) = resume {
            if let Some(old) = record.resume_watch.take() {
                old.abort();
            }
            record.resume_watch = Some(self.watch_resume(store.clone(), resume));
        }
        if record.pace.paused.is_some() {
            if heard.reloaded {
                // A reload may carry the fixed credentials: try again now.
                tracing::info!(store = %store, "configuration reloaded: polling again");
                record.unpause();
                due = now;
            } else if heard.resumed {
                tracing::info!(store = %store, "store resumed by an operator: polling again");
                record.unpause();
                due = now;
            }
        } else {
            if let Some(watch) = record.resume_watch.take() {
                watch.abort();
            }
            // A push during the turn whose orders the sweep did not take.
            if record.inbox.wanted().now_or_never().is_some() {
                let at = record.push_ready.max(now);
                if at < due {
                    due = at;
                    record.pushed = true;
                }
            }
        }
        if table.schedule(store, due) {
            drop(table);
            self.nudge.notify_one();
        }
    }

    /// A new configuration: a paused store tries again now.
    fn reloaded(&self) {
        let mut table = self.table();
        let mut again = Vec::new();
        for (store, record) in &mut table.stores {
            if record.turn.is_some() {
                record.heard.reloaded = true;
            } else if record.pace.paused.is_some() {
                tracing::info!(store = %store, "configuration reloaded: polling again");
                record.unpause();
                again.push(store.clone());
            }
        }
        let now = Instant::now();
        for store in &again {
            table.schedule(store, now);
        }
    }

    /// An operator resumed `store`: if paused, it polls again now.
    fn resumed(&self, store: &Arc<str>) {
        let mut table = self.table();
        let Some(record) = table.stores.get_mut(store) else {
            return;
        };
        if record.turn.is_some() {
            record.heard.resumed = true;
            return;
        }
        if record.pace.paused.is_none() {
            return;
        }
        tracing::info!(store = %store, "store resumed by an operator: polling again");
        record.unpause();
        if table.schedule(store, Instant::now()) {
            drop(table);
            self.nudge.notify_one();
        }
    }

    /// Hear an operator's resume of `store` on `watch` while it is paused.
    fn watch_resume(self: &Arc<Self>, store: Arc<str>, mut watch: ChannelWatch) -> AbortHandle {
        let shared: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            while watch.changed().await {
                match shared.upgrade() {
                    Some(shared) => shared.resumed(&store),
                    None => return,
                }
            }
        })
        .abort_handle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record::new(1, Arc::default(), Instant::now())
    }

    #[test]
    fn the_earliest_due_store_comes_first_and_a_moved_due_time_leaves_no_second_turn() {
        let mut table = Table::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        table.stores.insert(a.clone(), record());
        table.stores.insert(b.clone(), record());
        let now = Instant::now();
        table.schedule(&a, now + Duration::from_secs(10));
        table.schedule(&b, now + Duration::from_secs(5));
        // A push brings a forward: its first entry is stale now.
        table.schedule(&a, now + Duration::from_secs(1));
        assert_eq!(table.next_due(), Some(now + Duration::from_secs(1)));
        assert_eq!(table.pop_due(now), None, "nothing is due yet");
        let later = now + Duration::from_secs(60);
        assert_eq!(table.pop_due(later).as_deref(), Some("a"));
        if let Some(record) = table.stores.get_mut(&a) {
            record.ticket = 0;
        }
        assert_eq!(table.pop_due(later).as_deref(), Some("b"));
        if let Some(record) = table.stores.get_mut(&b) {
            record.ticket = 0;
        }
        assert_eq!(table.pop_due(later), None, "a's old entry is skipped");
    }

    #[test]
    fn stale_entries_are_dropped_before_they_outnumber_the_live_ones() {
        let mut table = Table::default();
        let a: Arc<str> = Arc::from("a");
        table.stores.insert(a.clone(), record());
        let now = Instant::now();
        for i in 0..5_000 {
            table.schedule(&a, now + Duration::from_secs(10_000 - i));
        }
        assert!(table.due.len() <= 2 + 1024, "{}", table.due.len());
        assert_eq!(table.next_due(), Some(now + Duration::from_secs(5_001)));
    }
}
