//! The single writer: group commit.
//!
//! redb allows one write transaction at a time and every durable commit costs an
//! fsync, so all writes go through one thread. It takes every request waiting in
//! its channel (up to `max_batch`), applies them one after another inside ONE
//! write transaction, commits it with `Durability::Immediate`, and only then
//! answers each caller. While it waits for the disk, new requests pile up and
//! make the next batch; throughput grows with concurrency instead of collapsing.
//!
//! Poll commits are *patient*: nobody is waiting on them but the poller that
//! made them, and polls come every few minutes. When only patient requests are
//! queued, the writer waits up to `patient_delay` for company before it
//! commits, so that many sweeps share one fsync and one write of the B-trees'
//! upper pages instead of paying for them one by one. Any other request (a
//! claim, a completion, an operator's command) ends the wait at once: the
//! waiting polls ride along in its commit. Durability is unchanged: every
//! caller, patient or not, is answered only after the commit that holds its
//! write is on disk.
//!
//! While the writer waits for company it says so ([`Shared::awaiting_company`]),
//! and a patient request queued meanwhile does not wake it: the writer would
//! only find another patient request and go back to sleep, a thread wake-up
//! and two context switches per sweep for nothing. Only a request that ends
//! the wait wakes it: an impatient one, or a patient one that finds a whole
//! batch (`max_batch`) queued in the channel. (A batch filled partly from
//! the channel and partly before the wait began waits out `patient_delay`.)
//!
//! A request that is rejected (bad input, job not running…) must not disturb the
//! others of its batch. redb cannot take a savepoint once tables are open, so each
//! operation validates against the open transaction *before* it writes, and the
//! context tracks whether it wrote anything: an operation that fails after
//! writing aborts the transaction; the operations applied before it get
//! [`Error::BatchAborted`] and those after it are carried into the next batch.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redb::{Database, Durability, Table, WriteTransaction};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::{mpsc, oneshot, watch};

use super::tables::{
    CHANNEL_COUNTS, CHANNEL_STATUS, COUNTERS, CURSORS, DEDUPE, DUE, FINISHED, FINISHED_BY_CHANNEL,
    JOBS, ORDER_JOBS, ORDER_RECORDS, RUNNING, STORE_STATUS, backend,
};
use crate::clock::SharedClock;
use crate::job::IdGenerator;
use crate::queue::{ChannelStatus, Error, Outcome, Result, StoreStats};

/// State shared by the handles, the readers and the writer thread.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    pub(super) clock: SharedClock,
    pub(super) time_zone: Mutex<TimeZone>,
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
    stores: Mutex<HashMap<String, watch::Sender<u64>>>,
    commits: AtomicU64,
    write_ops: AtomicU64,
    failed_commits: AtomicU64,
    largest_batch: AtomicU64,
    apply_micros: AtomicU64,
    commit_micros: AtomicU64,
    /// The writer is waiting for company for patient requests only (see the
    /// module doc): a patient request need not wake it.
    awaiting_company: AtomicBool,
}

impl Shared {
    pub(super) fn new(path: PathBuf, clock: SharedClock, time_zone: TimeZone) -> Self {
        Self {
            path,
            clock,
            time_zone: Mutex::new(time_zone),
            channels: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
            commits: AtomicU64::new(0),
            write_ops: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            apply_micros: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            awaiting_company: AtomicBool::new(false),
        }
    }

    /// Whether a request just queued must wake the writer: always, unless
    /// it is patient and the writer is waiting for company with room left
    /// in its batch (`queued`: requests waiting in the channel).
    pub(super) fn must_wake_writer(&self, patient: bool, queued: usize, max_batch: usize) -> bool {
        !patient || queued >= max_batch || !self.awaiting_company.load(Ordering::Acquire)
    }

    pub(super) fn watch_channel(&self, channel: &str) -> watch::Receiver<u64> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        match channels.get(channel) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(0);
                channels.insert(channel.to_owned(), sender);
                receiver
            }
        }
    }

    pub(super) fn watch_store(&self, store: &str) -> watch::Receiver<u64> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores
            .entry(store.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub(super) fn wake_store(&self, store: &str) {
        let watchers = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = watchers.get(store) {
            sender.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }

    fn wake(&self, channels: &BTreeSet<String>) {
        if channels.is_empty() {
            return;
        }
        let watchers = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        for channel in channels {
            if let Some(sender) = watchers.get(channel) {
                sender.send_modify(|generation| *generation = generation.wrapping_add(1));
            }
        }
    }

    pub(super) fn time_zone(&self) -> TimeZone {
        self.time_zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            write_ops: self.write_ops.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            apply_micros: self.apply_micros.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
        }
    }
}

/// The open tables of one write transaction plus what operations need besides.
/// Mutations go through the methods in `ops.rs`, which mark the context dirty.
pub(super) struct Ctx<'t> {
    pub(super) jobs: Table<'t, u128, &'static [u8]>,
    pub(super) due: Table<'t, (&'static str, u64, u128), (u8, u64)>,
    pub(super) running: Table<'t, (u64, u128), ()>,
    pub(super) finished: Table<'t, (u64, u128), u8>,
    pub(super) finished_by_channel: Table<'t, (&'static str, u64, u128), u8>,
    pub(super) dedupe: Table<'t, &'static str, u128>,
    pub(super) order_jobs: Table<'t, (&'static str, &'static str, u128), ()>,
    pub(super) channel_counts: Table<'t, &'static str, (u64, u64)>,
    pub(super) cursors: Table<'t, &'static str, &'static str>,
    pub(super) order_records: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) store_status: Table<'t, &'static str, &'static [u8]>,
    pub(super) channel_status: Table<'t, &'static str, &'static [u8]>,
    pub(super) counters: Table<
        't,
        (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        ),
        u64,
    >,
    /// The store clock's reading at the start of the batch.
    pub(super) now: Timestamp,
    pub(super) time_zone: TimeZone,
    pub(super) ids: &'t mut IdGenerator,
    pub(super) path: &'t Path,
    /// Channels whose pending set changed: their dispatchers are woken after the commit.
    pub(super) woken: BTreeSet<String>,
    /// Channel counter changes of the batch (pending, running), written by `flush`.
    pub(super) channel_deltas: HashMap<String, (i64, i64)>,
    /// Daily counter increments of the batch, written by `flush`.
    pub(super) counter_deltas: HashMap<(String, String, String, String, Outcome), u64>,
    /// Channel statuses read or changed by the batch (changed ones are written by `flush`).
    pub(super) channels: HashMap<String, (ChannelStatus, bool)>,
    dirty: bool,
}

impl<'t> Ctx<'t> {
    pub(super) fn open(
        txn: &'t WriteTransaction,
        now: Timestamp,
        time_zone: TimeZone,
        ids: &'t mut IdGenerator,
        path: &'t Path,
    ) -> Result<Self> {
        fn table<'t, K: ::redb::Key + 'static, V: ::redb::Value + 'static>(
            txn: &'t WriteTransaction,
            definition: ::redb::TableDefinition<K, V>,
            path: &Path,
        ) -> Result<Table<'t, K, V>> {
            txn.open_table(definition)
                .map_err(backend(path, "open tables"))
        }
        Ok(Self {
            jobs: table(txn, JOBS, path)?,
            due: table(txn, DUE, path)?,
            running: table(txn, RUNNING, path)?,
            finished: table(txn, FINISHED, path)?,
            finished_by_channel: table(txn, FINISHED_BY_CHANNEL, path)?,
            dedupe: table(txn, DEDUPE, path)?,
            order_jobs: table(txn, ORDER_JOBS, path)?,
            channel_counts: table(txn, CHANNEL_COUNTS, path)?,
            cursors: table(txn, CURSORS, path)?,
            order_records: table(txn, ORDER_RECORDS, path)?,
            store_status: table(txn, STORE_STATUS, path)?,
            channel_status: table(txn, CHANNEL_STATUS, path)?,
            counters: table(txn, COUNTERS, path)?,
            now,
            time_zone,
            ids,
            path,
            woken: BTreeSet::new(),
            channel_deltas: HashMap::new(),
            counter_deltas: HashMap::new(),
            channels: HashMap::new(),
            dirty: false,
        })
    }

    /// Records that the current operation has written to the transaction.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

/// What applying one operation did to the transaction.
pub(super) enum Applied {
    /// Succeeded, or was rejected without writing: the batch goes on.
    Continue,
    /// Failed after writing, or the storage failed: the transaction must be aborted.
    Abort(Error),
}

/// One queued write request.
pub(super) trait WriteOp: Send {
    fn apply(&mut self, ctx: &mut Ctx<'_>) -> Applied;
    /// Whether the request may wait up to the writer's `patient_delay` for
    /// other requests to share its commit (poll commits).
    fn patient(&self) -> bool {
        false
    }
    /// Answers the caller: its own result if `failure` is `None`, else `failure`.
    fn finish(self: Box<Self>, failure: Option<&Error>);
}

/// A write request: a closure run inside the batch's transaction, and where to
/// send its result once the batch is committed.
pub(super) struct PendingOp<T, F> {
    operation: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    patient: bool,
}

impl<T, F> PendingOp<T, F> {
    pub(super) fn new(operation: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self {
            operation: Some(operation),
            result: None,
            reply,
            patient: false,
        }
    }

    /// A request that may wait for company before its commit (see the module doc).
    pub(super) fn patient(operation: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self {
            patient: true,
            ..Self::new(operation, reply)
        }
    }
}

impl<T, F> WriteOp for PendingOp<T, F>
where
    T: Send,
    F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send,
{
    fn apply(&mut self, ctx: &mut Ctx<'_>) -> Applied {
        let Some(operation) = self.operation.take() else {
            return Applied::Continue;
        };
        ctx.dirty = false;
        let outcome = catch_unwind(AssertUnwindSafe(|| operation(ctx)));
        let (result, abort) = match outcome {
            Ok(Ok(value)) => (Ok(value), None),
            Ok(Err(error)) => {
                let abort = (ctx.dirty || error.is_storage_failure()).then(|| error.clone());
                (Err(error), abort)
            }
            Err(_) => {
                tracing::error!(path = %ctx.path.display(), "a state store operation panicked; its batch was rolled back");
                let error = Error::Invalid {
                    what: "state store operation".to_owned(),
                    reason: "it panicked (a bug in arauto); nothing was written".to_owned(),
                };
                (Err(error.clone()), Some(error))
            }
        };
        self.result = Some(result);
        match abort {
            Some(error) => Applied::Abort(error),
            None => Applied::Continue,
        }
    }

    fn patient(&self) -> bool {
        self.patient
    }

    fn finish(self: Box<Self>, failure: Option<&Error>) {
        let result = match failure {
            Some(error) => Err(error.clone()),
            None => self.result.unwrap_or(Err(Error::Closed)),
        };
        // The caller may have gone away (its future was dropped); the write stands.
        let _ = self.reply.send(result);
    }
}

pub(super) type BoxedOp = Box<dyn WriteOp>;

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) shared: Arc<Shared>,
    pub(super) ids: IdGenerator,
    pub(super) max_batch: usize,
    pub(super) commit_delay: Duration,
    /// How long patient requests alone may wait for company (module doc).
    pub(super) patient_delay: Duration,
    pub(super) quick_repair: bool,
}

impl Writer {
    /// Runs until every sender is gone, then returns (dropping its database handle).
    pub(super) fn run(mut self, mut requests: mpsc::Receiver<BoxedOp>) {
        let mut pending: VecDeque<BoxedOp> = VecDeque::new();
        let mut last_batch = 0;
        loop {
            if pending.is_empty() {
                match requests.blocking_recv() {
                    Some(op) => pending.push_back(op),
                    None => return,
                }
            }
            self.gather(&mut requests, &mut pending, last_batch);
            self.wait_for_company(&mut requests, &mut pending);
            let batch: Vec<BoxedOp> = pending.drain(..).collect();
            last_batch = batch.len();
            let carried = self.run_batch(batch);
            pending.extend(carried);
        }
    }

    /// Takes what is queued. After a batch of several requests, waits up to
    /// `commit_delay` for as many to be queued again (PostgreSQL's
    /// `commit_delay`): the callers just answered usually come straight back,
    /// and one commit for both groups beats two. A lone request (an idle
    /// daemon) is never delayed.
    fn gather(
        &self,
        requests: &mut mpsc::Receiver<BoxedOp>,
        pending: &mut VecDeque<BoxedOp>,
        last_batch: usize,
    ) {
        let drain = |requests: &mut mpsc::Receiver<BoxedOp>, pending: &mut VecDeque<BoxedOp>| {
            while pending.len() < self.max_batch {
                match requests.try_recv() {
                    Ok(op) => pending.push_back(op),
                    Err(_) => return false,
                }
            }
            true
        };
        if drain(requests, pending) || last_batch < 2 || self.commit_delay.is_zero() {
            return;
        }
        let target = last_batch.min(self.max_batch);
        let deadline = Instant::now() + self.commit_delay;
        while pending.len() < target {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            // Senders unpark this thread after queueing a request.
            std::thread::park_timeout(deadline - now);
            if drain(requests, pending) {
                return;
            }
        }
    }

    /// While every queued request is patient, waits up to `patient_delay`
    /// (from now: the first of them was just taken off the channel) for more,
    /// and stops at the first impatient one or when the batch is full.
    fn wait_for_company(
        &self,
        requests: &mut mpsc::Receiver<BoxedOp>,
        pending: &mut VecDeque<BoxedOp>,
    ) {
        if self.patient_delay.is_zero() || !pending.iter().all(|op| op.patient()) {
            return;
        }
        let deadline = Instant::now() + self.patient_delay;
        // Set before looking at the channel: a patient request queued after
        // the last look waits for the deadline, as it would anyway.
        self.shared.awaiting_company.store(true, Ordering::Release);
        self.take_company(requests, pending, deadline);
        self.shared.awaiting_company.store(false, Ordering::Release);
    }

    /// The loop of [`Self::wait_for_company`].
    fn take_company(
        &self,
        requests: &mut mpsc::Receiver<BoxedOp>,
        pending: &mut VecDeque<BoxedOp>,
        deadline: Instant,
    ) {
        while pending.len() < self.max_batch {
            match requests.try_recv() {
                Ok(op) => {
                    let patient = op.patient();
                    pending.push_back(op);
                    if !patient {
                        return;
                    }
                }
                // Closing: commit what is queued now.
                Err(mpsc::error::TryRecvError::Disconnected) => return,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    // Senders of impatient requests (and of the one
                    // that fills the batch) unpark this thread.
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Applies one request right away, on the calling thread (used at open,
    /// before the writer thread exists).
    pub(super) fn run_now(&mut self, op: BoxedOp) {
        let carried = self.run_batch(vec![op]);
        // A single request has nothing after it to carry over.
        debug_assert!(carried.is_empty());
    }

    /// Applies a batch in one transaction and answers its callers. Returns the
    /// operations not yet applied when an operation aborted the transaction.
    fn run_batch(&mut self, batch: Vec<BoxedOp>) -> Vec<BoxedOp> {
        let path = self.shared.path.clone();
        let fail_all = |batch: Vec<BoxedOp>, error: Error| {
            for op in batch {
                op.finish(Some(&error));
            }
        };
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(error) => {
                fail_all(batch, backend(&path, "begin write transaction")(error));
                return Vec::new();
            }
        };
        if let Err(error) = txn.set_durability(Durability::Immediate) {
            fail_all(batch, backend(&path, "set durability")(error));
            return Vec::new();
        }
        if self.quick_repair {
            txn.set_quick_repair(true);
        }
        let started = Instant::now();
        let now = self.shared.clock.now();
        let time_zone = self.shared.time_zone();
        let mut applied: Vec<BoxedOp> = Vec::with_capacity(batch.len());
        let mut remaining = batch.into_iter();
        let mut abort = None;
        let mut flush_failure = None;
        let woken;
        {
            let mut ctx = match Ctx::open(&txn, now, time_zone, &mut self.ids, &path) {
                Ok(ctx) => ctx,
                Err(error) => {
                    fail_all(remaining.collect(), error);
                    return Vec::new();
                }
            };
            for mut op in remaining.by_ref() {
                match op.apply(&mut ctx) {
                    Applied::Continue => applied.push(op),
                    Applied::Abort(error) => {
                        op.finish(None);
                        abort = Some(error);
                        break;
                    }
                }
            }
            // Counters staged by the batch are written once; failing here is a
            // storage failure that takes the whole batch down.
            if abort.is_none() {
                flush_failure = ctx.flush().err();
            }
            woken = std::mem::take(&mut ctx.woken);
        }
        let carried: Vec<BoxedOp> = remaining.collect();
        let failure = match (abort, flush_failure) {
            (Some(cause), _) => Some(Error::BatchAborted {
                path: path.clone(),
                cause: Arc::new(cause),
            }),
            (None, failure) => failure,
        };
        if let Some(error) = failure {
            if let Err(abort_error) = txn.abort() {
                tracing::error!(path = %path.display(), error = %abort_error, "aborting a state transaction failed");
            }
            fail_all(applied, error);
            return carried;
        }
        let count = applied.len() as u64;
        let committing = Instant::now();
        let committed = txn.commit();
        self.shared
            .apply_micros
            .fetch_add(micros(committing - started), Ordering::Relaxed);
        self.shared
            .commit_micros
            .fetch_add(micros(committing.elapsed()), Ordering::Relaxed);
        match committed {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.write_ops.fetch_add(count, Ordering::Relaxed);
                self.shared
                    .largest_batch
                    .fetch_max(count, Ordering::Relaxed);
                self.shared.wake(&woken);
                for op in applied {
                    op.finish(None);
                }
            }
            Err(error) => {
                self.shared.failed_commits.fetch_add(1, Ordering::Relaxed);
                let error = backend(&path, "commit")(error);
                tracing::error!(%error, requests = count, "state commit failed");
                fail_all(applied, error);
            }
        }
        carried
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_request_that_ends_a_wait_for_company_wakes_the_writer() {
        let shared = Shared::new(
            PathBuf::from("state.redb"),
            Arc::new(crate::clock::SystemClock),
            TimeZone::UTC,
        );
        // Not waiting for company: every request wakes the writer (it may
        // be waiting for a commit-delay batch).
        assert!(shared.must_wake_writer(true, 1, 1024));
        assert!(shared.must_wake_writer(false, 1, 1024));
        shared.awaiting_company.store(true, Ordering::Release);
        assert!(
            !shared.must_wake_writer(true, 1, 1024),
            "another patient request does not end the wait"
        );
        assert!(
            shared.must_wake_writer(false, 1, 1024),
            "an impatient one does"
        );
        assert!(
            shared.must_wake_writer(true, 1024, 1024),
            "so does a patient one that finds a whole batch queued"
        );
    }
}
