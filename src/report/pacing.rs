//! The dispatcher's pacing figures as the reports read them: the pacing
//! state of a channel and the day a send counts for.

use jiff::Timestamp;

use crate::config::Config;
use crate::send::pacing::PacingPolicy;

pub use crate::send::dispatch::pacing_state;

/// The pacing day a send at `at` counts for (the dispatcher's rule): the cap
/// day when the channel has a daily cap, else the local date in the daemon's
/// time zone.
pub fn pacing_day(policy: &PacingPolicy, config: &Config, at: Timestamp) -> jiff::civil::Date {
    let tz = &config.daemon.timezone;
    crate::send::dispatch::pacing_day(policy, at, tz)
        .parse()
        .unwrap_or_else(|_| at.to_zoned_datetime(tz.clone()).date())
}
