//! Change detection: compares a new order snapshot from a connector poll with
//! the one stored for the same (store, order) and says what happened.
//!
//! The rules, in order:
//!
//! * No stored snapshot: [`OrderEvent::FirstSighting`], plus one
//!   [`OrderEvent::TrackingAdded`] per shipment that already carries a tracking
//!   code (when the new snapshot is detailed).
//! * Same change key (status code and platform `updated_at`): nothing. Polls
//!   overlap deliberately (the cursor is rewound by an overlap window), so the same
//!   row comes back again and again; it must never produce events twice.
//! * Status code differs: [`OrderEvent::StatusChanged`].
//! * Tracking codes are compared per shipment id (split shipments each get
//!   their own event), but only when *both* snapshots are detailed. A snapshot
//!   seeded from a summary row (`detailed == false`) has no shipments, and
//!   treating "no data" as "no tracking code" would announce old codes as new.
//!   A code that disappears produces no event (nothing to tell the customer).
//!
//! Detection is pure: it never looks at the clock, the queue or the config.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::Order;

/// Something that happened to an order between two polls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum OrderEvent {
    /// The order was never seen before; it is in `status_code` now.
    FirstSighting {
        /// Platform status code at first sight.
        status_code: String,
    },
    /// The platform status code changed.
    StatusChanged {
        /// Previous platform status code.
        from: String,
        /// Current platform status code.
        to: String,
    },
    /// A shipment got a tracking code it did not have before.
    TrackingAdded {
        /// Shipment id within the order.
        shipment_id: String,
        /// The new tracking code.
        code: String,
    },
    /// A shipment's tracking code was replaced by another one.
    TrackingChanged {
        /// Shipment id within the order.
        shipment_id: String,
        /// The previous tracking code.
        from: String,
        /// The new tracking code.
        to: String,
    },
}

impl OrderEvent {
    /// True for the events that concern the order's status.
    pub fn is_status_event(&self) -> bool {
        matches!(
            self,
            Self::FirstSighting { .. } | Self::StatusChanged { .. }
        )
    }

    /// The shipment and new code of a tracking event.
    pub fn tracking(&self) -> Option<(&str, &str)> {
        match self {
            Self::TrackingAdded { shipment_id, code } => Some((shipment_id, code)),
            Self::TrackingChanged {
                shipment_id, to, ..
            } => Some((shipment_id, to)),
            _ => None,
        }
    }
}

/// What identifies one version of an order on the platform: its status code
/// and the platform's own modification time. Two snapshots with the same key
/// describe the same change.
pub fn change_key(order: &Order) -> (&str, Timestamp) {
    (order.status.code.as_str(), order.updated_at)
}

/// Compare the stored snapshot (if any) with the freshly polled one.
pub fn detect(previous: Option<&Order>, current: &Order) -> Vec<OrderEvent> {
    let Some(previous) = previous else {
        let mut events = vec![OrderEvent::FirstSighting {
            status_code: current.status.code.clone(),
        }];
        if current.detailed {
            events.extend(current_codes(current).map(|(shipment_id, code)| {
                OrderEvent::TrackingAdded {
                    shipment_id: shipment_id.to_owned(),
                    code: code.to_owned(),
                }
            }));
        }
        return events;
    };
    if change_key(previous) == change_key(current) {
        return Vec::new();
    }

    let mut events = Vec::new();
    if previous.status.code != current.status.code {
        events.push(OrderEvent::StatusChanged {
            from: previous.status.code.clone(),
            to: current.status.code.clone(),
        });
    }
    if previous.detailed && current.detailed {
        for (shipment_id, code) in current_codes(current) {
            let before = previous
                .shipments
                .iter()
                .find(|s| s.id == shipment_id)
                .and_then(|s| usable_code(s.tracking_code.as_deref()));
            match before {
                None => events.push(OrderEvent::TrackingAdded {
                    shipment_id: shipment_id.to_owned(),
                    code: code.to_owned(),
                }),
                Some(old) if old != code => events.push(OrderEvent::TrackingChanged {
                    shipment_id: shipment_id.to_owned(),
                    from: old.to_owned(),
                    to: code.to_owned(),
                }),
                Some(_) => {}
            }
        }
    }
    events
}

/// The snapshot to store after a poll. A summary row (`detailed == false`)
/// never overwrites the detail already known: it only moves the status and
/// the modification time, so later tracking comparisons stay meaningful.
pub fn merge_snapshot(previous: Option<&Order>, current: Order) -> Order {
    match previous {
        Some(previous) if previous.detailed && !current.detailed => {
            let mut merged = previous.clone();
            merged.status = current.status;
            merged.updated_at = current.updated_at;
            merged
        }
        _ => current,
    }
}

/// (shipment id, tracking code) for every shipment that has a non-blank code.
pub fn current_codes(order: &Order) -> impl Iterator<Item = (&str, &str)> {
    order
        .shipments
        .iter()
        .filter_map(|s| usable_code(s.tracking_code.as_deref()).map(|code| (s.id.as_str(), code)))
}

/// Platforms send `""` or whitespace for "no code yet"; treat that as absent.
fn usable_code(code: Option<&str>) -> Option<&str> {
    code.map(str::trim).filter(|c| !c.is_empty())
}
