//! Pacing per channel instance: minimum interval between sends, optional daily
//! cap with a local reset time, optional progressive warm-up of a new number.
//!
//! Everything here is pure arithmetic over a persisted [`PacingState`] and
//! `now`; the dispatcher asks [`PacingPolicy::next_send`] when it may send,
//! sends, then calls [`PacingPolicy::record_send`] and persists the state.
//! (The `governor` crate is not used: its GCRA state lives in memory, while a
//! WhatsApp number's daily count and warm-up day must survive restarts and
//! reset at a local time of day.)
//!
//! * **Minimum interval** — the channel's `min_interval`, else the default its
//!   sender plugin declares (`sender-info.default-min-interval-ms`; WhatsApp
//!   gateways say 20 s, as Notificações Inteligentes recommends: "não
//!   recomendamos o intervalo abaixo de 20 segundos … pode gerar bloqueios").
//!   Contract 0.1 senders declare none: `plugin::v0_1::fallback` fills it in
//!   from their name.
//! * **Daily cap** — at most `limit` sends per *cap day*, which starts at
//!   `reset_at` local time in `time_zone` (NI counts from 21:00 São Paulo =
//!   00:00 UTC). When the cap is reached the next send waits for the reset.
//! * **Warm-up** — a new number starts at `start` sends per cap day and gains
//!   `step` per cap day since its first send, until it reaches `limit`.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::decide::timing::add;
use crate::queue::ChannelStatus;

/// The interval of a channel whose sender declared nothing because it has
/// not loaded (shown by `check`; the channel does not send meanwhile).
pub const UNDECLARED_MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);

/// Progressive warm-up of a daily cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Warmup {
    /// Cap on the first cap day.
    pub start: u32,
    /// Added per cap day since the first send.
    pub step: u32,
}

/// A daily cap on sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCap {
    /// Sends per cap day once warmed up.
    pub limit: u32,
    /// Local time of day at which the count resets.
    pub reset_at: Time,
    /// Zone of `reset_at`.
    pub time_zone: TimeZone,
    /// Optional warm-up.
    pub warmup: Option<Warmup>,
}

impl DailyCap {
    /// The cap day `at` belongs to, named by the local date on which it started.
    pub fn day_of(&self, at: Timestamp) -> Date {
        let local = at.to_zoned_datetime(self.time_zone.clone()).datetime();
        if local.time() >= self.reset_at {
            local.date()
        } else {
            local.date().yesterday().unwrap_or(local.date())
        }
    }

    /// The first reset strictly after `at`.
    pub fn next_reset(&self, at: Timestamp) -> Timestamp {
        let day = self.day_of(at);
        let next = day.tomorrow().unwrap_or(day);
        self.time_zone
            .to_zoned_datetime(DateTime::from_parts(next, self.reset_at))
            .map(|z| z.timestamp())
            .unwrap_or(at)
            .max(at)
    }
}

/// Pacing settings of one channel instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacingPolicy {
    /// Minimum time between two sends.
    pub min_interval: SignedDuration,
    /// Optional daily cap (with optional warm-up).
    pub daily_cap: Option<DailyCap>,
}

/// Persisted pacing state of one channel instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacingState {
    /// When the last message went out.
    pub last_sent_at: Option<Timestamp>,
    /// The cap day `sent_today` counts.
    pub day: Option<Date>,
    /// Sends in `day`.
    pub sent_today: u32,
    /// First send under warm-up.
    pub warmup_started_at: Option<Timestamp>,
}

/// When the next message may go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacingDecision {
    /// At this instant (`<= now` means now).
    SendAt(Timestamp),
    /// Today's cap is used up; wait for the reset.
    CapReached {
        /// The next reset.
        until: Timestamp,
        /// The cap in force today (after warm-up).
        cap: u32,
    },
}

impl PacingState {
    /// The pacing state the queue keeps in a channel's status.
    pub fn of(status: &ChannelStatus) -> Self {
        Self {
            last_sent_at: status.last_sent_at,
            day: status.pacing_day,
            sent_today: u32::try_from(status.sent_today).unwrap_or(u32::MAX),
            warmup_started_at: status.warmup_started_at,
        }
    }

    /// Sends already counted on pacing day `day`.
    pub fn sent_on(&self, day: Date) -> u32 {
        if self.day == Some(day) {
            self.sent_today
        } else {
            0
        }
    }
}

impl PacingPolicy {
    /// The pacing day a send at `at` counts for: the cap day when there is a
    /// daily cap (it may reset at another hour than midnight), else the local
    /// date in `time_zone`.
    pub fn day_of(&self, at: Timestamp, time_zone: &TimeZone) -> Date {
        match &self.daily_cap {
            Some(cap) => cap.day_of(at),
            None => at.to_zoned_datetime(time_zone.clone()).date(),
        }
    }

    /// The cap in force on cap day `day`, after warm-up; `None` without a cap.
    pub fn cap_on(&self, state: &PacingState, day: Date) -> Option<u32> {
        let cap = self.daily_cap.as_ref()?;
        let Some(warmup) = cap.warmup else {
            return Some(cap.limit);
        };
        let days = match state.warmup_started_at {
            Some(started) => {
                let first = cap.day_of(started);
                u32::try_from(day.duration_since(first).as_secs().max(0) / 86_400)
                    .unwrap_or(u32::MAX)
            }
            None => 0,
        };
        Some(
            warmup
                .start
                .saturating_add(warmup.step.saturating_mul(days))
                .min(cap.limit),
        )
    }

    fn earliest(&self, state: &PacingState, now: Timestamp) -> Timestamp {
        state
            .last_sent_at
            .map_or(now, |last| add(last, self.min_interval).max(now))
    }

    /// True when nothing holds sends back: no minimum interval, no daily
    /// cap. The dispatcher batches claims and completions on such a channel.
    pub fn is_unpaced(&self) -> bool {
        self.min_interval <= SignedDuration::ZERO && self.daily_cap.is_none()
    }

    /// When the next message may go out.
    pub fn next_send(&self, state: &PacingState, now: Timestamp) -> PacingDecision {
        let earliest = self.earliest(state, now);
        if let Some(cap) = &self.daily_cap {
            let day = cap.day_of(earliest);
            let limit = self.cap_on(state, day).unwrap_or(cap.limit);
            if state.sent_on(day) >= limit {
                return PacingDecision::CapReached {
                    until: cap.next_reset(earliest),
                    cap: limit,
                };
            }
        }
        PacingDecision::SendAt(earliest)
    }

    /// Account for a message sent at `at`.
    pub fn record_send(&self, state: &mut PacingState, at: Timestamp) {
        state.last_sent_at = Some(at);
        if let Some(cap) = &self.daily_cap {
            let day = cap.day_of(at);
            if state.day != Some(day) {
                state.day = Some(day);
                state.sent_today = 0;
            }
            state.sent_today = state.sent_today.saturating_add(1);
            if cap.warmup.is_some() && state.warmup_started_at.is_none() {
                state.warmup_started_at = Some(at);
            }
        }
    }

    /// When the last of `backlog` queued messages is expected to go out,
    /// honouring the interval, the daily cap and the warm-up; `None` for an
    /// empty backlog or a cap of zero (never).
    pub fn eta(&self, state: &PacingState, backlog: u64, now: Timestamp) -> Option<Timestamp> {
        if backlog == 0 {
            return None;
        }
        let mut state = state.clone();
        let mut remaining = backlog;
        let mut at = self.earliest(&state, now);
        // Each iteration consumes one cap day (or finishes), so this bounds the
        // work at ~270 years of backlog; a zero cap never finishes.
        for _ in 0..100_000 {
            let Some(cap) = &self.daily_cap else {
                return Some(add(at, mul(self.min_interval, remaining - 1)));
            };
            let day = cap.day_of(at);
            let limit = self.cap_on(&state, day).unwrap_or(cap.limit);
            let left = u64::from(limit.saturating_sub(state.sent_on(day)));
            let reset = cap.next_reset(at);
            if left == 0 {
                if limit == 0 && cap.warmup.is_none_or(|w| w.step == 0) {
                    return None;
                }
                at = at.max(reset);
                continue;
            }
            let fit = if self.min_interval.is_zero() || self.min_interval.is_negative() {
                u64::MAX
            } else {
                let window = reset.duration_since(at).as_nanos().max(0);
                let per = self.min_interval.as_nanos();
                u64::try_from((window - 1).max(0) / per + 1).unwrap_or(u64::MAX)
            };
            let batch = remaining.min(left).min(fit);
            let last = add(at, mul(self.min_interval, batch - 1));
            remaining -= batch;
            if remaining == 0 {
                return Some(last);
            }
            if state.warmup_started_at.is_none() && cap.warmup.is_some() {
                state.warmup_started_at = Some(at);
            }
            state.day = Some(day);
            state.sent_today = state
                .sent_on(day)
                .saturating_add(u32::try_from(batch).unwrap_or(u32::MAX));
            state.last_sent_at = Some(last);
            at = add(last, self.min_interval);
            if batch == left {
                at = at.max(reset);
            }
        }
        None
    }
}

/// NI's report figure: interval × messages waiting.
pub fn naive_eta(min_interval: SignedDuration, backlog: u64) -> SignedDuration {
    mul(min_interval, backlog)
}

fn mul(duration: SignedDuration, times: u64) -> SignedDuration {
    let nanos = duration.as_nanos().saturating_mul(i128::from(times));
    SignedDuration::try_from_nanos_i128(nanos).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_channel_without_interval_and_cap_is_unpaced() {
        let unpaced = PacingPolicy {
            min_interval: SignedDuration::ZERO,
            daily_cap: None,
        };
        assert!(unpaced.is_unpaced());
        let paced = PacingPolicy {
            min_interval: SignedDuration::from_millis(1),
            ..unpaced.clone()
        };
        assert!(!paced.is_unpaced());
        let capped = PacingPolicy {
            daily_cap: Some(DailyCap {
                limit: 100,
                reset_at: Time::midnight(),
                time_zone: TimeZone::UTC,
                warmup: None,
            }),
            ..unpaced
        };
        assert!(!capped.is_unpaced());
    }
}
