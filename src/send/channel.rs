//! A configured channel instance, ready to send.

use crate::config::ChannelConfig;
use crate::plugin::{Plugin, SenderInstance};
use jiff::tz::TimeZone;

use super::pacing::{DailyCap, PacingPolicy, Warmup, default_min_interval};
use super::retry::RetryPolicy;

/// What a channel needs to address a customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientNeed {
    /// A usable mobile phone (WhatsApp gateways, SMS).
    Phone,
    /// Nothing from the customer: the channel has its own destination
    /// (a webhook URL, a staff Telegram chat).
    Nothing,
}

impl RecipientNeed {
    /// What a sender plugin needs, by name. Unknown plugins are assumed to
    /// message the customer's phone, the common case for Brazilian shops.
    pub fn for_plugin(plugin: &str) -> Self {
        match plugin {
            "webhook" | "telegram" => Self::Nothing,
            _ => Self::Phone,
        }
    }
}

/// One `[channels.<id>]` with its sender plugin instance and policies.
#[derive(Clone)]
pub struct ChannelRuntime {
    /// The channel's configuration.
    pub config: ChannelConfig,
    /// The loaded sender plugin.
    pub plugin: Plugin,
    /// This channel's instance of it (settings, secrets, sandbox grants).
    pub sender: SenderInstance,
    /// Minimum interval, daily cap, warm-up.
    pub pacing: PacingPolicy,
    /// Back-off and attempts.
    pub retry: RetryPolicy,
    /// Whether jobs need a customer phone.
    pub recipient: RecipientNeed,
}

impl std::fmt::Debug for ChannelRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRuntime")
            .field("id", &self.config.id)
            .field("plugin", &self.plugin.name())
            .field("pacing", &self.pacing)
            .field("retry", &self.retry)
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

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
