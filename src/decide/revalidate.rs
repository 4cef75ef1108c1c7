//! Pre-send re-validation: just before a job is sent, check it against the
//! order's latest record. Jobs are planned minutes or hours before they go out
//! (delays, quiet hours, pacing backlog); the order may have moved on.

use serde::{Deserialize, Serialize};

use super::detect::current_codes;
use super::record::OrderRecord;
use crate::job::TrackingRef;
use crate::model::NotificationKind;

/// Verdict of [`still_relevant`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Relevance {
    /// Send it.
    Send,
    /// Cancel it; the reason goes into the delivery history.
    Drop {
        /// Why it no longer makes sense.
        reason: DropReason,
    },
}

/// Why a job was dropped before sending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum DropReason {
    /// The order is cancelled/refunded now (or still in that episode).
    #[error("the order is now in terminal status {status_code}")]
    OrderTerminal {
        /// Current status code.
        status_code: String,
    },
    /// The order was cancelled/refunded and has not moved beyond the step it
    /// had reached before, even if its status is no longer terminal.
    #[error(
        "the order was cancelled ({status_code}) and has not moved beyond its earlier step since"
    )]
    AfterCancellation {
        /// The terminal status that opened the episode.
        status_code: String,
    },
    /// The order reached a later happy-path step already.
    #[error("the order already reached a later step (priority {reached} > {job})")]
    Superseded {
        /// Highest priority reached.
        reached: u8,
        /// The job's priority.
        job: u8,
    },
    /// A cancellation/refund notice, but the order is no longer cancelled/refunded.
    #[error("the order left the terminal status; it is {status_code} now")]
    OrderReopened {
        /// Current status code.
        status_code: String,
    },
    /// The tracking code was removed or replaced on the platform.
    #[error("tracking code {code} is no longer on the order")]
    TrackingCodeGone {
        /// The code the job announces.
        code: String,
    },
}

/// Does sending a job of `kind`, planned at happy-path `priority` (and for
/// `tracking`, if a tracking announcement), still make sense given the
/// order's latest record?
///
/// * a cancellation/refund notice goes only while the order is still in a
///   terminal status;
/// * anything else is dropped while the order is cancelled/refunded, or after
///   a cancellation until it moves beyond the step it had reached before;
/// * a happy-path step is dropped once the order reached a later step (even a
///   step whose message is switched off: "paid" is stale news for an order
///   being shipped);
/// * a tracking announcement is dropped when its code is no longer on any
///   shipment (the merchant corrected a typo; the new code gets its own job).
///
/// A revert to an earlier step does *not* drop a pending later step: reverts
/// are usually corrections, and the happy-path rules never announce that step
/// again, so dropping it would lose the message for good.
pub fn still_relevant(
    kind: NotificationKind,
    priority: u8,
    tracking: Option<&TrackingRef>,
    latest: &OrderRecord,
) -> Relevance {
    let happy = &latest.happy;
    let status_code = latest.order.status.code.clone();
    if kind.is_terminal() {
        return if happy.current_terminal {
            Relevance::Send
        } else {
            Relevance::Drop {
                reason: DropReason::OrderReopened { status_code },
            }
        };
    }
    if happy.current_terminal {
        return Relevance::Drop {
            reason: DropReason::OrderTerminal { status_code },
        };
    }
    if let Some(episode) = &happy.terminal {
        return Relevance::Drop {
            reason: DropReason::AfterCancellation {
                status_code: episode.status_code.clone(),
            },
        };
    }
    if priority > 0 && happy.max_priority > priority {
        return Relevance::Drop {
            reason: DropReason::Superseded {
                reached: happy.max_priority,
                job: priority,
            },
        };
    }
    if let Some(tracking) = tracking
        && latest.order.detailed
        && !current_codes(&latest.order).any(|(_, code)| code == tracking.code)
    {
        return Relevance::Drop {
            reason: DropReason::TrackingCodeGone {
                code: tracking.code.clone(),
            },
        };
    }
    Relevance::Send
}
