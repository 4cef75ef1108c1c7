//! Polls that find nothing new, kept in memory instead of written.
//!
//! Most polls of most stores find nothing: one plugin call, one listing
//! request, no order. Such a poll used to commit anyway, because two things
//! still changed: the connector's cursor (Loja Integrada's carries the time
//! its window starts from and a sweep counter) and the store status's poll
//! times (`last_poll_started_at`, `last_poll_ok_at`). At 10,000 stores that
//! is 10,000 durable commits per interval for nothing.
//!
//! **What counts as idle.** A sweep of one page that returned no order, no
//! connector notice and no refused order, and whose store status differs
//! from the stored one only in those two poll times ([`same_but_poll_times`]).
//! Anything else (a first poll, an error cleared, a Retry-After lifted, a
//! clock-skew note expiring) commits as before.
//!
//! **What is kept instead.** The idle poll's cursor and poll times, per
//! store, in [`IdlePolls`]; the next sweep starts from that cursor, and every
//! reader of the state inside the daemon (`arauto check`, `arauto report`,
//! `/metrics`, all through [`LiveStatusStore`]) sees those poll times as if
//! they had been written. The first sweep that commits anything carries them
//! to disk with it and the memory is dropped.
//!
//! **When they are written anyway** ([`WriteIdle`]):
//! * when the poller stops: shutdown, the store removed by a reload, or (in
//!   a cluster) its lease handed over ([`IdlePolls::flush`]);
//! * on one node, when the oldest unwritten idle poll is an hour old
//!   ([`WriteIdle::Hourly`]): every reader goes through the daemon while it
//!   runs, so this only bounds what a crash can lose;
//! * in a cluster, once a poll interval ([`WriteIdle::EveryInterval`]):
//!   `arauto check` and `/metrics` on the other nodes read the shared state
//!   directly, and must not see a store as stale (three intervals) when it
//!   is polled fine elsewhere.
//!
//! **Crash safety.** Nothing a crash loses matters: the stored cursor is the
//! one before the idle polls, and polling again from it is exactly what the
//! daemon does after a crash between any two commits — those polls found
//! nothing, so they find nothing again (or the same changes a later poll
//! would have found, decided against the same order records and deduplicated
//! as always). A restart polls each store within seconds, which sets the
//! poll times again; until then `arauto check` shows the last written ones,
//! at most an hour old.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::queue::{
    CancelOutcome, ChannelStats, ChannelStatus, ChannelWatch, Claim, Completed, Completion,
    CounterQuery, CounterRow, FinishedJob, Job, JobFilter, JobId, PollCommit, PollOutcome,
    PurgeFilter, RequeueOutcome, Result, SharedStore, StateStore, StatusUpdate, StoreStatus,
};

/// How long a one-node daemon may keep an idle poll unwritten.
pub const ONE_NODE_WRITE_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// When the poll times of idle polls are written although nothing else
/// changed (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteIdle {
    /// One node: every reader asks the daemon; written at least hourly.
    Hourly,
    /// A cluster node: other nodes read the shared state; written at least
    /// once per poll interval.
    EveryInterval,
}

/// What an idle poll left unwritten for one store.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Unwritten {
    /// The connector's newest cursor (`None`: it kept the previous one).
    cursor: Option<String>,
    /// Start of the latest idle poll.
    started_at: Timestamp,
    /// End of the latest idle poll.
    ok_at: Timestamp,
    /// When the first unwritten idle poll ended.
    since: Timestamp,
}

/// The idle polls of every store of this daemon that are not written yet.
#[derive(Debug)]
pub struct IdlePolls {
    write: WriteIdle,
    stores: Mutex<HashMap<String, Unwritten>>,
}

impl IdlePolls {
    /// Nothing unwritten yet.
    pub fn new(write: WriteIdle) -> Self {
        Self {
            write,
            stores: Mutex::new(HashMap::new()),
        }
    }

    fn stores(&self) -> std::sync::MutexGuard<'_, HashMap<String, Unwritten>> {
        // A panic while holding the lock leaves a plain map behind: still usable.
        self.stores.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cursor the next sweep of `store` starts from, if an idle poll left
    /// a newer one than the stored cursor.
    pub fn cursor(&self, store: &str) -> Option<String> {
        self.stores().get(store).and_then(|u| u.cursor.clone())
    }

    /// Whether an idle poll of `store` ending at `now` may stay unwritten:
    /// false once the oldest unwritten one is older than the write period.
    pub fn may_skip_write(
        &self,
        store: &str,
        poll_interval: SignedDuration,
        now: Timestamp,
    ) -> bool {
        let period = match self.write {
            WriteIdle::Hourly => ONE_NODE_WRITE_EVERY,
            WriteIdle::EveryInterval => poll_interval,
        };
        self.stores()
            .get(store)
            .is_none_or(|u| now.duration_since(u.since) < period)
    }

    /// Keep an idle poll of `store` instead of writing it.
    pub fn remember(
        &self,
        store: &str,
        cursor: Option<String>,
        started_at: Timestamp,
        ok_at: Timestamp,
    ) {
        let mut stores = self.stores();
        match stores.get_mut(store) {
            Some(unwritten) => {
                if cursor.is_some() {
                    unwritten.cursor = cursor;
                }
                unwritten.started_at = started_at;
                unwritten.ok_at = ok_at;
            }
            None => {
                stores.insert(
                    store.to_owned(),
                    Unwritten {
                        cursor,
                        started_at,
                        ok_at,
                        since: ok_at,
                    },
                );
            }
        }
    }

    /// A commit of `store` carried its newest cursor and poll times: nothing
    /// is left unwritten.
    pub fn written(&self, store: &str) {
        self.stores().remove(store);
    }

    /// How many stores have an unwritten idle poll.
    pub fn len(&self) -> usize {
        self.stores().len()
    }

    /// True when every idle poll is written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `status` as it would be had every idle poll been written: its poll
    /// times are the later of the stored and the unwritten ones.
    pub fn overlay(&self, store: &str, status: &mut StoreStatus) {
        if let Some(unwritten) = self.stores().get(store) {
            later(&mut status.last_poll_started_at, unwritten.started_at);
            later(&mut status.last_poll_ok_at, unwritten.ok_at);
        }
    }

    /// Write what idle polls of `store` left in memory (its cursor and poll
    /// times) to `db`: called when its poller stops. Either way the memory
    /// of `store` is dropped: a failed write is logged, and the stored cursor
    /// is still a valid place to poll from, while a kept one could be older
    /// than what another node commits meanwhile (in a cluster, a store whose
    /// lease was lost may come back to this node later).
    pub async fn flush(&self, store: &str, db: &dyn StateStore) {
        let Some(unwritten) = self.stores().get(store).cloned() else {
            return;
        };
        let written = async {
            let mut status = db.store_status(store).await?.unwrap_or_default();
            later(&mut status.last_poll_started_at, unwritten.started_at);
            later(&mut status.last_poll_ok_at, unwritten.ok_at);
            db.commit_poll(PollCommit {
                store: store.to_owned(),
                cursor: unwritten.cursor.clone(),
                status,
                ..PollCommit::default()
            })
            .await
        };
        if let Err(error) = written.await {
            tracing::warn!(
                store,
                "cannot write the last idle polls' cursor and poll time: {error}; the next start polls again from the last written cursor"
            );
        }
        // Only if no sweep remembered a newer poll meanwhile.
        let mut stores = self.stores();
        if stores.get(store) == Some(&unwritten) {
            stores.remove(store);
        }
    }
}

fn later(field: &mut Option<Timestamp>, candidate: Timestamp) {
    if field.is_none_or(|stored| stored < candidate) {
        *field = Some(candidate);
    }
}

/// Whether `before` and `after` differ at most in the poll times an idle
/// poll moves (`last_poll_started_at`, `last_poll_ok_at`).
pub fn same_but_poll_times(before: &StoreStatus, after: &StoreStatus) -> bool {
    let strip = |status: &StoreStatus| StoreStatus {
        last_poll_started_at: None,
        last_poll_ok_at: None,
        ..status.clone()
    };
    strip(before) == strip(after)
}

/// The daemon's view of the state: the state store underneath, with the
/// cursors and poll times of idle polls [`IdlePolls`] keeps in memory laid
/// over it, so `check`, `report` and `/metrics` show a store as polled
/// when it was. Every write goes straight through.
pub struct LiveStatusStore {
    inner: SharedStore,
    idle: std::sync::Arc<IdlePolls>,
}

impl LiveStatusStore {
    /// `inner` seen with `idle`'s unwritten polls.
    pub fn new(inner: SharedStore, idle: std::sync::Arc<IdlePolls>) -> Self {
        Self { inner, idle }
    }
}

#[async_trait]
impl StateStore for LiveStatusStore {
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        max: usize,
        lease: SignedDuration,
    ) -> Result<Vec<Job>> {
        self.inner.claim(channel, now, max, lease).await
    }

    async fn complete(&self, claim: Claim, completion: Completion) -> Result<Job> {
        self.inner.complete(claim, completion).await
    }

    async fn complete_noting_fallback(
        &self,
        claim: Claim,
        completion: Completion,
    ) -> Result<Completed> {
        self.inner.complete_noting_fallback(claim, completion).await
    }

    async fn complete_and_claim_next(
        &self,
        claim: Claim,
        completion: Completion,
        channel: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<(Completed, Vec<Job>)> {
        self.inner
            .complete_and_claim_next(claim, completion, channel, now, lease)
            .await
    }

    async fn cancel(&self, ids: Vec<JobId>, reason: String) -> Result<Vec<(JobId, CancelOutcome)>> {
        self.inner.cancel(ids, reason).await
    }

    async fn requeue(&self, ids: Vec<JobId>) -> Result<Vec<(JobId, RequeueOutcome)>> {
        self.inner.requeue(ids).await
    }

    async fn requeue_dead(&self, filter: JobFilter) -> Result<Vec<JobId>> {
        self.inner.requeue_dead(filter).await
    }

    async fn purge(&self, filter: PurgeFilter) -> Result<usize> {
        self.inner.purge(filter).await
    }

    async fn prune(&self, finished_before: Timestamp, batch: usize) -> Result<usize> {
        self.inner.prune(finished_before, batch).await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.inner.get(id).await
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        self.inner.list(filter).await
    }

    async fn jobs_for_order(&self, store: &str, order_id: &str) -> Result<Vec<Job>> {
        self.inner.jobs_for_order(store, order_id).await
    }

    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>> {
        self.inner.next_due(channel).await
    }

    async fn take_over_channel(&self, channel: &str, now: Timestamp) -> Result<usize> {
        self.inner.take_over_channel(channel, now).await
    }

    async fn channel_stats(&self, channel: &str) -> Result<ChannelStats> {
        self.inner.channel_stats(channel).await
    }

    async fn channels(&self) -> Result<Vec<String>> {
        self.inner.channels().await
    }

    fn watch_channel(&self, channel: &str) -> ChannelWatch {
        self.inner.watch_channel(channel)
    }

    fn watch_store(&self, store: &str) -> ChannelWatch {
        self.inner.watch_store(store)
    }

    fn poll_started(&self, store: &str) {
        self.inner.poll_started(store);
    }

    async fn cursor(&self, store: &str) -> Result<Option<String>> {
        match self.idle.cursor(store) {
            Some(cursor) => Ok(Some(cursor)),
            None => self.inner.cursor(store).await,
        }
    }

    async fn order_record(&self, store: &str, order_id: &str) -> Result<Option<Vec<u8>>> {
        self.inner.order_record(store, order_id).await
    }

    async fn commit_poll(&self, commit: PollCommit) -> Result<PollOutcome> {
        self.inner.commit_poll(commit).await
    }

    async fn store_status(&self, store: &str) -> Result<Option<StoreStatus>> {
        let mut status = self.inner.store_status(store).await?;
        if let Some(status) = status.as_mut() {
            self.idle.overlay(store, status);
        }
        Ok(status)
    }

    async fn stores(&self) -> Result<Vec<String>> {
        self.inner.stores().await
    }

    async fn put_store_status(&self, store: &str, status: StoreStatus) -> Result<()> {
        self.inner.put_store_status(store, status).await
    }

    async fn update_store_status(
        &self,
        store: &str,
        update: StatusUpdate<StoreStatus>,
    ) -> Result<StoreStatus> {
        let mut status = self.inner.update_store_status(store, update).await?;
        self.idle.overlay(store, &mut status);
        Ok(status)
    }

    async fn resume_store(&self, store: &str) -> Result<StoreStatus> {
        let mut status = self.inner.resume_store(store).await?;
        self.idle.overlay(store, &mut status);
        Ok(status)
    }

    async fn channel_status(&self, channel: &str) -> Result<ChannelStatus> {
        self.inner.channel_status(channel).await
    }

    async fn pause_channel(
        &self,
        channel: &str,
        reason: String,
        automatic: bool,
    ) -> Result<ChannelStatus> {
        self.inner.pause_channel(channel, reason, automatic).await
    }

    async fn resume_channel(&self, channel: &str) -> Result<ChannelStatus> {
        self.inner.resume_channel(channel).await
    }

    async fn counters(&self, query: CounterQuery) -> Result<Vec<CounterRow>> {
        self.inner.counters(query).await
    }

    async fn recent(&self, channel: &str, since: Timestamp) -> Result<Vec<FinishedJob>> {
        self.inner.recent(channel, since).await
    }

    async fn entered_since(&self, since: Timestamp, limit: usize) -> Result<Vec<Job>> {
        self.inner.entered_since(since, limit).await
    }

    fn set_time_zone(&self, time_zone: TimeZone) {
        self.inner.set_time_zone(time_zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn only_the_poll_times_may_differ_for_a_poll_to_be_idle() {
        let before = StoreStatus {
            last_poll_started_at: Some(at("2026-03-01T12:00:00Z")),
            last_poll_ok_at: Some(at("2026-03-01T12:00:01Z")),
            orders_seen: 3,
            ..StoreStatus::default()
        };
        let polled = StoreStatus {
            last_poll_started_at: Some(at("2026-03-01T12:05:00Z")),
            last_poll_ok_at: Some(at("2026-03-01T12:05:01Z")),
            ..before.clone()
        };
        assert!(same_but_poll_times(&before, &polled));
        let error_cleared = StoreStatus {
            last_error: None,
            ..polled.clone()
        };
        let with_error = StoreStatus {
            last_error: Some(crate::queue::LastError {
                at: at("2026-03-01T12:00:00Z"),
                class: crate::queue::ErrorClass::Retryable,
                message: "HTTP 503".into(),
            }),
            ..before
        };
        assert!(!same_but_poll_times(&with_error, &error_cleared));
    }

    #[test]
    fn unwritten_polls_lay_their_times_and_cursor_over_the_stored_ones_until_written() {
        let idle = IdlePolls::new(WriteIdle::Hourly);
        let interval = SignedDuration::from_mins(5);
        let t0 = at("2026-03-01T12:00:00Z");
        assert!(idle.may_skip_write("loja", interval, t0));
        idle.remember(
            "loja",
            Some("c1".into()),
            t0,
            t0 + SignedDuration::from_secs(1),
        );
        idle.remember("loja", None, t0 + interval, t0 + interval);
        assert_eq!(
            idle.cursor("loja").as_deref(),
            Some("c1"),
            "None keeps the cursor"
        );
        let mut status = StoreStatus {
            last_poll_ok_at: Some(t0 - interval),
            ..StoreStatus::default()
        };
        idle.overlay("loja", &mut status);
        assert_eq!(status.last_poll_ok_at, Some(t0 + interval));
        assert_eq!(status.last_poll_started_at, Some(t0 + interval));
        // Never older than what is stored.
        let mut newer = StoreStatus {
            last_poll_ok_at: Some(t0 + interval * 2),
            ..StoreStatus::default()
        };
        idle.overlay("loja", &mut newer);
        assert_eq!(newer.last_poll_ok_at, Some(t0 + interval * 2));

        assert!(idle.may_skip_write("loja", interval, t0 + SignedDuration::from_mins(59)));
        assert!(
            !idle.may_skip_write("loja", interval, t0 + SignedDuration::from_mins(61)),
            "written at least hourly"
        );
        idle.written("loja");
        assert!(idle.is_empty());
        assert_eq!(idle.cursor("loja"), None);
    }

    #[test]
    fn a_cluster_node_writes_idle_polls_once_per_interval() {
        let idle = IdlePolls::new(WriteIdle::EveryInterval);
        let interval = SignedDuration::from_mins(5);
        let t0 = at("2026-03-01T12:00:00Z");
        idle.remember("loja", Some("c1".into()), t0, t0);
        assert!(idle.may_skip_write("loja", interval, t0 + SignedDuration::from_mins(4)));
        assert!(!idle.may_skip_write("loja", interval, t0 + SignedDuration::from_mins(5)));
    }
}
