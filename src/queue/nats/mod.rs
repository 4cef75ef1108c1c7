//! The NATS JetStream backend of [`StateStore`], for a cluster of arauto
//! nodes (`[cluster] backend = "nats"`, issue 15). See
//! `docs/cluster-state.md` for the buckets, streams, key layout, the
//! crash-safety argument of a poll commit and the server features relied on
//! (nats-server 2.9.10 or newer).
//!
//! Every record lives in a KV bucket and every write is a compare-and-set on
//! the record's revision (KV `update`/`create`, i.e. JetStream's
//! expected-last-subject-sequence), so two nodes never overwrite each other:
//! the loser re-reads and tries again or gives up. Outcomes for the daily
//! counters go to a history stream with a deterministic `Nats-Msg-Id`, so a
//! repeated publish is dropped by the server. Each node follows the jobs
//! bucket and the history stream ([`mirror`]) for its reads and wake-ups.
//!
//! Fencing: writes made for a store (each write of a poll commit, store
//! status) or a channel (each write of a claim) are refused with
//! [`Error::Fenced`] unless [`Fence::holds`] says this node still holds that
//! scope's lease. Completions are not fenced: the send they record has
//! happened, and the claim number refuses a stale one.

pub(crate) mod follow;
mod history_repair;
mod jobs;
mod keys;
mod layout;
mod leases;
mod mirror;
mod poll;
mod portable;
mod reads;
mod retention;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::bytes::Bytes;

pub use self::follow::Freshness;
pub use self::jobs::FallbackStep;
use self::keys::Names;
pub use self::keys::ViewScope;
pub use self::layout::{LayoutMigration, STATE_LAYOUT};
use self::mirror::Mirror;
pub use self::poll::PollStep;
use super::{
    CancelOutcome, ChannelStats, ChannelStatus, ChannelWatch, Claim, Completed, Completion,
    CounterQuery, CounterRow, Error, Fence, FinishedJob, Job, JobFilter, JobId, Outcome,
    PollCommit, PollOutcome, PurgeFilter, RequeueOutcome, Result, Scope, StateStore, StatusUpdate,
    StoreStatus,
};
use crate::clock::{SharedClock, SystemClock};
use crate::job::IdGenerator;

/// How long a history stream created before the daemon applied
/// `daemon.history_retention` keeps outcomes (the daily counters of `arauto
/// report`): the default retention. A daemon sets the configured one at
/// start ([`NatsStore::apply_history_retention`]).
const HISTORY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// How many times a compare-and-set loop re-reads and retries before it
/// reports the conflict.
const CAS_ATTEMPTS: usize = 16;

/// Where the backend keeps its buckets and streams.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// Prefix of every bucket and stream name (`[A-Za-z0-9_-]`), so several
    /// arauto clusters can share one NATS account. Default `arauto`.
    pub prefix: String,
    /// Replicas of each bucket and stream (1 for a single server; 3 in a
    /// three-server cluster).
    pub replicas: usize,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            prefix: "arauto".to_owned(),
            replicas: 3,
        }
    }
}

/// One counted outcome on the history stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HistoryEvent {
    day: String,
    store: String,
    channel: String,
    kind: String,
    outcome: Outcome,
    /// The job counted (none for a row copied by `arauto state import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<JobId>,
    /// How many it counts: 1, or an imported row's count.
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

/// The KV buckets of the backend.
#[derive(Clone)]
struct Buckets {
    jobs: kv::Store,
    dedupe: kv::Store,
    orders: kv::Store,
    cursors: kv::Store,
    stores: kv::Store,
    channels: kv::Store,
}

impl Inner {
    /// The revision of the first job-bucket entry after `revision` that
    /// the bucket still holds (`None`: none), asked of the stream's leader
    /// (`STREAM.MSG.GET` with `next_by_subj`); at most `within`.
    async fn first_job_revision_after(
        &self,
        revision: u64,
        within: std::time::Duration,
    ) -> std::result::Result<Option<u64>, String> {
        let bucket = &self.buckets.jobs;
        let next = bucket
            .stream
            .raw_message_builder()
            .sequence(revision.saturating_add(1))
            .next_by_subject(format!("{}>", bucket.prefix))
            .send();
        match tokio::time::timeout(within.max(std::time::Duration::from_millis(250)), next).await {
            Ok(Ok(message)) => Ok(Some(message.sequence)),
            Ok(Err(error))
                if error.kind()
                    == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Ok(Err(error)) => Err(format!(
                "the jobs bucket's next revision after {revision} is unknown: {error}"
            )),
            Err(_) => Err(format!(
                "the jobs bucket's next revision after {revision} is unknown: no answer"
            )),
        }
    }
}

/// Every channel's counts in a node's view of the jobs
/// ([`NatsStore::channel_counts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Every channel that has had a job in the view, with its counts.
    pub channels: std::collections::BTreeMap<String, ChannelStats>,
    /// Whether the view held every job write made before the call.
    pub jobs_view: Freshness,
}

/// The JetStream-backed [`StateStore`]. Cheap to clone; the watches stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    names: Names,
    buckets: Buckets,
    fence: Arc<dyn Fence>,
    mirror: Arc<Mirror>,
    clock: RwLock<SharedClock>,
    time_zone: Mutex<TimeZone>,
    ids: Mutex<IdGenerator>,
    /// The highest history sequence this node published (counters wait for it).
    history_published: Mutex<u64>,
    /// Test hook: fail a poll commit after this step (see [`PollStep`]).
    crash_after: Mutex<Option<PollStep>>,
    /// Test hook: fail a fallback completion after this step.
    crash_after_fallback: Mutex<Option<FallbackStep>>,
    /// How long a completion is tried before its caller gets the error
    /// (milliseconds; a test shortens it, see `jobs.rs`).
    completion_retry_limit_ms: std::sync::atomic::AtomicU64,
    /// Test hook: history publishes are skipped, as if the node stopped
    /// right after each job write.
    lose_publishes: std::sync::atomic::AtomicBool,
    /// Per store, the revisions its running poll read ([`reads`]).
    poll_reads: Mutex<std::collections::HashMap<String, reads::PollReads>>,
    /// The send path's own last writes, each the first guess of the next
    /// compare-and-set on that record (see [`jobs::OwnWrites`]).
    own_writes: jobs::OwnWrites,
    /// The claims this process wrote, and when it first saw others' (`leases.rs`).
    job_leases: leases::JobLeases,
    tasks: Vec<JoinHandle<()>>,
}

/// How long opening waits for a follower to load what the cluster holds.
const CATCH_UP_AT_OPEN: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits, bounded, until the follower of `what` has loaded what existed.
async fn caught_up(
    ready: follow::Ready,
    freshness: &tokio::sync::watch::Receiver<Freshness>,
    what: &str,
) -> Result<()> {
    tokio::time::timeout(CATCH_UP_AT_OPEN, ready.await_ready())
        .await
        .map_err(|_| Error::Nats {
            target: what.to_owned(),
            op: "load at start-up",
            source: Arc::new(std::io::Error::other(format!(
                "this node's view is still {} after {CATCH_UP_AT_OPEN:?} (a nats-server restarting?)",
                *freshness.borrow()
            ))),
        })
}

/// Follower tasks started by an open that has not finished yet.
struct Followers(Vec<JoinHandle<()>>);

impl Drop for Followers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("prefix", &self.inner.names.prefix)
            .finish_non_exhaustive()
    }
}

/// A NATS failure as a store error naming what it touched.
fn nats_error(
    target: impl Into<String>,
    op: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    let target = target.into();
    move |source| Error::Nats {
        target,
        op,
        source: Arc::from(source),
    }
}

/// Boxes any client error (they are all `std::error::Error`).
fn boxed<E: std::error::Error + Send + Sync + 'static>(
    error: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

impl NatsStore {
    /// Creates or binds the buckets and the history stream (idempotent: any
    /// number of nodes may call it at once) and loads this node's view of
    /// the jobs and counters before returning.
    pub async fn open(
        js: jetstream::Context,
        options: NatsOptions,
        fence: Arc<dyn Fence>,
    ) -> Result<NatsStore> {
        Self::open_as(
            js,
            options,
            fence,
            Create::Yes,
            &ViewScope::All,
            &ViewScope::All,
        )
        .await
    }

    /// Binds the buckets and the history stream a daemon created, and
    /// creates nothing: for operator commands, where a mistyped
    /// `cluster.prefix` must be an error, not an empty cluster state
    /// (review #16).
    pub async fn bind(
        js: jetstream::Context,
        options: NatsOptions,
        fence: Arc<dyn Fence>,
    ) -> Result<NatsStore> {
        Self::open_as(
            js,
            options,
            fence,
            Create::No,
            &ViewScope::All,
            &ViewScope::All,
        )
        .await
    }

    /// [`NatsStore::bind`], with a view of only the jobs `jobs` and the
    /// outcomes `history` select (key and subject filters on the server, so
    /// nothing else is read): for an operator command without a local
    /// daemon, which shows one store or one channel. Reads and writes by job
    /// id work whatever the view holds (a job the view lacks is found by its
    /// key pattern `*.*.<id>`); listings, `channel_stats` and `counters`
    /// show what the view holds.
    pub async fn bind_viewing(
        js: jetstream::Context,
        options: NatsOptions,
        fence: Arc<dyn Fence>,
        jobs: &ViewScope,
        history: &ViewScope,
    ) -> Result<NatsStore> {
        Self::open_as(js, options, fence, Create::No, jobs, history).await
    }

    async fn open_as(
        js: jetstream::Context,
        options: NatsOptions,
        fence: Arc<dyn Fence>,
        create: Create,
        jobs_scope: &ViewScope,
        history_scope: &ViewScope,
    ) -> Result<NatsStore> {
        if !keys::valid_prefix(&options.prefix) {
            return Err(Error::Invalid {
                what: format!("NATS bucket prefix {:?}", options.prefix),
                reason: "it may only hold letters, digits, '_' and '-', and not be empty"
                    .to_owned(),
            });
        }
        let replicas = options.replicas.max(1);
        let names = Names {
            prefix: options.prefix.clone(),
        };
        let buckets = Buckets {
            jobs: bucket(&js, &names, "jobs", "arauto jobs by id", replicas, create).await?,
            dedupe: bucket(
                &js,
                &names,
                "dedupe",
                "dedupe key -> job id",
                replicas,
                create,
            )
            .await?,
            orders: bucket(&js, &names, "orders", "order records", replicas, create).await?,
            cursors: bucket(
                &js,
                &names,
                "cursors",
                "connector cursors",
                replicas,
                create,
            )
            .await?,
            stores: bucket(&js, &names, "stores", "store statuses", replicas, create).await?,
            channels: bucket(
                &js,
                &names,
                "channels",
                "channel statuses",
                replicas,
                create,
            )
            .await?,
        };
        let history_name = names.history_stream();
        let history = stream::Config {
            name: history_name.clone(),
            description: Some("arauto outcomes for the daily counters".to_owned()),
            subjects: vec![names.history_subjects()],
            max_age: HISTORY_MAX_AGE,
            num_replicas: replicas,
            duplicate_window: std::time::Duration::from_secs(120),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let history = match create {
            Create::Yes => js.get_or_create_stream(history).await.map_err(|e| {
                nats_error(format!("stream {history_name}"), "create stream")(boxed(e))
            })?,
            Create::No => js
                .get_stream(&history_name)
                .await
                .map_err(|e| missing_state(&names, format!("stream {history_name}"), e))?,
        };

        layout::check(&names, &buckets.jobs, &history, create).await?;

        let mirror = Arc::new(Mirror::new());
        // Aborted if the open fails or is dropped half-way (a start-up
        // timeout): no follower outlives it.
        let mut tasks = Followers(Vec::new());
        let client = js.client();
        let never = tokio_util::sync::CancellationToken::new;
        if let Some(key_filter) = keys::job_filter(jobs_scope) {
            let follow::Following {
                task,
                ready,
                freshness,
            } = follow::jobs(
                client.clone(),
                buckets.jobs.clone(),
                &key_filter,
                mirror.clone(),
                never(),
            );
            tasks.0.push(task);
            let what = format!("bucket {}", names.bucket("jobs"));
            mirror.track(mirror::Followed::Jobs, what.clone(), freshness.clone());
            caught_up(ready, &freshness, &what).await?;
        }
        if let Some(subject_filter) = names.history_filter(history_scope) {
            let follow::Following {
                task,
                ready,
                freshness,
            } = follow::history(
                client.clone(),
                history,
                subject_filter,
                mirror.clone(),
                never(),
            );
            tasks.0.push(task);
            let what = format!("stream {history_name}");
            mirror.track(mirror::Followed::History, what.clone(), freshness.clone());
            caught_up(ready, &freshness, &what).await?;
        }
        for (bucket, which, what) in [
            (&buckets.stores, follow::Paused::Store, "stores"),
            (&buckets.channels, follow::Paused::Channel, "channels"),
        ] {
            let following = follow::pauses(
                client.clone(),
                bucket.clone(),
                mirror.clone(),
                which,
                never(),
            );
            tasks.0.push(following.task);
            let what = format!("bucket {}", names.bucket(what));
            mirror.track(mirror::Followed::Statuses, what, following.freshness);
        }

        Ok(NatsStore {
            inner: Arc::new(Inner {
                js,
                names,
                buckets,
                fence,
                mirror,
                clock: RwLock::new(Arc::new(SystemClock)),
                time_zone: Mutex::new(TimeZone::UTC),
                ids: Mutex::new(IdGenerator::after(None)),
                history_published: Mutex::new(0),
                crash_after: Mutex::new(None),
                crash_after_fallback: Mutex::new(None),
                lose_publishes: std::sync::atomic::AtomicBool::new(false),
                completion_retry_limit_ms: std::sync::atomic::AtomicU64::new(
                    u64::try_from(jobs::COMPLETION_RETRY_LIMIT.as_millis()).unwrap_or(u64::MAX),
                ),
                poll_reads: Mutex::new(std::collections::HashMap::new()),
                own_writes: jobs::OwnWrites::default(),
                job_leases: leases::JobLeases::default(),
                tasks: std::mem::take(&mut tasks.0),
            }),
        })
    }

    /// Converts a cluster state of layout 1 (jobs keyed by id alone) to
    /// layout 2 ([`STATE_LAYOUT`]) for `arauto state migrate`; every arauto
    /// node must be stopped (the command checks their heartbeats first). A
    /// migration that stopped anywhere is finished by running it again; one
    /// that has nothing to do says so. See `layout.rs`.
    pub async fn migrate_layout(
        js: jetstream::Context,
        options: NatsOptions,
    ) -> Result<LayoutMigration> {
        let names = Names {
            prefix: options.prefix.clone(),
        };
        let replicas = options.replicas.max(1);
        let jobs = bucket(&js, &names, "jobs", "", replicas, Create::No).await?;
        let dedupe = bucket(&js, &names, "dedupe", "", replicas, Create::No).await?;
        let history_name = names.history_stream();
        let history = js
            .get_stream(&history_name)
            .await
            .map_err(|e| missing_state(&names, format!("stream {history_name}"), e))?;
        layout::migrate(&js, &names, &jobs, &dedupe, &history).await
    }

    /// Whether this node's view of each bucket and stream is current
    /// (`bucket arauto_jobs` → current, or stale since when and why): see
    /// `docs/cluster-state.md` §The node's view.
    pub fn view_freshness(&self) -> Vec<(String, Freshness)> {
        self.inner.mirror.freshness()
    }

    /// Every channel's pending and running counts in this node's view of
    /// the jobs, once the view has caught up (at most `within`) with the
    /// jobs bucket as its stream's leader has it now, so the counts include
    /// every job write made before the call; and whether the view is
    /// current. What a daemon answers `arauto status` from another machine
    /// with (`crate::cluster::channel_counts`): only a view that follows
    /// every job (a daemon's, [`NatsStore::open`]) counts them all.
    pub async fn channel_counts(&self, within: std::time::Duration) -> ChannelCounts {
        let mirror = &self.inner.mirror;
        let stale = |reason: String| Freshness::Stale {
            since: Timestamp::now(),
            reason,
        };
        let started = tokio::time::Instant::now();
        let end = tokio::time::timeout(within, self.inner.buckets.jobs.stream.get_info()).await;
        let caught_up = match end {
            Ok(Ok(info)) => {
                let end = info.state.last_sequence;
                let left = within.saturating_sub(started.elapsed());
                match mirror.jobs_reached(end, left).await {
                    Ok(()) => None,
                    // The stream's last messages may be gone (delete markers
                    // removed by retention, `retention.rs`): only one that
                    // still exists is missing from the view.
                    Err(seen) => match self
                        .inner
                        .first_job_revision_after(seen, within.saturating_sub(started.elapsed()))
                        .await
                    {
                        Ok(Some(missing)) if missing <= end => Some(stale(format!(
                            "revision {missing} of the jobs bucket (of {end}) is not in \
                             this node's view after {within:?}"
                        ))),
                        Ok(_) => None,
                        Err(reason) => Some(stale(reason)),
                    },
                }
            }
            Ok(Err(error)) => Some(stale(format!(
                "the jobs bucket's last revision is unknown: {error}"
            ))),
            Err(_) => Some(stale(format!(
                "the jobs bucket's last revision is unknown: no answer within {within:?}"
            ))),
        };
        let jobs_view = match (caught_up, mirror.jobs_freshness()) {
            (_, None) => stale("this process follows no jobs".to_owned()),
            (_, Some(stale @ Freshness::Stale { .. })) | (Some(stale), _) => stale,
            (None, Some(Freshness::Current)) => Freshness::Current,
        };
        let channels = mirror.read(|view| {
            view.channels
                .iter()
                .map(|channel| (channel.clone(), view.channel_stats(channel)))
                .collect()
        });
        ChannelCounts {
            channels,
            jobs_view,
        }
    }

    /// Test hook: a completion the cluster does not answer is tried for
    /// `limit` before its caller gets the error (default 60 s), then goes
    /// on in the background (docs/cluster.md, "A completion outlives a lost
    /// nats-server").
    pub fn set_completion_retry_limit(&self, limit: std::time::Duration) {
        self.inner.completion_retry_limit_ms.store(
            u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Uses `clock` for creation, finish and recovery times (tests use a
    /// manual clock; the daemon keeps the system clock).
    pub fn set_clock(&self, clock: SharedClock) {
        *self
            .inner
            .clock
            .write()
            .unwrap_or_else(PoisonError::into_inner) = clock;
    }

    /// Test hook for the crash-safety tests: the next poll commits stop with
    /// an error right after `step` (as if the process died there) until the
    /// hook is cleared with `None`.
    #[doc(hidden)]
    pub fn crash_poll_commit_after(&self, step: Option<PollStep>) {
        *self
            .inner
            .crash_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = step;
    }

    /// Test hook for the history repair: while `true`, every counted
    /// outcome's publish is skipped, as if the node stopped between each job
    /// write and its publish.
    #[doc(hidden)]
    pub fn lose_history_publishes(&self, lose: bool) {
        self.inner
            .lose_publishes
            .store(lose, std::sync::atomic::Ordering::Relaxed);
    }

    /// Test hook: the next fallback completions stop with an error right
    /// after `step` (as if the process died there), until cleared with `None`.
    #[doc(hidden)]
    pub fn crash_fallback_after(&self, step: Option<FallbackStep>) {
        *self
            .inner
            .crash_after_fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = step;
    }

    /// Enqueues jobs (tools and tests; the daemon enqueues through
    /// [`StateStore::commit_poll`]). Deduplicated like a poll commit.
    pub async fn enqueue(&self, jobs: Vec<super::NewJob>) -> Result<Vec<super::EnqueueOutcome>> {
        for job in &jobs {
            jobs::validate_new_job(job)?;
        }
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.inner.insert_job(job, None, false, None).await?);
        }
        Ok(outcomes)
    }

    /// Running jobs of every channel whose lease ended at or before `now` go
    /// back to pending, or to dead-letter after their last attempt (claims
    /// do this for their own channel). Returns how many were recovered.
    pub async fn recover_expired_leases(&self, now: Timestamp) -> Result<usize> {
        let channels: Vec<String> = self
            .inner
            .mirror
            .read(|view| view.active.keys().cloned().collect());
        let mut recovered = 0;
        for channel in channels {
            recovered += self.inner.recover(&channel, now, None).await?;
        }
        Ok(recovered)
    }
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.clock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .now()
    }

    fn day(&self, at: Timestamp) -> String {
        self.time_zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_datetime(at)
            .date()
            .to_string()
    }

    fn fenced(&self, scope: Scope<'_>) -> Result<()> {
        if self.fence.holds(scope) {
            Ok(())
        } else {
            Err(Error::Fenced {
                scope: scope.to_string(),
            })
        }
    }

    fn next_id(&self, now: Timestamp) -> JobId {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next(now)
    }

    /// Publishes one counted outcome; the message id makes a repeat a no-op.
    async fn publish_history(
        &self,
        job: &Job,
        outcome: Outcome,
        at: Timestamp,
        message_id: String,
    ) -> Result<()> {
        let event = HistoryEvent {
            day: self.day(at),
            store: job.store.clone(),
            channel: job.channel.to_string(),
            kind: job.kind_name().to_owned(),
            outcome,
            job: Some(job.id),
            count: 1,
        };
        self.publish_event(event, message_id).await
    }

    /// Publishes a history event on its channel's and store's subject.
    async fn publish_event(&self, event: HistoryEvent, message_id: String) -> Result<()> {
        if self
            .lose_publishes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let subject = self.names.history_subject(&event.channel, &event.store);
        let payload = serde_json::to_vec(&event)
            .map_err(|e| nats_error(subject.clone(), "encode history event")(boxed(e)))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id.as_str());
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, Bytes::from(payload))
            .await
            .map_err(|e| nats_error(subject.clone(), "publish history event")(boxed(e)))?
            .await
            .map_err(|e| nats_error(subject, "publish history event")(boxed(e)))?;
        let mut published = self
            .history_published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *published = (*published).max(ack.sequence);
        Ok(())
    }

    /// Publishes the outcome a job reached (if it is a counted terminal one).
    async fn count_terminal(&self, job: &Job) -> Result<()> {
        let Some(outcome) = Outcome::of_terminal(job.state) else {
            return Ok(());
        };
        let outcome = if job.fell_back_to.is_some() {
            Outcome::FellBack
        } else {
            outcome
        };
        let at = job.finished_at.unwrap_or_else(|| self.now());
        let message_id = format!(
            "{}.{}.{}.{}",
            job.id,
            job.claims,
            outcome.as_str(),
            at.as_millisecond()
        );
        self.publish_history(job, outcome, at, message_id).await
    }

    /// The current state (message count, last sequence) of a bucket's
    /// stream, asked of the server (`kv::Store::status` only repeats what
    /// the bucket looked like when it was bound).
    async fn bucket_state(&self, bucket_name: &str) -> Result<stream::State> {
        let stream_name = format!("KV_{bucket_name}");
        let bucket_stream = self.js.get_stream(&stream_name).await.map_err(|e| {
            nats_error(format!("bucket {bucket_name}"), "read bucket state")(boxed(e))
        })?;
        Ok(bucket_stream.cached_info().state.clone())
    }

    /// Reads a JSON record of a KV bucket with its revision (`None`: absent or deleted).
    /// The value of a poll-state entry (`None`: absent or deleted), noting
    /// its revision for the running poll of `store` ([`reads`]).
    fn polled_value(
        &self,
        store: &str,
        record: reads::PollRecord,
        entry: Option<kv::Entry>,
    ) -> Option<Bytes> {
        let Some(entry) = entry else {
            self.note_read(store, record, 0);
            return None;
        };
        self.note_read(store, record, entry.revision);
        (entry.operation == kv::Operation::Put).then_some(entry.value)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        bucket: &kv::Store,
        bucket_name: &str,
        key: &str,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Option<(T, u64)>> {
        // From the stream's leader, not a direct get (watch: issue 15).
        let entry = follow::leader_entry(bucket, key).await.map_err(nats_error(
            format!("bucket {bucket_name}, key {key}"),
            "read",
        ))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let value =
                    serde_json::from_slice(&entry.value).map_err(|error| Error::Corrupt {
                        path: format!("nats:{bucket_name}/{key}").into(),
                        what: what(),
                        message: error.to_string(),
                    })?;
                Ok(Some((value, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Changes a JSON record under compare-and-set, re-reading and re-running
    /// `update` on a conflict (so `update` may run more than once); answers
    /// the record and the revision written.
    async fn update_json_revision<T>(
        &self,
        bucket: &kv::Store,
        bucket_name: &str,
        key: &str,
        what: &(dyn Fn() -> String + Sync),
        update: &mut (dyn FnMut(&mut T) + Send),
    ) -> Result<(T, u64)>
    where
        T: serde::de::DeserializeOwned + Serialize + Default,
    {
        let target = || format!("bucket {bucket_name}, key {key}");
        for _ in 0..CAS_ATTEMPTS {
            let current = self.read_json::<T>(bucket, bucket_name, key, what).await?;
            let (mut value, revision) = match current {
                Some((value, revision)) => (value, Some(revision)),
                None => (T::default(), None),
            };
            update(&mut value);
            let bytes = Bytes::from(
                serde_json::to_vec(&value)
                    .map_err(|e| nats_error(target(), "encode record")(boxed(e)))?,
            );
            let written = match revision {
                Some(revision) => bucket
                    .update(key, bytes, revision)
                    .await
                    .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, boxed(e))),
                None => bucket
                    .create(key, bytes)
                    .await
                    .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, boxed(e))),
            };
            match written {
                Ok(written) => return Ok((value, written)),
                Err((true, _)) => continue,
                Err((false, error)) => return Err(nats_error(target(), "write record")(error)),
            }
        }
        Err(conflict(target()))
    }

    /// Runs the write `op`, and runs it again while it fails because its
    /// stream has no leader to answer (a nats-server lost or returning: the
    /// publish finds no responder, "no stream found for given subject", for
    /// the few seconds of an election). Such a write reached no server, so
    /// repeating it (even a create or a compare-and-set) cannot apply it
    /// twice. Before each repeat the fence is asked for `scope` (none: an
    /// unfenced write, e.g. a completion), so the retries stay within the
    /// node's lease; at most [`ELECTION_RETRY_LIMIT`] in all. Any other
    /// error, or the last one, is returned as it came (inner `Err`).
    pub(super) async fn through_elections<T, E, Op, Fut>(
        &self,
        scope: Option<Scope<'_>>,
        mut op: Op,
    ) -> Result<std::result::Result<T, E>>
    where
        E: std::fmt::Display,
        Op: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            match op().await {
                Err(error) if no_leader(&error) && started.elapsed() < ELECTION_RETRY_LIMIT => {
                    tracing::debug!(%error, "a JetStream write found no stream leader; trying again");
                    // A pause between tries, not a synchronisation: an
                    // election takes seconds.
                    tokio::time::sleep(ELECTION_RETRY_PAUSE).await;
                    if let Some(scope) = scope {
                        self.fenced(scope)?;
                    }
                }
                result => return Ok(result),
            }
        }
    }
}

/// How long a write is retried while its stream has no leader (elections
/// after a lost nats-server took 4–7 s in the cluster tests).
const ELECTION_RETRY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause between those retries.
const ELECTION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// True if a write failed because no server answered for its stream.
fn no_leader(error: &dyn std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains("no stream found for given subject") || text.contains("no responders")
}

/// Too many concurrent writers kept changing one record.
fn conflict(target: String) -> Error {
    Error::Nats {
        target,
        op: "compare-and-set",
        source: Arc::from(boxed(std::io::Error::other(format!(
            "the record kept changing under {CAS_ATTEMPTS} attempts"
        )))),
    }
}

/// Creates a KV bucket, or binds it when another node created it already.
///
/// The bucket's stream is created directly, with the settings a KV bucket
/// has (`KV_<bucket>`, subjects `$KV.<bucket>.>`, rollups allowed, direct
/// get, `history` 1): the client's own `create_key_value` first reads the
/// account's limits in a form nats-server 2.9 does not send.
async fn bucket(
    js: &jetstream::Context,
    names: &Names,
    what: &str,
    description: &str,
    replicas: usize,
    create: Create,
) -> Result<kv::Store> {
    let name = names.bucket(what);
    if create == Create::No {
        return js
            .get_key_value(name.clone())
            .await
            .map_err(|e| missing_state(names, format!("bucket {name}"), e));
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_bytes: -1,
        max_messages: -1,
        max_message_size: -1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    // Created by another node (with other settings, say a changed replica
    // count) is fine: bind to it as it is.
    if let Err(create) = js.get_or_create_stream(config).await {
        tracing::debug!(bucket = %name, error = %create, "creating the bucket failed; binding to it");
    }
    js.get_key_value(name.clone())
        .await
        .map_err(|e| nats_error(format!("bucket {name}"), "create or bind bucket")(boxed(e)))
}

/// Whether opening may create what is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Create {
    /// A daemon: create or bind (idempotent).
    Yes,
    /// An operator command: bind only.
    No,
}

/// A bucket or stream an operator command expected is not there (or cannot
/// be read): most often a `cluster.prefix` that no daemon uses.
fn missing_state(
    names: &Names,
    target: String,
    error: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Nats {
        target: format!(
            "{target} (cluster.prefix {:?}: no arauto daemon has opened a cluster state under \
             this prefix, or it is not readable; check cluster.prefix)",
            names.prefix
        ),
        op: "bind",
        source: Arc::from(boxed(error)),
    }
}

#[async_trait]
impl StateStore for NatsStore {
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        max: usize,
        lease: SignedDuration,
    ) -> Result<Vec<Job>> {
        self.inner.claim(channel, now, max, lease).await
    }

    async fn complete_noting_fallback(
        &self,
        claim: Claim,
        completion: Completion,
    ) -> Result<Completed> {
        self.inner.complete(claim, completion).await
    }

    async fn cancel(&self, ids: Vec<JobId>, reason: String) -> Result<Vec<(JobId, CancelOutcome)>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            outcomes.push((id, self.inner.cancel_one(id, &reason).await?));
        }
        Ok(outcomes)
    }

    async fn requeue(&self, ids: Vec<JobId>) -> Result<Vec<(JobId, RequeueOutcome)>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            outcomes.push((id, self.inner.requeue_one(id).await?));
        }
        Ok(outcomes)
    }

    async fn requeue_dead(&self, filter: JobFilter) -> Result<Vec<JobId>> {
        self.inner.requeue_dead(filter).await
    }

    async fn purge(&self, filter: PurgeFilter) -> Result<usize> {
        self.inner.purge(filter).await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.inner.load(id).await?.map(|stored| stored.job))
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        Ok(self.inner.list(&filter))
    }

    async fn jobs_for_order(&self, store: &str, order_id: &str) -> Result<Vec<Job>> {
        Ok(self.inner.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| stored.job.store == store && stored.job.order_id == order_id)
                .map(|stored| stored.job.clone())
                .collect()
        }))
    }

    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>> {
        Ok(self.channel_stats(channel).await?.oldest_due)
    }

    async fn take_over_channel(&self, channel: &str, now: Timestamp) -> Result<usize> {
        self.inner.take_over(channel, now).await
    }

    async fn channel_stats(&self, channel: &str) -> Result<ChannelStats> {
        Ok(self.inner.mirror.read(|view| view.channel_stats(channel)))
    }

    async fn channels(&self) -> Result<Vec<String>> {
        let mut channels: std::collections::BTreeSet<String> = self
            .inner
            .mirror
            .read(|view| view.channels.iter().cloned().collect());
        for key in self
            .inner
            .keys(&self.inner.buckets.channels, "channels")
            .await?
        {
            if let Some(channel) = keys::unescape(&key) {
                channels.insert(channel);
            }
        }
        Ok(channels.into_iter().collect())
    }

    fn watch_channel(&self, channel: &str) -> ChannelWatch {
        ChannelWatch::new(self.inner.mirror.watch_channel(channel))
    }

    fn watch_store(&self, store: &str) -> ChannelWatch {
        ChannelWatch::new(self.inner.mirror.watch_store(store))
    }

    async fn cursor(&self, store: &str) -> Result<Option<String>> {
        let key = keys::store_key(store);
        // From the stream's leader (a new owner reads it right after a
        // take-over; a direct get may come from a lagging replica), with its
        // revision noted for the poll's compare-and-set writes.
        let entry = follow::leader_entry(&self.inner.buckets.cursors, &key)
            .await
            .map_err(nats_error(format!("cursor of store {store:?}"), "read"))?;
        let value = self
            .inner
            .polled_value(store, reads::PollRecord::Cursor, entry);
        value
            .map(|bytes| {
                String::from_utf8(bytes.to_vec()).map_err(|error| Error::Corrupt {
                    path: format!("nats:{}/{key}", self.inner.names.bucket("cursors")).into(),
                    what: format!("cursor of store {store:?}"),
                    message: error.to_string(),
                })
            })
            .transpose()
    }

    async fn order_record(&self, store: &str, order_id: &str) -> Result<Option<Vec<u8>>> {
        let key = keys::order_key(store, order_id);
        // From the stream's leader: the dispatcher reads it right after the
        // poll commit released the job, and a direct get may come from a
        // replica that has not applied the record yet ("no longer followed",
        // and the message is skipped). Its revision is noted for the poll's
        // compare-and-set writes.
        let entry = follow::leader_entry(&self.inner.buckets.orders, &key)
            .await
            .map_err(nats_error(
                format!("record of order {order_id:?} of store {store:?}"),
                "read",
            ))?;
        let value =
            self.inner
                .polled_value(store, reads::PollRecord::Order(order_id.to_owned()), entry);
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    async fn commit_poll(&self, commit: PollCommit) -> Result<PollOutcome> {
        self.inner.commit_poll(commit).await
    }

    async fn store_status(&self, store: &str) -> Result<Option<StoreStatus>> {
        let inner = &self.inner;
        let bucket_name = inner.names.bucket("stores");
        let key = keys::store_key(store);
        let read = inner
            .read_json(&inner.buckets.stores, &bucket_name, &key, &|| {
                format!("status of store {store:?}")
            })
            .await?;
        let revision = match &read {
            Some((_, revision)) => *revision,
            // Absent or deleted: the revision the next write must find.
            None => {
                inner
                    .revision_now(&inner.buckets.stores, &bucket_name, &key)
                    .await?
            }
        };
        inner.note_read(store, reads::PollRecord::Status, revision);
        Ok(read.map(|(status, _)| status))
    }

    async fn stores(&self) -> Result<Vec<String>> {
        let mut stores: Vec<String> = self
            .inner
            .keys(&self.inner.buckets.stores, "stores")
            .await?
            .iter()
            .filter_map(|key| keys::unescape(key))
            .collect();
        stores.sort();
        Ok(stores)
    }

    async fn put_store_status(&self, store: &str, status: StoreStatus) -> Result<()> {
        self.inner.fenced(Scope::Store(store))?;
        self.inner.put_store_status(store, &status).await
    }

    fn poll_started(&self, store: &str) {
        self.inner.poll_started(store);
    }

    async fn update_store_status(
        &self,
        store: &str,
        mut update: StatusUpdate<StoreStatus>,
    ) -> Result<StoreStatus> {
        self.inner.fenced(Scope::Store(store))?;
        self.inner.update_store_status(store, &mut *update).await
    }

    async fn resume_store(&self, store: &str) -> Result<StoreStatus> {
        let status = self
            .inner
            .update_store_status(store, &mut |status: &mut StoreStatus| {
                status.paused = None;
                status.credentials_recheck_at = None;
            })
            .await?;
        self.inner.mirror.wake_store(store);
        Ok(status)
    }

    /// Prunes as the trait does, then removes the delete markers of the
    /// buckets older than [`retention::MARKERS_KEPT`] (see `retention.rs`).
    async fn prune(&self, finished_before: Timestamp, batch: usize) -> Result<usize> {
        let total = crate::queue::purge_in_batches(self, finished_before, batch).await?;
        // Counted outcomes a stopped node never published (see
        // `history_repair.rs`): every daemon prunes hourly, each repairs the
        // jobs of the channels it holds.
        let now = self.inner.now();
        match self.inner.repair_history(now).await {
            Ok(0) => {}
            Ok(repaired) => {
                tracing::info!(
                    repaired,
                    "counted outcomes whose publish to the history was lost"
                );
            }
            Err(error) => {
                tracing::warn!(
                    "cannot repair the history's lost outcomes: {error}; the next prune tries again"
                );
            }
        }
        let removed = self.inner.compact_markers(retention::MARKERS_KEPT).await?;
        if removed > 0 {
            tracing::info!(
                markers = removed,
                "removed old delete markers from the cluster's buckets"
            );
        }
        Ok(total)
    }

    async fn channel_status(&self, channel: &str) -> Result<ChannelStatus> {
        let inner = &self.inner;
        Ok(inner
            .read_json(
                &inner.buckets.channels,
                &inner.names.bucket("channels"),
                &keys::channel_key(channel),
                &|| format!("status of channel {channel:?}"),
            )
            .await?
            .map(|(status, _)| status)
            .unwrap_or_default())
    }

    async fn pause_channel(
        &self,
        channel: &str,
        reason: String,
        automatic: bool,
    ) -> Result<ChannelStatus> {
        let at = self.inner.now();
        self.inner
            .update_channel(channel, &mut |status: &mut ChannelStatus| {
                if status.paused.is_none() {
                    status.paused = Some(super::Pause {
                        reason: reason.clone(),
                        at,
                        automatic,
                    });
                }
            })
            .await
    }

    async fn resume_channel(&self, channel: &str) -> Result<ChannelStatus> {
        let status = self
            .inner
            .update_channel(channel, &mut |status: &mut ChannelStatus| {
                status.paused = None;
            })
            .await?;
        self.inner.mirror.wake_channel(channel);
        Ok(status)
    }

    async fn counters(&self, query: CounterQuery) -> Result<Vec<CounterRow>> {
        let published = *self
            .inner
            .history_published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.mirror.await_history(published).await;
        Ok(self.inner.mirror.read(|view| {
            view.counters
                .iter()
                .filter(|((day, store, channel, kind, _), _)| {
                    *day >= query.from_day
                        && *day <= query.to_day
                        && query.store.as_ref().is_none_or(|wanted| wanted == store)
                        && query
                            .channel
                            .as_ref()
                            .is_none_or(|wanted| wanted == channel)
                        && query.kind.as_ref().is_none_or(|wanted| wanted == kind)
                })
                .map(|((day, store, channel, kind, outcome), count)| CounterRow {
                    day: day.clone(),
                    store: store.clone(),
                    channel: channel.clone(),
                    kind: kind.clone(),
                    outcome: *outcome,
                    count: *count,
                })
                .collect()
        }))
    }

    async fn recent(&self, channel: &str, since: Timestamp) -> Result<Vec<FinishedJob>> {
        let mut finished: Vec<FinishedJob> = self.inner.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| stored.job.channel.as_str() == channel)
                .filter_map(|stored| {
                    let job = &stored.job;
                    let finished_at = job.finished_at?;
                    (job.state.is_terminal() && finished_at >= since).then_some(FinishedJob {
                        id: job.id,
                        state: job.state,
                        finished_at,
                    })
                })
                .collect()
        });
        finished.sort_by_key(|job| (job.finished_at, job.id));
        Ok(finished)
    }

    async fn entered_since(&self, since: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let mut jobs: Vec<Job> = self.inner.mirror.read(|view| {
            view.jobs
                .values()
                .filter(|stored| stored.job.created_at >= since)
                .map(|stored| stored.job.clone())
                .collect()
        });
        jobs.sort_by_key(|job| (job.created_at, job.id));
        jobs.truncate(limit);
        Ok(jobs)
    }

    fn set_time_zone(&self, time_zone: TimeZone) {
        *self
            .inner
            .time_zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = time_zone;
    }
}
