//! The rules a channel sends by — pacing and retries — derived from its
//! configuration.
//! They are cheap to derive, so the dispatcher derives them afresh each turn
//! and a reload applies at once.

use jiff::tz::TimeZone;

use super::pacing::{DailyCap, PacingPolicy, Warmup, default_min_interval};
use super::retry::RetryPolicy;
use crate::config::ChannelConfig;

/// A channel's pacing from its configuration: `min_interval` (else the
/// plugin's default), daily cap with its reset time in the daemon's zone,
/// warm-up.
pub fn pacing_policy(channel: &ChannelConfig, time_zone: &TimeZone) -> PacingPolicy {
    PacingPolicy {
        min_interval: channel
            .min_interval
            .unwrap_or_else(|| default_min_interval(&channel.plugin)),
        daily_cap: channel.daily_cap.map(|limit| DailyCap {
            limit,
            reset_at: channel.daily_reset,
            time_zone: time_zone.clone(),
            warmup: channel.warmup.map(|w| Warmup {
                start: w.start,
                step: w.step,
            }),
        }),
    }
}

/// A channel's retries from its configuration: back-off base and cap, attempts.
pub fn retry_policy(channel: &ChannelConfig) -> RetryPolicy {
    RetryPolicy {
        base: channel.retry_base,
        cap: channel.retry_max,
        max_attempts: channel.max_attempts,
        ..RetryPolicy::default()
    }
}
