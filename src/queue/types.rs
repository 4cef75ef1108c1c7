//! Backend-neutral types of the queue engine and state store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::job::JobPayload;
pub use crate::job::{JobId, ParseJobIdError};
/// The class of a failure, as recorded in a store's [`LastError`]: the one
/// shared by the plugin boundary, the queue and retries.
pub use crate::model::ErrorClass;
use crate::model::{ChannelId, NotificationKind};

/// How many attempt records a job keeps (the oldest are dropped first).
pub const ATTEMPT_LOG_LEN: usize = 10;

/// A job to put on the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The channel whose dispatcher delivers it.
    pub channel: ChannelId,
    /// The store the order belongs to.
    pub store: String,
    /// The platform's order id.
    pub order_id: String,
    /// The notification kind.
    pub kind: NotificationKind,
    /// Lower values are claimed first among due jobs (0 is the most urgent), as in
    /// Oban and River.
    pub priority: u8,
    /// Not claimed before this instant.
    pub due_at: Timestamp,
    /// After this instant the job is stale: a claim moves it to `Expired` instead.
    pub expires_at: Option<Timestamp>,
    /// Attempts (claims that spent one) before the job goes to dead-letter. At least 1.
    pub max_attempts: u32,
    /// If any of these keys is already held by a job, the enqueue is a no-op that
    /// returns that job's id. A job holds its keys until it is pruned.
    pub dedupe_keys: Vec<String>,
    /// What the dispatcher needs besides the queue's own fields.
    pub payload: JobPayload,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its due time (new, scheduled or retrying).
    Pending,
    /// Claimed by a dispatcher, under a lease.
    Running,
    /// Delivered (the provider accepted it).
    Sent,
    /// Failed for good: attempts exhausted or a permanent error (dead-letter).
    Dead,
    /// Withdrawn (the order moved on, or an operator cancelled it).
    Cancelled,
    /// Became stale before it could be delivered.
    Expired,
    /// Deliberately not sent (no usable recipient, opted out, …).
    Skipped,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Running,
        JobState::Sent,
        JobState::Dead,
        JobState::Cancelled,
        JobState::Expired,
        JobState::Skipped,
    ];

    /// The terminal states.
    pub const TERMINAL: [JobState; 5] = [
        JobState::Sent,
        JobState::Dead,
        JobState::Cancelled,
        JobState::Expired,
        JobState::Skipped,
    ];

    /// True for the states a job never leaves on its own.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }

    /// The lowercase name used in the CLI, JSON and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Sent => "sent",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
            JobState::Skipped => "skipped",
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            JobState::Pending => 0,
            JobState::Running => 1,
            JobState::Sent => 2,
            JobState::Dead => 3,
            JobState::Cancelled => 4,
            JobState::Expired => 5,
            JobState::Skipped => 6,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.code() == code)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a job state (expected pending, running, sent, dead/failed, cancelled, expired or skipped)"
)]
pub struct ParseJobStateError(pub String);

impl FromStr for JobState {
    type Err = ParseJobStateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let lower = input.to_ascii_lowercase();
        match lower.as_str() {
            "failed" => return Ok(JobState::Dead),
            "canceled" => return Ok(JobState::Cancelled),
            _ => {}
        }
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == lower)
            .ok_or_else(|| ParseJobStateError(input.to_owned()))
    }
}

/// One claim of a job and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// When the attempt ended (or was recovered).
    pub at: Timestamp,
    /// The attempt number it counted as.
    pub attempt: u32,
    /// "sent", or the error text.
    pub outcome: String,
}

/// Proof of delivery returned by the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The provider's id for the message (WhatsApp `wamid…`, Twilio `SM…`).
    #[serde(default)]
    pub provider_message_id: Option<String>,
    /// The normalised recipient the message went to.
    #[serde(default)]
    pub recipient_id: Option<String>,
}

/// A job as the queue hands it out. The queue stores it in its own record
/// format (see `queue::redb`); this serde form is what `arauto queue --json`
/// and the control socket show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Time-ordered id.
    pub id: JobId,
    /// Channel id of the dispatcher that delivers it.
    pub channel: ChannelId,
    /// Store the order belongs to.
    pub store: String,
    /// Platform order id.
    pub order_id: String,
    /// Lower is claimed first.
    pub priority: u8,
    /// Current state.
    pub state: JobState,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it may next be claimed (meaningful while pending).
    pub due_at: Timestamp,
    /// When it becomes stale.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Attempts spent so far (incremented at claim).
    pub attempt: u32,
    /// Attempts allowed before dead-letter.
    pub max_attempts: u32,
    /// Times the job was claimed; never goes back, unlike `attempt`. Fences late
    /// completions from a lease that expired.
    #[serde(default)]
    pub claims: u32,
    /// While running: when the claim's lease runs out.
    #[serde(default)]
    pub lease_until: Option<Timestamp>,
    /// The most recent error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The last [`ATTEMPT_LOG_LEN`] attempts.
    #[serde(default)]
    pub attempts_log: Vec<AttemptRecord>,
    /// When it reached a terminal state.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// Why it ended the way it did (dead-letter reason, cancel reason…).
    #[serde(default)]
    pub outcome_reason: Option<String>,
    /// Delivery proof, once sent.
    #[serde(default)]
    pub receipt: Option<Receipt>,
    /// The keys that made it unique (held until the job is pruned, cancelled,
    /// or, for a job that fell back, until its unsent fallback job is
    /// cancelled: then the list is emptied).
    #[serde(default)]
    pub dedupe_keys: Vec<String>,
    /// Set when the recipient could not be reached on this job's channel and
    /// the notification went to the channel's `fallback` instead: the job
    /// there, either created in the same transaction that ended this one or,
    /// when that channel already had the notification pending, running or
    /// sent (another store entry on the same shop account, say), that
    /// existing job. Such a job is `skipped` and is never requeued (the
    /// customer would get it twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fell_back_to: Option<JobId>,
    /// Set on a job created by a fallback: the job whose channel could not
    /// reach the recipient (the one whose [`Job::fell_back_to`] names this
    /// job). Absent from records written before fallbacks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<JobId>,
    /// The notification, or why its record cannot be read.
    #[serde(flatten)]
    pub body: JobBody,
}

/// What a job notifies, as read back from its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobBody {
    /// The notification as planned.
    Readable {
        /// Notification kind.
        kind: NotificationKind,
        /// What the dispatcher needs besides the queue's own fields.
        payload: JobPayload,
    },
    /// A record whose notification this arauto cannot read (written by a
    /// newer version, or damaged). Kept visible in `arauto queue list/show`;
    /// its dispatcher dead-letters it on claim.
    Unreadable {
        /// The kind as stored (may be unknown to this version).
        kind: String,
        /// Why it cannot be read.
        unreadable: String,
        /// The payload as stored (JSON text), for the operator.
        stored_payload: String,
    },
}

impl JobBody {
    /// The kind's name, readable or not (for listings, counters, metrics).
    pub fn kind_name(&self) -> &str {
        match self {
            JobBody::Readable { kind, .. } => kind.as_str(),
            JobBody::Unreadable { kind, .. } => kind,
        }
    }
}

impl Job {
    /// A running job whose delivery stopped without an answer (its lease
    /// lapsed, its channel was taken over, a fallback stopped half-way): the
    /// attempt is noted with `note` and the job is due again at `now`, or
    /// dead when that was its last attempt (`last_words` says how it
    /// stopped: "the delivery crashed or timed out", …). Shared by the redb
    /// and JetStream backends, which only add their writes.
    pub fn attempt_stopped(&mut self, now: Timestamp, note: String, last_words: &str) {
        self.log_attempt(now, note.clone());
        self.last_error = Some(note);
        if self.attempt >= self.max_attempts {
            let reason = format!(
                "{last_words} on its last attempt ({} of {})",
                self.attempt, self.max_attempts
            );
            self.finish(JobState::Dead, now, Some(reason));
        } else {
            self.state = JobState::Pending;
            self.due_at = now;
            self.lease_until = None;
        }
    }

    /// A fallback that cannot happen: the fallback channel's job for this
    /// order (`holder`) has already ended (`holder_state`, `None`: gone), and
    /// inserting another would send the same message twice. The job ends
    /// dead, saying so; `reason` is why its own channel gave up.
    pub fn fallback_already_ended(
        &mut self,
        now: Timestamp,
        reason: String,
        fallback_channel: &str,
        holder: JobId,
        holder_state: Option<JobState>,
    ) {
        let ended = holder_state.map_or("gone", JobState::as_str);
        let outcome = format!(
            "{reason}; fallback channel {fallback_channel} already ended: job {holder} is {ended}"
        );
        self.log_attempt(now, outcome.clone());
        self.last_error = Some(reason);
        self.fell_back_to = None;
        self.finish(JobState::Dead, now, Some(outcome));
    }

    /// Ends the job in `state` at `at`, its lease released.
    pub fn finish(&mut self, state: JobState, at: Timestamp, reason: Option<String>) {
        self.state = state;
        self.finished_at = Some(at);
        self.lease_until = None;
        self.outcome_reason = reason;
    }

    /// Applies `completion` to this running job the way every backend does
    /// (attempt log, state, due time, last error). A [`Completion::FellBack`]
    /// needs the backend to insert the fallback job first: it is handed back
    /// untouched, as (reason, fallback job). Counters and pacing are the
    /// backend's to update in the same write.
    pub fn apply_completion(
        &mut self,
        completion: Completion,
        now: Timestamp,
    ) -> Option<(String, Box<NewJob>)> {
        match completion {
            Completion::Sent { receipt, at, .. } => {
                self.log_attempt(at, "sent".to_owned());
                self.receipt = Some(receipt);
                self.finish(JobState::Sent, at, None);
            }
            Completion::Retry {
                at,
                error,
                spend_attempt,
            } => {
                self.log_attempt(now, error.clone());
                if !spend_attempt {
                    self.attempt = self.attempt.saturating_sub(1);
                }
                if spend_attempt && self.attempt >= self.max_attempts {
                    let reason = format!("gave up after {} attempts: {error}", self.attempt);
                    self.finish(JobState::Dead, now, Some(reason));
                } else if self.expires_at.is_some_and(|expires| expires <= at) {
                    let reason = format!("the retry would come after its expiry: {error}");
                    self.finish(JobState::Expired, now, Some(reason));
                } else {
                    self.state = JobState::Pending;
                    self.due_at = at;
                    self.lease_until = None;
                }
                self.last_error = Some(error);
            }
            Completion::Defer {
                until,
                expires_at,
                reason,
            } => {
                self.log_attempt(now, format!("deferred: {reason}"));
                self.attempt = self.attempt.saturating_sub(1);
                if expires_at.is_some() {
                    self.expires_at = expires_at;
                }
                self.state = JobState::Pending;
                self.due_at = until;
                self.lease_until = None;
            }
            Completion::Dead { reason } => {
                self.log_attempt(now, reason.clone());
                self.last_error = Some(reason.clone());
                self.finish(JobState::Dead, now, Some(reason));
            }
            Completion::Cancelled { reason } => {
                self.log_attempt(now, format!("cancelled: {reason}"));
                self.finish(JobState::Cancelled, now, Some(reason));
            }
            Completion::Expired => {
                self.log_attempt(now, "expired".to_owned());
                self.finish(
                    JobState::Expired,
                    now,
                    Some("expired during delivery".to_owned()),
                );
            }
            Completion::Skipped { reason } => {
                self.log_attempt(now, format!("skipped: {reason}"));
                self.finish(JobState::Skipped, now, Some(reason));
            }
            Completion::FellBack { reason, fallback } => return Some((reason, fallback)),
        }
        None
    }
    /// The notification kind, if the record is readable.
    pub fn kind(&self) -> Option<NotificationKind> {
        match &self.body {
            JobBody::Readable { kind, .. } => Some(*kind),
            JobBody::Unreadable { .. } => None,
        }
    }

    /// The kind's name as stored, readable or not.
    pub fn kind_name(&self) -> &str {
        self.body.kind_name()
    }

    /// The payload, or why the record cannot be read.
    pub fn payload(&self) -> Result<&JobPayload, &str> {
        match &self.body {
            JobBody::Readable { payload, .. } => Ok(payload),
            JobBody::Unreadable { unreadable, .. } => Err(unreadable),
        }
    }

    /// The handle a dispatcher presents to complete this claim.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            claim: self.claims,
        }
    }

    pub(crate) fn log_attempt(&mut self, at: Timestamp, outcome: String) {
        if self.attempts_log.len() >= ATTEMPT_LOG_LEN {
            let excess = self.attempts_log.len() + 1 - ATTEMPT_LOG_LEN;
            self.attempts_log.drain(..excess);
        }
        self.attempts_log.push(AttemptRecord {
            at,
            attempt: self.attempt,
            outcome,
        });
    }
}

/// Identifies one claim of a job: completions and lease extensions must present
/// the claim they hold, so a dispatcher whose lease expired (and whose job was
/// recovered and claimed again) cannot complete someone else's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// The job.
    pub id: JobId,
    /// Its claim number ([`Job::claims`] when it was claimed).
    pub claim: u32,
}

/// How a running job ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Completion {
    /// Delivered. Also counts the send in the channel's pacing counters.
    Sent {
        /// The provider's proof.
        receipt: Receipt,
        /// When the provider accepted it.
        at: Timestamp,
        /// The channel's pacing day (its daily-cap day, else the local date);
        /// the daily counter restarts when it changes.
        pacing_day: jiff::civil::Date,
    },
    /// Try again at `at`. If `spend_attempt` is true and the job has used all its
    /// attempts it goes to dead-letter instead; if `at` is past its expiry it expires.
    Retry {
        /// When to try again.
        at: Timestamp,
        /// What went wrong.
        error: String,
        /// False for provider back-pressure (429 + Retry-After): the attempt
        /// counter is restored, so waiting does not eat attempts.
        spend_attempt: bool,
    },
    /// Not sent yet for a reason that is no failure (quiet hours, a paused
    /// channel): back to pending at `until` with the attempt given back and,
    /// when `expires_at` is set, a moved expiry (quiet hours delay, never drop).
    Defer {
        /// When to try again.
        until: Timestamp,
        /// The job's new expiry, if it moves.
        expires_at: Option<Timestamp>,
        /// Why, for the job's attempt log.
        reason: String,
    },
    /// Failed for good (permanent error).
    Dead {
        /// Why.
        reason: String,
    },
    /// Withdrawn during delivery (pre-send re-validation found the order moved on).
    Cancelled {
        /// Why.
        reason: String,
    },
    /// Found stale during delivery.
    Expired,
    /// Deliberately not sent.
    Skipped {
        /// Why (no usable phone, opted out…).
        reason: String,
    },
    /// The recipient cannot be reached on this channel: the job ends
    /// `skipped` with [`Job::fell_back_to`] set and, in the same transaction,
    /// `fallback` is enqueued (or, when one of its dedupe keys is already
    /// held by a pending, running or sent job, that holder is named instead:
    /// the notification is already planned there). When the holder already
    /// ended unsent (dead, skipped, expired, cancelled), the job ends `dead`
    /// with a reason naming it, and nothing is named. Never serialised: it
    /// carries a whole new job.
    #[serde(skip)]
    FellBack {
        /// Why the original channel gave up (the sender's message).
        reason: String,
        /// The same notification on the fallback channel.
        fallback: Box<NewJob>,
    },
}

/// What a completion did: the job as stored afterwards and, for a
/// [`Completion::FellBack`] that created a new job on the fallback channel,
/// that job (`None` when an existing job already held the notification
/// there, or the fallback ended the job dead).
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    /// The completed job as stored.
    pub job: Job,
    /// The fallback job this completion inserted.
    pub fallback_inserted: Option<JobId>,
}

/// Result of enqueuing one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "id", rename_all = "lowercase")]
pub enum EnqueueOutcome {
    /// A new job was created.
    Inserted(JobId),
    /// A dedupe key was already held by this job; nothing was written.
    Duplicate(JobId),
}

impl EnqueueOutcome {
    /// The new or existing job's id.
    pub fn id(self) -> JobId {
        match self {
            EnqueueOutcome::Inserted(id) | EnqueueOutcome::Duplicate(id) => id,
        }
    }

    /// True if a new job was created.
    pub fn is_inserted(self) -> bool {
        matches!(self, EnqueueOutcome::Inserted(_))
    }
}

/// Result of cancelling one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "state", rename_all = "kebab-case")]
pub enum CancelOutcome {
    /// It was pending and is now cancelled.
    Cancelled,
    /// It was not pending (running or finished) and was left alone.
    NotPending(JobState),
    /// No such job.
    NotFound,
}

/// Result of requeuing one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "state", rename_all = "kebab-case")]
pub enum RequeueOutcome {
    /// It is pending again, due now, with its attempts reset.
    Requeued,
    /// Its state cannot be requeued (pending, running or sent) and it was left alone.
    NotRequeueable(JobState),
    /// It fell back to this job on another channel (the recipient was
    /// unreachable on its own): sending it again here would reach the
    /// customer twice, so it was left alone.
    FellBack(JobId),
    /// No such job.
    NotFound,
}

/// Which jobs to list. Empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// Only this store.
    pub store: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this order (fast with `store` set).
    pub order_id: Option<String>,
    /// Only this notification kind.
    pub kind: Option<String>,
    /// At most this many jobs (`None`: all).
    pub limit: Option<usize>,
}

impl JobFilter {
    /// True if `job` passes every field of the filter (the limit aside).
    pub fn matches(&self, job: &Job) -> bool {
        fn field(wanted: &Option<String>, actual: &str) -> bool {
            wanted.as_deref().is_none_or(|wanted| wanted == actual)
        }
        field(&self.store, &job.store)
            && field(&self.channel, job.channel.as_str())
            && field(&self.order_id, &job.order_id)
            && field(&self.kind, job.kind_name())
            && self.state.is_none_or(|state| state == job.state)
    }
}

/// Which finished jobs to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeFilter {
    /// Only jobs that finished before this instant.
    pub finished_before: Timestamp,
    /// Only these terminal states (empty: all terminal states).
    pub states: Vec<JobState>,
    /// At most this many jobs in this call (one transaction).
    pub limit: usize,
}

/// Queue depth of one channel, kept as transactional counters (no scan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Jobs waiting (due or scheduled).
    pub pending: u64,
    /// Jobs claimed and not yet completed.
    pub running: u64,
    /// Earliest due time among pending jobs.
    pub oldest_due: Option<Timestamp>,
}

/// A finished job, as the recent-activity index holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedJob {
    /// The job.
    pub id: JobId,
    /// Its terminal state.
    pub state: JobState,
    /// When it finished.
    pub finished_at: Timestamp,
}

/// Everything one store poll produced, committed atomically by
/// [`StateStore::commit_poll`](super::StateStore::commit_poll).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollCommit {
    /// The store polled.
    pub store: String,
    /// The connector's new cursor; `None` keeps the stored one.
    pub cursor: Option<String>,
    /// New order records (opaque blobs owned by detect/decide), by order id.
    pub order_records: Vec<(String, Vec<u8>)>,
    /// Order records to delete (orders the store no longer needs to follow).
    pub forget_orders: Vec<String>,
    /// Jobs to enqueue, deduplicated by their dedupe keys (see [`StateStore`](super::StateStore)).
    /// Each must belong to `store`.
    pub jobs: Vec<NewJob>,
    /// Jobs to cancel with a reason; only pending ones are touched.
    pub cancel: Vec<(JobId, String)>,
    /// The store's status after this poll (replaces the stored one).
    pub status: StoreStatus,
}

/// What a poll commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOutcome {
    /// One outcome per job of the commit, in order.
    pub jobs: Vec<EnqueueOutcome>,
    /// One outcome per cancellation of the commit, in order.
    pub cancelled: Vec<(JobId, CancelOutcome)>,
}

/// Why something is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Human-readable reason ("WhatsApp token rejected (401)").
    pub reason: String,
    /// Since when.
    pub at: Timestamp,
    /// Set by arauto itself on a `misconfigured` plugin error (lifted by a
    /// config reload or `arauto queue resume`); false for an operator's pause,
    /// which only `arauto queue resume` lifts.
    #[serde(default)]
    pub automatic: bool,
}

/// The last error seen for a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When.
    pub at: Timestamp,
    /// Its class.
    pub class: ErrorClass,
    /// What happened (never containing secrets).
    pub message: String,
}

/// Health and counters of one store, read by `arauto check` and reports.
/// Stored as versioned JSON; new fields need `#[serde(default)]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStatus {
    /// When arauto first saw this store in its config.
    pub added_at: Option<Timestamp>,
    /// Orders older than this are history: recorded at the first sync, not notified.
    pub first_sync_cutoff: Option<Timestamp>,
    /// Start of the latest poll.
    pub last_poll_started_at: Option<Timestamp>,
    /// End of the latest successful poll.
    pub last_poll_ok_at: Option<Timestamp>,
    /// The latest error, if the last poll failed.
    pub last_error: Option<LastError>,
    /// Set while the store is paused (misconfigured).
    pub paused: Option<Pause>,
    /// Distinct orders seen.
    pub orders_seen: u64,
    /// Events that could not become notifications (e.g. no usable phone).
    pub invalid_events: u64,
    /// Platform statuses without a notification mapping, with how often they occurred.
    pub unmapped_statuses: BTreeMap<String, u64>,
    /// Order events detected.
    pub events_total: u64,
    /// `invalid_events` by reason key (`landline`, `too-long`…, see
    /// `model::PhoneProblem`).
    pub invalid_reasons: BTreeMap<String, u64>,
    /// Notifications never queued on a channel because of an invalid event,
    /// per local day (the store's time zone), for `arauto report`; days older
    /// than [`SKIPPED_DAYS_KEPT`] are dropped.
    pub skipped: Vec<SkippedCount>,
    /// The latest order whose modification time lay in the future (a
    /// data-entry mistake or a platform bug), while it keeps being seen.
    pub clock_skew: Option<ClockSkew>,
    /// Orders the connector could not read (retrying or quarantined), by
    /// order id; an order leaves when the connector reads it again.
    pub unreadable_orders: BTreeMap<String, UnreadableOrder>,
    /// Set while sweeps stop at the page cap (`max_pages_per_sweep`).
    pub page_cap: Option<PageCapHit>,
    /// The platform asked not to be polled before this (a Retry-After hint);
    /// kept so a restart honours it too.
    pub poll_not_before: Option<Timestamp>,
    /// While polling is paused automatically: when the credentials are
    /// checked again.
    pub credentials_recheck_at: Option<Timestamp>,
}

/// How many local days [`StoreStatus::skipped`] keeps (the default history
/// retention is 90 days).
pub const SKIPPED_DAYS_KEPT: i32 = 92;

/// Notifications of one day, channel and kind that were never queued, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCount {
    /// Local day `YYYY-MM-DD`.
    pub day: String,
    /// Channel id.
    pub channel: String,
    /// Notification kind.
    pub kind: String,
    /// Reason key (`landline`…).
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// An order whose modification time lay in the future.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSkew {
    /// The order id.
    pub order: String,
    /// The timestamp as the platform wrote it.
    pub value: String,
    /// When the connector last reported it.
    pub at: Timestamp,
}

/// An order the connector could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableOrder {
    /// Why, as the connector said.
    pub reason: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The connector gave up: it reads the order again only when it changes
    /// on the platform, so its customer may not be notified meanwhile.
    pub quarantined: bool,
    /// First failure.
    pub since: Timestamp,
    /// Latest report.
    pub last_at: Timestamp,
}

/// A sweep that stopped at the page cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCapHit {
    /// Pages committed by that sweep (the cap).
    pub pages: u32,
    /// When it stopped.
    pub at: Timestamp,
}

/// Pacing and health of one channel. Stored as versioned JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelStatus {
    /// Set while the channel is paused; claims return nothing meanwhile.
    pub paused: Option<Pause>,
    /// The latest successful send.
    pub last_sent_at: Option<Timestamp>,
    /// The local pacing day `sent_today` counts for. A stored value that is
    /// not a date (none was ever written, but a hand-edited or damaged record
    /// could hold one) reads as no day: the count restarts, nothing fails.
    #[serde(deserialize_with = "lenient_date")]
    pub pacing_day: Option<jiff::civil::Date>,
    /// Messages sent on `pacing_day`.
    pub sent_today: u64,
    /// First send ever (start of the warm-up ramp).
    pub warmup_started_at: Option<Timestamp>,
    /// Notifications handed to a fallback channel, per local day (daemon
    /// time zone) and fallback channel, for `arauto report`; days older than
    /// [`SKIPPED_DAYS_KEPT`] are dropped.
    pub fallbacks: Vec<FallbackCount>,
}

/// Notifications of one day that one channel handed to one fallback channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackCount {
    /// Local day `YYYY-MM-DD`.
    pub day: String,
    /// The fallback channel's id.
    pub fallback: String,
    /// How many.
    pub count: u64,
}

/// What a daily counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A job was enqueued.
    Entered,
    /// A job was delivered.
    Sent,
    /// A job went to dead-letter (failed).
    Dead,
    /// A job was cancelled.
    Cancelled,
    /// A job expired.
    Expired,
    /// A job was skipped.
    Skipped,
    /// A job's recipient was unreachable on its channel and the notification
    /// went to the channel's fallback (counted on the original channel).
    FellBack,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Entered,
        Outcome::Sent,
        Outcome::Dead,
        Outcome::Cancelled,
        Outcome::Expired,
        Outcome::Skipped,
        Outcome::FellBack,
    ];

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Entered => "entered",
            Outcome::Sent => "sent",
            Outcome::Dead => "dead",
            Outcome::Cancelled => "cancelled",
            Outcome::Expired => "expired",
            Outcome::Skipped => "skipped",
            Outcome::FellBack => "fell-back",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// The outcome a terminal state counts as.
    pub const fn of_terminal(state: JobState) -> Option<Self> {
        match state {
            JobState::Sent => Some(Outcome::Sent),
            JobState::Dead => Some(Outcome::Dead),
            JobState::Cancelled => Some(Outcome::Cancelled),
            JobState::Expired => Some(Outcome::Expired),
            JobState::Skipped => Some(Outcome::Skipped),
            JobState::Pending | JobState::Running => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which daily counters to read. Days are local dates `YYYY-MM-DD`, inclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterQuery {
    /// First day.
    pub from_day: String,
    /// Last day.
    pub to_day: String,
    /// Only this store.
    pub store: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this notification kind.
    pub kind: Option<String>,
}

/// One daily counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRow {
    /// Local day `YYYY-MM-DD`.
    pub day: String,
    /// Store.
    pub store: String,
    /// Channel id.
    pub channel: String,
    /// Notification kind.
    pub kind: String,
    /// What was counted.
    pub outcome: Outcome,
    /// How many.
    pub count: u64,
}

/// Write-path statistics of a store handle (since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Durable commits made.
    pub commits: u64,
    /// Write requests applied (several per commit under load: group commit).
    pub write_ops: u64,
    /// Commits that failed (every request of the batch got the error).
    pub failed_commits: u64,
    /// The largest number of requests in one commit.
    pub largest_batch: u64,
    /// Time spent applying requests inside transactions, in microseconds.
    pub apply_micros: u64,
    /// Time spent committing (writing and syncing), in microseconds.
    pub commit_micros: u64,
}

/// Result of a full consistency check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Jobs stored.
    pub jobs: u64,
    /// Of which pending.
    pub pending: u64,
    /// Of which running.
    pub running: u64,
    /// Of which finished.
    pub finished: u64,
    /// Inconsistencies found (empty when healthy).
    pub problems: Vec<String>,
}

/// `Some(date)` for a date, `None` for anything else (see
/// [`ChannelStatus::pacing_day`]).
fn lenient_date<'de, D>(deserializer: D) -> std::result::Result<Option<jiff::civil::Date>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(|text| text.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_pacing_day_reads_as_a_date_and_anything_else_as_none() {
        let read = |json: &str| {
            serde_json::from_str::<ChannelStatus>(json)
                .unwrap()
                .pacing_day
        };
        assert_eq!(
            read(r#"{"pacing_day":"2025-03-14","sent_today":3}"#),
            Some(jiff::civil::date(2025, 3, 14))
        );
        assert_eq!(read(r#"{"pacing_day":"yesterday","sent_today":3}"#), None);
        assert_eq!(read(r#"{"pacing_day":null}"#), None);
        assert_eq!(read(r#"{"sent_today":1}"#), None);
    }
}
