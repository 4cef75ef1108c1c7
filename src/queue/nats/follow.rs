//! Following a JetStream stream (a KV bucket's or the history stream) into
//! a node's in-memory view, in a way that never freezes: the one primitive
//! the store's views ([`Mirror`]) and cluster ownership both use.
//!
//! * **Recoverable errors keep the consumer.** The client's ordered push
//!   consumer re-creates itself after a missed idle heartbeat or a
//!   reconnect, from the last stream sequence it delivered; such an error
//!   is not the end of the watch, so it is only noted.
//! * **A check against the stream's leader judges.** Every
//!   [`CHECK_EVERY`] the follower asks the stream's leader for its last
//!   sequence (`STREAM.INFO`, answered by the leader, never by a lagging
//!   follower). A sequence that existed at one check, with nothing at all
//!   delivered until the next, means the consumer is broken (nats-server
//!   2.9.10 may place a re-created consumer on a server that is down, and it
//!   then never delivers): the follower drops it and opens a new one from
//!   the last sequence it applied + 1, not a full replay. A check nobody
//!   answers changes nothing (a leader election, a loaded machine): only a
//!   sequence known to be missing makes a view stale.
//! * **Re-opening never gives up.** Each attempt is bounded by
//!   [`ATTEMPT_TIMEOUT`]; failed attempts repeat with a backoff (up to
//!   [`MAX_BACKOFF`]) until one works or the follower is stopped.
//! * **The view says whether it is current.** [`Freshness`] is `Current`
//!   while the follower has delivered everything the leader had at its last
//!   look, and `Stale { since, reason }` from the moment that is not known
//!   any more. Each transition is logged once (WARN when it goes stale, INFO
//!   when it is current again), never each attempt.
//!
//! The store's followers are below: the jobs bucket into the view of jobs
//! (staged flags, active sets, wake-ups), the history stream into the daily
//! counters, and the store and channel statuses for their pause flags.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::mirror::{JobRecord, Mirror};
use super::{HistoryEvent, keys};
use crate::queue::{ChannelStatus, StoreStatus};

/// How long one consumer creation or one check of the stream may take: well
/// inside the shortest lease TTL (3 s), so a follower never waits on a
/// server that is down for longer than a lease could survive.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause after a failed attempt to open a consumer.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the follower compares what it delivered with the stream leader's
/// last sequence.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(3);

/// Whether a view holds everything its stream held at the last look.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Freshness {
    /// Up to date as of the last check (or the last delivery with nothing pending).
    Current,
    /// Not known to be up to date since `since`, for `reason`.
    Stale {
        /// When it stopped being current (this node's wall clock).
        since: Timestamp,
        /// Why, for logs and `arauto check`.
        reason: String,
    },
}

impl Freshness {
    /// Whether it is [`Freshness::Current`].
    pub fn is_current(&self) -> bool {
        matches!(self, Self::Current)
    }
}

impl std::fmt::Display for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Current => f.write_str("current"),
            Self::Stale { since, reason } => write!(f, "stale since {since} ({reason})"),
        }
    }
}

/// Signals that a follower has delivered everything that existed when it started.
pub(crate) struct Ready(oneshot::Receiver<()>);

impl Ready {
    /// Waits for it (returns at once if the follower ended: reads then see
    /// what it loaded, and why was logged).
    pub(crate) async fn await_ready(self) {
        let _ = self.0.await;
    }
}

/// Where a follower starts the first time (later openings resume after the
/// last sequence it applied).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    /// The latest message of each subject (a KV bucket's current contents).
    LastPerSubject,
    /// Every message (the history stream's counters).
    All,
}

/// What to follow.
pub(crate) struct FollowSpec {
    /// For the consumer's inbox.
    pub(crate) client: async_nats::Client,
    /// The stream.
    pub(crate) stream: stream::Stream,
    /// The subjects, `>` for all.
    pub(crate) filter_subject: String,
    /// Where to start the first time.
    pub(crate) start: Start,
    /// Names the view in logs: `bucket arauto_jobs`, `stream arauto_history`.
    pub(crate) what: String,
    /// Ends the follower.
    pub(crate) stop: CancellationToken,
    /// Whether the filter takes the whole stream, so the leader's last
    /// sequence is the end of what it follows. A narrower follower (an
    /// operator command reading one store's jobs) only trusts its
    /// consumer's pending count: the stream's last message is often not one
    /// of its subjects.
    pub(crate) whole_stream: bool,
}

impl FollowSpec {
    /// A KV bucket's whole contents (`$KV.<bucket>.>`), then every change.
    pub(crate) fn bucket(
        client: async_nats::Client,
        bucket: &kv::Store,
        stop: CancellationToken,
    ) -> Self {
        Self {
            client,
            stream: bucket.stream.clone(),
            filter_subject: format!("{}>", bucket.prefix),
            start: Start::LastPerSubject,
            what: format!("bucket {}", bucket.name),
            stop,
            whole_stream: true,
        }
    }
}

/// A running follower: its task, its first catch-up and its freshness.
pub(crate) struct Following {
    pub(crate) task: JoinHandle<()>,
    pub(crate) ready: Ready,
    pub(crate) freshness: watch::Receiver<Freshness>,
}

/// Starts following `spec`, calling `apply` with every message in stream
/// order, each exactly once (a message the follower already applied is
/// never applied again, whichever consumer delivers it).
pub(crate) fn follow(
    spec: FollowSpec,
    apply: impl FnMut(&jetstream::Message, u64) + Send + 'static,
) -> Following {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (freshness_tx, freshness) = watch::channel(Freshness::Stale {
        since: Timestamp::now(),
        reason: "not loaded yet".to_owned(),
    });
    let status = Status {
        what: spec.what.clone(),
        freshness: freshness_tx,
        ready: Some(ready_tx),
        warned: false,
    };
    let task = tokio::spawn(run(spec, apply, status));
    Following {
        task,
        ready: Ready(ready_rx),
        freshness,
    }
}

/// The follower's freshness, logging each transition once.
struct Status {
    what: String,
    freshness: watch::Sender<Freshness>,
    ready: Option<oneshot::Sender<()>>,
    /// Whether the last transition to stale was logged (the first load is
    /// "stale" too, but not worth a warning).
    warned: bool,
}

impl Status {
    /// Current, and the first load (if this ends it) is complete.
    fn current(&mut self) {
        self.mark_current();
        self.loaded();
    }

    /// Says the first load is complete (once).
    fn loaded(&mut self) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }

    /// Current (the first load may still be applying its last message).
    fn mark_current(&mut self) {
        let was = self.freshness.send_replace(Freshness::Current);
        if let Freshness::Stale { since, .. } = was
            && self.warned
        {
            self.warned = false;
            let stale_for = Timestamp::now().duration_since(since);
            tracing::info!(
                view = %self.what,
                "this node's view of the {} is current again (stale for {stale_for:#})",
                self.what
            );
        }
    }

    fn stale(&mut self, reason: String) {
        self.freshness.send_modify(|freshness| match freshness {
            Freshness::Current => {
                *freshness = Freshness::Stale {
                    since: Timestamp::now(),
                    reason: reason.clone(),
                };
            }
            Freshness::Stale { reason: old, .. } => old.clone_from(&reason),
        });
        // Only a view that was once loaded warns: a first load that fails
        // is reported by whoever waits for it (with the reason).
        if self.ready.is_none() && !self.warned {
            self.warned = true;
            tracing::warn!(
                view = %self.what,
                "this node's view of the {} is stale: {reason}; following it again",
                self.what
            );
        } else {
            tracing::debug!(view = %self.what, "view still stale: {reason}");
        }
    }
}

async fn run(
    spec: FollowSpec,
    mut apply: impl FnMut(&jetstream::Message, u64) + Send + 'static,
    mut status: Status,
) {
    let stop = spec.stop.clone();
    // The highest stream sequence applied.
    let mut last: Option<u64> = None;
    // Everything up to here was delivered or is gone from the stream (set
    // when a consumer opened after a check has nothing pending).
    let mut floor = 0u64;
    // The stream's last sequence at the latest answered check.
    let mut known_end: Option<u64> = None;
    let mut backoff = FIRST_BACKOFF;
    'reopen: loop {
        let from = match (last, spec.start) {
            (Some(sequence), _) => DeliverPolicy::ByStartSequence {
                start_sequence: sequence + 1,
            },
            (None, Start::LastPerSubject) => DeliverPolicy::LastPerSubject,
            (None, Start::All) => DeliverPolicy::All,
        };
        let opened = tokio::select! {
            () = stop.cancelled() => return,
            opened = tokio::time::timeout(ATTEMPT_TIMEOUT, open(&spec, from)) => opened,
        };
        let (mut messages, pending_at_open) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                status.stale(format!("cannot open a consumer: {error}"));
                if pause(&stop, &mut backoff).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                status.stale(format!(
                    "opening a consumer got no answer within {ATTEMPT_TIMEOUT:?}"
                ));
                if pause(&stop, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        if pending_at_open == 0 {
            if let Some(end) = known_end {
                floor = floor.max(end);
            }
            status.current();
        }
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A stream sequence the leader had at the last check and not
        // delivered yet, with what had been delivered then.
        let mut behind: Option<(u64, u64)> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        let Ok(info) = message.info() else {
                            tracing::debug!(view = %spec.what, "a message without JetStream metadata; skipped");
                            continue;
                        };
                        let (sequence, pending) = (info.stream_sequence, info.pending);
                        if last.is_some_and(|last| sequence <= last) {
                            continue;
                        }
                        // Current as of this message: said before applying
                        // it, so whoever its wake-up reaches sees it so; the
                        // first load is complete only once it is applied.
                        if pending == 0 {
                            status.mark_current();
                        }
                        apply(&message, pending);
                        last = Some(sequence);
                        if pending == 0 {
                            status.loaded();
                        }
                    }
                    Some(Err(error)) => {
                        // Not the end: the client re-creates the consumer from
                        // the last sequence it delivered. The next checks tell
                        // whether that worked.
                        tracing::debug!(view = %spec.what, %error, "the consumer reported an error; it re-creates itself");
                    }
                    None => {
                        status.stale("its consumer's subscription ended".to_owned());
                        continue 'reopen;
                    }
                },
                _ = check.tick(), if spec.whole_stream => {
                    let seen = last.unwrap_or(0).max(floor);
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, spec.stream.get_info()).await {
                        Ok(Ok(info)) => {
                            let end = info.state.last_sequence;
                            known_end = Some(end);
                            if end <= seen || info.state.messages == 0 {
                                behind = None;
                                status.current();
                            } else if let Some((target, _)) =
                                behind.filter(|(target, then)| seen < *target && seen == *then)
                            {
                                // Nothing at all arrived for a whole interval
                                // while the leader had more: a long replay
                                // still delivering is not broken.
                                status.stale(format!(
                                    "sequence {target} is not delivered {CHECK_EVERY:?} after the stream's leader had it"
                                ));
                                continue 'reopen;
                            } else {
                                behind = Some((end, seen));
                            }
                        }
                        // No answer says nothing about this view (a leader
                        // election, a loaded machine): it stays as it was.
                        // Only a sequence known to be missing makes it stale,
                        // or else a busy cluster would make every node stop
                        // heartbeating at once.
                        Ok(Err(error)) => {
                            tracing::debug!(view = %spec.what, %error, "the stream's leader did not answer the check");
                        }
                        Err(_) => {
                            tracing::debug!(view = %spec.what, "the stream's leader did not answer the check within {ATTEMPT_TIMEOUT:?}");
                        }
                    }
                }
            }
        }
    }
}

/// Waits `backoff` (doubled for next time, up to [`MAX_BACKOFF`]); true if
/// the follower was stopped meanwhile.
async fn pause(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// An ordered push consumer from `from`, and how many messages it had
/// pending when created.
async fn open(
    spec: &FollowSpec,
    from: DeliverPolicy,
) -> Result<(push::Ordered, u64), async_nats::Error> {
    let consumer = spec
        .stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: spec.client.new_inbox(),
            description: Some(format!("arauto view of the {}", spec.what)),
            filter_subject: spec.filter_subject.clone(),
            deliver_policy: from,
            replay_policy: jetstream::consumer::ReplayPolicy::Instant,
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending;
    Ok((consumer.messages().await?, pending))
}

/// A message of a KV bucket's stream as the KV entry it is.
pub(crate) fn kv_entry(
    bucket: &kv::Store,
    message: &jetstream::Message,
    pending: u64,
) -> Option<kv::Entry> {
    let info = message.info().ok()?;
    let key = message.subject.as_str().strip_prefix(&bucket.prefix)?;
    Some(kv::Entry {
        bucket: bucket.name.clone(),
        key: key.to_owned(),
        value: message.payload.clone(),
        revision: info.stream_sequence,
        delta: pending,
        created: info.published,
        operation: kv_operation(message.headers.as_ref()),
        seen_current: pending == 0,
    })
}

/// The latest entry of `key` as the stream's *leader* has it: the regular
/// message get (`STREAM.MSG.GET`, last message of the key's subject), which
/// only the leader answers. `kv::Store::entry` uses a direct get when the
/// bucket allows it, and any replica may answer that, including one that has
/// not applied the latest write yet (right after a write, or while a
/// restarted server catches up). `None`: the key has no message (never
/// written, or purged away).
pub(crate) async fn leader_entry(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<kv::Entry>, async_nats::Error> {
    last_entry_by_subject(bucket, key).await
}

/// The latest entry of the one key that matches `pattern` (a key with
/// wildcards, such as `*.*.<job id>`), as the stream's leader has it (see
/// [`leader_entry`]); the entry's key is the key that matched. nats-server
/// answers a "last message by subject" request with a wildcard subject from
/// its per-block subject index (2.9 does: tested in `tests/queue_nats.rs`).
pub(crate) async fn leader_entry_matching(
    bucket: &kv::Store,
    pattern: &str,
) -> Result<Option<kv::Entry>, async_nats::Error> {
    last_entry_by_subject(bucket, pattern).await
}

/// The "last message by subject" request behind [`leader_entry`] and
/// [`leader_entry_matching`], as a KV entry whose key is the subject that
/// answered, without the bucket's prefix.
async fn last_entry_by_subject(
    bucket: &kv::Store,
    key_or_pattern: &str,
) -> Result<Option<kv::Entry>, async_nats::Error> {
    let subject = format!("{}{key_or_pattern}", bucket.prefix);
    match bucket
        .stream
        .get_last_raw_message_by_subject(&subject)
        .await
    {
        Ok(message) => {
            let Some(key) = message.subject.as_str().strip_prefix(&bucket.prefix) else {
                return Ok(None);
            };
            Ok(Some(kv::Entry {
                bucket: bucket.name.clone(),
                key: key.to_owned(),
                operation: kv_operation(Some(&message.headers)),
                value: message.payload,
                revision: message.sequence,
                delta: 0,
                created: message.time,
                seen_current: true,
            }))
        }
        Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The KV operation a message's headers name (a message without them is a put).
pub(crate) fn kv_operation(headers: Option<&async_nats::HeaderMap>) -> kv::Operation {
    let Some(headers) = headers else {
        return kv::Operation::Put;
    };
    if let Some(operation) = headers.get("KV-Operation") {
        return match operation.as_str() {
            "DEL" => kv::Operation::Delete,
            "PURGE" => kv::Operation::Purge,
            _ => kv::Operation::Put,
        };
    }
    match headers.get("Nats-Marker-Reason").map(|r| r.as_str()) {
        Some("MaxAge" | "Purge") => kv::Operation::Purge,
        Some("Remove") => kv::Operation::Delete,
        _ => kv::Operation::Put,
    }
}

/// Follows the jobs bucket (the keys `key_filter` selects: `>` for all,
/// `*.<store>.*` for one store's) into the view.
pub(super) fn jobs(
    client: async_nats::Client,
    bucket: kv::Store,
    key_filter: &str,
    mirror: Arc<Mirror>,
    stop: CancellationToken,
) -> Following {
    let mut spec = FollowSpec::bucket(client, &bucket, stop);
    if key_filter != ">" {
        spec.filter_subject = format!("{}{key_filter}", bucket.prefix);
        spec.whole_stream = false;
    }
    follow(spec, move |message, pending| {
        if let Some(entry) = kv_entry(&bucket, message, pending) {
            apply_job_entry(&mirror, &bucket.name, &entry);
        }
    })
}

fn apply_job_entry(mirror: &Mirror, bucket: &str, entry: &kv::Entry) {
    let Some(id) = keys::job_id_of_key(&entry.key) else {
        // The layout record, or the delete marker of a layout-1 key that
        // `arauto state migrate` moved: nothing to show.
        if entry.key != keys::LAYOUT_KEY && entry.operation == kv::Operation::Put {
            tracing::warn!(bucket, key = %entry.key, "a key of the jobs bucket is no job key (<channel>.<store>.<id>); ignored");
        }
        mirror.skip_job_revision(entry.revision);
        return;
    };
    match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<JobRecord>(&entry.value) {
            Ok(record) => mirror.apply_job(id, entry.revision, Some(record)),
            Err(error) => {
                tracing::warn!(bucket, job = %id, %error, "a job record is unreadable; left out of this node's view");
                mirror.skip_job_revision(entry.revision);
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => mirror.apply_job(id, entry.revision, None),
    }
}

/// Follows the history stream (the subjects `filter_subject` selects,
/// empty for all) into the daily counters.
pub(super) fn history(
    client: async_nats::Client,
    stream: stream::Stream,
    filter_subject: String,
    mirror: Arc<Mirror>,
    stop: CancellationToken,
) -> Following {
    let name = stream.cached_info().config.name.clone();
    let whole_stream = filter_subject.is_empty();
    let spec = FollowSpec {
        client,
        stream,
        filter_subject,
        start: Start::All,
        what: format!("stream {name}"),
        stop,
        whole_stream,
    };
    follow(spec, move |message, _pending| {
        let Ok(info) = message.info() else {
            return;
        };
        let sequence = info.stream_sequence;
        let event = serde_json::from_slice::<HistoryEvent>(&message.payload).ok();
        if event.is_none() {
            tracing::warn!(stream = %name, sequence, "a history event is unreadable; not counted");
        }
        let published = Timestamp::from_nanosecond(info.published.unix_timestamp_nanos()).ok();
        mirror.apply_history(sequence, event, published);
    })
}

/// Which statuses a pause follower reads.
#[derive(Clone, Copy, Debug)]
pub(super) enum Paused {
    Store,
    Channel,
}

/// Follows store or channel statuses for their pause flags.
pub(super) fn pauses(
    client: async_nats::Client,
    bucket: kv::Store,
    mirror: Arc<Mirror>,
    which: Paused,
    stop: CancellationToken,
) -> Following {
    let spec = FollowSpec::bucket(client, &bucket, stop);
    follow(spec, move |message, pending| {
        let Some(entry) = kv_entry(&bucket, message, pending) else {
            return;
        };
        let Some(scope) = keys::unescape(&entry.key) else {
            return;
        };
        let paused = entry.operation == kv::Operation::Put
            && match which {
                Paused::Store => serde_json::from_slice::<StoreStatus>(&entry.value)
                    .is_ok_and(|status| status.paused.is_some()),
                Paused::Channel => serde_json::from_slice::<ChannelStatus>(&entry.value)
                    .is_ok_and(|status| status.paused.is_some()),
            };
        match which {
            Paused::Store => mirror.apply_store_pause(&scope, paused),
            Paused::Channel => mirror.apply_channel_pause(&scope, paused),
        }
    })
}
