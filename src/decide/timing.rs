//! When a planned notification may go out: per-kind delay, expiry and quiet hours.
//!
//! * **Delay** (per kind): the job becomes due `delay` after the event. The
//!   default is 30 minutes for waiting-payment (most PIX and card orders are
//!   paid within minutes; the reminder is cancelled when the order moves on)
//!   and zero for everything else.
//! * **Quiet hours** (per store, in the store's IANA time zone, default
//!   `America/Sao_Paulo`): a due time inside the window moves to the window's
//!   end. Windows may cross midnight (`21:00`–`08:00`). Each kind chooses
//!   [`QuietHoursMode::Defer`] (default) or [`QuietHoursMode::Ignore`]. Nothing is
//!   ever dropped because of quiet hours.
//! * **Expiry** (per kind, default 24 h): counted from the due time *after*
//!   quiet-hours deferral, so a message deferred overnight is not dropped for
//!   waiting; a job that is still unsent `expiry` after it became due is
//!   cancelled as stale instead of being sent late. When a due job drifts into
//!   the window at send time (a long backlog), [`send_time_check`] defers it and
//!   extends its expiry by the same amount.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::NotificationKind;

/// The store time zone used when none is configured.
pub const DEFAULT_TIME_ZONE: &str = crate::config::DEFAULT_TIMEZONE;

/// Default expiry of every kind.
pub const DEFAULT_EXPIRY: SignedDuration = crate::config::notifications::DEFAULT_EXPIRY;

/// Default delay of waiting-payment.
pub const DEFAULT_WAITING_PAYMENT_DELAY: SignedDuration = SignedDuration::from_mins(30);

pub use crate::job::QuietHoursMode;

/// Timing of one notification kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindTiming {
    /// Wait this long after the event before the job is due.
    pub delay: SignedDuration,
    /// Cancel the job if still unsent this long after it became due.
    pub expiry: SignedDuration,
    /// Behaviour inside the quiet hours.
    pub quiet_hours: QuietHoursMode,
}

impl KindTiming {
    /// The built-in timing of a kind (see the module docs).
    pub fn default_for(kind: NotificationKind) -> Self {
        let delay = match kind {
            NotificationKind::WaitingPayment => DEFAULT_WAITING_PAYMENT_DELAY,
            _ => SignedDuration::ZERO,
        };
        Self {
            delay,
            expiry: DEFAULT_EXPIRY,
            quiet_hours: QuietHoursMode::Defer,
        }
    }
}

/// A time-zone–aware daily window during which customers are not messaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuietHours {
    start: Time,
    end: Time,
    time_zone: TimeZone,
}

/// A timing setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// Start and end are the same instant of the day.
    #[error(
        "quiet hours start and end are both {0}: the window would be empty (or the whole day); remove it or pick two different times"
    )]
    EmptyWindow(Time),
}

impl QuietHours {
    /// A window from `start` (inclusive) to `end` (exclusive) local time in
    /// `time_zone`; `start > end` crosses midnight.
    pub fn new(start: Time, end: Time, time_zone: TimeZone) -> Result<Self, TimingError> {
        if start == end {
            return Err(TimingError::EmptyWindow(start));
        }
        Ok(Self {
            start,
            end,
            time_zone,
        })
    }

    /// Window start (local time).
    pub fn start(&self) -> Time {
        self.start
    }

    /// Window end (local time).
    pub fn end(&self) -> Time {
        self.end
    }

    /// The zone the window is expressed in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned_datetime(self.time_zone.clone()).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `at` itself when outside the window, otherwise the end of the window
    /// that contains it.
    pub fn next_allowed(&self, at: Timestamp) -> Timestamp {
        if !self.contains(at) {
            return at;
        }
        let local = at.to_zoned_datetime(self.time_zone.clone()).datetime();
        // Inside the window the end is today when we are before it, else tomorrow
        // (only possible for windows crossing midnight, between start and 24:00).
        let end_date = if local.time() < self.end {
            local.date()
        } else {
            local.date().tomorrow().unwrap_or(local.date())
        };
        let end = DateTime::from_parts(end_date, self.end);
        // `compatible` resolves a DST gap forward, so the end is never inside the window.
        self.time_zone
            .to_zoned_datetime(end)
            .map(|z| z.timestamp())
            .unwrap_or(at)
            .max(at)
    }
}

/// Timing for a whole store: its quiet hours and per-kind overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimingPolicy {
    /// The store's quiet hours, if any.
    pub quiet_hours: Option<QuietHours>,
    /// Per-kind settings; kinds not listed use [`KindTiming::default_for`].
    /// Shared: they come from `[notifications]`, the same for every store
    /// (one table per store was about 1.5 KiB each at 10,000 stores).
    pub per_kind: Arc<BTreeMap<NotificationKind, KindTiming>>,
}

/// When a newly planned job is due and when it goes stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Not before this instant.
    pub due_at: Timestamp,
    /// Cancelled as stale if still unsent at this instant.
    pub expires_at: Timestamp,
    /// What the dispatcher does if the job drifts into the quiet hours.
    pub quiet_hours: QuietHoursMode,
}

impl TimingPolicy {
    /// Effective timing of a kind.
    pub fn for_kind(&self, kind: NotificationKind) -> KindTiming {
        self.per_kind
            .get(&kind)
            .copied()
            .unwrap_or_else(|| KindTiming::default_for(kind))
    }

    /// Schedule a job of `kind` for an event observed at `now`.
    pub fn schedule(&self, kind: NotificationKind, now: Timestamp) -> Schedule {
        let timing = self.for_kind(kind);
        let mut due_at = add(now, timing.delay);
        if timing.quiet_hours == QuietHoursMode::Defer
            && let Some(quiet) = &self.quiet_hours
        {
            due_at = quiet.next_allowed(due_at);
        }
        Schedule {
            due_at,
            expires_at: add(due_at, timing.expiry),
            quiet_hours: timing.quiet_hours,
        }
    }
}

/// What the dispatcher should do with a job it is about to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTiming {
    /// Go ahead.
    SendNow,
    /// Not yet: put the job back with these times (quiet hours extend the expiry
    /// by the time spent waiting, so waiting never makes it stale).
    Defer {
        /// New due time.
        until: Timestamp,
        /// New expiry.
        expires_at: Timestamp,
    },
    /// Stale: cancel it as expired.
    Expired,
}

/// Send-time check of a claimed job: expiry first, then due time, then the
/// quiet hours (a due job whose turn came inside the window waits for its end).
pub fn send_time_check(
    due_at: Timestamp,
    expires_at: Timestamp,
    mode: QuietHoursMode,
    quiet_hours: Option<&QuietHours>,
    now: Timestamp,
) -> SendTiming {
    if now >= expires_at {
        return SendTiming::Expired;
    }
    if now < due_at {
        return SendTiming::Defer {
            until: due_at,
            expires_at,
        };
    }
    if mode == QuietHoursMode::Defer
        && let Some(quiet) = quiet_hours
    {
        let allowed = quiet.next_allowed(now);
        if allowed > now {
            return SendTiming::Defer {
                until: allowed,
                expires_at: add(expires_at, allowed.duration_since(now)),
            };
        }
    }
    SendTiming::SendNow
}

/// `at + by`, clamped to the representable range instead of panicking on
/// absurd configured durations.
pub(crate) fn add(at: Timestamp, by: SignedDuration) -> Timestamp {
    at.saturating_add(by).unwrap_or(if by.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}
