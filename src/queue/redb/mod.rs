//! The redb backend of [`StateStore`]: one file, `<state_dir>/arauto.redb`.
//!
//! Layout (see `tables.rs`): job bodies as versioned JSON keyed by time-ordered
//! id; a `(channel, due_ms, id)` index of pending jobs (due lookup and "next due"
//! are range scans); `(lease_ms, id)` for running jobs; `(finished_ms, id)`
//! and `(channel, finished_ms, id)` for finished ones; dedupe keys; an
//! `(store, order, id)` index; transactional per-channel counters; cursors, order
//! records, statuses and daily counters.
//!
//! Writes: one writer thread, group commit (see `writer.rs`). Reads: MVCC read
//! transactions on the caller's side (point reads inline, scans on tokio's
//! blocking pool), never blocked by the writer.
//!
//! Opening is blocking (file I/O, and after a crash redb's repair walks the whole
//! file) and is cheap otherwise: apart from the running index, nothing is
//! scanned. Every job found running at open is orphaned (one process per file)
//! and is recovered at once.

mod migrate;
mod ops;
mod portable;
mod reads;
mod record;
mod tables;
mod writer;

pub(crate) use self::record::body_of;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;

use ::redb::{Builder, Database, DatabaseError, Durability, ReadableDatabase, TableError};
use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot};

use self::reads::Reader;
use self::tables::{META, META_SCHEMA_KEY, SCHEMA_VERSION, backend};
use self::writer::{BoxedOp, Ctx, PendingOp, Shared, Writer};
use super::{
    CancelOutcome, ChannelStats, ChannelStatus, ChannelWatch, Claim, Completed, Completion,
    CounterQuery, CounterRow, EnqueueOutcome, Error, FinishedJob, Job, JobFilter, JobId, NewJob,
    PollCommit, PollOutcome, PurgeFilter, RequeueOutcome, Result, StateStore, StatusUpdate,
    StoreStats, StoreStatus, VerifyReport,
};
use crate::clock::{SharedClock, SystemClock};
use crate::job::IdGenerator;

/// File name of the database inside the state directory.
pub const FILE_NAME: &str = "arauto.redb";

/// redb's page cache by default: 16 MiB. redb keeps copies of the pages it
/// read or wrote in its own cache, up to this size (its default is 1 GiB),
/// and the daemon's RSS counts every byte of it; the kernel's page cache
/// holds the database file anyway and does not count against the daemon. A
/// sweep touches a few pages per changed order (its record, its jobs, their
/// indexes) and a group commit writes a few MiB at most, so 16 MiB keeps the
/// B-tree's upper levels and the hot leaves while a state of hundreds of MiB
/// (10,000 stores) no longer fills 64 MiB of anonymous memory with leaves
/// read once per sweep. See docs/BENCHMARKS.md, "Where the cost goes: an
/// idle store".
pub const DEFAULT_CACHE_SIZE_BYTES: usize = 16 * 1024 * 1024;

/// Tuning of a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// redb's own page cache (its read cache and write buffer together), in
    /// bytes: default [`DEFAULT_CACHE_SIZE_BYTES`].
    pub cache_size_bytes: usize,
    /// Most write requests applied in one commit. 1 turns group commit off (one
    /// commit per request: only useful as a benchmark baseline).
    pub max_batch: usize,
    /// The zone whose local dates the daily counters use (the daemon passes its
    /// configured `timezone`).
    pub time_zone: TimeZone,
    /// Source of `created_at`, finish times and recovery times.
    pub clock: SharedClock,
    /// Record the allocator state with every commit so that opening after a
    /// crash is instant instead of a walk over the whole file (redb's
    /// `set_quick_repair`; implies a second fsync per commit). Worth it for very
    /// large files; group commit absorbs most of the cost.
    pub quick_repair: bool,
    /// After committing a batch of several requests, how long the writer may
    /// wait for the answered callers to come back before the next commit, so
    /// that one commit serves them all (PostgreSQL's `commit_delay`). Never
    /// applies to a lone request. Zero disables it.
    pub commit_delay: std::time::Duration,
    /// How long poll commits, when nothing else is queued, may wait for other
    /// poll commits to share their fsync (see `writer.rs`). The poller waits
    /// that much longer for its commit; durability is unchanged. Zero
    /// disables it.
    pub poll_commit_delay: std::time::Duration,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            cache_size_bytes: DEFAULT_CACHE_SIZE_BYTES,
            max_batch: 1024,
            time_zone: TimeZone::UTC,
            clock: Arc::new(SystemClock),
            quick_repair: false,
            commit_delay: std::time::Duration::from_micros(COMMIT_DELAY_MICROS),
            poll_commit_delay: std::time::Duration::from_millis(POLL_COMMIT_DELAY_MILLIS),
        }
    }
}

/// Default [`RedbOptions::commit_delay`]: well under a disk sync, far under
/// anything a notification's latency could notice.
const COMMIT_DELAY_MICROS: u64 = 200;

/// Default [`RedbOptions::poll_commit_delay`]: a poll runs every few
/// minutes and nobody waits on its commit but its poller, while every
/// commit costs an fsync and rewrites the B-trees' upper pages. At 10,000
/// stores polled every 5 minutes (33 sweeps a second) this lets ~3 sweeps
/// share a commit; at a sweep every few milliseconds, dozens.
const POLL_COMMIT_DELAY_MILLIS: u64 = 100;

/// Writes queued for the writer before callers wait for room (back-pressure).
const REQUEST_QUEUE_LEN: usize = 4096;

/// The redb-backed [`StateStore`]. Cheap to clone (all clones share one writer);
/// the file is closed when the last clone is dropped or [closed](Self::close).
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<BoxedOp>>,
    writer: Option<JoinHandle<()>>,
    /// The writer's largest batch (a full batch ends its wait for company).
    max_batch: usize,
    recovered_at_open: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit;
        // joining it makes sure the file lock is released when we return.
        self.requests.take();
        // A handle dropped by the writer itself (inside a status update closure)
        // must not wait for its own thread.
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.shared.path.display(), "the state writer thread panicked");
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.shared.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Enqueues jobs in one transaction (the daemon enqueues through
    /// [`StateStore::commit_poll`]; tools and tests use this). Deduplicated like
    /// a poll commit; an invalid job rejects the whole call.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<EnqueueOutcome>> {
        self.submit(move |ctx| ctx.enqueue(jobs)).await
    }

    /// Moves a running claim's lease to `until`.
    pub async fn extend_lease(&self, claim: Claim, until: Timestamp) -> Result<Job> {
        self.submit(move |ctx| ctx.extend_lease(claim, until)).await
    }

    /// Returns running jobs whose lease ended at or before `now` to pending
    /// (due now), or to dead-letter if that claim was their last attempt.
    /// Claims do this on their own; this is for tests and tools.
    pub async fn recover_expired_leases(&self, now: Timestamp) -> Result<usize> {
        let lease_before_ms = crate::job::timestamp_ms(now);
        self.submit(move |ctx| ctx.recover(lease_before_ms, now))
            .await
    }

    /// Changes the channel's status in one transaction and returns the result.
    pub async fn update_channel_status(
        &self,
        channel: &str,
        mut update: StatusUpdate<ChannelStatus>,
    ) -> Result<ChannelStatus> {
        let channel = channel.to_owned();
        self.submit(move |ctx| ctx.update_channel(&channel, &mut *update))
            .await
    }

    /// Checks every record and index against each other (full scan; for
    /// tests and repair tools).
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.scan(|reader| reader.verify()).await
    }

    /// Write-path statistics since this handle was opened.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats()
    }

    /// Opens (creating if needed) `<state_dir>/arauto.redb`. Blocking.
    pub fn open(state_dir: &Path, options: RedbOptions) -> Result<Self> {
        std::fs::create_dir_all(state_dir).map_err(|error| Error::Open {
            path: state_dir.to_path_buf(),
            source: Arc::new(error),
        })?;
        Self::open_file(state_dir.join(FILE_NAME), options)
    }

    /// Opens (creating if needed) the database at `path`. Blocking.
    ///
    /// Refuses a file whose schema is newer than this build's, and a file another
    /// process holds. Jobs left running by a previous process are recovered.
    pub fn open_file(path: impl Into<PathBuf>, options: RedbOptions) -> Result<Self> {
        let path = path.into();
        let db = Builder::new()
            .set_cache_size(options.cache_size_bytes)
            .create(&path)
            .map_err(|error| match error {
                DatabaseError::DatabaseAlreadyOpen => Error::Locked { path: path.clone() },
                other => Error::Open {
                    path: path.clone(),
                    source: Arc::new(::redb::Error::from(other)),
                },
            })?;
        open_schema(&db, &path)?;
        let last_id = {
            let reader = Reader::begin(&db, &path)?;
            reader.last_job_id()?
        };
        let db = Arc::new(db);
        let shared = Arc::new(Shared::new(path.clone(), options.clock, options.time_zone));
        let max_batch = options.max_batch.max(1);
        let mut writer = Writer {
            db: Arc::clone(&db),
            shared: Arc::clone(&shared),
            ids: IdGenerator::after(last_id),
            max_batch,
            quick_repair: options.quick_repair,
            commit_delay: options.commit_delay,
            patient_delay: options.poll_commit_delay,
        };

        // One process per file: whatever is running now was orphaned by a crash.
        let (reply, mut recovered) = oneshot::channel();
        let now = shared.clock.now();
        let recover: BoxedOp = Box::new(PendingOp::new(
            move |ctx: &mut Ctx<'_>| ctx.recover(u64::MAX, now),
            reply,
        ));
        writer.run_now(recover);
        let recovered_at_open = match recovered.try_recv() {
            Ok(result) => result?,
            Err(_) => return Err(Error::Closed),
        };
        if recovered_at_open > 0 {
            tracing::warn!(
                path = %path.display(),
                jobs = recovered_at_open,
                "recovered jobs that were being delivered when arauto stopped; they will be retried (or dead-lettered if that was their last attempt)"
            );
        }

        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE_LEN);
        let thread = std::thread::Builder::new()
            .name("arauto-state-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|error| Error::Open {
                path: path.clone(),
                source: Arc::new(error),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                shared,
                requests: Some(requests),
                writer: Some(thread),
                max_batch,
                recovered_at_open,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// How many running jobs were recovered when the file was opened.
    pub fn recovered_at_open(&self) -> usize {
        self.inner.recovered_at_open
    }

    /// Drops this handle off the async threads; if it was the last one, waits for
    /// the queued writes to commit and closes the file.
    pub async fn close(self) {
        let closing = tokio::task::spawn_blocking(move || drop(self));
        if closing.await.is_err() {
            tracing::error!("closing the state store panicked");
        }
    }

    async fn submit<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
    {
        self.submit_op(|reply| Box::new(PendingOp::new(operation, reply)))
            .await
    }

    /// [`Self::submit`] for a request that may wait for company before its
    /// commit (a poll commit; see `writer.rs`).
    async fn submit_patient<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
    {
        self.submit_op(|reply| Box::new(PendingOp::patient(operation, reply)))
            .await
    }

    async fn submit_op<T: Send + 'static>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T>>) -> BoxedOp,
    ) -> Result<T> {
        let requests = self.inner.requests.as_ref().ok_or(Error::Closed)?;
        let (reply, response) = oneshot::channel();
        let op = op(reply);
        let patient = op.patient();
        requests.send(op).await.map_err(|_| Error::Closed)?;
        let queued = requests.max_capacity() - requests.capacity();
        if let Some(writer) = &self.inner.writer
            && self
                .inner
                .shared
                .must_wake_writer(patient, queued, self.inner.max_batch)
        {
            // Ends a commit-delay wait early (a no-op unless the writer is
            // parked); a patient request leaves a wait for company alone.
            writer.thread().unpark();
        }
        response.await.map_err(|_| Error::Closed)?
    }

    /// A point read, inline (microseconds; never waits for the writer).
    fn read<T>(&self, read: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let reader = Reader::begin(&self.inner.db, &self.inner.shared.path)?;
        read(&reader)
    }

    /// A scan, on tokio's blocking pool.
    async fn scan<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            let reader = Reader::begin(&inner.db, &inner.shared.path)?;
            read(&reader)
        });
        task.await.map_err(|error| Error::Backend {
            path: self.inner.shared.path.clone(),
            op: "read",
            source: Arc::new(error),
        })?
    }
}

/// Creates the tables of a new file, or checks the schema of an existing one.
fn open_schema(db: &Database, path: &Path) -> Result<()> {
    let found = {
        let txn = db
            .begin_read()
            .map_err(backend(path, "begin read transaction"))?;
        match txn.open_table(META) {
            Ok(meta) => meta
                .get(META_SCHEMA_KEY)
                .map_err(backend(path, "read schema version"))?
                .map(|guard| guard.value()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(backend(path, "read schema version")(error)),
        }
    };
    if let Some(found) = found
        && found > SCHEMA_VERSION
    {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let mut txn = db
        .begin_write()
        .map_err(backend(path, "begin write transaction"))?;
    txn.set_durability(Durability::Immediate)
        .map_err(backend(path, "set durability"))?;
    // An older layout is upgraded in this same transaction, before the
    // tables are opened: all of it commits, or none.
    if let Some(found) = found
        && found < SCHEMA_VERSION
    {
        migrate::migrate(&txn, found, path)?;
        tracing::info!(
            path = %path.display(),
            "state database upgraded from schema {found} to {SCHEMA_VERSION}"
        );
    }
    {
        let mut meta = txn
            .open_table(META)
            .map_err(backend(path, "create tables"))?;
        if found != Some(SCHEMA_VERSION) {
            meta.insert(META_SCHEMA_KEY, SCHEMA_VERSION)
                .map_err(backend(path, "write schema version"))?;
        }
    }
    // Opening every table creates the missing ones (and checks their types).
    let mut ids = IdGenerator::after(None);
    drop(Ctx::open(
        &txn,
        Timestamp::UNIX_EPOCH,
        TimeZone::UTC,
        &mut ids,
        path,
    )?);
    txn.commit().map_err(backend(path, "commit"))?;
    Ok(())
}

#[async_trait]
impl StateStore for RedbStore {
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        max: usize,
        lease: SignedDuration,
    ) -> Result<Vec<Job>> {
        let channel = channel.to_owned();
        self.submit(move |ctx| ctx.claim(&channel, now, max, lease))
            .await
    }

    async fn complete_noting_fallback(
        &self,
        claim: Claim,
        completion: Completion,
    ) -> Result<Completed> {
        self.submit(move |ctx| ctx.complete(claim, completion))
            .await
    }

    /// One write request, so one commit: the claim sees the completion.
    async fn complete_and_claim_next(
        &self,
        claim: Claim,
        completion: Completion,
        channel: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<(Completed, Vec<Job>)> {
        let channel = channel.to_owned();
        self.submit(move |ctx| {
            let completed = ctx.complete(claim, completion)?;
            let next = ctx.claim(&channel, now, 1, lease)?;
            Ok((completed, next))
        })
        .await
    }

    async fn cancel(&self, ids: Vec<JobId>, reason: String) -> Result<Vec<(JobId, CancelOutcome)>> {
        self.submit(move |ctx| ctx.cancel(&ids, &reason)).await
    }

    async fn requeue(&self, ids: Vec<JobId>) -> Result<Vec<(JobId, RequeueOutcome)>> {
        self.submit(move |ctx| ctx.requeue(&ids)).await
    }

    async fn requeue_dead(&self, filter: JobFilter) -> Result<Vec<JobId>> {
        self.submit(move |ctx| ctx.requeue_dead(&filter)).await
    }

    async fn purge(&self, filter: PurgeFilter) -> Result<usize> {
        self.submit(move |ctx| ctx.purge(&filter)).await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.read(|reader| reader.get(id))
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        self.scan(move |reader| reader.list(&filter)).await
    }

    async fn jobs_for_order(&self, store: &str, order_id: &str) -> Result<Vec<Job>> {
        self.read(|reader| reader.jobs_for_order(store, order_id))
    }

    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>> {
        self.read(|reader| reader.next_due(channel))
    }

    async fn channel_stats(&self, channel: &str) -> Result<ChannelStats> {
        self.read(|reader| reader.channel_stats(channel))
    }

    async fn channels(&self) -> Result<Vec<String>> {
        self.scan(|reader| reader.channels()).await
    }

    fn watch_channel(&self, channel: &str) -> ChannelWatch {
        ChannelWatch::new(self.inner.shared.watch_channel(channel))
    }

    fn watch_store(&self, store: &str) -> ChannelWatch {
        ChannelWatch::new(self.inner.shared.watch_store(store))
    }

    async fn cursor(&self, store: &str) -> Result<Option<String>> {
        self.read(|reader| reader.cursor(store))
    }

    async fn order_record(&self, store: &str, order_id: &str) -> Result<Option<Vec<u8>>> {
        self.read(|reader| reader.order_record(store, order_id))
    }

    async fn commit_poll(&self, commit: PollCommit) -> Result<PollOutcome> {
        self.submit_patient(move |ctx| ctx.commit_poll(commit))
            .await
    }

    async fn store_status(&self, store: &str) -> Result<Option<StoreStatus>> {
        self.read(|reader| reader.store_status(store))
    }

    async fn stores(&self) -> Result<Vec<String>> {
        self.scan(|reader| reader.stores()).await
    }

    async fn put_store_status(&self, store: &str, status: StoreStatus) -> Result<()> {
        let store = store.to_owned();
        self.submit(move |ctx| ctx.put_store_status(&store, &status))
            .await
    }

    async fn update_store_status(
        &self,
        store: &str,
        mut update: StatusUpdate<StoreStatus>,
    ) -> Result<StoreStatus> {
        let store = store.to_owned();
        self.submit(move |ctx| ctx.update_store_status(&store, &mut *update))
            .await
    }

    async fn resume_store(&self, store: &str) -> Result<StoreStatus> {
        let name = store.to_owned();
        let status = self
            .submit(move |ctx| {
                ctx.update_store_status(&name, &mut |status: &mut StoreStatus| {
                    status.paused = None;
                    status.credentials_recheck_at = None;
                })
            })
            .await?;
        self.inner.shared.wake_store(store);
        Ok(status)
    }

    async fn channel_status(&self, channel: &str) -> Result<ChannelStatus> {
        self.read(|reader| reader.channel_status(channel))
    }

    async fn pause_channel(
        &self,
        channel: &str,
        reason: String,
        automatic: bool,
    ) -> Result<ChannelStatus> {
        let channel = channel.to_owned();
        self.submit(move |ctx| ctx.pause_channel(&channel, reason, automatic))
            .await
    }

    async fn resume_channel(&self, channel: &str) -> Result<ChannelStatus> {
        let channel = channel.to_owned();
        self.submit(move |ctx| ctx.update_channel(&channel, &mut |status| status.paused = None))
            .await
    }

    async fn counters(&self, query: CounterQuery) -> Result<Vec<CounterRow>> {
        self.scan(move |reader| reader.counters(&query)).await
    }

    async fn recent(&self, channel: &str, since: Timestamp) -> Result<Vec<FinishedJob>> {
        let channel = channel.to_owned();
        self.scan(move |reader| reader.recent(&channel, since))
            .await
    }

    async fn entered_since(&self, since: Timestamp, limit: usize) -> Result<Vec<Job>> {
        self.scan(move |reader| reader.entered_since(since, limit))
            .await
    }

    fn set_time_zone(&self, time_zone: TimeZone) {
        *self
            .inner
            .shared
            .time_zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = time_zone;
    }
}

#[cfg(test)]
mod tests;
