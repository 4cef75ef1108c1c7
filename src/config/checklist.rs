//! `[checklist]`: the thresholds of the readiness checklist (`arauto check`,
//! `arauto report`). Its type, its defaults, and how it is read.

use serde::Serialize;

use super::reader::{Reader, Table, field};

/// Default `checklist.max_invalid_event_share`.
pub const DEFAULT_MAX_INVALID_EVENT_SHARE: f64 = 0.2;
/// Default `checklist.max_backlog`.
pub const DEFAULT_MAX_BACKLOG: u64 = 500;
/// Default `checklist.max_events_pending`.
pub const DEFAULT_MAX_EVENTS_PENDING: u64 = 200;
/// Default `checklist.stale_poll_factor`.
pub const DEFAULT_STALE_POLL_FACTOR: f64 = 3.0;

/// `[checklist]`: thresholds of the readiness checklist.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChecklistConfig {
    /// Highest acceptable share of invalid events (0–1). Default
    /// [`DEFAULT_MAX_INVALID_EVENT_SHARE`].
    pub max_invalid_event_share: f64,
    /// Most queued jobs before the queue counts as backlogged. Default
    /// [`DEFAULT_MAX_BACKLOG`].
    pub max_backlog: u64,
    /// Most events waiting for a decision. Default [`DEFAULT_MAX_EVENTS_PENDING`].
    pub max_events_pending: u64,
    /// A store is stale when its last poll is older than this many poll intervals.
    /// Default [`DEFAULT_STALE_POLL_FACTOR`].
    pub stale_poll_factor: f64,
}

/// Read `[checklist]`.
pub(crate) fn read_checklist(r: &mut Reader<'_>, mut t: Table) -> ChecklistConfig {
    let max_invalid_event_share = field(
        r,
        &mut t,
        "max_invalid_event_share",
        || DEFAULT_MAX_INVALID_EVENT_SHARE,
        |r, p, v| r.number(p, v, 0.0, 1.0),
    );
    let max_backlog = field(
        r,
        &mut t,
        "max_backlog",
        || DEFAULT_MAX_BACKLOG,
        |r, p, v| r.integer(p, v, 1, u64::MAX),
    );
    let max_events_pending = field(
        r,
        &mut t,
        "max_events_pending",
        || DEFAULT_MAX_EVENTS_PENDING,
        |r, p, v| r.integer(p, v, 1, u64::MAX),
    );
    let stale_poll_factor = field(
        r,
        &mut t,
        "stale_poll_factor",
        || DEFAULT_STALE_POLL_FACTOR,
        |r, p, v| r.number(p, v, 1.0, f64::MAX),
    );
    r.finish(t);
    ChecklistConfig {
        max_invalid_event_share,
        max_backlog,
        max_events_pending,
        stale_poll_factor,
    }
}
