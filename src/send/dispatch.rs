//! The dispatcher of one channel instance: waits for the channel's pacing and
//! the next due job, claims it, checks it still makes sense, renders it,
//! hands it to the sender plugin and records the outcome.
//!
//! A paced channel (a `min_interval` or a daily cap, as NI's 20 s between
//! WhatsApp messages) sends one message at a time, in the order of due
//! times: pacing makes concurrency pointless.
//!
//! A channel without pacing (a webhook receiver, say) keeps up to its
//! `in_flight` sends under way at once ([`in_flight_limit`]): while one
//! waits on its provider the next is claimed. Each is still its own claim →
//! send → completion, so everything checked per job is checked exactly as
//! with one: the pause and the pacing state before each claim, the order's
//! latest record and the fence right before each send, the outcome recorded
//! as soon as its send returns. Two jobs of one order never overlap: a job
//! whose order already has a send under way waits for it before its own
//! starts (and nothing more is claimed meanwhile), so an order's messages
//! leave in the order of their due times, as with one send at a time.
//! Messages of different orders may finish out of their due order. On
//! shutdown nothing more is claimed and the sends under way finish and are
//! recorded before the loop returns.
//!
//! Unpaced channels are not batched (one claim, one send, one completion
//! per job): a batch of 16 claimed jobs measured no faster, and it would hold
//! the heartbeat, the shutdown and the pause for up to 16 sends
//! (docs/BENCHMARKS.md §7).
//!
//! An unpaced channel sending one message at a time (`in_flight = 1`)
//! *chains* its claims: the completion of a send and the claim of the next
//! due job are one request to the state store
//! ([`StateStore::complete_and_claim_next`](crate::queue::StateStore::complete_and_claim_next)),
//! one durable commit instead of two per message. The next job is then
//! exactly as claimed by the next turn, which checks the pause again before
//! sending it; a chained claim not sent (shutdown, the channel paced or
//! gone after a reload) is given back at once without spending an attempt.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use jiff::{SignedDuration, Timestamp};

use tokio_util::sync::CancellationToken;

use super::channel::{pacing_policy, retry_policy};
use super::pacing::{PacingDecision, PacingState};
use super::retry::{Attempt, DeadReason, RetryDecision};
use crate::clock::SharedClock;
use crate::decide::{OrderRecord, Relevance, SendTiming, send_time_check, still_relevant};
use crate::heartbeat::Heartbeat;
use crate::job::JobPayload;
use crate::metrics::Metrics;
use crate::model::{
    ChannelId, EventStore, EventTracking, NotificationKind, OrderEvent, RecipientNeed,
    first_usable_phone,
};
use crate::plugin::{MessageMeta, OutgoingMessage, PluginError, ProviderTemplate, Recipient};
use crate::queue::{
    ChannelStatus, Completion, Fence, Job, JobBody, NewJob, Receipt, Scope, SharedStore, Unfenced,
};
use crate::state::{ChannelRuntime, State, StateHandle, StoreRuntime};
use crate::template::{StoreInfo, TemplateContext, TemplateError};

/// Longest the dispatcher sleeps without looking again (and beating its heartbeat).
const MAX_NAP: Duration = Duration::from_secs(30);
/// Lease of a claimed job beyond the plugin call timeout (commit, rendering).
const LEASE_MARGIN: SignedDuration = SignedDuration::from_secs(30);
/// A dispatcher silent for this long is stuck (a send is bounded by the call timeout).
pub const HEARTBEAT_SILENCE: Duration = Duration::from_secs(300);

/// Deliver `channel`'s due jobs until `shutdown` is cancelled: wait for the
/// channel's pacing and the next due job, claim it, check it still makes
/// sense, render it, hand it to the sender plugin and record the outcome.
/// The channel's configuration is read live from `state`, so a reload
/// applies without restarting the loop; the loop ends when the channel is
/// no longer configured.
#[allow(clippy::too_many_arguments)] // the handles a loop runs on
pub async fn run(
    channel: ChannelId,
    state: StateHandle,
    db: SharedStore,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    heartbeat: Heartbeat,
    shutdown: CancellationToken,
    fence: Arc<dyn Fence>,
) {
    Dispatcher::new(channel, db, metrics, clock)
        .fenced_by(fence)
        .run(state, heartbeat, shutdown)
        .await;
}

/// The loop of one channel.
pub struct Dispatcher {
    channel: ChannelId,
    db: SharedStore,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    /// Asked right before each send: in a cluster, a node that lost the
    /// channel's lease must not send (its claim is left to expire).
    fence: Arc<dyn Fence>,
    /// The next job, claimed together with the last completion (module
    /// doc: chained claims), for the next turn to send.
    chained: std::sync::Mutex<Option<Box<Job>>>,
}

/// How many sends of `channel` may be under way at once: its `in_flight`
/// when it has no pacing (no minimum interval, its own or its sender's
/// default, and no daily cap), else one.
pub fn in_flight_limit(channel: &ChannelRuntime) -> usize {
    if unpaced(channel) {
        usize::try_from(channel.config.in_flight).map_or(1, |n| n.max(1))
    } else {
        1
    }
}

/// No minimum interval (its own or its sender's default) and no daily cap.
fn unpaced(channel: &ChannelRuntime) -> bool {
    // Only whether there is pacing matters here, not the day's time zone.
    let pacing = pacing_policy(
        &channel.config,
        channel.plugin.sender_info(),
        &jiff::tz::TimeZone::UTC,
    );
    pacing.min_interval.is_zero() && pacing.daily_cap.is_none()
}

/// A send under way, resolving to its order once its outcome is recorded.
type SendUnderWay<'a> = Pin<Box<dyn Future<Output = OrderKey> + Send + 'a>>;

/// An order of a store: two jobs of one never have sends under way at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OrderKey {
    store: String,
    order_id: String,
}

impl OrderKey {
    fn of(job: &Job) -> Self {
        Self {
            store: job.store.clone(),
            order_id: job.order_id.clone(),
        }
    }
}

/// One send of `order` is over.
fn release(busy: &mut HashMap<OrderKey, usize>, order: OrderKey) {
    if let Some(count) = busy.get_mut(&order) {
        *count -= 1;
        if *count == 0 {
            busy.remove(&order);
        }
    }
}

/// What came before a send: a claimed job, or what to do instead.
enum Claimed {
    /// Deliver it (boxed: a job record is large, the other answer small).
    Job(Box<Job>),
    /// Nothing to send now.
    Not(Turn),
}

/// What to do after one turn of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Look again now.
    Again,
    /// Sleep until then, or until the channel changes.
    WaitUntil(Timestamp),
    /// Sleep until the channel changes (nothing due).
    WaitForWork,
}

impl Dispatcher {
    /// The dispatcher of `channel` (the loop [`run`] drives, one turn at a
    /// time in tests).
    pub fn new(
        channel: ChannelId,
        db: SharedStore,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> Self {
        Self {
            channel,
            db,
            metrics,
            clock,
            fence: Arc::new(Unfenced),
            chained: std::sync::Mutex::new(None),
        }
    }

    /// Ask `fence` before every send (a cluster node's leases); without
    /// it, always allowed (one node).
    pub fn fenced_by(mut self, fence: Arc<dyn Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// One turn under `state`: deliver the next due job if pacing allows, and
    /// say when to look again. A channel `state` no longer has waits for work.
    pub async fn turn_once(&self, state: &State) -> Result<Turn, crate::queue::Error> {
        match state.channels.get(self.channel.as_str()) {
            Some(channel) => self.turn(state, channel).await,
            None => Ok(Turn::WaitForWork),
        }
    }

    async fn run(
        self,
        state_handle: StateHandle,
        heartbeat: Heartbeat,
        shutdown: CancellationToken,
    ) {
        let mut channel_watch = self.db.watch_channel(self.channel.as_str());
        let mut generation = state_handle.subscribe();
        // Claims a gone dispatcher left running (in a cluster: the channel's
        // previous holder) are due at once, not after their lease.
        match self
            .db
            .take_over_channel(self.channel.as_str(), self.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(taken) => {
                tracing::info!(channel = %self.channel, jobs = taken, "jobs the channel's previous dispatcher left running are due again")
            }
            Err(error) => {
                tracing::warn!(channel = %self.channel, "cannot take back the jobs the previous dispatcher left running (they wait for their lease): {error}")
            }
        }
        // Sends under way (unpaced channels only), each resolving to its
        // order once recorded; and how many of them each order has.
        let mut sends: FuturesUnordered<SendUnderWay<'_>> = FuturesUnordered::new();
        let mut busy_orders: HashMap<OrderKey, usize> = HashMap::new();
        loop {
            heartbeat.beat();
            if shutdown.is_cancelled() {
                break;
            }
            let state = state_handle.load();
            let Some(channel) = state.channels.get(self.channel.as_str()).cloned() else {
                break;
            };
            let limit = in_flight_limit(&channel);
            if limit > 1 || !sends.is_empty() {
                // A reload raised `in_flight`: a claim chained by a
                // one-at-a-time turn goes back to the queue.
                if let Some(job) = self.take_chained() {
                    self.give_back(&job, "the channel's in_flight changed")
                        .await;
                }
                // A full set of sends: wait for one to finish first.
                if sends.len() >= limit {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        Some(order) = sends.next() => release(&mut busy_orders, order),
                    }
                    continue;
                }
                let turn = match self.claim_turn(&state, &channel, limit).await {
                    Ok(Claimed::Job(job)) => {
                        let order = OrderKey::of(&job);
                        // An earlier job of this order is still being sent:
                        // this one waits for it (nothing else is claimed
                        // meanwhile), so the order's messages keep their order.
                        while busy_orders.contains_key(&order) {
                            match sends.next().await {
                                Some(done) => release(&mut busy_orders, done),
                                None => break,
                            }
                            heartbeat.beat();
                        }
                        *busy_orders.entry(order.clone()).or_default() += 1;
                        let this = &self;
                        sends.push(Box::pin(async move {
                            if let Err(error) = this.deliver(&state, &channel, *job).await {
                                tracing::error!(channel = %this.channel, "dispatch failed: {error}");
                            }
                            order
                        }));
                        continue;
                    }
                    Ok(Claimed::Not(turn)) => turn,
                    Err(error) => {
                        tracing::error!(channel = %self.channel, "dispatch failed: {error}");
                        Turn::WaitUntil(self.clock.now() + SignedDuration::from_secs(5))
                    }
                };
                let nap = match turn {
                    Turn::Again => continue,
                    Turn::WaitUntil(at) => self.until(at),
                    Turn::WaitForWork => MAX_NAP,
                };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    Some(order) = sends.next() => release(&mut busy_orders, order),
                    () = tokio::time::sleep(nap) => {}
                    _ = channel_watch.changed() => {}
                    changed = generation.changed() => {
                        if changed.is_ok() {
                            self.resume_after_reload().await;
                        }
                    }
                }
                continue;
            }
            let turn = match self.turn(&state, &channel).await {
                Ok(turn) => turn,
                Err(error) => {
                    // The database refused: it will not get better by
                    // spinning; give it a moment and try again.
                    tracing::error!(channel = %self.channel, "dispatch failed: {error}");
                    Turn::WaitUntil(self.clock.now() + SignedDuration::from_secs(5))
                }
            };
            let nap = match turn {
                Turn::Again => continue,
                Turn::WaitUntil(at) => self.until(at),
                Turn::WaitForWork => MAX_NAP,
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(nap) => {}
                _ = channel_watch.changed() => {}
                changed = generation.changed() => {
                    if changed.is_ok() {
                        self.resume_after_reload().await;
                    }
                }
            }
        }
        // Shutdown, or the channel left the configuration: nothing more is
        // claimed; the sends under way finish and are recorded first.
        while sends.next().await.is_some() {
            heartbeat.beat();
        }
        if let Some(job) = self.take_chained() {
            self.give_back(&job, "the dispatcher stopped before sending it")
                .await;
        }
    }

    fn take_chained(&self) -> Option<Box<Job>> {
        self.chained
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Returns a claimed job not sent: due again at once, its attempt not
    /// spent (as a fenced send's).
    async fn give_back(&self, job: &Job, why: &str) {
        let returned = self
            .db
            .complete(
                job.claim(),
                Completion::Retry {
                    at: self.clock.now(),
                    error: format!("not sent: {why}"),
                    spend_attempt: false,
                },
            )
            .await;
        if let Err(error) = returned {
            tracing::warn!(channel = %self.channel, job_id = %job.id, "cannot give back a claimed job that was not sent (it is due again when its claim expires): {error}");
        }
    }

    fn until(&self, at: Timestamp) -> Duration {
        let wait = at.duration_since(self.clock.now());
        if wait <= SignedDuration::ZERO {
            Duration::ZERO
        } else {
            wait.unsigned_abs().min(MAX_NAP)
        }
    }

    /// A reload may carry fixed credentials: lift a pause arauto set itself.
    async fn resume_after_reload(&self) {
        match self.db.channel_status(self.channel.as_str()).await {
            Ok(ChannelStatus {
                paused: Some(pause),
                ..
            }) if pause.automatic => {
                tracing::info!(channel = %self.channel, "configuration reloaded: channel resumed (was paused: {})", pause.reason);
                if let Err(error) = self.db.resume_channel(self.channel.as_str()).await {
                    tracing::error!(channel = %self.channel, "cannot resume the channel: {error}");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(channel = %self.channel, "cannot read the channel status: {error}")
            }
        }
    }

    async fn turn(
        &self,
        state: &State,
        channel: &ChannelRuntime,
    ) -> Result<Turn, crate::queue::Error> {
        let chain = unpaced(channel);
        let claimed = match self.take_chained() {
            Some(job) => {
                // What `claim_turn` checks before a claim, checked again
                // for a claim made with the last completion.
                let why = if !chain {
                    Some("the channel is paced since the configuration was reloaded")
                } else {
                    match self.db.channel_status(self.channel.as_str()).await {
                        Ok(status) if status.paused.is_some() => Some("the channel was paused"),
                        Ok(_) => None,
                        Err(error) => {
                            self.give_back(&job, "its channel's status could not be read")
                                .await;
                            return Err(error);
                        }
                    }
                };
                match why {
                    Some(why) => {
                        self.give_back(&job, why).await;
                        Claimed::Not(Turn::Again)
                    }
                    None => Claimed::Job(job),
                }
            }
            None => self.claim_turn(state, channel, 1).await?,
        };
        match claimed {
            Claimed::Job(job) => {
                let outcome = self.prepare_and_send(state, channel, &job).await;
                let next_lease = chain.then(|| channel.config.sandbox.call_timeout + LEASE_MARGIN);
                let next = self.record_outcome(&job, outcome, next_lease).await?;
                *self
                    .chained
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
                Ok(Turn::Again)
            }
            Claimed::Not(turn) => Ok(turn),
        }
    }

    /// The pause, the pacing and the next due job, then a claim of it:
    /// everything before a send. `in_flight` is how many sends of the
    /// channel may be under way at once: a claim's lease covers waiting for
    /// an earlier job of the same order as well as its own send.
    async fn claim_turn(
        &self,
        state: &State,
        channel: &ChannelRuntime,
        in_flight: usize,
    ) -> Result<Claimed, crate::queue::Error> {
        let now = self.clock.now();
        let status = self.db.channel_status(self.channel.as_str()).await?;
        if status.paused.is_some() {
            return Ok(Claimed::Not(Turn::WaitForWork));
        }
        let pacing = pacing_policy(
            &channel.config,
            channel.plugin.sender_info(),
            &state.config.daemon.timezone,
        );
        match pacing.next_send(&PacingState::of(&status), now) {
            PacingDecision::SendAt(at) if at > now => return Ok(Claimed::Not(Turn::WaitUntil(at))),
            PacingDecision::CapReached { until, cap } => {
                tracing::debug!(channel = %self.channel, cap, "daily cap reached; next reset {until}");
                return Ok(Claimed::Not(Turn::WaitUntil(until)));
            }
            PacingDecision::SendAt(_) => {}
        }
        match self.db.next_due(self.channel.as_str()).await? {
            None => return Ok(Claimed::Not(Turn::WaitForWork)),
            Some(due) if due > now => return Ok(Claimed::Not(Turn::WaitUntil(due))),
            Some(_) => {}
        }
        let call_timeout = channel.config.sandbox.call_timeout;
        let lease = if in_flight > 1 {
            call_timeout + call_timeout + LEASE_MARGIN
        } else {
            call_timeout + LEASE_MARGIN
        };
        match self
            .db
            .claim(self.channel.as_str(), now, 1, lease)
            .await?
            .into_iter()
            .next()
        {
            Some(job) => Ok(Claimed::Job(Box::new(job))),
            // Claimed by nobody else (one dispatcher per channel): the due
            // job expired at claim. Look again.
            None => Ok(Claimed::Not(Turn::Again)),
        }
    }

    /// Everything between a claim and its completion.
    async fn deliver(
        &self,
        state: &State,
        channel: &ChannelRuntime,
        job: Job,
    ) -> Result<(), crate::queue::Error> {
        let outcome = self.prepare_and_send(state, channel, &job).await;
        self.record_outcome(&job, outcome, None).await.map(|_| ())
    }

    /// Completes the claim of `job` with the outcome of its delivery, and
    /// counts and logs what became of it. With `claim_next` (a lease), the
    /// same write claims the channel's next due job, returned (module doc:
    /// chained claims).
    async fn record_outcome(
        &self,
        job: &Job,
        outcome: Outcome,
        claim_next: Option<SignedDuration>,
    ) -> Result<Option<Box<Job>>, crate::queue::Error> {
        let claim = job.claim();
        let fenced = matches!(outcome, Outcome::Fenced);
        let completion = match outcome {
            Outcome::Sent(completion) | Outcome::Done(completion) => completion,
            // Nothing was sent: give the claim back at once, attempt
            // included, so the node now holding the channel sends it without
            // waiting for the claim to expire (and a last attempt is not
            // taken for a crash). `complete` is not fenced; the claim number
            // refuses this if another node already recovered the job.
            Outcome::Fenced => Completion::Retry {
                at: self.clock.now(),
                error: format!(
                    "not sent: this node no longer held the lease of channel {}",
                    job.channel
                ),
                spend_attempt: false,
            },
        };
        // A claim given back is no attempt: not counted as a retry.
        let label = completion_label(&completion).filter(|_| !fenced);
        let fallback = match &completion {
            Completion::FellBack { fallback, reason } => {
                Some((fallback.channel.clone(), reason.clone()))
            }
            _ => None,
        };
        let completed = match claim_next {
            Some(lease) => self
                .db
                .complete_and_claim_next(
                    claim,
                    completion,
                    job.channel.as_str(),
                    self.clock.now(),
                    lease,
                )
                .await
                .map(|(done, next)| (done, next.into_iter().next().map(Box::new))),
            None => self
                .db
                .complete_noting_fallback(claim, completion)
                .await
                .map(|done| (done, None)),
        };
        let mut next = None;
        let (job_after, fallback_inserted) = match completed {
            Ok((done, claimed)) => {
                next = claimed;
                (done.job, done.fallback_inserted)
            }
            // The queue refused the fallback job (a dedupe key too long, say):
            // left running, the claim would be sent again and again until it
            // expires. It ends dead instead, with the refusal as the reason.
            Err(error @ crate::queue::Error::Invalid { .. }) => {
                let Some((fallback_channel, reason)) = &fallback else {
                    return Err(error);
                };
                let dead = format!(
                    "{reason}; the fallback to channel {fallback_channel} could not be planned: {error}"
                );
                tracing::warn!(
                    store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                    channel = %job.channel, job_id = %job.id, fallback = %fallback_channel,
                    "recipient unreachable on {}, and the fallback to channel {fallback_channel} was refused by the queue: not sent ({error})",
                    job.channel
                );
                let done = self
                    .db
                    .complete_noting_fallback(claim, Completion::Dead { reason: dead })
                    .await?;
                (done.job, None)
            }
            Err(error) => return Err(error),
        };
        let label = match (&fallback, job_after.state) {
            // A fallback the queue refused, or whose channel already ended
            // that notification unsent: the job is dead, not fell-back.
            (Some(_), crate::queue::JobState::Dead) => Some("dead"),
            _ => label,
        };
        if let Some(label) = label {
            self.metrics
                .job(&job.store, job.channel.as_str(), job.kind_name(), label);
        }
        match (fallback, job_after.fell_back_to) {
            (Some((fallback, reason)), Some(fallback_job)) => {
                if fallback_inserted.is_some() {
                    self.metrics
                        .fallback(job.channel.as_str(), fallback.as_str());
                    self.metrics
                        .job(&job.store, fallback.as_str(), job.kind_name(), "enqueued");
                    tracing::info!(
                        store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                        channel = %job.channel, job_id = %job.id, fallback = %fallback,
                        fallback_job_id = %fallback_job,
                        "recipient unreachable on {} ({reason}): fell back to channel {fallback} (job {fallback_job})",
                        job.channel
                    );
                } else {
                    tracing::info!(
                        store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                        channel = %job.channel, job_id = %job.id, fallback = %fallback,
                        fallback_job_id = %fallback_job,
                        "recipient unreachable on {} ({reason}): fell back to channel {fallback}, already planned there as job {fallback_job}",
                        job.channel
                    );
                }
            }
            (Some((fallback, _)), None) => {
                if let Some(why) = &job_after.outcome_reason {
                    tracing::warn!(
                        store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                        channel = %job.channel, job_id = %job.id, fallback = %fallback,
                        "recipient unreachable on {}, not sent: {why}",
                        job.channel
                    );
                }
            }
            _ => {}
        }
        tracing::debug!(
            channel = %self.channel,
            job_id = %job.id,
            state = %job_after.state,
            "job completed"
        );
        Ok(next)
    }

    async fn prepare_and_send(
        &self,
        state: &State,
        channel: &ChannelRuntime,
        job: &Job,
    ) -> Outcome {
        let fields = JobFields::of(job);
        let (kind, payload) = match &job.body {
            JobBody::Readable { kind, payload } => (*kind, payload),
            JobBody::Unreadable { unreadable, .. } => {
                return fields.dead(format!("unreadable job record: {unreadable}"));
            }
        };
        let Some(store) = state.stores.get(&job.store) else {
            return fields.skip(format!(
                "store `{}` is no longer in the configuration",
                job.store
            ));
        };
        let now = self.clock.now();

        // Quiet hours and expiry, at send time.
        let expires_at = job.expires_at.unwrap_or(Timestamp::MAX);
        match send_time_check(
            job.due_at,
            expires_at,
            payload.quiet_hours,
            store.policy.timing.quiet_hours.as_ref(),
            now,
        ) {
            SendTiming::SendNow => {}
            SendTiming::Defer { until, expires_at } => {
                tracing::info!(
                    store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                    channel = %job.channel, job_id = %job.id,
                    "quiet hours: held until {until}"
                );
                return Outcome::Done(Completion::Defer {
                    until,
                    expires_at: Some(expires_at),
                    reason: "quiet hours".into(),
                });
            }
            SendTiming::Expired => {
                tracing::info!(
                    store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                    channel = %job.channel, job_id = %job.id,
                    "expired before it could be sent"
                );
                return Outcome::Done(Completion::Expired);
            }
        }

        // Does it still make sense? The order may have moved on since it was planned.
        let record = match self.db.order_record(&job.store, &job.order_id).await {
            Ok(Some(bytes)) => match OrderRecord::from_bytes(&bytes) {
                Ok(record) => record,
                Err(error) => return fields.dead(format!("order record unreadable: {error}")),
            },
            Ok(None) => return fields.skip("the order is no longer followed".into()),
            Err(error) => {
                return Outcome::Done(Completion::Retry {
                    at: now + SignedDuration::from_secs(10),
                    error: format!("cannot read the order: {error}"),
                    spend_attempt: false,
                });
            }
        };
        if let Relevance::Drop { reason } =
            still_relevant(kind, payload.priority, payload.tracking.as_ref(), &record)
        {
            tracing::info!(
                store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                channel = %job.channel, job_id = %job.id,
                "dropped before sending: {reason}"
            );
            return Outcome::Done(Completion::Cancelled {
                reason: reason.to_string(),
            });
        }

        let message = match self.message(state, store, channel, job, (kind, payload), &record) {
            Ok(message) => message,
            Err(unsendable) => return fields.dead(unsendable.to_string()),
        };

        if state.dry_run {
            tracing::info!(
                store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                channel = %job.channel, job_id = %job.id,
                to = message.recipient.phone.as_deref().unwrap_or("-"),
                "dry run: would send:\n{}",
                message.text
            );
            return Outcome::Done(Completion::Skipped {
                reason: "dry run".into(),
            });
        }

        if !self.fence.holds(Scope::Channel(self.channel.as_str())) {
            tracing::warn!(
                store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                channel = %job.channel, job_id = %job.id,
                "not sent: this node no longer holds the lease of channel {} (paused, cut off or \
                 handing over); the claim is given back and the channel's new owner sends it",
                job.channel
            );
            return Outcome::Fenced;
        }
        let started = std::time::Instant::now();
        let result = channel.sender.send(message).await;
        self.metrics.plugin_call(
            channel.plugin.name(),
            &channel.config.id,
            "send",
            started.elapsed().as_secs_f64(),
        );
        match result {
            Ok(receipt) => {
                let at = self.clock.now();
                tracing::info!(
                    store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                    channel = %job.channel, job_id = %job.id,
                    provider_message_id = receipt.provider_message_id.as_deref().unwrap_or("-"),
                    attempt = job.attempt,
                    "notification sent"
                );
                Outcome::Sent(Completion::Sent {
                    receipt: Receipt {
                        provider_message_id: receipt.provider_message_id,
                        recipient_id: receipt.recipient_id,
                    },
                    at,
                    pacing_day: {
                        let time_zone = &state.config.daemon.timezone;
                        pacing_policy(&channel.config, channel.plugin.sender_info(), time_zone)
                            .day_of(at, time_zone)
                    },
                })
            }
            Err(error) => {
                let notification = Notification {
                    store,
                    kind,
                    payload,
                    record: &record,
                };
                self.failed(state, channel, job, notification, error).await
            }
        }
    }

    async fn failed(
        &self,
        state: &State,
        channel: &ChannelRuntime,
        job: &Job,
        notification: Notification<'_>,
        error: PluginError,
    ) -> Outcome {
        if error.is_sandbox_fault() {
            self.metrics
                .plugin_fault(channel.plugin.name(), &channel.config.id);
        }
        let now = self.clock.now();
        let decision = retry_policy(&channel.config).on_failure(
            error.class(),
            error.retry_after(),
            &error.to_string(),
            Attempt {
                number: job.attempt,
                expires_at: job.expires_at.unwrap_or(Timestamp::MAX),
            },
            now,
            &mut rand::rng(),
        );
        let fields = JobFields::of(job);
        match decision {
            RetryDecision::Retry { at, spend_attempt } => {
                tracing::warn!(
                    store = %job.store, order = %job.order_id, notification = %job.kind_name(),
                    channel = %job.channel, job_id = %job.id, attempt = job.attempt,
                    "send failed, retrying at {at}: {error}"
                );
                Outcome::Done(Completion::Retry {
                    at,
                    error: error.to_string(),
                    spend_attempt,
                })
            }
            RetryDecision::Dead {
                reason: DeadReason::Unreachable { message },
            } => match fall_back(state, channel, job, &notification, &message, now) {
                Some(outcome) => outcome,
                None => fields.dead(message),
            },
            RetryDecision::Dead { reason } => fields.dead(dead_text(&reason)),
            RetryDecision::PauseChannel { reason } => {
                tracing::error!(
                    channel = %job.channel,
                    "channel paused: the provider rejected its settings ({reason}); fix the config and reload, or run `arauto queue resume {}`",
                    job.channel
                );
                if let Err(store_error) = self
                    .db
                    .pause_channel(job.channel.as_str(), reason.clone(), true)
                    .await
                {
                    tracing::error!(channel = %job.channel, "cannot pause the channel: {store_error}");
                }
                Outcome::Done(Completion::Defer {
                    until: now,
                    expires_at: None,
                    reason: format!("channel paused: {reason}"),
                })
            }
        }
    }

    fn message(
        &self,
        state: &State,
        store: &StoreRuntime,
        channel: &ChannelRuntime,
        job: &Job,
        (kind, payload): (NotificationKind, &JobPayload),
        record: &OrderRecord,
    ) -> Result<OutgoingMessage, Unsendable> {
        let order = &record.order;
        let customer = &order.customer;
        let known_phone = || {
            first_usable_phone(&customer.phones)
                .ok()
                .map(|p| p.as_str().to_owned())
        };
        let email = customer.email.clone();
        let chat_id = customer.chat_id.clone();
        // The recipient the sender declared it needs must be there; the
        // others are filled whenever known.
        let need = channel
            .plugin
            .sender_info()
            .map_or(RecipientNeed::CustomerPhone, |info| info.recipient);
        let phone = match need {
            RecipientNeed::CustomerPhone => Some(
                first_usable_phone(&customer.phones)
                    .map_err(|problem| Unsendable::NoPhone {
                        order: order.number.clone(),
                        problem,
                    })?
                    .as_str()
                    .to_owned(),
            ),
            RecipientNeed::CustomerEmail if non_empty_opt(email.as_deref()).is_none() => {
                return Err(Unsendable::NoEmail {
                    order: order.number.clone(),
                });
            }
            RecipientNeed::CustomerChatId if non_empty_opt(chat_id.as_deref()).is_none() => {
                return Err(Unsendable::NoChatId {
                    order: order.number.clone(),
                });
            }
            _ => known_phone(),
        };
        let store_info = StoreInfo {
            id: store.config.id.clone(),
            description: store
                .config
                .description
                .clone()
                .unwrap_or_else(|| store.config.id.clone()),
            time_zone: store.config.timezone.clone(),
        };
        let context = TemplateContext::new(order, kind, &store_info, payload.tracking.as_ref());
        let text = state
            .templates
            .render(kind, &channel.config.id, &context)
            .map_err(|error| match error {
                TemplateError::MissingValue { .. } => Unsendable::MissingValue {
                    order: order.number.clone(),
                    job: job.id,
                    error,
                },
                error => Unsendable::Template(error),
            })?;
        let template = state
            .templates
            .render_provider(kind, &channel.config.id, &context)
            .map_err(Unsendable::ProviderTemplate)?
            .map(|t| ProviderTemplate {
                name: t.name,
                language: t.language,
                positional: t.positional,
                named: t.named,
            });
        Ok(OutgoingMessage {
            idempotency_key: job.id.to_string(),
            attempt: job.attempt,
            recipient: Recipient {
                phone,
                email,
                chat_id,
                name: non_empty(&customer.name),
                first_name: non_empty(&customer.first_name),
            },
            text,
            template,
            meta: MessageMeta {
                store: job.store.clone(),
                order_id: job.order_id.clone(),
                order_number: order.number.clone(),
                notification: kind,
                job_id: job.id.to_string(),
                channel: channel.config.id.clone(),
            },
            event: order_event(job, kind, store, payload, record),
        })
    }
}

/// The notification a failed job carried, as the fallback needs it.
struct Notification<'a> {
    store: &'a StoreRuntime,
    kind: NotificationKind,
    payload: &'a JobPayload,
    record: &'a OrderRecord,
}

/// The same notification on `channel`'s `fallback` channel, when it has one
/// whose sender can reach this order's customer: the completion that ends
/// `job` and plans it there in one queue transaction. `None` (the job is
/// dead-lettered) when the channel has no fallback, the fallback channel is
/// not running, or the order lacks what its sender needs (logged, naming the
/// store, order and both channels).
///
/// The fallback job holds the dedupe keys the planner would give the
/// notification on that channel (the per-order key and the fingerprint), so
/// a crash and retry cannot plan it twice, and a store entry (this one or
/// another on the same shop account) that already sends it there directly
/// gets no second copy. Its due time is `now` (not the original's: an
/// hours-old due time would jump that channel's queue); the fallback
/// channel's dispatcher applies that
/// channel's pacing, quiet hours and template. Chains follow naturally (the
/// fallback job may fall back in turn); validation rejects cycles.
fn fall_back(
    state: &State,
    channel: &ChannelRuntime,
    job: &Job,
    notification: &Notification<'_>,
    reason: &str,
    now: Timestamp,
) -> Option<Outcome> {
    let fallback_id = channel.config.fallback.as_deref()?;
    let order = &notification.record.order;
    let Some(fallback) = state.channels.get(fallback_id) else {
        tracing::warn!(
            store = %job.store, order = %job.order_id, notification = %job.kind_name(),
            channel = %job.channel, job_id = %job.id, fallback = fallback_id,
            "recipient unreachable on {} ({reason}), and its fallback channel {fallback_id} is not running: not sent",
            job.channel
        );
        return None;
    };
    let need = fallback
        .plugin
        .sender_info()
        .map_or(RecipientNeed::CustomerPhone, |info| info.recipient);
    let customer = &order.customer;
    let missing = match need {
        RecipientNeed::CustomerPhone => first_usable_phone(&customer.phones)
            .is_err()
            .then_some("usable phone"),
        RecipientNeed::CustomerEmail => non_empty_opt(customer.email.as_deref())
            .is_none()
            .then_some("e-mail address"),
        RecipientNeed::CustomerChatId => non_empty_opt(customer.chat_id.as_deref())
            .is_none()
            .then_some("chat id"),
        _ => None,
    };
    if let Some(missing) = missing {
        tracing::warn!(
            store = %job.store, order = %job.order_id, notification = %job.kind_name(),
            channel = %job.channel, job_id = %job.id, fallback = fallback_id,
            "recipient unreachable on {} ({reason}), and order {} has no {missing} for fallback channel {fallback_id}: fallback skipped, not sent",
            job.channel, order.number
        );
        return None;
    }
    let kind = notification.kind;
    let payload = notification.payload;
    let mut dedupe_key = format!("{}/{}/{}/{}", job.store, job.order_id, kind, fallback_id);
    if let Some(tracking) = &payload.tracking {
        dedupe_key.push_str(&format!("/{}/{}", tracking.shipment_id, tracking.code));
    }
    // The planner's duplicate rule across store entries of one shop account:
    // a second store entry planning (or having sent) the same notification on
    // this channel holds the same fingerprint. Computed from the status the
    // job was planned for, as the planner did.
    let mut planned_order = order.clone();
    planned_order.status.code.clone_from(&payload.status_code);
    let fingerprint = crate::decide::fingerprint(
        &notification.store.policy.platform_identity,
        kind,
        fallback_id,
        &planned_order,
        payload.tracking.as_ref().map(|t| t.code.as_str()),
    );
    let max_attempts = notification
        .store
        .kind_attempts
        .get(&kind)
        .copied()
        .unwrap_or(fallback.config.max_attempts);
    let new_job = NewJob {
        channel: ChannelId::from(fallback_id),
        store: job.store.clone(),
        order_id: job.order_id.clone(),
        kind,
        priority: job.priority,
        // Due now, not at the original's due time: an hours-old due time
        // would jump the fallback channel's own queue order.
        due_at: now,
        expires_at: job.expires_at,
        max_attempts,
        dedupe_keys: vec![dedupe_key, format!("fingerprint/{fingerprint}")],
        payload: payload.clone(),
    };
    Some(Outcome::Done(Completion::FellBack {
        reason: reason.to_owned(),
        fallback: Box::new(new_job),
    }))
}

/// Why a job's message cannot be made: the job goes to dead-letter with this
/// reason (an operator can retry it once the cause is fixed).
#[derive(Debug, thiserror::Error)]
enum Unsendable {
    /// The channel messages the customer's phone and the order has none usable.
    #[error("no usable phone for order {order}: {problem}")]
    NoPhone {
        /// The store-facing order number.
        order: String,
        /// Why each phone was refused (masked).
        problem: crate::model::NoUsablePhone,
    },
    /// The channel delivers to the customer's e-mail and the order has none.
    #[error("no e-mail address for order {order}: the channel's sender delivers by e-mail")]
    NoEmail {
        /// The store-facing order number.
        order: String,
    },
    /// The channel delivers to the customer's chat-app id and the order has none.
    #[error(
        "no chat id for order {order}: the channel's sender delivers to the customer's chat app"
    )]
    NoChatId {
        /// The store-facing order number.
        order: String,
    },
    /// An amount or quantity the text prints is unknown: better held than wrong.
    #[error(
        "held, not sent: order {order} lacks a value its text needs ({error}); \
         `arauto queue retry {job}` sends it once the order is readable"
    )]
    MissingValue {
        /// The store-facing order number.
        order: String,
        /// The job, for the retry command.
        job: crate::job::JobId,
        /// The template's complaint.
        error: TemplateError,
    },
    /// The text template failed.
    #[error("template failed: {0}")]
    Template(TemplateError),
    /// The provider template's parameters failed.
    #[error("provider template failed: {0}")]
    ProviderTemplate(TemplateError),
}

/// The data a webhook-style channel forwards: the notification, the store and
/// the order as last read.
fn order_event(
    job: &Job,
    kind: NotificationKind,
    store: &StoreRuntime,
    payload: &JobPayload,
    record: &OrderRecord,
) -> OrderEvent {
    OrderEvent {
        notification: kind,
        job_id: job.id.to_string(),
        store: EventStore {
            id: store.config.id.clone(),
            description: store.config.description.clone(),
            platform: store.info.platform.clone(),
        },
        status_code: payload.status_code.clone(),
        tracking: payload.tracking.as_ref().map(|t| EventTracking {
            shipment_id: t.shipment_id.clone(),
            code: t.code.clone(),
        }),
        order: record.order.clone(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn non_empty_opt(s: Option<&str>) -> Option<String> {
    s.and_then(non_empty)
}

/// How a delivery attempt ended (the distinction only matters for logs).
enum Outcome {
    Sent(Completion),
    Done(Completion),
    /// The channel's lease is gone: nothing sent, nothing completed.
    Fenced,
}

/// Log context of a job, for the one-line outcomes.
struct JobFields<'a>(&'a Job);

impl<'a> JobFields<'a> {
    fn of(job: &'a Job) -> Self {
        Self(job)
    }

    fn dead(&self, reason: String) -> Outcome {
        let job = self.0;
        tracing::error!(
            store = %job.store, order = %job.order_id, notification = %job.kind_name(),
            channel = %job.channel, job_id = %job.id,
            "not sent (dead-letter): {reason}"
        );
        Outcome::Done(Completion::Dead { reason })
    }

    fn skip(&self, reason: String) -> Outcome {
        let job = self.0;
        tracing::info!(
            store = %job.store, order = %job.order_id, notification = %job.kind_name(),
            channel = %job.channel, job_id = %job.id,
            "skipped: {reason}"
        );
        Outcome::Done(Completion::Skipped { reason })
    }
}

fn dead_text(reason: &DeadReason) -> String {
    reason.to_string()
}

/// The metric outcome of a completion (`None`: not an outcome yet).
fn completion_label(completion: &Completion) -> Option<&'static str> {
    match completion {
        Completion::Sent { .. } => Some("sent"),
        Completion::Retry { .. } => Some("retried"),
        Completion::Defer { .. } => None,
        Completion::Dead { .. } => Some("failed"),
        Completion::Cancelled { .. } => Some("cancelled"),
        Completion::Expired => Some("expired"),
        Completion::Skipped { .. } => Some("skipped"),
        Completion::FellBack { .. } => Some("fell-back"),
    }
}
