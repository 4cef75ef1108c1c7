//! Recognition (platform status → notification kind) and the happy-path rules:
//! turns the events of one polled order into planned notifications and
//! cancellations of pending ones.
//!
//! [`decide`] is pure: the caller passes the stored [`OrderRecord`], the new
//! snapshot, the order's pending jobs and `now`, and gets back a [`Decision`]
//! with the jobs to enqueue, the jobs to cancel and the record to store, all to
//! be committed in one transaction.
//!
//! # The rules
//!
//! Per order the record keeps the highest happy-path priority reached
//! (`max_priority`), whether the order is in a cancellation episode, which
//! kinds were planned on which channel, and which tracking codes were announced.
//!
//! 1. **Forward jump**: a status with priority `p > max_priority` plans only its
//!    own notification (skipped intermediate steps are stale) and cancels the
//!    order's pending happy-path jobs with a lower priority. A first sighting
//!    at a late status is a jump from 0: only the current step.
//! 2. **Same or lower step** (repeated polls, reverts): nothing.
//! 3. **Terminal** (cancelled/refunded): cancels every pending non-terminal job
//!    of the order and opens a *cancellation episode*; one terminal notice per
//!    episode (cancelled then refunded sends only the first). While the episode
//!    lasts nothing else is planned; it ends when the order moves to a step
//!    beyond the one reached before the cancellation (statuses can be moved
//!    back by the platform's API despite being "final"). An order that leaves
//!    the terminal status while its notice is still pending gets that notice
//!    cancelled (and it may be planned again if the order is cancelled again).
//! 4. **At most once**: a kind is planned at most once per order and channel
//!    (tracking-updated: once per tracking code).
//! 5. **Tracking**: each new tracking code of each shipment is announced once
//!    as tracking-updated — except when the same poll plans order-shipped,
//!    whose message already lists every shipment's code; those codes count as
//!    announced. A code appearing while the order is below the shipped step is
//!    itself the evidence that the order shipped ([`StorePolicy::tracking_implies_shipped`],
//!    Loja Integrada recognises "shipped" by `pedido_enviado` *or* a tracking
//!    code): it plans order-shipped instead. Nothing is announced while the
//!    order is cancelled, and codes appearing after the order passed the
//!    shipped step (delivered) are recorded without a message.
//! 6. **Off-path kinds** with a notification (a status mapped by the store to
//!    a reserved kind) are planned once, never during a cancellation episode.
//! 7. **First sync / cutoff**: an order last modified before the store's
//!    cutoff is recorded silently — its current step, terminal state and
//!    tracking codes count as already notified — so later changes compare
//!    against the right baseline without messaging about history. So is an
//!    order arauto sees for the first time although it was *placed* before the
//!    cutoff: it was too old for the first sync's look-back, and its first
//!    sighting now says only that something changed (a note, an address), not
//!    what its customer has already been told.
//! 8. **Switched-off kinds still move the order**: a status whose kind is
//!    disabled (or mapped to "off") plans nothing but still advances
//!    `max_priority`, supersedes older pending steps and opens episodes.
//! 9. **No usable phone**: channels that need a phone are skipped and reported
//!    in [`Decision::invalid`] with the [`PhoneProblem`] (no phone, landline,
//!    too long…); the other channels (webhook, e-mail) still get the job.
//! 10. **Unknown status code**: nothing planned, reported in [`Decision::unmapped`].
//!
//! 11. **Duplicates**: a job carries a [`fingerprint`] of the event keyed on
//!     the shop account ([`store_identity`]), not the config id: the same shop
//!     configured twice messages once, two shops never swallow each other's
//!     messages.
//!
//! Just before sending, [`still_relevant`] re-checks a job against the latest record.

pub mod identity;
pub mod recognition;
pub mod record;
pub mod revalidate;
pub mod timing;

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use identity::store_identity;
pub use recognition::{Recognition, RecognitionError, RecognitionSource, RecognizedStatus};
pub use record::{HappyPathState, ORDER_RECORD_VERSION, OrderRecord, RecordError, TerminalEpisode};
pub use revalidate::{DropReason, Relevance, still_relevant};
pub use timing::{KindTiming, QuietHours, Schedule, SendTiming, TimingPolicy, send_time_check};

pub use crate::job::{PlannedNotification, QuietHoursMode, TrackingRef};

pub mod detect;

use crate::job::JobId;
use crate::model::{ChannelId, NotificationKind, Order, PhoneProblem, RecipientNeed};
use detect::OrderEvent;

/// One channel instance a store sends through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTarget {
    /// Channel instance name as configured.
    pub name: String,
    /// Whom the channel's sender delivers to (as it declared, or the 0.1
    /// name table): an order lacking that contact is an invalid event.
    pub recipient: RecipientNeed,
}

/// Everything about a store the decision needs (built from the config and the
/// connector's `info()` by the caller).
#[derive(Clone, Debug)]
pub struct StorePolicy {
    /// Store id as configured.
    pub store_id: String,
    /// The shop account on the platform ([`store_identity`]): keys the
    /// duplicate rule, so one shop configured twice sends once while two shops
    /// never swallow each other's messages.
    pub platform_identity: String,
    /// Status recognition with the store's overrides.
    pub recognition: Recognition,
    /// Kinds the store sends; everything else is never planned.
    pub enabled: BTreeSet<NotificationKind>,
    /// Channel instances every notification fans out to.
    pub channels: Vec<ChannelTarget>,
    /// Orders last modified before this instant are recorded silently.
    pub seed_cutoff: Option<Timestamp>,
    /// Delays, expiry, quiet hours.
    pub timing: TimingPolicy,
    /// A tracking code appearing while the order is below the shipped step
    /// plans order-shipped (default true; see rule 5 of the module docs).
    pub tracking_implies_shipped: bool,
}

/// A job of this order still waiting in the queue (mapped from the queue by the caller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingNotification {
    /// The queue's id of the job, echoed back in [`Cancellation`].
    pub job_id: JobId,
    /// Notification kind.
    pub kind: NotificationKind,
    /// Happy-path priority it was planned with.
    pub priority: u8,
    /// Channel instance.
    pub channel: ChannelId,
    /// For a job the dispatcher queued as a channel's fallback: the channels
    /// of the jobs it stands in for (the one that fell back to it, and up
    /// the chain). Empty for a job the planner queued itself.
    #[serde(default)]
    pub stands_in_for: Vec<ChannelId>,
}

/// Input of [`decide`] for one polled order.
#[derive(Clone, Debug)]
pub struct DecideInput<'a> {
    /// The stored record, `None` on first sight.
    pub previous: Option<&'a OrderRecord>,
    /// The snapshot the connector just returned.
    pub order: Order,
    /// This order's jobs still pending in the queue.
    pub pending: &'a [PendingNotification],
    /// `None` when the order has a phone [`crate::model::phone`] accepts;
    /// otherwise why not.
    pub unusable_phone: Option<PhoneProblem>,
    /// Current time.
    pub now: Timestamp,
}

/// A pending job to cancel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The job, as given in [`PendingNotification::job_id`].
    pub job_id: JobId,
    /// Why (for the delivery history).
    pub reason: CancelReason,
}

/// Why a pending job is cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum CancelReason {
    /// The order reached a later happy-path step.
    #[error("superseded: the order moved on to {status_code} (priority {priority})")]
    Superseded {
        /// The newer status.
        status_code: String,
        /// Its priority.
        priority: u8,
    },
    /// The order was cancelled or refunded.
    #[error("the order is now {status_code}")]
    OrderTerminal {
        /// The terminal status.
        status_code: String,
    },
    /// A cancellation notice whose order is no longer cancelled.
    #[error("the order left the terminal status; it is {status_code} now")]
    OrderReopened {
        /// The new status.
        status_code: String,
    },
}

/// Why an event could not be planned on some channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidReason {
    /// The channel needs a phone and none of the order's can receive messages.
    UnusablePhone(PhoneProblem),
    /// The channel delivers to the customer's e-mail and the order has none.
    NoEmail,
    /// The channel delivers to the customer's chat-app id and the order has none.
    NoChatId,
}

impl InvalidReason {
    /// The stable key the store status and reports count it under
    /// (`landline`, `too-long`…).
    pub const fn key(self) -> &'static str {
        match self {
            Self::UnusablePhone(problem) => problem.as_str(),
            Self::NoEmail => "no-email",
            Self::NoChatId => "no-chat-id",
        }
    }

    /// The words for a stored reason key (`landline` → "landline",
    /// `no-email` → "no e-mail address"); an unknown key is shown as is.
    pub fn label_of(key: &str) -> &str {
        match key {
            "no-email" => "no e-mail address",
            "no-chat-id" => "no chat id",
            key => PhoneProblem::label_of(key),
        }
    }
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnusablePhone(problem) => write!(f, "no usable phone ({})", problem.label()),
            Self::NoEmail => f.write_str("no e-mail address (the channel delivers by e-mail)"),
            Self::NoChatId => f.write_str("no chat id (the channel delivers to a chat app)"),
        }
    }
}

/// An event that could not be planned on a channel ("evento inválido" in the checklist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidEvent {
    /// Notification kind.
    pub kind: NotificationKind,
    /// Channel instance.
    pub channel: String,
    /// Why.
    pub reason: InvalidReason,
}

/// A status code the store's recognition does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmappedStatus {
    /// Platform status code.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// The outcome of [`decide`]; commit all of it in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What detection found (for logs).
    pub events: Vec<OrderEvent>,
    /// Jobs to enqueue.
    pub planned: Vec<PlannedNotification>,
    /// Pending jobs to cancel.
    pub cancel: Vec<Cancellation>,
    /// The status code, when the store does not recognise it (reported once
    /// per status change).
    pub unmapped: Option<UnmappedStatus>,
    /// Events skipped on some channel.
    pub invalid: Vec<InvalidEvent>,
    /// The record to store.
    pub new_record: OrderRecord,
    /// The order was recorded silently (last modified before the cutoff).
    pub silent: bool,
}

/// Apply detection, recognition and the happy-path rules to one polled order.
pub fn decide(policy: &StorePolicy, input: DecideInput<'_>) -> Decision {
    let DecideInput {
        previous,
        order,
        pending,
        unusable_phone,
        now,
    } = input;
    let events = detect::detect(previous.map(|r| &r.order), &order);
    let silent = policy.seed_cutoff.is_some_and(|cutoff| {
        order.updated_at < cutoff || (previous.is_none() && order.created_at < cutoff)
    });
    let snapshot = detect::merge_snapshot(previous.map(|r| &r.order), order);
    let record = match previous {
        Some(previous) => OrderRecord {
            order: snapshot,
            last_polled_at: now,
            ..previous.clone()
        },
        None => OrderRecord {
            order: snapshot,
            happy: HappyPathState::default(),
            first_seen_at: now,
            last_polled_at: now,
            last_changed_at: now,
            seeded: silent,
        },
    };
    let mut planner = Planner {
        policy,
        pending,
        unusable_phone,
        now,
        record,
        planned: Vec::new(),
        cancel: Vec::new(),
        invalid: Vec::new(),
        shipped_planned_now: false,
    };
    let mut unmapped = None;
    if !events.is_empty() {
        planner.record.last_changed_at = now;
        let recognized = policy
            .recognition
            .recognise(&planner.record.order.status.code)
            .cloned();
        if events.iter().any(OrderEvent::is_status_event) {
            match &recognized {
                Some(status) if silent => planner.record_silently(status),
                Some(status) => planner.on_status(status),
                None => {
                    unmapped = Some(UnmappedStatus {
                        code: planner.record.order.status.code.clone(),
                        name: planner.record.order.status.name.clone(),
                    });
                }
            }
        }
        if silent {
            planner.announce_all_codes();
        } else {
            planner.on_tracking(&events);
        }
    }
    let silent = silent && !events.is_empty();
    Decision {
        events,
        planned: planner.planned,
        cancel: planner.cancel,
        unmapped,
        invalid: planner.invalid,
        new_record: planner.record,
        silent,
    }
}

struct Planner<'a> {
    policy: &'a StorePolicy,
    pending: &'a [PendingNotification],
    unusable_phone: Option<PhoneProblem>,
    now: Timestamp,
    record: OrderRecord,
    planned: Vec<PlannedNotification>,
    cancel: Vec<Cancellation>,
    invalid: Vec<InvalidEvent>,
    shipped_planned_now: bool,
}

impl Planner<'_> {
    fn enabled(&self, kind: NotificationKind) -> bool {
        self.policy.enabled.contains(&kind)
    }

    /// Rule 7: take the order's current state as already notified.
    fn record_silently(&mut self, status: &RecognizedStatus) {
        let happy = &mut self.record.happy;
        happy.current_priority = status.priority;
        happy.current_terminal = status.terminal;
        if status.terminal {
            if happy.terminal.is_none() {
                happy.terminal = Some(TerminalEpisode {
                    priority_before: happy.max_priority,
                    notified: status.kind,
                    status_code: status.code.clone(),
                });
            }
        } else if status.priority > happy.max_priority {
            happy.max_priority = status.priority;
            happy.terminal = None;
        }
        if let Some(kind) = status.kind {
            happy.silenced.insert(kind);
        }
    }

    fn on_status(&mut self, status: &RecognizedStatus) {
        let was_terminal = self.record.happy.current_terminal;
        self.record.happy.current_priority = status.priority;
        self.record.happy.current_terminal = status.terminal;

        if status.terminal {
            let reason = CancelReason::OrderTerminal {
                status_code: status.code.clone(),
            };
            self.cancel_pending(|p| !p.kind.is_terminal(), &reason);
            let max_priority = self.record.happy.max_priority;
            let episode = self
                .record
                .happy
                .terminal
                .get_or_insert_with(|| TerminalEpisode {
                    priority_before: max_priority,
                    notified: None,
                    status_code: status.code.clone(),
                });
            if episode.notified.is_none()
                && let Some(kind) = status.kind
                && self.enabled(kind)
                && self.plan(kind, 0, &status.code, None)
                && let Some(episode) = &mut self.record.happy.terminal
            {
                episode.notified = Some(kind);
            }
            return;
        }

        if was_terminal {
            self.cancel_reopened_notices(&status.code);
        }

        if status.priority > 0 {
            if status.priority > self.record.happy.max_priority {
                self.advance_to(status.priority, &status.code, status.kind);
            }
            return;
        }

        if self.record.happy.terminal.is_none()
            && let Some(kind) = status.kind
            && self.enabled(kind)
        {
            self.plan(kind, 0, &status.code, None);
        }
    }

    /// Rule 1: the order reached a new highest step.
    fn advance_to(&mut self, priority: u8, status_code: &str, kind: Option<NotificationKind>) {
        self.record.happy.terminal = None;
        self.record.happy.max_priority = priority;
        let reason = CancelReason::Superseded {
            status_code: status_code.to_owned(),
            priority,
        };
        self.cancel_pending(
            |p| p.priority > 0 && p.priority < priority && !p.kind.is_terminal(),
            &reason,
        );
        // Steps planned earlier in this same decision are superseded too.
        let superseded: Vec<(NotificationKind, ChannelId)> = self
            .planned
            .iter()
            .filter(|p| p.priority > 0 && p.priority < priority)
            .map(|p| (p.kind, p.channel.clone()))
            .collect();
        for (kind, channel) in superseded {
            self.forget_planned(kind, channel.as_str());
        }
        self.planned
            .retain(|p| !(p.priority > 0 && p.priority < priority));

        if let Some(kind) = kind
            && self.enabled(kind)
            && self.plan(kind, priority, status_code, None)
        {
            let happy = &mut self.record.happy;
            happy.max_priority_planned = happy.max_priority_planned.max(priority);
        }
    }

    /// Rule 3: a notice still pending for a cancellation the order left.
    fn cancel_reopened_notices(&mut self, status_code: &str) {
        let reason = CancelReason::OrderReopened {
            status_code: status_code.to_owned(),
        };
        let cancelled = self.cancel_pending(|p| p.kind.is_terminal(), &reason);
        // A withdrawn fallback job stands in for the channel the notice was
        // planned on: that one is forgotten too, or a second cancellation
        // would find the notice still "planned" there and not be announced.
        let stood_in_for: Vec<(NotificationKind, ChannelId)> = self
            .pending
            .iter()
            .filter(|p| p.kind.is_terminal() && self.cancel.iter().any(|c| c.job_id == p.job_id))
            .flat_map(|p| p.stands_in_for.iter().map(|c| (p.kind, c.clone())))
            .collect();
        for (kind, channel) in cancelled.into_iter().chain(stood_in_for) {
            self.forget_planned(kind, channel.as_str());
        }
        let happy = &mut self.record.happy;
        if let Some(episode) = &mut happy.terminal
            && let Some(kind) = episode.notified
            && !happy.planned.contains_key(&kind)
            && !happy.silenced.contains(&kind)
        {
            episode.notified = None;
        }
    }

    fn on_tracking(&mut self, events: &[OrderEvent]) {
        let shipped_priority = self
            .policy
            .recognition
            .kind_priority(NotificationKind::OrderShipped);
        let status_code = self.record.order.status.code.clone();
        for event in events {
            let Some((shipment_id, code)) = event.tracking() else {
                continue;
            };
            let happy = &self.record.happy;
            if happy.tracking_announced.contains_key(code)
                || happy.current_terminal
                || happy.terminal.is_some()
            {
                continue;
            }
            if self.shipped_planned_now || happy.max_priority > shipped_priority {
                // Carried by this poll's shipped message, or too late to matter
                // (the order is already past the shipped step, e.g. delivered).
                self.announce(code, shipment_id);
                continue;
            }
            if self.policy.tracking_implies_shipped
                && self.enabled(NotificationKind::OrderShipped)
                && shipped_priority > happy.max_priority
            {
                self.advance_to(
                    shipped_priority,
                    &status_code,
                    Some(NotificationKind::OrderShipped),
                );
                if self.shipped_planned_now {
                    continue;
                }
            }
            if self.enabled(NotificationKind::TrackingUpdated) {
                let tracking = TrackingRef {
                    shipment_id: shipment_id.to_owned(),
                    code: code.to_owned(),
                };
                self.plan(
                    NotificationKind::TrackingUpdated,
                    0,
                    &status_code,
                    Some(tracking),
                );
            }
            self.announce(code, shipment_id);
        }
    }

    fn announce(&mut self, code: &str, shipment_id: &str) {
        self.record
            .happy
            .tracking_announced
            .insert(code.to_owned(), shipment_id.to_owned());
    }

    fn announce_all_codes(&mut self) {
        let codes: Vec<(String, String)> = detect::current_codes(&self.record.order)
            .map(|(s, c)| (c.to_owned(), s.to_owned()))
            .collect();
        for (code, shipment_id) in codes {
            self.record
                .happy
                .tracking_announced
                .entry(code)
                .or_insert(shipment_id);
        }
    }

    fn forget_planned(&mut self, kind: NotificationKind, channel: &str) {
        let planned = &mut self.record.happy.planned;
        if let Some(channels) = planned.get_mut(&kind) {
            channels.remove(channel);
            if channels.is_empty() {
                planned.remove(&kind);
            }
        }
    }

    /// Cancel the pending jobs matching `which`; returns their (kind, channel).
    fn cancel_pending(
        &mut self,
        which: impl Fn(&PendingNotification) -> bool,
        reason: &CancelReason,
    ) -> Vec<(NotificationKind, ChannelId)> {
        let mut cancelled = Vec::new();
        for pending in self.pending.iter().filter(|p| which(p)) {
            if self.cancel.iter().any(|c| c.job_id == pending.job_id) {
                continue;
            }
            self.cancel.push(Cancellation {
                job_id: pending.job_id,
                reason: reason.clone(),
            });
            cancelled.push((pending.kind, pending.channel.clone()));
        }
        cancelled
    }

    /// Why the order cannot reach a channel delivering to `need`, if it cannot.
    fn missing_recipient(&self, need: RecipientNeed) -> Option<InvalidReason> {
        let customer = &self.record.order.customer;
        let known = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        match need {
            RecipientNeed::CustomerPhone => self.unusable_phone.map(InvalidReason::UnusablePhone),
            RecipientNeed::CustomerEmail => {
                (!known(&customer.email)).then_some(InvalidReason::NoEmail)
            }
            RecipientNeed::CustomerChatId => {
                (!known(&customer.chat_id)).then_some(InvalidReason::NoChatId)
            }
            RecipientNeed::Nothing => None,
        }
    }

    /// Fan a notification out to the store's channels. Returns true when the
    /// kind is now planned on at least one channel (now or before).
    fn plan(
        &mut self,
        kind: NotificationKind,
        priority: u8,
        status_code: &str,
        tracking: Option<TrackingRef>,
    ) -> bool {
        let schedule = self.policy.timing.schedule(kind, self.now);
        let mut planned_any = false;
        let mut created_any = false;
        for channel in &self.policy.channels {
            if tracking.is_none() && self.record.happy.already_planned(kind, &channel.name) {
                planned_any = true;
                continue;
            }
            if let Some(reason) = self.missing_recipient(channel.recipient) {
                self.invalid.push(InvalidEvent {
                    kind,
                    channel: channel.name.clone(),
                    reason,
                });
                continue;
            }
            let order = &self.record.order;
            let mut dedupe_key = format!(
                "{}/{}/{}/{}",
                self.policy.store_id, order.id, kind, channel.name
            );
            if let Some(t) = &tracking {
                dedupe_key.push_str(&format!("/{}/{}", t.shipment_id, t.code));
            }
            let fingerprint = fingerprint(
                &self.policy.platform_identity,
                kind,
                &channel.name,
                order,
                tracking.as_ref().map(|t| t.code.as_str()),
            );
            self.planned.push(PlannedNotification {
                kind,
                priority,
                status_code: status_code.to_owned(),
                tracking: tracking.clone(),
                channel: ChannelId::from(&channel.name),
                dedupe_key,
                fingerprint,
                due_at: schedule.due_at,
                expires_at: schedule.expires_at,
                quiet_hours: schedule.quiet_hours,
            });
            if tracking.is_none() {
                self.record
                    .happy
                    .planned
                    .entry(kind)
                    .or_default()
                    .insert(channel.name.clone());
            }
            planned_any = true;
            created_any = true;
        }
        if kind == NotificationKind::OrderShipped && created_any {
            // The shipped message lists every shipment's code (rule 5).
            self.shipped_planned_now = true;
            self.announce_all_codes();
        }
        planned_any
    }
}

/// NI's duplicate rule as a stable hash; see [`PlannedNotification::fingerprint`].
/// `platform_identity` is the store's [`store_identity`], not its config id.
pub fn fingerprint(
    platform_identity: &str,
    kind: NotificationKind,
    channel: &str,
    order: &Order,
    tracking_code: Option<&str>,
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update(value.as_bytes());
        hasher.update([0u8]);
    };
    field(platform_identity);
    field(kind.as_str());
    field(channel);
    for phone in &order.customer.phones {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        field(&digits);
    }
    field(
        &order
            .customer
            .email
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_lowercase(),
    );
    field(&order.number);
    field(&order.status.code);
    field(tracking_code.unwrap_or_default());
    field(
        &order
            .total
            .map_or_else(String::new, |total| total.0.to_string()),
    );
    hex::encode(hasher.finalize())
}
