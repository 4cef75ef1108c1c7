//! One sweep of one store: call the connector's `poll` until it has no more
//! pages, turn every order it returns into decisions, and commit each page —
//! order records, new jobs, cancellations, cursor and store status — in one
//! transaction, so a crash either loses the whole page (re-polled from the old
//! cursor, deduplicated) or keeps all of it.
//!
//! A sweep that finds nothing new (one page, no order, no notice, a store
//! status that only moved its poll times) commits nothing when the daemon
//! keeps such polls in memory ([`Sweep::idle`], see [`super::idle`]): one
//! plugin call, one HTTP request, no database write.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::idle::{IdlePolls, same_but_poll_times};
use super::invalid::record_invalid;
use crate::clock::Clock;
use crate::decide::{
    DecideInput, OrderRecord, PendingNotification, StorePolicy, UnmappedStatus, decide,
};
use crate::heartbeat::Heartbeat;
use crate::metrics::Metrics;
use crate::model::{NoUsablePhone, first_usable_phone};
use crate::plugin::{ConnectorNotice, PluginError, PollRequest, RejectedOrder};
use crate::queue::{
    ClockSkew, EnqueueOutcome, ErrorClass, JobBody, JobId, JobState, LastError, PageCapHit,
    PollCommit, StateStore, StoreStatus, UnreadableOrder,
};
use crate::state::StoreRuntime;

/// How a sweep ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Pages committed.
    pub pages: u32,
    /// Orders returned by the connector.
    pub orders: u64,
    /// Jobs enqueued (duplicates excluded).
    pub enqueued: u64,
    /// Pending jobs cancelled.
    pub cancelled: u64,
    /// True when the sweep stopped early because the daemon is shutting down.
    pub interrupted: bool,
    /// True when the sweep stopped at the page cap with more pages to read.
    pub page_cap_reached: bool,
}

/// A store remembers at most this many unreadable orders; past it the oldest
/// report (retrying ones first) is forgotten, so a connector gone haywire
/// cannot grow the store status without bound.
pub const MAX_UNREADABLE_ORDERS: usize = 1000;
/// A future timestamp is shown this long after the connector last reported it.
pub const CLOCK_SKEW_MEMORY: SignedDuration = SignedDuration::from_hours(24);
/// A platform's Retry-After is honoured up to this long: LI's budget is per
/// minute, so a longer hint is a bug that must not silence a store.
pub const MAX_RETRY_HINT: SignedDuration = SignedDuration::from_mins(5);

/// Why a sweep failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The connector failed.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] crate::queue::Error),
}

impl SweepError {
    /// How long the platform asked to wait before the next call (a 429's or
    /// 503's Retry-After), at least a second and at most [`MAX_RETRY_HINT`].
    pub fn retry_hint(&self) -> Option<SignedDuration> {
        match self {
            Self::Plugin(e) => e
                .retry_after()
                .map(|hint| hint.clamp(SignedDuration::from_secs(1), MAX_RETRY_HINT)),
            Self::Store(_) => None,
        }
    }

    /// The error class recorded in the store status.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Plugin(e) => e.class(),
            Self::Store(_) => ErrorClass::Retryable,
        }
    }
}

/// Everything a sweep needs.
pub struct Sweep<'a> {
    /// The store.
    pub store: &'a StoreRuntime,
    /// The durable state.
    pub db: &'a dyn StateStore,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Time source.
    pub clock: &'a dyn Clock,
    /// Stop between pages when cancelled.
    pub shutdown: &'a CancellationToken,
    /// Beaten after every committed page.
    pub heartbeat: Option<&'a Heartbeat>,
    /// Where a poll that finds nothing new is kept instead of committed;
    /// `None` commits every poll.
    pub idle: Option<&'a IdlePolls>,
}

impl Sweep<'_> {
    /// Run one sweep. On failure the store status records the error (the
    /// caller decides when to try again) and the cursor stays where the last
    /// committed page left it.
    pub async fn run(&self) -> Result<SweepReport, SweepError> {
        self.run_looking_at(Vec::new()).await
    }

    /// [`Self::run`], asking the connector's first `poll` to read `look_at`
    /// (orders verified pushes named) whatever its listing shows. Pages,
    /// decisions and commits are exactly those of a scheduled sweep.
    pub async fn run_looking_at(&self, look_at: Vec<String>) -> Result<SweepReport, SweepError> {
        let mut look_at = look_at;
        let id = self.store.config.id.as_str();
        let started = self.clock.now();
        self.db.poll_started(id);
        let mut status = self.db.store_status(id).await?.unwrap_or_default();
        // What a poll that finds nothing new leaves as it was.
        let status_before = status.clone();
        let added_at = *status.added_at.get_or_insert(started);
        // The first-sync cutoff: orders last modified before it are history.
        let cutoff = self
            .store
            .config
            .first_sync_cutoff
            .or(status.first_sync_cutoff)
            .unwrap_or(added_at);
        status.first_sync_cutoff = Some(cutoff);
        status.last_poll_started_at = Some(started);
        let mut policy = self.store.policy.clone();
        policy.seed_cutoff = Some(cutoff);

        let max_pages = self.store.config.max_pages_per_sweep.max(1);
        let mut report = SweepReport::default();
        // An idle poll's cursor, kept in memory, is newer than the stored one.
        let mut cursor = match self.idle.and_then(|idle| idle.cursor(id)) {
            Some(cursor) => Some(cursor),
            None => self.db.cursor(id).await?,
        };
        loop {
            let call_started = std::time::Instant::now();
            let page = self
                .store
                .connector
                .poll(PollRequest {
                    // Only the first page: the connector returns the named
                    // orders there, later pages go on with the listing.
                    look_at: std::mem::take(&mut look_at),
                    cursor: cursor.clone(),
                    detail_cutoff: Some(cutoff),
                })
                .await;
            self.metrics.connector_call(
                self.store.plugin.name(),
                "poll",
                call_started.elapsed().as_secs_f64(),
            );
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    if error.is_sandbox_fault() {
                        self.metrics.plugin_fault(self.store.plugin.name(), id);
                    }
                    let error = SweepError::Plugin(error);
                    self.record_failure(status, &error).await;
                    return Err(error);
                }
            };
            report.pages += 1;
            report.orders += page.orders.len() as u64;
            let last_page = !page.has_more;
            let nothing_new = report.pages == 1
                && last_page
                && page.orders.is_empty()
                && page.notices.is_empty()
                && page.rejected.is_empty();
            // The cursor of every page read is kept: the next sweep goes on
            // from here instead of starting over.
            let capped = !last_page && report.pages >= max_pages;
            let mut commit = PollCommit {
                store: id.to_owned(),
                cursor: page.next_cursor.clone(),
                ..PollCommit::default()
            };
            // Records decided earlier in this page (an order listed twice).
            let mut fresh: BTreeMap<String, OrderRecord> = BTreeMap::new();
            let now = self.clock.now();
            record_page_health(
                id,
                &mut status,
                page.notices,
                page.rejected,
                page.orders.iter().map(|o| o.id.as_str()),
                now,
            );
            status.poll_not_before = None;
            status.page_cap = capped.then_some(PageCapHit {
                pages: report.pages,
                at: now,
            });
            for order in page.orders {
                self.decide_order(&policy, order, now, &mut fresh, &mut commit, &mut status)
                    .await?;
            }
            for (order_id, record) in fresh {
                commit.order_records.push((order_id, record.to_bytes()));
            }
            if last_page {
                status.last_poll_ok_at = Some(self.clock.now());
                status.last_error = None;
                status.paused = None;
                status.credentials_recheck_at = None;
            }
            if let Some(idle) = self.idle
                && nothing_new
                && commit.jobs.is_empty()
                && commit.cancel.is_empty()
                && commit.order_records.is_empty()
                && same_but_poll_times(&status_before, &status)
                && idle.may_skip_write(id, self.store.config.poll_interval, now)
                && let (Some(started_at), Some(ok_at)) =
                    (status.last_poll_started_at, status.last_poll_ok_at)
            {
                idle.remember(id, commit.cursor, started_at, ok_at);
                if let Some(heartbeat) = self.heartbeat {
                    heartbeat.beat();
                }
                break;
            }
            commit.status = status.clone();
            let jobs = commit.jobs.clone();
            let outcome = self.db.commit_poll(commit).await?;
            if let Some(idle) = self.idle {
                // This commit carried the newest cursor and poll times.
                idle.written(id);
            }
            if let Some(heartbeat) = self.heartbeat {
                heartbeat.beat();
            }
            for (job, result) in jobs.iter().zip(&outcome.jobs) {
                if let EnqueueOutcome::Duplicate(existing) = result {
                    self.log_duplicate(job, *existing).await;
                }
                if let EnqueueOutcome::Inserted(job_id) = result {
                    report.enqueued += 1;
                    self.metrics.job(
                        &job.store,
                        job.channel.as_str(),
                        job.kind.as_str(),
                        "enqueued",
                    );
                    tracing::info!(
                        store = %job.store,
                        order = %job.order_id,
                        notification = %job.kind,
                        channel = %job.channel,
                        job_id = %job_id,
                        due_at = %job.due_at,
                        "notification queued"
                    );
                }
            }
            report.cancelled += outcome
                .cancelled
                .iter()
                .filter(|(_, o)| *o == crate::queue::CancelOutcome::Cancelled)
                .count() as u64;
            if last_page {
                break;
            }
            if capped {
                report.page_cap_reached = true;
                break;
            }
            cursor = page.next_cursor;
            if self.shutdown.is_cancelled() {
                report.interrupted = true;
                break;
            }
        }
        self.metrics.poll_ok(id);
        Ok(report)
    }

    async fn decide_order(
        &self,
        policy: &StorePolicy,
        order: crate::model::Order,
        now: Timestamp,
        fresh: &mut BTreeMap<String, OrderRecord>,
        commit: &mut PollCommit,
        status: &mut StoreStatus,
    ) -> Result<(), SweepError> {
        let store_id = policy.store_id.as_str();
        let previous = match fresh.remove(&order.id) {
            Some(record) => Some(record),
            None => match self.db.order_record(store_id, &order.id).await? {
                None => None,
                Some(bytes) => match OrderRecord::from_bytes(&bytes) {
                    Ok(record) => Some(record),
                    Err(error) => {
                        // Deciding as if first seen could re-send old news;
                        // skip the order and say why instead.
                        tracing::error!(
                            store = store_id,
                            order = %order.id,
                            "stored record unreadable, order skipped: {error}"
                        );
                        return Ok(());
                    }
                },
            },
        };
        if previous.is_none() {
            status.orders_seen += 1;
            self.metrics.orders_seen(store_id, 1);
        }
        let jobs = self.db.jobs_for_order(store_id, &order.id).await?;
        let pending: Vec<PendingNotification> = jobs
            .iter()
            .filter(|job| job.state == JobState::Pending)
            .filter_map(|job| match &job.body {
                JobBody::Readable { kind, payload } => Some(PendingNotification {
                    job_id: job.id,
                    kind: *kind,
                    priority: payload.priority,
                    channel: job.channel.clone(),
                    stands_in_for: stands_in_for(job, &jobs),
                }),
                JobBody::Unreadable { unreadable, .. } => {
                    // Decide cannot cancel or supersede what it cannot read;
                    // the dispatcher dead-letters it when it comes due.
                    tracing::warn!(
                        store = store_id,
                        order = %order.id,
                        job_id = %job.id,
                        channel = %job.channel,
                        "pending job left out of the decision, its record is unreadable: {unreadable}"
                    );
                    None
                }
            })
            .collect();
        let no_usable_phone = first_usable_phone(&order.customer.phones).err();
        let order_id = order.id.clone();
        let order_number = order.number.clone();
        let decision = decide(
            policy,
            DecideInput {
                previous: previous.as_ref(),
                order,
                pending: &pending,
                unusable_phone: no_usable_phone.as_ref().map(NoUsablePhone::problem),
                now,
            },
        );
        status.events_total += decision.events.len() as u64;
        self.metrics
            .order_events(store_id, decision.events.len() as u64);
        if let Some(unmapped) = &decision.unmapped {
            let (message, counted) = unmapped_note(store_id, &order_number, unmapped);
            if let Some(code) = counted {
                *status.unmapped_statuses.entry(code.to_owned()).or_default() += 1;
            }
            tracing::warn!(store = store_id, order = %order_id, "{message}");
        }
        if !decision.invalid.is_empty() {
            let day = now
                .to_zoned_datetime(self.store.config.timezone.clone())
                .date();
            record_invalid(
                status,
                &decision.invalid,
                no_usable_phone.as_ref(),
                store_id,
                &order_id,
                day,
            );
        }
        for event in &decision.events {
            tracing::debug!(store = store_id, order = %order_id, "order event: {event:?}");
        }
        for planned in &decision.planned {
            commit.jobs.push(
                planned.new_job(
                    store_id,
                    &order_id,
                    &order_number,
                    self.store
                        .max_attempts(planned.channel.as_str(), planned.kind),
                ),
            );
        }
        for cancel in &decision.cancel {
            commit
                .cancel
                .push((cancel.job_id, cancel.reason.to_string()));
        }
        fresh.insert(order_id, decision.new_record);
        Ok(())
    }

    /// Say which job an enqueue was a duplicate of: the same event from the
    /// same shop account (possibly configured as another store) is sent once.
    async fn log_duplicate(&self, job: &crate::queue::NewJob, existing: JobId) {
        let other = self.db.get(existing).await.ok().flatten();
        let (other_store, other_order) = other
            .as_ref()
            .map_or(("?", "?"), |o| (o.store.as_str(), o.order_id.as_str()));
        if other_store == job.store && other_order == job.order_id {
            // The same event seen again (a page re-polled after a restart).
            tracing::debug!(
                store = %job.store,
                order = %job.order_id,
                notification = %job.kind,
                channel = %job.channel,
                other_job = %existing,
                "already queued as job {existing}"
            );
            return;
        }
        tracing::info!(
            store = %job.store,
            order = %job.order_id,
            notification = %job.kind,
            channel = %job.channel,
            other_store,
            other_job = %existing,
            "duplicate not queued: job {existing} (store {other_store}, order {other_order}) already has this notification for the same customer from the same shop account"
        );
    }

    async fn record_failure(&self, mut status: StoreStatus, error: &SweepError) {
        let id = self.store.config.id.as_str();
        let class = error.class();
        self.metrics.poll_error(id, class.as_str());
        status.last_error = Some(LastError {
            at: self.clock.now(),
            class,
            message: error.to_string(),
        });
        if let Some(hint) = error.retry_hint() {
            status.poll_not_before = self.clock.now().checked_add(hint).ok();
        }
        if class == ErrorClass::Misconfigured {
            status.paused = Some(crate::queue::Pause {
                reason: error.to_string(),
                at: self.clock.now(),
                automatic: true,
            });
        }
        if let Err(store_error) = self.db.put_store_status(id, status).await {
            tracing::error!(store = id, "cannot record the poll error: {store_error}");
        }
    }
}

/// The channels `job` stands in for: the job it is the fallback of, that
/// job's own original, and so on up the chain (all jobs of one order, so all
/// in `jobs`). A chain that loops (impossible by construction) stops.
fn stands_in_for(
    job: &crate::queue::Job,
    jobs: &[crate::queue::Job],
) -> Vec<crate::model::ChannelId> {
    let mut channels = Vec::new();
    let mut seen = vec![job.id];
    let mut next = job.fallback_of;
    while let Some(id) = next {
        if seen.contains(&id) {
            break;
        }
        seen.push(id);
        let Some(original) = jobs.iter().find(|j| j.id == id) else {
            break;
        };
        channels.push(original.channel.clone());
        next = original.fallback_of;
    }
    channels
}

/// What the log says about an order whose status has no notification
/// mapping, and the status code to count in `unmapped_statuses` — none for an
/// order without a status (connectors return `status.code == ""` when the
/// platform's `situacao` is missing): there is nothing to map.
fn unmapped_note<'a>(
    store_id: &str,
    order_number: &str,
    unmapped: &'a UnmappedStatus,
) -> (String, Option<&'a str>) {
    if unmapped.code.is_empty() {
        return (
            format!(
                "order {order_number} has no status (situacao missing); no notification for this change"
            ),
            None,
        );
    }
    (
        format!(
            "status {} ({}) has no notification mapping; map it in [stores.{store_id}.recognition] if customers should hear about it",
            unmapped.code, unmapped.name
        ),
        Some(&unmapped.code),
    )
}

/// Record the health of one page's orders in the store status: the
/// connector's notices, the orders the host refused (see
/// [`crate::plugin::PollPage::rejected`]: as good as quarantined, since the
/// connector's cursor moves past them and they come back only when they
/// change on the platform), and the orders that arrived fine (whatever
/// failed before about them is over).
pub fn record_page_health<'a>(
    store: &str,
    status: &mut StoreStatus,
    notices: Vec<ConnectorNotice>,
    rejected: Vec<RejectedOrder>,
    arrived: impl Iterator<Item = &'a str>,
    now: Timestamp,
) {
    let refused = rejected
        .into_iter()
        .map(|r| ConnectorNotice::OrderQuarantined {
            order: r.order,
            reason: format!("refused by arauto: {}", r.reason),
            attempts: 1,
        });
    record_notices(
        store,
        status,
        notices.into_iter().chain(refused).collect(),
        now,
    );
    for order in arrived {
        if status.unreadable_orders.remove(order).is_some() {
            tracing::info!(store, order, "order {order} was read again after failing");
        }
    }
}

/// Record what the connector reported about single orders in the store
/// status (shown by `arauto check` and `arauto report`) and log each notice
/// with its store and order.
pub fn record_notices(
    store: &str,
    status: &mut StoreStatus,
    notices: Vec<ConnectorNotice>,
    now: Timestamp,
) {
    for notice in notices {
        match notice {
            ConnectorNotice::FutureTimestamp { order, value } => {
                tracing::warn!(
                    store,
                    order = %order,
                    "order {order} was modified in the future ({value}): the order was processed, but the store's poll position stays at the present; correct the order's date on the platform"
                );
                status.clock_skew = Some(ClockSkew {
                    order,
                    value,
                    at: now,
                });
            }
            ConnectorNotice::OrderUnreadable {
                order,
                reason,
                attempt,
                retry_in,
            } => {
                tracing::warn!(
                    store,
                    order = %order,
                    attempt,
                    "order {order} could not be read (attempt {attempt}): {reason}; the connector tries again{}",
                    retry_in.map_or_else(String::new, |wait| format!(" in {}s", wait.as_secs()))
                );
                remember_unreadable(status, order, reason, attempt, false, now);
            }
            ConnectorNotice::OrderQuarantined {
                order,
                reason,
                attempts,
            } => {
                tracing::error!(
                    store,
                    order = %order,
                    attempts,
                    "order {order} quarantined after {attempts} failed reads: {reason}; it is read again only when it changes on the platform, and its customer may not be notified meanwhile"
                );
                remember_unreadable(status, order, reason, attempts, true, now);
            }
            ConnectorNotice::OrderRecovered { order } => {
                if status.unreadable_orders.remove(&order).is_some() {
                    tracing::info!(store, order = %order, "order {order} was read again after failing");
                }
            }
        }
    }
    if status
        .clock_skew
        .as_ref()
        .is_some_and(|skew| now.duration_since(skew.at) > CLOCK_SKEW_MEMORY)
    {
        status.clock_skew = None;
    }
}

fn remember_unreadable(
    status: &mut StoreStatus,
    order: String,
    reason: String,
    attempts: u32,
    quarantined: bool,
    now: Timestamp,
) {
    let orders = &mut status.unreadable_orders;
    if !orders.contains_key(&order) && orders.len() >= MAX_UNREADABLE_ORDERS {
        // Forget a retrying order before a quarantined one: a quarantined
        // order is the one whose customer may go unnotified.
        let oldest = orders
            .iter()
            .min_by_key(|(_, o)| (o.quarantined, o.last_at))
            .map(|(id, _)| id.clone());
        if let Some(oldest) = oldest {
            orders.remove(&oldest);
        }
    }
    let entry = orders.entry(order).or_insert_with(|| UnreadableOrder {
        reason: String::new(),
        attempts: 0,
        quarantined: false,
        since: now,
        last_at: now,
    });
    entry.reason = reason;
    entry.attempts = attempts;
    entry.quarantined = quarantined;
    entry.last_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn unreadable(order: &str, attempt: u32) -> ConnectorNotice {
        ConnectorNotice::OrderUnreadable {
            order: order.into(),
            reason: "detail over the response cap".into(),
            attempt,
            retry_in: Some(SignedDuration::from_mins(10)),
        }
    }

    #[test]
    fn notices_become_store_status_until_the_order_recovers() {
        let mut status = StoreStatus::default();
        let t1 = at("2026-03-01T12:00:00Z");
        record_notices(
            "loja",
            &mut status,
            vec![
                ConnectorNotice::FutureTimestamp {
                    order: "77".into(),
                    value: "2099-01-01T00:00:00".into(),
                },
                unreadable("55", 1),
                unreadable("56", 1),
            ],
            t1,
        );
        assert_eq!(
            status.clock_skew,
            Some(ClockSkew {
                order: "77".into(),
                value: "2099-01-01T00:00:00".into(),
                at: t1
            })
        );
        assert_eq!(status.unreadable_orders.len(), 2);
        let t2 = at("2026-03-01T13:00:00Z");
        record_notices(
            "loja",
            &mut status,
            vec![
                ConnectorNotice::OrderQuarantined {
                    order: "55".into(),
                    reason: "malformed JSON".into(),
                    attempts: 5,
                },
                ConnectorNotice::OrderRecovered { order: "56".into() },
            ],
            t2,
        );
        assert_eq!(
            status.unreadable_orders.get("55"),
            Some(&UnreadableOrder {
                reason: "malformed JSON".into(),
                attempts: 5,
                quarantined: true,
                since: t1,
                last_at: t2,
            })
        );
        assert!(!status.unreadable_orders.contains_key("56"));

        // A day without a new report forgets the future timestamp.
        record_notices("loja", &mut status, Vec::new(), at("2026-03-02T12:00:01Z"));
        assert_eq!(status.clock_skew, None);
        assert_eq!(status.unreadable_orders.len(), 1, "quarantine stays");
    }

    #[test]
    fn an_order_the_host_refused_is_quarantined_until_it_arrives_fine() {
        let mut status = StoreStatus::default();
        record_page_health(
            "loja",
            &mut status,
            Vec::new(),
            vec![RejectedOrder {
                order: "77".into(),
                reason: "order 77: created-at \"ontem\" is not an RFC 3339 timestamp".into(),
            }],
            ["76", "78"].into_iter(),
            at("2026-03-01T12:00:00Z"),
        );
        let refused = &status.unreadable_orders["77"];
        assert!(refused.quarantined, "{refused:?}");
        assert!(
            refused
                .reason
                .starts_with("refused by arauto: order 77: created-at"),
            "{refused:?}"
        );
        record_page_health(
            "loja",
            &mut status,
            Vec::new(),
            Vec::new(),
            ["77"].into_iter(),
            at("2026-03-01T12:05:00Z"),
        );
        assert!(
            status.unreadable_orders.is_empty(),
            "{:?}",
            status.unreadable_orders
        );
    }

    #[test]
    fn the_unreadable_list_is_bounded_and_forgets_retrying_orders_first() {
        let mut status = StoreStatus::default();
        let t0 = at("2026-03-01T12:00:00Z");
        record_notices(
            "loja",
            &mut status,
            vec![ConnectorNotice::OrderQuarantined {
                order: "q".into(),
                reason: "too deep".into(),
                attempts: 5,
            }],
            t0,
        );
        for n in 0..MAX_UNREADABLE_ORDERS + 10 {
            let now = t0 + SignedDuration::from_secs(n as i64 + 1);
            record_notices(
                "loja",
                &mut status,
                vec![unreadable(&n.to_string(), 1)],
                now,
            );
        }
        assert_eq!(status.unreadable_orders.len(), MAX_UNREADABLE_ORDERS);
        assert!(status.unreadable_orders.contains_key("q"));
        assert!(!status.unreadable_orders.contains_key("0"));
        assert!(status.unreadable_orders.contains_key("1009"));
    }

    #[test]
    fn an_order_without_a_status_is_said_so_and_not_counted_as_an_unmapped_status() {
        let none = UnmappedStatus {
            code: String::new(),
            name: String::new(),
        };
        let (message, counted) = unmapped_note("loja", "1042", &none);
        assert_eq!(
            message,
            "order 1042 has no status (situacao missing); no notification for this change"
        );
        assert_eq!(counted, None);
        let custom = UnmappedStatus {
            code: "em_producao".into(),
            name: "Em produção".into(),
        };
        let (message, counted) = unmapped_note("loja", "1042", &custom);
        assert!(
            message.starts_with("status em_producao (Em produção) has no notification mapping"),
            "{message}"
        );
        assert_eq!(counted, Some("em_producao"));
    }

    #[test]
    fn a_retry_hint_is_honoured_within_bounds() {
        let failure = |hint: Option<SignedDuration>| {
            SweepError::Plugin(PluginError::Retryable {
                message: "HTTP 429".into(),
                retry_after: hint,
            })
        };
        assert_eq!(failure(None).retry_hint(), None);
        assert_eq!(
            failure(Some(SignedDuration::from_secs(4))).retry_hint(),
            Some(SignedDuration::from_secs(4))
        );
        assert_eq!(
            failure(Some(SignedDuration::from_millis(10))).retry_hint(),
            Some(SignedDuration::from_secs(1))
        );
        assert_eq!(
            failure(Some(SignedDuration::from_hours(24 * 365))).retry_hint(),
            Some(MAX_RETRY_HINT),
            "a absurd hint must not silence the store"
        );
    }
}
