//! The per-order record the queue stores as an opaque, versioned blob: the last
//! snapshot plus the happy-path memory that keeps notifications in order and
//! unique.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{NotificationKind, Order};

/// Version written by [`OrderRecord::to_bytes`].
pub const ORDER_RECORD_VERSION: u32 = 1;

/// Everything arauto remembers about one order of one store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The latest snapshot (a summary row never overwrites known detail).
    pub order: Order,
    /// Happy-path memory.
    pub happy: HappyPathState,
    /// When arauto first saw the order.
    pub first_seen_at: Timestamp,
    /// When a poll last returned the order.
    pub last_polled_at: Timestamp,
    /// When a poll last produced events for the order.
    pub last_changed_at: Timestamp,
    /// First seen during a store's first sync, before the cutoff: recorded
    /// silently as a baseline, never notified for the state it was in then.
    pub seeded: bool,
}

/// Happy-path memory of one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HappyPathState {
    /// Highest happy-path priority the order reached while watched (whether or
    /// not a message was planned for it); 0 = none yet. Never decreases.
    pub max_priority: u8,
    /// Highest happy-path priority a message was planned for.
    pub max_priority_planned: u8,
    /// Priority of the order's current status (0 off the happy path or unmapped).
    pub current_priority: u8,
    /// The order's current status is a cancelled/refunded-style end state.
    pub current_terminal: bool,
    /// Set from the moment the order enters a terminal status until it moves to
    /// a happy-path step beyond the one it had reached before.
    pub terminal: Option<TerminalEpisode>,
    /// Kind → channels a message was planned for (at most once per order and channel).
    pub planned: BTreeMap<NotificationKind, BTreeSet<String>>,
    /// Kinds considered already notified on every channel (the state an order
    /// was seeded in during a first sync).
    pub silenced: BTreeSet<NotificationKind>,
    /// Tracking code → shipment id for every code already announced (by
    /// tracking-updated, carried by order-shipped, or seeded).
    pub tracking_announced: BTreeMap<String, String>,
}

/// A cancellation/refund the order went through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalEpisode {
    /// The highest happy-path priority reached before the terminal status; only
    /// a move beyond it ends the episode and lets happy-path messages through.
    pub priority_before: u8,
    /// The terminal notice planned in this episode, if any (one per episode).
    pub notified: Option<NotificationKind>,
    /// The terminal status code that opened the episode.
    pub status_code: String,
}

impl HappyPathState {
    /// Whether a message of `kind` was already planned (or silenced) for `channel`.
    pub fn already_planned(&self, kind: NotificationKind, channel: &str) -> bool {
        self.silenced.contains(&kind)
            || self.planned.get(&kind).is_some_and(|c| c.contains(channel))
    }
}

/// A record blob that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Written by a newer arauto.
    #[error(
        "order record version {found} is newer than this arauto understands (up to {ORDER_RECORD_VERSION})"
    )]
    UnsupportedVersion {
        /// The version in the blob.
        found: u32,
    },
    /// Not a record at all, or truncated.
    #[error("order record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    record: &'a OrderRecord,
}

/// [`EnvelopeIn`] with the record read straight from the text.
#[derive(Deserialize)]
struct EnvelopeTyped {
    v: u32,
    record: OrderRecord,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    v: u32,
    record: serde_json::Value,
}

impl OrderRecord {
    /// Serialise with a version envelope (`{"v":1,"record":{…}}`, JSON so an
    /// operator can read it in a dump).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_vec(&EnvelopeOut {
            v: ORDER_RECORD_VERSION,
            record: self,
        })
        .unwrap_or_default()
    }

    /// Read a blob written by [`OrderRecord::to_bytes`] (this or an older version).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        // A record of a version this arauto writes reads in one pass (each
        // changed order of every sweep reads its record); anything else (an
        // older shape, a newer version, a corrupt blob) goes the careful way
        // below, which also words its errors.
        if let Ok(envelope) = serde_json::from_slice::<EnvelopeTyped>(bytes)
            && envelope.v <= ORDER_RECORD_VERSION
        {
            return Ok(envelope.record);
        }
        let envelope: EnvelopeIn = serde_json::from_slice(bytes)?;
        if envelope.v > ORDER_RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion { found: envelope.v });
        }
        Ok(serde_json::from_value(envelope.record)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(order: Order) -> OrderRecord {
        let at = Timestamp::from_second(1_715_342_400).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut happy = HappyPathState {
            max_priority: 3,
            terminal: Some(TerminalEpisode {
                priority_before: 2,
                notified: None,
                status_code: "cancelado".to_owned(),
            }),
            ..HappyPathState::default()
        };
        happy
            .tracking_announced
            .insert("AA123456785BR".to_owned(), "whatsapp".to_owned());
        OrderRecord {
            order,
            happy,
            first_seen_at: at,
            last_polled_at: at,
            last_changed_at: at,
            seeded: true,
        }
    }

    /// The one-pass read and the careful one agree on every sample order,
    /// and only the careful one words the errors.
    #[test]
    fn records_read_back_the_same_either_way() {
        for order in crate::template::sample_orders() {
            let record = record(order);
            let bytes = record.to_bytes();
            let typed: EnvelopeTyped = serde_json::from_slice(&bytes).expect("one pass");
            assert_eq!(typed.record, record);
            let careful: EnvelopeIn = serde_json::from_slice(&bytes).expect("careful");
            let careful: OrderRecord = serde_json::from_value(careful.record).expect("record");
            assert_eq!(careful, record);
            assert_eq!(OrderRecord::from_bytes(&bytes).ok(), Some(record.clone()));

            let newer = String::from_utf8(bytes.clone())
                .expect("JSON text")
                .replacen("{\"v\":1,", "{\"v\":2,", 1);
            assert!(matches!(
                OrderRecord::from_bytes(newer.as_bytes()),
                Err(RecordError::UnsupportedVersion { found: 2 })
            ));
            assert!(matches!(
                OrderRecord::from_bytes(&bytes[..bytes.len() - 1]),
                Err(RecordError::Corrupt(_))
            ));
        }
    }
}
