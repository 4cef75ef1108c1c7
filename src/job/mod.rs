//! The notification job: one shape from the moment decide plans it until the
//! channel's dispatcher sends it.
//!
//! * [`PlannedNotification`] is what decide produces: one notification of one
//!   order on one channel, with its timing and its duplicate keys
//!   ([`PlannedNotification::dedupe_keys`]).
//! * [`JobPayload`] is what the queue keeps with the job besides its own
//!   bookkeeping (channel, kind, due time, attempts): the facts the job was
//!   planned for, re-checked against the order's latest record before sending.
//!   It is versioned ([`JOB_PAYLOAD_VERSION`]); the queue stores it in its own
//!   record format and hands it back typed.
//! * [`JobId`] names a job from the queue back to decide (cancellations) and
//!   to the operator (`arauto queue show ID`).
//!
//! This module depends on no stage: decide imports it, the queue stores it,
//! send reads it. Turning a planned notification into a queue job is in
//! [`enqueue`].

pub mod enqueue;
mod id;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub(crate) use id::{IdGenerator, timestamp_ms};
pub use id::{JobId, ParseJobIdError};

use crate::model::{ChannelId, NotificationKind};

/// Version of [`JobPayload`]'s shape. 1 was the JSON of `ddb5715` (`{"v":1,
/// "facts":{...}, ...}`), which the queue's migration rewrites as 2.
pub const JOB_PAYLOAD_VERSION: u32 = 2;

/// What a kind does when it becomes due inside the quiet hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuietHoursMode {
    /// Wait for the end of the window.
    #[default]
    Defer,
    /// Send anyway.
    Ignore,
}

/// The shipment and code a tracking-updated job announces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingRef {
    /// Shipment id within the order.
    pub shipment_id: String,
    /// Tracking code.
    pub code: String,
}

/// A notification decide planned: one per order event and channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNotification {
    /// Notification kind.
    pub kind: NotificationKind,
    /// Happy-path priority (0 off the path).
    pub priority: u8,
    /// Platform status code the job was planned for.
    pub status_code: String,
    /// For tracking-updated: the shipment and code.
    pub tracking: Option<TrackingRef>,
    /// Channel instance.
    pub channel: ChannelId,
    /// `"{store}/{order}/{kind}/{channel}"`; tracking-updated appends
    /// `"/{shipment}/{code}"`. The queue enqueues a key at most once.
    pub dedupe_key: String,
    /// NI's duplicate rule: hex SHA-256 of (platform store identity, kind,
    /// channel, customer contact, order number, status, tracking code,
    /// total). The same event for the same customer with the same data is
    /// never sent twice, even when it arrives through another store entry
    /// pointing at the same shop account; another shop's identical-looking
    /// event is not a duplicate.
    pub fingerprint: String,
    /// Not before this instant.
    pub due_at: Timestamp,
    /// Cancelled as stale if still unsent at this instant.
    pub expires_at: Timestamp,
    /// What the dispatcher does if the job drifts into the quiet hours.
    pub quiet_hours: QuietHoursMode,
}

impl PlannedNotification {
    /// The keys the queue enqueues at most once: the per-order key and the
    /// fingerprint (the duplicate rule across store entries of one shop).
    pub fn dedupe_keys(&self) -> Vec<String> {
        vec![
            self.dedupe_key.clone(),
            format!("fingerprint/{}", self.fingerprint),
        ]
    }

    /// The queue priority: lower is claimed first among due jobs.
    /// Cancellation and refund notices go before happy-path news.
    pub fn queue_priority(&self) -> u8 {
        if self.kind.is_terminal() { 0 } else { 1 }
    }

    /// What the queue keeps with the job for the dispatcher.
    pub fn payload(&self, order_number: &str) -> JobPayload {
        JobPayload {
            payload_version: JOB_PAYLOAD_VERSION,
            priority: self.priority,
            status_code: self.status_code.clone(),
            tracking: self.tracking.clone(),
            order_number: order_number.to_owned(),
            quiet_hours: self.quiet_hours,
        }
    }
}

/// What a queued job is about, besides the queue's own fields (channel, kind,
/// due time…). The text is not stored: it is rendered at send time from the
/// order's latest snapshot, so a job delayed by quiet hours or retries never
/// tells stale news.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// Shape version ([`JOB_PAYLOAD_VERSION`] when written by this arauto).
    pub payload_version: u32,
    /// Happy-path priority the job was planned with (0 off the path).
    pub priority: u8,
    /// Platform status code the job was planned for.
    pub status_code: String,
    /// For tracking-updated: the shipment and code.
    pub tracking: Option<TrackingRef>,
    /// The store-facing order number (for logs and listings).
    pub order_number: String,
    /// What quiet hours do to this job at send time.
    pub quiet_hours: QuietHoursMode,
}

/// Why a stored payload cannot be used by this arauto.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "job payload version {found} is newer than this arauto understands ({JOB_PAYLOAD_VERSION})"
)]
pub struct NewerPayload {
    /// The version found.
    pub found: u32,
}

impl NewerPayload {
    /// `Err(self)` if the version found is newer than [`JOB_PAYLOAD_VERSION`]:
    /// a payload written by a newer arauto may mean something else.
    pub fn check(self) -> Result<(), NewerPayload> {
        if self.found > JOB_PAYLOAD_VERSION {
            Err(self)
        } else {
            Ok(())
        }
    }
}
