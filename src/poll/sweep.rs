//! One sweep of one store: call the connector's `poll` until it has no more
//! pages, turn every order it returns into decisions, and commit each page —
//! order records, new jobs, cancellations, cursor and store status — in one
//! transaction, so a crash either loses the whole page (re-polled from the old
//! cursor, deduplicated) or keeps all of it.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::StoreRuntime;
use super::invalid::record_invalid;
use crate::clock::Clock;
use crate::daemon::Heartbeat;
use crate::decide::{DecideInput, OrderRecord, PendingNotification, StorePolicy, decide};
use crate::metrics::Metrics;
use crate::model::NotificationKind;
use crate::plugin::{PluginError, PollRequest};
use crate::queue::{
    EnqueueOutcome, ErrorClass, JobId, JobState, LastError, PollCommit, StateStore, StoreStatus,
};
use crate::send::job::{new_job, payload_of};
use crate::send::recipient::{NoUsablePhone, first_usable_phone};

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
}

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
    /// The error class recorded in the store status.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Plugin(e) if e.is_sandbox_fault() => ErrorClass::Sandbox,
            Self::Plugin(e) => match e.class() {
                crate::plugin::ErrorClass::Retryable => ErrorClass::Retryable,
                crate::plugin::ErrorClass::Permanent => ErrorClass::Permanent,
                crate::plugin::ErrorClass::Misconfigured => ErrorClass::Misconfigured,
            },
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
}

impl Sweep<'_> {
    /// Run one sweep. On failure the store status records the error (the
    /// caller decides when to try again) and the cursor stays where the last
    /// committed page left it.
    pub async fn run(&self) -> Result<SweepReport, SweepError> {
        let id = self.store.config.id.as_str();
        let started = self.clock.now();
        let mut status = self.db.store_status(id).await?.unwrap_or_default();
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

        let mut report = SweepReport::default();
        let mut cursor = self.db.cursor(id).await?;
        loop {
            let call_started = std::time::Instant::now();
            let page = self
                .store
                .connector
                .poll(PollRequest {
                    cursor: cursor.clone(),
                    detail_cutoff: Some(cutoff),
                })
                .await;
            self.metrics.plugin_call(
                self.store.plugin.name(),
                id,
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
            for rejected in &page.rejected {
                // The connector's cursor moves past it: it comes back when the
                // order changes on the platform.
                tracing::error!(
                    store = id,
                    order = %rejected.order,
                    "order refused, the rest of the page goes on; it is read again when it \
                     changes on the platform: {}",
                    rejected.reason
                );
            }
            let last_page = !page.has_more;
            let mut commit = PollCommit {
                store: id.to_owned(),
                cursor: page.next_cursor.clone(),
                ..PollCommit::default()
            };
            // Records decided earlier in this page (an order listed twice).
            let mut fresh: BTreeMap<String, OrderRecord> = BTreeMap::new();
            let now = self.clock.now();
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
            }
            commit.status = status.clone();
            let jobs = commit.jobs.clone();
            let outcome = self.db.commit_poll(commit).await?;
            if let Some(heartbeat) = self.heartbeat {
                heartbeat.beat();
            }
            for (job, result) in jobs.iter().zip(&outcome.jobs) {
                if let EnqueueOutcome::Duplicate(existing) = result {
                    self.log_duplicate(job, *existing).await;
                }
                if let EnqueueOutcome::Inserted(job_id) = result {
                    report.enqueued += 1;
                    self.metrics
                        .job(&job.store, &job.lane, &job.kind, "enqueued");
                    tracing::info!(
                        store = %job.store,
                        order = %job.order_id,
                        notification = %job.kind,
                        channel = %job.lane,
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
            .filter_map(|job| {
                let kind = NotificationKind::from_str(&job.kind).ok()?;
                let priority = payload_of(&job.payload).ok()?.facts.priority;
                Some(PendingNotification {
                    job_ref: job.id.to_string(),
                    kind,
                    priority,
                    channel: job.lane.clone(),
                })
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
            *status
                .unmapped_statuses
                .entry(unmapped.code.clone())
                .or_default() += 1;
            tracing::warn!(
                store = store_id,
                order = %order_id,
                "status {} ({}) has no notification mapping; map it in [stores.{store_id}.recognition] if customers should hear about it",
                unmapped.code,
                unmapped.name
            );
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
            commit.jobs.push(new_job(
                store_id,
                &order_id,
                &order_number,
                planned,
                self.store.max_attempts(&planned.channel, planned.kind),
            ));
        }
        for cancel in &decision.cancel {
            match JobId::from_str(&cancel.job_ref) {
                Ok(job_id) => commit.cancel.push((job_id, cancel.reason.to_string())),
                Err(error) => tracing::error!(
                    store = store_id,
                    order = %order_id,
                    "cannot cancel job {}: {error}",
                    cancel.job_ref
                ),
            }
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
        tracing::info!(
            store = %job.store,
            order = %job.order_id,
            notification = %job.kind,
            channel = %job.lane,
            other_store,
            other_job = %existing,
            "duplicate not queued: job {existing} (store {other_store}, order {other_order}) already has this notification for the same customer from the same shop account"
        );
    }

    async fn record_failure(&self, mut status: StoreStatus, error: &SweepError) {
        let id = self.store.config.id.as_str();
        let class = error.class();
        self.metrics.poll_error(id, class_label(class));
        status.last_error = Some(LastError {
            at: self.clock.now(),
            class,
            message: error.to_string(),
        });
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

/// The metric label of an error class.
pub fn class_label(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Retryable => "retryable",
        ErrorClass::Permanent => "permanent",
        ErrorClass::Misconfigured => "misconfigured",
        ErrorClass::Sandbox => "sandbox",
    }
}
