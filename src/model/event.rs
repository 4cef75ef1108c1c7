//! [`OrderEvent`]: what happened, for senders that forward data rather than
//! text (webhooks, queues).
//!
//! This is the host side of the WIT `order-event` record of contract 0.2, a
//! versioned public format documented in `docs/events.md`. It is built at send
//! time from the job, the store and the stored order record, and only the
//! plugin binding turns it into the WIT record: the order's stored serde form
//! is no longer a public payload (contract 0.1 senders still get that form,
//! built by the 0.1 fallback module).

use serde::{Deserialize, Serialize};

use super::notification::NotificationKind;
use super::order::Order;

/// One notification's data, as a sender that forwards data receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// Which notification this is.
    pub notification: NotificationKind,
    /// The job's id: stable across retries of one notification.
    pub job_id: String,
    /// The store the order belongs to.
    pub store: EventStore,
    /// Platform status code the notification was planned for.
    pub status_code: String,
    /// For tracking-updated (and shipped) notifications: the shipment and code.
    pub tracking: Option<EventTracking>,
    /// The order as the host last read it from the platform.
    pub order: Order,
}

impl OrderEvent {
    /// The `order-event.version` this host writes (contract 0.2).
    pub const VERSION: u32 = 1;
}

/// The store an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStore {
    /// Store id as configured (`[stores.<id>]`).
    pub id: String,
    /// The store's `description`, when set.
    pub description: Option<String>,
    /// Platform identifier, e.g. `loja-integrada`.
    pub platform: String,
}

/// The shipment a tracking notification is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTracking {
    /// Shipment id within the order.
    pub shipment_id: String,
    /// Tracking code.
    pub code: String,
}
