//! Each node's in-memory view of the cluster's jobs, counters and pause
//! flags, fed by JetStream watches, so reads never scan the cluster and the
//! wake-ups fire for changes made by any node.
//!
//! The jobs bucket is followed from each key's latest revision, then every
//! new revision, in stream order; the history stream from its first message
//! (both by [`super::follow`], which keeps following through server losses
//! and says whether each view is current: [`Mirror::freshness`]).
//!
//! A node folds its own successful job writes into the view at once
//! ([`Mirror::fold_own_job`], at the revision the server answered), so its
//! claims, completions and poll commits never wait for the watch's round
//! trip; the watch's later delivery of that revision is then skipped (the
//! view keeps the newest revision per job). Deletions are not folded (that
//! would need tombstones): a purge waits until the watch delivered the
//! bucket's last revision ([`Mirror::await_jobs`]), and so do history
//! counters. The view is a cache: every write is a compare-and-set against
//! the revision the view holds, so a stale view makes a write fail and
//! retry, never overwrite.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::HistoryEvent;
use super::follow::Freshness;
use crate::queue::{ChannelStats, Job, JobId, JobState, Outcome};

/// How long a reader waits for the watch to deliver a write before going on
/// with what it has (the watch is local and fast; this only bounds a stuck one).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(10);

/// A job as the view holds it, with the KV revision to compare-and-set against.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub(super) job: Job,
    pub(super) revision: u64,
    /// Written by a poll commit that has not finished (see [`JobRecord`]).
    pub(super) staged: bool,
}

/// A job as the jobs bucket stores it: the job plus this backend's own
/// flags, so [`Job`] (the form the CLI and socket show) stays the same on
/// both backends.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct JobRecord {
    #[serde(flatten)]
    pub(super) job: Job,
    /// True while the poll commit that wrote the job has not yet written its
    /// order records: claims skip it, so no dispatcher reads the order record
    /// before it exists (redb gets the same from one transaction). Absent in
    /// records written before the flag existed: not staged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) staged: bool,
    /// On a fallback intent (a running job naming `fell_back_to`): the key
    /// the fallback job is inserted under, `<channel>.<store>.<id>`, so a
    /// recovery's placeholder takes that very key (layout 2; an intent
    /// without it is of layout 1, whose key was the id alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fallback_key: Option<String>,
}

/// [`JobRecord`] borrowing its job, for writing.
#[derive(serde::Serialize)]
pub(super) struct JobRecordRef<'a> {
    #[serde(flatten)]
    pub(super) job: &'a Job,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) staged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) fallback_key: Option<&'a str>,
}

/// Day, store, channel, kind and outcome of a daily counter.
pub(super) type CounterKey = (String, String, String, String, Outcome);

#[derive(Default)]
pub(super) struct View {
    pub(super) jobs: BTreeMap<JobId, Stored>,
    /// Pending and running jobs per channel (claims look only here).
    pub(super) active: HashMap<String, HashSet<JobId>>,
    /// Staged jobs per store (see [`JobRecord::staged`]).
    pub(super) staged: HashMap<String, HashSet<JobId>>,
    /// Every channel that has had a job in the view.
    pub(super) channels: HashSet<String>,
    pub(super) counters: BTreeMap<CounterKey, u64>,
    /// Outcomes published lately, by job: when (the stream's time). Only
    /// the last hours' (see `history_repair.rs`), so it stays small.
    pub(super) recent_outcomes: HashMap<(JobId, Outcome), jiff::Timestamp>,
    /// The newest stream time of an outcome applied (the server's clock:
    /// what "lately" is measured against, never this node's clock).
    pub(super) newest_outcome_at: Option<jiff::Timestamp>,
    /// Size of `recent_outcomes` after its last prune.
    recent_outcomes_pruned_at: usize,
    paused_stores: HashMap<String, bool>,
    paused_channels: HashMap<String, bool>,
}

/// The shared view plus the wake-up senders and catch-up watermarks.
pub(super) struct Mirror {
    view: Mutex<View>,
    channel_wakes: Mutex<HashMap<String, watch::Sender<u64>>>,
    store_wakes: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// The highest jobs-bucket revision the view has applied.
    jobs_seen: watch::Sender<u64>,
    /// The highest history-stream sequence the counters include.
    history_seen: watch::Sender<u64>,
    /// Each follower's freshness, by what it follows (`bucket arauto_jobs`).
    freshness: Mutex<Vec<(String, watch::Receiver<Freshness>)>>,
    /// The jobs follower's (waits for its revisions end at once while stale).
    jobs_freshness: Mutex<Option<watch::Receiver<Freshness>>>,
    /// The history follower's.
    history_freshness: Mutex<Option<watch::Receiver<Freshness>>>,
}

/// Which follower a [`Mirror::track`]ed freshness belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Followed {
    Jobs,
    History,
    Statuses,
}

impl Mirror {
    pub(super) fn new() -> Self {
        Self {
            view: Mutex::new(View::default()),
            channel_wakes: Mutex::new(HashMap::new()),
            store_wakes: Mutex::new(HashMap::new()),
            jobs_seen: watch::Sender::new(0),
            history_seen: watch::Sender::new(0),
            freshness: Mutex::new(Vec::new()),
            jobs_freshness: Mutex::new(None),
            history_freshness: Mutex::new(None),
        }
    }

    /// Records a follower's freshness, for [`Mirror::freshness`].
    pub(super) fn track(
        &self,
        which: Followed,
        what: String,
        freshness: watch::Receiver<Freshness>,
    ) {
        match which {
            Followed::Jobs => {
                *self
                    .jobs_freshness
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(freshness.clone());
            }
            Followed::History => {
                *self
                    .history_freshness
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(freshness.clone());
            }
            Followed::Statuses => {}
        }
        self.freshness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((what, freshness));
    }

    /// Whether each followed bucket or stream is current in this node's
    /// view (`bucket arauto_jobs` → current / stale since …).
    pub(super) fn freshness(&self) -> Vec<(String, Freshness)> {
        self.freshness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(what, freshness)| (what.clone(), freshness.borrow().clone()))
            .collect()
    }

    /// Reads the view.
    pub(super) fn read<T>(&self, read: impl FnOnce(&View) -> T) -> T {
        read(&self.view.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn sender(map: &Mutex<HashMap<String, watch::Sender<u64>>>, name: &str) -> watch::Sender<u64> {
        map.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .clone()
    }

    pub(super) fn watch_channel(&self, channel: &str) -> watch::Receiver<u64> {
        Self::sender(&self.channel_wakes, channel).subscribe()
    }

    pub(super) fn watch_store(&self, store: &str) -> watch::Receiver<u64> {
        Self::sender(&self.store_wakes, store).subscribe()
    }

    pub(super) fn wake_channel(&self, channel: &str) {
        Self::sender(&self.channel_wakes, channel).send_modify(|generation| *generation += 1);
    }

    pub(super) fn wake_store(&self, store: &str) {
        Self::sender(&self.store_wakes, store).send_modify(|generation| *generation += 1);
    }

    /// Applies one entry of the jobs bucket (`None` value: deleted or purged).
    pub(super) fn apply_job(&self, id: JobId, revision: u64, record: Option<JobRecord>) {
        self.apply_job_at(id, revision, record);
        self.jobs_seen
            .send_modify(|seen| *seen = (*seen).max(revision));
    }

    /// Folds a job this node has just written (the server answered
    /// `revision`) into the view, without waiting for the watch. The
    /// watermark of [`Mirror::await_jobs`] is not moved: it says what the
    /// watch delivered, and revisions before this one may still be on
    /// their way.
    pub(super) fn fold_own_job(&self, job: &Job, revision: u64, staged: bool) {
        let record = JobRecord {
            job: job.clone(),
            staged,
            fallback_key: None,
        };
        self.apply_job_at(job.id, revision, Some(record));
    }

    fn apply_job_at(&self, id: JobId, revision: u64, record: Option<JobRecord>) {
        let wake = {
            let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
            // A re-opened watch delivers what the view may already hold.
            if view
                .jobs
                .get(&id)
                .is_some_and(|stored| stored.revision >= revision)
            {
                return;
            }
            let before = view.jobs.remove(&id);
            if let Some(old) = &before
                && let Some(set) = view.active.get_mut(old.job.channel.as_str())
            {
                set.remove(&id);
            }
            if let Some(old) = &before
                && old.staged
                && let Some(set) = view.staged.get_mut(old.job.store.as_str())
            {
                set.remove(&id);
            }
            match record {
                Some(JobRecord { job, staged, .. }) => {
                    let channel = job.channel.to_string();
                    // A job that became due (new, retried, recovered, requeued,
                    // rescheduled) wakes its channel's dispatcher, wherever it runs.
                    // A staged job is not claimable yet: it wakes its channel
                    // when the commit releases it.
                    let wake = job.state == JobState::Pending
                        && !staged
                        && before.as_ref().is_none_or(|old| {
                            old.staged
                                || old.job.state != JobState::Pending
                                || old.job.due_at != job.due_at
                        });
                    if staged {
                        view.staged.entry(job.store.clone()).or_default().insert(id);
                    }
                    if !job.state.is_terminal() {
                        view.active.entry(channel.clone()).or_default().insert(id);
                    }
                    view.channels.insert(channel.clone());
                    view.jobs.insert(
                        id,
                        Stored {
                            job,
                            revision,
                            staged,
                        },
                    );
                    wake.then_some(channel)
                }
                None => None,
            }
        };
        if let Some(channel) = wake {
            self.wake_channel(&channel);
        }
    }

    /// Notes an entry of the jobs bucket that the view could not decode, so
    /// waits for its revision still end.
    pub(super) fn skip_job_revision(&self, revision: u64) {
        self.jobs_seen
            .send_modify(|seen| *seen = (*seen).max(revision));
    }

    /// Applies one history message to the daily counters; `published`: the
    /// stream's timestamp of it (recent outcomes of a job are remembered for
    /// the repair of lost publishes, see `history_repair.rs`).
    pub(super) fn apply_history(
        &self,
        sequence: u64,
        event: Option<HistoryEvent>,
        published: Option<jiff::Timestamp>,
    ) {
        if let Some(event) = event {
            let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(job), Some(at)) = (event.job, published) {
                view.remember_outcome(job, event.outcome, at);
            }
            let key = (
                event.day,
                event.store,
                event.channel,
                event.kind,
                event.outcome,
            );
            let count = view.counters.entry(key).or_default();
            *count = count.saturating_add(event.count);
        }
        self.history_seen
            .send_modify(|seen| *seen = (*seen).max(sequence));
    }

    /// Notes a store status: a store that stops being paused wakes its poller.
    pub(super) fn apply_store_pause(&self, store: &str, paused: bool) {
        let was = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .paused_stores
            .insert(store.to_owned(), paused);
        if was == Some(true) && !paused {
            self.wake_store(store);
        }
    }

    /// Notes a channel status: a channel that stops being paused wakes its dispatcher.
    pub(super) fn apply_channel_pause(&self, channel: &str, paused: bool) {
        let was = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .paused_channels
            .insert(channel.to_owned(), paused);
        if was == Some(true) && !paused {
            self.wake_channel(channel);
        }
    }

    /// Waits until the view includes jobs-bucket revision `revision`.
    pub(super) async fn await_jobs(&self, revision: u64) {
        let current = Self::is_current(&self.jobs_freshness);
        Self::await_watermark(&self.jobs_seen, revision, "jobs", current).await;
    }

    /// Waits until the counters include history sequence `sequence`.
    pub(super) async fn await_history(&self, sequence: u64) {
        let current = Self::is_current(&self.history_freshness);
        Self::await_watermark(&self.history_seen, sequence, "history", current).await;
    }

    /// The jobs follower's freshness (`None`: this view follows no jobs).
    pub(super) fn jobs_freshness(&self) -> Option<Freshness> {
        self.jobs_freshness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|freshness| freshness.borrow().clone())
    }

    /// Waits, at most `within`, until the view includes jobs-bucket
    /// revision `revision`; else the revision it has reached. Quiet (no
    /// log): the caller says what a view that is behind means.
    pub(super) async fn jobs_reached(&self, revision: u64, within: Duration) -> Result<(), u64> {
        let mut receiver = self.jobs_seen.subscribe();
        let reached =
            tokio::time::timeout(within, receiver.wait_for(|seen| *seen >= revision)).await;
        if matches!(reached, Ok(Ok(_))) {
            Ok(())
        } else {
            Err(*self.jobs_seen.borrow())
        }
    }

    /// Whether the jobs and the history views are both current.
    pub(super) fn jobs_and_history_current(&self) -> bool {
        Self::is_current(&self.jobs_freshness) && Self::is_current(&self.history_freshness)
    }

    fn is_current(freshness: &Mutex<Option<watch::Receiver<Freshness>>>) -> bool {
        freshness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|freshness| freshness.borrow().is_current())
    }

    async fn await_watermark(seen: &watch::Sender<u64>, target: u64, what: &str, current: bool) {
        if *seen.borrow() >= target {
            return;
        }
        if !current {
            // Its follower is re-opening it: waiting would only hold the
            // caller (a claim, a report) for nothing.
            tracing::debug!(
                what,
                target,
                "the view is stale; reading what this node has"
            );
            return;
        }
        let mut receiver = seen.subscribe();
        let reached =
            tokio::time::timeout(CATCH_UP_LIMIT, receiver.wait_for(|seen| *seen >= target)).await;
        if !matches!(reached, Ok(Ok(_))) {
            tracing::warn!(
                what,
                target,
                "the NATS watch has not delivered our own write yet; reading what this node has"
            );
        }
    }
}

/// Filters over the view's jobs, shared by the reads.
impl View {
    /// Remembers that `job` reached `outcome` (published at `at`, the
    /// stream's time), dropping what is older than
    /// [`super::history_repair::REMEMBERED`] before the newest outcome: a
    /// node replaying 90 days of history at start keeps only the last hours.
    fn remember_outcome(&mut self, job: JobId, outcome: Outcome, at: jiff::Timestamp) {
        let newest = self.newest_outcome_at.map_or(at, |newest| newest.max(at));
        self.newest_outcome_at = Some(newest);
        let Some(oldest) = newest.checked_sub(super::history_repair::REMEMBERED).ok() else {
            return;
        };
        if at < oldest {
            return;
        }
        self.recent_outcomes.insert((job, outcome), at);
        // Pruned in bulk, when it doubled, so each insert costs O(1) on average.
        if self.recent_outcomes.len() >= self.recent_outcomes_pruned_at.max(1024) * 2 {
            self.recent_outcomes.retain(|_, at| *at >= oldest);
            self.recent_outcomes_pruned_at = self.recent_outcomes.len();
        }
    }

    /// The channel's pending and running jobs.
    pub(super) fn active_jobs(&self, channel: &str) -> Vec<&Stored> {
        self.active
            .get(channel)
            .map(|ids| ids.iter().filter_map(|id| self.jobs.get(id)).collect())
            .unwrap_or_default()
    }

    /// The channel's pending and running jobs, counted, and the earliest
    /// due time of those a dispatcher may claim.
    pub(super) fn channel_stats(&self, channel: &str) -> ChannelStats {
        let mut stats = ChannelStats::default();
        for stored in self.active_jobs(channel) {
            match stored.job.state {
                JobState::Pending => {
                    stats.pending += 1;
                    // A staged job is not claimable yet: counting its due
                    // time would make the dispatcher claim in a loop.
                    if stored.staged {
                        continue;
                    }
                    let due = stored.job.due_at;
                    stats.oldest_due = Some(stats.oldest_due.map_or(due, |old| old.min(due)));
                }
                JobState::Running => stats.running += 1,
                _ => {}
            }
        }
        stats
    }

    /// The store's staged jobs (see [`JobRecord::staged`]).
    pub(super) fn staged_jobs(&self, store: &str) -> Vec<&Stored> {
        self.staged
            .get(store)
            .map(|ids| ids.iter().filter_map(|id| self.jobs.get(id)).collect())
            .unwrap_or_default()
    }
}
