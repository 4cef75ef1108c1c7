//! The rules a channel sends by — pacing and retries — derived from its
//! configuration.
//! They are cheap to derive, so the dispatcher derives them afresh each turn
//! and a reload applies at once.

use jiff::tz::TimeZone;

use super::pacing::{DailyCap, PacingPolicy, UNDECLARED_MIN_INTERVAL, Warmup};
use super::retry::RetryPolicy;
use crate::config::ChannelConfig;
use crate::model::SenderInfo;

/// A channel's pacing from its configuration: `min_interval` and `daily_cap`
/// (else the defaults its sender declared), the cap's reset time in the
/// daemon's zone, warm-up. `sender` is `None` only while the channel's plugin
/// does not load.
pub fn pacing_policy(
    channel: &ChannelConfig,
    sender: Option<&SenderInfo>,
    time_zone: &TimeZone,
) -> PacingPolicy {
    PacingPolicy {
        min_interval: channel
            .min_interval
            .unwrap_or_else(|| sender.map_or(UNDECLARED_MIN_INTERVAL, |s| s.default_min_interval)),
        daily_cap: channel
            .daily_cap
            .or_else(|| sender.and_then(|s| s.default_daily_cap))
            .map(|limit| DailyCap {
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
