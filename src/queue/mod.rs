//! The durable queue engine and state store.
//!
//! Everything arauto must not lose lives behind one narrow, backend-neutral
//! trait, [`StateStore`]: the send queue (jobs with due times, leases, retries,
//! dead-letter), the per-store poll state (cursor, order records, status), the
//! per-channel pacing state and the delivery history (final outcome per job plus
//! daily counters). Connectors, senders and policy code talk to the trait only,
//! so a distributed backend can follow without touching them.
//!
//! The one backend today is [`redb::RedbStore`] (file `<state_dir>/arauto.redb`):
//! every write goes through a single writer thread that applies all concurrent
//! requests in one durable transaction (group commit) and answers each caller
//! only after that commit.
//!
//! Semantics every backend keeps:
//!
//! * **At least once.** A job is claimed under a lease; a dispatcher that dies
//!   leaves it running until the lease expires, then it is due again (or dead,
//!   if the crashed attempt was its last). Completions present their [`Claim`],
//!   so a late completion from an expired lease is refused, not applied twice.
//! * **Attempts are spent at claim** (as in River), so a job that crashes the
//!   daemon still reaches dead-letter; provider back-pressure retries
//!   (`spend_attempt: false`) give the attempt back.
//! * **Dedupe keys** are held by a job until it is pruned, or until it is
//!   cancelled (a cancelled notification was never sent, so planning it again
//!   later keeps "at most once"; cancelling a fallback job frees the keys of
//!   the skipped job that fell back to it too, as neither was sent); enqueuing a job whose key is held returns the
//!   holder's id and writes nothing.
//! * **One poll, one commit**: [`StateStore::commit_poll`] writes the cursor,
//!   order records, new jobs, cancellations and store status atomically.
//! * Local days (counters, pacing) come from the caller or from the time zone
//!   given to [`StateStore::set_time_zone`]; the store has no other notion of
//!   local time.

mod error;
pub mod fence;
pub mod nats;
pub mod portable;
pub mod redb;
mod types;

use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

pub use error::{BackendCause, Error, Result};
pub use fence::{Fence, Scope, Unfenced};
pub use types::{
    ATTEMPT_LOG_LEN, AttemptRecord, CancelOutcome, ChannelStats, ChannelStatus, Claim, ClockSkew,
    Completed, Completion, CounterQuery, CounterRow, EnqueueOutcome, ErrorClass, FallbackCount,
    FinishedJob, Job, JobBody, JobFilter, JobId, JobState, LastError, NewJob, Outcome, PageCapHit,
    ParseJobIdError, ParseJobStateError, Pause, PollCommit, PollOutcome, PurgeFilter, Receipt,
    RequeueOutcome, StoreStats, StoreStatus, UnreadableOrder, VerifyReport,
};
pub use types::{SKIPPED_DAYS_KEPT, SkippedCount};

/// The state store as the daemon's services share it.
pub type SharedStore = std::sync::Arc<dyn StateStore>;

/// A status update applied inside the store's write transaction. It may run more
/// than once on backends that retry optimistic writes, so it must only depend on
/// the value it is given.
pub type StatusUpdate<T> = Box<dyn FnMut(&mut T) + Send + 'static>;

/// Wakes a channel's dispatcher when its queue changed (a job was enqueued,
/// requeued, retried, recovered, or the channel resumed), so it can sleep until
/// the next due time *or* this, instead of polling.
#[derive(Debug, Clone)]
pub struct ChannelWatch {
    receiver: watch::Receiver<u64>,
}

impl ChannelWatch {
    /// Wraps a generation counter that the store bumps on every change of the channel.
    pub fn new(receiver: watch::Receiver<u64>) -> Self {
        Self { receiver }
    }

    /// Returns once the channel changed since this watch was created or last
    /// returned; changes that happen between calls are not lost. Returns `false`
    /// if the store was closed (nothing will change any more).
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}

/// [`StateStore::prune`]'s work, for backends that add their own to it:
/// deletes every finished job older than `finished_before`, `batch` per
/// [`StateStore::purge`] so other writers are not held up.
pub async fn purge_in_batches<S: StateStore + ?Sized>(
    store: &S,
    finished_before: Timestamp,
    batch: usize,
) -> Result<usize> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = store
            .purge(PurgeFilter {
                finished_before,
                states: Vec::new(),
                limit: batch,
            })
            .await?;
        total += deleted;
        if deleted < batch {
            return Ok(total);
        }
    }
}

/// The durable state of arauto: queue engine, poll state, pacing state and
/// delivery history, as the daemon and the CLI use it (and nothing more: a
/// backend's tools and test hooks, like the redb backend's `enqueue`,
/// `verify` or `stats`, stay inherent methods of that backend).
///
/// Every backend keeps these semantics (the redb backend today; a NATS
/// JetStream backend for the cluster later):
///
/// * **Durability**: a write is durable when its call returns; dropping the
///   returned future does not cancel a write already submitted.
/// * **Enqueue dedupe**: a job whose dedupe key is already held (also by an
///   earlier job of the same commit) is not written; the outcome names the
///   holder. A job holds its keys until it is pruned, or until it is
///   cancelled (a cancelled notification was never sent, so planning it again
///   keeps "at most once").
/// * **Claim, lease, fencing**: a claim takes due jobs of one channel, lowest
///   priority value first among the earliest-due, then by due time; each is
///   `Running` under a lease with `attempt + 1` (attempts are spent at claim,
///   so a job that crashes the daemon still reaches dead-letter). A running
///   job whose lease ended is due again on a later claim, or dead if that was
///   its last attempt. Completions present their [`Claim`]: a completion from
///   an expired claim is refused ([`Error::StaleClaim`]), never applied twice.
/// * **Completion**: exactly one terminal or retry transition per claim, with
///   the daily counters and the channel's pacing counters in the same write.
/// * **Cancel** touches pending jobs only; running and finished ones are
///   reported, not changed.
/// * **Expiry**: a job past `expires_at` is never handed out; a claim that
///   meets it moves it to `Expired`.
/// * **Ordering**: within a channel, due jobs come out by priority then due
///   time; job ids grow with creation time.
/// * **Poll commit atomicity**: [`StateStore::commit_poll`] writes cursor,
///   order records, new jobs, cancellations and store status all at once or
///   not at all.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    // ----- queue -----

    /// Claims up to `max` jobs of `channel` due at `now`, lowest priority value first
    /// among the due jobs it looks at (the earliest-due few hundred), then by due
    /// time. Each claimed job is `Running` with `attempt + 1` and a lease until
    /// `now + lease`. Stale jobs met on the way become `Expired`. A paused channel
    /// yields nothing.
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        max: usize,
        lease: SignedDuration,
    ) -> Result<Vec<Job>>;

    /// Ends a running claim. Fails with [`Error::NotRunning`] or
    /// [`Error::StaleClaim`] (nothing written) if the job is not running under
    /// this claim. Returns the job as stored afterwards (a `Retry` may have
    /// turned into `Dead` or `Expired`).
    async fn complete(&self, claim: Claim, completion: Completion) -> Result<Job> {
        Ok(self.complete_noting_fallback(claim, completion).await?.job)
    }

    /// [`StateStore::complete`], also saying which job a
    /// [`Completion::FellBack`] inserted on the fallback channel (the
    /// dispatcher counts only real insertions as fallbacks).
    async fn complete_noting_fallback(
        &self,
        claim: Claim,
        completion: Completion,
    ) -> Result<Completed>;

    /// [`StateStore::complete_noting_fallback`] of `claim`, then, if that
    /// succeeded, a [`StateStore::claim`] of at most one due job of
    /// `channel` (the completed job's) at `now`, which sees the completion.
    /// A channel sending one message at a time chains its sends this way,
    /// so that a backend able to do both in one write (redb: one commit)
    /// pays one durable write per message instead of two. Either way each
    /// part keeps its own semantics; a failed completion claims nothing.
    async fn complete_and_claim_next(
        &self,
        claim: Claim,
        completion: Completion,
        channel: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<(Completed, Vec<Job>)> {
        let completed = self.complete_noting_fallback(claim, completion).await?;
        let next = self.claim(channel, now, 1, lease).await?;
        Ok((completed, next))
    }

    /// Cancels pending jobs; running and finished ones are reported, not touched.
    async fn cancel(&self, ids: Vec<JobId>, reason: String) -> Result<Vec<(JobId, CancelOutcome)>>;

    /// Makes dead, expired, cancelled or skipped jobs pending again, due now, with
    /// attempts reset and no expiry (an operator asked for it). Sent jobs are never
    /// requeued.
    async fn requeue(&self, ids: Vec<JobId>) -> Result<Vec<(JobId, RequeueOutcome)>>;

    /// Requeues the dead and expired jobs matching `filter` (its `state` may narrow
    /// it to one of the two); at most `filter.limit` (default 10 000) per call.
    async fn requeue_dead(&self, filter: JobFilter) -> Result<Vec<JobId>>;

    /// Deletes finished jobs matching `filter` (with their dedupe keys and index
    /// entries) in one transaction. Returns how many were deleted.
    async fn purge(&self, filter: PurgeFilter) -> Result<usize>;

    /// Deletes every finished job older than `finished_before`, `batch` per
    /// transaction so other writers are not held up. Returns how many were deleted.
    async fn prune(&self, finished_before: Timestamp, batch: usize) -> Result<usize> {
        purge_in_batches(self, finished_before, batch).await
    }

    /// One job.
    async fn get(&self, id: JobId) -> Result<Option<Job>>;

    /// Jobs matching `filter`. Order: pending by due time; running by lease end;
    /// a finished state by finish time, newest first; otherwise newest first.
    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>>;

    /// Every job of one order, oldest first (index lookup, no scan).
    async fn jobs_for_order(&self, store: &str, order_id: &str) -> Result<Vec<Job>>;

    /// The earliest due time of the channel's pending jobs (may be in the past).
    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>>;

    /// Called by a channel's dispatcher as it starts, before its first
    /// claim: every job of `channel` still `Running` belongs to a dispatcher
    /// that is gone, and goes back to pending due at `now` (or to
    /// dead-letter after its last attempt), as when its lease expires, but
    /// without waiting for the lease. Returns how many.
    ///
    /// In a cluster a dispatcher starts only on the node that just took the
    /// channel's lease (expired or released by its previous holder), and
    /// the previous holder can no longer spend those claims: its fence
    /// stops its sends and `complete` refuses a claim taken over (the job
    /// is no longer running under it). The default does nothing: on one
    /// node (redb) a restart's leftovers wait for their lease as before.
    async fn take_over_channel(&self, channel: &str, now: Timestamp) -> Result<usize> {
        let _ = (channel, now);
        Ok(0)
    }

    /// Depth of one channel.
    async fn channel_stats(&self, channel: &str) -> Result<ChannelStats>;

    /// Every channel that has had jobs or a channel status.
    async fn channels(&self) -> Result<Vec<String>>;

    /// A wake-up signal for `channel`'s dispatcher.
    fn watch_channel(&self, channel: &str) -> ChannelWatch;

    /// A wake-up signal for `store`'s poller, raised by [`Self::resume_store`].
    fn watch_store(&self, store: &str) -> ChannelWatch;

    // ----- poll state -----

    /// A poll of `store` starts (the sweep calls it before reading the
    /// store's status and cursor). The cluster backend notes the revisions
    /// the poll then reads and writes the poll's cursor, order records and
    /// status back only if they are unchanged; one node needs nothing.
    fn poll_started(&self, _store: &str) {}

    /// The store's connector cursor.
    async fn cursor(&self, store: &str) -> Result<Option<String>>;

    /// The stored record of one order (opaque to the store).
    async fn order_record(&self, store: &str, order_id: &str) -> Result<Option<Vec<u8>>>;

    /// Commits one poll atomically: cursor, order records, jobs (deduplicated),
    /// cancellations (pending only) and status. A job for another store rejects
    /// the whole commit before anything is written.
    async fn commit_poll(&self, commit: PollCommit) -> Result<PollOutcome>;

    /// The store's status (`None` if never written).
    async fn store_status(&self, store: &str) -> Result<Option<StoreStatus>>;

    /// Every store with a status.
    async fn stores(&self) -> Result<Vec<String>>;

    /// Replaces the store's status.
    async fn put_store_status(&self, store: &str, status: StoreStatus) -> Result<()>;

    /// Changes the store's status (starting from the default if none) in one
    /// transaction and returns the result.
    async fn update_store_status(
        &self,
        store: &str,
        update: StatusUpdate<StoreStatus>,
    ) -> Result<StoreStatus>;

    /// Lifts the store's polling pause and wakes its poller, which polls at once.
    async fn resume_store(&self, store: &str) -> Result<StoreStatus>;

    // ----- channels -----

    /// The channel's status (default if never written).
    async fn channel_status(&self, channel: &str) -> Result<ChannelStatus>;

    /// Pauses a channel: claims on its channel return nothing until it is resumed.
    /// Keeps the original reason and time if it is already paused.
    /// `automatic`: set by arauto on a misconfigured error (see [`Pause::automatic`]).
    async fn pause_channel(
        &self,
        channel: &str,
        reason: String,
        automatic: bool,
    ) -> Result<ChannelStatus>;

    /// Resumes a paused channel and wakes its dispatcher.
    async fn resume_channel(&self, channel: &str) -> Result<ChannelStatus>;

    // ----- history -----

    /// Daily counters (entered, sent, dead, cancelled, expired, skipped per
    /// day, store, channel and kind), updated in the same transaction as each
    /// transition. A job that dies and is requeued and then sent counts once as
    /// dead and once as sent.
    async fn counters(&self, query: CounterQuery) -> Result<Vec<CounterRow>>;

    /// Jobs of `channel` that finished at or after `since`, oldest first.
    async fn recent(&self, channel: &str, since: Timestamp) -> Result<Vec<FinishedJob>>;

    /// Jobs created at or after `since`, oldest first, at most `limit`.
    async fn entered_since(&self, since: Timestamp, limit: usize) -> Result<Vec<Job>>;

    /// The time zone whose local dates the daily counters use.
    fn set_time_zone(&self, time_zone: TimeZone);
}
